"Everything that samples the policy — training, the dashboard's validation, the demo's evaluation — samples it the same way."
import dataclasses, pytest, torch

from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, ImageDDPOTrainer, TrainingDashboard, tiny_pipeline
from imageddpo.demo import evaluate

class Stop(Exception): "Raised by the recording rollout once it has seen its arguments."

def record_rollout(policy, calls):
    "Replace `policy.rollout` by one that records its keyword arguments (minus per-call inputs: generator, start latents) and stops the caller."
    def rollout(images, prompts, **kwargs):
        calls.append({k: v for k, v in kwargs.items() if k not in ("generator", "return_pred_original_samples", "start_latents")})
        raise Stop
    policy.rollout = rollout

def test_trainer_dashboard_and_demo_sample_alike(tmp_path):
    config = ImageDDPOConfig(mixed_precision="no", sample_num_steps=20, num_epochs=5, noise_strength=(0.6, 0.3),
                             sample_guidance_scale=5.0, guidance_rescale=0.7, negative_prompts="blurry", sample_eta=0.8,
                             sample_batch_size=2, train_batch_size=2, output_dir=str(tmp_path))
    images = torch.rand(2, 3, 64, 64)
    trainer = ImageDDPOTrainer(config, lambda images, prompts, metadata: images.mean((1, 2, 3)),
                               lambda: ("a photo", images[0], {}), I2IDDPOStableDiffusionPipeline(tiny_pipeline()))
    calls = []
    record_rollout(trainer.sd_pipeline, calls)
    epoch = 3
    with pytest.raises(Stop): trainer.sample_and_reward(epoch)
    with pytest.raises(Stop): TrainingDashboard(images, "a photo", mode="static")._validate(trainer, epoch)
    with pytest.raises(Stop): evaluate(trainer.sd_pipeline, images, torch.tensor([1, 2]), config, epoch=epoch)
    assert len(calls) == 3 and calls[0] == calls[1] == calls[2], calls
    assert calls[0] == dict(noise_strength=config.noise_strength_at(epoch), num_inference_steps=20, guidance_scale=5.0,
                            eta=0.8, guidance_rescale=0.7, negative_prompt="blurry", stochastic_window=None)
    with pytest.raises(Stop): evaluate(trainer.sd_pipeline, images, torch.tensor([1, 2]), config)  # default: the last epoch
    assert calls[-1]["noise_strength"] == pytest.approx(0.3)

def test_the_family_decides_the_executed_steps(tmp_path):
    "The strength rule is the policy's: SD3 (flow img2img) runs N - int(N - N s) steps, SD 1.x int(N s); the trainer checks the plan with it."
    from imageddpo import I2IDDPOStableDiffusion3Pipeline, tiny_sd3_pipeline
    config = ImageDDPOConfig(mixed_precision="no", sample_num_steps=10, noise_strength=0.35, sde_window=4, num_epochs=1,
                             sample_batch_size=2, train_batch_size=2, sample_guidance_scale=1.0, output_dir=str(tmp_path/"sd3"))
    images = torch.rand(2, 3, 64, 64)
    make = lambda policy, out: ImageDDPOTrainer(dataclasses.replace(config, output_dir=str(tmp_path/out)),
                                                lambda images, prompts, metadata: images.mean((1, 2, 3)),
                                                lambda: ("a photo", images[0], {}), policy)
    trainer = make(I2IDDPOStableDiffusion3Pipeline(tiny_sd3_pipeline()), "sd3")  # the window fits SD3's 4 steps
    assert config.trained_steps(0, trainer.sd_pipeline) == 4
    trainer.train()
    assert trainer.history[-1]["num_samples"] == 4  # 2 batches of 2
    with pytest.raises(ValueError, match="sde_window=4: is longer than the 3 steps I2IDDPOStableDiffusionPipeline executes"):
        make(I2IDDPOStableDiffusionPipeline(tiny_pipeline()), "sd")
