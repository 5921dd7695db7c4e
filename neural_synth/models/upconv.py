"""The up-convolutional generator of "Learning to Generate Chairs": identity + view -> image, mask.

An identity vector (one-hot over the training objects, or any mix of them:
interpolating between two one-hots morphs one object into the other) and a
view vector (sin/cos of azimuth and elevation) go through fully connected
layers, are reshaped into a small feature map, and blocks of 2x2 unpooling
(each value to the top-left cell of its 2x2 block, zeros elsewhere: `unpool`)
plus convolutions grow it to the image size. Two heads give the RGB image (in
[0, 1]) and the mask logits.

`upsample='resize'` swaps unpooling for nearest-neighbour resizing
(`layers.upsample_nearest`), the checkerboard-free resize-convolution.

References: Dosovitskiy, Springenberg & Brox, "Learning to Generate Chairs
with Convolutional Neural Networks", CVPR 2015 (and the PAMI 2017 version,
"Learning to Generate Chairs, Tables and Cars with Convolutional Networks").
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from neural_synth.models import conv, layers

UPSAMPLERS = ("unpool", "resize")


def unpool(x: jax.Array, factor: int = 2) -> jax.Array:
    """Zero unpooling [B, H, W, C] -> [B, fH, fW, C]: x[b, i, j] goes to [b, f*i, f*j].

    Every other cell of each f x f block is zero (the paper's unpooling
    without switches); the gradient is the input gradient subsampled at the
    top-left cells.
    """
    b, h, w, c = x.shape
    widths = ((0, 0), (0, 0), (0, factor - 1), (0, 0), (0, factor - 1), (0, 0))
    return jnp.pad(x[:, :, None, :, None, :], widths).reshape(b, h * factor, w * factor, c)


def _phase_taps(phase: int, size: int) -> tuple[int, tuple[int, int]]:
    """(first kernel tap, zero padding (low, high)) of output phase 0/1 of `UnpoolConv`.

    Output row 2m + a reads unpooled row 2m + a + u - p (p = size // 2), which
    is nonzero only for even rows: taps u = u0, u0 + 2, ... reading input rows
    m + (a + u0 - p) / 2 + t.
    """
    pad = size // 2
    first = (pad - phase) % 2
    num = len(range(first, size, 2))
    offset = (phase + first - pad) // 2
    return first, (-offset, num - 1 + offset)


MERGED_MAX_FEATURES = 16  # UnpoolConv with at most this many outputs runs as one convolution.


class UnpoolConv(nn.Module):
    """`conv(unpool(x))`: 2x zero unpooling, then a k x k convolution (zero padding k // 2 before).

    [B, H, W, C] -> [B, 2H, 2W, F]. Three quarters of the unpooled map are
    zeros, so only the kernel taps that meet nonzero inputs are computed: for
    each output phase (row and column parity) a stride-1 convolution of x
    with those taps (3x3, 3x2, 2x3 and 2x2 of a 5x5 kernel), interleaved
    (sub-pixel form, as `conv.PhaseConvTranspose`). Layers with at most
    MERGED_MAX_FEATURES outputs run the four phases as one convolution with
    4F outputs (zero taps where a phase has none) and a depth-to-space:
    XLA:CPU runs one wide convolution much faster than four with few
    channels (measured 2.5x for 32 -> 4 channels at 32 -> 64 px, 1.4x for
    32 -> 16; the split form wins 2-3x from 64 channels up). Either way the
    values equal the literal form's; 'kernel' [k, k, C, F] is its kernel.
    """

    features: int
    kernel_size: int = 5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, c, f = self.kernel_size, x.shape[-1], self.features
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, c, f))
        taps = [_phase_taps(a, k) for a in (0, 1)]
        if f <= MERGED_MAX_FEATURES:
            y = _merged_phases(x, kernel, taps)
        else:
            rows = [[_phase(x, kernel, taps[a], taps[b]) for b in (0, 1)] for a in (0, 1)]
            y = jnp.stack([jnp.stack(r, axis=3) for r in rows], axis=2)  # [B, H, 2, W, 2, F]
        b, h, _, w, _, _ = y.shape
        return y.reshape(b, 2 * h, 2 * w, f) + self.param("bias", nn.initializers.zeros, (f,))


def _phase(x, kernel, rows, cols):
    """One output phase: x convolved with the kernel taps (first, padding) of `rows` and `cols`."""
    (first_r, pad_r), (first_c, pad_c) = rows, cols
    return conv.conv2d(x, kernel[first_r::2, first_c::2], (1, 1), (pad_r, pad_c))


def _merged_phases(x, kernel, taps):
    """The four phases as one convolution [B, H, W, C] -> [B, H, 2, W, 2, F]."""
    k, c, f = kernel.shape[0], kernel.shape[2], kernel.shape[3]
    low = max(pad[0] for _, pad in taps)  # Reads input offsets -low .. size - 1 - low.
    size = low + max(len(range(first, k, 2)) - pad[0] for first, pad in taps)
    merged = jnp.zeros((size, size, c, 2, 2, f), kernel.dtype)
    for a, (fa, pa) in enumerate(taps):
        for b, (fb, pb) in enumerate(taps):
            part = kernel[fa::2, fb::2]
            r, s = low - pa[0], low - pb[0]
            merged = merged.at[r : r + part.shape[0], s : s + part.shape[1], :, a, b].set(part)
    pad = (low, size - 1 - low)
    y = conv.conv2d(x, merged.reshape(size, size, c, 4 * f), (1, 1), (pad, pad))
    b, h, w, _ = y.shape
    return y.reshape(b, h, w, 2, 2, f).transpose(0, 1, 3, 2, 4, 5)


def view_vector(azimuth_deg: jax.Array, elevation_deg: jax.Array) -> jax.Array:
    """[B] azimuths and elevations in degrees -> the generator's view input [B, 4].

    (sin, cos) of each angle, so azimuth 0 and 360 are the same input.
    """
    a, e = jnp.deg2rad(azimuth_deg), jnp.deg2rad(elevation_deg)
    return jnp.stack([jnp.sin(a), jnp.cos(a), jnp.sin(e), jnp.cos(e)], -1).astype(jnp.float32)


def num_levels(image_size: int, base_size: int) -> int:
    """The number of 2x up-convolution blocks from `base_size` to `image_size` (a clear error)."""
    levels = math.log2(image_size / base_size) if image_size > 0 and base_size > 0 else -1
    if levels < 1 or levels != int(levels):
        raise ValueError(
            f"image_size must be base_size * 2^k with k >= 1, got image_size={image_size}, "
            f"base_size={base_size}; e.g. image_size={base_size * 16}."
        )
    return int(levels)


class UpconvGenerator(nn.Module):
    """(identity [B, I], view [B, 4]) -> (rgb [B, S, S, 3] in [0, 1], mask logits [B, S, S, 1]).

    Attributes:
      image_size: output side S = base_size * 2^k.
      base_size: side of the map the fully connected layers are reshaped into.
      width: channels of that map; halved per level down to `min_width`.
      hidden: units of the fully connected layers.
      kernel_size: of the convolution after each upsampling (5 in the paper).
      upsample: 'unpool' (zeros, the paper) or 'resize' (nearest neighbour).
    """

    image_size: int = 64
    base_size: int = 4
    width: int = 256
    min_width: int = 32
    hidden: int = 512
    kernel_size: int = 5
    upsample: str = "unpool"

    @nn.compact
    def __call__(self, identity: jax.Array, view: jax.Array) -> tuple[jax.Array, jax.Array]:
        if self.upsample not in UPSAMPLERS:
            raise ValueError(f"Unknown upsample {self.upsample!r}; choose from {UPSAMPLERS}.")
        levels, act = num_levels(self.image_size, self.base_size), nn.leaky_relu
        # Unit-variance rows, as an embedding table: with fan-in scaling a one-hot
        # would give the identity ~1/sqrt(I) the signal of the view.
        embed_init = nn.initializers.normal(1.0)
        c = act(nn.Dense(self.hidden, kernel_init=embed_init, name="identity_fc")(identity))
        v = act(nn.Dense(self.hidden // 2, name="view_fc")(view))
        x = act(nn.Dense(self.hidden, name="joint_fc")(jnp.concatenate([c, v], -1)))
        x = act(nn.Dense(self.base_size**2 * self.width, name="map_fc")(x))
        x = x.reshape(-1, self.base_size, self.base_size, self.width)
        k = self.kernel_size
        for i in range(levels - 1):
            features = max(self.width >> (i + 1), self.min_width)
            x = act(self._grow(x, features, k, f"up{i}"))
            x = act(conv.Conv(features, 3, padding=1, name=f"conv{i}")(x))
        out = self._grow(x, 4, k, "out")  # [B, S, S, 4]: the RGB head and the mask head
        return nn.sigmoid(out[..., :3]), out[..., 3:]

    def _grow(self, x: jax.Array, features: int, k: int, name: str) -> jax.Array:
        """2x up-convolution: zero unpooling (or resizing) and a k x k convolution."""
        if self.upsample == "unpool":
            return UnpoolConv(features, k, name=name)(x)
        return conv.Conv(features, k, padding=k // 2, name=name)(layers.upsample_nearest(x))
