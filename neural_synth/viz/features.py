"""Pictures of network activations: one tile per filter, tiled into a grid.

`activation_grid` turns one layer's activation [H, W, C] into an image: each
filter's map is rescaled to [0, 1] on its own (min -> 0, max -> 1; a constant
map is shown black), optionally enlarged by an integer factor with
nearest-neighbour so deep, small maps stay visible, and tiled with
`neural_synth.io.make_grid`. `layer_grids` runs a VGG module on one image and
returns a grid per requested layer, every map enlarged back to the input's
resolution so grids of different layers are comparable.

References: Zeiler & Fergus, "Visualizing and Understanding Convolutional
Networks", ECCV 2014 (per-filter feature-map displays).
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth import io

GRID_PADDING = 2
GRID_PAD_VALUE = 1.0


def normalize_maps(activation: np.ndarray) -> np.ndarray:
    """[H, W, C] -> float32 [H, W, C], each channel mapped to [0, 1] independently."""
    x = np.asarray(activation, dtype=np.float32)
    lo = x.min(axis=(0, 1), keepdims=True)  # [1, 1, C]
    span = x.max(axis=(0, 1), keepdims=True) - lo
    safe = np.where(span > 0, span, 1.0)
    return np.where(span > 0, (x - lo) / safe, 0.0).astype(np.float32)


def activation_grid(
    activation,
    *,
    max_filters: int = 64,
    scale: int = 1,
    ncols: int | None = None,
    padding: int = GRID_PADDING,
) -> np.ndarray:
    """One layer's activation [H, W, C] -> grid image float32 [H', W', 3] in [0, 1].

    Shows the first `min(C, max_filters)` filters in channel order, row-major,
    `ncols` per row (default ceil(sqrt(n))), each normalised on its own and
    enlarged `scale` times (nearest). Tile size is (H * scale, W * scale); see
    `neural_synth.io.make_grid` for the padding arithmetic.
    """
    x = np.asarray(activation)
    if x.ndim != 3:
        raise ValueError(f"activation_grid expects one activation [H, W, C], got {x.shape}.")
    if max_filters < 1 or scale < 1:
        raise ValueError(f"max_filters and scale must be >= 1, got {max_filters} and {scale}.")
    maps = normalize_maps(x[..., :max_filters])  # [H, W, n]
    if scale > 1:
        maps = np.repeat(np.repeat(maps, scale, axis=0), scale, axis=1)
    tiles = np.transpose(maps, (2, 0, 1))[..., None]  # [n, H * scale, W * scale, 1]
    return io.make_grid(tiles, ncols=ncols, padding=padding, pad_value=GRID_PAD_VALUE)


def layer_grids(
    module,
    params,
    image: np.ndarray,
    layers: Sequence[str],
    *,
    max_filters: int = 64,
) -> dict[str, np.ndarray]:
    """Runs a VGG `module` on `image` [H, W, 3] and grids each layer's activation.

    Returns {layer: grid [H', W', 3]}. Each map is enlarged by the layer's
    total stride (input height // map height), so every tile is about the
    input's size. Raises ValueError (from the module) for unknown layers or an
    image too small for them.
    """
    layers = tuple(layers)
    images = jnp.asarray(image, jnp.float32)[None]  # [1, H, W, 3]
    apply_fn = jax.jit(module.apply, static_argnames="layers")
    activations = apply_fn({"params": params}, images, layers=layers)
    grids = {}
    for name in layers:
        act = np.asarray(activations[name][0])  # [h, w, C]
        scale = max(1, image.shape[0] // act.shape[0])
        grids[name] = activation_grid(act, max_filters=max_filters, scale=scale)
    return grids
