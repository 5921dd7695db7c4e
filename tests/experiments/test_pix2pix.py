"""pix2pix experiment: 1 vs 4 devices, a short run, checkpoints, inference, CLI."""

import json
import os

import jax
import numpy as np
import optax
import pytest

from neural_synth import experiments, io
from neural_synth.train import checkpoint, prng
from tests import helpers


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def smoke_config(data_dir, **train):
    config = helpers.load_config("pix2pix", "smoke")
    config.data.data_dir = data_dir
    config.train.update(train)
    return config


# ----------------------------------------------------------------------------- devices


def test_one_and_four_devices_give_same_parameters(data_dir):
    assert len(jax.devices()) >= 4, "conftest fakes 4 CPU devices"
    exp = experiments.build(smoke_config(data_dir))
    # SGD makes each update proportional to its gradient (Adam's first step is
    # ~sign(g), which turns float noise in tiny gradients into flips).
    exp.g_tx = exp.d_tx = optax.sgd(0.1)
    params_1, metrics_1 = helpers.one_step(exp, jax.devices()[:1])
    params_4, metrics_4 = helpers.one_step(exp, jax.devices()[:4])
    # Batch norm over the global batch and the same dropout masks on 1 and 4 devices.
    for name in ("loss/d", "loss/g_l1", "loss/g_gan"):
        np.testing.assert_allclose(metrics_1[name], metrics_4[name], rtol=1e-5)
    init = jax.device_get(exp.init_state(prng.key(0)).params)
    for p0, p1, p4 in zip(*(jax.tree.leaves(p) for p in (init, params_1, params_4)), strict=True):
        update_1, update_4 = p1 - p0, p4 - p0
        assert np.abs(update_1 - update_4).max() <= 1e-3 * np.abs(update_1).max() + 1e-8
    for net in ("generator", "discriminator"):  # Both networks took their step.
        moved = max(
            float(np.abs(a - b).max())
            for a, b in zip(jax.tree.leaves(init[net]), jax.tree.leaves(params_1[net]), strict=True)
        )
        assert moved > 1e-5, net


# ----------------------------------------------------------------------------- a short run


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    """(workdir, final state, held-out metrics of the initial state) of a short smoke run."""
    workdir = str(tmp_path_factory.mktemp("pix2pix_run"))
    config = smoke_config(
        data_dir,
        num_steps=100,  # Held-out L1 is best around here; the 135 crops overfit later.
        decay_fraction=0.0,
        log_every_steps=50,
        checkpoint_every_steps=100,
        eval_every_steps=100,
        summary_every_steps=100,
    )
    exp = experiments.build(config)
    init_key = jax.random.split(prng.key(config.seed), 3)[0]  # As the trainer splits it.
    before = exp.evaluate(exp.init_state(init_key), None)
    final = experiments.train_from_config(config, workdir)
    return workdir, final, before


def test_short_run_improves_held_out_l1(trained):
    workdir, _, before = trained
    after = json.load(open(os.path.join(workdir, "eval.json")))
    assert after["step"] == 100 and after["num_examples"] == before["num_examples"] == 16
    assert after["l1"] < 0.9 * before["l1"], (before, after)
    assert after["psnr"] > before["psnr"]
    grid = io.load_image(os.path.join(workdir, "samples", "input_output_target_0000100.png"))
    # 8 rows of input | output | target (2 px gaps; the saved grid adds a 2 px border).
    assert grid.shape == (2 + 8 * 34 + 4, 2 + 3 * 34 + 4, 3)


def test_checkpoint_round_trip_and_translate(trained):
    workdir, final, _ = trained
    exp, params = experiments.load_trained(workdir, "pix2pix")
    want = jax.device_get(final.params)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)
    images = exp.pairs("test")[0][:2] / np.float32(255)  # [2, 32, 32, 3]
    out = exp.translate(params, images, seed=3)
    np.testing.assert_array_equal(out, exp.translate(want, images, seed=3))
    # Dropout is on at inference (inference_dropout) and switchable.
    assert np.abs(out - exp.translate(params, images, seed=4)).max() > 1e-4
    quiet = exp.translate(params, images, deterministic=True)
    np.testing.assert_array_equal(quiet, exp.translate(params, images, seed=9, deterministic=True))
    direct = exp.generate(params["generator"], images, prng.key(3), deterministic=False)
    np.testing.assert_allclose(out, direct, atol=1e-5)  # A multiple of 8: no padding.


