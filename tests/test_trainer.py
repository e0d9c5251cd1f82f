"""`ImageDDPOTrainer` end to end: on-policy replay, the loss against trl==0.21.0, learning, exact resume,
asynchronous rewards, and LoRA weights that diffusers' img2img pipeline loads."""
import contextlib, random, threading, time, types

import numpy as np
import pytest, torch
from diffusers import StableDiffusionImg2ImgPipeline

from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, pocket_pipeline, tiny_pipeline
from imageddpo.digits import corrupt, digits_dataset
from imageddpo.trainer import ImageDDPOTrainer

PROMPT = "a handwritten digit 3"

def config(tmp_path, **overrides) -> ImageDDPOConfig:
    base = dict(mixed_precision="no", sample_num_steps=10, noise_strength=0.5, sample_guidance_scale=1.0,
                sample_batch_size=4, sample_num_batches_per_epoch=2, train_batch_size=2, num_epochs=4,
                train_learning_rate=3e-3, train_clip_range=0.2, output_dir=str(tmp_path))
    return ImageDDPOConfig(**{**base, **overrides})

def noise_prompts(prompt=PROMPT):
    "Inputs drawn from the global RNGs (torch and Python's), so resuming must restore them."
    return lambda: (prompt, torch.rand(3, 64, 64) * 0.5 + 0.1 * random.random(), {"n": random.randint(0, 9)})

def brighter(images, prompts, metadata, input_images):
    return 10 * (images.mean(dim=(1, 2, 3)) - input_images.to(images.device).mean(dim=(1, 2, 3)))

def trainer_for(cfg, pipe=None, prompt_function=None, reward=brighter, **kw):
    torch.manual_seed(0); random.seed(0)
    pipe = pipe or I2IDDPOStableDiffusionPipeline(tiny_pipeline(), use_lora=getattr(cfg, "use_lora", True))
    return ImageDDPOTrainer(cfg, reward, prompt_function or noise_prompts(), pipe, **kw)

# --- on-policy: before any update, replaying the sampled steps gives the stored log-probs -------------------------

@pytest.mark.parametrize("guidance_scale", [1.0, 5.0])
def test_replay_is_on_policy_before_the_first_update(tmp_path, guidance_scale):
    trainer = trainer_for(config(tmp_path, sample_guidance_scale=guidance_scale, train_cfg=True))
    sampled = trainer.sample_and_reward(epoch=0, noise_strength=0.5)
    samples, (advantages, _) = sampled.samples, trainer.compute_advantages(sampled.samples, sampled.rewards)
    n, K = samples.log_probs.shape
    assert (n, K) == (8, 5) and (samples.conditioning.negative_prompt_embeds is not None) == (guidance_scale > 1)
    with torch.no_grad():
        worst = max(trainer.compute_loss(samples, advantages, torch.arange(n), torch.full((n,), k))[1]["max_abs_log_ratio"].item()
                    for k in range(K))
    assert worst <= 1e-5, f"log-ratio {worst} at guidance {guidance_scale}: training would replay a different policy"
    print(f"guidance {guidance_scale}: max |log ratio| before the first update {worst:.1e}")

def test_first_inner_step_sees_ratio_one(tmp_path):
    "Through the real training loop: the first micro-step's diagnostics report no drift."
    trainer = trainer_for(config(tmp_path, train_batch_size=4, sample_guidance_scale=5.0))
    sampled = trainer.sample_and_reward(0, 0.5)
    advantages, _ = trainer.compute_advantages(sampled.samples, sampled.rewards)
    log = trainer.train_on_samples(sampled.samples, advantages, epoch=0, inner=0)
    assert log["max_abs_log_ratio"][0].item() <= 1e-5 and log["clipfrac"][0].item() == 0

# --- the loss and gradients against TRL's DDPOTrainer.calculate_loss (text-to-image: noise_strength = 1) ---------

