"""The README's run file for the built-in tiny models, timed: build, then each epoch (sampling, reward, training).

    python bench/tiny_run_files.py            # every tiny model; writes bench/results/tiny_run_files.json

The run file is read from README.md (the ```yaml block that names `tiny-sdxl`), so the figures are the README's own.
Each model runs in a fresh process. The load average is recorded beside the figures: on a busy machine they grow.
"""
import json, os, re, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, run_worker

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("tiny", "tiny-sdxl", "tiny-sd3", "tiny-flux", "tiny-flux-kontext", "tiny-qwen-image-edit", "tiny-qwen-image-edit-plus")

def readme_run_file() -> str:
    "The README's tiny-model run file."
    return next(b for b in re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S) if "model: tiny-sdxl" in b)

def write_run(folder:Path, model:str) -> Path:
    "The README's run file for `model` in `folder`, beside a photos/ folder of four images."
    import PIL.Image, numpy as np
    (folder / "photos").mkdir(parents=True, exist_ok=True)
    for i in range(4):
        pixels = (np.random.default_rng(i).random((80, 96, 3)) * 255).astype(np.uint8)
        PIL.Image.fromarray(pixels).save(folder / "photos" / f"photo_{i}.png")
    run = folder / "run.yaml"
    run.write_text(re.sub(r"^model: \S+", f"model: {model}", readme_run_file(), flags=re.M))
    return run

def worker(model:str) -> dict:
    "Build the trainer as `imageddpo train` does and train the run file's epochs; seconds of each part."
    from imageddpo.run_config import trainer_from_run_config
    start = time.perf_counter()
    trainer = trainer_from_run_config(write_run(Path(tempfile.mkdtemp()), model))
    built = time.perf_counter() - start
    trainer.train()
    epochs = [h["sample_s"] + h["reward_wait_s"] + h["train_s"] for h in trainer.history]
    return {"model": model, "build_s": round(built, 2), "epoch_s": [round(e, 2) for e in epochs],
            "total_s": round(time.perf_counter() - start, 2), "load_average_1min": os.getloadavg()[0]}

def main():
    rows = [run_worker(sys.executable, __file__, ["--worker", m]) for m in MODELS]
    out = {"machine": machine(), "load_average_before": os.getloadavg(), "run_file": readme_run_file(), "rows": rows}
    (ROOT / "bench" / "results" / "tiny_run_files.json").write_text(json.dumps(out, indent=1))
    for r in rows: print(f"{r['model']:>26}: build {r['build_s']:5.1f} s, epochs {r['epoch_s']} s (load {r['load_average_1min']:.1f})")

if __name__ == "__main__":
    if "--worker" in sys.argv: print(json.dumps(worker(sys.argv[sys.argv.index("--worker") + 1])))
    else: main()
