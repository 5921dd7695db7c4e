"""Tests for the VGG feature extractor against NumPy and hand-checked cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.models import conv, vgg


@pytest.fixture(scope="module")
def vgg16():
    return vgg.init(jax.random.key(0), "vgg16")


def _np_conv3x3(x, kernel, bias):
    """Reference SAME 3x3 cross-correlation, NHWC/HWIO, in float64."""
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for dy in range(3):
        for dx in range(3):
            patch = xp[:, dy : dy + x.shape[1], dx : dx + x.shape[2]]
            out += patch @ kernel[dy, dx]
    return out + bias


def test_layer_names_follow_the_paper():
    names = vgg.layer_names("vgg19", include_head=True)
    assert names[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert "relu5_4" in names and names[-5:] == vgg.HEAD_LAYERS
    assert "conv5_4" not in vgg.layer_names("vgg16")
    assert len(vgg.conv_layer_names("vgg16")) == 13
    assert len(vgg.conv_layer_names("vgg19")) == 16


def test_param_shapes_match_init(vgg16):
    _, params = vgg16
    shapes = vgg.param_shapes("vgg16")
    assert set(shapes) == set(params)
    for name, p in params.items():
        assert p["kernel"].shape == shapes[name]["kernel"]
        assert p["bias"].shape == shapes[name]["bias"]


@pytest.mark.parametrize("convention", ["torchvision", "caffe"])
def test_preprocess_matches_numpy(convention):
    x = np.random.default_rng(0).uniform(size=(1, 4, 4, 3)).astype(np.float32)
    got = np.asarray(jax.jit(vgg.preprocess, static_argnums=1)(x, convention))
    if convention == "torchvision":
        want = (x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    else:
        want = x[..., ::-1] * 255.0 - [103.939, 116.779, 123.68]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_first_block_matches_numpy(vgg16, pooling):
    module, params = vgg16
    module = vgg.VGG(arch="vgg16", pooling=pooling)
    x = np.random.default_rng(1).uniform(size=(2, 8, 8, 3)).astype(np.float32)
    layers = ("conv1_1", "relu1_2", "pool1")
    out = jax.jit(module.apply, static_argnames="layers")({"params": params}, x, layers=layers)
    p = jax.tree.map(np.asarray, params)
    h = _np_conv3x3(np.asarray(vgg.preprocess(x, "torchvision")), **p["conv1_1"])
    np.testing.assert_allclose(out["conv1_1"], h, rtol=1e-4, atol=1e-4)
    h = np.maximum(_np_conv3x3(np.maximum(h, 0), **p["conv1_2"]), 0)
    np.testing.assert_allclose(out["relu1_2"], h, rtol=1e-4, atol=1e-4)
    blocks = h.reshape(2, 4, 2, 4, 2, 64)
    pooled = blocks.max(axis=(2, 4)) if pooling == "max" else blocks.mean(axis=(2, 4))
    np.testing.assert_allclose(out["pool1"], pooled, rtol=1e-4, atol=1e-4)


def test_stops_at_deepest_requested_layer(vgg16):
    module, params = vgg16
    x = jnp.zeros((1, 16, 16, 3))
    only_first = {"params": {"conv1_1": params["conv1_1"]}}
    out = module.apply(only_first, x, layers=("relu1_1",))  # would fail if conv1_2 ran
    assert set(out) == {"relu1_1"}
    jaxpr = str(
        jax.make_jaxpr(lambda v: module.apply(v, x, layers=("relu2_1",)))({"params": params})
    )
    assert jaxpr.count("conv_general_dilated") == 3


def test_random_init_keeps_activation_scale(vgg16):
    """He init: deep random features neither vanish nor explode (documented property)."""
    module, params = vgg16
    x = jax.random.uniform(jax.random.key(2), (1, 64, 64, 3))
    out = module.apply({"params": params}, x, layers=("relu1_1", "relu5_3"))
    ratio = float(out["relu5_3"].std() / out["relu1_1"].std())
    assert 0.05 < ratio < 20.0


def test_frozen_path_gives_same_image_gradient_and_no_weight_gradient(vgg16):
    module, params = vgg16
    x = jax.random.uniform(jax.random.key(3), (1, 16, 16, 3))

    def loss(variables, image):
        return jnp.sum(module.apply(variables, image, layers=("relu3_1",))["relu3_1"] ** 2)

    plain = {"params": params}
    frozen = vgg.freeze(plain)
    g_plain = jax.jit(jax.grad(loss, argnums=1))(plain, x)
    g_frozen = jax.jit(jax.grad(loss, argnums=1))(frozen, x)
    np.testing.assert_allclose(
        g_frozen, g_plain, rtol=1e-4, atol=1e-5 * float(jnp.abs(g_plain).max())
    )
    w_grad = jax.grad(loss)(frozen, x)["params"]["conv1_1"]["kernel"]
    assert float(jnp.abs(w_grad).max()) == 0.0


@pytest.mark.parametrize("tile", [2, 4])
def test_frozen_winograd_conv_gradient_matches_autodiff_of_the_plain_conv(tile):
    rng = np.random.default_rng(6)
    x = jnp.asarray(rng.normal(size=(1, 9, 7, 128)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(3, 3, 128, 256)) / np.sqrt(9 * 128), jnp.float32)
    u = conv.winograd_kernel(kernel, tile)
    u_t = conv.winograd_kernel(vgg.backward_kernel(kernel), tile)
    loss = lambda fn: lambda x: jnp.sum(jnp.sin(fn(x)))
    frozen = lambda x: vgg.frozen_conv(x, u, u_t)
    plain = lambda x: vgg._conv(x, kernel)
    np.testing.assert_allclose(jax.jit(frozen)(x), plain(x), rtol=1e-4, atol=1e-4)
    got = jax.jit(jax.grad(loss(frozen)))(x)
    np.testing.assert_allclose(got, jax.grad(loss(plain))(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("tile", [0, 2, 4])
def test_frozen_vgg19_with_winograd_kernels_matches_the_plain_network(tile):
    """Maps of 11x15 (conv3_x) and 5x7 (conv4_1) take the Winograd path when frozen with it."""
    module = vgg.VGG(arch="vgg19", pooling="avg")
    params = vgg.random_params("vgg19", ("relu4_1",), seed=7)
    frozen = vgg.freeze({"params": params}, winograd_tile=tile)[vgg.FROZEN]
    assert ("winograd" in frozen["conv3_1"]) == (tile > 0)
    assert ("winograd" in frozen["conv2_2"]) == (tile == 4)  # 128 -> 128 channels.
    assert "winograd" not in frozen["conv2_1"]  # 64 -> 128 channels.
    frozen = {"params": params, vgg.FROZEN: frozen}
    x = jax.random.uniform(jax.random.key(8), (1, 44, 60, 3))

    def loss(variables, image):
        out = module.apply(variables, image, layers=("relu3_1", "relu4_1"))
        return sum(jnp.sum(jnp.sin(a)) for a in out.values())

    plain = {"params": params}
    np.testing.assert_allclose(jax.jit(loss)(frozen, x), loss(plain, x), rtol=1e-4)
    g_plain = jax.jit(jax.grad(loss, argnums=1))(plain, x)
    g_frozen = jax.jit(jax.grad(loss, argnums=1))(frozen, x)
    np.testing.assert_allclose(
        g_frozen, g_plain, rtol=1e-3, atol=1e-4 * float(jnp.abs(g_plain).max())
    )
    xla_convs = 9 - {0: 0, 2: 5, 4: 6}[tile]  # Of conv1_1 .. conv4_1, forward and backward.
    jaxpr = str(jax.make_jaxpr(jax.grad(loss, argnums=1))(frozen, x))
    assert jaxpr.count("conv_general_dilated") == 2 * xla_convs


def test_adaptive_avg_pool_matches_loop():
    x = np.random.default_rng(4).normal(size=(1, 10, 9, 2)).astype(np.float32)
    got = np.asarray(vgg.adaptive_avg_pool(jnp.asarray(x), 7))
    want = np.zeros((1, 7, 7, 2))
    for i in range(7):
        for j in range(7):
            h0, h1 = (i * 10) // 7, -(-((i + 1) * 10) // 7)
            w0, w1 = (j * 9) // 7, -(-((j + 1) * 9) // 7)
            want[0, i, j] = x[0, h0:h1, w0:w1].mean(axis=(0, 1))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_head_gives_logits():
    module, params = vgg.init(jax.random.key(5), "vgg16", include_head=True)
    out = module.apply({"params": params}, jnp.ones((2, 32, 32, 3)) * 0.5, layers=("fc8", "relu7"))
    assert out["fc8"].shape == (2, 1000) and out["relu7"].shape == (2, 4096)
    assert float(out["relu7"].min()) >= 0.0


@pytest.mark.parametrize(
    "layers, shape, message",
    [
        (("relu9_9",), (1, 16, 16, 3), "Unknown"),
        ((), (1, 16, 16, 3), "none requested"),
        (("relu5_1",), (1, 8, 8, 3), "too small"),
        (("relu1_1",), (1, 16, 16, 1), "expects images"),
    ],
)
def test_bad_input_gives_clear_error(vgg16, layers, shape, message):
    module, params = vgg16
    with pytest.raises(ValueError, match=message):
        module.apply({"params": params}, jnp.zeros(shape), layers=layers)


def test_unknown_arch_and_convention():
    with pytest.raises(ValueError, match="Unknown VGG architecture"):
        vgg.layer_names("vgg11")
    with pytest.raises(ValueError, match="Unknown convention"):
        vgg.preprocess(jnp.zeros((1, 2, 2, 3)), "bgr")
