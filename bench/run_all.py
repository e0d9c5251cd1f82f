"""imageddpo's benchmark suite: one command, one table, one JSON file.

    python bench/run_all.py                # ~8 minutes on 2 CPU cores; the SD 1.5 section too where CUDA is present
    python bench/run_all.py --quick        # the pocket model only, fewer repeats, no 0.1.2 comparison (~5 minutes on 2 CPU cores)
    python bench/run_all.py --smoke        # --quick's code path with one repeat and two epochs: its figures mean nothing (tests)

1. rollout  - `rollout` vs diffusers' StableDiffusionImg2ImgPipeline: same components, inputs and seeds (goal <= 1.05)
2. epoch    - an epoch split into sampling / reward / training / other, and epoch time / floor, the floor being
              the necessary UNet, VAE and reward calls timed alone in the same process (goal <= 1.10)
3. scaling  - epoch time at noise_strength 0.2 ... 1.0: a straight-line fit in the executed steps K
4. original - imageddpo 0.1.2 + trl 0.21 (in its own venv, created here on first use) on the same model, inputs,
              samples and trained steps (goals: >= 1.5x faster at guidance <= 1, >= 1.0x with CFG)
5. memory   - peak RSS (and CUDA peak allocation) of every configuration, in its own process
6. sd15     - CUDA only: SD 1.5 shapes at 512 px, fp16 / bf16, LoRA / full: samples/s and peak memory
              (goal: LoRA training at train batch 4 under 12 GB)
7. micro    - the measurements behind the trainer's choices (fused AdamW, device lookups, channels-last, batch doubling)
Models: "pocket" is the shipped 32 px model; "mid" has SD 1.x's blocks at 128 px (16x16 latents), where the
UNet's compute dominates as it does in real SD. Every figure is a median; each section states its settings.
"""
import argparse, datetime, json, os, subprocess, sys, time
from pathlib import Path

from common import machine, run_worker

HERE = Path(__file__).parent
SEED_VENV = Path(os.environ.get("IMAGEDDPO_BENCH_SEEDVENV", Path.home()/".cache"/"imageddpo"/"bench-seedvenv"))
SEED_PACKAGES = ["torch==2.13.0", "imageddpo==0.1.2", "scikit-learn"]

