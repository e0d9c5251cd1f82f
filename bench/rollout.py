"""Rollout cost: `I2IDDPOStableDiffusionPipeline.rollout` vs diffusers' `StableDiffusionImg2ImgPipeline`.

Both run on the *same* components, inputs, settings and generator seed, interleaved run by run, so
machine noise hits both alike; we report medians and their ratio, and how the cost scales with
noise_strength. Usage:

    python bench/rollout.py [--repeats 7] [--device cpu] [--out bench/results/rollout_cpu.json]
"""
import argparse, json, platform, statistics, time

import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline, UNet2DConditionModel, AutoencoderKL

from imageddpo.pipeline import I2IDDPOStableDiffusionPipeline
from imageddpo.pocket import tiny_pipeline

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

CONFIGS = {"tiny-64px": (tiny_pipeline, 64), "mid-128px": (mid_pipeline, 128)}

def timed(fn) -> float:
    start = time.perf_counter(); fn()
    if torch.cuda.is_available(): torch.cuda.synchronize()
    return time.perf_counter() - start

def bench(config, device, repeats, batch=4, steps=20):
    build, size = CONFIGS[config]
    policy = I2IDDPOStableDiffusionPipeline(build().to(device), use_lora=False)
    reference = StableDiffusionImg2ImgPipeline(**policy.sd_pipeline.components)
    reference.set_progress_bar_config(disable=True)
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    prompts = ["a handwritten digit 3"] * batch
    rows = []
    for guidance in (1.0, 7.5):
        for strength in (0.2, 0.4, 1.0):
            kw = dict(num_inference_steps=steps, guidance_scale=guidance, eta=1.0)
            ours = lambda: policy.rollout(images, prompts, noise_strength=strength, generator=torch.Generator(device).manual_seed(0), **kw)
            theirs = lambda: reference(prompt=prompts, image=images, strength=strength, output_type="pt",
                                       generator=torch.Generator(device).manual_seed(0), **kw)
            ours(); theirs()  # warm-up
            t_ours, t_theirs = [], []
            for _ in range(repeats):
                t_ours.append(timed(ours)); t_theirs.append(timed(theirs))
            row = dict(config=config, guidance_scale=guidance, noise_strength=strength,
                       executed_steps=min(int(steps * strength), steps), batch=batch,
                       ours_s=statistics.median(t_ours), diffusers_s=statistics.median(t_theirs))
            row["ratio"] = row["ours_s"] / row["diffusers_s"]
            rows.append(row)
            print(f"{config:>10} g={guidance:<4} s={strength:<4} K={row['executed_steps']:>2}  ours {row['ours_s']*1e3:8.1f} ms"
                  f"  diffusers {row['diffusers_s']*1e3:8.1f} ms  ratio {row['ratio']:.3f}", flush=True)
    return rows

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--out", default=None, help="write the table as JSON here")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    rows = [row for config in args.configs for row in bench(config, args.device, args.repeats)]
    for config in args.configs:
        mine = [r for r in rows if r["config"] == config]
        for g in (1.0, 7.5):
            by_s = {r["noise_strength"]: r["ours_s"] for r in mine if r["guidance_scale"] == g}
            print(f"{config:>10} g={g:<4} cost(s=0.2) / cost(s=1.0) = {by_s[0.2] / by_s[1.0]:.3f}  (steps ratio 0.2)")
        print(f"{config:>10} median ratio ours/diffusers = {statistics.median(r['ratio'] for r in mine):.3f}")
    machine = dict(device=args.device, cpu=platform.processor() or platform.machine(), threads=torch.get_num_threads(),
                   torch=torch.__version__, gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None)
    if args.out:
        with open(args.out, "w") as f: json.dump(dict(machine=machine, repeats=args.repeats, rows=rows), f, indent=1)
        print("wrote", args.out)

if __name__ == "__main__": main()
