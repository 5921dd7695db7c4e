"""Building blocks shared by the generators and discriminators.

- `PaddedConv`: reflection / circular / zero padded convolution, written so that
  XLA:CPU takes its fast padded-convolution path (PERF_NOTES pitfall 1).
- `InstanceNorm` and `ConditionalInstanceNorm`: per-image feature normalisation,
  whose statistics can be captured and fed back in (collection `norm_stats`),
  which is what makes tiled inference seam-free (`neural_synth/ops/tiled.py`).
- `PhaseConvTranspose`: a 4x4 stride-2 transposed convolution computed as four
  2x2 sub-pixel convolutions (PERF_NOTES pitfall 2), PyTorch-compatible.
- `ResidualBlock` and `upsample_nearest` (resize-convolution upsampling).

References: Ulyanov, Vedaldi & Lempitsky, "Instance Normalization: The Missing
Ingredient for Fast Stylization", 2016; Dumoulin, Shlens & Kudlur, "A Learned
Representation for Artistic Style", ICLR 2017 (conditional instance norm);
Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016.
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

PADDING_MODES = ("reflect", "circular", "zero")
NORM_STATS = "norm_stats"  # Variable collection holding captured normalisation statistics.


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
    """Nearest-neighbour upsampling [B, H, W, C] -> [B, fH, fW, C]."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


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

    Output size: ceil(H / strides) for odd kernels (H for stride 1). Reflect and
    circular padding are followed by a convolution that adds `strides` zero
    pixels per side itself, and the one extra output per side is cropped: the
    same result as an unpadded (VALID) convolution, which XLA:CPU runs 1.7-40x
    slower (PERF_NOTES pitfall 1).

    Parameters are named like `nn.Conv`'s ('kernel' [k, k, Cin, Cout], 'bias').
    """

    features: int
    kernel_size: int = 3
    strides: int = 1
    padding: str = "reflect"
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, s, p = self.kernel_size, self.strides, self.kernel_size // 2
        conv = nn.Conv(
            self.features,
            (k, k),
            strides=(s, s),
            padding="SAME" if self.padding == "zero" else ((s, s), (s, s)),
            use_bias=self.use_bias,
            kernel_init=self.kernel_init,
        )
        if self.padding == "zero":
            if k % 2 == 0:
                raise ValueError("Zero-padded PaddedConv needs an odd kernel size.")
            return conv(x)
        x = pad(x, p, self.padding)
        out_h, out_w = ((n - k) // s + 1 for n in x.shape[1:3])  # What VALID would give.
        return conv(x)[:, 1 : 1 + out_h, 1 : 1 + out_w]


def moments(x: jax.Array, eps: float) -> tuple[jax.Array, jax.Array]:
    """Per-image, per-channel mean and 1/std over H, W of [B, H, W, C]: [B, 1, 1, C] each."""
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=(1, 2), keepdims=True)
    return mean, jax.lax.rsqrt(var + eps)


class _Normalize(nn.Module):
    """(x - mean) / std with per-image statistics, or with captured ones.

    Statistics come from, in order: the `norm_stats` collection if it holds this
    layer's entry (tiled inference feeds statistics of a whole image here); else
    the input itself, stored into `norm_stats` when that collection is mutable
    in `apply` (capture mode; `init` never stores statistics).
    """

    eps: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.has_variable(NORM_STATS, "mean"):
            mean = self.get_variable(NORM_STATS, "mean")
            inv_std = self.get_variable(NORM_STATS, "inv_std")
        else:
            mean, inv_std = moments(x, self.eps)
            if self.is_mutable_collection(NORM_STATS) and not self.is_initializing():
                self.put_variable(NORM_STATS, "mean", mean)
                self.put_variable(NORM_STATS, "inv_std", inv_std)
        return (x - mean) * inv_std


class InstanceNorm(nn.Module):
    """Instance normalisation with a learned per-channel scale and bias."""

    eps: float = 1e-5
    affine: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = _Normalize(self.eps, name="normalize")(x)
        if not self.affine:
            return y
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        return y * scale + bias


class ConditionalInstanceNorm(nn.Module):
    """Instance normalisation whose scale and bias are chosen by style weights.

    One (scale, bias) pair per style; `style_weights` [B, num_styles] mixes them
    (one-hot: one style; convex weights: a blend of styles), so one network holds
    `num_styles` styles.
    """

    num_styles: int
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array, style_weights: jax.Array) -> jax.Array:
        if style_weights.shape != (x.shape[0], self.num_styles):
            raise ValueError(
                f"style_weights must be [batch, {self.num_styles}], got {style_weights.shape}."
            )
        c = x.shape[-1]
        scales = self.param("scale", nn.initializers.ones, (self.num_styles, c))
        biases = self.param("bias", nn.initializers.zeros, (self.num_styles, c))
        scale = (style_weights @ scales)[:, None, None, :]  # [B, 1, 1, C]
        bias = (style_weights @ biases)[:, None, None, :]
        return _Normalize(self.eps, name="normalize")(x) * scale + bias


class PhaseConvTranspose(nn.Module):
    """PyTorch's `ConvTranspose2d(k=4, stride=2, padding=1)`: [B, H, W, Cin] -> [B, 2H, 2W, F].

    Computed as four stride-1 2x2 convolutions, one per output phase, whose
    results are interleaved (sub-pixel form): the same FLOPs, but its weight
    gradient avoids XLA:CPU's slow transposed-convolution path (PERF_NOTES
    pitfall 2). 'kernel' is [4, 4, Cin, F] with kernel[i, j, c, f] equal to
    torch's weight[c, f, i, j].
    """

    features: int
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features))
        rows = [
            jnp.stack([_phase_conv(x, kernel, a, b) for b in (0, 1)], axis=3) for a in (0, 1)
        ]  # 2 x [B, H, W, 2, F]
        y = jnp.stack(rows, axis=2)  # [B, H, 2, W, 2, F]
        b, h, _, w, _, f = y.shape
        y = y.reshape(b, 2 * h, 2 * w, f)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y


# Output phase a (row 2m + a) reads inputs (m - 1, m) for a = 0 and (m, m + 1)
# for a = 1, through these taps of the 4-tap transposed kernel, in that order.
_PHASE_TAPS = {0: (3, 1), 1: (2, 0)}
_PHASE_PAD = {0: (1, 0), 1: (0, 1)}


def _phase_conv(x: jax.Array, kernel: jax.Array, a: int, b: int) -> jax.Array:
    """The output phase (a, b) of the 4x4 stride-2 transposed conv: [B, H, W, F]."""
    k = kernel[jnp.array(_PHASE_TAPS[a])][:, jnp.array(_PHASE_TAPS[b])]  # [2, 2, Cin, F]
    return jax.lax.conv_general_dilated(
        x,
        k.astype(x.dtype),
        window_strides=(1, 1),
        padding=(_PHASE_PAD[a], _PHASE_PAD[b]),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )


class ResidualBlock(nn.Module):
    """x + norm(conv(relu(norm(conv(x))))) with 3x3 padded convolutions.

    `norm_fn(name)` returns the normalisation module for the two norms (so the
    caller picks instance, conditional instance or batch norm); the block's
    __call__ forwards extra positional arguments (e.g. style weights) to them.
    """

    features: int
    norm_fn: Callable[[str], nn.Module]
    padding: str = "reflect"

    @nn.compact
    def __call__(self, x: jax.Array, *norm_args) -> jax.Array:
        y = PaddedConv(self.features, 3, padding=self.padding, name="conv1")(x)
        y = nn.relu(self.norm_fn("norm1")(y, *norm_args))
        y = PaddedConv(self.features, 3, padding=self.padding, name="conv2")(y)
        return x + self.norm_fn("norm2")(y, *norm_args)
