"""Convolution layers, written the way XLA:CPU runs them fastest (see PERF_NOTES).

- `PaddedConv`: reflection / circular / zero padded convolution through `conv2d`.
- `conv2d`: the zero-padded convolution engine. Small maps run as one matrix
  product of gathered patches (im2col); 4x4 stride-2 kernels as 2x2 stride-1
  ones over 2x2 pixel blocks; 3x3 stride-1 layers of >= 128 channels on small
  maps as Winograd F(4x4, 3x3); layers reading 3-4 channels use XLA's
  convolution, all others XLA's forward pass with a kernel gradient computed
  tap by tap (a `jax.custom_vjp`); unpadded (VALID) convolutions are padded and
  cropped (PERF_NOTES pitfall 1). Values and gradients equal
  `lax.conv_general_dilated`'s.
- `Conv`: a zero-padded convolution module through `conv2d` (padding='SAME'
  reproduces `nn.Conv`; `same_padding` gives that padding per axis).
- `PhaseConvTranspose`: PyTorch's `ConvTranspose2d(4, 2, 1)` computed as four
  2x2 sub-pixel ("phase") convolutions through `conv2d` (PERF_NOTES pitfall 2),
  its kernel stored phase by phase; `to_standard_kernel` gives the usual 4x4
  (torch-compatible) kernel.
- `upsample_conv`: the resize-convolution (2x nearest + 3x3) as four 2x2
  sub-pixel convolutions of the small map (`PaddedConv(upsample=2)`).
- `winograd_conv`: 3x3 SAME convolutions of wide layers as Winograd F(m x m, 3 x 3)
  transforms and matrix products (the frozen VGG's fast path, `vgg.freeze`).
- `gan_init`: the N(0, 0.02) kernel initialisation of DCGAN and pix2pix.

References: Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts",
Distill 2016; Shi et al., "Real-Time Single Image and Video Super-Resolution
Using an Efficient Sub-Pixel Convolutional Neural Network", CVPR 2016
(sub-pixel convolution); Radford, Metz & Chintala, "Unsupervised
Representation Learning with Deep Convolutional Generative Adversarial
Networks", ICLR 2016 (N(0, 0.02) initialisation); Lavin & Gray, "Fast
Algorithms for Convolutional Neural Networks", CVPR 2016 (Winograd).
"""

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

PADDING_MODES = ("reflect", "circular", "zero")
gan_init = nn.initializers.normal(0.02)  # DCGAN's and pix2pix's kernel initialisation.


# ----------------------------------------------------------------------------- padded conv


def pad(x: jax.Array, amount: int, mode: str) -> jax.Array:
    """Pads H and W of [B, H, W, C] by `amount` per side ('reflect', 'circular', 'zero')."""
    if mode not in PADDING_MODES:
        raise ValueError(f"Unknown padding {mode!r}; choose from {PADDING_MODES}.")
    if amount == 0:
        return x
    if mode == "reflect" and min(x.shape[1:3]) <= amount:
        raise ValueError(
            f"Reflection padding of {amount} needs feature maps larger than {amount} px, "
            f"got {x.shape[1]}x{x.shape[2]}: the input image is too small for this network."
        )
    widths = ((0, 0), (amount, amount), (amount, amount), (0, 0))
    return jnp.pad(
        x, widths, mode={"reflect": "reflect", "circular": "wrap", "zero": "constant"}[mode]
    )


