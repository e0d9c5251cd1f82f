"""The bad-input matrix: wrong inputs across the public API, each refused with a documented exception whose
message names the culprit — before any UNet call where that is possible — and never touching saved checkpoints.

Exception types, as documented in the chapters: `TypeError` (wrong kind of thing), `ValueError` (wrong value,
shape, range or size; `CheckpointError` is a `ValueError`), `PermissionError` (an output folder that cannot be
written), `RuntimeError` (a user function that raised, wrapped with the batch it failed on)."""
import dataclasses, hashlib
from pathlib import Path

import numpy as np
import pytest, torch

from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, ImageDDPOTrainer, tiny_pipeline
from imageddpo.checkpoint import CheckpointError

IMG = lambda: torch.rand(3, 64, 64)
GOOD_PROMPTS = lambda: ("a photo", IMG(), {})
GOOD_REWARD = lambda images, prompts, metadata: images.mean(dim=(1, 2, 3))

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    "A pipeline whose UNet calls are counted, and an output folder holding a sealed checkpoint from a real run."
    root = tmp_path_factory.mktemp("bad")
    pipe = I2IDDPOStableDiffusionPipeline(tiny_pipeline())
    calls = [0]
    pipe.unet.register_forward_pre_hook(lambda module, args: calls.__setitem__(0, calls[0] + 1))
    config = ImageDDPOConfig(mixed_precision="no", sample_num_steps=10, noise_strength=0.5, sample_guidance_scale=1.0,
                             sample_batch_size=4, sample_num_batches_per_epoch=1, train_batch_size=2, num_epochs=1,
                             output_dir=str(root/"run"))
    ImageDDPOTrainer(config, GOOD_REWARD, GOOD_PROMPTS, pipe).train()
    (root/"not-a-dir").write_text("a file")
    corrupt = root/"corrupt"/"checkpoints"/"checkpoint-1"
    corrupt.parent.mkdir(parents=True)
    import shutil; shutil.copytree(root/"run"/"checkpoints"/"checkpoint-1", corrupt)
    with open(corrupt/"optimizer.pt", "r+b") as f: f.truncate(100)
    return dict(pipe=pipe, calls=calls, config=config, root=root)

