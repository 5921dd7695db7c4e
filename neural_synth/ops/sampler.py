"""Bilinear sampling and homographies: the sampler of a spatial transformer.

Coordinates. Pixel centres sit at integer coordinates: pixel [row i, column j]
is the point (x=j, y=i), so an H x W image covers [-0.5, W-0.5] x [-0.5, H-0.5].
`coords[..., 0]` is x (column) and `coords[..., 1]` is y (row), in pixel units of
the image being sampled (not normalized to [-1, 1]).

Homographies are [B, 3, 3] float32 matrices in those pixel units that map
*output* coordinates to *input* coordinates (backward warping, as a spatial
transformer does): output pixel (x, y) takes the input's value at
(u / w, v / w) where (u, v, w) = H @ (x, y, 1). `invert_homography` gives the
forward (input -> output) map. Points with w <= 0 (behind the camera) land far
outside the image and read `fill`.

Everything is differentiable with respect to the images and, through the
bilinear weights, the coordinates (and so the homography). Small 3 x 3 products
are written out or use HIGHEST precision so that no TF32/bf16 matmul shifts
coordinates on accelerators.

References: Jaderberg, Simonyan, Zisserman & Kavukcuoglu, "Spatial Transformer
Networks", NeurIPS 2015; Heckbert, "Fundamentals of Texture Mapping and Image
Warping", 1989 (closed-form square-to-quad homography).
"""

import jax
import jax.numpy as jnp

from neural_synth.ops import _common

_HIGHEST = jax.lax.Precision.HIGHEST
_MIN_W = 1e-8  # Smallest |w| in the perspective division.


def pixel_grid(size) -> jax.Array:
    """Pixel-centre coordinates of an image: [h, w, 2] float32 with (x, y) = (column, row)."""
    height, width = _common.size_hw(size)
    ys, xs = jnp.meshgrid(
        jnp.arange(height, dtype=jnp.float32), jnp.arange(width, dtype=jnp.float32), indexing="ij"
    )
    return jnp.stack([xs, ys], axis=-1)


def _check_coords(coords: jax.Array, batch: int) -> None:
    if coords.ndim != 4 or coords.shape[-1] != 2 or coords.shape[0] != batch:
        raise ValueError(
            f"coords must be [B, h, w, 2] (x, y) with B={batch} matching images, "
            f"got shape {tuple(coords.shape)}."
        )


def bilinear_sample(images: jax.Array, coords: jax.Array, *, fill=None) -> jax.Array:
    """Samples `images` at fractional pixel coordinates with bilinear interpolation.

    Args:
      images: [B, H, W, C] float images.
      coords: [B, h, w, 2] (x, y) positions in pixel units of `images` (see the
        module docstring for the convention).
      fill: None to replicate the border pixels (clamp to the edge); otherwise a
        scalar or [C] value that stands for every pixel outside the image, so
        the output fades to `fill` across the last pixel (zero padding when 0).

    Returns:
      [B, h, w, C] samples. Gradients flow to `images` (a scatter-add) and to
      `coords` (zero where clamped).
    """
    _common.check_images(images)
    _check_coords(coords, images.shape[0])
    batch, height, width, channels = images.shape
    x = coords[..., 0].astype(jnp.float32)
    y = coords[..., 1].astype(jnp.float32)
    if fill is None:
        x = jnp.clip(x, 0.0, width - 1.0)
        y = jnp.clip(y, 0.0, height - 1.0)
    else:
        # Beyond one pixel outside, every tap reads `fill`; clipping keeps the
        # integer cast safe for wild coordinates.
        x = jnp.clip(x, -2.0, width + 1.0)
        y = jnp.clip(y, -2.0, height + 1.0)
    x0, y0 = jnp.floor(x), jnp.floor(y)
    fx, fy = x - x0, y - y0
    x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
    flat = images.reshape(batch, height * width, channels)

    def tap(xi, yi, weight):
        inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
        index = jnp.clip(yi, 0, height - 1) * width + jnp.clip(xi, 0, width - 1)
        values = jnp.take_along_axis(flat, index.reshape(batch, -1, 1), axis=1)
        weight = jnp.where(inside, weight, 0.0)
        return values.reshape(*x.shape, channels) * weight[..., None], weight

    taps = (
        tap(x0, y0, (1.0 - fx) * (1.0 - fy)),
        tap(x0 + 1, y0, fx * (1.0 - fy)),
        tap(x0, y0 + 1, (1.0 - fx) * fy),
        tap(x0 + 1, y0 + 1, fx * fy),
    )
    out = taps[0][0] + taps[1][0] + taps[2][0] + taps[3][0]
    if fill is not None:
        inside_weight = taps[0][1] + taps[1][1] + taps[2][1] + taps[3][1]
        fill = jnp.asarray(fill, images.dtype)
        out = out + (1.0 - inside_weight)[..., None] * fill
    return out.astype(images.dtype)


