"""Maps VGG weights from torchvision / timm / Keras layouts to neural_synth's flax params.

Our params (`vgg.param_shapes`): conv kernels HWIO [3, 3, in, out] plus bias;
`fc6`/`fc7`/`fc8` Dense kernels [in, out], fc6's input being pool5 average-pooled
to 7x7 and flattened NHWC (row = (h * 7 + w) * 512 + c).

- torchvision: conv `features.{i}.weight` [O, I, 3, 3] -> transpose (2, 3, 1, 0)
  (PyTorch convolutions are cross-correlations, as ours, so no flip);
  `classifier.0.weight` [4096, 25088] flattens NCHW (c * 49 + h * 7 + w), so it is
  reshaped to [4096, 512, 7, 7] and permuted to our (h, w, c) rows;
  `classifier.3/6.weight` [out, in] are transposed.
- timm: the same convs; `pre_logits.fc1.weight` [4096, 512, 7, 7] (a 7x7 conv
  on pool5), `pre_logits.fc2.weight` [4096, 4096, 1, 1], `head.fc.weight`.
- Keras: `block{b}_conv{i}` kernels are already HWIO cross-correlations and `fc1`
  reads the NHWC flatten of 7x7x512, as ours; copied unchanged.

Every expected tensor is checked for presence, floating dtype, shape and finite
values; the architecture is detected from the file so that a VGG16 file read as
VGG19 (or the reverse) fails with the fix in the message.
"""

import dataclasses
import os
import re
from collections.abc import Callable

import numpy as np

from neural_synth.models import vgg
from neural_synth.weights import errors, formats, rescale, store

HEAD_KEYS = {  # layout -> source prefix of fc6, fc7, fc8.
    "torchvision": ("classifier.0", "classifier.3", "classifier.6"),
    "timm": ("pre_logits.fc1", "pre_logits.fc2", "head.fc"),
    "keras": ("fc1", "fc2", "predictions"),
}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One expected source tensor and how it becomes one of our params."""

    layer: str  # Our layer, e.g. 'conv5_4'.
    kind: str  # 'kernel' or 'bias'.
    key: str  # Source tensor name, e.g. 'features.34.weight'.
    shape: tuple[int, ...]  # Expected source shape.
    to_ours: Callable[[np.ndarray], np.ndarray]


def _same(w: np.ndarray) -> np.ndarray:
    return w


def _oihw_to_hwio(w: np.ndarray) -> np.ndarray:
    return w.transpose(2, 3, 1, 0)


def _linear(w: np.ndarray) -> np.ndarray:
    return w.T


def _fc6_from_linear(w: np.ndarray) -> np.ndarray:
    """[out, C*G*G] flattened (c, h, w) -> [G*G*C, out] flattened (h, w, c)."""
    grid, width = vgg.HEAD_GRID, vgg.WIDTHS[-1]
    return _fc6_from_conv(w.reshape(w.shape[0], width, grid, grid))


def _fc6_from_conv(w: np.ndarray) -> np.ndarray:
    """[out, C, G, G] -> [G*G*C, out]."""
    return w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0])


def _fc7_from_conv(w: np.ndarray) -> np.ndarray:
    """[out, in, 1, 1] -> [in, out]."""
    return w.reshape(w.shape[:2]).T


def torch_conv_indices(arch: str) -> list[int]:
    """Indices of the convs in torchvision's `features` Sequential (conv, ReLU, ..., pool)."""
    indices, i = [], 0
    for depth in vgg.ARCHS[arch]:
        for _ in range(depth):
            indices.append(i)
            i += 2  # Conv2d, ReLU.
        i += 1  # MaxPool2d.
    return indices


def _conv_entries(layout: str, arch: str, shapes: dict) -> list[Entry]:
    entries = []
    for layer, index in zip(vgg.conv_layer_names(arch), torch_conv_indices(arch), strict=True):
        kernel, bias = shapes[layer]["kernel"], shapes[layer]["bias"]
        if layout == "keras":
            name = f"block{layer[4]}_conv{layer[6:]}"
            entries += [
                Entry(layer, "kernel", f"{name}/kernel", kernel, _same),
                Entry(layer, "bias", f"{name}/bias", bias, _same),
            ]
        else:
            oihw = (kernel[3], kernel[2], kernel[0], kernel[1])
            entries += [
                Entry(layer, "kernel", f"features.{index}.weight", oihw, _oihw_to_hwio),
                Entry(layer, "bias", f"features.{index}.bias", bias, _same),
            ]
    return entries


