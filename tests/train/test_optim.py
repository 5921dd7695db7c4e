"""train.optim.adam: optax.adam's updates, without copies of its moments under donation."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from neural_synth.train import optim, schedule

SCHEDULE = schedule.constant_then_linear(2e-4, num_steps=6, decay_steps=4)


def _params():
    rng = np.random.default_rng(0)
    shapes = {"bias": (3,), "kernel": (4, 4, 16, 32), "phase": (2, 2, 2, 2, 64, 96)}
    return {k: jnp.asarray(rng.normal(size=s), jnp.float32) for k, s in shapes.items()}


def _apply_step(tx):
    def step(params, opt_state, grads):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return step


@pytest.mark.parametrize("learning_rate, b1, rtol", [(SCHEDULE, 0.5, 0.0), (1e-3, 0.9, 1e-5)])
def test_updates_match_optax_adam(learning_rate, b1, rtol):
    """Six steps: the bias correction and the schedule follow the step count.

    Bit-identical for b1 = 0.5; for 0.9, `1 - b1` is rounded in float32 (optax
    folds it in float64), which moves mu by ~2e-7 relative.
    """
    ours, ref = optim.adam(learning_rate, b1=b1), optax.adam(learning_rate, b1=b1)
    params = _params()
    state, ref_state = ours.init(params), ref.init(params)
    rng = np.random.default_rng(1)
    for _ in range(6):
        grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
        updates, state = jax.jit(ours.update)(grads, state, params)
        ref_updates, ref_state = jax.jit(ref.update)(grads, ref_state, params)
        for name in params:
            scale = np.abs(ref_updates[name]).max()
            np.testing.assert_allclose(updates[name], ref_updates[name], rtol=0, atol=rtol * scale)
        params = optax.apply_updates(params, updates)
    assert int(state.count) == 6


def test_donated_jit_step_matches_optax_without_copying_moments():
    tx, ref_tx = optim.adam(SCHEDULE, b1=0.5), optax.adam(SCHEDULE, b1=0.5)
    step = jax.jit(_apply_step(tx), donate_argnums=(0, 1))
    params, ref_params = _params(), _params()
    opt_state, ref_state = tx.init(params), ref_tx.init(ref_params)
    # optax.adam(b1=0.5) copies every mu leaf here (XLA:CPU, jax 0.10); ours must not.
    hlo = step.lower(params, opt_state, params).compile().as_text()
    copied = re.findall(r"copy\(%([^)]*)\)", hlo)
    assert not [name for name in copied if "__mu__" in name or "__nu__" in name], copied
    rng = np.random.default_rng(2)
    for _ in range(3):
        grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
        old = jax.tree.leaves((params, opt_state.inner_state))  # Parameters and moments.
        params, opt_state = step(params, opt_state, grads)
        ref_params, ref_state = jax.jit(_apply_step(ref_tx))(ref_params, ref_state, grads)
        assert all(x.is_deleted() for x in old)  # Donated and reused.
        for name in params:
            np.testing.assert_array_equal(params[name], ref_params[name])
