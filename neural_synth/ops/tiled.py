"""Seam-free tiled inference of fully convolutional generators on very large images.

A generator with instance normalisation cannot simply be run tile by tile: each
tile would normalise with its own statistics and the tiles would not match.
The recipe here:

1. Capture the normalisation statistics once, from a whole-image pass at a size
   that fits (`capture_stats` / `stats_fn`; `stats_size` / `downscale_for_stats`
   give the image shrunk to at most `stats_pixels` pixels). This is exact when
   the image already fits; otherwise the statistics of the shrunk image stand
   in for the full image's (a global approximation, the same for every tile,
   so it cannot cause seams).
2. Run the network on overlapping windows with those statistics fed back in
   (`tiled_apply`). Each window is its kept core plus a halo at least the
   network's receptive radius, so the kept output is what an untiled pass with
   the same statistics gives. Windows all have one size (one compilation),
   start on multiples of the network's total stride (`align`, so strided convs
   and upsampling see the same pixel grid) and lie inside the image (shifted
   inward at the borders rather than padded, so the network's own border
   padding is the untiled pass's). With `wrap=True` (circularly padded,
   tileable generators) windows instead wrap around the image.
3. Overlapping kept ranges are blended with linear ramps (`overlap_weights`);
   with a full halo the tiles agree there anyway, with a smaller one (faster,
   approximate) the ramps soften the disagreement.

`image_tiler` packages 1-3 for image-to-image networks (TransformNet). Tiles
run one at a time from host (NumPy) arrays into a preallocated host output, so
device memory is one window's activations; host memory is the inputs plus the
float32 output.

References: Ulyanov, Vedaldi & Lempitsky, "Instance Normalization: The Missing
Ingredient for Fast Stylization", 2016 (the statistics that must be shared);
Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and
Super-Resolution", ECCV 2016 (the network tiled in the benchmark).
"""

import dataclasses
import math
import sys
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth import io
from neural_synth import progress as progress_lib
from neural_synth.models import layers


@dataclasses.dataclass(frozen=True)
class Tile1D:
    """One tile along one axis, in output pixels.

    `start`, `stop`: the window fed to the network (inside [0, size) unless the
    plan wraps, when it may extend past either end and is read circularly).
    `keep_start`, `keep_stop`: the part of the window's output that is used,
    always inside [0, size).
    """

    start: int
    stop: int
    keep_start: int
    keep_stop: int


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _check_plan_args(size: int, tile: int, halo: int, align: int) -> None:
    if align < 1 or tile < 1 or halo < 0:
        raise ValueError(f"Need align >= 1, tile >= 1 and halo >= 0, got {align}, {tile}, {halo}.")
    if size < 1 or size % align:
        raise ValueError(
            f"Tiled inference needs image sides that are multiples of {align} (the network's "
            f"total stride), got {size}; crop or resize to {max(align, size - size % align)}."
        )


