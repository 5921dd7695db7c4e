"""Procedural eye crops with landmarks: the training data of gaze redirection (DeepWarp).

No eye data set is reachable here, so eyes are rendered. Each *identity* is a
set of shape and colour parameters drawn by a generator seeded with (seed,
identity): skin tone, iris colour and texture, sclera tint, eye size, eyeball
radius, eyelid heights and shapes, how closely the lids follow the gaze,
lighting and exposure. `render_eyes` draws identities at gazes (yaw, pitch)
into H x W crops (41 x 51 by default, as the public DeepWarp reimplementation)
with 7 landmarks. Pairs of one identity at two gazes are the training data.

The model (eye coordinates: pixels of the crop, origin at the eye's centre,
x right, y down, z toward the camera; orthographic):
- the eyeball is a sphere of radius R centred at (0, ball_dy); a pixel inside
  the eye opening sees the sphere point n (unit normal). The iris is the cap
  of angular radius `iris_angle` about the gaze g = (sin yaw cos pitch,
  -sin pitch, cos yaw cos pitch), the pupil a smaller cap; the iris texture is
  radial fibres in polar coordinates about g, with a dark limbal ring.
  Positive yaw looks toward +x (image right), positive pitch looks up.
- the eyelids are curves through the two corners (-a, -tilt) and (a, tilt):
  y_upper(x) = tilt t - h_up b(t), y_lower(x) = tilt t + h_low b(t), t = x / a,
  b(t) = (1 - t^2)(1 + skew t). The lids follow the gaze: h_up grows and
  h_low shrinks by `follow_* R sin(pitch)` (looking up opens the upper lid),
  and the upper lid's apex leans toward the yaw.
- light comes from above (elevation 30-55 degrees): the eyeball is Lambert
  shaded, the upper lid casts a shadow band on it, and a specular highlight
  sits where the half vector of light and view meets the sphere (fixed as
  the eye turns). So looking up brightens the iris: a change no warp explains.
- skin: the identity's tone, lit from above, with a lid crease, a dark lash
  line along the upper lid and a faint lower lid margin.
- head-fixed camera jitter (`CameraJitter`): a similarity (shift, scale,
  rotation) from eye to image coordinates, the same for both images of a pair.

Landmarks ([N, 7, 2], (x, y) image pixels, pixel centres at integers as in
`neural_synth/ops/sampler.py`), in the order of the 68-point face model's eye
contour, then the iris centre: 0 corner at -x, 1 and 2 upper lid at t = -1/3
and 1/3, 3 corner at +x, 4 and 5 lower lid at t = 1/3 and -1/3, 6 the centre
of the iris (the centre of its boundary's projected ellipse, R cos(iris_angle)
g; visible or not).

Rendering is vectorised NumPy float32 with `supersample`^2 samples per pixel
(box filtered): ~1 ms per 41 x 51 crop on one CPU core.

References: Ganin, Kononenko, Sungatullina & Lempitsky, "DeepWarp:
Photorealistic Image Resynthesis for Gaze Manipulation", ECCV 2016; Wood et
al., "Rendering of Eyes for Eye-Shape Registration and Gaze Estimation",
ICCV 2015 (synthetic eyes with eyelids that follow the gaze).
"""

import dataclasses

import numpy as np

HEIGHT, WIDTH = 41, 51
NUM_LANDMARKS = 7
LANDMARK_NAMES = (
    "corner_left",
    "upper_left",
    "upper_right",
    "corner_right",
    "lower_right",
    "lower_left",
    "iris_centre",
)
_LID_T = 1.0 / 3.0  # The lid landmarks' t = x / a.
_IRIS_COLOURS = np.array(
    [
        [0.36, 0.20, 0.10],  # brown
        [0.22, 0.12, 0.06],  # dark brown
        [0.45, 0.35, 0.18],  # hazel
        [0.30, 0.42, 0.25],  # green
        [0.28, 0.42, 0.62],  # blue
        [0.42, 0.46, 0.50],  # grey
    ],
    np.float32,
)
_SKIN_LIGHT = np.array([0.96, 0.80, 0.70], np.float32)
_SKIN_DARK = np.array([0.36, 0.23, 0.16], np.float32)


