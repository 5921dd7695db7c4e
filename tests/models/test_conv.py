"""Convolutions: every fast path equals `lax.conv_general_dilated` (values and gradients),
padded convs equal their VALID form, the phase transposed conv equals torch's."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.models import conv


def _x(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _lax_conv(x, kernel, strides, padding, lhs_dilation=None):
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        strides,
        padding,
        lhs_dilation=lhs_dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )


def _assert_values_and_grads_equal(ours, reference, args):
    """ours(*args) == reference(*args), and the gradients of a nonlinear loss w.r.t. every arg."""
    np.testing.assert_allclose(jax.jit(ours)(*args), reference(*args), rtol=1e-4, atol=1e-4)
    loss = lambda fn: lambda *a: jnp.sum(jnp.sin(fn(*a)))
    argnums = tuple(range(len(args)))
    got = jax.jit(jax.grad(loss(ours), argnums=argnums))(*args)
    want = jax.grad(loss(reference), argnums=argnums)(*args)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


def _path(fn, *args, strides=(1, 1)) -> str:
    """Which `conv2d` path `fn` takes: 'im2col', 'winograd', 'tap_grad' or 'xla'.

    'blocked ...' when a strided convolution ran as a stride-1 one over pixel
    blocks (no strided convolution is left in the program).
    """
    jaxpr = str(jax.make_jaxpr(fn)(*args))
    if "_conv_tap_grad" in jaxpr:
        path = "tap_grad"
    elif "conv_general_dilated" in jaxpr:
        path = "xla"
    else:
        return "winograd" if jaxpr.count("dot_general") > 1 else "im2col"
    strided_convs = re.search(r"window_strides=\((\d+,\s*\d+)\)", jaxpr).group(1) != "1, 1"
    return "blocked " + path if strides != (1, 1) and not strided_convs else path


# ----------------------------------------------------------------------------- conv2d


@pytest.mark.parametrize(
    ("shape", "kernel", "features", "strides", "padding", "path"),
    [
        ((2, 4, 6, 8), 4, 3, (2, 2), ((1, 1), (1, 1)), "im2col"),  # 2 x 3 x 2 = 12 positions
        ((1, 40, 36, 5), 4, 3, (2, 2), ((1, 1), (1, 1)), "im2col"),  # 360 positions
        ((2, 5, 7, 6), 2, 3, (1, 1), ((0, 1), (1, 0)), "im2col"),  # a small phase convolution
        ((2, 40, 36, 5), 4, 3, (1, 1), ((1, 1), (1, 1)), "tap_grad"),  # 2 x 39 x 35 positions
        ((1, 64, 48, 3), 4, 8, (2, 2), ((1, 1), (1, 1)), "xla"),  # strided, 3 channels in
        ((1, 64, 48, 5), 4, 8, (2, 2), ((1, 1), (1, 1)), "blocked tap_grad"),  # 4x4 stride 2
        ((3, 50, 47, 5), 6, 3, (3, 3), ((2, 1), (0, 2)), "blocked tap_grad"),  # stride 3, cropped
        ((2, 48, 41, 6), 4, 5, (2, 2), ((0, 1), (1, 2)), "blocked tap_grad"),  # uneven padding
        ((1, 30, 33, 6), 2, 3, (1, 1), ((1, 0), (0, 1)), "tap_grad"),  # a phase convolution
        ((1, 24, 24, 20), 3, 24, (1, 1), ((1, 1), (1, 1)), "tap_grad"),  # wide and large
        ((1, 30, 28, 6), 3, 4, (1, 1), ((0, 0), (0, 0)), "tap_grad"),  # VALID: padded and cropped
        ((4, 31, 28, 6), 3, 4, (2, 2), ((0, 0), (0, 0)), "tap_grad"),  # strided VALID
        ((1, 24, 24, 128), 3, 128, (1, 1), ((1, 1), (1, 1)), "winograd"),  # wide, small map
        ((2, 48, 41, 6), 3, 5, (2, 2), ((0, 1), (1, 1)), "tap_grad"),  # 3x3 stride 2
    ],
)
def test_conv2d_values_and_gradients_match_lax(shape, kernel, features, strides, padding, path):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    k = rng.normal(size=(kernel, kernel, shape[-1], features)) / np.sqrt(kernel**2 * shape[-1])
    k = jnp.asarray(k, jnp.float32)  # Outputs ~1: Winograd F(4x4)'s error is ~2e-5 of them.
    ours = lambda x, k: conv.conv2d(x, k, strides, padding)
    assert _path(ours, x, k, strides=strides) == path
    _assert_values_and_grads_equal(ours, lambda x, k: _lax_conv(x, k, strides, padding), (x, k))


@pytest.mark.parametrize(("hw", "strides"), [((5, 7), 2), ((40, 36), 1)])  # im2col, xla
def test_conv_module_equals_lax_conv_plus_bias(hw, strides):
    x = _x((2, *hw, 3))
    mod = conv.Conv(4, 4, strides=strides, padding=1)
    params = mod.init(jax.random.key(0), x)["params"]
    assert set(params) == {"kernel", "bias"} and params["kernel"].shape == (4, 4, 3, 4)
    params = {**params, "bias": jnp.arange(4.0)}
    reference = lambda x, kernel, bias: (
        _lax_conv(x, kernel, (strides,) * 2, ((1, 1), (1, 1))) + bias
    )
    ours = lambda x, kernel, bias: mod.apply({"params": {"kernel": kernel, "bias": bias}}, x)
    _assert_values_and_grads_equal(ours, reference, (x, params["kernel"], params["bias"]))


@pytest.mark.parametrize(
    ("hw", "strides"), [((9, 8), 1), ((24, 24), 2), ((23, 26), 2), ((6, 7), 2)]
)
def test_same_conv_equals_flax_conv(hw, strides):
    """padding='SAME' gives `nn.Conv`'s outputs and gradients with the same parameters."""
    x = _x((2, *hw, 6))
    mod = conv.Conv(5, 3, strides=strides, padding="SAME")
    params = mod.init(jax.random.key(0), x)["params"]
    flax_conv = nn.Conv(5, (3, 3), strides=(strides, strides))
    assert jax.tree.map(jnp.shape, flax_conv.init(jax.random.key(0), x)["params"]) == jax.tree.map(
        jnp.shape, params
    )
    ours = lambda x, kernel: mod.apply({"params": {"kernel": kernel, "bias": params["bias"]}}, x)
    reference = lambda x, kernel: flax_conv.apply(
        {"params": {"kernel": kernel, "bias": params["bias"]}}, x
    )
    _assert_values_and_grads_equal(ours, reference, (x, params["kernel"]))


