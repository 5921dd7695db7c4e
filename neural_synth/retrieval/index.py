"""An index of image descriptors on disk, and nearest-neighbour search in it.

An index is a directory holding

  index.json              format, version, the `DescriptorSpec`, the items
                          (image paths or `skimage:NAME`), their mask files,
                          and the name and sha256 of the vectors file
  vectors-<sha12>.npz     'vectors': float32 [N, D] unit-length descriptors

Saving is atomic: the vectors file is written under a name derived from its
content, then `index.json` is replaced in one rename (the commit point), then
stale vectors files are removed. A reader therefore always sees a complete
index, old or new, and `load_index` verifies the checksum.

Search is exact (brute force) Euclidean distance between descriptors; for
unit-length descriptors that is sqrt(2 - 2 cos), so the ranking equals the
cosine similarity's.
"""

import dataclasses
import hashlib
import io as io_lib
import json
import os
import pathlib
import sys
from collections.abc import Sequence

import numpy as np

from neural_synth import io
from neural_synth import progress as progress_lib
from neural_synth.data import backgrounds
from neural_synth.retrieval import descriptors

INDEX_FILE = "index.json"
FORMAT_NAME = "neural_synth.retrieval_index"
FORMAT_VERSION = 1
BUNDLED = tuple(f"{io.SAMPLE_PREFIX}{name}" for name in io.SAMPLE_NAMES)


@dataclasses.dataclass
class Index:
    """Descriptors [N, D] of `items`, computed as `spec` says (masks: files or None per item)."""

    spec: descriptors.DescriptorSpec
    items: list[str]
    vectors: np.ndarray
    masks: list[str | None]

    def __post_init__(self):
        self.vectors = np.asarray(self.vectors, np.float32)
        if self.vectors.shape[0] != len(self.items) or len(self.masks) != len(self.items):
            raise ValueError(
                f"An index needs one vector and one mask entry per item: {len(self.items)} items, "
                f"vectors {self.vectors.shape}, {len(self.masks)} mask entries."
            )


@dataclasses.dataclass(frozen=True)
class Match:
    """One search result: 1-based rank, the item's position in the index, the item, its distance."""

    rank: int
    position: int
    item: str
    distance: float


# ----------------------------------------------------------------------------- items


def folder_items(folder: str) -> list[str]:
    """Sorted paths of the image files under `folder` (recursively); an error if there are none."""
    if not os.path.isdir(folder):
        raise ValueError(f"Image folder {folder!r} does not exist or is not a directory.")
    paths = sorted(
        os.path.join(root, f)
        for root, _, files in os.walk(folder)
        for f in files
        if f.lower().endswith(backgrounds.IMAGE_EXTENSIONS)
    )
    if not paths:
        raise ValueError(
            f"No images under {folder!r} (extensions {', '.join(backgrounds.IMAGE_EXTENSIONS)})."
        )
    return paths


def mask_files(items: Sequence[str], mask_folder: str) -> list[str]:
    """For each item path, the mask image in `mask_folder` with the same file stem."""
    if not os.path.isdir(mask_folder):
        raise ValueError(f"Mask folder {mask_folder!r} does not exist or is not a directory.")
    by_stem = {pathlib.Path(p).stem: p for p in folder_items(mask_folder)}
    missing = [p for p in items if pathlib.Path(p).stem not in by_stem]
    if missing:
        raise ValueError(
            f"No mask in {mask_folder!r} for {len(missing)} images (e.g. {missing[0]!r}); "
            "name each mask like its image (any image extension)."
        )
    return [by_stem[pathlib.Path(p).stem] for p in items]


def load_prepared(item: str, mask_file: str | None, side: int) -> tuple[np.ndarray, np.ndarray]:
    """(letterboxed image [S, S, 3], mask weights [S, S]) of one item (`descriptors.prepare_for_index`)."""
    image = io.load_image_or_sample(item)
    mask = None if mask_file is None else descriptors.load_mask(mask_file, like=image)
    return descriptors.prepare_for_index(image, mask, side)


# ----------------------------------------------------------------------------- build and search


def describe_all(
    describer: descriptors.Describer,
    images: np.ndarray,
    weights: np.ndarray,
    *,
    batch_size: int = 8,
) -> np.ndarray:
    """Descriptors [N, D] of prepared images [N, S, S, 3] with mask weights [N, S, S].

    Runs in batches of `batch_size` (the last one zero-padded: one compilation).
    """
    out = []
    for start in range(0, len(images), batch_size):
        x, m = images[start : start + batch_size], weights[start : start + batch_size]
        pad = batch_size - len(x)
        x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), np.float32)])
        m = np.concatenate([m, np.ones((pad, *m.shape[1:]), np.float32)])
        out.append(describer(x, m)[0][: batch_size - pad])
    return np.concatenate(out)


