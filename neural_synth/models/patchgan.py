"""PatchGAN discriminators: a grid of real/fake logits, one per image patch.

`PatchGAN(receptive_field)` builds junyanz's `NLayerDiscriminator` for a
receptive field of 16 (1 stride-2 layer), 70 (3) or 286 (5): 4x4 convolutions
with zero padding 1, stride 2 for the first `n` layers and 1 for the last
two, LeakyReLU 0.2, normalisation on every layer but the first and the
output, widths w, 2w, 4w, 8w, 8w, ... The receptive field 1 is the
PixelGAN (`PixelDiscriminator`): 1x1 convolutions only. The discriminator is
conditional: it sees concat(condition, image) along channels, both in [0, 1]
(mapped to [-1, 1] inside).

`receptive_field(fn, in_channels)` measures the receptive field of any
fully convolutional function from its gradients, which is how the tests
check the four variants.

References:
  Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with Conditional
    Adversarial Networks", CVPR 2017 (PatchGAN, sections 3.2.2 and 4.4).
  Li & Wand, "Precomputed Real-Time Texture Synthesis with Markovian
    Generative Adversarial Networks", ECCV 2016 (Markovian discriminators).
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from neural_synth.models import conv, layers

# Receptive field -> number of stride-2 layers of NLayerDiscriminator (0: PixelGAN).
NUM_LAYERS = {1: 0, 16: 1, 70: 3, 286: 5}


class PatchGAN(nn.Module):
    """Conditional PatchGAN: (condition, image) [B, H, W, *] in [0, 1] -> logits [B, h, w, 1].

    Attributes:
      receptive_field: 1, 16, 70 or 286 pixels (70 is the paper's default).
      width: channels of the first layer (64 in the paper).
      norm: 'batch' | 'instance' | 'none' (see `layers.norm_layer`).

    Output size for receptive fields 16/70/286 with n stride-2 layers:
    h = H / 2^n - 2 (each of the two stride-1 4x4 convs removes one pixel);
    for the PixelGAN h = H.
    """

    receptive_field: int = 70
    width: int = 64
    norm: str = "batch"

    @nn.compact
    def __call__(self, condition: jax.Array, image: jax.Array) -> jax.Array:
        num_layers = _num_layers(self.receptive_field)
        layers.check_norm(self.norm)
        layers.check_image_size(
            *image.shape[1:3],
            minimum=min_size(self.receptive_field),
            what=f"images for a {self.receptive_field}x{self.receptive_field} PatchGAN",
            fix="a smaller receptive_field",
        )
        x = layers.to_signed(jnp.concatenate([condition, image], axis=-1))
        if self.receptive_field == 1:
            return self._pixel(x)
        return self._patches(x, num_layers)

    def _patches(self, x: jax.Array, num_layers: int) -> jax.Array:
        use_bias = self.norm != "batch"
        strides = [2] * num_layers + [1]
        for i, s in enumerate(strides):
            features = self.width * min(2**i, 8)
            x = _conv4(features, s, use_bias or i == 0, f"conv{i}")(x)
            if i > 0:
                x = layers.norm_layer(self.norm, f"norm{i}")(x)
            x = nn.leaky_relu(x, 0.2)
        return _conv4(1, 1, True, "logits")(x)  # [B, h, w, 1]

    def _pixel(self, x: jax.Array) -> jax.Array:
        conv1x1 = lambda f, bias, name: nn.Conv(
            f, (1, 1), use_bias=bias, kernel_init=conv.gan_init, name=name
        )
        x = nn.leaky_relu(conv1x1(self.width, True, "conv0")(x), 0.2)
        x = conv1x1(self.width * 2, self.norm != "batch", "conv1")(x)
        x = nn.leaky_relu(layers.norm_layer(self.norm, "norm1")(x), 0.2)
        return conv1x1(1, self.norm != "batch", "logits")(x)  # [B, H, W, 1]


def min_size(receptive_field: int) -> int:
    """Smallest image side that gives at least one patch: 3 * 2^n for n stride-2 layers."""
    n = _num_layers(receptive_field)
    return 1 if n == 0 else 3 * 2**n


def _num_layers(receptive_field: int) -> int:
    if receptive_field not in NUM_LAYERS:
        raise ValueError(
            f"Unknown PatchGAN receptive field {receptive_field}; choose from {sorted(NUM_LAYERS)}."
        )
    return NUM_LAYERS[receptive_field]


def _conv4(features: int, stride: int, use_bias: bool, name: str) -> nn.Module:
    """4x4 convolution with zero padding 1 (junyanz's `kw=4, padw=1`), fast kernel gradient."""
    return conv.Conv(
        features,
        4,
        strides=stride,
        padding=1,
        use_bias=use_bias,
        kernel_init=conv.gan_init,
        name=name,
    )


def receptive_field(
    fn: Callable[[jax.Array], jax.Array],
    in_channels: int,
    *,
    size: int = 32,
    max_size: int = 1024,
    seed: int = 0,
) -> int:
    """Measures the receptive field (pixels per side) of one central output of `fn`.

    `fn` maps [1, S, S, in_channels] to [1, h, w, C] (fully convolutional,
    random weights). The gradient of the central output's channel 0 with
    respect to the input is nonzero exactly on that output's receptive field
    (with random inputs and weights, a zero inside it has probability 0); the
    extent of the nonzero rows and columns is returned. The input grows
    (doubling from `size`) until the field no longer touches its border.
    Normalisation layers couple all pixels through their statistics, so
    measure networks built with norm='none'.
    """
    rng = np.random.default_rng(seed)
    while size <= max_size:
        x = jnp.asarray(rng.normal(size=(1, size, size, in_channels)), jnp.float32)
        extent, touches_border = _gradient_extent(fn, x)
        if not touches_border:
            return extent
        size *= 2
    raise ValueError(f"Receptive field larger than max_size={max_size} pixels.")


def _gradient_extent(fn, x: jax.Array) -> tuple[int, bool]:
    """(largest extent of the nonzero input gradient, whether it reaches the border)."""

    def central_logit(image):
        out = fn(image)  # [1, h, w, C]
        return out[0, out.shape[1] // 2, out.shape[2] // 2, 0]

    grad = np.abs(np.asarray(jax.grad(central_logit)(x)))[0].sum(axis=-1)  # [S, S]
    rows, cols = np.nonzero(grad.any(axis=1))[0], np.nonzero(grad.any(axis=0))[0]
    size = grad.shape[0]
    extent = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    touches = min(rows[0], cols[0]) == 0 or max(rows[-1], cols[-1]) == size - 1
    return int(extent), bool(touches)
