"""Rollout cost: the policy's `rollout` vs diffusers' img2img pipeline of its family (`StableDiffusionImg2ImgPipeline`,
`StableDiffusionXLImg2ImgPipeline`).

Both run on the *same* components, inputs, settings and generator seed, interleaved run by run, so
machine noise hits both alike; we report medians and their ratio. Usage:

    python bench/rollout.py [--models pocket mid] [--repeats 5] [--steps 10] [--out rollout.json]
"""
import argparse, json, statistics

import torch
from diffusers import (FluxImg2ImgPipeline, FluxKontextPipeline, QwenImageEditPipeline, StableDiffusion3Img2ImgPipeline, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline, StableDiffusionXLImg2ImgPipeline,
                       UNet2DConditionModel, AutoencoderKL)

from imageddpo.families import model_family, policy_for
from imageddpo.pocket import pocket_pipeline, tiny_flux_pipeline, tiny_pipeline, tiny_sd3_pipeline, tiny_sdxl_pipeline
from common import machine, peak_memory, timed

def mid_pipeline() -> StableDiffusionPipeline:
    "SD-1.x structure at a width where the UNet dominates (as in real SD): 128x128 images, 16x16 latents."
    pipe = tiny_pipeline()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(
            sample_size=16, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(64, 128, 256, 256),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=32, attention_head_dim=8)
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64, 64, 64),
                            layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32, scaling_factor=0.18215)
    return StableDiffusionPipeline(**{**pipe.components, "unet": unet.eval(), "vae": vae.eval()})

# name -> (builder, image size): the shipped pocket model (32 px), the tiny test models, the 128 px SD-1.x-block model
MODELS = {"pocket": (pocket_pipeline, 32), "tiny": (tiny_pipeline, 64), "mid": (mid_pipeline, 128),
          "tiny-sdxl": (tiny_sdxl_pipeline, 64), "tiny-sd3": (tiny_sd3_pipeline, 64), "tiny-flux": (tiny_flux_pipeline, 64)}
IMG2IMG = {"sd": StableDiffusionImg2ImgPipeline, "sdxl": StableDiffusionXLImg2ImgPipeline,  # family -> diffusers' reference
           "sd3": StableDiffusion3Img2ImgPipeline, "flux": FluxImg2ImgPipeline, "flux-kontext": FluxKontextPipeline,
           "qwen-image-edit": QwenImageEditPipeline}
EDIT_MODELS = ("flux-kontext", "qwen-image-edit")  # their pipelines take no strength: the image is the reference, the edit starts from noise (strength 1)

@torch.no_grad()
def bench(model:str, device:str, repeats:int, batch:int=4, steps:int=10, strengths=(0.2, 0.6, 1.0), guidances=(1.0, 7.5),
          build=None, size:int|None=None, policy_kwargs:dict|None=None) -> list[dict]:
    "Median seconds per rollout, ours and diffusers', for every (guidance, strength); `build`/`size` default to `MODELS[model]`."
    if build is None: build, size = MODELS[model]
    pipe = build().to(device)
    policy = policy_for(pipe, use_lora=False, **(policy_kwargs or {}))
    family = model_family(pipe)
    reference = IMG2IMG[family](**policy.sd_pipeline.components)
    # DDIM with eta 1 on both sides; SD3's img2img has only the Euler step, which is ours at noise level 0 (same work
    # but the noise draws), and resizes to its sample size unless given the size
    flow, edit = family in ("sd3", "flux", *EDIT_MODELS), family in EDIT_MODELS
    ours_kw, theirs_kw = (dict(eta=0.0), dict(height=size, width=size)) if flow else (dict(eta=1.0), dict(eta=1.0))
    if family == "flux-kontext": theirs_kw.update(max_area=size * size, _auto_resize=policy.auto_resize)
    reference.set_progress_bar_config(disable=True)
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    prompts = ["a handwritten digit 3"] * batch
    rows = []
    for guidance in guidances:
        for strength in strengths:
            kw = dict(num_inference_steps=steps, guidance_scale=guidance)
            ours = lambda: policy.rollout(images, prompts, noise_strength=strength, generator=torch.Generator(device).manual_seed(0),
                                          **kw, **ours_kw)
            theirs_call = {**kw, **theirs_kw, "image": images, **({} if edit else dict(strength=strength))}
            if family == "qwen-image-edit":  # PIL references (it reads their size), and its guidance is true CFG with a negative prompt
                theirs_call.update(image=policy.reference_images(images), true_cfg_scale=guidance, guidance_scale=None,
                                   negative_prompt=[" "] * batch if guidance > 1 else None)
            theirs = lambda: reference(prompt=prompts, output_type="pt", generator=torch.Generator(device).manual_seed(0), **theirs_call)
            ours(); theirs()  # warm-up
            t_ours, t_theirs = [], []
            for _ in range(repeats):
                t_ours.append(timed(ours)); t_theirs.append(timed(theirs))
            row = dict(model=model, guidance=guidance, noise_strength=strength, executed_steps=policy.executed_steps(steps, strength),
                       batch=batch, ours_s=statistics.median(t_ours), diffusers_s=statistics.median(t_theirs))
            row["ratio"] = row["ours_s"] / row["diffusers_s"]
            rows.append(row)
    return rows

def run(models=("pocket", "mid"), repeats:int|dict=5, steps:int=10, device:str|None=None) -> dict:
    "The rollout section: every model's rows (`repeats` may be per model), the settings and this process's peak memory."
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    repeats = repeats if isinstance(repeats, dict) else {m: repeats for m in models}
    rows = [row for model in models for row in bench(model, device, repeats[model], steps=steps)]
    return {"setup": dict(batch=4, num_inference_steps=steps, repeats=repeats, device=device), "rows": rows, **peak_memory()}

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["pocket", "mid"], choices=list(MODELS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args()
    result = {"machine": machine(), **run(args.models, args.repeats, args.steps, args.device)}
    for r in result["rows"]:
        print(f"{r['model']:>7} g={r['guidance']:<4} s={r['noise_strength']:<4} K={r['executed_steps']:>2}  "
              f"ours {r['ours_s']*1e3:8.1f} ms  diffusers {r['diffusers_s']*1e3:8.1f} ms  ratio {r['ratio']:.3f}")
    if args.out:
        with open(args.out, "w") as f: json.dump(result, f, indent=1)
        print("wrote", args.out)

if __name__ == "__main__": main()
