"""Receptive fields: the arithmetic of the architectures, and measured by gradient."""

import pytest

from neural_synth.models import vgg
from neural_synth.viz import classifiers
from neural_synth.viz import receptive_field as rf


@pytest.fixture(scope="module")
def vgg16():
    """VGG16 with random weights: connectivity does not depend on training."""
    params = vgg.random_params("vgg16", ["relu5_3"], seed=0)
    return classifiers.from_vgg_params("vgg16", "torchvision", params)


@pytest.mark.parametrize(
    "layer,size,jump",
    # Stem 3x3/2; blocks add (k - 1) * jump per depthwise conv: ..., block5 83,
    # block10 339, head 851 px (larger than the 224 px image).
    [("stem", 3, 2), ("block1", 11, 4), ("block3", 35, 8), ("block5", 83, 16),
     ("block10", 339, 16), ("head", 851, 32)],
)  # fmt: skip
def test_efficientnet_arithmetic(lite0, layer, size, jump):
    rows, _ = rf.arithmetic(lite0, layer, 224, 224)
    assert (rows.size, rows.jump) == (size, jump)


def test_vgg16_arithmetic(vgg16):
    # The published VGG16 fields: conv5_3 196 px, pool5 212 px, stride 32.
    assert rf.arithmetic(vgg16, "relu5_3", 224, 224)[0].size == 196
    pool5 = rf.arithmetic(vgg16, "pool5", 224, 224)[0]
    assert (pool5.size, pool5.jump, pool5.length) == (212, 32, 7)


@pytest.mark.parametrize(
    "layer,height,width,position",
    [("block1", 64, 63, None), ("block3", 96, 96, None), ("block3", 96, 96, (0, 11)),
     ("block5", 128, 128, None), ("block5", 127, 129, (7, 0))],
)  # fmt: skip
def test_measured_field_matches_arithmetic_efficientnet(lite0, layer, height, width, position):
    rows, cols = rf.arithmetic(lite0, layer, height, width)
    position = position or (rows.length // 2, cols.length // 2)
    _, measured = rf.measure(lite0, layer, height, width, position=position, num_images=2)
    assert measured == rf.expected_box(lite0, layer, height, width, position)


@pytest.mark.parametrize("layer", ["conv1_2", "pool1", "relu3_1", "pool3"])
def test_measured_field_matches_arithmetic_vgg(vgg16, layer):
    rows, cols = rf.arithmetic(vgg16, layer, 64, 64)
    position = (rows.length // 2, cols.length // 2)
    _, measured = rf.measure(vgg16, layer, 64, 64, position=position, num_images=2)
    assert measured == rf.expected_box(vgg16, layer, 64, 64, position)


def test_bad_positions_fail(lite0):
    with pytest.raises(ValueError, match="outside"):
        rf.measure(lite0, "block3", 64, 64, position=(8, 0))
    with pytest.raises(ValueError, match="no spatial layer"):
        rf.arithmetic(lite0, "logits", 64, 64)
