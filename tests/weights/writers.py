"""Test helpers: random VGG weights in real source layouts, and torch-free file writers.

The `.pth` writers are an independent implementation of PyTorch's two
serialization formats with the standard library's pure-Python pickler: the zip
format (`<archive>/data.pkl` + raw `<archive>/data/<key>` records) and the legacy
format (magic, protocol, sys_info, object, storage keys, raw storages). Where torch
is installed the tests check that `torch.load` reads these files identically.
The Keras writer mimics keras-applications weight files (`layer_names`,
`weight_names` attributes, Keras 2 or Keras 1 dataset names).
"""

import collections
import io
import pickle
import struct
import zipfile

import h5py
import numpy as np

# Written out here, independently of neural_synth.models.vgg.
CFGS = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}  # fmt: skip
SMALL_HEAD = (64, 48, 10)  # fc6, fc7, fc8 widths for fast tests (the real ones: 4096, 4096, 1000).
SMALL_HEAD_WIDTHS = {"fc6": 64, "fc7": 48, "fc8": 10}  # To patch into vgg.HEAD_WIDTHS.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_DTYPES = {"float32": "FloatStorage", "float16": "HalfStorage", "bfloat16": "BFloat16Storage"}


# ---------------------------------------------------------------- random weights


def _he(rng: np.random.Generator, shape: tuple, fan_in: int) -> np.ndarray:
    return (rng.standard_normal(shape, np.float32) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def _bias(rng: np.random.Generator, n: int) -> np.ndarray:
    return (0.1 * rng.standard_normal(n, np.float32)).astype(np.float32)


def torchvision_state_dict(arch: str, *, head=SMALL_HEAD, seed: int = 0) -> dict:
    """Random weights named and shaped as torchvision's VGG state dict (head=None: none)."""
    rng, sd, index, cin = np.random.default_rng(seed), collections.OrderedDict(), 0, 3
    for v in CFGS[arch]:
        if v == "M":
            index += 1
            continue
        sd[f"features.{index}.weight"] = _he(rng, (v, cin, 3, 3), 9 * cin)
        sd[f"features.{index}.bias"] = _bias(rng, v)
        index, cin = index + 2, v
    if head:
        fan_in = 512 * 7 * 7
        for index, width in zip((0, 3, 6), head, strict=True):
            sd[f"classifier.{index}.weight"] = _he(rng, (width, fan_in), fan_in)
            sd[f"classifier.{index}.bias"] = _bias(rng, width)
            fan_in = width
    return sd


def timm_state_dict(torchvision_sd: dict) -> dict:
    """timm's layout of the same weights (as timm's own checkpoint filter makes it)."""
    out = collections.OrderedDict()
    for key, value in torchvision_sd.items():
        if key.startswith("classifier.0."):
            key = key.replace("classifier.0.", "pre_logits.fc1.")
            value = value.reshape(-1, 512, 7, 7) if value.ndim == 2 else value
        elif key.startswith("classifier.3."):
            key = key.replace("classifier.3.", "pre_logits.fc2.")
            value = value.reshape(*value.shape, 1, 1) if value.ndim == 2 else value
        elif key.startswith("classifier.6."):
            key = key.replace("classifier.6.", "head.fc.")
        out[key] = value
    return out


def keras_layers(arch: str, *, head=SMALL_HEAD, seed: int = 1) -> dict:
    """Random {layer name: (kernel, bias)} as in keras-applications (kernels HWIO)."""
    rng, layers, block, conv, cin = np.random.default_rng(seed), {}, 1, 1, 3
    for v in CFGS[arch]:
        if v == "M":
            block, conv = block + 1, 1
            continue
        layers[f"block{block}_conv{conv}"] = (_he(rng, (3, 3, cin, v), 9 * cin), _bias(rng, v))
        conv, cin = conv + 1, v
    if head:
        fan_in = 7 * 7 * 512
        for name, width in zip(("fc1", "fc2", "predictions"), head, strict=True):
            layers[name] = (_he(rng, (fan_in, width), fan_in), _bias(rng, width))
            fan_in = width
    return layers


# ---------------------------------------------------------------- .pth writers


class Global:
    """A module-level name written as a pickle GLOBAL without importing it."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle requires REDUCE callables to be callable.
        raise NotImplementedError


class Storage:
    """A flat storage record: `data` is 1-D, `dtype` one of TORCH_DTYPES."""

    def __init__(self, key: str, data: np.ndarray, dtype: str = "float32"):
        self.key, self.data, self.dtype = key, np.ascontiguousarray(data).ravel(), dtype

    def raw(self, byteorder: str = "little") -> bytes:
        order = "<" if byteorder == "little" else ">"
        if self.dtype == "bfloat16":  # Truncate float32 to its upper 16 bits.
            return (
                (self.data.astype(np.float32).view(np.uint32) >> 16).astype(order + "u2").tobytes()
            )
        return self.data.astype(order + {"float32": "f4", "float16": "f2"}[self.dtype]).tobytes()


class View(Storage):
    """A legacy-format view: `numel` elements from `offset` of root storage `root`."""

    def __init__(self, root: Storage, view_key: str, offset: int, numel: int):
        super().__init__(root.key, root.data, root.dtype)
        self.view = (view_key, offset, numel)


class Tensor:
    """A tensor as torch pickles it: (storage, offset, size, stride)."""

    def __init__(self, storage, offset, size, stride, *, v2: bool = True):
        self.storage, self.offset, self.v2 = storage, offset, v2
        self.size, self.stride = tuple(size), tuple(stride)

    def __reduce__(self):
        args = (self.storage, self.offset, self.size, self.stride)
        if self.v2:
            return Global("torch._utils", "_rebuild_tensor_v2"), (
                *args,
                False,
                collections.OrderedDict(),
            )
        return Global("torch._utils", "_rebuild_tensor"), args


class _Pickler(pickle._Pickler):  # The pure-Python pickler lets us add dispatch entries.
    dispatch = pickle._Pickler.dispatch.copy()

    def __init__(self, file, persistent_fn):
        super().__init__(file, protocol=2)
        self._persistent_fn = persistent_fn

    def persistent_id(self, obj):
        return self._persistent_fn(obj) if isinstance(obj, Storage) else None

    def _save_global(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[Global] = _save_global


def as_tensors(state_dict: dict, *, dtype: str = "float32", v2: bool = True) -> dict:
    """{name: array} -> {name: Tensor} with one contiguous storage per array."""
    out = collections.OrderedDict()
    for i, (name, value) in enumerate(state_dict.items()):
        if isinstance(value, Tensor):
            out[name] = value
            continue
        strides = [s // value.itemsize for s in np.ascontiguousarray(value).strides]
        out[name] = Tensor(Storage(str(i), value, dtype), 0, value.shape, strides, v2=v2)
    return out


def _storages(obj, found: dict) -> dict:
    if isinstance(obj, Tensor):
        found[obj.storage.key] = obj.storage
    elif isinstance(obj, dict):
        for v in obj.values():
            _storages(v, found)
    return found


def write_pth_zip(path, obj, *, archive: str = "archive", byteorder: str = "little") -> None:
    """torch's zip format; `obj` is a dict (possibly nested) of Tensors / arrays."""
    obj = as_tensors(obj) if not any(isinstance(v, dict) for v in obj.values()) else obj
    buf = io.BytesIO()

    def pid(s):
        return ("storage", Global("torch", TORCH_DTYPES[s.dtype]), s.key, "cpu", s.data.size)

    _Pickler(buf, pid).dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{archive}/data.pkl", buf.getvalue())
        zf.writestr(f"{archive}/byteorder", byteorder)
        for key, storage in sorted(_storages(obj, {}).items()):
            zf.writestr(f"{archive}/data/{key}", storage.raw(byteorder))
        zf.writestr(f"{archive}/version", "3\n")


def write_pth_legacy(path, obj) -> None:
    """torch's legacy (< 1.6) format, as torchvision's 2017 VGG files use."""
    obj = as_tensors(obj, v2=False) if not any(isinstance(v, dict) for v in obj.values()) else obj
    sizes = {"short": 2, "int": 4, "long": 8}
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": sizes}
    storages = _storages(obj, {})

    def pid(s):
        kind = Global("torch", TORCH_DTYPES[s.dtype])
        return ("storage", kind, s.key, "cpu", s.data.size, getattr(s, "view", None))

    with open(path, "wb") as f:
        for header in (LEGACY_MAGIC, 1001, sys_info):
            pickle.dump(header, f, protocol=2)
        _Pickler(f, pid).dump(obj)
        keys = sorted(storages)
        pickle.dump(keys, f, protocol=2)
        for key in keys:
            f.write(struct.pack("<q", storages[key].data.size))
            f.write(storages[key].raw())


class Call:
    """Pickles as a call `module.name(*args)` — what a malicious file would hold."""

    def __init__(self, module: str, name: str, *args):
        self.function, self.args = Global(module, name), args

    def __reduce__(self):
        return self.function, self.args


def write_pickle_with_global(path, module: str, name: str, *args) -> None:
    """A zip .pth whose pickle calls an arbitrary global (e.g. os.system)."""
    buf = io.BytesIO()
    _Pickler(buf, lambda s: None).dump({"features.0.weight": Call(module, name, *args)})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())


