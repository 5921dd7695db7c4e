"""Port equivalence: random VGG16/VGG19 weights written in each real file format are
converted, and our VGG's activations are compared layer by layer with independent
references (the NumPy VGG always; the torch.nn replica where torch is installed).

The classifier head is tested with small fc widths (`writers.SMALL_HEAD`, patched
into `vgg.HEAD_WIDTHS`) but the real fc6 input (7x7x512), so the flatten order is
checked while files stay small. Inputs are 64x96 (pool5 2x3, adaptively pooled to a
non-uniform 7x7 map) except Keras' top, which exists only for 224x224.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.models import vgg
from neural_synth.weights import convert, formats
from tests.weights import numpy_vgg, writers

ARCHS = ("vgg16", "vgg19")
MAX_REL_ERR = 1e-4
MEASURED: dict[str, float] = {}  # 'format/arch' -> max relative error over layers.


@pytest.fixture(autouse=True)
def small_head(monkeypatch):
    monkeypatch.setattr(vgg, "HEAD_WIDTHS", writers.SMALL_HEAD_WIDTHS)


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    print("\nmax relative error per format (max|ours-ref| / max|ref|, worst layer):")
    for label, err in sorted(MEASURED.items()):
        print(f"  {label:40s} {err:.2e}")


def images(size=(64, 96), batch=2, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(batch, *size, 3)).astype(np.float32)


@functools.cache
def state_dict(arch: str, layout: str = "torchvision") -> dict:
    """Random weights (fixed seed) with the small head, in torchvision's or timm's layout."""
    sd = writers.torchvision_state_dict(arch)
    return sd if layout == "torchvision" else writers.timm_state_dict(sd)


@functools.cache
def numpy_reference(arch: str, layout: str) -> dict:
    """The NumPy VGG's activations of `state_dict(arch, layout)` on `images()`."""
    return numpy_vgg.forward_torch(state_dict(arch, layout), images(), arch, layout=layout)


def layers_to_compare(arch: str, head: bool) -> list[str]:
    last = writers.CFGS[arch].count(512) // 2  # Convs per block 4 / 5.
    names = ["relu1_1", "pool2", "relu3_1", f"relu3_{last}", "relu5_1", f"relu5_{last}", "pool5"]
    return names + (["fc6", "relu7", "fc8"] if head else [])


def assert_port_matches(
    label: str, path, arch: str, refs: dict, x: np.ndarray, *, head: bool, **kwargs
):
    """Converts `path` and asserts our activations match every reference in `refs`."""
    source = formats.read_source(path, **kwargs)
    got_arch, got_head, params = convert.port(source, arch=arch)
    assert (got_arch, got_head) == (arch, head)
    module = vgg.VGG(arch=arch, convention=source.convention)
    names = layers_to_compare(arch, head)
    params = jax.tree.map(jnp.asarray, params)
    ours = module.apply({"params": params}, jnp.asarray(x), layers=tuple(names))
    for ref_name, ref in refs.items():
        errs = {n: float(np.abs(ours[n] - ref[n]).max() / np.abs(ref[n]).max()) for n in names}
        worst = max(errs, key=errs.get)
        MEASURED[f"{label}/{arch} vs {ref_name}"] = errs[worst]
        assert errs[worst] <= MAX_REL_ERR, f"{label} {arch}: {worst} differs by {errs[worst]:.2e}"


