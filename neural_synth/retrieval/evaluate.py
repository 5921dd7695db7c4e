"""Scoring retrieval: leave-one-out mean average precision and top-1 accuracy.

Every item queries all the others; the relevant items are those with its
label. Average precision of one query = the mean, over its relevant items, of
the precision at the rank where each is found; mAP averages over queries.
Chance levels come from random rankings (a fixed seed), so a score can be
read as "k times chance".

References: Manning, Raghavan & Schuetze, "Introduction to Information
Retrieval", 2008, section 8.4 (mean average precision).
"""

import numpy as np

NUM_CHANCE_RANKINGS = 200


def _rankings(vectors: np.ndarray) -> np.ndarray:
    """[N, N - 1] positions of the other items, nearest first, per query."""
    v = np.asarray(vectors, np.float64)
    d2 = np.sum(v**2, -1)[:, None] + np.sum(v**2, -1)[None] - 2.0 * v @ v.T
    np.fill_diagonal(d2, np.inf)  # A query never retrieves itself.
    return np.argsort(d2, axis=1, kind="stable")[:, :-1]


def _average_precisions(relevant: np.ndarray) -> np.ndarray:
    """[Q] APs from [Q, M] booleans: is the item at each rank relevant."""
    hits = np.cumsum(relevant, axis=1)
    ranks = np.arange(1, relevant.shape[1] + 1)
    precision_at_hits = np.where(relevant, hits / ranks, 0.0)
    return precision_at_hits.sum(axis=1) / np.maximum(relevant.sum(axis=1), 1)


def score(vectors: np.ndarray, labels: np.ndarray, *, seed: int = 0) -> dict[str, float]:
    """{'map', 'top1', 'chance_map', 'chance_top1'} of descriptors [N, D] with labels [N].

    Every label must occur at least twice (each query needs a relevant item).
    """
    labels = np.asarray(labels)
    if len(vectors) != len(labels) or np.min(np.unique(labels, return_counts=True)[1]) < 2:
        raise ValueError("Need one label per vector and every label at least twice.")
    order = _rankings(vectors)
    relevant = labels[order] == labels[:, None]  # [N, N - 1]
    rng = np.random.default_rng(seed)
    chance = []
    for _ in range(NUM_CHANCE_RANKINGS):
        shuffled = np.stack([rng.permutation(row) for row in order])
        chance.append(labels[shuffled] == labels[:, None])
    chance = np.stack(chance)  # [R, N, N - 1]
    return {
        "map": float(_average_precisions(relevant).mean()),
        "top1": float(relevant[:, 0].mean()),
        "chance_map": float(np.mean([_average_precisions(c).mean() for c in chance])),
        "chance_top1": float(chance[..., 0].mean()),
    }