def _plan(size: int, tile: int, halo: int, align: int, interior_ends: bool) -> list[Tile1D]:
    """Windows of one length in [0, size), starts on multiples of `align`, steps <= tile."""
    length = min(size, tile + 2 * halo)
    num = 1 if length == size else 1 + math.ceil((size - length) / tile)
    units = (size - length) // align  # Window start positions, in units of `align`.
    starts = [align * (i * units // (num - 1)) if num > 1 else 0 for i in range(num)]
    tiles = []
    for s in starts:
        lo = s + halo if (s > 0 or interior_ends) else s
        hi = s + length - halo if (s + length < size or interior_ends) else s + length
        tiles.append(Tile1D(s, s + length, lo, hi))
    return tiles


def plan_tiles(size: int, *, tile: int, halo: int, align: int, wrap: bool = False) -> list[Tile1D]:
    """Tiles along one axis of length `size`.

    Every window has the same length E = min(size, tile + 2 * halo) (with
    `wrap`, min(size + 2 * halo, tile + 2 * halo)) and starts on a multiple of
    `align`; `tile` and `halo` are first rounded up to multiples of `align`.
    Without `wrap` windows lie inside [0, size): at the ends they are shifted
    inward, and only their interior sides drop `halo` pixels from the kept
    range. With `wrap` (periodic outputs) every side drops `halo` pixels and
    windows extend past the ends, to be read circularly. Consecutive windows
    start at most `tile` apart, so the kept ranges cover [0, size) and overlap
    (see `overlap_weights`).

    Raises:
      ValueError: `size` is not a multiple of `align`, or bad tile/halo/align.
    """
    _check_plan_args(size, tile, halo, align)
    tile, halo = _round_up(tile, align), _round_up(halo, align)
    if not wrap:
        return _plan(size, tile, halo, align, interior_ends=False)
    virtual = _plan(size + 2 * halo, tile, halo, align, interior_ends=True)
    return [Tile1D(t.start - halo, t.stop - halo, t.keep_start - halo, t.keep_stop - halo)
            for t in virtual]  # fmt: skip


def partition(tiles: Sequence[Tile1D], align: int = 1) -> list[tuple[int, int]]:
    """Disjoint cores [lo, hi) inside the tiles' kept ranges that exactly cover the axis.

    Where two kept ranges overlap, the boundary is the overlap's midpoint rounded
    down to a multiple of `align`, so every position belongs to exactly one
    tile (for sums over positions, e.g. tiled style statistics) and cores stay
    aligned with pooling blocks.
    """
    cuts = [tiles[0].keep_start]
    for prev, nxt in zip(tiles, tiles[1:], strict=False):
        mid = (max(nxt.keep_start, cuts[-1]) + prev.keep_stop) // 2
        cuts.append(min(max(mid // align * align, nxt.keep_start), prev.keep_stop))
    cuts.append(tiles[-1].keep_stop)
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def _ramps(tiles: Sequence[Tile1D]) -> list[np.ndarray]:
    """Per tile, 1 over its kept range with linear ramps across overlaps with its neighbours."""
    ramps = []
    for i, t in enumerate(tiles):
        r = np.ones(t.keep_stop - t.keep_start, np.float64)
        if i > 0 and (w := min(tiles[i - 1].keep_stop - t.keep_start, r.size)) > 0:
            r[:w] *= (np.arange(w) + 0.5) / w  # Rising where the previous tile fades out.
        if i + 1 < len(tiles) and (w := min(t.keep_stop - tiles[i + 1].keep_start, r.size)) > 0:
            r[r.size - w :] *= (w - 0.5 - np.arange(w)) / w
        ramps.append(r)
    return ramps


def overlap_weights(tiles: Sequence[Tile1D]) -> list[np.ndarray]:
    """Per tile, float32 weights over its kept range [keep_start, keep_stop).

    Linear ramps across the overlap of neighbouring kept ranges, normalised so
    that the weights of all tiles sum to 1 at every position. The 2-D weight of
    a tile is the outer product of its row and column weights (which then also
    sums to 1).
    """
    ramps = _ramps(tiles)
    total = np.zeros(max(t.keep_stop for t in tiles), np.float64)
    for t, r in zip(tiles, ramps, strict=True):
        total[t.keep_start : t.keep_stop] += r
    return [
        (r / total[t.keep_start : t.keep_stop]).astype(np.float32)
        for t, r in zip(tiles, ramps, strict=True)
    ]


# ----------------------------------------------------------------------------- statistics


def _without_stats(variables) -> dict:
    return {k: v for k, v in variables.items() if k != layers.NORM_STATS}


def stats_fn(apply_fn: Callable, **kwargs) -> Callable:
    """Jitted `(variables, *args) -> {'norm_stats': ...}`: statistics of one whole pass.

    `apply_fn` is a linen `module.apply`; `kwargs` are static keyword arguments
    of it. Build it once and reuse it (one compilation per input shape).
    """
    run = jax.jit(lambda v, *a: apply_fn(v, *a, mutable=[layers.NORM_STATS], **kwargs)[1])
    return lambda variables, *args: dict(run(_without_stats(variables), *args))


def capture_stats(apply_fn: Callable, variables, *args, **kwargs) -> dict:
    """Normalisation statistics of one whole-image pass: {'norm_stats': ...}.

    `args` are `apply_fn`'s array inputs (e.g. the downscaled image, or noise at
    the statistics size); statistics already in `variables` are ignored. Feed
    the result back with `module.apply({**variables, **captured}, ...)`: every
    normalisation layer then uses these statistics instead of its input's
    (`neural_synth.models.layers`). Compiles on every call; see `stats_fn`.
    """
    return stats_fn(apply_fn, **kwargs)(variables, *args)


def stats_size(height: int, width: int, *, stats_pixels: int, multiple: int) -> tuple[int, int]:
    """(h, w) for capturing statistics: the image's own size if it has <= `stats_pixels`.

    Otherwise both sides are scaled by sqrt(stats_pixels / (height * width))
    and rounded down to multiples of `multiple` (at least `multiple`).
    """
    if height * width <= stats_pixels:
        return height, width
    scale = math.sqrt(stats_pixels / (height * width))
    return tuple(max(multiple, int(n * scale) // multiple * multiple) for n in (height, width))


def downscale_for_stats(image: np.ndarray, *, stats_pixels: int, multiple: int) -> np.ndarray:
    """An image [1, H, W, C] shrunk (Lanczos, `io.resize`) to `stats_size`; unchanged if it fits.

    For images only (values are clipped to [0, 1]); for noise inputs sample new
    noise at `stats_size` instead, since resizing noise changes its statistics.
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"Expected one image [1, H, W, C], got shape {image.shape}.")
    size = stats_size(*image.shape[1:3], stats_pixels=stats_pixels, multiple=multiple)
    if size == image.shape[1:3]:
        return np.asarray(image, np.float32)
    return io.resize(image[0], size=size)[None]


# ----------------------------------------------------------------------------- tiled apply


def _output_size(inputs: Sequence[np.ndarray], factors: Sequence[int], align: int):
    """(H, W) of the output, checking every input is [1, H/f, W/f, C] and f divides align."""
    if len(inputs) != len(factors) or not inputs:
        raise ValueError(
            f"Give one factor per input: {len(inputs)} inputs, {len(factors)} factors."
        )
    sizes = set()
    for x, f in zip(inputs, factors, strict=True):
        if x.ndim != 4 or x.shape[0] != 1:
            raise ValueError(f"Tiled inputs must be [1, h, w, C] arrays, got shape {x.shape}.")
        if align % f:
            raise ValueError(f"align ({align}) must be a multiple of every factor, got {f}.")
        sizes.add((x.shape[1] * f, x.shape[2] * f))
    if len(sizes) != 1:
        raise ValueError(f"Inputs disagree on the output size (H, W) = shape * factor: {sizes}.")
    return sizes.pop()


def _window(x: np.ndarray, factor: int, row: Tile1D, col: Tile1D) -> np.ndarray:
    """The input window of one tile at this input's scale, read circularly if it extends out."""
    (r0, r1), (c0, c1) = ((t.start // factor, t.stop // factor) for t in (row, col))
    if r0 >= 0 and c0 >= 0 and r1 <= x.shape[1] and c1 <= x.shape[2]:
        return x[:, r0:r1, c0:c1]
    x = np.take(x, np.arange(r0, r1), axis=1, mode="wrap")
    return np.take(x, np.arange(c0, c1), axis=2, mode="wrap")


def _accumulate(out: np.ndarray, result, row: Tile1D, col: Tile1D, wr, wc) -> None:
    """Adds one tile's weighted kept output into `out` [1, H, W, C] (host)."""
    y = np.asarray(result)  # [1, E_h, E_w, C]; waits for the device.
    expected = (1, row.stop - row.start, col.stop - col.start, out.shape[-1])
    if y.shape != expected:
        raise ValueError(f"fn returned shape {y.shape} for a window, expected {expected}.")
    kept = y[0, row.keep_start - row.start : row.keep_stop - row.start,
             col.keep_start - col.start : col.keep_stop - col.start]  # fmt: skip
    out[0, row.keep_start : row.keep_stop, col.keep_start : col.keep_stop] += (
        kept * wr[:, None, None] * wc[None, :, None]
    )


def tiled_apply(
    fn: Callable[[list[jax.Array]], jax.Array],
    inputs: Sequence[np.ndarray],
    *,
    factors: Sequence[int],
    out_channels: int,
    tile: int,
    halo: int,
    align: int,
    wrap: bool = False,
    progress: bool = False,
) -> np.ndarray:
    """Runs `fn` window by window over large host inputs; float32 [1, H, W, out_channels].

    Args:
      fn: list of window inputs (jnp, [1, E_h / f_i, E_w / f_i, C_i]) -> the
        window's output [1, E_h, E_w, out_channels]. Jit it (once: every window
        has the same shape) with the captured statistics closed over.
      inputs: host arrays [1, H / f_i, W / f_i, C_i], e.g. an image (f = 1) or
        TextureNet's noise at scale k (f = 2^k).
      factors: f_i per input; each must divide `align`.
      out_channels: channels of fn's output.
      tile, halo, align, wrap: as in `plan_tiles` (halo >= the network's
        receptive radius gives the untiled result; align = its total stride).
      progress: print progress lines (tiles, s/tile, ETA) on stderr.

    The next window is dispatched before the previous result is fetched, so the
    host-side blending overlaps the device's work.
    """
    height, width = _output_size(inputs, factors, align)
    plans = [plan_tiles(n, tile=tile, halo=halo, align=align, wrap=wrap) for n in (height, width)]
    weights = [overlap_weights(p) for p in plans]
    out = np.zeros((1, height, width, out_channels), np.float32)
    jobs = [(i, j) for i in range(len(plans[0])) for j in range(len(plans[1]))]
    reporter = progress_lib.Progress(len(jobs), unit="tile", stream=sys.stderr, enabled=progress)
    reporter.start("tiled run")
    pending = None
    for done, (i, j) in enumerate(jobs):
        row, col = plans[0][i], plans[1][j]
        windows = [
            jnp.asarray(_window(x, f, row, col)) for x, f in zip(inputs, factors, strict=True)
        ]
        result = fn(windows)
        if pending is not None:
            _accumulate(out, *pending)
            reporter.update(done)
        pending = (result, row, col, weights[0][i], weights[1][j])
    _accumulate(out, *pending)
    reporter.update(len(jobs))
    return out


def image_tiler(
    apply_fn: Callable,
    variables,
    *,
    tile: int,
    halo: int,
    align: int,
    stats_pixels: int,
    extra_args: Sequence = (),
    out_channels: int = 3,
) -> Callable[..., np.ndarray]:
    """An image-to-image network run in tiles: `run(image, progress=False) -> output`.

    `run` takes a host image [1, H, W, C] and returns float32 [1, H, W,
    out_channels]: statistics are captured from the image shrunk to at most
    `stats_pixels` pixels (exact when it already fits), then `tiled_apply` runs
    `apply_fn(variables + statistics, window, *extra_args)` window by window.
    `extra_args` are small untiled arrays (e.g. style weights [1, N]).
    `halo` >= the network's receptive radius (`transform_receptive_radius`)
    and `align` = its total stride (4 for TransformNet). Both programs compile
    once, on the first call.
    """
    plain = _without_stats(variables)
    capture = stats_fn(apply_fn)
    window_fn = jax.jit(lambda v, x: apply_fn(v, x, *extra_args))

    def run(image: np.ndarray, progress: bool = False) -> np.ndarray:
        small = downscale_for_stats(image, stats_pixels=stats_pixels, multiple=align)
        full = {**plain, **capture(plain, jnp.asarray(small), *extra_args)}
        return tiled_apply(
            lambda xs: window_fn(full, xs[0]),
            [image],
            factors=[1],
            out_channels=out_channels,
            tile=tile,
            halo=halo,
            align=align,
            progress=progress,
        )

    return run
