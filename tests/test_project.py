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

def test_readme_tiny_run_file_is_the_one_train_help_shows():
    "README's run file for the tiny models and `imageddpo train --help`'s example say the same (bench/tiny_run_files.py times it)."
    import yaml
    from imageddpo.run_file import EXAMPLE_RUN_FILE
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S) if "model: tiny-sdxl" in b)
    assert yaml.safe_load(block) == yaml.safe_load(EXAMPLE_RUN_FILE)

def test_readme_quick_test_command_names_tests_that_exist():
    "The contributors' quick command (about 2 minutes) runs files that exist, and none of them is slow by marker alone."
    import glob, shlex
    readme = (ROOT / "README.md").read_text()
    line = next(l for l in readme.splitlines() if l.startswith('pytest -m "not slow" tests/test_project.py'))
    files = [f for arg in shlex.split(line)[3:] for f in glob.glob(str(ROOT / arg))]
    assert len(files) >= 8 and all(Path(f).is_file() for f in files), files
    assert "nbdev-test --path nbs/" in readme

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

def _project_urls() -> tuple[str, str]:
    "The repository and docs URLs, as pyproject.toml's [project.urls] names them (the one place)."
    import tomllib
    urls = tomllib.loads((ROOT/"pyproject.toml").read_text())["project"]["urls"]
    return urls["Repository"].rstrip("/"), urls["Documentation"].rstrip("/")

def _texts() -> dict:
    "Every text a user reads or runs: README, notebooks, the package, workflows, CI."
    paths = [ROOT/"README.md", *sorted((ROOT/"nbs").rglob("*.ipynb")), *sorted((ROOT/"imageddpo").glob("*.py")),
             *sorted((ROOT/".github"/"workflows").glob("*.yaml")), ROOT/".ci"/"run"]
    return {p: p.read_text() for p in paths if ".ipynb_checkpoints" not in str(p)}

def test_every_link_comes_from_pyproject_urls():
    "nbdev's settings, the docs site's nbdev.yml, README's links and the tutorials' Colab badges all derive from [project.urls]."
    import yaml
    repo, docs = _project_urls()
    derived = make_readme.urls()
    assert (derived["repository"], derived["docs"]) == (repo, docs)
    site = yaml.safe_load((ROOT/"nbs"/"nbdev.yml").read_text())["website"]
    assert (site["repo-url"].rstrip("/"), site["site-url"].rstrip("/")) == (repo, docs)
    name = repo.rsplit("/", 1)[1]
    for path, text in _texts().items():
        for url in re.findall(rf"https://[\w.-]+(?:/[\w.-]+)*/{name}\b[^\s)\"'`\\]*", text):
            assert url.startswith((repo, docs, derived["colab"])), (path, url)
        if path.suffix == ".ipynb": assert docs not in text, f"{path.name}: link notebooks by their .ipynb path; README gets the docs URL"
    for nb in make_readme.tutorials():
        cell = "".join(json.loads(nb.read_text())["cells"][1]["source"])
        assert cell == make_readme.badge(nb), nb
        assert (ROOT / cell.rsplit(f"/blob/{derived['branch']}/", 1)[1].rstrip(")")).is_file()
    links = re.findall(r"\]\((https://[^)#]+\.html)", (ROOT/"README.md").read_text())
    pages = {make_readme.doc_url(p.relative_to(ROOT/"nbs").as_posix()) for p in (ROOT/"nbs").rglob("*.ipynb")}
    assert links and not [l for l in links if l.startswith(docs) and l not in pages], "README links a docs page no notebook makes"

def test_no_install_line_can_resolve_to_the_original_package():
    "The index's `imageddpo` 0.1.x is the original package: every install line pins this one's version, or installs a checkout."
    major, minor = map(int, imageddpo.__version__.split(".")[:2])
    lines = [(p, l) for p, text in _texts().items() for l in re.findall(r"pip install[^\n]*imageddpo[^\n]*", text)]
    assert lines
    for path, line in lines:
        if re.search(r"-e \\?\"?\.", line): continue  # a checkout
        pins = re.findall(r"imageddpo(?:\[[\w,]+\])?>=(\d+)\.(\d+)", line)
        assert pins and all((int(a), int(b)) >= (0, 2) for a, b in pins), (path, line)
        assert (major, minor) >= (0, 2) and "git+" not in line, (path, line)
    tutorial = (ROOT/"nbs"/"tutorials"/"02_sd15_gpu.ipynb").read_text()
    assert '!pip install -q \\"imageddpo>=0.2\\" bitsandbytes' in tutorial

def test_release_workflow_builds_tests_and_publishes_the_wheel(tmp_path):
    "A version tag: build sdist and wheel (the tag must be the version), test the wheel in a fresh venv, publish by trusted publishing."
    import yaml
    workflow = yaml.safe_load((ROOT/".github"/"workflows"/"release.yaml").read_text())
    assert workflow[True] == {"push": {"tags": ["v*"]}}  # YAML reads the key `on` as True
    jobs = workflow["jobs"]
    assert list(jobs) == ["build", "test-wheel", "publish"]
    assert (jobs["test-wheel"]["needs"], jobs["publish"]["needs"]) == ("build", "test-wheel")
    runs = {name: "\n".join(s.get("run", "") for s in job["steps"]) for name, job in jobs.items()}
    assert "python -m build" in runs["build"]
    version_line = next(l.strip() for l in runs["build"].splitlines() if l.strip().startswith("version="))
    done = subprocess.run(["bash", "-c", f"{version_line}; echo $version"], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.strip() == imageddpo.__version__, done.stderr  # the tag check reads the version the package has
    for step in ["python -m venv", "download.pytorch.org/whl/cpu", "pip install dist/*.whl", "imageddpo smoke", "imageddpo demo --epochs 1"]:
        assert step in runs["test-wheel"], step
    uploads = [s["with"]["name"] for s in jobs["build"]["steps"] if "upload-artifact" in s.get("uses", "")]
    for name in ("test-wheel", "publish"):
        assert [s["with"]["name"] for s in jobs[name]["steps"] if "download-artifact" in s.get("uses", "")] == uploads == ["dist"]
    assert jobs["publish"]["permissions"] == {"id-token": "write"} and jobs["publish"]["environment"] == "pypi"
    publish = next(s for s in jobs["publish"]["steps"] if s.get("uses", "").startswith("pypa/gh-action-pypi-publish"))
    assert not {"password", "user"} & set(publish.get("with", {})), "trusted publishing stores no token"

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
