"""Similar-image search by (masked) Gram or mean+std statistics of VGG features.

  python -m scripts.retrieve                                   # demo: bundled photos
  python -m scripts.retrieve index --out idx                   # index the bundled photos
  python -m scripts.retrieve index --images DIR --out idx [--mask=auto | --mask=MASK_DIR]
  python -m scripts.retrieve query --index idx --image q.jpg --k 8 --out grid.png [--mask=m.png]

`index` describes every image under --images (default: scikit-image's bundled
photos) and writes the index directory (index.json + vectors-*.npz, written
atomically). --mask=auto masks each image by thresholding the channel-summed
activation of VGG's last pooling layer (queries then get the same automatic
mask); --mask=DIR reads one mask image per image, named like it. `query`
prints the k nearest images with their distances and writes a PNG grid (the
query framed in red, then the results). `demo` indexes the bundled photos
into --out (default runs/retrieval/bundled) and queries a flipped centre crop
of --image (default skimage:coffee).
"""

import os

import numpy as np
from absl import flags

from neural_synth import io
from neural_synth.retrieval import descriptors
from neural_synth.retrieval import index as index_lib
from scripts import common

_IMAGES = flags.DEFINE_string("images", None, "index: folder of images (default: bundled photos).")
_OUT = flags.DEFINE_string("out", None, "index/demo: index directory; query: the PNG grid.")
_MASK = flags.DEFINE_string(
    "mask", "none", "index: none, auto or a folder of masks; query: none or a mask image."
)
_KIND = flags.DEFINE_enum("kind", "gram", ["gram", "mean", "mean_std"], "Statistic per layer.")
_LAYERS = flags.DEFINE_list("layers", ["relu1_1", "relu2_1", "relu3_1"], "VGG layers.")
_SIDE = flags.DEFINE_integer("image_side", 224, "Images are letterboxed into this square.")
_THRESHOLD = flags.DEFINE_float("mask_threshold", 0.5, "--mask=auto: threshold in [0, 1].")
_VGG = flags.DEFINE_string("vgg_path", "", "Ported VGG weights ('' = random VGG19).")
_INDEX = flags.DEFINE_string("index", None, "query: the index directory.")
_IMAGE = flags.DEFINE_string("image", None, "query/demo: the query image (path or skimage:NAME).")
_K = flags.DEFINE_integer("k", 8, "query: number of results.", lower_bound=1)
DEMO_DIR = os.path.join("runs", "retrieval")


def _spec() -> descriptors.DescriptorSpec:
    mode = _MASK.value if _MASK.value in ("none", "auto") else "given"
    return descriptors.DescriptorSpec(
        layers=tuple(_LAYERS.value),
        kind=_KIND.value,
        image_side=_SIDE.value,
        mask=mode,
        mask_threshold=_THRESHOLD.value,
        vgg_path=_VGG.value,
    )


def build(out: str, images: str | None) -> index_lib.Index:
    spec = _spec()
    items = index_lib.folder_items(images) if images else list(index_lib.BUNDLED)
    masks = index_lib.mask_files(items, _MASK.value) if spec.mask == "given" else None
    index = index_lib.build_index(items, spec, masks=masks, progress=True)
    print(f"Indexed {len(items)} images ({spec.kind} at {', '.join(spec.layers)}, "
          f"mask {spec.mask}) into {index_lib.save_index(index, out).parent}.")  # fmt: skip
    return index


def search(index: index_lib.Index, image: np.ndarray, mask_spec: str, out: str) -> None:
    mask = None
    if mask_spec not in ("none", "auto", ""):
        mask = descriptors.load_mask(mask_spec, like=image)
    matches = index_lib.query(index, image, mask=mask, k=_K.value)
    for m in matches:
        print(f"{m.rank:3d}  {m.distance:.4f}  {m.item}")
    io.save_image(out, index_lib.result_grid(image, matches))
    print(f"Wrote {out}: the query (framed) and its {len(matches)} nearest images.")


def index_command() -> None:
    build(common.require(_OUT, "index"), _IMAGES.value)


def query_command() -> None:
    out = common.require(_OUT, "query")
    io.check_save_path(out)
    index = index_lib.load_index(common.require(_INDEX, "query"))
    image = io.load_image_or_sample(common.require(_IMAGE, "query"))
    search(index, image, _MASK.value, out)


def demo_command() -> None:
    out = _OUT.value or os.path.join(DEMO_DIR, "bundled")
    try:
        index = index_lib.load_index(out)
        print(f"Using the index in {out}.")
    except ValueError:
        index = build(out, None)
    photo = io.load_image_or_sample(_IMAGE.value or "skimage:coffee")
    h, w = photo.shape[:2]
    crop = photo[h // 6 : h - h // 6, w // 6 : w - w // 6, :][:, ::-1]  # A new view of it.
    search(index, np.ascontiguousarray(crop), "none", os.path.join(DEMO_DIR, "demo.png"))


if __name__ == "__main__":
    common.run(
        commands={"index": index_command, "query": query_command, "demo": demo_command},
        default="demo",
    )