class PaddedConv(nn.Module):
    """Convolution with `kernel_size // 2` padding of the given mode.

    Output size: ceil(H / strides) for odd kernels (H for stride 1). The padded
    map's unpadded (VALID) convolution runs through `conv2d`, so these layers
    get the engine's fast paths (its kernel gradients, Winograd for wide 3x3
    layers); 'zero' pads like `nn.Conv`'s 'SAME'. Large stride-1 kernels on
    few input channels (the 7x7 and 9x9 input layers of image-to-image
    networks) run in space-to-depth form (`space_to_depth_conv`).

    `upsample=2` (3x3 stride-1 kernels only) convolves the 2x nearest-neighbour
    upsampling of x, the resize-convolution, computed on x itself as four 2x2
    sub-pixel convolutions (`upsample_conv`): 2.25x fewer FLOPs, same result.

    Parameters are named like `nn.Conv`'s ('kernel' [k, k, Cin, Cout], 'bias').
    """

    features: int
    kernel_size: int = 3
    strides: int = 1
    padding: str = "reflect"
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    upsample: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, s, p = self.kernel_size, self.strides, self.kernel_size // 2
        if self.padding == "zero" and k % 2 == 0:
            raise ValueError("Zero-padded PaddedConv needs an odd kernel size.")
        if self.upsample != 1:
            if (self.upsample, k, s) != (2, 3, 1):
                raise ValueError("PaddedConv upsamples only by 2, with a 3x3 stride-1 kernel.")
            return self._conv(x, lambda kernel: upsample_conv(x, kernel, self.padding))
        if _space_to_depth_pays(x.shape, k, s):
            z = pad(x, p, self.padding)
            return self._conv(x, lambda kernel: space_to_depth_conv(z, kernel, S2D_BLOCK))
        if self.padding == "zero":
            padding = tuple(same_padding(n, k, s) for n in x.shape[1:3])  # nn.Conv's 'SAME'.
        else:
            x, padding = pad(x, p, self.padding), ((0, 0), (0, 0))
        return self._conv(x, lambda kernel: conv2d(x, kernel, (s, s), padding))

    def _conv(self, x: jax.Array, conv_fn: Callable) -> jax.Array:
        """`conv_fn(kernel)` plus bias, with the parameters `nn.Conv` would have made."""
        kernel, bias = _ConvParams(
            self.features, self.kernel_size, self.use_bias, self.kernel_init, name="Conv_0"
        )(x.shape[-1])
        y = conv_fn(kernel)
        return y if bias is None else y + bias


class _ConvParams(nn.Module):
    """The parameters `nn.Conv` would create (same names, shapes, initialisers)."""

    features: int
    kernel_size: int
    use_bias: bool
    kernel_init: Callable

    @nn.compact
    def __call__(self, in_features: int) -> tuple[jax.Array, jax.Array | None]:
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, in_features, self.features))
        if not self.use_bias:
            return kernel, None
        return kernel, self.param("bias", nn.initializers.zeros_init(), (self.features,))


# ----------------------------------------------------------------------------- space to depth
#
# A 9x9 convolution from 3 channels runs at ~12 GFLOP/s on XLA:CPU (a 512^2
# image: ~340 ms for 4 GFLOP); the same convolution on 2x2 blocks of pixels
# (12 channels in, 4 x F out, a 5x5 kernel over blocks) does 1.24x the FLOPs
# at several times the speed. With many input channels the plain form is
# already fast (a 32 -> 3 channel 9x9 conv: 78 ms plain, 209 ms in blocks of 4).

S2D_BLOCK = 2  # Block side (measured at 512^2: blocks of 2 beat 4 and 8).
S2D_MAX_CHANNELS = 4  # Input channels up to which the block form is used.
S2D_MIN_KERNEL = 5


def _space_to_depth_pays(shape, kernel_size: int, strides: int) -> bool:
    h, w, c = shape[1:]
    return (
        strides == 1
        and kernel_size >= S2D_MIN_KERNEL
        and c <= S2D_MAX_CHANNELS
        and h % S2D_BLOCK == 0
        and w % S2D_BLOCK == 0
    )


