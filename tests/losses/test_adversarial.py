"""GAN losses against hand-computed values, optax/torch, and the non-saturating gradient."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from neural_synth.losses import adversarial


def test_vanilla_losses_hand_computed():
    real, fake = jnp.array([2.0]), jnp.array([-1.0])
    bce_real, bce_fake = math.log1p(math.exp(-2.0)), math.log1p(math.exp(-1.0))
    d = adversarial.discriminator_loss(real, fake)
    np.testing.assert_allclose(d, 0.5 * (bce_real + bce_fake), rtol=1e-6)
    np.testing.assert_allclose(
        adversarial.generator_loss(fake), math.log1p(math.exp(1.0)), rtol=1e-6
    )
    # An undecided discriminator (logit 0) has loss log 2 on each side, halved sum = log 2.
    np.testing.assert_allclose(
        adversarial.discriminator_loss(jnp.zeros(3), jnp.zeros(3)), math.log(2)
    )


def test_lsgan_losses_hand_computed():
    real, fake = jnp.array([0.5, 1.5]), jnp.array([0.5, -0.5])
    np.testing.assert_allclose(adversarial.discriminator_loss(real, fake, gan="lsgan"), 0.25)
    np.testing.assert_allclose(adversarial.generator_loss(fake, gan="lsgan"), 1.25)


def test_vanilla_matches_optax_and_torch_bce():
    rng = np.random.default_rng(0)
    real, fake = (jnp.asarray(rng.normal(size=(2, 6, 6, 1)) * 3, jnp.float32) for _ in range(2))
    bce = lambda x, t: float(jnp.mean(optax.sigmoid_binary_cross_entropy(x, jnp.full_like(x, t))))
    got = jax.jit(adversarial.discriminator_loss)(real, fake)
    np.testing.assert_allclose(got, 0.5 * (bce(real, 1.0) + bce(fake, 0.0)), rtol=1e-5)
    torch = pytest.importorskip("torch")
    t = lambda a: torch.from_numpy(np.array(a))
    loss = torch.nn.BCEWithLogitsLoss()
    want = loss(t(fake), torch.ones_like(t(fake))).item()
    np.testing.assert_allclose(adversarial.generator_loss(fake), want, rtol=1e-5)


def test_generator_loss_is_non_saturating():
    # A confident discriminator (fake logits -10): log(1 - D) would give ~e^-10
    # gradients; the non-saturating loss still pushes with ~-1/N per logit.
    fake = jnp.full((4,), -10.0)
    grad = jax.grad(adversarial.generator_loss)(fake)
    np.testing.assert_allclose(grad, -0.25, rtol=1e-3)
    saturating = jax.grad(lambda x: -jnp.mean(jax.nn.softplus(x)))(fake)  # mean log(1 - D)
    assert float(jnp.abs(saturating).max()) < 1e-4


def test_extreme_logits_stay_finite_and_unknown_kind_fails():
    x = jnp.array([-100.0, 100.0])
    for gan in adversarial.GAN_KINDS:
        assert np.isfinite(adversarial.discriminator_loss(x, x, gan=gan))
        assert np.isfinite(jax.grad(adversarial.generator_loss)(x, gan=gan)).all()
    with pytest.raises(ValueError, match="Unknown GAN loss"):
        adversarial.generator_loss(x, gan="wgan")


def test_discriminator_accuracy():
    real, fake = jnp.array([1.0, -1.0]), jnp.array([-2.0, -3.0])
    np.testing.assert_allclose(adversarial.discriminator_accuracy(real, fake), 0.75)
    np.testing.assert_allclose(adversarial.discriminator_accuracy(real, fake, gan="lsgan"), 0.75)
