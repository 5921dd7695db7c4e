"""DeepWarp: gaze redirection by a predicted warp field, bilinear sampling and lightness correction.

`DeepWarp` maps an eye image [B, H, W, 3] in [0, 1], its landmarks [B, K, 2]
and the desired change of gaze [B, 2] (yaw, pitch in degrees) to the eye
looking the new way:

1. The angle is embedded by a small MLP and tiled over the image; each of the
   K landmarks becomes a pair of coordinate maps (x and y offset of every
   pixel from the landmark, `landmark_maps`). Both are input channels.
2. Coarse stage (`coarse_to_fine=True`): convolutions at half resolution
   predict a flow, upsampled to full resolution.
3. Fine stage: convolutions at full resolution see the image, the maps, the
   angle, the coarse flow and the image warped by it, and predict a residual
   flow (and the lightness logits). Without the coarse stage they see the
   image, maps and angle only (the single-scale ablation).
4. The image is warped by the flow with the bilinear sampler of a spatial
   transformer (`neural_synth/ops/sampler.py`): output pixel p reads the
   input at p + flow(p).
5. Lightness correction (`lightness=True`): per-pixel softmax weights over
   {the warped pixel, K learned palette colours} mix them (`mix_palette`), so
   the network can brighten or darken what no warp explains (light from
   above: looking up lights the iris; highlights stay put).

Flows are in full-resolution pixels; the flow and lightness heads start at
zero, so an untrained network returns (nearly: the palette's initial share is
`exp(PALETTE_OFFSET)` per colour) its input.

References: Ganin, Kononenko, Sungatullina & Lempitsky, "DeepWarp:
Photorealistic Image Resynthesis for Gaze Manipulation", ECCV 2016;
Jaderberg et al., "Spatial Transformer Networks", NeurIPS 2015.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from neural_synth.models import conv, layers
from neural_synth.ops import sampler

ANGLE_SCALE = 15.0  # Degrees per network unit of the angle input.
LANDMARK_SCALE = 20.0  # Pixels per unit of the landmark maps.
# Added to the palette logits: each colour starts at ~4.5% weight. At -6 (0.25%)
# Adam needed most of a 1000-step default run to move the logits far enough for
# the correction to act: held-out MSE 0.00046, against 0.00039 at -3 and 0.00047
# without the correction (benchmarks/RESULTS.md).
PALETTE_OFFSET = -3.0


def landmark_maps(landmarks: jax.Array, positions: jax.Array) -> jax.Array:
    """Per-landmark coordinate maps [B, h, w, 2K]: (position - landmark) / LANDMARK_SCALE.

    Args:
      landmarks: [B, K, 2] (x, y) in full-resolution pixels.
      positions: [h, w, 2] full-resolution (x, y) of each map cell.

    Channel 2k is the x offset from landmark k, channel 2k + 1 the y offset.
    """
    offsets = positions[None, :, :, None, :] - landmarks[:, None, None, :, :]  # [B, h, w, K, 2]
    b, h, w, k, _ = offsets.shape
    return offsets.reshape(b, h, w, 2 * k) / LANDMARK_SCALE


def warp_with_flow(images: jax.Array, flow: jax.Array) -> jax.Array:
    """Backward warp: output pixel p = input at p + flow(p) (bilinear, border replicated).

    images [B, H, W, C], flow [B, H, W, 2] (dx, dy) in pixels.
    """
    grid = sampler.pixel_grid(images.shape[1:3])
    return sampler.bilinear_sample(images, grid + flow)


def mix_palette(warped: jax.Array, weights: jax.Array, palette: jax.Array) -> jax.Array:
    """Lightness correction: warped * (1 - sum_k w_k) + sum_k w_k palette_k.

    warped [B, H, W, 3], weights [B, H, W, K] (non-negative, summing to at most
    1), palette [K, 3]. Zero weights return `warped` exactly.
    """
    keep = 1.0 - jnp.sum(weights, axis=-1, keepdims=True)
    return warped * keep + jnp.einsum("bhwk,kc->bhwc", weights, palette)


def half_resolution(images: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, ceil(H/2), ceil(W/2), C]: means of 2x2 blocks (edge padded)."""
    b, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return padded.reshape(b, (h + 1) // 2, 2, (w + 1) // 2, 2, c).mean(axis=(2, 4))


def half_resolution_positions(size: tuple[int, int]) -> jax.Array:
    """Full-resolution (x, y) [h, w, 2] of the cell centres of `half_resolution`'s output."""
    h, w = (size[0] + 1) // 2, (size[1] + 1) // 2
    return 2.0 * sampler.pixel_grid((h, w)) + 0.5


def upsample_flow(flow: jax.Array, size: tuple[int, int]) -> jax.Array:
    """A half-resolution field [B, h, w, 2] bilinearly resampled at full-resolution pixels."""
    coords = (sampler.pixel_grid(size) - 0.5) / 2.0
    return sampler.bilinear_sample(flow, jnp.broadcast_to(coords, (flow.shape[0], *coords.shape)))


class AngleEmbedding(nn.Module):
    """Gaze change [B, 2] (degrees) -> features [B, F] (two dense layers)."""

    features: int = 16

    @nn.compact
    def __call__(self, angles: jax.Array) -> jax.Array:
        x = nn.relu(nn.Dense(self.features, name="dense1")(angles / ANGLE_SCALE))
        return nn.relu(nn.Dense(self.features, name="dense2")(x))


def _tile(features: jax.Array, size: tuple[int, int]) -> jax.Array:
    """[B, F] -> [B, h, w, F]."""
    return jnp.broadcast_to(
        features[:, None, None, :], (features.shape[0], *size, features.shape[1])
    )


class WarpStage(nn.Module):
    """`depth` ReLU convolutions of `width` channels, then a zero-initialised 1x1 head.

    The head is 1x1: a 3x3 convolution to 2-4 channels at 41 x 51 x batch 32
    took 17-73 ms forward + backward on XLA:CPU (by path) against 7 ms.
    """

    width: int
    depth: int
    out_features: int
    kernel_size: int = 3

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        for i in range(self.depth):
            x = nn.relu(conv.Conv(self.width, k, padding=k // 2, name=f"conv{i + 1}")(x))
        head = conv.Conv(
            self.out_features, 1, padding=0, kernel_init=nn.initializers.zeros, name="head"
        )
        return head(x)


def check_inputs(images, landmarks, angles) -> None:
    """Raises a ValueError naming the expected shapes unless the three inputs fit together."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be [B, H, W, 3], got shape {tuple(images.shape)}.")
    batch = images.shape[0]
    if landmarks.ndim != 3 or landmarks.shape[0] != batch or landmarks.shape[-1] != 2:
        raise ValueError(
            f"landmarks must be [B, K, 2] (x, y) with B={batch}, got shape {tuple(landmarks.shape)}."
        )
    if angles.shape != (batch, 2):
        raise ValueError(
            f"angles must be [B, 2] (yaw, pitch change) with B={batch}, got shape "
            f"{tuple(angles.shape)}."
        )


class DeepWarp(nn.Module):
    """Eye image, landmarks, gaze change -> (redirected image [B, H, W, 3], extras).

    Attributes:
      width, depth: channels and layers of the fine (full-resolution) stage.
      coarse_width, coarse_depth: the same for the half-resolution stage.
      embed_features: size of the angle embedding.
      kernel_size: of the stages' convolutions.
      coarse_to_fine: predict a coarse flow at half resolution first.
      lightness: apply the lightness correction module.
      num_palette: K learned palette colours (initially evenly spaced grays from
        white to black; white alone for K = 1, as the paper's).
    """

    width: int = 32
    depth: int = 4
    coarse_width: int = 32
    coarse_depth: int = 4
    embed_features: int = 16
    kernel_size: int = 3
    coarse_to_fine: bool = True
    lightness: bool = True
    num_palette: int = 2

    @nn.compact
    def __call__(self, images: jax.Array, landmarks: jax.Array, angles: jax.Array):
        """Returns (output, {"flow", "warped", "weights" ([B, H, W, K], or None)})."""
        check_inputs(images, landmarks, angles)
        size = images.shape[1:3]
        angle = AngleEmbedding(self.embed_features, name="angle")(angles)
        inputs = [
            layers.to_signed(images),
            landmark_maps(landmarks, sampler.pixel_grid(size)),
            _tile(angle, size),
        ]
        flow = jnp.zeros((*images.shape[:3], 2), images.dtype)
        if self.coarse_to_fine:
            flow = upsample_flow(self._coarse_flow(images, landmarks, angle), size)
            inputs += [layers.to_signed(warp_with_flow(images, flow)), flow / LANDMARK_SCALE]
        num_out = 2 + (self.num_palette if self.lightness else 0)
        fine = WarpStage(self.width, self.depth, num_out, self.kernel_size, name="fine")(
            jnp.concatenate(inputs, axis=-1)
        )
        flow = flow + fine[..., :2]
        warped = warp_with_flow(images, flow)
        if not self.lightness:
            return warped, {"flow": flow, "warped": warped, "weights": None}
        weights = self._palette_weights(fine[..., 2:])
        output = mix_palette(warped, weights, self._palette())
        return output, {"flow": flow, "warped": warped, "weights": weights}

    def _coarse_flow(self, images, landmarks, angle) -> jax.Array:
        small = half_resolution(images)
        size = small.shape[1:3]
        maps = landmark_maps(landmarks, half_resolution_positions(images.shape[1:3]))
        x = jnp.concatenate([layers.to_signed(small), maps, _tile(angle, size)], axis=-1)
        stage = WarpStage(self.coarse_width, self.coarse_depth, 2, self.kernel_size, name="coarse")
        return stage(x)

    def _palette(self) -> jax.Array:
        grays = lambda key, shape: jnp.repeat(jnp.linspace(1.0, 0.0, shape[0])[:, None], 3, 1)
        return self.param("palette", grays, (self.num_palette, 3))

    @staticmethod
    def _palette_weights(logits: jax.Array) -> jax.Array:
        """Softmax over {warped pixel (logit 0), palette colours}, palette part [B, H, W, K]."""
        logits = jnp.concatenate([jnp.zeros_like(logits[..., :1]), logits + PALETTE_OFFSET], -1)
        return jax.nn.softmax(logits, axis=-1)[..., 1:]
