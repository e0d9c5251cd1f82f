"The shipped pocket weights meet the pocket benchmark's quality bars (small batches, fixed seeds)."
import pytest, torch

from imageddpo.digits import classifier_accuracy, corrupt, digits_dataset, pocket_classifier, pocket_prompt_function, pocket_reward
from imageddpo.pipeline import I2IDDPOStableDiffusionPipeline
from imageddpo.pocket import pocket_pipeline
from imageddpo.pocket_training import digit_prompt
from imageddpo.rewards import compute_rewards

@pytest.fixture(scope="module")
def classifier(): return pocket_classifier()

@pytest.fixture(scope="module")
def policy(): return I2IDDPOStableDiffusionPipeline(pocket_pipeline(), use_lora=False)

@pytest.fixture(scope="module")
def heldout(): return digits_dataset("heldout")

def accuracy(classifier, images, labels): return classifier_accuracy(images, labels, classifier)

def test_classifier_heldout_accuracy(classifier, heldout):
    assert accuracy(classifier, *heldout) >= 0.97

def test_text_to_image_samples_show_the_prompted_digit(policy, classifier):
    wanted = torch.arange(10).repeat(5)
    images = policy.sd_pipeline([digit_prompt(int(d)) for d in wanted], num_inference_steps=20, guidance_scale=3.0,
                                height=32, width=32, output_type="pt", generator=torch.Generator().manual_seed(0)).images
    assert accuracy(classifier, images, wanted) >= 0.8

def test_img2img_at_0_3_keeps_the_class_of_clean_digits(policy, classifier, heldout):
    images, labels = heldout[0][:60], heldout[1][:60]
    out = policy.rollout(images, "", noise_strength=0.3, num_inference_steps=20, generator=torch.Generator().manual_seed(0))
    assert accuracy(classifier, out.images, labels) >= 0.9

def test_corruption_defeats_the_classifier_and_plain_img2img(policy, classifier, heldout):
    images, labels = heldout
    corrupted = corrupt(images, severity=1.0, seed=0)
    assert accuracy(classifier, corrupted, labels) <= 0.6
    for s in (0.3, 0.5):
        out = policy.rollout(corrupted[:60], "", noise_strength=s, num_inference_steps=20, generator=torch.Generator().manual_seed(0))
        assert accuracy(classifier, out.images, labels[:60]) <= 0.6, f"img2img at {s} undoes the corruption"

def test_task_and_reward_fit_together(policy):
    prompt_function, reward = pocket_prompt_function(seed=1), pocket_reward()
    prompts, images, metadata = zip(*(prompt_function() for _ in range(4)))
    out = policy.rollout(list(images), list(prompts), noise_strength=0.4, num_inference_steps=10, generator=torch.Generator().manual_seed(0))
    rewards, info = compute_rewards(reward, out.images, list(prompts), list(metadata), out.input_images)
    assert rewards.shape == (4,) and torch.isfinite(rewards).all() and 0 <= info["accuracy"] <= 1

@pytest.mark.parametrize("model", ["pocket-edit", "tiny-qwen-image-edit"])
def test_the_edit_task_trains_from_a_run_file(tmp_path, model):
    """`model: pocket-edit` (or Qwen-Image-Edit's tiny twin) with the `pocket_edit` reward: each image's `target` from
    metadata.jsonl fills the instruction and the reward; one epoch from pure noise; the LoRA loads into the model's diffusers pipeline."""
    import json, PIL.Image
    from imageddpo.flux_kontext import I2IDDPOFluxKontextPipeline
    from imageddpo.qwen_image_edit import I2IDDPOQwenImageEditPipeline
    from imageddpo.pocket import tiny_qwen_image_edit_pipeline
    from imageddpo.pocket_edit import pocket_edit_pipeline
    from imageddpo.run_config import trainer_from_run_config
    images, labels = digits_dataset("heldout")
    (tmp_path / "refs").mkdir()
    rows = []
    for i in range(4):
        PIL.Image.fromarray((images[i].permute(1, 2, 0) * 255).byte().numpy()).save(tmp_path / "refs" / f"{i}.png")
        rows.append(json.dumps({"file_name": f"{i}.png", "target": (int(labels[i]) + 1) % 10}))
    (tmp_path / "refs" / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    spec = dict(model=model, images=str(tmp_path / "refs"), image_size=32, prompt="make it a {target}", reward="pocket_edit",
                reward_kwargs=dict(keep=0.5, keep_ink=2.0),
                config=dict(mixed_precision="no", sample_num_steps=4, noise_strength=1.0, sample_eta=0.7, sample_batch_size=4,
                            sample_num_batches_per_epoch=1, train_batch_size=2, num_epochs=1, output_dir=str(tmp_path / "run")))
    from imageddpo.pocket_edit import pocket_edit_reward
    trainer = trainer_from_run_config(spec)
    if model == "pocket-edit": assert isinstance(trainer.sd_pipeline, I2IDDPOFluxKontextPipeline) and trainer.sd_pipeline.max_sequence_length == 8
    else: assert isinstance(trainer.sd_pipeline, I2IDDPOQwenImageEditPipeline) and trainer.sd_pipeline.reference_area is None
    seen = []
    class Record:
        def on_train_begin(self, t): pass
        def on_epoch_begin(self, t, epoch, strength): pass
        def on_epoch_end(self, t, result): seen.append(result)
        def on_train_end(self, t): pass
    trainer.callbacks.append(Record())
    trainer.train(); trainer.save_pretrained(tmp_path / "final")
    result, = seen
    assert all(p == f"make it a {m['target']}" for p, m in zip(result.samples.prompts, result.metadata))
    again, _ = compute_rewards(pocket_edit_reward(0.5, keep_ink=2.0), result.samples.images, result.samples.prompts, result.metadata,
                               result.samples.input_images)
    assert torch.allclose(again, result.rewards.cpu(), atol=1e-5), "the reward read each sample's target and its input"
    (pocket_edit_pipeline if model == "pocket-edit" else tiny_qwen_image_edit_pipeline)().load_lora_weights(tmp_path / "final")
