"""Tests for the style losses against NumPy (float64) and hand-checked cases."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.losses import gram
from neural_synth.losses import style as style_lib

LAYERS = {"relu1_1": (8, 8, 3), "relu2_1": (4, 4, 5)}
WEIGHTS = {"relu1_1": 0.5, "relu2_1": 2.0}


def _feature_dict(seed, batch=1, scale=1.0):
    rng = np.random.default_rng(seed)
    return {
        name: (scale * rng.normal(size=(batch, *shape))).astype(np.float32)
        for name, shape in LAYERS.items()
    }


def _np_gram(f, m=None):
    f = f.astype(np.float64)
    m = np.ones(f.shape[:3]) if m is None else m.astype(np.float64)
    return np.einsum("bhwc,bhwd,bhw->bcd", f, f, m) / m.sum(axis=(1, 2))[:, None, None]


def _np_style_loss(features, target_grams, weights, masks=None):
    """sum_l w_l mean((G_l - T_l)^2); masks per layer at feature resolution, or None."""
    total = 0.0
    for name, w in weights.items():
        g = _np_gram(features[name], None if masks is None else masks[name])
        total += w * np.mean(np.square(g - target_grams[name]))
    return total


def _jit_style_loss(**static):
    return jax.jit(functools.partial(style_lib.style_loss, **static))


def test_style_targets_compute_statistics_per_style():
    styles = [_feature_dict(1), _feature_dict(2, batch=2)]
    mask = np.random.default_rng(3).uniform(size=(2, 16, 16)).astype(np.float32)
    fn = jax.jit(functools.partial(style_lib.style_targets, layers=("relu2_1",)))
    targets = fn(styles, masks=[None, mask])
    assert len(targets) == 2 and set(targets[0]) == {"relu2_1"}
    np.testing.assert_allclose(targets[0]["relu2_1"], _np_gram(styles[0]["relu2_1"]), rtol=1e-5)
    mask_4x4 = mask.reshape(2, 4, 4, 4, 4).mean(axis=(2, 4))  # Area resize 16 -> 4.
    want = _np_gram(styles[1]["relu2_1"], mask_4x4)
    np.testing.assert_allclose(targets[1]["relu2_1"], want, rtol=1e-5, atol=1e-6)
    mean_std = style_lib.style_targets(styles[0], layers=("relu1_1",), kind="mean_std")
    assert isinstance(mean_std[0]["relu1_1"], tuple)


def test_style_loss_single_style_matches_numpy():
    features, style = _feature_dict(4, batch=2), _feature_dict(5)
    targets = style_lib.style_targets([style], layers=tuple(WEIGHTS))
    got = _jit_style_loss(layer_weights=WEIGHTS)(features, targets)
    want = _np_style_loss(features, {k: _np_gram(v) for k, v in style.items()}, WEIGHTS)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # A single dict of targets is the same as a list of one.
    np.testing.assert_allclose(
        style_lib.style_loss(features, targets[0], layer_weights=WEIGHTS), got, rtol=1e-6
    )


def test_style_loss_only_uses_weighted_layers():
    features, style = _feature_dict(4), _feature_dict(5)
    targets = style_lib.style_targets([style], layers=tuple(WEIGHTS))
    got = style_lib.style_loss(features, targets, layer_weights={"relu2_1": 1.0})
    want = np.mean(np.square(_np_gram(features["relu2_1"]) - _np_gram(style["relu2_1"])))
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("kind", ["mean", "mean_std"])
def test_style_loss_other_kinds_match_numpy(kind):
    features, style = _feature_dict(6, batch=2), _feature_dict(7)
    targets = style_lib.style_targets([style], layers=tuple(WEIGHTS), kind=kind)
    got = _jit_style_loss(layer_weights=WEIGHTS, kind=kind)(features, targets)
    want = 0.0
    for name, w in WEIGHTS.items():
        f, s = features[name].astype(np.float64), style[name].astype(np.float64)
        want += w * np.mean(np.square(f.mean(axis=(1, 2)) - s.mean(axis=(1, 2))))
        if kind == "mean_std":
            std = lambda a: np.sqrt(a.var(axis=(1, 2)) + 1e-5)
            want += w * np.mean(np.square(std(f) - std(s)))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_one_hot_blend_equals_single_style_loss():
    features = _feature_dict(8)
    targets = style_lib.style_targets([_feature_dict(9), _feature_dict(10)], layers=tuple(WEIGHTS))
    loss_fn = _jit_style_loss(layer_weights=WEIGHTS)
    blended = loss_fn(features, targets, blend_weights=jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(blended, loss_fn(features, [targets[1]]), rtol=1e-6)


def test_blend_of_two_is_the_normalized_weighted_sum():
    features = _feature_dict(11)
    targets = style_lib.style_targets([_feature_dict(12), _feature_dict(13)], layers=tuple(WEIGHTS))
    loss_fn = _jit_style_loss(layer_weights=WEIGHTS)
    single = [loss_fn(features, [t]) for t in targets]
    got = loss_fn(features, targets, blend_weights=jnp.array([1.0, 3.0]))
    np.testing.assert_allclose(got, 0.25 * single[0] + 0.75 * single[1], rtol=1e-5)
    uniform = loss_fn(features, targets)
    np.testing.assert_allclose(uniform, 0.5 * single[0] + 0.5 * single[1], rtol=1e-5)


def test_blending_losses_and_blending_targets_have_equal_gradients():
    features = _feature_dict(14, batch=2)
    targets = style_lib.style_targets([_feature_dict(15), _feature_dict(16)], layers=tuple(WEIGHTS))
    blend = np.array([0.3, 0.7], np.float32)
    averaged = jax.tree.map(lambda a, b: blend[0] * a + blend[1] * b, *targets)
    loss_blend = lambda f: style_lib.style_loss(
        f, targets, layer_weights=WEIGHTS, blend_weights=blend
    )
    loss_avg = lambda f: style_lib.style_loss(f, [averaged], layer_weights=WEIGHTS)
    grad_blend = jax.jit(jax.grad(loss_blend))(features)
    grad_avg = jax.jit(jax.grad(loss_avg))(features)
    for name in WEIGHTS:
        np.testing.assert_allclose(grad_blend[name], grad_avg[name], rtol=1e-4, atol=1e-6)
    # The values differ by the spread of the targets around their average only.
    spread = sum(
        w
        * sum(
            b * np.mean(np.square(t[name] - averaged[name]))
            for b, t in zip(blend, targets, strict=True)
        )
        for name, w in WEIGHTS.items()
    )
    np.testing.assert_allclose(loss_blend(features) - loss_avg(features), spread, rtol=1e-4)


def test_spatial_style_loss_matches_masked_numpy():
    features = _feature_dict(17, batch=2)
    styles = [_feature_dict(18), _feature_dict(19)]
    targets = style_lib.style_targets(styles, layers=tuple(WEIGHTS))
    left = np.zeros((16, 16), np.float32)
    left[:, :8] = 1.0
    masks = np.stack([left, 1.0 - left])  # [S, h, w] at twice relu1_1's resolution.
    got = jax.jit(functools.partial(style_lib.spatial_style_loss, layer_weights=WEIGHTS))(
        features, targets, masks
    )
    want = 0.0
    for s, style in enumerate(styles):
        layer_masks = {
            name: np.broadcast_to(
                masks[s].reshape(h, 16 // h, w, 16 // w).mean(axis=(1, 3)), (2, h, w)
            )
            for name, (h, w, _) in LAYERS.items()
        }
        target_grams = {k: _np_gram(v) for k, v in style.items()}
        want += _np_style_loss(features, target_grams, WEIGHTS, layer_masks)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_spatial_style_loss_with_full_mask_equals_style_loss():
    features = _feature_dict(20, batch=2)
    targets = style_lib.style_targets([_feature_dict(21)], layers=tuple(WEIGHTS))
    masks = np.ones((1, 2, 16, 16, 1), np.float32)  # [S, B, h, w, 1]
    got = style_lib.spatial_style_loss(features, targets, masks, layer_weights=WEIGHTS)
    want = style_lib.style_loss(features, targets, layer_weights=WEIGHTS)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_style_gradients_are_finite():
    features = _feature_dict(23, batch=2)
    targets = style_lib.style_targets([_feature_dict(24), _feature_dict(25)], layers=tuple(WEIGHTS))
    masks = np.zeros((2, 16, 16), np.float32)
    masks[0, :, :5] = 1.0  # Second region empty: must not give NaN.
    losses = {
        "style": lambda f: style_lib.style_loss(f, targets, layer_weights=WEIGHTS),
        "spatial": lambda f: style_lib.spatial_style_loss(f, targets, masks, layer_weights=WEIGHTS),
    }
    for name, loss_fn in losses.items():
        grads = jax.jit(jax.grad(loss_fn))(features)
        assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads)), name


def test_traced_blend_weights_under_jit():
    features = _feature_dict(26)
    targets = style_lib.style_targets([_feature_dict(27), _feature_dict(28)], layers=tuple(WEIGHTS))
    loss_fn = jax.jit(
        lambda f, b: style_lib.style_loss(f, targets, layer_weights=WEIGHTS, blend_weights=b)
    )
    got = loss_fn(features, jnp.array([2.0, 2.0]))
    want = style_lib.style_loss(features, targets, layer_weights=WEIGHTS)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_bad_inputs_raise_clear_errors():
    features = _feature_dict(29)
    targets = style_lib.style_targets([_feature_dict(30)], layers=tuple(WEIGHTS))
    with pytest.raises(ValueError, match="Unknown style statistic kind"):
        style_lib.style_loss(features, targets, layer_weights=WEIGHTS, kind="gramm")
    with pytest.raises(ValueError, match=r"Layers \['relu3_1'\] are missing from features"):
        style_lib.style_loss(features, targets, layer_weights={"relu3_1": 1.0})
    with pytest.raises(ValueError, match="missing from style_features"):
        style_lib.style_targets([features], layers=("relu3_1",))
    with pytest.raises(ValueError, match="non-empty dict"):
        style_lib.style_loss(features, targets, layer_weights={})
    with pytest.raises(ValueError, match="one weight per style"):
        style_lib.style_loss(features, targets, layer_weights=WEIGHTS, blend_weights=[0.5, 0.5])
    with pytest.raises(ValueError, match="non-negative"):
        style_lib.style_loss(
            features, targets * 2, layer_weights=WEIGHTS, blend_weights=[1.0, -1.0]
        )
    with pytest.raises(ValueError, match="same statistic kind"):
        style_lib.style_loss(features, targets, layer_weights=WEIGHTS, kind="mean")
    with pytest.raises(ValueError, match="same statistic kind"):
        style_lib.style_loss(features, targets, layer_weights=WEIGHTS, kind="mean_std")
    with pytest.raises(ValueError, match="one mask"):
        style_lib.style_targets([features], layers=("relu1_1",), masks=[None, None])
    with pytest.raises(ValueError, match="one region per style target"):
        style_lib.spatial_style_loss(features, targets, np.ones((2, 8, 8)), layer_weights=WEIGHTS)


def test_statistics_loss_equals_style_loss_blended_and_spatial():
    # Moved from tests/optimize/test_statistics.py: one loss from statistics serves both.
    def features(seed, shape=(2, 8, 6, 5)):
        return jax.random.normal(jax.random.key(seed), shape)

    feats = {"a": features(3), "b": features(4, (2, 4, 3, 7))}
    styles = [{"a": features(5), "b": features(6, (2, 4, 3, 7))} for _ in range(2)]
    targets = style_lib.style_targets(styles, layers=("a", "b"))
    weights = {"a": 0.5, "b": 2.0}
    blend = jnp.asarray([0.2, 0.6])
    stats = [{k: gram.style_statistic(v, "gram") for k, v in feats.items()}]
    np.testing.assert_allclose(
        style_lib.statistics_loss(stats, targets, layer_weights=weights, blend_weights=blend),
        style_lib.style_loss(feats, targets, layer_weights=weights, blend_weights=blend),
        rtol=1e-5,
    )
    masks = jnp.stack([jnp.ones((8, 6)).at[:, 3:].set(0), jnp.ones((8, 6)).at[:, :3].set(0)])
    regions = [
        {k: gram.style_statistic(v, "gram", mask=m[None]) for k, v in feats.items()} for m in masks
    ]
    np.testing.assert_allclose(
        style_lib.statistics_loss(regions, targets, layer_weights=weights),
        style_lib.spatial_style_loss(feats, targets, masks, layer_weights=weights),
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="one per target"):
        style_lib.statistics_loss(regions, targets, layer_weights=weights, blend_weights=blend)


def test_blend_weights_are_checked_and_normalized():
    np.testing.assert_allclose(style_lib.normalize_blend([1.0, 3.0], 2), [0.25, 0.75])
    np.testing.assert_allclose(style_lib.normalize_blend(None, 4), [0.25] * 4)
    traced = jax.jit(lambda b: style_lib.blend_factors(b, 2))(jnp.array([2.0, 6.0]))
    np.testing.assert_allclose(traced, [0.25, 0.75], rtol=1e-6)
    for bad in ([1.0], [-1.0, 2.0], [0.0, 0.0]):
        with pytest.raises(ValueError, match="style blend weights"):
            style_lib.normalize_blend(bad, 2)


def test_stacked_targets_per_example_loss_matches_numpy():
    styles = [_feature_dict(40), _feature_dict(41, scale=2.0)]
    targets = style_lib.stacked_targets(styles, WEIGHTS)
    assert targets.num_styles == 2 and targets.grams["relu2_1"].shape == (2, 5, 5)
    features = _feature_dict(42, batch=3)
    ids = np.array([1, 0, 1], np.int32)
    got = jax.jit(targets.loss)(features, ids)
    want = np.zeros(3)
    for name, w in WEIGHTS.items():
        grams = np.concatenate([_np_gram(s[name]) for s in styles])  # [2, C, C]
        norm = np.mean(grams**2)  # Over both styles.
        np.testing.assert_allclose(targets.layer_weights[name], w / norm, rtol=1e-5)
        g = _np_gram(features[name])
        want += w / norm * np.mean(np.square(g - grams[ids]), axis=(1, 2))
    assert got.shape == (3,)
    np.testing.assert_allclose(got, want, rtol=1e-4)
    first = targets.loss(features)  # No ids: every example against style 0.
    np.testing.assert_allclose(first, targets.loss(features, np.zeros(3, np.int32)), rtol=1e-6)
