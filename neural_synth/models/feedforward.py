"""Feed-forward texture and stylization generators.

- `TextureNet`: Ulyanov's multi-scale generator. Noise tensors at K scales
  (full, 1/2, ..., 1/2^(K-1)) each pass a conv block (3x3, 3x3, 1x1); starting
  from the coarsest, the running map is upsampled 2x, normalised and joined
  (concatenated) with the next finer branch, then passes another conv block.
  `padding='circular'` makes the output tileable (periodic).
- `TransformNet`: Johnson's image transformation network: reflection-padded 9x9
  conv, two stride-2 convs down, residual blocks, two resize-convolutions up
  (nearest 2x + 3x3 conv, no checkerboard artifacts), 9x9 conv out. Instance
  norm throughout (Ulyanov's improvement); with `num_styles > 1` conditional
  instance norm, so one network holds several styles and blends them.

Both map to images in [0, 1] and are fully convolutional: any size whose sides
are multiples of 2^(num_scales - 1) (TextureNet) or `TRANSFORM_STRIDE`
(TransformNet) works; `layers.check_image_size` says so otherwise.

References: Ulyanov, Lebedev, Vedaldi & Lempitsky, "Texture Networks:
Feed-forward Synthesis of Textures and Stylized Images", ICML 2016; Ulyanov,
Vedaldi & Lempitsky, "Improved Texture Networks", CVPR 2017; Johnson, Alahi &
Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and Super-Resolution",
ECCV 2016; Dumoulin, Shlens & Kudlur, "A Learned Representation for Artistic
Style", ICLR 2017.
"""

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from neural_synth.models import conv, layers


# --------------------------------------------------------------------------- texture net
def _texture_block(x: jax.Array, features: int, padding: str) -> jax.Array:
    """3x3, 3x3, 1x1 convolutions, each followed by instance norm and LeakyReLU."""
    for k in (3, 3, 1):
        x = conv.PaddedConv(features, k, padding=padding)(x)
        x = nn.leaky_relu(layers.InstanceNorm()(x), 0.01)
    return x


class TextureNet(nn.Module):
    """Multi-scale texture generator: noise list -> [B, H, W, 3] in [0, 1].

    Attributes:
      num_scales: K noise scales; H and W must be multiples of 2^(K-1).
      width: channels of each scale's branch; the joined map after the k-th join
        has (k + 1) * width channels.
      padding: 'reflect' or 'circular' (tileable textures).
    """

    num_scales: int = 5
    width: int = 8
    padding: str = "reflect"

    @nn.compact
    def __call__(self, noises: Sequence[jax.Array]) -> jax.Array:
        if len(noises) != self.num_scales:
            raise ValueError(
                f"TextureNet needs {self.num_scales} noise tensors, got {len(noises)}."
            )
        x = _texture_block(noises[-1], self.width, self.padding)  # coarsest
        for k in range(self.num_scales - 2, -1, -1):
            x = layers.InstanceNorm()(layers.upsample_nearest(x))
            branch = layers.InstanceNorm()(_texture_block(noises[k], self.width, self.padding))
            x = jnp.concatenate([x, branch], axis=-1)
            x = _texture_block(x, self.width * (self.num_scales - k), self.padding)
        return nn.sigmoid(nn.Conv(3, (1, 1))(x))


def noise_shapes(
    num_scales: int, batch: int, height: int, width: int, channels: int = 3
) -> list[tuple[int, int, int, int]]:
    """Shapes of TextureNet's noise inputs for an H x W output, finest first."""
    layers.check_image_size(
        height,
        width,
        multiple=2 ** (num_scales - 1),
        what=f"TextureNet outputs with num_scales={num_scales}",
        fix="fewer num_scales",
    )
    return [(batch, height >> k, width >> k, channels) for k in range(num_scales)]


def sample_noise(key: jax.Array, num_scales: int, batch: int, height: int, width: int):
    """Uniform [0, 1) noise tensors for an H x W texture, finest first."""
    keys = jax.random.split(key, num_scales)
    return [
        jax.random.uniform(k, s)
        for k, s in zip(keys, noise_shapes(num_scales, batch, height, width), strict=True)
    ]


