"""The Pillow/NumPy print-and-photograph simulation: corners where the marker is pasted."""

import numpy as np
import pytest

from neural_synth.data import photo_sim
from neural_synth.ops import render

CLEAN = photo_sim.Severity((0.3, 0.6), 45.0, 0.08, 0.0, 0.0, 0.0, 0.0, 0.0, (100, 100))


@pytest.fixture(scope="module")
def bank():
    return photo_sim.photo_bank(("retina", "text"))


def test_corners_mark_the_pasted_marker():
    """A red marker on a grey photo: the red region's centroid and area match the corners."""
    bank = photo_sim.photo_bank(("text",))
    rng = np.random.default_rng(0)
    marker = np.zeros((64, 64, 3), np.float32)
    marker[..., 0] = 1.0
    ys, xs = np.mgrid[0:256, 0:256]
    for size in (None, 0.1, 0.9):
        photo, corners = photo_sim.simulate(rng, marker, bank, severity=CLEAN, size=size)
        assert photo.shape == (256, 256, 3) and corners.shape == (4, 2)
        assert corners.min() >= -0.5 and corners.max() <= 255.5  # Inside the photo.
        # The renderer's anti-aliased coverage of the quad (same pixel convention).
        alpha = np.array(render.quad_alpha(corners[None], 256))[0, ..., 0]
        red = np.clip(photo[..., 0] - np.maximum(photo[..., 1], photo[..., 2]), 0.0, 1.0)
        alpha, red = alpha / alpha.sum(), red / red.sum()
        assert abs(np.sum(alpha * xs) - np.sum(red * xs)) < 0.25  # pixels
        assert abs(np.sum(alpha * ys) - np.sum(red * ys)) < 0.25


def test_severities_and_sizes(bank):
    rng = np.random.default_rng(1)
    marker = rng.uniform(size=(32, 32, 3)).astype(np.float32)
    for name in photo_sim.SEVERITIES:
        photo, corners = photo_sim.simulate(rng, marker, bank, severity=name)
        assert photo.dtype == np.float32 and 0.0 <= photo.min() and photo.max() <= 1.0
        (ax, ay), (bx, by) = corners[1] - corners[0], corners[3] - corners[0]
        side = np.sqrt(abs(ax * by - ay * bx))
        low, high = photo_sim.SEVERITIES[name].size
        assert 0.8 * low * 256 < side < 1.25 * high * 256
    photo, corners = photo_sim.simulate(rng, None, bank)
    assert corners is None and photo.shape == (256, 256, 3)
    with pytest.raises(ValueError, match="fraction"):
        photo_sim.simulate(rng, marker, bank, size=1.5)
