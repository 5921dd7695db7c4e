"""Synthesizer and recognizer networks for learnable visual markers.

A synthesizer maps a bit string (values +-1, length N) to an S x S x 3 marker
in [0, 1]; a recognizer maps a (rendered, photographed) image to N logits; a
localizer finds the marker's four corners in a whole photo.

References: Grinchuk, Lebedev & Lempitsky, "Learnable Visual Markers", NIPS 2016;
Dosovitskiy et al., "Learning to Generate Chairs with Convolutional Neural
Networks", CVPR 2015 (up-convolution = upsampling followed by convolution).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from neural_synth.models import conv, layers


class LinearSynthesizer(nn.Module):
    """The simplest synthesizer: marker = sigmoid(W bits + b), a baseline."""

    marker_size: int

    @nn.compact
    def __call__(self, bits: jax.Array) -> jax.Array:
        s = self.marker_size
        x = nn.Dense(s * s * 3, kernel_init=nn.initializers.normal(0.1))(bits)  # [B, S*S*3]
        return nn.sigmoid(x).reshape(bits.shape[0], s, s, 3)


class UpconvSynthesizer(nn.Module):
    """Bits -> dense 4x4 map -> (2x upsample, 3x3 conv, ReLU) blocks -> RGB marker.

    Attributes:
      marker_size: output side S, a power of two times 4 (8, 16, 32, 64, ...).
      width: channels of the 4x4 map; halved (down to width/4) as resolution grows.
    """

    marker_size: int
    width: int = 128

    @nn.compact
    def __call__(self, bits: jax.Array) -> jax.Array:
        num_up = _num_upsamplings(self.marker_size)
        x = nn.Dense(4 * 4 * self.width)(bits).reshape(bits.shape[0], 4, 4, self.width)
        x = nn.relu(x)
        for i in range(num_up):
            x = layers.upsample_nearest(x)
            x = nn.relu(_conv(max(self.width >> (i + 1), self.width // 4))(x))
        return nn.sigmoid(_conv(3)(x))  # [B, S, S, 3]


def _num_upsamplings(marker_size: int) -> int:
    num_up = math.log2(marker_size / 4)
    if marker_size < 8 or num_up != int(num_up):
        raise ValueError(
            f"marker_size must be 4 * 2**k >= 8 (8, 16, 32, 64, ...), got {marker_size}."
        )
    return int(num_up)


class Recognizer(nn.Module):
    """Convnet: image [B, H, W, 3] in [0, 1] -> N bit logits.

    Stride-2 blocks halve the resolution until it is at most 8; a dense layer on
    the flattened map keeps the spatial layout that encodes the bits.
    """

    num_bits: int
    width: int = 32
    hidden: int = 256
    norm: bool = True

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        x = self._block(layers.to_signed(images), self.width, 1)
        channels = self.width
        while x.shape[1] > 8:
            channels = min(channels * 2, 4 * self.width)
            x = self._block(x, channels, 2)
            x = self._block(x, channels, 1)
        x = nn.relu(nn.Dense(self.hidden)(x.reshape(x.shape[0], -1)))
        return nn.Dense(self.num_bits)(x)  # [B, N]

    def _block(self, x: jax.Array, channels: int, stride: int) -> jax.Array:
        return _conv_block(x, channels, stride, norm=self.norm)


def _conv(features: int, stride: int = 1, use_bias: bool = True) -> nn.Module:
    """A 3x3 'SAME' convolution on the fast conv engine, with `nn.Conv`'s parameters and output."""
    return conv.Conv(features, 3, strides=stride, padding="SAME", use_bias=use_bias)


def _conv_block(x: jax.Array, channels: int, stride: int, *, norm: bool) -> jax.Array:
    """3x3 conv, then group norm (per example: no batch statistics to sync), ReLU.

    Called from a parent's compact method: the layers are the parent's.
    """
    x = _conv(channels, stride, use_bias=not norm)(x)
    if norm:
        x = layers.GroupNorm(num_groups=math.gcd(8, channels))(x)
    return nn.relu(x)


class Localizer(nn.Module):
    """Finds a marker in a photo: corner heat maps and a presence logit.

    A small encoder (three stride-2 levels) and a decoder with skip
    connections back to half resolution: photo [B, L, L, 3] in [0, 1] ->
    (corner logits [B, L/2, L/2, 4], one map per corner in the marker's own
    order TL, TR, BR, BL; presence logits [B]). `ops.sampler.soft_argmax`
    turns the maps into sub-pixel corners. L must be a multiple of 8.
    """

    width: int = 16
    norm: bool = True

    @nn.compact
    def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        if images.shape[1] % 8 or images.shape[2] % 8:
            raise ValueError(f"Localizer input sides must be multiples of 8, got {images.shape}.")
        w, block = self.width, self._block
        half = block(block(block(layers.to_signed(images), w, 1), 2 * w, 2), 2 * w, 1)
        quarter = block(block(half, 4 * w, 2), 4 * w, 1)  # [B, L/4, L/4, 4w]
        eighth = block(block(quarter, 4 * w, 2), 4 * w, 1)  # [B, L/8, L/8, 4w]
        pooled = jnp.concatenate([jnp.mean(eighth, (1, 2)), jnp.max(eighth, (1, 2))], -1)
        presence = nn.Dense(1)(nn.relu(nn.Dense(2 * w)(pooled)))[:, 0]
        x = block(jnp.concatenate([layers.upsample_nearest(eighth), quarter], -1), 4 * w, 1)
        x = block(jnp.concatenate([layers.upsample_nearest(x), half], -1), 2 * w, 1)
        return _conv(4)(x), presence

    def _block(self, x: jax.Array, channels: int, stride: int) -> jax.Array:
        return _conv_block(x, channels, stride, norm=self.norm)


def synthesizer(kind: str, *, marker_size: int, width: int) -> nn.Module:
    """The synthesizer named `kind`: 'upconv' or 'linear'."""
    if kind == "upconv":
        return UpconvSynthesizer(marker_size=marker_size, width=width)
    if kind == "linear":
        return LinearSynthesizer(marker_size=marker_size)
    raise ValueError(f"Unknown synthesizer {kind!r}; expected 'upconv' or 'linear'.")
