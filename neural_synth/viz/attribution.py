"""Attribution maps: which input pixels a class score (or one neuron) depends on.

All methods take a `classifiers.Classifier`, images [B, H, W, 3] in [0, 1] and
one target per image: a class index, or with `layer=` a channel of that layer
(the neuron is the channel's strongest position, as in Zeiler & Fergus). They
differ in the backward pass (see `neural_synth/models/probes.py`):

- `gradients(..., rule='gradient')`: d score / d image, [B, H, W, 3].
  `saliency` = max over colour channels of its absolute value (Simonyan et al.).
- `smoothgrad`: the gradient averaged over `num_samples` copies of the image
  with Gaussian noise of std `noise` x (max - min of the image) (Smilkov et al.).
- `guided_backprop` / `deconvnet`: `gradients` with rule 'guided' / 'deconvnet'.
- `gradcam`: ReLU(sum_k alpha_k A_k) at a convolutional layer, alpha_k the
  spatial mean of d score / d A_k, bilinearly resized to the image (Selvaraju et
  al.); `guided_gradcam` multiplies it with guided backpropagation.

Memory knob: `batch_size` images (or noisy copies) go through the network at
once; inputs are split into chunks of that size (the last one padded, so one
compilation serves all), each chunk one jitted gradient. Peak memory is one
chunk's forward and backward activations: XLA's buffer assignment for the
EfficientNet-Lite0 gradient at 224x224 needs 34 MB of temporaries per image
(538 MB at batch 16), plus the 19 MB of weights.

References: Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks:
Visualising Image Classification Models and Saliency Maps", ICLR 2014 workshop;
Zeiler & Fergus, ECCV 2014; Springenberg et al., ICLR 2015 workshop; Smilkov et
al., "SmoothGrad: removing noise by adding noise", 2017; Selvaraju et al.,
"Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017.
"""

import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from neural_synth.models import probes
from neural_synth.train import prng
from neural_synth.viz import classifiers

DEFAULT_BATCH = 16


def _check_inputs(images, targets) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be [B, H, W, 3], got shape {images.shape}")
    targets = np.asarray(targets, np.int32).reshape(-1)
    if targets.shape[0] != images.shape[0]:
        raise ValueError(f"need one target per image: {targets.shape[0]} for {images.shape[0]}")
    return images, targets


