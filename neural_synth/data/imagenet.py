"""ImageNet (ILSVRC-2012) class labels, in the order of the classifiers' 1000 outputs.

The WordNet synset ids in class order ship with tensorflow-datasets
(`tensorflow_datasets/datasets/imagenet2012/labels.txt`), a dependency, so
`synsets()` needs no download. Human-readable names do not ship with any
dependency; `class_names(path)` reads them from a text file with one name per
line in class order when the user has one (e.g. the `synset_words.txt` of the
Caffe ILSVRC-2012 tools, whose lines look like 'n01440764 tench, Tinca tinca').

Classes used by the tests and defaults: 281-285 are the domestic cats (tabby,
tiger cat, Persian, Siamese, Egyptian cat), 967 espresso, 968 cup, 504 coffee mug.
"""

import functools
import importlib.util
import os
import pathlib

NUM_CLASSES = 1000
LABELS_FILE = ("datasets", "imagenet2012", "labels.txt")
DOMESTIC_CATS = (281, 282, 283, 284, 285)
COFFEE = (504, 967, 968)


@functools.cache
def synsets() -> tuple[str, ...]:
    """The 1000 synset ids ('n01440764', ...) in class order."""
    spec = importlib.util.find_spec("tensorflow_datasets")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("tensorflow-datasets is not installed; `pip install tensorflow-datasets`")
    path = pathlib.Path(next(iter(spec.submodule_search_locations)), *LABELS_FILE)
    return _read_lines(path, "ImageNet synset list")


def _read_lines(path: pathlib.Path, what: str) -> tuple[str, ...]:
    try:
        lines = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read the {what} {path}: {e}") from e
    lines = tuple(line for line in lines if line)
    if len(lines) != NUM_CLASSES:
        raise ValueError(f"{path} has {len(lines)} lines; an {what} needs {NUM_CLASSES}")
    return lines


def class_names(path: str | os.PathLike | None = None) -> tuple[str, ...]:
    """1000 class labels: the lines of `path` (one per class, in order), else the synset ids."""
    if path is None:
        return synsets()
    return _read_lines(pathlib.Path(path), "ImageNet class-name file")


def check_class(index: int) -> int:
    """`index` as an int in [0, 1000); ValueError otherwise."""
    if not 0 <= int(index) < NUM_CLASSES:
        raise ValueError(f"ImageNet classes are 0..{NUM_CLASSES - 1}, got {index}")
    return int(index)
