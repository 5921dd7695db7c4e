r"""Kill drill: SIGKILL a training run at random moments, restart it, compare with an unbroken run.

  python -m benchmarks.kill_drill --kills=10
  python -m benchmarks.kill_drill --kills=3 --num_steps=60   # quicker

A reference run trains the marker smoke config without interruption. The
drilled run, in another workdir, is started and SIGKILLed a random time after
its first step line (during a step, a checkpoint write or an evaluation: the
config checkpoints and evaluates often), restarted, killed again, ... `--kills`
times, then left to finish. Checked, and printed as a table plus a verdict:
- the final parameters equal the reference's bit for bit (same machine);
- `eval.json` equals the reference's;
- every restart resumed from the newest complete checkpoint (never a half-written one);
- `metrics.jsonl` holds every logged step and evaluation of the reference,
  each exactly once.
Exit status 1 if any check fails.
"""

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
from absl import app, flags, logging

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_KILLS = flags.DEFINE_integer("kills", 10, "How many random SIGKILLs to survive.")
_STEPS = flags.DEFINE_integer("num_steps", 120, "Training steps of the drilled run.")
_MAX_DELAY = flags.DEFINE_float(
    "max_delay", 3.0, "Kills come uniformly within this many seconds after a start's first step."
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the kill times.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the two runs go (default: a temp dir).")


def overrides(num_steps: int) -> list[str]:
    """The drilled config: checkpoints, logs and evaluations every few steps."""
    return [
        "--config=configs/marker.py:smoke",
        f"--config.train.num_steps={num_steps}",
        "--config.train.log_every_steps=3",
        "--config.train.checkpoint_every_steps=5",
        "--config.train.eval_every_steps=10",
        "--config.train.summary_every_steps=20",
        "--config.train.keep_checkpoints=3",
    ]


def _env(cache_dir: str) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    env["NEURAL_SYNTH_CACHE_DIR"] = cache_dir  # Restarts skip recompiling.
    return env


def _command(workdir: str, num_steps: int) -> list[str]:
    return [sys.executable, "-m", "scripts.train", *overrides(num_steps), f"--workdir={workdir}"]


def complete_checkpoints(workdir: str) -> list[int]:
    """Steps whose checkpoint Orbax committed (`commit_success.txt` or a plain step dir)."""
    root = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(root):
        return []
    return sorted(int(d) for d in os.listdir(root) if d.isdigit())


def _writing_checkpoint(workdir: str) -> bool:
    """Whether an Orbax temporary checkpoint directory was touched in the last second."""
    root = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(root):
        return False
    recent = time.time() - 1.0
    return any(
        "tmp" in d and os.path.getmtime(os.path.join(root, d)) > recent for d in os.listdir(root)
    )


@dataclasses.dataclass
class Kill:
    delay: float
    phase: str  # What the run was doing, as far as its files tell.
    newest_complete: int  # Newest complete checkpoint right after the kill (0: none).
    resumed_from: int | None = None  # Step the next start resumed from.


def _log_text(workdir: str) -> str:
    with open(workdir + ".log", encoding="utf-8") as f:
        return f.read()


def _training(workdir: str, offset: int) -> bool:
    """Whether the start whose output begins at `offset` of the log runs its steps."""
    return "| ETA " in _log_text(workdir)[offset:]


def kill_once(workdir: str, num_steps: int, delay: float, env: dict) -> Kill | None:
    """Starts the run and SIGKILLs it `delay` s after its first step line; None if it ends first."""
    with open(workdir + ".log", "a", encoding="utf-8") as log:
        log.write("=== start\n")
        log.flush()
        offset = log.tell()
        proc = subprocess.Popen(
            _command(workdir, num_steps), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        while proc.poll() is None and not _training(workdir, offset):
            time.sleep(0.05)
        deadline = time.time() + delay
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.01)
        if proc.poll() is not None:
            return None
        phase = "checkpoint write" if _writing_checkpoint(workdir) else _last_phase(workdir)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return Kill(delay, phase, max(complete_checkpoints(workdir), default=0))


def _last_phase(workdir: str) -> str:
    lines = _log_text(workdir).splitlines()
    last = lines[-1] if lines else ""
    return "after an evaluation" if last.startswith("eval @") else "training steps"


def run_to_end(workdir: str, num_steps: int, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        _command(workdir, num_steps), cwd=ROOT, env=env, capture_output=True, text=True
    )


def resumed_steps(log_path: str) -> list[int]:
    """Per start recorded in the log, the step it resumed from (0: a fresh start)."""
    starts = open(log_path, encoding="utf-8").read().split("=== start\n")[1:]
    marker = "Resumed from checkpoint at step "
    return [int(s.split(marker)[1].split()[0]) if marker in s else 0 for s in starts]


def final_params(workdir: str, step: int):
    """The parameters of the checkpoint at `step`, as host arrays."""
    from neural_synth import experiments
    from neural_synth.train import checkpoint, prng

    config = checkpoint.load_run_config(workdir)
    exp = experiments.build(config)
    ckpt = checkpoint.Checkpointer(workdir)
    try:
        return jax.device_get(ckpt.restore(exp.init_state(prng.key(0)), step).params)
    finally:
        ckpt.close()


def metric_rows(workdir: str) -> list[tuple]:
    """(step, sorted metric names) per row of metrics.jsonl."""
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    return [(r["step"], tuple(sorted(k for k in r if k != "step"))) for r in rows]


def compare(reference: str, drilled: str, num_steps: int) -> dict[str, bool]:
    """The drill's checks: params bitwise, eval.json, metric rows once each."""
    ref_params, params = final_params(reference, num_steps), final_params(drilled, num_steps)
    same_params = all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(ref_params), jax.tree.leaves(params), strict=True)
    )
    evals = [json.load(open(os.path.join(d, "eval.json"))) for d in (reference, drilled)]
    rows, ref_rows = metric_rows(drilled), metric_rows(reference)
    return {
        "final parameters bitwise equal": same_params,
        "eval.json equal": evals[0] == evals[1],
        "every metric row once (no duplicates, none lost)": rows == ref_rows,
    }


