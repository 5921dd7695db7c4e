"""pix2pix generators: U-Net, its encoder-decoder variant, and a ResNet-block generator.

All generators map images [B, H, W, 3] in [0, 1] to images in [0, 1]: inputs
are mapped to [-1, 1] inside, and a tanh output is mapped back.

- `UNet`: `num_downs` stride-2 4x4 convolutions down to a bottleneck and as
  many up (PyTorch `ConvTranspose2d(4, 2, 1)` written as sub-pixel phase
  convolutions, `PhaseConvTranspose` here: `layers.PhaseConvTranspose` with its
  kernel stored phase by phase), each decoder level concatenated
  with the encoder level of the same size (`skip=True`; `skip=False` is the
  paper's encoder-decoder baseline). Widths w, 2w, 4w, 8w, 8w, ... Dropout
  (rate 0.5) after the 3 innermost decoder convolutions is the only noise, as
  in the paper's decoder (CD512-CD1024-CD1024-C1024-...; junyanz's code starts
  one level further out); it stays on at inference unless `deterministic=True`.
  Biases follow junyanz's code: none before batch norm, except the output.
- `ResnetGenerator`: c7s1-w, two stride-2 downsamplings, residual blocks with
  reflection padding, two phase transposed-conv upsamplings, c7s1-3.

Height and width must be multiples of `size_multiple` (2^num_downs for the
U-Net, 4 for the ResNet generator); `check_size` raises a ValueError that
states the rule and a size that satisfies it.

Every convolution goes through `conv2d`, which avoids two slow paths of
XLA:CPU (see the comment above it); values and gradients equal
`lax.conv_general_dilated`'s.

Normalisation: 'batch' normalises with the statistics of the current batch,
in training and at test time alike (pix2pix tests with batch statistics), so
there are no running averages and no mutable collection; under jit with a
sharded batch the statistics are over the global batch. 'instance' is
`layers.InstanceNorm` without affine parameters (as junyanz's code), 'none'
skips normalisation. Convolution kernels are initialised N(0, 0.02), batch-
norm scales N(1, 0.02), biases 0.

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

import functools
import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from neural_synth.models import layers

NORMS = ("batch", "instance", "none")
GENERATORS = ("unet", "encoder_decoder", "resnet")
MAX_DOWNS = 8  # The paper's U-Net for 256x256 images: a 1x1 bottleneck.
NUM_DROPOUT_LAYERS = 3  # Decoder layers with dropout, counted from the bottleneck.
conv_init = nn.initializers.normal(0.02)


# ----------------------------------------------------------------------------- sizes


def num_downs_for(height: int, width: int, *, max_downs: int = MAX_DOWNS) -> int:
    """Largest k <= max_downs with min(H, W) / 2^k >= 1 (8 for 256x256, 6 for 64x64)."""
    if min(height, width) < 2:
        raise ValueError(f"Images must be at least 2x2 for a U-Net, got {height}x{width}.")
    return min(max_downs, int(math.floor(math.log2(min(height, width)))))


def check_size(height: int, width: int, multiple: int, what: str) -> None:
    """Raises a ValueError stating the divisibility rule unless H and W are multiples."""
    if height % multiple or width % multiple or min(height, width) < multiple:
        up = lambda n: -(-n // multiple) * multiple
        down = lambda n: max(multiple, n // multiple * multiple)
        k = int(math.log2(multiple))
        raise ValueError(
            f"height and width must be multiples of 2^{k} = {multiple} ({what}), got "
            f"{height}x{width}; e.g. use {up(height)}x{up(width)} (resize) or "
            f"{down(height)}x{down(width)} (crop), or a shallower network."
        )


def to_signed(images: jax.Array) -> jax.Array:
    """[0, 1] -> [-1, 1], the range the networks work in."""
    return images * 2.0 - 1.0


def from_tanh(x: jax.Array) -> jax.Array:
    """tanh of pre-activations, mapped to [0, 1]."""
    return (jnp.tanh(x) + 1.0) * 0.5


# ----------------------------------------------------------------------------- norms


class BatchStatNorm(nn.Module):
    """Batch normalisation with the current batch's statistics only (no running averages).

    Mean and variance over (B, H, W) per channel; scale ~ N(1, 0.02), bias 0.
    """

    eps: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        mean = jnp.mean(x, axis=(0, 1, 2))  # [C]
        var = jnp.mean(jnp.square(x - mean), axis=(0, 1, 2))
        scale = self.param("scale", lambda k, s: 1.0 + 0.02 * jax.random.normal(k, s), x.shape[-1:])
        bias = self.param("bias", nn.initializers.zeros, x.shape[-1:])
        return (x - mean) * (jax.lax.rsqrt(var + self.eps) * scale) + bias


class Identity(nn.Module):
    """No normalisation (norm='none')."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return x


