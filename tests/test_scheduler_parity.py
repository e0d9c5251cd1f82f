"""`ddim_step_with_logprob` against the reference implementations, run (not copied):
diffusers' `DDIMScheduler.step` for the sample, and `trl==0.21.0`'s `scheduler_step` for the log-prob."""
import pytest, torch
from trl.models.modeling_sd_base import scheduler_step as trl_scheduler_step

from imageddpo.pocket import sd15_ddim_scheduler
from imageddpo.scheduler import alpha_table, ddim_step_with_logprob

SHAPE = (3, 4, 16, 16)
STEPS = [10, 20, 50]
PREDICTION_TYPES = ["epsilon", "v_prediction", "sample"]

def step_inputs(seed, dtype=torch.float32):
    "model_output, sample and noise for one step, reproducible from `seed`."
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(SHAPE, generator=g).to(dtype) for _ in range(3)]

def max_abs(a, b): return (a.float() - b.float()).abs().max().item()

@pytest.mark.parametrize("eta", [1.0, 0.3, 0.0])
@pytest.mark.parametrize("clip_sample", [False, True])
@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
@pytest.mark.parametrize("steps", STEPS)
def test_prev_sample_matches_diffusers(steps, prediction_type, clip_sample, eta):
    sched = sd15_ddim_scheduler(prediction_type=prediction_type, clip_sample=clip_sample)
    sched.set_timesteps(steps)
    for i, t in enumerate(sched.timesteps):
        model_output, sample, noise = step_inputs(i)
        ours = ddim_step_with_logprob(sched, model_output, t, sample, eta=eta, variance_noise=noise if eta else None)
        theirs = sched.step(model_output, t, sample, eta=eta, variance_noise=noise)
        assert max_abs(ours.prev_sample, theirs.prev_sample) <= 1e-6, f"t={int(t)}"
        assert max_abs(ours.pred_original_sample, theirs.pred_original_sample) <= 1e-6, f"t={int(t)}"

@pytest.mark.parametrize("steps", STEPS)
def test_generator_draws_the_same_noise_as_diffusers(steps):
    sched = sd15_ddim_scheduler()
    sched.set_timesteps(steps)
    for i, t in enumerate(sched.timesteps):
        model_output, sample, _ = step_inputs(i)
        ours = ddim_step_with_logprob(sched, model_output, t, sample, generator=torch.Generator().manual_seed(i))
        theirs = sched.step(model_output, t, sample, eta=1.0, generator=torch.Generator().manual_seed(i))
        assert max_abs(ours.prev_sample, theirs.prev_sample) <= 1e-6

@pytest.mark.parametrize("eta", [1.0, 0.3])
@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
@pytest.mark.parametrize("steps", STEPS)
def test_log_prob_matches_trl(steps, prediction_type, eta):
    sched = sd15_ddim_scheduler(prediction_type=prediction_type)
    sched.set_timesteps(steps)
    for i, t in enumerate(sched.timesteps):
        model_output, sample, noise = step_inputs(i)
        ours = ddim_step_with_logprob(sched, model_output, t, sample, eta=eta, variance_noise=noise)
        theirs = trl_scheduler_step(sched, model_output, torch.full((SHAPE[0],), int(t)), sample, eta=eta,
                                    prev_sample=ours.prev_sample)
        assert ours.log_prob.shape == (SHAPE[0],)
        assert max_abs(ours.log_prob, theirs.log_probs) <= 1e-5, f"t={int(t)}"

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_log_prob_is_float32_and_matches_trl(dtype):
    "With fp16/bf16 inputs the log-prob is computed in float32: TRL on the same values upcast agrees."
    sched = sd15_ddim_scheduler()
    sched.set_timesteps(50)
    for i, t in enumerate(sched.timesteps):
        model_output, sample, noise = step_inputs(i, dtype)
        ours = ddim_step_with_logprob(sched, model_output, t, sample, variance_noise=noise)
        assert ours.prev_sample.dtype == dtype and ours.log_prob.dtype == torch.float32
        theirs = trl_scheduler_step(sched, model_output.float(), torch.full((SHAPE[0],), int(t)), sample.float(),
                                    eta=1.0, prev_sample=ours.prev_sample.float())
        assert max_abs(ours.log_prob, theirs.log_probs) <= 1e-5, f"t={int(t)}"

