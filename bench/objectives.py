"""Which objective learns most per sample and per second: PPO, PPO with groups, NFT and AWM on the pocket model (issue 17).

    python bench/objectives.py --all [--jobs 2] [--seeds 0 1 2]    # the grid, then bench/results/objectives.json
    python bench/objectives.py --task demo --method nft_g8 --seed 0 --epochs 90   # one run, one JSON line
    python bench/objectives.py --timing                            # median epoch seconds per method, side by side
    python bench/objectives.py --flow [--seeds 0 1 2]              # NFT and PPO (groups of 8) on the pocket flow model

Two tasks on the demo's corrupted digits (chapter 06c): `demo` (the prompt names the digit) and `blind`
(an empty prompt: the policy must recover the digit from the corrupted image alone). Every method trains
with the demo's configuration (DEMO_CONFIG) and changes only what its name says. Held-out accuracy is
judged by the reward's own classifier and by a second judge the policy never trained against: an RBF
support-vector machine fitted on the original 8x8 training digits (another model family, another
resolution), so a policy that fools the pocket classifier without drawing the digit shows up as a gap.
"""
import argparse, json, os, subprocess, statistics, sys, tempfile, time
from pathlib import Path

import torch

from imageddpo.digits import SecondJudge  # the judge no policy trains against (chapter 00b)

METHODS = {  # name -> ImageDDPOConfig overrides on top of the demo's configuration (its objective and groups replaced)
    "ppo": dict(train_objective="ppo", sample_group_size=1),
    "ppo_g8": dict(train_objective="ppo", sample_group_size=8),
    "nft_g8": dict(train_objective="nft", sample_group_size=8),
    "awm_g8": dict(train_objective="awm", sample_group_size=8),
}
EXTRA = {  # measured on the demo task only (python bench/objectives.py --extra): what else the objectives allow
    "nft_g8_eta0": dict(train_objective="nft", sample_group_size=8, sample_eta=0.0),  # deterministic DDIM sampling
    "nft_g8_n5": dict(train_objective="nft", sample_group_size=8, sample_num_steps=5),  # half the sampling steps in training
    "ppo_g8_w2": dict(train_objective="ppo", sample_group_size=8, sde_window=2, sde_window_stride=10),  # MixGRPO's sliding window
    "ppo_g8_cfg3": dict(train_objective="ppo", sample_group_size=8, sample_guidance_scale=3.0),  # trained (and evaluated) with CFG
    "nft_g8_cfg3": dict(train_objective="nft", sample_group_size=8, sample_guidance_scale=3.0),  # samples with CFG, trains unguided
}
FLOW_METHODS = ("nft_g8", "ppo_g8", "nft_g8_n5", "ppo_g8_w2", "ppo_g8_cfg3", "nft_g8_cfg3")  # on the pocket flow model (SD3 architecture, chapter 02d), demo task, 40 epochs
TASKS = ("demo", "blind")
RESULTS = Path(__file__).parent / "results"

def policy_for_model(model:str):
    "The LoRA policy a run trains: the SD 1.x pocket model, or the pocket flow model (its LoRA drawn from torch's global RNG)."
    if model == "pocket":
        from imageddpo.pipeline import I2IDDPOStableDiffusionPipeline
        from imageddpo.pocket import pocket_pipeline
        return I2IDDPOStableDiffusionPipeline(pocket_pipeline(), lora_seed=None)
    from imageddpo.pocket import POCKET_SD3_TEXT_TOKENS, pocket_sd3_pipeline
    from imageddpo.sd3 import I2IDDPOStableDiffusion3Pipeline
    return I2IDDPOStableDiffusion3Pipeline(pocket_sd3_pipeline(), lora_seed=None, max_sequence_length=POCKET_SD3_TEXT_TOKENS)

def task_prompt(task:str, label:int) -> str:
    from imageddpo.pocket_training import digit_prompt
    return digit_prompt(label) if task == "demo" else ""

