"""Procedural 3-D objects (chairs, tables, stools, lamps, sofas) and a ray-casting renderer.

Stands in for the CAD chairs of Dosovitskiy et al.: each *identity* is a
parametric object built from axis-aligned boxes, vertical cylinders and
spheres, drawn from its family's ranges of sizes, styles and colours by a
generator seeded with (seed, identity), so identity i is the same object on
every machine and every run.

`render_views` casts one orthographic ray per pixel against the analytic
primitives (vectorised over a batch, float32 NumPy), so the mask is exact:
a pixel is in the object iff its ray hits a primitive. Shading is Lambert
with an ambient term under a light fixed relative to the camera (upper left,
in front), so a turntable keeps its lighting. The background is black (0).

Coordinates: y up; every object is centred and scaled to a bounding sphere of
radius `OBJECT_RADIUS`, so it fits the frame (`VIEW_EXTENT`) from any view.
Azimuth turns the camera about the vertical axis (0 looks from +z toward the
origin, positive is counter-clockwise seen from above); elevation raises it.

References: Dosovitskiy, Springenberg & Brox, "Learning to Generate Chairs
with Convolutional Neural Networks", CVPR 2015 (the task); Kay & Kajiya,
"Ray Tracing Complex Scenes", SIGGRAPH 1986 (slab test for boxes).
"""

import dataclasses

import numpy as np

FAMILIES = ("chair", "table", "stool", "lamp", "sofa")
MAX_BOXES, MAX_CYLINDERS, MAX_SPHERES = 14, 6, 2
# A primitive row: centre (3), size (3), colour (3), valid (1). Sizes are half
# extents for boxes, (radius, half height, radius) for cylinders, (r, r, r) for spheres.
ROW = 10
OBJECT_RADIUS = 1.0  # Every object's bounding-sphere radius after normalisation.
VIEW_EXTENT = 1.05  # Half the side of the orthographic view, in object units.
AMBIENT = 0.3
LIGHT = np.array([-0.45, 0.65, 0.62], np.float32)  # Camera frame: right, up, toward viewer.
_EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class Shapes:
    """Padded primitive tables of N objects: boxes [N, 14, 10], cylinders [N, 6, 10], spheres [N, 2, 10].

    Index with an int array to get a batch (`shapes[ids]`), which `render_views` draws.
    """

    boxes: np.ndarray
    cylinders: np.ndarray
    spheres: np.ndarray
    families: tuple[str, ...]

    def __len__(self) -> int:
        return self.boxes.shape[0]

    def __getitem__(self, ids) -> "Shapes":
        ids = np.atleast_1d(np.asarray(ids))
        fams = tuple(self.families[i] for i in ids.tolist())
        return Shapes(self.boxes[ids], self.cylinders[ids], self.spheres[ids], fams)


# ----------------------------------------------------------------------------- identities


def make_shapes(num: int, *, seed: int = 0) -> Shapes:
    """`num` identities; identity i is family FAMILIES[i % 5] with parameters from rng (seed, i)."""
    if num < 1:
        raise ValueError(f"num_identities must be >= 1, got {num}.")
    tables = [_identity(i, seed) for i in range(num)]
    stack = lambda k: np.stack([t[k] for t in tables])
    fams = tuple(FAMILIES[i % len(FAMILIES)] for i in range(num))
    return Shapes(stack(0), stack(1), stack(2), fams)


