"""Johnson-style super-resolution network: residual blocks at low resolution, then x2 stages up.

`SuperResNet(scale=4)` maps a low-resolution image [B, h, w, 3] in [0, 1] to
[B, scale * h, scale * w, 3]: a 9x9 convolution in, residual blocks at the
input's resolution, log2(scale) x2 upsampling stages (sub-pixel convolution,
or nearest-neighbour resize followed by a 3x3 convolution), a 9x9 convolution
out. Any input size of at least `MIN_SIDE` px works (nothing is strided), so
sizes need not be multiples of anything.

Departures from Johnson et al. (who used batch norm, fractionally strided
convolutions and a tanh output), each for a measured or cited reason:
- No normalisation layers (as EDSR: batch norm hurts super-resolution, and a
  network without image-wide statistics tiles exactly, with no captured
  statistics).
- Sub-pixel or resize-convolution upsampling instead of transposed
  convolutions: no checkerboard artifacts, and XLA:CPU computes their weight
  gradients fast (PERF_NOTES pitfall 2).
- With `residual=True` (the default) the network predicts a correction to the
  bicubic upsampling of its input (global residual learning, as VDSR), and
  the last convolution starts at zero, so an untrained network is exactly
  bicubic; it then trains in CPU minutes instead of GPU days.

The output is not clipped (losses see the raw values; clip for display).

References: Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style
Transfer and Super-Resolution", ECCV 2016; Shi et al., "Real-Time Single Image
and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural
Network", CVPR 2016; Kim, Lee & Lee, "Accurate Image Super-Resolution Using
Very Deep Convolutional Networks", CVPR 2016 (VDSR, residual learning); Lim et
al., "Enhanced Deep Residual Networks for Single Image Super-Resolution",
CVPRW 2017 (EDSR, no batch norm).
"""

import flax.linen as nn
import jax

from neural_synth.models import conv, layers
from neural_synth.ops import resize

SCALES = (2, 4, 8)
UPSAMPLERS = ("subpixel", "resize")
MIN_SIDE = 5  # The 9x9 input convolution reflection-pads 4 px.


def check_network_options(scale: int, upsample: str) -> None:
    """Raises a ValueError naming the choices unless `scale` and `upsample` are supported."""
    if scale not in SCALES:
        raise ValueError(f"Unsupported super-resolution scale {scale!r}; choose from {SCALES}.")
    if upsample not in UPSAMPLERS:
        raise ValueError(f"Unknown upsampler {upsample!r}; choose from {UPSAMPLERS}.")


def _no_norm(name: str) -> nn.Module:
    return layers.norm_layer("none", name=name)


class SuperResNet(nn.Module):
    """Low-resolution image [B, h, w, 3] -> [B, scale * h, scale * w, 3] (unclipped).

    Attributes:
      scale: 2, 4 or 8 (one x2 upsampling stage per factor of 2).
      width: channels of the residual trunk (64 in the paper).
      num_residual: residual blocks at the input's resolution (4 in the paper).
      upsample: 'subpixel' (3x3 conv to 4 * width channels, pixel shuffle) or
        'resize' (nearest x2, 3x3 conv).
      residual: add the bicubic upsampling of the input to the output (and
        start the last convolution at zero).
      out_kernel: side of the last convolution, at the output's resolution (9
        in the paper; 3 costs 5x less on a CPU: 0.06 vs 0.31 s forward and
        backward for 8 crops of 96^2 and 32 channels).
    """

    scale: int = 4
    width: int = 64
    num_residual: int = 4
    upsample: str = "subpixel"
    residual: bool = True
    out_kernel: int = 9

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        check_network_options(self.scale, self.upsample)
        h, w = layers.check_image_size(
            *images.shape[1:3], minimum=MIN_SIDE, what="low-resolution inputs of a SuperResNet"
        )
        x = nn.relu(conv.PaddedConv(self.width, 9, name="conv_in")(layers.to_signed(images)))
        trunk = x
        for i in range(self.num_residual):
            x = layers.ResidualBlock(self.width, norm_fn=_no_norm, name=f"res{i}")(x)
        x = conv.PaddedConv(self.width, 3, name="conv_mid")(x) + trunk  # As EDSR's long skip.
        for i in range(self.scale.bit_length() - 1):
            x = nn.relu(self._up(x, i))
        init = nn.initializers.zeros if self.residual else nn.initializers.lecun_normal()
        out = conv.PaddedConv(3, self.out_kernel, kernel_init=init, name="conv_out")(x)
        if not self.residual:
            return 0.5 * (out + 1.0)  # [-1, 1] -> [0, 1], as the input was mapped.
        up = resize.bicubic_resize(images, height=h * self.scale, width=w * self.scale)
        return up + 0.5 * out

    def _up(self, x: jax.Array, stage: int) -> jax.Array:
        if self.upsample == "subpixel":
            y = conv.PaddedConv(4 * self.width, 3, name=f"up{stage}")(x)
            return layers.pixel_shuffle(y, 2)
        return conv.PaddedConv(self.width, 3, upsample=2, name=f"up{stage}")(x)


def receptive_radius(*, scale: int, num_residual: int, out_kernel: int = 9) -> int:
    """Per-side receptive radius of SuperResNet in output pixels (an upper bound).

    In input pixels: 9x9 in (4), two 3x3 per residual block and the middle 3x3
    (2 * num_residual + 1), bicubic (2); each x2 stage's 3x3 conv adds 1 px at
    its resolution (at most scale / 2^k output px for stage k), the last
    convolution adds out_kernel // 2 output px; plus 1 input px for the
    upsampling grids, which are not centred.
    """
    stages = sum(scale >> k for k in range(scale.bit_length() - 1))  # 3x3 conv per stage.
    return scale * (4 + 2 * num_residual + 1 + 2 + 1) + stages + out_kernel // 2
