"""Faults injected into real runs (chapter 05d): Ctrl-C and SIGTERM, a reward that hangs, a full disk, and a
corrupt or foreign checkpoint. Each ends in bounded time with a message naming it, and the last sealed
checkpoint is intact and resumable."""
import ast, json, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import pytest, torch, yaml

from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, ImageDDPOTrainer, tiny_pipeline
from imageddpo.checkpoint import CheckpointError, latest_checkpoint, list_checkpoints, verify_checkpoint

SCRIPTS = Path(__file__).parent / "scripts"
ENV = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}

def run_script(*args, timeout=120):
    start = time.monotonic()
    done = subprocess.run([sys.executable, str(SCRIPTS / "fault_run.py"), *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=timeout)
    return done, time.monotonic() - start

# --- Ctrl-C and SIGTERM ----------------------------------------------------------------------------------------

def run_file(tmp_path, epochs) -> Path:
    (tmp_path / "images").mkdir()
    import PIL.Image
    for i in range(2): PIL.Image.new("RGB", (32, 32), (40 * i, 80, 120)).save(tmp_path / "images" / f"{i}.png")
    (tmp_path / "touch.py").write_text(  # a reward that marks each call, so the test knows training is under way
        "from pathlib import Path\ndef darkness(images, prompts, metadata):\n"
        "    Path(__file__).with_name('scored').touch()\n    return 1 - images.mean(dim=(1, 2, 3))\n")
    run = dict(model="tiny", images="images", image_size=32, reward="touch:darkness",
               config=dict(mixed_precision="no", sample_num_steps=4, noise_strength=0.5, sample_guidance_scale=1.0,
                           sample_batch_size=2, train_batch_size=2, num_epochs=epochs, save_freq=10**6, output_dir="run"))
    path = tmp_path / "run.yaml"; path.write_text(yaml.safe_dump(run)); return path

@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_after_the_epoch_with_a_checkpoint_and_the_resume_command(tmp_path, signum, code):
    config = run_file(tmp_path, epochs=10**5)
    proc = subprocess.Popen([str(Path(sys.executable).parent / "imageddpo"), "train", "--config", str(config)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "scored").exists() and time.monotonic() < deadline: time.sleep(0.2)
    proc.send_signal(signum); sent = time.monotonic()
    out, err = proc.communicate(timeout=60)
    print(f"{signal.Signals(signum).name}: exited {time.monotonic() - sent:.2f} s after the signal")
    assert proc.returncode == code, err[-3000:]
    assert "received: stopping after this epoch" in err
    assert f"Continue with: imageddpo train --config {config} --resume-from latest" in err, err[-3000:]
    saved = latest_checkpoint(tmp_path / "run")
    assert saved is not None and verify_checkpoint(saved), "the stop wrote a sealed checkpoint (save_freq would not have)"
    done = int(saved.name.split("-")[1])
    resumed = subprocess.run([str(Path(sys.executable).parent / "imageddpo"), "train", "--config", str(config), "--resume-from",
                              "latest", "--num-epochs", str(done + 1)], env=ENV, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0 and f"Resuming from {saved}: {done} of {done + 1} epochs done" in resumed.stdout, resumed.stderr[-2000:]

# --- a reward that never answers --------------------------------------------------------------------------------

def test_a_hanging_reward_times_out_naming_the_batch_and_the_run_resumes(tmp_path):
    done, seconds = run_script(tmp_path / "run", "hang")
    print(f"hung reward: the process ended {seconds:.1f} s after it started (reward_timeout_s=2)")
    assert done.returncode == 1 and "RewardTimeout: reward_function did not return within reward_timeout_s=2.0 s for epoch 1, batch 0" \
        in done.stderr and "prompts: 'a photo', 'a photo'" in done.stderr, done.stderr[-3000:]
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["checkpoint-1"], "nothing of the hung epoch was saved"
    resumed, _ = run_script(tmp_path / "run", "none")
    assert resumed.returncode == 0 and "Resuming from" in resumed.stdout and "trained 3" in resumed.stdout, resumed.stderr[-3000:]

# --- a full disk ------------------------------------------------------------------------------------------------

def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path):
    done, _ = run_script(tmp_path / "run", "disk-full")
    assert done.returncode == 1 and "CheckpointError: checkpoint-2 was not written: the disk is full" in done.stderr \
        and "checkpoint-1 is intact and is what resume_from='latest' picks" in done.stderr, done.stderr[-3000:]
    root = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-1"], "the partial folder was removed"
    verify_checkpoint(root / "checkpoint-1")
    resumed, _ = run_script(tmp_path / "run", "none")
    assert resumed.returncode == 0 and "trained 3" in resumed.stdout, resumed.stderr[-3000:]

def test_a_checkpoint_that_cannot_fit_is_refused_before_writing(tmp_path, monkeypatch):
    import imageddpo.checkpoint as checkpoint
    trainer = tiny_trainer(tmp_path / "run", num_epochs=1)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 2**20, 2**20))
    with pytest.raises(CheckpointError, match="the disk is full .*1 MB are free.* no earlier checkpoint exists"): trainer.train()
    assert not any((tmp_path / "run" / "checkpoints").iterdir())

# --- corrupt and foreign checkpoints ----------------------------------------------------------------------------

