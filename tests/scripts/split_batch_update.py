"""Run by tests/test_multiprocess.py, with one process (python) or two (torchrun): one PPO update on the same 8
recorded samples — all of them in one process, or half on each of two — and report the resulting weights."""
import dataclasses, json, os, sys

import torch

from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, ImageDDPOTrainer, RolloutOutput, tiny_pipeline

output_dir, report = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
world = int(os.environ.get("WORLD_SIZE", 1))
n = 8 // world
config = ImageDDPOConfig(mixed_precision="no", sample_num_steps=10, noise_strength=0.5, sample_guidance_scale=1.0,
                         sample_batch_size=n, train_batch_size=n, train_timestep_fraction=1.0, train_learning_rate=3e-3,
                         output_dir=output_dir)
trainer = ImageDDPOTrainer(config, lambda *a: None, lambda: None, I2IDDPOStableDiffusionPipeline(tiny_pipeline()))
images = torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(1))
out = trainer.sd_pipeline.rollout(images, "a photo", noise_strength=0.5, num_inference_steps=10,
                                  generator=torch.Generator().manual_seed(2))  # the same 8 samples on every process
rank = trainer.accelerator.process_index
rows = slice(rank * n, (rank + 1) * n)
mine = dataclasses.replace(out, **{f.name: getattr(out, f.name)[rows] for f in dataclasses.fields(RolloutOutput)
                                   if isinstance(getattr(out, f.name), torch.Tensor)}, prompts=out.prompts[rows])
trainer.train_on_samples(mine, torch.linspace(-2, 2, 8)[rows], epoch=0, inner=0)
with open(f"{report}.{rank}", "w") as f:
    json.dump({k: v.detach().flatten().tolist() for k, v in trainer._trainable_state().items()}, f)
