"""Run by tests/test_faults.py in a fresh process: train the tiny model with a fault injected.

    python fault_run.py OUTPUT_DIR FAULT [EPOCHS]

FAULT: "hang"      the reward never returns from epoch 1 on (reward_timeout_s=2)
       "disk-full" after checkpoint-1, files may hold at most 2 KB (RLIMIT_FSIZE; SIGXFSZ ignored, so writes fail with EFBIG)
       "none"      no fault (a resume)
"""
import resource, signal, sys, time

import torch

from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, ImageDDPOTrainer, tiny_pipeline

output_dir, fault = sys.argv[1], sys.argv[2]
epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 3

def prompt_function(): return "a photo", torch.rand(3, 32, 32), {}

def reward(images, prompts, metadata):
    if fault == "hang" and trainer.first_epoch >= 1: time.sleep(3600)  # a remote scorer that never answers
    return images.mean(dim=(1, 2, 3))

class LimitFileSize:
    "After the first checkpoint, no file may grow past 2 KB: the disk is full."
    def on_train_begin(self, t): pass
    def on_epoch_begin(self, t, epoch, strength):
        if fault == "disk-full" and epoch == 1:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
    def on_epoch_end(self, t, result): pass
    def on_train_end(self, t): pass

config = ImageDDPOConfig(mixed_precision="no", sample_num_steps=4, noise_strength=0.5, sample_guidance_scale=1.0,
                         sample_batch_size=2, sample_num_batches_per_epoch=1, train_batch_size=2, num_epochs=epochs,
                         output_dir=output_dir, resume_from="latest" if fault == "none" else "",
                         reward_timeout_s=2.0 if fault == "hang" else None)
trainer = ImageDDPOTrainer(config, reward, prompt_function, I2IDDPOStableDiffusionPipeline(tiny_pipeline()),
                           callbacks=[LimitFileSize()])
trainer.train()
print("trained", len(trainer.history))
