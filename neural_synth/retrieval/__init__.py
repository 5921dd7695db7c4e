"""Similar-image search by (masked) style statistics of VGG features.

Modules: `descriptors` (the descriptor of an image: Gram or mean+std
statistics at chosen layers, under no mask, a given mask, or one computed
from the last pooling layer's activations), `index` (building, saving,
loading and searching an index on disk), `evaluate` (leave-one-out mAP and
top-1 accuracy). The benchmark the tests and `benchmarks/retrieval.py` score
is built by `neural_synth.data.retrieval_bench`.
"""

from neural_synth.retrieval import descriptors, evaluate, index

__all__ = ["descriptors", "evaluate", "index"]
