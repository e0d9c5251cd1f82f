"""Where an epoch's time goes, against the floor of the model's own compute, and how it scales with noise_strength.

For each configuration (model, noise_strength, guidance), in a fresh process:
- runs `--epochs` trainer epochs and takes the median of those after the first: the epoch time and its
  sampling / reward-wait / training phases (the trainer's own timers), the rest being overhead;
- times the *necessary* calls alone, in the same process and with the same shapes: per sampling batch one
  VAE encode, K UNet calls (a doubled batch under CFG) and one VAE decode, the reward call, and per
  minibatch T UNet forward+backward passes. Their sum is the floor; overhead ratio = epoch / floor;
- reports the process's peak memory.

    python bench/epoch_breakdown.py [--models pocket mid] [--epochs 3] [--out epoch.json]
"""
import argparse, json, statistics, sys, tempfile, time
from pathlib import Path

from common import digit_inputs, machine, median_time, peak_memory, run_worker

SAMPLE_BATCH, BATCHES, TRAIN_BATCH, N = 8, 2, 4, 10

def worker(model:str, strength:float, guidance:float, epochs:int, repeats:int) -> dict:
    "Time `epochs` epochs and the floor of one configuration, in this process."
    import torch
    from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, ImageDDPOTrainer
    from rollout import MODELS
    torch.manual_seed(0)
    build, size = MODELS[model]
    images = digit_inputs(size)
    def prompt_function():
        return "a handwritten digit", images[int(torch.randint(len(images), ()))], {}
    def reward_function(out, prompts, metadata):
        return out.mean(dim=(1, 2, 3))
    config = ImageDDPOConfig(mixed_precision="no", sample_num_steps=N, noise_strength=strength, sample_guidance_scale=guidance,
                             sample_batch_size=SAMPLE_BATCH, sample_num_batches_per_epoch=BATCHES, train_batch_size=TRAIN_BATCH,
                             num_epochs=epochs, save_freq=10**6, output_dir=tempfile.mkdtemp())
    trainer = ImageDDPOTrainer(config, reward_function, prompt_function, I2IDDPOStableDiffusionPipeline(build()))
    epoch_times = []
    for epoch in range(epochs):
        start = time.perf_counter(); trainer.step(epoch, trainer.global_step); epoch_times.append(time.perf_counter() - start)
    rows = trainer.history[1:]
    phase = lambda key: statistics.median(h[key] for h in rows)
    epoch_s = statistics.median(epoch_times[1:])
    # the floor: the necessary calls alone, same shapes
    pipe, K = trainer.sd_pipeline, config.trained_steps(0)
    batch = torch.stack([prompt_function()[1] for _ in range(SAMPLE_BATCH)])
    out = pipe.rollout(batch, "a handwritten digit", noise_strength=strength, num_inference_steps=N, guidance_scale=guidance)
    x, t = out.latents[:, 0], out.timesteps[:, 0]
    with torch.no_grad():
        encode = median_time(lambda: pipe.vae.encode(2 * batch - 1).latent_dist.sample(), repeats)
        unet = median_time(lambda: pipe.predict_noise(x, t[0], out.prompt_embeds, out.negative_prompt_embeds, guidance), repeats)
        decode = median_time(lambda: pipe.decode(out.latents[:, -1]), repeats)
        reward = median_time(lambda: reward_function(out.images, None, None), repeats)
    rows_ = slice(0, TRAIN_BATCH)
    neg = None if out.negative_prompt_embeds is None else out.negative_prompt_embeds[rows_]
    def forward_backward():
        pipe.predict_noise(x[rows_], t[rows_], out.prompt_embeds[rows_], neg, guidance).float().mean().backward()
    fwd_bwd = median_time(forward_backward, repeats)
    pipe.unet.zero_grad(set_to_none=True)
    minibatches = SAMPLE_BATCH * BATCHES // TRAIN_BATCH
    floor = {"sample_s": BATCHES * (encode + K * unet + decode), "reward_s": BATCHES * reward,
             "train_s": minibatches * K * fwd_bwd}
    return {"model": model, "noise_strength": strength, "guidance": guidance, "executed_steps": K,
            "epoch_s": epoch_s, "sample_s": phase("sample_s"), "reward_wait_s": phase("reward_wait_s"),
            "train_s": phase("train_s"), "floor_s": sum(floor.values()), **{f"floor_{k}": v for k, v in floor.items()},
            **peak_memory()}

