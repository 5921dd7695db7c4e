"""Region masks for spatial style control: one mask per style image.

`split` generates complementary stripes (left/right halves for two styles),
`load_masks` reads grey-level mask images. Masks are float32 [S, H, W] in [0, 1] at
the output resolution; `losses.style.spatial_style_loss` resizes them to each
layer and computes each style's Gram matrix over its own region.

References: Gatys et al., "Controlling Perceptual Factors in Neural Style
Transfer", CVPR 2017, Sec. 4 (spatial control).
"""

from collections.abc import Sequence

import numpy as np

from neural_synth import io

LAYOUTS = ("vertical", "horizontal")


def split(layout: str, num_regions: int, *, height: int, width: int) -> np.ndarray:
    """Complementary equal stripes: [num_regions, height, width] of 0/1, summing to 1.

    'vertical' cuts left to right (two regions: left half, right half);
    'horizontal' cuts top to bottom.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"Unknown mask layout {layout!r}; expected one of {LAYOUTS}.")
    if num_regions < 1:
        raise ValueError(f"num_regions must be >= 1, got {num_regions}.")
    length = width if layout == "vertical" else height
    index = np.minimum(np.arange(length) * num_regions // length, num_regions - 1)
    stripes = (index[None, :] == np.arange(num_regions)[:, None]).astype(np.float32)  # [S, L]
    if layout == "vertical":
        return np.repeat(stripes[:, None, :], height, axis=1)
    return np.repeat(stripes[:, :, None], width, axis=2)


def load_masks(paths: Sequence[str], *, height: int, width: int) -> np.ndarray:
    """Reads mask images (white = region) resized to height x width: [S, H, W] in [0, 1].

    Each file is read with `io.load_image_or_sample` and reduced to grey by the
    channel mean. An all-black mask is an error (its style would apply nowhere).
    """
    masks = []
    for path in paths:
        image = io.load_image_or_sample(path, size=(height, width))
        mask = image.mean(axis=-1)
        if float(mask.max()) <= 0.0:
            raise ValueError(f"Mask {path!r} is all black; white marks where its style applies.")
        masks.append(mask)
    return np.stack(masks).astype(np.float32)


def check_masks(masks: np.ndarray, num_styles: int) -> np.ndarray:
    """Validates [S, H, W] masks for `num_styles` styles; returns them as float32."""
    masks = np.asarray(masks, np.float32)
    if masks.ndim != 3 or masks.shape[0] != num_styles:
        raise ValueError(
            f"Expected one mask per style image: shape [{num_styles}, H, W], got {masks.shape}."
        )
    if np.any(masks < 0) or np.any(masks > 1):
        raise ValueError("Mask values must lie in [0, 1].")
    return masks
