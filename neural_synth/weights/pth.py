"""Reads PyTorch `.pth` state dicts as NumPy arrays, without PyTorch.

Two on-disk formats exist, both written by `torch.save`:

- the zip format (PyTorch >= 1.6): a zip archive holding `<archive>/data.pkl`
  (the pickled object, whose tensors refer to storages by persistent id
  `('storage', storage_type, key, location, numel)`), one raw little- or
  big-endian record `<archive>/data/<key>` per storage, and `<archive>/byteorder`;
- the legacy format (PyTorch < 1.6; e.g. torchvision's `vgg16-397923af.pth` and
  `vgg19-dcbb9e9d.pth`): consecutive pickles (magic number, protocol version,
  system info, the object with persistent ids `('storage', storage_type, root_key,
  location, numel, view_metadata)`, the sorted list of storage keys), followed by
  each storage as an int64 element count and its raw little-endian bytes.

Tensors are pickled as `torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, ...)` (`_rebuild_tensor` in files from 2017). Unpickling runs with a
restricted unpickler that knows only `collections.OrderedDict`, these rebuild
functions, `_rebuild_parameter` and the typed storage classes, all mapped to
stand-ins defined here: a file that names anything else is refused, so reading an
untrusted file cannot execute code. Tensors become NumPy arrays honouring storage
offset, size and stride; float16 and bfloat16 are widened to float32.
"""

import collections
import dataclasses
import io
import math
import os
import pickle
import struct
import zipfile
import zlib
from typing import Any

import numpy as np

from neural_synth.weights import errors

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# torch storage class -> NumPy dtype (without byte order); 'bf16' is decoded by hand.
STORAGE_DTYPES = {
    "FloatStorage": "f4",
    "DoubleStorage": "f8",
    "HalfStorage": "f2",
    "BFloat16Storage": "bf16",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "b1",
}
WRAPPER_KEYS = ("state_dict", "model")  # Checkpoint dicts that wrap a state dict.


@dataclasses.dataclass(frozen=True)
class StorageType:
    """Stand-in for a `torch.<Name>Storage` class named in a pickle."""

    name: str


@dataclasses.dataclass(frozen=True)
class StorageRef:
    """A (view of a) storage: `numel` elements from element `offset` of record `key`."""

    key: str
    dtype: str
    numel: int
    offset: int = 0


@dataclasses.dataclass(frozen=True)
class TensorRef:
    """A tensor not yet read: a strided window into a storage."""

    storage: StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride, *unused) -> TensorRef:
    """Stand-in for torch._utils._rebuild_tensor(_v2): records where the data lives."""
    del unused  # requires_grad, backward hooks, metadata.
    if not isinstance(storage, StorageRef):
        raise errors.WeightFormatError("corrupt .pth file: a tensor does not refer to a storage")
    return TensorRef(storage, int(storage_offset), tuple(map(int, size)), tuple(map(int, stride)))


def _rebuild_parameter(data, *unused):
    """Stand-in for torch._utils._rebuild_parameter(_with_state): a parameter is its data."""
    del unused
    return data


SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): StorageType(name) for name in STORAGE_DTYPES},
}


class _BoundedFile:
    """A binary file whose reads never ask for more bytes than are left in it.

    A damaged size field in a pickle must not make the reader allocate a buffer
    of that size before finding out the file is shorter.
    """

    def __init__(self, f):
        self._f, self._size = f, os.fstat(f.fileno()).st_size

    def read(self, n: int | None = -1) -> bytes:
        left = max(self._size - self._f.tell(), 0)
        return self._f.read(left if n is None or n < 0 else min(n, left))

    def readline(self, limit: int = -1) -> bytes:
        return self._f.readline(limit)


