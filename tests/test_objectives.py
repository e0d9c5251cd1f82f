"""Every objective and the groups: an interrupted run resumes to the uninterrupted run's exact weights (one process
here, two processes under torchrun in test_multiprocess.py); groups stay whole; uniform groups sit out training;
likelihood-free objectives train from deterministic, few-step sampling; PPO's own path is unchanged."""
import dataclasses

import pytest
import torch

from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, ImageDDPOTrainer, tiny_pipeline

def prompt_function():  # the global RNG: seeded by the trainer, restored on resume
    i = int(torch.randint(3, ()))
    return f"prompt {i}", torch.full((3, 32, 32), 0.2 + 0.3 * i), {"index": i}

def brighter(images, prompts, metadata):
    return images.mean(dim=(1, 2, 3)) * 10

def config(tmp, **overrides):
    base = dict(mixed_precision="no", sample_num_steps=6, noise_strength=0.5, sample_guidance_scale=1.0, sample_batch_size=4,
                sample_num_batches_per_epoch=2, train_batch_size=2, train_gradient_accumulation_steps=2, train_learning_rate=1e-2,
                num_epochs=3, save_freq=1, output_dir=str(tmp))
    return ImageDDPOConfig(**{**base, **overrides})

def weights(trainer): return {k: v.detach().clone() for k, v in trainer._trainable_state().items()}

def train(c):
    trainer = ImageDDPOTrainer(c, brighter, prompt_function, I2IDDPOStableDiffusionPipeline(tiny_pipeline(), lora_seed=c.seed))
    trainer.train()
    return trainer

CASES = {
    "nft, groups of 4, eta 0": dict(train_objective="nft", sample_eta=0.0, sample_group_size=4),
    "nft, groups of 2 sharing noise": dict(train_objective="nft", sample_group_size=2, group_same_noise=True),
    "awm, groups of 2, batch std, kl": dict(train_objective="awm", sample_group_size=2, group_std="batch", kl_coef=0.1),
    "ppo, groups of 4, uniform skipped": dict(sample_group_size=4, group_skip_uniform=True),
    "nft, 2 inner epochs, kl": dict(train_objective="nft", train_num_inner_epochs=2, kl_coef=0.1, train_timestep_fraction=0.5),
    "ppo, sliding sde window of 2, kl": dict(sde_window=2, sde_window_stride=1, kl_coef=0.1),
}

@pytest.mark.parametrize("case", list(CASES))
def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, case):
    straight = train(config(tmp_path/"straight", **CASES[case]))
    first = train(config(tmp_path/"split", **CASES[case], num_epochs=2))
    assert any((w != 0).any() for k, w in weights(first).items() if "lora_B" in k), "training moved the weights"
    resumed = train(config(tmp_path/"split", **CASES[case], resume_from="latest"))
    same = lambda history: [(h["reward_mean"], h["loss"], h.get("uniform_group_fraction")) for h in history]
    assert same(resumed.history) == same(straight.history)
    for k, w in weights(straight).items(): assert torch.equal(w, weights(resumed)[k]), k

def test_groups_are_whole_share_their_start_and_are_normalised_within(tmp_path):
    trainer = ImageDDPOTrainer(config(tmp_path, sample_group_size=4, group_same_noise=True), brighter, prompt_function,
                               I2IDDPOStableDiffusionPipeline(tiny_pipeline()))
    sampled = trainer.sample_and_reward(epoch=0)
    samples = sampled.samples
    for g in range(2):
        rows = range(4 * g, 4 * g + 4)
        assert len({samples.prompts[i] for i in rows}) == 1
        assert all(torch.equal(samples.input_images[i], samples.input_images[4 * g]) for i in rows)
        assert all(torch.equal(samples.latents[i, 0], samples.latents[4 * g, 0]) for i in rows), "one starting latent"
        assert len({samples.latents[i, -1].sum().item() for i in rows}) == 4, "each rollout its own step noise"
    advantages, _ = trainer.compute_advantages(samples, sampled.rewards)
    assert advantages.view(2, 4).mean(1).abs().max() < 1e-5 and (advantages.view(2, 4).std(1, unbiased=False) - 1).abs().max() < 1e-3

def test_uniform_groups_sit_out_training(tmp_path):
    constant = lambda images, prompts, metadata: torch.ones(len(images))  # every group uniform: nothing to learn
    trainer = ImageDDPOTrainer(config(tmp_path, sample_group_size=4, group_skip_uniform=True, num_epochs=1), constant,
                               prompt_function, I2IDDPOStableDiffusionPipeline(tiny_pipeline()))
    before = weights(trainer)
    trainer.train()
    stats = trainer.history[-1]
    assert stats["uniform_group_fraction"] == 1.0 and stats["trained_samples"] == 0 and trainer.global_step == 0
    assert all(torch.equal(w, weights(trainer)[k]) for k, w in before.items())

@pytest.mark.parametrize("objective", ["nft", "awm"])
def test_likelihood_free_objectives_train_from_deterministic_few_step_sampling(tmp_path, objective):
    trainer = train(config(tmp_path, train_objective=objective, sample_eta=0.0, sample_num_steps=2, noise_strength=0.5,
                           num_epochs=1))
    assert trainer.global_step == 2 and torch.isfinite(torch.tensor(trainer.history[-1]["loss"]))
    with pytest.raises(ValueError, match="sample_eta=0.0: must be > 0 for train_objective='ppo'"):
        config(tmp_path, sample_eta=0.0)

def test_ppo_is_unchanged_by_the_new_fields(tmp_path):
    "The default config and one that spells out every new field's default train to identical weights."
    plain = train(config(tmp_path/"a", num_epochs=1))
    spelled = train(config(tmp_path/"b", num_epochs=1, train_objective="ppo", sample_group_size=1, group_std="group"))
    for k, w in weights(plain).items(): assert torch.equal(w, weights(spelled)[k])

def test_a_run_file_names_the_objective_and_the_groups(tmp_path):
    from imageddpo.run_config import RunConfigError, read_run_config
    images = tmp_path/"images"; images.mkdir()
    run = dict(model="tiny", images=str(images), prompt="", reward="jpeg_compressibility",
               config=dict(train_objective="awm", sample_eta=0.0, sample_group_size=2, mixed_precision="no"))
    spec = read_run_config(run)
    assert (spec.config.train_objective, spec.config.sample_group_size, spec.config.sample_eta) == ("awm", 2, 0.0)
    with pytest.raises(RunConfigError, match="train_objective='dpo'"):
        read_run_config({**run, "config": {**run["config"], "train_objective": "dpo"}})