def sample_noise_numpy(seed: int, num_scales: int, height: int, width: int) -> list[np.ndarray]:
    """Host-side noise for one very large texture (tiled inference), finest first."""
    rng = np.random.default_rng(seed)
    return [rng.random(s, dtype=np.float32) for s in noise_shapes(num_scales, 1, height, width)]


# --------------------------------------------------------------------------- transform net
TRANSFORM_STRIDE = 4  # Total downsampling: input sides must be multiples of this.


def instance_norm(num_styles: int, name: str) -> nn.Module:
    """Instance norm for one style, conditional instance norm for several.

    A plain function (not a method) so that modules it makes inside a
    ResidualBlock belong to that block.
    """
    if num_styles > 1:
        return layers.ConditionalInstanceNorm(num_styles, name=name)
    return layers.InstanceNorm(name=name)


class TransformNet(nn.Module):
    """Johnson's transformation network: image [B, H, W, 3] -> stylized [B, H, W, 3].

    Attributes:
      width: channels of the first layer (32 in the paper); doubled twice going down.
      num_residual: residual blocks at 1/4 resolution (5 in the paper).
      num_styles: 1 uses instance norm; N > 1 conditional instance norm, and
        __call__ then needs `style_weights` [B, N].
    H and W must be multiples of 4.
    """

    width: int = 32
    num_residual: int = 5
    num_styles: int = 1

    def _norm_relu(self, x, name, style_args):
        return nn.relu(instance_norm(self.num_styles, name)(x, *style_args))

    @nn.compact
    def __call__(self, images: jax.Array, style_weights: jax.Array | None = None) -> jax.Array:
        layers.check_image_size(
            *images.shape[1:3], multiple=TRANSFORM_STRIDE, what="images for a TransformNet"
        )
        style_args = self._style_args(images.shape[0], style_weights)
        w, norm_fn = self.width, functools.partial(instance_norm, self.num_styles)
        x = conv.PaddedConv(w, 9, name="conv_in")(layers.to_signed(images))
        x = self._norm_relu(x, "norm_in", style_args)
        for i, f in enumerate((2 * w, 4 * w)):
            x = conv.PaddedConv(f, 3, strides=2, name=f"down{i}")(x)
            x = self._norm_relu(x, f"norm_down{i}", style_args)
        for i in range(self.num_residual):
            x = layers.ResidualBlock(4 * w, norm_fn=norm_fn, name=f"res{i}")(x, *style_args)
        for i, f in enumerate((2 * w, w)):
            x = conv.PaddedConv(f, 3, upsample=2, name=f"up{i}")(x)
            x = self._norm_relu(x, f"norm_up{i}", style_args)
        return nn.sigmoid(conv.PaddedConv(3, 9, name="conv_out")(x))

    def _style_args(self, batch: int, style_weights) -> tuple:
        if self.num_styles == 1:
            if style_weights is not None:
                raise ValueError("style_weights given to a single-style TransformNet.")
            return ()
        if style_weights is None:
            raise ValueError(
                f"This TransformNet holds {self.num_styles} styles: give style_weights."
            )
        return (jnp.broadcast_to(style_weights, (batch, self.num_styles)),)


def transform_receptive_radius(num_residual: int) -> int:
    """Per-side receptive radius of TransformNet in input pixels, for fixed norm statistics.

    9x9 in (4) + two stride-2 3x3 (1 + 2) + 2 convs per residual block at stride 4
    (8 each) + two resize-convs (2 at stride 2, 1 at stride 1) + 9x9 out (4), plus
    1 px per nearest 2x upsampling, whose grid is not centred. (With per-image
    instance-norm statistics every output depends on the whole image.)
    """
    return 4 + 1 + 2 + 8 * num_residual + 2 + 1 + 4 + 2


def texture_receptive_radius(num_scales: int) -> int:
    """Per-side receptive radius of TextureNet in output pixels (upper bound).

    Each scale k adds its 3x3, 3x3 block (2 px at that scale, 2^(k+1) px) on the
    noise branch and on the joined branch.
    """
    return sum(2 * 2 * 2**k for k in range(num_scales))
