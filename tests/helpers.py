"""Shared test helpers: config loading and running the command-line tools."""

import importlib.util
import os
import subprocess
import sys

import ml_collections

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name: str, arg: str | None = None) -> ml_collections.ConfigDict:
    """`configs/<name>.py` get_config(arg), as scripts.train would load it."""
    path = os.path.join(ROOT, "configs", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"configs_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def run_module(
    module: str, *args: str, devices: int = 1, timeout: float = 300, **kwargs
) -> subprocess.CompletedProcess:
    """Runs `python -m module args...` from the repository root on `devices` CPU devices."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # By default tools see the real single CPU device.
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def one_step(exp, devices):
    """(host params, host metrics) after one compiled train step of `exp` on `devices`.

    As the trainer runs it: the state from `init_state(prng.key(0))`, replicated on
    a mesh of `devices`, the first batch of seed 0 split over them, key
    `prng.key(1)`. Tests of data parallelism compare 1 and 4 devices with it.
    """
    import jax  # Lazy: this module stays light for the tests that only load configs.

    from neural_synth import mesh as mesh_lib
    from neural_synth.train import prng, trainer

    mesh = mesh_lib.make_mesh(devices)
    state = jax.jit(exp.init_state, out_shardings=mesh_lib.replicated(mesh))(prng.key(0))
    local = next(exp.train_batches(seed=0, start_step=0, batch_size=exp.config.train.batch_size))
    step = trainer._compile_step(exp, mesh)
    state, metrics = step(state, mesh_lib.global_batch(local, mesh), prng.key(1))
    return jax.device_get(state.params), jax.device_get(metrics)
