"""VGG16 and VGG19 feature extractors as flax.linen modules (NHWC, float32).

`VGG(arch=..., pooling=..., convention=...).apply(variables, images, layers=...)`
takes images in [0, 1], applies the input convention of the weights it carries
(`preprocess`, the only place that knows it) and returns a dict with the
requested named activations. It stops at the deepest requested layer.

Layer names follow the papers and the Caffe model: `conv1_1`, `relu1_1`, ...,
`pool1`, ..., `relu5_4` (VGG19) / `relu5_3` (VGG16), `pool5`, and for the
classifier head `fc6`, `relu6`, `fc7`, `relu7`, `fc8` (logits).

Random weights. `init` draws He-normal kernels (variance 2 / fan_in) and zero
biases, which keeps the activation scale roughly constant through the ReLU
stack; deep random networks initialised this way still give usable texture
statistics (Ustyuzhaninov et al. 2017; He, Wang & Hopcroft 2016). Everything
that needs VGG features therefore also runs without pretrained weights.

Frozen-weight fast path. `freeze(params)` returns variables with a second
collection holding each kernel flipped and transposed once, outside jit. With it,
each convolution uses a custom VJP that computes only the input gradient, with
that precomputed kernel: no weight gradients are ever formed, and XLA:CPU keeps
its fast convolution path inside `lax.scan`/`while_loop` (PERF_NOTES pitfall 3).
Layers with 128 or more channels in and out, on maps of at most 128 pixels per
channel (`conv.winograd_pays`), run both passes as Winograd F(4x4, 3x3)
convolutions (`conv.winograd_conv`, 1.1-2.8x faster there) with kernels that
`freeze` transforms once too.

References: Simonyan & Zisserman, "Very Deep Convolutional Networks for
Large-Scale Image Recognition", ICLR 2015.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from neural_synth.models import conv

ARCHS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
WIDTHS = (64, 128, 256, 512, 512)
HEAD_LAYERS = ("fc6", "relu6", "fc7", "relu7", "fc8")
HEAD_WIDTHS = {"fc6": 4096, "fc7": 4096, "fc8": 1000}
HEAD_GRID = 7  # fc6 sees pool5 average-pooled to 7x7, as in torchvision.
POOLINGS = ("max", "avg")

# Input conventions of the weights: how [0, 1] RGB images are presented.
CONVENTIONS = {
    # torchvision / timm: RGB, ImageNet mean and std.
    "torchvision": dict(
        bgr=False, scale=1.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
    ),
    # Caffe / Keras: BGR, 0-255, mean-subtracted, no std.
    "caffe": dict(bgr=True, scale=255.0, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0)),
}
FROZEN = "frozen"  # Variable collection of precomputed backward kernels.
WINOGRAD_TILE = conv.WINOGRAD_TILE  # `freeze`'s default tile (see conv.winograd_pays).


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"Unknown VGG architecture {arch!r}; expected one of {sorted(ARCHS)}.")


def conv_layer_names(arch: str) -> tuple[str, ...]:
    """The convolution layers of `arch` in order: ('conv1_1', ..., 'conv5_4')."""
    _check_arch(arch)
    return tuple(
        f"conv{b + 1}_{i + 1}" for b, depth in enumerate(ARCHS[arch]) for i in range(depth)
    )


def layer_names(arch: str, *, include_head: bool = False) -> tuple[str, ...]:
    """Every named activation of `arch` in forward order."""
    names = []
    for b, depth in enumerate(ARCHS[arch] if arch in ARCHS else _check_arch(arch)):
        for i in range(depth):
            names += [f"conv{b + 1}_{i + 1}", f"relu{b + 1}_{i + 1}"]
        names.append(f"pool{b + 1}")
    return tuple(names) + (HEAD_LAYERS if include_head else ())


def param_shapes(arch: str, *, include_head: bool = False) -> dict[str, dict[str, tuple]]:
    """Expected parameter shapes: {'conv1_1': {'kernel': (3, 3, 3, 64), 'bias': (64,)}, ...}.

    Kernels are HWIO; fc kernels are [in, out] with fc6's input flattened from a
    7x7x512 NHWC map (row-major over H, W, C).
    """
    shapes, in_ch = {}, 3
    for name, width in zip(conv_layer_names(arch), _conv_widths(arch), strict=True):
        shapes[name] = {"kernel": (3, 3, in_ch, width), "bias": (width,)}
        in_ch = width
    if include_head:
        fan_in = HEAD_GRID * HEAD_GRID * WIDTHS[-1]
        for name in ("fc6", "fc7", "fc8"):
            shapes[name] = {"kernel": (fan_in, HEAD_WIDTHS[name]), "bias": (HEAD_WIDTHS[name],)}
            fan_in = HEAD_WIDTHS[name]
    return shapes


def pooling_stride(arch: str, layers: Sequence[str]) -> int:
    """2 ** (poolings before the deepest of `layers`): the smallest image side they accept.

    Also the stride of the deepest layer's feature grid in input pixels, so
    image tiles that start on multiples of it see the same pooling blocks.
    """
    order = layer_names(arch, include_head=True)
    deepest = max(order.index(name) for name in layers)
    return 2 ** sum(1 for name in order[:deepest] if name.startswith("pool"))


def _conv_widths(arch: str) -> list[int]:
    return [w for depth, w in zip(ARCHS[arch], WIDTHS, strict=True) for _ in range(depth)]


def preprocess(images: jax.Array, convention: str) -> jax.Array:
    """Maps [0, 1] RGB images [B, H, W, 3] to the input convention of the weights."""
    if convention not in CONVENTIONS:
        raise ValueError(
            f"Unknown convention {convention!r}; expected one of {sorted(CONVENTIONS)}."
        )
    c = CONVENTIONS[convention]
    x = images[..., ::-1] if c["bgr"] else images
    return (x * c["scale"] - jnp.asarray(c["mean"], x.dtype)) / jnp.asarray(c["std"], x.dtype)


def _conv(x: jax.Array, kernel: jax.Array | tuple) -> jax.Array:
    """3x3 SAME conv with an HWIO kernel, or a Winograd one (a tuple, `freeze`)."""
    if isinstance(kernel, tuple | list):
        return conv.winograd_conv(x, kernel)
    return jax.lax.conv_general_dilated(
        x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


@jax.custom_vjp
def frozen_conv(x: jax.Array, kernel: jax.Array | tuple, kernel_t: jax.Array | tuple) -> jax.Array:
    """3x3 SAME convolution whose VJP forms only the input gradient.

    `kernel_t` is `kernel` flipped spatially with in/out channels swapped,
    computed once outside jit (see `freeze`); both may instead be given in
    Winograd form (`conv.winograd_kernel`). Cotangents of the kernels are zero.
    """
    return _conv(x, kernel)


def _frozen_conv_fwd(x, kernel, kernel_t):
    return _conv(x, kernel), (kernel, kernel_t)


def _frozen_conv_bwd(residuals, g):
    kernel, kernel_t = residuals
    zeros = lambda k: jax.tree.map(jnp.zeros_like, k)
    return _conv(g, kernel_t), zeros(kernel), zeros(kernel_t)


frozen_conv.defvjp(_frozen_conv_fwd, _frozen_conv_bwd)


def backward_kernel(kernel: jax.Array) -> jax.Array:
    """The kernel of a SAME conv's input gradient: spatially flipped, I and O swapped."""
    return jnp.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))


