"""`I2IDDPOStableDiffusionPipeline.rollout` against diffusers' `StableDiffusionImg2ImgPipeline`, run on the
same components, inputs and generator seed; plus the rollout's recorded log-probs and its cost in model calls."""
import numpy as np, PIL.Image, pytest, torch
from diffusers import StableDiffusionImg2ImgPipeline

from imageddpo.pipeline import I2IDDPOStableDiffusionPipeline
from imageddpo.pocket import pocket_pipeline, tiny_pipeline
from imageddpo.scheduler import ddim_step_with_logprob

PROMPTS = ["a handwritten digit 3", "", "a photo of a digit seven", "a digit"]

@pytest.fixture(scope="module")
def policy():
    return I2IDDPOStableDiffusionPipeline(tiny_pipeline(), use_lora=False)

@pytest.fixture(scope="module")
def reference(policy):
    pipe = StableDiffusionImg2ImgPipeline(**policy.sd_pipeline.components)
    pipe.set_progress_bar_config(disable=True)
    return pipe

@pytest.fixture(scope="module")
def images():
    return torch.rand(len(PROMPTS), 3, 64, 64, generator=torch.Generator().manual_seed(0))

def gen(seed=0): return torch.Generator().manual_seed(seed)

@pytest.mark.parametrize("noise_strength", [0.2, 0.4, 0.75, 1.0])
@pytest.mark.parametrize("guidance_scale", [1.0, 7.5])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_rollout_images_equal_diffusers_img2img(policy, reference, images, noise_strength, guidance_scale, eta):
    kw = dict(num_inference_steps=20, guidance_scale=guidance_scale, eta=eta)
    ours = policy.rollout(images, PROMPTS, noise_strength=noise_strength, generator=gen(), **kw)
    theirs = reference(prompt=PROMPTS, image=images, strength=noise_strength, generator=gen(), output_type="pt", **kw).images
    assert (ours.images - theirs).abs().max().item() <= 1e-4
    assert ours.timesteps.shape[1] == min(int(20 * noise_strength), 20)

def test_per_sample_generators_equal_diffusers(policy, reference, images):
    kw = dict(num_inference_steps=10, guidance_scale=3.0, eta=1.0)
    ours = policy.rollout(images, PROMPTS, noise_strength=0.6, generator=[gen(i) for i in range(4)], **kw)
    theirs = reference(prompt=PROMPTS, image=images, strength=0.6, generator=[gen(i) for i in range(4)],
                       output_type="pt", **kw).images
    assert (ours.images - theirs).abs().max().item() <= 1e-4

@pytest.mark.parametrize("guidance_scale", [1.0, 7.5])
def test_each_recorded_log_prob_is_recomputed_from_its_pair(policy, images, guidance_scale):
    out = policy.rollout(images, PROMPTS, noise_strength=0.75, num_inference_steps=20, guidance_scale=guidance_scale,
                         eta=1.0, generator=gen())
    K = out.timesteps.shape[1]
    assert out.latents.shape[1] == K + 1 and out.log_probs.shape == (4, K) and out.log_probs.dtype == torch.float32
    policy.scheduler.set_timesteps(20)
    for k in range(K):
        with torch.no_grad():
            noise_pred = policy.predict_noise(out.latents[:, k], out.timesteps[:, k], out.conditioning)
        step = ddim_step_with_logprob(policy.scheduler, noise_pred, out.timesteps[:, k], out.latents[:, k], eta=1.0,
                                      prev_sample=out.latents[:, k + 1])
        assert (step.log_prob - out.log_probs[:, k]).abs().max().item() <= 1e-5

def test_guidance_at_most_one_uses_the_prompts_own_conditioning(policy, images):
    out = policy.rollout(images, PROMPTS, noise_strength=0.4, num_inference_steps=10, guidance_scale=1.0, generator=gen())
    expected = policy.sd_pipeline.encode_prompt(PROMPTS, "cpu", 1, False)[0]
    assert torch.equal(out.conditioning.prompt_embeds, expected) and out.conditioning.negative_prompt_embeds is None
    null = policy.sd_pipeline.encode_prompt([""], "cpu", 1, False)[0]
    assert torch.allclose(out.conditioning.prompt_embeds[1], null[0]) and not torch.allclose(out.conditioning.prompt_embeds[0], null[0])

def test_guidance_rescale_changes_the_policy_and_is_replayed(policy, images):
    kw = dict(noise_strength=0.5, num_inference_steps=10, guidance_scale=7.5, eta=1.0)
    plain = policy.rollout(images, PROMPTS, generator=gen(), **kw)
    rescaled = policy.rollout(images, PROMPTS, generator=gen(), guidance_rescale=0.7, **kw)
    assert not torch.allclose(plain.images, rescaled.images)
    with torch.no_grad(): assert (policy.replay_log_probs(rescaled) - rescaled.log_probs).abs().max() <= 1e-5

