"""FLUX.1 Kontext [dev] at its real shapes: samples/s and peak GPU memory of edit RL with Flow-GRPO's SDE (PPO, NFT).

Kontext is FLUX.1 [dev]'s 12B transformer (bench/flux.py builds it: random weights, bf16 on the GPU) reading the
reference image's tokens after the generated image's, so at 1024 px every transformer call runs on twice FLUX's image
sequence (4096 + 4096 tokens) and the training forward and backward too. Edits start from pure noise: 20 steps at
strength 1 (K = 20, 10 trained), noise level 0.7, guidance 2.5 (the guidance embedding: one call per step). Each
configuration runs in a fresh process: one warm-up epoch, then the median of the timed epochs, and torch's peak
allocation. Plus our rollout against diffusers' `FluxKontextPipeline` (its Euler step: ours at noise level 0).

Full fine-tuning is not run on one card (bench/flux.py's reason: ~190 GB of float32 weights, gradients and Adam).

    python bench/flux_kontext.py --out flux_kontext.json   # needs CUDA
    python bench/flux_kontext.py --smoke                   # CPU: a narrow copy at 64 px, to check the code path
"""
import sys

import flux, sd15

def kontext_pipeline(device="cpu", size:int=1024, width_divisor:int=1):
    "A FluxKontextPipeline with FLUX.1 Kontext [dev]'s architecture (bench/flux.py's random FLUX.1 [dev] modules) on `device`."
    from diffusers import FluxKontextPipeline
    components = flux.flux_pipeline(device, size, width_divisor).components
    return FluxKontextPipeline(**{k: v for k, v in components.items() if k not in ("image_encoder", "feature_extractor")})

CONFIGS = {
    "PPO, LoRA bf16, 1024 px, train batch 1":           dict(use_lora=True, mixed_precision="bf16", train_batch_size=1),
    "PPO, LoRA bf16 grad-ckpt, 1024 px, train batch 4": dict(use_lora=True, mixed_precision="bf16", train_batch_size=4,
                                                             gradient_checkpointing=True),
    "NFT (groups of 4), LoRA bf16 grad-ckpt, 1024 px, train batch 1": dict(use_lora=True, mixed_precision="bf16", train_batch_size=1,
                                                                           gradient_checkpointing=True, train_objective="nft",
                                                                           sample_group_size=4),
    "PPO, full bf16 grad-ckpt, 1024 px, train batch 1": dict(use_lora=False, mixed_precision="bf16", train_batch_size=1,
                                                             gradient_checkpointing=True),
}
SMOKE_CONFIGS = sd15.SMOKE_CONFIGS  # the smoke run checks the code path with the same two configurations
does_not_fit = flux.does_not_fit

def workload_for(smoke:bool) -> dict:
    "The epoch every configuration runs: 20 steps from pure noise (K = 20, 10 trained), noise level 0.7, guidance 2.5, 4 samples."
    return dict(sample_num_steps=4 if smoke else 20, noise_strength=1.0, train_timestep_fraction=0.5, sample_guidance_scale=2.5,
                sample_eta=0.7, sample_batch_size=2 if smoke else 4, sample_num_batches_per_epoch=1,
                train_batch_size=2, prompt="make it a watercolour painting")

# this family's part of bench/sd15.py's machinery (it runs every configuration and the command line)
NAME, build, SIZE, EPOCHS = "flux-kontext", kontext_pipeline, 1024, 2
# The inputs are square: at 1024 px Kontext's preferred resolution is the input's own size, so auto_resize would change
# nothing there; off, the smoke run's 64 px references stay 64 px instead of growing to 1024.
POLICY_KWARGS = dict(auto_resize=False)
ROLLOUT = dict(batch=1, guidance=2.5, dtype="bfloat16", repeats=3, strengths=(1.0,))  # vs FluxKontextPipeline, from pure noise

if __name__ == "__main__": sd15.main(sys.modules[__name__])
