"""Receptive fields: which input pixels one neuron can see, by arithmetic and by gradient.

Arithmetic (per axis, through every convolution and pooling up to the layer,
kernel k, stride s, padding p before the input): the field grows by (k - 1)
times the current jump, the jump (distance in input pixels between
neighbouring neurons) multiplies by s, and the first pixel seen by neuron 0
moves by -p times the jump. TensorFlow 'SAME' padding depends on the input
size (for stride 2 the odd pixel is padded after), so sizes are propagated
layer by layer. Neuron i then sees input pixels [start + i * jump, start + i *
jump + size), clipped to the image.

Measurement: the gradient of one neuron (all channels of the layer at one
position, summed) with respect to the input is non-zero exactly on the pixels
it depends on. Summing |gradient| over a few random images removes the rare
pixel whose every path is switched off by a rectifier in one image; the
bounding box of the non-zero pixels is the measured field.

References: Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional
Neural Networks", Distill 2019; Luo et al., "Understanding the Effective
Receptive Field in Deep Convolutional Neural Networks", NeurIPS 2016.
"""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from neural_synth.models import conv
from neural_synth.viz import classifiers


@dataclasses.dataclass(frozen=True)
class Field:
    """The receptive field along one axis.

    Attributes:
      size: pixels seen by one neuron (before clipping to the image).
      jump: input pixels between neighbouring neurons (the total stride).
      start: first input pixel seen by neuron 0 (negative: in the padding).
      length: number of neurons along this axis.
    """

    size: int
    jump: int
    start: int
    length: int

    def interval(self, index: int, image_length: int) -> tuple[int, int]:
        """[lo, hi) input pixels seen by neuron `index`, clipped to [0, image_length)."""
        if not 0 <= index < self.length:
            raise ValueError(f"neuron index {index} outside 0..{self.length - 1}")
        lo = self.start + index * self.jump
        return max(lo, 0), min(lo + self.size, image_length)


def field(geometry, length: int) -> Field:
    """The `Field` after `geometry` [(kernel, stride, 'SAME' | 'VALID')] for an input of `length`."""
    size, jump, start, n = 1, 1, 0, length
    for kernel, stride, padding in geometry:
        if padding == "SAME":
            before = conv.same_padding(n, kernel, stride)[0]
            n = -(-n // stride)
        elif padding == "VALID":
            before, n = 0, (n - kernel) // stride + 1
        else:
            raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
        if n < 1:
            raise ValueError(f"an input of {length} pixels is too small for these layers")
        start -= before * jump
        size += (kernel - 1) * jump
        jump *= stride
    return Field(size, jump, start, n)


def arithmetic(classifier: classifiers.Classifier, layer: str, height: int, width: int):
    """(rows Field, columns Field) of `layer` for a height x width input."""
    geometry = classifier.geometry_fn(classifier.check_layer(layer))
    return field(geometry, height), field(geometry, width)


def expected_box(classifier, layer: str, height: int, width: int, position) -> tuple:
    """(top, left, bottom, right) of the pixels neuron `position` = (row, col) sees."""
    rows, cols = arithmetic(classifier, layer, height, width)
    (top, bottom), (left, right) = (
        rows.interval(position[0], height),
        cols.interval(position[1], width),
    )
    return top, left, bottom, right


@functools.cache
def _neuron_grad_fn(module: nn.Module, layer: str, row: int, col: int):
    def neuron(images, variables):
        return jnp.sum(module.apply(variables, images, layers=(layer,))[layer][:, row, col, :])

    grad = jax.grad(neuron)
    return jax.jit(lambda variables, images: jnp.sum(jnp.abs(grad(images, variables)), axis=(0, 3)))


def measure(
    classifier: classifiers.Classifier,
    layer: str,
    height: int,
    width: int,
    *,
    position: tuple[int, int] | None = None,
    images: np.ndarray | None = None,
    num_images: int = 4,
    seed: int = 0,
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """(sensitivity [H, W], bounding box of its non-zero pixels or None) of one neuron.

    Args:
      classifier, layer: the network and a spatial layer.
      height, width: input size.
      position: (row, col) of the neuron in the layer's map; default its centre.
      images: inputs [N, H, W, 3] to differentiate at; default `num_images`
        uniform random images (from `seed`).
    """
    classifier.check_layer(layer)
    rows, cols = arithmetic(classifier, layer, height, width)
    row, col = position if position is not None else (rows.length // 2, cols.length // 2)
    rows.interval(row, height), cols.interval(col, width)  # Validates the position.
    if images is None:
        rng = np.random.default_rng(seed)
        images = rng.uniform(size=(num_images, height, width, 3)).astype(np.float32)
    fn = _neuron_grad_fn(classifier.module("gradient"), layer, int(row), int(col))
    sensitivity = np.asarray(fn(classifier.variables, jnp.asarray(images, jnp.float32)))
    ys, xs = np.nonzero(sensitivity > 0)
    if ys.size == 0:
        return sensitivity, None
    return sensitivity, (int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1)
