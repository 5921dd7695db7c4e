r"""Benchmark of Gatys style-transfer optimization on CPU: JAX loops vs PyTorch.

  python -m benchmarks.optimize                              # 256 and 512, everything
  python -m benchmarks.optimize --sizes=256 --steps=5 --repeats=3   # quick
  python -m benchmarks.optimize --memory_size=1024 --memory_steps=4 # peak memory only
  python -m benchmarks.optimize --memory_size=4096 --memory_tile=1024 --memory_steps=1

What is timed (random VGG19 weights, average pooling, batch 1, float32; Gram
losses at relu1_1..relu5_1 plus a content loss at relu4_2; medians of --repeats):

1. `grad`: one loss-and-gradient evaluation w.r.t. the image, jitted alone (with
   the frozen-VGG fast path), and, when torch is installed, the same computation
   written with torch.nn (channels_last, the faster PyTorch layout here), run
   alternately with the JAX one so both see the same machine load. Prints the
   JAX / PyTorch time ratio (< 1: JAX faster).
2. `adam` / `lbfgs` seconds per iteration: a compiled chunk of --steps steps
   (`loop.Loop`, the library's loop: `lax.fori_loop`, donated state) versus a
   Python loop of the same number of single jitted steps. For L-BFGS it also
   prints the loss+gradient evaluations per iteration (line-search trials).
3. GFLOP/s of `grad`, from two counts: XLA's `cost_analysis()` of the compiled
   gradient, and the formula 2 x (forward convolution FLOPs) + Gram FLOPs
   (forward and backward), i.e. the input gradient of each convolution costs
   what its forward pass costs and no weight gradients are formed.
4. With --memory_size: the peak resident memory (`getrusage` max RSS) of a
   `gatys.synthesize` run at that size, and bytes per output pixel.
"""

import functools
import os
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags, logging

import benchmarks
from neural_synth import io
from neural_synth.models import vgg
from neural_synth.optimize import gatys, loop, objective
from neural_synth.optimize import options as options_lib
from neural_synth.optimize import problem as problem_lib
from scripts import common

_SIZES = flags.DEFINE_list("sizes", ["256", "512"], "Square image sizes to time.")
_STEPS = flags.DEFINE_integer("steps", 10, "Steps per timed chunk / Python loop.", lower_bound=1)
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repetitions (medians).", lower_bound=1)
_OPTIMIZERS = flags.DEFINE_list("optimizers", list(loop.OPTIMIZERS), "Optimizers to time.")
_TORCH = flags.DEFINE_bool("torch", True, "Also time PyTorch when it is installed.")
_PYTHON_LOOP = flags.DEFINE_bool("python_loop", True, "Also time a Python loop of jitted steps.")
_MEMORY_SIZE = flags.DEFINE_integer(
    "memory_size", 0, "Only measure peak memory of a synthesis at this size (0: off)."
)
_MEMORY_STEPS = flags.DEFINE_integer("memory_steps", 4, "Steps of the memory run.")
_MEMORY_OPTIMIZER = flags.DEFINE_enum("memory_optimizer", "lbfgs", loop.OPTIMIZERS, "Optimizer.")
_MEMORY_TILE = flags.DEFINE_integer(
    "memory_tile", 0, "tile_size of the memory run (0: whole image at once).", lower_bound=0
)

STYLE_LAYERS = options_lib.DEFAULT_STYLE_LAYERS
CONTENT_LAYER = options_lib.DEFAULT_CONTENT_LAYERS[0]
LAYERS = (*STYLE_LAYERS, CONTENT_LAYER)


# ----------------------------------------------------------------------------- FLOPs


