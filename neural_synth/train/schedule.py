"""Learning-rate schedules from plain numbers (experiments translate their configs).

Both hold the rate constant, then decay it over the last `decay_steps` steps.
"""

import optax


def constant_then_cosine(
    learning_rate: float, *, num_steps: int, decay_steps: int, alpha: float = 0.02
) -> optax.Schedule:
    """Constant, then cosine decay to `alpha * learning_rate` over the last `decay_steps`."""
    decay_steps = max(1, decay_steps)
    return optax.join_schedules(
        [
            optax.constant_schedule(learning_rate),
            optax.cosine_decay_schedule(learning_rate, decay_steps, alpha=alpha),
        ],
        [num_steps - decay_steps],
    )


def constant_then_linear(
    learning_rate: float, *, num_steps: int, decay_steps: int
) -> optax.Schedule:
    """Constant, then linear decay to 0 over the last `decay_steps` (junyanz's 'linear').

    References: Isola et al., "Image-to-Image Translation with Conditional
    Adversarial Networks", CVPR 2017 (the pytorch-CycleGAN-and-pix2pix policy).
    """
    if decay_steps <= 0:
        return optax.constant_schedule(learning_rate)
    return optax.join_schedules(
        [
            optax.constant_schedule(learning_rate),
            optax.linear_schedule(learning_rate, 0.0, decay_steps),
        ],
        [num_steps - decay_steps],
    )
