"""Marker experiment: resume after a kill, and encode -> real distortions -> decode."""

import json
import os

import numpy as np
import pytest
from PIL import Image, ImageFilter

from neural_synth import experiments, io
from neural_synth.experiments import marker
from tests import helpers



@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke-sized model trained long enough to decode clean markers."""
    workdir = str(tmp_path_factory.mktemp("marker_run"))
    config = helpers.load_config("marker", "smoke")
    config.train.update(
        num_steps=300,
        batch_size=32,
        log_every_steps=100,
        checkpoint_every_steps=300,
        eval_every_steps=0,
        summary_every_steps=0,
    )
    config.render.ramp_steps = 150
    experiments.train_from_config(config, workdir)
    return workdir


def _photograph(marker_rgb: np.ndarray, photo: np.ndarray, rng) -> np.ndarray:
    """Distorts a printed marker outside JAX: paste on a photo, perspective, blur, JPEG 50."""
    size = 96
    tile = Image.fromarray(io.to_uint8(marker_rgb)).resize((72, 72), Image.BICUBIC)
    scene = Image.fromarray(io.to_uint8(photo)).resize((size, size))
    scene.paste(tile, (12, 12))
    jitter = rng.uniform(-3, 3, size=8)
    corners = np.array([0, 0, 0, size, size, size, size, 0], float) + jitter
    scene = scene.transform((size, size), Image.QUAD, tuple(corners), Image.BILINEAR)
    scene = scene.filter(ImageFilter.GaussianBlur(0.6))
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ns_marker_{os.getpid()}.jpg")
    scene.save(path, quality=50)
    return io.load_image(path)


def test_encode_distort_decode_round_trip(trained):
    exp, params = experiments.load_trained(trained, "marker")
    eval_json = json.load(open(os.path.join(trained, "eval.json")))
    assert eval_json["none"]["bit_accuracy"] > 0.8
    rng = np.random.default_rng(0)
    bits = marker.random_bits(rng, 16, exp.config.marker.num_bits)
    markers = exp.encode(params, bits)
    photo = io.sample_image("coffee", max_side=128)
    photos = np.stack([_photograph(m, photo, rng) for m in markers])
    probs = exp.decode(params, photos)
    accuracy = float(np.mean((probs > 0.5) == (bits > 0)))
    assert accuracy > 0.75, f"bit accuracy after Pillow distortions: {accuracy:.3f}"


def test_marker_cli_encode_and_decode(trained, tmp_path):
    exp, _ = experiments.load_trained(trained, "marker")
    bits = "10" * (exp.config.marker.num_bits // 2)
    out = tmp_path / "m.png"
    enc = helpers.run_module(
        "scripts.marker",
        "encode",
        f"--workdir={trained}",
        f"--bits={bits}",
        f"--out={out}",
        "--size=64",
    )
    assert enc.returncode == 0, enc.stderr[-2000:]
    assert io.load_image(out).shape == (64, 64, 3)
    dec = helpers.run_module(
        "scripts.marker", "decode", f"--workdir={trained}", f"--image={out}", "--json"
    )
    assert dec.returncode == 0, dec.stderr[-2000:]
    result = json.loads(dec.stdout.strip().splitlines()[-1])
    assert len(result["bits"]) == len(bits) == len(result["confidence"])
    assert np.mean([a == b for a, b in zip(result["bits"], bits, strict=True)]) > 0.8
    bad = helpers.run_module(
        "scripts.marker", "encode", f"--workdir={trained}", "--bits=012", f"--out={out}"
    )
    assert bad.returncode == 1 and bad.stderr.strip().startswith("error:")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_bit_helpers_round_trip():
    bits = marker.string_to_bits("0110", 4)
    np.testing.assert_array_equal(bits, [[-1, 1, 1, -1]])
    assert marker.bits_to_string(bits) == "0110"
    with pytest.raises(ValueError, match="4 characters"):
        marker.string_to_bits("01", 4)


def test_trainer_rejects_unknown_background_source(tmp_path):
    config = helpers.load_config("marker", "smoke")
    config.render.backgrounds = "nowhere"
    with pytest.raises(ValueError, match="Unknown background source"):
        experiments.train_from_config(config, str(tmp_path))


def test_texture_loss_pulls_markers_toward_the_texture(tmp_path):
    config = helpers.load_config("marker_texture", "smoke")
    config.texture.weight = 5.0
    config.train.update(num_steps=40, log_every_steps=10, eval_every_steps=0, summary_every_steps=0)
    experiments.train_from_config(config, str(tmp_path))
    lines = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    texture = [x["loss/texture"] for x in lines if "loss/texture" in x]
    assert len(texture) == 4
    assert texture[-1] < 0.7 * texture[0], texture


def test_printable_sheet_layout():
    markers = np.random.default_rng(0).uniform(size=(4, 8, 8, 3)).astype(np.float32)
    big = marker.printable(markers[0], 32)
    want = np.repeat(np.repeat(io.to_uint8(markers[0]), 4, axis=0), 4, axis=1) / 255.0
    np.testing.assert_allclose(big, want, atol=1e-6)  # Nearest neighbour: crisp pixels.
    sheet = marker.marker_sheet(markers, ["0101"] * 4, cell=32, ncols=3)
    pad, text_h = 32 // 8, 12 + 8  # One label line: "0101" fits in 32 px.
    assert sheet.shape == (2 * (32 + 2 * pad + text_h), 3 * (32 + 2 * pad), 3)
    long = marker.marker_sheet(markers[:1], ["01" * 16], cell=32, ncols=1)
    assert long.shape[0] > sheet.shape[0] // 2  # A 32-bit label wraps onto more lines.
    np.testing.assert_allclose(sheet[pad : pad + 32, pad : pad + 32], want, atol=1e-6)
