"""Optimizing images for a visualization objective: Adam, jitter, a parameterisation.

`optimize(objective_fn, init_images, data, options)` minimises
`objective_fn(images, data)` over images given by `options.parameterization`
('pixel' or 'fourier', see `parameterize.py`) starting from `init_images`. Each
step evaluates the objective on the images rolled by a fresh random offset of
at most `options.jitter` pixels (the key is folded with the step number, so a
run is reproducible from `options.seed`). Steps run in compiled chunks
(`neural_synth.optimize.loop.make_chunk`: a `fori_loop` per dispatch, state
donated); `callback(report)` gets a `loop.Report` after each chunk (steps/s,
ETA, loss), which the command-line tools print as progress lines.

Class-model visualization, feature inversion (and anything else that is a loss
of the images) use this; DeepDream's normalised-gradient octaves are in
`dream.py`.
"""

import dataclasses
import math
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from neural_synth.optimize import loop
from neural_synth.train import prng
from neural_synth.viz import parameterize


@dataclasses.dataclass(frozen=True)
class AscentOptions:
    """How images are optimized.

    Attributes:
      num_steps: Adam steps.
      learning_rate: Adam's step size in parameter units (pixels in [0, 1] for
        'pixel'; ~0.05 suits both parameterisations).
      jitter: largest random circular shift per step, pixels (0: none).
      parameterization: 'pixel' or 'fourier'.
      chunk_size: steps per compiled dispatch (between progress reports).
      seed: seed of the jitter (and of random starting images where used).
    """

    num_steps: int = 200
    learning_rate: float = 0.05
    jitter: int = 8
    parameterization: str = "pixel"
    chunk_size: int = 25
    seed: int = 0

    def check(self) -> None:
        parameterize.check(self.parameterization)
        if self.num_steps < 0 or self.chunk_size < 1 or self.jitter < 0:
            raise ValueError(
                f"need num_steps >= 0, chunk_size >= 1 and jitter >= 0, got {self.num_steps}, "
                f"{self.chunk_size}, {self.jitter}"
            )
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")


def _make_step(objective_fn: Callable, optimizer, options: AscentOptions) -> Callable:
    """step(params, (opt_state, count), (data, key)) -> (params, state, loss), for make_chunk."""
    kind = options.parameterization

    def loss_fn(params, data, key):
        images = parameterize.to_images(params, kind)
        return objective_fn(parameterize.roll(images, key, options.jitter), data)

    def step(params, state, data_and_key):
        opt_state, count = state
        data, key = data_and_key
        value, grad = jax.value_and_grad(loss_fn)(params, data, jax.random.fold_in(key, count))
        updates, opt_state = optimizer.update(grad, opt_state, params)
        params = parameterize.project(optax.apply_updates(params, updates), kind)
        return params, (opt_state, count + 1), value

    return step


def optimize(
    objective_fn: Callable,
    init_images,
    data,
    options: AscentOptions = AscentOptions(),
    *,
    callback: Callable | None = None,
) -> np.ndarray:
    """Images minimising `objective_fn(images, data) -> scalar`: float32 [B, H, W, 3].

    Args:
      objective_fn: a jax-traceable loss of images [B, H, W, 3] in [0, 1] and
        `data` (any pytree: network variables, targets), e.g. minus a class score.
      init_images: starting images [B, H, W, 3] in [0, 1].
      data: passed to objective_fn unchanged; an argument of the compiled
        chunk, not a constant baked into it.
      options: `AscentOptions`.
      callback: called with a `loop.Report` after every chunk of steps.

    Raises:
      FloatingPointError: the loss stopped being finite (names the step).
    """
    options.check()
    optimizer = optax.adam(options.learning_rate)
    params = parameterize.from_images(init_images, options.parameterization)
    state = (jax.jit(optimizer.init)(params), jnp.zeros((), jnp.int32))
    chunk = loop.make_chunk(_make_step(objective_fn, optimizer, options), options.chunk_size)
    data_and_key = (data, prng.key(options.seed))
    chunk = chunk.lower(params, state, data_and_key, 0).compile()  # Not timed as a step.
    done = 0
    while done < options.num_steps:
        count = min(options.chunk_size, options.num_steps - done)
        start = time.perf_counter()
        params, state, losses, _ = chunk(params, state, data_and_key, count)
        losses = np.asarray(losses)[:count]  # Waits for the chunk.
        rate = count / max(time.perf_counter() - start, 1e-9)
        if not np.all(np.isfinite(losses)):
            bad = int(np.flatnonzero(~np.isfinite(losses))[0])
            raise FloatingPointError(
                f"the objective became {losses[bad]} at step {done + bad}; lower learning_rate"
            )
        done += count
        if callback is not None:
            eta = (options.num_steps - done) / rate if rate > 0 else math.inf
            callback(loop.Report(done, options.num_steps, float(losses[-1]), {}, rate, eta, params))
    return np.asarray(parameterize.to_images(params, options.parameterization), np.float32)
