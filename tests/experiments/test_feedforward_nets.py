"""Texture and stylization networks: smoke training, checkpoint round trip, inference CLIs."""

import json
import os

import jax
import numpy as np
import pytest

from neural_synth import experiments, io
from neural_synth.train import checkpoint, prng
from tests import helpers


def _losses(workdir):
    with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line)["loss/total"] for line in f if "loss/total" in line]


def _train(tmp_path_factory, name, variant="smoke", **overrides):
    config = helpers.load_config(name, variant)
    for key, value in overrides.items():
        section, field = key.split("__")
        config[section][field] = value
    workdir = str(tmp_path_factory.mktemp(name))
    state = experiments.train_from_config(config, workdir, devices=jax.devices()[:1])
    return workdir, jax.device_get(state.params)


@pytest.fixture(scope="module")
def texture_run(tmp_path_factory):
    return _train(tmp_path_factory, "texture_net", loss__diversity_weight=0.1)


@pytest.fixture(scope="module")
def stylize_run(tmp_path_factory):
    return _train(
        tmp_path_factory,
        "stylize_net",
        style__images=("skimage:immunohistochemistry", "skimage:hubble_deep_field"),
    )


def _held_out_batch(exp):
    """A batch the run never trained on (another seed)."""
    return next(exp.train_batches(seed=12345, start_step=0, batch_size=4))


@pytest.mark.parametrize(
    ("run", "name"), [("texture_run", "texture_net"), ("stylize_run", "stylize_net")]
)
def test_smoke_training_reduces_the_loss(run, name, request):
    workdir, params = request.getfixturevalue(run)
    assert len(_losses(workdir)) == 4 and os.listdir(os.path.join(workdir, "samples"))
    exp = experiments.build(checkpoint.load_run_config(workdir))
    init_key = jax.random.split(prng.key(exp.config.seed), 3)[0]  # As the trainer draws it.
    initial = jax.device_get(exp.init_state(init_key).params)
    batch = _held_out_batch(exp)
    before, _ = exp.loss_fn(initial, batch)
    after, _ = exp.loss_fn(params, batch)
    assert float(after) < 0.7 * float(before), (float(before), float(after))


def test_texture_checkpoint_round_trip_and_tiling(texture_run):
    workdir, params = texture_run
    exp, restored = experiments.load_trained(workdir, "texture_net")
    want = exp.generate(params, height=64, width=96, num=2, seed=5)
    got = exp.generate(restored, height=64, width=96, num=2, seed=5)
    np.testing.assert_array_equal(got, want)
    assert float(np.abs(want[0] - want[1]).mean()) > 1e-3  # Different noise, different texture.
    # Tiles of 32 px with the full halo, statistics of the whole (it fits): untiled result.
    tiled = exp.generate(restored, height=64, width=96, num=2, seed=5, tile=32)
    np.testing.assert_allclose(tiled, want, atol=1e-5)


def test_stylize_checkpoint_round_trip_blend_and_tiling(stylize_run):
    workdir, params = stylize_run
    exp, restored = experiments.load_trained(workdir, "stylize_net")
    image = io.sample_image("chelsea", max_side=90)  # 60x90: not a multiple of 4.
    style = exp.blend_weights([0.0, 1.0])
    want = exp.stylize(params, image, blend_weights=style)
    assert want.shape == image.shape
    np.testing.assert_array_equal(exp.stylize(restored, image, blend_weights=style), want)
    first = exp.stylize(restored, image, blend_weights=exp.blend_weights([1.0, 0.0]))
    assert float(np.abs(first - want).mean()) > 1e-3  # The two styles differ.
    tiled = exp.stylize(restored, image, blend_weights=style, tile=16)
    np.testing.assert_allclose(tiled, want, atol=1e-5)
    with pytest.raises(ValueError, match="2 non-negative numbers"):
        exp.blend_weights([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="at least 16 px"):
        exp.stylize(restored, image[:8], blend_weights=style)


def test_texture_cli_writes_the_requested_size(texture_run, tmp_path):
    workdir, _ = texture_run
    out = str(tmp_path / "t.png")
    result = helpers.run_module(
        "scripts.texture_net", f"--workdir={workdir}", "--size=80x48", f"--out={out}"
    )
    assert result.returncode == 0, result.stderr
    assert io.load_image(out).shape == (48, 80, 3)
    bad = helpers.run_module(
        "scripts.texture_net", f"--workdir={workdir}", "--size=80x50", f"--out={out}"
    )
    assert bad.returncode == 1 and "multiples of 4" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_stylize_cli_tiled_and_errors(stylize_run, tmp_path):
    workdir, _ = stylize_run
    src, out = str(tmp_path / "in.png"), str(tmp_path / "out.png")
    io.save_image(src, io.sample_image("coffee", max_side=100))
    args = [f"--workdir={workdir}", f"--input={src}", f"--out={out}"]
    result = helpers.run_module("scripts.stylize_net", *args, "--tile=32", "--blend_weights=1,1")
    assert result.returncode == 0, result.stderr
    assert io.load_image(out).shape == io.load_image(src).shape
    bad = helpers.run_module("scripts.stylize_net", *args, "--blend_weights=1,x")
    assert bad.returncode == 1 and "must be comma-separated numbers" in bad.stderr
    wrong = helpers.run_module("scripts.texture_net", f"--workdir={workdir}", f"--out={out}")
    assert wrong.returncode == 1 and "not a 'texture_net' run" in wrong.stderr
