"""Mean-activation rescaling (Gatys et al.): means become one, outputs scale by 1/m."""

import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image
import pytest

from neural_synth.models import vgg
from neural_synth.weights import convert, errors, formats, rescale, store
from tests.weights import numpy_vgg, writers

SIZE, BATCH = 32, 2  # 4 of the sample photos at 32x32, in 2 batches.


@pytest.fixture(autouse=True)
def small_head(monkeypatch):
    monkeypatch.setattr(vgg, "HEAD_WIDTHS", writers.SMALL_HEAD_WIDTHS)


def _random_vgg16(images: np.ndarray):
    """He-normal kernels; biases set from the data so every filter fires at ~30% of positions.

    Plain random nets on few small images have many nearly dead filters (mean ~1e-6 of
    their layer's), whose tiny outputs are float32 rounding residue; a trained VGG's
    filters are alive. One filter (conv2_1 #5) is made dead on purpose.
    """
    rng, params = np.random.default_rng(0), {}
    x = numpy_vgg.preprocess(images, "torchvision")  # [N, C, H, W]
    names = vgg.conv_layer_names("vgg16")
    for name, next_name in zip(names, (*names[1:], "conv6_1"), strict=True):
        kernel = rng.standard_normal((3, 3, x.shape[1], vgg.WIDTHS[int(name[4]) - 1]), np.float32)
        kernel *= np.sqrt(2 / (9 * x.shape[1]))
        pre = numpy_vgg.conv3x3(x, kernel.transpose(3, 2, 0, 1), np.zeros(kernel.shape[-1]))
        bias = (0.5 * pre.std(axis=(0, 2, 3)) - pre.mean(axis=(0, 2, 3))).astype(np.float32)
        params[name] = {"kernel": kernel, "bias": bias}
        x = np.maximum(pre + bias[:, None, None], 0)
        x = numpy_vgg.max_pool2(x) if next_name[4] != name[4] else x
    for name, shapes in vgg.param_shapes("vgg16", include_head=True).items():
        if name.startswith("fc"):
            fan_in = shapes["kernel"][0]
            params[name] = {
                "kernel": rng.standard_normal(shapes["kernel"], np.float32) * np.sqrt(2 / fan_in),
                "bias": 0.1 * rng.standard_normal(shapes["bias"], np.float32),
            }
    params["conv2_1"]["bias"][5] = -1e6
    return vgg.VGG(arch="vgg16"), params


def _apply(module, params, images, layers) -> dict:
    """Activations in batches of BATCH (the batch mean_activations uses: one compile)."""
    params = jax.tree.map(jnp.asarray, params)
    parts = [
        module.apply({"params": params}, jnp.asarray(images[i : i + BATCH]), layers=layers)
        for i in range(0, len(images), BATCH)
    ]
    return {name: np.concatenate([p[name] for p in parts]) for name in layers}


def _channel_means(acts: dict) -> dict:
    return {
        n: np.asarray(a, np.float64).mean(axis=(0, 1, 2)) for n, a in acts.items() if a.ndim == 4
    }


def test_rescaled_means_are_one_and_outputs_scale():
    images = rescale.sample_images(size=SIZE)[:4]
    module, params = _random_vgg16(images)
    relus = tuple("relu" + n[4:] for n in vgg.conv_layer_names("vgg16"))
    before = _apply(module, params, images, (*relus, "fc8"))
    means = rescale.mean_activations(module, params, images, batch_size=BATCH)  # 2 batches.
    for name in relus:  # The one-pass batched means equal the plain ones.
        np.testing.assert_allclose(means[name], _channel_means(before)[name], rtol=1e-5)
    assert means["relu2_1"][5] == 0

    scaled = rescale.rescale_mean_activation(module, params, images, batch_size=BATCH)
    after = _apply(module, scaled, images, (*relus, "fc8"))
    after_means = _channel_means(after)
    for name in relus:
        alive = means[name] > 0
        np.testing.assert_allclose(after_means[name][alive], 1.0, atol=1e-4, err_msg=name)
        np.testing.assert_array_equal(after_means[name][~alive], 0.0)
        # relu' = relu / m, compared in the original units: a nearly dead filter (m ~ 1e-5)
        # would otherwise magnify float32 rounding of its tiny outputs.
        m = np.where(alive, means[name], 1.0)
        restored = np.asarray(after[name], np.float64) * m
        err = np.abs(restored - before[name]).max() / np.abs(before[name]).max()
        assert err < 1e-5, f"{name}: {err}"
    fc8_err = np.abs(np.asarray(after["fc8"]) - before["fc8"]).max() / np.abs(before["fc8"]).max()
    assert fc8_err < 1e-5  # The head sees the same input.


