"""Feature inversion: an image whose activations at one layer match a given image's.

Mahendran & Vedaldi reconstruct x from Phi0 = Phi(x0) by minimising

    ||Phi(x) - Phi0||^2 / ||Phi0||^2  +  tv * TV(x),

from random noise, with the relative (normalised) feature error so that one
weight serves every layer and the total-variation prior (`losses.perceptual.
total_variation`, beta = 2) filling in what the layer discards. The feature
error here is `losses.perceptual.mse` over the batch divided by the mean square
of the target features. What survives the inversion shows what a layer keeps:
early layers keep almost the photo, deep ones keep parts and their rough
layout (the "inverted network" view of a CNN).

References: Mahendran & Vedaldi, "Understanding Deep Image Representations by
Inverting Them", CVPR 2015.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth.losses import perceptual
from neural_synth.viz import ascent, classifiers

STARTS = ("noise", "zero")


def inversion_objective(classifier: classifiers.Classifier, layer: str, *, tv: float) -> Callable:
    """objective(images, data) = sum over images of relative feature error + tv * TV.

    `data` is {'variables': ..., 'target': features [B, h, w, C]}.
    """
    module = classifier.module("gradient")

    def fn(images, data):
        feats = module.apply(data["variables"], images, layers=(layer,))
        errors = perceptual.relative_content_loss(
            feats, {layer: data["target"]}, layer_weights={layer: 1.0}
        )  # [B]
        return jnp.sum(errors) + tv * images.shape[0] * perceptual.total_variation(images)

    return fn


def invert(
    classifier: classifiers.Classifier,
    images,
    layer: str,
    *,
    tv: float = 1.0,
    start: str = "noise",
    options: ascent.AscentOptions | None = None,
    callback: Callable | None = None,
) -> np.ndarray:
    """Reconstructions of `images` [B, H, W, 3] from their `layer` activations, float32.

    Args:
      classifier: the network.
      images: [B, H, W, 3] in [0, 1] whose features are inverted.
      layer: a spatial layer (`classifier.layers`).
      tv: weight of total variation relative to the normalised feature error.
      start: 'noise' (uniform in [0.25, 0.75], from options.seed) or 'zero' (the
        image the network sees as zero).
      options: steps, learning rate, jitter, parameterisation (`ascent.AscentOptions`;
        default `ascent.AscentOptions()`).
      callback: progress reports after every chunk of steps.
    """
    options = options or ascent.AscentOptions()
    layer = classifier.check_layer(layer)
    if start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, got {start!r}")
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be [B, H, W, 3], got shape {images.shape}")
    module = classifier.module("gradient")
    apply_fn = jax.jit(lambda v, x: module.apply(v, x, layers=(layer,))[layer])
    target = apply_fn(classifier.variables, jnp.asarray(images))
    if start == "noise":
        rng = np.random.default_rng(options.seed)
        init = rng.uniform(0.25, 0.75, size=images.shape).astype(np.float32)
    else:
        zero = classifier.zero_image(*images.shape[1:3])
        init = np.repeat(zero[None], images.shape[0], axis=0)
    data = {"variables": classifier.variables, "target": target}
    return ascent.optimize(
        inversion_objective(classifier, layer, tv=tv), init, data, options, callback=callback
    )
