"""DeepDream: amplify whatever a layer sees, by gradient ascent over octaves.

The objective is the mean squared activation of the chosen layers (averaged
over layers). Each step moves the image along the gradient normalised by its
mean absolute value, `image += step_size * g / mean|g|`, clipped to [0, 1], at
a random circular shift of at most `jitter` pixels (so the pattern cannot lock
onto the network's stride grid). Octaves: the image is shrunk by
`octave_scale` per octave; the smallest is dreamed first, and the detail it
gained (dreamed minus original) is enlarged and added to the next larger one.

Memory knob: `tile`. With tile = 0 a whole octave's steps run as one compiled
`fori_loop`. With tile > 0 each step's gradient is computed window by window
(`neural_synth.ops.tiled.tiled_apply`: windows of tile + 2 * halo pixels,
kept cores blended), so device memory is one window's activations whatever
the image size; each window differentiates its own objective, the usual
DeepDream approximation, and the random shifts hide the seams.

References: Mordvintsev, Olah & Tyka, "Inceptionism: Going Deeper into Neural
Networks", Google Research blog, 2015, and the deepdream notebook of the same
authors (octaves, jitter, normalised steps).
"""

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from neural_synth import io
from neural_synth.ops import tiled
from neural_synth.optimize import loop
from neural_synth.train import prng
from neural_synth.viz import classifiers

MIN_SIDE = 32  # Smallest octave side that deep layers still accept.


@dataclasses.dataclass(frozen=True)
class DreamOptions:
    """DeepDream settings.

    Attributes:
      num_octaves: image scales, the last the full size.
      octave_scale: size ratio between consecutive octaves.
      steps_per_octave: ascent steps at each scale.
      step_size: pixel change of an average pixel per step.
      jitter: largest random circular shift per step, pixels.
      tile: 0 for whole-image gradients, else the window core side (memory knob).
      halo: context added around each window core when tiling, pixels.
      seed: seed of the shifts.
    """

    num_octaves: int = 4
    octave_scale: float = 1.4
    steps_per_octave: int = 10
    step_size: float = 0.01
    jitter: int = 32
    tile: int = 0
    halo: int = 32
    seed: int = 0

    def check(self) -> None:
        if self.num_octaves < 1 or self.steps_per_octave < 0 or self.octave_scale < 1:
            raise ValueError(
                "need num_octaves >= 1, steps_per_octave >= 0 and octave_scale >= 1, got "
                f"{self.num_octaves}, {self.steps_per_octave}, {self.octave_scale}"
            )
        if self.tile < 0 or self.halo < 0 or self.jitter < 0 or not self.step_size > 0:
            raise ValueError("tile, halo and jitter must be >= 0 and step_size > 0")


def activation_energy(module: nn.Module, variables, images: jax.Array, layers) -> jax.Array:
    """Mean over `layers` of the mean squared activation: the DeepDream objective (scalar)."""
    acts = module.apply(variables, images, layers=tuple(layers))
    return sum(jnp.mean(jnp.square(acts[name])) for name in layers) / len(layers)


def _ascend_step(module, layers, step_size, jitter, variables, image, key):
    """One normalised ascent step at a random shift; returns (image, objective)."""

    def objective(x):
        shift = jax.random.randint(key, (2,), -jitter, jitter + 1)
        rolled = jnp.roll(x, (shift[0], shift[1]), axis=(1, 2))
        return activation_energy(module, variables, rolled, layers)

    value, grad = jax.value_and_grad(objective)(image)
    grad = grad / (jnp.mean(jnp.abs(grad)) + 1e-8)
    return jnp.clip(image + step_size * grad, 0.0, 1.0), value


@functools.cache
def _octave_fn(module: nn.Module, layers: tuple, step_size: float, jitter: int) -> Callable:
    """Jitted fn(variables, image [1, H, W, 3], key, num_steps) -> (image, last objective)."""

    def fn(variables, image, key, num_steps):
        def body(i, carry):
            return _ascend_step(
                module, layers, step_size, jitter, variables, carry[0], jax.random.fold_in(key, i)
            )

        return jax.lax.fori_loop(0, num_steps, body, (image, jnp.zeros((), jnp.float32)))

    return jax.jit(fn)


