"""Host-side batches that are a pure function of (seed, step).

Every experiment draws its training batches through `step_batches`, so a run
resumed at step s sees exactly the batches an uninterrupted run saw from s on,
and every process of a multi-host run draws the same global batch, of which it
feeds only its own rows (`neural_synth.mesh.process_rows`): a run's data do not depend
on how many processes share it.
"""

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

TRAIN_STREAM = 0  # Stream id of training batches in the seed sequence (seed, step, stream).


def step_rng(seed: int, step: int, stream: int = TRAIN_STREAM) -> np.random.Generator:
    """The generator of one step: seeded by (seed, step, stream), the same on every process."""
    return np.random.default_rng([seed, step, stream])


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
