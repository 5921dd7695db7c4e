"""Losses and accuracies of bit strings decoded from images (learnable visual markers).

Bits are +-1 values [B, N]; a recognizer outputs one logit per bit (positive
means +1).

References: Grinchuk, Lebedev & Lempitsky, "Learnable Visual Markers", NIPS 2016.
"""

import jax
import jax.numpy as jnp
import optax


def bit_loss(logits: jax.Array, bits: jax.Array) -> jax.Array:
    """Sigmoid cross-entropy of logits [B, N] against +-1 bits, mean over bits: a scalar."""
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, (bits + 1.0) / 2.0))


def bit_metrics(logits: jax.Array, bits: jax.Array) -> dict[str, jax.Array]:
    """Bit accuracy and whole-string accuracy of logits [B, N] against +-1 bits.

    Returns {'acc/bits': share of bits right, 'acc/strings': share of strings
    with every bit right}, float32 scalars.
    """
    correct = (logits > 0) == (bits > 0)  # [B, N]
    return {"acc/bits": jnp.mean(correct), "acc/strings": jnp.mean(jnp.all(correct, axis=1))}
