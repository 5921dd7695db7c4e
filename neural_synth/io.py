"""Reading and writing images and image grids (NumPy + Pillow, host side only).

Every function returns or accepts images as float32 arrays [H, W, 3] in [0, 1],
the library's public convention (batches add a leading N).

Loading (`load_image`) accepts anything Pillow decodes and normalises it:

- EXIF orientation is applied, so the array is the image as a viewer shows it.
- Grayscale (L, 1-bit, 16-bit I;16 / I;16B / I) is expanded to 3 equal channels.
  16-bit data is divided by 65535 (32-bit 'I' data is assumed to be 16-bit and
  clipped); 'F' (float) data is clipped to [0, 1]. Pillow reduces 16-bit RGB PNGs
  to 8 bits, so those keep 8-bit precision.
- Transparency (RGBA, LA, PA, P with a transparent index) is composited over
  white by default (`alpha='white'`); `alpha='black'` composites over black and
  `alpha='drop'` ignores the alpha channel. Compositing happens in float.
- CMYK (including Adobe-inverted JPEGs), YCbCr, ... go through Pillow's RGB
  conversion. Multi-frame files (GIF, TIFF) use their first frame.
- The whole file is decoded before anything is returned, so a truncated file
  fails here (Pillow's `LOAD_TRUNCATED_IMAGES` is left False).

Resizing (`resize`, and `max_side` / `size` on the loaders) is Lanczos in float32
per channel (Pillow's mode 'F' resampler, which widens the kernel when
downscaling, i.e. it antialiases), then clipped to [0, 1]; no 8-bit rounding
happens in between. `size` is (height, width), like array shapes; `max_side`
only ever shrinks.

Every problem with an input file raises `ImageError` (a ValueError) whose
one-line message names the path and the fix, so scripts can print it as is.
"""

import math
import os
import pathlib
import secrets
import struct
import threading
import warnings
import zlib
from collections.abc import Callable, Sequence
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

# Pillow's own default limit (`Image.MAX_IMAGE_PIXELS`, 2**30 // 12, ~ 9459 x 9459).
# Loading peaks at 22-27 bytes per pixel (decoded 8-bit data, float32 RGB and
# temporaries; measured on 16 MP grayscale and RGB PNGs), so an image at the limit
# takes up to ~2.4 GB, a 20000 x 20000 one 8.8-11 GB. Checked from the header,
# before anything is decoded.
DEFAULT_MAX_PIXELS = 89_478_485
SAMPLE_PREFIX = "skimage:"
ALPHA_MODES = ("white", "black", "drop")
# scikit-image sample images that ship inside the package (no download needed).
SAMPLE_NAMES = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "cell",
    "chelsea",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)
_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
# Errors Pillow (and its codecs) raise for files it cannot decode.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
)
_PILLOW_LIMIT_LOCK = threading.Lock()


class ImageError(ValueError):
    """An image file or image name that cannot be used; the message names the fix."""


# ----------------------------------------------------------------------------- loading


def load_image(
    path: str | os.PathLike,
    *,
    max_side: int | None = None,
    size: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    alpha: str = "white",
) -> np.ndarray:
    """Reads an image file as float32 [H, W, 3] in [0, 1] (see the module docstring).

    Args:
      path: any file Pillow can decode.
      max_side: if set, shrink (Lanczos) so the longer side is at most this.
      size: if set, resize to exactly (height, width). Exclusive with `max_side`.
      max_pixels: refuse images with more pixels than this (decompression
        bombs), checked from the header before decoding.
      alpha: 'white' or 'black' (composite over that colour) or 'drop'.

    Raises:
      ImageError: missing, unreadable, truncated, unsupported or too large file.
    """
    _check_resize_args(max_side, size)
    if alpha not in ALPHA_MODES:
        raise ValueError(f"alpha must be one of {ALPHA_MODES}, got {alpha!r}.")
    if not isinstance(max_pixels, int | np.integer) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}.")
    path = pathlib.Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ImageError(f"Image file {str(path)!r} {what}; check the path.")
    if path.stat().st_size == 0:
        raise ImageError(f"Image file {str(path)!r} is empty (0 bytes); re-export or re-copy it.")
    try:
        # Pillow warns about damaged metadata (e.g. corrupt EXIF, then ignored) on
        # stderr; a command's output should hold only its own line.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="PIL")
            with _open_checked(path, max_pixels) as im:
                im.load()  # Full decode now: truncated data fails here, not later.
                image = _to_float_rgb(ImageOps.exif_transpose(im), alpha=alpha)
    except ImageError:
        raise
    except Image.UnidentifiedImageError as e:
        raise ImageError(
            f"Cannot read image {str(path)!r}: not an image file in a format Pillow knows; "
            "check the path, or re-export it as PNG or JPEG."
        ) from e
    except _DECODE_ERRORS as e:
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise ImageError(
            f"Cannot read image {str(path)!r} ({reason}): the file is truncated or damaged; "
            "re-export it as PNG or JPEG."
        ) from e
    return resize(image, max_side=max_side, size=size)


