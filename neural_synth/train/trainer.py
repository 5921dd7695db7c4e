"""The shared trainer: one loop for every experiment (DESIGN.md section 3).

The experiment supplies models, state, data and a pure `train_step`; the
trainer owns the mesh, jit and donation, checkpoints and resume, the logging
cadence, NaN checks, evaluation and image summaries.

Kill-anywhere resume: at a step where several things are due they happen in
the order log -> evaluate -> summaries -> checkpoint, and only finite
parameters are ever saved. A run killed at any moment resumes from its newest
complete checkpoint, drops the metric rows written after it, replays the same
batches and keys, and so ends with the same parameters and `eval.json` as a
run that was never interrupted. One live run per workdir (`workdir.hold`).

The trainer never looks experiments up: its caller builds one (the registry in
`neural_synth/experiments/` sits above `train/`) and hands it over.

Experiment protocol (see `neural_synth/experiments/`):
  <Name>Experiment(config)
  .init_state(key) -> state            pytree of arrays with an integer `step`
  .train_step(state, batch, key) -> (state, metrics)      pure, jit-able
  .train_batches(*, seed, start_step, batch_size) -> iterator of dicts of
      NumPy arrays: whole global batches for steps start_step, start_step + 1,
      ... (a pure function of seed and step, `data/sampling.py`); each process
      feeds only its own rows to its devices

  .evaluate(state, key) -> nested dict of floats (host side; may jit)
  .summaries(state, key) -> {name: [N, H, W, C] images in [0, 1]}
"""

import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from neural_synth import mesh as mesh_lib
from neural_synth import progress as progress_lib
from neural_synth.train import checkpoint, prng, reporting
from neural_synth.train import workdir as workdir_lib

CADENCE_FIELDS = ("log_every_steps", "checkpoint_every_steps", "eval_every_steps")


class NonFiniteError(FloatingPointError):
    """A NaN or Inf appeared in the training metrics or parameters."""


def check_schedule(tc: ml_collections.ConfigDict) -> None:
    """Clear errors for impossible step counts (0 means "only at the end" for cadences)."""
    if tc.num_steps < 1 or tc.batch_size < 1:
        raise ValueError(
            f"train.num_steps and train.batch_size must be >= 1, got {tc.num_steps} and "
            f"{tc.batch_size}."
        )
    for name in (*CADENCE_FIELDS, "summary_every_steps"):
        if tc.get(name, 0) < 0:
            raise ValueError(f"train.{name} must be >= 0 (0: only at the last step).")
    if tc.get("keep_checkpoints", 1) < 1:
        raise ValueError("train.keep_checkpoints must be >= 1.")


def train(exp, config: ml_collections.ConfigDict, workdir: str, *, devices=None) -> Any:
    """Trains the experiment `exp` (built from `config`) in `workdir`, resuming if it can.

    Returns the final state. Raises NonFiniteError (keeping the last good
    checkpoint) when a metric or parameter becomes NaN/Inf, and
    WorkdirBusyError when another live run holds `workdir`.
    """
    check_schedule(config.train)
    mesh = mesh_lib.make_mesh(devices)
    mesh_lib.check_batch_size(config.train.batch_size, mesh)
    with workdir_lib.hold(workdir) as created:
        try:
            return _run(exp, config, workdir, mesh)
        except BaseException:
            if created and not _started(workdir):
                workdir_lib.remove_failed_start(workdir)  # Nothing of this run to keep.
            raise


def _started(workdir: str) -> bool:
    """Whether a run left anything worth keeping: metrics or a checkpoint."""
    return os.path.exists(os.path.join(workdir, reporting.METRICS_FILE)) or bool(
        checkpoint.saved_steps(workdir)
    )


def _run(exp, config, workdir: str, mesh) -> Any:
    ckpt = checkpoint.Checkpointer(workdir, keep=config.train.keep_checkpoints)
    train_key, eval_key, state, start = _init_or_restore(exp, config, mesh, ckpt)
    writer = reporting.MetricWriter(workdir, resume_step=start)
    try:
        _save_config(config, workdir)
        return _loop(exp, state, start, config, mesh, ckpt, writer, (train_key, eval_key))
    finally:
        ckpt.wait()
        ckpt.close()
        writer.close()


