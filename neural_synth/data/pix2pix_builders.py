"""tensorflow-datasets builders for pix2pix pairs, and `load_pairs`, which reads them.

Two `GeneratorBasedBuilder`s whose configs are made per source (a
`BuilderConfig` instance is passed to the constructor), so any folder or
source gets its own prepared copy under `data_dir/<builder>/<config>/<version>`:

  PairedImages   the pix2pix layout (train/ val/ test/ folders of A | B images)
  Edges2X        (edges, photo) pairs from scikit-image photos, a folder or a
                 prepared tfds image dataset

Both store PNG images (lossless) in ArrayRecord files, which tensorflow-datasets
prepares and reads without TensorFlow. Preparation reads local files only.
This module imports tensorflow-datasets at import time; `pix2pix` imports it
lazily.

References: Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with
  Conditional Adversarial Networks", CVPR 2017.
"""

import dataclasses
import hashlib
import io as bytes_io
import itertools
import os
import re
import zlib
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from neural_synth import io
from neural_synth.data import backgrounds, pix2pix

VERSION = "1.0.0"
FILE_FORMAT = "array_record"  # Random access, and no TensorFlow needed to write or read.
SPLIT_FOLDERS = ("train", "val", "test")
# Colour photographs bundled with scikit-image; the test ones are never cropped for train.
SKIMAGE_TRAIN = ("astronaut", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")
SKIMAGE_TEST = ("chelsea", "coffee")
# (window size as a fraction of the largest window of the output's aspect, crops).
SKIMAGE_SCALES = ((1.0, 1), (0.6, 6), (0.35, 20))
TEST_EVERY = 10  # Folder and train-only tfds sources: every 10th image is a test image.
_CITATION = """@inproceedings{isola2017image,
  title={Image-to-Image Translation with Conditional Adversarial Networks},
  author={Isola, Phillip and Zhu, Jun-Yan and Zhou, Tinghui and Efros, Alexei A},
  booktitle={CVPR}, year={2017}}"""


# ----------------------------------------------------------------------------- helpers


def _features() -> tfds.features.FeaturesDict:
    """{'a', 'b'}: uint8 [H, W, 3] stored as PNG (lossless); 'name': the example's origin."""
    image = lambda doc: tfds.features.Image(shape=(None, None, 3), encoding_format="png", doc=doc)
    return tfds.features.FeaturesDict(
        {"a": image("input"), "b": image("target"), "name": tfds.features.Text()}
    )


def _png(image: np.ndarray) -> bytes:
    """uint8 [H, W, 3] -> PNG bytes (encoded here: tfds' own encoder needs TensorFlow)."""
    buffer = bytes_io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def list_images(folder: str) -> list[str]:
    """Sorted paths of the image files under `folder` (recursively)."""
    return sorted(
        os.path.join(root, name)
        for root, _, files in os.walk(folder)
        for name in files
        if name.lower().endswith(backgrounds.IMAGE_EXTENSIONS)
    )


def hold_out(items: list) -> tuple[list, list]:
    """Deterministic (train, test): every TEST_EVERY-th item is a test item (the last if none)."""
    test_ids = {i for i in range(len(items)) if i % TEST_EVERY == TEST_EVERY - 1}
    if not test_ids and len(items) >= 2:
        test_ids = {len(items) - 1}
    train = [x for i, x in enumerate(items) if i not in test_ids]
    return train, [x for i, x in enumerate(items) if i in test_ids]


def _slug(text: str, max_len: int = 32) -> str:
    """A config-name-safe version of `text` ([a-z0-9_])."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:max_len] or "x"


def _folder_key(folder: str) -> str:
    """'<basename>_<hash of the absolute path>': two folders never share a prepared dataset."""
    digest = hashlib.sha1(folder.encode("utf-8")).hexdigest()[:8]
    return f"{_slug(os.path.basename(folder.rstrip(os.sep)))}_{digest}"


def _check_folder(folder: str, what: str) -> str:
    folder = os.path.abspath(os.path.expanduser(folder))
    if not os.path.isdir(folder):
        raise ValueError(f"{what} folder {folder!r} does not exist; check the path.")
    return folder


class LocalCode:
    """Mixin for builders defined inside a package: the builder's code is this file.

    tfds 4.9.10 finds a builder's file through `importlib_resources` (not
    installed on Python >= 3.9) for any builder defined inside a package, and
    fails in `download_and_prepare`; there are no checksums to find anyway.
    """

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(__file__)


# ----------------------------------------------------------------------------- paired


@dataclasses.dataclass(eq=False)
class PairedImagesConfig(tfds.core.BuilderConfig):
    """A PairedImages dataset made from one folder; name '<basename>_<hash of its path>'."""

    folder: str = ""

    @classmethod
    def for_folder(cls, folder: str) -> "PairedImagesConfig":
        folder = os.path.abspath(os.path.expanduser(folder))
        return cls(name=_folder_key(folder), folder=folder, description=f"pairs from {folder}")


class PairedImages(LocalCode, tfds.core.GeneratorBasedBuilder):
    """pix2pix layout: the manual dir holds train/ val/ test/ folders of A | B images.

    Each image is split down the middle: the left half is 'a', the right half
    'b' (widths must be even). Splits are the folders that exist and hold images.
    """

    name = "paired_images"
    VERSION = tfds.core.Version(VERSION)
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put the dataset in the pix2pix layout in the manual dir: train/, val/ and/or "
        "test/ folders of images, each holding input A (left half) and target B (right "
        "half) side by side."
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Paired images in the pix2pix layout (A | B side by side).",
            features=_features(),
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        root = os.fspath(dl_manager.manual_dir)
        splits = paired_split_files(root)
        return {split: self._generate_examples(root, paths) for split, paths in splits.items()}

    def _generate_examples(self, root: str, paths: list[str]):
        for path in paths:
            image = io.to_uint8(io.load_image(path))  # [H, 2 W, 3]
            height, width = image.shape[:2]
            if width % 2:
                raise ValueError(
                    f"Paired image {path!r} is {height}x{width}: its width is odd, so it is "
                    "not A | B side by side; crop it to an even width."
                )
            name = os.path.relpath(path, root)  # 'train/1.jpg'
            half = width // 2
            yield name, {"a": _png(image[:, :half]), "b": _png(image[:, half:]), "name": name}


def paired_split_files(folder: str) -> dict[str, list[str]]:
    """{split: image paths} for the train/ val/ test/ folders that hold images."""
    splits = {s: list_images(os.path.join(folder, s)) for s in SPLIT_FOLDERS}
    splits = {s: paths for s, paths in splits.items() if paths}
    if not splits:
        raise ValueError(
            f"No images in {folder!r}/train, /val or /test; a paired folder needs the pix2pix "
            "layout: train/ (and val/, test/) folders of images with A | B side by side."
        )
    return splits


# ----------------------------------------------------------------------------- edges2x


@dataclasses.dataclass(eq=False)
class Edges2XConfig(tfds.core.BuilderConfig):
    """An Edges2X dataset: image source, output (height, width) and Canny sigma."""

    source: str = "skimage"
    size: tuple[int, int] = (64, 64)
    sigma: float = 2.0

    @classmethod
    def make(cls, source: str, size: tuple[int, int], sigma: float = 2.0) -> "Edges2XConfig":
        """Normalises the source and derives the config name from (source, size, sigma)."""
        height, width = pix2pix.check_size(size)
        kind, _, rest = source.partition(":")
        if kind == "skimage" and not rest:
            key = "skimage"
        elif kind == "folder" and rest:
            source = "folder:" + _check_folder(rest, "edges2x:folder")
            key = "folder_" + _folder_key(source[len("folder:") :])
        elif kind == "tfds" and rest:
            key = "tfds_" + _slug(rest) + "_" + hashlib.sha1(rest.encode()).hexdigest()[:6]
        else:
            raise ValueError(
                f"Unknown edges2x source {source!r}; use 'edges2x:skimage', "
                "'edges2x:folder:/path' or 'edges2x:tfds:NAME'."
            )
        sigma_text = f"{float(sigma):g}".replace(".", "p")
        name = f"{key}_{height}x{width}_s{sigma_text}"
        return cls(name=name, source=source, size=(height, width), sigma=float(sigma))


class Edges2X(LocalCode, tfds.core.GeneratorBasedBuilder):
    """(edges, photo) pairs: 'a' is the Canny edge map of the photo 'b'.

    Sources (config.source): 'skimage' (bundled colour photos; deterministic
    random crops at three scales; chelsea and coffee form the test split),
    'folder:/path' (one pair per image; every 10th file in sorted order is a
    test image) or 'tfds:NAME' (a dataset prepared in the local tfds data dir,
    read with download=False: train -> train, test or validation -> test, or a
    hold-out of every 10th train image). Photos are fitted to config.size
    (short side resized, centre cropped) before the edges are found.
    """

    name = "edges2x"
    VERSION = tfds.core.Version(VERSION)

    def __init__(self, *, source_data_dir: str | None = None, **kwargs):
        """`source_data_dir`: tfds data dir of a 'tfds:NAME' source (tfds' default if None)."""
        self._source_data_dir = source_data_dir
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="(Canny edge map, photo) pairs, as in edges2shoes / edges2cats.",
            features=_features(),
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Everything is local.
        config = self.builder_config
        kind, _, rest = config.source.partition(":")
        if kind == "skimage":
            photos = {
                "train": _skimage_photos(SKIMAGE_TRAIN, config.size),
                "test": _skimage_photos(SKIMAGE_TEST, config.size),
            }
        elif kind == "folder":
            photos = _folder_photos(rest, config.size)
        else:
            photos = _tfds_photos(open_prepared(rest, self._source_data_dir), config.size)
        return {split: self._generate_examples(items) for split, items in photos.items()}

    def _generate_examples(self, photos: Iterator[tuple[str, np.ndarray]]):
        for name, photo in photos:
            photo = io.to_uint8(photo)  # [H, W, 3]; edges of what is stored.
            lines = io.to_uint8(
                pix2pix.edges(photo / np.float32(255), sigma=self.builder_config.sigma)
            )
            yield name, {"a": _png(lines), "b": _png(photo), "name": name}


def _skimage_photos(names: tuple[str, ...], size: tuple[int, int]):
    """Deterministic random crops of scikit-image photos, fitted to `size`: (name, float photo)."""
    smallest = min(fraction for fraction, _ in SKIMAGE_SCALES)
    for sample in names:
        photo = io.sample_image(sample)
        # Shrink first so the smallest windows are still at least `size` (faster, same look).
        largest = min(photo.shape[0] / size[0], photo.shape[1] / size[1])
        if largest * smallest > 1.0:
            shrink = 1.0 / (largest * smallest)
            photo = io.resize(photo, size=_scaled(photo.shape[:2], shrink))
        rng = np.random.default_rng(zlib.crc32(sample.encode()))
        for scale, (fraction, num_crops) in enumerate(SKIMAGE_SCALES):
            for k in range(num_crops):
                window = _random_window(photo, size, fraction, rng)
                yield f"{sample}_{scale}_{k:02d}", pix2pix.fit(window, size)


def _scaled(shape: tuple[int, int], factor: float) -> tuple[int, int]:
    return max(1, round(shape[0] * factor)), max(1, round(shape[1] * factor))


def _random_window(photo: np.ndarray, size, fraction: float, rng: np.random.Generator):
    """A random window of the output's aspect, `fraction` of the largest one (never below 1:1)."""
    height, width = photo.shape[:2]
    largest = min(height / size[0], width / size[1])
    scale = max(largest * fraction, min(largest, 1.0))
    win_h, win_w = min(height, round(size[0] * scale)), min(width, round(size[1] * scale))
    top, left = rng.integers(height - win_h + 1), rng.integers(width - win_w + 1)
    return photo[top : top + win_h, left : left + win_w]


def _folder_photos(folder: str, size: tuple[int, int]) -> dict[str, Iterator]:
    """{split: (relative path, photo fitted to size)} with every 10th file held out."""
    train, test = hold_out(_edges2x_folder_images(folder))
    read = lambda ps: (
        (os.path.relpath(p, folder), pix2pix.fit(io.load_image(p), size)) for p in ps
    )
    return {"train": read(train), "test": read(test)} if test else {"train": read(train)}


def _edges2x_folder_images(folder: str) -> list[str]:
    paths = list_images(folder)
    if not paths:
        raise ValueError(
            f"No images found under edges2x folder {folder!r}; add some or fix the path."
        )
    return paths


def _tfds_photos(builder, size: tuple[int, int]) -> dict[str, Iterator]:
    """{split: (name, photo)} from a prepared tfds image dataset (streamed, one at a time)."""
    key = _image_feature(builder)
    splits = list(builder.info.splits.keys())
    if "train" not in splits:
        raise ValueError(f"tfds dataset {builder.name!r} has no 'train' split (it has {splits}).")
    test = next((s for s in ("test", "validation", "val") if s in splits), None)
    if test is None:
        indices = list(range(builder.info.splits["train"].num_examples))
        train_ids, test_ids = (set(ids) for ids in hold_out(indices))
        source = {"train": ("train", train_ids), "test": ("train", test_ids)}
    else:
        source = {"train": ("train", None), "test": (test, None)}

    def read(split: str, ids: set[int] | None):
        for i, example in enumerate(iterate_split(builder, split)):
            if ids is None or i in ids:
                photo = np.asarray(example[key])
                photo = np.repeat(photo, 3, -1) if photo.shape[-1] == 1 else photo[..., :3]
                yield f"{split}_{i:06d}", pix2pix.fit(photo / np.float32(255), size)

    return {name: read(*args) for name, args in source.items() if args[1] is None or args[1]}


def _image_feature(builder) -> str:
    """'image' or the first image feature of a tfds dataset."""
    features = builder.info.features
    if "image" in features.keys():
        return "image"
    for name, feature in features.items():
        if isinstance(feature, tfds.features.Image):
            return name
    raise ValueError(
        f"tfds dataset {builder.name!r} has no image feature (it has {list(features.keys())})."
    )


# ----------------------------------------------------------------------------- preparing, reading


def prepare(
    source: str,
    *,
    data_dir: str | None = None,
    size: tuple[int, int] | None = None,
    sigma: float = 2.0,
    rebuild: bool = False,
) -> tfds.core.DatasetBuilder:
    """The prepared builder for a `load_pairs` source, preparing it on first use."""
    kind, _, rest = source.partition(":")
    if kind == "tfds" and rest:
        return open_prepared(rest, data_dir)
    manual_dir = None
    if kind == "edges2x":
        if size is None:
            raise ValueError(f"{source!r} needs size=(height, width) of the pairs to prepare.")
        config = Edges2XConfig.make(rest, size, sigma)
        _check_edges2x_source(config.source, data_dir)
        builder = Edges2X(
            source_data_dir=data_dir, data_dir=data_dir, config=config, file_format=FILE_FORMAT
        )
    elif kind == "paired" and rest:
        manual_dir = _check_folder(rest, "Paired")
        paired_split_files(manual_dir)  # Clear error before tfds creates anything.
        config = PairedImagesConfig.for_folder(manual_dir)
        builder = PairedImages(data_dir=data_dir, config=config, file_format=FILE_FORMAT)
    else:
        raise ValueError(
            f"Unknown pix2pix data source {source!r}; use 'edges2x:skimage', "
            "'edges2x:folder:/path', 'edges2x:tfds:NAME', 'paired:/path' or 'tfds:NAME'."
        )
    mode = tfds.download.GenerateMode
    download_config = tfds.download.DownloadConfig(
        manual_dir=manual_dir,
        try_download_gcs=False,
        download_mode=mode.FORCE_REDOWNLOAD if rebuild else mode.REUSE_DATASET_IF_EXISTS,
    )
    builder.download_and_prepare(download_config=download_config)
    return builder


def _check_edges2x_source(source: str, data_dir: str | None) -> None:
    """Fails with a clear error before tfds creates anything (errors inside it are wrapped)."""
    kind, _, rest = source.partition(":")
    if kind == "tfds":
        open_prepared(rest, data_dir)
    elif kind == "folder":
        _edges2x_folder_images(rest)


def open_prepared(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
    """The builder of a tfds dataset prepared in `data_dir`; a ValueError saying how otherwise."""
    where = data_dir or tfds.core.constants.DATA_DIR
    hint = (
        f"tfds dataset {name!r} is not prepared in the data dir {where!r}; prepare it once "
        f"with `tfds build {name} --data_dir={where} --file_format=array_record` (add "
        "--manual_dir for datasets that need one), or pass the data_dir that holds it."
    )
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # tfds raises several types for an unknown or unreadable dataset.
        raise ValueError(f"{hint} ({type(e).__name__}: {str(e).splitlines()[0]})") from e
    if not builder.is_prepared():
        raise ValueError(hint)
    return builder


def iterate_split(builder: tfds.core.DatasetBuilder, split: str) -> Iterator[dict]:
    """Decoded examples (dicts of NumPy values) of one split, in stored order."""
    splits = list(builder.info.splits.keys())
    if split not in splits:
        raise ValueError(
            f"Split {split!r} is not in dataset {builder.info.full_name!r}; "
            f"available splits: {sorted(splits)}."
        )
    try:
        source = builder.as_data_source(split=split)
    except (NotImplementedError, ValueError) as e:  # Not ArrayRecord (e.g. TFRecord).
        yield from _iterate_with_tensorflow(builder, split, e)
        return
    for i in range(len(source)):
        yield source[i]


def _iterate_with_tensorflow(builder, split: str, error: Exception) -> Iterator[dict]:
    """Reads a TFRecord dataset through tf.data where TensorFlow is installed."""
    try:
        import tensorflow  # noqa: F401  (only to know whether tf.data can read it)
    except ImportError:
        raise ValueError(
            f"Dataset {builder.info.full_name!r} is stored as {builder.info.file_format}, which "
            "needs TensorFlow to read; install tensorflow or prepare it again with "
            f"--file_format=array_record ({error})."
        ) from error
    yield from tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))