def _identity(index: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, index, 31])
    parts = _BUILDERS[FAMILIES[index % len(FAMILIES)]](rng)  # [(kind, centre, size, colour)]
    return _pack(_normalise(parts))


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A colour bright enough to stay distinct from the black background under shading."""
    hue, sat, val = rng.random(), rng.uniform(0.25, 0.85), rng.uniform(0.55, 0.95)
    rgb = np.clip(np.abs((hue * 6 + np.array([0.0, 4.0, 2.0])) % 6 - 3) - 1, 0, 1)
    return (val * (1 - sat + sat * rgb)).astype(np.float32)


def _box(c, s, col):
    return ("box", np.asarray(c, float), np.asarray(s, float), col)


def _cyl(c, r, hh, col):
    return ("cylinder", np.asarray(c, float), np.array([r, hh, r], float), col)


def _legs(rng, half_w, half_d, height, col, *, round_legs: bool, inset: float):
    t = rng.uniform(0.035, 0.07)
    out = []
    for sx in (-1, 1):
        for sz in (-1, 1):
            c = (sx * (half_w - inset - t), height / 2, sz * (half_d - inset - t))
            out.append(
                _cyl(c, t, height / 2, col) if round_legs else _box(c, (t, height / 2, t), col)
            )
    return out


def _chair(rng):
    w, d, h = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6), rng.uniform(0.7, 1.0)
    th, seat, frame = rng.uniform(0.04, 0.08), _colour(rng), _colour(rng)
    parts = [_box((0, h, 0), (w, th, d), seat)]
    parts += _legs(rng, w, d, h - th, frame, round_legs=rng.random() < 0.5, inset=0.02)
    back_h, back_t = rng.uniform(0.5, 1.0), rng.uniform(0.03, 0.06)
    back_col = seat if rng.random() < 0.5 else frame
    z = -d + back_t
    if rng.random() < 0.5:  # Solid back.
        parts.append(
            _box(
                (0, h + th + back_h / 2, z), (w * rng.uniform(0.8, 1), back_h / 2, back_t), back_col
            )
        )
    else:  # Slats and a top rail.
        num = int(rng.integers(2, 5))
        for x in np.linspace(-w * 0.8, w * 0.8, num):
            parts.append(_box((x, h + th + back_h / 2, z), (0.03, back_h / 2, back_t), frame))
        parts.append(_box((0, h + th + back_h, z), (w, 0.06, back_t * 1.2), back_col))
    if rng.random() < 0.4:  # Armrests on posts.
        arm_y = h + th + rng.uniform(0.2, 0.35)
        for sx in (-1, 1):
            parts.append(_box((sx * w * 0.95, arm_y, 0), (0.05, 0.03, d * 0.9), frame))
            parts.append(
                _box(
                    (sx * w * 0.95, (h + arm_y) / 2, d * 0.7), (0.03, (arm_y - h) / 2, 0.03), frame
                )
            )
    return parts


def _table(rng):
    w, d, h = rng.uniform(0.6, 1.0), rng.uniform(0.4, 0.8), rng.uniform(0.6, 0.9)
    th, top, frame = rng.uniform(0.03, 0.07), _colour(rng), _colour(rng)
    if rng.random() < 0.35:  # Round top on a pedestal.
        r = rng.uniform(0.5, 0.8)
        return [
            _cyl((0, h, 0), r, th, top),
            _cyl((0, h / 2, 0), rng.uniform(0.05, 0.1), h / 2, frame),
            _cyl((0, 0.03, 0), r * rng.uniform(0.4, 0.7), 0.03, frame),
        ]
    parts = [_box((0, h, 0), (w, th, d), top)]
    return parts + _legs(rng, w, d, h - th, frame, round_legs=rng.random() < 0.5, inset=0.05)


def _stool(rng):
    r, h, th = rng.uniform(0.25, 0.45), rng.uniform(0.6, 1.1), rng.uniform(0.04, 0.08)
    seat, frame = _colour(rng), _colour(rng)
    parts = [_cyl((0, h, 0), r, th, seat)]
    num, leg_r, spread = int(rng.integers(3, 5)), rng.uniform(0.03, 0.06), rng.uniform(0.6, 0.9)
    for a in np.arange(num) * 2 * np.pi / num + rng.uniform(0, np.pi):
        parts.append(
            _cyl(
                (spread * r * np.cos(a), (h - th) / 2, spread * r * np.sin(a)),
                leg_r,
                (h - th) / 2,
                frame,
            )
        )
    if rng.random() < 0.5:  # A footrest ring, drawn as a flat disk.
        parts.append(_cyl((0, h * 0.35, 0), spread * r + leg_r, 0.02, frame))
    return parts


def _lamp(rng):
    base, pole, shade = _colour(rng), _colour(rng), _colour(rng)
    h, br = rng.uniform(1.0, 1.6), rng.uniform(0.15, 0.3)
    if rng.random() < 0.5:
        parts = [_cyl((0, 0.03, 0), br, 0.03, base)]
    else:
        parts = [_box((0, 0.04, 0), (br, 0.04, br), base)]
    parts.append(_cyl((0, h / 2, 0), rng.uniform(0.02, 0.04), h / 2, pole))
    kind = rng.random()
    if kind < 0.4:  # Drum shade.
        sr = rng.uniform(0.2, 0.4)
        parts.append(_cyl((0, h, 0), sr, rng.uniform(0.12, 0.22), shade))
    elif kind < 0.7:  # Globe.
        parts.append(
            ("sphere", np.array([0, h + 0.1, 0.0]), np.full(3, rng.uniform(0.15, 0.3)), shade)
        )
    else:  # Arm and a bulb.
        arm = rng.uniform(0.25, 0.45)
        parts.append(_box((arm / 2, h, 0), (arm / 2, 0.025, 0.025), pole))
        parts.append(
            ("sphere", np.array([arm, h - 0.12, 0]), np.full(3, rng.uniform(0.1, 0.18)), shade)
        )
        parts.append(_cyl((arm, h - 0.02, 0), rng.uniform(0.1, 0.18), 0.06, shade))
    return parts


def _sofa(rng):
    w, d, h = rng.uniform(0.8, 1.3), rng.uniform(0.35, 0.5), rng.uniform(0.2, 0.35)
    body, cushion, feet = _colour(rng), _colour(rng), _colour(rng)
    foot = rng.uniform(0.05, 0.12)
    parts = [_box((0, foot + h / 2, 0), (w, h / 2, d), body)]
    parts += _legs(rng, w, d, foot, feet, round_legs=rng.random() < 0.5, inset=0.03)
    back_h = rng.uniform(0.3, 0.6)
    parts.append(_box((0, foot + h + back_h / 2, -d + 0.08), (w, back_h / 2, 0.08), body))
    num = int(rng.integers(1, 4))  # Seat cushions.
    cw = (w - 0.12) / num
    for k in range(num):
        x = -w + 0.12 + cw * (2 * k + 1)
        parts.append(_box((x, foot + h + 0.05, 0.06), (cw * 0.95, 0.05, d - 0.14), cushion))
    if rng.random() < 0.7:  # Arms.
        arm_h = rng.uniform(0.1, 0.3)
        for sx in (-1, 1):
            parts.append(
                _box((sx * (w - 0.06), foot + h + arm_h / 2, 0), (0.08, arm_h / 2, d), body)
            )
    return parts


_BUILDERS = {"chair": _chair, "table": _table, "stool": _stool, "lamp": _lamp, "sofa": _sofa}


def _extreme_points(kind: str, c: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Points whose bounding sphere bounds the primitive (box corners, rim points, sphere poles)."""
    if kind == "sphere":
        return c + np.concatenate([np.eye(3), -np.eye(3)]) * s[0]
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    if kind == "cylinder":
        ring = np.stack([np.cos(angles) * s[0], np.zeros(16), np.sin(angles) * s[0]], 1)
        return np.concatenate([c + ring + [0, s[1], 0], c + ring - [0, s[1], 0]])
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    return c + corners * s