def _open_checked(path: pathlib.Path, max_pixels: int) -> Image.Image:
    """Opens (header only) and enforces our own pixel limit instead of Pillow's global one."""
    # Pillow's limit is a module global (~179 M pixels); ours is per call, so its
    # check is off while the header is parsed. Nothing is decoded before ours runs.
    with _PILLOW_LIMIT_LOCK:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            im = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    width, height = im.size
    if width * height > max_pixels:
        im.close()
        raise ImageError(
            f"Image {str(path)!r} is {width}x{height} = {width * height} pixels, more than "
            f"max_pixels={max_pixels} (a decompression bomb, or a very large photo); shrink "
            "the file or raise max_pixels."
        )
    return im


def _to_float_rgb(im: Image.Image, *, alpha: str) -> np.ndarray:
    """Decoded Pillow image of any mode -> float32 [H, W, 3] in [0, 1]."""
    if im.mode in _SIXTEEN_BIT_MODES:
        gray = np.asarray(im).astype(np.float32) / 65535.0
        return _gray_to_rgb(np.clip(gray, 0.0, 1.0))
    if im.mode == "F":
        return _gray_to_rgb(np.clip(np.asarray(im, np.float32), 0.0, 1.0))
    has_alpha = im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info
    if im.mode in ("1", "L") and not has_alpha:
        return _gray_to_rgb(np.asarray(im.convert("L"), np.float32) / 255.0)
    if not has_alpha:
        rgb = np.asarray(im.convert("RGB"), np.float32)
        rgb /= 255.0  # In place: one float copy of a large image, not two.
        return rgb
    rgba = np.asarray(im.convert("RGBA"), np.float32) / 255.0  # [H, W, 4]
    rgb, opacity = rgba[..., :3], rgba[..., 3:]
    if alpha == "drop":
        return np.ascontiguousarray(rgb)
    background = 1.0 if alpha == "white" else 0.0
    return rgb * opacity + background * (1.0 - opacity)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray.astype(np.float32)[..., None], 3, axis=-1)


def sample_image(name: str, *, max_side: int | None = None) -> np.ndarray:
    """A bundled scikit-image sample (`skimage.data.<name>()`) as float32 [H, W, 3] in [0, 1].

    Grayscale samples are expanded to 3 channels, RGBA ones composited over
    white. Only samples shipped inside scikit-image are offered (`SAMPLE_NAMES`),
    so this never downloads anything.
    """
    if name not in SAMPLE_NAMES:
        raise ImageError(f"Unknown sample image {name!r}; valid names: {', '.join(SAMPLE_NAMES)}.")
    from skimage import data  # Lazy: scikit-image is slow to import.

    array = np.asarray(getattr(data, name)())
    return resize(_array_to_float_rgb(array), max_side=max_side)


