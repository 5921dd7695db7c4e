"""Corner losses: L1 on soft-argmax points, Gaussian heat-map targets, weights."""

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth.losses import localization


def test_corner_loss_and_errors_by_hand():
    points = jnp.array([[[0.0, 0.0], [4.0, 0.0]], [[9.0, 9.0], [9.0, 9.0]]])
    targets = jnp.array([[[1.0, 0.0], [4.0, 3.0]], [[0.0, 0.0], [0.0, 0.0]]])
    weights = jnp.array([1.0, 0.0])  # The second example has no marker: ignored.
    loss = localization.corner_loss(points, targets, weights, scale=2.0)
    np.testing.assert_allclose(loss, (1.0 + 3.0) / 4 / 2.0, rtol=1e-6)
    np.testing.assert_allclose(localization.corner_errors(points, targets)[0], 2.0, rtol=1e-6)
    assert localization.corner_loss(points, targets, jnp.zeros(2), scale=1.0) == 0.0


def test_heatmap_loss_is_lowest_at_the_target():
    targets = jnp.array([[[10.5, 6.5]]])  # Centre of cell (3, 5) at stride 2.

    def loss_at(row, col):
        logits = jnp.full((1, 8, 8, 1), -5.0).at[0, row, col, 0].set(5.0)
        return localization.heatmap_loss(logits, targets, jnp.ones(1), stride=2, sigma=1.0)

    best = loss_at(3, 5)
    assert best < loss_at(3, 6) < loss_at(0, 0)
    grad = jax.jit(jax.grad(lambda x: localization.heatmap_loss(
        x, targets, jnp.ones(1), stride=2, sigma=1.0)))(jnp.zeros((1, 8, 8, 1)))  # fmt: skip
    assert np.all(np.isfinite(grad)) and grad[0, 3, 5, 0] < 0  # Raises the target's logit.
