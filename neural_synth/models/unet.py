"""pix2pix generators: U-Net, its encoder-decoder variant, and a ResNet-block generator.

All generators map images [B, H, W, 3] in [0, 1] to images in [0, 1]: inputs
are mapped to [-1, 1] inside, and a tanh output is mapped back.

- `UNet`: `num_downs` stride-2 4x4 convolutions down to a bottleneck and as
  many up (PyTorch `ConvTranspose2d(4, 2, 1)` written as sub-pixel phase
  convolutions, `conv.PhaseConvTranspose`), each decoder level concatenated
  with the encoder level of the same size (`skip=True`; `skip=False` is the
  paper's encoder-decoder baseline). Widths w, 2w, 4w, 8w, 8w, ... Dropout
  (rate 0.5) after the 3 innermost decoder convolutions is the only noise, as
  in the paper's decoder (CD512-CD1024-CD1024-C1024-...; junyanz's code starts
  one level further out); it stays on at inference unless `deterministic=True`.
  Biases follow junyanz's code: none before batch norm, except the output.
- `ResnetGenerator`: c7s1-w, two stride-2 downsamplings, residual blocks with
  reflection padding, two phase transposed-conv upsamplings, c7s1-3.

Height and width must be multiples of `size_multiple` (2^num_downs for the
U-Net, 4 for the ResNet generator); `layers.check_image_size` raises a
ValueError that states the rule and a size that satisfies it.

Every zero-padded convolution goes through `conv.conv2d`, which avoids two
slow paths of XLA:CPU; values and gradients equal `lax.conv_general_dilated`'s.

Normalisation (`layers.norm_layer`): 'batch' normalises with the statistics of
the current batch, in training and at test time alike (pix2pix tests with
batch statistics), so there are no running averages and no mutable
collection; under jit with a sharded batch the statistics are over the global
batch. 'instance' is `layers.InstanceNorm` without affine parameters (as
junyanz's code), 'none' skips normalisation. Convolution kernels are
initialised N(0, 0.02) (`conv.gan_init`), batch-norm scales N(1, 0.02), biases 0.

References:
  Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with Conditional
    Adversarial Networks", CVPR 2017 (U-Net, encoder-decoder, dropout, init).
  Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical
    Image Segmentation", MICCAI 2015.
  Zhu, Park, Isola & Efros, "Unpaired Image-to-Image Translation using
    Cycle-Consistent Adversarial Networks", ICCV 2017 (ResNet generator).
  Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style Transfer
    and Super-Resolution", ECCV 2016 (residual-block generator).
"""

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from neural_synth.models import conv, layers

GENERATORS = ("unet", "encoder_decoder", "resnet")
MAX_DOWNS = 8  # The paper's U-Net for 256x256 images: a 1x1 bottleneck.
NUM_DROPOUT_LAYERS = 3  # Decoder layers with dropout, counted from the bottleneck.


# ----------------------------------------------------------------------------- sizes


def num_downs_for(height: int, width: int, *, max_downs: int = MAX_DOWNS) -> int:
    """Largest k <= max_downs with min(H, W) / 2^k >= 1 (8 for 256x256, 6 for 64x64)."""
    layers.check_image_size(height, width, minimum=2, what="images for a U-Net")
    return min(max_downs, int(math.floor(math.log2(min(height, width)))))


def _check_unet_size(height: int, width: int, num_downs: int, what: str) -> None:
    layers.check_image_size(
        height,
        width,
        multiple=2**num_downs,
        what=f"{what} for a U-Net with num_downs={num_downs}",
        fix="a smaller num_downs",
    )


def _check_resnet_size(height: int, width: int, multiple: int, what: str) -> None:
    layers.check_image_size(height, width, multiple=multiple, what=f"{what} for a ResNet generator")


def from_tanh(x: jax.Array) -> jax.Array:
    """tanh of pre-activations, mapped to [0, 1]."""
    return (jnp.tanh(x) + 1.0) * 0.5


def down_conv(features: int, use_bias: bool, name: str) -> nn.Module:
    """4x4 stride-2 convolution with zero padding 1: [B, H, W, C] -> [B, H/2, W/2, F]."""
    return conv.Conv(
        features, 4, strides=2, padding=1, use_bias=use_bias, kernel_init=conv.gan_init, name=name
    )


def up_conv(features: int, use_bias: bool, name: str) -> nn.Module:
    """4x4 stride-2 transposed convolution: [B, H, W, C] -> [B, 2H, 2W, F]."""
    return conv.PhaseConvTranspose(
        features, use_bias=use_bias, kernel_init=conv.gan_init, name=name
    )


# ----------------------------------------------------------------------------- U-Net


