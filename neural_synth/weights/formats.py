"""Reads VGG weights files into NumPy tensors in their own layout, detecting the format.

Supported files (no source framework is needed to read them):

- PyTorch `.pth` state dicts, zip or legacy format (`pth.read_state_dict`), in
  torchvision's layout (`features.{i}.weight` [O, I, 3, 3], `classifier.{0,3,6}`)
  or timm's (`pre_logits.fc1.weight` [4096, 512, 7, 7], `pre_logits.fc2.weight`
  [4096, 4096, 1, 1], `head.fc.weight` [1000, 4096]);
- `.safetensors` files in either of those layouts;
- Keras `.h5` weight files of keras-applications VGG16/VGG19, with or without
  top: a group per layer (`block{b}_conv{i}`, `fc1`, `fc2`, `predictions`) whose
  `weight_names` attribute lists its kernel and bias datasets (Keras 2 names like
  `block1_conv1/kernel:0` and Keras 1 names like `block1_conv1_W_1:0` alike).

The format is detected from the file's first bytes (zip or pickle, HDF5
signature, safetensors JSON header), falling back on the extension. torchvision
and timm weights expect the 'torchvision' input convention, Keras weights
(converted from Caffe) the 'caffe' one.
"""

import dataclasses
import json
import os
import re
import struct

import h5py
import numpy as np
import safetensors

from neural_synth.weights import errors, pth

FORMATS = ("pth", "safetensors", "h5")
EXTENSIONS = {
    ".pth": "pth",
    ".pt": "pth",
    ".ckpt": "pth",
    ".tar": "pth",
    ".safetensors": "safetensors",
    ".h5": "h5",
    ".hdf5": "h5",
}
LAYOUT_CONVENTIONS = {"torchvision": "torchvision", "timm": "torchvision", "keras": "caffe"}
FORMAT_NAMES = {"pth": "PyTorch .pth", "safetensors": "safetensors", "h5": "Keras HDF5 (.h5)"}
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MAX_SAFETENSORS_HEADER = 100 << 20


@dataclasses.dataclass(frozen=True)
class Source:
    """The tensors of one weights file, named and shaped as in that file.

    Attributes:
      path: the file read.
      source_format: 'pth', 'safetensors' or 'h5'.
      layout: 'torchvision', 'timm' or 'keras' (how tensors are named and shaped).
      tensors: {name: float32 array} (integer tensors keep their dtype).
    """

    path: str
    source_format: str
    layout: str
    tensors: dict[str, np.ndarray]

    @property
    def convention(self) -> str:
        """The input convention (`vgg.CONVENTIONS` key) the weights were trained with."""
        return LAYOUT_CONVENTIONS[self.layout]


def sniff_format(path: str | os.PathLike) -> str | None:
    """The format the file's first bytes show ('pth', 'safetensors', 'h5'), or None."""
    with open(path, "rb") as f:
        head = f.read(16)
    if pth.is_pth(head):
        return "pth"
    if head.startswith(HDF5_MAGIC):
        return "h5"
    if len(head) >= 9 and head[8:9] == b"{":
        (size,) = struct.unpack("<Q", head[:8])
        if size <= MAX_SAFETENSORS_HEADER:
            return "safetensors"
    return None


def _resolve_format(path: str, source_format: str) -> str:
    if source_format != "auto" and source_format not in FORMATS:
        raise ValueError(f"Unknown weights format {source_format!r}; expected auto or {FORMATS}.")
    sniffed = sniff_format(path)
    if source_format == "auto":
        found = sniffed or EXTENSIONS.get(os.path.splitext(path)[1].lower())
        if found is None:
            raise errors.WeightFormatError(
                f"unrecognized weights file {path}: expected a PyTorch .pth, a .safetensors "
                "or a Keras .h5 file (pass --format to choose the reader)"
            )
        return found
    if sniffed is not None and sniffed != source_format:
        raise errors.WeightFormatError(
            f"{path} is a {FORMAT_NAMES[sniffed]} file, not {FORMAT_NAMES[source_format]}; "
            f"use --format {sniffed} (or auto)"
        )
    return source_format


def _torch_layout(tensors: dict[str, np.ndarray], path: str) -> str:
    if any(k.startswith(("pre_logits.", "head.fc.")) for k in tensors):
        return "timm"
    if any(k.startswith("features.") for k in tensors):
        return "torchvision"
    sample = ", ".join(sorted(tensors)[:6]) or "none"
    raise errors.WeightFormatError(
        f"{path} holds no VGG tensors (no features.* names; found {sample}); expected "
        "torchvision or timm VGG weights"
    )


def _float32(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32) if array.dtype.kind == "f" else array