def soft_argmax(logits: jax.Array, *, stride: int = 1) -> tuple[jax.Array, jax.Array]:
    """Expected (x, y) position under a softmax over each map (differentiable, sub-pixel).

    Args:
      logits: [B, h, w, K] heat-map logits, one map per point.
      stride: input pixels per map cell; cell (i, j) is centred on the input
        point (x, y) = ((j + 0.5) * stride - 0.5, (i + 0.5) * stride - 0.5).

    Returns:
      (points [B, K, 2] (x, y) in input pixel coordinates, probabilities
      [B, h, w, K] of the softmax).

    References: Sun et al., "Integral Human Pose Regression", ECCV 2018.
    """
    batch, height, width, num = logits.shape
    flat = jax.nn.softmax(logits.reshape(batch, height * width, num), axis=1)
    grid = (pixel_grid((height, width)).reshape(height * width, 2) + 0.5) * stride - 0.5
    points = jnp.einsum("bpk,pc->bkc", flat, grid, precision=_HIGHEST)
    return points, flat.reshape(logits.shape)


def peak_points(
    heat: jax.Array, *, num: int, stride: int = 1, radius: int = 2
) -> tuple[jax.Array, jax.Array]:
    """The `num` strongest peaks of heat maps [B, h, w]: (x, y) points [B, num, 2], heights [B, num].

    Greedy non-maximum suppression: take the maximum, suppress the cells
    within `radius` (Chebyshev distance), repeat. Each point is the
    heat-weighted mean of the 3 x 3 cells around its peak, mapped to input
    pixels as in `soft_argmax`; its height is the sum of those cells. Points
    come strongest first.
    """
    batch, height, width = heat.shape
    cells = pixel_grid((height, width)).reshape(height * width, 2)
    flat = heat.reshape(batch, height * width)
    remaining, points, heights = flat, [], []
    for _ in range(num):
        peak = cells[jnp.argmax(remaining, axis=1)]  # [B, 2]
        distance = jnp.max(jnp.abs(cells[None] - peak[:, None]), axis=-1)  # [B, hw]
        weights = jnp.where(distance <= 1, flat, 0.0)
        height = jnp.sum(weights, axis=1)
        total = jnp.maximum(height, 1e-12)[:, None]
        points.append(jnp.einsum("bp,pc->bc", weights, cells, precision=_HIGHEST) / total)
        heights.append(height)
        remaining = jnp.where(distance <= radius, -jnp.inf, remaining)
    points = (jnp.stack(points, axis=1) + 0.5) * stride - 0.5
    return points, jnp.stack(heights, axis=1)


def clockwise(points: jax.Array) -> jax.Array:
    """Points [B, K, 2] sorted clockwise on screen (y down) around their centroid.

    The order starts just clockwise of straight left, so an upright square
    starts at its top-left corner.
    """
    centred = points - jnp.mean(points, axis=1, keepdims=True)
    order = jnp.argsort(jnp.arctan2(centred[..., 1], centred[..., 0]), axis=1)
    return jnp.take_along_axis(points, order[..., None], axis=1)


def coverage(coords: jax.Array, size) -> jax.Array:
    """Validity mask of `bilinear_sample(..., fill=0)`: the weight its taps put inside the image.

    Args:
      coords: [B, h, w, 2] (x, y) sample positions.
      size: the sampled image's (height, width) (or an int for square images).

    Returns:
      [B, h, w, 1] in [0, 1]: 1 where all four taps are inside, falling linearly
      to 0 one pixel outside. `bilinear_sample(images, coords, fill=0)` is the
      premultiplied colour for this alpha.
    """
    height, width = _common.size_hw(size)
    x, y = coords[..., 0], coords[..., 1]
    cover_x = jnp.clip(x + 1.0, 0.0, 1.0) * jnp.clip(width - x, 0.0, 1.0)
    cover_y = jnp.clip(y + 1.0, 0.0, 1.0) * jnp.clip(height - y, 0.0, 1.0)
    return (cover_x * cover_y)[..., None]


def _check_homography(h: jax.Array) -> None:
    if h.ndim != 3 or h.shape[1:] != (3, 3):
        raise ValueError(f"homographies must be [B, 3, 3], got shape {tuple(h.shape)}.")


