"""Shared input checks for the image ops (private to `neural_synth.ops`)."""

import operator

import jax
import jax.numpy as jnp
import numpy as np


def check_images(images: jax.Array, *, name: str = "images", channels: int | None = None) -> None:
    """Raises ValueError unless `images` is a float [B, H, W, C] batch (C == channels if given)."""
    if images.ndim != 4:
        raise ValueError(
            f"{name} must be a [B, H, W, C] batch, got shape {tuple(images.shape)}; "
            "add a batch axis with images[None]."
        )
    if channels is not None and images.shape[-1] != channels:
        raise ValueError(
            f"{name} must have {channels} channels (NHWC), got shape {tuple(images.shape)}."
        )
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise ValueError(
            f"{name} must be floating point in [0, 1], got {images.dtype}; "
            "convert with images.astype(jnp.float32) / 255."
        )


def per_example(value, batch: int, *, name: str) -> jax.Array:
    """A scalar or [B] parameter as a float32 [B] array (traced values allowed)."""
    value = jnp.asarray(value, jnp.float32)
    if value.ndim > 1 or (value.ndim == 1 and value.shape[0] not in (1, batch)):
        raise ValueError(
            f"{name} must be a scalar or have shape [{batch}] (one per example), "
            f"got shape {tuple(value.shape)}."
        )
    return jnp.broadcast_to(value, (batch,))


def size_hw(size) -> tuple[int, int]:
    """An int or (height, width) as a (height, width) tuple of positive ints."""
    try:
        if np.ndim(size) == 0:
            height = width = operator.index(size)
        else:
            height, width = (operator.index(s) for s in size)
    except (TypeError, ValueError):
        height = width = 0
    if height < 1 or width < 1:
        raise ValueError(f"size must be a positive int or (height, width) ints, got {size!r}.")
    return height, width
