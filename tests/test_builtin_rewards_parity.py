"Built-in fidelity metrics against scikit-image's reference implementations, on random and structured images."
import numpy as np
import pytest, torch

skimage_metrics = pytest.importorskip("skimage.metrics")

from imageddpo.builtin_rewards import psnr, ssim

def pairs():
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(3, 3, 48, 40, generator=g)
    smooth = torch.nn.functional.avg_pool2d(clean, 5, 1, 2)
    yield clean, (clean + 0.05 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    yield smooth, (smooth * 0.8 + 0.1)
    yield clean, torch.rand(3, 3, 48, 40, generator=g)

@pytest.mark.parametrize("case", range(3))
def test_ssim_and_psnr_match_scikit_image(case):
    x, y = list(pairs())[case]
    ours_ssim, ours_psnr = ssim(x, y), psnr(x, y)
    for i in range(len(x)):
        a, b = x[i].double().numpy(), y[i].double().numpy()
        ref_ssim = skimage_metrics.structural_similarity(a, b, channel_axis=0, gaussian_weights=True, sigma=1.5,
                                                         use_sample_covariance=False, data_range=1.0)
        ref_psnr = skimage_metrics.peak_signal_noise_ratio(a, b, data_range=1.0)
        assert abs(ours_ssim[i].item() - ref_ssim) <= 1e-5, (ours_ssim[i].item(), ref_ssim)
        assert abs(ours_psnr[i].item() - ref_psnr) <= 1e-4, (ours_psnr[i].item(), ref_psnr)
