"""The equivalent of diffusers' StableDiffusionImg2ImgPipeline for DDPO: fine-tune image-to-image diffusion models with reinforcement learning

```python
__version__ = "0.2.0"

import importlib, logging, typing

# Where each public name lives. `import imageddpo` loads none of them -- no torch, no diffusers -- until one is
# first used (PEP 562), so the `imageddpo` command answers `--help` and argument errors at once (chapter 07).
_PUBLIC = {"pocket": ["pocket_pipeline", "tiny_pipeline", "tiny_sdxl_pipeline", "tiny_sd3_pipeline", "pocket_sd3_pipeline", "tiny_flux_pipeline",
                      "tiny_flux_kontext_pipeline", "tiny_qwen_image_edit_pipeline", "tiny_qwen_image_edit_plus_pipeline"],
           "digits": ["corrupt", "pocket_classifier", "pocket_prompt_function", "pocket_reward"],
           "scheduler": ["DDPOStepOutput", "ddim_step_with_logprob"],
           "policy": ["I2IDDPOPolicy", "RolloutOutput"],
           "pipeline": ["I2IDDPOStableDiffusionPipeline"],
           "sdxl": ["I2IDDPOStableDiffusionXLPipeline"],
           "sd3": ["I2IDDPOStableDiffusion3Pipeline"],
           "flux": ["I2IDDPOFluxPipeline"],
           "flux_kontext": ["I2IDDPOFluxKontextPipeline"],
           "qwen_image_edit": ["I2IDDPOQwenImageEditPipeline", "I2IDDPOQwenImageEditPlusPipeline"],
           "pocket_edit": ["pocket_edit_pipeline", "pocket_edit_policy", "pocket_edit_reward", "pocket_edit_prompt_function"],
           "flow_scheduler": ["flow_sde_step_with_logprob"],
           "families": ["policy_for"],
           "builtin_rewards": ["classifier_confidence", "fidelity_reward", "jpeg_compressibility", "jpeg_incompressibility", "weighted_sum"],
           "config": ["ImageDDPOConfig"],
           "trainer": ["EpochResult", "ImageDDPOTrainer", "TrainerCallback"],
           "dashboard": ["TrainingDashboard"]}
_HOME = {name: module for module, names in _PUBLIC.items() for name in names}

def __getattr__(name:str):
    if name not in _HOME: raise AttributeError(f"module 'imageddpo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"imageddpo.{_HOME[name]}"), name)
    globals()[name] = value  # loaded once
    return value

def __dir__(): return sorted({*globals(), *_HOME})

class _TorchvisionFallbackNotice(logging.Filter):
    "transformers' once-per-class notice that an image processor falls back to PIL without torchvision (chapter 07)."
    def filter(self, record): return "requires torchvision (not installed)" not in record.getMessage()

logging.getLogger("transformers.utils.import_utils").addFilter(_TorchvisionFallbackNotice())

if typing.TYPE_CHECKING:  # what editors and type checkers see
    from imageddpo.pocket import pocket_pipeline, tiny_pipeline, tiny_sdxl_pipeline, tiny_sd3_pipeline, pocket_sd3_pipeline, tiny_flux_pipeline, tiny_flux_kontext_pipeline, tiny_qwen_image_edit_pipeline, tiny_qwen_image_edit_plus_pipeline
    from imageddpo.digits import corrupt, pocket_classifier, pocket_prompt_function, pocket_reward
    from imageddpo.scheduler import DDPOStepOutput, ddim_step_with_logprob
    from imageddpo.policy import I2IDDPOPolicy, RolloutOutput
    from imageddpo.pipeline import I2IDDPOStableDiffusionPipeline
    from imageddpo.sdxl import I2IDDPOStableDiffusionXLPipeline
    from imageddpo.sd3 import I2IDDPOStableDiffusion3Pipeline
    from imageddpo.flux import I2IDDPOFluxPipeline
    from imageddpo.flux_kontext import I2IDDPOFluxKontextPipeline
    from imageddpo.qwen_image_edit import I2IDDPOQwenImageEditPipeline, I2IDDPOQwenImageEditPlusPipeline
    from imageddpo.pocket_edit import pocket_edit_pipeline, pocket_edit_policy, pocket_edit_reward, pocket_edit_prompt_function
    from imageddpo.flow_scheduler import flow_sde_step_with_logprob
    from imageddpo.families import policy_for
    from imageddpo.builtin_rewards import classifier_confidence, fidelity_reward, jpeg_compressibility, jpeg_incompressibility, weighted_sum
    from imageddpo.config import ImageDDPOConfig
    from imageddpo.trainer import EpochResult, ImageDDPOTrainer, TrainerCallback
    from imageddpo.dashboard import TrainingDashboard

_all_ = ["pocket_pipeline", "tiny_pipeline", "tiny_sdxl_pipeline", "tiny_sd3_pipeline", "pocket_sd3_pipeline", "tiny_flux_pipeline", "tiny_flux_kontext_pipeline", "tiny_qwen_image_edit_pipeline", "tiny_qwen_image_edit_plus_pipeline", "corrupt",
         "pocket_classifier", "pocket_prompt_function", "pocket_reward", "DDPOStepOutput", "ddim_step_with_logprob", "I2IDDPOPolicy",
         "RolloutOutput", "I2IDDPOStableDiffusionPipeline", "I2IDDPOStableDiffusionXLPipeline", "I2IDDPOStableDiffusion3Pipeline",
         "I2IDDPOFluxPipeline", "I2IDDPOFluxKontextPipeline", "I2IDDPOQwenImageEditPipeline", "I2IDDPOQwenImageEditPlusPipeline", "pocket_edit_pipeline", "pocket_edit_policy",
         "pocket_edit_reward", "pocket_edit_prompt_function", "flow_sde_step_with_logprob", "policy_for", "classifier_confidence",
         "fidelity_reward", "jpeg_compressibility", "jpeg_incompressibility", "weighted_sum", "ImageDDPOConfig", "EpochResult",
         "ImageDDPOTrainer", "TrainerCallback", "TrainingDashboard"]  # nbdev writes `__all__` from this literal list
```"""