@pytest.mark.parametrize("steps", STEPS)
def test_per_row_timesteps_match_per_row_reference(steps):
    "A batch whose rows sit at different timesteps: row i is diffusers' step at t_i, and TRL's batched log-prob."
    sched = sd15_ddim_scheduler()
    sched.set_timesteps(steps)
    g = torch.Generator().manual_seed(steps)
    ts = sched.timesteps[torch.randperm(steps, generator=g)[:SHAPE[0]]]
    ts[-1] = sched.timesteps[-1]  # always include the last step (previous timestep < 0)
    model_output, sample, noise = step_inputs(steps)
    ours = ddim_step_with_logprob(sched, model_output, ts, sample, variance_noise=noise)
    for i, t in enumerate(ts):
        theirs = sched.step(model_output[i:i+1], t, sample[i:i+1], eta=1.0, variance_noise=noise[i:i+1])
        assert max_abs(ours.prev_sample[i:i+1], theirs.prev_sample) <= 1e-6
    trl = trl_scheduler_step(sched, model_output, ts, sample, eta=1.0, prev_sample=ours.prev_sample)
    assert max_abs(ours.log_prob, trl.log_probs) <= 1e-5

def test_last_step_uses_final_alpha_cumprod_like_diffusers():
    "With set_alpha_to_one=False/True the last step goes to final_alpha_cumprod, as in diffusers."
    for set_alpha_to_one in (False, True):
        sched = sd15_ddim_scheduler(set_alpha_to_one=set_alpha_to_one)
        sched.set_timesteps(10)
        model_output, sample, noise = step_inputs(0)
        t = sched.timesteps[-1]
        ours = ddim_step_with_logprob(sched, model_output, t, sample, variance_noise=noise)
        theirs = sched.step(model_output, t, sample, eta=1.0, variance_noise=noise)
        assert max_abs(ours.prev_sample, theirs.prev_sample) <= 1e-6

def test_replay_returns_the_sampled_log_prob():
    sched = sd15_ddim_scheduler()
    sched.set_timesteps(20)
    for i, t in enumerate(sched.timesteps):
        model_output, sample, _ = step_inputs(i)
        sampled = ddim_step_with_logprob(sched, model_output, t, sample, generator=torch.Generator().manual_seed(i))
        replayed = ddim_step_with_logprob(sched, model_output, t, sample, prev_sample=sampled.prev_sample)
        assert torch.equal(sampled.log_prob, replayed.log_prob)

def test_deterministic_step_has_no_log_prob():
    sched = sd15_ddim_scheduler()
    sched.set_timesteps(10)
    model_output, sample, _ = step_inputs(0)
    out = ddim_step_with_logprob(sched, model_output, 501, sample, eta=0.0)
    with pytest.raises(ValueError, match="eta=0"): out.log_prob
    with pytest.raises(ValueError, match="prev_sample"):
        ddim_step_with_logprob(sched, model_output, 501, sample, eta=0.0, prev_sample=sample)

def test_scheduler_tensors_stay_put_and_table_is_cached():
    sched = sd15_ddim_scheduler()
    sched.set_timesteps(10)
    model_output, sample, _ = step_inputs(0)
    ddim_step_with_logprob(sched, model_output, 501, sample)
    table = alpha_table(sched, sample.device)
    ddim_step_with_logprob(sched, model_output, 401, sample)
    assert alpha_table(sched, sample.device) is table
    assert sched.alphas_cumprod.device.type == "cpu"

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_step_matches_cpu(dtype):
    sched = sd15_ddim_scheduler()
    sched.set_timesteps(50)
    for i, t in enumerate(sched.timesteps):
        model_output, sample, noise = step_inputs(i, dtype)
        cpu = ddim_step_with_logprob(sched, model_output, t, sample, variance_noise=noise)
        gpu = ddim_step_with_logprob(sched, model_output.cuda(), t.cuda(), sample.cuda(), variance_noise=noise.cuda())
        assert max_abs(cpu.log_prob, gpu.log_prob.cpu()) <= 1e-4
        assert max_abs(cpu.prev_sample, gpu.prev_sample.cpu()) <= (1e-5 if dtype == torch.float32 else 1e-2)
    assert sched.alphas_cumprod.device.type == "cpu"

def test_thresholding_matches_diffusers():
    "Dynamic thresholding calls diffusers' private `DDIMScheduler._threshold_sample` (there is no public one): pinned here by parity."
    from diffusers import DDIMScheduler
    scheduler = DDIMScheduler.from_config(sd15_ddim_scheduler().config, thresholding=True, dynamic_thresholding_ratio=0.9,
                                          sample_max_value=1.5)
    assert callable(getattr(scheduler, "_threshold_sample", None)), "diffusers renamed _threshold_sample: update ddim_step_with_logprob"
    scheduler.set_timesteps(10)
    model_output, sample, noise = step_inputs(5)
    for t in scheduler.timesteps[:3]:
        ours = ddim_step_with_logprob(scheduler, model_output * 3, int(t), sample, eta=1.0, variance_noise=noise)
        theirs = scheduler.step(model_output * 3, int(t), sample, eta=1.0, variance_noise=noise)
        assert max_abs(ours.prev_sample, theirs.prev_sample) < 1e-5 and max_abs(ours.pred_original_sample, theirs.pred_original_sample) < 1e-5