def run(models=("pocket", "mid"), strengths=(0.2, 0.4, 0.6, 0.8, 1.0), epochs:int|dict=3, repeats:int|dict=5,
        cfg_strength:float=0.6, cfg_guidance:float=5.0, progress=print) -> dict:
    "Every (model, strength) at guidance 1, plus `cfg_strength` under CFG, each in its own process; `epochs` and `repeats` may be per model."
    per_model = lambda value: value if isinstance(value, dict) else {m: value for m in models}
    epochs, repeats = per_model(epochs), per_model(repeats)
    configs = [(m, s, 1.0) for m in models for s in strengths] + [(m, cfg_strength, cfg_guidance) for m in models]
    rows = []
    for model, strength, guidance in configs:
        r = run_worker(sys.executable, __file__, ["--worker", model, strength, guidance, "--epochs", epochs[model],
                                                  "--repeats", repeats[model]])
        r["overhead_ratio"] = r["epoch_s"] / r["floor_s"]
        r["other_s"] = r["epoch_s"] - r["sample_s"] - r["reward_wait_s"] - r["train_s"]
        rows.append(r)
        progress(f"  epoch {model} s={strength} g={guidance}: {r['epoch_s']:.3f} s, overhead ratio {r['overhead_ratio']:.3f}")
    return {"setup": dict(sample_batch_size=SAMPLE_BATCH, batches=BATCHES, train_batch_size=TRAIN_BATCH, num_inference_steps=N,
                          train_timestep_fraction=1.0, epochs=epochs, timed_epochs={m: e - 1 for m, e in epochs.items()},
                          floor_repeats=repeats),
            "rows": rows, "scaling": {m: linear_fit([r for r in rows if r["model"] == m and r["guidance"] == 1.0]) for m in models}}

def linear_fit(rows:list[dict]) -> dict:
    "Least-squares epoch_s = a + b * K over `rows`, its R², and the largest relative deviation from the line."
    ks, ys = [r["executed_steps"] for r in rows], [r["epoch_s"] for r in rows]
    n, mk, my = len(ks), sum(ks) / len(ks), sum(ys) / len(ys)
    b = sum((k - mk) * (y - my) for k, y in zip(ks, ys)) / sum((k - mk) ** 2 for k in ks)
    a = my - b * mk
    fit = [a + b * k for k in ks]
    ss_res, ss_tot = sum((y - f) ** 2 for y, f in zip(ys, fit)), sum((y - my) ** 2 for y in ys)
    return {"intercept_s": a, "per_step_s": b, "r2": 1 - ss_res / ss_tot,
            "max_rel_deviation": max(abs(y - f) / y for y, f in zip(ys, fit))}

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5, help="timings of each necessary call for the floor")
    p.add_argument("--worker", nargs=3, metavar=("MODEL", "STRENGTH", "GUIDANCE"))
    p.add_argument("--models", nargs="*", default=["pocket", "mid"])
    p.add_argument("--out", default=None)
    a = p.parse_args()
    if a.worker:
        model, strength, guidance = a.worker
        print(json.dumps(worker(model, float(strength), float(guidance), a.epochs, a.repeats))); return
    result = {"machine": machine(), **run(a.models, epochs=a.epochs, repeats=a.repeats)}
    if a.out: Path(a.out).write_text(json.dumps(result, indent=1)); print("wrote", a.out)

if __name__ == "__main__": main()