# AUTOGENERATED! DO NOT EDIT! File to edit: ../nbs/index.ipynb.

# %% auto #0
__all__ = ['pocket_pipeline', 'tiny_pipeline', 'tiny_sdxl_pipeline', 'tiny_sd3_pipeline', 'pocket_sd3_pipeline',
           'tiny_flux_pipeline', 'tiny_flux_kontext_pipeline', 'tiny_qwen_image_edit_pipeline',
           'tiny_qwen_image_edit_plus_pipeline', 'corrupt', 'pocket_classifier', 'pocket_prompt_function',
           'pocket_reward', 'DDPOStepOutput', 'ddim_step_with_logprob', 'I2IDDPOPolicy', 'RolloutOutput',
           'I2IDDPOStableDiffusionPipeline', 'I2IDDPOStableDiffusionXLPipeline', 'I2IDDPOStableDiffusion3Pipeline',
           'I2IDDPOFluxPipeline', 'I2IDDPOFluxKontextPipeline', 'I2IDDPOQwenImageEditPipeline',
           'I2IDDPOQwenImageEditPlusPipeline', 'pocket_edit_pipeline', 'pocket_edit_policy', 'pocket_edit_reward',
           'pocket_edit_prompt_function', 'flow_sde_step_with_logprob', 'policy_for', 'classifier_confidence',
           'fidelity_reward', 'jpeg_compressibility', 'jpeg_incompressibility', 'weighted_sum', 'ImageDDPOConfig',
           'EpochResult', 'ImageDDPOTrainer', 'TrainerCallback', 'TrainingDashboard']

# %% ../nbs/index.ipynb #863dfcb8
__version__ = "0.2.0"

import importlib, logging, typing

# Where each public name lives. `import imageddpo` loads none of them -- no torch, no diffusers -- until one is
# first used (PEP 562), so the `imageddpo` command answers `--help` and argument errors at once (chapter 07).
_PUBLIC = {"pocket": ["pocket_pipeline", "tiny_pipeline", "tiny_sdxl_pipeline", "tiny_sd3_pipeline", "pocket_sd3_pipeline", "tiny_flux_pipeline",
                      "tiny_flux_kontext_pipeline", "tiny_qwen_image_edit_pipeline", "tiny_qwen_image_edit_plus_pipeline"],
           "digits": ["corrupt", "pocket_classifier", "pocket_prompt_function", "pocket_reward"],
           "scheduler": ["DDPOStepOutput", "ddim_step_with_logprob"],
           "policy": ["I2IDDPOPolicy", "RolloutOutput"],
           "pipeline": ["I2IDDPOStableDiffusionPipeline"],
           "sdxl": ["I2IDDPOStableDiffusionXLPipeline"],
           "sd3": ["I2IDDPOStableDiffusion3Pipeline"],
           "flux": ["I2IDDPOFluxPipeline"],
           "flux_kontext": ["I2IDDPOFluxKontextPipeline"],
           "qwen_image_edit": ["I2IDDPOQwenImageEditPipeline", "I2IDDPOQwenImageEditPlusPipeline"],
           "pocket_edit": ["pocket_edit_pipeline", "pocket_edit_policy", "pocket_edit_reward", "pocket_edit_prompt_function"],
           "flow_scheduler": ["flow_sde_step_with_logprob"],
           "families": ["policy_for"],
           "builtin_rewards": ["classifier_confidence", "fidelity_reward", "jpeg_compressibility", "jpeg_incompressibility", "weighted_sum"],
           "config": ["ImageDDPOConfig"],
           "trainer": ["EpochResult", "ImageDDPOTrainer", "TrainerCallback"],
           "dashboard": ["TrainingDashboard"]}
