"""Tiled inference: plan invariants, and tiled == untiled (seam-free by measurement)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.models import feedforward, layers
from neural_synth.ops import tiled

# Tiled vs untiled output (sigmoid images in [0, 1]), both with the same captured
# statistics: only float rounding of differently sized convolutions may differ.
TOLERANCE = 1e-5

PLAN_CASES = [
    # size, tile, halo, align
    (96, 32, 22, 4),
    (128, 32, 24, 4),
    (100, 32, 0, 4),
    (1000, 96, 54, 4),  # Not a multiple of the tile.
    (4096, 1024, 54, 4),
    (10000, 1024, 54, 4),
    (10000, 2048, 54, 4),
    (384, 48, 28, 16),  # Tile rounded up to 48, halo to 32.
    (64, 256, 8, 8),  # One window.
]


def _covered_weights(tiles, size):
    total, count = np.zeros(size), np.zeros(size, int)
    for t, w in zip(tiles, tiled.overlap_weights(tiles), strict=True):
        assert w.shape == (t.keep_stop - t.keep_start,)
        assert np.all(w > 0) and np.all(w <= 1 + 1e-6)
        total[t.keep_start : t.keep_stop] += w
        count[t.keep_start : t.keep_stop] += 1
    return total, count


@pytest.mark.parametrize("wrap", [False, True])
@pytest.mark.parametrize(("size", "tile", "halo", "align"), PLAN_CASES)
def test_plan_invariants(size, tile, halo, align, wrap):
    tiles = tiled.plan_tiles(size, tile=tile, halo=halo, align=align, wrap=wrap)
    halo_r = -(-halo // align) * align
    lengths = {t.stop - t.start for t in tiles}
    assert len(lengths) == 1  # One window shape: one compilation.
    length = lengths.pop()
    assert length % align == 0
    assert length == min(size + (2 * halo_r if wrap else 0), -(-tile // align) * align + 2 * halo_r)
    for t in tiles:
        assert t.start % align == 0
        assert 0 <= t.keep_start < t.keep_stop <= size
        if not wrap:
            assert 0 <= t.start and t.stop <= size  # Shifted inward, never padded.
        # Interior sides keep at least `halo` pixels of context.
        assert t.keep_start - t.start >= (halo_r if (wrap or t.start > 0) else 0)
        assert t.stop - t.keep_stop >= (halo_r if (wrap or t.stop < size) else 0)
    total, count = _covered_weights(tiles, size)
    assert np.all(count >= 1) and np.all(count <= 2)  # Covered; at most pairwise overlaps.
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_plan_hand_checked():
    tiles = tiled.plan_tiles(10000, tile=1024, halo=54, align=4)  # halo -> 56, window 1136
    assert len(tiles) == 10
    assert (tiles[0].start, tiles[0].stop, tiles[0].keep_start, tiles[0].keep_stop) == (
        0,
        1136,
        0,
        1080,
    )
    assert (tiles[1].start, tiles[1].keep_start) == (984, 1040)
    assert (tiles[-1].start, tiles[-1].stop, tiles[-1].keep_stop) == (8864, 10000, 10000)
    w = tiled.overlap_weights(tiles)[0]  # Overlap 1040..1080 (40 px): ramp down.
    np.testing.assert_allclose(w[1040:], (39.5 - np.arange(40)) / 40, atol=1e-6)
    assert np.all(w[:1040] == 1)


def test_plan_bad_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="multiples of 4"):
        tiled.plan_tiles(101, tile=32, halo=8, align=4)
    with pytest.raises(ValueError, match="halo"):
        tiled.plan_tiles(100, tile=32, halo=-1, align=4)


def test_stats_size_and_downscale():
    assert tiled.stats_size(96, 128, stats_pixels=96 * 128, multiple=4) == (96, 128)
    assert tiled.stats_size(10000, 10000, stats_pixels=1024**2, multiple=4) == (1024, 1024)
    assert tiled.stats_size(4000, 10000, stats_pixels=1024**2, multiple=8) == (640, 1616)
    image = np.random.default_rng(0).random((1, 64, 96, 3), dtype=np.float32)
    small = tiled.downscale_for_stats(image, stats_pixels=32 * 48, multiple=4)
    assert small.shape == (1, 32, 48, 3) and small.dtype == np.float32
    np.testing.assert_allclose(small.mean(), image.mean(), atol=0.01)
    assert tiled.downscale_for_stats(image, stats_pixels=10**6, multiple=4) is not None
    with pytest.raises(ValueError, match=r"\[1, H, W, C\]"):
        tiled.downscale_for_stats(image[0], stats_pixels=100, multiple=4)


# ----------------------------------------------------------------------------- networks


def _randomize(variables, seed):
    """Random norm scales (around 1) and biases; kernels keep their random initialisation."""
    rng = np.random.default_rng(seed)

    def draw(path, p):
        name = jax.tree_util.keystr(path)
        if "scale" in name:
            return jnp.asarray(1 + 0.3 * rng.normal(size=p.shape), jnp.float32)
        if "bias" in name:
            return jnp.asarray(0.3 * rng.normal(size=p.shape), jnp.float32)
        return p

    return jax.tree_util.tree_map_with_path(draw, variables)


@functools.cache
def _transform_setup():
    net = feedforward.TransformNet(width=4, num_residual=1)
    image = np.random.default_rng(1).random((1, 96, 128, 3), dtype=np.float32)
    image = np.clip(image * 0.3 + np.linspace(0, 0.7, 128)[None, None, :, None], 0, 1)
    image = image.astype(np.float32)
    variables = _randomize(net.init(jax.random.key(0), jnp.asarray(image)), seed=2)
    captured = tiled.capture_stats(net.apply, variables, jnp.asarray(image))
    untiled = np.asarray(jax.jit(net.apply)(variables, jnp.asarray(image)))
    return net, image, variables, captured, untiled


def _run_transform(halo, use_stats=True, tile=32):
    net, image, variables, captured, _ = _transform_setup()
    full = {**variables, **captured} if use_stats else variables
    fn = jax.jit(lambda xs: net.apply(full, xs[0]))
    return tiled.tiled_apply(
        fn, [image], factors=[1], out_channels=3, tile=tile, halo=halo, align=4
    )


def _seam_masks(height, width, *, tile, halo, align):
    """Boolean [H, W] masks: within 2 px of a kept-range edge or inside an overlap."""
    near = np.zeros((height, width), bool)
    for axis, size in ((0, height), (1, width)):
        band = np.zeros(size, bool)
        tiles = tiled.plan_tiles(size, tile=tile, halo=halo, align=align)
        for a, b in zip(tiles[:-1], tiles[1:], strict=True):
            band[max(b.keep_start - 2, 0) : a.keep_stop + 2] = True
        near |= band[:, None] if axis == 0 else band[None, :]
    return near


def _seam_figures(out, untiled, *, tile, halo):
    diff = np.abs(out - untiled)[0].max(-1)  # [H, W]
    near = _seam_masks(*diff.shape, tile=tile, halo=halo, align=4)
    return float(diff[near].max()), float(diff[~near].max())


def test_transform_net_tiled_equals_untiled_and_has_no_seams():
    radius = feedforward.transform_receptive_radius(1)  # 22
    untiled = _transform_setup()[-1]
    out = _run_transform(halo=radius)
    assert out.shape == untiled.shape == (1, 96, 128, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, untiled, rtol=0, atol=TOLERANCE)
    at_seams, elsewhere = _seam_figures(out, untiled, tile=32, halo=radius)
    # Measured (2-core Zen 5): ~1e-7 both near seams and elsewhere.
    assert at_seams <= max(4 * elsewhere, 1e-6), (at_seams, elsewhere)


def test_too_small_halo_and_per_tile_statistics_are_detected():
    """Negative controls: the comparisons above can fail, and fail at the seams."""
    untiled = _transform_setup()[-1]
    no_halo = _run_transform(halo=0)
    at_seams, elsewhere = _seam_figures(no_halo, untiled, tile=32, halo=0)
    assert at_seams > 1e-2, (at_seams, elsewhere)
    own_stats = _run_transform(halo=feedforward.transform_receptive_radius(1), use_stats=False)
    assert float(np.max(np.abs(own_stats - untiled))) > 1e-2


def test_tiled_apply_with_one_window_is_the_plain_call():
    untiled = _transform_setup()[-1]
    out = _run_transform(halo=0, tile=128)
    np.testing.assert_allclose(out, untiled, rtol=0, atol=TOLERANCE)


def test_image_tiler_exact_when_the_image_fits_the_statistics_budget():
    net, image, variables, _, untiled = _transform_setup()
    radius = feedforward.transform_receptive_radius(1)
    run = tiled.image_tiler(
        net.apply, variables, tile=32, halo=radius, align=4, stats_pixels=96 * 128
    )
    np.testing.assert_allclose(run(image), untiled, rtol=0, atol=TOLERANCE)
    # Statistics from a 2x smaller copy: no longer the plain untiled result, but
    # still exactly the untiled pass that uses those same statistics (no seams).
    approx = tiled.image_tiler(
        net.apply, variables, tile=32, halo=radius, align=4, stats_pixels=48 * 64
    )(image)
    small = tiled.downscale_for_stats(image, stats_pixels=48 * 64, multiple=4)  # [1, 48, 64, 3]
    captured = tiled.capture_stats(net.apply, variables, jnp.asarray(small))
    want = jax.jit(net.apply)({**variables, **captured}, jnp.asarray(image))
    np.testing.assert_allclose(approx, want, rtol=0, atol=TOLERANCE)
    assert float(np.max(np.abs(approx - untiled))) > 1e-2


@pytest.mark.parametrize(("padding", "num_scales"), [("reflect", 2), ("circular", 3)])
def test_texture_net_tiled_equals_untiled(padding, num_scales):
    height, width = 96, 128
    net = feedforward.TextureNet(num_scales=num_scales, width=4, padding=padding)
    noises = feedforward.sample_noise_numpy(0, num_scales, height, width)
    jnoises = [jnp.asarray(n) for n in noises]
    variables = _randomize(net.init(jax.random.key(0), jnoises), seed=3)
    captured = tiled.capture_stats(net.apply, variables, jnoises)
    untiled = np.asarray(jax.jit(net.apply)(variables, jnoises))
    full = {**variables, **captured}
    fn = jax.jit(lambda xs: net.apply(full, xs))
    out = tiled.tiled_apply(
        fn,
        noises,
        factors=[2**k for k in range(num_scales)],
        out_channels=3,
        tile=16,
        halo=feedforward.texture_receptive_radius(num_scales),
        align=2 ** (num_scales - 1),
        wrap=padding == "circular",
    )
    np.testing.assert_allclose(out, untiled, rtol=0, atol=TOLERANCE)


def test_capture_stats_holds_every_norm_layer_and_is_used():
    net, image, variables, captured, untiled = _transform_setup()
    stats = captured[layers.NORM_STATS]
    leaves = jax.tree_util.tree_leaves_with_path(stats)
    assert len(leaves) == 2 * 7  # mean and inv_std of norm_in, 2 down, 2 residual, 2 up.
    crop = jnp.asarray(image[:, 16:80, 32:96])
    with_stats = jax.jit(net.apply)({**variables, **captured}, crop)
    assert with_stats.shape == (1, 64, 64, 3)
    # Recapturing from variables that already hold statistics ignores the old ones.
    again = tiled.capture_stats(net.apply, {**variables, **captured}, crop)
    pairs = zip(jax.tree.leaves(again[layers.NORM_STATS]), jax.tree.leaves(stats), strict=True)
    assert any(float(jnp.max(jnp.abs(a - b))) > 1e-3 for a, b in pairs)


def test_tiled_apply_input_errors():
    fn = lambda xs: xs[0]
    with pytest.raises(ValueError, match="one factor per input"):
        tiled.tiled_apply(fn, [np.zeros((1, 8, 8, 3))], factors=[], out_channels=3,
                          tile=4, halo=0, align=4)  # fmt: skip
    with pytest.raises(ValueError, match="disagree"):
        tiled.tiled_apply(fn, [np.zeros((1, 8, 8, 3)), np.zeros((1, 8, 8, 3))], factors=[1, 2],
                          out_channels=3, tile=4, halo=0, align=4)  # fmt: skip
    with pytest.raises(ValueError, match="expected"):
        tiled.tiled_apply(fn, [np.zeros((1, 8, 8, 3))], factors=[1], out_channels=2,
                          tile=4, halo=0, align=4)  # fmt: skip


@pytest.mark.parametrize(
    "size, tile, halo, align", [(64, 16, 6, 2), (1000, 128, 40, 8), (96, 32, 0, 16)]
)
def test_partition_gives_disjoint_aligned_cores_inside_kept_ranges(size, tile, halo, align):
    tiles = tiled.plan_tiles(size, tile=tile, halo=halo, align=align)
    cores = tiled.partition(tiles, align)
    covered = np.zeros(size, int)
    for t, (lo, hi) in zip(tiles, cores, strict=True):
        assert t.keep_start <= lo <= hi <= t.keep_stop
        assert lo % align == 0 or lo == 0
        covered[lo:hi] += 1
    np.testing.assert_array_equal(covered, 1)  # Every position in exactly one core.
