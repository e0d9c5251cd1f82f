"""Seconds per DDPO epoch: imageddpo vs the original imageddpo==0.1.2 on trl==0.21.0, side by side.

Both trainers get the same model (loaded from one saved folder), the same inputs from the same prompt
function, the same reward, the same batch sizes and the same trained timesteps (all K executed steps:
ours with train_timestep_fraction=1.0; the original counts the fraction against N, so it gets K/N).
Sampling runs at guidance 1.0 (the original then trains with two UNet passes per step, TRL's
`train_cfg=True` default, where we run one) and at guidance 5.0 (both run CFG).

The original needs its own environment (it pins trl and imports wandb):

    python -m venv /tmp/seedvenv && /tmp/seedvenv/bin/pip install torch==2.13.0 imageddpo==0.1.2
    python bench/trainer_epoch.py --seed-python /tmp/seedvenv/bin/python

Each (implementation, model, guidance) runs in a fresh process, alternating implementations, `--rounds`
times; an epoch's time is the median over the epochs after the first (warm-up) of every round.
Results: bench/results/trainer_epoch.json.
"""
import argparse, json, os, platform, statistics, subprocess, sys, tempfile, time
from pathlib import Path

SAMPLE_BATCH, BATCHES, TRAIN_BATCH, N, STRENGTH = 8, 2, 4, 10, 0.5

def inputs(size:int):
    "The shared inputs: corrupted digits at the model's resolution, as CHW tensors in [0, 1]."
    import torch, torch.nn.functional as F
    from sklearn.datasets import load_digits
    digits = torch.tensor(load_digits().images[:64], dtype=torch.float32)[:, None] / 16
    images = F.interpolate(digits, size=(size, size), mode="bilinear").repeat(1, 3, 1, 1)
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(0))
    return (0.7 * images + 0.3 * noise).clamp(0, 1)

def worker(impl:str, model:str, guidance:float, epochs:int, size:int) -> list[float]:
    "Time `epochs` epochs of one implementation in this process."
    import torch
    torch.manual_seed(0)
    images, position = inputs(size), 0
    def prompt_function():
        nonlocal position
        position += 1
        return "a handwritten digit", images[position % len(images)], {}
    def reward_function(out, prompts, metadata):
        return out.float().mean(dim=(1, 2, 3)).cpu(), {}
    out_dir = tempfile.mkdtemp()
    common = dict(mixed_precision="no", log_with=None, sample_num_steps=N, sample_guidance_scale=guidance,
                  sample_batch_size=SAMPLE_BATCH, sample_num_batches_per_epoch=BATCHES, train_batch_size=TRAIN_BATCH,
                  save_freq=10**6, num_epochs=epochs)
    if impl == "ours":
        from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, ImageDDPOTrainer
        config = ImageDDPOConfig(**common, noise_strength=STRENGTH, train_timestep_fraction=1.0, output_dir=out_dir)
        trainer = ImageDDPOTrainer(config, reward_function, prompt_function, I2IDDPOStableDiffusionPipeline(model))
    else:
        from trl import DDPOConfig
        from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOTrainer
        config = DDPOConfig(**common, train_timestep_fraction=STRENGTH, project_kwargs={"project_dir": out_dir})
        trainer = ImageDDPOTrainer(config, reward_function, prompt_function, I2IDDPOStableDiffusionPipeline(model),
                                   noise_strength=STRENGTH)
    train_time = [0.0]
    def timed(method):  # the PPO phase of each epoch: our train_on_samples, TRL's _train_batched_samples
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try: return method(*args, **kwargs)
            finally: train_time[0] += time.perf_counter() - start
        return wrapper
    name = "train_on_samples" if impl == "ours" else "_train_batched_samples"
    setattr(trainer, name, timed(getattr(trainer, name)))
    times, global_step = [], 0
    for epoch in range(epochs):
        train_time[0], start = 0.0, time.perf_counter()
        global_step = trainer.step(epoch, global_step)
        times.append((time.perf_counter() - start, train_time[0]))
    return times

def run(python:str, impl:str, model:str, guidance:float, epochs:int, size:int) -> list[float]:
    cmd = [python, __file__, "--worker", impl, "--model", model, "--guidance", str(guidance), "--epochs", str(epochs),
           "--size", str(size)]
    env = {**os.environ, "PYTHONPATH": "", "WANDB_MODE": "disabled"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    if done.returncode: raise RuntimeError(f"{impl} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed-python", default="/tmp/seedvenv/bin/python")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--worker"); p.add_argument("--model"); p.add_argument("--guidance", type=float)
    p.add_argument("--size", type=int)
    p.add_argument("--models", nargs="*", help="a subset of: pocket tiny mid")
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.model, a.guidance, a.epochs, a.size))); return
    from imageddpo import pocket_pipeline, tiny_pipeline
    sys.path.insert(0, str(Path(__file__).parent))
    from rollout import mid_pipeline  # SD-1.x blocks at 128 px: compute, not call overhead, dominates
    root = Path(tempfile.mkdtemp())
    models = {"pocket (32 px)": (pocket_pipeline, 32), "tiny (64 px)": (tiny_pipeline, 64), "mid (128 px)": (mid_pipeline, 128)}
    rows = []
    for name, (make, size) in models.items():
        if a.models and name.split()[0] not in a.models: continue
        path = root/name.split()[0]; make().save_pretrained(path)
        for guidance in (1.0, 5.0):
            times = {"ours": [], "seed": []}
            for _ in range(a.rounds):
                times["ours"] += run(sys.executable, "ours", str(path), guidance, a.epochs, size)[1:]
                times["seed"] += run(a.seed_python, "seed", str(path), guidance, a.epochs, size)[1:]
            med = lambda impl, i: statistics.median(t[i] for t in times[impl])
            ours, seed, ours_ppo, seed_ppo = med("ours", 0), med("seed", 0), med("ours", 1), med("seed", 1)
            rows.append({"model": name, "guidance": guidance, "ours_epoch_s": round(ours, 4), "seed_epoch_s": round(seed, 4),
                         "epoch_speedup": round(seed / ours, 3), "ours_ppo_s": round(ours_ppo, 4),
                         "seed_ppo_s": round(seed_ppo, 4), "ppo_speedup": round(seed_ppo / ours_ppo, 3),
                         "epochs_timed": len(times["ours"])})
            print(f"{name:15s} guidance {guidance}: epoch ours {ours:.3f} s, imageddpo 0.1.2 {seed:.3f} s ({seed / ours:.2f}x); "
                  f"PPO phase ours {ours_ppo:.3f} s, 0.1.2 {seed_ppo:.3f} s ({seed_ppo / ours_ppo:.2f}x)", flush=True)
    out = Path(__file__).parent/"results"/"trainer_epoch.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                               "setup": dict(sample_batch_size=SAMPLE_BATCH, batches=BATCHES, train_batch_size=TRAIN_BATCH,
                                             num_inference_steps=N, noise_strength=STRENGTH, trained_steps=int(N * STRENGTH)),
                               "rows": rows}, indent=1))
    print("wrote", out)

if __name__ == "__main__": main()
