"""The `imageddpo` command in a subprocess: `train --config run.yaml` from a folder and from a 🤗 dataset,
resume, `python -m imageddpo`, and bad run files (exit 2, the key named, nothing written)."""
import json, os, re, shlex, subprocess, sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest, yaml

ENV = {**os.environ, "ACCELERATE_USE_CPU": "true", "TOKENIZERS_PARALLELISM": "false"}

def imageddpo(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "imageddpo", *args], capture_output=True, text=True, env=ENV, cwd=cwd,
                          timeout=600)

def image_folder(path: Path, n=3) -> Path:
    path.mkdir(parents=True)
    for i in range(n):
        pixels = (np.random.default_rng(i).random((24 + 8 * i, 32, 3)) * 255).astype(np.uint8)
        PIL.Image.fromarray(pixels).save(path / f"img_{i}.png")
    return path

def run_file(tmp_path, images_dir, **changes) -> Path:
    run = dict(model="tiny", images=images_dir, image_size=32, prompt="a photo of {stem}", reward="jpeg_compressibility",
               config=dict(mixed_precision="no", sample_num_steps=4, noise_strength=0.5, sample_guidance_scale=1.0,
                           sample_batch_size=2, sample_num_batches_per_epoch=1, train_batch_size=2, num_epochs=1,
                           output_dir=str(tmp_path / "run")))
    for key, value in changes.items():
        if key.startswith("config."): run["config"][key[7:]] = value
        else: run[key] = value
    path = tmp_path / "run.yaml"; path.write_text(yaml.safe_dump(run)); return path

def test_train_from_a_folder_then_resume(tmp_path):
    config = run_file(tmp_path, str(image_folder(tmp_path / "images")))
    first = imageddpo("train", "--config", str(config))
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "run" / "final" / "pytorch_lora_weights.safetensors").exists()
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-1").is_dir()
    second = imageddpo("train", "--config", str(config), "--resume-from", "latest", "--num_epochs", "2")
    assert second.returncode == 0, second.stderr
    state = json.loads((tmp_path / "run" / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    assert len(state["history"]) == 2, "the resumed run continues the first one's history"

def test_train_from_a_saved_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    rng = np.random.default_rng(0)
    images = [PIL.Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)) for _ in range(4)]
    ds = datasets.Dataset.from_dict({"image": images, "label": ["cat", "dog", "cat", "owl"]})
    ds = ds.cast_column("image", datasets.Image())
    ds.save_to_disk(str(tmp_path / "ds"))
    config = run_file(tmp_path, {"dataset": str(tmp_path / "ds"), "column": "image"}, prompt="a photo of a {label}")
    done = imageddpo("train", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "final" / "pytorch_lora_weights.safetensors").exists()

@pytest.mark.parametrize("changes, message", [
    ({"rewards": "jpeg_compressibility"}, "unknown key 'rewards'; did you mean 'reward'"),
    ({"config.sample_batchsize": 2}, "config: unknown key 'sample_batchsize'; did you mean 'sample_batch_size'"),
    ({"config.train_learning_rate": -1.0}, "train_learning_rate"),
    ({"reward": "jpeg_compresibility"}, "reward: unknown reward 'jpeg_compresibility'; did you mean 'jpeg_compressibility'"),
    ({"model": "tiny-sdlx"}, "model: 'tiny-sdlx' is not a built-in model, a local folder or a hub id (owner/name); did you mean 'tiny-sdxl'?"),
    ({"reward": "no_such_package.rewards:score"}, "reward: cannot import 'no_such_package.rewards:score'"),
    ({"image_size": 30}, "image_size: must be a positive multiple of 8"),
    ({"prompt": "a photo of {label}"}, "prompt: the template uses ['label']"),
    ({"images": "no/such/folder"}, "no/such/folder' is not a folder"),  # resolved beside the run file
])
def test_bad_run_files_exit_2_naming_the_key(tmp_path, changes, message):
    config = run_file(tmp_path, str(image_folder(tmp_path / "images")), **changes)
    done = imageddpo("train", "--config", str(config))
    assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "run").exists(), "a rejected run file must not write anything"

