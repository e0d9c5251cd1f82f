"""The benchmark suite (`bench/`): its command runs and writes what its table shows, the committed results
render and meet the goals they claim, and the SD 1.5-shaped GPU section's code runs (a narrow 64 px copy on
the CPU; the GPU figures themselves need CUDA)."""
import json, subprocess, sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import epoch_breakdown, run_all  # noqa: E402

def test_linear_fit_recovers_a_line():
    rows = [{"executed_steps": k, "epoch_s": 0.5 + 0.25 * k} for k in (2, 4, 6, 8, 10)]
    fit = epoch_breakdown.linear_fit(rows)
    assert abs(fit["intercept_s"] - 0.5) < 1e-9 and abs(fit["per_step_s"] - 0.25) < 1e-9 and fit["r2"] > 1 - 1e-9

def test_committed_cpu_results_render_and_their_goals_are_recomputed():
    result = json.loads((BENCH / "results" / "cpu.json").read_text())
    assert run_all.goals(result) == result["goals"]  # the stored verdicts follow from the stored figures
    text = run_all.table(result)
    for heading in ("1. rollout", "2-3, 5. epoch breakdown", "4. vs imageddpo 0.1.2", "goals"):
        assert heading in text
    assert {r["model"] for r in result["original"]["rows"]} == {"pocket", "mid"}

@pytest.mark.slow
def test_smoke_run_writes_its_table_as_json(tmp_path):
    "run_all.py's --quick code path (--smoke: one repeat, two epochs), its JSON and its table."
    out = tmp_path / "smoke.json"
    done = subprocess.run([sys.executable, BENCH / "run_all.py", "--smoke", "--out", out], capture_output=True, text=True,
                          cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert len(result["rollout"]["rows"]) == 6 and len(result["epoch"]["rows"]) == 6
    assert all(r["floor_s"] > 0 and r["peak_rss_mb"] > 100 for r in result["epoch"]["rows"])
    assert result["original_skipped"] == "--quick" and "sd15" not in result or result["machine"]["gpu"]
    assert run_all.table(result) in done.stdout

@pytest.mark.slow
@pytest.mark.parametrize("script", ["sd15", "sdxl", "sd3", "flux", "flux_kontext", "qwen_image_edit"])
def test_shapes_section_runs_on_a_narrow_copy(tmp_path, script):
    "bench/<script>.py's code path (the real model's layout at 64 px, narrowed) on the CPU; the real figures need CUDA."
    out = tmp_path / f"{script}.json"
    done = subprocess.run([sys.executable, BENCH / f"{script}.py", "--smoke", "--device", "cpu", "--out", out], capture_output=True,
                          text=True, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [r["config"] for r in result["rows"]] == ["LoRA fp32", "full fp32 grad-ckpt"]
    strengths = 1 if script in ("flux_kontext", "qwen_image_edit") else 2  # an edit model's rollout starts from noise only; the others' at 0.4 and 0.8
    assert all(r["training_samples_per_s"] > 0 for r in result["rows"]) and len(result["rollout"]) == strengths
    assert all(r["ratio"] > 0 for r in result["rollout"])