@torch.no_grad()
def evaluate(policy, config, task:str, heldout, judge:SecondJudge, classifier) -> dict:
    "Held-out accuracy under both judges and the mean reward, sampling as the last epoch does (fixed seed) with the demo's N steps."
    from imageddpo.demo import DEMO_CONFIG
    corrupted, _, labels = heldout
    arguments = {**config.rollout_arguments(config.num_epochs - 1), "num_inference_steps": DEMO_CONFIG["sample_num_steps"]}
    generator, outputs = torch.Generator().manual_seed(1234), []
    for start in range(0, len(corrupted), 128):
        prompts = [task_prompt(task, int(y)) for y in labels[start:start + 128]]
        outputs.append(policy.rollout(corrupted[start:start + 128], prompts, generator=generator, **arguments).images.cpu())
    images = torch.cat(outputs)
    log_p = classifier(images).log_softmax(1)
    return dict(accuracy=(log_p.argmax(1) == labels).float().mean().item(), second_judge_accuracy=judge.accuracy(images, labels),
                reward_mean=log_p.gather(1, labels[:, None]).mean().item())

def method_config(method:str, epochs:int, seed:int=0):
    "The demo's configuration with `method`'s overrides, `epochs` long, no checkpoints, in a temporary folder, on the CPU."
    from imageddpo.config import ImageDDPOConfig
    from imageddpo.demo import DEMO_CONFIG
    return ImageDDPOConfig(**{**DEMO_CONFIG, **(METHODS | EXTRA)[method], "num_epochs": epochs, "save_freq": 10**6}, seed=seed,
                           output_dir=tempfile.mkdtemp(), accelerator_kwargs={"cpu": True})

def run(task:str, method:str, seed:int, epochs:int, eval_every:int, model:str="pocket") -> dict:
    "Train one (task, method, seed) of `model` and evaluate on the held-out digits every `eval_every` epochs."
    from imageddpo.callbacks import TrainerCallback
    from imageddpo.demo import demo_inputs
    from imageddpo.digits import pocket_classifier, pocket_reward
    from imageddpo.trainer import ImageDDPOTrainer
    train, heldout = demo_inputs("train", seed=0), demo_inputs("heldout", seed=1)
    judge, classifier = SecondJudge(), pocket_classifier()
    config = method_config(method, epochs, seed)
    corrupted, _, labels = train
    def prompt_function():
        i = int(torch.randint(len(corrupted), ()))
        return task_prompt(task, int(labels[i])), corrupted[i], {"label": int(labels[i])}
    torch.manual_seed(seed)
    policy = policy_for_model(model)
    curve, clock = [], {"train_s": 0.0}
    class Evaluate(TrainerCallback):
        def on_epoch_end(self, trainer, result):
            clock["train_s"] += sum(result.stats[k] for k in ("sample_s", "reward_wait_s", "train_s"))
            done = result.epoch + 1
            if done % eval_every == 0 or done == epochs:
                curve.append(dict(epoch=done, samples=done * result.stats["num_samples"], train_s=clock["train_s"],
                                  **evaluate(trainer.sd_pipeline, config, task, heldout, judge, classifier)))
    trainer = ImageDDPOTrainer(config, pocket_reward(classifier), prompt_function, policy, callbacks=[Evaluate()])
    with policy.adapters_disabled():
        curve.append(dict(epoch=0, samples=0, train_s=0.0, **evaluate(policy, config, task, heldout, judge, classifier)))
    trainer.train()
    return dict(task=task, method=method, seed=seed, epochs=epochs, model=model, overrides=(METHODS | EXTRA)[method], curve=curve,
                training_reward=[h["reward_mean"] for h in trainer.history],
                uniform_group_fraction=[h.get("uniform_group_fraction") for h in trainer.history])

