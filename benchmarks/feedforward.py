r"""Feed-forward stylization inference: JAX (untiled and tiled) vs torch.nn on CPU.

  python -m benchmarks.feedforward                          # 512, 1024, 4096; torch eager
  python -m benchmarks.feedforward --sizes=512,1024 --repeats=3 --torch_compile
  python -m benchmarks.feedforward --stylize_10k            # one 10000^2 tiled stylization

The network is Johnson's transformation net (`feedforward.TransformNet`, width
32, 5 residual blocks, random weights with random instance-norm scales and
biases), batch 1, float32. Per size it times (medians of --repeats, batch 1,
so images/s = 1 / median seconds):

- `jax`: the whole image in one jitted call (sizes up to --untiled_max);
- `jax tiled`: `ops.tiled.image_tiler` with --tile (statistics from the image
  shrunk to --stats_pixels, windows of tile + 2 x halo), for sizes > --tile;
  the time includes the shrink and the statistics pass;
- `torch` / `torch compile`: the same network in torch.nn (ReflectionPad2d +
  Conv2d, InstanceNorm2d(affine=True), nearest Upsample + conv, sigmoid; eval,
  no_grad, channels_last), with weights copied from the JAX net; the two are
  checked to agree on a small image before anything is timed.

Each configuration runs in its own subprocess, so its peak resident memory
(`ru_maxrss`, including ~0.3-0.5 GiB of Python/framework baseline, printed
separately) is its own. The load average is printed beside each figure: other
jobs on the machine make times upper bounds. XLA flags can be tried by setting
XLA_FLAGS for the whole command (workers inherit the environment).
"""

import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
from absl import app, flags

import benchmarks
from scripts import common

_SIZES = flags.DEFINE_list("sizes", ["512", "1024", "4096"], "Square image sizes.")
_TILE = flags.DEFINE_integer("tile", 1024, "Kept tile side of the tiled JAX runs.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed runs per configuration (median).")
_LARGE_REPEATS = flags.DEFINE_integer("large_repeats", 2, "Timed runs for sizes >= 2048.")
_STATS_PIXELS = flags.DEFINE_integer("stats_pixels", 1024**2, "Pixels of the statistics pass.")
_UNTILED_MAX = flags.DEFINE_integer("untiled_max", 4096, "Largest size run untiled (JAX).")
_TORCH = flags.DEFINE_bool("torch", True, "Also time torch.nn when torch is installed.")
_TORCH_MAX = flags.DEFINE_integer("torch_max", 4096, "Largest size run in torch (eager).")
_TORCH_COMPILE = flags.DEFINE_bool("torch_compile", False, "Also time torch.compile (slow).")
_STYLIZE_10K = flags.DEFINE_bool("stylize_10k", False, "Only run one large tiled stylization.")
_BIG_SIZE = flags.DEFINE_integer("big_size", 10000, "Side of the --stylize_10k image.")
_SAVE = flags.DEFINE_string("save", "", "With --stylize_10k: also save the result here (PNG).")
_WORKER = flags.DEFINE_string("worker", "", "Internal: JSON spec of one measurement.")

WIDTH, NUM_RESIDUAL, ALIGN = 32, 5, 4
CHECK_SIZE, CHECK_TOLERANCE = 96, 1e-4
GIB = 1024**3


# ----------------------------------------------------------------------------- weights


def make_weights(path: str) -> None:
    """Random TransformNet weights (norm scales ~1 +- 0.3, biases ~0.3) saved as a flat npz."""
    import jax
    import jax.numpy as jnp

    from neural_synth.models import feedforward

    net = feedforward.TransformNet(width=WIDTH, num_residual=NUM_RESIDUAL)
    variables = net.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    rng = np.random.default_rng(0)
    flat = {}
    for key_path, p in jax.tree_util.tree_leaves_with_path(variables["params"]):
        name = "/".join(k.key for k in key_path)
        p = np.asarray(p)
        if name.endswith("scale"):
            p = 1 + 0.3 * rng.normal(size=p.shape)
        elif name.startswith("norm") or "/norm" in name:
            p = 0.3 * rng.normal(size=p.shape)
        flat[name] = p.astype(np.float32)
    np.savez(path, **flat)