def space_to_depth_conv(z: jax.Array, kernel: jax.Array, block: int) -> jax.Array:
    """Unpadded stride-1 convolution of z [B, H + k - 1, W + k - 1, C] -> [B, H, W, F] on pixel blocks.

    Output pixel r * i + p (block i, phase p) reads inputs r * i + p + t for
    taps t < k: inputs of blocks i .. i + nb - 1. So the output's r x r blocks
    are a stride-1 convolution with an nb x nb kernel (`space_to_depth_kernel`)
    of the input's r x r blocks, stacked into channels. H and W must be
    multiples of `block`; values equal `lax.conv_general_dilated` (VALID).
    """
    k, f = kernel.shape[0], kernel.shape[-1]
    r, nb = block, _num_blocks(k, block)
    b, h, w = z.shape[0], z.shape[1] - k + 1, z.shape[2] - k + 1
    rows, cols = h // r + nb - 1, w // r + nb - 1  # Input blocks needed.
    z = jnp.pad(z, ((0, 0), (0, rows * r - z.shape[1]), (0, cols * r - z.shape[2]), (0, 0)))
    z = space_to_depth(z, r)
    # Zero padding 1 + crop: XLA:CPU's fast padded path, not VALID (PERF_NOTES pitfall 1).
    # Through the engine for its kernel gradient (Johnson's 9x9 input layer, 4 x 256^2:
    # fwd + bwd 260 -> 102 ms against XLA's own, 2-core Xeon).
    y = conv2d(z, space_to_depth_kernel(kernel, r), (1, 1), ((1, 1), (1, 1)))
    y = y[:, 1 : 1 + h // r, 1 : 1 + w // r].reshape(b, h // r, w // r, r, r, f)
    return y.transpose(0, 1, 3, 2, 4, 5).reshape(b, h, w, f)


def space_to_depth(x: jax.Array, block: int) -> jax.Array:
    """[B, H, W, C] -> [B, H / r, W / r, r * r * C], channels ordered (row phase, column phase, C)."""
    b, h, w, c = x.shape
    r = block
    x = x.reshape(b, h // r, r, w // r, r, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h // r, w // r, r * r * c)


def _num_blocks(kernel_size: int, block: int) -> int:
    return (kernel_size + block - 2) // block + 1


def space_to_depth_kernel(kernel: jax.Array, block: int) -> jax.Array:
    """[k, k, C, F] -> [nb, nb, r * r * C, r * r * F]: entry (a, q, p) holds tap r * a + q - p (0 outside)."""
    k, _, c, f = kernel.shape
    r, nb = block, _num_blocks(k, block)
    a, q, p = np.ogrid[:nb, :r, :r]
    taps = r * a + q - p  # [nb, r (input phase), r (output phase)]
    taps = np.where((taps >= 0) & (taps < k), taps, k)  # k: the zero row appended below.
    padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
    g = padded[taps[:, None, :, None, :, None], taps[None, :, None, :, None, :]]
    # g: [a_y, a_x, q_y, q_x, p_y, p_x, C, F] -> rows (q_y, q_x, C), columns (p_y, p_x, F).
    return g.transpose(0, 1, 2, 3, 6, 4, 5, 7).reshape(nb, nb, r * r * c, r * r * f)


# ----------------------------------------------------------------------------- resize-conv
#
# A 3x3 convolution of a 2x nearest-upsampled map reads, for output row 2i + a,
# the input rows (i - 1, i) with taps (k0, k1 + k2) when a = 0 and (i, i + 1)
# with taps (k0 + k1, k2) when a = 1 (columns alike): four 2x2 convolutions of
# the small map, 16 instead of 36 multiply-adds per input pixel and channel
# pair. One padding pixel of the upsampled map is one of the small map: its
# reflection is the small map's edge pixel, circular and zero stay as they are.

_LOW_RES_PAD = {"reflect": "edge", "circular": "wrap", "zero": "constant"}
# _PHASE_TAPS[a, t, p]: weight of 3x3 tap p in 2x2 tap t of output phase a.
_PHASE_TAPS = np.array([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]], np.float32)


def upsample_conv(x: jax.Array, kernel: jax.Array, padding: str) -> jax.Array:
    """3x3 conv of `pad(upsample_nearest(x, 2), 1, padding)` (VALID): [B, H, W, C] -> [B, 2H, 2W, F].

    Computed as one 2x2 convolution of the 1-pixel padded small map to 4F
    channels (the four output phases), whose phase (a, b) is read at offset
    (a, b) and interleaved; values equal the direct form to float rounding.
    """
    if padding not in PADDING_MODES:
        raise ValueError(f"Unknown padding {padding!r}; choose from {PADDING_MODES}.")
    b, h, w, _ = x.shape
    f = kernel.shape[-1]
    taps = jnp.asarray(_PHASE_TAPS, kernel.dtype)
    phase_kernel = jnp.einsum("atp,buq,pqcf->tucabf", taps, taps, kernel)
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode=_LOW_RES_PAD[padding])
    # Zero padding 1 + crop instead of VALID: XLA:CPU's fast path (PERF_NOTES pitfall 1).
    # Through the engine: XLA's own kernel gradient of this 2x2 convolution took
    # ~100x longer (4 x 64^2 x 128 -> 64: 9.2 s vs 93 ms fwd + bwd, 2-core Xeon).
    z = conv2d(xp, phase_kernel.reshape(2, 2, -1, 4 * f), (1, 1), ((1, 1), (1, 1)))
    z = z.reshape(b, h + 3, w + 3, 2, 2, f)
    rows = [
        jnp.stack([z[:, 1 + a : 1 + a + h, 1 + c : 1 + c + w, a, c] for c in (0, 1)], axis=3)
        for a in (0, 1)
    ]
    return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, f)


