"""Redirect the gaze in an eye crop with a trained DeepWarp run.

  python -m scripts.gaze --workdir W --image eye.png --pitch 15 --out o.png
  python -m scripts.gaze --workdir W --image eye.png --sweep --out s.gif      # + s.png strip
  python -m scripts.gaze --workdir W --image eye:3 --yaw -10 --out o.png      # a rendered eye

--pitch and --yaw are the *change* of gaze in degrees (positive: up, right),
within the range the run trained. The crop may have any size: it is resized
to the model's (41 x 51 by default), redirected and resized back. It should
be framed like the training crops (the eye centred, about two thirds of the
width); --landmarks gives its 7 landmarks (x1,y1,...,x7,y7 in its pixels:
eye corner left, upper lid left, upper lid right, corner right, lower lid
right, lower lid left, iris centre), else those of the average rendered eye
are used. --image=eye:N uses held-out rendered eye N instead of a file.

--sweep writes a looping GIF of the gaze moving through -R .. R degrees
(--sweep_axis, R = --sweep_range or the trained maximum) and back, and a PNG
strip of the frames beside it (--strip to choose its path).
"""

import pathlib

import numpy as np
from absl import flags

from neural_synth import experiments, io
from scripts import common

_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory of a trained deepwarp run.")
_IMAGE = flags.DEFINE_string("image", None, "Eye crop (any image file), or eye:N (rendered).")
_OUT = flags.DEFINE_string("out", None, "Output: .png/.jpg, or .gif with --sweep.")
_PITCH = flags.DEFINE_float("pitch", 0.0, "Change of vertical gaze in degrees (up > 0).")
_YAW = flags.DEFINE_float("yaw", 0.0, "Change of horizontal gaze in degrees (right > 0).")
_SWEEP = flags.DEFINE_bool("sweep", False, "Write a GIF and a PNG strip of a gaze sweep.")
_AXIS = flags.DEFINE_enum("sweep_axis", "pitch", ["pitch", "yaw"], "--sweep: which angle moves.")
_RANGE = flags.DEFINE_float("sweep_range", None, "--sweep: largest change (default: trained).")
_FRAMES = flags.DEFINE_integer("frames", 9, "--sweep: frames from -range to +range (>= 2).")
_DURATION = flags.DEFINE_integer("duration_ms", 100, "--sweep: milliseconds per GIF frame.")
_STRIP = flags.DEFINE_string(
    "strip", None, "--sweep: path of the PNG strip (default: beside --out)."
)
_LANDMARKS = flags.DEFINE_list("landmarks", None, "x1,y1,...,x7,y7: the crop's landmarks (pixels).")
_SCALE = flags.DEFINE_integer("scale", 1, "Nearest-neighbour enlargement of the outputs (>= 1).")
flags.mark_flags_as_required(["workdir", "image", "out"])

SAMPLE_PREFIX = "eye:"


def _landmarks() -> np.ndarray | None:
    values = common.parse_floats(_LANDMARKS.value, "landmarks")
    if values is None:
        return None
    if len(values) != 14:
        raise ValueError(f"--landmarks needs 14 numbers (x, y of 7 points), got {len(values)}")
    return np.asarray(values, np.float32).reshape(7, 2)


def _outputs() -> tuple[pathlib.Path, pathlib.Path | None]:
    """(main output, strip or None), checked before any slow work."""
    if _SCALE.value < 1:
        raise ValueError(f"--scale must be >= 1, got {_SCALE.value}")
    if not _SWEEP.value:
        if _OUT.value.lower().endswith(".gif"):
            raise ValueError(
                f"--out={_OUT.value}: a .gif is written with --sweep; use .png or .jpg"
            )
        return io.check_save_path(_OUT.value), None
    if _FRAMES.value < 2:
        raise ValueError(f"--frames must be >= 2, got {_FRAMES.value}")
    gif = io.check_gif_path(_OUT.value)
    return gif, io.check_save_path(_STRIP.value or gif.with_suffix(".png"))


def _sample_number() -> int | None:
    """N of --image=eye:N (checked before any slow work), or None for an image file."""
    if not _IMAGE.value.startswith(SAMPLE_PREFIX):
        return None
    number = _IMAGE.value[len(SAMPLE_PREFIX) :]
    if not number.isdigit():
        raise ValueError(f"--image={_IMAGE.value}: use eye:N with N a whole number, e.g. eye:3")
    return int(number)


def _sweep_angles(exp) -> tuple[np.ndarray, int]:
    """([frames, 2] (yaw, pitch) changes, index of the moving angle)."""
    dc = exp.config.data
    axis = 1 if _AXIS.value == "pitch" else 0
    limit = _RANGE.value
    if limit is None:
        limit = dc.max_redirect_pitch if axis else dc.max_redirect_yaw
    angles = np.zeros((_FRAMES.value, 2), np.float32)
    angles[:, axis] = np.linspace(-limit, limit, _FRAMES.value)
    return exp.check_angles(angles), axis


def _enlarge(images: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(images, _SCALE.value, axis=-3), _SCALE.value, axis=-2)


def main() -> None:
    out, strip = _outputs()
    landmarks = _landmarks()
    sample = _sample_number()
    image = io.load_image(_IMAGE.value) if sample is None else None  # A bad file fails fast.
    exp, params = experiments.load_trained(_WORKDIR.value, "deepwarp")
    image = exp.sample_eye(sample) if image is None else image
    if not _SWEEP.value:
        result = exp.redirect(params, image, [_YAW.value, _PITCH.value], landmarks=landmarks)
        io.save_image(out, _enlarge(result[0]))
        print(f"Wrote {out}: gaze changed by yaw {_YAW.value:+g}, pitch {_PITCH.value:+g} degrees.")
        return
    angles, axis = _sweep_angles(exp)
    frames = _enlarge(exp.redirect(params, image, angles, landmarks=landmarks))
    io.save_grid(strip, frames, ncols=len(frames))
    io.save_gif(out, np.concatenate([frames, frames[-2:0:-1]]), duration_ms=_DURATION.value)
    print(
        f"Wrote {out} and {strip}: {len(frames)} frames, {_AXIS.value} change "
        f"{angles[0, axis]:+g} .. {angles[-1, axis]:+g} degrees and back."
    )


if __name__ == "__main__":
    common.run(main)
