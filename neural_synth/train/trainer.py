"""The shared trainer: one loop for every experiment (DESIGN.md section 3).

The experiment supplies models, state, data and a pure `train_step`; the
trainer owns the mesh, jit and donation, checkpoints and resume, the logging
cadence, NaN checks, evaluation and image summaries.

The trainer never looks experiments up: its caller builds one (the registry in
`neural_synth/experiments/` sits above `train/`) and hands it over.

Experiment protocol (see `neural_synth/experiments/`):
  <Name>Experiment(config)
  .init_state(key) -> state            pytree of arrays with an integer `step`
  .train_step(state, batch, key) -> (state, metrics)      pure, jit-able
  .train_batches(*, seed, start_step, batch_size) -> iterator of dicts of
      NumPy arrays: this process's rows of each global batch, for steps
      start_step, start_step + 1, ... (deterministic given seed and step)
  .evaluate(state, key) -> nested dict of floats (host side; may jit)
  .summaries(state, key) -> {name: [N, H, W, C] images in [0, 1]}
"""

import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from neural_synth import progress as progress_lib
from neural_synth.train import checkpoint, prng, reporting
from neural_synth.train import mesh as mesh_lib


class NonFiniteError(FloatingPointError):
    """A NaN or Inf appeared in the training metrics."""


def train(exp, config: ml_collections.ConfigDict, workdir: str, *, devices=None) -> Any:
    """Trains the experiment `exp` (built from `config`) in `workdir`, resuming if it can.

    Returns the final state. Raises NonFiniteError (after keeping the last good
    checkpoint) when a metric becomes NaN/Inf.
    """
    os.makedirs(workdir, exist_ok=True)
    tc = config.train
    mesh = mesh_lib.make_mesh(devices)
    mesh_lib.check_batch_size(tc.batch_size, mesh)
    _save_config(config, workdir)

    ckpt = checkpoint.Checkpointer(
        workdir, save_every_steps=tc.checkpoint_every_steps, keep=tc.keep_checkpoints
    )
    key = prng.key(config.seed)
    init_key, train_key, eval_key = jax.random.split(key, 3)
    state = jax.jit(exp.init_state, out_shardings=mesh_lib.replicated(mesh))(init_key)
    start = ckpt.latest_step() or 0
    if start:
        state = ckpt.restore(state, start)
        print(f"Resumed from checkpoint at step {start} in {ckpt.directory}", flush=True)
    writer = reporting.MetricWriter(workdir)
    try:
        state = _loop(exp, state, start, config, mesh, ckpt, writer, train_key, eval_key)
    finally:
        ckpt.wait()
        ckpt.close()
        writer.close()
    return state


def _loop(exp, state, start, config, mesh, ckpt, writer, train_key, eval_key):
    tc = config.train
    step_fn = _compile_step(exp, mesh)
    batches = exp.train_batches(
        seed=config.seed, start_step=start, batch_size=mesh_lib.local_batch_size(tc.batch_size)
    )
    progress = progress_lib.Progress(tc.num_steps, done=start)
    progress.start(f"training {config.experiment}")
    acc = None
    for step in range(start, tc.num_steps):
        batch = mesh_lib.global_batch(next(batches), mesh)
        state, metrics = step_fn(state, batch, jax.random.fold_in(train_key, step))
        acc = _accumulate(acc, metrics, step)
        done = step + 1
        if _due(done, tc.log_every_steps, tc) or _due(done, tc.checkpoint_every_steps, tc):
            means = _check_and_average(acc, done, ckpt)
            acc = None
            means["steps_per_sec"] = progress.update(done, means)
            writer.write(done, means)
            ckpt.save(done, state, force=done == tc.num_steps)
        paused = time.perf_counter()
        if _due(done, tc.eval_every_steps, tc):
            _evaluate(exp, state, done, writer, jax.random.fold_in(eval_key, done))
        if _due(done, tc.summary_every_steps, tc):
            writer.write_images(done, exp.summaries(state, eval_key))
        progress.exclude(time.perf_counter() - paused)
    return state


def _due(step: int, every: int, tc) -> bool:
    return step == tc.num_steps or (every > 0 and step % every == 0)


def _compile_step(exp, mesh):
    rep, data = mesh_lib.replicated(mesh), mesh_lib.batch_sharding(mesh)
    return jax.jit(
        exp.train_step, in_shardings=(rep, data, rep), out_shardings=(rep, rep), donate_argnums=0
    )


@jax.jit
def _accumulate_jit(acc, metrics, step):
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(metrics)]))
    first_bad = jnp.where((acc["first_bad"] < 0) & ~finite, step, acc["first_bad"])
    sums = jax.tree.map(lambda a, m: a + m.astype(jnp.float32), acc["sums"], metrics)
    return {"sums": sums, "count": acc["count"] + 1, "first_bad": first_bad}


def _accumulate(acc, metrics, step):
    """Sums metrics on device (no host sync) and remembers the first non-finite step."""
    if acc is None:
        acc = {
            "sums": jax.tree.map(lambda m: jnp.zeros((), jnp.float32), metrics),
            "count": jnp.zeros((), jnp.int32),
            "first_bad": jnp.full((), -1, jnp.int32),
        }
    return _accumulate_jit(acc, metrics, jnp.int32(step + 1))


def _check_and_average(acc, step: int, ckpt) -> dict[str, float]:
    """Fetches accumulated metrics (a host sync) and stops the run on NaN/Inf."""
    host = jax.device_get(acc)
    if host["first_bad"] >= 0:
        bad = [k for k, v in host["sums"].items() if not jnp.isfinite(v)]
        ckpt.wait()
        last = ckpt.latest_step()
        raise NonFiniteError(
            f"NaN/Inf in metrics {bad} at step {int(host['first_bad'])}; stopped. "
            f"Last good checkpoint: step {last} in {ckpt.directory}."
        )
    return {k: float(v) / int(host["count"]) for k, v in host["sums"].items()}


def _evaluate(exp, state, step: int, writer, key) -> None:
    results = exp.evaluate(state, key)
    flat = _flatten(results)
    writer.write(step, {f"eval/{k}": v for k, v in flat.items()})
    reporting.write_json(os.path.join(writer.workdir, "eval.json"), {"step": step, **results})
    if reporting.is_writer():
        print(f"eval @ {step}: " + " ".join(f"{k}={v:.4g}" for k, v in flat.items()), flush=True)


def _flatten(tree: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = float(v)
    return out


def _save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    if reporting.is_writer():
        with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as f:
            f.write(config.to_json_best_effort(indent=2, sort_keys=True))