def _normalise(parts):
    """Centres the bounding box at the origin and scales the bounding sphere to OBJECT_RADIUS."""
    points = np.concatenate([_extreme_points(k, c, s) for k, c, s, _ in parts])
    centre = (points.min(0) + points.max(0)) / 2
    scale = OBJECT_RADIUS / np.max(np.linalg.norm(points - centre, axis=1))
    return [(k, (c - centre) * scale, s * scale, col) for k, c, s, col in parts]


def _pack(parts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tables = []
    for kind, limit in (("box", MAX_BOXES), ("cylinder", MAX_CYLINDERS), ("sphere", MAX_SPHERES)):
        rows = [np.concatenate([c, s, col, [1.0]]) for k, c, s, col in parts if k == kind]
        if len(rows) > limit:
            raise AssertionError(f"{len(rows)} {kind}s exceed the table size {limit}.")
        table = np.zeros((limit, ROW), np.float32)
        table[: len(rows)] = rows if rows else table[:0]
        tables.append(table)
    return tables[0], tables[1], tables[2]


# ----------------------------------------------------------------------------- camera


def camera_frames(azimuth_deg, elevation_deg) -> np.ndarray:
    """[B, 3, 3] rows (right, up, back): the camera's axes in object coordinates."""
    a, e = (np.deg2rad(x).reshape(-1) for x in np.broadcast_arrays(azimuth_deg, elevation_deg))
    back = np.stack([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)], -1)
    right = np.stack([np.cos(a), np.zeros_like(a), -np.sin(a)], -1)
    up = np.cross(back, right)
    return np.stack([right, up, back], 1).astype(np.float32)


def _rays(frames: np.ndarray, size: int) -> np.ndarray:
    """Ray origins [B, S*S, 3] on a plane in front of the object (directions: -back)."""
    centres = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1) * VIEW_EXTENT
    x, y = np.meshgrid(centres, -centres)  # Row 0 is the top of the image.
    plane = np.stack([x.ravel(), y.ravel()], -1)  # [P, 2]
    return plane @ frames[:, :2] + 4.0 * OBJECT_RADIUS * frames[:, 2:3]  # [B, P, 3]


# ----------------------------------------------------------------------------- ray casting


