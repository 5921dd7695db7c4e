"""The metric writer: JSON lines, PNG grids and TensorBoard events that read back."""

import glob
import io as bytes_io
import json
import struct

import numpy as np
from PIL import Image
from tensorboardX.proto import event_pb2

from neural_synth import io
from neural_synth.train import reporting


def _records(path: str):
    """The payloads of a TFRecord file (length, crc, data, crc), read independently."""
    with open(path, "rb") as f:
        data = f.read()
    offset = 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        yield data[offset + 12 : offset + 12 + length]
        offset += 12 + length + 4


def _events(workdir) -> list:
    (path,) = glob.glob(str(workdir / "events.out.tfevents.*"))
    return [event_pb2.Event.FromString(r) for r in _records(path)]


def test_scalars_and_images_reach_jsonl_png_and_tensorboard(tmp_path):
    writer = reporting.MetricWriter(str(tmp_path))
    writer.write(5, {"loss/total": 0.25, "acc/bits": 0.5})
    writer.write(10, {"loss/total": 0.125, "acc/bits": 0.75})
    images = np.random.default_rng(0).random((4, 8, 6, 3), dtype=np.float32)
    writer.write_images(10, {"markers": images})
    writer.close()
    writer.close()  # A second close is harmless.

    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == [
        {"step": 5, "loss/total": 0.25, "acc/bits": 0.5},
        {"step": 10, "loss/total": 0.125, "acc/bits": 0.75},
    ]
    png = io.load_image(tmp_path / "samples" / "markers_0000010.png")
    np.testing.assert_allclose(png, io.make_grid(images), atol=1 / 255)

    scalars, pictures = {}, {}
    for event in _events(tmp_path):
        for value in event.summary.value:
            if value.HasField("image"):
                pictures[(value.tag, event.step)] = value.image.encoded_image_string
            else:
                scalars[(value.tag, event.step)] = value.simple_value
    assert scalars == {
        ("loss/total", 5): 0.25,
        ("acc/bits", 5): 0.5,
        ("loss/total", 10): 0.125,
        ("acc/bits", 10): 0.75,
    }
    decoded = np.asarray(Image.open(bytes_io.BytesIO(pictures[("markers", 10)])))
    np.testing.assert_array_equal(decoded[..., :3], io.to_uint8(io.make_grid(images)))