def formula_flops(size: int) -> float:
    """2 x forward conv FLOPs up to conv5_1 + Gram FLOPs (forward + backward)."""
    order = vgg.layer_names("vgg19")
    deepest = order.index("relu5_1")
    side, in_ch, conv = size, 3, 0.0
    for name in order[: deepest + 1]:
        if name.startswith("conv"):
            out_ch = vgg.WIDTHS[int(name[4]) - 1]
            conv += 2.0 * side * side * 9 * in_ch * out_ch
            in_ch = out_ch
        elif name.startswith("pool"):
            side //= 2
    grams = 0.0
    for name in STYLE_LAYERS:
        block = int(name[4]) - 1
        positions, ch = (size // 2**block) ** 2, vgg.WIDTHS[block]
        grams += 3 * 2.0 * positions * ch * ch  # G = F^T F, and dF = F dG (2 products).
    return 2 * conv + grams


# ----------------------------------------------------------------------------- JAX side


def make_problem(size: int) -> tuple[problem_lib.Problem, options_lib.GatysOptions, jax.Array]:
    module = vgg.VGG(arch="vgg19", pooling="avg")
    params = vgg.random_params("vgg19", LAYERS, seed=0)
    options = options_lib.GatysOptions(init="content")
    content = io.load_image_or_sample("skimage:astronaut", size=(size, size))
    style = io.load_image_or_sample("skimage:brick", size=(size, size))
    problem = problem_lib.build_problem(
        module,
        vgg.freeze({"params": params}),
        styles=[style],
        content=content[None],
        size=(size, size),
        full_size=(size, size),
        options=options,
    )
    return problem, options, jnp.asarray(content[None])


def time_jax_grad(problem: problem_lib.Problem, x: jax.Array):
    """(jitted grad fn, XLA cost-analysis FLOPs)."""
    loss = functools.partial(objective.total_loss, spec=problem.spec)
    grad_fn = jax.jit(jax.value_and_grad(loss))
    compiled = grad_fn.lower(x, problem.data).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    run = lambda: jax.block_until_ready(compiled(x, problem.data))
    run()
    return run, float(cost.get("flops", float("nan")))


def time_loops(problem, options, x, name: str, steps: int, repeats: int, python_loop: bool):
    """Seconds/iteration of the compiled chunk and of a Python loop; L-BFGS evaluations/it.

    Each repetition runs the compiled chunk and then the Python loop from copies
    of the same state, so both time the same iterations (L-BFGS iterations differ
    in their number of line-search evaluations).
    """
    opt = loop.make_optimizer(name, learning_rate=options.learning_rate)
    scale = loop.lbfgs_scale(x.size) if name == "lbfgs" else 1.0  # As gatys.optimize_scale.
    runner = loop.Loop(
        functools.partial(objective.total_loss, spec=problem.spec),
        opt,
        is_lbfgs=name == "lbfgs",
        clip=name == "adam",
        chunk_size=steps,
        scale=scale,
    )
    z = x / scale  # The compiled chunk and step work on the scaled parameters.
    state = jax.jit(opt.init)(z)
    compiled = runner.chunk.lower(z, state, problem.data, steps).compile()
    step = jax.jit(runner.step, donate_argnums=(0, 1))
    copy = lambda tree: jax.tree.map(jnp.copy, tree)
    z, state, _, _ = compiled(z, state, problem.data, steps)  # Warm up past the first steps.
    if python_loop or name == "lbfgs":
        jax.block_until_ready(step(copy(z), copy(state), problem.data))  # Compile it.
    times = {"compiled": [], "python": []}
    evaluations = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(copy(z), copy(state), problem.data, steps))
        times["compiled"].append((time.perf_counter() - start) / steps)
        if python_loop or name == "lbfgs":
            pz, pstate = copy(z), copy(state)
            start = time.perf_counter()
            for _ in range(steps):
                pz, pstate, _ = step(pz, pstate, problem.data)
                if name == "lbfgs":
                    evaluations.append(int(optax.tree.get(pstate, "num_linesearch_steps")))
            jax.block_until_ready(pz)
            times["python"].append((time.perf_counter() - start) / steps)
        z, state = out[0], out[1]
    result = {k: statistics.median(v) for k, v in times.items() if v}
    if evaluations:
        result["evals_per_it"] = float(np.mean(evaluations))
    return result


# ----------------------------------------------------------------------------- PyTorch side


def torch_grad_fn(size: int):
    """The same computation in torch.nn (channels_last, random He weights); None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    layers, names, in_ch = [], [], 3
    for name in vgg.layer_names("vgg19")[: vgg.layer_names("vgg19").index("relu5_1") + 1]:
        if name.startswith("conv"):
            out_ch = vgg.WIDTHS[int(name[4]) - 1]
            conv = torch.nn.Conv2d(in_ch, out_ch, 3, padding=1)
            torch.nn.init.kaiming_normal_(conv.weight)
            torch.nn.init.zeros_(conv.bias)
            layers.append(conv)
            in_ch = out_ch
        elif name.startswith("relu"):
            layers.append(torch.nn.ReLU())
        else:
            layers.append(torch.nn.AvgPool2d(2))
        names.append(name)
    net = torch.nn.Sequential(*layers).eval().to(memory_format=torch.channels_last)
    for p in net.parameters():
        p.requires_grad_(False)

    def features(x):
        out = {}
        for name, layer in zip(names, net, strict=True):
            x = layer(x)
            if name in LAYERS:
                out[name] = x
        return out

    def gram(f):
        b, c, h, w = f.shape
        f = f.reshape(b, c, h * w)
        return f @ f.transpose(1, 2) / (h * w)

    def image():
        return torch.rand(1, 3, size, size).contiguous(memory_format=torch.channels_last)

    with torch.no_grad():
        target = features(image())
        grams = {name: gram(target[name]) for name in STYLE_LAYERS}
    x = image().requires_grad_(True)

    def run():
        f = features(x)
        loss = sum(((gram(f[n]) - grams[n]) ** 2).mean() for n in STYLE_LAYERS)
        loss = loss + ((f[CONTENT_LAYER] - target[CONTENT_LAYER]) ** 2).mean()
        (grad,) = torch.autograd.grad(loss, x)
        return grad

    run()
    return run


def alternate(fns: dict, repeats: int) -> dict:
    """Median seconds of each fn, run in turns so that all see the same machine load."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