@dataclasses.dataclass(frozen=True)
class EyeIdentities:
    """Shape and colour parameters of N eyes: one row (or [N, 3] colour) per identity.

    Index with an int array or a slice for a subset (`identities[ids]`).
    """

    half_width: np.ndarray  # a: corner to centre, px
    tilt: np.ndarray  # corner height offset, px
    radius: np.ndarray  # R, px
    ball_dy: np.ndarray  # eyeball centre below the corners' midpoint, px
    iris_angle: np.ndarray  # radians
    pupil_angle: np.ndarray  # radians
    upper: np.ndarray  # h_up at pitch 0, px
    lower: np.ndarray  # h_low at pitch 0, px
    follow_upper: np.ndarray  # fraction of R sin(pitch) the upper lid follows
    follow_lower: np.ndarray
    skew: np.ndarray  # lid asymmetry (skew of b(t))
    crease: np.ndarray  # gap between the lid and its crease, px
    lash: np.ndarray  # lash line darkness
    shadow: np.ndarray  # depth of the upper lid's shadow on the eyeball
    highlight: np.ndarray  # peak of the specular highlight
    light_elevation: np.ndarray  # radians above the view axis
    light_x: np.ndarray  # sideways component of the light direction
    gain: np.ndarray  # exposure
    skin: np.ndarray  # [N, 3]
    sclera: np.ndarray  # [N, 3]
    iris: np.ndarray  # [N, 3]
    fibres: np.ndarray  # [N, 3, 3]: (frequency, phase, amplitude) of 3 radial patterns

    def __len__(self) -> int:
        return self.radius.shape[0]

    def __getitem__(self, ids) -> "EyeIdentities":
        ids = ids if isinstance(ids, slice) else np.atleast_1d(np.asarray(ids))
        fields = (f.name for f in dataclasses.fields(self))
        return EyeIdentities(**{k: getattr(self, k)[ids] for k in fields})


def _identity(index: int, seed: int) -> dict[str, np.ndarray]:
    """One identity's parameters, drawn by a generator seeded with (seed, index)."""
    rng = np.random.default_rng([seed, index, 14])
    u = lambda lo, hi: rng.uniform(lo, hi)
    half_width = u(16.0, 20.0)
    radius = half_width * u(0.66, 0.8)
    tone = u(0.0, 1.0)
    skin = (1 - tone) * _SKIN_LIGHT + tone * _SKIN_DARK
    freqs = rng.integers(10, 40, 3).astype(np.float32)
    fibres = np.stack([freqs, rng.uniform(0, 2 * np.pi, 3), rng.uniform(0.06, 0.16, 3)], -1)
    return dict(
        half_width=half_width,
        tilt=u(-2.0, 2.0),
        radius=radius,
        ball_dy=u(0.0, 1.5),
        iris_angle=np.deg2rad(u(28.0, 34.0)),
        pupil_angle=np.deg2rad(u(9.0, 14.0)),
        upper=radius * u(0.42, 0.58),
        lower=radius * u(0.36, 0.52),
        follow_upper=u(0.6, 0.9),
        follow_lower=u(0.15, 0.35),
        skew=u(-0.25, 0.25),
        crease=u(2.5, 5.0),
        lash=u(0.35, 0.75),
        shadow=u(0.25, 0.5),
        highlight=u(0.5, 0.9),
        light_elevation=np.deg2rad(u(30.0, 55.0)),
        light_x=u(-0.25, 0.25),
        gain=u(0.85, 1.1),
        skin=skin * rng.uniform(0.92, 1.08, 3),
        sclera=np.array([0.93, 0.9, 0.87]) * u(0.88, 1.04) * rng.uniform(0.97, 1.03, 3),
        iris=_IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))] * u(0.8, 1.25),
        fibres=fibres,
    )


def make_identities(ids, *, seed: int = 0) -> EyeIdentities:
    """Identities `ids` ([N] ints); identity i is the same eye on every machine and run."""
    rows = [_identity(int(i), seed) for i in np.atleast_1d(ids)]
    if not rows:
        raise ValueError("make_identities needs at least one identity.")
    return EyeIdentities(**{k: np.asarray([r[k] for r in rows], np.float32) for k in rows[0]})


# ----------------------------------------------------------------------------- camera


