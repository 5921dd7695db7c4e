"""Ported checkpoints: convert -> load_vgg round trip, metadata, and damage detection."""

import hashlib
import json

import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy

from neural_synth.models import vgg
from neural_synth.weights import convert, errors, formats, store
from tests.weights import writers


@pytest.fixture(autouse=True)
def small_head(monkeypatch):
    monkeypatch.setattr(vgg, "HEAD_WIDTHS", writers.SMALL_HEAD_WIDTHS)


@pytest.fixture(scope="module")
def ported(tmp_path_factory):
    """(source file, checkpoint dir) of random VGG16 weights with a (small) head."""
    root = tmp_path_factory.mktemp("store")
    src = root / "vgg16.safetensors"
    safetensors.numpy.save_file(dict(writers.torchvision_state_dict("vgg16")), src)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vgg, "HEAD_WIDTHS", writers.SMALL_HEAD_WIDTHS)
        convert.convert_vgg(src, root / "ckpt", arch="vgg16")
    return src, root / "ckpt"


def test_round_trip_reproduces_activations_exactly(ported):
    src, ckpt = ported
    module, params = store.load_vgg(ckpt)
    assert (module.arch, module.pooling, module.convention) == ("vgg16", "max", "torchvision")
    _, _, expected = convert.port(formats.read_source(src), arch="vgg16")
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 64, 96, 3)), jnp.float32)
    layers = ("relu1_1", "relu3_3", "pool5", "fc8")
    ours = module.apply({"params": params}, x, layers=layers)
    ref = vgg.VGG(arch="vgg16").apply({"params": expected}, x, layers=layers)
    for name in layers:
        np.testing.assert_array_equal(np.asarray(ours[name]), np.asarray(ref[name]), err_msg=name)
    avg, _ = store.load_vgg(ckpt, pooling="avg")
    assert avg.pooling == "avg"


def test_metadata(ported):
    src, ckpt = ported
    meta = json.loads((ckpt / store.METADATA_FILE).read_text())
    assert meta["arch"] == "vgg16" and meta["convention"] == "torchvision"
    assert meta["pooling"] == "max" and meta["include_head"] is True and meta["rescaled"] is False
    assert meta["source_format"] == "safetensors" and meta["source_layout"] == "torchvision"
    assert meta["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    params_bytes = (ckpt / store.PARAMS_FILE).read_bytes()
    assert meta["params_sha256"] == hashlib.sha256(params_bytes).hexdigest()
    assert meta["num_tensors"] == 2 * (13 + 3) and meta["neural_synth_version"]
    with np.load(ckpt / store.PARAMS_FILE) as npz:
        assert npz["conv1_1/kernel"].shape == (3, 3, 3, 64)
        assert npz["fc6/kernel"].shape == (7 * 7 * 512, writers.SMALL_HEAD[0])


def _copy(ckpt, dst):
    dst.mkdir()
    for name in (store.PARAMS_FILE, store.METADATA_FILE):
        (dst / name).write_bytes((ckpt / name).read_bytes())
    return dst


def test_corrupted_params_fail_checksum(ported, tmp_path):
    bad = _copy(ported[1], tmp_path / "bad")
    data = bytearray((bad / store.PARAMS_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / store.PARAMS_FILE).write_bytes(bytes(data))
    with pytest.raises(errors.WeightFormatError, match="corrupt or was modified: its sha256"):
        store.load_vgg(bad)


def test_checksummed_but_wrong_arch_fails_shapes(ported, tmp_path):
    bad = _copy(ported[1], tmp_path / "arch")
    meta = json.loads((bad / store.METADATA_FILE).read_text())
    (bad / store.METADATA_FILE).write_text(json.dumps({**meta, "arch": "vgg19"}))
    with pytest.raises(errors.WeightFormatError, match="does not match vgg19.*conv3_4/bias"):
        store.load_vgg(bad)


def test_missing_or_broken_checkpoints(ported, tmp_path):
    with pytest.raises(errors.WeightFormatError, match="no ported VGG checkpoint.*convert_vgg"):
        store.load_vgg(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(errors.WeightFormatError, match="metadata.json is missing"):
        store.load_vgg(tmp_path / "empty")
    broken = _copy(ported[1], tmp_path / "broken")
    (broken / store.METADATA_FILE).write_text("{not json")
    with pytest.raises(errors.WeightFormatError, match="corrupt .*metadata.json"):
        store.load_vgg(broken)
    no_params = _copy(ported[1], tmp_path / "no_params")
    (no_params / store.PARAMS_FILE).unlink()
    with pytest.raises(errors.WeightFormatError, match="params.npz is missing"):
        store.load_vgg(no_params)
