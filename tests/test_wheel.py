"""The package as a user gets it: build the wheel, install it into a fresh virtual environment, and run
`imageddpo demo` there for one epoch (slow: the environment's dependencies are installed from the index)."""
import json, subprocess, sys, venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

def run(*args, **kw):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=1500, **kw)
    assert done.returncode == 0, f"{args[:3]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done

@pytest.mark.slow
def test_wheel_installs_and_the_demo_runs(tmp_path):
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist", ROOT)
    wheel, = (tmp_path / "dist").glob("imageddpo-*.whl")
    venv.create(tmp_path / "venv", with_pip=True)
    bin = tmp_path / "venv" / "bin"
    run(bin / "pip", "install", "-q", "torch==2.13.0")  # the CPU build (on local disk here); the wheel accepts any torch>=2.4
    run(bin / "pip", "install", "-q", wheel)
    assert "pocket" in run(bin / "python", "-c", "import imageddpo, os; print(os.listdir(os.path.dirname(imageddpo.__file__) + '/assets'))").stdout
    done = run(bin / "imageddpo", "demo", "--epochs", "1", "--device", "cpu", "--output-dir", tmp_path / "demo", cwd=tmp_path)
    assert "held-out accuracy" in done.stdout, done.stdout
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and (tmp_path / "demo" / "before_after.png").stat().st_size > 1000
