"""Tests for the bit loss and bit accuracies of markers (hand-checked cases)."""

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth.losses import bits as bit_losses


def test_bit_metrics_count_bits_and_whole_strings():
    # Moved from tests/experiments/test_marker.py.
    logits = jax.numpy.array([[2.0, -1.0], [1.0, 1.0]])
    metrics = bit_losses.bit_metrics(logits, jax.numpy.array([[1.0, -1.0], [1.0, -1.0]]))
    assert float(metrics["acc/bits"]) == 0.75 and float(metrics["acc/strings"]) == 0.5


def test_bit_loss_is_sigmoid_cross_entropy_against_01_labels():
    logits = np.array([[2.0, -1.0, 0.0]], np.float32)
    bits = np.array([[1.0, 1.0, -1.0]], np.float32)
    labels = (bits + 1) / 2
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    want = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    np.testing.assert_allclose(jax.jit(bit_losses.bit_loss)(logits, bits), want, rtol=1e-6)
    grad = jax.grad(bit_losses.bit_loss)(jnp.asarray(logits), jnp.asarray(bits))
    np.testing.assert_allclose(grad, (p - labels) / 3, rtol=1e-5)
