"""GAN losses on discriminator logits (any shape, e.g. PatchGAN maps [B, h, w, 1]).

Two objectives, chosen by `gan`:
  'vanilla'  binary cross-entropy with logits (real -> 1, fake -> 0)
  'lsgan'    least squares on the raw outputs (real -> 1, fake -> 0)

The discriminator loss is the mean over logits of the real and the fake term,
halved (pix2pix: "we divide the objective by 2 while optimizing D, which
slows down the rate at which D learns relative to G"). The generator loss is
the non-saturating one: the generator maximises log D(G(x)) instead of
minimising log(1 - D(G(x))), i.e. its fakes are labelled real.

All functions are pure and return float32 scalars.

References:
  Goodfellow et al., "Generative Adversarial Nets", NIPS 2014 (non-saturating loss).
  Mao et al., "Least Squares Generative Adversarial Networks", ICCV 2017.
  Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with Conditional
    Adversarial Networks", CVPR 2017 (halved discriminator objective).
"""

import jax
import jax.numpy as jnp

GAN_KINDS = ("vanilla", "lsgan")


def _check(gan: str) -> None:
    if gan not in GAN_KINDS:
        raise ValueError(f"Unknown GAN loss {gan!r}; choose from {GAN_KINDS}.")


def target_loss(logits: jax.Array, target: float, *, gan: str = "vanilla") -> jax.Array:
    """Mean loss of `logits` against the label `target` (1 real, 0 fake).

    vanilla: mean BCE-with-logits = mean(softplus(x) - target * x);
    lsgan: mean((x - target)^2).
    """
    _check(gan)
    x = logits.astype(jnp.float32)
    if gan == "lsgan":
        return jnp.mean(jnp.square(x - target))
    return jnp.mean(jax.nn.softplus(x) - target * x)


def discriminator_loss(
    real_logits: jax.Array, fake_logits: jax.Array, *, gan: str = "vanilla"
) -> jax.Array:
    """0.5 * (loss(D(real), 1) + loss(D(fake), 0)); pass the fakes' logits with
    the generator detached (`jax.lax.stop_gradient`) when training D."""
    return 0.5 * (target_loss(real_logits, 1.0, gan=gan) + target_loss(fake_logits, 0.0, gan=gan))


def generator_loss(fake_logits: jax.Array, *, gan: str = "vanilla") -> jax.Array:
    """Non-saturating generator loss: loss(D(G(x)), 1) (vanilla: mean softplus(-x))."""
    return target_loss(fake_logits, 1.0, gan=gan)


def discriminator_accuracy(real_logits: jax.Array, fake_logits: jax.Array, *, gan: str = "vanilla"):
    """Share of logits on the right side of the decision threshold (0 vanilla, 0.5 lsgan)."""
    _check(gan)
    threshold = 0.5 if gan == "lsgan" else 0.0
    real = jnp.mean((real_logits > threshold).astype(jnp.float32))
    fake = jnp.mean((fake_logits <= threshold).astype(jnp.float32))
    return 0.5 * (real + fake)
