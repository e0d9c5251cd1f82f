"""Qwen-Image-Edit at its real shapes: samples/s and peak GPU memory of edit RL with Flow-GRPO's SDE (PPO, NFT).

Qwen-Image-Edit is a 20B MMDiT (60 blocks, 24 heads of 128, text width 3584) reading the reference's latents after
the generated image's (at 1024 px: 4096 + 4096 image tokens), a 3-D VAE, and Qwen2.5-VL-7B as its text encoder, which
reads the instruction together with the reference (about 1,300 vision tokens for a 1024 px reference). All are built
from those configurations with random weights (bf16 on the GPU); the tokenizer is chapter 00's tiny one (the
encoder's cost does not depend on the vocabulary; its embedding keeps Qwen's 152,064 rows). Edits start from pure
noise: 20 steps at strength 1 (K = 20, 10 trained), noise level 0.7, true CFG 4 (two transformer calls a step). Each
configuration runs in a fresh process: one warm-up epoch, then the median of the timed epochs, and torch's peak
allocation. Plus our rollout against diffusers' `QwenImageEditPipeline` (its Euler step: ours at noise level 0).

Full fine-tuning does not fit one card (20B float32 weights, gradients and Adam moments are ~320 GB): it is FSDP2's
(chapter 05ab), measured here as not fitting, like bench/flux.py's.

    python bench/qwen_image_edit.py --out qwen_image_edit.json   # needs CUDA
    python bench/qwen_image_edit.py --smoke                      # CPU: a narrow copy at 64 px, to check the code path
"""
import sys

import flux, sd15
import torch

def qwen_image_edit_pipeline(device="cpu", size:int=1024, width_divisor:int=1):
    "A QwenImageEditPipeline with Qwen-Image-Edit's architecture (random weights) on `device`, bf16 on CUDA; `width_divisor` narrows it."
    from diffusers import AutoencoderKLQwenImage, QwenImageEditPipeline, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from imageddpo.pocket import QWEN_SPECIAL_TOKENS, image_only_qwen_processor, qwen_image_scheduler, tiny_qwen_tokenizer
    smoke, tokenizer = width_divisor > 1, tiny_qwen_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    width = 64 if smoke else 3584 // width_divisor
    with torch.device(device), flux.default_dtype(torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32):
        transformer = QwenImageTransformer2DModel(
            patch_size=2, in_channels=64, out_channels=16, num_layers=2 if smoke else 60, attention_head_dim=16 if smoke else 128,
            num_attention_heads=2 if smoke else 24, joint_attention_dim=width, axes_dims_rope=(4, 6, 6) if smoke else (16, 56, 56))
        vae = AutoencoderKLQwenImage(base_dim=16 if smoke else 96, z_dim=16)
        text = dict(vocab_size=len(tokenizer) if smoke else 152064, hidden_size=width, intermediate_size=128 if smoke else 18944 // width_divisor,
                    num_hidden_layers=2 if smoke else 28, num_attention_heads=4 if smoke else 28, num_key_value_heads=2 if smoke else 4,
                    max_position_embeddings=128000, rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                                                     "mrope_section": [2, 2, 4] if smoke else [16, 24, 24]},
                    eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
        vision = dict(depth=2 if smoke else 32, hidden_size=32 if smoke else 1280, intermediate_size=64 if smoke else 3420,
                      num_heads=2 if smoke else 16, out_hidden_size=width, window_size=112, fullatt_block_indexes=[1] if smoke else [7, 15, 23, 31])
        text_encoder = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(
            text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
            vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"]))
    # Qwen2.5-VL's own pixel range (about 1,300 vision tokens for a 1024 px reference); the smoke copy's text encoder sees 16
    processor = image_only_qwen_processor(Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=28 * 28 * (16 if smoke else 1280)), tokenizer)
    return QwenImageEditPipeline(scheduler=qwen_image_scheduler(), vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                 processor=processor, transformer=transformer)

CONFIGS = {
    "PPO, LoRA bf16 grad-ckpt, 1024 px, train batch 1": dict(use_lora=True, mixed_precision="bf16", train_batch_size=1,
                                                             gradient_checkpointing=True),
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
    "The epoch every configuration runs: 20 steps from pure noise (K = 20, 10 trained), noise level 0.7, true CFG 4, 4 samples."
    return dict(sample_num_steps=4 if smoke else 20, noise_strength=1.0, train_timestep_fraction=0.5, sample_guidance_scale=4.0,
                sample_eta=0.7, sample_batch_size=2 if smoke else 4, sample_num_batches_per_epoch=1,
                train_batch_size=2, prompt="make it a watercolour painting")

# this family's part of bench/sd15.py's machinery (it runs every configuration and the command line)
NAME, build, SIZE, EPOCHS = "qwen-image-edit", qwen_image_edit_pipeline, 1024, 2
# The inputs are square: at 1024 px diffusers' megapixel rule (the policy's default) keeps the reference at its size, so None changes
# nothing there; in the smoke run the policy's 64 px references stay 64 px (diffusers' side still grows them to 1024: no ratio to read)
POLICY_KWARGS = dict(reference_area=None)
ROLLOUT = dict(batch=1, guidance=4.0, dtype="bfloat16", repeats=3, strengths=(1.0,))  # vs QwenImageEditPipeline, from pure noise

if __name__ == "__main__": sd15.main(sys.modules[__name__])