# ----------------------------------------------------------------------------- reports


def bench_size(size: int) -> None:
    problem, options, x = make_problem(size)
    jax_grad, xla_flops = time_jax_grad(problem, x)
    fns = {"jax": jax_grad}
    torch_fn = torch_grad_fn(size) if benchmarks.torch_comparison(_TORCH.value) else None
    if torch_fn is not None:
        fns["torch"] = torch_fn
    times = alternate(fns, _REPEATS.value)
    flops = formula_flops(size)
    line = (
        f"{size}x{size} grad: JAX {times['jax']:.3f} s "
        f"({flops / times['jax'] / 1e9:.0f} GFLOP/s by formula {flops / 1e9:.0f} GFLOP; "
        f"{xla_flops / times['jax'] / 1e9:.0f} GFLOP/s by XLA cost analysis "
        f"{xla_flops / 1e9:.0f} GFLOP)"
    )
    if "torch" in times:
        ratio = times["jax"] / times["torch"]
        line += f" | PyTorch channels_last {times['torch']:.3f} s | JAX/PyTorch {ratio:.2f}"
    print(line, flush=True)
    for name in _OPTIMIZERS.value:
        r = time_loops(problem, options, x, name, _STEPS.value, _REPEATS.value, _PYTHON_LOOP.value)
        line = f"{size}x{size} {name}: compiled loop {r['compiled']:.3f} s/it"
        if "python" in r:
            line += f" | Python loop of jitted steps {r['python']:.3f} s/it"
            line += f" (compiled is {r['python'] / r['compiled']:.2f}x as fast)"
        if "evals_per_it" in r:
            line += f" | {r['evals_per_it']:.2f} loss+grad evaluations/it"
        print(line, flush=True)


def bench_memory(size: int) -> None:
    module = vgg.VGG(arch="vgg19", pooling="avg")
    params = vgg.random_params("vgg19", LAYERS, seed=0)
    content = io.load_image_or_sample("skimage:astronaut", size=(size, size))
    style = io.load_image_or_sample("skimage:brick", max_side=512)
    options = options_lib.GatysOptions(
        init="content",
        num_steps=_MEMORY_STEPS.value,
        optimizer=_MEMORY_OPTIMIZER.value,
        tile_size=_MEMORY_TILE.value,
        chunk_size=_MEMORY_STEPS.value,
    )
    start = time.perf_counter()
    gatys.synthesize(module, params, styles=[style], content=content, options=options)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB.
    tiles = f"tiles of {options.tile_size}" if options.tile_size else "whole image"
    print(
        f"{size}x{size} {options.optimizer} {options.num_steps} steps, {tiles}: "
        f"{seconds:.1f} s, peak RSS "
        f"{peak / 2**30:.2f} GiB = {peak / size**2:.0f} bytes/pixel (incl. ~0.5 GiB baseline)"
    )


def main(argv) -> int:
    del argv
    logging.set_verbosity(logging.WARNING)  # Keep JAX's backend probing out of the output.
    print(
        f"jax {jax.__version__}, backend {jax.default_backend()}, {jax.device_count()} device(s) "
        f"{jax.devices()[0].device_kind}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    if _MEMORY_SIZE.value:
        bench_memory(_MEMORY_SIZE.value)
        return 0
    for size in _SIZES.value:
        bench_size(int(size))
    print(f"load average at the end {os.getloadavg()[0]:.2f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    common.restart_with_malloc_tunables()  # As scripts.train does (GLIBC_TUNABLES= to opt out).
    app.run(main)
