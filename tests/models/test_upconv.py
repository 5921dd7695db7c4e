"""Zero unpooling, its fast convolution, and the up-convolutional generator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.models import upconv


def _literal(x, kernel):
    """conv(unpool(x)) written out: the reference for `UnpoolConv`."""
    k = kernel.shape[0]
    pad = (k // 2, k - 1 - k // 2)
    return jax.lax.conv_general_dilated(
        upconv.unpool(x), kernel, (1, 1), (pad, pad), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def test_unpool_puts_each_value_top_left_with_zeros_elsewhere():
    x = jnp.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
    want = np.array(
        [
            [1, 0, 2, 0],
            [0, 0, 0, 0],
            [3, 0, 4, 0],
            [0, 0, 0, 0],
        ],
        np.float32,
    )
    np.testing.assert_array_equal(jax.jit(upconv.unpool)(x)[0, ..., 0], want)
    y = upconv.unpool(jnp.arange(8.0).reshape(1, 1, 2, 4), factor=3)  # Channels stay apart.
    assert y.shape == (1, 3, 6, 4)
    np.testing.assert_array_equal(y[0, 0, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(y[0, 0, 3], [4, 5, 6, 7])
    assert float(jnp.abs(y).sum()) == float(jnp.arange(8.0).sum())


def test_unpool_gradient_is_the_top_left_subsample():
    x = jax.random.normal(jax.random.key(0), (2, 3, 5, 4))
    w = jax.random.normal(jax.random.key(1), (2, 6, 10, 4))
    grad = jax.jit(jax.grad(lambda v: jnp.sum(w * upconv.unpool(v))))(x)
    np.testing.assert_array_equal(grad, w[:, ::2, ::2])


@pytest.mark.parametrize(("k", "features"), [(5, 4), (5, 24), (3, 20), (4, 8)])
def test_unpool_conv_equals_the_literal_form(k, features):
    # features <= 16 takes the merged single-convolution path, more the four phases.
    x = jax.random.normal(jax.random.key(0), (2, 5, 6, 7))
    layer = upconv.UnpoolConv(features, k)

    @jax.jit  # One program: eager flax init alone compiles op by op, slowly.
    def values_and_grads(key, x):
        params = layer.init(key, x)
        kernel = params["params"]["kernel"]
        y = layer.apply(params, x)
        w = jnp.cos(jnp.arange(y.size, dtype=jnp.float32)).reshape(y.shape)
        got = jax.grad(lambda p, v: jnp.sum(w * layer.apply(p, v)), argnums=(0, 1))(params, x)
        want = jax.grad(lambda kk, v: jnp.sum(w * _literal(v, kk)), argnums=(0, 1))(kernel, x)
        return y, _literal(x, kernel), (got[0]["params"]["kernel"], got[1]), want

    y, literal, got, want = values_and_grads(jax.random.key(1), x)
    assert y.shape == (2, 10, 12, features)
    np.testing.assert_allclose(y, literal, atol=1e-5)
    np.testing.assert_allclose(got[0], want[0], atol=1e-4)  # Kernel gradient.
    np.testing.assert_allclose(got[1], want[1], atol=1e-4)  # Input gradient.


@pytest.mark.parametrize("upsample", ["unpool", "resize"])
def test_generator_shapes_and_ranges(upsample):
    net = upconv.UpconvGenerator(
        image_size=16, base_size=4, width=32, min_width=8, hidden=16, upsample=upsample
    )
    identity = jax.nn.one_hot(jnp.array([0, 2, 1]), 3)
    view = upconv.view_vector(jnp.array([0.0, 90.0, 400.0]), jnp.array([10.0, 20.0, 30.0]))

    @jax.jit
    def outputs_and_grads(key):
        params = net.init(key, identity, view)
        grads = jax.grad(lambda p: jnp.mean(net.apply(p, identity, view)[0]))(params)
        return net.apply(params, identity, view), grads

    (rgb, logits), grads = outputs_and_grads(jax.random.key(0))
    assert rgb.shape == (3, 16, 16, 3) and logits.shape == (3, 16, 16, 1)
    assert float(rgb.min()) >= 0 and float(rgb.max()) <= 1
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert float(jnp.abs(grads["params"]["identity_fc"]["kernel"][0]).sum()) > 0


def test_view_vector_is_periodic_in_azimuth():
    a = upconv.view_vector(jnp.array([10.0, 370.0, -350.0]), jnp.array([20.0] * 3))
    np.testing.assert_allclose(a[1], a[0], atol=1e-5)
    np.testing.assert_allclose(a[2], a[0], atol=1e-5)


def test_bad_sizes_and_options_fail_clearly():
    identity, view = jnp.zeros((1, 3)), jnp.zeros((1, 4))
    with pytest.raises(ValueError, match="image_size must be base_size"):
        jax.eval_shape(
            upconv.UpconvGenerator(image_size=48).init, jax.random.key(0), identity, view
        )
    with pytest.raises(ValueError, match="Unknown upsample"):
        net = upconv.UpconvGenerator(image_size=16, upsample="deconv")
        jax.eval_shape(net.init, jax.random.key(0), identity, view)