@dataclasses.dataclass(frozen=True)
class CameraJitter:
    """Similarity transforms eye -> image: p = centre + shift + scale * Rot(rotation) e.

    shift [N, 2] px, scale [N], rotation [N] radians.
    """

    shift: np.ndarray
    scale: np.ndarray
    rotation: np.ndarray


def no_jitter(num: int) -> CameraJitter:
    """The identity transform for N crops: the eye's centre at the crop's centre."""
    return CameraJitter(
        np.zeros((num, 2), np.float32), np.ones(num, np.float32), np.zeros(num, np.float32)
    )


def random_jitter(
    rng: np.random.Generator, num: int, *, max_shift: float = 1.5, max_scale: float = 0.08,
    max_rotation_deg: float = 4.0,
) -> CameraJitter:  # fmt: skip
    """Uniform shift (px), log-scale and rotation within the given bounds, for N crops."""
    return CameraJitter(
        rng.uniform(-max_shift, max_shift, (num, 2)).astype(np.float32),
        np.exp(rng.uniform(-max_scale, max_scale, num)).astype(np.float32),
        np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg, num)).astype(np.float32),
    )


def _to_image(points: np.ndarray, jitter: CameraJitter, size: tuple[int, int]) -> np.ndarray:
    """Eye coordinates [N, K, 2] -> image pixels [N, K, 2] through the jitter."""
    centre = np.array([(size[1] - 1) / 2.0, (size[0] - 1) / 2.0], np.float32)
    cos, sin = np.cos(jitter.rotation)[:, None], np.sin(jitter.rotation)[:, None]
    x, y = points[..., 0], points[..., 1]
    s = jitter.scale[:, None]
    rotated = np.stack([s * (cos * x - sin * y), s * (sin * x + cos * y)], -1)
    return rotated + centre + jitter.shift[:, None, :]


