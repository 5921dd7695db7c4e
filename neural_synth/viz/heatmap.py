"""Turning attribution maps and gradients into pictures (NumPy, host side).

- `normalize`: a map [H, W] to [0, 1] by its `percentile` (robust to the few
  extreme pixels that gradient maps have).
- `colorize`: [H, W] in [0, 1] -> RGB with a perceptually ordered colormap
  (black - purple - orange - yellow, close to matplotlib's 'inferno'; no
  matplotlib needed).
- `overlay`: a heat map blended over the image, weighted by the map itself, so
  cold regions show the photo.
- `signed_image`: signed RGB gradients (guided backprop, deconvnet) as an
  image, 0.5 grey at zero, like the papers' figures.
- `draw_box`: a rectangle outline (receptive fields, pasted-object boxes).
"""

import numpy as np

# (position, RGB) stops of the colormap.
_STOPS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_COLORS = np.array(
    [
        [0.0, 0.0, 0.02],
        [0.34, 0.06, 0.43],
        [0.74, 0.21, 0.33],
        [0.98, 0.55, 0.04],
        [0.99, 1.0, 0.64],
    ]
)


def normalize(values: np.ndarray, *, percentile: float = 99.5) -> np.ndarray:
    """[H, W] -> float32 [0, 1]: |values| divided by their `percentile`, clipped."""
    v = np.abs(np.asarray(values, np.float32))
    scale = np.percentile(v, percentile)
    if not np.isfinite(scale) or scale <= 0:
        scale = v.max() if v.max() > 0 else 1.0
    return np.clip(v / scale, 0.0, 1.0).astype(np.float32)


def colorize(values: np.ndarray) -> np.ndarray:
    """[H, W] in [0, 1] -> float32 [H, W, 3] through the colormap."""
    v = np.clip(np.asarray(values, np.float32), 0.0, 1.0)
    return np.stack([np.interp(v, _STOPS, _COLORS[:, c]) for c in range(3)], -1).astype(np.float32)


def overlay(image: np.ndarray, values: np.ndarray, *, strength: float = 0.8) -> np.ndarray:
    """[H, W, 3] image and [H, W] map in [0, 1] -> image blended with the colorized map.

    The blend weight is `strength` x the map, so only attributed regions change.
    """
    alpha = strength * np.clip(values, 0.0, 1.0)[..., None]
    return ((1 - alpha) * image + alpha * colorize(values)).astype(np.float32)


def signed_image(grads: np.ndarray, *, percentile: float = 99.5) -> np.ndarray:
    """[H, W, 3] signed gradients -> float32 image: 0.5 + 0.5 * grads / percentile(|grads|)."""
    g = np.asarray(grads, np.float32)
    scale = np.percentile(np.abs(g), percentile)
    scale = scale if np.isfinite(scale) and scale > 0 else max(float(np.abs(g).max()), 1e-12)
    return np.clip(0.5 + 0.5 * g / scale, 0.0, 1.0).astype(np.float32)


def draw_box(
    image: np.ndarray, box: tuple[int, int, int, int], *, color=(0.0, 1.0, 0.0), width: int = 2
) -> np.ndarray:
    """A copy of [H, W, 3] with the outline of box (top, left, bottom, right) drawn inside it."""
    out = np.array(image, np.float32, copy=True)
    h, w = out.shape[:2]
    top, left = max(0, box[0]), max(0, box[1])
    bottom, right = min(h, box[2]), min(w, box[3])
    if bottom <= top or right <= left:
        return out
    c = np.asarray(color, np.float32)
    out[top : min(bottom, top + width), left:right] = c
    out[max(top, bottom - width) : bottom, left:right] = c
    out[top:bottom, left : min(right, left + width)] = c
    out[top:bottom, max(left, right - width) : right] = c
    return out