@pytest.mark.parametrize("guidance_scale,per_call_batch", [(1.0, 4), (7.5, 8)])
def test_rollout_costs_k_unet_calls_one_encode_one_decode(images, guidance_scale, per_call_batch):
    policy = I2IDDPOStableDiffusionPipeline(tiny_pipeline())
    calls = {"unet": [], "encode": 0, "decode": 0}
    policy.unet.register_forward_hook(lambda m, args, out: calls["unet"].append(args[0].shape[0]))
    encode, decode = policy.vae.encode, policy.vae.decode
    def counting(name, fn):
        def wrapped(*a, **k): calls[name] += 1; return fn(*a, **k)
        return wrapped
    policy.vae.encode, policy.vae.decode = counting("encode", encode), counting("decode", decode)
    out = policy.rollout(images, PROMPTS, noise_strength=0.4, num_inference_steps=20, guidance_scale=guidance_scale,
                         generator=gen())
    K = out.timesteps.shape[1]
    assert calls["unet"] == [per_call_batch] * K and calls["encode"] == 1 and calls["decode"] == 1

def test_input_formats_give_the_same_rollout(policy):
    pixels = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    as_tensor = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    forms = {"pil": [PIL.Image.fromarray(p) for p in pixels], "numpy_uint8": list(pixels),
             "numpy_float": [p.astype(np.float32) / 255 for p in pixels], "bchw": as_tensor, "chw_list": list(as_tensor)}
    outs = {name: policy.rollout(x, "a digit", noise_strength=0.4, num_inference_steps=10, generator=gen()).images
            for name, x in forms.items()}
    for name, img in outs.items(): assert (img - outs["bchw"]).abs().max() <= 1e-6, name

def test_loads_a_locally_saved_checkpoint_like_a_hub_id(tmp_path):
    "A real checkpoint directory (the trained pocket model, saved locally) loads by path like a hub id."
    pocket_pipeline().save_pretrained(tmp_path)
    from_dir = I2IDDPOStableDiffusionPipeline(str(tmp_path), pretrained_model_revision="main", use_lora=True)
    from_obj = I2IDDPOStableDiffusionPipeline(pocket_pipeline(), use_lora=True)
    digits = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a = from_dir.rollout(digits, PROMPTS, noise_strength=0.5, num_inference_steps=10, eta=0.0, generator=gen())
    b = from_obj.rollout(digits, PROMPTS, noise_strength=0.5, num_inference_steps=10, eta=0.0, generator=gen())
    assert (a.images - b.images).abs().max() <= 1e-6
    assert from_dir.sd_pipeline.safety_checker is None and type(from_dir.scheduler).__name__ == "DDIMScheduler"

def test_lora_weights_round_trip_through_diffusers_load_lora_weights(tmp_path, images):
    policy = I2IDDPOStableDiffusionPipeline(tiny_pipeline(), use_lora=True, lora_rank=8, lora_alpha=16)
    with torch.no_grad():
        for p in policy.trainable_parameters(): p.add_(0.05 * torch.randn_like(p))
    kw = dict(noise_strength=0.5, num_inference_steps=10, eta=0.0)
    trained = policy.rollout(images, PROMPTS, generator=gen(), **kw)
    policy.save_pretrained(tmp_path)
    base = tiny_pipeline(); base.load_lora_weights(tmp_path)
    reloaded = I2IDDPOStableDiffusionPipeline(base, use_lora=False).rollout(images, PROMPTS, generator=gen(), **kw)
    assert (reloaded.images - trained.images).abs().max() <= 1e-5
    untrained = I2IDDPOStableDiffusionPipeline(tiny_pipeline(), use_lora=False).rollout(images, PROMPTS, generator=gen(), **kw)
    assert (untrained.images - trained.images).abs().max() > 1e-3

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_rollout_on_cuda_replays(dtype, images):
    policy = I2IDDPOStableDiffusionPipeline(tiny_pipeline().to("cuda", dtype))
    out = policy.rollout(images, PROMPTS, noise_strength=0.6, num_inference_steps=20, guidance_scale=5.0,
                         generator=torch.Generator("cuda").manual_seed(0))
    assert out.latents.dtype == dtype and out.log_probs.dtype == torch.float32
    with torch.no_grad(): assert (policy.replay_log_probs(out) - out.log_probs).abs().max() <= 1e-3