def render_views(
    shapes: Shapes, azimuth_deg, elevation_deg, *, size: int, chunk: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Renders objects [B] at azimuths and elevations [B] (degrees, or scalars for all).

    Returns (images [B, S, S, 3] float32 in [0, 1], black where the object is
    absent; masks [B, S, S, 1] float32 in {0, 1}, exactly the pixels whose ray
    hits the object). Work is done `chunk` objects at a time (bounded memory).
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}.")
    num = len(shapes)
    az = np.broadcast_to(np.asarray(azimuth_deg, np.float64), (num,))
    el = np.broadcast_to(np.asarray(elevation_deg, np.float64), (num,))
    images, masks = [], []
    for i in range(0, num, chunk):
        sl = slice(i, i + chunk)
        tables = (shapes.boxes[sl], shapes.cylinders[sl], shapes.spheres[sl])
        image, mask = _render_chunk(tables, camera_frames(az[sl], el[sl]), size)
        images.append(image), masks.append(mask)
    return np.concatenate(images), np.concatenate(masks)


def _render_chunk(tables, frames: np.ndarray, size: int):
    origins, direction = _rays(frames, size), -frames[:, 2]  # [B, P, 3], [B, 3]
    tables = [_trim(t) for t in tables]
    t_all = np.concatenate(
        [
            _hit_boxes(origins, direction, tables[0]),
            _hit_cylinders(origins, direction, tables[1]),
            _hit_spheres(origins, direction, tables[2]),
        ],
        axis=-1,
    )  # [B, P, K]
    rows = np.concatenate(tables, axis=1)  # [B, K, ROW]
    kinds = np.repeat(np.arange(3), [t.shape[1] for t in tables])  # [K]
    first = np.argmin(t_all, axis=-1)  # [B, P]
    t = np.take_along_axis(t_all, first[..., None], -1)[..., 0]
    hit = np.isfinite(t)
    win = np.take_along_axis(rows, first[..., None], 1)  # [B, P, ROW]
    points = origins + np.where(hit, t, 0)[..., None] * direction[:, None]
    normals = _normals(points - win[..., 0:3], win[..., 3:6], kinds[first])
    light = (LIGHT / np.linalg.norm(LIGHT)) @ frames  # [B, 3] in object coordinates
    shade = AMBIENT + (1 - AMBIENT) * np.maximum(0, np.einsum("bpc,bc->bp", normals, light))
    image = win[..., 6:9] * (shade * hit)[..., None]
    b = frames.shape[0]
    mask = hit.astype(np.float32).reshape(b, size, size, 1)
    return image.astype(np.float32).reshape(b, size, size, 3), mask


def _trim(table: np.ndarray) -> np.ndarray:
    """Drops the padding columns no object of the batch uses (keeps at least one)."""
    used = np.flatnonzero(table[..., 9].any(0))
    return table[:, : max(1, used[-1] + 1 if used.size else 1)]


def _safe(x: np.ndarray) -> np.ndarray:
    """Divisors kept away from zero (their sign kept; zero counts as positive)."""
    return np.where(np.abs(x) < _EPS, np.where(x < 0, -_EPS, _EPS), x).astype(np.float32)


def _hit_boxes(origins, direction, table):
    """Ray parameters [B, P, K] of the slab test (inf: missed or padding).

    All rays of an image share a direction, so each slab's entry and exit are a
    per-(image, box) constant minus a per-(image, pixel) one: 4 cheap [B, P, K]
    operations per axis.
    """
    c, h, valid = table[..., 0:3], table[..., 3:6], table[..., 9] > 0
    inv = 1.0 / _safe(direction)  # [B, 3]
    s = np.sign(inv)[:, None]  # [B, 1, 3]: the face a ray enters first
    enter, leave = (c - s * h) * inv[:, None], (c + s * h) * inv[:, None]  # [B, K, 3]
    start = origins * inv[:, None]  # [B, P, 3]
    near, far = None, None
    for ax in range(3):
        a = enter[:, None, :, ax] - start[:, :, None, ax]  # [B, P, K]
        b = leave[:, None, :, ax] - start[:, :, None, ax]
        near = a if near is None else np.maximum(near, a)
        far = b if far is None else np.minimum(far, b)
    return np.where((far >= near) & (near > 0) & valid[:, None], near, np.inf)


def _hit_spheres(origins, direction, table):
    c, r, valid = table[..., 0:3], table[..., 3], table[..., 9] > 0
    oc = origins[:, :, None] - c[:, None]  # [B, P, K, 3]
    b = np.einsum("bpkc,bc->bpk", oc, direction)
    disc = b * b - (np.sum(oc * oc, -1) - r[:, None] ** 2)
    t = -b - np.sqrt(np.maximum(disc, 0))
    return np.where((disc >= 0) & (t > 0) & valid[:, None], t, np.inf)


