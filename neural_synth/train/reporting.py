"""Metric files, progress lines and image summaries (written by process 0 only)."""

import json
import math
import os
import sys
import time
from collections.abc import Mapping

import jax
import numpy as np

from neural_synth import io


def is_writer() -> bool:
    return jax.process_index() == 0


class MetricWriter:
    """Appends `{"step": s, "name": value, ...}` lines to `workdir/metrics.jsonl`.

    JSON lines load straight into pandas (`pd.read_json(path, lines=True)`) or
    any plotting tool; evaluation results also go to `eval.json`.
    """

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, "metrics.jsonl")

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        if not is_writer():
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **{k: float(v) for k, v in metrics.items()}}) + "\n")


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """Prints `step 120/1500 (8%) | 9.8 steps/s | ETA 2m21s | loss=0.41 ...` lines."""

    def __init__(self, start_step: int, num_steps: int, stream=sys.stdout):
        self.num_steps, self.stream = num_steps, stream
        self._last_step, self._last_time = start_step, time.perf_counter()

    def exclude(self, seconds: float) -> None:
        """Leaves `seconds` (evaluation, summaries) out of the next steps/s figure."""
        self._last_time += seconds

    def update(self, step: int, metrics: Mapping[str, float]) -> float:
        """Prints a line for `step`; returns the steps/s since the previous line."""
        now = time.perf_counter()
        rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
        self._last_step, self._last_time = step, now
        if is_writer():
            eta = format_duration((self.num_steps - step) / rate if rate > 0 else math.inf)
            shown = " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
            pct = 100 * step // max(self.num_steps, 1)
            print(
                f"step {step}/{self.num_steps} ({pct}%) | {rate:.2f} steps/s | ETA {eta} | {shown}",
                file=self.stream,
                flush=True,
            )
        return rate


def write_json(path: str, data) -> None:
    if not is_writer():
        return
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=float)
    os.replace(tmp, path)


def write_summaries(workdir: str, step: int, images: Mapping[str, np.ndarray]) -> None:
    """Saves each [N, H, W, C] batch as `workdir/samples/<name>_<step>.png` grids."""
    if not is_writer():
        return
    for name, batch in images.items():
        io.save_grid(os.path.join(workdir, "samples", f"{name}_{step:07d}.png"), np.asarray(batch))
