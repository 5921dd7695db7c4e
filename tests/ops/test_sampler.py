"""Tests for the bilinear sampler and homographies against NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.ops import sampler


def _images(batch=2, height=12, width=16, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.uniform(size=(batch, height, width, channels)).astype(np.float32))


def _np_bilinear(image, x, y, fill):
    """Reference: one [H, W, C] image at one point; fill None replicates the border."""
    height, width, _ = image.shape
    if fill is None:
        x, y = np.clip(x, 0, width - 1), np.clip(y, 0, height - 1)
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    fx, fy = x - x0, y - y0
    total = 0.0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy),
                      (1, 1, fx * fy)):  # fmt: skip
        xi, yi = x0 + dx, y0 + dy
        if 0 <= xi < width and 0 <= yi < height:
            total = total + w * image[yi, xi]
        elif fill is not None:
            total = total + w * fill
    return total


@pytest.mark.parametrize("fill", [None, 0.0, 0.25])
def test_identity_coords_reproduce_image(fill):
    images = _images()
    grid = jnp.broadcast_to(sampler.pixel_grid((12, 16)), (2, 12, 16, 2))
    out = jax.jit(lambda i, c: sampler.bilinear_sample(i, c, fill=fill))(images, grid)
    np.testing.assert_array_equal(out, images)


def test_integer_translation_shifts_exactly():
    images = _images()
    coords = sampler.pixel_grid((12, 16))[None] + jnp.array([2.0, -1.0])  # read (x + 2, y - 1)
    coords = jnp.broadcast_to(coords, (2, 12, 16, 2))
    out = np.asarray(jax.jit(lambda i, c: sampler.bilinear_sample(i, c, fill=0.5))(images, coords))
    expected = np.full_like(out, 0.5)
    expected[:, 1:, :-2] = np.asarray(images)[:, :-1, 2:]
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("fill", [None, 0.0, 0.7])
def test_fractional_coords_match_numpy(fill):
    images = _images()
    rng = np.random.default_rng(0)
    # Points inside, near and beyond every border.
    coords = rng.uniform([-2.5, -2.5], [18.5, 14.5], size=(2, 5, 7, 2)).astype(np.float32)
    out = jax.jit(lambda i, c: sampler.bilinear_sample(i, c, fill=fill))(images, coords)
    out = np.asarray(out)
    imgs = np.asarray(images)
    for b in range(2):
        for i in range(5):
            for j in range(7):
                x, y = coords[b, i, j]
                ref = _np_bilinear(imgs[b], float(x), float(y), fill)
                np.testing.assert_allclose(out[b, i, j], ref, atol=1e-5)


def test_coverage_is_the_inside_weight():
    rng = np.random.default_rng(1)
    coords = jnp.asarray(rng.uniform(-2, 14, size=(2, 6, 6, 2)).astype(np.float32))
    ones = jnp.ones((2, 12, 12, 1))
    fn = jax.jit(lambda c: (sampler.coverage(c, 12), sampler.bilinear_sample(ones, c, fill=0.0)))
    np.testing.assert_allclose(*fn(coords), atol=1e-6)


def test_gradients_flow_to_images_and_coords():
    images = _images()
    rng = np.random.default_rng(2)
    coords = jnp.asarray(rng.uniform(0.2, 10.7, size=(2, 4, 4, 2)).astype(np.float32))
    loss = jax.jit(lambda i, c: jnp.sum(sampler.bilinear_sample(i, c, fill=0.0) ** 2))
    grad_images, grad_coords = jax.jit(jax.grad(loss, argnums=(0, 1)))(images, coords)
    for grad in (grad_images, grad_coords):
        assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0
    # The coordinate gradient is the image's finite-difference slope.
    eps = 1e-2
    bumped = coords.at[0, 0, 0, 0].add(eps)
    numeric = (loss(images, bumped) - loss(images, coords - (bumped - coords))) / (2 * eps)
    np.testing.assert_allclose(grad_coords[0, 0, 0, 0], numeric, rtol=2e-2, atol=1e-3)


def _np_apply(h, x, y):
    u, v, w = h @ np.array([x, y, 1.0])
    return u / w, v / w


def test_warp_homography_reads_where_numpy_says():
    # Bilinear interpolation is exact on affine functions of (x, y): a ramp image
    # warped by H must equal the ramp evaluated at H (x, y) wherever that is inside.
    height, width = 20, 24
    ys, xs = np.mgrid[:height, :width].astype(np.float32)
    ramp = np.stack([0.02 * xs + 0.01 * ys, 0.03 * ys, 0.5 + 0.0 * xs], -1) / 1.2
    h = np.array([[0.9, 0.1, 2.0], [-0.05, 1.1, 1.5], [1e-3, -2e-3, 1.0]], np.float32)
    warp = jax.jit(lambda i, h: sampler.warp_homography(i, h, (10, 12), fill=0.0))
    out = np.asarray(warp(jnp.asarray(ramp)[None], jnp.asarray(h)[None]))[0]
    checked = 0
    for y in range(10):
        for x in range(12):
            u, v = _np_apply(h.astype(np.float64), x, y)
            if 0 <= u <= width - 1 and 0 <= v <= height - 1:
                expected = np.array([0.02 * u + 0.01 * v, 0.03 * v, 0.5]) / 1.2
                np.testing.assert_allclose(out[y, x], expected, atol=1e-5)
                checked += 1
    assert checked > 100


def test_homography_coords_match_numpy():
    h = np.array([[1.1, 0.2, -3.0], [0.1, 0.9, 4.0], [2e-3, 1e-3, 1.0]], np.float32)
    coords = jax.jit(lambda h: sampler.homography_coords(h, (5, 6)))(jnp.asarray(h)[None])
    coords = np.asarray(coords)[0]
    for y, x in ((0, 0), (4, 5), (2, 3)):
        np.testing.assert_allclose(coords[y, x], _np_apply(h.astype(np.float64), x, y), rtol=1e-5)


def test_identity_homography_reproduces_image():
    images = _images()
    warp = jax.jit(lambda i, h: sampler.warp_homography(i, h, fill=0.0))
    out = warp(images, jnp.broadcast_to(jnp.eye(3), (2, 3, 3)))
    np.testing.assert_array_equal(out, images)


def test_affine_matrix_matches_numpy_composition():
    @jax.jit
    def run():
        single = sampler.affine_matrix(scale=1.5, rotation=0.3, shear=0.2, translation=(4, -2))
        batched = sampler.affine_matrix(rotation=jnp.zeros((3,)), translation=jnp.ones((3, 2)))
        return single, batched

    m, batched = run()
    c, s = np.cos(0.3), np.sin(0.3)
    linear = np.array([[c, -s], [s, c]]) @ np.array([[1, 0.2], [0, 1]]) @ (1.5 * np.eye(2))
    np.testing.assert_allclose(m[:2, :2], linear, rtol=1e-6)
    np.testing.assert_allclose(m[:, 2], [4, -2, 1])
    np.testing.assert_allclose(m[2, :2], [0, 0])
    assert batched.shape == (3, 3, 3)


def test_square_to_quad_and_inverse():
    quad = np.array([[[1.0, 2.0], [9.0, 1.5], [10.0, 8.0], [0.5, 7.0]]], np.float32)
    unit = np.array([[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]], np.float32)

    @jax.jit
    def run(quad):
        h = sampler.square_to_quad(quad)
        inverse = sampler.invert_homography(h)
        adjugate = sampler.invert_homography(h, normalize=False)
        return (
            sampler.apply_homography(h, unit),
            sampler.matmul3(inverse, h),
            sampler.apply_homography(adjugate, quad),
        )

    corners, eye, back = run(quad)
    np.testing.assert_allclose(corners, quad, atol=1e-5)
    np.testing.assert_allclose(eye[0], np.eye(3), atol=1e-5)
    np.testing.assert_allclose(back, unit, atol=1e-5)


def test_random_homography_identity_at_zero_and_per_example():
    key = jax.random.key(0)
    corners = jnp.broadcast_to(
        jnp.array([[0.0, 0.0], [31.0, 0.0], [31.0, 23.0], [0.0, 23.0]]), (4, 4, 2)
    )
    images = _images(4, 24, 32)

    @jax.jit
    def fn(strength):
        h = sampler.random_homography(key, 4, strength=strength, size=(24, 32))
        moved = jnp.abs(sampler.apply_homography(h, corners) - corners)
        return h, moved, sampler.warp_homography(images, h)

    h, moved, warped = fn(0.0)
    np.testing.assert_array_equal(h, np.broadcast_to(np.eye(3), (4, 3, 3)))
    np.testing.assert_array_equal(warped, images)
    h, moved, _ = fn(1.0)
    assert not np.allclose(h[0], h[1])
    # Corners move by at most what the ranges allow (a few pixels here).
    assert 0.1 < moved.max() < 8.0
    assert fn(2.0)[1].max() > moved.max()


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="coords"):
        sampler.bilinear_sample(_images(), jnp.zeros((2, 4, 4, 3)))
    with pytest.raises(ValueError, match="batch"):
        sampler.bilinear_sample(jnp.zeros((4, 4, 3)), jnp.zeros((2, 4, 4, 2)))
    with pytest.raises(ValueError, match="3, 3"):
        sampler.warp_homography(_images(), jnp.zeros((2, 2, 3)))


def test_soft_argmax_finds_peaks_at_cell_centres_and_between():
    logits = jnp.full((1, 8, 8, 2), -1e4).at[0, 3, 5, 0].set(0.0)
    logits = logits.at[0, 2, 1, 1].set(0.0).at[0, 2, 2, 1].set(0.0)  # Two equal cells.
    points, probs = jax.jit(lambda x: sampler.soft_argmax(x, stride=4))(logits)
    # Cell (i, j) of a stride-4 map is centred on input pixel ((j + 0.5) * 4 - 0.5, ...).
    np.testing.assert_allclose(points[0, 0], [21.5, 13.5], atol=1e-4)
    np.testing.assert_allclose(points[0, 1], [(5.5 + 9.5) / 2, 9.5], atol=1e-4)
    np.testing.assert_allclose(np.sum(probs, axis=(1, 2)), 1.0, atol=1e-6)
    grad = jax.grad(lambda x: sampler.soft_argmax(x)[0].sum())(jnp.zeros((2, 4, 4, 3)))
    assert np.all(np.isfinite(grad))


def test_peak_points_finds_each_peak_once_with_sub_cell_centres():
    heat = np.zeros((1, 12, 12), np.float32)
    heat[0, 2, 3] = 1.0  # a single cell: its centre
    heat[0, 8, 8], heat[0, 8, 9] = 0.6, 0.6  # two equal cells: halfway between them
    heat[0, 9, 8] = 0.3  # the same peak's shoulder (within the radius): not a new peak
    heat[0, 5, 10] = 0.5
    heat[0, 1, 10] = 0.4
    points, heights = sampler.peak_points(jnp.asarray(heat), num=4, stride=2)
    np.testing.assert_allclose(heights[0], [1.0, 1.5, 0.5, 0.4], atol=1e-6)
    points = np.asarray(points)[0]
    # Cell (row i, column j) is centred on (x, y) = (2 j + 0.5, 2 i + 0.5) input pixels.
    shoulder = (0.6 * 8 + 0.6 * 9 + 0.3 * 8) / 1.5, (0.6 * 8 + 0.6 * 8 + 0.3 * 9) / 1.5
    expected = [(3, 2), shoulder, (10, 5), (10, 1)]  # (column, row), strongest first
    np.testing.assert_allclose(points, 2 * np.array(expected) + 0.5, atol=1e-5)


def test_clockwise_orders_points_around_their_centroid():
    diamond = np.array(
        [[[10, 0], [0, 10], [-10, 0], [0, -10]]], np.float32
    )  # right, down, left, up
    ordered = np.asarray(sampler.clockwise(jnp.asarray(diamond + 5)))[0] - 5
    # y points down: up -> right -> down -> left is clockwise on screen; straight left comes last.
    np.testing.assert_array_equal(ordered, [[0, -10], [10, 0], [0, 10], [-10, 0]])
    square = np.array([[[9, 1], [1, 9], [1, 1], [9, 9]]], np.float32)
    np.testing.assert_array_equal(  # An upright square: TL, TR, BR, BL.
        np.asarray(sampler.clockwise(jnp.asarray(square)))[0], [[1, 1], [9, 1], [9, 9], [1, 9]]
    )
