"""Print-and-photograph simulation outside JAX (Pillow + NumPy), for tests and benchmarks.

Independent of the differentiable renderer the markers are trained with
(`neural_synth/ops/render.py`): a printed marker is pasted into a real photo
at a random size, position, rotation and perspective, then the photo gets
lighting changes (brightness, contrast, an uneven illumination gradient),
Gaussian blur, Gaussian noise and a real JPEG round trip, each drawn from the
ranges of a named severity (`SEVERITIES`). The photo's true marker corners
come back with it, so a decoder's localization can be scored.

Corners are the marker's outer corners in its own order (top-left,
top-right, bottom-right, bottom-left of the printed image) in pixel
coordinates of the photo whose pixel centres sit at integers (pixel [i, j]
is the point x=j, y=i, as in `neural_synth/ops/sampler.py`).
"""

import dataclasses
import io as std_io
import math

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from neural_synth import io

# Photos the markers' training backgrounds (data/backgrounds.py) never include.
HELD_OUT_PHOTOS = ("retina", "cell", "colorwheel", "text", "logo", "horse", "microaneurysms")


@dataclasses.dataclass(frozen=True)
class Severity:
    """Ranges of one severity; each photo draws uniformly within them.

    Attributes:
      size: (min, max) marker side as a fraction of the photo's shorter side.
      max_rotation: degrees, either way (reduced where the marker would not fit).
      perspective: corner jitter as a fraction of the marker side.
      brightness, contrast: Pillow enhancement factors in 1 +- this.
      gradient: peak change of an illumination ramp across the photo (+- this).
      max_blur: Gaussian blur sigma in pixels, drawn from [0, max_blur].
      noise: Gaussian noise sigma on [0, 1] values.
      jpeg: (min, max) JPEG quality.
    """

    size: tuple[float, float]
    max_rotation: float
    perspective: float
    brightness: float
    contrast: float
    gradient: float
    max_blur: float
    noise: float
    jpeg: tuple[int, int]


SEVERITIES = {
    "mild": Severity((0.5, 0.8), 20.0, 0.04, 0.1, 0.1, 0.05, 0.5, 0.01, (70, 80)),
    # The moderate level, with rotation up to 45 degrees added.
    "moderate": Severity((0.35, 0.6), 45.0, 0.08, 0.25, 0.25, 0.1, 1.0, 0.03, (50, 50)),
    "harsh": Severity((0.25, 0.5), 45.0, 0.12, 0.35, 0.35, 0.2, 1.5, 0.05, (30, 40)),
}
PHOTO_SIDE = 256


def photo_bank(names=HELD_OUT_PHOTOS, *, side: int = PHOTO_SIDE) -> list[np.ndarray]:
    """The named scikit-image samples as float32 [H, W, 3], shorter side at least `side`."""
    out = []
    for name in names:
        image = io.sample_image(name)
        scale = side / min(image.shape[:2])
        if scale > 1.0:  # Small samples are enlarged so any side x side crop fits.
            height, width = image.shape[:2]
            image = io.resize(image, size=(math.ceil(height * scale), math.ceil(width * scale)))
        out.append(image)
    return out


def _random_photo(rng: np.random.Generator, bank: list[np.ndarray], side: int) -> Image.Image:
    """A random side x side view of a random bank photo (random zoom, crop and flip)."""
    image = bank[rng.integers(len(bank))]
    height, width = image.shape[:2]
    crop = int(rng.uniform(side, min(height, width) + 1))
    y, x = rng.integers(height - crop + 1), rng.integers(width - crop + 1)
    view = Image.fromarray(io.to_uint8(image[y : y + crop, x : x + crop]))
    view = view.resize((side, side), Image.Resampling.LANCZOS)
    return view.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else view


def marker_corners(
    rng: np.random.Generator, severity: Severity, side: int, size: float | None = None
) -> np.ndarray:
    """Random outer corners [4, 2] (TL, TR, BR, BL) of a marker inside a side x side photo."""
    fraction = rng.uniform(*severity.size) if size is None else size
    length = fraction * side
    # Largest rotation whose rotated, jittered square still fits in the photo.
    fit = (0.98 * side / length) / (1.0 + 2.0 * severity.perspective)
    limit = math.radians(severity.max_rotation)
    if fit < math.sqrt(2.0):
        limit = min(limit, max(0.0, math.asin(min(1.0, fit / math.sqrt(2.0))) - math.pi / 4))
    angle = rng.uniform(-limit, limit)
    square = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]) * length
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    quad = square @ rotation.T + rng.uniform(-1, 1, (4, 2)) * severity.perspective * length
    low, high = quad.min(axis=0), quad.max(axis=0)
    span = high - low
    scale = min(1.0, 0.98 * side / float(span.max()))  # Jitter never pushes it out.
    quad, low, span = quad * scale, low * scale, span * scale
    origin = rng.uniform(0.0, np.maximum(side - 1.0 - span, 0.0)) - 0.5
    return (quad - low + origin).astype(np.float32)


