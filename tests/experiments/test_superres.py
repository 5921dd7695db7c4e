"""Super-resolution: a pixel-loss smoke run beats bicubic, the feature loss lowers the
feature distance, any input size works (tiled = untiled), the metrics' SR options, the CLI."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth import experiments, io
from neural_synth.losses import metrics
from neural_synth.models import layers, superres
from neural_synth.ops import color, resize
from tests import helpers

FINETUNE_STEPS = 100


def _train(workdir, variant, seed=0, **overrides):
    config = helpers.load_config("superres", variant)
    config.seed = seed
    for key, value in overrides.items():
        section, field = key.split("__")
        config[section][field] = value
    experiments.train_from_config(config, str(workdir), devices=jax.devices()[:1])
    with open(os.path.join(workdir, "eval.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def pixel_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("superres_pixel")
    return str(workdir), _train(workdir, "smoke_pixel")


def test_pixel_loss_smoke_run_beats_bicubic_on_held_out_images(pixel_run):
    workdir, result = pixel_run
    # Held-out photos (never training crops): PSNR on Y with the border cropped.
    # The gain differs by CPU (float summation order): 0.085 dB on a 2-core AMD
    # EPYC (AVX2), at least 0.1 dB on the AVX-512 Xeon where it was first set.
    assert result["model"]["psnr_y"] > result["bicubic"]["psnr_y"] + 0.05, result
    assert result["model"]["ssim_y"] > result["bicubic"]["ssim_y"], result
    assert os.listdir(os.path.join(workdir, "samples"))


def test_feature_loss_gives_a_lower_feature_distance_than_the_pixel_loss(pixel_run, tmp_path):
    # Both continue the pixel-loss run for the same steps on the same (new)
    # batches, one with the feature reconstruction loss, one with the per-pixel
    # loss; the VGG feature distance is measured on the held-out images.
    workdir, _ = pixel_run
    common = dict(seed=1, model__init_from=workdir, train__num_steps=FINETUNE_STEPS)
    pixel = _train(tmp_path / "pixel", "smoke_pixel", **common)
    feature = _train(tmp_path / "feature", "smoke", **common)
    # Measured at this scale: 1-2% lower after 100 steps (5-7% for the default
    # runs, benchmarks/RESULTS.md); early on, the per-pixel loss lowers even
    # the feature distance almost as fast as the feature loss does.
    assert feature["model"]["feature_distance"] < 0.995 * pixel["model"]["feature_distance"], (
        feature,
        pixel,
    )
    assert feature["model"]["feature_distance"] < feature["bicubic"]["feature_distance"]
    # The paper's trade-off: the feature loss pays in PSNR.
    assert feature["model"]["psnr_y"] < pixel["model"]["psnr_y"]


def test_init_from_needs_the_same_network(pixel_run):
    workdir, _ = pixel_run
    config = helpers.load_config("superres", "smoke")
    config.model.init_from = workdir
    config.model.width = 12
    with pytest.raises(ValueError, match="same network|with this network"):
        experiments.build(config)


def test_any_input_size_and_tiling_equals_untiled(pixel_run):
    workdir, _ = pixel_run
    exp, params = experiments.load_trained(workdir, "superres")
    image = io.sample_image("coffee", max_side=37)[:, :29]  # 25x29: not multiples of 4.
    out = exp.upscale(params, image)
    assert out.shape == (4 * image.shape[0], 4 * image.shape[1], 3)
    assert 0.0 <= out.min() and out.max() <= 1.0
    tiled = exp.upscale(params, image, tile=24)
    np.testing.assert_allclose(tiled, out, atol=2e-5)
    # High-resolution images of any size: crop to multiples of the scale first.
    hr = resize.modcrop(io.sample_image("astronaut", max_side=101), exp.scale)[None]
    assert hr.shape[1:3] == (100, 100)
    scores = exp.compare(params, hr)
    assert set(scores) == {"model", "bicubic"}
    with pytest.raises(ValueError, match="multiples of 4"):
        resize.low_resolution(jnp.zeros((1, 30, 32, 3)), factor=4)
    with pytest.raises(ValueError, match="at least 5 px"):
        exp.upscale(params, np.zeros((4, 40, 3), np.float32))


def test_network_starts_at_bicubic_and_its_receptive_field_is_bounded():
    x = jnp.asarray(np.random.default_rng(0).random((1, 15, 15, 3)), jnp.float32)
    net = superres.SuperResNet(scale=4, width=4, num_residual=1, upsample="resize")
    variables = net.init(jax.random.key(0), x)
    apply = jax.jit(net.apply)
    # Zero-initialised last layer: an untrained network is bicubic upsampling.
    want = resize.bicubic_resize(x, height=60, width=60)
    np.testing.assert_allclose(apply(variables, x), want, atol=1e-6)
    # The receptive radius bounds how far one input pixel reaches.
    noisy = jax.tree.map(lambda a: a + 0.1, variables)
    diff = apply(noisy, x.at[0, 7, 7].add(1.0)) - apply(noisy, x)
    rows = np.nonzero(np.abs(np.asarray(diff)).sum(axis=(0, 2, 3)))[0]
    reach = max(28 - rows.min(), rows.max() - 31)
    assert 0 < reach <= superres.receptive_radius(scale=4, num_residual=1)
    x8 = superres.SuperResNet(scale=8, width=4, num_residual=1)
    shapes = jax.eval_shape(lambda v: x8.apply(v, x), jax.eval_shape(x8.init, jax.random.key(0), x))
    assert shapes.shape == (1, 120, 120, 3)
    with pytest.raises(ValueError, match="Unsupported super-resolution scale"):
        superres.SuperResNet(scale=3).init(jax.random.key(0), x)


def test_pixel_shuffle_is_depth_to_space():
    x = np.arange(2 * 3 * 5 * 12, dtype=np.float32).reshape(2, 3, 5, 12)
    y = np.asarray(layers.pixel_shuffle(jnp.asarray(x), 2))
    assert y.shape == (2, 6, 10, 3)
    for i in range(2):
        for j in range(2):
            np.testing.assert_array_equal(
                y[:, i::2, j::2], x[..., (2 * i + j) * 3 : (2 * i + j + 1) * 3]
            )
    with pytest.raises(ValueError, match="divisible by 4"):
        layers.pixel_shuffle(jnp.zeros((1, 2, 2, 6)), 2)


def test_image_metrics_luminance_and_border():
    rng = np.random.default_rng(1)
    a = jnp.asarray(rng.random((2, 24, 20, 3)), jnp.float32)
    b = jnp.asarray(rng.random((2, 24, 20, 3)), jnp.float32)
    got = metrics.image_metrics(a, b, luminance=True, border=2)
    # By hand: BT.601 studio-range Y (as MATLAB's rgb2ycbcr), then PSNR on the crop.
    y = lambda x: (16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0
    ya, yb = y(np.asarray(a)[:, 2:-2, 2:-2]), y(np.asarray(b)[:, 2:-2, 2:-2])
    want = 10 * np.log10(1.0 / np.mean((ya - yb) ** 2, axis=(1, 2)))
    np.testing.assert_allclose(got["psnr"], want, rtol=1e-4)
    np.testing.assert_allclose(
        y(np.asarray(a)), 16 / 255 + 219 / 255 * np.asarray(color.luminance(a))[..., 0], atol=1e-5
    )
    with pytest.raises(ValueError, match="border"):
        metrics.image_metrics(a, b, border=10)


def test_cli_upsamples_a_photo(pixel_run, tmp_path):
    workdir, _ = pixel_run
    out, bicubic = tmp_path / "big.png", tmp_path / "bicubic.png"
    result = helpers.run_module(
        "scripts.superres",
        f"--workdir={workdir}",
        "--input=skimage:chelsea",
        "--max_side=45",
        f"--out={out}",
        f"--bicubic_out={bicubic}",
        "--tile=64",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert io.load_image(out).shape == io.load_image(bicubic).shape == (120, 180, 3)