def norm_layer(norm: str, name: str | None = None) -> nn.Module:
    """The normalisation module for 'batch', 'instance' or 'none'."""
    if norm == "batch":
        return BatchStatNorm(name=name)
    if norm == "instance":
        return layers.InstanceNorm(affine=False, name=name)
    if norm == "none":
        return Identity(name=name)
    raise ValueError(f"Unknown norm {norm!r}; choose from {NORMS}.")


def check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"Unknown norm {norm!r}; choose from {NORMS}.")


# ----------------------------------------------------------------------------- convolutions
#
# Two XLA:CPU weak spots, measured at 256^2 batch 1 (forward + both gradients):
# the kernel gradient of a convolution with few output channels (a 2x2 conv
# 128 -> 3 channels at 128^2: 48 ms, 30x its forward pass) and convolutions of
# small maps with many channels (a 4x4 stride-2 conv 512 -> 512 channels from
# 4x4 to 2x2: 49 ms for 0.03 GFLOP). `conv2d` therefore computes small maps as
# one matrix product of the gathered patches (im2col: 4.5 ms in that case),
# large maps of layers with few channels with XLA's convolution for the
# forward pass and input gradient but the kernel gradient as one matrix
# product per kernel tap (8.6 ms in the first case), and other layers with
# XLA's convolution.

IM2COL_MAX_POSITIONS = 512  # B * out_h * out_w up to which im2col is faster.
# Layers with at most this many input or output channels get the tap-wise kernel
# gradient; on wide layers XLA's own is fine and the tap-wise products would
# need transposed copies of large activations (3.8 s of a 17 s step at batch 8).
TAP_GRAD_MAX_CHANNELS = 16


