"""Figures for the visualization methods: one row per target, tiled into one image.

Each function returns a float32 [H', W', 3] grid ready for `io.save_image`:

- `magnitude_rows`: per map, [input, colorized map, overlay] (saliency,
  SmoothGrad, Grad-CAM);
- `signed_rows`: per gradient, [input, signed RGB image, overlay of its
  magnitude] (guided backpropagation, deconvnet);
- `gradcam_rows`: per target, [input, Grad-CAM overlay, guided Grad-CAM];
- `receptive_field_figure`: [input with the arithmetic (green) and measured
  (red) boxes, the neuron's sensitivity map].
"""

from collections.abc import Sequence

import numpy as np

from neural_synth import io
from neural_synth.viz import heatmap

MEASURED_COLOR = (1.0, 0.1, 0.1)
EXPECTED_COLOR = (0.1, 1.0, 0.1)


def _grid(rows: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    tiles = [tile for row in rows for tile in row]
    return io.make_grid(np.stack(tiles), ncols=len(rows[0]))


def magnitude_rows(image: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """image [H, W, 3], maps [N, H, W] (>= 0) -> grid of N rows [input, map, overlay]."""
    rows = []
    for m in maps:
        v = heatmap.normalize(m)
        rows.append([image, heatmap.colorize(v), heatmap.overlay(image, v)])
    return _grid(rows)


def signed_rows(image: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """image [H, W, 3], grads [N, H, W, 3] -> grid of N rows [input, signed, overlay]."""
    rows = []
    for g in grads:
        v = heatmap.normalize(np.max(np.abs(g), axis=-1))
        rows.append([image, heatmap.signed_image(g), heatmap.overlay(image, v)])
    return _grid(rows)


def gradcam_rows(image: np.ndarray, cams: np.ndarray, guided: np.ndarray) -> np.ndarray:
    """image, cams [N, H, W], guided Grad-CAM [N, H, W, 3] -> rows [input, overlay, guided]."""
    rows = []
    for cam, g in zip(cams, guided, strict=True):
        v = cam / cam.max() if cam.max() > 0 else cam
        rows.append([image, heatmap.overlay(image, v), heatmap.signed_image(g)])
    return _grid(rows)


def receptive_field_figure(image, sensitivity, expected_box, measured_box) -> np.ndarray:
    """[input with boxes (green: arithmetic, red: measured), colorized sensitivity]."""
    boxed = heatmap.draw_box(image, expected_box, color=EXPECTED_COLOR, width=3)
    if measured_box is not None:
        boxed = heatmap.draw_box(boxed, measured_box, color=MEASURED_COLOR, width=1)
    sens = heatmap.colorize(heatmap.normalize(np.sqrt(sensitivity), percentile=99.0))
    return _grid([[boxed, sens]])
