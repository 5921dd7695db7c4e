"""End-to-end runs of scripts/stylize.py and scripts/texture.py on tiny images."""

import subprocess

import numpy as np
import pytest

from neural_synth import io
from tests import helpers

SHALLOW = ["--style_layers=relu1_1,relu2_1", "--chunk_size=2", "--style_max_side=32"]


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    return helpers.run_module(module, *args, devices=2)


def test_stylize_writes_one_image_per_content(tmp_path):
    out = tmp_path / "styled.png"
    result = _run(
        "scripts.stylize",
        "--content=skimage:astronaut",
        "--content=skimage:coffee",
        "--style=skimage:chelsea",
        "--max_side=32",
        "--steps=2",
        "--content_layers=relu2_1",
        "--preserve_color=luminance",
        "--arch=vgg16",
        f"--out={out}",
        *SHALLOW,
    )
    assert result.returncode == 0, result.stderr
    assert "random-weight vgg16" in result.stdout
    assert "step 2/2" in result.stdout
    for i in range(2):
        image = io.load_image(tmp_path / f"styled_{i}.png")
        assert image.shape == (32, 32, 3) and image.std() > 0.01


def test_texture_writes_requested_size(tmp_path):
    out = tmp_path / "texture.png"
    result = _run(
        "scripts.texture",
        "--texture=skimage:brick",
        "--size=40x32",
        "--steps=2",
        "--optimizer=adam",
        "--arch=vgg16",
        f"--out={out}",
        *SHALLOW,
    )
    assert result.returncode == 0, result.stderr
    image = io.load_image(out)
    assert image.shape == (32, 40, 3)
    assert np.all(np.isfinite(image))


@pytest.mark.parametrize(
    "module, args, message",
    [
        ("scripts.stylize", ["--content=/no/such/file.png"], "does not exist"),
        ("scripts.stylize", ["--style_layers=relu9_9"], "Unknown vgg19 style layer"),
        ("scripts.stylize", ["--max_side=8"], "too small"),
        ("scripts.texture", ["--size=12xfoo"], "--size must look like"),
        ("scripts.texture", ["--out=t.gif"], "--out must end in"),
    ],
)
def test_user_errors_exit_1_with_one_line(module, args, message):
    result = _run(module, *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