def _array_to_float_rgb(array: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / bool / float [H, W(, C)] -> float32 [H, W, 3] in [0, 1]."""
    if array.dtype == np.bool_:
        x = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.integer):
        x = array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    else:
        x = np.clip(array.astype(np.float32), 0.0, 1.0)
    if x.ndim == 2:
        return _gray_to_rgb(x)
    if x.shape[-1] == 4:
        return x[..., :3] * x[..., 3:] + (1.0 - x[..., 3:])
    return x[..., :3]


def load_image_or_sample(
    spec: str | os.PathLike,
    *,
    max_side: int | None = None,
    size: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    alpha: str = "white",
) -> np.ndarray:
    """`skimage:NAME` -> `sample_image(NAME)`, anything else -> `load_image(spec)`.

    Returns float32 [H, W, 3] in [0, 1], resized like `load_image`. This is how
    every script reads its image arguments.
    """
    text = os.fspath(spec)
    if text.startswith(SAMPLE_PREFIX):
        _check_resize_args(max_side, size)
        image = sample_image(text[len(SAMPLE_PREFIX) :])
        return resize(image, max_side=max_side, size=size)
    return load_image(spec, max_side=max_side, size=size, max_pixels=max_pixels, alpha=alpha)


def check_min_side(image: np.ndarray, min_side: int, *, name: str | os.PathLike) -> None:
    """Raises `ImageError` naming the image `name` when a side of `image` [H, W, C] is
    below `min_side` (for networks that need a minimum input size)."""
    height, width = np.shape(image)[:2]
    if min(height, width) < min_side:
        raise ImageError(
            f"Image {os.fspath(name)!r} is {width}x{height} pixels, too small: this needs at "
            f"least {min_side} px per side; use a larger image."
        )


# ----------------------------------------------------------------------------- resizing


def _check_resize_args(max_side: int | None, size: tuple[int, int] | None) -> None:
    if max_side is not None and size is not None:
        raise ValueError("Give either max_side or size, not both.")
    if max_side is not None and (not isinstance(max_side, int | np.integer) or max_side < 1):
        raise ValueError(f"max_side must be a positive integer, got {max_side!r}.")
    if size is not None:
        ok = len(size) == 2 and all(isinstance(s, int | np.integer) and s >= 1 for s in size)
        if not ok:
            raise ValueError(f"size must be (height, width) positive integers, got {size!r}.")


def target_size(
    height: int, width: int, *, max_side: int | None = None, size: tuple[int, int] | None = None
) -> tuple[int, int]:
    """The (height, width) that `resize` produces for an input of (height, width)."""
    _check_resize_args(max_side, size)
    if size is not None:
        return int(size[0]), int(size[1])
    if max_side is None or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize(
    image: np.ndarray, *, max_side: int | None = None, size: tuple[int, int] | None = None
) -> np.ndarray:
    """Resizes float [H, W, C] with float32 Lanczos (antialiased), clipped to [0, 1].

    `max_side` shrinks so the longer side is at most that (never enlarges);
    `size` is the exact (height, width). With neither, returns the image as
    float32 unchanged.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3:
        raise ValueError(f"resize expects an image [H, W, C], got shape {image.shape}.")
    height, width = image.shape[:2]
    new_h, new_w = target_size(height, width, max_side=max_side, size=size)
    if (new_h, new_w) == (height, width):
        return image
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., c])).resize(
                (new_w, new_h), Image.Resampling.LANCZOS
            )
        )
        for c in range(image.shape[-1])
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0)


# ----------------------------------------------------------------------------- saving


def to_uint8(image) -> np.ndarray:
    """[H, W], [H, W, 1] or [H, W, 3] float in [0, 1] (clipped) or uint8 -> uint8 [H, W(, 3)]."""
    x = np.asarray(image)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if not (x.ndim == 2 or (x.ndim == 3 and x.shape[-1] == 3)):
        raise ValueError(f"Expected an image [H, W], [H, W, 1] or [H, W, 3], got {x.shape}.")
    if x.dtype == np.uint8:
        return x
    if not (np.issubdtype(x.dtype, np.floating) or x.dtype == np.bool_):
        raise ValueError(f"Expected float images in [0, 1] or uint8, got dtype {x.dtype}.")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError("Image contains NaN or Inf values; cannot save it.")
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def check_save_path(path: str | os.PathLike) -> pathlib.Path:
    """Raises ValueError unless `save_image` can write `path`; call it before slow work.

    Checks the extension (.png, .jpg, .jpeg), that `path` is not a directory and
    that no parent of it is an existing file. Returns `path` as a Path.
    """
    path = pathlib.Path(path)
    if path.suffix.lower() not in _SAVE_FORMATS:
        raise ValueError(
            f"Cannot save {str(path)!r}: unknown extension {path.suffix!r}; use .png, .jpg or .jpeg."
        )
    if path.is_dir():
        raise ValueError(f"Cannot save {str(path)!r}: it is a directory; give a file name.")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(
                    f"Cannot save {str(path)!r}: {str(parent)!r} is a file, not a directory; "
                    "choose another output path."
                )
            break
    return path


