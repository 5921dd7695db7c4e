"""The DeepWarp experiment: smoke training beats the input, checkpoints, 1 vs 4 devices, CLI."""

import json
import os

import jax
import numpy as np
import optax
import pytest
from PIL import Image

from neural_synth import experiments, io
from neural_synth.train import prng
from tests import helpers


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(workdir, trained params) of a smoke run: 60 steps of batch 16, 16-channel stages."""
    config = helpers.load_config("deepwarp", "smoke")
    workdir = str(tmp_path_factory.mktemp("deepwarp"))
    state = experiments.train_from_config(config, workdir, devices=jax.devices()[:1])
    return workdir, jax.device_get(state.params)


@pytest.fixture(scope="module")
def trained(run):
    """(experiment, params) restored from the run's checkpoint, as the CLI gets them."""
    return experiments.load_trained(run[0], "deepwarp")


def test_smoke_run_beats_the_input_on_held_out_eyes(run, trained):
    workdir, _ = run
    exp, _ = trained
    with open(os.path.join(workdir, "eval.json"), encoding="utf-8") as f:
        result = json.load(f)
    assert result["step"] == exp.config.train.num_steps
    assert result["num_pairs"] == 8 * 3  # 8 held-out eyes x 3 redirections.
    held = result["held_out_identities"]
    assert set(held["per_angle"]) == {"pitch-15", "pitch+15", "yaw+10"}
    assert held["mse"] < 0.8 * held["input_mse"], held
    for name, scores in held["per_angle"].items():
        assert scores["mse"] < scores["input_mse"], name
    # The identity baseline is the input's error, whatever the network.
    init_key = jax.random.split(prng.key(exp.config.seed), 3)[0]  # As the trainer draws it.
    before = exp.evaluate(jax.jit(exp.init_state)(init_key), None)["held_out_identities"]
    assert before["input_mse"] == held["input_mse"]
    # Untrained, the network returns its input slightly mixed with the palette.
    np.testing.assert_allclose(before["mse"], held["input_mse"], rtol=0.1)
    assert os.path.exists(os.path.join(workdir, "samples"))


def test_checkpoint_round_trip(run, trained):
    _, params = run
    exp, restored = trained
    jax.tree.map(np.testing.assert_array_equal, restored, params)
    eye = exp.sample_eye(2)
    np.testing.assert_array_equal(
        exp.redirect(restored, eye, [0.0, 15.0]), exp.redirect(params, eye, [0.0, 15.0])
    )


def test_one_and_four_devices_give_the_same_step():
    assert len(jax.devices()) >= 4, "conftest fakes 4 CPU devices"
    exp = experiments.build(helpers.load_config("deepwarp", "smoke"))
    exp.tx = optax.sgd(1.0)  # The update is the gradient (Adam's first step is ~sign(g)).
    params_1, metrics_1 = helpers.one_step(exp, jax.devices()[:1])
    params_4, metrics_4 = helpers.one_step(exp, jax.devices()[:4])
    np.testing.assert_allclose(metrics_1["loss/mse"], metrics_4["loss/mse"], rtol=1e-5)
    init = jax.device_get(jax.jit(exp.init_state)(prng.key(0)).params)
    leaves = list(zip(*(jax.tree.leaves(p) for p in (init, params_1, params_4)), strict=True))
    floor = 1e-6 * max(float(np.abs(p1 - p0).max()) for p0, p1, _ in leaves)
    for p0, p1, p4 in leaves:
        update_1, update_4 = p1 - p0, p4 - p0
        assert np.abs(update_1 - update_4).max() <= 1e-3 * np.abs(update_1).max() + floor
    assert max(float(np.abs(p1 - p0).max()) for p0, p1, _ in leaves) > 1e-5  # It moved.


def test_redirect_any_size_and_its_errors(trained):
    exp, params = trained
    eye = exp.sample_eye(1)
    assert eye.shape == (41, 51, 3)
    direct, _ = exp.predict(
        params, eye[None], exp.mean_landmarks[None], np.array([[0.0, 10.0]], np.float32)
    )
    np.testing.assert_allclose(exp.redirect(params, eye, [0.0, 10.0])[0], np.clip(direct[0], 0, 1))
    big = io.resize(eye, size=(82, 102))
    out = exp.redirect(params, big, [[0.0, -15.0], [10.0, 0.0]], landmarks=exp.mean_landmarks * 2)
    assert out.shape == (2, 82, 102, 3) and 0.0 <= out.min() and out.max() <= 1.0
    with pytest.raises(ValueError, match=r"pitch change of 20 degrees is outside the trained"):
        exp.redirect(params, eye, [0.0, 20.0])
    with pytest.raises(ValueError, match="landmarks must be 7 finite"):
        exp.redirect(params, eye, [0.0, 5.0], landmarks=np.zeros((6, 2)))


def test_cli_redirects_and_sweeps(run, trained, tmp_path):
    workdir, _ = run
    exp, _ = trained
    path = str(tmp_path / "eye.png")
    io.save_image(path, io.resize(exp.sample_eye(4), size=(60, 75)))  # Not the model's size.
    out, gif = str(tmp_path / "o.png"), str(tmp_path / "s.gif")
    common = ("scripts.gaze", "--workdir", workdir, "--image", path)
    result = helpers.run_module(*common, "--pitch", "15", "--out", out)
    assert result.returncode == 0, result.stderr
    assert io.load_image(out).shape == (60, 75, 3)
    result = helpers.run_module(*common, "--sweep", "--frames", "3", "--out", gif)
    assert result.returncode == 0, result.stderr
    with Image.open(gif) as im:
        assert im.n_frames == 4 and im.size == (75, 60)  # -15, 0, +15, then 0 again.
    assert io.load_image(str(tmp_path / "s.png")).shape == (2 + 62, 2 + 3 * 77, 3)
    bad = helpers.run_module(*common, "--pitch", "40", "--out", out)
    assert bad.returncode == 1 and "outside the trained range" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    missing = helpers.run_module(
        "scripts.gaze", "--workdir", workdir, "--image", "nope.png", "--out", out
    )
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
