"""The PPO objective against trl==0.21.0's `DDPOTrainer.calculate_loss`, run on the same samples.

At noise_strength = 1.0 an image-to-image rollout is a text-to-image one, so TRL's loss applies as is:
we call TRL's own method (unbound, with a minimal stand-in for the trainer it reads `config`,
`autocast`, `sd_pipeline` and `loss` from) and compare loss, diagnostics and UNet gradients with ours."""
import contextlib, types

import pytest, torch
from trl import DDPOConfig
from trl.models.modeling_sd_base import DefaultDDPOStableDiffusionPipeline
from trl.trainer.ddpo_trainer import DDPOTrainer

from imageddpo.pipeline import I2IDDPOStableDiffusionPipeline
from imageddpo.pocket import tiny_pipeline
from imageddpo.ppo import ppo_clip_loss
from imageddpo.scheduler import ddim_step_with_logprob

PROMPTS = ["a handwritten digit 3", "a photo", "a digit 7", "a handwritten digit 0"]

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    tiny_pipeline().save_pretrained(path)
    return str(path)

def perturb(unet, seed):
    "Move the weights off the sampling policy, identically for both copies, so ratios differ from 1."
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in unet.parameters(): p.add_(0.02 * torch.randn(p.shape, generator=g))

@pytest.mark.parametrize("guidance_scale", [1.0, 5.0])
def test_loss_diagnostics_and_gradients_match_trl(checkpoint, guidance_scale):
    ours = I2IDDPOStableDiffusionPipeline(checkpoint, use_lora=False)
    theirs = DefaultDDPOStableDiffusionPipeline(checkpoint, use_lora=False)
    out = ours.rollout(torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0)), PROMPTS, noise_strength=1.0,
                       num_inference_steps=10, guidance_scale=guidance_scale, eta=1.0, generator=torch.Generator().manual_seed(0))
    perturb(ours.unet, 1); perturb(theirs.unet, 1)
    config = DDPOConfig(sample_guidance_scale=guidance_scale, sample_eta=1.0, train_cfg=guidance_scale > 1,
                        train_clip_range=0.05, train_adv_clip_max=2.0, log_with=None)
    trainer = types.SimpleNamespace(config=config, autocast=contextlib.nullcontext, sd_pipeline=theirs)
    trainer.loss = lambda *args: DDPOTrainer.loss(trainer, *args)
    theirs.scheduler.set_timesteps(10); ours.scheduler.set_timesteps(10)
    embeds = out.conditioning.prompt_embeds if guidance_scale <= 1 else torch.cat([out.conditioning.negative_prompt_embeds, out.conditioning.prompt_embeds])
    advantages = torch.tensor([2.5, -1.0, 0.3, -3.0])
    clipfracs, errors = [], []
    for k in range(out.timesteps.shape[1]):
        t, x, x_next, old = out.timesteps[:, k], out.latents[:, k], out.latents[:, k + 1], out.log_probs[:, k]
        ours.unet.zero_grad(); theirs.unet.zero_grad()
        noise_pred = ours.predict_noise(x, t, out.conditioning)
        log_prob = ddim_step_with_logprob(ours.scheduler, noise_pred, t, x, eta=1.0, prev_sample=x_next).log_prob
        mine = ppo_clip_loss(log_prob, old, advantages, clip_range=0.05, adv_clip_max=2.0)
        loss, approx_kl, clipfrac = DDPOTrainer.calculate_loss(trainer, x, t, x_next, old, advantages, embeds)
        mine.loss.backward(); loss.backward()
        assert abs(mine.loss.item() - loss.item()) <= 1e-5
        assert abs(mine.approx_kl.item() - approx_kl.item()) <= 1e-5 and mine.clipfrac.item() == clipfrac.item()
        worst = max((a.grad - b.grad).abs().max().item()
                    for a, b in zip(ours.unet.parameters(), theirs.unet.parameters()) if a.grad is not None)
        assert worst <= 1e-5, f"step {k}: gradients differ by {worst}"
        clipfracs.append(mine.clipfrac.item())
        errors.append((abs(mine.loss.item() - loss.item()), worst))
    assert 0 < max(clipfracs) and min(clipfracs) < 1, "the comparison must exercise both clipped and unclipped ratios"
    print(f"guidance {guidance_scale}: max |loss diff| {max(e[0] for e in errors):.1e}, "
          f"max |grad diff| {max(e[1] for e in errors):.1e}, clipfracs {clipfracs}")