def tiny_trainer(output_dir, **changes) -> ImageDDPOTrainer:
    config = ImageDDPOConfig(**{**dict(mixed_precision="no", sample_num_steps=4, noise_strength=0.5, sample_guidance_scale=1.0,
                                       sample_batch_size=2, train_batch_size=2, num_epochs=1, output_dir=str(output_dir)), **changes})
    policy = I2IDDPOStableDiffusionPipeline(tiny_pipeline(), lora_rank=changes.pop("lora_rank", 4))
    return ImageDDPOTrainer(config, lambda images, prompts, metadata: images.mean(dim=(1, 2, 3)),
                            lambda: ("a photo", torch.rand(3, 32, 32), {}), policy)

def reseal(path:Path):
    "Rewrite the manifest so that the (tampered) files pass their checksums: a foreign but well-formed checkpoint."
    from imageddpo.checkpoint import _sha256
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"] = {name: _sha256(path / name) for name in manifest["files"] if (path / name).exists()}
    (path / "manifest.json").write_text(json.dumps(manifest))

def truncate(path, name): open(path / name, "r+b").truncate(16)
def edit_state(path, **changes):
    state = json.loads((path / "trainer_state.json").read_text()); state.update(changes)
    (path / "trainer_state.json").write_text(json.dumps(state)); reseal(path)

FAULTS = [  # (name, tamper(checkpoint folder), trainer changes, message)
    ("truncated weights", lambda p: truncate(p, "weights.safetensors"), {}, "weights.safetensors does not match its checksum"),
    ("modified state", lambda p: (p / "trainer_state.json").write_text("{}"), {}, "trainer_state.json does not match its checksum"),
    ("missing file", lambda p: (p / "optimizer.pt").unlink(), {}, "optimizer.pt is missing"),
    ("no manifest (an interrupted save)", lambda p: (p / "manifest.json").unlink(), {}, "no manifest.json; the checkpoint is incomplete"),
    ("corrupt manifest", lambda p: (p / "manifest.json").write_text("{"), {}, "manifest.json is corrupt"),
    ("foreign optimizer file", lambda p: ((p / "optimizer.pt").write_bytes(b"not a torch file"), reseal(p)), {}, "cannot be read"),
    ("foreign weights file", lambda p: ((p / "weights.safetensors").write_bytes(b"\x00" * 64), reseal(p)), {}, "cannot be read"),
    ("another LoRA rank", lambda p: None, {"lora_rank": 8}, "holds different trainable weights than this I2IDDPOStableDiffusionPipeline"),
    ("another process count", lambda p: edit_state(p, num_processes=2), {}, "was written by 2 processes; this run has 1"),
    ("another process's RNG only", lambda p: ((p / "rng-0.json").rename(p / "rng-1.json"), reseal(p)), {}, "cannot be read"),
]

@pytest.fixture(scope="module")
def sealed(tmp_path_factory):
    root = tmp_path_factory.mktemp("sealed")
    tiny_trainer(root / "run").train()
    return root / "run" / "checkpoints" / "checkpoint-1"

@pytest.mark.parametrize("name, tamper, changes, message", FAULTS, ids=[f[0] for f in FAULTS])
def test_a_corrupt_or_foreign_checkpoint_is_refused_naming_the_problem(tmp_path, sealed, name, tamper, changes, message):
    run = tmp_path / "run" / "checkpoints" / "checkpoint-1"
    shutil.copytree(sealed, run); tamper(run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tiny_trainer(tmp_path / "run", resume_from=str(run), **changes)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before, "a refused checkpoint is left as it was"

def test_foreign_folders_beside_the_checkpoints_are_ignored_by_latest(tmp_path, sealed):
    root = tmp_path / "run" / "checkpoints"
    shutil.copytree(sealed, root / "checkpoint-1")
    (root / "checkpoint-9").mkdir(); (root / "checkpoint-9" / "weights.safetensors").write_bytes(b"")  # unsealed: not a checkpoint
    (root / "notes.txt").write_text("mine"); (root / "checkpoint-final").mkdir()
    trainer = tiny_trainer(tmp_path / "run", resume_from="latest", num_epochs=2)
    assert trainer.first_epoch == 1

# --- a long run ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_long_run_stays_bounded():
    """200 epochs of the tiny model, a checkpoint every epoch, two kept: memory, files, threads and disk stay flat. (bench/long_run.py
    ran 2000 epochs for bench/results/long_run.json: 4.8 MB of growth from epoch 250 on; a leak of one checkpoint's tensors
    per epoch would be megabytes per epoch.)"""
    done = subprocess.run([sys.executable, "long_run.py", "--epochs", "200", "--every", "50"], cwd=Path(__file__).parent.parent / "bench",
                          capture_output=True, text=True, env=ENV, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [ast.literal_eval(line) for line in done.stdout.splitlines() if line.startswith("{'epoch'")]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(result)
    assert result["open_files_change"] == 0 and result["threads_change"] == 0
    assert all(r["checkpoints"] == 2 for r in rows), "num_checkpoint_limit holds"
    assert result["rss_growth_mb"] < 15, "resident memory stays flat after the warm-up (under 100 kB per epoch)"
    assert rows[-1]["output_bytes"] < 2 * rows[0]["output_bytes"], "disk use does not grow with the number of checkpoints written"
