"""Trainer tests: data parallelism, NaN stops, checkpoints, batch-size checks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from neural_synth import experiments
from neural_synth import mesh as mesh_lib
from neural_synth.experiments import marker
from neural_synth.train import checkpoint, prng, trainer
from tests import helpers


def smoke_config(**train):
    config = helpers.load_config("marker", "smoke")
    config.train.update(train)
    return config


def _one_step(exp, devices):
    """One compiled train step on a mesh of `devices`; returns host params."""
    mesh = mesh_lib.make_mesh(devices)
    state = jax.jit(exp.init_state, out_shardings=mesh_lib.replicated(mesh))(prng.key(0))
    local = next(exp.train_batches(seed=0, start_step=0, batch_size=exp.config.train.batch_size))
    step = trainer._compile_step(exp, mesh)
    state, metrics = step(state, mesh_lib.global_batch(local, mesh), jax.random.key(1))
    return jax.device_get(state.params), jax.device_get(metrics)


def test_one_and_four_devices_give_same_parameters():
    assert len(jax.devices()) >= 4, "conftest fakes 4 CPU devices"
    exp = experiments.build(smoke_config())
    # Plain SGD makes the update proportional to the gradient; Adam's first step
    # (g / |g|) would amplify float noise in near-zero gradients into sign flips.
    exp.tx = optax.sgd(1.0)
    params_1, metrics_1 = _one_step(exp, jax.devices()[:1])
    params_4, metrics_4 = _one_step(exp, jax.devices()[:4])
    # Same data and per-example distortions on 1 and 4 devices: the loss agrees closely.
    np.testing.assert_allclose(metrics_1["loss/bits"], metrics_4["loss/bits"], rtol=1e-5)
    init = jax.device_get(exp.init_state(prng.key(0)).params)
    leaves = list(zip(*(jax.tree.leaves(p) for p in (init, params_1, params_4)), strict=True))
    # Leaves whose true gradient is zero (a bias before a normalisation) hold only
    # float noise: the absolute floor is relative to the largest update anywhere.
    floor = 1e-6 * max(float(np.abs(p1 - p0).max()) for p0, p1, _ in leaves)
    for p0, p1, p4 in leaves:
        # With SGD(1.0) the update is the gradient; sums over the batch run in a
        # different order on 4 devices, so compare relative to each leaf's scale.
        update_1, update_4 = p1 - p0, p4 - p0
        assert np.abs(update_1 - update_4).max() <= 1e-3 * np.abs(update_1).max() + floor
    moved = max(
        float(np.abs(a - b).max())
        for a, b in zip(jax.tree.leaves(init), jax.tree.leaves(params_1), strict=True)
    )
    assert moved > 1e-5  # The step really changed the parameters.


def test_batch_that_does_not_divide_devices_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not divide over 4 devices"):
        experiments.train_from_config(
            smoke_config(batch_size=6), str(tmp_path), devices=jax.devices()[:4]
        )


class _NanAfter(marker.MarkerExperiment):
    """Marker experiment whose parameters turn NaN from step `bad_step` on."""

    bad_step = 13

    def train_step(self, state, batch, key):
        state, metrics = super().train_step(state, batch, key)
        poison = jnp.where(state.step >= self.bad_step, jnp.nan, 1.0)
        params = jax.tree.map(lambda p: p * poison, state.params)
        metrics["loss/total"] = metrics["loss/total"] * poison
        return state.replace(params=params), metrics


def test_nan_stops_with_step_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "build", lambda config: _NanAfter(config))
    config = smoke_config(num_steps=20, log_every_steps=5, checkpoint_every_steps=5)
    with pytest.raises(trainer.NonFiniteError, match=r"at step 13; .*checkpoint: step 10"):
        experiments.train_from_config(config, str(tmp_path))
    exp = marker.MarkerExperiment(config)
    state, step = checkpoint.restore_latest(str(tmp_path), exp.init_state(jax.random.key(0)))
    assert step == 10 and int(state.step) == 10
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state.params)))


def test_checkpoint_round_trip_restores_same_outputs(tmp_path):
    config = smoke_config(num_steps=10, eval_every_steps=0, summary_every_steps=0)
    final = experiments.train_from_config(config, str(tmp_path))
    exp, params = experiments.load_trained(str(tmp_path), "marker")
    bits = marker.random_bits(np.random.default_rng(0), 4, config.marker.num_bits)
    want = exp.encode(jax.device_get(final.params), bits)
    np.testing.assert_array_equal(exp.encode(params, bits), want)
    assert (tmp_path / "config.json").exists() and (tmp_path / "metrics.jsonl").exists()
