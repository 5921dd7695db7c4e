"""Tests that the fast-gradient statistics equal `losses.gram` / `losses.perceptual`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.losses import gram, perceptual
from neural_synth.optimize import statistics


def _features(seed, shape=(2, 8, 6, 5)):
    return jax.random.normal(jax.random.key(seed), shape)


@pytest.mark.parametrize("masked", [False, True])
def test_gram_value_and_gradient_equal_autodiff_of_losses_gram(masked):
    f = _features(0)
    mask = (jax.random.uniform(jax.random.key(1), (2, 4, 3)) > 0.4).astype(jnp.float32)
    ref_fn = (lambda x: gram.masked_gram(x, mask)) if masked else gram.gram
    fast_fn = lambda x: statistics.style_statistic(x, "gram", mask=mask if masked else None)
    np.testing.assert_allclose(fast_fn(f), ref_fn(f), rtol=1e-5, atol=1e-6)
    target = ref_fn(_features(2))
    loss = lambda fn: lambda x: jnp.sum(jnp.square(fn(x) - target) * jnp.arange(25.0).reshape(5, 5))
    np.testing.assert_allclose(
        jax.grad(loss(fast_fn))(f), jax.grad(loss(ref_fn))(f), rtol=1e-5, atol=1e-5
    )


def test_style_loss_equals_perceptual_blended_and_spatial():
    feats = {"a": _features(3), "b": _features(4, (2, 4, 3, 7))}
    styles = [{"a": _features(5), "b": _features(6, (2, 4, 3, 7))} for _ in range(2)]
    targets = perceptual.style_targets(styles, layers=("a", "b"))
    weights = {"a": 0.5, "b": 2.0}
    blend = jnp.asarray([0.2, 0.6])
    stats = [{k: statistics.style_statistic(v, "gram") for k, v in feats.items()}]
    np.testing.assert_allclose(
        statistics.style_loss(stats, targets, layer_weights=weights, blend=blend),
        perceptual.style_loss(feats, targets, layer_weights=weights, blend_weights=blend),
        rtol=1e-5,
    )
    masks = jnp.stack([jnp.ones((8, 6)).at[:, 3:].set(0), jnp.ones((8, 6)).at[:, :3].set(0)])
    regions = [
        {k: statistics.style_statistic(v, "gram", mask=m[None]) for k, v in feats.items()}
        for m in masks
    ]
    np.testing.assert_allclose(
        statistics.style_loss(regions, targets, layer_weights=weights),
        perceptual.spatial_style_loss(feats, targets, masks, layer_weights=weights),
        rtol=1e-5,
    )
