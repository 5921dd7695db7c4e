"""Tests for neural_synth.data.pix2pix: tfds builders prepare tiny datasets and read them back."""

import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from neural_synth import io
from neural_synth.data import pix2pix
from neural_synth.data import pix2pix_builders as builders

HALF = (12, 16)  # (height, width) of A and of B in the paired test images: non-square.


def _random_u8(seed: int, shape) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _smooth_photo(seed: int, height: int, width: int) -> np.ndarray:
    """uint8 [H, W, 3]: a few coloured rectangles on a gradient (real edges, no noise)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    photo = np.stack([ys / height, xs / width, np.full_like(ys, 0.5, float)], -1)
    for _ in range(3):
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        photo[top : top + height // 3, left : left + width // 3] = rng.random(3)
    return io.to_uint8(photo)


def _write_paired(folder, splits: dict[str, int]) -> dict[str, list]:
    """Writes A | B PNGs; returns {split: [(A, B), ...]} uint8 halves [12, 16, 3]."""
    pairs = {}
    for s, (split, num) in enumerate(splits.items()):
        os.makedirs(folder / split, exist_ok=True)
        pairs[split] = []
        for i in range(num):
            a, b = (
                _random_u8(100 * s + 2 * i, (*HALF, 3)),
                _random_u8(100 * s + 2 * i + 1, (*HALF, 3)),
            )
            Image.fromarray(np.concatenate([a, b], axis=1)).save(folder / split / f"{i}.png")
            pairs[split].append((a, b))
    return pairs


def _match(pairs: list, inputs: np.ndarray, targets: np.ndarray) -> None:
    """Each (input, target) equals exactly one written (A, B), each used once."""
    assert len(inputs) == len(targets) == len(pairs)
    found = []
    for x, y in zip(inputs, targets, strict=True):
        hits = [i for i, (a, b) in enumerate(pairs) if np.array_equal(x, a)]
        assert len(hits) == 1
        np.testing.assert_array_equal(y, pairs[hits[0]][1])
        found.append(hits[0])
    assert sorted(found) == list(range(len(pairs)))


# ----------------------------------------------------------------------------- edges


def test_edges_of_a_square_lie_on_its_border():
    image = np.zeros((32, 32, 3), np.float32)
    image[8:24, 8:24] = 1.0  # White square, border between pixels 7|8 and 23|24.
    out = pix2pix.edges(image, sigma=1.0)
    assert out.shape == (32, 32, 3) and out.dtype == np.float32
    assert set(np.unique(out)) <= {0.0, 1.0}
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    lines = out[..., 0] == 0.0  # [32, 32]
    band = np.zeros((32, 32), bool)
    band[6:26, 6:26] = True
    band[10:22, 10:22] = False  # Within 2 pixels of the square's outline.
    assert lines.any() and not (lines & ~band).any()
    for side in (lines[6:10, 10:22], lines[22:26, 10:22], lines[10:22, 6:10], lines[10:22, 22:26]):
        assert side.sum() >= 10  # Every side of the square is drawn.
    np.testing.assert_array_equal(pix2pix.edges(np.full((8, 8, 3), 0.5, np.float32)), 1.0)


def test_edges_rejects_grey_arrays():
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        pix2pix.edges(np.zeros((8, 8), np.float32))


def test_fit_resizes_the_short_side_and_crops_the_centre():
    image = np.random.default_rng(0).random((20, 10, 3)).astype(np.float32)
    np.testing.assert_array_equal(pix2pix.fit(image, (5, 5)), io.resize(image, size=(10, 5))[2:7])
    wide = image.transpose(1, 0, 2)  # [10, 20, 3] -> (6, 9): cover (6, 12), columns 1..10.
    np.testing.assert_array_equal(pix2pix.fit(wide, (6, 9)), io.resize(wide, size=(6, 12))[:, 1:10])
    assert pix2pix.fit(image, (40, 10)).shape == (40, 10, 3)  # Enlarges when needed.


# ----------------------------------------------------------------------------- jitter


def test_jitter_crops_and_mirrors_input_and_target_together():
    inputs = _random_u8(0, (6, 10, 14, 3))
    x, y = pix2pix.jitter(
        np.random.default_rng(1), inputs, inputs.copy(), crop=(8, 12), load=(12, 16)
    )
    assert x.shape == y.shape == (6, 8, 12, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x, y)
    assert 0.0 <= x.min() and x.max() <= 1.0
    # A different target: its window must be the same as the input's.
    x, y = pix2pix.jitter(
        np.random.default_rng(1), inputs, 255 - inputs, crop=(8, 12), load=(12, 16)
    )
    np.testing.assert_allclose(y, 1.0 - x, atol=1.01 / 255)


def test_jitter_is_a_window_of_the_bilinear_resize():
    inputs = _random_u8(2, (4, 10, 14, 3))
    load, crop = (13, 19), (9, 12)
    x, _ = pix2pix.jitter(np.random.default_rng(3), inputs, inputs, crop=crop, load=load)
    for image, out in zip(inputs, x, strict=True):
        big = np.asarray(jax.image.resize(image / np.float32(255), (*load, 3), "linear"))
        errors = []
        for top in range(load[0] - crop[0] + 1):
            for left in range(load[1] - crop[1] + 1):
                window = big[top : top + crop[0], left : left + crop[1]]
                errors += [np.abs(window - out).max(), np.abs(window[:, ::-1] - out).max()]
        assert min(errors) <= 1.01 / 255  # PIL rounds to 8 bits.


def test_jitter_without_resize_only_mirrors():
    inputs = _random_u8(4, (32, 6, 10, 3))
    x, y = pix2pix.jitter(np.random.default_rng(5), inputs, inputs, crop=(6, 10), load=(6, 10))
    as_float = inputs / np.float32(255)
    flipped = [np.array_equal(o, f[:, ::-1]) for o, f in zip(x, as_float, strict=True)]
    same = [np.array_equal(o, f) for o, f in zip(x, as_float, strict=True)]
    assert all(a or b for a, b in zip(flipped, same, strict=True))
    assert 0 < sum(flipped) < 32  # Both happen.
    x, _ = pix2pix.jitter(
        np.random.default_rng(5), inputs, inputs, crop=(6, 10), load=(6, 10), mirror=False
    )
    np.testing.assert_array_equal(x, as_float)


def test_jitter_errors():
    images = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="must not exceed load"):
        pix2pix.jitter(np.random.default_rng(0), images, images, crop=(10, 10), load=(8, 8))
    with pytest.raises(ValueError, match="differ in shape"):
        pix2pix.jitter(np.random.default_rng(0), images, images[:1], crop=(8, 8), load=(8, 8))


# ----------------------------------------------------------------------------- paired


def test_paired_folder_round_trip(tmp_path, monkeypatch):
    pairs = _write_paired(tmp_path / "facades", {"train": 3, "test": 1})
    data_dir = str(tmp_path / "tfds")
    calls = []
    generate = builders.PairedImages._generate_examples
    monkeypatch.setattr(
        builders.PairedImages,
        "_generate_examples",
        lambda self, *args: calls.append(1) or generate(self, *args),
    )
    source = f"paired:{tmp_path / 'facades'}"
    inputs, targets = builders.load_pairs(source, "train", data_dir=data_dir)
    assert inputs.shape == (3, *HALF, 3) and inputs.dtype == np.uint8
    _match(pairs["train"], inputs, targets)
    assert len(calls) == 2  # One generator per split, once.
    test_b, test_a = builders.load_pairs(source, "test", data_dir=data_dir, direction="BtoA")
    _match(pairs["test"], test_a, test_b)
    assert len(calls) == 2  # Read back, not prepared again.
    # The prepared dataset is an ordinary tfds dataset too.
    name = builders.PairedImagesConfig.for_folder(str(tmp_path / "facades")).name
    again = builders.load_pairs(f"tfds:paired_images/{name}", "train", data_dir=data_dir)
    np.testing.assert_array_equal(again[0], inputs)
    np.testing.assert_array_equal(again[1], targets)
    builders.load_pairs(source, "test", data_dir=data_dir, rebuild=True)
    assert len(calls) == 4


def test_paired_resize_and_max_examples(tmp_path):
    pairs = _write_paired(tmp_path / "p", {"train": 3})
    inputs, targets = builders.load_pairs(
        f"paired:{tmp_path / 'p'}", "train", data_dir=str(tmp_path / "tfds"), size=(6, 8)
    )
    assert inputs.shape == targets.shape == (3, 6, 8, 3)
    # Same aspect (12x16 -> 6x8): a plain Lanczos resize, no crop.
    shrink = lambda x: io.to_uint8(io.resize(x / np.float32(255), size=(6, 8)))
    _match([(shrink(a), shrink(b)) for a, b in pairs["train"]], inputs, targets)
    few, _ = builders.load_pairs(
        f"paired:{tmp_path / 'p'}", "train", data_dir=str(tmp_path / "tfds"), max_examples=2
    )
    assert few.shape == (2, *HALF, 3)


def test_paired_errors(tmp_path):
    data_dir = str(tmp_path / "tfds")
    with pytest.raises(ValueError, match="does not exist"):
        builders.load_pairs(f"paired:{tmp_path / 'missing'}", "train", data_dir=data_dir)
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="No images"):
        builders.load_pairs(f"paired:{tmp_path / 'empty'}", "train", data_dir=data_dir)
    _write_paired(tmp_path / "p", {"train": 1, "test": 1})
    with pytest.raises(ValueError, match=r"available splits: \['test', 'train'\]"):
        builders.load_pairs(f"paired:{tmp_path / 'p'}", "val", data_dir=data_dir)
    Image.fromarray(_random_u8(9, (8, 10, 3))).save(tmp_path / "p" / "train" / "other.png")
    with pytest.raises(ValueError, match=r"different sizes.*size=\(height, width\)"):
        builders.load_pairs(f"paired:{tmp_path / 'p'}", "train", data_dir=data_dir, rebuild=True)
    Image.fromarray(_random_u8(9, (8, 11, 3))).save(tmp_path / "p" / "train" / "other.png")
    with pytest.raises(ValueError, match="width is odd"):
        builders.load_pairs(f"paired:{tmp_path / 'p'}", "train", data_dir=data_dir, rebuild=True)


def test_source_errors(tmp_path):
    data_dir = str(tmp_path / "tfds")
    with pytest.raises(ValueError, match="Unknown pix2pix data source"):
        builders.load_pairs("photos:/x", "train", data_dir=data_dir)
    with pytest.raises(ValueError, match="needs size"):
        builders.load_pairs("edges2x:skimage", "train", data_dir=data_dir)
    with pytest.raises(ValueError, match="Unknown edges2x source"):
        builders.load_pairs("edges2x:flickr", "train", data_dir=data_dir, size=(8, 8))
    with pytest.raises(ValueError, match="size must be"):
        builders.load_pairs("edges2x:skimage", "train", data_dir=data_dir, size=(0, 8))
    with pytest.raises(ValueError, match="direction"):
        builders.load_pairs("edges2x:skimage", "train", data_dir=data_dir, direction="AB")
    for name in ("mnist", "no_such_dataset_xyz"):  # Known to tfds but not prepared; unknown.
        with pytest.raises(ValueError, match=f"not prepared.*tfds build {name} --data_dir="):
            builders.load_pairs(f"tfds:{name}", "train", data_dir=data_dir)
        with pytest.raises(ValueError, match="not prepared"):
            builders.load_pairs(f"edges2x:tfds:{name}", "train", data_dir=data_dir, size=(8, 8))
    with pytest.raises(ValueError, match="does not exist"):
        builders.load_pairs(f"edges2x:folder:{tmp_path / 'nope'}", "train", size=(8, 8))
    (tmp_path / "blank").mkdir()
    with pytest.raises(ValueError, match="No images found"):
        builders.load_pairs(
            f"edges2x:folder:{tmp_path / 'blank'}", "train", data_dir=data_dir, size=(8, 8)
        )
    assert not os.path.exists(os.path.join(data_dir, "edges2x"))  # Nothing half-made.


# ----------------------------------------------------------------------------- edges2x


def test_edges2x_from_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(12):  # 20x30 -> 16x24 keeps the aspect: a plain resize.
        Image.fromarray(_smooth_photo(i, 20, 30)).save(folder / f"{i:02d}.png")
    data_dir = str(tmp_path / "tfds")
    edges, photos = builders.load_pairs(
        f"edges2x:folder:{folder}", "train", data_dir=data_dir, size=(16, 24)
    )
    assert edges.shape == photos.shape == (11, 16, 24, 3)
    (test_edges,), (test_photo,) = builders.load_pairs(
        f"edges2x:folder:{folder}", "test", data_dir=data_dir, size=(16, 24), sigma=1.0
    )
    expected = io.to_uint8(io.resize(io.load_image(folder / "09.png"), size=(16, 24)))
    np.testing.assert_array_equal(test_photo, expected)  # Every 10th file is a test image.
    np.testing.assert_array_equal(
        test_edges, io.to_uint8(pix2pix.edges(expected / 255.0, sigma=1.0))
    )
    for e, p in zip(edges, photos, strict=True):
        np.testing.assert_array_equal(e, io.to_uint8(pix2pix.edges(p / 255.0)))
    assert 0 < (edges == 0).mean() < 0.5


class Pix2pixTestPhotos(builders.LocalCode, tfds.core.GeneratorBasedBuilder):
    """A train-only tfds image dataset, standing in for e.g. oxford_iiit_pet."""

    name = "pix2pix_test_photos"
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        image = tfds.features.Image(shape=(None, None, 3), encoding_format="png")
        return tfds.core.DatasetInfo(
            builder=self, features=tfds.features.FeaturesDict({"image": image})
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(10):
            yield i, {"image": builders._png(_smooth_photo(i, 12, 14 + i))}


def test_edges2x_from_a_prepared_tfds_dataset(tmp_path):
    data_dir = str(tmp_path / "tfds")
    Pix2pixTestPhotos(data_dir=data_dir, file_format="array_record").download_and_prepare()
    source = "edges2x:tfds:pix2pix_test_photos"
    edges, photos = builders.load_pairs(source, "train", data_dir=data_dir, size=(8, 8))
    assert edges.shape == photos.shape == (9, 8, 8, 3)
    _, (held_out,) = builders.load_pairs(source, "test", data_dir=data_dir, size=(8, 8))
    tenth = tfds.data_source("pix2pix_test_photos", split="train", data_dir=data_dir)[9]["image"]
    height, width = tenth.shape[:2]  # 12 x (14..23): short side to 8, centre 8 columns.
    resized = io.resize(tenth / np.float32(255), size=(8, round(width * 8 / height)))
    left = (resized.shape[1] - 8) // 2
    np.testing.assert_array_equal(held_out, io.to_uint8(resized[:, left : left + 8]))


def test_edges2x_skimage_default_is_non_square_and_held_out(tmp_path):
    data_dir = str(tmp_path / "tfds")
    edges, photos = builders.load_pairs("edges2x:skimage", "test", data_dir=data_dir, size=(24, 40))
    num_crops = sum(n for _, n in builders.SKIMAGE_SCALES)
    assert photos.shape == (len(builders.SKIMAGE_TEST) * num_crops, 24, 40, 3)
    for e, p in zip(edges[::9], photos[::9], strict=True):
        np.testing.assert_array_equal(e, io.to_uint8(pix2pix.edges(p / 255.0)))
    train, _ = builders.load_pairs("edges2x:skimage", "train", data_dir=data_dir, size=(24, 40))
    assert len(train) == len(builders.SKIMAGE_TRAIN) * num_crops
    builder = builders.prepare("edges2x:skimage", data_dir=data_dir, size=(24, 40))
    names = {ex["name"].decode().split("_")[0] for ex in builders.read_split(builder, "test")}
    assert names == set(builders.SKIMAGE_TEST)
