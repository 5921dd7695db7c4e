"""The one checkpoint wrapper (Orbax CheckpointManager) used by every experiment.

Saves every N steps, keeps the last K, resumes from the newest checkpoint in
the work directory, restores straight into sharded arrays and waits for async
saves before exit. Inference commands restore through `restore_latest` too.
"""

import json
import os
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), "checkpoints")


class Checkpointer:
    """Save/restore train states (pytrees of arrays) under `workdir/checkpoints`."""

    def __init__(self, workdir: str, *, keep: int = 3):
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        self.directory = checkpoint_dir(workdir)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        """Starts an async save of `step` (Orbax commits it atomically when done)."""
        self._manager.save(step, args=ocp.args.StandardSave(state), force=True)

    def restore(self, like: Any, step: int | None = None) -> Any:
        """Restores `step` (default: newest) with the shapes, dtypes and shardings of `like`."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"No checkpoint in {self.directory}.")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()


def saved_steps(workdir: str) -> list[int]:
    """Steps of the complete checkpoints in `workdir` (half-written ones never count)."""
    if not os.path.isdir(checkpoint_dir(workdir)):
        return []
    return sorted(ocp.utils.checkpoint_steps(checkpoint_dir(workdir)))


def restore_latest(workdir: str, like: Any) -> tuple[Any, int]:
    """Restores the newest checkpoint of a run for inference: (state, step)."""
    if not os.path.isdir(checkpoint_dir(workdir)):
        raise FileNotFoundError(f"No checkpoints under {workdir}: train first with scripts.train.")
    ckpt = Checkpointer(workdir)
    try:
        step = ckpt.latest_step()
        return ckpt.restore(like, step), step
    finally:
        ckpt.close()


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a run in `workdir` was trained with (saved there by the trainer)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: is {workdir} a training work directory?")
    with open(path, encoding="utf-8") as f:
        return ml_collections.ConfigDict(json.load(f))
