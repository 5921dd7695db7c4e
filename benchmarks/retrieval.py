r"""Retrieval quality on the built benchmark: mAP without masks, with the paste masks, with
masks from the last pooling layer, for Gram and mean+std descriptors.

  python -m benchmarks.retrieval                       # 128 px views, seeds 0 1 2
  python -m benchmarks.retrieval --size=224 --seeds=0 --views=6

The benchmark (`neural_synth.data.retrieval_bench`): 6 scikit-image photos and
3 procedural textures, --views views of each (random crop, flip, rotation up
to 12 degrees, colour jitter), each pasted over 1/4 of a distracting
background. Every view queries all others (leave-one-out); relevant = the
other views of its source. Prints a Markdown table of mean average precision
and top-1 accuracy (mean over seeds) with chance levels from random rankings.
"""

import time

import numpy as np
from absl import app, flags

from neural_synth.data import retrieval_bench
from neural_synth.retrieval import descriptors, evaluate
from neural_synth.retrieval import index as index_lib

_SIZE = flags.DEFINE_integer("size", 128, "Side of every view (a multiple of 32).")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Benchmark seeds (results are averaged).")
_VIEWS = flags.DEFINE_integer("views", 4, "Views per source.")
_KINDS = flags.DEFINE_list("kinds", ["gram", "mean_std"], "Statistics to compare.")
_THRESHOLD = flags.DEFINE_float("mask_threshold", 0.5, "Threshold of the automatic masks.")


def _scores(bench, kind: str, mode: str) -> dict[str, float]:
    spec = descriptors.DescriptorSpec(
        image_side=_SIZE.value,
        kind=kind,
        mask="auto" if mode == "auto" else "none",
        mask_threshold=_THRESHOLD.value,
    )
    weights = bench.masks if mode == "given" else np.ones_like(bench.masks)
    vectors = index_lib.describe_all(descriptors.Describer(spec), bench.images, weights)
    return evaluate.score(vectors, bench.labels)


def main(argv) -> None:
    del argv
    benches = [
        retrieval_bench.build_benchmark(
            size=_SIZE.value, views_per_source=_VIEWS.value, seed=int(s)
        )
        for s in _SEEDS.value
    ]
    print(f"{len(benches[0].labels)} views of {len(benches[0].source_names)} sources, "
          f"{_SIZE.value} px, seeds {','.join(_SEEDS.value)}\n")  # fmt: skip
    print("| statistic | mask | mAP | top-1 | chance mAP | chance top-1 | s |")
    print("|---|---|---|---|---|---|---|")
    for kind in _KINDS.value:
        for mode in ("none", "given", "auto"):
            start = time.perf_counter()
            runs = [_scores(b, kind, mode) for b in benches]
            mean = {k: np.mean([r[k] for r in runs]) for k in runs[0]}
            print(f"| {kind} | {mode} | {mean['map']:.3f} | {mean['top1']:.3f} | "
                  f"{mean['chance_map']:.3f} | {mean['chance_top1']:.3f} | "
                  f"{time.perf_counter() - start:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    app.run(main)
