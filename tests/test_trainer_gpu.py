"Mixed precision on CUDA: fp16 with LoRA and fp16 full fine-tuning (TRL's failed with 'Attempting to unscale FP16 gradients')."
import pytest, torch

from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, ImageDDPOTrainer, tiny_pipeline

@pytest.mark.gpu
@pytest.mark.parametrize("use_lora,objective", [(True, "ppo"), (False, "ppo"), (True, "nft"), (True, "awm")])
def test_fp16_training_runs_and_stays_finite(tmp_path, use_lora, objective):
    config = ImageDDPOConfig(mixed_precision="fp16", use_lora=use_lora, sample_num_steps=10, noise_strength=0.5,
                             sample_guidance_scale=5.0, sample_batch_size=4, train_batch_size=2, num_epochs=2,
                             train_objective=objective, sample_group_size=2 if objective != "ppo" else 1,
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

@pytest.mark.gpu
def test_the_denoising_loop_never_waits_on_the_device():
    "The rollout's loop body (UNet call, DDIM step with its pre-drawn noise) issues no host-device synchronisation."
    from imageddpo.policy import _step_noises
    from imageddpo.scheduler import ddim_step_with_logprob
    policy = I2IDDPOStableDiffusionPipeline(tiny_pipeline().to("cuda"))
    policy.scheduler.set_timesteps(10)
    timesteps = policy.scheduler.timesteps[4:].to("cuda")
    latents = torch.randn(2, 4, 8, 8, device="cuda")
    cond = policy.encode_prompts(["a photo"] * 2, 1.0)
    noises = _step_noises(latents.shape, len(timesteps), torch.Generator().manual_seed(0), "cuda", latents.dtype)
    with torch.no_grad():  # a warm-up step caches the alpha table on the device
        ddim_step_with_logprob(policy.scheduler, latents, timesteps[0], latents, eta=1.0, variance_noise=noises[0])
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.no_grad():
            for k, t in enumerate(timesteps):
                noise_pred = policy.predict_noise(latents, t, cond)
                latents = ddim_step_with_logprob(policy.scheduler, noise_pred, t, latents, eta=1.0, variance_noise=noises[k]).prev_sample
    finally: torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(latents).all()

@pytest.mark.gpu
@pytest.mark.parametrize("objective", ["ppo", "nft"])
def test_sdxl_fp16_training_keeps_its_vae_in_float32(tmp_path, objective):
    "The tiny SDXL under fp16: the VAE (force_upcast) stays float32, the text encoders and UNet run fp16, weights move."
    from imageddpo import tiny_sdxl_pipeline
    config = ImageDDPOConfig(mixed_precision="fp16", sample_num_steps=10, noise_strength=0.5, sample_guidance_scale=5.0,
                             sample_batch_size=4, train_batch_size=2, num_epochs=2, train_objective=objective,
                             sample_group_size=2 if objective != "ppo" else 1, train_learning_rate=3e-3, output_dir=str(tmp_path))
    prompt_function = lambda: ("a photo", torch.rand(3, 64, 64), {})
    reward = lambda images, prompts, metadata: images.float().mean(dim=(1, 2, 3))
    trainer = ImageDDPOTrainer(config, reward, prompt_function, tiny_sdxl_pipeline())
    before = {k: v.detach().clone() for k, v in trainer._trainable_state().items()}
    trainer.train()
    after = trainer._trainable_state()
    assert all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in after), "the weights must move"
    pipe = trainer.sd_pipeline
    assert pipe.vae.dtype == torch.float32 and pipe.text_encoder_2.dtype == torch.float16 and pipe.unet.dtype == torch.float16
