"""Use a trained marker model: make markers, printable sheets, and read photos.

  python -m scripts.marker encode --workdir W --message cat7 --out m.png
  python -m scripts.marker encode --workdir W --bits 0110... --out m.png
  python -m scripts.marker sheet  --workdir W --num 6 --out sheet.png
  python -m scripts.marker decode --workdir W --image photo.png [--json]

`encode --message` takes a text or bytes message of up to 4 bytes (the 32
data bits of the default model's code); `--bits` gives the raw bits instead.

`decode` finds the marker anywhere in the photo (covering about 10-90% of the
shorter side, reliably 20-60%; rotated, in perspective), rectifies it, reads its bits and
corrects them. It prints the message and whether it is verified (`--json`:
{"message", "verified", "status", "corners", "bits", ...}). Exit status: 0
when the message is verified (or, for a model without a code, when a marker
is found); 2 when no marker is found; 3 when a marker is found but its bits
are uncorrectable (status 'uncorrectable', 'checksum' or 'unreliable'; no
message is printed: it could be wrong data); 1 for bad input.
"""

import json
import sys

import numpy as np
from absl import flags

from neural_synth import experiments, io
from neural_synth.experiments import marker, marker_reader
from scripts import common

_WORKDIR = flags.DEFINE_string(
    "workdir", "runs/marker", "Work directory of a trained marker run (scripts.train's default)."
)
_MESSAGE = flags.DEFINE_string(
    "message", None, "encode: the message, a text of up to 4 bytes (UTF-8), e.g. cat7."
)
_BITS = flags.DEFINE_string(
    "bits", None, "encode: raw bits instead of a message, e.g. 0110... (length = num_bits)."
)
_OUT = flags.DEFINE_string("out", None, "encode/sheet: output PNG path.")
_SIZE = flags.DEFINE_integer(
    "size",
    256,
    "encode/sheet: printed marker side in pixels "
    "(nearest-neighbour upscaling keeps the pixels crisp).",
)
_NUM = flags.DEFINE_integer("num", 6, "sheet: number of random markers.")
_SEED = flags.DEFINE_integer("seed", 0, "sheet: seed of the random messages / bit strings.")
_IMAGE = flags.DEFINE_string("image", None, "decode: a photo containing one marker.")
_JSON = flags.DEFINE_bool("json", False, "decode: print the result as JSON.")
_CHASE = flags.DEFINE_integer(
    "chase_bits", None, "decode: soft-decoding width (default: the model's reader.chase_bits)."
)

EXIT_NO_MARKER, EXIT_UNCORRECTABLE = 2, 3


def _trained():
    return experiments.load_trained(_WORKDIR.value, "marker")


def _payload(exp) -> tuple[np.ndarray, str]:
    """(+-1 bits [1, N], a description) from --message or --bits (exactly one)."""
    if (_MESSAGE.value is None) == (_BITS.value is None):
        raise ValueError("encode needs exactly one of --message or --bits")
    if _MESSAGE.value is not None:
        return exp.message_bits(_MESSAGE.value), f"message {_MESSAGE.value!r}"
    bits = marker.string_to_bits(_BITS.value, exp.config.marker.num_bits)
    return bits, f"bits {_BITS.value}"


def encode() -> None:
    out = io.check_save_path(common.require(_OUT, "encode"))
    exp, params = _trained()
    bits, what = _payload(exp)
    image = marker.printable(exp.encode(params, bits)[0], _SIZE.value)
    io.save_image(out, image)
    print(f"Wrote {_OUT.value} for {what} ({marker.bits_to_string(bits)})")


def sheet() -> None:
    out = io.check_save_path(common.require(_OUT, "sheet"))
    exp, params = _trained()
    rng = np.random.default_rng(_SEED.value)
    if exp.config.marker.code == "bch64":
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789"))
        labels = ["".join(rng.choice(letters, 4)) for _ in range(_NUM.value)]
        bits = np.concatenate([exp.message_bits(m) for m in labels])
    else:
        bits = marker.random_bits(rng, _NUM.value, exp.config.marker.num_bits)
        labels = [marker.bits_to_string(b) for b in bits]
    io.save_image(out, marker.marker_sheet(exp.encode(params, bits), labels, cell=_SIZE.value))
    print(f"Wrote {_OUT.value} with {len(labels)} markers:\n" + "\n".join(labels))


def decode() -> None:
    spec = common.require(_IMAGE, "decode")
    image = io.load_image_or_sample(spec)
    exp, params = _trained()
    io.check_min_side(image, exp.min_side, name=spec)
    reading = marker_reader.MarkerReader(exp, params, chase_bits=_CHASE.value).read([image])[0]
    if _JSON.value:
        print(json.dumps(reading.to_json()))
    else:
        print(_describe(reading))
    if not reading.found:
        sys.exit(EXIT_NO_MARKER)
    if reading.status in ("uncorrectable", "checksum", "unreliable"):
        sys.exit(EXIT_UNCORRECTABLE)


def _describe(reading: marker_reader.Reading) -> str:
    if not reading.found:
        return f"no marker found (presence {reading.presence:.2f})"
    corners = " ".join(f"({x:.1f},{y:.1f})" for x, y in reading.corners)
    lines = [f"corners: {corners}", f"bits: {reading.bits}"]
    if reading.verified:
        lines.insert(
            0, f"message: {reading.message!r} (verified, {reading.num_corrected} bits corrected)"
        )
    elif reading.status == "raw":
        lines.insert(0, "bits only (this model has no message code)")
    else:
        lines.insert(0, "marker found but its bits are uncorrectable: no message")
    return "\n".join(lines)


if __name__ == "__main__":
    common.run(commands={"encode": encode, "sheet": sheet, "decode": decode})