def _safetensors_header(path: str) -> tuple[int, dict]:
    """(header length, header dict); checks every tensor lies inside the file."""
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise errors.WeightFormatError(f"file truncated or not a safetensors file: {path}")
        (size,) = struct.unpack("<Q", head)
        if size > min(file_size - 8, MAX_SAFETENSORS_HEADER):
            raise errors.WeightFormatError(f"file truncated or not a safetensors file: {path}")
        try:
            header = json.loads(f.read(size))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise errors.WeightFormatError(
                f"file truncated or not a safetensors file: {path} ({e})"
            ) from e
    data_size = file_size - 8 - size
    try:
        ends = {
            n: int(info["data_offsets"][1]) for n, info in header.items() if n != "__metadata__"
        }
    except (KeyError, TypeError, IndexError, ValueError, AttributeError) as e:
        raise errors.WeightFormatError(f"corrupt safetensors header in {path} ({e!r})") from e
    past = [n for n, end in ends.items() if end > data_size]
    if past:
        raise errors.WeightFormatError(
            f"file truncated or not a safetensors file: {path} (tensor {past[0]} lies past the "
            "end of the file)"
        )
    return size, header


def _read_bf16(path: str, start: int, shape: list[int]) -> np.ndarray:
    raw = np.fromfile(path, dtype="<u2", count=int(np.prod(shape)), offset=start)
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(shape)


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """{name: array} of a .safetensors file; float16/bfloat16 become float32."""
    size, header = _safetensors_header(path)
    out = {}
    try:
        with safetensors.safe_open(path, framework="numpy") as f:
            for name in f.keys():
                info = header[name]
                if info["dtype"] == "BF16":  # NumPy has no bfloat16; decode by hand.
                    start = 8 + size + info["data_offsets"][0]
                    out[name] = _read_bf16(path, start, info["shape"])
                else:
                    out[name] = _float32(f.get_tensor(name))
    except errors.WeightFormatError:
        raise
    except Exception as e:  # safetensors raises its own SafetensorError (an Exception).
        raise errors.WeightFormatError(
            f"file truncated or not a safetensors file: {path} ({e})"
        ) from e
    return out


def _strings(value) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.atleast_1d(value)]


def _weight_kind(name: str, position: int) -> str:
    """'kernel' or 'bias' from a Keras weight name ('fc1/kernel:0', 'fc1_W_1:0')."""
    base = name.rsplit("/", 1)[-1].split(":")[0]
    if base == "kernel" or re.search(r"_W(_\d+)?$", base):
        return "kernel"
    if base == "bias" or re.search(r"_b(_\d+)?$", base):
        return "bias"
    return ("kernel", "bias")[min(position, 1)]


def _layer_weights(group: h5py.Group) -> dict[str, np.ndarray]:
    """{'kernel': array, 'bias': array} of one Keras layer group."""
    if "weight_names" in group.attrs:
        names = _strings(group.attrs["weight_names"])
    else:  # Not a Keras-written group; take its datasets in order.
        names = []
        group.visititems(lambda n, obj: names.append(n) if isinstance(obj, h5py.Dataset) else None)
    return {_weight_kind(n, i): _float32(np.asarray(group[n])) for i, n in enumerate(names)}


def read_keras_h5(path: str) -> dict[str, np.ndarray]:
    """{'<layer>/kernel' | '<layer>/bias': array} of a Keras (2 or 1) weights .h5 file."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise errors.WeightFormatError(f"file truncated or not an HDF5 file: {path} ({e})") from e
    try:
        with f:
            root = f["model_weights"] if "model_weights" in f else f
            if "layer_names" not in root.attrs:
                kind = "a Keras 3 .weights.h5 file" if "layers" in root else "not a Keras file"
                raise errors.WeightFormatError(
                    f"{path} has no Keras 'layer_names' attribute ({kind}); expected a Keras 2 "
                    "weights file such as vgg19_weights_tf_dim_ordering_tf_kernels.h5"
                )
            tensors = {}
            for layer in _strings(root.attrs["layer_names"]):
                for kind, array in _layer_weights(root[layer]).items():
                    tensors[f"{layer}/{kind}"] = array
            return tensors
    except errors.WeightFormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:  # h5py's errors.
        raise errors.WeightFormatError(
            f"file truncated or corrupt Keras weights file: {path} ({e})"
        ) from e


def read_source(path: str | os.PathLike, *, source_format: str = "auto") -> Source:
    """Reads a VGG weights file ('auto' detects pth / safetensors / h5 from its content)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise errors.WeightFormatError(f"no such weights file: {path}")
    if os.path.getsize(path) == 0:
        raise errors.WeightFormatError(f"weights file {path} is empty (0 bytes); copy it again")
    fmt = _resolve_format(path, source_format)
    if fmt == "h5":
        return Source(path, fmt, "keras", read_keras_h5(path))
    tensors = pth.read_state_dict(path) if fmt == "pth" else read_safetensors(path)
    return Source(path, fmt, _torch_layout(tensors, path), tensors)
