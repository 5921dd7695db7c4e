"""Image-quality metrics against scikit-image, SciPy and NumPy (moved from the pix2pix tests)."""

import jax
import numpy as np
import pytest

from neural_synth.losses import metrics


def _image_pairs(shape=(3, 24, 20, 3)):
    rng = np.random.default_rng(0)
    a = rng.uniform(size=shape).astype(np.float32)
    smooth = (a + np.roll(a, 1, axis=1) + np.roll(a, 1, axis=2)) / 3
    b = np.clip(smooth + rng.normal(scale=0.1, size=shape), 0, 1).astype(np.float32)
    return a, b


def test_ssim_matches_skimage():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    a, b = _image_pairs()
    got = np.asarray(jax.jit(metrics.ssim)(a, b))
    want = [
        skimage_metrics.structural_similarity(
            x, y, gaussian_weights=True, data_range=1, channel_axis=-1
        )
        for x, y in zip(a, b, strict=True)
    ]
    np.testing.assert_allclose(got, want, atol=2e-5)
    np.testing.assert_allclose(metrics.ssim(a, a), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="H, W >= 11"):
        metrics.ssim(a[:, :10], b[:, :10])


def test_psnr_matches_numpy():
    a, b = _image_pairs()
    mse = ((a.astype(np.float64) - b) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(metrics.psnr(a, b), 10 * np.log10(1.0 / mse), rtol=1e-5)
    np.testing.assert_allclose(metrics.psnr(a, a + 0.1), 20.0, rtol=1e-4)  # 10 log10(1 / 0.01)


def test_gaussian_window_is_scipys():
    ndimage = pytest.importorskip("scipy.ndimage")
    impulse = np.zeros(21)
    impulse[10] = 1.0
    want = ndimage.gaussian_filter1d(impulse, 1.5, truncate=3.5)[5:16]
    np.testing.assert_allclose(metrics.gaussian_window(1.5), want, rtol=1e-6)
