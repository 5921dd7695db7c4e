"""Ports pretrained VGG16/VGG19 weights to a neural_synth checkpoint directory.

Reads a torchvision or timm `.pth` / `.safetensors` file or a Keras `.h5` file
(no PyTorch or TensorFlow needed), checks every tensor, and writes DIR/params.npz
and DIR/metadata.json for `neural_synth.weights.load_vgg(DIR)`. Nothing is
downloaded; see third_party/NOTICE.md for where to get the files and their licenses.

Example:
  python -m scripts.convert_vgg --src vgg19-dcbb9e9d.pth --arch vgg19 --out weights/vgg19
"""

import os

from absl import flags

from neural_synth import weights
from neural_synth.weights import store
from scripts import common

ARCHS = ("vgg16", "vgg19", "auto")
FORMATS = ("auto", "pth", "safetensors", "h5")
HEAD_CHOICES = ("auto", "true", "false")

_SRC = flags.DEFINE_string(
    "src",
    None,
    "Weights file to port: a torchvision/timm .pth or .safetensors file, or a "
    "Keras .h5 file (e.g. vgg19-dcbb9e9d.pth, vgg19_weights_tf_dim_ordering_tf_kernels.h5).",
)
_ARCH = flags.DEFINE_string(
    "arch",
    None,
    "Architecture of the weights: vgg16, vgg19, or auto to detect it from the "
    "file. A file of the other architecture is an error that names the right one.",
)
_OUT = flags.DEFINE_string(
    "out",
    None,
    "Output directory; params.npz and metadata.json are written into it. A directory that "
    "already holds them is refused unless --overwrite is given.",
)
_OVERWRITE = flags.DEFINE_bool(
    "overwrite",
    False,
    "Replace weights already ported to --out (written in full first, so a failed run "
    "leaves the old ones intact).",
)
_FORMAT = flags.DEFINE_string(
    "format",
    "auto",
    "Source file format: auto (detect from content, then extension), pth, safetensors or h5.",
)
_RESCALE = flags.DEFINE_bool(
    "rescale",
    False,
    "Rescale the weights so that every conv filter's mean activation over "
    "the rescale images and positions is one (Gatys et al. 2015); the network's outputs "
    "change only by a per-filter factor.",
)
_RESCALE_IMAGES = flags.DEFINE_string(
    "rescale_images",
    None,
    "Folder of images (png/jpg/...) for --rescale; default: "
    "scikit-image's bundled sample photos (astronaut, chelsea, coffee, ...).",
)
_INCLUDE_HEAD = flags.DEFINE_string(
    "include_head",
    "auto",
    "Port the classifier head (fc6, fc7, fc8): auto (when the file "
    "has it), true (error if absent), or false (convolutional layers only).",
)


def _check_choice(name: str, value: str | None, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"--{name} must be one of {', '.join(choices)} (got {value!r})")
    return value


def _convert() -> str:
    """Runs the conversion described by the flags; returns the summary line."""
    if not _SRC.value or not _OUT.value:
        raise ValueError("--src and --out are required (see --help)")
    arch = _check_choice("arch", _ARCH.value, ARCHS)
    fmt = _check_choice("format", _FORMAT.value, FORMATS)
    head = _check_choice("include_head", _INCLUDE_HEAD.value, HEAD_CHOICES)
    if _RESCALE_IMAGES.value and not _RESCALE.value:
        raise ValueError("--rescale_images needs --rescale")
    found = store.existing_files(_OUT.value) if os.path.isdir(_OUT.value) else []
    if found and not _OVERWRITE.value:
        raise FileExistsError(
            f"--out {_OUT.value} already holds ported weights ({', '.join(found)}); "
            "pass --overwrite to replace them"
        )
    meta = weights.convert_vgg(
        _SRC.value,
        _OUT.value,
        arch=arch,
        source_format=fmt,
        include_head=head,
        rescale_weights=_RESCALE.value,
        rescale_images=_RESCALE_IMAGES.value,
        overwrite=_OVERWRITE.value,
    )
    return (
        f"ported {meta['arch']} ({meta['source_layout']} {meta['source_format']}, "
        f"{meta['num_tensors']} tensors, head={'yes' if meta['include_head'] else 'no'}, "
        f"convention={meta['convention']}, rescaled={'yes' if meta['rescaled'] else 'no'}) "
        f"to {_OUT.value}; params sha256 {meta['params_sha256']}"
    )


def run() -> None:
    print(_convert())


if __name__ == "__main__":
    common.run(run)