@functools.cache
def _window_grad_fn(module: nn.Module, layers: tuple) -> Callable:
    grad = jax.grad(lambda x, v: activation_energy(module, v, x, layers))
    return jax.jit(lambda variables, window: grad(window, variables))


def _tiled_octave(classifier, layers, image, options, rng, num_steps) -> np.ndarray:
    """An octave's steps with the gradient computed in windows (host loop over steps)."""
    grad_fn = _window_grad_fn(classifier.module("gradient"), layers)
    x = np.asarray(image, np.float32)  # [1, H, W, 3]
    for _ in range(num_steps):
        dy, dx = rng.integers(-options.jitter, options.jitter + 1, size=2)
        rolled = np.roll(x, (dy, dx), axis=(1, 2))
        g = tiled.tiled_apply(
            lambda windows: grad_fn(classifier.variables, windows[0]),
            [rolled],
            factors=[1],
            out_channels=3,
            tile=options.tile,
            halo=options.halo,
            align=1,
        )
        g = np.roll(g, (-dy, -dx), axis=(1, 2))
        x = np.clip(x + options.step_size * g / (np.abs(g).mean() + 1e-8), 0.0, 1.0)
    return x


def octave_sizes(height: int, width: int, options: DreamOptions) -> list[tuple[int, int]]:
    """(height, width) of every octave, smallest first, the last the full size."""
    sizes = [
        (round(height / options.octave_scale**k), round(width / options.octave_scale**k))
        for k in reversed(range(options.num_octaves))
    ]
    if min(sizes[0]) < MIN_SIDE:
        raise ValueError(
            f"the smallest octave would be {sizes[0][0]}x{sizes[0][1]} pixels (< {MIN_SIDE}); "
            "use fewer octaves, a smaller octave_scale or a larger image"
        )
    return sizes


def dream(
    classifier: classifiers.Classifier,
    image: np.ndarray,
    layers: Sequence[str],
    options: DreamOptions = DreamOptions(),
    *,
    callback: Callable | None = None,
) -> np.ndarray:
    """The dreamed image, float32 [H, W, 3] in [0, 1], from `image` [H, W, 3] in [0, 1].

    `layers`: spatial layers whose mean squared activation is amplified.
    `callback(report)` gets a `loop.Report` after each octave (step = steps done
    over all octaves, loss = the objective before the octave's last step, NaN
    when tiled; the rate includes the octave's compilation).
    """
    options.check()
    layers = tuple(classifier.check_layer(name) for name in layers)
    if not layers:
        raise ValueError("give at least one layer to dream on")
    image = np.asarray(image, np.float32)
    sizes = octave_sizes(image.shape[0], image.shape[1], options)
    module, key = classifier.module("gradient"), prng.key(options.seed)
    rng = np.random.default_rng(options.seed)
    detail = np.zeros((*sizes[0], 3), np.float32)
    total, done = options.num_octaves * options.steps_per_octave, 0
    for k, size in enumerate(sizes):
        base = io.resize(image, size=size) if size != image.shape[:2] else image
        detail = io.resize(detail, size=size) if detail.shape[:2] != size else detail
        start = np.clip(base + detail, 0.0, 1.0)[None]
        timer = time.perf_counter()
        if options.tile:
            x = _tiled_octave(classifier, layers, start, options, rng, options.steps_per_octave)
            value = float("nan")
        else:
            fn = _octave_fn(module, layers, float(options.step_size), int(options.jitter))
            x, value = fn(classifier.variables, jnp.asarray(start), jax.random.fold_in(key, k),
                          options.steps_per_octave)  # fmt: skip
            x, value = np.asarray(x), float(value)
        detail = x[0] - base
        done += options.steps_per_octave
        if callback is not None:
            rate = options.steps_per_octave / max(time.perf_counter() - timer, 1e-9)
            eta = (total - done) / rate if rate > 0 else float("inf")
            callback(loop.Report(done, total, value, {}, rate, eta, x, k, len(sizes), size))
    return x[0]
