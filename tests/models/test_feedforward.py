"""Texture and transformation networks: shapes, size rules, styles, tileability, receptive field."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.models import feedforward as ff
from neural_synth.models import layers


def _random_params(params, seed=0):
    """Every leaf redrawn (norm scales/biases too), so no parameter is a no-op."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: jnp.asarray(rng.normal(0, 0.3, p.shape), jnp.float32), params)


@pytest.mark.parametrize("hw", [(32, 32), (24, 40), (36, 20)])
def test_transform_net_keeps_any_multiple_of_4_size(hw):
    net = ff.TransformNet(width=4, num_residual=1)
    x = jnp.full((2, *hw, 3), 0.5)
    variables = net.init(jax.random.key(0), x)
    out = jax.jit(net.apply)(variables, x)
    assert out.shape == (2, *hw, 3)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_transform_net_size_rule_error():
    net = ff.TransformNet(width=4, num_residual=1)
    with pytest.raises(ValueError, match=r"multiples of 2\^2 = 4 px, got 32x30 \(width x height\)"):
        net.init(jax.random.key(0), jnp.zeros((1, 30, 32, 3)))


def _style_params(cin_params, style_weights):
    """Single-style params whose norms carry the given blend of the CIN norms."""

    def pick(path, leaf):
        names = [getattr(k, "key", None) for k in path]
        if names[-1] in ("scale", "bias") and leaf.ndim == 2:
            return jnp.asarray(style_weights) @ leaf
        return leaf

    return jax.tree_util.tree_map_with_path(pick, cin_params)


def test_conditional_net_one_hot_equals_single_style_net_and_blends_interpolate():
    x = jnp.asarray(np.random.default_rng(0).random((2, 16, 20, 3)), jnp.float32)
    multi = ff.TransformNet(width=4, num_residual=2, num_styles=3)
    single = ff.TransformNet(width=4, num_residual=2)
    params = _random_params(multi.init(jax.random.key(0), x, jnp.ones((2, 3)) / 3)["params"])
    for weights in ([0.0, 1.0, 0.0], [0.3, 0.0, 0.7]):
        w = jnp.asarray([weights] * 2)
        got = multi.apply({"params": params}, x, w)
        want = single.apply({"params": _style_params(params, weights)}, x)
        np.testing.assert_allclose(got, want, atol=1e-5)
    one = multi.apply({"params": params}, x, jnp.asarray([[1.0, 0, 0]] * 2))
    other = multi.apply({"params": params}, x, jnp.asarray([[0, 0, 1.0]] * 2))
    assert float(jnp.max(jnp.abs(one - other))) > 1e-2  # Styles differ.
    with pytest.raises(ValueError, match="give style_weights"):
        multi.apply({"params": params}, x)


def test_texture_net_shapes_and_size_rule():
    net = ff.TextureNet(num_scales=3, width=4)
    noise = ff.sample_noise(jax.random.key(0), 3, 2, 16, 24)
    assert [n.shape for n in noise] == [(2, 16, 24, 3), (2, 8, 12, 3), (2, 4, 6, 3)]
    variables = net.init(jax.random.key(1), noise)
    assert net.apply(variables, noise).shape == (2, 16, 24, 3)
    with pytest.raises(ValueError, match="multiples of 4"):
        ff.noise_shapes(3, 1, 18, 24)


@pytest.mark.parametrize(("padding", "periodic"), [("circular", True), ("reflect", False)])
def test_circular_padding_makes_textures_tileable(padding, periodic):
    """With circular padding, rolling the noise by a multiple of 2^(K-1) rolls the output."""
    net = ff.TextureNet(num_scales=3, width=4, padding=padding)
    noise = ff.sample_noise(jax.random.key(0), 3, 1, 16, 16)
    variables = net.init(jax.random.key(1), noise)
    shift = 8  # Output pixels; scale k rolls by shift / 2^k.
    rolled = [jnp.roll(n, (shift >> k, shift >> k), axis=(1, 2)) for k, n in enumerate(noise)]
    a = jnp.roll(net.apply(variables, noise), (shift, shift), axis=(1, 2))
    b = net.apply(variables, rolled)
    assert bool(jnp.allclose(a, b, atol=1e-5)) == periodic


def _measured_radius(fn, size):
    """Largest |dy| or |dx| from the centre at which an input pixel affects the centre output."""
    x = jnp.asarray(np.random.default_rng(0).random((1, size, size, 3)), jnp.float32)
    c = size // 2
    grad = jax.grad(lambda im: jnp.sum(fn(im)[0, c, c]))(x)
    ys, xs = np.nonzero(np.abs(np.asarray(grad[0])).sum(-1) > 0)
    return max(np.abs(ys - c).max(), np.abs(xs - c).max())


def test_transform_receptive_radius_matches_the_network():
    net = ff.TransformNet(width=2, num_residual=1)
    x = jnp.zeros((1, 96, 96, 3))
    variables = {"params": _random_params(net.init(jax.random.key(0), x)["params"])}
    # With free instance-norm statistics every output sees the whole image; the
    # radius holds for fixed (captured) statistics, which is how tiles run.
    photo = jnp.asarray(np.random.default_rng(1).random((1, 96, 96, 3)), jnp.float32)
    _, stats = net.apply(variables, photo, mutable=[layers.NORM_STATS])
    measured = _measured_radius(lambda im: net.apply({**variables, **stats}, im), 96)
    stated = ff.transform_receptive_radius(1)
    assert stated - 3 <= measured <= stated, (measured, stated)