def timing(epochs:int=6) -> dict:
    "Median seconds of an epoch (sampling + reward + training) per method, after one warm-up epoch, one process, one thread."
    from imageddpo.demo import demo_inputs, demo_prompt_function
    from imageddpo.digits import pocket_reward
    from imageddpo.trainer import ImageDDPOTrainer
    result = {}
    for method in METHODS:
        trainer = ImageDDPOTrainer(method_config(method, epochs), pocket_reward(), demo_prompt_function(*demo_inputs("train", seed=0)),
                                   policy_for_model("pocket"))
        seconds = []
        for epoch in range(epochs):
            start = time.perf_counter(); trainer.step(epoch); seconds.append(time.perf_counter() - start)
        result[method] = statistics.median(seconds[1:])
        print(f"{method:>8}: {result[method]:.3f} s/epoch", flush=True)
    return result

def interleaved_timing(methods, model:str, epochs:int=8) -> dict:
    "Median epoch seconds per method, one trainer each in one process, their epochs taken in turn (a shared machine's drift hits all alike)."
    from imageddpo.demo import demo_inputs, demo_prompt_function
    from imageddpo.digits import pocket_reward
    from imageddpo.trainer import ImageDDPOTrainer
    inputs = demo_inputs("train", seed=0)
    trainers = {m: ImageDDPOTrainer(method_config(m, epochs), pocket_reward(), demo_prompt_function(*inputs), policy_for_model(model))
                for m in methods}
    seconds = {m: [] for m in methods}
    for epoch in range(epochs):
        for m, trainer in trainers.items():
            start = time.perf_counter(); trainer.step(epoch); seconds[m].append(time.perf_counter() - start)
    return {m: statistics.median(v[1:]) for m, v in seconds.items()}  # the first epoch is a warm-up

RUNS = RESULTS / "objectives_runs"  # one JSON file per (task, method, seed); the grid's and --extra's

FLOW_RUNS = RESULTS / "flow_runs"  # the pocket flow model's runs (--flow), kept apart from the SD 1.x grid's

def run_process(task:str, method:str, seed:int, epochs:int, eval_every:int, model:str="pocket") -> subprocess.Popen:
    "One `run` in its own single-threaded process, writing RUNS/<task>_<method>_s<seed>.json (FLOW_RUNS for the flow model)."
    folder = RUNS if model == "pocket" else FLOW_RUNS
    cmd = [sys.executable, __file__, "--task", task, "--method", method, "--seed", str(seed), "--epochs", str(epochs),
           "--eval-every", str(eval_every), "--model", model, "--out", str(folder / f"{task}_{method}_s{seed}.json")]
    return subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})

def finished_runs(methods) -> list:
    "The finished runs of `methods` in RUNS."
    return [r for r in (json.loads(p.read_text()) for p in sorted(RUNS.glob("*.json"))) if r["method"] in methods]

def grid(seeds, jobs:int, budgets:dict, eval_every:int) -> list:
    "Every (task, method, seed) in its own single-threaded process, `jobs` at a time; the finished runs."
    RUNS.mkdir(parents=True, exist_ok=True)
    todo = [(t, m, s) for s in seeds for t in TASKS for m in METHODS if not (RUNS / f"{t}_{m}_s{s}.json").exists()]
    running = []
    while todo or running:
        while todo and len(running) < jobs:
            t, m, s = todo.pop(0)
            running.append(run_process(t, m, s, budgets[m], eval_every))
        time.sleep(2)
        for p in [p for p in running if p.poll() is not None]:
            if p.returncode: raise SystemExit(f"{p.args} failed with {p.returncode}")
            running.remove(p)
    return finished_runs(METHODS)

def curves(result:dict, task:str, method:str, key:str="accuracy") -> tuple[list, list]:
    "(samples at each evaluation, [one list of `key` per seed]) of a task and method."
    runs = sorted((r for r in result["runs"] if r["task"] == task and r["method"] == method), key=lambda r: r["seed"])
    return [p["samples"] for p in runs[0]["curve"]], [[p[key] for p in r["curve"]] for r in runs]

def samples_per_epoch(result:dict) -> int:
    "Samples drawn per epoch in these runs (every method samples as the demo does)."
    last = result["runs"][0]["curve"][-1]
    return last["samples"] // last["epoch"]