def load_params(path: str) -> dict:
    """The npz of `make_weights` as a nested linen params dict."""
    params = {}
    with np.load(path) as data:
        for name in data.files:
            *parents, leaf = name.split("/")
            node = params
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = data[name]
    return params


# ----------------------------------------------------------------------------- torch net


def torch_net(path: str, compile_net: bool = False):
    """The same Johnson net in torch.nn (eval, channels_last) with the npz weights."""
    import torch
    from torch import nn

    w = dict(np.load(path))

    def conv(name, k, stride=1):
        kernel = w[f"{name}/Conv_0/kernel"]  # [k, k, Cin, Cout]
        c = nn.Conv2d(kernel.shape[2], kernel.shape[3], k, stride)
        c.weight.data = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
        c.bias.data = torch.from_numpy(w[f"{name}/Conv_0/bias"])
        return nn.Sequential(nn.ReflectionPad2d(k // 2), c)

    def norm(name):
        n = nn.InstanceNorm2d(w[f"{name}/scale"].size, affine=True, eps=1e-5)
        n.weight.data = torch.from_numpy(w[f"{name}/scale"])
        n.bias.data = torch.from_numpy(w[f"{name}/bias"])
        return n

    class Residual(nn.Module):
        def __init__(self, name):
            super().__init__()
            self.body = nn.Sequential(
                conv(f"{name}/conv1", 3), norm(f"{name}/norm1"), nn.ReLU(),
                conv(f"{name}/conv2", 3), norm(f"{name}/norm2"),
            )  # fmt: skip

        def forward(self, x):
            return x + self.body(x)

    class JohnsonNet(nn.Module):
        def __init__(self):
            super().__init__()
            up = lambda i: [nn.Upsample(scale_factor=2), conv(f"up{i}", 3), norm(f"norm_up{i}")]
            self.body = nn.Sequential(
                conv("conv_in", 9), norm("norm_in"), nn.ReLU(),
                conv("down0", 3, 2), norm("norm_down0"), nn.ReLU(),
                conv("down1", 3, 2), norm("norm_down1"), nn.ReLU(),
                *[Residual(f"res{i}") for i in range(NUM_RESIDUAL)],
                *up(0), nn.ReLU(), *up(1), nn.ReLU(),
                conv("conv_out", 9), nn.Sigmoid(),
            )  # fmt: skip

        def forward(self, x):
            return self.body(x * 2.0 - 1.0)

    net = JohnsonNet().eval().to(memory_format=torch.channels_last)
    return torch.compile(net) if compile_net else net


def to_torch(image: np.ndarray):
    """[1, H, W, 3] NumPy -> torch NCHW tensor in channels_last memory (no copy of layout)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(image)).permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------- images


def synthetic_image(size: int) -> np.ndarray:
    """skimage's astronaut resized to size^2, one channel at a time: [1, size, size, 3]."""
    from neural_synth import io

    base = io.sample_image("astronaut")
    out = np.empty((1, size, size, 3), np.float32)
    for c in range(3):
        out[0, ..., c] = io.resize(base[..., c : c + 1], size=(size, size))[..., 0]
    return out


def check_agreement(path: str) -> float:
    """Max abs difference of the JAX and torch nets' outputs on a small image."""
    import jax
    import torch

    from neural_synth.models import feedforward

    image = synthetic_image(CHECK_SIZE)
    net = feedforward.TransformNet(width=WIDTH, num_residual=NUM_RESIDUAL)
    ours = np.asarray(jax.jit(net.apply)({"params": load_params(path)}, image))
    with torch.no_grad():
        theirs = torch_net(path)(to_torch(image)).permute(0, 2, 3, 1).numpy()
    return float(np.max(np.abs(ours - theirs)))


# ----------------------------------------------------------------------------- workers


def _rss_gib() -> float:
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith("VmRSS"))
    return int(line.split()[1]) * 1024 / GIB


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # Linux: KiB.


def _timed(run, repeats: int) -> dict:
    """Compile/warm-up once, then `repeats` timed calls of `run` (which must block)."""
    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {"first_s": first, "times": times, "median_s": statistics.median(times)}


def _jax_runner(spec: dict, image: np.ndarray):
    import jax
    import jax.numpy as jnp

    from neural_synth.models import feedforward
    from neural_synth.ops import tiled

    net = feedforward.TransformNet(width=WIDTH, num_residual=NUM_RESIDUAL)
    variables = {"params": jax.tree.map(jnp.asarray, load_params(spec["weights"]))}
    if not spec["tile"]:
        fn, x = jax.jit(net.apply), jnp.asarray(image)
        return lambda: fn(variables, x).block_until_ready()
    run = tiled.image_tiler(
        net.apply,
        variables,
        tile=spec["tile"],
        halo=feedforward.transform_receptive_radius(NUM_RESIDUAL),
        align=ALIGN,
        stats_pixels=spec["stats_pixels"],
    )
    return lambda: run(image, progress=spec.get("progress", False))


def _torch_runner(spec: dict, image: np.ndarray):
    import torch

    net = torch_net(spec["weights"], compile_net=spec["framework"] == "torch_compile")
    x = to_torch(image).contiguous(memory_format=torch.channels_last)

    def run():
        with torch.no_grad():
            return net(x)

    return run


def _single_run(run, spec: dict) -> dict:
    """One timed call (compilation included), its peak RSS, then seam figures and the PNG."""
    start = time.perf_counter()
    out = run()
    result = {"first_s": time.perf_counter() - start, "peak_gib": _peak_gib()}
    result["seams"] = seam_ratios(out, spec)
    if spec.get("save"):
        from neural_synth import io

        io.save_image(spec["save"], out[0])
    return result


def worker(spec: dict) -> dict:
    """One measurement in this process: times, peak RSS, load averages."""
    load_start = os.getloadavg()[0]
    image = synthetic_image(spec["size"])
    runner = _jax_runner if spec["framework"] == "jax" else _torch_runner
    run = runner(spec, image)
    baseline = _rss_gib()
    result = _timed(run, spec["repeats"]) if spec["repeats"] else _single_run(run, spec)
    return {**spec, "peak_gib": _peak_gib(), **result, "baseline_gib": baseline,
            "load": [load_start, os.getloadavg()[0]]}  # fmt: skip


def seam_ratios(out: np.ndarray, spec: dict) -> list[float]:
    """Largest step across a tile edge relative to the steps beside it, per axis (rows, cols).

    For each kept-range edge e (where a seam would be), the mean |difference|
    between output lines e and e - 1 over the mean of that at e +- 1..4: ~1
    means the edge is no more visible than the content next to it.
    """
    from neural_synth.models import feedforward
    from neural_synth.ops import tiled

    halo = feedforward.transform_receptive_radius(NUM_RESIDUAL)
    plan = tiled.plan_tiles(spec["size"], tile=spec["tile"], halo=halo, align=ALIGN)
    edges = sorted({t.keep_start for t in plan[1:]} | {t.keep_stop for t in plan[:-1]})
    ratios = []
    for axis in (1, 2):
        steps = {
            i: float(np.mean(np.abs(np.take(out, i, axis=axis) - np.take(out, i - 1, axis=axis))))
            for e in edges
            for i in range(e - 4, e + 5)
        }
        beside = lambda e, s=steps: np.mean([s[e + d] for d in (-4, -3, -2, -1, 1, 2, 3, 4)])
        ratios.append(max((steps[e] / beside(e) for e in edges), default=float("nan")))
    return ratios


def run_worker(spec: dict, stream: bool = False) -> dict | None:
    """Runs `worker(spec)` in a fresh interpreter; None (and its stderr) if it failed."""
    cmd = [sys.executable, "-m", "benchmarks.feedforward", f"--worker={json.dumps(spec)}"]
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=None if stream else subprocess.PIPE, text=True
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    print(f"  failed ({proc.returncode}): {(proc.stderr or '')[-2000:]}", file=sys.stderr)
    return None


# ----------------------------------------------------------------------------- main


def _configs(size: int) -> list[tuple[str, int]]:
    """(framework, tile) pairs to measure at this size."""
    configs = []
    if size <= _UNTILED_MAX.value:
        configs.append(("jax", 0))
    if size > _TILE.value:
        configs.append(("jax", _TILE.value))
    if _TORCH.value and size <= _TORCH_MAX.value:
        configs.append(("torch", 0))
        if _TORCH_COMPILE.value:
            configs.append(("torch_compile", 0))
    return configs


def _label(r: dict) -> str:
    return r["framework"].replace("_", " ") + (f" tiled {r['tile']}" if r["tile"] else "")


def _ratio(r: dict, reference: dict | None) -> str:
    if reference is None or reference is r:
        return "-"
    return f"{r['median_s'] / reference['median_s']:.2f}"


def _row(r: dict, eager: dict | None, compiled: dict | None) -> str:
    return (
        f"| {r['size']}^2 | {_label(r)} | {r['median_s']:.3f} s | {1 / r['median_s']:.3f} | "
        f"{r['peak_gib']:.2f} GiB ({r['baseline_gib']:.2f}) | {_ratio(r, eager)} | "
        f"{_ratio(r, compiled)} | {r['load'][0]:.1f}-{r['load'][1]:.1f} |"
    )


def _print_table(results: list[dict]) -> None:
    """Markdown table; ratios are time / torch time at the same size (< 1: faster than torch)."""
    print("\n| size | run | median time | images/s | peak RSS (baseline) | time / torch eager "
          "| time / torch compile | load avg |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        same = lambda fw, size=r["size"]: next(
            (t for t in results if t["size"] == size and t["framework"] == fw), None
        )
        print(_row(r, same("torch"), same("torch_compile")))


def _benchmark(weights: str) -> None:
    # On a GPU the parent must not preallocate the memory its workers measure.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    print(f"JAX backend: {jax.default_backend()}")
    flags.FLAGS.torch = benchmarks.torch_comparison(_TORCH.value)
    if _TORCH.value:
        diff = check_agreement(weights)
        print(f"JAX vs torch.nn output on {CHECK_SIZE}^2: max abs difference {diff:.2e}")
        if diff > CHECK_TOLERANCE:
            print(f"WARNING: the two networks differ by more than {CHECK_TOLERANCE}.")
    results = []
    for size in (int(s) for s in _SIZES.value):
        repeats = _LARGE_REPEATS.value if size >= 2048 else _REPEATS.value
        for framework, tile in _configs(size):
            spec = dict(framework=framework, size=size, tile=tile, repeats=repeats,
                        weights=weights, stats_pixels=_STATS_PIXELS.value)  # fmt: skip
            r = run_worker(spec)
            if r is not None:
                results.append(r)
                print(f"{size}^2 {_label(r)}: {r['median_s']:.3f} s (first call "
                      f"{r['first_s']:.1f} s), peak {r['peak_gib']:.2f} GiB, "
                      f"load {r['load'][0]:.1f}-{r['load'][1]:.1f}", flush=True)  # fmt: skip
    _print_table(results)


def _stylize_big(weights: str) -> None:
    size = _BIG_SIZE.value
    spec = dict(framework="jax", size=size, tile=_TILE.value, repeats=0, weights=weights,
                stats_pixels=_STATS_PIXELS.value, progress=True, save=_SAVE.value)  # fmt: skip
    r = run_worker(spec, stream=True)
    if r is not None:
        print(f"{size}^2 tiled stylization (tile {r['tile']}): {r['first_s']:.1f} s including "
              f"compilation, peak RSS {r['peak_gib']:.2f} GiB (baseline incl. input "
              f"{r['baseline_gib']:.2f} GiB), max seam step ratios rows/cols "
              f"{r['seams'][0]:.3f}/{r['seams'][1]:.3f}, load {r['load'][0]:.1f}-"
              f"{r['load'][1]:.1f}")  # fmt: skip


def main(argv) -> None:
    del argv
    if _WORKER.value:
        spec = json.loads(_WORKER.value)
        result = worker(spec)
        print("RESULT " + json.dumps(result), flush=True)
        return
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        weights = str(pathlib.Path(tmp) / "johnson.npz")
        make_weights(weights)
        (_stylize_big if _STYLIZE_10K.value else _benchmark)(weights)


if __name__ == "__main__":
    common.restart_with_malloc_tunables()  # As scripts.train does (GLIBC_TUNABLES= to opt out).
    app.run(main)
