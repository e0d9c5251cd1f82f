"""The dashboard in real frontends: a notebook with a short pocket run executed by nbclient with its widget
state stored, and the same notebook run in JupyterLab in headless Chromium (Playwright), screenshotted."""
import base64, io, os, shutil, socket, subprocess, sys, time
from pathlib import Path

import nbformat, pytest
import numpy as np
import PIL.Image

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
PANELS = 4  # trajectory, noise_strength, rewards, validation

CELLS = [
    """import diffusers, transformers
transformers.utils.logging.disable_progress_bar(); diffusers.utils.logging.disable_progress_bar()
import tempfile
from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, ImageDDPOTrainer, pocket_pipeline, pocket_reward
from imageddpo.dashboard import TrainingDashboard
from imageddpo.demo import DEMO_CONFIG, demo_inputs, demo_prompt_function
from imageddpo.pocket_training import digit_prompt""",
    """corrupted, clean, labels = demo_inputs("heldout", seed=1)
dashboard = TrainingDashboard(corrupted[:4], [digit_prompt(int(y)) for y in labels[:4]],
                              [{"label": int(y)} for y in labels[:4]], every=1, budget=1.0)
config = ImageDDPOConfig(**{**DEMO_CONFIG, "num_epochs": 3, "sample_batch_size": 16}, output_dir=tempfile.mkdtemp())
trainer = ImageDDPOTrainer(config, pocket_reward(), demo_prompt_function(*demo_inputs("train", seed=0)),
                           I2IDDPOStableDiffusionPipeline(pocket_pipeline()), callbacks=[dashboard])
trainer.train()""",
    """print("DASHBOARD", "DONE", dashboard.redraws, len(trainer.history))""",  # the output, not the source, says "DASHBOARD DONE"
]

def dashboard_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path); return path

def image_stats(png: bytes) -> tuple[tuple, float]:
    image = np.asarray(PIL.Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    return image.shape, image.std()

def test_widget_state_is_stored_with_the_three_panels(tmp_path):
    from nbclient import NotebookClient
    nb = nbformat.read(dashboard_notebook(tmp_path / "dash.ipynb"), as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    images = [m for m in state.values() if m["model_name"] == "ImageModel"]
    assert len(images) == PANELS
    for model in images:
        png = base64.b64decode(model["state"]["value"]["data"] if isinstance(model["state"].get("value"), dict)
                               else next(b["data"] for b in model.get("buffers", []) if b["path"] == ["value"]))
        shape, spread = image_stats(png)
        assert min(shape) > 100 and spread > 5, f"a blank or tiny panel: {shape}, std {spread:.1f}"
    html = " ".join(m["state"].get("value", "") for m in state.values() if m["model_name"] == "HTMLModel")
    assert "epoch 3/3" in html and "Noise-strength trajectory" in html and "Validation" in html

# --- a real browser -------------------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

def free_port() -> int:
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y chromium); .ci/run installs it")
def test_dashboard_in_jupyterlab_in_chromium(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
    pytest.importorskip("jupyterlab", reason="needs jupyterlab")
    dashboard_notebook(tmp_path / "dash.ipynb")
    port, token = free_port(), "imageddpo-test"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    lab = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
                            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--allow-root",
                            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                           env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "lab.log", "w"))
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            deadline = time.time() + 120
            while True:  # the server takes a few seconds to start
                try: page.goto(f"http://127.0.0.1:{port}/lab/tree/dash.ipynb?token={token}", timeout=30_000); break
                except Exception:
                    if time.time() > deadline: raise
                    time.sleep(1)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            page.wait_for_selector("text=| Idle", timeout=120_000)  # the status bar: the kernel is up
            page.click(".jp-Notebook"); page.keyboard.press("Escape")
            page.click("text=Run", timeout=30_000)
            page.click("text=Run All Cells", timeout=30_000)
            page.wait_for_selector(".jp-OutputArea-output:has-text('DASHBOARD DONE')", timeout=480_000)
            ARTIFACTS.mkdir(exist_ok=True); page.screenshot(path=str(ARTIFACTS / "jupyterlab_page.png"), full_page=True)
            no = page.get_by_role("button", name="No", exact=True)  # JupyterLab's "news?" toast
            if no.count(): no.first.click(timeout=5_000)
            dashboard = page.locator(".imageddpo-dashboard")
            dashboard.scroll_into_view_if_needed()
            images = dashboard.locator("img")
            assert images.count() == PANELS
            for i in range(PANELS):
                assert images.nth(i).is_visible()
                shape, spread = image_stats(images.nth(i).screenshot())
                assert min(shape) > 50 and spread > 5, f"panel {i} looks blank: {shape}, std {spread:.1f}"
            for title in ("Noise-strength trajectory", "Rewards", "Validation"):
                assert dashboard.get_by_text(title).first.is_visible()
            ARTIFACTS.mkdir(exist_ok=True)
            dashboard.screenshot(path=str(ARTIFACTS / "dashboard_jupyterlab.png"))
            browser.close()
    finally:
        lab.terminate(); lab.wait(timeout=30)
