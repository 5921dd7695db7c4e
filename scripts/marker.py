"""Use a trained marker model: make markers, printable sheets, and decode photos.

  python -m scripts.marker encode --workdir W --bits 0110... --out m.png
  python -m scripts.marker sheet  --workdir W --num 6 --out sheet.png
  python -m scripts.marker decode --workdir W --image photo.png

`decode` expects a photo cropped around the marker roughly as the rendering
network frames it in training (the marker covering most of the image, any
background around it); it prints the bits and each bit's confidence.
"""

import json

import numpy as np
from absl import flags

from neural_synth import experiments, io
from neural_synth.experiments import marker
from scripts import common

_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory of a trained marker run.")
_BITS = flags.DEFINE_string(
    "bits", None, "encode: the bit string to encode, e.g. 0110... (length = the model's num_bits)."
)
_OUT = flags.DEFINE_string("out", None, "encode/sheet: output PNG path.")
_SIZE = flags.DEFINE_integer(
    "size",
    256,
    "encode/sheet: printed marker side in pixels "
    "(nearest-neighbour upscaling keeps the pixels crisp).",
)
_NUM = flags.DEFINE_integer("num", 6, "sheet: number of random markers.")
_SEED = flags.DEFINE_integer("seed", 0, "sheet: seed of the random bit strings.")
_IMAGE = flags.DEFINE_string("image", None, "decode: photo (or image) of a marker.")
_JSON = flags.DEFINE_bool("json", False, "decode: print the result as JSON.")
flags.mark_flag_as_required("workdir")


def _trained():
    return experiments.load_trained(_WORKDIR.value, "marker")


def encode() -> None:
    bits_text = common.require(_BITS, "encode")
    out = io.check_save_path(common.require(_OUT, "encode"))
    exp, params = _trained()
    bits = marker.string_to_bits(bits_text, exp.config.marker.num_bits)
    image = marker.printable(exp.encode(params, bits)[0], _SIZE.value)
    io.save_image(out, image)
    print(f"Wrote {_OUT.value} for bits {_BITS.value}")


def sheet() -> None:
    out = io.check_save_path(common.require(_OUT, "sheet"))
    exp, params = _trained()
    rng = np.random.default_rng(_SEED.value)
    bits = marker.random_bits(rng, _NUM.value, exp.config.marker.num_bits)
    labels = [marker.bits_to_string(b) for b in bits]
    io.save_image(
        out,
        marker.marker_sheet(exp.encode(params, bits), labels, cell=_SIZE.value),
    )
    print(f"Wrote {_OUT.value} with {len(labels)} markers:\n" + "\n".join(labels))


def decode() -> None:
    spec = common.require(_IMAGE, "decode")
    image = io.load_image_or_sample(spec)
    exp, params = _trained()
    io.check_min_side(image, exp.min_side, name=spec)
    probs = exp.decode(params, image[None])[0]
    bits = marker.bits_to_string(probs - 0.5)
    confidence = np.where(probs > 0.5, probs, 1.0 - probs)
    if _JSON.value:
        print(json.dumps({"bits": bits, "confidence": [round(float(c), 4) for c in confidence]}))
    else:
        print(
            f"bits: {bits}\nconfidence: "
            + " ".join(f"{c:.2f}" for c in confidence)
            + f"\nmin confidence: {confidence.min():.3f}"
        )


if __name__ == "__main__":
    common.run(commands={"encode": encode, "sheet": sheet, "decode": decode})