def test_missing_config_and_unknown_command(tmp_path):
    done = imageddpo("train")
    assert done.returncode == 2 and "the following arguments are required: --config" in done.stderr
    done = imageddpo("train", "--config", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2 and "--config: no such file" in done.stderr
    assert imageddpo("sing").returncode == 2

def test_reward_from_user_code(tmp_path):
    (tmp_path / "my_rewards.py").write_text(
        "def darkness(images, prompts, metadata):\n    return 1 - images.mean(dim=(1, 2, 3))\n")
    config = run_file(tmp_path, str(image_folder(tmp_path / "images")), reward="my_rewards:darkness")
    done = imageddpo("train", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr

@pytest.mark.parametrize("task, figures", [("restore", ["held-out accuracy", "held-out reward"]),
                                           ("edit", ["held-out accuracy", "second judge", "style kept"])])
def test_demo_command_one_epoch(tmp_path, task, figures):
    done = imageddpo("demo", "--task", task, "--epochs", "1", "--device", "cpu", "--output-dir", str(tmp_path / "demo"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert all(f"{figure}: " in done.stdout for figure in figures) and str(tmp_path / "demo" / "before_after.png") in done.stdout, done.stdout
    assert {"before_after.png", "reward_curve.png", "lora", "metrics.json"} <= {p.name for p in (tmp_path / "demo").iterdir()}
    assert json.loads((tmp_path / "demo" / "metrics.json").read_text())["epochs"] == 1

@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--epochs", "two"], "invalid int value: 'two'"),
    (["--device", "tpu"], "--device must be auto, cpu or cuda"),
    (["--task", "paint"], "--task must be restore or edit"),
])
def test_demo_bad_arguments(tmp_path, args, message):
    done = imageddpo("demo", *args, "--output-dir", str(tmp_path / "demo"))
    assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "demo").exists()

QUIET = """
import sys
from imageddpo.cli import main
try: main(sys.argv[1:])
except SystemExit: pass
print("torch loaded:", "torch" in sys.modules, "diffusers loaded:", "diffusers" in sys.modules)
"""

@pytest.mark.parametrize("args", [["--help"], ["demo", "--help"], ["train"], ["demo", "--epochs", "0"], ["sing"]])
def test_help_and_argument_errors_answer_before_torch_loads(args):
    done = subprocess.run([sys.executable, "-c", QUIET, *args], capture_output=True, text=True, env=ENV, timeout=120)
    assert "torch loaded: False diffusers loaded: False" in done.stdout, done.stdout + done.stderr

def test_importing_and_loading_the_pocket_model_print_nothing():
    done = subprocess.run([sys.executable, "-c", "import imageddpo; imageddpo.pocket_pipeline(); imageddpo.I2IDDPOStableDiffusionPipeline"],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done.stderr

def console_script(*args, cwd):
    "The installed `imageddpo` command (its import path starts at its own folder, not the current one)."
    return subprocess.run([str(Path(sys.executable).parent / "imageddpo"), *args], capture_output=True, text=True, env=ENV,
                          cwd=cwd, timeout=600)

def test_run_file_paths_and_reward_modules_resolve_beside_the_run_file(tmp_path):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    image_folder(project / "images"); elsewhere.mkdir()
    (project / "beside.py").write_text("def darkness(images, prompts, metadata):\n    return 1 - images.mean(dim=(1, 2, 3))\n")
    config = run_file(project, "images", reward="beside:darkness", **{"config.output_dir": "run"})
    done = console_script("train", "--config", str(config), cwd=elsewhere)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (project / "run" / "final" / "pytorch_lora_weights.safetensors").exists() and not (elsewhere / "run").exists()

def test_the_console_script_finds_a_reward_module_in_the_current_folder(tmp_path):
    (tmp_path / "here.py").write_text("def darkness(images, prompts, metadata):\n    return 1 - images.mean(dim=(1, 2, 3))\n")
    (tmp_path / "configs").mkdir()
    config = run_file(tmp_path / "configs", str(image_folder(tmp_path / "images")), reward="here:darkness")
    done = console_script("train", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]

def test_a_pocket_reward_on_unlabelled_images_is_refused_before_loading(tmp_path):
    config = run_file(tmp_path, str(image_folder(tmp_path / "images")), reward="pocket_classifier")
    done = imageddpo("train", "--config", str(config))
    assert done.returncode == 2 and "reads ['label']" in done.stderr and "one subfolder per class" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "run").exists()

def test_a_previous_run_is_never_overwritten_unasked(tmp_path):
    config = run_file(tmp_path, str(image_folder(tmp_path / "images")))
    assert imageddpo("train", "--config", str(config)).returncode == 0
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-1" / "weights.safetensors"
    before = checkpoint.read_bytes()
    again = imageddpo("train", "--config", str(config))
    assert again.returncode == 2 and f"`imageddpo train --config {config} --resume-from latest`" in again.stderr, again.stderr[-2000:]
    assert checkpoint.read_bytes() == before, "a refused run changes nothing"
    pasted = imageddpo(*shlex.split(re.search(r"Continue it with `imageddpo ([^`]+)`", again.stderr).group(1)))
    assert pasted.returncode == 0 and "1 of 1 epochs done" in pasted.stdout, "the hint, pasted, continues the run"
    resumed = imageddpo("train", "--config", str(config), "--resume-from", "latest", "--num-epochs", "2")
    assert resumed.returncode == 0 and f"Resuming from {tmp_path / 'run' / 'checkpoints' / 'checkpoint-1'}: 1 of 2 epochs done" in resumed.stdout
    fresh = imageddpo("train", "--config", str(config), "--overwrite-output-dir")
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["checkpoint-1"], "the old run's checkpoint-2 is gone"

def test_an_interrupted_demo_says_how_to_continue(tmp_path):
    (tmp_path / "demo" / "checkpoints" / "checkpoint-40").mkdir(parents=True)
    (tmp_path / "demo" / "checkpoints" / "checkpoint-40" / "manifest.json").write_text("{}")
    done = imageddpo("demo", "--output-dir", str(tmp_path / "demo"))
    typed = f"imageddpo demo --output-dir {tmp_path / 'demo'}"  # the hints continue the demo in the folder it was given
    assert done.returncode == 2 and "epochs done: 40" in done.stderr and f"`{typed} --resume-from latest`" in done.stderr \
           and f"`{typed} --overwrite-output-dir`" in done.stderr, done.stderr[-2000:]

class FakeHub:
    "A real HTTP server on 127.0.0.1 that answers a hub file request as the Hugging Face hub does for one case."
    ANSWERS = {"missing": (404, "RepoNotFound"), "gated": (403, "GatedRepo"), "no-revision": (404, "RevisionNotFound"),
               "not-a-pipeline": (404, "EntryNotFound"), "ok": (200, None)}
    def __init__(self):
        import http.server, threading
        answers = self.ANSWERS
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self):
                status, code = answers[self.path.split("/")[2]]  # /owner/<case>/resolve/<revision>/model_index.json
                self.send_response(status)
                if code: self.send_header("X-Error-Code", code)
                else: self.send_header("ETag", '"0123"'); self.send_header("X-Repo-Commit", "0" * 40)
                self.send_header("Content-Length", "2"); self.end_headers()
            do_GET = do_HEAD
            def log_message(self, *args): pass
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

