"""Every bad input answered cleanly (issue 11): one `error:` line, exit 1, outputs intact.

In-process, every file of the corpus (`tests/badinputs.py`) goes through the
library function that reads its kind: bad images raise `io.ImageError`, bad
weights files and ported folders `WeightFormatError`, each naming the file and
the problem; odd images load with the right orientation and frame.

Through the command-line tools (a few seconds each, so a small matrix): every
bad image kind through the cheapest image command (`pix2pix edges`), one
representative bad file through every image-reading command, bad weights
through `convert_vgg` and `--vgg`, and unwritable output paths. Each must exit
non-zero with exactly one stderr line `error: ...` naming the file and the
problem, no traceback, and leave an existing output byte-identical. The full
matrix (every input x every command) is `python -m benchmarks.bad_inputs`.
"""

import json
import os
import pathlib
import re

import numpy as np
import pytest
from PIL import Image, ImageFile

from neural_synth import experiments, io
from neural_synth.weights import convert, errors, formats, store
from tests import badinputs, helpers

NO_RUN = "/nonexistent/workdir"  # Image commands read the image before the workdir.


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, badinputs.Case]:
    return {c.name: c for c in badinputs.images(tmp_path_factory.mktemp("images"))}


@pytest.fixture(scope="module")
def weight_cases(tmp_path_factory) -> dict[str, badinputs.Case]:
    return {c.name: c for c in badinputs.weight_files(tmp_path_factory.mktemp("weights"))}


@pytest.fixture(scope="module")
def ported(tmp_path_factory, weight_cases) -> pathlib.Path:
    """vgg16.h5 of the corpus ported (conv layers only), the seed of the broken folders."""
    out = tmp_path_factory.mktemp("ported") / "vgg16"
    convert.convert_vgg(weight_cases["vgg16.h5 as vgg19"].path, out, arch="vgg16")
    return out


def assert_clean_error(outcome: badinputs.Outcome, names: str, problem: str) -> None:
    """Exit 1, one `error:` line naming `names` and matching `problem`, outputs intact."""
    assert outcome.returncode == 1, outcome.stderr[-2000:]
    assert not outcome.traceback, outcome.stderr[-2000:]
    assert len(outcome.lines) == 1, outcome.stderr[-2000:]
    assert outcome.message.startswith("error: ")
    assert names in outcome.message, outcome.message
    assert re.search(problem, outcome.message, re.IGNORECASE), outcome.message
    assert outcome.untouched is not False, "the existing output was modified"


def run_tool(command: badinputs.Command, value, tmp_path, runs=None, extra=()):
    """Runs `command` on `value` with a precious existing output; returns the Outcome."""
    out = {"file": tmp_path / "out.png", "dir": tmp_path / "out_dir", None: None}[command.writes]
    if out is not None and command.writes == "file":
        out.write_bytes(badinputs.PRECIOUS)
    runs = runs or {name: NO_RUN for name in ("marker", "pix2pix", "stylize_net", "texture_net")}
    argv = command.argv(str(value), out, runs, tmp_path) + list(extra)
    return badinputs.run(argv, out=out)


# ----------------------------------------------------------------------------- in-process


def test_every_bad_image_raises_image_error_naming_file_and_problem(corpus):
    for case in corpus.values():
        if not case.bad or case.name == "tiny.png":  # 1x1 is a valid image; tools decide.
            continue
        with pytest.raises(io.ImageError) as info:
            io.load_image(case.path)
        message = str(info.value)
        assert str(case.path) in message and "\n" not in message, message
        assert re.search(case.problem, message, re.IGNORECASE), (case.name, message)


def test_odd_modes_load_as_rgb_in_display_orientation(corpus):
    expected = badinputs.gradient_rgb() / np.float32(255.0)
    for case in corpus.values():
        if case.bad:
            continue
        image = io.load_image(case.path)
        assert image.shape == (*case.shape, 3) and image.dtype == np.float32, case.name
        assert 0.0 <= image.min() and image.max() <= 1.0, case.name
    # EXIF orientation 6: stored rotated, shown upright (JPEG-close to the original).
    upright = io.load_image(corpus["exif_rotated.jpg"].path)
    assert np.abs(upright - expected).mean() < 0.02
    # Animated GIF: the first frame (the gradient), not the second (its negative).
    first = io.load_image(corpus["animated.gif"].path)
    assert np.abs(first - expected).mean() < np.abs(first - (1 - expected)).mean()
    # 16-bit grayscale keeps its precision: a ramp over 0..65535.
    gray = io.load_image(corpus["gray16.png"].path)[..., 0].ravel()
    np.testing.assert_allclose(gray, np.linspace(0, 65535, gray.size).astype(np.uint16) / 65535)


