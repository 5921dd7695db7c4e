"""The torch-free .pth reader: dtypes, strides, offsets, views, wrappers, safety, damage."""

import collections
import io
import tarfile
import zipfile

import numpy as np
import pytest

from neural_synth.weights import errors, pth
from tests.weights import writers


def _expected_view(flat: np.ndarray, offset: int, size, stride) -> np.ndarray:
    """Element [i, j, ...] = flat[offset + sum(index * stride)], computed by hand."""
    out = np.empty(size, flat.dtype)
    for index in np.ndindex(*size):
        out[index] = flat[offset + sum(i * s for i, s in zip(index, stride, strict=True))]
    return out


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_zip_strides_offsets_shared_storage(tmp_path, byteorder):
    flat = np.arange(40, dtype=np.float32) * 0.5 - 3
    storage = writers.Storage("0", flat)
    layout = {"t": (2, (3, 4), (1, 3)), "u": (5, (5,), (2,)), "v": (1, (2, 2, 3), (12, 1, 4))}
    obj = {k: writers.Tensor(storage, *spec) for k, spec in layout.items()}
    writers.write_pth_zip(tmp_path / "s.pth", obj, byteorder=byteorder)
    got = pth.read_state_dict(tmp_path / "s.pth")
    for key, (offset, size, stride) in layout.items():
        assert got[key].dtype == np.float32
        np.testing.assert_array_equal(got[key], _expected_view(flat, offset, size, stride))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("writer", [writers.write_pth_zip, writers.write_pth_legacy])
def test_half_precision_becomes_float32(tmp_path, dtype, writer):
    values = np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32)
    if dtype == "float16":
        expected = values.astype(np.float16).astype(np.float32)
    else:  # bfloat16 = the upper 16 bits of float32 (the writer truncates).
        expected = (values.view(np.uint32) & 0xFFFF0000).view(np.float32)
    sd = writers.as_tensors({"w": values}, dtype=dtype, v2=writer is writers.write_pth_zip)
    writer(tmp_path / "h.pth", sd)
    got = pth.read_state_dict(tmp_path / "h.pth")["w"]
    assert got.dtype == np.float32 and got.shape == values.shape
    np.testing.assert_array_equal(got, expected)
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(torch.load(tmp_path / "h.pth")["w"].float().numpy(), expected)


def test_legacy_views(tmp_path):
    root = writers.Storage("r", np.arange(30, dtype=np.float32))
    obj = collections.OrderedDict(
        a=writers.Tensor(writers.View(root, "va", 10, 12), 1, (2, 5), (5, 1), v2=False),
        b=writers.Tensor(root, 0, (3,), (1,), v2=False),
    )
    writers.write_pth_legacy(tmp_path / "v.pth", obj)
    got = pth.read_state_dict(tmp_path / "v.pth")
    np.testing.assert_array_equal(got["a"], np.arange(11, 21).reshape(2, 5))
    np.testing.assert_array_equal(got["b"], [0, 1, 2])


def test_matches_torch_load_on_torch_written_files(tmp_path):
    """Non-contiguous, offset, shared, half, bf16 and Parameter tensors saved by torch itself."""
    torch = pytest.importorskip("torch")
    base = torch.randn(6, 7)
    sd = collections.OrderedDict(
        t=base.t(),
        row=base[2],
        sub=base[1:4, 2:6],
        half=base.half(),
        bf=base.bfloat16(),
        p=torch.nn.Parameter(torch.randn(3, 3)),
        scalar=torch.tensor(2.5),
    )
    for legacy in (False, True):
        path = tmp_path / f"t{legacy}.pth"
        torch.save(sd, path, _use_new_zipfile_serialization=not legacy)
        got = pth.read_state_dict(path)
        assert list(got) == list(sd)
        for key, value in sd.items():
            np.testing.assert_array_equal(got[key], value.detach().float().numpy(), err_msg=key)


def test_wrappers_and_dataparallel_prefix(tmp_path):
    w = np.ones((2, 2), np.float32)
    writers.write_pth_zip(tmp_path / "a.pth", {"model": writers.as_tensors({"x": w}), "epoch": 3})
    writers.write_pth_zip(tmp_path / "b.pth", {"state_dict": writers.as_tensors({"module.x": w})})
    for name in ("a.pth", "b.pth"):
        got = pth.read_state_dict(tmp_path / name)
        assert list(got) == ["x"]
        np.testing.assert_array_equal(got["x"], w)
    writers.write_pth_zip(tmp_path / "c.pth", {"optimizer": {"lr": 0.1}})
    with pytest.raises(errors.WeightFormatError, match="holds no tensors"):
        pth.read_state_dict(tmp_path / "c.pth")


@pytest.mark.parametrize("module,name", [("os", "system"), ("builtins", "eval")])
def test_refuses_arbitrary_globals(tmp_path, module, name):
    marker = tmp_path / "pwned"
    argument = f"touch {marker}" if name == "system" else f"open('{marker}', 'w')"
    writers.write_pickle_with_global(tmp_path / "evil.pth", module, name, argument)
    with pytest.raises(errors.WeightFormatError, match=f"refusing to load {module}.{name}"):
        pth.read_state_dict(tmp_path / "evil.pth")
    assert not marker.exists()


@pytest.mark.parametrize("writer", [writers.write_pth_zip, writers.write_pth_legacy])
@pytest.mark.parametrize("keep", [0.3, 0.97])
def test_truncated(tmp_path, writer, keep):
    sd = {"features.0.weight": np.ones((64, 3, 3, 3), np.float32)}
    writer(tmp_path / "w.pth", sd)
    data = (tmp_path / "w.pth").read_bytes()
    (tmp_path / "t.pth").write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(errors.WeightFormatError, match="truncated"):
        pth.read_state_dict(tmp_path / "t.pth")


def test_tensor_outside_storage_and_foreign_archives(tmp_path):
    storage = writers.Storage("0", np.zeros(10, np.float32))
    writers.write_pth_zip(tmp_path / "o.pth", {"w": writers.Tensor(storage, 4, (3, 3), (3, 1))})
    with pytest.raises(errors.WeightFormatError, match="reaches element 12"):
        pth.read_state_dict(tmp_path / "o.pth")
    with zipfile.ZipFile(tmp_path / "x.pth", "w") as zf:
        zf.writestr("params.npy", b"not torch")
    with pytest.raises(errors.WeightFormatError, match="not a PyTorch checkpoint"):
        pth.read_state_dict(tmp_path / "x.pth")
    with tarfile.open(tmp_path / "old.pth", "w") as tar:  # PyTorch < 0.1.10 wrote tar files.
        info = tarfile.TarInfo("sys_info")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"info"))
    with pytest.raises(errors.WeightFormatError, match="tar-format checkpoint"):
        pth.read_state_dict(tmp_path / "old.pth")