def _hit_cylinders(origins, direction, table):
    """Vertical capped cylinders: the side (a quadratic in x, z) or the cap facing the ray."""
    c, r, hh, valid = table[..., 0:3], table[..., 3], table[..., 4], table[..., 9] > 0
    oc = origins[:, :, None] - c[:, None]  # [B, P, K, 3]
    dx, dy, dz = (direction[:, i, None, None] for i in range(3))
    r2, hh = r[:, None] ** 2, hh[:, None]
    a = np.maximum(dx * dx + dz * dz, _EPS)
    b = oc[..., 0] * dx + oc[..., 2] * dz
    disc = b * b - a * (oc[..., 0] ** 2 + oc[..., 2] ** 2 - r2)
    t_side = (-b - np.sqrt(np.maximum(disc, 0))) / a
    side = (disc >= 0) & (np.abs(oc[..., 1] + t_side * dy) <= hh)
    dy = _safe(dy)
    t_cap = (-np.sign(dy) * hh - oc[..., 1]) / dy
    cap = (oc[..., 0] + t_cap * dx) ** 2 + (oc[..., 2] + t_cap * dz) ** 2 <= r2
    t = np.minimum(np.where(side, t_side, np.inf), np.where(cap, t_cap, np.inf))
    return np.where((t > 0) & valid[:, None], t, np.inf)


def _normals(q: np.ndarray, size: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """Unit normals [B, P, 3] at offsets q from the hit primitive's centre (kinds 0/1/2)."""
    scaled = q / np.maximum(size, _EPS)  # Box: the face is the axis with |q / h| largest.
    axis = np.argmax(np.abs(scaled), -1)
    box = np.eye(3, dtype=np.float32)[axis] * np.sign(np.take_along_axis(q, axis[..., None], -1))
    radial = np.sqrt(scaled[..., 0] ** 2 + scaled[..., 2] ** 2)
    on_cap = np.abs(scaled[..., 1]) > radial
    side = q * np.array([1, 0, 1], np.float32)
    side = side / np.maximum(np.linalg.norm(side, axis=-1, keepdims=True), _EPS)
    cap = np.zeros_like(q)
    cap[..., 1] = np.sign(q[..., 1])
    cylinder = np.where(on_cap[..., None], cap, side)
    sphere = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), _EPS)
    return np.select([kinds[..., None] == 0, kinds[..., None] == 1], [box, cylinder], sphere)


# ----------------------------------------------------------------------------- view grids


class ViewCache:
    """Renderings of every object on a fixed grid of (azimuth, elevation), each rendered once.

    A data set of views like the paper's (each CAD chair rendered at 31
    azimuths and 2 elevations): `get` renders the views a batch needs on first
    use and keeps them (8-bit RGB and the exact mask), so a training run pays
    for each view once. What `get` returns does not depend on what was
    cached before: batches stay a pure function of (seed, step).
    """

    def __init__(self, shapes: Shapes, azimuths_deg, elevations_deg, *, size: int):
        self.shapes, self.size = shapes, size
        self.azimuths = np.asarray(azimuths_deg, np.float64).reshape(-1)
        self.elevations = np.asarray(elevations_deg, np.float64).reshape(-1)
        grid = (len(shapes), len(self.azimuths), len(self.elevations))
        self._images = np.zeros((*grid, size, size, 3), np.uint8)  # Pages are touched on use.
        self._masks = np.zeros((*grid, size, size, 1), np.uint8)
        self._done = np.zeros(grid, bool)

    def get(self, ids, azimuth_index, elevation_index) -> tuple[np.ndarray, np.ndarray]:
        """(images [B, S, S, 3] float32, masks [B, S, S, 1] float32) of the views indexed [B]."""
        key = tuple(
            np.broadcast_arrays(
                *(np.asarray(x).reshape(-1) for x in (ids, azimuth_index, elevation_index))
            )
        )
        missing = np.unique(np.stack(key, 1)[~self._done[key]], axis=0)
        if missing.size:
            i, a, e = missing.T
            images, masks = render_views(
                self.shapes[i], self.azimuths[a], self.elevations[e], size=self.size
            )
            self._images[i, a, e] = np.round(images * 255).astype(np.uint8)
            self._masks[i, a, e] = masks.astype(np.uint8)
            self._done[i, a, e] = True
        return self._images[key].astype(np.float32) / 255.0, self._masks[key].astype(np.float32)
