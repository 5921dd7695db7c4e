"""Marker training throughput: train steps/s and examples/s on the current devices.

  python -m benchmarks.marker [--config=configs/marker.py[:variant]] [--steps=20] [--repeats=5]

Prints the median over `repeats` timed runs of `steps` compiled train steps
(data parallel over all devices, exactly the trainer's step), and a breakdown
of one step into the rendering network and the two networks.
"""

import statistics
import time

import jax
import jax.numpy as jnp
from absl import app, flags
from ml_collections import config_flags

import benchmarks
from neural_synth.train import prng
from scripts import common

_CONFIG = config_flags.DEFINE_config_file("config", "configs/marker.py", "Marker config file.")
_STEPS = flags.DEFINE_integer("steps", 20, "Train steps per timed run.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed runs; the median is reported.")


def _median_seconds(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # Compile and warm up.
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def benchmark(config, steps: int, repeats: int) -> dict[str, float]:
    exp, run_steps, box, batch_list = benchmarks.step_runner(config, steps)
    step_s = _median_seconds(run_steps, repeats) / steps
    return {"step_s": step_s, **_breakdown(exp, box["state"].params, batch_list[0], repeats)}


def _breakdown(exp, params, batch, repeats: int) -> dict[str, float]:
    """Seconds for forward+backward of the renderer alone and of both networks alone."""
    key, strength = prng.key(0), jnp.float32(1.0)
    markers = exp.synth.apply({"params": params["synth"]}, batch["bits"])
    render_grad = jax.jit(
        jax.grad(lambda m: exp.render(key, m, batch["background"], strength).sum())
    )
    side = exp.config.render.out_size

    def nets_loss(p):
        m = exp.synth.apply({"params": p["synth"]}, batch["bits"])
        photos = jax.image.resize(m, (m.shape[0], side, side, 3), "bilinear")
        return exp.recog.apply({"params": p["recog"]}, photos).sum()

    nets_grad = jax.jit(jax.grad(nets_loss))
    return {
        "render_s": _median_seconds(lambda: render_grad(markers), repeats),
        "nets_s": _median_seconds(lambda: nets_grad(params), repeats),
    }


def main(argv):
    del argv
    common.setup()
    config = _CONFIG.value
    r = benchmark(config, _STEPS.value, _REPEATS.value)
    batch = config.train.batch_size
    print(
        f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}; batch {batch}, "
        f"{config.marker.num_bits} bits, marker {config.marker.marker_size}px, "
        f"photo {config.render.out_size}px"
    )
    print(
        f"train step: {r['step_s'] * 1000:.1f} ms median -> {1 / r['step_s']:.2f} steps/s, "
        f"{batch / r['step_s']:.0f} examples/s"
    )
    print(
        f"breakdown (fwd+bwd, separately compiled): renderer {r['render_s'] * 1000:.1f} ms, "
        f"synthesizer+recognizer {r['nets_s'] * 1000:.1f} ms"
    )


if __name__ == "__main__":
    common.restart_with_malloc_tunables()  # As scripts.train does (GLIBC_TUNABLES= to opt out).
    app.run(main)
