"""Run by tests/test_crash_resume.py: train the tiny pipeline with resume_from="latest", optionally SIGKILLing
itself at a chosen point: `sample:N` (the N-th rollout call), `update:N` (the N-th optimizer step, gradients
computed), `write:N` (the N-th weights file, half written), `seal:N` (the N-th checkpoint, written but not sealed)."""
import json, os, random, signal, sys
from pathlib import Path

import torch

import imageddpo.checkpoint as checkpoint_module  # where the trainer's checkpoint writes its weights
from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, ImageDDPOTrainer, TrainerCallback, tiny_pipeline

output_dir, kill, report = sys.argv[1], sys.argv[2], Path(sys.argv[3])
where, _, nth = kill.partition(":")
count = [0]

def killer(name, fn, before=True):
    "Wrap fn so that its nth call (counted from 1) kills this process."
    def wrapper(*args, **kwargs):
        count[0] += 1
        if where == name and count[0] == int(nth):
            if not before:  # write the file, then leave it half written
                fn(*args, **kwargs); path = Path(args[0]); size = path.stat().st_size
                with open(path, "r+b") as f: f.truncate(size // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*args, **kwargs)
    return wrapper

def prompt_function():  # global RNGs only: restored on resume
    return "a photo", torch.rand(3, 64, 64) * 0.8 + 0.1 * random.random(), {}

class Progress(TrainerCallback):
    "Append the epoch about to run, so the test knows where the kill landed."
    def on_epoch_begin(self, trainer, epoch, noise_strength):
        with open(report.with_suffix(".progress"), "a") as f: f.write(f"{epoch}\n")

torch.manual_seed(0); random.seed(0)
config = ImageDDPOConfig(mixed_precision="no", sample_num_steps=10, noise_strength=0.5, sample_guidance_scale=1.0,
                         sample_batch_size=4, sample_num_batches_per_epoch=2, train_batch_size=2, num_epochs=4,
                         num_checkpoint_limit=2, train_learning_rate=3e-3, output_dir=output_dir, resume_from="latest")
trainer = ImageDDPOTrainer(config, lambda images, prompts, metadata: images.mean(dim=(1, 2, 3)), prompt_function,
                           I2IDDPOStableDiffusionPipeline(tiny_pipeline()), callbacks=[Progress()])
if where == "sample": trainer.sd_pipeline.rollout = killer("sample", trainer.sd_pipeline.rollout)
if where == "update": trainer._optimizer_step = killer("update", trainer._optimizer_step)
if where == "write": checkpoint_module.save_tensors = killer("write", checkpoint_module.save_tensors, before=False)
if where == "seal": checkpoint_module.seal_checkpoint = killer("seal", checkpoint_module.seal_checkpoint)
first_epoch = trainer.first_epoch
trainer.train()
report.write_text(json.dumps({"first_epoch": first_epoch, "global_step": trainer.global_step,
                              "weights": {k: v.detach().double().sum().item() for k, v in trainer._trainable_state().items()}}))
