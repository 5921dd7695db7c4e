"""Draw objects with a trained up-convolutional generator: turntables, morphs, single views.

  python -m scripts.upconv --workdir W rotate --id 3 --out r.gif
  python -m scripts.upconv --workdir W interpolate --from 3 --to 17 --steps 8 --out i.png
  python -m scripts.upconv --workdir W render --id 3 --azimuth 40 --elevation 20 --out x.png

`rotate` writes a turntable GIF (azimuth 0 .. 360); `interpolate` writes a
strip whose identity input moves linearly from one object to the other (the
ends are the two objects as the generator draws them); `render` writes one
view. --truth adds the renderer's own image of the same view(s) beside (rotate,
render) or below (interpolate: the two ends) the generated one. Identities
are 0 .. num_identities - 1 of the run; images are drawn on --background.
"""

import numpy as np
from absl import flags

from neural_synth import experiments, io
from scripts import common

_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory of a trained upconv run.")
_OUT = flags.DEFINE_string("out", None, "Output path: .gif for rotate, .png/.jpg otherwise.")
_ID = flags.DEFINE_integer("id", None, "rotate/render: the object (identity) to draw.")
_FROM = flags.DEFINE_integer("from", None, "interpolate: the first object.")
_TO = flags.DEFINE_integer("to", None, "interpolate: the last object.")
_STEPS = flags.DEFINE_integer("steps", 8, "interpolate: images in the strip (>= 2).")
_AZIMUTH = flags.DEFINE_float("azimuth", 30.0, "render/interpolate: azimuth in degrees.")
_ELEVATION = flags.DEFINE_float("elevation", 20.0, "Elevation in degrees.")
_FRAMES = flags.DEFINE_integer("frames", 36, "rotate: frames per turn.")
_DURATION = flags.DEFINE_integer("duration_ms", 80, "rotate: milliseconds per frame.")
_SCALE = flags.DEFINE_integer("scale", 2, "Nearest-neighbour enlargement of the output (>= 1).")
_BACKGROUND = flags.DEFINE_float("background", 1.0, "Background gray level in [0, 1].")
_TRUTH = flags.DEFINE_bool("truth", False, "Also show the renderer's true image(s).")
flags.mark_flag_as_required("workdir")


def _trained():
    return experiments.load_trained(_WORKDIR.value, "upconv")


def _enlarge(images: np.ndarray) -> np.ndarray:
    """[N, S, S, 3] -> [N, kS, kS, 3] by pixel repetition (k = --scale)."""
    if _SCALE.value < 1:
        raise ValueError(f"--scale must be >= 1, got {_SCALE.value}")
    return np.repeat(np.repeat(images, _SCALE.value, axis=1), _SCALE.value, axis=2)


def _truth(exp, identity: int, azimuth: float) -> np.ndarray:
    """The renderer's image [S, S, 3] of the view, on --background."""
    return exp.ground_truth(identity, azimuth, _ELEVATION.value, background=_BACKGROUND.value)


def rotate() -> None:
    identity = common.require(_ID, "rotate")
    out = io.check_gif_path(common.require(_OUT, "rotate"))
    exp, params = _trained()
    frames = exp.turntable(
        params, identity, num_frames=_FRAMES.value, elevation=_ELEVATION.value,
        background=_BACKGROUND.value,
    )  # fmt: skip
    if _TRUTH.value:
        azimuths = np.arange(len(frames)) * 360.0 / len(frames)
        truth = np.stack([_truth(exp, identity, a) for a in azimuths])
        frames = np.concatenate([frames, truth], axis=2)
    io.save_gif(out, _enlarge(frames), duration_ms=_DURATION.value)
    print(f"Wrote {out}: {len(frames)} frames of object {identity} turning once around.")


def interpolate() -> None:
    start, end = common.require(_FROM, "interpolate"), common.require(_TO, "interpolate")
    out = io.check_save_path(common.require(_OUT, "interpolate"))
    exp, params = _trained()
    strip = exp.interpolate(
        params, start, end, steps=_STEPS.value, azimuth=_AZIMUTH.value,
        elevation=_ELEVATION.value, background=_BACKGROUND.value,
    )  # fmt: skip
    images, ncols = strip, len(strip)
    if _TRUTH.value:
        ends = [_truth(exp, start, _AZIMUTH.value), _truth(exp, end, _AZIMUTH.value)]
        blank = np.full_like(strip[0], _BACKGROUND.value)
        row = [ends[0], *[blank] * (len(strip) - 2), ends[1]]
        images = np.concatenate([strip, np.stack(row)])
    io.save_grid(out, _enlarge(images), ncols=ncols, pad_value=_BACKGROUND.value)
    print(f"Wrote {out}: {len(strip)} steps from object {start} to object {end}.")


def render() -> None:
    identity = common.require(_ID, "render")
    out = io.check_save_path(common.require(_OUT, "render"))
    exp, params = _trained()
    image = exp.views(
        params, exp.one_hot(identity), _AZIMUTH.value, _ELEVATION.value,
        background=_BACKGROUND.value,
    )[0]  # fmt: skip
    if _TRUTH.value:
        image = np.concatenate([image, _truth(exp, identity, _AZIMUTH.value)[None]], axis=2)
    io.save_image(out, _enlarge(image)[0])
    print(
        f"Wrote {out}: object {identity} at azimuth {_AZIMUTH.value:g}, "
        f"elevation {_ELEVATION.value:g}."
    )


if __name__ == "__main__":
    common.run(commands={"rotate": rotate, "interpolate": interpolate, "render": render})
