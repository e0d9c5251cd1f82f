"""SDXL in the trainer: every objective trains the tiny SDXL (guidance on, LoRA and full fine-tuning) and resumes to the
uninterrupted run's exact weights; a diffusers SDXL pipeline handed to the trainer gets its family's policy; the trained
LoRA loads into diffusers' SDXL img2img and samples what the policy samples; run files and `imageddpo train` pick the
family from the checkpoint's model_index.json. (Two processes: tests/test_multiprocess.py; parity: chapter 02b.)"""
import json, os, subprocess, sys

import pytest
import torch
import yaml
from diffusers import StableDiffusionXLImg2ImgPipeline

from imageddpo import I2IDDPOStableDiffusionXLPipeline, ImageDDPOConfig, ImageDDPOTrainer, tiny_sdxl_pipeline
from imageddpo.run_config import RunConfigError, trainer_from_run_config

def prompt_function():  # the global RNG: seeded by the trainer, restored on resume
    i = int(torch.randint(3, ()))
    return f"a photo of a digit {i}", torch.full((3, 32, 32), 0.2 + 0.3 * i), {"index": i}

def brighter(images, prompts, metadata):
    return images.mean(dim=(1, 2, 3)) * 10

def config(tmp, **overrides):
    base = dict(mixed_precision="no", sample_num_steps=6, noise_strength=0.5, sample_guidance_scale=3.0, sample_batch_size=4,
                sample_num_batches_per_epoch=2, train_batch_size=2, train_gradient_accumulation_steps=2, train_learning_rate=1e-2,
                num_epochs=3, save_freq=1, output_dir=str(tmp))
    return ImageDDPOConfig(**{**base, **overrides})

def weights(trainer): return {k: v.detach().clone() for k, v in trainer._trainable_state().items()}

def train(c):
    policy = I2IDDPOStableDiffusionXLPipeline(tiny_sdxl_pipeline(), use_lora=c.use_lora, lora_seed=c.seed)
    trainer = ImageDDPOTrainer(c, brighter, prompt_function, policy)
    trainer.train()
    return trainer

CASES = {
    "ppo, guidance 3 rescaled, negative prompt": dict(guidance_rescale=0.5, negative_prompts="a photo"),
    "nft, groups of 2, eta 0, no guidance": dict(train_objective="nft", sample_eta=0.0, sample_group_size=2,
                                                 sample_guidance_scale=1.0),
    "awm, full fine-tuning, kl": dict(train_objective="awm", use_lora=False, kl_coef=0.1, sample_group_size=2,
                                     train_learning_rate=1e-4),
}

@pytest.mark.parametrize("case", list(CASES))
def test_every_objective_trains_sdxl_and_resumes_to_the_same_weights(tmp_path, case):
    straight = train(config(tmp_path/"straight", **CASES[case]))
    first = train(config(tmp_path/"split", **CASES[case], num_epochs=2))
    c = config(tmp_path/"none", **CASES[case])
    untrained = I2IDDPOStableDiffusionXLPipeline(tiny_sdxl_pipeline(), use_lora=c.use_lora, lora_seed=c.seed).unet
    fresh = {k: w for k, w in untrained.named_parameters() if w.requires_grad}
    assert any(not torch.equal(w, fresh[k]) for k, w in weights(first).items()), "training moved the weights"
    resumed = train(config(tmp_path/"split", **CASES[case], resume_from="latest"))
    same = lambda history: [(h["reward_mean"], h["loss"]) for h in history]
    assert same(resumed.history) == same(straight.history)
    for k, w in weights(straight).items(): assert torch.equal(w, weights(resumed)[k]), k

def test_the_trainer_wraps_an_sdxl_pipeline_and_its_lora_loads_into_diffusers(tmp_path):
    c = config(tmp_path, num_epochs=1, save_freq=100)
    trainer = ImageDDPOTrainer(c, brighter, prompt_function, tiny_sdxl_pipeline())
    assert isinstance(trainer.sd_pipeline, I2IDDPOStableDiffusionXLPipeline)
    trainer.train()
    trainer.save_pretrained(tmp_path/"final")
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    kwargs = dict(num_inference_steps=6, guidance_scale=3.0, eta=0.0)
    ours = trainer.sd_pipeline.rollout(images, "a photo of a digit 1", noise_strength=0.5,
                                       generator=torch.Generator().manual_seed(1), **kwargs).images
    loaded = StableDiffusionXLImg2ImgPipeline(**{**tiny_sdxl_pipeline().components, "scheduler": trainer.sd_pipeline.scheduler})
    loaded.load_lora_weights(tmp_path/"final"); loaded.set_progress_bar_config(disable=True)
    theirs = loaded(prompt=["a photo of a digit 1"] * 2, image=images, strength=0.5, generator=torch.Generator().manual_seed(1),
                    output_type="pt", **kwargs).images
    assert torch.equal(ours, theirs), (ours - theirs).abs().max()