def drill(
    root: str,
    *,
    kills: int,
    num_steps: int,
    delays: tuple[float, float],
    seed: int,
    cache_dir: str | None = None,
):
    """Runs the reference and the drill under `root`; returns (kills, checks).

    `cache_dir`: the runs' XLA cache (default: a fresh one under `root`).
    """
    env = _env(cache_dir or os.path.join(root, "xla_cache"))
    reference, drilled = os.path.join(root, "reference"), os.path.join(root, "drilled")
    done = run_to_end(reference, num_steps, env)
    if done.returncode:
        raise RuntimeError(f"reference run failed:\n{done.stderr[-3000:]}")
    rng, history = random.Random(seed), []
    while len(history) < kills:
        kill = kill_once(drilled, num_steps, rng.uniform(*delays), env)
        if kill is None:  # Finished before the kill: start the drill over, shorter delays.
            raise RuntimeError("the run finished before the kill; use more --num_steps")
        history.append(kill)
    with open(drilled + ".log", "a", encoding="utf-8") as log:
        log.write("=== start\n")
    done = run_to_end(drilled, num_steps, env)
    with open(drilled + ".log", "a", encoding="utf-8") as log:
        log.write(done.stdout)
    if done.returncode:
        raise RuntimeError(f"final restart failed:\n{done.stderr[-3000:]}")
    for kill, step in zip(history, resumed_steps(drilled + ".log")[1:], strict=True):
        kill.resumed_from = step
    checks = compare(reference, drilled, num_steps)
    checks["every restart resumed from the newest complete checkpoint"] = all(
        k.resumed_from == k.newest_complete for k in history
    )
    return history, checks


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    root = _WORKDIR.value or tempfile.mkdtemp(prefix="kill_drill_")
    os.makedirs(root, exist_ok=True)
    history, checks = drill(
        root,
        kills=_KILLS.value,
        num_steps=_STEPS.value,
        delays=(0.0, _MAX_DELAY.value),
        seed=_SEED.value,
    )
    print(f"Kill drill in {root}: {len(history)} kills, {_STEPS.value} steps")
    print("| kill | after (s) | while | next start resumed from step |")
    print("|---|---|---|---|")
    for i, k in enumerate(history, 1):
        print(f"| {i} | {k.delay:.1f} | {k.phase} | {k.resumed_from} |")
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    app.run(main)
