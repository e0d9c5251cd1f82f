"`PerKeyStatTracker` against trl==0.21.0's `PerPromptStatTracker`, run on the same update sequences."
import numpy as np, pytest, torch
from trl.trainer.utils import PerPromptStatTracker

from imageddpo.advantages import PerKeyStatTracker

@pytest.mark.parametrize("buffer_size,min_count", [(16, 16), (4, 2), (32, 8), (1, 1)])
def test_per_key_advantages_match_trl(buffer_size, min_count):
    rng = np.random.default_rng(buffer_size * 100 + min_count)
    ours, theirs = PerKeyStatTracker(buffer_size, min_count), PerPromptStatTracker(buffer_size, min_count)
    for epoch in range(12):
        keys = [f"k{i}" for i in rng.integers(0, 5, size=24)]
        rewards = rng.normal(rng.normal(size=5)[[int(k[1:]) for k in keys]], 0.5)
        a, b = ours.update(keys, rewards), theirs.update(keys, rewards)
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-5, atol=1e-5)
    for key, stats in theirs.get_stats().items():
        assert ours.get_stats()[key]["count"] == stats["count"]
        np.testing.assert_allclose(ours.get_stats()[key]["mean"], stats["mean"])

def test_resumed_tracker_continues_exactly():
    rng = np.random.default_rng(0)
    straight, first = PerKeyStatTracker(8, 4), PerKeyStatTracker(8, 4)
    batches = [([f"k{i}" for i in rng.integers(0, 3, 10)], rng.normal(size=10)) for _ in range(6)]
    for keys, rewards in batches[:3]: straight.update(keys, rewards); first.update(keys, rewards)
    resumed = PerKeyStatTracker(); resumed.load_state_dict(first.state_dict())
    for keys, rewards in batches[3:]:
        assert torch.equal(straight.update(keys, rewards), resumed.update(keys, rewards))