# The pure-Python unpickler: the C one allocates (and zeroes) a memo table as long
# as the largest index a file names, so one damaged LONG_BINPUT costs gigabytes.
class _RestrictedUnpickler(pickle._Unpickler):
    """Unpickler that resolves only `SAFE_GLOBALS` and delegates persistent ids."""

    def __init__(self, file, persistent_fn, path: str):
        bounded = file if isinstance(file, io.BytesIO) else _BoundedFile(file)
        super().__init__(bounded, encoding="utf-8")
        self._persistent_fn = persistent_fn
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        found = SAFE_GLOBALS.get((module, name))
        if found is None:
            raise errors.WeightFormatError(
                f"refusing to load {module}.{name} from {self._path}: a weights file may only "
                "hold tensors in (ordered) dicts; save `model.state_dict()` instead"
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent_fn is None:
            raise errors.WeightFormatError(f"corrupt .pth file {self._path}: unexpected storage")
        return self._persistent_fn(pid)


def _parse_pid(pid: Any, path: str, legacy: bool) -> tuple:
    """Validates a storage persistent id; returns (storage_type name, key, numel, view)."""
    if not isinstance(pid, tuple) or not pid:
        raise errors.WeightFormatError(f"corrupt .pth file {path}: bad persistent id {pid!r}")
    typename = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
    if typename == "module":
        raise errors.WeightFormatError(
            f"{path} holds a whole pickled nn.Module; save `model.state_dict()` instead"
        )
    expected_len = 6 if legacy else 5
    if typename != "storage" or len(pid) != expected_len or not isinstance(pid[1], StorageType):
        raise errors.WeightFormatError(f"corrupt .pth file {path}: bad persistent id {pid!r}")
    view = pid[5] if legacy else None
    return pid[1].name, str(pid[2]), int(pid[4]), view


def _decode(raw: bytes, dtype: str, numel: int, byteorder: str, what: str) -> np.ndarray:
    """Raw storage bytes -> flat array of `numel` elements (bfloat16 kept as uint16)."""
    order = "<" if byteorder == "little" else ">"
    np_dtype = np.dtype(order + ("u2" if dtype == "bf16" else dtype))
    if len(raw) < numel * np_dtype.itemsize:
        raise errors.WeightFormatError(
            f"file truncated or corrupt: {what} has a storage of {len(raw)} bytes, "
            f"{numel * np_dtype.itemsize} needed"
        )
    return np.frombuffer(raw, np_dtype, count=numel)


def _to_array(ref: TensorRef, flat: np.ndarray, dtype: str, name: str) -> np.ndarray:
    """Applies offset/size/stride to a flat storage array; floats become float32."""
    size, stride = ref.size, ref.stride
    if len(size) != len(stride) or min(size + stride, default=0) < 0:
        raise errors.WeightFormatError(f"corrupt tensor {name}: size {size}, stride {stride}")
    if math.prod(size) > flat.size:  # Zero strides could make a damaged file unbounded.
        raise errors.WeightFormatError(
            f"tensor {name} has {math.prod(size)} elements but its storage only {flat.size} "
            "(file truncated or corrupt)"
        )
    if math.prod(size) > 0:
        last = ref.offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if ref.offset < 0 or last >= flat.size:
            raise errors.WeightFormatError(
                f"tensor {name} reaches element {last} of a storage with {flat.size} elements "
                "(file truncated or corrupt)"
            )
    base = flat[ref.offset :] if flat.size else flat
    view = np.lib.stride_tricks.as_strided(
        base, size, [s * flat.itemsize for s in stride], writeable=False
    )
    if dtype == "bf16":
        return (view.astype(np.uint32) << 16).view(np.float32)
    if view.dtype.kind == "f":
        return view.astype(np.float32)  # Also converts big-endian data to native.
    return view.astype(view.dtype.newbyteorder("="))


def _materialize(refs: dict, load_fn, byteorder: str, path: str) -> dict[str, np.ndarray]:
    """{name: TensorRef} -> {name: array}; non-tensor entries are dropped."""
    cache, out = {}, {}
    for name, ref in refs.items():
        if not isinstance(ref, TensorRef):
            continue
        st = ref.storage
        if st.key not in cache:
            cache[st.key] = load_fn(st.key)
        root = _decode(cache[st.key], st.dtype, st.offset + st.numel, byteorder, path)
        out[str(name)] = _to_array(ref, root[st.offset :], st.dtype, str(name))
    return out


def _unwrap(obj: Any, path: str) -> dict:
    """The state dict inside `obj` (itself, or under 'state_dict' / 'model')."""
    if not isinstance(obj, dict):
        raise errors.WeightFormatError(
            f"{path} holds a {type(obj).__name__}, not a state dict of tensors"
        )
    if not any(isinstance(v, TensorRef) for v in obj.values()):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                return _unwrap(obj[key], path)
        raise errors.WeightFormatError(
            f"{path} holds no tensors (keys: {', '.join(map(str, list(obj)[:8]))}); expected a "
            f"state dict, possibly wrapped under {' or '.join(map(repr, WRAPPER_KEYS))}"
        )
    prefix = "module."  # nn.DataParallel wraps every name.
    if all(str(k).startswith(prefix) for k in obj):
        obj = {str(k)[len(prefix) :]: v for k, v in obj.items()}
    return obj


def _read_zip(zf: zipfile.ZipFile, path: str) -> dict[str, np.ndarray]:
    names = set(zf.namelist())
    pickles = sorted(n for n in names if n.endswith("/data.pkl") and n.count("/") == 1)
    if not pickles:
        raise errors.WeightFormatError(
            f"{path} is a zip archive without <name>/data.pkl: not a PyTorch checkpoint"
        )
    prefix = pickles[0][: -len("data.pkl")]
    if prefix + "constants.pkl" in names:
        raise errors.WeightFormatError(
            f"{path} is a TorchScript archive; save `model.state_dict()` with torch.save instead"
        )
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = zf.read(prefix + "byteorder").decode("ascii").strip()

    def persistent(pid):
        dtype_name, key, numel, _ = _parse_pid(pid, path, legacy=False)
        return StorageRef(key, STORAGE_DTYPES[dtype_name], numel)

    def load(key):
        record = f"{prefix}data/{key}"
        if record not in names:
            raise errors.WeightFormatError(f"file truncated or corrupt: {path} lacks {record}")
        return zf.read(record)

    obj = _RestrictedUnpickler(io.BytesIO(zf.read(pickles[0])), persistent, path).load()
    return _materialize(_unwrap(obj, path), load, byteorder, path)


def _read_legacy(f, path: str) -> dict[str, np.ndarray]:
    header = [_RestrictedUnpickler(f, None, path).load() for _ in range(3)]
    if header[0] != LEGACY_MAGIC or header[1] != LEGACY_PROTOCOL:
        raise errors.WeightFormatError(f"not a PyTorch .pth file: {path} (bad magic number)")
    byteorder = "little"  # Legacy storages are always written little-endian.
    roots: dict[str, tuple[str, int]] = {}

    def persistent(pid):
        dtype_name, key, numel, view = _parse_pid(pid, path, legacy=True)
        dtype = STORAGE_DTYPES[dtype_name]
        roots.setdefault(key, (dtype, numel))
        if view is None:
            return StorageRef(key, dtype, numel)
        _, view_offset, view_numel = view
        return StorageRef(key, dtype, int(view_numel), int(view_offset))

    obj = _RestrictedUnpickler(f, persistent, path).load()
    data = {}
    for key in _RestrictedUnpickler(f, None, path).load():
        (numel,) = struct.unpack("<q", _read_exact(f, 8, path))
        dtype = roots[str(key)][0]
        itemsize = 2 if dtype == "bf16" else np.dtype(dtype).itemsize
        data[str(key)] = _read_exact(f, numel * itemsize, path)
    return _materialize(_unwrap(obj, path), data.__getitem__, byteorder, path)


def _read_exact(f, num_bytes: int, path: str) -> bytes:
    # A damaged size field must not allocate more than the file holds.
    if not 0 <= num_bytes <= os.fstat(f.fileno()).st_size - f.tell():
        raise errors.WeightFormatError(f"file truncated or not a PyTorch .pth file: {path}")
    raw = f.read(num_bytes)
    if len(raw) != num_bytes:
        raise errors.WeightFormatError(f"file truncated or not a PyTorch .pth file: {path}")
    return raw


def is_pth(head: bytes) -> bool:
    """Whether the first bytes of a file look like either .pth format."""
    return head.startswith(b"PK\x03\x04") or head.startswith(b"\x80\x02\x8a\x0a")


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads the tensors of a `torch.save`d state dict (zip or legacy format).

    Accepts a plain state dict or a checkpoint dict that wraps it under
    'state_dict' or 'model'; strips a DataParallel 'module.' prefix. Returns
    {name: array} with floating tensors as float32 and PyTorch's shapes (e.g.
    conv weights [O, I, kh, kw]). Raises `WeightFormatError` for anything else.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(512)
            if head.startswith(b"PK\x03\x04"):
                with zipfile.ZipFile(f) as zf:
                    return _read_zip(zf, path)
            if head[257:262] == b"ustar":
                raise errors.WeightFormatError(
                    f"{path} is a tar-format checkpoint from PyTorch < 0.1.10; load it with torch "
                    "and re-save the state dict, or use the current torchvision file"
                )
            f.seek(0)
            return _read_legacy(f, path)
    except errors.WeightFormatError:
        raise
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise  # Not a problem of the file's content; the message says what it is.
    except (
        OSError,  # zipfile seeking to offsets a damaged directory names.
        NotImplementedError,  # zipfile: a damaged version or compression method field.
        zlib.error,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        EOFError,
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        AttributeError,
        struct.error,
        UnicodeDecodeError,
        OverflowError,  # A damaged pickle size field beyond any index.
        MemoryError,  # A damaged pickle size field the unpickler tried to allocate.
    ) as e:
        raise errors.WeightFormatError(
            f"file truncated or not a PyTorch .pth file: {path} ({type(e).__name__}: {e})"
        ) from e
