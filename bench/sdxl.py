"""Stable Diffusion XL at its real shapes: samples/s and peak GPU memory of DDPO sampling and training at 1024 px.

As bench/sd15.py, whose machinery this uses: the UNet (2.6B parameters), both text encoders and the VAE are built from
SDXL base's configurations with random weights (nothing is downloaded; compute and memory are the real model's),
with the pocket model's tokenizer for both encoders. Each configuration (precision, LoRA or full fine-tuning,
gradient checkpointing, train batch size) runs in a fresh process: one warm-up epoch, then the median of the timed
epochs, and torch's peak allocation. Train batch 1 is the setting for a 24 GB card, 4 for an 80 GB one. Plus our
rollout against diffusers' `StableDiffusionXLImg2ImgPipeline` at 1024 px in fp16.

    python bench/sdxl.py --out sdxl.json          # needs CUDA
    python bench/sdxl.py --smoke                  # CPU: a narrow copy at 64 px, to check the code path
"""
import sys

import torch
import sd15

def sdxl_pipeline(device="cpu", size:int=1024, width_divisor:int=1):
    "A StableDiffusionXLPipeline with SDXL base's architecture (random weights) on `device`; `width_divisor` narrows it."
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    from imageddpo import pocket_pipeline
    w = lambda channels: tuple(c // width_divisor for c in channels)
    smoke = width_divisor > 1
    with torch.device(device):
        unet = UNet2DConditionModel(
            sample_size=size // 8, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=w((320, 640, 1280)),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 1, 2) if smoke else (1, 2, 10), attention_head_dim=(2, 4, 8) if smoke else (5, 10, 20),
            use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256 // width_divisor,
            projection_class_embeddings_input_dim=6 * (256 // width_divisor) + 1280 // width_divisor,
            cross_attention_dim=2048 // width_divisor, norm_num_groups=32 // (2 if smoke else 1))
        vae = sd15.sd15_pipeline(device, size, width_divisor).vae  # SDXL's VAE has SD's architecture
        vae.register_to_config(scaling_factor=0.13025, force_upcast=True)
        clip = lambda hidden, layers, heads, projection: dict(
            vocab_size=49408, hidden_size=hidden // width_divisor, intermediate_size=4 * hidden // width_divisor,
            num_hidden_layers=layers if not smoke else 2, num_attention_heads=heads if not smoke else 4,
            max_position_embeddings=77, projection_dim=projection // width_divisor)
        text_encoder = CLIPTextModel(CLIPTextConfig(**clip(768, 12, 12, 768), hidden_act="quick_gelu"))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**clip(1280, 32, 20, 1280), hidden_act="gelu"))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    tokenizer = pocket_pipeline().tokenizer
    return StableDiffusionXLPipeline(unet=unet, vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
                                     tokenizer_2=tokenizer, scheduler=scheduler, add_watermarker=False)

# name -> trainer settings (a train_batch_size here overrides the workload's)
CONFIGS = {
    "LoRA fp16, train batch 1 (24 GB)":            dict(use_lora=True, mixed_precision="fp16", train_batch_size=1),
    "LoRA bf16, train batch 1 (24 GB)":            dict(use_lora=True, mixed_precision="bf16", train_batch_size=1),
    "LoRA fp16 grad-ckpt, train batch 1 (24 GB)":  dict(use_lora=True, mixed_precision="fp16", train_batch_size=1,
                                                       gradient_checkpointing=True),
    "LoRA fp16, train batch 4 (80 GB)":            dict(use_lora=True, mixed_precision="fp16", train_batch_size=4),
    "LoRA bf16 grad-ckpt, train batch 4 (80 GB)":  dict(use_lora=True, mixed_precision="bf16", train_batch_size=4,
                                                       gradient_checkpointing=True),
    "full bf16 grad-ckpt, train batch 1 (80 GB)":  dict(use_lora=False, mixed_precision="bf16", train_batch_size=1,
                                                       gradient_checkpointing=True),
}
SMOKE_CONFIGS = sd15.SMOKE_CONFIGS  # the smoke run checks the code path with the same two configurations

def workload_for(smoke:bool) -> dict:
    "The epoch every configuration runs: 20 steps at strength 0.5 (K = 10, 5 trained), guidance 5, 8 samples."
    return dict(sample_num_steps=4 if smoke else 20, noise_strength=0.5, train_timestep_fraction=0.5, sample_guidance_scale=5.0,
                sample_batch_size=2 if smoke else 4, sample_num_batches_per_epoch=1 if smoke else 2,
                train_batch_size=2, prompt="a photograph of a cat")

# this family's part of bench/sd15.py's machinery (it runs every configuration and the command line)
NAME, build, SIZE, EPOCHS = "sdxl", sdxl_pipeline, 1024, 2
ROLLOUT = dict(batch=2, guidance=5.0, dtype="float16", repeats=3)  # our rollout vs diffusers' SDXL img2img on the same components

if __name__ == "__main__": sd15.main(sys.modules[__name__])
