"""Clear errors: wrong architecture, truncated files, missing or misshapen tensors."""

import re

import numpy as np
import pytest
import safetensors.numpy

from neural_synth.weights import convert, errors, formats
from tests.weights import writers


def _port(path, **kwargs):
    source_format = kwargs.pop("source_format", "auto")
    return convert.port(formats.read_source(path, source_format=source_format), **kwargs)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Conv-only weights of both archs in torchvision (safetensors) and Keras layouts."""
    root = tmp_path_factory.mktemp("weights")
    out = {}
    for arch in ("vgg16", "vgg19"):
        out[f"{arch}.safetensors"] = root / f"{arch}.safetensors"
        sd = writers.torchvision_state_dict(arch, head=None)
        safetensors.numpy.save_file(dict(sd), out[f"{arch}.safetensors"])
        out[f"{arch}.h5"] = root / f"{arch}.h5"
        writers.write_keras_h5(out[f"{arch}.h5"], writers.keras_layers(arch, head=None))
    return out


@pytest.mark.parametrize(
    "file,arch,message",
    [
        ("vgg16.safetensors", "vgg19", "missing tensor features.16.weight (conv3_4 kernel)"),
        ("vgg19.safetensors", "vgg16", "missing tensor features.17.weight (conv4_1 kernel)"),
        ("vgg16.h5", "vgg19", "missing tensor block3_conv4/kernel (conv3_4 kernel)"),
        ("vgg19.h5", "vgg16", "holds vgg19 weights (16 conv layers), not vgg16"),
    ],
)
def test_wrong_arch_names_the_right_one(files, file, arch, message):
    right = "vgg16" if arch == "vgg19" else "vgg19"
    with pytest.raises(errors.WeightFormatError) as info:
        _port(files[file], arch=arch)
    assert message in str(info.value)
    assert f"is this a {right} file? use --arch {right}" in str(info.value)


@pytest.mark.parametrize("file", ["vgg16.safetensors", "vgg19.safetensors", "vgg16.h5", "vgg19.h5"])
def test_auto_arch_and_head(files, file):
    arch, head, params = _port(files[file])
    assert arch == file.split(".")[0] and head is False
    assert len(params) == {"vgg16": 13, "vgg19": 16}[arch]


def _rewrite(src, dst, edit_fn):
    sd = safetensors.numpy.load_file(src)
    edit_fn(sd)
    safetensors.numpy.save_file(sd, dst)
    return dst


def test_missing_tensor(files, tmp_path):
    path = _rewrite(
        files["vgg19.safetensors"],
        tmp_path / "m.safetensors",
        lambda sd: sd.pop("features.10.bias"),
    )
    with pytest.raises(
        errors.WeightFormatError, match=re.escape("missing tensor features.10.bias (conv3_1 bias)")
    ):
        _port(path, arch="vgg19")


def test_wrong_shape(files, tmp_path):
    def edit(sd):
        sd["features.0.weight"] = np.zeros((64, 3, 5, 5), np.float32)

    path = _rewrite(files["vgg19.safetensors"], tmp_path / "s.safetensors", edit)
    with pytest.raises(
        errors.WeightFormatError,
        match=re.escape(
            "tensor features.0.weight has shape (64,3,5,5), expected (64,3,3,3) (conv1_1 kernel)"
        ),
    ):
        _port(path, arch="vgg19")


def test_non_finite_and_integer_tensors(files, tmp_path):
    def nan(sd):
        sd["features.2.bias"] = sd["features.2.bias"].copy()
        sd["features.2.bias"][3] = np.nan

    path = _rewrite(files["vgg16.safetensors"], tmp_path / "n.safetensors", nan)
    with pytest.raises(errors.WeightFormatError, match="features.2.bias has NaN"):
        _port(path, arch="vgg16")

    def ints(sd):
        sd["features.0.bias"] = np.zeros(64, np.int64)

    path = _rewrite(files["vgg16.safetensors"], tmp_path / "i.safetensors", ints)
    with pytest.raises(errors.WeightFormatError, match="dtype int64, expected floating"):
        _port(path, arch="vgg16")


def test_head_requested_but_absent(files):
    with pytest.raises(errors.WeightFormatError, match="no classifier head.*--include_head false"):
        _port(files["vgg16.h5"], arch="vgg16", include_head=True)


def test_wrong_head_width_suggests_no_head(tmp_path):
    sd = dict(writers.torchvision_state_dict("vgg16", head=None))
    for index in (0, 3, 6):  # A head of the wrong size (fc6 is checked first).
        sd[f"classifier.{index}.weight"] = np.zeros((4096, 5), np.float32)
        sd[f"classifier.{index}.bias"] = np.zeros(4096, np.float32)
    safetensors.numpy.save_file(sd, tmp_path / "h.safetensors")
    with pytest.raises(
        errors.WeightFormatError,
        match=r"classifier.0.weight has shape \(4096,5\)"
        r".*--include_head false",
    ):
        _port(tmp_path / "h.safetensors", arch="vgg16")
    _, head, _ = _port(tmp_path / "h.safetensors", arch="vgg16", include_head=False)
    assert head is False


def test_theano_ordered_keras_kernels(tmp_path):
    layers = writers.keras_layers("vgg16", head=None)
    kernel, bias = layers["block1_conv1"]
    layers["block1_conv1"] = (kernel.transpose(3, 2, 0, 1).copy(), bias)
    writers.write_keras_h5(tmp_path / "th.h5", layers)
    with pytest.raises(errors.WeightFormatError, match="Theano-ordered"):
        _port(tmp_path / "th.h5", arch="vgg16")


def test_batchnorm_vgg_is_refused(tmp_path):
    sd = {
        "features.0.weight": np.zeros((64, 3, 3, 3), np.float32),
        "features.1.running_mean": np.zeros(64, np.float32),
    }
    safetensors.numpy.save_file(sd, tmp_path / "bn.safetensors")
    with pytest.raises(errors.WeightFormatError, match="batch-normalized VGG"):
        _port(tmp_path / "bn.safetensors", arch="vgg16")


@pytest.mark.parametrize("file", ["vgg16.safetensors", "vgg16.h5", "zip.pth", "legacy.pth"])
def test_truncated_files(files, tmp_path, file):
    if file.endswith(".pth"):
        sd = writers.torchvision_state_dict("vgg16", head=None)
        writer = writers.write_pth_zip if file == "zip.pth" else writers.write_pth_legacy
        writer(tmp_path / file, sd)
        src = tmp_path / file
    else:
        src = files[file]
    data = src.read_bytes()
    dst = tmp_path / f"cut{src.suffix}"
    dst.write_bytes(data[: len(data) // 2])
    with pytest.raises(errors.WeightFormatError, match="truncated") as info:
        _port(dst, arch="vgg16")
    assert str(dst) in str(info.value)


def test_format_mismatch_and_unknown_files(files, tmp_path):
    with pytest.raises(
        errors.WeightFormatError, match="is a safetensors file, not Keras.*--format"
    ):
        _port(files["vgg16.safetensors"], arch="vgg16", source_format="h5")
    (tmp_path / "w.bin").write_bytes(b"\x00" * 64)
    with pytest.raises(errors.WeightFormatError, match="unrecognized weights file"):
        _port(tmp_path / "w.bin", arch="vgg16")
    with pytest.raises(errors.WeightFormatError, match="no such weights file"):
        _port(tmp_path / "absent.pth", arch="vgg16")


def test_real_source_shapes():
    """The shapes expected of real files (the tests elsewhere use a small head)."""
    want = {
        "torchvision": {"features.34.weight": (512, 512, 3, 3), "classifier.0.weight": (4096, 25088),
                        "classifier.3.weight": (4096, 4096), "classifier.6.weight": (1000, 4096)},
        "timm": {"features.34.weight": (512, 512, 3, 3), "pre_logits.fc1.weight": (4096, 512, 7, 7),
                 "pre_logits.fc2.weight": (4096, 4096, 1, 1), "head.fc.weight": (1000, 4096)},
        "keras": {"block5_conv4/kernel": (3, 3, 512, 512), "fc1/kernel": (25088, 4096),
                  "fc2/kernel": (4096, 4096), "predictions/kernel": (4096, 1000)},
    }  # fmt: skip
    for layout, shapes in want.items():
        entries = {
            e.key: e.shape for e in convert.expected_entries(layout, "vgg19", include_head=True)
        }
        assert len(entries) == 2 * (16 + 3)
        for key, shape in shapes.items():
            assert entries[key] == shape, (layout, key)
    vgg16 = {e.key for e in convert.expected_entries("torchvision", "vgg16", include_head=False)}
    assert max(int(k.split(".")[1]) for k in vgg16) == 28