def read_split(
    builder: tfds.core.DatasetBuilder, split: str, *, max_examples: int | None = None
) -> list[dict]:
    """The first `max_examples` (all when None) decoded examples of a split."""
    if max_examples is not None and max_examples < 0:
        raise ValueError(f"max_examples must be >= 0 or None, got {max_examples}.")
    return list(itertools.islice(iterate_split(builder, split), max_examples))


# ----------------------------------------------------------------------------- reading pairs


DIRECTIONS = ("AtoB", "BtoA")
# Pairs of image features that `load_pairs` reads from a tfds dataset, in order.
FEATURE_PAIRS = (("a", "b"), ("input", "target"))


def load_pairs(
    source: str,
    split: str,
    *,
    data_dir: str | None = None,
    size: tuple[int, int] | None = None,
    max_examples: int | None = None,
    direction: str = "AtoB",
    sigma: float = 2.0,
    rebuild: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of one split: uint8 [N, H, W, 3] arrays, in the dataset's stored order.

    On first use the dataset is prepared in `data_dir` from local files (see the
    module docstring for `source`); later calls only read it. Nothing is
    downloaded.

    Args:
      source: 'edges2x:skimage' | 'edges2x:folder:/path' | 'edges2x:tfds:NAME'
        (size required), 'paired:/path' or 'tfds:NAME'.
      split: e.g. 'train', 'val', 'test' (whatever the dataset has).
      data_dir: tfds data dir (tfds' default, $TFDS_DATA_DIR or
        ~/tensorflow_datasets, when None).
      size: (height, width). Edges2X prepares pairs of this size; other sources
        are fitted to it when read (short side resized, centre cropped).
      max_examples: read at most this many pairs.
      direction: 'AtoB' (inputs = a, e.g. edges) or 'BtoA' (swapped).
      sigma: Canny sigma of Edges2X edge maps.
      rebuild: prepare the dataset again even if it exists (e.g. after the
        source folder changed).

    Raises:
      ValueError: unknown source, missing folder, no images, missing split,
        tfds dataset not prepared, or images of different sizes with size=None.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}.")
    if size is not None:
        size = pix2pix.check_size(size)
    builder = prepare(source, data_dir=data_dir, size=size, sigma=sigma, rebuild=rebuild)
    examples = read_split(builder, split, max_examples=max_examples)
    keys = _feature_pair(builder, source)
    inputs = _stack([ex[keys[0]] for ex in examples], size, source, split)
    targets = _stack([ex[keys[1]] for ex in examples], size, source, split)
    return (targets, inputs) if direction == "BtoA" else (inputs, targets)


