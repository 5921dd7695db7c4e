r"""pix2pix training throughput on CPU: the experiment's compiled train step vs PyTorch.

  python -m benchmarks.pix2pix                                  # 256^2, batch 1 and 8
  python -m benchmarks.pix2pix --batch_sizes=1 --steps=3 --repeats=3   # quick
  python -m benchmarks.pix2pix --torch_compile                  # also torch.compile

What is timed (U-Net256, width 64, batch norm, dropout; 70x70 PatchGAN, width
64; Adam; loss 100 * L1 + vanilla GAN; random data; float32; medians of
--repeats runs of --steps steps):

1. JAX: `neural_synth.experiments.pix2pix.Pix2PixExperiment.train_step` compiled the way
   the trainer compiles it (jit, donated state), one G forward, a D step, a G
   step through the updated D.
2. PyTorch (when installed): the same two networks in torch.nn (junyanz's
   layer order, channels_last, `torch.set_num_threads(cores)`), the same step
   (junyanz's `optimize_parameters`: G forward, D step on the detached fake, G
   step through the updated D), eager and, with --torch_compile, compiled
   (the G and D forward passes `torch.compile`d; compile time excluded). Timed
   alternately with JAX so both see the same machine load.

Prints seconds per step, steps/s and the JAX / PyTorch time ratio (< 1: JAX
faster). It restarts itself with `scripts.common`'s malloc tunables, as
`scripts.train` does (`GLIBC_TUNABLES=` to opt out): without them XLA's step
temporaries (3.3 GB at batch 8) are fresh pages every step, and the kernel
spent a quarter of the batch-8 step clearing them. Both frameworks run in this
one process under the same settings. `--noynn` (XLA:CPU's Eigen convolutions
instead of YNNPACK, process-wide) is the other setting measured in
benchmarks/RESULTS.md. The torch modules here are also the tests' reference
implementations (`tests/models/test_unet.py`, `test_patchgan.py`), so the
benchmark compares the networks the tests prove equal.
"""

import os
import statistics
import time

import jax
import numpy as np
from absl import app, flags

import benchmarks
from neural_synth import experiments
from neural_synth import mesh as mesh_lib
from neural_synth.train import prng, trainer
from scripts import common

