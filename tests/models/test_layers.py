"""Shared layers: padded convs equal their VALID form, phase transposed conv equals torch's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.models import layers


def _x(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


@pytest.mark.parametrize("mode", ["reflect", "circular"])
@pytest.mark.parametrize(
    ("k", "s", "hw"), [(3, 1, (9, 12)), (9, 1, (10, 11)), (3, 2, (8, 10)), (3, 2, (9, 7))]
)
def test_padded_conv_equals_explicit_pad_and_valid_conv(mode, k, s, hw):
    x = _x((2, *hw, 3))
    conv = layers.PaddedConv(5, k, strides=s, padding=mode)
    params = conv.init(jax.random.key(0), x)
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
    got = jax.jit(conv.apply)(params, x)
    assert got.shape == (2, -(-hw[0] // s), -(-hw[1] // s), 5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_reflect_padding_too_small_input_is_a_clear_error():
    with pytest.raises(ValueError, match="too small"):
        layers.PaddedConv(4, 9).init(jax.random.key(0), jnp.zeros((1, 4, 4, 3)))


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
    mod = layers.PhaseConvTranspose(6)
    params = mod.init(jax.random.key(1), x)
    kernel = np.asarray(params["params"]["kernel"])  # [4, 4, Cin, F]
    want = _numpy_conv_transpose(np.asarray(x, np.float64), kernel.transpose(2, 3, 0, 1))
    got = jax.jit(mod.apply)(params, x)
    assert got.shape == (2, 6, 10, 6)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_phase_conv_transpose_matches_torch():
    torch = pytest.importorskip("torch")
    x = _x((1, 4, 6, 3), seed=2)
    mod = layers.PhaseConvTranspose(5)
    params = mod.init(jax.random.key(2), x)
    tconv = torch.nn.ConvTranspose2d(3, 5, 4, stride=2, padding=1)
    with torch.no_grad():
        tconv.weight.copy_(
            torch.from_numpy(np.array(params["params"]["kernel"]).transpose(2, 3, 0, 1).copy())
        )
        tconv.bias.zero_()
        want = (
            tconv(torch.from_numpy(np.array(x).transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
        )
    np.testing.assert_allclose(mod.apply(params, x), want, rtol=1e-5, atol=1e-5)


def test_instance_norm_matches_numpy():
    x = _x((2, 5, 6, 3)) * 3 + 1
    params = layers.InstanceNorm().init(jax.random.key(0), x)
    got = layers.InstanceNorm().apply(params, x)
    xn = np.asarray(x, np.float64)
    want = (xn - xn.mean((1, 2), keepdims=True)) / np.sqrt(xn.var((1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conditional_instance_norm_one_hot_equals_single_style_and_blends_interpolate():
    x = _x((3, 4, 4, 2))
    cin = layers.ConditionalInstanceNorm(num_styles=3)
    params = cin.init(jax.random.key(0), x, jnp.ones((3, 3)) / 3)
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
    single = layers.InstanceNorm()
    outs = []
    for style in range(3):
        one_hot = jnp.asarray(np.eye(3)[[style] * 3], jnp.float32)
        got = cin.apply(params, x, one_hot)
        p = params["params"]
        want = single.apply({"params": {"scale": p["scale"][style], "bias": p["bias"][style]}}, x)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        outs.append(got)
    w = jnp.asarray([[0.25, 0.75, 0.0]] * 3)
    np.testing.assert_allclose(cin.apply(params, x, w), 0.25 * outs[0] + 0.75 * outs[1], atol=1e-5)
    with pytest.raises(ValueError, match="style_weights"):
        cin.apply(params, x, jnp.ones((3, 2)))


def test_captured_norm_stats_are_reused_on_a_crop():
    """Statistics captured on a whole image, fed back, normalise a crop like the whole."""
    x = _x((1, 8, 8, 3)) * 2 + 1
    norm = layers.InstanceNorm()
    params = norm.init(jax.random.key(0), x)
    whole, captured = norm.apply(params, x, mutable=[layers.NORM_STATS])
    crop = norm.apply({**params, **captured}, x[:, 2:6, 1:5])
    np.testing.assert_allclose(crop, whole[:, 2:6, 1:5], atol=1e-6)
    own = norm.apply(params, x[:, 2:6, 1:5])  # Without the captured statistics: differs.
    assert float(jnp.max(jnp.abs(own - whole[:, 2:6, 1:5]))) > 1e-2


def test_residual_block_with_identity_norm_adds_its_input():
    x = _x((1, 6, 6, 4))
    block = layers.ResidualBlock(4, norm_fn=lambda name: layers.InstanceNorm(name=name))
    params = block.init(jax.random.key(0), x)
    zeroed = jax.tree.map(jnp.zeros_like, params)  # Zero convs and norms: block = identity.
    np.testing.assert_allclose(block.apply(zeroed, x), x, atol=1e-6)
    assert float(jnp.max(jnp.abs(block.apply(params, x) - x))) > 1e-2
