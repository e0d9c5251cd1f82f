"""SDXL, SD3, FLUX.1, FLUX.1 Kontext and Qwen-Image-Edit (and its Plus pipeline) in the trainer: every objective trains each family's tiny model (guidance on, LoRA and full fine-tuning)
and resumes to the uninterrupted run's exact weights; a diffusers pipeline handed to the trainer gets its family's policy;
the trained LoRA loads into the family's diffusers img2img pipeline and samples what the policy samples; run files and
`imageddpo train` pick the family from the checkpoint's model_index.json. (Two processes: tests/test_multiprocess.py;
parity: chapters 02b and 02d.)"""
import importlib.util, json, os, subprocess, sys

import pytest
import torch
import yaml
from diffusers import FluxImg2ImgPipeline, StableDiffusion3Img2ImgPipeline, StableDiffusionXLImg2ImgPipeline

from imageddpo import (I2IDDPOFluxKontextPipeline, I2IDDPOFluxPipeline, I2IDDPOQwenImageEditPipeline, I2IDDPOQwenImageEditPlusPipeline,
                       I2IDDPOStableDiffusion3Pipeline,
                       I2IDDPOStableDiffusionXLPipeline, ImageDDPOConfig, ImageDDPOTrainer, tiny_flux_kontext_pipeline, tiny_flux_pipeline,
                       tiny_qwen_image_edit_pipeline, tiny_qwen_image_edit_plus_pipeline, tiny_sd3_pipeline, tiny_sdxl_pipeline)
from imageddpo.run_config import RunConfigError, trainer_from_run_config

# family -> (its tiny pipeline, policy class, diffusers' img2img pipeline, built-in run-file name)
FAMILIES = {"sdxl": (tiny_sdxl_pipeline, I2IDDPOStableDiffusionXLPipeline, StableDiffusionXLImg2ImgPipeline, "tiny-sdxl"),
            "sd3": (tiny_sd3_pipeline, I2IDDPOStableDiffusion3Pipeline, StableDiffusion3Img2ImgPipeline, "tiny-sd3"),
            "flux": (tiny_flux_pipeline, I2IDDPOFluxPipeline, FluxImg2ImgPipeline, "tiny-flux"),
                    # the edit models: no img2img twin (their parity and LoRA round trips against their diffusers pipelines are chapters 02g and 02h's)
            "flux-kontext": (tiny_flux_kontext_pipeline, I2IDDPOFluxKontextPipeline, None, "tiny-flux-kontext"),
            "qwen-image-edit": (tiny_qwen_image_edit_pipeline, I2IDDPOQwenImageEditPipeline, None, "tiny-qwen-image-edit"),
            "qwen-image-edit-plus": (tiny_qwen_image_edit_plus_pipeline, I2IDDPOQwenImageEditPlusPipeline, None, "tiny-qwen-image-edit-plus")}
POLICY_KWARGS = {"flux-kontext": dict(auto_resize=False),  # the tiny edit models at the inputs' size, as their run-file names build them
                 "qwen-image-edit": dict(reference_area=None), "qwen-image-edit-plus": dict(reference_area=None, condition_area=None)}
IMG2IMG = [family for family in FAMILIES if FAMILIES[family][2] is not None]

def policy(family, **kwargs):
    build, policy_class = FAMILIES[family][:2]
    return policy_class(build(), **POLICY_KWARGS.get(family, {}), **kwargs)

def prompt_function():  # the global RNG: seeded by the trainer, restored on resume
    i = int(torch.randint(3, ()))
    return f"a photo of a digit {i}", torch.full((3, 32, 32), 0.2 + 0.3 * i), {"index": i}

def brighter(images, prompts, metadata):
    return images.mean(dim=(1, 2, 3)) * 10

def config(tmp, **overrides):
    base = dict(mixed_precision="no", sample_num_steps=6, noise_strength=0.5, sample_guidance_scale=3.0, sample_batch_size=4,
                sample_num_batches_per_epoch=2, train_batch_size=2, train_gradient_accumulation_steps=2, train_learning_rate=1e-2,
                num_epochs=3, save_freq=1, output_dir=str(tmp))
    return ImageDDPOConfig(**{**base, **overrides})

def weights(trainer): return {k: v.detach().clone() for k, v in trainer._trainable_state().items()}

def train(c, family):
    trainer = ImageDDPOTrainer(c, brighter, prompt_function, policy(family, use_lora=c.use_lora, lora_seed=c.seed))
    trainer.train()
    return trainer

