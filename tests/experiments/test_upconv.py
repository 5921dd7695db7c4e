"""The up-convolutional generator experiment: smoke training, evaluation, inference, CLI."""

import json
import os

import jax
import numpy as np
import pytest
from PIL import Image

from neural_synth import experiments, io
from neural_synth.train import prng
from tests import helpers


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(workdir, trained params) of a smoke run: 16 px, 12 objects, 6 training azimuths."""
    config = helpers.load_config("upconv", "smoke")
    workdir = str(tmp_path_factory.mktemp("upconv"))
    state = experiments.train_from_config(config, workdir, devices=jax.devices()[:1])
    return workdir, jax.device_get(state.params)


@pytest.fixture(scope="module")
def trained(run):
    """(experiment, params) restored from the run's checkpoint, as the CLI gets them."""
    return experiments.load_trained(run[0], "upconv")


def test_smoke_run_lowers_the_held_out_error(run, trained):
    workdir, _ = run
    exp, _ = trained
    with open(os.path.join(workdir, "eval.json"), encoding="utf-8") as f:
        after = json.load(f)
    assert after["step"] == exp.config.train.num_steps
    assert after["num_views"] == 12 * 6  # 12 objects x 6 held-out azimuths x 1 elevation.
    init_key = jax.random.split(prng.key(exp.config.seed), 3)[0]  # As the trainer draws it.
    before = exp.evaluate(jax.jit(exp.init_state)(init_key), None)
    mse = lambda r: r["held_out_views"]["rgb_mse"]
    assert mse(after) < 0.8 * mse(before), (mse(before), mse(after))
    # The baseline does not depend on the generator.
    assert after["nearest_training_view"] == before["nearest_training_view"]
    assert os.path.exists(os.path.join(workdir, "samples"))


def test_checkpoint_round_trip(run, trained):
    _, params = run
    exp, restored = trained
    jax.tree.map(np.testing.assert_array_equal, restored, params)
    identity = exp.one_hot(3)
    want = exp.views(params, identity, 45.0, 20.0)
    got = exp.views(restored, identity, 45.0, 20.0)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_interpolation_ends_are_the_two_identities(trained):
    exp, params = trained
    strip = exp.interpolate(params, 2, 7, steps=5, azimuth=40.0, elevation=20.0)
    assert strip.shape == (5, 16, 16, 3)
    first = exp.views(params, exp.one_hot(2), 40.0, 20.0)[0][0]
    last = exp.views(params, exp.one_hot(7), 40.0, 20.0)[0][0]
    np.testing.assert_allclose(strip[0], first, atol=1e-6)
    np.testing.assert_allclose(strip[-1], last, atol=1e-6)
    assert np.abs(first - last).mean() > 1e-3  # Two different objects.
    assert np.abs(strip[2] - first).mean() > 1e-4 and np.abs(strip[2] - last).mean() > 1e-4
    frames = exp.turntable(params, 2, num_frames=4, elevation=20.0)
    np.testing.assert_allclose(
        frames[0], exp.views(params, exp.one_hot(2), 0.0, 20.0)[0][0], atol=1e-6
    )
    with pytest.raises(ValueError, match=r"identity must be in 0\.\.11"):
        exp.one_hot(12)


def test_cli_rotate_interpolate_render(run, tmp_path):
    workdir, _ = run
    gif, strip, view = (str(tmp_path / n) for n in ("r.gif", "i.png", "x.png"))
    common = ("scripts.upconv", "--workdir", workdir)
    result = helpers.run_module(*common, "rotate", "--id", "3", "--frames", "6", "--out", gif)
    assert result.returncode == 0, result.stderr
    with Image.open(gif) as im:
        assert im.n_frames == 6 and im.size == (32, 32)  # 16 px, enlarged 2x.
    result = helpers.run_module(
        *common, "interpolate", "--from", "3", "--to", "7", "--steps", "4", "--out", strip
    )
    assert result.returncode == 0, result.stderr
    assert io.load_image(strip).shape == (2 + 34, 2 + 4 * 34, 3)  # One row of 4, 2 px gaps.
    result = helpers.run_module(
        *common, "render", "--id", "3", "--azimuth", "40", "--truth", "--out", view
    )
    assert result.returncode == 0, result.stderr
    assert io.load_image(view).shape == (32, 64, 3)  # Generated | true.
    bad = helpers.run_module(*common, "render", "--id", "99", "--out", view)
    assert bad.returncode == 1 and "identity must be in 0..11" in bad.stderr
    assert "Traceback" not in bad.stderr
    wrong = helpers.run_module(*common, "rotate", "--id", "3", "--out", strip)
    assert wrong.returncode == 1 and "use a .gif file name" in wrong.stderr