@pytest.mark.parametrize("arch", ARCHS)
def test_torch_saved_pth(arch, tmp_path):
    """Files written by torch.save itself (zip and legacy format, plain and wrapped)."""
    torch = pytest.importorskip("torch")
    from tests.weights import torch_vgg  # noqa: PLC0415  (needs torch)

    model = torch_vgg.build(state_dict(arch), arch, layout="torchvision", head=writers.SMALL_HEAD)
    x = images()
    refs = {"torch": torch_vgg.forward(model, x), "numpy": numpy_reference(arch, "torchvision")}
    torch.save(model.state_dict(), tmp_path / "zip.pth")
    assert_port_matches("pth zip (torch.save)", tmp_path / "zip.pth", arch, refs, x, head=True)
    wrapped = {"state_dict": model.state_dict(), "epoch": 90}
    torch.save(wrapped, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert_port_matches(
        "pth legacy (torch.save)", tmp_path / "legacy.pth", arch, refs, x, head=True
    )


@pytest.mark.parametrize("arch", ARCHS)
def test_torch_free_pth_writers(arch, tmp_path):
    """Files from the tests' own zip and legacy writers (torch cross-checks them)."""
    sd, x = state_dict(arch), images()
    refs = {"numpy": numpy_reference(arch, "torchvision")}
    writers.write_pth_zip(tmp_path / "zip.pth", sd)
    writers.write_pth_legacy(tmp_path / "legacy.pth", {"model": writers.as_tensors(sd, v2=False)})
    assert_port_matches("pth zip (test writer)", tmp_path / "zip.pth", arch, refs, x, head=True)
    assert_port_matches(
        "pth legacy (test writer)", tmp_path / "legacy.pth", arch, refs, x, head=True
    )
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return
    for name, loaded in (("zip.pth", None), ("legacy.pth", "model")):
        state = torch.load(tmp_path / name)
        state = state[loaded] if loaded else state
        assert list(state) == list(sd)
        for key, value in sd.items():
            np.testing.assert_array_equal(state[key].numpy(), value, err_msg=f"{name} {key}")


@pytest.mark.parametrize("arch", ARCHS)
def test_safetensors_torchvision_and_timm(arch, tmp_path):
    import safetensors.numpy  # noqa: PLC0415

    sd, timm_sd, x = state_dict(arch), state_dict(arch, "timm"), images()
    refs_tv = {"numpy": numpy_reference(arch, "torchvision")}
    refs_timm = {"numpy": numpy_reference(arch, "timm")}
    try:
        from tests.weights import torch_vgg  # noqa: PLC0415

        model = torch_vgg.build(timm_sd, arch, layout="timm", head=writers.SMALL_HEAD)
        refs_timm["torch"] = torch_vgg.forward(model, x)
    except ImportError:
        pass
    safetensors.numpy.save_file(dict(sd), tmp_path / "tv.safetensors")
    safetensors.numpy.save_file(dict(timm_sd), tmp_path / "timm.safetensors")
    assert_port_matches(
        "safetensors torchvision", tmp_path / "tv.safetensors", arch, refs_tv, x, head=True
    )
    assert_port_matches(
        "safetensors timm", tmp_path / "timm.safetensors", arch, refs_timm, x, head=True
    )


def test_keras_h5_with_top(tmp_path):
    """Keras' top exists only for 224x224 inputs (pool5 7x7): VGG16 only, to stay fast;
    the head is the same for both archs and the VGG19 convs are checked without top."""
    arch = "vgg16"
    layers = writers.keras_layers(arch)
    x = images((224, 224), batch=1)
    refs = {"numpy": numpy_vgg.forward_keras(layers, x, arch)}
    writers.write_keras_h5(tmp_path / "top.h5", layers, naming="keras2")
    assert_port_matches("h5 keras2 with top", tmp_path / "top.h5", arch, refs, x, head=True)


@pytest.mark.parametrize("arch", ARCHS)
def test_keras_h5_notop(arch, tmp_path):
    layers = writers.keras_layers(arch, head=None)
    x = images()
    refs = {"numpy": numpy_vgg.forward_keras(layers, x, arch)}
    writers.write_keras_h5(tmp_path / "notop.h5", layers, naming="keras1")
    assert_port_matches("h5 keras1 notop", tmp_path / "notop.h5", arch, refs, x, head=False)


def test_fc6_permutation_matters():
    """The NCHW->NHWC flatten permutation is needed: without it fc6 would differ."""
    sd = writers.torchvision_state_dict("vgg16")
    w = sd["classifier.0.weight"]
    ported = convert._fc6_from_linear(w)
    assert not np.allclose(ported, w.T)
    # Row (h, w, c) of ours is column c * 49 + h * 7 + w of torchvision's.
    h, ww, c = 3, 5, 100
    np.testing.assert_array_equal(ported[(h * 7 + ww) * 512 + c], w[:, c * 49 + h * 7 + ww])
