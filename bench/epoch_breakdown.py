"""Where an epoch's time goes, against the floor of the model's own compute, and how it scales with noise_strength.

For each configuration (model, noise_strength, guidance), in a fresh process:
- runs `--epochs` trainer epochs and takes the median of those after the first: the epoch time and its
  sampling / reward-wait / training phases (the trainer's own timers), the rest being overhead;
- times the *necessary* calls alone, in the same process and with the same shapes: per sampling batch one
  text encoding of its prompts (the text encoders' calls; the empty prompt's encoding is cached by the policy),
  one VAE encode, K UNet calls (a doubled batch under CFG) and one VAE decode, the reward call, and per
  minibatch T UNet forward+backward passes. Their sum is the floor; overhead ratio = epoch / floor
  (with --interleave, the floor is re-measured after every epoch and the ratio is the median of the pairs);
  overhead_ratio_without_text leaves the text encoders out of the floor, as runs before 2026-11-27 did;
- reports the process's peak memory.

    python bench/epoch_breakdown.py [--models pocket mid] [--epochs 3] [--out epoch.json]
"""
import argparse, json, statistics, sys, tempfile, time
from pathlib import Path

from common import digit_inputs, machine, median_time, peak_memory, run_worker

SAMPLE_BATCH, BATCHES, TRAIN_BATCH, N = 8, 2, 4, 10

def trainer_for(model:str, strength:float, guidance:float, epochs:int):
    "A trainer of `model` on the shared digit inputs with a cheap reward, and its prompt and reward functions."
    import torch
    from imageddpo import ImageDDPOConfig, ImageDDPOTrainer, policy_for
    from rollout import MODELS
    build, size = MODELS[model]
    images = digit_inputs(size)
    def prompt_function():
        return "a handwritten digit", images[int(torch.randint(len(images), ()))], {}
    def reward_function(out, prompts, metadata):
        return out.mean(dim=(1, 2, 3))
    config = ImageDDPOConfig(mixed_precision="no", sample_num_steps=N, noise_strength=strength, sample_guidance_scale=guidance,
                             sample_batch_size=SAMPLE_BATCH, sample_num_batches_per_epoch=BATCHES, train_batch_size=TRAIN_BATCH,
                             num_epochs=epochs, save_freq=10**6, output_dir=tempfile.mkdtemp())
    return ImageDDPOTrainer(config, reward_function, prompt_function, policy_for(build())), prompt_function, reward_function

def worker(model:str, strength:float, guidance:float, epochs:int, repeats:int, interleave:bool=False) -> dict:
    """Time `epochs` epochs and the floor of one configuration, in this process. With `interleave`, the floor is
    measured after every timed epoch (median of `repeats` per call) and the overhead ratio is the median of the
    per-epoch ratios, so slow drifts of a shared machine hit both alike; otherwise once, after the epochs."""
    import torch
    torch.manual_seed(0)
    trainer, prompt_function, reward_function = trainer_for(model, strength, guidance, epochs)
    pipe, K = trainer.sd_pipeline, trainer.config.trained_steps(0, trainer.sd_pipeline)
    # the floor: the necessary calls alone, with the epoch's shapes
    batch = torch.stack([prompt_function()[1] for _ in range(SAMPLE_BATCH)]).to(pipe.device)  # the VAE's device (CUDA too)
    out = pipe.rollout(batch, "a handwritten digit", noise_strength=strength, num_inference_steps=N, guidance_scale=guidance)
    x, t = out.latents[:, 0], out.timesteps[:, 0]
    rows_ = slice(0, TRAIN_BATCH)
    cond = out.conditioning
    def forward_backward():
        pipe.predict_noise(x[rows_], t[rows_], cond.rows(torch.arange(TRAIN_BATCH))).float().mean().backward()
    minibatches = SAMPLE_BATCH * BATCHES // TRAIN_BATCH
    prompts = [prompt_function()[0] for _ in range(SAMPLE_BATCH)]
    def floor() -> dict:
        with torch.no_grad():
            text = median_time(lambda: pipe.encode_prompts(prompts, guidance), repeats)
            encode = median_time(lambda: pipe.encode_images(batch, None), repeats)
            unet = median_time(lambda: pipe.predict_noise(x, t[0], cond), repeats)
            decode = median_time(lambda: pipe.decode(out.latents[:, -1]), repeats)
            reward = median_time(lambda: reward_function(out.images, None, None), repeats)
        fwd_bwd = median_time(forward_backward, repeats)
        pipe.unet.zero_grad(set_to_none=True)
        return {"text_s": BATCHES * text, "sample_s": BATCHES * (encode + K * unet + decode), "reward_s": BATCHES * reward,
                "train_s": minibatches * K * fwd_bwd}
    epoch_times, floors = [], []
    for epoch in range(epochs):
        start = time.perf_counter(); trainer.step(epoch, trainer.global_step); epoch_times.append(time.perf_counter() - start)
        if interleave and epoch > 0: floors.append(floor())
    if not interleave: floors = [floor()] * (epochs - 1)
    timed = epoch_times[1:]
    ratio = statistics.median(e / sum(f.values()) for e, f in zip(timed, floors))
    ratio_without_text = statistics.median(e / (sum(f.values()) - f["text_s"]) for e, f in zip(timed, floors))
    phase = lambda key: statistics.median(h[key] for h in trainer.history[1:])
    floor_part = lambda key: statistics.median(f[key] for f in floors)
    return {"model": model, "noise_strength": strength, "guidance": guidance, "executed_steps": K,
            "epoch_s": statistics.median(timed), "sample_s": phase("sample_s"), "reward_wait_s": phase("reward_wait_s"),
            "train_s": phase("train_s"), "floor_s": statistics.median(sum(f.values()) for f in floors),
            **{f"floor_{k}": floor_part(k) for k in floors[0]}, "overhead_ratio": ratio,
            "overhead_ratio_without_text": ratio_without_text, "interleaved": interleave,
            **peak_memory()}

