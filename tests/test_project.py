"The project's own contracts: generated README, CI command, public API, runtime imports."
import importlib, inspect, json, pkgutil, re, subprocess, sys
from pathlib import Path

import imageddpo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import make_readme

def test_readme_is_generated_from_index_and_fresh():
    assert (ROOT / "README.md").read_text() == make_readme.render(), "run `python tools/make_readme.py`"

def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    "```sh blocks are the setup commands (exactly two); usage examples elsewhere use ```bash or ```python."
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```sh\n(.*?)\n```", readme, flags=re.S)
    assert len(commands) == 2, commands
    main_job, test_command = commands
    assert main_job.startswith("pip install") and "imageddpo" in main_job
    assert '".[dev]"' in test_command and "nbdev-test" in test_command and "pytest" in test_command
    assert readme.index("download.pytorch.org/whl/cpu") < readme.index(main_job), "a CPU user meets the CPU build before the install"
    ci = (ROOT / ".ci" / "run").read_text()
    pattern = re.search(r"grep -m1 -E '(.*?)' README.md", ci).group(1)
    found = [l for l in readme.splitlines() if re.match(pattern, l)]
    assert found[:1] == [test_command]

def test_nbdev3_layout():
    assert not (ROOT / "settings.ini").exists(), "nbdev 3 refuses settings.ini"
    for path in ["pyproject.toml", "LICENSE", "nbs/index.ipynb", "nbs/_quarto.yml", "nbs/nbdev.yml", ".ci/run"]:
        assert (ROOT / path).exists(), path
    for nb in (ROOT / "nbs").glob("*.ipynb"):
        meta = json.loads(nb.read_text())["metadata"]
        assert meta.get("kernelspec", {}).get("name") == "python3", f"{nb.name} needs kernelspec metadata"

def _exported_names():
    "Every name in every module's `__all__`, and the public methods of exported classes."
    for info in pkgutil.iter_modules(imageddpo.__path__):
        if info.name.startswith("_"): continue
        mod = importlib.import_module(f"imageddpo.{info.name}")
        for name in mod.__all__:
            obj = getattr(mod, name)
            yield info.name, name, obj
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if inspect.isfunction(member) and not attr.startswith("_"): yield info.name, f"{name}.{attr}", member

def test_every_exported_name_has_a_docstring():
    missing = [f"{m}.{n}" for m, n, obj in _exported_names()
               if (inspect.isfunction(obj) or inspect.isclass(obj)) and not inspect.getdoc(obj)]
    assert not missing, missing

def test_public_api():
    for name in ["tiny_pipeline", "ddim_step_with_logprob", "I2IDDPOStableDiffusionPipeline"]:
        assert name in imageddpo.__all__
    assert re.fullmatch(r"\d+\.\d+\.\d+", imageddpo.__version__)

def test_runtime_never_imports_trl_or_wandb():
    code = ("import sys, imageddpo, imageddpo.cli; imageddpo.cli.smoke(steps=2, batch=1); "
            "bad = [m for m in ('trl', 'wandb') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)

def test_console_script_smoke_run():
    script = Path(sys.executable).parent / "imageddpo"  # installed by `pip install -e .`
    out = subprocess.run([script, "smoke", "--steps", "3"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert re.search(r"replay_max_abs_error: 0\n", out.stdout)

def test_no_instruction_installs_the_original_package():
    "The package index's `imageddpo` is the original 0.1.2: every install line names this repository (or a local checkout)."
    import re
    texts = {p: p.read_text() for p in [ROOT/"README.md", *sorted((ROOT/"nbs").rglob("*.ipynb")), *sorted((ROOT/"imageddpo").glob("*.py"))]}
    for path, text in texts.items():
        for line in re.findall(r"pip install[^\n]*imageddpo[^\n]*", text):
            if "0.1.2" in line: continue  # the warning that says which package not to install
            assert "git+https://github.com/hectorastrom/imageddpo" in line or re.search(r"-e \\?\"?\.", line), (path, line)
    assert 'pip install -q \\"imageddpo @ git+https://github.com/hectorastrom/imageddpo\\"' in texts[ROOT/"nbs"/"tutorials"/"02_sd15_gpu.ipynb"]

def test_docs_workflow_matches_the_project():
    "The Pages workflow runs nbdev 3's (hyphenated) commands, installs this project with a CPU torch, and publishes nbdev's doc_path."
    import shutil, tomllib, yaml
    workflow = yaml.safe_load((ROOT/".github"/"workflows"/"deploy.yaml").read_text())
    steps = workflow["jobs"]["deploy"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    text = (ROOT/".github"/"workflows"/"deploy.yaml").read_text()
    assert "settings.ini" not in text.replace("keys its pip cache on settings.ini", "") and "setup.py" not in text
    assert not (ROOT/"settings.ini").exists()
    for command in re.findall(r"\bnbdev[-_][a-z_-]+", runs):
        assert "_" not in command, f"{command}: nbdev 3's commands are hyphenated"
        assert shutil.which(command), f"{command} is not a command of the installed nbdev"
    assert "nbdev-docs" in runs and 'pip install -e ".[dev]"' in runs
    assert "download.pytorch.org/whl/cpu" in runs  # CPU PyTorch: docs need no GPU
    setup = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python"))
    assert (ROOT/setup["with"]["cache-dependency-path"]).is_file()
    pyproject = tomllib.loads((ROOT/"pyproject.toml").read_text())
    deploy = next(s for s in steps if "actions-gh-pages" in s.get("uses", ""))
    assert Path(deploy["with"]["publish_dir"]) == Path(pyproject["tool"]["nbdev"]["doc_path"])
    need = pyproject["project"]["requires-python"].removeprefix(">=")
    assert tuple(map(int, str(setup["with"]["python-version"]).split("."))) >= tuple(map(int, need.split(".")))

def test_readme_quick_start_prints_what_the_readme_shows(tmp_path):
    "The Quick start, saved as a script and run, prints exactly the output the README shows under it."
    text = (ROOT/"README.md").read_text()
    section = text[text.index("## Quick start in Python"):]
    section = section[:section.index("\n## ", 5)]
    code = "".join(re.findall(r"```python\n(.*?)```", section, re.S))
    shown = re.findall(r"\n\n```\n(.*?)\n```", section, re.S)[-1].strip()  # the output block (a bare fence)
    (tmp_path/"quickstart.py").write_text(code)
    done = subprocess.run([sys.executable, "quickstart.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == shown