@pytest.mark.parametrize(
    ("size", "k", "s"), [(24, 3, 2), (23, 3, 2), (9, 3, 1), (10, 4, 2), (5, 1, 3)]
)
def test_same_padding_matches_lax(size, k, s):
    want = jax.lax.padtype_to_pads((size,), (k,), (s,), "SAME")[0]
    assert conv.same_padding(size, k, s) == tuple(want)


# ----------------------------------------------------------------------------- padded conv


@pytest.mark.parametrize("mode", ["reflect", "circular"])
@pytest.mark.parametrize(
    ("k", "s", "hw"),
    [
        (3, 1, (9, 12)),
        (9, 1, (10, 11)),
        (9, 1, (10, 12)),
        (7, 1, (8, 6)),
        (3, 2, (8, 10)),
        (3, 2, (9, 7)),
    ],
)
def test_padded_conv_equals_explicit_pad_and_valid_conv(mode, k, s, hw):
    x = _x((2, *hw, 3))
    padded = conv.PaddedConv(5, k, strides=s, padding=mode)
    params = padded.init(jax.random.key(0), x)
    np_mode = {"reflect": "reflect", "circular": "wrap"}[mode]
    xp = np.pad(np.asarray(x), ((0, 0), (k // 2,) * 2, (k // 2,) * 2, (0, 0)), mode=np_mode)
    want = (
        jax.lax.conv_general_dilated(
            jnp.asarray(xp),
            params["params"]["Conv_0"]["kernel"],
            (s, s),
            "VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        + params["params"]["Conv_0"]["bias"]
    )
    got = jax.jit(padded.apply)(params, x)
    assert got.shape == (2, -(-hw[0] // s), -(-hw[1] // s), 5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("k", "block", "channels", "features", "hw"),
    [
        (9, 2, 3, 8, (12, 10)),
        (9, 4, 3, 5, (8, 12)),
        (7, 2, 2, 4, (6, 8)),
        (5, 3, 1, 2, (9, 6)),
        (9, 4, 3, 8, (64, 64)),  # Large enough for the engine's tap-by-tap kernel gradient.
    ],
)
def test_space_to_depth_conv_values_and_gradients_match_lax(k, block, channels, features, hw):
    z = _x((2, hw[0] + k - 1, hw[1] + k - 1, channels))
    kernel = _x((k, k, channels, features), seed=1)
    ours = lambda z, w: conv.space_to_depth_conv(z, w, block)
    reference = lambda z, w: _lax_conv(z, w, (1, 1), "VALID")
    _assert_values_and_grads_equal(ours, reference, (z, kernel))


def test_padded_conv_takes_the_space_to_depth_path_with_unchanged_parameters():
    blocks, odd = _x((1, 8, 10, 3)), _x((1, 8, 11, 3))  # An odd width keeps the plain path.
    padded = conv.PaddedConv(6, 9)
    params = padded.init(jax.random.key(3), blocks)
    jax.tree.map(np.testing.assert_array_equal, params, padded.init(jax.random.key(3), odd))
    assert "f32[5,5,12,24]" in str(jax.make_jaxpr(padded.apply)(params, blocks))
    assert "f32[5,5,12,24]" not in str(jax.make_jaxpr(padded.apply)(params, odd))


@pytest.mark.parametrize("mode", ["reflect", "circular", "zero"])
@pytest.mark.parametrize("hw, channels", [((1, 1), 3), ((5, 7), 3), ((12, 9), 3), ((16, 16), 8)])
def test_upsample_conv_values_and_gradients_match_upsample_pad_and_valid_conv(mode, hw, channels):
    """The four-phase form equals a 3x3 VALID conv of the padded 2x nearest upsampling.

    16 x 16 with 8 channels takes the engine's tap-by-tap kernel gradient.
    """
    x, kernel = _x((2, *hw, channels)), _x((3, 3, channels, 4), seed=1)
    np_mode = {"reflect": "reflect", "circular": "wrap", "zero": "constant"}[mode]

    def reference(x, kernel):
        up = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
        up = jnp.pad(up, ((0, 0), (1, 1), (1, 1), (0, 0)), mode=np_mode)
        return _lax_conv(up, kernel, (1, 1), "VALID")

    ours = lambda x, k: conv.upsample_conv(x, k, mode)
    _assert_values_and_grads_equal(ours, reference, (x, kernel))
    assert conv.upsample_conv(x, kernel, mode).shape == (2, 2 * hw[0], 2 * hw[1], 4)


def test_padded_conv_upsample_has_the_parameters_of_resize_then_conv():
    x = _x((1, 6, 5, 8))
    resize_then_conv = conv.PaddedConv(4, 3)
    params = resize_then_conv.init(jax.random.key(0), jnp.repeat(jnp.repeat(x, 2, 1), 2, 2))
    fused = conv.PaddedConv(4, 3, upsample=2)
    assert jax.tree.map(jnp.shape, fused.init(jax.random.key(0), x)) == jax.tree.map(
        jnp.shape, params
    )
    want = resize_then_conv.apply(params, jnp.repeat(jnp.repeat(x, 2, 1), 2, 2))
    np.testing.assert_allclose(fused.apply(params, x), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="upsamples only by 2"):
        conv.PaddedConv(4, 5, upsample=2).init(jax.random.key(0), x)


def test_reflect_padding_too_small_input_is_a_clear_error():
    with pytest.raises(ValueError, match="too small"):
        conv.PaddedConv(4, 9).init(jax.random.key(0), jnp.zeros((1, 4, 4, 3)))


# ----------------------------------------------------------------------------- transposed conv


def _numpy_conv_transpose(x, w):
    """Direct scatter form of torch ConvTranspose2d(k=4, s=2, p=1); w is [Cin, Cout, 4, 4]."""
    b, h, wd, _ = x.shape
    out = np.zeros((b, 2 * h + 2, 2 * wd + 2, w.shape[1]))
    for i in range(h):
        for j in range(wd):
            out[:, 2 * i : 2 * i + 4, 2 * j : 2 * j + 4] += np.einsum(
                "bc,cfkl->bklf", x[:, i, j], w
            )
    return out[:, 1:-1, 1:-1]


def test_phase_conv_transpose_matches_scatter_definition():
    x = _x((2, 3, 5, 4))
    mod = conv.PhaseConvTranspose(6)
    params = mod.init(jax.random.key(1), x)
    kernel = np.asarray(conv.to_standard_kernel(params["params"]["phase_kernel"]))  # [4, 4, Cin, F]
    want = _numpy_conv_transpose(np.asarray(x, np.float64), kernel.transpose(2, 3, 0, 1))
    got = jax.jit(mod.apply)(params, x)
    assert got.shape == (2, 6, 10, 6)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_phase_conv_transpose_matches_torch():
    torch = pytest.importorskip("torch")
    x = _x((1, 4, 6, 3), seed=2)
    mod = conv.PhaseConvTranspose(5)
    params = mod.init(jax.random.key(2), x)
    kernel = np.array(conv.to_standard_kernel(params["params"]["phase_kernel"]))
    tconv = torch.nn.ConvTranspose2d(3, 5, 4, stride=2, padding=1)
    with torch.no_grad():
        tconv.weight.copy_(torch.from_numpy(kernel.transpose(2, 3, 0, 1).copy()))
        tconv.bias.zero_()
        want = (
            tconv(torch.from_numpy(np.array(x).transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
        )
    np.testing.assert_allclose(mod.apply(params, x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("hw", [(3, 5), (20, 18)])  # Phases through im2col, tap_grad.
def test_phase_conv_transpose_values_and_gradients_match_lax(hw):
    """Equals the input-dilated convolution with the flipped standard kernel, gradients too."""
    x = _x((2, *hw, 4))
    mod = conv.PhaseConvTranspose(6)
    params = mod.init(jax.random.key(1), x)["params"]
    params = {**params, "bias": jnp.linspace(-1.0, 1.0, 6)}

    def reference(x, phase_kernel, bias):
        flipped = conv.to_standard_kernel(phase_kernel)[::-1, ::-1]
        return _lax_conv(x, flipped, (1, 1), ((2, 2), (2, 2)), lhs_dilation=(2, 2)) + bias

    ours = lambda x, phase_kernel, bias: mod.apply(
        {"params": {"phase_kernel": phase_kernel, "bias": bias}}, x
    )
    _assert_values_and_grads_equal(ours, reference, (x, params["phase_kernel"], params["bias"]))


def test_phase_kernel_initialisation_has_the_fan_in_of_the_4x4_kernel():
    x = jnp.zeros((1, 2, 2, 64))
    params = conv.PhaseConvTranspose(64).init(jax.random.key(0), x)["params"]
    assert params["phase_kernel"].shape == (2, 2, 2, 2, 64, 64)
    # lecun_normal: std 1 / sqrt(fan_in), fan_in = 4 * 4 * 64 as for a [4, 4, 64, F] kernel.
    assert abs(float(jnp.std(params["phase_kernel"])) * 32.0 - 1.0) < 0.05


# ----------------------------------------------------------------------------- winograd


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize(
    ("shape", "features"),
    [((2, 7, 9, 3), 5), ((1, 13, 6, 16), 8), ((1, 1, 2, 4), 2), ((1, 10, 12, 32), 24)],
)
def test_winograd_conv3x3_values_and_gradients_match_lax(shape, features, tile):
    """Any H, W (tiles overhang and are cropped); autodiff through the transforms too."""
    x = _x(shape)
    kernel = _x((3, 3, shape[-1], features), seed=1) / np.sqrt(9 * shape[-1])
    ours = lambda x, kernel: conv.winograd_conv3x3(x, kernel, tile)
    reference = lambda x, kernel: _lax_conv(x, kernel, (1, 1), "SAME")
    _assert_values_and_grads_equal(ours, reference, (x, kernel))


@pytest.mark.parametrize("tile", [2, 4])
def test_winograd_conv_with_a_transformed_kernel_matches_lax(tile):
    x, kernel = _x((1, 11, 5, 128)), _x((3, 3, 128, 256), seed=1) / np.sqrt(9 * 128)
    u = conv.winograd_kernel(kernel, tile)
    assert len(u) == (tile + 2) ** 2 and conv.winograd_tile(u) == tile
    np.testing.assert_allclose(
        jax.jit(conv.winograd_conv)(x, u), _lax_conv(x, kernel, (1, 1), "SAME"), atol=1e-4
    )


def test_winograd_pays_on_wide_layers_with_small_maps_only():
    assert conv.winograd_pays((1, 32, 32, 512), 512, 4)
    assert conv.winograd_pays((1, 128, 128, 128), 128, 4)
    assert not conv.winograd_pays((1, 256, 256, 128), 128, 4)  # A large map.
    assert not conv.winograd_pays((1, 64, 64, 64), 128, 4)  # Few channels.
    assert conv.winograd_pays((1, 64, 64, 128), 256, 2)
    assert not conv.winograd_pays((1, 128, 128, 128), 256, 2)