def to_target(samples:list, values:list, target:float):
    "The first number of samples at which `values` reaches `target` (None: never)."
    return next((s for s, v in zip(samples, values) if v >= target - 1e-9), None)

def summary(result:dict, timing:dict) -> dict:
    "Per task and method: medians over seeds of start and final accuracy (both judges), samples and wall time to the target."
    med = lambda xs: statistics.median(xs) if xs and None not in xs else None
    _, ppo = curves(result, "demo", "ppo")
    target = statistics.median(seeds[-1] for seeds in ppo)  # what today's default reaches at the demo's budget
    rows, per_epoch_samples = [], samples_per_epoch(result)
    for task in TASKS:
        for method in METHODS:
            samples, accuracy = curves(result, task, method)
            _, judge2 = curves(result, task, method, "second_judge_accuracy")
            reached = [to_target(samples, seed, target) for seed in accuracy]
            per_epoch = timing["seconds_per_epoch"][method]
            rows.append(dict(task=task, method=method, seeds=len(accuracy), budget_samples=samples[-1],
                             start=med([a[0] for a in accuracy]), final=med([a[-1] for a in accuracy]),
                             final_second_judge=med([j[-1] for j in judge2]), start_second_judge=med([j[0] for j in judge2]),
                             samples_to_target=med(reached) if task == "demo" else None,
                             seeds_reaching_target=sum(r is not None for r in reached) if task == "demo" else None,
                             seconds_per_epoch=per_epoch,
                             wall_to_target_s=(med(reached) / per_epoch_samples * per_epoch
                                               if task == "demo" and med(reached) is not None else None)))
    return dict(target=target, rows=rows)

def goals(result:dict, timing:dict) -> dict:
    "Issue 17's goals, from the figures: the best objective against the PPO default on the demo task, and the blind task's gain."
    rows = {(r["task"], r["method"]): r for r in summary(result, timing)["rows"]}
    ppo = rows["demo", "ppo"]
    budget, ppo_wall = ppo["budget_samples"], ppo["budget_samples"] / samples_per_epoch(result) * ppo["seconds_per_epoch"]
    out = {}
    for method in METHODS:
        r = rows["demo", method]
        if method == "ppo" or r["samples_to_target"] is None: continue
        out[method] = dict(fewer_samples=budget / r["samples_to_target"], less_wall=ppo_wall / r["wall_to_target_s"],
                           blind_gain_points=100 * (rows["blind", method]["final"] - rows["blind", method]["start"]),
                           blind_gain_points_second_judge=100 * (rows["blind", method]["final_second_judge"]
                                                                 - rows["blind", method]["start_second_judge"]))
        out[method]["met"] = (out[method]["fewer_samples"] >= 4 and out[method]["less_wall"] >= 3
                              and out[method]["blind_gain_points"] >= 25)
    return out

