"""Weights and checkpoints load without running code: safetensors, `torch.load(weights_only=True)` and JSON only."""
import re
from pathlib import Path

import pytest, torch

import imageddpo
from imageddpo import I2IDDPOStableDiffusionPipeline, tiny_pipeline

def test_the_package_never_unpickles():
    for path in Path(imageddpo.__file__).parent.glob("*.py"):
        source = path.read_text()
        assert not re.search(r"\bpickle\b|\bdill\b", source), path.name
        for call in re.findall(r"torch\.load\([^)]*\)", source):
            assert "weights_only=True" in call, f"{path.name}: {call}"

def test_a_pickled_pipeline_folder_is_refused(tmp_path):
    tiny_pipeline().save_pretrained(tmp_path, safe_serialization=False)  # the UNet and VAE as pickled .bin
    assert list((tmp_path/"unet").glob("*.bin")) and not list((tmp_path/"unet").glob("*.safetensors"))
    with pytest.raises((OSError, ValueError), match="safetensors"):
        I2IDDPOStableDiffusionPipeline(str(tmp_path))
