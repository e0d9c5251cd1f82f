"""Trainer epoch time of two checkouts of imageddpo, side by side in one run: did a change make training slower?

Each (checkout, workload) pair runs in its own fresh process, one epoch to warm up and `--epochs` timed ones; the
rounds alternate between the checkouts, so a shared machine's slow spells hit both alike. It reports the median
epoch seconds of each checkout and the ratio B/A per workload (with the spread of the per-round ratios).
Only the public API that every version since 0.2 has is used (`policy_for`, the tiny pipelines, the trainer).

    git worktree add /tmp/before <commit>
    python bench/ab_epochs.py --a /tmp/before --b . [--rounds 5] [--epochs 3] [--out ab.json]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

from common import machine

WORKLOADS = {  # name -> (model, objective, sample_eta)
    "sd-ppo": ("tiny", "ppo", 1.0), "sd-nft": ("tiny", "nft", 0.0), "sdxl-ppo": ("tiny-sdxl", "ppo", 1.0),
    "sd3-nft": ("tiny-sd3", "nft", 1.0),
}

def worker(model:str, objective:str, eta:float, epochs:int) -> dict:
    "Median seconds of `epochs` trainer epochs (after one warm-up epoch) of a tiny model, in this process."
    import torch
    from imageddpo import ImageDDPOConfig, ImageDDPOTrainer, policy_for, tiny_pipeline, tiny_sd3_pipeline, tiny_sdxl_pipeline
    torch.manual_seed(0); torch.set_num_threads(1)
    build = {"tiny": tiny_pipeline, "tiny-sdxl": tiny_sdxl_pipeline, "tiny-sd3": tiny_sd3_pipeline}[model]
    images = torch.rand(16, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    prompt_function = lambda: ("a handwritten digit", images[int(torch.randint(len(images), ()))], {})
    config = ImageDDPOConfig(mixed_precision="no", sample_num_steps=10, noise_strength=0.5, sample_guidance_scale=1.0, sample_eta=eta,
                             sample_batch_size=8, sample_num_batches_per_epoch=1, train_batch_size=4, sample_group_size=4,
                             train_objective=objective, num_epochs=epochs + 1, save_freq=10**6, output_dir=tempfile.mkdtemp())
    trainer = ImageDDPOTrainer(config, lambda out, p, m: out.mean(dim=(1, 2, 3)), prompt_function, policy_for(build()))
    seconds = []
    for epoch in range(epochs + 1):
        start = time.perf_counter(); trainer.step(epoch); seconds.append(time.perf_counter() - start)
    return {"epoch_s": statistics.median(seconds[1:])}

def run(tree:Path, workload:str, epochs:int) -> float:
    "One fresh process of `workload` on the checkout `tree`: its median epoch seconds."
    model, objective, eta = WORKLOADS[workload]
    code = (f"import sys, json; sys.path[:0] = [{str(tree)!r}, {str(Path(__file__).parent)!r}]; from ab_epochs import worker; "
            f"print(json.dumps(worker({model!r}, {objective!r}, {eta!r}, {epochs})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tree)})
    if out.returncode: raise RuntimeError(f"{workload} on {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["epoch_s"]

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="the checkout to compare against (its root folder)")
    parser.add_argument("--b", default=".", help="the checkout under test")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    trees = {"a": Path(args.a).resolve(), "b": Path(args.b).resolve()}
    times = {w: {"a": [], "b": []} for w in args.workloads}
    for r in range(args.rounds):
        for w in args.workloads:
            for side in (("a", "b") if r % 2 == 0 else ("b", "a")):  # alternate which goes first
                times[w][side].append(run(trees[side], w, args.epochs))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    rows = []
    for w, t in times.items():
        ratios = [b / a for a, b in zip(t["a"], t["b"])]
        rows.append({"workload": w, "a_epoch_s": statistics.median(t["a"]), "b_epoch_s": statistics.median(t["b"]),
                     "ratio_b_over_a": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)})
        print(f"{w:9s} A {rows[-1]['a_epoch_s']:.3f} s  B {rows[-1]['b_epoch_s']:.3f} s  B/A {rows[-1]['ratio_b_over_a']:.3f} "
              f"(rounds {min(ratios):.3f}-{max(ratios):.3f})")
    result = {"machine": machine(), "trees": {k: str(v) for k, v in trees.items()}, "rounds": args.rounds, "epochs": args.epochs, "rows": rows}
    if args.out: Path(args.out).write_text(json.dumps(result, indent=1))

if __name__ == "__main__": main()
