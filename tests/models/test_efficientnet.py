"""EfficientNet-Lite0: the port against independent forward passes, and real predictions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth import io
from neural_synth.data import imagenet
from neural_synth.models import efficientnet
from neural_synth.viz import classifiers
from neural_synth.weights import efficientnet as weights
from neural_synth.weights import pth
from tests.models import numpy_efficientnet

COMPARED = ("stem", "block3", "block10", "block15", "head", "logits")


@pytest.fixture(scope="module")
def ported():
    return weights.load_efficientnet()


@pytest.fixture(scope="module")
def state_dict():
    return pth.read_state_dict(weights.wheel_path())


@pytest.fixture(scope="module")
def photos():
    """chelsea and coffee, evaluation crops at 224 (the cat and the espresso)."""
    return np.stack([classifiers.prepare_image(io.sample_image(n)) for n in ("chelsea", "coffee")])


def _apply(module, params, images, layers):
    fn = jax.jit(lambda p, x: module.apply({"params": p}, x, layers=layers))
    return {k: np.asarray(v, np.float64) for k, v in fn(params, jnp.asarray(images)).items()}


def _relative(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_layer_names_and_shapes(ported):
    names = efficientnet.tap_names()
    assert names[:3] == ("stem", "block0_dw", "block0")
    assert names[-3:] == ("head", "pool", "logits")
    assert "block0_expand" not in names and "block15_expand" in names
    assert len(efficientnet.blocks()) == 16
    _, params = ported
    shapes = efficientnet.lite0_param_shapes()
    assert set(params) == set(shapes)
    for name, kinds in shapes.items():
        assert {k: tuple(v.shape) for k, v in params[name].items()} == kinds
    # The published 4,652,008 trainable parameters, less one per batch-norm channel
    # (gamma and beta fold into one bias).
    bn_channels = sum(kinds["bias"][0] for name, kinds in shapes.items() if name != "fc")
    assert sum(v.size for p in params.values() for v in p.values()) == 4_652_008 - bn_channels


@pytest.mark.parametrize("size", [224, 161])  # 161: odd sizes, asymmetric 'SAME' padding.
def test_port_matches_numpy_reference(ported, state_dict, photos, size):
    module, params = ported
    images = np.stack([io.resize(p, size=(size, size)) for p in photos])
    want = numpy_efficientnet.forward(state_dict, images)
    got = _apply(module, params, images, COMPARED)
    for name in COMPARED:
        assert got[name].shape == want[name].shape, name
        assert _relative(got[name], want[name]) <= 1e-4, name


def test_port_matches_torch(ported, state_dict, photos):
    torch = pytest.importorskip("torch")
    from tests.models import torch_efficientnet

    model = torch_efficientnet.load(state_dict).double()
    with torch.no_grad():
        want = model(torch.from_numpy(photos).double().permute(0, 3, 1, 2)).numpy()
    got = _apply(*ported, photos, ("logits",))["logits"]
    assert _relative(got, want) <= 1e-4


def test_photos_are_classified(ported, photos):
    module, params = ported
    logits = _apply(module, params, photos, ("logits",))["logits"]
    top1 = logits.argmax(axis=1)
    assert top1[0] in imagenet.DOMESTIC_CATS, top1  # chelsea
    assert top1[1] in imagenet.COFFEE, top1  # coffee


def test_rules_change_only_the_backward_pass(ported):
    _, params = ported
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(1, 64, 64, 3)), jnp.float32)
    outs = [
        _apply(efficientnet.EfficientNetLite0(rule=r), params, x, ("block5", "logits"))
        for r in ("gradient", "guided", "deconvnet")
    ]
    for out in outs[1:]:
        np.testing.assert_array_equal(out["logits"], outs[0]["logits"])


@pytest.mark.parametrize("stride,kernel,size", [(1, 3, 9), (2, 3, 9), (2, 5, 10), (1, 5, 7)])
def test_depthwise_conv_matches_grouped_conv(stride, kernel, size):
    rng = np.random.default_rng(stride * kernel + size)
    x = jnp.asarray(rng.standard_normal((2, size, size + 1, 4)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((kernel, kernel, 1, 4)), jnp.float32)

    def grouped(x):
        return jax.lax.conv_general_dilated(
            x, k, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=4,
        )  # fmt: skip

    ours = jax.jit(lambda x: efficientnet.depthwise_conv(x, k, stride))
    np.testing.assert_allclose(ours(x), grouped(x), rtol=1e-5, atol=1e-5)
    g_ours = jax.grad(lambda x: jnp.sum(jnp.sin(ours(x))))(x)
    g_ref = jax.grad(lambda x: jnp.sum(jnp.sin(grouped(x))))(x)
    np.testing.assert_allclose(g_ours, g_ref, rtol=1e-4, atol=1e-5)


def test_bad_inputs_raise(ported):
    module, params = ported
    with pytest.raises(ValueError, match="Unknown EfficientNet-Lite0 layers"):
        module.apply({"params": params}, jnp.zeros((1, 32, 32, 3)), layers=("relu4_2",))
    with pytest.raises(ValueError, match=r"images \[B, H, W, 3\]"):
        module.apply({"params": params}, jnp.zeros((32, 32, 3)), layers=("logits",))
    with pytest.raises(ValueError, match="backward rule"):
        efficientnet.EfficientNetLite0(rule="hooks").apply(
            {"params": params}, jnp.zeros((1, 32, 32, 3)), layers=("stem",)
        )
