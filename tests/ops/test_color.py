"""Tests for colour conversions and adjustments against NumPy formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.ops import color

LUMA = np.array([0.299, 0.587, 0.114])
YIQ = np.array([[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]])


def _images(batch=2, size=8, seed=0):
    # Mid-range values so that moderate adjustments do not saturate.
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 0.8, size=(batch, size, size, 3)).astype(np.float32)


def _np_hue(x, angle):
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return x @ (np.linalg.inv(YIQ) @ rot @ YIQ).T


def _np_contrast(x, f):
    mean = (x @ LUMA).mean()
    return mean + f * (x - mean)


def _np_saturation(x, f):
    luma = (x @ LUMA)[..., None]
    return luma + f * (x - luma)


# (op, neutral value, per-example values [B=2], NumPy reference for one image).
OPS = {
    "brightness": (color.adjust_brightness, 0.0, (0.1, -0.15), lambda x, v: x + v),
    "contrast": (color.adjust_contrast, 1.0, (0.6, 1.4), _np_contrast),
    "saturation": (color.adjust_saturation, 1.0, (0.0, 1.3), _np_saturation),
    "hue": (color.adjust_hue, 0.0, (0.4, -1.0), _np_hue),
    "gamma": (color.adjust_gamma, 1.0, (0.7, 1.5), lambda x, v: x**v),
}


@pytest.fixture(scope="module")
def results():
    """Every op on the same batch, compiled once: per-example values, neutral values, gradients."""
    images = _images()
    with_zero = images.copy()
    with_zero[0, 0, 0] = 0.0  # Exercise x == 0 (gamma's infinite slope).

    @jax.jit
    def run(images, with_zero):
        out = {}
        for name, (op, neutral, values, _) in OPS.items():
            values = jnp.array(values)
            # One call on a batch of 4: neutral x2, then the per-example values.
            both = op(
                jnp.concatenate([images, images]), jnp.concatenate([jnp.full(2, neutral), values])
            )
            grad = jax.grad(lambda x, op=op, v=values: jnp.sum(op(x, v) ** 2))(with_zero)
            out[name] = dict(neutral=both[:2], value=both[2:], grad=grad)
        return out

    return images, jax.tree.map(np.asarray, run(images, with_zero))


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_matches_numpy_per_example_and_identity(name, results):
    images, outs = results
    _, _, values, reference = OPS[name]
    out = outs[name]["value"]
    for b, value in enumerate(values):
        expected = np.clip(reference(images[b].astype(np.float64), value), 0, 1)
        np.testing.assert_allclose(out[b], expected, atol=2e-5)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not np.allclose(out[0], out[1])
    np.testing.assert_allclose(outs[name]["neutral"], images, atol=1e-6)


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_gradient_finite_and_nonzero(name, results):
    grad = results[1][name]["grad"]
    assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0


def test_output_clipped_to_unit_range():
    images = _images()
    out = jax.jit(lambda x: color.adjust_contrast(color.adjust_brightness(x, 0.5), 3.0))(images)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0 and float(out.max()) == 1.0


def test_yiq_round_trip_and_luminance():
    images = _images()

    @jax.jit
    def run(images):
        yiq = color.rgb_to_yiq(images)
        return yiq, color.yiq_to_rgb(yiq), color.luminance(images), color.rgb_to_yiq(jnp.ones(3))

    yiq, back, luma, white = run(images)
    np.testing.assert_allclose(yiq, images @ YIQ.T, atol=1e-6)
    np.testing.assert_allclose(back, images, atol=1e-6)
    np.testing.assert_allclose(luma[..., 0], images @ LUMA, atol=1e-6)
    np.testing.assert_allclose(yiq[..., 0:1], luma, atol=1e-6)
    np.testing.assert_allclose(white, [1.0, 0.0, 0.0], atol=1e-4)  # luma 1, no chroma


def test_hue_rotation_keeps_luma_and_full_turn_is_identity():
    images = 0.4 + 0.25 * _images()  # Unsaturated colours: the rotation does not clip.

    @jax.jit
    def run(images):
        rotated = color.adjust_hue(images, 0.8)
        return (
            color.luminance(rotated),
            color.luminance(images),
            color.adjust_hue(images, 2 * np.pi),
            color.hue_matrix(0.0),
            color.hue_matrix(0.8),
        )

    luma_rotated, luma, full_turn, eye, matrix = run(images)
    np.testing.assert_allclose(luma_rotated, luma, atol=1e-5)
    np.testing.assert_allclose(full_turn, images, atol=1e-5)
    np.testing.assert_allclose(eye, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(matrix, _np_hue(np.eye(3), 0.8).T, atol=1e-5)


def _np_color_chain(x, delta, contrast, saturation, angle):
    """NumPy: brightness, contrast, saturation, hue in turn, unclipped, then one clip."""
    x = _np_hue(_np_saturation(_np_contrast(x + delta, contrast), saturation), angle)
    return np.clip(x, 0.0, 1.0)


def test_adjust_color_is_the_chain_clipped_once():
    rng = np.random.default_rng(3)
    images = rng.uniform(0.0, 1.0, size=(3, 8, 8, 3)).astype(np.float32)  # Saturates.
    params = [(0.08, 1.3, 0.7, 0.3), (-0.1, 0.8, 1.25, -0.2), (0.0, 1.0, 1.0, 0.0)]
    params_t = tuple(jnp.array(p, jnp.float32) for p in zip(*params, strict=True))
    delta, contrast, saturation, angle = params_t

    @jax.jit
    def run(images, mid):
        chain = color.adjust_hue(
            color.adjust_saturation(
                color.adjust_contrast(color.adjust_brightness(mid, delta), contrast), saturation
            ),
            angle,
        )
        both = color.adjust_color(
            jnp.concatenate([images, mid]), *(jnp.tile(v, 2) for v in params_t)
        )
        return both[:3], both[3:], chain

    mid = 0.4 + 0.2 * images  # Nothing leaves [0, 1]: equal to the clipped chain.
    out, out_mid, chain = run(images, mid)
    for b, p in enumerate(params):
        np.testing.assert_allclose(out[b], _np_color_chain(images[b], *p), atol=2e-6)
    np.testing.assert_allclose(out_mid, chain, atol=2e-6)
    np.testing.assert_array_equal(out[2], images[2])  # Neutral values: exactly the identity.
    grad = jax.grad(lambda x: jnp.sum(color.adjust_color(x, *params_t) ** 2))(images)
    np.testing.assert_allclose(grad[2], 2 * images[2], atol=1e-6)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="channels"):
        color.adjust_brightness(jnp.zeros((1, 4, 4, 1)), 0.1)
    with pytest.raises(ValueError, match="one per example"):
        color.adjust_brightness(jnp.zeros((2, 4, 4, 3)), jnp.zeros((3,)))
