"""Tests that tiled loss, gradient and targets equal the whole-image computation."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.losses import gram
from neural_synth.models import vgg
from neural_synth.optimize import masks, objective, tiling
from tests.optimize import common
from tests.optimize.test_gatys import _problem, _test_image


def test_halo_covers_the_receptive_field():
    assert tiling.halo("vgg19", ("relu5_1",)) == 96  # Radius 85, rounded up to 16.
    assert tiling.halo("vgg19", ("relu1_1", "relu2_1")) == 6  # Radius 5, rounded up to 2.
    assert vgg.pooling_stride("vgg19", ("relu4_2",)) == 8
    shape_plan = tiling.plan(64, 48, core=16, margin=6, align=2)
    assert shape_plan.window == (28, 28) and len(shape_plan.starts) == 12
    assert shape_plan.starts.min() >= 0 and shape_plan.starts[:, 0].max() == 64 - 28
    with pytest.raises(ValueError, match="multiples of 2"):
        tiling.plan(63, 48, core=16, margin=6, align=2)


@pytest.mark.parametrize("statistic, spatial", [("gram", True), ("mean_std", False)])
def test_tiled_loss_and_gradient_equal_whole_image(statistic, spatial):
    options = common.shallow_options(statistic=statistic, tv_weight=0.1, range_weight=3.0)
    region = masks.split("vertical", 2, height=64, width=64) if spatial else None
    problem = _problem(options, size=(64, 64), region_masks=region)
    tiled = dataclasses.replace(problem.spec, tile_size=16)
    x = jnp.asarray(_test_image().repeat(2, axis=1).repeat(2, axis=2))  # [1, 64, 64, 3]

    def value_and_grad(spec):
        fn = jax.value_and_grad(functools.partial(objective.total_loss, spec=spec))
        return jax.jit(fn)(x, problem.data)

    value, grad = value_and_grad(problem.spec)
    tiled_value, tiled_grad = value_and_grad(tiled)
    np.testing.assert_allclose(float(tiled_value), float(value), rtol=1e-5)
    np.testing.assert_allclose(tiled_grad, grad, rtol=1e-4, atol=1e-5 * float(jnp.abs(grad).max()))


def test_tiled_features_and_statistics_equal_whole_image():
    module, params = common.shallow_vgg()
    variables = {"params": params}
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (2, 64, 48, 3)), jnp.float32)
    layers = ("relu1_1", "relu2_1")
    whole = module.apply(variables, x, layers=layers)
    tiled = tiling.features(module, variables, x, layers=layers, tile_size=16)
    for name in layers:
        np.testing.assert_array_equal(tiled[name], whole[name])
    stats = tiling.style_statistics(module, variables, x, layers=layers, kind="gram", tile_size=16)
    for name in layers:
        np.testing.assert_allclose(stats[name], gram.gram(whole[name]), rtol=1e-5, atol=1e-6)
