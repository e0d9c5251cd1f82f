"""Run by tests/test_sharding.py under torchrun: train the tiny SD3 on two CPU processes, under DDP or FSDP2, and
report this rank's view.

accelerate forms FSDP only from a GPU process type (on the CPU it gives DDP whatever the config says), so with
SHARDING=fsdp2 (or fsdp1) this script enters FSDP the way accelerate does on GPUs: it marks the process state as a GPU
one before the trainer's Accelerator reads it and sets accelerate's FSDP variables. Everything after that (the
sharding, the gathers, the reduce-scatters, accelerate's FSDP2 preparation) is the real thing, over gloo.
OBJECTIVE, LORA=0|1, KL, MIXED (mixed_precision), EPOCHS and MODEL (tiny-sd3, tiny-flux, tiny-qwen-image-edit) choose what trains; DASHBOARD=1 adds a static
TrainingDashboard validating every epoch (its rollouts are collectives under FSDP2). DEVICE=cuda runs on GPUs,
where accelerate enters FSDP by itself (nothing is forced). argv: output_dir, resume_from, report prefix."""
import importlib.util, json, os, sys

import torch
from accelerate.state import PartialState
from accelerate.utils import DistributedType

SHARDING, ON_GPU = os.environ.get("SHARDING", "ddp"), os.environ.get("DEVICE") == "cuda"
if not ON_GPU: PartialState(cpu=True)
if SHARDING != "ddp":
    if not ON_GPU: PartialState._shared_state["distributed_type"] = DistributedType.MULTI_GPU
    os.environ.update(ACCELERATE_USE_FSDP="true", FSDP_VERSION=SHARDING[-1])

from imageddpo import ImageDDPOConfig, ImageDDPOTrainer, policy_for, tiny_flux_pipeline, tiny_qwen_image_edit_pipeline, tiny_sd3_pipeline
from imageddpo.digits import digits_dataset
from imageddpo.sharding import full_state, is_sharded, unsharded
from imageddpo.checkpoint import save_tensors

output_dir, resume_from, report = sys.argv[1], sys.argv[2], sys.argv[3]
torch.manual_seed(0)
images, labels = digits_dataset("train")
def prompt_function():  # the global RNG: seeded per process, restored on resume
    i = int(torch.randint(len(images), (1,)))
    return f"the digit {int(labels[i])}", images[i], {"label": int(labels[i])}
lora = os.environ.get("LORA", "1") == "1"
MODEL = os.environ.get("MODEL", "tiny-sd3")
BUILD = {"tiny-sd3": tiny_sd3_pipeline, "tiny-flux": tiny_flux_pipeline, "tiny-qwen-image-edit": tiny_qwen_image_edit_pipeline}[MODEL]
POLICY_KWARGS = {"tiny-qwen-image-edit": dict(reference_area=None)}.get(MODEL, {})  # the tiny edit model at the inputs' size
config = ImageDDPOConfig(mixed_precision=os.environ.get("MIXED", "no"), sample_num_steps=6, noise_strength=0.5, sample_guidance_scale=3.0, sample_eta=0.7,
                         sample_batch_size=4, sample_num_batches_per_epoch=1, train_batch_size=2, train_gradient_accumulation_steps=2,
                         sample_group_size=2, group_skip_uniform=True, train_objective=os.environ.get("OBJECTIVE", "ppo"),
                         train_learning_rate=1e-3, use_lora=lora, kl_coef=float(os.environ.get("KL", 0)),
                         num_epochs=int(os.environ.get("EPOCHS", 2)), save_freq=1, output_dir=output_dir, resume_from=resume_from)
reward = lambda out, prompts, metadata: out.mean(dim=(1, 2, 3))
try: trainer = ImageDDPOTrainer(config, reward, prompt_function, policy_for(BUILD(), use_lora=lora, **POLICY_KWARGS))
except ValueError as e:
    print("REFUSED:", e, flush=True); os._exit(3)
acc = trainer.accelerator
if os.environ.get("DASHBOARD") == "1":
    from imageddpo.dashboard import TrainingDashboard
    TrainingDashboard(images[:2], "the digit 3", every=1, mode="static").attach(trainer)
trainer.train()
weights = full_state(trainer._trainable_state())  # every process: a gather under FSDP
if MODEL == "tiny-qwen-image-edit" and not lora and importlib.util.find_spec("torchvision") is None:
    # transformers saves a Qwen2VLProcessor only with torchvision (chapter 00): export the trained transformer alone
    with unsharded(trainer.sd_pipeline.denoiser):
        if acc.is_main_process: trainer.sd_pipeline.denoiser.save_pretrained(os.path.join(output_dir, "export", "transformer"))
        acc.wait_for_everyone()
else: trainer.save_pretrained(os.path.join(output_dir, "export"))
if acc.is_main_process: save_tensors(f"{report}.weights.safetensors", weights)
with open(f"{report}.{acc.process_index}", "w") as f:
    json.dump({"rank": acc.process_index, "distributed_type": str(acc.distributed_type), "sharded": is_sharded(trainer.sd_pipeline.unet),
               "global_step": trainer.global_step, "first_epoch_rewards": [h["reward_mean"] for h in trainer.history],
               "weights": {k: v.double().sum().item() for k, v in weights.items()}}, f)
acc.end_training(); sys.stdout.flush(); sys.stderr.flush()
os._exit(0)  # see tests/scripts/two_process_run.py: leave without the gloo teardown