CASES = {
    "ppo, guidance 3, negative prompt": dict(negative_prompts="a photo", sample_eta=0.7),
    "nft, groups of 2, eta 0, no guidance": dict(train_objective="nft", sample_eta=0.0, sample_group_size=2,
                                                 sample_guidance_scale=1.0),
    "awm, full fine-tuning, kl": dict(train_objective="awm", use_lora=False, kl_coef=0.1, sample_group_size=2,
                                     train_learning_rate=1e-4),
}

@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("case", list(CASES))
def test_every_objective_trains_and_resumes_to_the_same_weights(tmp_path, case, family):
    straight = train(config(tmp_path/"straight", **CASES[case]), family)
    first = train(config(tmp_path/"split", **CASES[case], num_epochs=2), family)
    c = config(tmp_path/"none", **CASES[case])
    untrained = policy(family, use_lora=c.use_lora, lora_seed=c.seed).unet
    fresh = {k: w for k, w in untrained.named_parameters() if w.requires_grad}
    assert any(not torch.equal(w, fresh[k]) for k, w in weights(first).items()), "training moved the weights"
    resumed = train(config(tmp_path/"split", **CASES[case], resume_from="latest"), family)
    same = lambda history: [(h["reward_mean"], h["loss"]) for h in history]
    assert same(resumed.history) == same(straight.history)
    for k, w in weights(straight).items(): assert torch.equal(w, weights(resumed)[k]), k

@pytest.mark.parametrize("family", IMG2IMG)
def test_the_trainer_wraps_a_pipeline_and_its_lora_loads_into_diffusers(tmp_path, family):
    build, policy_class, img2img, _ = FAMILIES[family]
    c = config(tmp_path, num_epochs=1, save_freq=100, sample_eta=0.7)
    trainer = ImageDDPOTrainer(c, brighter, prompt_function, build())
    assert isinstance(trainer.sd_pipeline, policy_class)
    trainer.train()
    trainer.save_pretrained(tmp_path/"final")
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    kwargs = dict(num_inference_steps=6, guidance_scale=3.0)  # deterministic: diffusers' default (eta 0, the ODE)
    ours = trainer.sd_pipeline.rollout(images, "a photo of a digit 1", noise_strength=0.5, eta=0.0,
                                       generator=torch.Generator().manual_seed(1), **kwargs).images
    loaded = img2img(**{**build().components, "scheduler": trainer.sd_pipeline.scheduler})
    loaded.load_lora_weights(tmp_path/"final"); loaded.set_progress_bar_config(disable=True)
    size = dict(height=32, width=32) if family in ("sd3", "flux") else {}  # their img2img resizes to a default size unless told
    theirs = loaded(prompt=["a photo of a digit 1"] * 2, image=images, strength=0.5, generator=torch.Generator().manual_seed(1),
                    output_type="pt", **size, **kwargs).images
    assert torch.equal(ours, theirs), (ours - theirs).abs().max()

@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_dashboard_draws_a_run(tmp_path, family):
    "Static mode: every panel is written, the validation rollouts ran the family's policy with its adapters off and on."
    from imageddpo.dashboard import TrainingDashboard
    dashboard = TrainingDashboard(torch.rand(2, 3, 32, 32), "a photo of a digit 1", every=1, mode="static", budget=1.0)
    trainer = ImageDDPOTrainer(config(tmp_path, num_epochs=2, save_freq=100, sample_eta=0.7), brighter, prompt_function,
                               policy(family), callbacks=[dashboard])
    trainer.train()
    assert {p.name for p in (tmp_path/"dashboard").iterdir()} == {"trajectory.png", "noise_strength.png", "rewards.png",
                                                                   "validation.png"}
    assert dashboard.redraws == 2 and not torch.equal(dashboard.base["images"], dashboard.current["images"])

def run_spec(tmp_path, model, **config_changes) -> dict:
    images = tmp_path/"images"; images.mkdir(exist_ok=True)
    import PIL.Image
    for i in range(2): PIL.Image.new("RGB", (32, 32), (40 * i, 90, 200)).save(images/f"img_{i}.png")
    return dict(model=model, images=str(images), image_size=32, prompt="a photo of a {stem}", reward="jpeg_compressibility",
                config=dict(mixed_precision="no", sample_num_steps=4, noise_strength=0.5, sample_batch_size=2,
                            sample_num_batches_per_epoch=1, train_batch_size=2, num_epochs=1, output_dir=str(tmp_path/"run"),
                            **config_changes))