_HOME = {name: module for module, names in _PUBLIC.items() for name in names}

def __getattr__(name:str):
    if name not in _HOME: raise AttributeError(f"module 'imageddpo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"imageddpo.{_HOME[name]}"), name)
    globals()[name] = value  # loaded once
    return value

def __dir__(): return sorted({*globals(), *_HOME})

class _TorchvisionFallbackNotice(logging.Filter):
    "transformers' once-per-class notice that an image processor falls back to PIL without torchvision (chapter 07)."
    def filter(self, record): return "requires torchvision (not installed)" not in record.getMessage()

logging.getLogger("transformers.utils.import_utils").addFilter(_TorchvisionFallbackNotice())

if typing.TYPE_CHECKING:  # what editors and type checkers see
    from imageddpo.pocket import pocket_pipeline, tiny_pipeline, tiny_sdxl_pipeline, tiny_sd3_pipeline, pocket_sd3_pipeline, tiny_flux_pipeline, tiny_flux_kontext_pipeline, tiny_qwen_image_edit_pipeline, tiny_qwen_image_edit_plus_pipeline
    from imageddpo.digits import corrupt, pocket_classifier, pocket_prompt_function, pocket_reward
    from imageddpo.scheduler import DDPOStepOutput, ddim_step_with_logprob
    from imageddpo.policy import I2IDDPOPolicy, RolloutOutput
    from imageddpo.pipeline import I2IDDPOStableDiffusionPipeline
    from imageddpo.sdxl import I2IDDPOStableDiffusionXLPipeline
    from imageddpo.sd3 import I2IDDPOStableDiffusion3Pipeline
    from imageddpo.flux import I2IDDPOFluxPipeline
    from imageddpo.flux_kontext import I2IDDPOFluxKontextPipeline
    from imageddpo.qwen_image_edit import I2IDDPOQwenImageEditPipeline, I2IDDPOQwenImageEditPlusPipeline
    from imageddpo.pocket_edit import pocket_edit_pipeline, pocket_edit_policy, pocket_edit_reward, pocket_edit_prompt_function
    from imageddpo.flow_scheduler import flow_sde_step_with_logprob
    from imageddpo.families import policy_for
    from imageddpo.builtin_rewards import classifier_confidence, fidelity_reward, jpeg_compressibility, jpeg_incompressibility, weighted_sum
    from imageddpo.config import ImageDDPOConfig
    from imageddpo.trainer import EpochResult, ImageDDPOTrainer, TrainerCallback
    from imageddpo.dashboard import TrainingDashboard

_all_ = ["pocket_pipeline", "tiny_pipeline", "tiny_sdxl_pipeline", "tiny_sd3_pipeline", "pocket_sd3_pipeline", "tiny_flux_pipeline", "tiny_flux_kontext_pipeline", "tiny_qwen_image_edit_pipeline", "tiny_qwen_image_edit_plus_pipeline", "corrupt",
         "pocket_classifier", "pocket_prompt_function", "pocket_reward", "DDPOStepOutput", "ddim_step_with_logprob", "I2IDDPOPolicy",
         "RolloutOutput", "I2IDDPOStableDiffusionPipeline", "I2IDDPOStableDiffusionXLPipeline", "I2IDDPOStableDiffusion3Pipeline",
         "I2IDDPOFluxPipeline", "I2IDDPOFluxKontextPipeline", "I2IDDPOQwenImageEditPipeline", "I2IDDPOQwenImageEditPlusPipeline", "pocket_edit_pipeline", "pocket_edit_policy",
         "pocket_edit_reward", "pocket_edit_prompt_function", "flow_sde_step_with_logprob", "policy_for", "classifier_confidence",
         "fidelity_reward", "jpeg_compressibility", "jpeg_incompressibility", "weighted_sum", "ImageDDPOConfig", "EpochResult",
         "ImageDDPOTrainer", "TrainerCallback", "TrainingDashboard"]  # nbdev writes `__all__` from this literal list