def table(result:dict, timing:dict) -> str:
    "The summary as a Markdown table."
    s = summary(result, timing)
    pct = lambda v: "–" if v is None else f"{100 * v:.1f}%"
    lines = [f"target (PPO default's median final held-out accuracy, demo task, 180 x 64 samples): {pct(s['target'])}", "",
             "| task | method | seeds | budget (samples) | start | final | final, second judge | samples to target | s / epoch | wall to target |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        if r["seeds_reaching_target"] is None: to_target = "–"
        elif r["samples_to_target"] is None: to_target = f"{r['seeds_reaching_target']}/{r['seeds']} seeds reach it"
        else: to_target = str(r["samples_to_target"])
        wall = "–" if r["wall_to_target_s"] is None else f"{r['wall_to_target_s']:.0f} s"
        lines.append(f"| {r['task']} | {r['method']} | {r['seeds']} | {r['budget_samples']} | {pct(r['start'])} | {pct(r['final'])} | "
                     f"{pct(r['final_second_judge'])} | {to_target} | {r['seconds_per_epoch']:.2f} | {wall} |")
    return "\n".join(lines)

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=TASKS); parser.add_argument("--method", choices=list(METHODS | EXTRA))
    parser.add_argument("--seed", type=int, default=0); parser.add_argument("--epochs", type=int, default=180)
    parser.add_argument("--eval-every", type=int, default=10); parser.add_argument("--out")
    parser.add_argument("--all", action="store_true"); parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=90, help="epochs of every method but the PPO default (180)")
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("--merge", metavar="OUT", help="write the finished runs so far to OUT (no training)")
    parser.add_argument("--extra", action="store_true", help="the EXTRA methods on the demo task, 40 epochs, 3 seeds")
    parser.add_argument("--model", choices=("pocket", "pocket-sd3"), default="pocket", help="the model one run trains")
    parser.add_argument("--flow", action="store_true", help="FLOW_METHODS on the pocket flow model, demo task, 40 epochs")
    parser.add_argument("--flow-timing", action="store_true", help="median epoch seconds of FLOW_METHODS on the pocket flow model, interleaved")
    args = parser.parse_args()
    if args.flow_timing:
        torch.set_num_threads(1)
        (RESULTS / "flow_pocket_timing.json").write_text(json.dumps(dict(threads=1, interleaved=True, seconds_per_epoch=
            interleaved_timing(FLOW_METHODS, "pocket-sd3")), indent=1))
    elif args.flow:
        FLOW_RUNS.mkdir(parents=True, exist_ok=True)
        todo = [(m, s) for m in FLOW_METHODS for s in args.seeds if not (FLOW_RUNS / f"demo_{m}_s{s}.json").exists()]
        while todo:
            batch, todo = todo[:args.jobs], todo[args.jobs:]
            if any([p.wait() for p in [run_process("demo", m, s, 40, args.eval_every, "pocket-sd3") for m, s in batch]]):
                raise SystemExit(f"{batch} failed")
        runs = [json.loads(p.read_text()) for p in sorted(FLOW_RUNS.glob("*.json"))]
        (RESULTS / "flow_pocket.json").write_text(json.dumps(dict(model="pocket-sd3", eval_every=args.eval_every, runs=runs)))
        print("wrote", RESULTS / "flow_pocket.json")
    elif args.extra:
        RUNS.mkdir(parents=True, exist_ok=True)
        for method in ("nft_g8_eta0",):  # the SD 1.x pocket model's extra run (nft_g8_n5 is measured with --flow)
            if any([p.wait() for p in [run_process("demo", method, s, 40, args.eval_every) for s in args.seeds]]):
                raise SystemExit(f"{method} failed")
        (RESULTS / "objectives_extra.json").write_text(json.dumps(dict(eval_every=args.eval_every, runs=finished_runs(("nft_g8_eta0",)))))
    elif args.merge:
        runs = finished_runs(METHODS)
        budgets = {m: 180 if m == "ppo" else args.budget for m in METHODS}
        Path(args.merge).write_text(json.dumps(dict(budgets=budgets, eval_every=args.eval_every, runs=runs)))
    elif args.timing:
        torch.set_num_threads(1)
        (RESULTS / "objectives_timing.json").write_text(json.dumps(dict(threads=1, seconds_per_epoch=timing()), indent=1))
    elif args.all:
        budgets = {m: 180 if m == "ppo" else args.budget for m in METHODS}
        runs = grid(args.seeds, args.jobs, budgets, args.eval_every)
        (RESULTS / "objectives.json").write_text(json.dumps(dict(budgets=budgets, eval_every=args.eval_every, runs=runs)))
        print("wrote", RESULTS / "objectives.json")
    else:
        r = run(args.task, args.method, args.seed, args.epochs, args.eval_every, args.model)
        text = json.dumps(r)
        if args.out: Path(args.out).write_text(text)
        print(json.dumps({k: r[k] for k in ("task", "method", "seed")} | {"final": r["curve"][-1], "start": r["curve"][0]}))

if __name__ == "__main__": main()
