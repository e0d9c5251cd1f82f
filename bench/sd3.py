"""SD3.5-medium at its real shapes: samples/s and peak GPU memory of flow-model RL (Flow-GRPO's SDE, PPO and NFT).

As bench/sdxl.py: the MMDiT transformer (2.5B parameters, 24 layers, the first 13 with dual attention, RMS q/k norm),
CLIP-L and CLIP-G and the 16-channel VAE are built from SD3.5-medium's configurations with random weights, without
T5 (SD3 runs without it: its 256 tokens are zeros; the transformer's cost is the same, T5-XXL's own 4.7B parameters
and their memory are left out). Each configuration runs in a fresh process: one warm-up epoch, then the median of
the timed epochs, and torch's peak allocation; 20 steps at strength 0.6 with Flow-GRPO's noise level 0.7. Plus our
rollout against diffusers' `StableDiffusion3Img2ImgPipeline` (its Euler step: ours at noise level 0).

    python bench/sd3.py --out sd3.json            # needs CUDA
    python bench/sd3.py --smoke                   # CPU: a narrow copy at 64 px, to check the code path
"""
import sys

import torch
import sd15

def sd3_pipeline(device="cpu", size:int=1024, width_divisor:int=1):
    "A StableDiffusion3Pipeline with SD3.5-medium's architecture (random weights, no T5) on `device`; `width_divisor` narrows it."
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection
    from imageddpo import pocket_pipeline
    smoke = width_divisor > 1
    with torch.device(device):
        transformer = SD3Transformer2DModel(
            sample_size=size // 8, patch_size=2, in_channels=16, out_channels=16, num_layers=2 if smoke else 24,
            attention_head_dim=16 if smoke else 64, num_attention_heads=4 if smoke else 24,  # caption projection = heads x head dim
            joint_attention_dim=4096 // width_divisor, caption_projection_dim=64 if smoke else 1536,
            pooled_projection_dim=2048 // width_divisor, pos_embed_max_size=max(size // 16, 8) if smoke else 384,
            dual_attention_layers=() if smoke else tuple(range(13)), qk_norm="rms_norm")
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, layers_per_block=1 if smoke else 2, sample_size=size,
                            block_out_channels=(32, 64, 64, 64) if smoke else (128, 256, 512, 512),
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            norm_num_groups=32, scaling_factor=1.5305, shift_factor=0.0609,
                            use_quant_conv=False, use_post_quant_conv=False)
        clip = lambda hidden, layers, heads: CLIPTextModelWithProjection(CLIPTextConfig(
            vocab_size=49408, hidden_size=hidden // width_divisor, intermediate_size=4 * hidden // width_divisor,
            num_hidden_layers=2 if smoke else layers, num_attention_heads=4 if smoke else heads, max_position_embeddings=77,
            projection_dim=hidden // width_divisor, hidden_act="gelu"))
        text_encoder, text_encoder_2 = clip(768, 12, 12), clip(1280, 32, 20)
    tokenizer = pocket_pipeline().tokenizer
    return StableDiffusion3Pipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae,
                                    text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer,
                                    text_encoder_3=None, tokenizer_3=None)

# name -> trainer settings (a train_batch_size here overrides the workload's)
CONFIGS = {
    "PPO, LoRA bf16, train batch 1":               dict(use_lora=True, mixed_precision="bf16", train_batch_size=1),
    "PPO, LoRA bf16 grad-ckpt, train batch 4":     dict(use_lora=True, mixed_precision="bf16", train_batch_size=4,
                                                       gradient_checkpointing=True),
    "NFT (groups of 8), LoRA bf16, train batch 1": dict(use_lora=True, mixed_precision="bf16", train_batch_size=1,
                                                       train_objective="nft", sample_group_size=8),
    "PPO, full bf16 grad-ckpt, train batch 1":     dict(use_lora=False, mixed_precision="bf16", train_batch_size=1,
                                                       gradient_checkpointing=True),
}
SMOKE_CONFIGS = sd15.SMOKE_CONFIGS  # the smoke run checks the code path with the same two configurations

def workload_for(smoke:bool) -> dict:
    "The epoch every configuration runs: 20 steps at strength 0.6 (K = 12, 6 trained), noise level 0.7, guidance 4.5, 8 samples."
    return dict(sample_num_steps=4 if smoke else 20, noise_strength=0.6, train_timestep_fraction=0.5, sample_guidance_scale=4.5,
                sample_eta=0.7, sample_batch_size=2 if smoke else 8, sample_num_batches_per_epoch=1,
                train_batch_size=2, prompt="a photograph of a cat")

# this family's part of bench/sd15.py's machinery (it runs every configuration and the command line)
NAME, build, SIZE, EPOCHS = "sd3", sd3_pipeline, 1024, 2
ROLLOUT = dict(batch=2, guidance=4.5, dtype="bfloat16", repeats=3)  # our rollout vs diffusers' SD3 img2img on the same components

if __name__ == "__main__": sd15.main(sys.modules[__name__])