def write_atomically(path: str | os.PathLike, write_fn: Callable[[BinaryIO], object]) -> None:
    """Calls `write_fn(file)` on a temporary file beside `path`, then renames it to `path`.

    Readers never see half a file, and a failure (an exception, a kill) leaves any
    existing `path` untouched; the temporary file is removed on exceptions. The
    parent folder must exist.
    """
    path = pathlib.Path(path)
    # A unique name in the same folder (same file system, so the rename is atomic);
    # open() rather than mkstemp so the file gets the umask's permissions.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as f:
            write_fn(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_image(path: str | os.PathLike, image, *, quality: int = 95) -> pathlib.Path:
    """Writes an image as PNG or JPEG (chosen by extension); returns the path.

    `image` is [H, W], [H, W, 1] or [H, W, 3], float in [0, 1] (clipped, rounded
    to 8 bits) or uint8; NumPy or JAX arrays. Parent folders are created. The
    file is written atomically (`write_atomically`): readers never see half a
    file and a failure leaves an existing file untouched. JPEGs use `quality`
    and no chroma subsampling.
    """
    path = check_save_path(path)
    fmt = _SAVE_FORMATS[path.suffix.lower()]
    pil = Image.fromarray(to_uint8(image))
    options = dict(quality=int(quality), subsampling=0) if fmt == "JPEG" else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda f: pil.save(f, format=fmt, **options))
    return path


# ----------------------------------------------------------------------------- grids


def make_grid(
    images, *, ncols: int | None = None, padding: int = 2, pad_value: float = 1.0
) -> np.ndarray:
    """Tiles images [N, H, W, C] (C = 1 or 3) into one float32 image [H', W', 3].

    Row-major layout with `ncols` columns (default ceil(sqrt(N))) and
    ceil(N / ncols) rows; `padding` pixels of `pad_value` separate the tiles
    and surround the grid, so H' = rows * (H + padding) + padding and likewise
    W'. Empty cells are `pad_value`. uint8 inputs are scaled to [0, 1].
    """
    x = _batch_to_float(images)
    num, height, width, _ = x.shape
    if ncols is None:
        ncols = math.ceil(math.sqrt(num))
    if ncols < 1 or padding < 0:
        raise ValueError(f"Need ncols >= 1 and padding >= 0, got {ncols} and {padding}.")
    ncols = min(ncols, num)
    nrows = math.ceil(num / ncols)
    step_h, step_w = height + padding, width + padding
    grid = np.full((nrows * step_h + padding, ncols * step_w + padding, 3), pad_value, np.float32)
    for i in range(num):
        top, left = padding + (i // ncols) * step_h, padding + (i % ncols) * step_w
        grid[top : top + height, left : left + width] = x[i]
    return grid


def _batch_to_float(images) -> np.ndarray:
    """[N, H, W, C] (C in 1, 3) float or uint8 -> float32 [N, H, W, 3]."""
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or x.shape[0] < 1:
        raise ValueError(f"Expected images [N, H, W, C] with N >= 1, C = 1 or 3, got {x.shape}.")
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def save_grid(
    path: str | os.PathLike,
    images: Sequence[np.ndarray] | np.ndarray,
    *,
    ncols: int | None = None,
    padding: int = 2,
    pad_value: float = 1.0,
    quality: int = 95,
) -> pathlib.Path:
    """`save_image(path, make_grid(images, ...))`; images [N, H, W, C]."""
    grid = make_grid(images, ncols=ncols, padding=padding, pad_value=pad_value)
    return save_image(path, grid, quality=quality)


def check_gif_path(path: str | os.PathLike) -> pathlib.Path:
    """Raises ValueError unless `save_gif` can write `path` (a .gif, not a folder); call it early."""
    path = pathlib.Path(path)
    if path.suffix.lower() != ".gif":
        raise ValueError(f"Cannot save {str(path)!r} as an animation: use a .gif file name.")
    if path.is_dir():
        raise ValueError(f"Cannot save {str(path)!r}: it is a directory; give a file name.")
    return path


def save_gif(path: str | os.PathLike, frames, *, duration_ms: int = 80) -> pathlib.Path:
    """Writes frames [N, H, W, 3] (float in [0, 1] or uint8) as a looping animated GIF.

    Written atomically (`write_atomically`); parent folders are created.
    """
    path = check_gif_path(path)
    images = [Image.fromarray(to_uint8(f)) for f in frames]
    if not images:
        raise ValueError("save_gif needs at least one frame.")
    path.parent.mkdir(parents=True, exist_ok=True)
    options = dict(save_all=True, append_images=images[1:], duration=int(duration_ms), loop=0)
    write_atomically(path, lambda f: images[0].save(f, format="GIF", **options))
    return path