def seed_python(log=print) -> str:
    "The Python of a venv holding the original imageddpo 0.1.2 (and the trl, diffusers it pins); created if missing."
    python = SEED_VENV/"bin"/"python"
    check = [str(python), "-c", "import imageddpo, trl; assert trl.__version__ == '0.21.0'"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0: return str(python)
    log(f"creating {SEED_VENV} with {' '.join(SEED_PACKAGES)} (about a minute)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(SEED_VENV)], check=True)
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", *SEED_PACKAGES], capture_output=True, text=True)
    if done.returncode or subprocess.run(check, capture_output=True).returncode:
        raise RuntimeError(f"could not install {SEED_PACKAGES}:\n{done.stderr[-2000:]}")
    return str(python)

def goals(result:dict) -> list[dict]:
    "Each goal of the performance issue: the measured value, the target and whether it is met."
    out = []
    def goal(name, value, target, met): out.append({"goal": name, "value": round(value, 3), "target": target, "met": bool(met)})
    for model in sorted({r["model"] for r in result["rollout"]["rows"]}):
        worst = max(r["ratio"] for r in result["rollout"]["rows"] if r["model"] == model)
        goal(f"rollout / diffusers img2img, {model} (worst config)", worst, "<= 1.05", worst <= 1.05)
    for model in sorted({r["model"] for r in result["epoch"]["rows"]}):
        worst = max(r["overhead_ratio"] for r in result["epoch"]["rows"] if r["model"] == model)
        goal(f"epoch / floor, {model} (worst config)", worst, "<= 1.10", worst <= 1.10)
        fit = result["epoch"]["scaling"][model]
        goal(f"epoch time linear in K, {model} (R^2)", fit["r2"], ">= 0.99", fit["r2"] >= 0.99)
    for r in result.get("original", {}).get("rows", []):
        target = 1.5 if r["guidance"] <= 1 else 1.0
        goal(f"speed-up vs imageddpo 0.1.2, {r['model']}, guidance {r['guidance']:g}", r["epoch_speedup"], f">= {target}",
             r["epoch_speedup"] >= target)
        if "batched_speedup" in r:
            goal(f"  the same with train_timesteps_per_pass={result['original']['setup']['trained_steps']}", r["batched_speedup"],
                 f">= {target}", r["batched_speedup"] >= target)
    for r in result.get("sd15", {}).get("rows", []):
        if r["config"] == "LoRA fp16" and "gpu_peak_allocated_gb" in r:
            goal("SD 1.5 LoRA fp16 512 px, train batch 4: peak GB", r["gpu_peak_allocated_gb"], "< 12", r["gpu_peak_allocated_gb"] < 12)
    return out

def _shapes_section(add, title:str, section:dict):
    "The rows of bench/sd15.py or bench/sdxl.py (a real model's shapes on a GPU), and its rollout against diffusers."
    s = section["setup"]
    add(f"\n{title}, {s['size']} px ({s['sample_batch_size']}x{s['sample_num_batches_per_epoch']} samples, train batch "
        f"{s['train_batch_size']} unless named, N={s['sample_num_steps']}, s={s['noise_strength']}, guidance {s['sample_guidance_scale']})")
    add(f"{'config':44s} {'epoch s':>8s} {'sample/s':>9s} {'train/s':>8s} {'peak GB':>8s}")
    for r in section["rows"]:
        if "error" in r: add(f"{r['config']:44s} failed: {r['error']}"); continue
        add(f"{r['config']:44s} {r['epoch_s']:8.2f} {r['sampling_samples_per_s']:9.2f} {r['training_samples_per_s']:8.2f} "
            f"{r.get('gpu_peak_allocated_gb', float('nan')):8.2f}")
    if section.get("complete") is False: add("  (cut short by its time limit: the rows measured before it)")
    for r in section.get("rollout", []):
        add(f"  rollout vs img2img at {s['size']} px, s={r['noise_strength']}: {r['ours_s']*1e3:.0f} ms vs "
            f"{r['diffusers_s']*1e3:.0f} ms, ratio {r['ratio']:.3f}")

def table(result:dict) -> str:
    "The whole result as one plain-text table."
    m, lines = result["machine"], []
    add = lines.append
    add(f"imageddpo benchmarks - {result['date']} - {m['cpu']}, {m['cores']} cores, torch {m['torch']}"
        + (f", {m['gpu']}" if m["gpu"] else ", no GPU") + f" - {result['wall_s']:.0f} s")
    s = result["rollout"]["setup"]
    add(f"\n1. rollout vs StableDiffusionImg2ImgPipeline (batch {s['batch']}, N={s['num_inference_steps']}, {s['device']}, median of "
        + ", ".join(f"{n} ({m})" for m, n in s["repeats"].items()) + ")")
    add(f"{'model':8s} {'g':>4s} {'s':>4s} {'K':>3s} {'ours ms':>9s} {'diffusers':>10s} {'ratio':>6s}")
    for r in result["rollout"]["rows"]:
        add(f"{r['model']:8s} {r['guidance']:4g} {r['noise_strength']:4g} {r['executed_steps']:3d} {r['ours_s']*1e3:9.1f} "
            f"{r['diffusers_s']*1e3:10.1f} {r['ratio']:6.3f}")
    s = result["epoch"]["setup"]
    add(f"\n2-3, 5. epoch breakdown, floor, scaling, memory ({s['sample_batch_size']}x{s['batches']} samples, train batch "
        f"{s['train_batch_size']}, N={s['num_inference_steps']}, all K steps trained; median of "
        + ", ".join(f"{n} epochs ({m})" for m, n in s["timed_epochs"].items()) + ")")
    add(f"{'model':8s} {'g':>4s} {'s':>4s} {'K':>3s} {'epoch s':>8s} {'sample':>7s} {'reward':>7s} {'train':>7s} {'other':>7s} "
        f"{'floor':>7s} {'ratio':>6s} {'RSS MB':>7s}")
    for r in result["epoch"]["rows"]:
        add(f"{r['model']:8s} {r['guidance']:4g} {r['noise_strength']:4g} {r['executed_steps']:3d} {r['epoch_s']:8.3f} "
            f"{r['sample_s']:7.3f} {r['reward_wait_s']:7.3f} {r['train_s']:7.3f} {r['other_s']:7.3f} {r['floor_s']:7.3f} "
            f"{r['overhead_ratio']:6.3f} {r['peak_rss_mb']:7.0f}")
    for model, fit in result["epoch"]["scaling"].items():
        add(f"  scaling {model}: epoch = {fit['intercept_s']:.3f} s + {fit['per_step_s']:.3f} s x K, R^2 {fit['r2']:.4f}, "
            f"largest deviation from the line {fit['max_rel_deviation']:.1%} ({fit.get('method', 'one process per strength')})")
    if "original" in result:
        s = result["original"]["setup"]
        add(f"\n4. vs imageddpo 0.1.2 + trl 0.21 ({s['sample_batch_size']}x{s['batches']} samples, s={s['noise_strength']}, "
            f"{s['trained_steps']} trained steps; fresh processes x timed epochs: "
            + ", ".join(f"{s['rounds'][m]} x {s['epochs'][m] - 1} ({m})" for m in s["rounds"]) + ")")
        add(f"{'model':8s} {'g':>4s} {'ours s':>8s} {'0.1.2 s':>8s} {'speedup':>8s} {'PPO x':>6s} {'RSS MB':>7s} {'0.1.2 MB':>8s}"
            f" | {'1 call/minibatch':>16s} {'RSS MB':>7s}")
        for r in result["original"]["rows"]:
            batched = (f" | {r['batched_epoch_s']:8.3f} s {r['batched_speedup']:5.2f}x {r['batched_peak_rss_mb']:7.0f}"
                       if "batched_epoch_s" in r else " |")
            add(f"{r['model']:8s} {r['guidance']:4g} {r['ours_epoch_s']:8.3f} {r['seed_epoch_s']:8.3f} {r['epoch_speedup']:7.2f}x "
                f"{r['ppo_speedup']:5.2f}x {r['ours_peak_rss_mb']:7.0f} {r['seed_peak_rss_mb']:8.0f}" + batched)
    else: add(f"\n4. vs imageddpo 0.1.2: not run ({result.get('original_skipped', 'skipped')})")
    for key, title in (("sd15", "6. SD 1.5 shapes"), ("sdxl", "6b. SDXL shapes"), ("sd3", "6c. SD3.5-medium shapes"),
                       ("flux", "6d. FLUX.1 [dev] shapes"), ("flux_kontext", "6e. FLUX.1 Kontext [dev] shapes"),
                       ("qwen_image_edit", "6f. Qwen-Image-Edit shapes")):
        if key in result: _shapes_section(add, title, result[key])
        elif key == "sd15": add(f"\n{title}: not run (" + ("--skip-sd15" if result["machine"]["gpu"] else "no CUDA device") + ")")
    if "micro" in result:
        m = result["micro"]
        add("\n7. micro-measurements (mid model unless named)")
        for name in ("pocket", "mid"):
            a = m[f"adamw_{name}"]
            add(f"  AdamW step, {name} LoRA ({a['tensors']} tensors): fused {a['fused_ms']:.2f} ms, per-tensor loop {a['loop_ms']:.2f} ms "
                f"({a['speedup']:.1f}x)")
            d = m[f"device_lookup_{name}"]
            add(f"  device lookup, {name}: policy.device {d['policy_us']:.1f} us, diffusers' unet.device {d['diffusers_us']:.0f} us")
        c = m["channels_last_mid"]
        add(f"  channels-last: forward b8 {c['forward_b8_ms']['channels_last']:.1f} vs {c['forward_b8_ms']['contiguous']:.1f} ms "
            f"contiguous; forward+backward b4 {c['forward_backward_b4_ms']['channels_last']:.1f} vs "
            f"{c['forward_backward_b4_ms']['contiguous']:.1f} ms")
        d = m["batch_doubling_mid"]
        add(f"  doubling the batch: forward+backward b8 {d['forward_backward_b8_ms']:.1f} ms vs b4 {d['forward_backward_b4_ms']:.1f} ms "
            f"= {d['cost_ratio']:.2f}x")
    add("\ngoals")
    for g in result["goals"]: add(f"  [{'x' if g['met'] else ' '}] {g['goal']}: {g['value']} (target {g['target']})")
    return "\n".join(lines)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="pocket model only, fewer repeats, no comparison with 0.1.2")
    p.add_argument("--smoke", action="store_true", help="--quick with one repeat and two epochs: tests the code path, its figures mean nothing")
    p.add_argument("--skip-original", action="store_true", help="leave out the comparison with imageddpo 0.1.2")
    p.add_argument("--skip-sd15", action="store_true", help="leave out the SD 1.5 section (run bench/sd15.py on its own)")
    p.add_argument("--seed-python", default=None, help="a Python with imageddpo 0.1.2 installed (default: create a venv)")
    p.add_argument("--out", default=None, help="default: bench/results/<cpu|cuda>.json (--quick: not written)")
    a = p.parse_args()
    a.quick = a.quick or a.smoke
    import torch
    import rollout, epoch_breakdown, trainer_epoch
    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    start, cuda = time.perf_counter(), torch.cuda.is_available()
    models = ("pocket",) if a.quick else ("pocket", "mid")
    result = {"date": datetime.date.today().isoformat(), "machine": machine(), "quick": a.quick}
    log("1. rollout"); result["rollout"] = rollout.run(models, repeats={"pocket": 1 if a.smoke else 3 if a.quick else 5, "mid": 3})
    log("2-3. epochs")  # pocket epochs take a fraction of a second: more of them, each paired with its own floor
    result["epoch"] = epoch_breakdown.run(models, epochs={"pocket": 2 if a.smoke else 4 if a.quick else 5, "mid": 3},
                                          repeats={"pocket": 1 if a.smoke else 3, "mid": 5}, interleave={"pocket": True, "mid": False},
                                          round_robin=("pocket",),
                                          progress=log)
    if a.quick or a.skip_original: result["original_skipped"] = "--quick" if a.quick else "--skip-original"
    else:
        try:
            log("4. imageddpo 0.1.2"); python = a.seed_python or seed_python(log)
            result["original"] = trainer_epoch.run(python, models, rounds=1, epochs={"pocket": 6, "mid": 4}, progress=log)
        except (RuntimeError, subprocess.CalledProcessError) as e:
            result["original_skipped"] = f"the 0.1.2 environment failed: {str(e).splitlines()[0]}"; log(str(e))
    log("7. micro"); result["micro"] = run_worker(sys.executable, HERE/"micro.py", ["--json-only"])
    if cuda and not a.skip_sd15:
        import sd15
        log("6. SD 1.5 shapes"); result["sd15"] = sd15.run(device="cuda", progress=log)
    result["wall_s"] = time.perf_counter() - start
    result["goals"] = goals(result)
    print(table(result))
    out = a.out or (None if a.quick else HERE/"results"/f"{'cuda' if cuda else 'cpu'}.json")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True); Path(out).write_text(json.dumps(result, indent=1))
        print(f"\nwrote {out}")

if __name__ == "__main__": main()
