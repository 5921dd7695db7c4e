"""Frozen VGG features and style/content losses shared by the experiments.

Each experiment that trains a network against VGG statistics (texture-styled
markers, texture networks, stylization networks) gets its features, targets and
per-layer weights here, so they all mean the same thing: every layer's loss is
divided by its target's mean square, which makes a weight of 1 mean "as large
as the target itself" for random, torchvision or Caffe weights alike.
"""

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth.losses import gram
from neural_synth.models import vgg


def frozen_vgg(vgg_path: str, *, layers: Sequence[str], seed: int = 0) -> tuple[vgg.VGG, dict]:
    """(module, frozen variables): ported weights from `vgg_path`, else random VGG19.

    Random features use average pooling (smoother gradients, as Gatys et al.
    recommend) and only the convolutions up to the deepest of `layers`.
    """
    if vgg_path:
        from neural_synth import weights  # Lazy: only when ported weights are used.

        module, params = weights.load_vgg(vgg_path)
    else:
        module = vgg.VGG(arch="vgg19", pooling="avg")
        params = vgg.random_params("vgg19", layers, seed)
    return module, vgg.freeze({"params": params})


class StyleTargets:
    """Gram targets of N style images, stacked per layer, and normalised weights.

    `grams[layer]` is [N, C, C]; `weights[layer]` is the configured layer weight
    divided by the mean square of that layer's targets (over all styles).
    """

    def __init__(self, module, variables, images: Sequence[np.ndarray], layer_weights: Mapping):
        layers = tuple(layer_weights)
        per_style = [
            module.apply(variables, jnp.asarray(im)[None], layers=layers) for im in images
        ]  # Styles may differ in size: one forward each.
        self.grams = {
            name: jnp.concatenate([gram.gram(f[name]) for f in per_style]) for name in layers
        }
        self.weights = {
            name: float(w) / float(jnp.mean(self.grams[name] ** 2))
            for name, w in layer_weights.items()
        }

    @property
    def num_styles(self) -> int:
        return next(iter(self.grams.values())).shape[0]

    def loss(self, features: Mapping[str, jax.Array], style_ids: jax.Array | None = None):
        """Per-example style loss [B]: example b is matched to style `style_ids[b]` (0 if None)."""
        total = 0.0
        for name, w in self.weights.items():
            g = gram.gram(features[name])  # [B, C, C]
            target = self.grams[name][0 if style_ids is None else style_ids]
            total = total + w * jnp.mean(jnp.square(g - target), axis=(-2, -1))
        return total


def content_loss(features: Mapping, targets: Mapping, layer_weights: Mapping) -> jax.Array:
    """Per-example content loss [B]: sum_l w_l mse(F_l, P_l) / mean(P_l^2)."""
    total = 0.0
    for name, w in layer_weights.items():
        target = jax.lax.stop_gradient(targets[name])
        scale = jnp.mean(jnp.square(target)) + 1e-8  # Normalised per batch, like the style loss.
        total = total + w * jnp.mean(jnp.square(features[name] - target), axis=(1, 2, 3)) / scale
    return total


def diversity_loss(features: jax.Array) -> jax.Array:
    """Negative mean L1 distance between each sample's features and the next one's.

    Improved Texture Networks add  -lambda * this  so that the generator does not
    collapse to one texture: [B, H, W, C] features (B >= 2) -> scalar, normalised
    by the features' mean absolute value.

    References: Ulyanov, Vedaldi & Lempitsky, "Improved Texture Networks:
    Maximizing Quality and Diversity in Feed-forward Stylization and Texture
    Synthesis", CVPR 2017, eq. 7.
    """
    if features.shape[0] < 2:
        raise ValueError("The diversity term needs a batch of at least 2 samples.")
    scale = jax.lax.stop_gradient(jnp.mean(jnp.abs(features))) + 1e-8
    return -jnp.mean(jnp.abs(features - jnp.roll(features, 1, axis=0))) / scale