# ----------------------------------------------------------------------------- conv engine
#
# XLA:CPU's weak spots (jax 0.10, YNNPACK fusions on): the kernel gradient, which
# it computes as a convolution over the batch and spatial axes (1.1-2.6x slower
# than one matrix product per kernel tap on every layer of the U-Net, the
# PatchGAN and the marker nets measured on the 2-core AMD EPYC: U-Net 4x4
# 128 -> 256 at 64^2, batch 8: 179 vs 88 ms; marker 3x3 72 -> 24 at 32^2,
# batch 16: 22 vs 14 ms), except for layers reading 3-4 channels (48^2 3 -> 16,
# batch 32: 1.9 vs 8.2 ms), and convolutions of small maps with many channels
# (a 4x4 stride-2 conv 512 -> 512 channels from 4x4 to 2x2: 49 ms for 0.03
# GFLOP). `conv2d` therefore computes small maps as one matrix product of the
# gathered patches (im2col: 4.5 ms in that case), layers on few input channels
# with XLA's convolution and its gradients, and all other layers with XLA's
# convolution for the forward pass and input gradient and the kernel gradient
# tap by tap. Whole steps, tap-wise against XLA's kernel gradients on layers of
# more than 16 channels: pix2pix 1.52 -> 1.35 s (batch 1), 10.8 -> 9.4 s
# (batch 8); the marker step ~6% (old and new checkouts alternated, medians
# 425 -> 401 ms; within this machine's drift in single runs).
#
# On a 2-core AMD EPYC with AVX-512 (old and new code alternated in one
# process; this machine's speed drifts by up to ~1.4x, so single figures
# mean little): 4x4 stride-2 layers as 2x2 convolutions over 2x2 pixel blocks
# run their forward pass at XLA:CPU's stride-1 speed (U-Net 4x4 64 -> 128 on
# 128^2, batch 1: fwd+bwd 33 -> 28 ms; 128 -> 256 on 64^2: 27 -> 26, forward
# 15 -> 10 ms; batch 8, 128 -> 256 from 128^2: fwd+bwd 572 -> 512 ms); the
# pix2pix step at batch 8 went 8.8 -> 7.8 s, batch 1 level (1.03 vs 1.01 s,
# 12 rounds). The same blocking of 3x3 stride-2 layers (16/9 the FLOPs) was
# slower on every layer measured and is not used; nor for 3-channel inputs
# (8.2 -> 12.4 ms). Winograd F(4x4, 3x3) with its own VJP (the input gradient
# is a Winograd convolution too, the kernel gradient tap by tap; autodiff
# through the transforms was 4-5x slower than the forward pass) on 3x3 layers
# of 128-256 channels: fwd+bwd 130 -> 105 ms (128 channels, 128^2, batch 1),
# 226 -> 172 ms (256 channels, 32^2, batch 8); Johnson's net at 512^2 622 ->
# 466 ms per image (its residual blocks).

IM2COL_MAX_POSITIONS = 512  # B * out_h * out_w up to which im2col is faster.
XLA_GRAD_MAX_IN_CHANNELS = 4  # Layers reading at most this many channels keep XLA's gradients.


