"Mixed precision on CUDA: fp16 with LoRA and fp16 full fine-tuning (TRL's failed with 'Attempting to unscale FP16 gradients')."
import pytest, torch

from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, ImageDDPOTrainer, tiny_pipeline

@pytest.mark.gpu
@pytest.mark.parametrize("use_lora", [True, False])
def test_fp16_training_runs_and_stays_finite(tmp_path, use_lora):
    config = ImageDDPOConfig(mixed_precision="fp16", use_lora=use_lora, sample_num_steps=10, noise_strength=0.5,
                             sample_guidance_scale=5.0, sample_batch_size=4, train_batch_size=2, num_epochs=2,
                             train_learning_rate=1e-4 if not use_lora else 3e-3, output_dir=str(tmp_path))
    prompt_function = lambda: ("a photo", torch.rand(3, 64, 64), {})
    reward = lambda images, prompts, metadata: images.float().mean(dim=(1, 2, 3))
    trainer = ImageDDPOTrainer(config, reward, prompt_function, I2IDDPOStableDiffusionPipeline(tiny_pipeline(), use_lora=use_lora))
    before = {k: v.detach().clone() for k, v in trainer._trainable_state().items()}
    trainer.train()
    after = trainer._trainable_state()
    assert all(v.dtype == torch.float32 for v in after.values()), "trainable weights stay float32 under fp16"
    assert all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in after), "the weights must move"
    assert trainer.sd_pipeline.vae.dtype == torch.float16
