"""Seconds per DDPO epoch: imageddpo vs the original imageddpo==0.1.2 on trl==0.21.0, side by side.

Both trainers get the same model (loaded from one saved folder), the same inputs from the same prompt
function, the same reward, the same batch sizes and the same trained timesteps (all K executed steps:
ours with train_timestep_fraction=1.0; the original counts the fraction against N, so it gets K/N).
Sampling runs at guidance 1.0 (the original then trains with two UNet passes per step, TRL's
`train_cfg=True` default, where we run one) and at guidance 5.0 (both run CFG).

The original needs its own environment (it pins trl and imports wandb); `bench/run_all.py` creates it, or:

    python -m venv /tmp/seedvenv && /tmp/seedvenv/bin/pip install torch==2.13.0 imageddpo==0.1.2 scikit-learn
    python bench/trainer_epoch.py --seed-python /tmp/seedvenv/bin/python [--out trainer_epoch.json]

Each (implementation, model, guidance) runs in a fresh process, alternating implementations, `--rounds`
times; an epoch's time is the median over the epochs after the first (warm-up) of every round.
"""
import argparse, json, statistics, sys, tempfile, time
from pathlib import Path

from common import digit_inputs, machine, peak_memory, run_worker

SAMPLE_BATCH, BATCHES, TRAIN_BATCH, N, STRENGTH = 8, 2, 4, 10, 0.5
TRAINED = int(N * STRENGTH)  # trained steps per sample (all K executed ones)

def worker(impl:str, model:str, guidance:float, epochs:int, size:int, per_pass:int=1) -> dict:
    "Time `epochs` epochs (and their PPO phase) of one implementation in this process."
    import torch
    torch.manual_seed(0)
    images, position = digit_inputs(size), 0
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
        config = ImageDDPOConfig(**common, noise_strength=STRENGTH, train_timestep_fraction=1.0, output_dir=out_dir,
                                 train_timesteps_per_pass=per_pass)
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
    return {"times": times, **peak_memory()}

def run(seed_python:str, models=("pocket", "mid"), rounds:int|dict=2, epochs:int|dict=3, progress=print) -> dict:
    """Both implementations on every (model, guidance), alternating, each run in its own process; `rounds`, `epochs` may be
    per model. At guidance 1 also ours with all trained steps of a minibatch in one UNet call (`train_timesteps_per_pass`)."""
    per_model = lambda value: value if isinstance(value, dict) else {m: value for m in models}
    rounds, epochs = per_model(rounds), per_model(epochs)
    from rollout import MODELS
    root = Path(tempfile.mkdtemp())
    rows = []
    for model in models:
        make, size = MODELS[model]
        path = root/model; make().save_pretrained(path)
        for guidance in (1.0, 5.0):
            impls = [("ours", sys.executable, 1), ("seed", seed_python, 1)]
            if guidance <= 1: impls.append(("ours_batched", sys.executable, TRAINED))
            times, memory = {impl: [] for impl, *_ in impls}, {impl: [] for impl, *_ in impls}
            for _ in range(rounds[model]):
                for impl, python, per_pass in impls:
                    r = run_worker(python, __file__, ["--worker", impl.split("_")[0], "--model", path, "--guidance", guidance,
                                                      "--epochs", epochs[model], "--size", size, "--per-pass", per_pass])
                    times[impl] += r["times"][1:]; memory[impl].append(r["peak_rss_mb"])
            med = lambda impl, i: statistics.median(t[i] for t in times[impl])
            ours, seed, ours_ppo, seed_ppo = med("ours", 0), med("seed", 0), med("ours", 1), med("seed", 1)
            row = {"model": model, "guidance": guidance, "ours_epoch_s": ours, "seed_epoch_s": seed,
                   "epoch_speedup": seed / ours, "ours_ppo_s": ours_ppo, "seed_ppo_s": seed_ppo,
                   "ppo_speedup": seed_ppo / ours_ppo, "epochs_timed": len(times["ours"]),
                   "ours_peak_rss_mb": max(memory["ours"]), "seed_peak_rss_mb": max(memory["seed"])}
            if "ours_batched" in times:
                row.update(batched_epoch_s=med("ours_batched", 0), batched_speedup=seed / med("ours_batched", 0),
                           batched_peak_rss_mb=max(memory["ours_batched"]))
            rows.append(row)
            progress(f"  vs 0.1.2 {model} g={guidance}: epoch {ours:.3f} s vs {seed:.3f} s ({seed / ours:.2f}x)"
                     + (f"; {TRAINED} steps per call {row['batched_speedup']:.2f}x" if "batched_speedup" in row else ""))
    return {"setup": dict(sample_batch_size=SAMPLE_BATCH, batches=BATCHES, train_batch_size=TRAIN_BATCH, num_inference_steps=N,
                          noise_strength=STRENGTH, trained_steps=int(N * STRENGTH), rounds=rounds, epochs=epochs), "rows": rows}

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed-python", default="/tmp/seedvenv/bin/python")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--worker"); p.add_argument("--model"); p.add_argument("--guidance", type=float)
    p.add_argument("--size", type=int); p.add_argument("--per-pass", type=int, default=1)
    p.add_argument("--models", nargs="*", default=["pocket", "mid"])
    p.add_argument("--out", default=None)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.model, a.guidance, a.epochs, a.size, a.per_pass))); return
    result = {"machine": machine(), **run(a.seed_python, a.models, a.rounds, a.epochs)}
    if a.out: Path(a.out).write_text(json.dumps(result, indent=1)); print("wrote", a.out)

if __name__ == "__main__": main()
