"""Tests of the Gatys loss, its gradient, the compiled loop and texture synthesis."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth import mesh as mesh_lib
from neural_synth.losses import style
from neural_synth.models import vgg
from neural_synth.optimize import gatys, loop, masks, objective
from neural_synth.optimize import options as options_lib
from neural_synth.optimize import problem as problem_lib
from tests.optimize import common


def _problem(options, *, content=True, region_masks=None, blend=(0.7, 0.3), size=(32, 32)):
    module, params = common.shallow_vgg()
    imgs = common.images()
    return problem_lib.build_problem(
        module,
        vgg.freeze({"params": params}),
        styles=[imgs["chelsea"], imgs["brick"]],
        content=imgs["astronaut"][None] if content else None,
        size=size,
        full_size=size,
        options=options,
        blend_weights=None if region_masks is not None else blend,
        region_masks=region_masks,
    )


def _np_gram(f, mask=None):
    """f: [B, H, W, C] -> [B, C, C], optionally weighted by mask [H, W]."""
    b, h, w, c = f.shape
    flat = f.reshape(b, h * w, c).astype(np.float64)
    if mask is None:
        return np.einsum("bpc,bpd->bcd", flat, flat) / (h * w)
    m = mask.reshape(1, h * w, 1).astype(np.float64)
    return np.einsum("bpc,bpd->bcd", flat * m, flat) / m.sum()


def _block_mean(mask, factor):
    h, w = mask.shape
    return mask.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def _np_features(image):
    module, params = common.shallow_vgg()
    feats = module.apply({"params": params}, jnp.asarray(image), layers=("relu1_1", "relu2_1"))
    return {k: np.asarray(v, np.float64) for k, v in feats.items()}


def _test_image():
    rng = np.random.default_rng(1)
    return rng.uniform(-0.1, 1.1, size=(1, 32, 32, 3)).astype(np.float32)  # Some out of range.


def test_loss_terms_equal_numpy_blend_and_content():
    options = common.shallow_options(
        style_weight=3.0,
        content_weight=2.0,
        tv_weight=0.5,
        range_weight=7.0,
        style_layer_weights=(1.0, 0.25),
    )
    problem = _problem(options)
    x = _test_image()
    terms = jax.jit(objective.loss_terms, static_argnums=2)(
        jnp.asarray(x), problem.data, problem.spec
    )

    imgs = common.images()
    feats = _np_features(x)
    style_feats = [_np_features(imgs[n][None]) for n in ("chelsea", "brick")]
    blend = np.array([0.7, 0.3])
    style = 0.0
    for layer, w in (("relu1_1", 1.0), ("relu2_1", 0.25)):
        targets = [_np_gram(s[layer]) for s in style_feats]
        norm = sum(b * np.mean(t**2) for b, t in zip(blend, targets, strict=True))
        g = _np_gram(feats[layer])
        style += (
            3.0
            * w
            / norm
            * sum(b * np.mean((g - t) ** 2) for b, t in zip(blend, targets, strict=True))
        )
    p = _np_features(imgs["astronaut"][None])["relu2_1"]
    content = 2.0 / np.mean(p**2) * np.mean((feats["relu2_1"] - p) ** 2)
    tv = 0.5 * (np.mean(np.diff(x, axis=1) ** 2) + np.mean(np.diff(x, axis=2) ** 2))
    out_of_range = 7.0 * np.mean((x - np.clip(x, 0, 1)) ** 2)
    np.testing.assert_allclose(float(terms["style"]), style, rtol=2e-4)
    np.testing.assert_allclose(float(terms["content"]), content, rtol=2e-4)
    np.testing.assert_allclose(float(terms["tv"]), tv, rtol=1e-5)
    np.testing.assert_allclose(float(terms["range"]), out_of_range, rtol=1e-5)
    assert out_of_range > 0


def test_spatial_loss_equals_numpy_masked_grams():
    region = masks.split("vertical", 2, height=32, width=32)
    options = common.shallow_options(content_weight=0.0, range_weight=0.0)
    problem = _problem(options, content=False, region_masks=region)
    x = _test_image()
    terms = objective.loss_terms(jnp.asarray(x), problem.data, problem.spec)

    imgs = common.images()
    feats = _np_features(x)
    style_feats = [_np_features(imgs[n][None]) for n in ("chelsea", "brick")]
    style = 0.0
    for layer, factor in (("relu1_1", 1), ("relu2_1", 2)):
        targets = [_np_gram(s[layer]) for s in style_feats]
        norm = np.mean([np.mean(t**2) for t in targets])  # Uniform over regions.
        for s, target in enumerate(targets):
            g = _np_gram(feats[layer], _block_mean(region[s], factor))
            style += 10.0 / norm * np.mean((g - target) ** 2)
    np.testing.assert_allclose(float(terms["style"]), style, rtol=2e-4)
    assert set(terms) == {"style"}


def test_gradient_matches_directional_finite_differences():
    options = common.shallow_options(tv_weight=0.1, range_weight=0.0)
    problem = _problem(options, size=(16, 16))
    loss = jax.jit(functools.partial(objective.total_loss, spec=problem.spec))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(0.2, 0.8, size=(1, 16, 16, 3)), jnp.float32)
    grad = jax.grad(loss)(x, problem.data)
    for seed in range(3):
        v = jnp.asarray(np.random.default_rng(seed + 10).standard_normal(x.shape), jnp.float32)
        v = v / jnp.linalg.norm(v)
        eps = 2e-3  # Truncation error ~0.5% here; float32 rounding ~0.1%.
        numeric = (loss(x + eps * v, problem.data) - loss(x - eps * v, problem.data)) / (2 * eps)
        analytic = jnp.vdot(grad, v)
        np.testing.assert_allclose(float(numeric), float(analytic), rtol=2e-2)
    # The frozen fast path gives the same gradient as plain autodiff through VGG.
    plain = problem.data.replace(vgg={"params": problem.data.vgg["params"]})
    np.testing.assert_allclose(jax.grad(loss)(x, plain), grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_compiled_chunks_equal_single_jitted_steps(optimizer):
    # One layer keeps the two compilations (loop and single step) short.
    options = common.shallow_options(
        optimizer=optimizer,
        learning_rate=0.05,
        style_layers=("relu1_1",),
        content_layers=("relu1_1",),
    )
    problem = _problem(options, size=(16, 16))
    opt = loop.make_optimizer(optimizer, learning_rate=0.05)
    x0 = gatys.initial_params(options, batch=1, size=(16, 16))
    scale = loop.lbfgs_scale(x0.size) if optimizer == "lbfgs" else 1.0
    runner = loop.Loop(
        functools.partial(objective.total_loss, spec=problem.spec),
        opt,
        is_lbfgs=optimizer == "lbfgs",
        clip=optimizer == "adam",
        chunk_size=4,
        scale=scale,
    )
    reports = []
    chunked = runner.run(jnp.array(x0), problem.data, num_steps=6, callback=reports.append)
    assert [r.step for r in reports] == [4, 6]

    step = jax.jit(runner.step)  # Works on params / scale.
    x, state, losses = x0 / scale, opt.init(x0 / scale), []
    for _ in range(6):
        x, state, value = step(x, state, problem.data)
        losses.append(float(value))
    np.testing.assert_allclose(np.asarray(chunked), np.asarray(x) * scale, atol=2e-5)
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(reports[-1].loss, losses[-1], rtol=1e-4)


def test_texture_synthesis_reduces_gram_loss_by_a_large_factor():
    module, params = common.shallow_vgg()
    brick = common.images()["brick"]
    options = common.shallow_options(num_steps=30, chunk_size=10, seed=3)
    layers = {"relu1_1": 1.0, "relu2_1": 1.0}

    def gram_loss(image):
        feats = module.apply({"params": params}, jnp.asarray(image), layers=tuple(layers))
        target = module.apply({"params": params}, jnp.asarray(brick[None]), layers=tuple(layers))
        targets = style.style_targets([target], layers=tuple(layers))
        return float(style.style_loss(feats, targets, layer_weights=layers))

    start = gram_loss(gatys.initial_params(options, batch=1, size=(32, 32)))
    out = gatys.synthesize(module, params, styles=[brick], size=(32, 32), options=options)
    assert out.shape == (1, 32, 32, 3) and out.min() >= 0 and out.max() <= 1
    factor = start / gram_loss(out)
    assert factor > 1000, f"Gram loss fell only {factor:.1f}x"  # Measured: ~4e5.


def test_batch_over_four_devices_equals_one_device():
    if jax.device_count() < 4:
        pytest.skip("needs 4 (fake) devices")
    options = common.shallow_options(optimizer="adam", content_weight=0.0, num_steps=3)
    problem = _problem(options, content=False, size=(16, 16))
    x0 = gatys.initial_params(options, batch=4, size=(16, 16))
    one = gatys.optimize_scale(
        jnp.array(x0), problem, options, num_steps=3, mesh=mesh_lib.make_mesh(jax.devices()[:1])
    )
    four = gatys.optimize_scale(
        jnp.array(x0), problem, options, num_steps=3, mesh=gatys.data_mesh(4)
    )
    assert len(four.sharding.device_set) == 4
    np.testing.assert_allclose(np.asarray(one), np.asarray(four), atol=1e-5)
    assert not np.allclose(np.asarray(four[0]), np.asarray(four[1]))  # Different seeds.


def test_bad_options_raise_clear_errors():
    module, params = common.shallow_vgg()
    brick = common.images()["brick"]
    with pytest.raises(ValueError, match="Unknown vgg19 style layer"):
        options_lib.check_options(
            options_lib.GatysOptions(style_layers=("relu9_1",)), "vgg19", has_content=False
        )
    with pytest.raises(ValueError, match="need a content image"):
        options_lib.check_options(
            options_lib.GatysOptions(init="content"), "vgg19", has_content=False
        )
    with pytest.raises(ValueError, match="too small"):
        gatys.synthesize(
            module, params, styles=[brick], size=(8, 8), options=options_lib.GatysOptions()
        )
    with pytest.raises(ValueError, match="style blend weights"):
        gatys.synthesize(
            module,
            params,
            styles=[brick],
            size=(16, 16),
            blend_weights=[1.0, 2.0],
            options=common.shallow_options(),
        )