def build_index(
    items: Sequence[str],
    spec: descriptors.DescriptorSpec,
    *,
    masks: Sequence[str | None] | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> Index:
    """Describes every item (image paths or `skimage:NAME`), optionally under mask files."""
    items = list(items)
    masks = [None] * len(items) if masks is None else list(masks)
    if not items or len(masks) != len(items):
        raise ValueError(
            f"Need >= 1 item and one mask entry per item, got {len(items)}, {len(masks)}."
        )
    describer = descriptors.Describer(spec)
    reporter = progress_lib.Progress(len(items), unit="image", stream=sys.stderr, enabled=progress)
    reporter.start("indexing")
    vectors = []
    for start in range(0, len(items), batch_size):
        stop = min(start + batch_size, len(items))
        prepared = [load_prepared(items[i], masks[i], spec.image_side) for i in range(start, stop)]
        images = np.stack([p[0] for p in prepared])
        weights = np.stack([p[1] for p in prepared])
        vectors.append(describe_all(describer, images, weights, batch_size=batch_size))
        reporter.update(stop)
    return Index(spec, items, np.concatenate(vectors), masks)


def search(index: Index, queries: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions [Q, k'], distances [Q, k']): the k' = min(k, N) nearest items per query [Q, D]."""
    queries = np.atleast_2d(np.asarray(queries, np.float32))
    if queries.shape[-1] != index.vectors.shape[-1]:
        raise ValueError(
            f"Query descriptors have {queries.shape[-1]} entries, the index's "
            f"{index.vectors.shape[-1]}; describe queries with the index's own spec."
        )
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    d2 = (
        np.sum(queries**2, -1)[:, None]
        + np.sum(index.vectors**2, -1)[None]
        - 2.0 * queries @ index.vectors.T
    )
    order = np.argsort(d2, axis=1, kind="stable")[:, : min(k, len(index.items))]
    return order, np.sqrt(np.maximum(np.take_along_axis(d2, order, axis=1), 0.0))


def query(index: Index, image: np.ndarray, *, mask: np.ndarray | None = None, k: int = 8):
    """The k nearest items to `image` [H, W, 3] (optionally under `mask` [H, W]): [Match]."""
    describer = descriptors.Describer(index.spec)
    boxed, weights = descriptors.prepare_for_index(image, mask, index.spec.image_side)
    vector = describe_all(describer, boxed[None], weights[None], batch_size=1)
    positions, distances = search(index, vector, k=k)
    return [
        Match(rank=r + 1, position=int(p), item=index.items[p], distance=float(d))
        for r, (p, d) in enumerate(zip(positions[0], distances[0], strict=True))
    ]


# ----------------------------------------------------------------------------- storage


def save_index(index: Index, directory: str | os.PathLike) -> pathlib.Path:
    """Writes `index` into `directory` (created if needed) atomically; returns index.json's path."""
    directory = pathlib.Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"Cannot write an index to {str(directory)!r}: it is a file.")
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io_lib.BytesIO()
    np.savez(buffer, vectors=index.vectors)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    vectors_name = f"vectors-{digest[:12]}.npz"
    io.write_atomically(directory / vectors_name, lambda f: f.write(data))
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "spec": index.spec.to_dict(),
        "items": index.items,
        "masks": index.masks,
        "num_items": len(index.items),
        "dim": int(index.vectors.shape[1]),
        "vectors_file": vectors_name,
        "vectors_sha256": digest,
    }
    text = json.dumps(meta, indent=2).encode("utf-8")
    io.write_atomically(directory / INDEX_FILE, lambda f: f.write(text))  # The commit point.
    for stale in directory.glob("vectors-*.npz"):
        if stale.name != vectors_name:
            stale.unlink(missing_ok=True)
    return directory / INDEX_FILE


def load_index(directory: str | os.PathLike) -> Index:
    """Reads an index written by `save_index`; a clear error if it is missing or damaged."""
    path = pathlib.Path(directory) / INDEX_FILE
    if not path.is_file():
        raise ValueError(
            f"No index at {str(directory)!r} ({INDEX_FILE} missing); build one with "
            "`python -m scripts.retrieve index --out DIR`."
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{str(path)!r} is not valid JSON ({e}); rebuild the index.") from e
    if meta.get("format") != FORMAT_NAME or meta.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{str(path)!r} is not a version-{FORMAT_VERSION} {FORMAT_NAME} file; "
            "rebuild the index."
        )
    vectors_path = path.parent / meta["vectors_file"]
    data = vectors_path.read_bytes() if vectors_path.is_file() else b""
    if hashlib.sha256(data).hexdigest() != meta["vectors_sha256"]:
        raise ValueError(
            f"{str(vectors_path)!r} is missing or damaged (checksum); rebuild the index."
        )
    with np.load(io_lib.BytesIO(data)) as npz:
        vectors = npz["vectors"]
    spec = descriptors.DescriptorSpec.from_dict(meta["spec"])
    return Index(spec, list(meta["items"]), vectors, list(meta["masks"]))


# ----------------------------------------------------------------------------- display


def result_grid(query_image: np.ndarray, matches: list[Match], *, side: int = 160) -> np.ndarray:
    """One image [H', W', 3]: the query (framed in red), then its matches; centre-cropped tiles."""
    from neural_synth.data import pix2pix  # Lazy: only displays need it.

    thumbs = [pix2pix.fit(query_image, (side, side))]
    thumbs += [pix2pix.fit(io.load_image_or_sample(m.item), (side, side)) for m in matches]
    frame = max(2, side // 40)
    red = np.asarray([0.85, 0.1, 0.1], np.float32)
    for edge in (np.s_[:frame], np.s_[-frame:]):
        thumbs[0][edge], thumbs[0][:, edge] = red, red
    return io.make_grid(np.stack(thumbs), ncols=min(len(thumbs), 5))