_SIZE = flags.DEFINE_integer("size", 256, "Square image side.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "8"], "Batch sizes to time.")
_STEPS = flags.DEFINE_integer("steps", 3, "Train steps per timed run.", lower_bound=1)
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed runs (medians).", lower_bound=1)
_TORCH = flags.DEFINE_bool("torch", True, "Also time PyTorch when it is installed.")
_TORCH_COMPILE = flags.DEFINE_bool("torch_compile", False, "Also time torch.compile'd networks.")
_WIDTH = flags.DEFINE_integer("width", 64, "Generator and discriminator width.")
_YNN = flags.DEFINE_bool(
    "ynn",
    True,
    "--noynn adds --xla_cpu_experimental_ynn_fusion_type= to XLA_FLAGS (XLA:CPU's "
    "Eigen convolutions instead of YNNPACK fusions; process-wide).",
)


def benchmark_config(size: int, batch_size: int, width: int = 64):
    """The pix2pix paper config at `size`, batch `batch_size` (data never loaded)."""
    from configs import pix2pix as pix2pix_config

    config = pix2pix_config.get_config("paper")
    config.data.update(load_size=(size, size), crop_size=(size, size))
    config.model.update(width=width, disc_width=width)
    config.train.batch_size = batch_size
    return config


# ----------------------------------------------------------------------------- JAX side


def jax_step_fn(config):
    """A closure running `steps` compiled train steps on random data (batch on all devices)."""
    exp = experiments.build(config)
    mesh = mesh_lib.make_mesh()
    state = jax.jit(exp.init_state, out_shardings=mesh_lib.replicated(mesh))(prng.key(0))
    step_fn = trainer._compile_step(exp, mesh)
    rng = np.random.default_rng(0)
    shape = (config.train.batch_size, *exp.crop, 3)
    local = {k: rng.uniform(size=shape).astype(np.float32) for k in ("input", "target")}
    batch = mesh_lib.global_batch(local, mesh)
    box = {"state": state}

    def run(steps: int):
        for i in range(steps):
            box["state"], metrics = step_fn(box["state"], batch, prng.key(i))
        jax.block_until_ready(metrics)

    return run


# ----------------------------------------------------------------------------- PyTorch side


def torch_unet(num_downs: int, width: int, norm: str = "batch", dropout: float = 0.5):
    """`unet.UNet`'s layers in torch.nn, named like the flax parameters."""
    import torch

    class TorchUNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            feats = lambda i: width * min(2**i, 8)
            bias = norm != "batch"
            self.k, self.dropout = num_downs, dropout
            self.layers = torch.nn.ModuleDict()
            for i in range(num_downs):
                self.layers[f"down{i}"] = torch.nn.Conv2d(
                    feats(i - 1) if i else 3, feats(i), 4, 2, 1, bias=bias
                )
                if 0 < i < num_downs - 1:
                    self.layers[f"down{i}_norm"] = _torch_norm(norm, feats(i))
                up_in = feats(i) if i == num_downs - 1 else 2 * feats(i)
                up_out = feats(i - 1) if i else 3
                self.layers[f"up{i}"] = torch.nn.ConvTranspose2d(
                    up_in, up_out, 4, 2, 1, bias=bias or i == 0
                )
                if i > 0:
                    self.layers[f"up{i}_norm"] = _torch_norm(norm, up_out)

        def forward(self, images, deterministic: bool = False):
            x, skips = images * 2 - 1, []
            for i in range(self.k):
                x = torch.nn.functional.leaky_relu(x, 0.2) if i else x
                x = self.layers[f"down{i}"](x)
                if 0 < i < self.k - 1:
                    x = self.layers[f"down{i}_norm"](x)
                skips.append(x)
            for i in reversed(range(self.k)):
                x = self.layers[f"up{i}"](torch.relu(x))
                if i == 0:
                    break
                x = self.layers[f"up{i}_norm"](x)
                if self.dropout and self.k - 1 - i < 3:
                    x = torch.nn.functional.dropout(x, self.dropout, training=not deterministic)
                x = torch.cat([skips[i - 1], x], dim=1)
            return (torch.tanh(x) + 1) / 2

    return TorchUNet()


def torch_patchgan(receptive_field: int, width: int, norm: str = "batch", in_channels: int = 6):
    """`patchgan.PatchGAN`'s layers (junyanz's NLayerDiscriminator) in torch.nn."""
    import torch

    from neural_synth.models import patchgan

    num_layers = patchgan.NUM_LAYERS[receptive_field]

    class TorchPatchGAN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleDict()
            in_ch = in_channels
            for i in range(num_layers + 1):
                out = width * min(2**i, 8)
                stride, bias = (2 if i < num_layers else 1), (i == 0 or norm != "batch")
                self.layers[f"conv{i}"] = torch.nn.Conv2d(in_ch, out, 4, stride, 1, bias=bias)
                if i > 0:
                    self.layers[f"norm{i}"] = _torch_norm(norm, out)
                in_ch = out
            self.layers["logits"] = torch.nn.Conv2d(in_ch, 1, 4, 1, 1)
            self.num_layers = num_layers

        def forward(self, condition, image):
            x = torch.cat([condition, image], dim=1) * 2 - 1
            for i in range(self.num_layers + 1):
                x = self.layers[f"conv{i}"](x)
                x = self.layers[f"norm{i}"](x) if i > 0 else x
                x = torch.nn.functional.leaky_relu(x, 0.2)
            return self.layers["logits"](x)

    return TorchPatchGAN()


def _torch_norm(norm: str, channels: int):
    import torch

    if norm == "batch":
        return torch.nn.BatchNorm2d(channels, track_running_stats=False)
    if norm == "instance":
        return torch.nn.InstanceNorm2d(channels)
    return torch.nn.Identity()


def copy_params_to_torch(flax_params, module) -> None:
    """Copies flax parameters {name: {kernel, bias | scale, bias}} into a torch module.

    Conv kernels [kh, kw, in, out] -> [out, in, kh, kw]; transposed-conv kernels
    ('phase_kernel' of `conv.PhaseConvTranspose`, converted to [4, 4, in, out])
    -> [in, out, 4, 4].
    """
    import torch

    from neural_synth.models import conv

    for name, leaves in flax_params.items():
        layer = module.layers[name]
        for key, value in leaves.items():
            if key == "phase_kernel":  # conv.PhaseConvTranspose's layout.
                key, value = "kernel", conv.to_standard_kernel(value)
            value = np.asarray(value)
            if key == "kernel":
                perm = (2, 3, 0, 1) if isinstance(layer, torch.nn.ConvTranspose2d) else (3, 2, 0, 1)
                target, value = layer.weight, value.transpose(perm)
            else:
                target = layer.weight if key == "scale" else layer.bias
            with torch.no_grad():
                target.copy_(torch.from_numpy(np.array(value, np.float32)))


def torch_step_fn(config, compile_nets: bool = False):
    """A closure running `steps` pix2pix train steps in PyTorch; None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    mc, size, batch = config.model, config.data.crop_size[0], config.train.batch_size
    num_downs = mc.num_downs or int(np.log2(min(size, 256)))
    fmt = torch.channels_last
    g = torch_unet(num_downs, mc.width, mc.norm, mc.dropout).to(memory_format=fmt)
    d = torch_patchgan(mc.receptive_field, mc.disc_width, mc.norm).to(memory_format=fmt)
    g_fwd, d_fwd = (torch.compile(g), torch.compile(d)) if compile_nets else (g, d)
    # fused=True: PyTorch's fastest Adam on CPU (73 ms vs 427 ms for the U-Net's 54M
    # parameters with the default for-loop implementation, measured here).
    adam = lambda params: torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), fused=True)
    opt_g, opt_d = adam(g.parameters()), adam(d.parameters())
    bce = torch.nn.BCEWithLogitsLoss()
    x, y = (torch.rand(batch, 3, size, size).to(memory_format=fmt) for _ in range(2))

    def step():
        fake = g_fwd(x)
        opt_d.zero_grad(set_to_none=True)
        real_logits, fake_logits = d_fwd(x, y), d_fwd(x, fake.detach())
        loss_d = 0.5 * (
            bce(real_logits, torch.ones_like(real_logits))
            + bce(fake_logits, torch.zeros_like(fake_logits))
        )
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        for p in d.parameters():
            p.requires_grad_(False)
        logits = d_fwd(x, fake)
        loss_g = bce(logits, torch.ones_like(logits)) + 100.0 * (fake - y).abs().mean()
        loss_g.backward()
        opt_g.step()
        for p in d.parameters():
            p.requires_grad_(True)

    def run(steps: int):
        for _ in range(steps):
            step()

    return run


# ----------------------------------------------------------------------------- timing


def time_alternately(fns: dict, steps: int, repeats: int) -> dict[str, float]:
    """Median seconds per step of each closure, timed in turns (after one warm-up run)."""
    for fn in fns.values():
        fn(1)  # Compile / warm up.
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(steps)
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def benchmark(size: int, batch_size: int, steps: int, repeats: int, **torch_options):
    config = benchmark_config(size, batch_size, torch_options.pop("width", 64))
    fns = {"jax": jax_step_fn(config)}
    if torch_options.get("torch", True):
        torch_fn = torch_step_fn(config)
        if torch_fn is not None:
            fns["torch"] = torch_fn
            if torch_options.get("torch_compile"):
                fns["torch.compile"] = torch_step_fn(config, compile_nets=True)
    return time_alternately(fns, steps, repeats)


def main(argv):
    del argv
    if not _YNN.value:  # Before JAX initialises its CPU backend.
        flag = "--xla_cpu_experimental_ynn_fusion_type="
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    common.setup()
    print(
        f"JAX backend: {jax.default_backend()}; "
        f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}, "
        f"{os.cpu_count()} CPU cores; U-Net{_SIZE.value} width {_WIDTH.value} + 70x70 PatchGAN, "
        f"{_SIZE.value}^2, medians of {_REPEATS.value} x {_STEPS.value} steps"
    )
    use_torch = benchmarks.torch_comparison(_TORCH.value)
    for batch in (int(b) for b in _BATCH_SIZES.value):
        r = benchmark(
            _SIZE.value,
            batch,
            _STEPS.value,
            _REPEATS.value,
            width=_WIDTH.value,
            torch=use_torch,
            torch_compile=_TORCH_COMPILE.value,
        )
        line = " | ".join(f"{k} {v:.3f} s/step ({1 / v:.2f} steps/s)" for k, v in r.items())
        ratios = " ".join(f"JAX/{k}={r['jax'] / v:.2f}" for k, v in r.items() if k != "jax")
        print(f"batch {batch}: {line}  {ratios}", flush=True)


if __name__ == "__main__":
    common.restart_with_malloc_tunables()  # As scripts.train does (GLIBC_TUNABLES= to opt out).
    app.run(main)