def freeze(variables: dict, winograd_tile: int = WINOGRAD_TILE) -> dict:
    """Adds the frozen-conv collection to `{'params': ...}` (call outside jit).

    The result is used exactly like the plain variables; values and gradients
    with respect to the images are equal to float32 rounding, weight gradients
    are zero and never computed. Layers that `conv.winograd_pays` can pick also
    get both kernels in Winograd form for `winograd_tile` (4: ~1e-5 relative
    error, each 4x a kernel's size; 2: ~1e-6, 16/9 the size, slower; 0: none).
    """
    params = variables["params"]
    frozen = {
        name: _frozen_kernels(p["kernel"], winograd_tile)
        for name, p in params.items()
        if name.startswith("conv")
    }
    return {"params": params, FROZEN: frozen}


def _frozen_kernels(kernel: jax.Array, tile: int) -> dict:
    """'kernel_t', plus both kernels' Winograd forms if the channels ever use them."""
    kernel_t = backward_kernel(kernel)
    if not tile or not conv.winograd_pays((1, 1, 1, kernel.shape[2]), kernel.shape[3], tile):
        return {"kernel_t": kernel_t}  # (The shape is a 1x1 map's.)
    return {
        "kernel_t": kernel_t,
        "winograd": _winograd_kernel(kernel, tile),
        "winograd_t": _winograd_kernel(kernel_t, tile),
    }


def _winograd_kernel(kernel: jax.Array, tile: int) -> tuple[jax.Array, ...]:
    """`conv.winograd_kernel`, computed in NumPy (2x faster than op by op in JAX)."""
    return tuple(jnp.asarray(u) for u in conv.winograd_kernel(np.asarray(kernel), tile))


