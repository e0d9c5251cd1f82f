"""Run by tests/test_multiprocess.py under torchrun: train the pocket model and report this rank's view as JSON.

With KILL_AT=sampling|ppo|checkpoint in the environment, rank 1 kills itself (SIGKILL) in that phase of the second
epoch, after writing the time to REPORT.killed; with STALL_AT=reward its reward hangs there instead (PROCESS_TIMEOUT
sets process_timeout_s). MODEL=tiny-sdxl, tiny-sd3, tiny-flux, tiny-flux-kontext or tiny-qwen-image-edit trains that tiny model instead of the pocket model (with guidance 3).
EPOCHS and SAVE_FREQ set num_epochs and save_freq; OBJECTIVE, GROUP (sample_group_size, with group_skip_uniform and,
unless GROUP_SAME_NOISE=0, group_same_noise) and ETA choose what trains; each rank writes its pid to REPORT.pid.RANK
and, when a signal stops it, what it stopped after to REPORT.stopped.RANK."""
import json, os, signal, sys, time

import torch

from imageddpo import (I2IDDPOStableDiffusionPipeline, ImageDDPOConfig, ImageDDPOTrainer, pocket_pipeline, policy_for,
                       tiny_flux_kontext_pipeline, tiny_flux_pipeline, tiny_qwen_image_edit_pipeline, tiny_sd3_pipeline, tiny_sdxl_pipeline)
from imageddpo.digits import digits_dataset
from imageddpo.faults import TrainingStopped

output_dir, resume_from, report = sys.argv[1], sys.argv[2], sys.argv[3]
torch.manual_seed(0)
images, labels = digits_dataset("train")

def prompt_function():  # draws from the global RNG: seeded per process, restored on resume
    i = int(torch.randint(len(images), (1,)))
    return "", images[i], {"label": int(labels[i]), "index": i}

GROUP = int(os.environ.get("GROUP", 1))
TINY = {"tiny-sdxl": tiny_sdxl_pipeline, "tiny-sd3": tiny_sd3_pipeline, "tiny-flux": tiny_flux_pipeline,
        "tiny-flux-kontext": tiny_flux_kontext_pipeline, "tiny-qwen-image-edit": tiny_qwen_image_edit_pipeline}.get(os.environ.get("MODEL"))
TINY_KWARGS = {"tiny-flux-kontext": dict(auto_resize=False),  # the edit models at the inputs' size
               "tiny-qwen-image-edit": dict(reference_area=None)}.get(os.environ.get("MODEL"), {})
config = ImageDDPOConfig(mixed_precision="no", sample_num_steps=10, noise_strength=0.5, sample_guidance_scale=3.0 if TINY else 1.0,
                         sample_batch_size=4, sample_num_batches_per_epoch=1, train_batch_size=2,
                         num_epochs=int(os.environ.get("EPOCHS", 2)), save_freq=int(os.environ.get("SAVE_FREQ", 1)),
                         per_prompt_stat_tracking=GROUP == 1, per_prompt_stat_tracking_min_count=2,
                         train_objective=os.environ.get("OBJECTIVE", "ppo"), sample_eta=float(os.environ.get("ETA", 1.0)),
                         sample_group_size=GROUP, group_same_noise=GROUP > 1 and os.environ.get("GROUP_SAME_NOISE") != "0",
                         group_skip_uniform=GROUP > 1,
                         output_dir=output_dir, resume_from=resume_from,
                         process_timeout_s=float(os.environ.get("PROCESS_TIMEOUT", 600)))
def reward(out, prompts, metadata):
    if os.environ.get("STALL_AT") == "reward" and trainer.accelerator.process_index == 1 and trainer.first_epoch == 1:
        with open(f"{report}.killed", "w") as f: f.write(str(time.time()))
        time.sleep(3600)  # alive but stuck: the other process waits for it in the next collective
    return out.mean(dim=(1, 2, 3))
trainer = ImageDDPOTrainer(config, reward, prompt_function,
                           policy_for(TINY(), **TINY_KWARGS) if TINY else I2IDDPOStableDiffusionPipeline(pocket_pipeline()))
seen = []
class Record:
    def on_train_begin(self, t): pass
    def on_epoch_begin(self, t, epoch, strength): pass
    def on_epoch_end(self, t, result): seen.append([m["index"] for m in result.metadata])
    def on_train_end(self, t): pass
trainer.callbacks.append(Record())
kill_at, epoch_now = os.environ.get("KILL_AT"), [0]
class Clock:
    def on_train_begin(self, t): pass
    def on_epoch_begin(self, t, epoch, strength): epoch_now[0] = epoch
    def on_epoch_end(self, t, result): pass
    def on_train_end(self, t): pass
trainer.callbacks.append(Clock())
def die(phase):
    if kill_at == phase and trainer.accelerator.process_index == 1 and epoch_now[0] == 1:
        with open(f"{report}.killed", "w") as f: f.write(str(time.time()))
        os.kill(os.getpid(), signal.SIGKILL)
draw = prompt_function
def prompt_function():
    die("sampling"); return draw()
trainer.prompt_function = prompt_function
train_on_samples = trainer.train_on_samples
def dying_train_on_samples(*args, **kwargs):
    die("ppo"); return train_on_samples(*args, **kwargs)
trainer.train_on_samples = dying_train_on_samples
import imageddpo.checkpoint as checkpoint
write_files = checkpoint.write_files
def dying_write_files(directory, writers):
    if str(directory).endswith("checkpoint-2"): die("checkpoint")
    return write_files(directory, writers)
checkpoint.write_files = dying_write_files
after_step = []
def checked_step(epoch, finite, step=trainer._optimizer_step):  # the weights right after every optimizer step
    result = step(epoch, finite)
    after_step.append(sum(v.detach().double().sum().item() for v in trainer._trainable_state().values()))
    return result
trainer._optimizer_step = checked_step
first_epoch = trainer.first_epoch
acc = trainer.accelerator
with open(f"{report}.pid.{acc.process_index}", "w") as f: f.write(str(os.getpid()))
try: trainer.train()
except TrainingStopped as e:  # SIGTERM to one process: every process stops after the same epoch
    with open(f"{report}.stopped.{acc.process_index}", "w") as f: json.dump({"epochs_done": e.epochs_done, "signal": e.signum}, f)
    acc.end_training(); sys.stdout.flush(); sys.stderr.flush()
    os._exit(e.exit_code)  # see the end of this script
with open(f"{report}.{acc.process_index}", "w") as f:
    json.dump({"rank": acc.process_index, "world": acc.num_processes, "first_epoch": first_epoch,
               "global_step": trainer.global_step, "num_samples": trainer.history[-1]["num_samples"], "indices": seen, "after_step": after_step,
               "weights": {k: v.detach().double().sum().item() for k, v in trainer._trainable_state().items()}}, f)
acc.end_training(); sys.stdout.flush(); sys.stderr.flush()
# Under load a process of a gloo group occasionally aborts in interpreter teardown ("terminate called without an active
# exception", SIGABRT) after its work is done and its report written; leave without the teardown.
os._exit(0)
