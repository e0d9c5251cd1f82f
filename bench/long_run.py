"""A long run of the tiny model with a checkpoint every epoch: does anything grow?

Every `--every` epochs it records the process's resident memory, open file descriptors, threads and the bytes
under output_dir (the checkpoints kept by `num_checkpoint_limit`, the logs). A trainer that leaks shows a rising
line; a bounded one is flat after its warm-up.

    python bench/long_run.py --epochs 3000 --out bench/results/long_run.json
"""
import argparse, json, os, tempfile, threading, time
from pathlib import Path

import psutil, torch

from common import machine
from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, ImageDDPOTrainer, tiny_pipeline

def folder_bytes(path:Path) -> int: return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

def measure(epochs:int, every:int, keep:int) -> dict:
    out = Path(tempfile.mkdtemp()) / "run"
    config = ImageDDPOConfig(mixed_precision="no", sample_num_steps=4, noise_strength=0.5, sample_guidance_scale=1.0,
                             sample_batch_size=2, train_batch_size=2, num_epochs=epochs, save_freq=1,
                             num_checkpoint_limit=keep, output_dir=str(out), accelerator_kwargs={"cpu": True})
    trainer = ImageDDPOTrainer(config, lambda images, prompts, metadata: images.mean(dim=(1, 2, 3)),
                               lambda: ("a photo", torch.rand(3, 32, 32), {}), I2IDDPOStableDiffusionPipeline(tiny_pipeline()))
    me, rows, start = psutil.Process(), [], time.perf_counter()
    for epoch in range(epochs):
        trainer.step(epoch)
        if (epoch + 1) % every == 0:
            rows.append(dict(epoch=epoch + 1, seconds=round(time.perf_counter() - start, 1),
                             rss_mb=round(me.memory_info().rss / 2**20, 1), open_files=len(os.listdir("/proc/self/fd")),
                             threads=threading.active_count(), os_threads=me.num_threads(),
                             checkpoints=len(list((out / "checkpoints").iterdir())), output_bytes=folder_bytes(out)))
            print(rows[-1], flush=True)
    first, last = rows[0], rows[-1]
    return dict(machine=machine(), epochs=epochs, every=every, num_checkpoint_limit=keep, rows=rows,
                rss_growth_mb=round(last["rss_mb"] - first["rss_mb"], 1),
                rss_growth_kb_per_epoch=round((last["rss_mb"] - first["rss_mb"]) * 1024 / (last["epoch"] - first["epoch"]), 2),
                open_files_change=last["open_files"] - first["open_files"], threads_change=last["os_threads"] - first["os_threads"],
                output_bytes_max=max(r["output_bytes"] for r in rows))

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=3000); p.add_argument("--every", type=int, default=250)
    p.add_argument("--keep", type=int, default=2); p.add_argument("--out")
    a = p.parse_args()
    result = measure(a.epochs, a.every, a.keep)
    print(json.dumps({k: v for k, v in result.items() if k not in ("rows", "machine")}))
    if a.out: Path(a.out).write_text(json.dumps(result, indent=1))