@pytest.mark.parametrize("family", list(FAMILIES))
def test_run_files_pick_the_family_from_the_checkpoint(tmp_path, family):
    build, policy_class, _, name = FAMILIES[family]
    # transformers saves and loads a Qwen2VLProcessor only with torchvision, which cannot be installed beside the CPU torch here (chapter 00)
    if not family.startswith("qwen") or importlib.util.find_spec("torchvision"):
        build().save_pretrained(tmp_path/family)
        assert isinstance(trainer_from_run_config(run_spec(tmp_path, str(tmp_path/family))).sd_pipeline, policy_class)
    assert isinstance(trainer_from_run_config(run_spec(tmp_path, name, overwrite_output_dir=True)).sd_pipeline, policy_class)
    (tmp_path/"other").mkdir(); (tmp_path/"other"/"model_index.json").write_text(json.dumps({"_class_name": "KandinskyV22Pipeline"}))
    with pytest.raises(RunConfigError, match="is a KandinskyV22Pipeline checkpoint"):
        trainer_from_run_config(run_spec(tmp_path, str(tmp_path/"other"), overwrite_output_dir=True))

@pytest.mark.parametrize("family", list(FAMILIES))
def test_imageddpo_train_trains_from_a_run_file(tmp_path, family):
    spec = run_spec(tmp_path, FAMILIES[family][3], sample_guidance_scale=2.0, sample_eta=0.7)
    (tmp_path/"run.yaml").write_text(yaml.safe_dump(spec))
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-m", "imageddpo", "train", "--config", str(tmp_path/"run.yaml")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (tmp_path/"run"/"final"/"pytorch_lora_weights.safetensors").exists()
    FAMILIES[family][0]().load_lora_weights(tmp_path/"run"/"final")  # diffusers' format for the family

@pytest.mark.gpu
@pytest.mark.parametrize("family", IMG2IMG)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_rollouts_match_diffusers_on_cuda(dtype, family):
    "The whole pipeline in fp16/bf16 on CUDA (SDXL's VAE upcast to float32): our rollout vs diffusers' img2img."
    build, policy_class, img2img, _ = FAMILIES[family]
    pipe = build().to("cuda", dtype)
    policy = policy_class(pipe, use_lora=False)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    kwargs = dict(num_inference_steps=10, guidance_scale=5.0)
    ours = policy.rollout(images, "a photo", noise_strength=0.6, eta=0.0, generator=torch.Generator("cuda").manual_seed(1), **kwargs)
    reference = img2img(**policy.sd_pipeline.components); reference.set_progress_bar_config(disable=True)
    size = dict(height=64, width=64) if family in ("sd3", "flux") else {}
    theirs = reference(prompt=["a photo"] * 2, image=images, strength=0.6, generator=torch.Generator("cuda").manual_seed(1),
                       output_type="pt", **size, **kwargs).images
    assert policy.vae.dtype == dtype, "the VAE is upcast only while it runs"
    assert torch.isfinite(ours.images).all() and (ours.images - theirs.float()).abs().max() <= 2e-2

def test_an_edit_run_file_gives_each_image_its_own_instruction(tmp_path):
    "FLUX.1 Kontext from a run file: metadata.jsonl's `target` per image fills `prompt: make it a {target}`; one epoch from pure noise."
    spec = run_spec(tmp_path, "tiny-flux-kontext", sample_eta=0.7, sample_guidance_scale=2.5)
    spec["config"].update(noise_strength=1.0, sample_batch_size=4)
    spec["prompt"] = "make it a {target}"
    (tmp_path/"images"/"metadata.jsonl").write_text("".join(json.dumps({"file_name": f"img_{i}.png", "target": 7 - 6 * i}) + "\n"
                                                            for i in range(2)))
    trainer = trainer_from_run_config(spec)
    assert isinstance(trainer.sd_pipeline, I2IDDPOFluxKontextPipeline) and trainer.sd_pipeline.auto_resize is False
    seen = []
    class Record:
        def on_train_begin(self, t): pass
        def on_epoch_begin(self, t, epoch, strength): pass
        def on_epoch_end(self, t, result): seen.extend(zip(result.samples.prompts, result.metadata))
        def on_train_end(self, t): pass
    trainer.callbacks.append(Record())
    torch.manual_seed(0)
    trainer.train()
    assert all(prompt == f"make it a {meta['target']}" for prompt, meta in seen) and len(seen) == 4
    assert all({"img_0": 7, "img_1": 1}[meta["stem"]] == meta["target"] for _, meta in seen)
    assert torch.isfinite(torch.tensor(trainer.history[0]["reward_mean"]))
