"""Stable Diffusion 1.5 at its real shapes: samples/s and peak GPU memory of DDPO sampling and training at 512 px.

The UNet, VAE and text encoder are built from SD 1.5's configurations with random weights: nothing is
downloaded, and the compute and memory are those of the real model (weights don't change either). The
tokenizer is the pocket model's (its vocabulary is smaller; the text encoder's cost does not depend on it).
For each configuration (precision, LoRA or full fine-tuning, gradient checkpointing, channels-last), a
fresh policy and `ImageDDPOTrainer` in a fresh process (accelerate's state, mixed precision included, is one per
process): one warm-up epoch, then the median of the timed epochs; peak memory is
torch's peak allocation during the epochs (weights, optimizer state, activations). Plus the rollout against
diffusers' `StableDiffusionImg2ImgPipeline` at 512 px in fp16.

    python bench/sd15.py --out sd15.json          # needs CUDA
    python bench/sd15.py --smoke                  # CPU: a narrow copy at 64 px, to check the code path
"""
import argparse, gc, json, statistics, sys, tempfile, time
from pathlib import Path

import torch
from common import machine, run_worker, synchronize

def sd15_pipeline(device="cpu", size:int=512, width_divisor:int=1):
    "A StableDiffusionPipeline with SD 1.5's architecture (random weights) on `device`; `width_divisor` narrows it (smoke runs)."
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    from imageddpo import pocket_pipeline
    w = lambda channels: tuple(c // width_divisor for c in channels)
    with torch.device(device):
        unet = UNet2DConditionModel(
            sample_size=size // 8, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=w((320, 640, 1280, 1280)),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",), up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=size,
                            block_out_channels=w((128, 256, 512, 512)) if width_divisor == 1 else (32, 64, 64, 64),
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            norm_num_groups=32, scaling_factor=0.18215)
        text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                                    num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu"))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    return StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=pocket_pipeline().tokenizer,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)

# name -> trainer settings; "channels_last" converts the UNet's weights before training
CONFIGS = {
    "LoRA fp16":                 dict(use_lora=True, mixed_precision="fp16"),
    "LoRA bf16":                 dict(use_lora=True, mixed_precision="bf16"),
    "LoRA fp16 channels-last":   dict(use_lora=True, mixed_precision="fp16", channels_last=True),
    "LoRA fp16 grad-ckpt":       dict(use_lora=True, mixed_precision="fp16", gradient_checkpointing=True),
    "full bf16":                 dict(use_lora=False, mixed_precision="bf16"),
    "full bf16 grad-ckpt":       dict(use_lora=False, mixed_precision="bf16", gradient_checkpointing=True),
}
SMOKE_CONFIGS = {"LoRA fp32": dict(use_lora=True, mixed_precision="no"),
                 "full fp32 grad-ckpt": dict(use_lora=False, mixed_precision="no", gradient_checkpointing=True)}

def train_config(name:str, settings:dict, device:str, size:int, width_divisor:int, epochs:int, workload:dict,
                 build=None, policy_kwargs:dict|None=None) -> dict:
    """One configuration's epochs: median seconds per phase, samples/s and peak memory. `build(device, size, width_divisor)`
    makes the pipeline (default: SD 1.5's); its family's policy (with `policy_kwargs`) trains it; `settings` may override the workload."""
    from imageddpo import ImageDDPOConfig, ImageDDPOTrainer, policy_for
    settings = dict(settings)
    workload = dict(workload)
    prompt = workload.pop("prompt", "a photograph of a cat")
    channels_last = settings.pop("channels_last", False)
    torch.manual_seed(0)
    images = torch.rand(64, 3, size, size, generator=torch.Generator().manual_seed(0))
    def prompt_function():
        return prompt, images[int(torch.randint(len(images), ()))], {}
    def reward_function(out, prompts, metadata):
        return out.float().mean(dim=(1, 2, 3))
    policy = policy_for((build or sd15_pipeline)(device, size, width_divisor), use_lora=settings["use_lora"], **(policy_kwargs or {}))
    if channels_last: policy.unet.to(memory_format=torch.channels_last)
    workload = {**workload, **{k: settings.pop(k) for k in list(settings) if k in workload}}
    config = ImageDDPOConfig(**workload, **settings, num_epochs=epochs, save_freq=10**6, output_dir=tempfile.mkdtemp())
    trainer = ImageDDPOTrainer(config, reward_function, prompt_function, policy)
    if device == "cuda": torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    epoch_times = []
    for epoch in range(epochs):
        start = time.perf_counter(); trainer.step(epoch, trainer.global_step); synchronize()
        epoch_times.append(time.perf_counter() - start)
    timed = trainer.history[1:]
    med = lambda key: statistics.median(h[key] for h in timed)
    n = workload["sample_batch_size"] * workload["sample_num_batches_per_epoch"]
    epoch_s = statistics.median(epoch_times[1:])
    row = {"config": name, **settings, "channels_last": channels_last, "samples_per_epoch": n,
           "trained_steps": config.trained_steps(0, trainer.sd_pipeline), "train_batch_size": config.train_batch_size, "sample_s": med("sample_s"), "train_s": med("train_s"), "epoch_s": epoch_s,
           "sampling_samples_per_s": n / med("sample_s"), "training_samples_per_s": n / med("train_s"),
           "epoch_samples_per_s": n / epoch_s,
           "trainable_params": sum(p.numel() for p in policy.trainable_parameters())}
    if device == "cuda": row["gpu_peak_allocated_gb"] = torch.cuda.max_memory_allocated() / 2**30
    del trainer, policy; gc.collect()
    if device == "cuda": torch.cuda.empty_cache()
    return row

def workload_for(smoke:bool) -> dict:
    "The epoch every configuration runs: 20 steps at strength 0.5 (K = 10, 5 trained), guidance 5, 16 samples, train batch 4."
    return dict(sample_num_steps=4 if smoke else 20, noise_strength=0.5, train_timestep_fraction=0.5, sample_guidance_scale=5.0,
                sample_batch_size=2 if smoke else 8, sample_num_batches_per_epoch=1 if smoke else 2,
                train_batch_size=2 if smoke else 4)

# what bench/sdxl.py, bench/sd3.py, bench/flux.py and bench/flux_kontext.py set differently: the name, the builder, sizes,
# the rollout comparison (its `strengths`, default 0.4 and 0.8), and the policy's keywords (`POLICY_KWARGS`, default none)
NAME, build, SIZE, EPOCHS = "sd15", sd15_pipeline, 512, 3
ROLLOUT = dict(batch=4, guidance=7.5, dtype="float16", repeats=5)

# --- the machinery every shapes script (sd15, sdxl, sd3, flux) runs: `family` is the script's module --------------------

def scale(family, smoke:bool, size:int, epochs:int) -> tuple:
    "(size, width_divisor, configs, epochs): the real ones, or the smoke run's narrow 64 px copy."
    return (64, 10, family.SMOKE_CONFIGS, 2) if smoke else (size, 1, family.CONFIGS, epochs)

def worker(family, name:str, device:str, size:int, epochs:int, smoke:bool) -> dict:
    "One configuration, in this process (at its own `size` if it names one, bench/flux.py's do)."
    size, width_divisor, configs, epochs = scale(family, smoke, size, epochs)
    settings = dict(configs[name])
    own_size = settings.pop("size", None)
    size = own_size if own_size and not smoke else size
    return {**train_config(name, settings, device, size, width_divisor, epochs, family.workload_for(smoke), build=family.build,
                           policy_kwargs=getattr(family, "POLICY_KWARGS", None)), "size": size}

def rollout_rows(family, device:str, size:int, width_divisor:int, dtype, repeats:int) -> list[dict]:
    "Our rollout vs diffusers' pipeline of the family on the same components (N=20, strengths 0.4 and 0.8 unless the family names its own)."
    import rollout
    r = family.ROLLOUT
    return rollout.bench(family.NAME, device, repeats, batch=r["batch"], steps=20, strengths=r.get("strengths", (0.4, 0.8)),
                         guidances=(r["guidance"],), build=lambda: family.build(device, size, width_divisor).to(dtype=dtype), size=size,
                         policy_kwargs=getattr(family, "POLICY_KWARGS", None))

def run(family=None, device:str|None=None, size:int|None=None, epochs:int|None=None, smoke:bool=False, progress=print,
        partial=None) -> dict:
    """Every configuration of `family` (default: SD 1.5) on `device` (CUDA unless `smoke`), then the rollout comparison;
    `partial(result)` gets the rows so far after each configuration (a time limit that stops the run keeps them)."""
    family = family or sys.modules[__name__]
    size, epochs = size or family.SIZE, epochs or family.EPOCHS
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    script = Path(family.__file__).name
    if not smoke and device != "cuda": raise SystemExit(f"bench/{script} needs a CUDA device (or --smoke for a CPU check of the code path)")
    args = ["--device", device, "--size", size, "--epochs", epochs] + (["--smoke"] if smoke else [])
    size, width_divisor, configs, epochs = scale(family, smoke, size, epochs)
    rows, setup = [], dict(size=size, width_divisor=width_divisor, epochs=epochs, timed_epochs=epochs - 1,
                           **{k: v for k, v in family.workload_for(smoke).items() if k != "prompt"})
    for name in configs:
        if (why := getattr(family, "does_not_fit", lambda settings, device: "")(configs[name], device)):
            rows.append({"config": name, "error": why}); progress(f"  {family.NAME} {name}: {why}")
            if partial: partial({"setup": setup, "rows": rows})
            continue
        try: rows.append(run_worker(sys.executable, family.__file__, ["--worker", name, *args]))
        except RuntimeError as e:  # one configuration failing (out of memory, say) leaves the others' figures
            rows.append({"config": name, "error": str(e).strip().splitlines()[-1]}); progress(f"  {family.NAME} {name}: {rows[-1]['error']}")
        else:
            r = rows[-1]
            progress(f"  {family.NAME} {name}: epoch {r['epoch_s']:.2f} s, sampling {r['sampling_samples_per_s']:.2f} samples/s, "
                     f"training {r['training_samples_per_s']:.2f} samples/s"
                     + (f", peak {r['gpu_peak_allocated_gb']:.2f} GB" if "gpu_peak_allocated_gb" in r else ""))
        if partial: partial({"setup": setup, "rows": rows})
    dtype = torch.float32 if smoke else getattr(torch, family.ROLLOUT["dtype"])
    roll = rollout_rows(family, device, size, width_divisor, dtype, repeats=2 if smoke else family.ROLLOUT["repeats"])
    rollout_setup = dict(batch=family.ROLLOUT["batch"], num_inference_steps=20, guidance=family.ROLLOUT["guidance"], dtype=str(dtype))
    return {"setup": {**setup, "rollout": rollout_setup}, "rows": rows, "rollout": roll}

def main(family=None):
    "The command line of a shapes script (this one, bench/sdxl.py, bench/sd3.py, bench/flux.py); its JSON is rewritten after every configuration."
    family = family or sys.modules[__name__]
    p = argparse.ArgumentParser(description=family.__doc__.splitlines()[0])
    p.add_argument("--device", default=None)
    p.add_argument("--size", type=int, default=family.SIZE)
    p.add_argument("--epochs", type=int, default=family.EPOCHS, help="per configuration: one warm-up, the rest timed")
    p.add_argument("--smoke", action="store_true", help="a narrow 64 px copy on the CPU: checks the code path, measures nothing")
    p.add_argument("--out", default=None)
    p.add_argument("--worker", metavar="CONFIG", help="run one configuration in this process and print its row as JSON")
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(family, a.worker, a.device or "cuda", a.size, a.epochs, a.smoke))); return
    write = lambda result: Path(a.out).write_text(json.dumps(result, indent=1)) if a.out else None
    result = {"machine": machine(), **run(family, a.device, a.size, a.epochs, a.smoke,
                                          partial=lambda part: write({"machine": machine(), **part, "complete": False}))}
    print(json.dumps(result["rollout"], indent=1))
    if a.out: write(result); print("wrote", a.out)

if __name__ == "__main__": main()