@pytest.mark.parametrize("guidance_scale", [1.0, 5.0])
def test_trainer_loss_and_gradients_match_trl(tmp_path, guidance_scale):
    from trl import DDPOConfig
    from trl.models.modeling_sd_base import DefaultDDPOStableDiffusionPipeline
    from trl.trainer.ddpo_trainer import DDPOTrainer
    checkpoint = tmp_path/"tiny"; tiny_pipeline().save_pretrained(checkpoint)
    cfg = config(tmp_path/"run", noise_strength=1.0, use_lora=False, sample_guidance_scale=guidance_scale,
                 train_clip_range=0.05, train_adv_clip_max=2.0)
    ours = trainer_for(cfg, pipe=I2IDDPOStableDiffusionPipeline(str(checkpoint), use_lora=False))
    theirs = DefaultDDPOStableDiffusionPipeline(str(checkpoint), use_lora=False)
    samples = ours.sample_and_reward(0, 1.0).samples
    n, K = samples.log_probs.shape
    assert K == 10  # noise_strength 1: the whole schedule, from pure noise
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # move both copies off the sampling policy, identically, so ratios leave 1
        for a, b in zip(ours.sd_pipeline.unet.parameters(), theirs.unet.parameters()):
            noise = 0.02 * torch.randn(a.shape, generator=g); a.add_(noise); b.add_(noise)
    trl_config = DDPOConfig(sample_guidance_scale=guidance_scale, sample_eta=1.0, train_cfg=guidance_scale > 1,
                            train_clip_range=0.05, train_adv_clip_max=2.0, log_with=None)
    trl_trainer = types.SimpleNamespace(config=trl_config, autocast=contextlib.nullcontext, sd_pipeline=theirs)
    trl_trainer.loss = lambda *args: DDPOTrainer.loss(trl_trainer, *args)
    theirs.scheduler.set_timesteps(cfg.sample_num_steps); ours.sd_pipeline.scheduler.set_timesteps(cfg.sample_num_steps)
    advantages = torch.linspace(-3, 3, n)
    rows = torch.arange(n)
    worst_loss = worst_grad = 0.0
    clipfracs = []
    for j in range(4):
        steps = torch.randint(0, K, (n,), generator=g)  # per-sample timesteps, as training permutes them
        ours.sd_pipeline.unet.zero_grad(); theirs.unet.zero_grad()
        loss, info = ours.compute_loss(samples, advantages, rows, steps)
        embeds = (samples.conditioning.prompt_embeds if guidance_scale <= 1 else
                  torch.cat([samples.conditioning.negative_prompt_embeds, samples.conditioning.prompt_embeds]))
        trl_loss, approx_kl, clipfrac = DDPOTrainer.calculate_loss(
            trl_trainer, samples.latents[rows, steps], samples.timesteps[rows, steps], samples.latents[rows, steps + 1],
            samples.log_probs[rows, steps], advantages, embeds)
        loss.backward(); trl_loss.backward()
        worst_loss = max(worst_loss, abs(loss.item() - trl_loss.item()), abs(info["approx_kl"].item() - approx_kl.item()))
        assert info["clipfrac"].item() == clipfrac.item()
        worst_grad = max(worst_grad, max((a.grad - b.grad).abs().max().item() for a, b in
                                         zip(ours.sd_pipeline.unet.parameters(), theirs.unet.parameters()) if a.grad is not None))
        clipfracs.append(clipfrac.item())
    assert worst_loss <= 1e-5 and worst_grad <= 1e-5, (worst_loss, worst_grad)
    assert max(clipfracs) > 0, "the comparison must exercise clipped ratios"
    print(f"guidance {guidance_scale}: max |loss diff| {worst_loss:.1e}, max |grad diff| {worst_grad:.1e}")

# --- learning ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_reward_rises(tmp_path, seed):
    """The pocket model learns to brighten 4 corrupted digits (per-input advantages): held-out-noise evaluation
    and the training reward both rise over 10 CPU epochs."""
    images, labels = digits_dataset("train"); inputs = corrupt(images[:4], 1.0, 123)
    draws = iter(range(10**6))
    prompt_function = lambda: ("", inputs[next(draws) % 4], {})
    bright = lambda images, prompts, metadata: 10 * images.mean(dim=(1, 2, 3))
    cfg = config(tmp_path, seed=seed, noise_strength=0.6, sample_batch_size=16, train_batch_size=8, num_epochs=10,
                 train_learning_rate=1e-2, per_prompt_stat_tracking=True, per_prompt_stat_tracking_buffer_size=32,
                 per_prompt_stat_tracking_min_count=4, save_freq=100)
    pipe = I2IDDPOStableDiffusionPipeline(pocket_pipeline())
    def evaluate():  # the same 32 trajectories' noise before and after
        out = pipe.rollout(inputs.repeat(8, 1, 1, 1), "", noise_strength=0.6, num_inference_steps=10,
                           generator=torch.Generator().manual_seed(99))
        return bright(out.images, None, None).mean().item()
    before = evaluate()
    trainer = trainer_for(cfg, pipe=pipe, prompt_function=prompt_function, reward=bright)
    trainer.train()
    after, curve = evaluate(), [h["reward_mean"] for h in trainer.history]
    print(f"seed {seed}: evaluation {before:.3f} -> {after:.3f}; training reward {[round(r, 2) for r in curve]}")
    assert after > before + 0.05 and np.mean(curve[-3:]) > np.mean(curve[:3])

# --- exact resume --------------------------------------------------------------------------------------------------

def state_of(trainer):
    return ({k: v.detach().clone() for k, v in trainer._trainable_state().items()}, trainer.optimizer.state_dict(),
            trainer.stat_tracker.state_dict(), trainer.global_step,
            [{k: v for k, v in h.items() if not k.endswith("_s")} for h in trainer.history])

