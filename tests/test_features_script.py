"""Tests for scripts/features.py (via subprocess) and neural_synth.viz.features."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from neural_synth.viz import features

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_activation_grid_normalises_each_filter():
    act = np.zeros((2, 2, 4), np.float32)
    act[..., 0] = [[0.0, 2.0], [4.0, 8.0]]
    act[..., 1] = [[-3.0, -1.0], [-1.0, -3.0]]
    act[..., 2] = 5.0  # Constant map -> black.
    act[..., 3] = 9.0  # Beyond max_filters: not shown.
    grid = features.activation_grid(act, max_filters=3, ncols=3, padding=0)
    expected = np.concatenate(
        [[[0.0, 0.25], [0.5, 1.0]], [[0.0, 1.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]], axis=1
    )
    assert grid.shape == (2, 6, 3)
    np.testing.assert_allclose(grid, np.repeat(expected[..., None], 3, axis=-1), atol=1e-7)


def test_activation_grid_scale_and_padding():
    act = np.random.default_rng(0).random((3, 4, 5), dtype=np.float32)
    grid = features.activation_grid(act, max_filters=64, scale=2, padding=1)
    # 5 filters -> 3 columns, 2 rows of 6x8 tiles, 1-pixel padding.
    assert grid.shape == (2 * 7 + 1, 3 * 9 + 1, 3)
    tile = grid[1:7, 1:9, 0]
    first = act[..., 0]
    normalised = (first - first.min()) / (first.max() - first.min())
    np.testing.assert_allclose(tile, np.kron(normalised, np.ones((2, 2))), atol=1e-6)
    with pytest.raises(ValueError):
        features.activation_grid(act[None])


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "scripts.features", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_script_writes_one_grid_per_layer(tmp_path):
    y, x = np.mgrid[0:48, 0:64]
    pixels = np.stack([x * 4, y * 5, (x * y) % 256], axis=-1).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    out = tmp_path / "grids" / "grid.png"
    result = _run(
        f"--image={tmp_path / 'in.png'}",
        "--layers=relu1_1,relu2_1",
        "--max_side=64",
        "--max_filters=4",
        f"--out={out}",
    )
    assert result.returncode == 0, result.stderr
    assert "random-weight" in result.stdout
    for layer in ("relu1_1", "relu2_1"):
        grid = np.asarray(Image.open(out.parent / f"grid_{layer}.png"))
        # 4 filters -> 2x2 tiles of the input size (48x64), 2-pixel padding.
        assert grid.shape == (2 * 50 + 2, 2 * 66 + 2, 3)
        first_tile = grid[2:50, 2:66]
        assert first_tile.min() == 0 and first_tile.max() == 255  # Normalised per filter.
        assert grid.std() > 20
    assert not out.exists()  # Several layers: only the per-layer files.


def test_script_unknown_layer_is_one_line_error(tmp_path):
    result = _run("--layers=relu1_1,relu9_9", "--max_side=32", f"--out={tmp_path / 'g.png'}")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "relu9_9" in lines[0]
    assert not list(tmp_path.iterdir())


def test_script_bad_image_is_one_line_error(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    result = _run(f"--image={tmp_path / 'bad.png'}", f"--out={tmp_path / 'g.png'}")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "bad.png" in lines[0]
