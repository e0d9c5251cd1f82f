"`ImageDDPOConfig` against trl==0.21.0's `DDPOConfig`: every field, same name and default; `from_trl` on a real TRL config."
import dataclasses
from trl import DDPOConfig

from imageddpo import I2IDDPOStableDiffusionPipeline, tiny_pipeline
from imageddpo.config import TRL_FIELDS, ImageDDPOConfig

def defaults(cls):
    return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(cls)}

def test_every_ddpo_config_field_with_the_same_default():
    theirs, ours = defaults(DDPOConfig), defaults(ImageDDPOConfig)
    assert list(TRL_FIELDS) == list(theirs), "same fields, same order"
    differing = {k: (ours[k], v) for k, v in theirs.items() if k != "exp_name" and ours[k] != v}
    assert not differing, differing  # exp_name is derived from the script name in both

def test_from_trl_copies_a_real_trl_config():
    trl = DDPOConfig(sample_num_steps=20, sample_batch_size=4, train_batch_size=2, train_timestep_fraction=0.5,
                     per_prompt_stat_tracking=True, mixed_precision="no", log_with=None, seed=7)
    ours = ImageDDPOConfig.from_trl(trl, noise_strength=0.6)
    for name in TRL_FIELDS: assert getattr(ours, name) == getattr(trl, name), name
    assert ours.noise_strength == 0.6 and ours.trained_steps(0, I2IDDPOStableDiffusionPipeline(tiny_pipeline())) == 6  # half of the 12 executed steps

def test_trl_example_project_kwargs_say_where_the_run_goes(tmp_path, monkeypatch):
    "TRL's DDPO example configures its run with these project_kwargs; the trainer honours each key with TRL's meaning."
    import pytest, torch
    from imageddpo import I2IDDPOStableDiffusionPipeline, ImageDDPOTrainer, tiny_pipeline
    monkeypatch.chdir(tmp_path)
    trl = DDPOConfig(num_epochs=2, sample_num_steps=4, sample_batch_size=2, train_batch_size=2, mixed_precision="no",
                     log_with=None, project_kwargs={"logging_dir": "./logs", "automatic_checkpoint_naming": True,
                                                    "total_limit": 1, "project_dir": "./save"})
    trainer = ImageDDPOTrainer(trl, lambda images, prompts, metadata: images.mean((1, 2, 3)),
                               lambda: ("a photo", torch.rand(3, 64, 64), {}), I2IDDPOStableDiffusionPipeline(tiny_pipeline()),
                               noise_strength=1.0)
    trainer.train()
    assert [p.name for p in (tmp_path/"save"/"checkpoints").iterdir()] == ["checkpoint-2"]  # total_limit 1
    assert trainer.accelerator.project_configuration.logging_dir == str(tmp_path/"logs")
    with pytest.raises(ValueError, match="give one of them"):
        ImageDDPOConfig.from_trl(trl, output_dir=str(tmp_path/"elsewhere"))
