"""Shared layers: norms match NumPy, captured statistics, upsampling, the image-size rule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from neural_synth.models import layers


def _x(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


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


def test_batch_stat_norm_uses_batch_statistics_and_matches_numpy():
    x = _x((3, 4, 5, 2)) * 3 + 1
    norm = layers.BatchStatNorm()
    params = norm.init(jax.random.key(0), x)
    assert set(params) == {"params"}  # No running averages.
    scale, bias = jnp.asarray([0.5, 2.0]), jnp.asarray([1.0, -1.0])
    got = jax.jit(norm.apply)({"params": {"scale": scale, "bias": bias}}, x)
    xn = np.asarray(x, np.float64)
    mean, var = xn.mean((0, 1, 2)), xn.var((0, 1, 2))
    want = (xn - mean) / np.sqrt(var + 1e-5) * np.asarray(scale) + np.asarray(bias)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape, groups", [((3, 6, 5, 16), 8), ((2, 4, 4, 12), 4), ((2, 7, 24), 8)])
def test_group_norm_matches_flax_values_gradients_and_parameters(shape, groups):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(0.4, 1.5, size=shape), jnp.float32)
    weights = jnp.asarray(rng.normal(size=shape), jnp.float32)
    ours, theirs = layers.GroupNorm(num_groups=groups), nn.GroupNorm(num_groups=groups)
    params = ours.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(
        jnp.shape, theirs.init(jax.random.key(0), x)
    )
    c = shape[-1]
    params = {"params": {"scale": jnp.linspace(0.5, 1.5, c), "bias": jnp.linspace(-0.2, 0.3, c)}}

    def loss(module, params, x):
        return jnp.sum(module.apply(params, x) * weights)

    @jax.jit
    def run(params, x):
        return [
            (m.apply(params, x), jax.grad(loss, argnums=(1, 2))(m, params, x))
            for m in (ours, theirs)
        ]

    (y, grads), (y_ref, grads_ref) = run(params, x)
    np.testing.assert_allclose(y, y_ref, atol=1e-5)
    for g, g_ref in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref), strict=True):
        np.testing.assert_allclose(g, g_ref, atol=1e-4 * float(np.abs(g_ref).max()))


def test_group_norm_rejects_indivisible_channels():
    with pytest.raises(ValueError, match="groups"):
        layers.GroupNorm(num_groups=4).init(jax.random.key(0), jnp.zeros((1, 4, 4, 6)))


def test_norm_layer_by_name():
    x = _x((2, 4, 4, 3))
    assert isinstance(layers.norm_layer("batch"), layers.BatchStatNorm)
    instance = layers.norm_layer("instance")
    assert "params" not in instance.init(jax.random.key(0), x)  # No affine parameters.
    none = layers.norm_layer("none")
    np.testing.assert_array_equal(none.apply(none.init(jax.random.key(0), x), x), x)
    with pytest.raises(ValueError, match="Unknown norm"):
        layers.norm_layer("group")
    with pytest.raises(ValueError, match="Unknown norm"):
        layers.check_norm("group")


def test_upsample_nearest_matches_numpy():
    x = _x((2, 3, 4, 5))
    want = np.asarray(x).repeat(2, axis=1).repeat(2, axis=2)
    np.testing.assert_array_equal(layers.upsample_nearest(x), want)
    assert layers.upsample_nearest(x, 3).shape == (2, 9, 12, 5)


def test_check_image_size_names_the_rule_and_the_fix():
    assert layers.check_image_size(np.int64(24), 32, multiple=8) == (24, 32)
    with pytest.raises(
        ValueError, match=r"multiples of 2\^3 = 8 px, got 30x20 \(width x height\); e.g. use 32x24 "
    ):
        layers.check_image_size(20, 30, multiple=8, what="images for a U-Net", fix="a smaller k")
    with pytest.raises(ValueError, match=r"\(resize\) or 24x16 \(crop\), .* or a smaller k\.$"):
        layers.check_image_size(20, 30, multiple=8, fix="a smaller k")
    with pytest.raises(ValueError, match=r"multiples of 6 px, got 6x4 .* use 6x6 .* 6x6 \(crop\)"):
        layers.check_image_size(4, 6, multiple=6)  # Below the multiple: not a multiple either.
    with pytest.raises(
        ValueError, match="^images for X must be at least 96 px per side, got 40x32"
    ):
        layers.check_image_size(32, 40, minimum=96, what="images for X")
    with pytest.raises(ValueError, match="size must be at least 1 px per side, got 8x0"):
        layers.check_image_size(0, 8, what="size")
    with pytest.raises(ValueError, match="whole-number sides, got 8x8.0"):
        layers.check_image_size(8.0, 8)


def test_to_signed_maps_unit_range_to_plus_minus_one():
    np.testing.assert_array_equal(layers.to_signed(jnp.asarray([0.0, 0.5, 1.0])), [-1.0, 0.0, 1.0])