def _feature_pair(builder, source: str) -> tuple[str, str]:
    """Names of the (input, target) image features of a prepared dataset."""
    features = set(builder.info.features.keys())
    for pair in FEATURE_PAIRS:
        if set(pair) <= features:
            return pair
    raise ValueError(
        f"{source!r} has features {sorted(features)}; pix2pix needs image features "
        "'a' and 'b' (or 'input' and 'target'). Use 'edges2x:tfds:NAME' for a photo dataset."
    )


def _stack(images: list[np.ndarray], size, source: str, split: str) -> np.ndarray:
    """Decoded images -> uint8 [N, H, W, 3], fitted to `size` when given."""
    images = [pix2pix.fit_uint8(_rgb(np.asarray(x)), size) for x in images]
    if not images:
        shape = (0, *(size or (0, 0)), 3)
        return np.zeros(shape, np.uint8)
    shapes = sorted({x.shape[:2] for x in images})
    if len(shapes) > 1:
        raise ValueError(
            f"Images of {source!r} split {split!r} have different sizes {shapes[:4]}; "
            "pass size=(height, width) to resize them."
        )
    return np.stack(images)


def _rgb(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, C] with C in 1, 3, 4 (alpha dropped) -> uint8 [H, W, 3]."""
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        return np.repeat(image, 3, axis=-1)
    return image[..., :3]
