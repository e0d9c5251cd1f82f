"""Non-finite values never reach the weights: a NaN from the UNet or an inf gradient during an update either stops
the run (on_nonfinite="raise", weights and optimizer untouched) or drops that update and counts it ("skip")."""
import dataclasses

import pytest, torch

from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, ImageDDPOTrainer, tiny_pipeline

def make(tmp_path, **overrides):
    torch.manual_seed(0)
    config = ImageDDPOConfig(mixed_precision="no", sample_num_steps=10, noise_strength=0.5, sample_guidance_scale=1.0,
                             sample_batch_size=4, sample_num_batches_per_epoch=1, train_batch_size=2, num_epochs=2,
                             train_learning_rate=3e-3, output_dir=str(tmp_path), **overrides)
    return ImageDDPOTrainer(config, lambda images, prompts, metadata: images.mean(dim=(1, 2, 3)),
                            lambda: ("a photo", torch.rand(3, 64, 64), {}), I2IDDPOStableDiffusionPipeline(tiny_pipeline()))

def poison_unet(trainer, when):
    "Make the UNet return NaN on the training forward passes for which `when(i)` holds (i counts from 0)."
    seen = [0]
    def hook(module, args, output):
        if not torch.is_grad_enabled(): return output  # sampling is left alone
        i, seen[0] = seen[0], seen[0] + 1
        return (output[0] * float("nan"),) + tuple(output[1:]) if when(i) else output
    trainer.sd_pipeline.unet.register_forward_hook(hook)

def snapshot(trainer):
    return {k: v.detach().clone() for k, v in trainer._trainable_state().items()}, str(trainer.optimizer.state_dict()["state"])

def test_raise_stops_before_the_weights_change(tmp_path):
    trainer = make(tmp_path)
    poison_unet(trainer, lambda i: i == 0)  # the very first update
    weights, optimizer_state = snapshot(trainer)
    with pytest.raises(FloatingPointError, match="non-finite PPO loss or gradient"):
        trainer.train()
    after, after_state = snapshot(trainer)
    assert all(torch.equal(weights[k], after[k]) for k in weights) and optimizer_state == after_state
    assert not list((tmp_path/"checkpoints").glob("checkpoint-*")), "no checkpoint of a poisoned epoch"

def test_skip_drops_and_counts_only_the_poisoned_updates(tmp_path):
    trainer = make(tmp_path, on_nonfinite="skip")
    K = 5  # 2 minibatches x 5 trained steps per epoch; poison a step of the second minibatch of epoch 0
    poison_unet(trainer, lambda i: i == K + 2)
    weights, _ = snapshot(trainer)
    trainer.train()
    after, _ = snapshot(trainer)
    assert trainer.nonfinite_skipped == 1 and trainer.global_step == 3  # 4 minibatch updates, one dropped
    assert [h["nonfinite_skipped"] for h in trainer.history] == [1, 1]
    assert all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(weights[k], after[k]) for k in weights), "the other updates still happened"

def test_an_inf_gradient_alone_is_caught(tmp_path):
    trainer = make(tmp_path, on_nonfinite="skip")
    name, param = next((n, p) for n, p in trainer._trainable_state().items() if "lora_B" in n)
    calls = [0]
    def blow_up(grad):
        calls[0] += 1
        return grad + float("inf") if calls[0] == 1 else grad
    param.register_hook(blow_up)
    trainer.train()
    assert trainer.nonfinite_skipped == 1 and torch.isfinite(param).all()