def apply_homography(h: jax.Array, points: jax.Array) -> jax.Array:
    """Maps points through homographies.

    Args:
      h: [B, 3, 3] homographies.
      points: [B, ..., 2] (x, y) points.

    Returns:
      [B, ..., 2] points (u / w, v / w) with (u, v, w) = h @ (x, y, 1); |w| is
      kept >= 1e-8 with its sign.
    """
    _check_homography(h)
    if points.shape[0] != h.shape[0] or points.shape[-1] != 2:
        raise ValueError(
            f"points must be [B, ..., 2] with B={h.shape[0]}, got shape {tuple(points.shape)}."
        )
    expand = (slice(None),) + (None,) * (points.ndim - 2)
    x, y = points[..., 0], points[..., 1]

    def row(i):
        return h[expand + (i, 0)] * x + h[expand + (i, 1)] * y + h[expand + (i, 2)]

    w = row(2)
    w = jnp.where(w >= 0, jnp.maximum(w, _MIN_W), jnp.minimum(w, -_MIN_W))
    return jnp.stack([row(0) / w, row(1) / w], axis=-1)


def homography_coords(h: jax.Array, out_size) -> jax.Array:
    """Input coordinates [B, h, w, 2] read by each output pixel centre of an `out_size` image."""
    _check_homography(h)
    grid = pixel_grid(out_size)
    return apply_homography(h, jnp.broadcast_to(grid, (h.shape[0], *grid.shape)))


def warp_homography(images: jax.Array, h: jax.Array, out_size=None, *, fill=None) -> jax.Array:
    """Backward-warps images: output pixel (x, y) samples the input at h @ (x, y, 1).

    Args:
      images: [B, H, W, C] float images.
      h: [B, 3, 3] output-to-input homographies in pixel units.
      out_size: output (height, width) or int; defaults to (H, W).
      fill: as in `bilinear_sample` (None replicates the border).

    Returns:
      [B, out_h, out_w, C] warped images.
    """
    _common.check_images(images)
    _check_homography(h)
    if h.shape[0] != images.shape[0]:
        raise ValueError(f"got {h.shape[0]} homographies for {images.shape[0]} images.")
    out_size = images.shape[1:3] if out_size is None else out_size
    return bilinear_sample(images, homography_coords(h, out_size), fill=fill)


def affine_matrix(*, scale=1.0, rotation=0.0, shear=0.0, translation=(0.0, 0.0)) -> jax.Array:
    """Affine maps p -> R(rotation) @ Shear(shear) @ (scale * p) + translation, as 3 x 3 matrices.

    Args:
      scale: [...] isotropic scale.
      rotation: [...] angle in radians (from +x towards +y, i.e. clockwise on
        screen since y points down).
      shear: [...] horizontal shear factor k: Shear = [[1, k], [0, 1]].
      translation: [..., 2] (tx, ty).

    Returns:
      [..., 3, 3] float32, with the broadcast batch shape of the arguments.
    """
    scale = jnp.asarray(scale, jnp.float32)
    rotation = jnp.asarray(rotation, jnp.float32)
    shear = jnp.asarray(shear, jnp.float32)
    translation = jnp.asarray(translation, jnp.float32)
    shape = jnp.broadcast_shapes(scale.shape, rotation.shape, shear.shape, translation.shape[:-1])
    cos, sin = jnp.cos(rotation), jnp.sin(rotation)
    rows = [
        [cos * scale, (cos * shear - sin) * scale, translation[..., 0]],
        [sin * scale, (sin * shear + cos) * scale, translation[..., 1]],
        [jnp.zeros(()), jnp.zeros(()), jnp.ones(())],
    ]
    return jnp.stack([jnp.stack([jnp.broadcast_to(e, shape) for e in r], -1) for r in rows], -2)


def square_to_quad(quad: jax.Array) -> jax.Array:
    """Homographies mapping the unit square onto quadrilaterals (Heckbert's closed form).

    Args:
      quad: [..., 4, 2] images of the unit square's corners (0, 0), (1, 0), (1, 1), (0, 1).

    Returns:
      [..., 3, 3] homographies H with H @ (u, v, 1) ~ corner; exactly affine
      (bottom row 0, 0, 1) when the quad is a parallelogram.
    """
    x, y = quad[..., 0], quad[..., 1]  # [..., 4]
    sum_x = x[..., 0] - x[..., 1] + x[..., 2] - x[..., 3]
    sum_y = y[..., 0] - y[..., 1] + y[..., 2] - y[..., 3]
    dx1, dx2 = x[..., 1] - x[..., 2], x[..., 3] - x[..., 2]
    dy1, dy2 = y[..., 1] - y[..., 2], y[..., 3] - y[..., 2]
    den = dx1 * dy2 - dx2 * dy1
    g = (sum_x * dy2 - dx2 * sum_y) / den
    h = (dx1 * sum_y - sum_x * dy1) / den
    rows = [
        [x[..., 1] - x[..., 0] + g * x[..., 1], x[..., 3] - x[..., 0] + h * x[..., 3], x[..., 0]],
        [y[..., 1] - y[..., 0] + g * y[..., 1], y[..., 3] - y[..., 0] + h * y[..., 3], y[..., 0]],
        [g, h, jnp.ones_like(g)],
    ]
    return jnp.stack([jnp.stack(r, -1) for r in rows], -2)