# ---------------------------------------------------------------- Keras .h5 writer


def _layer_order(layers: dict) -> list[str]:
    names = ["input_1"]
    for block in sorted({name[5] for name in layers if name.startswith("block")}):
        names += [n for n in layers if n.startswith(f"block{block}_")] + [f"block{block}_pool"]
    return names + (["flatten", "fc1", "fc2", "predictions"] if "fc1" in layers else [])


def write_keras_h5(path, layers: dict, *, naming: str = "keras2") -> None:
    """A keras-applications-style weights file (`naming`: 'keras2' or 'keras1' names)."""
    with h5py.File(path, "w") as f:
        order = _layer_order(layers)
        f.attrs["layer_names"] = np.array([n.encode() for n in order])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4" if naming == "keras2" else b"1.2.2"
        for name in order:
            group = f.create_group(name)
            if name not in layers:
                group.attrs["weight_names"] = np.array([], dtype="S8")
                continue
            if naming == "keras2":
                weight_names = [f"{name}/kernel:0", f"{name}/bias:0"]
            else:
                weight_names = [f"{name}_W_1:0", f"{name}_b_1:0"]
            group.attrs["weight_names"] = np.array([n.encode() for n in weight_names])
            for weight_name, value in zip(weight_names, layers[name], strict=True):
                group.create_dataset(weight_name, data=value)
