"""Use a trained pix2pix model, and make edge maps to try it with.

  python -m scripts.pix2pix --workdir W --input edges.png --out photo.png
  python -m scripts.pix2pix edges --input photo.jpg --out edges.png

The first form translates one image of any size the network accepts (each
side at least 2^num_downs of the U-Net; other sizes are reflection-padded to a
multiple and cropped back); dropout noise stays on when the run was trained
with inference_dropout (the paper's choice), --seed picks it and
--deterministic turns it off. `edges` writes the Canny edge map (black lines
on white) that edges2X models were trained on; --max_side shrinks large
photos first so the lines have the density of the training data.
"""

from absl import flags

from neural_synth import experiments, io
from scripts import common

_WORKDIR = flags.DEFINE_string("workdir", None, "translate: work directory of a pix2pix run.")
_INPUT = flags.DEFINE_string(
    "input", None, "Input image (edge map, label map, photo...): a path or skimage:NAME."
)
_OUT = flags.DEFINE_string("out", None, "Output image path (.png or .jpg).")
_SEED = flags.DEFINE_integer("seed", 0, "translate: seed of the dropout noise.")
_DETERMINISTIC = flags.DEFINE_bool(
    "deterministic", False, "translate: no dropout noise, even if the run keeps it at inference."
)
_MAX_SIDE = flags.DEFINE_integer(
    "max_side", 256, "edges: shrink the photo to this longest side first (0: keep its size)."
)
_SIGMA = flags.DEFINE_float("sigma", 2.0, "edges: Canny sigma (larger: fewer, smoother lines).")


def translate() -> None:
    spec = common.require(_INPUT, "translate")
    out_path = io.check_save_path(common.require(_OUT, "translate"))
    image = io.load_image_or_sample(spec)
    exp, params = experiments.load_trained(common.require(_WORKDIR, "translate"), "pix2pix")
    io.check_min_side(image, exp.min_side, name=spec)
    deterministic = True if _DETERMINISTIC.value else None
    output = exp.translate(params, image, seed=_SEED.value, deterministic=deterministic)
    io.save_image(out_path, output)
    print(f"Wrote {out_path} ({output.shape[0]}x{output.shape[1]})")


def edges() -> None:
    from neural_synth.data import pix2pix as pix2pix_data

    max_side = _MAX_SIDE.value or None
    spec = common.require(_INPUT, "edges")
    out_path = io.check_save_path(common.require(_OUT, "edges"))
    photo = io.load_image_or_sample(spec, max_side=max_side)
    io.save_image(out_path, pix2pix_data.edges(photo, sigma=_SIGMA.value))
    print(f"Wrote {out_path} ({photo.shape[0]}x{photo.shape[1]} edge map)")


if __name__ == "__main__":
    common.run(commands={"translate": translate, "edges": edges}, default="translate")
