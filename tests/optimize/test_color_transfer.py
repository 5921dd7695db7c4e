"""Tests of colour preservation, palette reduction, masks and coarse-to-fine helpers."""

import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.ops import color
from neural_synth.optimize import color_transfer, gatys, masks, multiscale, palette
from neural_synth.optimize import problem as problem_lib
from tests.optimize import common


@pytest.mark.parametrize("mode", color_transfer.MATCH_MODES)
def test_match_color_gives_reference_mean_and_covariance(mode):
    imgs = common.images()
    style, content = imgs["chelsea"], imgs["astronaut"]
    out = color_transfer.match_color(style, content, mode=mode, clip=False)
    mu, cov = color_transfer.color_stats(out)
    mu_c, cov_c = color_transfer.color_stats(content)
    np.testing.assert_allclose(mu, mu_c, atol=1e-5)
    np.testing.assert_allclose(cov, cov_c, atol=2e-5)
    mu_s, cov_s = color_transfer.color_stats(style)
    assert np.abs(cov_s - cov_c).max() > 1e-3  # The test is not trivial.
    clipped = color_transfer.match_color(style, content, mode=mode)
    assert clipped.min() >= 0 and clipped.max() <= 1
    np.testing.assert_allclose(color_transfer.color_stats(clipped)[0], mu_c, atol=0.03)


def test_match_color_modes_differ_but_keep_structure():
    imgs = common.images()
    a = color_transfer.match_color(imgs["chelsea"], imgs["astronaut"], clip=False)
    b = color_transfer.match_color(imgs["chelsea"], imgs["astronaut"], mode="sym", clip=False)
    assert not np.allclose(a, b, atol=1e-3)
    with pytest.raises(ValueError, match="Unknown colour matching mode"):
        color_transfer.match_color(a, b, mode="lab")


def test_histogram_mode_feeds_vgg_recoloured_styles():
    imgs = common.images()
    options = common.shallow_options(preserve_color="histogram")
    batch = problem_lib.style_batch(imgs["chelsea"], imgs["astronaut"][None], options, (32, 32))
    mu, _ = color_transfer.color_stats(batch[0])
    np.testing.assert_allclose(mu, color_transfer.color_stats(imgs["astronaut"])[0], atol=0.03)


def test_luminance_transfer_keeps_content_chroma():
    module, params = common.shallow_vgg()
    imgs = common.images()
    content = imgs["astronaut"]
    options = common.shallow_options(
        preserve_color="luminance", optimizer="adam", learning_rate=0.05, num_steps=3, init="noise"
    )
    out = gatys.synthesize(
        module, params, styles=[imgs["chelsea"]], content=content, options=options
    )[0]
    yiq_out = np.asarray(color.rgb_to_yiq(jnp.asarray(out)))
    yiq_in = np.asarray(color.rgb_to_yiq(jnp.asarray(content)))
    inside = np.all((out > 0.002) & (out < 0.998), axis=-1)  # Not clipped by the recombination.
    assert inside.mean() > 0.5
    np.testing.assert_allclose(yiq_out[inside][:, 1:], yiq_in[inside][:, 1:], atol=2e-3)
    # The luma did change: the optimization ran on it.
    assert np.abs(yiq_out[..., 0] - yiq_in[..., 0]).mean() > 0.02


def test_style_luminance_matches_content_luma_moments():
    imgs = common.images()
    y = color_transfer.style_luminance(imgs["brick"], imgs["astronaut"])
    y_c = color_transfer.luma(imgs["astronaut"])
    assert y.shape == (32, 32, 1)
    np.testing.assert_allclose(y.mean(), y_c.mean(), atol=0.02)
    np.testing.assert_allclose(y.std(), y_c.std(), rtol=0.1)


def test_combine_luminance_is_exact_before_clipping():
    rng = np.random.default_rng(0)
    content = rng.uniform(0.3, 0.7, size=(1, 8, 8, 3)).astype(np.float32)
    y = rng.uniform(0.4, 0.6, size=(1, 8, 8, 1)).astype(np.float32)
    rgb = color_transfer.combine_luminance(jnp.asarray(y), jnp.asarray(content))
    yiq = np.asarray(color.rgb_to_yiq(rgb))
    np.testing.assert_allclose(yiq[..., :1], y, atol=1e-5)
    np.testing.assert_allclose(
        yiq[..., 1:], np.asarray(color.rgb_to_yiq(content))[..., 1:], atol=1e-5
    )


def test_reduce_palette_limits_colours():
    image = common.images()["chelsea"]
    out = palette.reduce_palette(image, num_colors=4)
    assert out.shape == image.shape
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 4
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 100
    assert np.abs(out - image).mean() < 0.1  # Still the same picture.
    with pytest.raises(ValueError, match="num_colors"):
        palette.reduce_palette(image, num_colors=1)


def test_split_masks_and_pyramid_sizes():
    halves = masks.split("vertical", 2, height=4, width=6)
    np.testing.assert_array_equal(halves[0], [[1, 1, 1, 0, 0, 0]] * 4)
    np.testing.assert_array_equal(halves.sum(0), np.ones((4, 6)))
    rows = masks.split("horizontal", 3, height=6, width=2)
    np.testing.assert_array_equal(rows[1][:, 0], [0, 0, 1, 1, 0, 0])
    with pytest.raises(ValueError, match="one mask per style"):
        masks.check_masks(halves, 3)
    assert multiscale.pyramid_sizes(512, 384, num_scales=3) == [(128, 96), (256, 192), (512, 384)]
    with pytest.raises(ValueError, match="fewer scales"):
        multiscale.pyramid_sizes(64, 64, num_scales=3, min_side=32)
    up = multiscale.upsample(jnp.ones((2, 4, 4, 1)), 8, 8)
    assert up.shape == (2, 8, 8, 1) and np.allclose(up, 1.0)


def test_coarse_to_fine_runs_each_scale():
    module, params = common.shallow_vgg()
    reports = []
    options = common.shallow_options(
        num_scales=2, num_steps=2, coarse_steps=3, chunk_size=2, optimizer="adam"
    )
    out = gatys.synthesize(
        module,
        params,
        styles=[common.images()["brick"]],
        size=(32, 32),
        options=options,
        callback=reports.append,
    )
    assert out.shape == (1, 32, 32, 3)
    seen = [(r.scale, r.size, r.step, r.num_steps) for r in reports]
    assert seen == [(0, (16, 16), 2, 3), (0, (16, 16), 3, 3), (1, (32, 32), 2, 2)]
    assert reports[-1].images_fn().shape == (1, 32, 32, 3)
