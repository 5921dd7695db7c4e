"""Tests for the composed marker renderer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from neural_synth.ops import render, sampler

SIZE = 16  # Marker side.


def _markers(batch=4, size=SIZE, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(batch, size, size, 3)).astype(np.float32)


def _backgrounds(batch=4, size=40, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(batch, size, size, 3)).astype(np.float32)


def _np_resize(image, out):
    """Bilinear resize, half-pixel centres, border replicated (reference for strength 0)."""
    size = image.shape[0]
    pos = np.clip((np.arange(out) + 0.5) * size / out - 0.5, 0, size - 1)
    low = np.floor(pos).astype(int)
    high = np.minimum(low + 1, size - 1)
    frac = pos - low
    rows = image[low] * (1 - frac)[:, None, None] + image[high] * frac[:, None, None]
    return rows[:, low] * (1 - frac)[None, :, None] + rows[:, high] * frac[None, :, None]


@pytest.fixture(scope="module")
def render_fn():
    """One compiled renderer + gradient for every strength (strength is traced).

    fn(key, markers, backgrounds, strength) -> (images, d sum(images^2) / d markers).
    """
    traces = []

    def loss(markers, key, backgrounds, strength):
        traces.append(1)
        out = render.render(key, markers, backgrounds, strength=strength, out_size=SIZE)
        return jnp.sum(out**2), out

    grad_fn = jax.jit(jax.grad(loss, has_aux=True))

    def fn(key, markers, backgrounds, strength):
        grad, out = grad_fn(jnp.asarray(markers), key, backgrounds, strength)
        return np.asarray(out), np.asarray(grad)

    fn.traces = traces
    return fn


def test_strength_zero_is_the_marker(render_fn):
    markers, backgrounds = _markers(), _backgrounds()
    out, _ = render_fn(jax.random.key(0), markers, backgrounds, 0.0)
    np.testing.assert_allclose(out, markers, atol=1e-5)


def test_strength_zero_resizes_the_marker():
    markers, backgrounds = _markers(2), _backgrounds(2)
    # Geometry only (the other ops' identity at strength 0 is checked above).
    photometric = ("color", "gaussian_blur", "motion_blur", "resample", "noise", "jpeg")
    cfg = render.RenderConfig(**{name: False for name in photometric})

    @jax.jit
    def fn(m, b):
        key = jax.random.key(0)
        return [render.render(key, m, b, strength=0.0, cfg=cfg, out_size=n) for n in (32, 12)]

    for out_size, out in zip((32, 12), fn(markers, backgrounds), strict=True):
        for b in range(2):
            np.testing.assert_allclose(out[b], _np_resize(markers[b], out_size), atol=1e-5)


def test_range_gradient_and_randomness(render_fn):
    markers, backgrounds = _markers(), _backgrounds()
    for strength in (1.0, 2.5):
        out, grad = render_fn(jax.random.key(1), markers, backgrounds, strength)
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert np.all(np.isfinite(grad))
        assert np.all(np.abs(grad).sum(axis=(1, 2, 3)) > 0)  # every example
    assert len(render_fn.traces) == 1  # No recompilation across strengths.
    first = render_fn(jax.random.key(1), markers, backgrounds, 1.0)[0]
    second = render_fn(jax.random.key(2), markers, backgrounds, 1.0)[0]
    assert np.abs(first - second).mean() > 0.02
    # The same marker on the same background gets different per-example distortions.
    same_m = np.broadcast_to(markers[:1], markers.shape)
    same_b = np.broadcast_to(backgrounds[:1], backgrounds.shape)
    same = render_fn(jax.random.key(1), same_m, same_b, 1.0)[0]
    assert np.abs(same[0] - same[1]).mean() > 0.02


def test_switched_off_ops_leave_the_marker_alone():
    markers, backgrounds = _markers(2), _backgrounds(2)
    ops = (
        "placement",
        "warp",
        "color",
        "gaussian_blur",
        "motion_blur",
        "resample",
        "noise",
        "jpeg",
    )
    off = render.RenderConfig(**{name: False for name in ops})
    fn = jax.jit(
        lambda s: render.render(
            jax.random.key(3), markers, backgrounds, strength=s, cfg=off, out_size=SIZE
        )
    )
    np.testing.assert_allclose(fn(1.0), markers, atol=1e-6)
    np.testing.assert_allclose(fn(2.0), markers, atol=1e-6)


def test_marker_quad_stays_inside_frame_and_homography_hits_corners():
    out_size = 24

    @jax.jit
    def run(key):
        params = render.sample_params(
            key, 64, strength=1.0, cfg=render.RenderConfig(), out_size=out_size
        )
        h = render.marker_homography(params["quad"], SIZE)
        return params["quad"], sampler.apply_homography(h, params["quad"])

    quad, corners = run(jax.random.key(4))
    assert quad.min() >= -0.5 - 1e-4 and quad.max() <= out_size - 0.5 + 1e-4
    outer = np.array(
        [[-0.5, -0.5], [SIZE - 0.5, -0.5], [SIZE - 0.5, SIZE - 0.5], [-0.5, SIZE - 0.5]]
    )
    np.testing.assert_allclose(corners, np.broadcast_to(outer, corners.shape), atol=1e-3)


def test_quad_alpha_area_and_axis_aligned_square():
    square = np.array([[[2.5, 3.5], [9.5, 3.5], [9.5, 10.5], [2.5, 10.5]]])  # pixels 3..9 x 4..10
    tilted = np.array([[[8.0, 1.0], [15.0, 8.0], [8.0, 15.0], [1.0, 8.0]]])  # area 98
    alpha = jax.jit(lambda q: render.quad_alpha(q, 16))(np.concatenate([square, tilted]))
    expected = np.zeros((16, 16))
    expected[4:11, 3:10] = 1.0
    np.testing.assert_allclose(alpha[0, ..., 0], expected, atol=1e-6)
    assert abs(float(alpha[1].sum()) - 98.0) < 1.0


def test_sharded_render_matches_single_device(render_fn):
    devices = np.array(jax.devices()[:4])
    if len(devices) < 4:
        pytest.skip("needs 4 (faked) devices")
    markers, backgrounds = _markers(), _backgrounds()
    expected, _ = render_fn(jax.random.key(5), markers, backgrounds, 1.0)
    sharding = NamedSharding(Mesh(devices, ("data",)), PartitionSpec("data"))
    fn = jax.jit(lambda k, m, b: render.render(k, m, b, strength=1.0, out_size=SIZE))
    sharded = fn(
        jax.random.key(5), jax.device_put(markers, sharding), jax.device_put(backgrounds, sharding)
    )
    assert sharded.sharding.spec[0] == "data"  # stays split along the batch
    np.testing.assert_allclose(sharded, expected, atol=1e-5)


def test_procedural_backgrounds():
    fn = jax.jit(lambda key: render.procedural_backgrounds(key, 6, 24))
    images = np.asarray(fn(jax.random.key(0)))
    assert images.shape == (6, 24, 24, 3)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert images.std(axis=(1, 2)).mean() > 0.02  # not flat
    assert np.abs(images[0] - images[1]).mean() > 0.02
    np.testing.assert_array_equal(images, fn(jax.random.key(0)))


def test_bad_inputs_raise():
    markers = _markers(2)
    with pytest.raises(ValueError, match="procedural_backgrounds"):
        render.render(jax.random.key(0), markers, _backgrounds(2, 8), out_size=SIZE)
    with pytest.raises(ValueError, match="one background per marker"):
        render.render(jax.random.key(0), markers, _backgrounds(3), out_size=SIZE)
    with pytest.raises(ValueError, match="square"):
        render.render(jax.random.key(0), markers[:, :8], _backgrounds(2), out_size=SIZE)
    with pytest.raises(ValueError, match="marker_scale"):
        render.RenderConfig(marker_scale=(0.9, 0.5))
    with pytest.raises(ValueError, match="max_noise_std"):
        render.RenderConfig(max_noise_std=-1.0)


def test_per_example_strength_matches_scalar_strengths():
    """Strength [B]: example i is rendered exactly as with the scalar strength s_i."""
    markers, backgrounds, key = _markers(), _backgrounds(), jax.random.key(7)
    strengths = jnp.array([0.0, 0.5, 1.0, 1.5])
    fn = jax.jit(lambda s: render.render(key, markers, backgrounds, strength=s, out_size=SIZE))
    mixed = np.asarray(fn(strengths))
    for i, s in enumerate(strengths):
        np.testing.assert_allclose(mixed[i], np.asarray(fn(jnp.full((4,), s)))[i], atol=1e-6)
        np.testing.assert_allclose(mixed[i], np.asarray(fn(s))[i], atol=1e-6)
    np.testing.assert_allclose(mixed[0], markers[0], atol=1e-5)  # Strength 0: the marker.
