"""scripts/visualize.py end to end: classify prints the top-5, commands write images, errors are one line."""

import numpy as np
import pytest
from PIL import Image

from neural_synth.data import imagenet
from tests import helpers


def test_classify_prints_top5_with_probabilities():
    result = helpers.run_module("scripts.visualize", "classify", "--image=skimage:chelsea")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if "p=" in line]
    assert len(rows) == 5
    assert int(rows[0][0]) in imagenet.DOMESTIC_CATS
    probs = [float(row[-1].removeprefix("p=")) for row in rows]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.001


def test_saliency_writes_one_row_per_class(tmp_path):
    out = tmp_path / "saliency.png"
    result = helpers.run_module(
        "scripts.visualize", "saliency", "--image=skimage:coffee", "--size=64",
        "--classes=967,504", f"--out={out}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    image = np.asarray(Image.open(out))
    assert image.shape[0] > image.shape[1] / 2  # Two rows of three 64 px tiles.
    assert "967" in result.stdout and "504" in result.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["saliency", "--image=/no/such.png", "--out=x.png"], "/no/such.png"),
        (["gradcam", "--layer=fc9", "--out=x.png", "--size=64"], "fc9"),
        (["classmodel", "--classes=1234", "--out=x.png"], "1234"),
        (["saliency"], "--out"),
        (["paint"], "give one command"),
    ],
)
def test_bad_input_is_one_line_on_stderr(args, message):
    result = helpers.run_module("scripts.visualize", *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert "Traceback" not in result.stderr