def _head_entries(layout: str, shapes: dict) -> list[Entry]:
    entries = []
    for layer, prefix in zip(("fc6", "fc7", "fc8"), HEAD_KEYS[layout], strict=True):
        fan_in, fan_out = shapes[layer]["kernel"]
        bias = Entry(layer, "bias", f"{prefix}.bias", (fan_out,), _same)
        if layout == "keras":
            kernel = Entry(layer, "kernel", f"{prefix}/kernel", (fan_in, fan_out), _same)
            bias = dataclasses.replace(bias, key=f"{prefix}/bias")
        elif layout == "timm" and layer == "fc6":
            grid, width = vgg.HEAD_GRID, vgg.WIDTHS[-1]
            shape = (fan_out, width, grid, grid)
            kernel = Entry(layer, "kernel", f"{prefix}.weight", shape, _fc6_from_conv)
        elif layout == "timm" and layer == "fc7":
            shape = (fan_out, fan_in, 1, 1)
            kernel = Entry(layer, "kernel", f"{prefix}.weight", shape, _fc7_from_conv)
        else:
            to_ours = _fc6_from_linear if layer == "fc6" else _linear
            kernel = Entry(layer, "kernel", f"{prefix}.weight", (fan_out, fan_in), to_ours)
        entries += [kernel, bias]
    return entries


def expected_entries(layout: str, arch: str, *, include_head: bool) -> list[Entry]:
    """Every source tensor a `layout` file of `arch` must hold, in our layer order."""
    shapes = vgg.param_shapes(arch, include_head=include_head)
    entries = _conv_entries(layout, arch, shapes)
    return entries + (_head_entries(layout, shapes) if include_head else [])


def _conv_kernel_keys(source: formats.Source) -> set[str]:
    pattern = r"block\d+_conv\d+/kernel" if source.layout == "keras" else r"features\.\d+\.weight"
    return {k for k in source.tensors if re.fullmatch(pattern, k)}


def detect_arch(source: formats.Source) -> str | None:
    """'vgg16' or 'vgg19' when the file's conv layers are exactly those of one, else None."""
    found = _conv_kernel_keys(source)
    for arch in vgg.ARCHS:
        entries = expected_entries(source.layout, arch, include_head=False)
        if found == {e.key for e in entries if e.kind == "kernel"}:
            return arch
    return None


def _check_supported(source: formats.Source) -> None:
    if any(k.endswith(".running_mean") for k in source.tensors):
        raise errors.WeightFormatError(
            f"{source.path} holds a batch-normalized VGG (vgg16_bn/vgg19_bn), which is not "
            "supported; use the plain vgg16/vgg19 weights"
        )


def _resolve_arch(source: formats.Source, arch: str, detected: str | None) -> str:
    if arch != "auto":
        if arch not in vgg.ARCHS:
            raise ValueError(f"Unknown arch {arch!r}; expected auto or one of {sorted(vgg.ARCHS)}.")
        return arch
    if detected is None:
        keys = sorted(_conv_kernel_keys(source))
        raise errors.WeightFormatError(
            f"{source.path} does not hold the conv layers of vgg16 or vgg19 ({len(keys)} conv "
            "kernels found); pass --arch to see which tensor is missing"
        )
    return detected


def _resolve_head(source: formats.Source, include_head: bool | str) -> bool:
    if include_head not in (True, False, "auto", "true", "false"):
        raise ValueError(f"include_head must be True, False or 'auto', got {include_head!r}.")
    entries = _head_entries(source.layout, vgg.param_shapes("vgg16", include_head=True))
    present = any(e.key in source.tensors for e in entries)
    if include_head == "auto":
        return present
    wanted = include_head in (True, "true")
    if wanted and not present:
        raise errors.WeightFormatError(
            f"{source.path} has no classifier head (no {entries[0].key} / {entries[-1].key}: "
            "a 'notop' or features-only file); convert with --include_head false"
        )
    return wanted


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ",".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _arch_hint(arch: str, detected: str | None) -> str:
    if detected is None or detected == arch:
        return ""
    return f" — is this a {detected} file? use --arch {detected}"


def _shape_hint(entry: Entry, shape: tuple[int, ...], layout: str) -> str:
    if layout == "keras" and entry.kind == "kernel" and len(shape) == 4:
        if shape == tuple(entry.shape[i] for i in (3, 2, 0, 1)):
            return " — a Theano-ordered ('th_dim_ordering') file? use a *_tf_dim_ordering_* file"
    if entry.layer.startswith("fc"):
        return " — to port only the convolutional layers use --include_head false"
    return ""