def tree_digest(path:Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file(): h.update(str(p.relative_to(path)).encode() + p.read_bytes())
    return h.hexdigest()

def rollout(**overrides):
    def run(w):
        args = dict(images=torch.rand(2, 3, 64, 64), prompts="a photo", noise_strength=0.5, num_inference_steps=10)
        return w["pipe"].rollout(**{**args, **overrides})
    return run

def config(**overrides):
    return lambda w: ImageDDPOConfig(**{**dataclasses.asdict(w["config"]), **overrides})

def trainer(prompt_function=GOOD_PROMPTS, reward_function=GOOD_REWARD, sample=True, pipe=None, **overrides):
    "Build a trainer that continues the run in its folder (and sample one epoch)."
    def run(w):
        cfg = dataclasses.replace(w["config"], **{"resume_from": "latest", **overrides})
        t = ImageDDPOTrainer(cfg, reward_function, prompt_function, w["pipe"] if pipe is None else pipe)
        if sample: t.sample_and_reward(0, 0.5)
    return run

def cycle(*items):
    it = iter(items * 100)
    return lambda: next(it)

# (name, call, exception, message fragment, UNet calls allowed before the error)
CASES = [
    # --- rollouts: images ---
    ("empty batch", rollout(images=[]), ValueError, "images: the batch is empty", False),
    ("mixed sizes", rollout(images=[torch.rand(3, 64, 64), torch.rand(3, 32, 32)]), ValueError, "must have one size", False),
    ("NaN pixels", rollout(images=torch.full((1, 3, 64, 64), float("nan"))), ValueError, "images[0]: contains NaN", False),
    ("inf pixels", rollout(images=[IMG(), torch.full((3, 64, 64), float("inf"))]), ValueError, "images[1]: contains NaN or inf", False),
    ("pixels > 1", rollout(images=torch.rand(1, 3, 64, 64) * 255), ValueError, "float pixels must be in [0, 1]", False),
    ("RGBA numpy", rollout(images=[np.zeros((64, 64, 4), np.uint8)]), ValueError, "HWC with 3 channels", False),
    ("a string image", rollout(images=["cat.png"]), TypeError, "images[0]: expected a PIL image", False),
    ("int64 pixels", rollout(images=[torch.zeros(3, 64, 64, dtype=torch.int64)]), TypeError, "expected uint8 or float", False),
    ("size not /8", rollout(images=torch.rand(1, 3, 60, 64)), ValueError, "multiples of the VAE factor 8", False),
    # --- rollouts: settings ---
    ("prompt count", rollout(prompts=["a", "b", "c"]), ValueError, "prompts: got 3 prompts for 2 images", False),
    ("prompt type", rollout(prompts=[1, 2]), TypeError, "prompts must be a string or a list of strings", False),
    ("strength 0", rollout(noise_strength=0.0), ValueError, "noise_strength must be in (0, 1]", False),
    ("strength too small", rollout(noise_strength=0.05), ValueError, "executes no denoising step", False),
    ("steps 0", rollout(num_inference_steps=0), ValueError, "num_inference_steps must be an int >= 1", False),
    ("negative eta", rollout(eta=-1.0), ValueError, "eta must be >= 0", False),
    ("negative guidance", rollout(guidance_scale=-2.0), ValueError, "guidance_scale must be >= 0", False),
    ("generator list", rollout(generator=[torch.Generator()]), ValueError, "generator: got a list of 1 generators for 2", False),
    # --- pipeline construction ---
    ("lora rank 0", lambda w: I2IDDPOStableDiffusionPipeline(tiny_pipeline(), lora_rank=0), ValueError, "lora_rank must be >= 1", False),
    ("model type", lambda w: I2IDDPOStableDiffusionPipeline(42), TypeError, "pretrained_model_name must be", False),
    # --- config ---
    ("eta 0 config", config(sample_eta=0.0), ValueError, "sample_eta=0.0", False),
    ("batch divisibility", config(sample_batch_size=4, train_batch_size=3), ValueError, "train_batch_size=3: must divide", False),
    ("fraction trains 0", trainer(noise_strength=0.1, train_timestep_fraction=0.5, sample=False), ValueError, "train_timestep_fraction", False),
    ("strength runs no step", trainer(noise_strength=0.05, sample=False), ValueError, "executes no step at epoch 0", False),
    ("window longer than K", trainer(noise_strength=0.3, sde_window=4, sample=False), ValueError, "sde_window=4: is longer than the 3 steps", False),
    ("strength > 1", config(noise_strength=1.5), ValueError, "noise_strength=1.5", False),
    ("unknown key", config(no_such_field=1), TypeError, "no_such_field", False),
    ("tracker", config(log_with="mlflow"), ValueError, "log_with='mlflow'", False),
    ("train_cfg mismatch", config(sample_guidance_scale=5.0, train_cfg=False), ValueError, "train_cfg=False", False),
    # --- trainer construction ---
    ("reward not callable", trainer(reward_function="brightness", sample=False), TypeError, "reward_function must be callable", False),
    ("prompt fn not callable", trainer(prompt_function=None, sample=False), TypeError, "prompt_function must be callable", False),
    ("pipeline type", trainer(pipe="runwayml/sd", sample=False), TypeError, "sd_pipeline must be an image-to-image policy", False),
    ("LoRA mismatch", trainer(use_lora=False, sample=False), ValueError, "config.use_lora=False", False),
    ("resume missing", trainer(resume_from="/nowhere/checkpoint-3", sample=False), CheckpointError, "no such checkpoint folder", False),
    ("resume not a checkpoint", lambda w: trainer(resume_from=str(w["root"]/"run"), sample=False)(w), CheckpointError,
     "not a checkpoint folder", False),
    ("resume corrupt", lambda w: trainer(resume_from=str(w["root"]/"corrupt"/"checkpoints"/"checkpoint-1"), sample=False)(w),
     CheckpointError, "optimizer.pt does not match its checksum", False),
    ("output dir unwritable", lambda w: trainer(output_dir=str(w["root"]/"not-a-dir"/"out"), sample=False)(w),
     PermissionError, "is not writable", False),
    # --- prompt functions ---
    ("2-tuple", trainer(prompt_function=lambda: ("a photo", IMG())), TypeError, "got a tuple of length 2", False),
    ("not a tuple", trainer(prompt_function=lambda: "a photo"), TypeError, "must return (prompt, image, metadata), got str", False),
    ("swapped order", trainer(prompt_function=lambda: (IMG(), "a photo", {})), TypeError, "the order is (prompt, image, metadata)", False),
    ("metadata type", trainer(prompt_function=lambda: ("a photo", IMG(), [1])), TypeError, "metadata of type list", False),
    ("bad image", trainer(prompt_function=lambda: ("a photo", torch.rand(3, 64, 64) - 1, {})), ValueError,
     "prompt_function returned a bad image: images[0]", False),
    ("sizes within a batch", trainer(prompt_function=cycle(("a", IMG(), {}), ("b", torch.rand(3, 32, 32), {}))), ValueError,
     "must have one size", False),
    ("sizes across batches", trainer(prompt_function=cycle(*[("a", IMG(), {})] * 4, *[("b", torch.rand(3, 32, 32), {})] * 4),
                                     sample_num_batches_per_epoch=2), ValueError, "different sizes within an epoch", True),
    # --- reward functions (they run after sampling by nature) ---
    ("reward length", trainer(reward_function=lambda i, p, m: torch.zeros(3)), ValueError, "shape (3,) for 4 samples", True),
    ("NaN reward", trainer(reward_function=lambda i, p, m: torch.tensor([0.0, float("nan"), 0, 0])), ValueError,
     "non-finite reward (nan) for sample 1", True),
    ("reward raises", trainer(reward_function=lambda i, p, m: 1 / 0), RuntimeError, "reward_function raised on a batch of 4", True),
    ("reward strings", trainer(reward_function=lambda i, p, m: ["good"] * 4), TypeError, "must return numbers", True),
]

@pytest.mark.parametrize("name,call,exc,fragment,after_unet", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly_and_early(world, name, call, exc, fragment, after_unet):
    before = tree_digest(world["root"]/"run"/"checkpoints")
    world["calls"][0] = 0
    with pytest.raises(exc) as info:
        call(world)
    assert fragment in str(info.value), f"{name}: {info.value}"
    if not after_unet: assert world["calls"][0] == 0, f"{name}: {world['calls'][0]} UNet calls before the error"
    assert tree_digest(world["root"]/"run"/"checkpoints") == before, f"{name}: saved checkpoints changed"

def test_the_matrix_is_wide():
    assert len(CASES) >= 25 and len({c[2] for c in CASES}) >= 4