def test_translate_larger_and_odd_sizes(trained):
    exp, params = experiments.load_trained(trained[0], "pix2pix")
    image = io.sample_image("coffee", max_side=70)  # 47x70: not multiples of 8.
    out = exp.translate(params, image)
    assert out.shape == image.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    with pytest.raises(ValueError, match="at least 8 px per side"):
        exp.translate(params, image[:7])


def test_sizes_are_checked_and_non_square_crops_work(data_dir):
    config = smoke_config(data_dir)
    config.data.update(crop_size=(30, 30), load_size=(36, 36))
    with pytest.raises(ValueError, match=r"multiples of 2\^3 = 8 .* got 30x30"):
        experiments.build(config)
    config.data.update(crop_size=(40, 40))
    with pytest.raises(ValueError, match="must not exceed"):
        experiments.build(config)
    config.data.update(crop_size=(32, 48), load_size=(36, 52))
    exp = experiments.build(config)
    batch = next(exp.train_batches(seed=0, start_step=0, batch_size=2))
    assert batch["input"].shape == batch["target"].shape == (2, 32, 48, 3)
    params = jax.device_get(exp.init_state(prng.key(0)).params)
    assert exp.translate(params, batch["input"]).shape == (2, 32, 48, 3)


def test_train_batches_are_reproducible(data_dir):
    exp = experiments.build(smoke_config(data_dir))
    a = next(exp.train_batches(seed=1, start_step=7, batch_size=3))
    batches = exp.train_batches(seed=1, start_step=5, batch_size=3)
    b = [next(batches) for _ in range(3)][2]  # Step 7.
    np.testing.assert_array_equal(a["input"], b["input"])
    np.testing.assert_array_equal(a["target"], b["target"])
    assert 0.0 <= a["input"].min() and a["target"].max() <= 1.0


def test_load_trained_rejects_other_runs(tmp_path):
    with open(tmp_path / "config.json", "w") as f:
        json.dump({"experiment": "marker"}, f)
    with pytest.raises(ValueError, match="not a .pix2pix. run"):
        experiments.load_trained(str(tmp_path), "pix2pix")
    with pytest.raises(FileNotFoundError):
        checkpoint.load_run_config(str(tmp_path / "nowhere"))


# ----------------------------------------------------------------------------- CLI


def test_cli_edges_translate_and_errors(trained, tmp_path):
    photo, edges_png, out = tmp_path / "photo.png", tmp_path / "edges.png", tmp_path / "out.png"
    io.save_image(photo, io.sample_image("chelsea", max_side=120))  # 79x120
    result = helpers.run_module(
        "scripts.pix2pix", "edges", f"--input={photo}", f"--out={edges_png}", "--max_side=64"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = io.load_image(edges_png)
    assert lines.shape == (43, 64, 3) and set(np.unique(lines)) <= {0.0, 1.0}
    assert 0.02 < (lines == 0).mean() < 0.5  # Some, not all, pixels are edges.

    run = lambda *a: helpers.run_module("scripts.pix2pix", f"--workdir={trained[0]}", *a)
    result = run(f"--input={edges_png}", f"--out={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert io.load_image(out).shape == (43, 64, 3)

    tiny = tmp_path / "tiny.png"
    io.save_image(tiny, np.ones((6, 40, 3), np.float32))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    for bad, message in ((tiny, "at least 8 px per side"), (broken, "Cannot read image")):
        result = run(f"--input={bad}", f"--out={tmp_path / 'x.png'}")
        assert result.returncode == 1, result.stderr[-2000:]
        assert result.stderr.strip().startswith("error:") and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
