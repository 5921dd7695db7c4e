"""One live run per work directory: an advisory lock that a killed run cannot leave stuck.

The lock is `fcntl.flock` on `WORKDIR/.lock`, held by process 0 of a run for
its whole life. The kernel drops it when the process exits for any reason
(SIGKILL included), so a crashed run never blocks its own restart, while a
second run started on a live run's workdir gets a clear error instead of
mixing two runs' checkpoints and metrics.
"""

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator

import jax

LOCK_FILE = ".lock"


class WorkdirBusyError(OSError):
    """Another live run holds the work directory."""


def _holder(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip() or "unknown"
    except OSError:
        return "unknown"


@contextlib.contextmanager
def hold(workdir: str) -> Iterator[bool]:
    """Creates (if needed) and locks `workdir` for this run; yields whether it was created.

    Raises:
      WorkdirBusyError: another live process holds the lock.
    """
    created = not os.path.isdir(workdir)
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() != 0:  # Process 0 speaks for the whole run.
        yield created
        return
    path = os.path.join(workdir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkdirBusyError(
                f"{workdir} is in use by another training run (pid {_holder(path)}); wait for "
                "it to finish or stop it, or choose another work directory."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield created
    finally:
        os.close(fd)  # Releases the lock.


def remove_failed_start(workdir: str) -> None:
    """Removes a work directory that a run created but failed to start in (process 0 only)."""
    if jax.process_index() == 0:
        shutil.rmtree(workdir, ignore_errors=True)