def invert_homography(h: jax.Array, *, normalize: bool = True) -> jax.Array:
    """Inverse [..., 3, 3] matrices via the adjugate (closed form, differentiable).

    With normalize=False returns the adjugate itself: the same homography
    (projective scale is irrelevant) without the division by the determinant.
    """

    def m(i, j):
        return h[..., i % 3, j % 3]

    # Cofactor C[i, j] with cyclic indices; adj = C^T.
    cof = [
        [m(i + 1, j + 1) * m(i + 2, j + 2) - m(i + 1, j + 2) * m(i + 2, j + 1) for j in range(3)]
        for i in range(3)
    ]
    adj = jnp.stack([jnp.stack([cof[j][i] for j in range(3)], -1) for i in range(3)], -2)
    if not normalize:
        return adj
    det = m(0, 0) * cof[0][0] + m(0, 1) * cof[0][1] + m(0, 2) * cof[0][2]
    return adj / det[..., None, None]


def matmul3(a: jax.Array, b: jax.Array) -> jax.Array:
    """[..., 3, 3] @ [..., 3, 3] at full float32 precision (composing homographies)."""
    return jnp.matmul(a, b, precision=_HIGHEST)


def random_homography(
    key: jax.Array,
    batch: int,
    *,
    strength=1.0,
    size,
    max_scale: float = 0.1,
    max_rotation: float = 0.1,
    max_shear: float = 0.1,
    max_translation: float = 0.05,
    max_perspective: float = 0.05,
) -> jax.Array:
    """Random output-to-input homographies about the image centre, for `warp_homography`.

    Each example gets, uniformly in [-1, 1] times `strength` times the maximum:
    log-scale (`max_scale`), rotation in radians (`max_rotation`), shear
    (`max_shear`), translation (`max_translation`) and an independent jitter of
    each of the 4 image corners (`max_perspective`). Translation and jitter are
    fractions of half the longer image side. At strength 0 the result is
    exactly the identity.

    Args:
      key: PRNG key.
      batch: number of homographies B.
      strength: float or traced scalar >= 0 scaling every range.
      size: image (height, width) or int, in pixels.

    Returns:
      [B, 3, 3] float32 homographies in pixel units.
    """
    height, width = _common.size_hw(size)
    strength = jnp.asarray(strength, jnp.float32)
    # One draw for all 13 parameters per example (fast to compile).
    u = strength * jax.random.uniform(key, (batch, 13), minval=-1.0, maxval=1.0)

    # Work in isotropic normalized coordinates n = (p - centre) / radius.
    radius = max(height, width) / 2.0
    half_w, half_h = width / (2.0 * radius), height / (2.0 * radius)
    corners = jnp.array(
        [[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]]
    )
    quad = corners + max_perspective * u[:, 5:].reshape(batch, 4, 2)
    rect_to_square = jnp.array(
        [[0.5 / half_w, 0.0, 0.5], [0.0, 0.5 / half_h, 0.5], [0.0, 0.0, 1.0]], jnp.float32
    )
    perspective = matmul3(square_to_quad(quad), rect_to_square)
    affine = affine_matrix(
        scale=jnp.exp(max_scale * u[:, 0]),
        rotation=max_rotation * u[:, 1],
        shear=max_shear * u[:, 2],
        translation=max_translation * u[:, 3:5],
    )
    # Conjugating only the deviation from identity keeps strength 0 exact.
    deviation = matmul3(affine, perspective) - jnp.eye(3)
    return jnp.eye(3) + _to_pixels(deviation, height, width, radius)


def _to_pixels(deviation: jax.Array, height: int, width: int, radius: float) -> jax.Array:
    """A [B, 3, 3] map in centred coordinates (p - centre) / radius, conjugated to pixels."""
    centre_x, centre_y = (width - 1) / 2.0, (height - 1) / 2.0
    to_norm = jnp.array(
        [[1 / radius, 0, -centre_x / radius], [0, 1 / radius, -centre_y / radius], [0, 0, 1]],
        jnp.float32,
    )
    from_norm = jnp.array([[radius, 0, centre_x], [0, radius, centre_y], [0, 0, 1]], jnp.float32)
    return matmul3(matmul3(from_norm, deviation), to_norm)
