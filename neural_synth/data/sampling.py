"""Host-side batches that are a pure function of (seed, step, process).

Every experiment draws its training batches through `step_batches`, so a run
resumed at step s sees exactly the batches an uninterrupted run saw from s on,
and each process of a multi-host run draws its own rows.
"""

from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The generator of one step of this process: seeded by (seed, step, process index)."""
    return np.random.default_rng([seed, step, jax.process_index()])


def step_batches(
    make_batch: Callable[[np.random.Generator, int], Any],
    *,
    seed: int,
    start_step: int,
    batch_size: int,
) -> Iterator[Any]:
    """Yields make_batch(step_rng(seed, step), batch_size) for step = start_step, ..."""
    step = start_step
    while True:
        yield make_batch(step_rng(seed, step), batch_size)
        step += 1
