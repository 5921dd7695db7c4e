"""Reproducible performance measurements (not tests)."""

import importlib.util

import jax

from neural_synth import experiments
from neural_synth import mesh as mesh_lib
from neural_synth.train import prng, trainer


def step_runner(config, num_steps: int):
    """(experiment, run, state box, batches) for timing the trainer's compiled step.

    `run()` applies the step to `num_steps` of the experiment's own batches
    (prepared beforehand, so data preparation is not timed) and returns the
    last metrics; `box["state"]` holds the state it has reached.
    """
    exp = experiments.build(config)
    mesh = mesh_lib.make_mesh()
    state = jax.jit(exp.init_state, out_shardings=mesh_lib.replicated(mesh))(prng.key(0))
    step_fn = trainer._compile_step(exp, mesh)
    batches = exp.train_batches(seed=0, start_step=0, batch_size=config.train.batch_size)
    batch_list = [mesh_lib.global_batch(next(batches), mesh) for _ in range(num_steps)]
    box = {"state": state}

    def run():
        for i, batch in enumerate(batch_list):
            box["state"], metrics = step_fn(box["state"], batch, prng.key(i))
        return metrics

    return exp, run, box, batch_list


def torch_comparison(requested: bool) -> bool:
    """Whether to time PyTorch (CPU) beside JAX; prints why not when it was requested.

    The comparisons are CPU against CPU: on a GPU backend the same benchmark
    runs JAX alone, so it can record GPU figures unchanged.
    """
    if not requested:
        return False
    backend = jax.default_backend()
    if backend != "cpu":
        print(f"JAX backend: {backend}; the PyTorch CPU comparisons are skipped.")
        return False
    if importlib.util.find_spec("torch") is None:
        print("torch is not installed: JAX only.")
        return False
    return True
