"""Optimizers for the train steps, where optax's defaults compile badly on XLA:CPU.

`adam` is `optax.adam` with `b1` (and the learning rate) held as arrays in the
state (`optax.inject_hyperparams`). With `b1=0.5` (pix2pix) as a compile-time
constant, XLA folds mu's update `0.5 * g + 0.5 * mu` into `0.5 * (g + mu)`, a
cheap expression that its fusion pass then recomputes inside the parameter
update from the *old* mu; since the donated mu is overwritten in place, XLA
copies every mu leaf first (208 MB per step for the U-Net256). With `b1` read
from the state at run time nothing is folded or recomputed: one loop per
moment and one for the parameters, no copies. On the U-Net256's 54M
parameters: 147 -> 67 ms per update (112 -> 63 ms with the malloc tunables
of `scripts.train`), pix2pix batch-1 step 9-14% faster
(`benchmarks/RESULTS.md`). With b1 = 0.9 plain `optax.adam` is not copied.
"""

import optax


def adam(
    learning_rate: float | optax.Schedule,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> optax.GradientTransformation:
    """`optax.adam` that XLA:CPU updates in place (no copies of the moments).

    Same updates as `optax.adam`: bit-identical for a `b1` that float32 holds
    exactly (0.5), within float32 rounding of `1 - b1` otherwise. `b2` and
    `eps` stay Python constants, as in optax. The state is an
    `optax.InjectStatefulHyperparamsState` (count, `b1` and the learning rate
    as scalars, the schedule's count, optax.adam's own state): checkpoints of
    plain `optax.adam` states do not restore into it.
    """
    return optax.inject_hyperparams(optax.adam, static_args=("b2", "eps", "eps_root"))(
        learning_rate=learning_rate, b1=b1, b2=b2, eps=eps
    )
