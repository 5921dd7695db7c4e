"""Metric files, TensorBoard events and image summaries (written by process 0 only).

A run's workdir holds `metrics.jsonl` (one JSON line per log step, for pandas
or any plotting tool), `eval.json`, PNG grids in `samples/`, and TensorBoard
event files with the same scalars and images, so `tensorboard --logdir runs/`
shows every run. The events are written with tensorboardX (no TensorFlow).
"""

import json
import os
from collections.abc import Mapping

import jax
import numpy as np

from neural_synth import io


def is_writer() -> bool:
    return jax.process_index() == 0


METRICS_FILE = "metrics.jsonl"


def _truncate_rows(path: str, last_step: int) -> None:
    """Drops the rows of `path` logged after `last_step` (a resumed run replays them)."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= last_step]
    if len(kept) != len(lines):
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.writelines(kept)
        os.replace(path + ".tmp", path)


class MetricWriter:
    """Scalars to `workdir/metrics.jsonl` and TensorBoard; images to PNGs and TensorBoard.

    `resume_step`: the step a run resumes from; rows and events logged after
    it (by a run that was killed before its next checkpoint) are dropped, so
    every step appears once.
    """

    def __init__(self, workdir: str, *, resume_step: int = 0):
        self.workdir, self.resume_step = workdir, resume_step
        self.path = os.path.join(workdir, METRICS_FILE)
        self._board = None
        if is_writer():
            _truncate_rows(self.path, resume_step)

    def _tensorboard(self):
        if self._board is None:
            import tensorboardX  # Lazy: only writers pay for the import.

            self._board = tensorboardX.SummaryWriter(
                logdir=self.workdir, flush_secs=30, purge_step=self.resume_step + 1
            )
        return self._board

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        """Appends `{"step": s, "name": value, ...}` and logs each scalar at `step`."""
        if not is_writer():
            return
        values = {k: float(v) for k, v in metrics.items()}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        board = self._tensorboard()
        for name, value in values.items():
            board.add_scalar(name, value, global_step=step)

    def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        """Each [N, H, W, C] batch as `samples/<name>_<step>.png` and a TensorBoard image."""
        if not is_writer():
            return
        board = self._tensorboard()
        for name, batch in images.items():
            grid = io.make_grid(np.asarray(batch))  # [H', W', 3] in [0, 1]
            io.save_image(os.path.join(self.workdir, "samples", f"{name}_{step:07d}.png"), grid)
            board.add_image(name, io.to_uint8(grid), global_step=step, dataformats="HWC")

    def close(self) -> None:
        """Flushes and closes the event file (safe to call more than once)."""
        if self._board is not None:
            self._board.close()
            self._board = None


def write_json(path: str, data) -> None:
    if not is_writer():
        return
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=float)
    os.replace(tmp, path)
