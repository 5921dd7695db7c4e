"""Attribution maps on the real classifier: they point at the object; batching; rules."""

import jax
import numpy as np
import pytest

from neural_synth import io
from neural_synth.data import imagenet
from neural_synth.viz import attribution

SIZE, CROP, TOP, LEFT = 224, 96, 100, 40  # A 96 px cat face pasted into 224 x 224.
AREA_SHARE = CROP * CROP / SIZE**2  # 0.18
BOX = (TOP, LEFT, TOP + CROP, LEFT + CROP)


@pytest.fixture(scope="module")
def pasted():
    """The cat's face pasted on flat grey and on uniform noise, and their top-1 classes."""
    face = io.resize(io.sample_image("chelsea")[20:280, 60:420], size=(CROP, CROP))
    flat = np.full((SIZE, SIZE, 3), 0.5, np.float32)
    noise = np.random.default_rng(0).uniform(size=(SIZE, SIZE, 3)).astype(np.float32)
    images = np.stack([flat, noise])
    images[:, TOP : TOP + CROP, LEFT : LEFT + CROP] = face
    return images


@pytest.fixture(scope="module")
def pasted_classes(lite0, pasted):
    module, layer = lite0.module(), lite0.logits_layer
    logits = jax.jit(lambda v, x: module.apply(v, x, layers=(layer,))[layer])(
        lite0.variables, pasted
    )
    return np.asarray(logits).argmax(axis=1)


def test_the_pasted_cat_is_recognised(pasted_classes):
    assert all(c in imagenet.DOMESTIC_CATS for c in pasted_classes), pasted_classes


def test_saliency_is_about_the_object(lite0, pasted, pasted_classes):
    shares = attribution.mass_in_box(attribution.saliency(lite0, pasted, pasted_classes), BOX)
    # Measured 0.40 (flat: much of the rest sits on the box's outline) and 0.66 (noise).
    assert shares[0] > 1.8 * AREA_SHARE, shares
    assert shares[1] > 3.0 * AREA_SHARE, shares


def test_gradcam_is_about_the_object(lite0, pasted, pasted_classes):
    cams = attribution.gradcam(lite0, pasted, pasted_classes)
    assert cams.shape == pasted.shape[:3] and cams.min() >= 0
    shares = attribution.mass_in_box(cams, BOX)
    assert np.all(shares > 2.3 * AREA_SHARE), shares  # Measured 0.51 and 0.51.


@pytest.fixture(scope="module")
def small():
    return np.random.default_rng(1).uniform(size=(3, 64, 64, 3)).astype(np.float32)


def test_batching_does_not_change_results(lite0, small):
    # Three images in chunks of two (the last padded) against pairs run whole:
    # every call has batch shape 2, so one compilation serves the test.
    chunked = attribution.gradients(lite0, small, [1, 2, 3], batch_size=2)
    first = attribution.gradients(lite0, small[:2], [1, 2], batch_size=2)
    last = attribution.gradients(lite0, small[1:], [2, 3], batch_size=2)
    np.testing.assert_allclose(chunked[:2], first, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(chunked[2], last[1], rtol=1e-4, atol=1e-7)


def test_smoothgrad_without_noise_is_the_gradient(lite0, small):
    grads = attribution.gradients(lite0, np.repeat(small[:1], 2, axis=0), [281, 281])
    smooth = attribution.smoothgrad(lite0, small[:1], [281], num_samples=2, noise=0.0)
    np.testing.assert_allclose(smooth[0], grads[0], rtol=1e-4, atol=1e-7)


def test_smoothgrad_is_reproducible_from_its_seed(lite0, small):
    run = lambda seed: attribution.smoothgrad(
        lite0, small[:1], [281], num_samples=4, seed=seed, batch_size=2
    )
    a, b, c = run(0), run(0), run(1)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_deconvnet_without_max_pooling_ignores_the_image(lite0, small):
    # With no max-pool switches, the deconvnet's backward pass never looks at the
    # forward pass (Springenberg et al.): the same class gives the same picture for
    # any image (the gradient, checked in test_batching, does not).
    deconv = attribution.deconvnet(lite0, small[:2], [281, 281])
    np.testing.assert_allclose(deconv[0], deconv[1], rtol=1e-5, atol=1e-8)
    assert np.abs(deconv).max() > 0


def test_guided_backprop_keeps_only_positive_evidence(lite0, small):
    plain = attribution.gradients(lite0, small[:2], [1, 2], batch_size=2)
    guided = attribution.guided_backprop(lite0, small[:2], [1, 2], batch_size=2)
    assert not np.allclose(guided, plain) and np.abs(guided).max() > 0
    assert not np.allclose(guided[0], guided[1])  # Depends on the image.


def test_neuron_targets_stay_inside_the_receptive_field(lite0, small):
    # block3 has a 35 px receptive field; its strongest neuron's reconstruction
    # is zero outside a 35 x 35 window.
    grads = attribution.guided_backprop(lite0, small[:1], [0], layer="block3")
    ys, xs = np.nonzero(np.abs(grads[0]).sum(-1))
    assert ys.size and np.ptp(ys) < 35 and np.ptp(xs) < 35


def test_bad_targets_fail_clearly(lite0, small):
    with pytest.raises(ValueError, match="one target per image"):
        attribution.saliency(lite0, small, [1])
    with pytest.raises(ValueError, match="no spatial layer"):
        attribution.gradcam(lite0, small[:1], [1], layer="logits")
    with pytest.raises(ValueError, match=r"\[1000\] out of range: there are 1000 classes"):
        attribution.saliency(lite0, small[:1], [1000])
    with pytest.raises(ValueError, match="there are 40 channels of block3"):
        attribution.guided_backprop(lite0, small[:1], [40], layer="block3")
