"""Up-convolutional generator: renderer speed, layer speed, train step.

  python -m benchmarks.upconv [--config=configs/upconv.py[:variant]] [--repeats=5]

Prints medians of `repeats` timed runs (after a warm-up) of
  - the ray-casting renderer (`data/shapes3d.render_views`): ms per image at
    the config's image size, a batch of train_batch_size objects and views;
  - each 2x up-convolution of the config's generator, forward + backward at
    the training batch: `UnpoolConv` (phase form) against the literal
    `conv(unpool(x))` it equals;
  - the experiment's whole train step (as the trainer compiles it), with the
    batch's rendering excluded.
Wall times and process CPU times (all threads) are both printed: on a shared
machine the CPU time is the steadier figure.
"""

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from ml_collections import config_flags

import benchmarks
from neural_synth.data import shapes3d
from neural_synth.models import conv, upconv
from neural_synth.train import prng
from scripts import common

_CONFIG = config_flags.DEFINE_config_file("config", "configs/upconv.py", "Upconv config file.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed runs; the median is reported.")


def _median(fn, repeats: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of fn() after one warm-up call."""
    jax.block_until_ready(fn())
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def _renderer(config, repeats: int) -> None:
    num, size = config.train.batch_size, config.data.image_size
    shapes = shapes3d.make_shapes(num, seed=0)
    rng = np.random.default_rng(0)
    az, el = rng.uniform(0, 360, num), rng.uniform(10, 40, num)
    wall, cpu = _median(lambda: shapes3d.render_views(shapes, az, el, size=size), repeats)
    print(
        f"renderer {size}px, batch {num}: {1e3 * wall / num:.2f} ms/image wall, {1e3 * cpu / num:.2f} CPU"
    )


class _Literal(upconv.nn.Module):
    """conv(unpool(x)), written out."""

    features: int
    kernel_size: int

    @upconv.nn.compact
    def __call__(self, x):
        k = self.kernel_size
        return conv.Conv(self.features, k, padding=k // 2)(upconv.unpool(x))


def _layers(config, repeats: int) -> None:
    mc, batch = config.model, config.train.batch_size
    side, width = mc.base_size, mc.width
    levels = upconv.num_levels(config.data.image_size, mc.base_size)
    for i in range(levels):
        features = 4 if i == levels - 1 else max(mc.width >> (i + 1), mc.min_width)
        x = jax.random.normal(prng.key(i), (batch, side, side, width))
        times = {}
        for name, layer in (
            ("phases", upconv.UnpoolConv(features, mc.kernel_size)),
            ("literal", _Literal(features, mc.kernel_size)),
        ):
            params = jax.jit(layer.init)(prng.key(0), x)
            grad = jax.jit(jax.grad(lambda p, v, f=layer.apply: jnp.sum(f(p, v) ** 2), (0, 1)))
            times[name] = _median(lambda g=grad, p=params, v=x: g(p, v), repeats)
        (pw, pc), (lw, lc) = times["phases"], times["literal"]
        print(
            f"up-conv {side}->{2 * side}px {width}->{features}ch fwd+bwd: phases {1e3 * pw:.1f} ms "
            f"({1e3 * pc:.0f} CPU), literal {1e3 * lw:.1f} ms ({1e3 * lc:.0f} CPU): "
            f"{lw / pw:.2f}x"
        )
        side, width = 2 * side, features


def _step(config, repeats: int, steps: int = 10) -> None:
    _, run_steps, _, _ = benchmarks.step_runner(config, steps)
    wall, cpu = _median(run_steps, repeats)
    print(
        f"train step (batch {config.train.batch_size}, {config.data.image_size}px): "
        f"{1e3 * wall / steps:.0f} ms wall, {1e3 * cpu / steps:.0f} ms CPU"
    )


def main() -> None:
    config, repeats = _CONFIG.value, _REPEATS.value
    print(
        f"devices: {jax.devices()}; load average {' '.join(open('/proc/loadavg').read().split()[:3])}"
    )
    _renderer(config, repeats)
    _layers(config, repeats)
    _step(config, repeats)


if __name__ == "__main__":
    common.run(main)