def test_default_pixel_limit_refuses_the_bomb_before_decoding(corpus, monkeypatch):
    """Regression: the limit was 400 MP, so this 388 KB 20000x20000 PNG cost 8.8 GB."""
    assert io.DEFAULT_MAX_PIXELS <= Image.MAX_IMAGE_PIXELS  # Pillow's own default, 89.5 MP.

    def no_decoding(self):
        raise AssertionError("the bomb was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    bomb = corpus["bomb.png"].path
    assert bomb.stat().st_size < 400_000
    with pytest.raises(io.ImageError, match="20000x20000 = 400000000 pixels"):
        io.load_image(bomb)
    with pytest.raises(io.ImageError, match="max_pixels"):  # Still overridable, both ways.
        io.load_image(corpus["palette.png"].path, max_pixels=100)


def test_every_bad_weights_file_raises_weight_format_error(weight_cases):
    for case in weight_cases.values():
        arch = "vgg19" if "as vgg19" in case.name else "auto"
        with pytest.raises(errors.WeightFormatError) as info:
            convert.port(formats.read_source(case.path), arch=arch)
        message = str(info.value)
        assert str(case.path) in message and "\n" not in message, message
        assert re.search(case.problem, message), (case.name, message)


def test_every_broken_ported_folder_raises_weight_format_error(ported, tmp_path):
    for case in badinputs.vgg_dirs(tmp_path, ported):
        with pytest.raises(errors.WeightFormatError) as info:
            store.load_vgg(case.path)
        assert str(case.path) in str(info.value), str(info.value)
        assert re.search(case.problem, str(info.value)), (case.name, str(info.value))


def test_store_refuses_to_replace_weights_unless_overwrite(ported, tmp_path):
    """Regression: convert_vgg silently replaced existing weights."""
    meta, params = store.load_params(ported)
    before = {p.name: p.read_bytes() for p in ported.iterdir()}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        store.save(ported, params, meta)
    with pytest.raises(FileExistsError, match="overwrite=True"):  # Before reading the source.
        convert.convert_vgg("/nonexistent.pth", ported)
    assert {p.name: p.read_bytes() for p in ported.iterdir()} == before
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        store.save(tmp_path / "file", params, meta)
    store.save(ported, params, meta, overwrite=True)
    assert store.load_params(ported)[0]["params_sha256"] == meta["params_sha256"]


def test_failed_writes_leave_existing_outputs_untouched(ported, tmp_path, monkeypatch):
    image_path = tmp_path / "out.png"
    image_path.write_bytes(badinputs.PRECIOUS)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        io.save_image(image_path, np.zeros((4, 4, 3)))
    assert image_path.read_bytes() == badinputs.PRECIOUS
    meta, params = store.load_params(ported)
    before = {p.name: p.read_bytes() for p in ported.iterdir()}
    monkeypatch.setattr(np, "savez", broken_save)
    with pytest.raises(OSError, match="disk full"):
        store.save(ported, params, meta, overwrite=True)
    assert {p.name: p.read_bytes() for p in ported.iterdir()} == before
    assert sorted(os.listdir(tmp_path)) == ["out.png"]  # No temporary files left behind.


def test_save_paths_are_checked_before_work(tmp_path):
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ValueError, match="is a directory"):
        io.check_save_path(tmp_path / "dir.png")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        io.check_save_path(tmp_path / "file" / "sub" / "out.png")
    with pytest.raises(ValueError, match="unknown extension"):
        io.check_save_path(tmp_path / "out.gif")
    assert io.check_save_path(tmp_path / "new" / "out.png") == tmp_path / "new" / "out.png"


def test_marker_decoder_refuses_images_smaller_than_the_marker():
    """Regression: a 1x1 image was decoded as if it were a marker."""
    exp = experiments.build(helpers.load_config("marker", "smoke"))
    assert exp.min_side == exp.config.marker.marker_size == 16
    with pytest.raises(ValueError, match="1x1 image is too small.*at least 16 px"):
        exp.decode(None, np.zeros((1, 1, 1, 3), np.float32))
    with pytest.raises(io.ImageError, match="'tiny.png' is 1x1 pixels.*at least 16 px"):
        io.check_min_side(np.zeros((1, 1, 3)), exp.min_side, name="tiny.png")