@pytest.fixture(scope="module")
def fake_hub():
    hub = FakeHub(); yield hub; hub.server.shutdown()

@pytest.mark.parametrize("case, message", [
    ("missing", "model: 'owner/missing' is not on the hub (or it is private: log in"),
    ("gated", "model: 'owner/gated' is gated: accept its terms on https://huggingface.co/owner/gated and log in"),
    ("no-revision", "revision: 'owner/no-revision' has no revision 'main'"),
    ("not-a-pipeline", "model: 'owner/not-a-pipeline' has no model_index.json: it is not a diffusers pipeline"),
])
def test_a_hub_model_that_cannot_load_is_refused_in_one_line_at_once(tmp_path, fake_hub, case, message):
    "The hub is asked once (no retries), before diffusers loads; the answer becomes one line naming what is wrong."
    import time
    config = run_file(tmp_path, str(image_folder(tmp_path / "images")), model=f"owner/{case}")
    env = {**ENV, "HF_ENDPOINT": fake_hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"}
    code = ("import sys, time; from imageddpo.cli import main; start = time.perf_counter()\n"
            f"try: main(['train', '--config', {str(config)!r}])\n"
            "except SystemExit as e: print(e.code, 'diffusers' in sys.modules, round(time.perf_counter() - start, 1))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.startswith("2 False"), done.stdout + done.stderr[-2000:]  # a usage error, before diffusers loads
    assert message in done.stderr and done.stderr.count("\n") <= 5, done.stderr
    assert float(done.stdout.split()[-1]) < 20, done.stdout  # one request, not the hub client's retries

def test_an_unreachable_hub_is_refused_in_one_line(tmp_path):
    "No hub answers (port 9 is closed): one line saying the hub cannot be reached, without the client's minute of retries."
    config = run_file(tmp_path, str(image_folder(tmp_path / "images")), model="owner/model")
    env = {**ENV, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"}
    done = subprocess.run([sys.executable, "-m", "imageddpo", "train", "--config", str(config)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 2 and "model: the hub cannot be reached to load 'owner/model'" in done.stderr, done.stderr[-2000:]

def test_a_reachable_hub_model_passes_the_check(fake_hub, tmp_path):
    env = {**ENV, "HF_ENDPOINT": fake_hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"}
    done = subprocess.run([sys.executable, "-c", "from imageddpo.run_file import check_hub_model; check_hub_model('owner/ok'); print('ok')"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout == "ok\n", done.stderr[-2000:]

@pytest.mark.slow
def test_two_runs_started_together_on_one_folder_never_both_train(tmp_path):
    "Two `imageddpo train` on one output folder, started at the same moment, three times: one trains, the other is refused."
    from imageddpo.checkpoint import list_checkpoints, verify_checkpoint
    images = str(image_folder(tmp_path / "images"))
    for round in range(3):
        run = run_file(tmp_path, images, **{"config.output_dir": str(tmp_path / f"run{round}"), "config.num_epochs": 2, "config.save_freq": 1})
        procs = [subprocess.Popen([sys.executable, "-m", "imageddpo", "train", "--config", str(run)], env=ENV, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        done = [(p.wait(timeout=600), *p.communicate()) for p in procs]
        codes = sorted(code for code, _, _ in done)
        assert codes == [0, 2], [(code, err[-1500:]) for code, _, err in done]
        refusal = next(err for code, _, err in done if code == 2)
        assert "is in use by another run (PID" in refusal or "holds a previous run" in refusal, refusal[-1500:]
        found = list_checkpoints(tmp_path / f"run{round}")
        assert [p.name for p in found] == ["checkpoint-1", "checkpoint-2"]
        for checkpoint in found: verify_checkpoint(checkpoint)  # every file its manifest lists, with its checksum
        assert (tmp_path / f"run{round}" / ".imageddpo.lock").read_text() == ""  # released at the end

@pytest.mark.slow
def test_a_run_that_is_still_training_is_never_resumed_by_another(tmp_path):
    "Once run A has a checkpoint, B with --resume-from latest (what a refusal used to suggest) is refused: A is still alive."
    import time
    run = run_file(tmp_path, str(image_folder(tmp_path / "images")), **{"config.num_epochs": 200})
    first = subprocess.Popen([sys.executable, "-m", "imageddpo", "train", "--config", str(run)], env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not (tmp_path / "run" / "checkpoints" / "checkpoint-1").exists():
            assert first.poll() is None and time.time() < deadline, "run A ended or never wrote checkpoint-1"
            time.sleep(0.2)
        second = imageddpo("train", "--config", str(run), "--resume-from", "latest")
        assert second.returncode == 2 and f"is in use by another run (PID {first.pid} on" in second.stderr, second.stderr[-2000:]
    finally: first.kill(); first.wait()
    from imageddpo.checkpoint import checkpoint_epoch, latest_checkpoint
    epochs = checkpoint_epoch(latest_checkpoint(tmp_path / "run")) + 1
    done = imageddpo("train", "--config", str(run), "--resume-from", "latest", "--num-epochs", str(epochs))  # A is gone (kill -9): B takes over
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"took over the lock left by PID {first.pid}" in done.stderr, done.stderr[-2000:]