def _xla_conv(x, kernel, strides, padding):
    return jax.lax.conv_general_dilated(
        x, kernel, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def conv2d(x: jax.Array, kernel: jax.Array, strides: tuple, padding: tuple) -> jax.Array:
    """Convolution [B, H, W, C] * [kh, kw, C, F] with explicit zero `padding` ((t, b), (l, r)).

    The values and gradients of `lax.conv_general_dilated`, computed the way
    XLA:CPU runs fastest for the map size (see the comment above).
    """
    kh, kw = kernel.shape[:2]
    out_h = (x.shape[1] + sum(padding[0]) - kh) // strides[0] + 1
    out_w = (x.shape[2] + sum(padding[1]) - kw) // strides[1] + 1
    if x.shape[0] * out_h * out_w <= IM2COL_MAX_POSITIONS:
        return _im2col_conv(x, kernel, strides, padding)
    if min(kernel.shape[2:]) <= TAP_GRAD_MAX_CHANNELS:
        return _conv_tap_grad(x, kernel, strides, padding)
    return _xla_conv(x, kernel, strides, padding)


def _windows(x, shape, strides, padding, out_hw) -> list[jax.Array]:
    """The kh * kw strided input windows [B, out_h, out_w, C] that meet each kernel tap."""
    kh, kw = shape[:2]
    (sh, sw), (oh, ow) = strides, out_hw
    xp = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
    return [
        xp[:, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
        for i in range(kh)
        for j in range(kw)
    ]


def _im2col_conv(x, kernel, strides, padding):
    """Convolution as patches [B, h, w, kh*kw*C] @ kernel [kh*kw*C, F] (autodiff gradients)."""
    kh, kw, c, f = kernel.shape
    out_h = (x.shape[1] + sum(padding[0]) - kh) // strides[0] + 1
    out_w = (x.shape[2] + sum(padding[1]) - kw) // strides[1] + 1
    cols = jnp.concatenate(_windows(x, kernel.shape, strides, padding, (out_h, out_w)), axis=-1)
    return jnp.einsum("nhwk,kf->nhwf", cols, kernel.reshape(kh * kw * c, f))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_tap_grad(x, kernel, strides, padding):
    """XLA's convolution whose kernel gradient is computed tap by tap (`kernel_grad`)."""
    return _xla_conv(x, kernel, strides, padding)


def _conv_tap_grad_fwd(x, kernel, strides, padding):
    return _xla_conv(x, kernel, strides, padding), (x, kernel)


def _conv_tap_grad_bwd(strides, padding, residuals, g):
    x, kernel = residuals
    _, x_vjp = jax.vjp(lambda v: _xla_conv(v, kernel, strides, padding), x)
    (dx,) = x_vjp(g)
    return dx, kernel_grad(x, g, kernel.shape, strides, padding)


_conv_tap_grad.defvjp(_conv_tap_grad_fwd, _conv_tap_grad_bwd)


def kernel_grad(x, g, shape, strides, padding) -> jax.Array:
    """d loss / d kernel [kh, kw, C, F] from input x [B, H, W, C] and output cotangent g [B, h, w, F]."""
    kh, kw, c, f = shape
    windows = _windows(x, shape, strides, padding, g.shape[1:3])
    taps = [jnp.einsum("nhwf,nhwc->fc", g, w) for w in windows]  # kh * kw x [F, C]
    return jnp.stack(taps).reshape(kh, kw, f, c).transpose(0, 1, 3, 2).astype(x.dtype)


class Conv(nn.Module):
    """A zero-padded convolution (parameters named like `nn.Conv`'s) through `conv2d`."""

    features: int
    kernel_size: int = 4
    strides: int = 1
    padding: int = 1
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, p = self.kernel_size, self.padding
        kernel = self.param("kernel", conv_init, (k, k, x.shape[-1], self.features))
        y = conv2d(x, kernel, (self.strides, self.strides), ((p, p), (p, p)))
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y


class PhaseConvTranspose(nn.Module):
    """`layers.PhaseConvTranspose` (torch `ConvTranspose2d(4, 2, 1)`) with the kernel stored by phase.

    [B, H, W, Cin] -> [B, 2H, 2W, F]. The parameter 'phase_kernel' [2, 2, 2, 2,
    Cin, F] holds, at [a, b], the 2x2 kernel of output phase (a, b) (rows 2m + a,
    columns 2n + b): `phase_kernel[a, b, t, u] = kernel[3 - a - 2t, 3 - b - 2u]`
    of the usual 4x4 kernel (`to_standard_kernel`). Stored this way, each
    phase's kernel is a contiguous block: slicing the 4x4 kernel per phase (a
    strided reverse) and its transpose in the backward pass cost ~400 ms of a
    1.8 s U-Net256 train step on XLA:CPU. Each phase goes through `conv2d`.
    """

    features: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (2, 2, 2, 2, x.shape[-1], self.features)
        kernel = self.param("phase_kernel", conv_init, shape)
        pads = {0: (1, 0), 1: (0, 1)}
        rows = [
            jnp.stack([conv2d(x, kernel[a, b], (1, 1), (pads[a], pads[b])) for b in (0, 1)], axis=3)
            for a in (0, 1)
        ]  # 2 x [B, H, W, 2, F]
        y = jnp.stack(rows, axis=2)  # [B, H, 2, W, 2, F]
        b, h, _, w, _, f = y.shape
        y = y.reshape(b, 2 * h, 2 * w, f)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y


def to_standard_kernel(phase_kernel) -> jax.Array:
    """'phase_kernel' [2, 2, 2, 2, C, F] -> the 4x4 kernel [4, 4, C, F] of `layers.PhaseConvTranspose`.

    kernel[i, j, c, f] equals torch `ConvTranspose2d`'s weight[c, f, i, j].
    """
    k = jnp.asarray(phase_kernel)  # [a, b, t, u, C, F]; row i = 3 - a - 2t.
    k = k.transpose(2, 0, 3, 1, 4, 5).reshape(4, 4, *k.shape[4:])  # [2t + a, 2u + b]
    return k[::-1, ::-1]


def down_conv(features: int, use_bias: bool, name: str) -> nn.Module:
    """4x4 stride-2 convolution with zero padding 1: [B, H, W, C] -> [B, H/2, W/2, F]."""
    return Conv(features, 4, strides=2, padding=1, use_bias=use_bias, name=name)


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
        check_norm(self.norm)
        if self.num_downs < 1:
            raise ValueError(f"num_downs must be >= 1, got {self.num_downs}.")
        check_size(*images.shape[1:3], self.size_multiple, f"U-Net with num_downs={self.num_downs}")
        skips = self._encode(to_signed(images))
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
                x = norm_layer(self.norm, f"down{i}_norm")(x)
            skips.append(x)
        return skips

    def _decode(self, skips: list[jax.Array], deterministic: bool) -> jax.Array:
        """Innermost to outermost: ReLU, phase transposed conv, norm, dropout, concat."""
        k, use_bias = self.num_downs, self.norm != "batch"
        x = skips[-1]
        for i in reversed(range(k)):
            x = nn.relu(x)
            features = self.level_features(i - 1) if i > 0 else self.out_channels
            x = PhaseConvTranspose(features, use_bias=use_bias or i == 0, name=f"up{i}")(x)
            if i == 0:
                break
            x = norm_layer(self.norm, f"up{i}_norm")(x)
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
        check_norm(self.norm)
        check_size(*images.shape[1:3], self.size_multiple, "ResNet generator")
        use_bias = self.norm != "batch"
        norm_fn: Callable[[str], nn.Module] = lambda name: norm_layer(self.norm, name)
        x = layers.PaddedConv(self.width, 7, use_bias=use_bias, kernel_init=conv_init)(
            to_signed(images)
        )
        x = nn.relu(norm_fn("stem_norm")(x))
        for i in (1, 2):
            x = Conv(self.width * 2**i, 3, 2, 1, use_bias, name=f"down{i}")(x)
            x = nn.relu(norm_fn(f"down{i}_norm")(x))
        for i in range(self.num_blocks):
            x = layers.ResidualBlock(self.width * 4, norm_fn, "reflect", name=f"block{i}")(x)
        for i in (1, 0):
            x = PhaseConvTranspose(self.width * 2**i, use_bias=use_bias, name=f"up{i}")(x)
            x = nn.relu(norm_fn(f"up{i}_norm")(x))
        x = layers.PaddedConv(self.out_channels, 7, kernel_init=conv_init, name="out")(x)
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
        check_size(height, width_px, 2**k, f"U-Net with num_downs={k}")
        return UNet(num_downs=k, width=width, norm=norm, skip=kind == "unet", dropout=dropout)
    if kind == "resnet":
        check_size(height, width_px, 4, "ResNet generator")
        blocks = 9 if min(height, width_px) >= 256 else 6
        return ResnetGenerator(width=width, num_blocks=blocks, norm=norm)
    raise ValueError(f"Unknown generator {kind!r}; choose from {GENERATORS}.")
