"""Crash safety: SIGKILL a training process mid-sampling, mid-update, mid-checkpoint-write and just before a
checkpoint is sealed; restart with resume_from="latest". The run completes, every checkpoint on disk is
complete and loadable, at most the epoch in progress is lost, and the final weights equal an uninterrupted run's."""
import json, shutil, signal, subprocess, sys
from pathlib import Path

import pytest

from imageddpo.checkpoint import CheckpointError, checkpoint_epoch, list_checkpoints, load_tensors, resolve_resume, verify_checkpoint

SCRIPT = Path(__file__).parent/"scripts"/"crash_run.py"

def run(output_dir, kill, report):
    return subprocess.run([sys.executable, str(SCRIPT), str(output_dir), kill, str(report)], capture_output=True,
                          text=True, timeout=300)

@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("straight")
    done = run(tmp/"run", "none", tmp/"report.json")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp/"report.json").read_text())

# epochs have 2 rollouts and 4 optimizer steps; a checkpoint is written after every epoch
KILLS = ["sample:4",   # epoch 1, second batch
         "update:10",  # epoch 2, second update
         "write:3",    # the weights file of checkpoint-3, half written
         "seal:2"]     # checkpoint-2 written, not sealed

@pytest.mark.parametrize("kill", KILLS)
def test_killed_run_resumes_and_loses_at_most_the_epoch_in_progress(tmp_path, straight, kill):
    done = run(tmp_path/"run", kill, tmp_path/"killed.json")
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-2000:])
    killed_in = int((tmp_path/"killed.progress").read_text().split()[-1])
    sealed = list_checkpoints(tmp_path/"run")
    for checkpoint in sealed:  # whatever is sealed is whole and loadable
        verify_checkpoint(checkpoint); load_tensors(checkpoint/"weights.safetensors")
    latest = checkpoint_epoch(sealed[-1]) if sealed else 0
    assert latest == killed_in, f"killed in epoch {killed_in}, but the newest checkpoint is after {latest} epochs"
    done = run(tmp_path/"run", "none", tmp_path/"resumed.json")
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = json.loads((tmp_path/"resumed.json").read_text())
    assert resumed["first_epoch"] == latest
    assert resumed["weights"] == straight["weights"] and resumed["global_step"] == straight["global_step"]
    final = list_checkpoints(tmp_path/"run")
    assert [p.name for p in final] == ["checkpoint-3", "checkpoint-4"]  # num_checkpoint_limit=2
    assert not list((tmp_path/"run"/"checkpoints").glob(".*.partial")), "leftover partial folders are cleared"
    for checkpoint in final: verify_checkpoint(checkpoint)

def test_a_corrupted_latest_checkpoint_is_refused_not_skipped(tmp_path, straight):
    done = run(tmp_path/"run", "none", tmp_path/"report.json")
    assert done.returncode == 0
    latest = list_checkpoints(tmp_path/"run")[-1]
    with open(latest/"weights.safetensors", "r+b") as f: f.seek(200); f.write(b"\0" * 16)
    with pytest.raises(CheckpointError, match="weights.safetensors does not match its checksum"):
        resolve_resume("latest", tmp_path/"run")
    done = run(tmp_path/"run", "none", tmp_path/"again.json")
    assert done.returncode != 0 and "does not match its checksum" in done.stderr
