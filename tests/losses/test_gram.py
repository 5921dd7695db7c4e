"""Tests for the style statistics against NumPy (float64) and hand-checked cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.losses import gram


def _features(shape=(2, 4, 6, 3), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _np_masked_gram(f, m):
    """sum_p m_p f_p f_p^T / sum_p m_p per batch element; f [B,H,W,C], m [B,H,W]."""
    f, m = f.astype(np.float64), m.astype(np.float64)
    return np.einsum("bhwc,bhwd,bhw->bcd", f, f, m) / m.sum(axis=(1, 2))[:, None, None]


@pytest.mark.parametrize("normalize", [True, False])
def test_gram_matches_numpy(normalize):
    f = _features()
    got = jax.jit(gram.gram, static_argnames="normalize")(f, normalize=normalize)
    flat = f.astype(np.float64).reshape(2, 24, 3)
    want = np.einsum("bpc,bpd->bcd", flat, flat) / (24 if normalize else 1)
    assert got.shape == (2, 3, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_gram_is_size_independent_for_tiled_features():
    f = _features((1, 3, 3, 4))
    tiled = np.tile(f, (1, 2, 3, 1))  # Same statistics over 6x more positions.
    np.testing.assert_allclose(gram.gram(tiled), gram.gram(f), rtol=1e-5, atol=1e-6)


def test_masked_gram_all_ones_equals_gram():
    f = _features()
    got = jax.jit(gram.masked_gram)(f, np.ones((2, 4, 6), np.float32))
    np.testing.assert_allclose(got, gram.gram(f), rtol=1e-6, atol=1e-6)


def test_masked_gram_half_mask_equals_gram_of_region_pixels():
    f = _features()
    mask = np.zeros((2, 4, 6, 1), np.float32)
    mask[:, :, :3] = 1.0  # Left half, given with a trailing channel axis.
    got = jax.jit(gram.masked_gram)(f, mask)
    for b in range(2):
        pixels = f[b][mask[b, ..., 0] > 0].astype(np.float64)  # [12, C]
        np.testing.assert_allclose(got[b], pixels.T @ pixels / 12, rtol=1e-5, atol=1e-6)


def test_masked_gram_soft_mask_matches_numpy():
    f = _features()
    m = np.random.default_rng(1).uniform(size=(2, 4, 6)).astype(np.float32)
    got = jax.jit(gram.masked_gram)(f, m)
    np.testing.assert_allclose(got, _np_masked_gram(f, m), rtol=1e-5, atol=1e-6)
    raw = gram.masked_gram(f, m, normalize=False)
    want_raw = np.einsum("bhwc,bhwd,bhw->bcd", f, f, m)
    np.testing.assert_allclose(raw, want_raw, rtol=1e-5, atol=1e-5)


def test_masked_gram_resizes_a_higher_resolution_mask():
    f = _features()
    rng = np.random.default_rng(2)
    small = (rng.uniform(size=(2, 4, 6)) > 0.5).astype(np.float32)
    small[:, 0, 0] = 1.0  # Never empty.
    big = np.repeat(np.repeat(small, 4, axis=1), 4, axis=2)  # [2, 16, 24], image resolution.
    got = jax.jit(gram.masked_gram)(f, big)
    np.testing.assert_allclose(got, _np_masked_gram(f, small), rtol=1e-5, atol=1e-6)


def test_mask_batch_of_one_broadcasts():
    f = _features()
    m = np.random.default_rng(3).uniform(size=(1, 8, 12)).astype(np.float32)
    got = gram.masked_gram(f, m)
    want = np.stack([gram.masked_gram(f[b : b + 1], m)[0] for b in range(2)])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_resize_mask_area_downsampling_non_integer_factor():
    m = np.arange(6, dtype=np.float32)[None, None, :]  # [1, 1, 6] -> width 4, scale 1.5.
    got = jax.jit(gram.resize_mask, static_argnames=("height", "width"))(m, height=1, width=4)
    # Output cells cover [0, 1.5), [1.5, 3), [3, 4.5), [4.5, 6) of the input pixels.
    want = [(0 + 0.5 * 1) / 1.5, (0.5 * 1 + 2) / 1.5, (3 + 0.5 * 4) / 1.5, (0.5 * 4 + 5) / 1.5]
    np.testing.assert_allclose(got[0, 0], want, rtol=1e-6)
    block = gram.resize_mask(np.arange(16.0).reshape(1, 4, 4), height=2, width=2)
    np.testing.assert_allclose(block[0], [[2.5, 4.5], [10.5, 12.5]], rtol=1e-6)


def test_resize_mask_upsampling_is_bilinear():
    m = np.random.default_rng(4).uniform(size=(2, 3, 2)).astype(np.float32)
    got = gram.resize_mask(m, height=6, width=5)
    want = jax.image.resize(m, (2, 6, 5), "linear")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_empty_mask_gives_zero_gram_and_finite_gradients():
    f = _features()
    zeros = np.zeros((2, 4, 6), np.float32)
    np.testing.assert_array_equal(gram.masked_gram(f, zeros), 0.0)
    grad = jax.grad(lambda x: jnp.sum(gram.masked_gram(x, zeros)))(f)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("masked", [False, True])
def test_mean_and_mean_std_match_numpy(masked):
    f = _features()
    m = np.random.default_rng(5).uniform(size=(2, 4, 6)).astype(np.float32)
    mask = m if masked else None
    w = (m if masked else np.ones_like(m)).astype(np.float64)[..., None]
    f64 = f.astype(np.float64)
    mu = (f64 * w).sum(axis=(1, 2)) / w.sum(axis=(1, 2))
    var = (np.square(f64 - mu[:, None, None]) * w).sum(axis=(1, 2)) / w.sum(axis=(1, 2))
    np.testing.assert_allclose(jax.jit(gram.mean)(f, mask=mask), mu, rtol=1e-5, atol=1e-6)
    got_mu, got_std = jax.jit(gram.mean_std)(f, mask=mask)
    np.testing.assert_allclose(got_mu, mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_std, np.sqrt(var + 1e-5), rtol=1e-5, atol=1e-6)


def test_style_statistic_dispatches():
    f = _features()
    m = np.ones((2, 4, 6), np.float32)
    fn = jax.jit(gram.style_statistic, static_argnums=1)
    np.testing.assert_allclose(fn(f, "gram"), gram.gram(f), rtol=1e-6)
    np.testing.assert_allclose(fn(f, "gram", mask=m), gram.gram(f), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fn(f, "mean"), gram.mean(f), rtol=1e-6)
    got = fn(f, "mean_std")
    assert isinstance(got, tuple) and len(got) == 2
    for a, b in zip(got, gram.mean_std(f), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("kind", gram.KINDS)
@pytest.mark.parametrize("masked", [False, True])
def test_gradients_are_finite(kind, masked):
    f = _features()
    f[1] = 0.5  # Constant features: std's eps must keep the gradient finite.
    mask = np.random.default_rng(6).uniform(size=(2, 8, 12)).astype(np.float32) if masked else None
    loss_fn = lambda x: sum(
        jnp.sum(t) for t in jax.tree.leaves(gram.style_statistic(x, kind, mask=mask))
    )
    grad = jax.jit(jax.grad(loss_fn))(f)
    assert grad.shape == f.shape and np.all(np.isfinite(grad))


def test_bad_inputs_raise_clear_errors():
    f = _features()
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        gram.gram(f[0])
    with pytest.raises(ValueError, match="Unknown style statistic kind 'cov'"):
        gram.style_statistic(f, "cov")
    with pytest.raises(ValueError, match="mask of shape"):
        gram.masked_gram(f, np.ones((4, 6), np.float32))
    with pytest.raises(ValueError, match="mask of shape"):
        gram.masked_gram(f, np.ones((2, 4, 6, 3), np.float32))
    with pytest.raises(ValueError, match="batch size 3 does not match"):
        gram.masked_gram(f, np.ones((3, 4, 6), np.float32))


def test_gram_custom_gradient_equals_autodiff_of_the_einsum():
    features = jnp.asarray(np.random.default_rng(3).normal(size=(2, 5, 4, 3)), jnp.float32)
    probe = jnp.asarray(np.random.default_rng(4).normal(size=(2, 3, 3)), jnp.float32)

    def einsum_gram(f):
        flat = f.reshape(2, 20, 3)
        return jnp.einsum("bpc,bpd->bcd", flat, flat) / 20

    want = jax.grad(lambda f: jnp.sum(einsum_gram(f) * probe))(features)
    got = jax.grad(lambda f: jnp.sum(gram.gram(f) * probe))(features)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _einsum_masked_gram(f, mask):
    """Autodiff reference: sum_p m_p f_p f_p^T / sum_p m_p with the mask resized."""
    m = gram.resize_mask(mask, height=f.shape[1], width=f.shape[2])[..., None]
    b, h, w, c = f.shape
    g = jnp.einsum("bpc,bpd->bcd", (f * m).reshape(b, h * w, c), f.reshape(b, h * w, c))
    return g / jnp.maximum(jnp.sum(m, axis=(1, 2, 3)), gram.MASK_EPS)[:, None, None]


@pytest.mark.parametrize("masked", [False, True])
def test_gram_value_and_gradient_equal_autodiff_of_the_einsum(masked):
    # Moved from tests/optimize/test_statistics.py with the fast Gram gradient.
    f = jax.random.normal(jax.random.key(0), (2, 8, 6, 5))
    mask = (jax.random.uniform(jax.random.key(1), (2, 4, 3)) > 0.4).astype(jnp.float32)
    ones = jnp.ones((2, 8, 6))
    ref_fn = lambda x: _einsum_masked_gram(x, mask if masked else ones)
    fast_fn = lambda x: gram.style_statistic(x, "gram", mask=mask if masked else None)
    np.testing.assert_allclose(fast_fn(f), ref_fn(f), rtol=1e-5, atol=1e-6)
    target = ref_fn(jax.random.normal(jax.random.key(2), (2, 8, 6, 5)))
    loss = lambda fn: lambda x: jnp.sum(jnp.square(fn(x) - target) * jnp.arange(25.0).reshape(5, 5))
    np.testing.assert_allclose(
        jax.grad(loss(fast_fn))(f), jax.grad(loss(ref_fn))(f), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("mask_batch", [1, 2])
def test_weighted_gram_sum_weight_gradient_equals_autodiff(mask_batch):
    f = jax.random.normal(jax.random.key(3), (2, 4, 3, 5))
    weights = jax.random.uniform(jax.random.key(4), (mask_batch, 4, 3))
    probe = jax.random.normal(jax.random.key(5), (2, 5, 5))

    def einsum_sum(x, w):
        flat = x.reshape(2, 12, 5)
        return jnp.einsum("bpc,bpd->bcd", (x * w[..., None]).reshape(2, 12, 5), flat)

    loss = lambda fn: lambda x, w: jnp.sum(fn(x, w) * probe)
    want = jax.grad(loss(einsum_sum), argnums=(0, 1))(f, weights)
    got = jax.jit(jax.grad(loss(gram.weighted_gram_sum), argnums=(0, 1)))(f, weights)
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", gram.KINDS)
def test_statistics_from_position_sums_of_two_halves_equal_the_whole(kind):
    f = _features(seed=7)
    mask = np.random.default_rng(8).uniform(size=(2, 4, 6)).astype(np.float32)
    halves = [np.zeros_like(mask), np.zeros_like(mask)]
    halves[0][:, :2], halves[1][:, 2:] = mask[:, :2], mask[:, 2:]
    sums = [gram.position_sums(jnp.asarray(f), jnp.asarray(m), kind) for m in halves]
    total = jax.tree.map(jnp.add, *sums)
    got = jax.jit(gram.statistic_from_sums, static_argnums=2)(total, jnp.sum(mask, (1, 2)), kind)
    want = gram.style_statistic(f, kind, mask=mask)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
