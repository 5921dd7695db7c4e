"""Exact loss and gradient of large images in spatial tiles (memory bounded by a tile).

The style statistics are averages over all positions, so they cannot be taken
tile by tile directly; but they are sums, and the loss gradient with respect to
each position's features only needs the *global* statistics. Two passes over
overlapping windows therefore give the exact value and gradient:

1. forward only, per window: the features of the window's core positions; their
   contributions to the per-layer sums (sum_p m_p f_p f_p^T for Gram matrices,
   sum_p m_p f_p and sum_p m_p f_p^2 for means and standard deviations) and to the
   content error are added up. The loss is a function of these sums, and its
   derivative with respect to them (a small cotangent per layer) follows by
   autodiff.
2. forward and backward, per window: the gradient of <cotangent, the window's
   sums> with respect to the window's pixels, added into the image gradient.

A window is its core plus a halo at least as wide as the receptive-field radius
of the deepest layer, so core features equal those of the whole image (SAME
zero padding then only touches the halo). Windows are clamped inside the image,
so at the image border they see the same padding as the whole image, and start
on multiples of the total pooling stride, so pooling blocks coincide. Cost:
one extra forward pass (about 1.5x a plain step) plus the halo overlap; memory:
one window's activations. `value_and_grad` is wired into autodiff with a custom
VJP, so optimizers (L-BFGS line search included) use it unchanged.

References: Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional
Neural Networks", CVPR 2016 (the loss whose gradient is computed).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth.losses import gram
from neural_synth.models import vgg
from neural_synth.ops import tiled


def halo(arch: str, layers) -> int:
    """Receptive-field radius of the deepest layer, rounded up to the pooling stride.

    The stride is `vgg.pooling_stride`, to which windows align. Each 3x3 convolution at stride s widens the radius by s, each 2x2 pooling by
    s (then s doubles): 85 pixels for relu5_1, hence a 96-pixel halo.
    """
    order = vgg.layer_names(arch)
    deepest = max(order.index(name) for name in layers)
    radius, stride = 0, 1
    for name in order[: deepest + 1]:
        if name.startswith(("conv", "pool")):
            radius += stride
        if name.startswith("pool"):
            stride *= 2
    align = vgg.pooling_stride(arch, layers)
    return -(-radius // align) * align


def layer_stride(name: str) -> int:
    """Input pixels per feature pixel of a VGG layer: relu3_1 -> 4 (pool4 -> 16)."""
    block = int(name[4]) if name.startswith(("conv", "relu")) else int(name[4]) + 1
    return 2 ** (block - 1)


@dataclasses.dataclass(frozen=True)
class Plan:
    """Windows covering an image: `window` (h, w); per tile, window start (y, x) and core box."""

    window: tuple[int, int]
    starts: np.ndarray  # [T, 2] int32
    cores: np.ndarray  # [T, 4] int32: y0, y1, x0, x1 in image coordinates


def _axis_plan(length: int, core: int, margin: int, align: int):
    """(window length, [(window start, core start, core end)]) along one axis."""
    tiles = tiled.plan_tiles(length, tile=core, halo=margin, align=align)
    cores = tiled.partition(tiles, align)
    return tiles[0].stop - tiles[0].start, [
        (t.start, *c) for t, c in zip(tiles, cores, strict=True)
    ]


def plan(height: int, width: int, *, core: int, margin: int, align: int) -> Plan:
    """Windows with `core`-sized steps and `margin`-pixel halos (the shared planner, `ops.tiled`)."""
    if height % align or width % align or core % align or margin % align:
        raise ValueError(
            f"Tiled optimization needs the image size ({height}x{width}) and tile size ({core}) "
            f"to be multiples of {align} (the pooling stride of the chosen layers)."
        )
    window_h, rows = _axis_plan(height, core, margin, align)
    window_w, cols = _axis_plan(width, core, margin, align)
    starts = [(ry[0], cx[0]) for ry in rows for cx in cols]
    cores = [(ry[1], ry[2], cx[1], cx[2]) for ry in rows for cx in cols]
    return Plan((window_h, window_w), np.asarray(starts, np.int32), np.asarray(cores, np.int32))


def plan_for(height: int, width: int, *, arch: str, layers, tile_size: int) -> Plan:
    """The windows of an image for VGG `layers`: cores of `tile_size`, receptive-field halos.

    The one place that chooses windows (the planner behind it can be swapped).
    """
    align = vgg.pooling_stride(arch, layers)
    return plan(height, width, core=tile_size, margin=halo(arch, layers), align=align)


# ----------------------------------------------------------------------------- per-window sums


def _core_mask(start, box, window: tuple[int, int]) -> jax.Array:
    """[h, w] 0/1 mask of the core `box` inside the window starting at `start`."""
    ys = jnp.arange(window[0]) + start[0]
    xs = jnp.arange(window[1]) + start[1]
    inside_y = (ys >= box[0]) & (ys < box[1])
    inside_x = (xs >= box[2]) & (xs < box[3])
    return (inside_y[:, None] & inside_x[None, :]).astype(jnp.float32)


def _window_sums(window_x, start, box, data, spec, shape_plan: Plan) -> dict:
    """Contributions of one window's core to every sum the loss needs.

    `data` and `spec` are the objective's `LossData` and `LossSpec`.
    """
    images = jnp.repeat(window_x, 3, axis=-1) if spec.luminance else window_x  # Grey RGB.
    feats = spec.module.apply(data.vgg, images, layers=spec.layers)
    core = _core_mask(start, box, shape_plan.window)[None]  # [1, h, w]
    regions = [None]
    if spec.spatial:
        num_regions = data.region_masks.shape[0]
        masks = jax.lax.dynamic_slice(
            data.region_masks, (0, start[0], start[1]), (num_regions, *shape_plan.window)
        )
        regions = [masks[s][None] for s in range(num_regions)]
    out = {"style": [], "totals": [], "content": {}}
    for region in regions:
        weight_img = core if region is None else core * region
        sums, totals = {}, {}
        for name in spec.style_layers:
            f = feats[name]
            weight = gram.resize_mask(weight_img, height=f.shape[1], width=f.shape[2])
            sums[name] = gram.position_sums(f, weight, spec.statistic)
            totals[name] = jnp.sum(weight, axis=(1, 2))
        out["style"].append(sums)
        out["totals"].append(totals)
    for name, target in data.content_targets.items():
        f, stride = feats[name], layer_stride(name)
        patch = jax.lax.dynamic_slice(
            target, (0, start[0] // stride, start[1] // stride, 0), f.shape
        )
        weight = gram.resize_mask(core, height=f.shape[1], width=f.shape[2])[..., None]
        out["content"][name] = jnp.sum(jnp.square(f - patch) * weight)
    return out


def _slice(x, start, window):
    return jax.lax.dynamic_slice(x, (0, start[0], start[1], 0), (x.shape[0], *window, x.shape[3]))


# ----------------------------------------------------------------------------- loss from sums


def terms_from_sums(sums: dict, data, spec, num_elements: dict) -> dict:
    """Weighted {'style', 'content'} terms from the summed contributions of all windows."""
    kind = spec.statistic
    stats = [
        {
            name: gram.statistic_from_sums(region[name], totals[name], kind)
            for name in spec.style_layers
        }
        for region, totals in zip(sums["style"], sums["totals"], strict=True)
    ]
    terms = {"style": data.style_term(stats, spatial=spec.spatial)}
    if sums["content"]:
        terms["content"] = sum(
            data.content_layer_weights[name] * error / num_elements[name]
            for name, error in sums["content"].items()
        )
    return terms


def _loss_from_sums(sums: dict, data, spec, num_elements: dict) -> jax.Array:
    return sum(terms_from_sums(sums, data, spec, num_elements).values())


def _all_sums(params, data, spec, shape_plan: Plan) -> dict:
    """Pass 1: sums over all windows (forward only), as a scan over tiles."""
    starts, cores = jnp.asarray(shape_plan.starts), jnp.asarray(shape_plan.cores)

    def window_sums(start, box):
        return _window_sums(
            _slice(params, start, shape_plan.window), start, box, data, spec, shape_plan
        )

    shapes = jax.eval_shape(window_sums, starts[0], cores[0])
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def body(acc, tile):
        return jax.tree.map(jnp.add, acc, window_sums(*tile)), None

    acc, _ = jax.lax.scan(body, zeros, (starts, cores))
    return acc


def _num_elements(data) -> dict:
    return {name: float(np.prod(t.shape)) for name, t in data.content_targets.items()}


def _plan_for(params, spec) -> Plan:
    height, width = params.shape[1:3]
    return plan_for(
        height, width, arch=spec.module.arch, layers=spec.layers, tile_size=spec.tile_size
    )


def terms(params: jax.Array, data, spec) -> dict:
    """Weighted {'style', 'content'} loss terms computed window by window (forward only)."""
    sums = _all_sums(params, data, spec, _plan_for(params, spec))
    return terms_from_sums(sums, data, spec, _num_elements(data))


def value_and_grad(params: jax.Array, data, spec) -> tuple[jax.Array, jax.Array]:
    """Exact style + content loss of `params` [B, H, W, C] and its gradient, window by window."""
    shape_plan = _plan_for(params, spec)
    sums = _all_sums(params, data, spec, shape_plan)
    num = _num_elements(data)
    value, vjp = jax.vjp(lambda s: _loss_from_sums(s, data, spec, num), sums)
    (cotangent,) = vjp(jnp.ones((), value.dtype))
    starts, cores = jnp.asarray(shape_plan.starts), jnp.asarray(shape_plan.cores)

    def window_objective(window_x, start, box):
        part = _window_sums(window_x, start, box, data, spec, shape_plan)
        products = jax.tree.map(lambda a, b: jnp.sum(a * b), part, cotangent)
        return sum(jax.tree.leaves(products))

    def body(grad, tile):
        start, box = tile
        window_x = _slice(params, start, shape_plan.window)
        g = jax.grad(window_objective)(window_x, start, box)
        corner = (0, start[0], start[1], 0)
        return jax.lax.dynamic_update_slice(
            grad, _slice(grad, start, shape_plan.window) + g, corner
        ), None

    grad, _ = jax.lax.scan(body, jnp.zeros_like(params), (starts, cores))
    return value, grad


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def loss(params: jax.Array, data, spec) -> jax.Array:
    """Style + content loss computed in tiles; differentiable (gradient by `value_and_grad`)."""
    return sum(terms(params, data, spec).values())


def _loss_fwd(params, data, spec):
    value, grad = value_and_grad(params, data, spec)
    return value, (grad, data)


def _loss_bwd(spec, residuals, g):
    grad, data = residuals
    return g * grad, jax.tree.map(jnp.zeros_like, data)


loss.defvjp(_loss_fwd, _loss_bwd)


# ----------------------------------------------------------------------------- targets in tiles


def fits(height: int, width: int, tile_size: int, arch: str, layers) -> bool:
    """Whether an image of this size is processed in tiles of `tile_size` (else whole)."""
    align = vgg.pooling_stride(arch, layers)
    return (
        bool(tile_size) and min(height, width) > tile_size and not (height % align or width % align)
    )


def _windows(images: jax.Array, module, layers, tile_size: int):
    height, width = images.shape[1:3]
    shape_plan = plan_for(height, width, arch=module.arch, layers=layers, tile_size=tile_size)
    return shape_plan, jnp.asarray(shape_plan.starts), jnp.asarray(shape_plan.cores)


@functools.partial(jax.jit, static_argnames=("module", "layers", "tile_size"))
def features(module, variables, images, *, layers, tile_size: int) -> dict:
    """VGG features of `images` [B, H, W, 3] assembled window by window (exact).

    Returns {layer: [B, H / s, W / s, C]} like `module.apply`, with peak memory of
    one window's forward pass plus the outputs.
    """
    shape_plan, starts, cores = _windows(images, module, layers, tile_size)
    apply = lambda x: module.apply(variables, x, layers=layers)
    window_shapes = jax.eval_shape(apply, _slice(images, starts[0], shape_plan.window))
    out = {
        name: jnp.zeros(
            (
                images.shape[0],
                images.shape[1] // layer_stride(name),
                images.shape[2] // layer_stride(name),
                s.shape[3],
            ),
            s.dtype,
        )
        for name, s in window_shapes.items()
    }

    def body(out, tile):
        start, box = tile
        feats = apply(_slice(images, start, shape_plan.window))
        core = _core_mask(start, box, shape_plan.window)[None]
        new = {}
        for name, f in feats.items():
            stride = layer_stride(name)
            mask = gram.resize_mask(core, height=f.shape[1], width=f.shape[2])[..., None] > 0.5
            corner = (0, start[0] // stride, start[1] // stride, 0)
            old = jax.lax.dynamic_slice(out[name], corner, f.shape)
            new[name] = jax.lax.dynamic_update_slice(out[name], jnp.where(mask, f, old), corner)
        return new, None

    out, _ = jax.lax.scan(body, out, (starts, cores))
    return out


@functools.partial(jax.jit, static_argnames=("module", "layers", "kind", "tile_size"))
def style_statistics(module, variables, images, *, layers, kind: str, tile_size: int) -> dict:
    """{layer: style statistic} of `images` [B, H, W, 3], summed window by window (exact)."""
    shape_plan, starts, cores = _windows(images, module, layers, tile_size)

    def window_sums(start, box):
        feats = module.apply(variables, _slice(images, start, shape_plan.window), layers=layers)
        core = _core_mask(start, box, shape_plan.window)[None]
        sums = {}
        for name in layers:
            weight = gram.resize_mask(core, height=feats[name].shape[1], width=feats[name].shape[2])
            sums[name] = (
                gram.position_sums(feats[name], weight, kind),
                jnp.sum(weight, axis=(1, 2)),
            )
        return sums

    shapes = jax.eval_shape(window_sums, starts[0], cores[0])
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    sums, _ = jax.lax.scan(
        lambda acc, tile: (jax.tree.map(jnp.add, acc, window_sums(*tile)), None),
        zeros,
        (starts, cores),
    )
    return {name: gram.statistic_from_sums(s, total, kind) for name, (s, total) in sums.items()}
