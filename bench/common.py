"""Helpers shared by the benchmark scripts: timing, peak memory, the machine, and worker processes."""
import json, os, platform, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path

def synchronize():
    "Wait for queued CUDA work (a no-op on the CPU), so a timer measures the work, not its launch."
    import torch
    if torch.cuda.is_available(): torch.cuda.synchronize()

def timed(fn) -> float:
    "Seconds one call of `fn()` takes."
    start = time.perf_counter(); fn(); synchronize()
    return time.perf_counter() - start

def median_time(fn, repeats:int=5) -> float:
    "Median seconds of `fn()` over `repeats` calls after one warm-up call."
    fn(); synchronize()
    return statistics.median(timed(fn) for _ in range(repeats))

def peak_rss_mb() -> float:
    "This process's peak resident memory in MB: Linux's VmHWM (ru_maxrss would include the parent's memory at fork)."
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"): return round(int(line.split()[1]) / 1024, 1)
    except OSError: pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

def peak_memory() -> dict:
    "This process's peak resident memory and, on CUDA, torch's peak allocated memory, in MB."
    out = {"peak_rss_mb": peak_rss_mb()}
    import torch
    if torch.cuda.is_available(): out["gpu_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out

def machine() -> dict:
    "What the figures were measured on."
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        names = [l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError: pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}

def run_worker(python:str, script:str, args:list, env:dict|None=None) -> dict:
    "Run `python script args...` in a fresh process (own memory, own warm-up) and parse the JSON of its last line."
    cmd = [python, str(script), *map(str, args)]
    env = {**os.environ, "PYTHONPATH": "", "WANDB_MODE": "disabled", **(env or {})}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    if done.returncode: raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])

def digit_inputs(size:int):
    "The shared inputs: 64 noisy handwritten digits (scikit-learn's) at `size` px, as CHW tensors in [0, 1]."
    import torch, torch.nn.functional as F
    from sklearn.datasets import load_digits
    digits = torch.tensor(load_digits().images[:64], dtype=torch.float32)[:, None] / 16
    images = F.interpolate(digits, size=(size, size), mode="bilinear").repeat(1, 3, 1, 1)
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(0))
    return (0.7 * images + 0.3 * noise).clamp(0, 1)