def test_the_dashboard_draws_an_sdxl_run(tmp_path):
    "Static mode: every panel is written, the validation rollouts ran the SDXL policy with its adapters off and on."
    from imageddpo.dashboard import TrainingDashboard
    dashboard = TrainingDashboard(torch.rand(2, 3, 32, 32), "a photo of a digit 1", every=1, mode="static", budget=1.0)
    trainer = ImageDDPOTrainer(config(tmp_path, num_epochs=2, save_freq=100), brighter, prompt_function, tiny_sdxl_pipeline(),
                               callbacks=[dashboard])
    trainer.train()
    assert {p.name for p in (tmp_path/"dashboard").iterdir()} == {"trajectory.png", "noise_strength.png", "rewards.png",
                                                                   "validation.png"}
    assert dashboard.redraws == 2 and not torch.equal(dashboard.base["images"], dashboard.current["images"])

def run_spec(tmp_path, model, **config_changes) -> dict:
    images = tmp_path/"images"; images.mkdir(exist_ok=True)
    import PIL.Image
    for i in range(2): PIL.Image.new("RGB", (32, 32), (40 * i, 90, 200)).save(images/f"img_{i}.png")
    return dict(model=model, images=str(images), image_size=32, prompt="a photo of a {stem}", reward="jpeg_compressibility",
                config=dict(mixed_precision="no", sample_num_steps=4, noise_strength=0.5, sample_batch_size=2,
                            sample_num_batches_per_epoch=1, train_batch_size=2, num_epochs=1, output_dir=str(tmp_path/"run"),
                            **config_changes))

def test_run_files_pick_the_family_from_the_checkpoint(tmp_path):
    tiny_sdxl_pipeline().save_pretrained(tmp_path/"sdxl")
    assert isinstance(trainer_from_run_config(run_spec(tmp_path, str(tmp_path/"sdxl"))).sd_pipeline,
                      I2IDDPOStableDiffusionXLPipeline)
    assert isinstance(trainer_from_run_config(run_spec(tmp_path, "tiny-sdxl", overwrite_output_dir=True)).sd_pipeline,
                      I2IDDPOStableDiffusionXLPipeline)
    (tmp_path/"flux").mkdir(); (tmp_path/"flux"/"model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(RunConfigError, match="is a FluxPipeline checkpoint"):
        trainer_from_run_config(run_spec(tmp_path, str(tmp_path/"flux"), overwrite_output_dir=True))

def test_imageddpo_train_trains_sdxl_from_a_run_file(tmp_path):
    spec = run_spec(tmp_path, "tiny-sdxl", sample_guidance_scale=2.0)
    (tmp_path/"run.yaml").write_text(yaml.safe_dump(spec))
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-m", "imageddpo", "train", "--config", str(tmp_path/"run.yaml")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (tmp_path/"run"/"final"/"pytorch_lora_weights.safetensors").exists()
    tiny_sdxl_pipeline().load_lora_weights(tmp_path/"run"/"final")  # diffusers' SDXL format

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_rollouts_match_diffusers_on_cuda(dtype):
    "The whole pipeline in fp16/bf16 on CUDA (the VAE upcast to float32 as SDXL needs): our rollout vs diffusers' SDXL img2img."
    pipe = tiny_sdxl_pipeline().to("cuda", dtype)
    policy = I2IDDPOStableDiffusionXLPipeline(pipe, use_lora=False)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    kwargs = dict(num_inference_steps=10, guidance_scale=5.0, eta=0.0)
    ours = policy.rollout(images, "a photo", noise_strength=0.6, generator=torch.Generator("cuda").manual_seed(1), **kwargs)
    reference = StableDiffusionXLImg2ImgPipeline(**policy.sd_pipeline.components); reference.set_progress_bar_config(disable=True)
    theirs = reference(prompt=["a photo"] * 2, image=images, strength=0.6, generator=torch.Generator("cuda").manual_seed(1),
                       output_type="pt", **kwargs).images
    assert policy.vae.dtype == dtype, "the VAE is upcast only while it runs"
    assert torch.isfinite(ours.images).all() and (ours.images - theirs.float()).abs().max() <= 2e-2
