"""Two CPU processes (gloo) under torchrun: gathered rewards, all-reduced gradients, a checkpoint every rank
takes part in, and a resume that matches the uninterrupted run.

On the CPU, accelerate forms a process group only with its CPU flag: `ACCELERATE_USE_CPU=true torchrun ...`
(or `accelerator_kwargs={"cpu": True}`); without it each process trains alone."""
import json, os, shutil, subprocess, sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent/"scripts"/"two_process_run.py"

def launch(output_dir, resume_from, report, timeout=240):
    torchrun = Path(sys.executable).parent/"torchrun"
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29517", str(SCRIPT),
                           str(output_dir), resume_from, str(report)], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(Path(f"{report}.{rank}").read_text()) for rank in (0, 1)]

def test_two_processes_agree_and_resume_exactly(tmp_path):
    straight = launch(tmp_path/"run", "", tmp_path/"straight")
    assert [r["world"] for r in straight] == [2, 2]
    assert all(r["num_samples"] == 8 for r in straight), "rewards are gathered from both ranks"
    assert straight[0]["weights"] == straight[1]["weights"], "gradients are all-reduced: identical weights on both ranks"
    assert straight[0]["indices"] != straight[1]["indices"], "the ranks sample different inputs"
    checkpoint = tmp_path/"run"/"checkpoints"/"checkpoint-1"
    assert {"rng-0.json", "rng-1.json", "manifest.json"} <= {p.name for p in checkpoint.iterdir()}
    shutil.rmtree(tmp_path/"run"/"checkpoints"/"checkpoint-2")
    resumed = launch(tmp_path/"run", "latest", tmp_path/"resumed")
    assert [r["first_epoch"] for r in resumed] == [1, 1]
    assert resumed[0]["weights"] == straight[0]["weights"] == resumed[1]["weights"], "resume continues exactly"
    assert [r["indices"] for r in resumed] == [r["indices"][1:] for r in straight]

def test_a_launch_without_a_process_group_is_refused(tmp_path):
    "torchrun on the CPU without accelerate's CPU flag: every process would train alone into one folder."
    torchrun = Path(sys.executable).parent/"torchrun"
    env = {k: v for k, v in os.environ.items() if k != "ACCELERATE_USE_CPU"}
    done = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29518", str(SCRIPT),
                           str(tmp_path/"run"), "", str(tmp_path/"report")], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode != 0 and "ACCELERATE_USE_CPU=true" in done.stderr
    assert not list((tmp_path/"run"/"checkpoints").glob("checkpoint-*")), "nothing trained"
