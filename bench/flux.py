"""FLUX.1 [dev] at its real shapes: samples/s and peak GPU memory of image-to-image RL with Flow-GRPO's SDE (PPO, NFT).

The 12B-parameter transformer (19 double- and 38 single-stream blocks, guidance embedding), CLIP-L, T5-XXL (4.7B) and
the 16-channel VAE are built from FLUX.1 [dev]'s configurations with random weights, directly in bf16 on the GPU (a
float32 copy of the transformer alone would take 48 GB). Each configuration runs in a fresh process: one warm-up
epoch, then the median of the timed epochs, and torch's peak allocation; 20 steps at strength 0.6 with Flow-GRPO's
noise level 0.7 and guidance 3.5 (the guidance embedding: one transformer call per step), at 512 and 1024 px. Plus
our rollout against diffusers' `FluxImg2ImgPipeline` (its Euler step: ours at noise level 0).

A configuration that cannot fit the card is not run and not shrunk: its row says what it would need. Full
fine-tuning trains float32 weights with Adam: 12B x (4 weight + 4 gradient + 8 Adam) bytes = 190 GB before
activations, more than any single card; the LoRA rows are what fits.

    python bench/flux.py --out flux.json          # needs CUDA
    python bench/flux.py --smoke                  # CPU: a narrow copy at 64 px, to check the code path
"""
import contextlib, sys

import torch
import sd15

@contextlib.contextmanager
def default_dtype(dtype:torch.dtype):
    "Modules built inside get `dtype` weights (the real model is built in bf16: its float32 copy would not fit beside T5)."
    before = torch.get_default_dtype(); torch.set_default_dtype(dtype)
    try: yield
    finally: torch.set_default_dtype(before)

def flux_pipeline(device="cpu", size:int=1024, width_divisor:int=1):
    "A FluxPipeline with FLUX.1 [dev]'s architecture (random weights) on `device`, bf16 on CUDA; `width_divisor` narrows it."
    from diffusers import AutoencoderKL, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel
    from imageddpo import pocket_pipeline
    from imageddpo.pocket import flux_scheduler, tiny_t5
    smoke = width_divisor > 1
    with torch.device(device), default_dtype(torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32):
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=64, num_layers=1 if smoke else 19, num_single_layers=2 if smoke else 38,
            attention_head_dim=16 if smoke else 128, num_attention_heads=2 if smoke else 24,
            joint_attention_dim=4096 // width_divisor, pooled_projection_dim=768 // width_divisor, guidance_embeds=True,
            axes_dims_rope=(4, 6, 6) if smoke else (16, 56, 56))
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, layers_per_block=1 if smoke else 2, sample_size=size,
                            block_out_channels=(32, 64, 64, 64) if smoke else (128, 256, 512, 512),
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            norm_num_groups=32, scaling_factor=0.3611, shift_factor=0.1159,
                            use_quant_conv=False, use_post_quant_conv=False)
        text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768 // width_divisor,
                                                    intermediate_size=3072 // width_divisor, num_hidden_layers=2 if smoke else 12,
                                                    num_attention_heads=4 if smoke else 12, max_position_embeddings=77,
                                                    projection_dim=768 // width_divisor, hidden_act="quick_gelu"))
        t5 = T5EncoderModel(T5Config(vocab_size=32128, d_model=4096 // width_divisor, d_ff=10240 // width_divisor,
                                     d_kv=16 if smoke else 64, num_layers=2 if smoke else 24, num_heads=4 if smoke else 64,
                                     feed_forward_proj="gated-gelu"))
    # the tokenizers' vocabularies are small (offline); the encoders' cost does not depend on them
    return FluxPipeline(transformer=transformer, scheduler=flux_scheduler(guidance=True), vae=vae, text_encoder=text_encoder,
                        tokenizer=pocket_pipeline().tokenizer, text_encoder_2=t5, tokenizer_2=tiny_t5()[0])

# name -> trainer settings (a train_batch_size here overrides the workload's; `size` the image side)
CONFIGS = {
    "PPO, LoRA bf16, 512 px, train batch 1":            dict(use_lora=True, mixed_precision="bf16", train_batch_size=1, size=512),
    "PPO, LoRA bf16, 1024 px, train batch 1":           dict(use_lora=True, mixed_precision="bf16", train_batch_size=1, size=1024),
    "PPO, LoRA bf16 grad-ckpt, 1024 px, train batch 4": dict(use_lora=True, mixed_precision="bf16", train_batch_size=4, size=1024,
                                                             gradient_checkpointing=True),
    "NFT (groups of 4), LoRA bf16, 1024 px, train batch 1": dict(use_lora=True, mixed_precision="bf16", train_batch_size=1, size=1024,
                                                                 train_objective="nft", sample_group_size=4),
    "PPO, full bf16 grad-ckpt, 512 px, train batch 1":  dict(use_lora=False, mixed_precision="bf16", train_batch_size=1, size=512,
                                                             gradient_checkpointing=True),
}
SMOKE_CONFIGS = sd15.SMOKE_CONFIGS  # the smoke run checks the code path with the same two configurations
TRANSFORMER_PARAMS = 11.9e9  # FLUX.1 [dev]'s transformer

def does_not_fit(settings:dict, device:str) -> str:
    "Why a configuration cannot run on this card ('' if it may): full fine-tuning's float32 weights, gradients and Adam moments."
    if settings.get("use_lora", True) or device != "cuda": return ""
    need, card = TRANSFORMER_PARAMS * 16 / 2**30, torch.cuda.get_device_properties(0).total_memory / 2**30
    return (f"not run: full fine-tuning needs {need:.0f} GB for the transformer's float32 weights, gradients and Adam moments "
            f"alone; this card has {card:.0f} GB" if need > card else "")

def workload_for(smoke:bool) -> dict:
    "The epoch every configuration runs: 20 steps at strength 0.6 (K = 12, 6 trained), noise level 0.7, guidance 3.5, 4 samples."
    return dict(sample_num_steps=4 if smoke else 20, noise_strength=0.6, train_timestep_fraction=0.5, sample_guidance_scale=3.5,
                sample_eta=0.7, sample_batch_size=2 if smoke else 4, sample_num_batches_per_epoch=1,
                train_batch_size=2, prompt="a photograph of a cat")

# this family's part of bench/sd15.py's machinery (it runs every configuration and the command line)
NAME, build, SIZE, EPOCHS = "flux", flux_pipeline, 1024, 2
ROLLOUT = dict(batch=1, guidance=3.5, dtype="bfloat16", repeats=3)  # our rollout vs diffusers' FLUX img2img on the same components

if __name__ == "__main__": sd15.main(sys.modules[__name__])