def _init_or_restore(exp, config, mesh, ckpt):
    """(train_key, eval_key, state, start step): a fresh state, or the newest checkpoint."""
    init_key, train_key, eval_key = jax.random.split(prng.key(config.seed), 3)
    state = jax.jit(exp.init_state, out_shardings=mesh_lib.replicated(mesh))(init_key)
    start = ckpt.latest_step() or 0
    if start:
        state = ckpt.restore(state, start)
        _say(f"Resumed from checkpoint at step {start} in {ckpt.directory}")
    return train_key, eval_key, state, start


def _loop(exp, state, start, config, mesh, ckpt, writer, keys):
    tc, (train_key, eval_key) = config.train, keys
    step_fn = _compile_step(exp, mesh)
    batches = exp.train_batches(seed=config.seed, start_step=start, batch_size=tc.batch_size)
    progress = progress_lib.Progress(tc.num_steps, done=start)
    progress.start(f"training {config.experiment}")
    acc = None
    for step in range(start, tc.num_steps):
        batch = mesh_lib.global_batch(mesh_lib.process_rows(next(batches)), mesh)
        state, metrics = step_fn(state, batch, jax.random.fold_in(train_key, step))
        acc = _accumulate(acc, metrics, step)
        done = step + 1
        if not any(_due(done, tc.get(f, 0), tc) for f in (*CADENCE_FIELDS, "summary_every_steps")):
            continue
        means = _check_finite(acc, state, done, ckpt)
        acc = None
        paused = _log(done, means, tc, progress, writer)
        if _due(done, tc.eval_every_steps, tc):
            _evaluate(exp, state, done, writer, jax.random.fold_in(eval_key, done))
        if _due(done, tc.summary_every_steps, tc):
            writer.write_images(done, exp.summaries(state, eval_key))
        if _due(done, tc.checkpoint_every_steps, tc):
            ckpt.save(done, state)
        progress.exclude(time.perf_counter() - paused)
    return state


def _log(done: int, means: dict, tc, progress, writer) -> float:
    """Writes the metrics when a log is due; returns the time the pause began."""
    if _due(done, tc.log_every_steps, tc):
        means["steps_per_sec"] = progress.update(done, means)
        writer.write(done, means)
    return time.perf_counter()


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


@jax.jit
def _count_non_finite(tree) -> jax.Array:
    return sum(jnp.sum(~jnp.isfinite(x)) for x in jax.tree.leaves(tree) if x.dtype.kind == "f")


def _check_finite(acc, state, step: int, ckpt) -> dict[str, float]:
    """Fetches the accumulated metrics (a host sync); stops on NaN/Inf in them or the params."""
    host = jax.device_get(acc)
    bad_params = int(_count_non_finite(state.params))
    if host["first_bad"] >= 0 or bad_params:
        bad = [k for k, v in host["sums"].items() if not jnp.isfinite(v)]
        where = (
            f"metrics {bad} at step {int(host['first_bad'])}"
            if bad
            else f"the parameters at step {step}"
        )
        ckpt.wait()
        last = ckpt.latest_step()
        kept = f"step {last} in {ckpt.directory}" if last else "none (no checkpoint saved yet)"
        raise NonFiniteError(
            f"NaN/Inf in {where}; stopped with {bad_params} non-finite parameters, which are "
            f"not saved. Last good checkpoint: {kept}."
        )
    return {k: float(v) / int(host["count"]) for k, v in host["sums"].items()}


def _evaluate(exp, state, step: int, writer, key) -> None:
    results = exp.evaluate(state, key)
    flat = _flatten(results)
    reporting.write_json(os.path.join(writer.workdir, "eval.json"), {"step": step, **results})
    writer.write(step, {f"eval/{k}": v for k, v in flat.items()})
    _say(f"eval @ {step}: " + " ".join(f"{k}={v:.4g}" for k, v in flat.items()))


def _say(text: str) -> None:
    if reporting.is_writer():
        print(text, flush=True)


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
        path = os.path.join(workdir, "config.json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(config.to_json_best_effort(indent=2, sort_keys=True))
        os.replace(path + ".tmp", path)