def test_four_epochs_equal_two_plus_resume_plus_two(tmp_path):
    cfg = dict(per_prompt_stat_tracking=True, per_prompt_stat_tracking_min_count=2, train_gradient_accumulation_steps=2)
    straight = trainer_for(config(tmp_path/"a", **cfg)); straight.train()
    first = trainer_for(config(tmp_path/"b", **cfg)); first.train(epochs=2)
    random.seed(12345); torch.manual_seed(12345)  # whatever the process did in between must not matter
    resumed = trainer_for(config(tmp_path/"b", resume_from="latest", **cfg))
    assert resumed.first_epoch == 2
    resumed.train()
    (wa, oa, sa, ga, ha), (wb, ob, sb, gb, hb) = state_of(straight), state_of(resumed)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), "trainable weights differ"
    for i in oa["state"]:
        for k, v in oa["state"][i].items(): assert torch.equal(torch.as_tensor(v), torch.as_tensor(ob["state"][i][k])), (i, k)
    assert (sa, ga, ha) == (sb, gb, hb) and ga == 4 * 2  # 4 epochs x (4 minibatches / accumulation 2)

# --- asynchronous rewards ------------------------------------------------------------------------------------------

def test_async_rewards_overlap_sampling_and_change_nothing(tmp_path):
    events = []
    def slow_reward(images, prompts, metadata, input_images):
        events.append(("reward", time.perf_counter(), threading.get_ident())); time.sleep(0.4)
        events.append(("reward done", time.perf_counter(), threading.get_ident()))
        return brighter(images, prompts, metadata, input_images)
    results = {}
    for flag in (False, True):
        events.clear()
        trainer = trainer_for(config(tmp_path/str(flag), async_reward_computation=flag, sample_num_batches_per_epoch=3),
                              reward=slow_reward)
        rollout = trainer.sd_pipeline.rollout
        def timed_rollout(*a, **k):
            events.append(("rollout", time.perf_counter(), threading.get_ident())); return rollout(*a, **k)
        trainer.sd_pipeline.rollout = timed_rollout
        sampled = trainer.sample_and_reward(0, 0.5)
        results[flag] = (sampled.rewards, sampled.samples.latents)
        if flag:  # batch 1 started sampling while batch 0's reward was still running, on another thread
            reward0 = next(t for e, t, _ in events if e == "reward")
            done0 = next(t for e, t, _ in events if e == "reward done")
            rollout1 = [t for e, t, _ in events if e == "rollout"][1]
            assert reward0 < rollout1 < done0
            assert {i for e, _, i in events if e == "reward"} != {threading.get_ident()}
    assert torch.equal(results[False][0], results[True][0]) and torch.equal(results[False][1], results[True][1])

# --- LoRA weights load into diffusers' img2img pipeline --------------------------------------------------------------

def test_saved_lora_loads_into_diffusers_img2img(tmp_path):
    trainer = trainer_for(config(tmp_path, train_learning_rate=3e-2, num_epochs=2))
    trainer.train()
    trainer.save_pretrained(tmp_path/"lora")
    base = tiny_pipeline()
    img2img = StableDiffusionImg2ImgPipeline(**base.components, requires_safety_checker=False)
    img2img.scheduler = trainer.sd_pipeline.scheduler.__class__.from_config(img2img.scheduler.config)
    img2img.set_progress_bar_config(disable=True)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    run = lambda pipe: pipe(PROMPT, image=image, strength=0.5, num_inference_steps=10, guidance_scale=1.0, eta=0.0,
                            output_type="pt", generator=torch.Generator().manual_seed(4)).images
    before = run(img2img)
    img2img.load_lora_weights(str(tmp_path/"lora"))
    after = run(img2img)
    ours = trainer.sd_pipeline.rollout(image, PROMPT, noise_strength=0.5, num_inference_steps=10, eta=0.0,
                                       generator=torch.Generator().manual_seed(4)).images
    assert (after - before).abs().max() > 1e-3, "the LoRA must change the output"
    assert (after - ours).abs().max() <= 1e-4, "diffusers with the loaded LoRA must produce the trained policy's images"

# --- the original package's call: TRL's DDPOConfig and the noise_strength keyword ------------------------------------

def test_trl_config_and_seed_keywords(tmp_path, monkeypatch):
    from trl import DDPOConfig
    monkeypatch.chdir(tmp_path)  # TRL's config has no output_dir: ours defaults to ./imageddpo-output
    trl_config = DDPOConfig(mixed_precision="no", log_with=None, sample_num_steps=10, sample_guidance_scale=1.0,
                            sample_batch_size=2, train_batch_size=2, sample_num_batches_per_epoch=1)
    calls = []
    seed_style = trainer_for(trl_config, debug_hook=lambda pipe, s, step: calls.append((s, step)))
    assert seed_style.config.noise_strength == 0.2  # the original package's default when none is given
    explicit = trainer_for(trl_config, noise_strength=0.6)
    assert explicit.config.noise_strength == 0.6 and explicit.config.sample_num_steps == 10
    seed_style.step(0, 0)
    assert calls == [(0.2, 0)] and (tmp_path/"imageddpo-output"/"checkpoints"/"checkpoint-1").is_dir()
