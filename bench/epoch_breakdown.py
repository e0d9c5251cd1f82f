"""Where an epoch's time goes, against the floor of the model's own compute, and how it scales with noise_strength.

For each configuration (model, noise_strength, guidance), in a fresh process:
- runs `--epochs` trainer epochs and takes the median of those after the first: the epoch time and its
  sampling / reward-wait / training phases (the trainer's own timers), the rest being overhead;
- times the *necessary* calls alone, in the same process and with the same shapes: per sampling batch one
  VAE encode, K UNet calls (a doubled batch under CFG) and one VAE decode, the reward call, and per
  minibatch T UNet forward+backward passes. Their sum is the floor; overhead ratio = epoch / floor;
- reports the process's peak RSS.

    python bench/epoch_breakdown.py            # pocket 32 px and the 128 px SD-1.x-block model, CPU
Results: bench/results/epoch_breakdown.json.
"""
import argparse, json, os, platform, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path

SAMPLE_BATCH, BATCHES, TRAIN_BATCH, N = 8, 2, 4, 10

def median_time(fn, repeats=10):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter(); fn(); times.append(time.perf_counter() - start)
    return statistics.median(times)

def worker(model:str, strength:float, guidance:float, epochs:int) -> dict:
    import torch
    sys.path.insert(0, str(Path(__file__).parent))
    from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, ImageDDPOTrainer, pocket_pipeline
    from rollout import mid_pipeline
    from trainer_epoch import inputs
    torch.manual_seed(0)
    base, size = {"pocket": (pocket_pipeline, 32), "mid": (mid_pipeline, 128)}[model]
    images = inputs(size)
    def prompt_function():
        return "a handwritten digit", images[int(torch.randint(len(images), ()))], {}
    def reward_function(out, prompts, metadata):
        return out.mean(dim=(1, 2, 3))
    config = ImageDDPOConfig(mixed_precision="no", sample_num_steps=N, noise_strength=strength, sample_guidance_scale=guidance,
                             sample_batch_size=SAMPLE_BATCH, sample_num_batches_per_epoch=BATCHES, train_batch_size=TRAIN_BATCH,
                             num_epochs=epochs, save_freq=10**6, output_dir=tempfile.mkdtemp())
    trainer = ImageDDPOTrainer(config, reward_function, prompt_function, I2IDDPOStableDiffusionPipeline(base()))
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
        encode = median_time(lambda: pipe.vae.encode(2 * batch - 1).latent_dist.sample())
        unet = median_time(lambda: pipe.predict_noise(x, t[0], out.prompt_embeds, out.negative_prompt_embeds, guidance))
        decode = median_time(lambda: pipe.decode(out.latents[:, -1]))
        reward = median_time(lambda: reward_function(out.images, None, None))
    rows_ = slice(0, TRAIN_BATCH)
    neg = None if out.negative_prompt_embeds is None else out.negative_prompt_embeds[rows_]
    def forward_backward():
        pipe.predict_noise(x[rows_], t[rows_], out.prompt_embeds[rows_], neg, guidance).float().mean().backward()
    fwd_bwd = median_time(forward_backward)
    pipe.unet.zero_grad(set_to_none=True)
    minibatches = SAMPLE_BATCH * BATCHES // TRAIN_BATCH
    floor = {"sample_s": BATCHES * (encode + K * unet + decode), "reward_s": BATCHES * reward,
             "train_s": minibatches * K * fwd_bwd}
    return {"model": model, "noise_strength": strength, "guidance": guidance, "executed_steps": K,
            "epoch_s": epoch_s, "sample_s": phase("sample_s"), "reward_wait_s": phase("reward_wait_s"),
            "train_s": phase("train_s"), "floor_s": sum(floor.values()), **{f"floor_{k}": v for k, v in floor.items()},
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--worker", nargs=3, metavar=("MODEL", "STRENGTH", "GUIDANCE"))
    p.add_argument("--models", nargs="*", default=["pocket", "mid"])
    a = p.parse_args()
    if a.worker:
        model, strength, guidance = a.worker
        print(json.dumps(worker(model, float(strength), float(guidance), a.epochs))); return
    configs = [(m, s, 1.0) for m in a.models for s in (0.2, 0.4, 0.6, 0.8, 1.0)] + [(m, 0.6, 5.0) for m in a.models]
    rows = []
    print(f"{'model':7s} {'s':>4s} {'g':>4s} {'K':>3s} {'epoch':>7s} {'sample':>7s} {'reward':>7s} {'train':>7s} "
          f"{'other':>6s} {'floor':>7s} {'ratio':>6s} {'RSS MB':>7s}")
    for model, strength, guidance in configs:
        done = subprocess.run([sys.executable, __file__, "--worker", model, str(strength), str(guidance), "--epochs", str(a.epochs)],
                              capture_output=True, text=True, cwd=tempfile.gettempdir(), env={**os.environ, "PYTHONPATH": ""})
        if done.returncode: raise RuntimeError(done.stderr[-3000:])
        r = json.loads(done.stdout.strip().splitlines()[-1])
        r["overhead_ratio"] = r["epoch_s"] / r["floor_s"]
        r["other_s"] = r["epoch_s"] - r["sample_s"] - r["reward_wait_s"] - r["train_s"]
        rows.append(r)
        print(f"{model:7s} {strength:4.1f} {guidance:4.1f} {r['executed_steps']:3d} {r['epoch_s']:7.3f} {r['sample_s']:7.3f} "
              f"{r['reward_wait_s']:7.3f} {r['train_s']:7.3f} {r['other_s']:6.3f} {r['floor_s']:7.3f} "
              f"{r['overhead_ratio']:6.3f} {r['peak_rss_mb']:7.0f}", flush=True)
    out = Path(__file__).parent/"results"/"epoch_breakdown.json"
    out.write_text(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU, float32",
                               "setup": dict(sample_batch_size=SAMPLE_BATCH, batches=BATCHES, train_batch_size=TRAIN_BATCH,
                                             num_inference_steps=N, train_timestep_fraction=1.0), "rows": rows}, indent=1))
    print("wrote", out)

if __name__ == "__main__": main()