def round_robin_worker(model:str, strengths:list[float], epochs:int) -> dict:
    """Epoch times at every strength from one process, one epoch of each strength in turn (round robin), so that a
    shared machine's drift between processes cannot bend the scaling line: median seconds per strength."""
    import torch
    torch.manual_seed(0)
    trainers = [trainer_for(model, strength, 1.0, epochs)[0] for strength in strengths]
    times = [[] for _ in strengths]
    for epoch in range(epochs):
        for trainer, seconds in zip(trainers, times):
            start = time.perf_counter(); trainer.step(epoch, trainer.global_step); seconds.append(time.perf_counter() - start)
    return {"rows": [{"noise_strength": strength, "executed_steps": t.config.trained_steps(0, t.sd_pipeline), "epoch_s": statistics.median(sec[1:])}
                     for strength, t, sec in zip(strengths, trainers, times)], **peak_memory()}

def run(models=("pocket", "mid"), strengths=(0.2, 0.4, 0.6, 0.8, 1.0), epochs:int|dict=3, repeats:int|dict=5,
        interleave:bool|dict=False, round_robin:tuple=(), cfg_strength:float=0.6, cfg_guidance:float=5.0, progress=print) -> dict:
    """Every (model, strength) at guidance 1, plus `cfg_strength` under CFG, each in its own process; `epochs`, `repeats`
    and `interleave` (see `worker`) may be per model. The scaling line of the models in `round_robin` is fitted to
    epoch times measured in one process, strength after strength (see `round_robin_worker`); of the others, to the rows."""
    per_model = lambda value: value if isinstance(value, dict) else {m: value for m in models}
    epochs, repeats, interleave = per_model(epochs), per_model(repeats), per_model(interleave)
    configs = [(m, s, 1.0) for m in models for s in strengths] + [(m, cfg_strength, cfg_guidance) for m in models]
    rows = []
    for model, strength, guidance in configs:
        r = run_worker(sys.executable, __file__, ["--worker", model, strength, guidance, "--epochs", epochs[model],
                                                  "--repeats", repeats[model], *(["--interleave"] if interleave[model] else [])])
        r["other_s"] = r["epoch_s"] - r["sample_s"] - r["reward_wait_s"] - r["train_s"]
        rows.append(r)
        progress(f"  epoch {model} s={strength} g={guidance}: {r['epoch_s']:.3f} s, overhead ratio {r['overhead_ratio']:.3f}")
    scaling = {}
    for m in models:
        if m in round_robin:
            rr = run_worker(sys.executable, __file__, ["--round-robin", m, *strengths, "--epochs", epochs[m]])
            scaling[m] = {**linear_fit(rr["rows"]), "method": "round robin in one process", "rows": rr["rows"]}
        else:
            scaling[m] = {**linear_fit([r for r in rows if r["model"] == m and r["guidance"] == 1.0]), "method": "one process per strength"}
        progress(f"  scaling {m}: R^2 {scaling[m]['r2']:.4f} ({scaling[m]['method']})")
    return {"setup": dict(sample_batch_size=SAMPLE_BATCH, batches=BATCHES, train_batch_size=TRAIN_BATCH, num_inference_steps=N,
                          train_timestep_fraction=1.0, epochs=epochs, timed_epochs={m: e - 1 for m, e in epochs.items()},
                          floor_repeats=repeats, floor_interleaved=interleave),
            "rows": rows, "scaling": scaling}

def linear_fit(rows:list[dict]) -> dict:
    "Least-squares epoch_s = a + b * K over `rows`, its R², and the largest relative deviation from the line."
    ks, ys = [r["executed_steps"] for r in rows], [r["epoch_s"] for r in rows]
    n, mk, my = len(ks), sum(ks) / len(ks), sum(ys) / len(ys)
    b = sum((k - mk) * (y - my) for k, y in zip(ks, ys)) / sum((k - mk) ** 2 for k in ks)
    a = my - b * mk
    fit = [a + b * k for k in ks]
    ss_res, ss_tot = sum((y - f) ** 2 for y, f in zip(ys, fit)), sum((y - my) ** 2 for y in ys)
    return {"intercept_s": a, "per_step_s": b, "r2": 1 - ss_res / ss_tot,
            "max_rel_deviation": max(abs(y - f) / y for y, f in zip(ys, fit))}

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5, help="timings of each necessary call for the floor")
    p.add_argument("--worker", nargs=3, metavar=("MODEL", "STRENGTH", "GUIDANCE"))
    p.add_argument("--models", nargs="*", default=["pocket", "mid"])
    p.add_argument("--interleave", action="store_true", help="measure the floor after every epoch (see `worker`)")
    p.add_argument("--round-robin", nargs="+", metavar=("MODEL", "STRENGTH"), help="scaling epochs in one process")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    if a.round_robin:
        print(json.dumps(round_robin_worker(a.round_robin[0], [float(x) for x in a.round_robin[1:]], a.epochs))); return
    if a.worker:
        model, strength, guidance = a.worker
        print(json.dumps(worker(model, float(strength), float(guidance), a.epochs, a.repeats, a.interleave))); return
    result = {"machine": machine(), **run(a.models, epochs=a.epochs, repeats=a.repeats, interleave=a.interleave)}
    if a.out: Path(a.out).write_text(json.dumps(result, indent=1)); print("wrote", a.out)

if __name__ == "__main__": main()
