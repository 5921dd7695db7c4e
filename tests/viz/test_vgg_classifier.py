"""VGG16 with its fc head as a visualization classifier (random weights)."""

import numpy as np
import pytest

from neural_synth.models import vgg
from neural_synth.viz import attribution, classifiers
from neural_synth.weights import store


def _random_params(include_head: bool) -> dict:
    """He-scaled random VGG16 parameters (NumPy; fc kernels rank 1, which is fast to draw)."""
    rng, params = np.random.default_rng(0), {}
    for name, s in vgg.param_shapes("vgg16", include_head=include_head).items():
        shape, scale = s["kernel"], np.float32(np.sqrt(2.0 / np.prod(s["kernel"][:-1])))
        if name.startswith("fc"):
            u = rng.standard_normal(shape[0], np.float32) * scale
            kernel = np.outer(u, rng.standard_normal(shape[1], np.float32))
        else:
            kernel = rng.standard_normal(shape, np.float32) * scale
        params[name] = {"kernel": kernel, "bias": np.zeros(s["bias"], np.float32)}
    return params


@pytest.fixture(scope="module")
def vgg16():
    """A random VGG16 with head (what `classifiers.load('vgg16', weights=DIR)` builds)."""
    return classifiers.from_vgg_params("vgg16", "torchvision", _random_params(True))


def test_deconvnet_follows_the_max_pool_switches(vgg16):
    # Unlike EfficientNet-Lite0, VGG max-pools: the deconvnet's picture depends on
    # the image through the switches (and only through them).
    images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
    deconv = attribution.deconvnet(vgg16, images, [3, 3])
    assert deconv.shape == images.shape and np.isfinite(deconv).all()
    assert not np.allclose(deconv[0], deconv[1])


def test_gradcam_on_the_last_conv_layer(vgg16):
    assert vgg16.cam_layer == "relu5_3"
    images = np.random.default_rng(1).uniform(size=(1, 32, 32, 3)).astype(np.float32)
    cams = attribution.gradcam(vgg16, images, [7])
    assert cams.shape == (1, 32, 32) and cams.min() >= 0


def test_vgg_needs_ported_weights_with_a_head(tmp_path):
    with pytest.raises(ValueError, match="--weights"):
        classifiers.load("vgg16")
    meta = {"arch": "vgg16", "convention": "torchvision", "include_head": False}
    store.save(tmp_path, _random_params(False), meta)
    with pytest.raises(ValueError, match="include_head=true"):
        classifiers.load("vgg16", weights=str(tmp_path))
    with pytest.raises(ValueError, match="Unknown classifier"):
        classifiers.load("resnet50")