class Conv3x3(nn.Module):
    """3x3 stride-1 SAME convolution with bias; frozen fast path when available."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        init = nn.initializers.variance_scaling(2.0, "fan_in", "normal")
        kernel = self.param("kernel", init, (3, 3, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        u = self.get_variable(FROZEN, "winograd")
        if u is not None and conv.winograd_pays(x.shape, self.features, conv.winograd_tile(u)):
            y = frozen_conv(x, u, self.get_variable(FROZEN, "winograd_t"))
        elif self.has_variable(FROZEN, "kernel_t"):
            y = frozen_conv(x, kernel, self.get_variable(FROZEN, "kernel_t"))
        else:
            y = _conv(x, kernel)
        return y + bias


def _pool(x: jax.Array, kind: str) -> jax.Array:
    if kind == "max":
        return nn.max_pool(x, (2, 2), strides=(2, 2))
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


def _adaptive_avg_matrix(size: int, out: int) -> np.ndarray:
    """[out, size] averaging matrix with torch's adaptive_avg_pool bin edges."""
    m = np.zeros((out, size), np.float32)
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def adaptive_avg_pool(x: jax.Array, out: int) -> jax.Array:
    """[B, H, W, C] -> [B, out, out, C], torch.nn.AdaptiveAvgPool2d semantics."""
    ph = jnp.asarray(_adaptive_avg_matrix(x.shape[1], out))
    pw = jnp.asarray(_adaptive_avg_matrix(x.shape[2], out))
    return jnp.einsum("ih,bhwc,jw->bijc", ph, x, pw)


class VGG(nn.Module):
    """VGG16/19 returning named activations up to the deepest requested layer.

    Attributes:
      arch: 'vgg16' or 'vgg19'.
      pooling: 'max' (as trained) or 'avg' (Gatys et al. use average pooling).
      convention: input convention of the weights, a key of `CONVENTIONS`.
    """

    arch: str = "vgg19"
    pooling: str = "max"
    convention: str = "torchvision"

    @nn.compact
    def __call__(self, images: jax.Array, layers: Sequence[str]) -> dict[str, jax.Array]:
        """images: [B, H, W, 3] in [0, 1]. Returns {layer: activation} for `layers`."""
        order = self._validate(images, layers)
        deepest = max(order.index(name) for name in layers)
        wanted, out = set(layers), {}
        x = preprocess(images.astype(jnp.float32), self.convention)
        for name in order[: deepest + 1]:
            x = self._layer(name, x)
            if name in wanted:
                out[name] = x
        return out

    def _layer(self, name: str, x: jax.Array) -> jax.Array:
        if name.startswith("conv"):
            return Conv3x3(self._width(name), name=name)(x)
        if name.startswith("relu"):
            return nn.relu(x)
        if name.startswith("pool"):
            return _pool(x, self.pooling)
        if name == "fc6":
            x = adaptive_avg_pool(x, HEAD_GRID).reshape(x.shape[0], -1)
        return nn.Dense(HEAD_WIDTHS[name], name=name)(x)

    def _width(self, name: str) -> int:
        return WIDTHS[int(name[4]) - 1]

    def _validate(self, images: jax.Array, layers: Sequence[str]) -> tuple[str, ...]:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}.")
        order = layer_names(self.arch, include_head=True)
        unknown = [n for n in layers if n not in order]
        if not layers or unknown:
            raise ValueError(
                f"Unknown {self.arch} layers {unknown or '(none requested)'}; "
                f"valid names: {', '.join(order)}."
            )
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"VGG expects images [B, H, W, 3], got shape {images.shape}.")
        min_size = pooling_stride(self.arch, layers)
        if min(images.shape[1:3]) < min_size:
            raise ValueError(
                f"Image {images.shape[1]}x{images.shape[2]} is too small for "
                f"layer(s) {list(layers)}: need at least {min_size}x{min_size}."
            )
        return order


def init(
    key: jax.Array,
    arch: str = "vgg19",
    *,
    include_head: bool = False,
    pooling: str = "max",
    convention: str = "torchvision",
) -> tuple[VGG, dict]:
    """Random-weight VGG (He-normal kernels, zero biases): returns (module, params)."""
    module = VGG(arch=arch, pooling=pooling, convention=convention)
    last = "fc8" if include_head else conv_layer_names(arch)[-1]
    size = 32 if include_head else 16
    params = jax.jit(module.init, static_argnames="layers")(
        key, jnp.zeros((1, size, size, 3), jnp.float32), layers=(last,)
    )["params"]
    return module, params


def random_params(arch: str, layers, seed: int) -> dict:
    """He-normal VGG kernels (variance 2 / fan_in) and zero biases, as `init` draws them.

    Drawn with NumPy, and only for the convolutions up to the deepest of `layers`:
    this takes well under a second, where compiling `vgg.init` for the whole
    network takes 10-15 s on a 2-core CPU. The values differ from `init`'s.
    """
    order = layer_names(arch)
    deepest = max(order.index(name) for name in layers)
    rng = np.random.default_rng(seed)
    params = {}
    for name, shapes in param_shapes(arch).items():
        if order.index(name) > deepest:
            break
        kernel = shapes["kernel"]
        scale = np.sqrt(2.0 / np.prod(kernel[:3]))
        params[name] = {
            "kernel": jnp.asarray(rng.standard_normal(kernel, np.float32) * scale),
            "bias": jnp.zeros(shapes["bias"], jnp.float32),
        }
    return params