def test_scale_params_formula_by_hand():
    """Check one layer's kernel entry and bias against the formula, and the fc6 rows."""
    _, params = _random_vgg16(np.random.default_rng(0).uniform(size=(1, SIZE, SIZE, 3)))
    rng = np.random.default_rng(1)
    means = {
        "relu" + n[4:]: rng.uniform(0.5, 2.0, params[n]["bias"].shape)
        for n in vgg.conv_layer_names("vgg16")
    }
    means["relu1_2"][7] = 0.0
    out = rescale.scale_params(params, means, "vgg16")
    k, b = params["conv2_1"]["kernel"], params["conv2_1"]["bias"]
    for cin, cout in ((7, 3), (8, 9)):
        m_in = 1.0 if cin == 7 else means["relu1_2"][cin]
        want = k[1, 2, cin, cout] * m_in / means["relu2_1"][cout]
        np.testing.assert_allclose(out["conv2_1"]["kernel"][1, 2, cin, cout], want, rtol=1e-6)
    np.testing.assert_allclose(out["conv2_1"]["bias"][3], b[3] / means["relu2_1"][3], rtol=1e-6)
    row = (2 * 7 + 3) * 512 + 11  # fc6 input at h=2, w=3, channel 11.
    np.testing.assert_allclose(
        out["fc6"]["kernel"][row], params["fc6"]["kernel"][row] * means["relu5_3"][11], rtol=1e-6
    )
    np.testing.assert_array_equal(out["fc7"]["kernel"], params["fc7"]["kernel"])


def test_folder_images(tmp_path):
    rng = np.random.default_rng(0)
    for i, shape in enumerate([(40, 60, 3), (50, 30, 3)]):
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        PIL.Image.fromarray(pixels).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    images, description = rescale.load_images(str(tmp_path), size=16)
    assert images.shape == (2, 16, 16, 3) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1 and "2 images" in description
    (tmp_path / "empty").mkdir()
    with pytest.raises(errors.WeightFormatError, match="no images"):
        rescale.load_images(str(tmp_path / "empty"))


def test_convert_with_rescale(tmp_path):
    """convert_vgg(rescale_weights=True) stores exactly the rescaled ported weights."""
    src = tmp_path / "vgg16.h5"
    writers.write_keras_h5(src, writers.keras_layers("vgg16", head=None))
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(BATCH):
        pixels = np.random.default_rng(i).integers(0, 256, (48, 40, 3), dtype=np.uint8)
        PIL.Image.fromarray(pixels).save(photos / f"{i}.png")
    meta = convert.convert_vgg(
        src, tmp_path / "ckpt", rescale_weights=True, rescale_images=str(photos), rescale_size=SIZE
    )
    assert meta["rescaled"] is True and f"{BATCH} images" in meta["rescale_images"]
    module, params = store.load_vgg(tmp_path / "ckpt")
    assert module.convention == "caffe"
    _, _, ported = convert.port(formats.read_source(src), arch="vgg16")
    images = rescale.folder_images(photos, size=SIZE)
    expected = rescale.rescale_mean_activation(module, ported, images)
    for name, kinds in expected.items():
        for kind, value in kinds.items():
            np.testing.assert_array_equal(np.asarray(params[name][kind]), value, err_msg=name)
