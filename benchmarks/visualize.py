r"""Attribution throughput on EfficientNet-Lite0: JAX (neural_synth.viz) vs PyTorch on CPU.

  python -m benchmarks.visualize                       # 224^2, batch 16, saliency + guided
  python -m benchmarks.visualize --repeats=3 --batch=8 --size=160

Times (median of --repeats after one warm-up) one batch of --batch images of
--size^2, real photos (scikit-image samples, centre-cropped), the gradient of
each image's top-1 logit with respect to the image:

- `saliency`: the plain gradient (`attribution.gradients`, rule 'gradient');
- `guided`: guided backpropagation (rule 'guided', the custom-VJP ReLU6);

and, when torch is importable, the same two in PyTorch (the torch.nn replica
in tests/models/torch_efficientnet.py with the same weights, eval mode, plain
autograd; guided backpropagation through a custom autograd.Function ReLU6),
in NCHW and channels_last memory formats. Before timing, the JAX and torch
gradients are checked to agree (relative L2 <= 1e-2). Figures are images/s (= batch / median
seconds); the load average beside them says how busy the machine was.
"""

import os
import statistics
import time

import numpy as np
from absl import app, flags

_BATCH = flags.DEFINE_integer("batch", 16, "Images per batch.")
_SIZE = flags.DEFINE_integer("size", 224, "Image side.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed runs per configuration (median).")
_TORCH = flags.DEFINE_bool("torch", True, "Also time PyTorch when it is installed.")

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "camera", "horse", "cat", "brick")
# ||jax - torch|| / ||torch|| of the gradients. Not ~1e-6 like the logits: where
# a ReLU6 input lies within float32 rounding of 0 or 6 the two frameworks may
# gate differently (measured: 0.2-0.35% relative L2, 0.06-0.14% of the values
# off by more than 1e-3 of the largest, also against torch in float64).
AGREEMENT = 1e-2


def _median_seconds(fn, repeats: int) -> float:
    fn()  # Warm-up (compilation / allocator).
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _images(batch: int, size: int) -> np.ndarray:
    from neural_synth import io
    from neural_synth.viz import classifiers

    photos = [classifiers.prepare_image(io.sample_image(n), size) for n in PHOTOS]
    return np.stack([photos[i % len(photos)] for i in range(batch)])


def _jax(images):
    """({method: fn() -> grads}, targets) for neural_synth."""
    import jax

    from neural_synth.viz import attribution, classifiers

    classifier = classifiers.efficientnet_lite0()
    module = classifier.module()
    logits = jax.jit(lambda v, x: module.apply(v, x, layers=("logits",))["logits"])
    targets = np.asarray(logits(classifier.variables, images)).argmax(axis=1)
    fns = {
        rule_name: (
            lambda rule=rule: attribution.gradients(
                classifier, images, targets, rule=rule, batch_size=len(images)
            )
        )
        for rule_name, rule in (("saliency", "gradient"), ("guided", "guided"))
    }
    return fns, targets


def _torch(images, targets, channels_last: bool):
    """{method: fn() -> grads (NHWC numpy)} for the torch replica."""
    import torch

    from neural_synth.weights import efficientnet as weights
    from neural_synth.weights import pth
    from tests.models import torch_efficientnet

    state = pth.read_state_dict(weights.wheel_path())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x0 = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
    t = torch.from_numpy(targets.astype(np.int64))[:, None]

    def method(guided: bool):
        model = torch_efficientnet.load(state, guided=guided).to(memory_format=fmt)
        for p in model.parameters():
            p.requires_grad_(False)

        def fn():
            x = x0.clone().requires_grad_(True)
            model(x).gather(1, t).sum().backward()
            return x.grad.permute(0, 2, 3, 1).numpy()

        return fn

    return {"saliency": method(False), "guided": method(True)}


def _check(name: str, ours: np.ndarray, theirs: np.ndarray) -> None:
    err = float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))
    print(f"  agreement {name}: ||jax - torch|| / ||torch|| = {err:.2e}")
    if err > AGREEMENT:
        raise SystemExit(f"{name}: JAX and torch gradients differ ({err:.2e} > {AGREEMENT})")


def main(argv) -> None:
    del argv
    batch, size = _BATCH.value, _SIZE.value
    images = _images(batch, size)
    print(f"EfficientNet-Lite0 attribution, batch {batch} x {size}^2, float32, CPU")
    print(f"  cpu: {os.cpu_count()} cores, avx512f={'avx512f' in open('/proc/cpuinfo').read()}")
    jax_fns, targets = _jax(images)
    rows = []
    for name, fn in jax_fns.items():
        seconds = _median_seconds(fn, _REPEATS.value)
        rows.append(("jax", name, seconds, os.getloadavg()[0]))
    torch_ok = False
    if _TORCH.value:
        try:
            import torch

            torch_ok = True
        except ImportError:
            print("  torch is not installed: JAX figures only")
    if torch_ok:
        print(f"  torch {torch.__version__}, {torch.get_num_threads()} threads")
        for channels_last in (False, True):
            label = "torch channels_last" if channels_last else "torch"
            fns = _torch(images, targets, channels_last)
            for name, fn in fns.items():
                if not channels_last:
                    _check(name, jax_fns[name](), fn())
                seconds = _median_seconds(fn, _REPEATS.value)
                rows.append((label, name, seconds, os.getloadavg()[0]))
    print(f"\n| framework | method | s / batch of {batch} | images/s | load avg |")
    print("|---|---|---|---|---|")
    for framework, name, seconds, load in rows:
        print(f"| {framework} | {name} | {seconds:.3f} | {batch / seconds:.1f} | {load:.2f} |")


if __name__ == "__main__":
    app.run(main)
