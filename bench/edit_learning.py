"""Does a dedicated edit model learn edits faster than img2img? The digit edit task (chapter 00d) trained three ways (issue 29).

- `kontext_nft`: the pocket edit model (FLUX.1 Kontext's architecture) from pure noise, conditioned on the reference;
- `img2img_nft`: the pocket SD 1.x model in img2img mode on the same references, its prompt naming the target digit
  ("a handwritten digit 7", what it was trained on), at a `noise_strength` high enough to change the digit;
- `kontext_nft_ink`: `kontext_nft` with a term in the reward for keeping the reference's ink strength.

All train with the demo's recipe (NFT, groups of 8, 64 samples an epoch; chapter 08b) against
`pocket_edit_reward(keep, keep_ink)`: the pocket classifier's log-probability of the target class plus `keep` x SSIM to
the input (and, for the third, minus `keep_ink` x the ink-strength gap). Every `--eval-every` epochs each is evaluated on the 297 held-out references (chapter 00d's `edit_task`, seed
0): accuracy under the pocket classifier and under the second judge no policy trains against, the style gap (ink
position and strength) and the SSIM to the reference, sampling deterministically (noise level 0, 10 steps); its
`reward_mean` is the shared reward's (no ink term).

    python bench/edit_learning.py --all [--seeds 0 1 2 3 4] [--jobs 2]   # every (method, seed), then bench/results/edit_learning.json
    python bench/edit_learning.py --method kontext_nft --seed 0           # one run, one JSON line
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = RESULTS / "edit_runs"
KEEP = 0.5  # the preservation term's weight in the reward
KEEP_INK = 5.0  # kontext_nft_ink's weight of the ink-strength gap (chapter 00d's ink_keep_reward)

METHODS = {  # name -> (model, ImageDDPOConfig overrides on the demo's configuration, pocket_edit_reward's ink weight)
    "kontext_nft": ("pocket-edit", dict(noise_strength=1.0, sample_eta=0.7), 0.0),
    "img2img_nft": ("pocket", dict(noise_strength=0.8), 0.0),
    "kontext_nft_ink": ("pocket-edit", dict(noise_strength=1.0, sample_eta=0.7), KEEP_INK),
}

def instruction(method:str, target:int) -> str:
    "What each model is asked: the edit model its instruction, the text-to-image model the target digit's prompt."
    from imageddpo.pocket_edit import edit_prompt
    from imageddpo.pocket_training import digit_prompt
    return edit_prompt(target) if METHODS[method][0] == "pocket-edit" else digit_prompt(target)

def policy_for_method(method:str):
    from imageddpo import I2IDDPOStableDiffusionPipeline, pocket_pipeline
    from imageddpo.pocket_edit import pocket_edit_policy
    return pocket_edit_policy() if METHODS[method][0] == "pocket-edit" else I2IDDPOStableDiffusionPipeline(pocket_pipeline())

def evaluate(policy, method:str, config, task:dict, judge, classifier) -> dict:
    "Held-out edits (chapter 00d's `evaluate_edits`: noise level 0, 10 steps): both judges' accuracy, the style gap, SSIM, the reward's mean."
    from imageddpo.pocket_edit import evaluate_edits
    r = evaluate_edits(policy, task, judge=judge, classifier=classifier, seed=1234, noise_strength=config.noise_strength,
                       prompts=[instruction(method, int(t)) for t in task["targets"]])
    return dict(accuracy=r["accuracy"], second_judge_accuracy=r["judge_accuracy"], ssim=r["ssim"],
                reward_mean=r["log_p"].mean().item() + KEEP * r["ssim"],
                position_px=r["position_px"], ink=r["ink"])

def run(method:str, seed:int, epochs:int, eval_every:int) -> dict:
    "Train one (method, seed) and evaluate it on the held-out edits every `eval_every` epochs."
    from imageddpo.callbacks import TrainerCallback
    from imageddpo.config import ImageDDPOConfig
    from imageddpo.demo import DEMO_CONFIG
    from imageddpo.digits import SecondJudge, digits_dataset, pocket_classifier
    from imageddpo.pocket_edit import edit_task, pocket_edit_reward, random_styles, styled
    from imageddpo.trainer import ImageDDPOTrainer
    model, overrides, keep_ink = METHODS[method]
    config = ImageDDPOConfig(**{**DEMO_CONFIG, **overrides, "num_epochs": epochs, "save_freq": 10**6}, seed=seed,
                             output_dir=tempfile.mkdtemp(), accelerator_kwargs={"cpu": True})
    images, labels = digits_dataset("train")
    def prompt_function():  # the global generator: seeded by the trainer
        i, shift = int(torch.randint(len(images), ())), int(torch.randint(1, 10, ()))
        target = (int(labels[i]) + shift) % 10
        return instruction(method, target), styled(images[i:i + 1], random_styles(1))[0], {"label": int(labels[i]), "target": target}
    heldout, judge, classifier = edit_task("heldout", seed=0), SecondJudge(), pocket_classifier()
    torch.manual_seed(seed)
    policy = policy_for_method(method)
    curve, clock = [], {"train_s": 0.0}
    class Evaluate(TrainerCallback):
        def on_epoch_end(self, trainer, result):
            clock["train_s"] += sum(result.stats[k] for k in ("sample_s", "reward_wait_s", "train_s"))
            done = result.epoch + 1
            if done % eval_every == 0 or done == epochs:
                curve.append(dict(epoch=done, samples=done * result.stats["num_samples"], train_s=clock["train_s"],
                                  **evaluate(trainer.sd_pipeline, method, config, heldout, judge, classifier)))
    trainer = ImageDDPOTrainer(config, pocket_edit_reward(KEEP, keep_ink), prompt_function, policy, callbacks=[Evaluate()])
    with policy.adapters_disabled():
        curve.append(dict(epoch=0, samples=0, train_s=0.0, **evaluate(policy, method, config, heldout, judge, classifier)))
    trainer.train()
    return dict(method=method, model=model, seed=seed, epochs=epochs, keep=KEEP, keep_ink=keep_ink, overrides=overrides, curve=curve,
                training_reward=[h["reward_mean"] for h in trainer.history])

def run_process(method:str, seed:int, epochs:int, eval_every:int) -> subprocess.Popen:
    "One `run` in its own single-threaded process, writing RUNS/<method>_s<seed>.json."
    cmd = [sys.executable, __file__, "--method", method, "--seed", str(seed), "--epochs", str(epochs), "--eval-every", str(eval_every),
           "--out", str(RUNS / f"{method}_s{seed}.json")]
    return subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})

def grid(seeds, jobs:int, epochs:int, eval_every:int) -> list:
    "Every (method, seed) not yet run, `jobs` at a time; then every finished run."
    RUNS.mkdir(parents=True, exist_ok=True)
    todo = [(m, s) for s in seeds for m in METHODS if not (RUNS / f"{m}_s{s}.json").exists()]
    running = []
    while todo or running:
        while todo and len(running) < jobs:
            m, s = todo.pop(0); running.append(run_process(m, s, epochs, eval_every))
        time.sleep(2)
        for p in [p for p in running if p.poll() is not None]:
            if p.returncode: raise SystemExit(f"{p.args} failed with {p.returncode}")
            running.remove(p)
    return [json.loads(p.read_text()) for p in sorted(RUNS.glob("*.json"))]

def summary(runs:list) -> list[dict]:
    "Per method: start and final of each measure over seeds (median, worst, best) and the samples and seconds to a target accuracy."
    rows = []
    for method in METHODS:
        mine = sorted((r for r in runs if r["method"] == method), key=lambda r: r["seed"])
        if not mine: continue
        row = dict(method=method, seeds=len(mine), samples=mine[0]["curve"][-1]["samples"])
        for key in ("accuracy", "second_judge_accuracy", "ssim", "position_px", "ink"):
            worse = max if key in ("position_px", "ink") else min  # style gaps: lower is better
            for when, i in (("start", 0), ("final", -1)):
                values = [r["curve"][i][key] for r in mine]
                best = min if worse is max else max
                row[f"{when}_{key}"] = dict(median=statistics.median(values), worst=worse(values), best=best(values))
        for target in (0.8, 0.9):
            reached = [next((p for p in r["curve"] if p["accuracy"] >= target), None) for r in mine]
            row[f"to_{int(target * 100)}pct"] = dict(seeds_reaching=sum(p is not None for p in reached),
                                                     median_samples=statistics.median(p["samples"] for p in reached) if all(reached) else None,
                                                     median_train_s=statistics.median(p["train_s"] for p in reached) if all(reached) else None)
        rows.append(row)
    return rows

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", choices=list(METHODS)); p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=40); p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--all", action="store_true"); p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--jobs", type=int, default=2); p.add_argument("--out")
    a = p.parse_args()
    if a.all:
        from common import machine
        runs = grid(a.seeds, a.jobs, a.epochs, a.eval_every)
        result = dict(machine=machine(), keep=KEEP, epochs=a.epochs, eval_every=a.eval_every, summary=summary(runs), runs=runs)
        out = Path(a.out or RESULTS / "edit_learning.json"); out.write_text(json.dumps(result, indent=1))
        print(json.dumps(result["summary"], indent=1)); print(f"wrote {out}")
    elif a.method:
        result = run(a.method, a.seed, a.epochs, a.eval_every)
        text = json.dumps(result)
        if a.out: Path(a.out).write_text(text)
        print(text)
    else: p.error("give --method (one run) or --all")

if __name__ == "__main__": main()
