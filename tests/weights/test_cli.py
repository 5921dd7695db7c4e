"""`python -m scripts.convert_vgg`: help, a successful port, one-line errors."""

import os
import pathlib
import subprocess
import sys

import pytest

from neural_synth.weights import store
from tests.weights import writers

REPO = pathlib.Path(__file__).resolve().parents[2]
FLAGS = ("src", "arch", "out", "format", "rescale", "rescale_images", "include_head")


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "NEURAL_SYNTH_CACHE_DIR": ""}  # No XLA cache.
    return subprocess.run(
        [sys.executable, "-m", "scripts.convert_vgg", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_describes_every_flag():
    result = run("--help")
    text = result.stdout + result.stderr
    for flag in FLAGS:
        assert f"--{flag}" in text, flag
    assert "Ports pretrained VGG16/VGG19 weights" in text


def test_port_then_wrong_arch(tmp_path):
    src = tmp_path / "vgg16.h5"
    writers.write_keras_h5(src, writers.keras_layers("vgg16", head=None))
    out = tmp_path / "ckpt"
    result = run(f"--src={src}", "--arch=vgg16", f"--out={out}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "ported vgg16" in lines[0] and "convention=caffe" in lines[0]
    meta = store.read_metadata(out)
    assert meta["params_sha256"] in lines[0] and meta["rescaled"] is False

    result = run(f"--src={src}", "--arch=vgg19", f"--out={tmp_path / 'x'}")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: missing tensor block3_conv4/kernel")
    assert lines[0].endswith("use --arch vgg16")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (("--arch=vgg19",), "error: --src and --out are required"),
        (("--src=x.pth", "--arch=vgg16", "--out=x", "--include_head=yes"),
         "error: --include_head must be one of auto, true, false"),
    ],
)  # fmt: skip
def test_user_errors_are_one_line(args, message):
    result = run(*args)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(message), result.stderr