def _perspective_coefficients(src: np.ndarray, dst: np.ndarray) -> tuple[float, ...]:
    """Pillow PERSPECTIVE data mapping output points `dst` [4, 2] to input points `src`."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs.extend([u, v])
    return tuple(np.linalg.solve(np.array(rows, np.float64), np.array(rhs, np.float64)))


def paste(photo: Image.Image, marker: np.ndarray, corners: np.ndarray) -> Image.Image:
    """Warps the marker image [S, S, 3] onto `corners` [4, 2] of the photo (anti-aliased)."""
    span = corners.max(axis=0) - corners.min(axis=0)
    target = max(8, int(math.ceil(float(span.max()))))
    printed = Image.fromarray(io.to_uint8(marker))
    # Pre-shrinking with Lanczos keeps a minified marker free of aliasing.
    if target < printed.width:
        printed = printed.resize((target, target), Image.Resampling.LANCZOS)
    else:
        printed = printed.resize((target, target), Image.Resampling.NEAREST)
    src = np.array([[0, 0], [target, 0], [target, target], [0, target]], np.float64)
    coefficients = _perspective_coefficients(src, corners.astype(np.float64) + 0.5)
    size = photo.size
    warped = printed.transform(size, Image.Transform.PERSPECTIVE, coefficients, Image.BILINEAR)
    mask = Image.new("L", printed.size, 255).transform(
        size, Image.Transform.PERSPECTIVE, coefficients, Image.BILINEAR
    )
    return Image.composite(warped, photo, mask)


def _lighting(image: Image.Image, rng: np.random.Generator, severity: Severity) -> np.ndarray:
    image = ImageEnhance.Brightness(image).enhance(1.0 + rng.uniform(-1, 1) * severity.brightness)
    image = ImageEnhance.Contrast(image).enhance(1.0 + rng.uniform(-1, 1) * severity.contrast)
    pixels = np.asarray(image, np.float32) / 255.0
    height, width = pixels.shape[:2]
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width] / max(height, width) - 0.5
    ramp = (np.cos(angle) * xs + np.sin(angle) * ys) * 2.0  # in [-1, 1] roughly
    return pixels * (1.0 + rng.uniform(-1, 1) * severity.gradient * ramp)[..., None]


def _camera(pixels: np.ndarray, rng: np.random.Generator, severity: Severity) -> np.ndarray:
    """Blur, sensor noise and a real JPEG round trip."""
    image = Image.fromarray(io.to_uint8(pixels))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, severity.max_blur)))
    noisy = np.asarray(image, np.float32) / 255.0
    noisy = noisy + rng.normal(0.0, severity.noise, noisy.shape).astype(np.float32)
    buffer = std_io.BytesIO()
    quality = int(rng.integers(severity.jpeg[0], severity.jpeg[1] + 1))
    Image.fromarray(io.to_uint8(noisy)).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"), np.float32) / 255.0


def simulate(
    rng: np.random.Generator,
    marker: np.ndarray | None,
    bank: list[np.ndarray],
    *,
    severity: str | Severity = "moderate",
    size: float | None = None,
    side: int = PHOTO_SIDE,
) -> tuple[np.ndarray, np.ndarray | None]:
    """One simulated photo of a printed marker.

    Args:
      rng: NumPy generator (every random choice comes from it).
      marker: the marker image [S, S, 3] in [0, 1] (printed at any resolution),
        or None for a photo without a marker.
      bank: photos to paste on (`photo_bank()`).
      severity: a name in SEVERITIES or a Severity.
      size: marker side as a fraction of the photo side, overriding the
        severity's size range.
      side: the photo's side in pixels.

    Returns:
      (photo [side, side, 3] float32 in [0, 1], corners [4, 2] or None).
    """
    level = SEVERITIES[severity] if isinstance(severity, str) else severity
    if size is not None and not 0.0 < size <= 1.0:
        raise ValueError(f"size must be a fraction of the photo side in (0, 1], got {size}.")
    photo = _random_photo(rng, bank, side)
    corners = None
    if marker is not None:
        corners = marker_corners(rng, level, side, size)
        photo = paste(photo, marker, corners)
    return _camera(_lighting(photo, rng, level), rng, level), corners