# ----------------------------------------------------------------------------- command line

EDGES = badinputs.IMAGE_COMMANDS["pix2pix edges"]


@pytest.mark.parametrize("name", ["empty.png", "truncated.jpg", "text.png", "bomb.png"])
def test_bad_image_kinds_through_the_cheapest_command(name, corpus, tmp_path):
    case = corpus[name]
    assert_clean_error(run_tool(EDGES, case.path, tmp_path), case.path.name, case.problem)


@pytest.mark.parametrize(
    "command",
    ["features", "texture", "stylize --content", "stylize_net", "pix2pix translate",
     "pix2pix edges", "marker decode"],
)  # fmt: skip
def test_a_truncated_image_through_every_image_command(command, corpus, tmp_path):
    case = corpus["truncated.png"]
    outcome = run_tool(badinputs.IMAGE_COMMANDS[command], case.path, tmp_path)
    assert_clean_error(outcome, case.path.name, case.problem)


def test_pix2pix_accepts_sample_images_and_odd_modes(corpus, tmp_path):
    """Regression: scripts.pix2pix rejected the skimage:NAME inputs every other command takes."""
    out = tmp_path / "edges.png"
    result = helpers.run_module(
        "scripts.pix2pix", "edges", "--input=skimage:camera", f"--out={out}", "--max_side=64"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert io.load_image(out).shape == (64, 64, 3)
    rotated = corpus["exif_rotated.jpg"].path  # Stored 64 tall, shown 48 tall.
    result = helpers.run_module("scripts.pix2pix", "edges", f"--input={rotated}", f"--out={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert io.load_image(out).shape == (48, 64, 3)


def test_unwritable_output_paths(tmp_path):
    cases = {c.name: c for c in badinputs.output_cases(tmp_path / "outputs")}
    case = cases["--out is a directory"]
    outcome = run_tool(EDGES, "skimage:camera", tmp_path, extra=[f"--out={case.path}"])
    assert_clean_error(outcome, case.path.name, case.problem)
    case = cases["--out inside a file"]  # Checked before the (missing) run is even read.
    texture_net = badinputs.OUTPUT_COMMANDS["texture_net"]
    outcome = run_tool(texture_net, "", tmp_path, extra=[f"--out={case.path}"])
    assert_clean_error(outcome, "out.png", case.problem)
    assert (tmp_path / "outputs" / "a_file").read_bytes() == badinputs.PRECIOUS


def test_convert_vgg_refuses_to_replace_weights_without_overwrite(ported, weight_cases, tmp_path):
    """Regression: `convert_vgg --out DIR` silently replaced existing weights."""
    out = tmp_path / "ported"
    badinputs.prepare_output(out, "dir", ported)
    src = weight_cases["vgg16.h5 as vgg19"].path
    outcome = badinputs.run(
        ["scripts.convert_vgg", f"--src={src}", f"--out={out}", "--arch=vgg16"], out=out
    )
    assert_clean_error(outcome, str(out), "already holds ported weights.*pass --overwrite")
    bad = weight_cases["truncated.safetensors"]  # With --overwrite, a failure keeps them too.
    command = badinputs.WEIGHT_COMMANDS["convert_vgg"]
    outcome = badinputs.run(command.argv(str(bad.path), out, {}, tmp_path), out=out)
    assert_clean_error(outcome, bad.path.name, bad.problem)
    assert json.loads((out / "metadata.json").read_text())["arch"] == "vgg16"


@pytest.mark.parametrize("name", ["empty.pth", "garbage.h5"])
def test_bad_weights_through_convert_vgg(name, weight_cases, ported, tmp_path):
    case = weight_cases[name]
    out = tmp_path / "out_dir"
    badinputs.prepare_output(out, "dir", ported)
    command = badinputs.WEIGHT_COMMANDS["convert_vgg"]
    outcome = badinputs.run(command.argv(str(case.path), out, {}, tmp_path), out=out)
    assert_clean_error(outcome, case.path.name, case.problem)


def test_a_broken_ported_folder_through_vgg_flag(ported, tmp_path):
    case = next(c for c in badinputs.vgg_dirs(tmp_path, ported) if c.name == "vgg_modified_params")
    outcome = run_tool(badinputs.VGG_DIR_COMMANDS["features --vgg"], case.path, tmp_path)
    assert_clean_error(outcome, case.path.name, case.problem)