def _sample_positions(jitter: CameraJitter, size, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Eye coordinates (x, y) [N, H*f, W*f] of the f x f sub-pixel samples of each pixel."""
    height, width = size
    offsets = (np.arange(factor, dtype=np.float32) + 0.5) / factor - 0.5
    ys = (np.arange(height, dtype=np.float32)[:, None] + offsets).ravel() - (height - 1) / 2.0
    xs = (np.arange(width, dtype=np.float32)[:, None] + offsets).ravel() - (width - 1) / 2.0
    dx = xs[None, None, :] - jitter.shift[:, 0, None, None]
    dy = ys[None, :, None] - jitter.shift[:, 1, None, None]
    cos = (np.cos(jitter.rotation) / jitter.scale)[:, None, None]
    sin = (np.sin(jitter.rotation) / jitter.scale)[:, None, None]
    return cos * dx + sin * dy, -sin * dx + cos * dy


# ----------------------------------------------------------------------------- geometry


def gaze_vectors(yaw_deg, pitch_deg) -> np.ndarray:
    """Unit gaze directions [N, 3] (x right, y down, z toward the camera) from degrees."""
    yaw, pitch = (
        np.deg2rad(np.asarray(yaw_deg, np.float32)),
        np.deg2rad(np.asarray(pitch_deg, np.float32)),
    )
    return np.stack(
        [np.sin(yaw) * np.cos(pitch), -np.sin(pitch), np.cos(yaw) * np.cos(pitch)], -1
    ).astype(np.float32)


def _lids(eyes: EyeIdentities, gaze: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(h_up, h_low, upper skew) [N] at the gazes: the lids follow the eye."""
    lift = eyes.radius * -gaze[:, 1]  # R sin(pitch)
    h_up = np.maximum(eyes.upper + eyes.follow_upper * lift, 0.5)
    h_low = np.maximum(eyes.lower - eyes.follow_lower * lift, 0.5)
    return h_up, h_low, eyes.skew + 0.4 * gaze[:, 0]


def _bump(t: np.ndarray, skew: np.ndarray) -> np.ndarray:
    return (1.0 - t * t) * (1.0 + skew * t)


def _lid_curves(eyes, lids, x):
    """(t, y_upper, y_lower) at eye x positions (broadcast against [N, ...] parameters)."""
    h_up, h_low, skew = lids
    expand = (slice(None),) + (None,) * (x.ndim - 1)
    t = np.clip(x / eyes.half_width[expand], -1.0, 1.0)
    base = eyes.tilt[expand] * t
    upper = base - h_up[expand] * _bump(t, skew[expand])
    lower = base + h_low[expand] * _bump(t, eyes.skew[expand])
    return t, upper, lower


def eye_landmarks(
    eyes: EyeIdentities, yaw, pitch, *, jitter: CameraJitter | None = None,
    size: tuple[int, int] = (HEIGHT, WIDTH),
) -> np.ndarray:  # fmt: skip
    """The landmarks [N, 7, 2] that `render_eyes` returns with the same arguments, without rendering."""
    num = len(eyes)
    jitter = no_jitter(num) if jitter is None else jitter
    gaze = gaze_vectors(np.broadcast_to(yaw, (num,)), np.broadcast_to(pitch, (num,)))
    return _to_image(_landmarks_eye(eyes, gaze), jitter, size)


def _landmarks_eye(eyes: EyeIdentities, gaze: np.ndarray) -> np.ndarray:
    """The 7 landmarks [N, 7, 2] in eye coordinates (order: module docstring)."""
    a = eyes.half_width[:, None]
    x = a * np.array([-1.0, -_LID_T, _LID_T, 1.0, _LID_T, -_LID_T], np.float32)
    _, upper, lower = _lid_curves(eyes, _lids(eyes, gaze), x)
    y = np.concatenate([upper[:, :3], lower[:, 3:]], axis=1)
    y[:, 3] = upper[:, 3]  # The corners are on both curves.
    limbus = eyes.radius * np.cos(eyes.iris_angle)  # The iris boundary's plane, from the centre.
    iris = np.stack([limbus * gaze[:, 0], eyes.ball_dy + limbus * gaze[:, 1]], -1)
    return np.concatenate([np.stack([x, y], -1), iris[:, None]], axis=1).astype(np.float32)


# ----------------------------------------------------------------------------- shading


def _expand(values: np.ndarray) -> np.ndarray:
    """[N] -> [N, 1, 1] (broadcast against sample grids)."""
    return values[:, None, None]


def _dot(a, b):
    """Dot product of two 3-vectors given as lists of arrays (or numbers)."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _sphere_normals(eyes: EyeIdentities, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The eyeball's unit normals (3 x [N, h, w]) seen at each sample (its rim beyond the disc)."""
    r = _expand(eyes.radius)
    nx, ny = x / r, (y - _expand(eyes.ball_dy)) / r
    scale = 1.0 / np.maximum(np.sqrt(nx * nx + ny * ny), 1.0)
    nx, ny = nx * scale, ny * scale
    return [nx, ny, np.sqrt(np.maximum(1.0 - nx * nx - ny * ny, 0.0))]


def _iris_texture(eyes: EyeIdentities, gaze: np.ndarray, n: list, theta: np.ndarray):
    """Iris colour [N, h, w, 3]: radial fibres about the gaze, a collarette, a dark limbus."""
    g = [_expand(gaze[:, i]) for i in range(3)]
    norm = np.sqrt(g[0] * g[0] + g[2] * g[2]) + 1e-6
    e1 = [g[2] / norm, 0.0, -g[0] / norm]  # Horizontal, perpendicular to g.
    e2 = [g[1] * e1[2] - g[2] * e1[1], g[2] * e1[0] - g[0] * e1[2], g[0] * e1[1] - g[1] * e1[0]]
    phi = np.arctan2(_dot(n, e2), _dot(n, e1))
    rho = theta / _expand(eyes.iris_angle)
    tex = 1.0
    for k in range(eyes.fibres.shape[1]):
        freq, phase, amp = (_expand(eyes.fibres[:, k, i]) for i in range(3))
        tex = tex + amp * np.sin(freq * phi + phase + 3.0 * rho)
    ring = 1.0 - 0.55 * np.clip((rho - 0.78) / 0.22, 0.0, 1.0)
    collarette = 1.0 + 0.2 * np.exp(-np.square((rho - 0.45) / 0.08))
    return (tex * ring * collarette)[..., None] * eyes.iris[:, None, None, :]


def _light(eyes: EyeIdentities) -> np.ndarray:
    """Unit light directions [N, 3] from above (y is down) and in front."""
    el = eyes.light_elevation
    light = np.stack([eyes.light_x, -np.sin(el), np.cos(el)], -1)
    return light / np.linalg.norm(light, axis=-1, keepdims=True)


def _eyeball(eyes: EyeIdentities, gaze, x, y, upper, lower):
    """(colour [N, h, w, 3], iris coverage, pupil coverage [N, h, w]) of the eyeball."""
    n = _sphere_normals(eyes, x, y)
    cos_t = _dot(n, [_expand(gaze[:, i]) for i in range(3)])
    theta = np.arccos(np.clip(cos_t, -1.0, 1.0))
    soft = 0.6 / _expand(eyes.radius)  # ~0.6 px of limbus blur, in radians.
    iris = np.clip((_expand(eyes.iris_angle) - theta) / soft + 0.5, 0.0, 1.0)
    pupil = np.clip((_expand(eyes.pupil_angle) - theta) / soft + 0.5, 0.0, 1.0)
    base = eyes.sclera[:, None, None, :] * (1 - iris[..., None])
    base = base + _iris_texture(eyes, gaze, n, theta) * (iris - pupil)[..., None]
    base = base + 0.03 * pupil[..., None]
    light = _light(eyes)
    diffuse = 0.35 + 0.65 * np.clip(_dot(n, [_expand(light[:, i]) for i in range(3)]), 0, 1)
    shadow = 1.0 - _expand(eyes.shadow) * np.exp(-np.maximum(y - upper, 0.0) / 2.0)
    shadow = shadow * (1.0 - 0.15 * np.exp(-np.maximum(lower - y, 0.0) / 1.5))
    half = light + np.array([0.0, 0.0, 1.0], np.float32)
    half = half / np.linalg.norm(half, axis=-1, keepdims=True)
    r = _expand(eyes.radius)
    dist2 = np.square(x - r * _expand(half[:, 0])) + np.square(
        y - _expand(eyes.ball_dy) - r * _expand(half[:, 1])
    )
    spec = _expand(eyes.highlight) * np.exp(-dist2 / 2.0) * (0.35 + 0.65 * iris)
    return base * (diffuse * shadow)[..., None] + spec[..., None], iris, pupil


def _skin(eyes: EyeIdentities, lids, x, y, t, upper, lower) -> np.ndarray:
    """Skin colour [N, h, w, 3]: lit from above, lid crease, lash line, lower lid margin."""
    inside = np.clip(1.0 - np.square(x / _expand(eyes.half_width)), 0.0, 1.0)
    shade = np.clip(0.95 - 0.012 * y, 0.6, 1.15)
    crease = _expand(eyes.tilt) * t - (_expand(lids[0]) + _expand(eyes.crease)) * _bump(
        t, _expand(lids[2])
    )
    shade = shade * (1.0 - 0.3 * inside * np.exp(-np.square(y - crease)))
    lash = np.exp(-np.maximum(upper - y, 0.0) / 1.2) * (y <= upper)
    shade = shade * (1.0 - _expand(eyes.lash) * np.sqrt(inside) * lash)
    margin = np.exp(-np.maximum(y - lower, 0.0)) * (y >= lower)
    shade = shade * (1.0 - 0.15 * inside * margin)
    return shade[..., None] * eyes.skin[:, None, None, :]


def _box_filter(x: np.ndarray, factor: int) -> np.ndarray:
    """[N, H*f, W*f, ...] -> [N, H, W, ...]: the mean of each f x f block."""
    n, hf, wf = x.shape[:3]
    blocks = x.reshape(n, hf // factor, factor, wf // factor, factor, *x.shape[3:])
    return blocks.mean(axis=(2, 4))


def render_eyes(
    eyes: EyeIdentities, yaw, pitch, *, jitter: CameraJitter | None = None,
    size: tuple[int, int] = (HEIGHT, WIDTH), supersample: int = 2, return_masks: bool = False,
):  # fmt: skip
    """Draws eyes looking at (yaw, pitch) (degrees, [N] or scalars) into crops.

    Args:
      eyes: N identities (`make_identities`).
      yaw, pitch: gaze angles in degrees; positive looks right and up.
      jitter: the camera's similarity transforms (`random_jitter`); None: none.
      size: (height, width) of the crops.
      supersample: samples per pixel along each axis (box filtered).
      return_masks: also return the coverage of the eye opening, the visible
        iris and the visible pupil ([N, H, W] each, in [0, 1]).

    Returns:
      (images [N, H, W, 3] float32 in [0, 1], landmarks [N, 7, 2] (x, y) in
      pixels), plus a dict of masks with `return_masks`.
    """
    num = len(eyes)
    jitter = no_jitter(num) if jitter is None else jitter
    gaze = gaze_vectors(np.broadcast_to(yaw, (num,)), np.broadcast_to(pitch, (num,)))
    x, y = _sample_positions(jitter, size, supersample)
    lids = _lids(eyes, gaze)
    t, upper, lower = _lid_curves(eyes, lids, x)
    opening = ((y > upper) & (y < lower)).astype(np.float32)
    ball, iris, pupil = _eyeball(eyes, gaze, x, y, upper, lower)
    skin = _skin(eyes, lids, x, y, t, upper, lower)
    image = opening[..., None] * ball + (1.0 - opening[..., None]) * skin
    image = np.clip(_box_filter(image * eyes.gain[:, None, None, None], supersample), 0.0, 1.0)
    landmarks = eye_landmarks(eyes, yaw, pitch, jitter=jitter, size=size)
    if not return_masks:
        return image.astype(np.float32), landmarks
    masks = {
        "opening": _box_filter(opening, supersample),
        "iris": _box_filter(opening * iris, supersample),
        "pupil": _box_filter(opening * pupil, supersample),
    }
    return image.astype(np.float32), landmarks, masks


# ----------------------------------------------------------------------------- pairs


def angle_grid(max_angle: float, step: float, *, offset: float = 0.0) -> np.ndarray:
    """Angles offset + k * step (k integer) within [-max_angle, max_angle], ascending."""
    if step <= 0 or max_angle < 0:
        raise ValueError(f"Need step > 0 and max_angle >= 0, got {step} and {max_angle}.")
    first = offset - step * np.floor((offset + max_angle) / step)
    grid = np.arange(first, max_angle + 1e-6, step)
    if grid.size == 0:
        raise ValueError(f"No angle offset {offset} + k * {step} lies within +-{max_angle}.")
    return grid.astype(np.float32)


def sample_redirections(
    rng: np.random.Generator, num: int, grid: np.ndarray, *, max_redirect: float
) -> tuple[np.ndarray, np.ndarray]:
    """(source, target) angles [num] on `grid`, uniformly, with |target - source| <= max_redirect.

    The source is uniform over the grid; the target uniform over the grid
    values within `max_redirect` of it (the source itself included).
    """
    source = rng.integers(0, len(grid), num)
    lo = np.searchsorted(grid, grid[source] - max_redirect - 1e-4)
    hi = np.searchsorted(grid, grid[source] + max_redirect + 1e-4)  # Exclusive.
    target = lo + np.floor(rng.uniform(size=num) * (hi - lo)).astype(int)
    return grid[source], grid[np.minimum(target, hi - 1)]


def render_pairs(
    eyes: EyeIdentities, source: np.ndarray, target: np.ndarray, jitter: CameraJitter, *,
    size: tuple[int, int] = (HEIGHT, WIDTH), supersample: int = 2,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Training pairs: each eye drawn at the source and the target gaze, one camera for both.

    Args:
      eyes: N identities.
      source, target: [N, 2] gazes (yaw, pitch) in degrees.
      jitter: N camera transforms (the same for both images of a pair).

    Returns:
      {"input", "target": [N, H, W, 3], "landmarks": [N, 7, 2] of the input,
      "angle": [N, 2] the redirection (target - source) in degrees}.
    """
    options = dict(jitter=jitter, size=size, supersample=supersample)
    image, landmarks = render_eyes(eyes, source[:, 0], source[:, 1], **options)
    goal, _ = render_eyes(eyes, target[:, 0], target[:, 1], **options)
    angle = (np.asarray(target) - np.asarray(source)).astype(np.float32)
    return {"input": image, "target": goal, "landmarks": landmarks, "angle": angle}
