"""Ported VGG checkpoints on disk: a directory with `params.npz` and `metadata.json`.

`params.npz` holds one float32 array per parameter under keys like
`conv1_1/kernel` (HWIO) and `fc6/bias`; `metadata.json` records the architecture,
the input convention, the pooling the weights were trained with, whether the
classifier head is present, the source file's format and sha256, the sha256 of
`params.npz` (verified on every load), whether the weights were rescaled, and the
neural_synth version that wrote it. Loading needs only NumPy and JAX.
"""

import hashlib
import importlib.metadata
import io as io_lib
import json
import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth import io
from neural_synth.models import vgg
from neural_synth.weights import errors

PARAMS_FILE = "params.npz"
METADATA_FILE = "metadata.json"
FORMAT_NAME = "neural_synth.vgg_weights"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("arch", "convention", "pooling", "include_head", "params_sha256")
CONVERT_HINT = "re-create it with `python -m scripts.convert_vgg --src FILE --arch ARCH --out DIR`"


def sha256_file(path: str | os.PathLike, *, chunk_bytes: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def package_version() -> str:
    """The installed neural_synth version ('unknown' when not installed)."""
    try:
        return importlib.metadata.version("neural_synth")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def existing_files(out_dir: str | os.PathLike) -> list[str]:
    """The checkpoint files (params.npz, metadata.json) that already exist in `out_dir`."""
    return [n for n in (PARAMS_FILE, METADATA_FILE) if os.path.lexists(os.path.join(out_dir, n))]


def check_out_dir(out_dir: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Raises unless `save` may write into `out_dir` (call it before slow work).

    Raises:
      NotADirectoryError: `out_dir` is an existing file.
      FileExistsError: `out_dir` already holds a checkpoint and `overwrite` is False.
    """
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise NotADirectoryError(
            f"Cannot write ported weights to {out_dir}: it is a file, not a directory; "
            "choose another out_dir."
        )
    found = existing_files(out_dir) if os.path.isdir(out_dir) else []
    if found and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds ported weights ({', '.join(found)}); choose another "
            "out_dir or pass overwrite=True to replace them."
        )


def save(
    out_dir: str | os.PathLike, params: dict, metadata: dict, *, overwrite: bool = False
) -> dict:
    """Writes `params` ({layer: {'kernel', 'bias'}}) and metadata; returns the full metadata.

    `metadata` needs at least arch, convention and include_head; this adds
    pooling='max' unless given, params_sha256, num_tensors, num_params and the
    neural_synth version. An existing checkpoint in `out_dir` is an error unless
    `overwrite`; both files are written in full to temporary names first and
    renamed only then, so a failure leaves an existing checkpoint untouched.
    """
    out_dir = os.fspath(out_dir)
    check_out_dir(out_dir, overwrite=overwrite)
    os.makedirs(out_dir, exist_ok=True)
    flat = {
        f"{layer}/{kind}": np.asarray(value, np.float32)
        for layer, kinds in params.items()
        for kind, value in kinds.items()
    }
    buffer = io_lib.BytesIO()
    np.savez(buffer, **flat)
    data = buffer.getvalue()
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "pooling": "max",
        **metadata,
        "params_sha256": hashlib.sha256(data).hexdigest(),
        "num_tensors": len(flat),
        "num_params": int(sum(a.size for a in flat.values())),
        "neural_synth_version": package_version(),
    }
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    io.write_atomically(os.path.join(out_dir, PARAMS_FILE), lambda f: f.write(data))
    io.write_atomically(os.path.join(out_dir, METADATA_FILE), lambda f: f.write(text.encode()))
    return meta


def _checkpoint_dir(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if os.path.isfile(path) and os.path.basename(path) in (PARAMS_FILE, METADATA_FILE):
        path = os.path.dirname(path) or "."
    if not os.path.isdir(path):
        raise errors.WeightFormatError(f"no ported VGG checkpoint at {path}; {CONVERT_HINT}")
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    """The validated metadata.json of a ported checkpoint directory."""
    meta_path = os.path.join(_checkpoint_dir(path), METADATA_FILE)
    if not os.path.isfile(meta_path):
        raise errors.WeightFormatError(
            f"{path} is not a ported VGG checkpoint: {METADATA_FILE} is missing; {CONVERT_HINT}"
        )
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise errors.WeightFormatError(f"corrupt {meta_path} ({e}); {CONVERT_HINT}") from e
    missing = [k for k in REQUIRED_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise errors.WeightFormatError(f"{meta_path} lacks {', '.join(missing)}; {CONVERT_HINT}")
    if meta["arch"] not in vgg.ARCHS or meta["convention"] not in vgg.CONVENTIONS:
        raise errors.WeightFormatError(
            f"{meta_path} names arch {meta['arch']!r} / convention {meta['convention']!r}, "
            f"expected one of {sorted(vgg.ARCHS)} / {sorted(vgg.CONVENTIONS)}"
        )
    return meta


def _read_npz(params_path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(params_path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise errors.WeightFormatError(f"corrupt {params_path} ({e}); {CONVERT_HINT}") from e


def _check_params(flat: dict[str, np.ndarray], meta: dict, params_path: str) -> dict:
    """Nests and checks `flat` against `vgg.param_shapes`; returns {layer: {kind: array}}."""
    shapes = vgg.param_shapes(meta["arch"], include_head=bool(meta["include_head"]))
    expected = {
        f"{layer}/{kind}": s for layer, kinds in shapes.items() for kind, s in kinds.items()
    }
    missing, extra = sorted(set(expected) - set(flat)), sorted(set(flat) - set(expected))
    if missing or extra:
        raise errors.WeightFormatError(
            f"{params_path} does not match {meta['arch']} (missing {missing[:4]}, unexpected "
            f"{extra[:4]}); {CONVERT_HINT}"
        )
    params = {}
    for key, shape in expected.items():
        array = flat[key]
        if array.shape != tuple(shape) or array.dtype != np.float32:
            raise errors.WeightFormatError(
                f"{params_path}: {key} is {array.dtype}{list(array.shape)}, expected "
                f"float32{list(shape)}; {CONVERT_HINT}"
            )
        layer, kind = key.split("/")
        params.setdefault(layer, {})[kind] = array
    return params


def load_params(path: str | os.PathLike) -> tuple[dict, dict]:
    """(metadata, params as NumPy arrays) of a ported checkpoint, checksum verified."""
    meta = read_metadata(path)
    params_path = os.path.join(_checkpoint_dir(path), PARAMS_FILE)
    if not os.path.isfile(params_path):
        raise errors.WeightFormatError(f"{params_path} is missing; {CONVERT_HINT}")
    actual = sha256_file(params_path)
    if actual != meta["params_sha256"]:
        raise errors.WeightFormatError(
            f"{params_path} is corrupt or was modified: its sha256 {actual} does not match "
            f"{meta['params_sha256']} recorded in {METADATA_FILE}; {CONVERT_HINT}"
        )
    return meta, _check_params(_read_npz(params_path), meta, params_path)


def load_vgg(path: str | os.PathLike, *, pooling: str | None = None) -> tuple[vgg.VGG, dict]:
    """Loads a ported VGG checkpoint directory written by `scripts/convert_vgg.py`.

    Args:
      path: the checkpoint directory (or its params.npz / metadata.json).
      pooling: 'max' or 'avg'; None uses the pooling recorded in the metadata
        (the one the weights were trained with, 'max').

    Returns:
      (module, params): a `vgg.VGG` carrying the weights' arch and input convention,
      and its params {layer: {'kernel', 'bias'}} as float32 jax arrays, ready for
      `module.apply({'params': params}, images, layers=...)`.

    Raises:
      WeightFormatError: missing directory or files, checksum mismatch, wrong shapes.
    """
    meta, params = load_params(path)
    pooling = pooling or meta["pooling"]
    if pooling not in vgg.POOLINGS:
        raise ValueError(f"pooling must be one of {vgg.POOLINGS}, got {pooling!r}.")
    module = vgg.VGG(arch=meta["arch"], pooling=pooling, convention=meta["convention"])
    return module, jax.tree.map(jnp.asarray, params)


def frozen_vgg(path: str, *, layers, seed: int = 0) -> tuple[vgg.VGG, dict]:
    """(module, frozen variables) for losses on VGG features: `vgg.freeze`d, ready for jit.

    With `path`, the ported weights stored there (`load_vgg`); with an empty
    path, a random VGG19 with average pooling (smoother gradients, as Gatys et
    al. recommend) and only the convolutions up to the deepest of `layers`
    (`vgg.random_params`, drawn from `seed`).
    """
    if path:
        module, params = load_vgg(path)
    else:
        module = vgg.VGG(arch="vgg19", pooling="avg")
        params = vgg.random_params("vgg19", layers, seed)
    return module, vgg.freeze({"params": params})