def _xla_conv(x, kernel, strides, padding):
    return jax.lax.conv_general_dilated(
        x, kernel, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """(before, after) zero padding of one axis that `nn.Conv`'s 'SAME' applies."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


def conv2d(x: jax.Array, kernel: jax.Array, strides: tuple, padding: tuple) -> jax.Array:
    """Convolution [B, H, W, C] * [kh, kw, C, F] with explicit zero `padding` ((t, b), (l, r)).

    The values and gradients of `lax.conv_general_dilated`, computed the way
    XLA:CPU runs fastest for the layer (see the comment above).
    """
    kh, kw, c, f = kernel.shape
    out_h = (x.shape[1] + sum(padding[0]) - kh) // strides[0] + 1
    out_w = (x.shape[2] + sum(padding[1]) - kw) // strides[1] + 1
    if x.shape[0] * out_h * out_w <= IM2COL_MAX_POSITIONS:
        return _im2col_conv(x, kernel, strides, padding, (out_h, out_w))
    if _blocks_pay(kernel.shape, strides):
        return _blocked_conv(x, kernel, strides[0], padding, (out_h, out_w))
    if _winograd_applies((out_h, out_w, c), kernel.shape, strides, padding):
        return _winograd_conv(x, kernel, padding)
    if not any(padding[0]) and not any(padding[1]):  # VALID: XLA:CPU's slow path (pitfall 1).
        (sh, sw) = strides  # Zero padding of one stride: one more output per side, cropped.
        y = conv2d(x, kernel, strides, ((sh, sh), (sw, sw)))
        return y[:, 1 : 1 + out_h, 1 : 1 + out_w]
    if c <= XLA_GRAD_MAX_IN_CHANNELS:
        return _xla_conv(x, kernel, strides, padding)
    return _conv_tap_grad(x, kernel, strides, padding)


def _blocks_pay(kernel_shape, strides) -> bool:
    """Strided kernels whose sides the stride divides (4x4 stride 2), on more than 4 channels."""
    kh, kw, c, _ = kernel_shape
    s = strides[0]
    return s == strides[1] > 1 and kh % s == kw % s == 0 and c > XLA_GRAD_MAX_IN_CHANNELS


def _blocked_conv(x, kernel, s: int, padding, out_hw) -> jax.Array:
    """A stride-s convolution as a stride-1 one over s x s pixel blocks (space to depth).

    With kh = s * nb, output row i reads the padded input's rows s * i ..
    s * (i + nb) - 1: blocks i .. i + nb - 1. So it is an nb x nb convolution
    (`blocked_kernel`) of the blocks, stacked into s * s * C channels: the same
    values and FLOPs, at XLA:CPU's stride-1 speed.
    """
    (oh, ow), (kh, kw) = out_hw, kernel.shape[:2]
    rows, cols = s * oh + kh - s, s * ow + kw - s  # Padded input rows and columns read.
    (top, _), (left, _) = padding
    bottom, right = max(rows - top - x.shape[1], 0), max(cols - left - x.shape[2], 0)
    xp = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))[:, :rows, :cols]
    return conv2d(space_to_depth(xp, s), blocked_kernel(kernel, s), (1, 1), ((0, 0), (0, 0)))


def blocked_kernel(kernel: jax.Array, s: int) -> jax.Array:
    """[s * nh, s * nw, C, F] -> [nh, nw, s * s * C, F]: entry (a, b, (q, r, c)) holds tap (s * a + q, s * b + r)."""
    kh, kw, c, f = kernel.shape
    k = kernel.reshape(kh // s, s, kw // s, s, c, f)
    return k.transpose(0, 2, 1, 3, 4, 5).reshape(kh // s, kw // s, s * s * c, f)


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


def _im2col_conv(x, kernel, strides, padding, out_hw):
    """Convolution as patches [B, h, w, kh*kw*C] @ kernel [kh*kw*C, F] (autodiff gradients)."""
    kh, kw, c, f = kernel.shape
    cols = jnp.concatenate(_windows(x, kernel.shape, strides, padding, out_hw), axis=-1)
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


def _winograd_applies(out_hwc, kernel_shape, strides, padding) -> bool:
    return (
        kernel_shape[:2] == (3, 3)
        and strides == (1, 1)
        and max(max(padding[0]), max(padding[1])) <= 2
        and winograd_pays((1, *out_hwc), kernel_shape[-1], WINOGRAD_TILE)
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _winograd_conv(x, kernel, padding):
    """A 3x3 stride-1 convolution by Winograd in both passes, its kernel gradient tap by tap."""
    return _padded_winograd(x, kernel, padding)


def _padded_winograd(x, kernel, padding):
    xp = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
    return winograd_valid(xp, winograd_kernel(kernel, WINOGRAD_TILE))


def _winograd_conv_fwd(x, kernel, padding):
    return _padded_winograd(x, kernel, padding), (x, kernel)


def _winograd_conv_bwd(padding, residuals, g):
    # Autodiff through the transforms ran 4-5x slower than the forward pass; the
    # input gradient is itself a 3x3 convolution (flipped kernel, channels swapped).
    x, kernel = residuals
    back = tuple((2 - before, 2 - after) for before, after in padding)
    dx = _padded_winograd(g, kernel[::-1, ::-1].transpose(0, 1, 3, 2), back)
    return dx, kernel_grad(x, g, kernel.shape, (1, 1), padding)


_winograd_conv.defvjp(_winograd_conv_fwd, _winograd_conv_bwd)


def kernel_grad(x, g, shape, strides, padding) -> jax.Array:
    """d loss / d kernel [kh, kw, C, F] from input x [B, H, W, C] and output cotangent g [B, h, w, F]."""
    kh, kw, c, f = shape
    windows = _windows(x, shape, strides, padding, g.shape[1:3])
    # g as [F, positions], made once: left to XLA, every tap's product re-made
    # this transposed copy, with g's producers (norm backward, ...) fused into each.
    g_t = jax.lax.optimization_barrier(g.reshape(-1, f).T)
    taps = [jnp.dot(g_t, w.reshape(-1, c)) for w in windows]  # kh * kw x [F, C]
    return jnp.stack(taps).reshape(kh, kw, f, c).transpose(0, 1, 3, 2).astype(x.dtype)


class Conv(nn.Module):
    """A zero-padded convolution through `conv2d`; parameters named like `nn.Conv`'s.

    [B, H, W, C] -> [B, (H + 2p - k) / s + 1, (W + 2p - k) / s + 1, F] with
    'kernel' [k, k, C, F] and 'bias' [F]; padding='SAME' pads like `nn.Conv`'s
    default (output side ceil(H / s)), so it replaces `nn.Conv` in trained models.
    """

    features: int
    kernel_size: int = 3
    strides: int = 1
    padding: int | str = 1
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, s, p = self.kernel_size, self.strides, self.padding
        kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features))
        if p == "SAME":
            padding = tuple(same_padding(side, k, s) for side in x.shape[1:3])
        else:
            padding = ((p, p), (p, p))
        y = conv2d(x, kernel, (s, s), padding)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y


# ----------------------------------------------------------------------------- transposed conv

# Output phase a (row 2m + a) reads inputs (m - 1, m) for a = 0 and (m, m + 1)
# for a = 1: each phase is a 2x2 convolution with this zero padding (top, bottom).
_PHASE_PAD = {0: (1, 0), 1: (0, 1)}


class PhaseConvTranspose(nn.Module):
    """PyTorch's `ConvTranspose2d(k=4, stride=2, padding=1)`: [B, H, W, Cin] -> [B, 2H, 2W, F].

    Computed as four stride-1 2x2 convolutions, one per output phase, whose
    results are interleaved (sub-pixel form): the same FLOPs, but its weight
    gradient avoids XLA:CPU's slow transposed-convolution path (PERF_NOTES
    pitfall 2); each phase goes through `conv2d`.

    The parameter 'phase_kernel' [2, 2, 2, 2, Cin, F] holds, at [a, b], the 2x2
    kernel of output phase (a, b) (rows 2m + a, columns 2n + b):
    `phase_kernel[a, b, t, u] = kernel[3 - a - 2t, 3 - b - 2u]` of the usual 4x4
    kernel, whose kernel[i, j, c, f] equals torch's weight[c, f, i, j]
    (`to_standard_kernel`). Stored this way, each phase's kernel is a contiguous
    block: slicing the 4x4 kernel per phase (a strided reverse) and its transpose
    in the backward pass cost ~400 ms of a 1.8 s U-Net256 train step on XLA:CPU.
    `kernel_init` sees the 6-D shape, whose fan-in (16 * Cin) is the 4x4 kernel's.
    """

    features: int
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (2, 2, 2, 2, x.shape[-1], self.features)
        kernel = self.param("phase_kernel", self.kernel_init, shape)
        # Split, not indexed: the gradient of a split is one concatenation, that
        # of four index slices four zero-padded full-size copies summed (~15 ms
        # per 1024 -> 512 layer of the U-Net's train step on the 2-core CPU).
        kernels = jnp.split(kernel.reshape(4, *shape[2:]), 4)
        phase = lambda a, b: conv2d(
            x, kernels[2 * a + b][0], (1, 1), (_PHASE_PAD[a], _PHASE_PAD[b])
        )
        rows = [jnp.stack([phase(a, b) for b in (0, 1)], axis=3) for a in (0, 1)]
        y = jnp.stack(rows, axis=2)  # [B, H, 2, W, 2, F]
        b, h, _, w, _, f = y.shape
        y = y.reshape(b, 2 * h, 2 * w, f)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y


def to_standard_kernel(phase_kernel) -> jax.Array:
    """'phase_kernel' [2, 2, 2, 2, C, F] -> the 4x4 transposed-conv kernel [4, 4, C, F].

    kernel[i, j, c, f] equals torch `ConvTranspose2d`'s weight[c, f, i, j].
    """
    k = jnp.asarray(phase_kernel)  # [a, b, t, u, C, F]; row i = 3 - a - 2t.
    k = k.transpose(2, 0, 3, 1, 4, 5).reshape(4, 4, *k.shape[4:])  # [2t + a, 2u + b]
    return k[::-1, ::-1]


# ----------------------------------------------------------------------------- winograd
#
# Stride-1 3x3 SAME convolutions as Winograd F(m x m, 3 x 3) (Lavin & Gray 2016):
# overlapping (m + 2)^2 input tiles, transformed by B^T d B, multiplied channel-wise
# by the transformed kernel G g G^T ((m + 2)^2 matrix products [tiles, C] x [C, F]),
# then A^T M A gives m x m outputs per tile: 2.25x (m = 2) or 4x (m = 4) fewer
# multiplications than the direct convolution. The transforms are strided slices
# and adds kept as separate arrays, one matrix product each: stacking them (a
# concatenate, and one batched product) ran up to 1.6x slower on XLA:CPU.
# Measured against `lax.conv_general_dilated` on the VGG19 layers at 256^2 and
# 512^2 (batch 1, 2 busy cores, forward and input-gradient shapes, kernels
# transformed beforehand), m = 4: 2.0-2.8x faster on 512-channel layers on 32^2-64^2
# maps (1.3x on 16^2), 1.4-2.4x on 256 channels, 1.1-1.3x on 128 channels with
# maps up to 128^2; a tie at 128 channels on 256^2, 0.15-0.9x with 64 or 3 channels
# (memory-bound transforms). m = 2: 1.3-2.1x where it pays (`WINOGRAD_LIMITS`).
# Relative error: ~1e-6 for m = 2 (as the direct convolution), 1-2e-5 for m = 4.

# B^T [a, a], G [a, 3] and A^T [m, a] per tile size m, a = m + 2.
WINOGRAD_MATRICES = {
    2: (
        ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
        ((1, 0, 0), (1 / 2, 1 / 2, 1 / 2), (1 / 2, -1 / 2, 1 / 2), (0, 0, 1)),
        ((1, 1, 1, 0), (0, 1, -1, -1)),
    ),
    4: (
        (
            (4, 0, -5, 0, 1, 0),
            (0, -4, -4, 1, 1, 0),
            (0, 4, -4, -1, 1, 0),
            (0, -2, -1, 2, 1, 0),
            (0, 2, -1, -2, 1, 0),
            (0, 4, 0, -5, 0, 1),
        ),
        (
            (1 / 4, 0, 0),
            (-1 / 6, -1 / 6, -1 / 6),
            (-1 / 6, 1 / 6, -1 / 6),
            (1 / 24, 1 / 12, 1 / 6),
            (1 / 24, -1 / 12, 1 / 6),
            (0, 0, 1),
        ),
        ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1)),
    ),
}
WINOGRAD_TILE = 4  # The tile `conv2d` uses where `winograd_pays`.
WINOGRAD_MIN_CHANNELS = 128  # Both channel counts at least this.
# Per tile size: (most pixels H * W per channel of the smaller count, least larger count).
WINOGRAD_LIMITS = {2: (64, 256), 4: (128, 128)}


def winograd_pays(shape, features: int, tile: int) -> bool:
    """Whether `winograd_conv` with `tile` beats XLA for a 3x3 SAME conv of [B, H, W, C] -> F."""
    narrow, wide = sorted((shape[-1], features))
    pixels_per_channel, min_wide = WINOGRAD_LIMITS[tile]
    return (
        narrow >= WINOGRAD_MIN_CHANNELS
        and wide >= min_wide
        and shape[1] * shape[2] <= pixels_per_channel * narrow
    )


def winograd_tile(u: tuple[jax.Array, ...]) -> int:
    """The tile size m of a `winograd_kernel` result: (m + 2)^2 matrices."""
    return {16: 2, 36: 4}[len(u)]


def _combine(coefficients, parts: list) -> jax.Array:
    """sum_k coefficients[k] * parts[k], skipping zero terms."""
    terms = [
        p if c == 1 else -p if c == -1 else p * c
        for c, p in zip(coefficients, parts, strict=True)
        if c
    ]
    return functools.reduce(lambda a, b: a + b, terms)


def winograd_kernel(kernel: jax.Array, tile: int) -> tuple[jax.Array, ...]:
    """[3, 3, C, F] -> G kernel G^T: (tile + 2)^2 matrices [C, F], row-major over the tile.

    Separate arrays, not one stacked array: slicing that inside jit copies it (a
    512 -> 512 channel conv on a 16^2 map took 1.5x as long).
    """
    _, g, _ = WINOGRAD_MATRICES[tile]
    rows = [_combine(gr, [kernel[i] for i in range(3)]) for gr in g]  # [3, C, F] each
    return tuple(_combine(gs, [r[j] for j in range(3)]) for r in rows for gs in g)


def winograd_conv(x: jax.Array, u: tuple[jax.Array, ...]) -> jax.Array:
    """3x3 SAME conv of x [B, H, W, C] with u = `winograd_kernel(kernel, m)` -> [B, H, W, F]."""
    return winograd_valid(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), u)


def winograd_valid(z: jax.Array, u: tuple[jax.Array, ...]) -> jax.Array:
    """Unpadded 3x3 conv of z [B, H + 2, W + 2, C] with u = `winograd_kernel(kernel, m)` -> [B, H, W, F]."""
    m = winograd_tile(u)
    bt, _, at = WINOGRAD_MATRICES[m]
    b, h, w, c = z.shape[0], z.shape[1] - 2, z.shape[2] - 2, z.shape[3]
    th, tw = -(-h // m), -(-w // m)  # Tiles; the last ones may overhang and are cropped.
    z = jnp.pad(z, ((0, 0), (0, m * th - h), (0, m * tw - w), (0, 0)))
    rows = [_combine(r, _tile_slices(z, m, th, axis=1)) for r in bt]  # B^T d
    v = [_combine(s, _tile_slices(r, m, tw, axis=2)) for r in rows for s in bt]  # ... B
    prods = [jnp.dot(vi.reshape(-1, c), u[i]).reshape(b, th, tw, -1) for i, vi in enumerate(v)]
    a = m + 2
    y = [[_combine(ai, prods[s::a]) for s in range(a)] for ai in at]  # A^T M
    y = jnp.stack([jnp.stack([_combine(aj, yi) for aj in at], axis=3) for yi in y], axis=2)
    return y.reshape(b, m * th, m * tw, -1)[:, :h, :w]  # ... A, tiles to pixels


def _tile_slices(x: jax.Array, m: int, tiles: int, axis: int) -> list[jax.Array]:
    """Element k of every tile along `axis`: the slices x[m * t + k] for t < tiles, k < m + 2."""
    return [jax.lax.slice_in_dim(x, k, k + m * (tiles - 1) + 1, m, axis) for k in range(m + 2)]


def winograd_conv3x3(x: jax.Array, kernel: jax.Array, tile: int = 2) -> jax.Array:
    """3x3 stride-1 SAME conv [B, H, W, C] * [3, 3, C, F] by Winograd F(tile x tile, 3 x 3).

    Equals `lax.conv_general_dilated` to float32 rounding (tile 2) or ~1e-5 relative
    error (tile 4); any H, W. For frozen kernels, transform once with
    `winograd_kernel` and call `winograd_conv`.
    """
    return winograd_conv(x, winograd_kernel(kernel, tile))