class UNet(nn.Module):
    """U-Net (or encoder-decoder with `skip=False`) generator, images in [0, 1] both ways.

    Attributes:
      num_downs: stride-2 levels; H and W must be multiples of 2^num_downs (8 for
        256x256 as in the paper; see `num_downs_for`).
      width: channels of the first level (64 in the paper); level i has
        width * min(2^i, 8).
      norm: 'batch' | 'instance' | 'none'.
      skip: concatenate encoder features into the decoder (the U-Net).
      dropout: rate of the dropout after the 3 innermost decoder convolutions
        (0 turns the noise off altogether).
      out_channels: channels of the output image.
    """

    num_downs: int
    width: int = 64
    norm: str = "batch"
    skip: bool = True
    dropout: float = 0.5
    out_channels: int = 3

    @property
    def size_multiple(self) -> int:
        return 2**self.num_downs

    def level_features(self, i: int) -> int:
        return self.width * min(2**i, 8)

    @nn.compact
    def __call__(self, images: jax.Array, *, deterministic: bool = False) -> jax.Array:
        """images [B, H, W, C] in [0, 1] -> [B, H, W, out_channels] in [0, 1].

        `deterministic=False` applies dropout and needs a 'dropout' PRNG key.
        """
        layers.check_norm(self.norm)
        if self.num_downs < 1:
            raise ValueError(f"num_downs must be >= 1, got {self.num_downs}.")
        _check_unet_size(*images.shape[1:3], self.num_downs, "images")
        skips = self._encode(layers.to_signed(images))
        return from_tanh(self._decode(skips, deterministic))

    def _encode(self, x: jax.Array) -> list[jax.Array]:
        """Encoder outputs of every level, outermost first: [B, H/2^(i+1), W/2^(i+1), F_i]."""
        k, use_bias = self.num_downs, self.norm != "batch"
        skips = []
        for i in range(k):
            if i > 0:
                x = nn.leaky_relu(x, 0.2)
            x = down_conv(self.level_features(i), use_bias, f"down{i}")(x)
            if 0 < i < k - 1:  # No norm on the outermost and innermost levels.
                x = layers.norm_layer(self.norm, f"down{i}_norm")(x)
            skips.append(x)
        return skips

    def _decode(self, skips: list[jax.Array], deterministic: bool) -> jax.Array:
        """Innermost to outermost: ReLU, phase transposed conv, norm, dropout, concat."""
        k, use_bias = self.num_downs, self.norm != "batch"
        x = skips[-1]
        for i in reversed(range(k)):
            x = nn.relu(x)
            features = self.level_features(i - 1) if i > 0 else self.out_channels
            x = up_conv(features, use_bias or i == 0, f"up{i}")(x)
            if i == 0:
                break
            x = layers.norm_layer(self.norm, f"up{i}_norm")(x)
            if self.dropout > 0 and k - 1 - i < NUM_DROPOUT_LAYERS:
                x = nn.Dropout(self.dropout, deterministic=deterministic)(x)
            if self.skip:
                x = jnp.concatenate([skips[i - 1], x], axis=-1)
        return x


# ----------------------------------------------------------------------------- ResNet


class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet-block generator (reflection padding), images in [0, 1] both ways.

    c7s1-w, d2w, d4w, `num_blocks` residual blocks of 4w, u2w, uw, c7s1-3; the
    upsamplings are 4x4 stride-2 phase transposed convolutions (CycleGAN uses
    3x3 with output padding 1). H and W must be multiples of 4. The residual
    blocks keep `layers.ResidualBlock`'s default initialisation.
    """

    width: int = 64
    num_blocks: int = 9
    norm: str = "instance"
    out_channels: int = 3
    size_multiple: int = 4

    @nn.compact
    def __call__(self, images: jax.Array, *, deterministic: bool = True) -> jax.Array:
        """images [B, H, W, C] in [0, 1] -> [B, H, W, out_channels] in [0, 1]."""
        del deterministic  # No dropout: the same call signature as `UNet`.
        layers.check_norm(self.norm)
        _check_resnet_size(*images.shape[1:3], self.size_multiple, "images")
        use_bias = self.norm != "batch"
        norm_fn: Callable[[str], nn.Module] = lambda name: layers.norm_layer(self.norm, name)
        x = conv.PaddedConv(self.width, 7, use_bias=use_bias, kernel_init=conv.gan_init)(
            layers.to_signed(images)
        )
        x = nn.relu(norm_fn("stem_norm")(x))
        for i in (1, 2):
            x = conv.Conv(self.width * 2**i, 3, 2, 1, use_bias, conv.gan_init, name=f"down{i}")(x)
            x = nn.relu(norm_fn(f"down{i}_norm")(x))
        for i in range(self.num_blocks):
            x = layers.ResidualBlock(self.width * 4, norm_fn, "reflect", name=f"block{i}")(x)
        for i in (1, 0):
            x = up_conv(self.width * 2**i, use_bias, f"up{i}")(x)
            x = nn.relu(norm_fn(f"up{i}_norm")(x))
        x = conv.PaddedConv(self.out_channels, 7, kernel_init=conv.gan_init, name="out")(x)
        return from_tanh(x)


def generator(
    kind: str,
    *,
    image_size: tuple[int, int],
    width: int = 64,
    num_downs: int = 0,
    norm: str = "batch",
    dropout: float = 0.5,
) -> nn.Module:
    """A generator by name: 'unet' | 'encoder_decoder' | 'resnet'.

    `num_downs=0` derives the U-Net depth from the training `image_size`
    (`num_downs_for`); the ResNet generator has 9 blocks from 256 px up, else 6.
    Raises a ValueError (naming the rule) when `image_size` does not fit.
    """
    height, width_px = image_size
    if kind in ("unet", "encoder_decoder"):
        k = num_downs or num_downs_for(height, width_px)
        _check_unet_size(height, width_px, k, "image_size")
        return UNet(num_downs=k, width=width, norm=norm, skip=kind == "unet", dropout=dropout)
    if kind == "resnet":
        _check_resnet_size(height, width_px, ResnetGenerator.size_multiple, "image_size")
        blocks = 9 if min(height, width_px) >= 256 else 6
        return ResnetGenerator(width=width, num_blocks=blocks, norm=norm)
    raise ValueError(f"Unknown generator {kind!r}; choose from {GENERATORS}.")
