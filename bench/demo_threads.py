"""The demo's epoch time by PyTorch thread count and OpenMP wait policy, on an idle machine and beside a busy process.

Each configuration runs in a fresh process (OpenMP reads `OMP_NUM_THREADS` and `OMP_WAIT_POLICY` once, when torch
loads): the demo's trainer (its `DEMO_CONFIG`: 64 samples per epoch, 10 steps at strength 0.6) trains for
`--epochs` epochs after one warm-up epoch, and the median epoch time is reported. "busy" runs the same
worker while another process keeps one core busy (a pure-Python loop, standing in for any other job on a
shared machine). A worker that has not finished its epochs within `--cap` seconds reports what it timed.

    python bench/demo_threads.py --out bench/results/demo_threads.json
"""
import argparse, json, multiprocessing, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

from common import machine

CONFIGS = {"2 threads, OMP active (torch's default)": dict(OMP_NUM_THREADS="2"),
           "2 threads, OMP_WAIT_POLICY=PASSIVE": dict(OMP_NUM_THREADS="2", OMP_WAIT_POLICY="PASSIVE"),
           "1 thread": dict(OMP_NUM_THREADS="1")}

def worker(epochs:int, cap:float):
    "Train the demo's task for 1 + `epochs` epochs (or until `cap` s) and print the epoch times as JSON."
    import torch
    from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, ImageDDPOTrainer, pocket_pipeline, pocket_reward
    from imageddpo.demo import DEMO_CONFIG, demo_inputs, demo_prompt_function
    config = ImageDDPOConfig(**{**DEMO_CONFIG, "num_epochs": 1 + epochs, "save_freq": 10**6}, output_dir=tempfile.mkdtemp(),
                             accelerator_kwargs={"cpu": True})
    trainer = ImageDDPOTrainer(config, pocket_reward(), demo_prompt_function(*demo_inputs("train", 0)),
                               I2IDDPOStableDiffusionPipeline(pocket_pipeline()))
    times = []
    for epoch in range(1 + epochs):
        start = time.perf_counter(); trainer.step(epoch); times.append(time.perf_counter() - start)
        if sum(times) > cap: break
    print(json.dumps({"threads": torch.get_num_threads(), "epoch_seconds": times}))

def spin(): 
    while True: pass

def measure(env:dict, epochs:int, cap:float, busy:bool) -> dict:
    hog = multiprocessing.Process(target=spin, daemon=True) if busy else None
    if hog: hog.start()
    try:
        done = subprocess.run([sys.executable, __file__, "--worker", "--epochs", str(epochs), "--cap", str(cap)],
                              capture_output=True, text=True, env={**os.environ, **env}, cwd=Path(__file__).parent)
    finally:
        if hog: hog.terminate(); hog.join()
    if done.returncode: raise RuntimeError(done.stderr[-3000:])
    r = json.loads(done.stdout.strip().splitlines()[-1])
    timed = r["epoch_seconds"][1:] or r["epoch_seconds"]  # the first is the warm-up
    return {"median_epoch_s": round(statistics.median(timed), 3), "epochs_timed": len(timed),
            "epoch_seconds": [round(t, 3) for t in r["epoch_seconds"]]}

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--worker", action="store_true"); p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--cap", type=float, default=120.0); p.add_argument("--out")
    a = p.parse_args()
    if a.worker: worker(a.epochs, a.cap); raise SystemExit
    results = {}
    for load in ("idle", "busy"):
        for name, env in CONFIGS.items():
            results[f"{load}: {name}"] = r = measure(env, a.epochs, a.cap, load == "busy")
            print(f"{load:>5} | {name:<42} | median epoch {r['median_epoch_s']:.2f} s over {r['epochs_timed']}", flush=True)
    base = results["idle: 2 threads, OMP active (torch's default)"]["median_epoch_s"]
    out = {"machine": machine(), "demo_epochs": 180, "results": results,
           "demo_minutes_projected": {k: round(v["median_epoch_s"] * 180 / 60, 1) for k, v in results.items()},
           "ratio_to_idle_default": {k: round(v["median_epoch_s"] / base, 2) for k, v in results.items()}}
    print(json.dumps(out["demo_minutes_projected"], indent=1))
    if a.out: Path(a.out).write_text(json.dumps(out, indent=1))
