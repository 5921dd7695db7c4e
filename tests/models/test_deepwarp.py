"""DeepWarp's pieces against NumPy: warping, lightness mixing, landmark maps, scales; the network."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.models import deepwarp
from neural_synth.ops import sampler


def _images(shape, seed=0):
    return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


def test_a_constant_flow_shifts_the_image_exactly():
    images = _images((2, 9, 11, 3))
    flow = np.broadcast_to(np.array([2.0, 1.0], np.float32), (2, 9, 11, 2))
    out = np.asarray(jax.jit(deepwarp.warp_with_flow)(images, flow))
    # Output pixel (x, y) reads input (x + 2, y + 1); beyond the border it repeats the edge.
    np.testing.assert_array_equal(out[:, :8, :9], images[:, 1:, 2:])
    np.testing.assert_array_equal(out[:, 8, :9], images[:, 8, 2:])
    np.testing.assert_array_equal(out[:, :8, 9:], np.repeat(images[:, 1:, 10:11], 2, axis=2))
    # Half a pixel to the left: the mean of two neighbours (interior columns).
    half = np.broadcast_to(np.array([-0.5, 0.0], np.float32), (2, 9, 11, 2))
    out = np.asarray(deepwarp.warp_with_flow(images, half))
    np.testing.assert_allclose(out[:, :, 1:], (images[:, :, :-1] + images[:, :, 1:]) / 2, atol=1e-6)


def test_zero_flow_and_zero_correction_is_the_identity():
    images = _images((2, 7, 8, 3), seed=1)
    warped = deepwarp.warp_with_flow(images, jnp.zeros((2, 7, 8, 2)))
    np.testing.assert_array_equal(np.asarray(warped), images)
    palette = jnp.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    out = deepwarp.mix_palette(warped, jnp.zeros((2, 7, 8, 2)), palette)
    np.testing.assert_array_equal(np.asarray(out), images)


def test_mix_palette_matches_numpy():
    warped = _images((1, 3, 4, 3), seed=2)
    raw = _images((1, 3, 4, 3), seed=3)
    weights = raw / raw.sum(-1, keepdims=True) * 0.9  # [..., 3]: 3 palette colours, sum 0.9.
    palette = _images((3, 3), seed=4)
    want = 0.1 * warped + np.einsum("bhwk,kc->bhwc", weights, palette)
    got = deepwarp.mix_palette(warped, weights, palette)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)


def test_landmark_maps_match_numpy():
    landmarks = np.array([[[3.0, 2.0], [0.5, 4.0]]], np.float32)  # [1, 2, 2]
    positions = sampler.pixel_grid((5, 6))
    maps = np.asarray(deepwarp.landmark_maps(landmarks, positions))
    assert maps.shape == (1, 5, 6, 4)
    ys, xs = np.mgrid[:5, :6]
    scale = deepwarp.LANDMARK_SCALE
    np.testing.assert_allclose(maps[0, ..., 0], (xs - 3.0) / scale, atol=1e-7)
    np.testing.assert_allclose(maps[0, ..., 1], (ys - 2.0) / scale, atol=1e-7)
    np.testing.assert_allclose(maps[0, ..., 2], (xs - 0.5) / scale, atol=1e-7)
    np.testing.assert_allclose(maps[0, ..., 3], (ys - 4.0) / scale, atol=1e-7)


def test_half_resolution_and_its_positions_and_flow_upsampling():
    images = _images((1, 7, 9, 2), seed=5)
    small = np.asarray(deepwarp.half_resolution(images))
    assert small.shape == (1, 4, 5, 2)
    np.testing.assert_allclose(small[0, 1, 2], images[0, 2:4, 4:6].mean(axis=(0, 1)), atol=1e-6)
    np.testing.assert_allclose(small[0, 3, 4], images[0, 6, 8], atol=1e-6)  # Edge padded.
    # A ramp's mean over a 2x2 block is its value at the block's centre (interior cells).
    ys, xs = np.mgrid[:7, :9].astype(np.float32)
    ramp = np.stack([xs, ys], -1)[None]
    centres = np.asarray(deepwarp.half_resolution_positions((7, 9)))
    np.testing.assert_allclose(
        np.asarray(deepwarp.half_resolution(ramp))[0, :3, :4], centres[:3, :4]
    )
    # Upsampling a linear field of half-resolution cells gives the same field at the
    # full-resolution pixels between the cell centres.
    field = jnp.asarray(centres)[None] * jnp.array([0.5, -0.25])
    up = np.asarray(deepwarp.upsample_flow(field, (7, 9)))
    want = ramp[0] * np.array([0.5, -0.25], np.float32)
    np.testing.assert_allclose(up[0, 1:6, 1:8], want[1:6, 1:8], atol=1e-5)


def _inputs(batch=2, size=(13, 17)):
    images = _images((batch, *size, 3), seed=6)
    landmarks = np.tile(np.array([[2.0, 6.0], [8.0, 3.0], [14.0, 6.0]], np.float32), (batch, 1, 1))
    angles = np.array([[0.0, 15.0], [-10.0, 5.0]], np.float32)[:batch]
    return images, landmarks, angles


def test_untrained_network_returns_its_input():
    images, landmarks, angles = _inputs()
    small = dict(width=8, depth=1, coarse_width=8, coarse_depth=1, embed_features=4)
    single = deepwarp.DeepWarp(**small, coarse_to_fine=False, lightness=False)
    (out, extras), _ = jax.jit(single.init_with_output)(
        jax.random.key(0), images, landmarks, angles
    )
    np.testing.assert_array_equal(np.asarray(out), images)  # Zero head: zero flow.
    assert extras["weights"] is None
    full = deepwarp.DeepWarp(**small, num_palette=2)
    (out, extras), _ = jax.jit(full.init_with_output)(jax.random.key(0), images, landmarks, angles)
    np.testing.assert_array_equal(np.asarray(extras["warped"]), images)  # Both flows zero.
    share = np.exp(deepwarp.PALETTE_OFFSET) / (1 + 2 * np.exp(deepwarp.PALETTE_OFFSET))
    np.testing.assert_allclose(np.asarray(extras["weights"]), share, rtol=1e-5)
    # The palette starts white and black: a slight loss of contrast toward 0.5.
    np.testing.assert_allclose(np.asarray(out), images * (1 - 2 * share) + share, rtol=1e-5)


def test_gradients_reach_every_parameter_and_are_finite():
    images, landmarks, angles = _inputs()
    net = deepwarp.DeepWarp(width=8, depth=1, coarse_width=8, coarse_depth=1, embed_features=4)
    params = jax.jit(net.init)(jax.random.key(1), images, landmarks, angles)["params"]
    # Perturb the zero heads so that gradients reach the layers below them.
    params = jax.tree.map(lambda p: p + 0.01 * jnp.ones_like(p), params)
    target = images[:, :, ::-1]

    def loss(p):
        out, _ = net.apply({"params": p}, images, landmarks, angles)
        return jnp.mean(jnp.square(out - target))

    grads = jax.jit(jax.grad(loss))(params)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert np.all(np.isfinite(g)), path
        assert np.abs(g).max() > 0, path
    assert set(params) >= {"angle", "coarse", "fine", "palette"}


def test_wrong_input_shapes_are_clear_errors():
    images, landmarks, angles = _inputs()
    net = deepwarp.DeepWarp(width=8, depth=1, coarse_width=8, coarse_depth=1, embed_features=4)
    with pytest.raises(ValueError, match=r"landmarks must be \[B, K, 2\]"):
        net.init(jax.random.key(0), images, landmarks[..., :1], angles)
    with pytest.raises(ValueError, match=r"angles must be \[B, 2\]"):
        net.init(jax.random.key(0), images, landmarks, angles[:, :1])
    with pytest.raises(ValueError, match=r"images must be \[B, H, W, 3\]"):
        net.init(jax.random.key(0), images[..., :2], landmarks, angles)