def _take(source: formats.Source, entry: Entry, arch: str, detected: str | None) -> np.ndarray:
    """The checked source tensor of `entry`, converted to our layout (float32)."""
    what = f"({entry.layer} {entry.kind}) in {source.path}"
    if entry.key not in source.tensors:
        raise errors.WeightFormatError(
            f"missing tensor {entry.key} {what}{_arch_hint(arch, detected)}"
        )
    array = source.tensors[entry.key]
    if array.dtype.kind != "f":
        raise errors.WeightFormatError(
            f"tensor {entry.key} has dtype {array.dtype}, expected floating point {what}"
        )
    if array.shape != entry.shape:
        hint = _arch_hint(arch, detected) or _shape_hint(entry, array.shape, source.layout)
        raise errors.WeightFormatError(
            f"tensor {entry.key} has shape {_shape(array.shape)}, expected "
            f"{_shape(entry.shape)} {what}{hint}"
        )
    if not np.isfinite(array).all():
        raise errors.WeightFormatError(f"tensor {entry.key} has NaN or Inf values {what}")
    return np.ascontiguousarray(entry.to_ours(array), dtype=np.float32)


def port(
    source: formats.Source, *, arch: str = "auto", include_head: bool | str = "auto"
) -> tuple[str, bool, dict]:
    """Converts a read weights file to our params.

    Args:
      source: from `formats.read_source`.
      arch: 'vgg16', 'vgg19', or 'auto' (detected from the file's conv layers).
      include_head: True / False / 'auto' (port fc6-fc8 when the file has them).

    Returns:
      (arch, include_head, params) with params {layer: {'kernel', 'bias'}} as float32
      NumPy arrays shaped as `vgg.param_shapes(arch, include_head=include_head)`.

    Raises:
      WeightFormatError naming the first missing / misshapen tensor, or the right arch.
    """
    _check_supported(source)
    detected = detect_arch(source)
    arch = _resolve_arch(source, arch, detected)
    head = _resolve_head(source, include_head)
    params: dict = {}
    for entry in expected_entries(source.layout, arch, include_head=head):
        params.setdefault(entry.layer, {})[entry.kind] = _take(source, entry, arch, detected)
    if detected not in (None, arch):  # Every expected tensor exists, but there are more.
        raise errors.WeightFormatError(
            f"{source.path} holds {detected} weights ({len(_conv_kernel_keys(source))} conv "
            f"layers), not {arch}{_arch_hint(arch, detected)}"
        )
    return arch, head, params


def convert_vgg(
    src: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    arch: str = "auto",
    source_format: str = "auto",
    include_head: bool | str = "auto",
    rescale_weights: bool = False,
    rescale_images: str | None = None,
    rescale_size: int = 224,
    overwrite: bool = False,
) -> dict:
    """Ports a VGG weights file to a checkpoint directory readable by `store.load_vgg`.

    Args:
      src: a torchvision/timm `.pth` or `.safetensors` file, or a Keras `.h5` file.
      out_dir: directory to write params.npz and metadata.json into.
      arch: 'vgg16', 'vgg19' or 'auto'.
      source_format: 'auto', 'pth', 'safetensors' or 'h5'.
      include_head: True / False / 'auto' (port the classifier when present).
      rescale_weights: rescale so each conv filter's mean activation is one
        (`rescale.rescale_mean_activation`, as Gatys et al.).
      rescale_images: folder of images for the rescaling; None uses scikit-image's
        sample photos.
      rescale_size: side of the square images used for the rescaling.
      overwrite: replace a checkpoint already in `out_dir` (otherwise an error,
        raised before any work).

    Returns:
      The metadata written (arch, convention, num_tensors, params_sha256, ...).
    """
    store.check_out_dir(out_dir, overwrite=overwrite)
    source = formats.read_source(src, source_format=source_format)
    arch, head, params = port(source, arch=arch, include_head=include_head)
    description = None
    if rescale_weights:
        images, description = rescale.load_images(rescale_images, size=rescale_size)
        module = vgg.VGG(arch=arch, pooling="max", convention=source.convention)
        params = rescale.rescale_mean_activation(module, params, images)
    metadata = {
        "arch": arch,
        "convention": source.convention,
        "pooling": "max",
        "include_head": head,
        "source_format": source.source_format,
        "source_layout": source.layout,
        "source_file": os.path.basename(source.path),
        "source_sha256": store.sha256_file(source.path),
        "rescaled": bool(rescale_weights),
        "rescale_images": description,
    }
    return store.save(out_dir, params, metadata, overwrite=overwrite)