def map_batches(fn: Callable, arrays: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
    """Concatenated fn(*chunk) over chunks of `batch_size` along axis 0 (last chunk padded)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    total = arrays[0].shape[0]
    size = min(batch_size, total)
    outs = []
    for start in range(0, total, size):
        count = min(size, total - start)
        chunk = [a[start : start + count] for a in arrays]
        if count < size:  # Pad with copies of the first row: same shapes, no recompilation.
            chunk = [np.concatenate([c, np.repeat(c[:1], size - count, 0)]) for c in chunk]
        outs.append(np.asarray(fn(*chunk))[:count])
    return np.concatenate(outs)


def _scores(module: nn.Module, variables, images, targets, layer: str) -> jax.Array:
    """[B] target scores: logits[b, t_b], or max over space of channel t_b of `layer`."""
    out = module.apply(variables, images, layers=(layer,))[layer]
    if out.ndim == 4:
        out = jnp.max(out, axis=(1, 2))  # [B, C]: each channel's strongest neuron.
    return jnp.take_along_axis(out, targets[:, None], axis=1)[:, 0]


@functools.cache
def _gradient_fn(module: nn.Module, layer: str) -> Callable:
    def total(images, variables, targets):
        return jnp.sum(_scores(module, variables, images, targets, layer))

    return jax.jit(lambda variables, images, targets: jax.grad(total)(images, variables, targets))


def _output_layer(classifier: classifiers.Classifier, layer: str | None) -> str:
    return classifier.logits_layer if layer is None else classifier.check_layer(layer)


def _check_targets(classifier, images: np.ndarray, targets: np.ndarray, layer: str) -> None:
    """ValueError unless every target indexes a class / channel of `layer` (JAX would clamp)."""
    module = classifier.module()
    shape = jax.eval_shape(
        lambda v, x: module.apply(v, x, layers=(layer,))[layer], classifier.variables, images[:1]
    ).shape
    bad = targets[(targets < 0) | (targets >= shape[-1])]
    if bad.size:
        what = "classes" if len(shape) == 2 else f"channels of {layer}"
        raise ValueError(f"targets {bad.tolist()} out of range: there are {shape[-1]} {what}")


def gradients(
    classifier: classifiers.Classifier,
    images,
    targets,
    *,
    rule: str = "gradient",
    layer: str | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> np.ndarray:
    """d score / d image under `rule`: float32 [B, H, W, 3].

    Args:
      classifier: the network (`classifiers.load`).
      images: [B, H, W, 3] in [0, 1].
      targets: [B] class indices, or channel indices of `layer`.
      rule: 'gradient', 'guided' or 'deconvnet'.
      layer: None for class scores (logits), or a spatial layer whose channel
        `targets[b]` (at its strongest position) is the neuron to explain.
      batch_size: images per network pass (the memory knob).
    """
    images, targets = _check_inputs(images, targets)
    layer = _output_layer(classifier, layer)
    _check_targets(classifier, images, targets, layer)
    fn = _gradient_fn(classifier.module(rule), layer)
    return map_batches(
        lambda x, t: fn(classifier.variables, x, t), (images, targets), batch_size
    ).astype(np.float32)


def saliency_map(grads: np.ndarray) -> np.ndarray:
    """[B, H, W, 3] gradients -> [B, H, W]: max over colour channels of |gradient|."""
    return np.max(np.abs(grads), axis=-1)


def saliency(classifier, images, targets, **kwargs) -> np.ndarray:
    """Simonyan et al.'s saliency map [B, H, W] (keyword arguments as `gradients`)."""
    return saliency_map(gradients(classifier, images, targets, **kwargs))


def guided_backprop(classifier, images, targets, **kwargs) -> np.ndarray:
    """Guided backpropagation [B, H, W, 3] (keyword arguments as `gradients`)."""
    return gradients(classifier, images, targets, rule="guided", **kwargs)


def deconvnet(classifier, images, targets, **kwargs) -> np.ndarray:
    """Zeiler & Fergus' deconvnet reconstruction [B, H, W, 3] (as `gradients`)."""
    return gradients(classifier, images, targets, rule="deconvnet", **kwargs)


@functools.cache
def _noisy_gradient_fn(module: nn.Module, layer: str) -> Callable:
    grad_fn = _gradient_fn(module, layer)

    def fn(variables, images, targets, sigmas, key):
        noise = jax.random.normal(key, images.shape, images.dtype)
        return grad_fn(variables, images + sigmas[:, None, None, None] * noise, targets)

    return jax.jit(fn)


def smoothgrad(
    classifier: classifiers.Classifier,
    images,
    targets,
    *,
    num_samples: int = 16,
    noise: float = 0.15,
    seed: int = 0,
    rule: str = "gradient",
    layer: str | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> np.ndarray:
    """SmoothGrad: gradients averaged over noisy copies, float32 [B, H, W, 3].

    Each image gets `num_samples` copies plus N(0, sigma^2) noise, sigma = noise
    x (max - min) of that image (Smilkov et al. found 10-20% best). The copies
    go through the network `batch_size` at a time; the result is reproducible
    from `seed` (and the batch size).
    """
    images, targets = _check_inputs(images, targets)
    if num_samples < 1 or noise < 0:
        raise ValueError(f"need num_samples >= 1 and noise >= 0, got {num_samples}, {noise}")
    sigmas = noise * (images.max(axis=(1, 2, 3)) - images.min(axis=(1, 2, 3)))  # [B]
    layer = _output_layer(classifier, layer)
    _check_targets(classifier, images, targets, layer)
    fn = _noisy_gradient_fn(classifier.module(rule), layer)
    key, count = prng.key(seed), iter(range(1 << 30))
    repeat = lambda a: np.repeat(a, num_samples, axis=0)
    grads = map_batches(
        lambda x, t, s: fn(classifier.variables, x, t, s, jax.random.fold_in(key, next(count))),
        (repeat(images), repeat(targets), repeat(sigmas.astype(np.float32))),
        batch_size,
    )
    return grads.reshape(images.shape[0], num_samples, *images.shape[1:]).mean(1)


@functools.cache
def _cam_fn(module: nn.Module, layer: str, logits_layer: str) -> Callable:
    def fn(variables, images, targets):
        shape = jax.eval_shape(lambda: module.apply(variables, images, layers=(layer,))[layer])

        def score(offset):
            out = module.apply(
                {**variables, probes.OFFSETS: {layer: offset}}, images, layers=(layer, logits_layer)
            )
            picked = jnp.take_along_axis(out[logits_layer], targets[:, None], axis=1)
            return jnp.sum(picked), out[layer]

        grads, acts = jax.grad(score, has_aux=True)(jnp.zeros(shape.shape, shape.dtype))
        alpha = jnp.mean(grads, axis=(1, 2))  # [B, C]
        cam = jax.nn.relu(jnp.einsum("bhwc,bc->bhw", acts, alpha))  # [B, h, w]
        return jax.image.resize(cam, (cam.shape[0], *images.shape[1:3]), "bilinear")

    return jax.jit(fn)


def gradcam(
    classifier: classifiers.Classifier,
    images,
    targets,
    *,
    layer: str | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> np.ndarray:
    """Grad-CAM maps float32 [B, H, W] (>= 0, not normalised) at `layer` (default: last conv).

    `layer` must be a spatial layer; the map has its resolution, resized
    bilinearly to the image's.
    """
    images, targets = _check_inputs(images, targets)
    layer = classifier.check_layer(layer or classifier.cam_layer)
    _check_targets(classifier, images, targets, classifier.logits_layer)
    fn = _cam_fn(classifier.module("gradient"), layer, classifier.logits_layer)
    return map_batches(
        lambda x, t: fn(classifier.variables, x, t), (images, targets), batch_size
    ).astype(np.float32)


def guided_gradcam(classifier, images, targets, *, layer=None, batch_size=DEFAULT_BATCH):
    """Guided Grad-CAM [B, H, W, 3]: guided backpropagation x the Grad-CAM map."""
    cam = gradcam(classifier, images, targets, layer=layer, batch_size=batch_size)
    guided = guided_backprop(classifier, images, targets, batch_size=batch_size)
    return guided * cam[..., None]


def mass_in_box(maps: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Share of each map's total (of |values|) inside box (top, left, bottom, right): [B]."""
    maps = np.abs(np.asarray(maps, np.float64))
    top, left, bottom, right = box
    inside = maps[:, top:bottom, left:right].sum(axis=(1, 2))
    return inside / np.maximum(maps.sum(axis=(1, 2)), 1e-30)
