"`ImageDDPOConfig` against trl==0.21.0's `DDPOConfig`: every field, same name and default; `from_trl` on a real TRL config."
import dataclasses
from trl import DDPOConfig

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
    assert ours.noise_strength == 0.6 and ours.trained_steps(0) == 6  # half of the 12 executed steps
