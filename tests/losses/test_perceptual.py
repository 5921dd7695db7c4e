"""Tests for the perceptual losses against NumPy (float64) and hand-checked cases."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.losses import perceptual

LAYERS = {"relu1_1": (8, 8, 3), "relu2_1": (4, 4, 5)}


def _feature_dict(seed, batch=1, scale=1.0):
    rng = np.random.default_rng(seed)
    return {
        name: (scale * rng.normal(size=(batch, *shape))).astype(np.float32)
        for name, shape in LAYERS.items()
    }


def test_mse_pytree_and_batch_broadcast():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(3, 2)), rng.normal(size=(3, 4)))
    t = (rng.normal(size=(1, 2)), rng.normal(size=(3, 4)))
    want = np.mean(np.square(x[0] - t[0])) + np.mean(np.square(x[1] - t[1]))
    np.testing.assert_allclose(jax.jit(perceptual.mse)(x, t), want, rtol=1e-5)


def test_content_loss_matches_numpy():
    rng = np.random.default_rng(1)
    f, t = rng.normal(size=(2, 2, 4, 8, 3)).astype(np.float32)
    got = jax.jit(perceptual.content_loss)(f, t)
    np.testing.assert_allclose(got, np.mean(np.square(f.astype(np.float64) - t)), rtol=1e-5)


def test_total_variation_hand_computed():
    image = np.array([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]], np.float32)[None, :, :, None]
    tv = jax.jit(perceptual.total_variation, static_argnames="kind")
    # d_y = (2, 1, -1); d_x = (1, 2, 0, 0).
    np.testing.assert_allclose(tv(image, kind="l2"), (4 + 1 + 1) / 3 + (1 + 4) / 4, rtol=1e-6)
    np.testing.assert_allclose(tv(image, kind="l1"), (2 + 1 + 1) / 3 + (1 + 2) / 4, rtol=1e-6)
    constant = np.full((2, 5, 4, 3), 0.7, np.float32)
    assert float(tv(constant, kind="l2")) == 0.0 and float(tv(constant, kind="l1")) == 0.0


def test_total_variation_matches_numpy():
    x = np.random.default_rng(22).uniform(size=(2, 5, 7, 3)).astype(np.float32)
    d_y, d_x = np.diff(x.astype(np.float64), axis=1), np.diff(x.astype(np.float64), axis=2)
    got = jax.jit(perceptual.total_variation)(x)
    np.testing.assert_allclose(got, np.mean(d_y**2) + np.mean(d_x**2), rtol=1e-5)


def test_gradients_are_finite():
    features = _feature_dict(23, batch=2)
    content = _feature_dict(26)
    losses = {
        "content": lambda f: perceptual.content_loss(f["relu2_1"], content["relu2_1"]),
    }
    for name, loss_fn in losses.items():
        grads = jax.jit(jax.grad(loss_fn))(features)
        assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads)), name
    flat = np.zeros((1, 4, 4, 3), np.float32)  # |.| at 0 is the worst case for 'l1'.
    for kind in perceptual.TV_KINDS:
        grad = jax.grad(functools.partial(perceptual.total_variation, kind=kind))(flat)
        assert np.all(np.isfinite(grad)), kind


def test_bad_inputs_raise_clear_errors():
    features = _feature_dict(29)
    with pytest.raises(ValueError, match="batch size 1"):
        perceptual.content_loss(features["relu1_1"], np.zeros((1, 8, 8, 4), np.float32))
    with pytest.raises(ValueError, match="Unknown total variation kind"):
        perceptual.total_variation(np.zeros((1, 4, 4, 3)), kind="tv")
    with pytest.raises(ValueError, match="H, W >= 2"):
        perceptual.total_variation(np.zeros((1, 1, 4, 3)))


def test_per_example_mse_and_content_loss_match_numpy():
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(3, 2)), rng.normal(size=(3, 4, 5)))
    t = (rng.normal(size=(1, 2)), rng.normal(size=(3, 4, 5)))
    want = np.mean(np.square(x[0] - t[0]), axis=1) + np.mean(np.square(x[1] - t[1]), axis=(1, 2))
    got = jax.jit(functools.partial(perceptual.mse, per_example=True))(x, t)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    f, p = rng.normal(size=(2, 3, 4, 5, 2)).astype(np.float32)
    got = perceptual.content_loss(f, p, per_example=True)
    want = np.mean(np.square(f - p.astype(np.float64)), axis=(1, 2, 3))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_relative_weight_divides_by_the_blended_target_mean_square():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(1, 4, 4)), 3.0 * rng.normal(size=(1, 4, 4))
    blend = np.array([0.25, 0.75])
    n = 0.25 * np.mean(a**2) + 0.75 * np.mean(b**2)
    np.testing.assert_allclose(
        perceptual.target_mean_square([a, b], blend_weights=blend), n, rtol=1e-6
    )
    np.testing.assert_allclose(
        perceptual.relative_weight(2.0, [a, b], blend_weights=blend), 2.0 / n, 1e-6
    )
    pair = (a[:, 0], b[:, 0])  # A ('mean_std') pair: the leaves' mean squares add up.
    want = np.mean(a[:, 0] ** 2) + np.mean(b[:, 0] ** 2)
    np.testing.assert_allclose(perceptual.target_mean_square([pair]), want, rtol=1e-6)
    zero = np.zeros((1, 2, 2))
    assert perceptual.relative_weight(1.0, [zero]) == 1.0 / perceptual.NORM_FLOOR


def test_relative_content_loss_matches_numpy_and_ignores_target_gradients():
    features, targets = _feature_dict(4, batch=2), _feature_dict(5, batch=2, scale=3.0)
    weights = {"relu1_1": 0.5, "relu2_1": 2.0}
    got = jax.jit(functools.partial(perceptual.relative_content_loss, layer_weights=weights))(
        features, targets
    )
    want = sum(
        w
        * np.mean(np.square(features[n] - targets[n].astype(np.float64)), axis=(1, 2, 3))
        / (np.mean(targets[n].astype(np.float64) ** 2) + perceptual.CONTENT_NORM_EPS)
        for n, w in weights.items()
    )
    assert got.shape == (2,)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    grad = jax.grad(
        lambda t: jnp.sum(perceptual.relative_content_loss(features, t, layer_weights=weights))
    )(targets)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grad))


def test_diversity_loss_matches_numpy():
    f = np.random.default_rng(6).normal(size=(3, 4, 4, 2)).astype(np.float32)
    got = jax.jit(perceptual.diversity_loss)(f)
    f64 = f.astype(np.float64)
    want = -np.mean(np.abs(f64 - np.roll(f64, 1, axis=0))) / (np.mean(np.abs(f64)) + 1e-8)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert float(perceptual.diversity_loss(np.repeat(f[:1], 3, axis=0))) == 0.0
    with pytest.raises(ValueError, match="at least 2 samples"):
        perceptual.diversity_loss(f[:1])
