"""pix2pix: image-to-image translation with a conditional GAN and an L1 loss.

A generator G (U-Net, encoder-decoder or ResNet blocks) maps an input x (e.g.
an edge map) to an output; a conditional PatchGAN D judges (x, y) pairs patch
by patch. The generator minimises

    l1_weight * |G(x) - y|_1 + gan_weight * L_GAN(D(x, G(x)), real)

(non-saturating GAN loss, `gan` 'vanilla' or 'lsgan'; gan_weight=0 leaves the
L1-only baseline) and D minimises half of its real/fake loss. Both use Adam
(learning rate 2e-4, beta1 = 0.5), constant and then linearly decayed to 0 over
the last `decay_fraction` of the steps.

One compiled `train_step` updates both networks in junyanz's order: one
forward pass of G gives the fakes; D takes a step on (real, detached fake);
then G takes a step through the *updated* D on the same fakes (same dropout
mask: G's backward pass reuses the forward pass through `jax.vjp`, so G runs
forward once per step).

Training pairs get random jitter on the host (resize to `load_size`, the same
random crop to `crop_size` for input and target, mirroring), reproducible from
(seed, step, process). Evaluation runs on held-out 'test' pairs fitted to the
crop size, without jitter, with dropout as configured for inference
(`inference_dropout`; a fixed key so evaluations are comparable), and reports
L1, PSNR and SSIM (`losses.metrics`). `translate` runs a trained generator on
images of any size that is large enough (reflection padding to the size
multiple, then cropped).

References:
  Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with Conditional
    Adversarial Networks", CVPR 2017.
  Wang, Bovik, Sheikh & Simoncelli, "Image Quality Assessment: From Error
    Visibility to Structural Similarity", IEEE TIP 2004 (SSIM).
"""

import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from neural_synth import io
from neural_synth.data import pix2pix as pix2pix_data
from neural_synth.data import sampling
from neural_synth.losses import adversarial
from neural_synth.losses import metrics as metrics_lib
from neural_synth.models import layers, patchgan, unet
from neural_synth.train import optim, prng, schedule

EVAL_SEED = 1_000_003  # Dropout noise of evaluations, summaries and `translate`.
ADAM_B1 = 0.5
NUM_SUMMARY_EXAMPLES = 8


@flax.struct.dataclass
class Pix2PixState:
    """Step, parameters {'generator', 'discriminator'} and one Adam state per network."""

    step: jax.Array
    params: Any
    g_opt_state: Any
    d_opt_state: Any


# ----------------------------------------------------------------------------- experiment


def size_pair(size) -> tuple[int, int]:
    """An int side or a (height, width) pair from a config -> (height, width)."""
    if isinstance(size, int):
        return size, size
    return pix2pix_data.check_size(tuple(size))


class Pix2PixExperiment:
    """The pix2pix experiment (protocol: `neural_synth/train/trainer.py`)."""

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        dc, mc = config.data, config.model
        self.crop, self.load = size_pair(dc.crop_size), size_pair(dc.load_size)
        if self.crop[0] > self.load[0] or self.crop[1] > self.load[1]:
            raise ValueError(
                f"data.crop_size {self.crop} must not exceed data.load_size {self.load}."
            )
        self.generator = unet.generator(
            mc.generator,
            image_size=self.crop,
            width=mc.width,
            num_downs=mc.num_downs,
            norm=mc.norm,
            dropout=mc.dropout,
        )
        self.discriminator = patchgan.PatchGAN(mc.receptive_field, mc.disc_width, mc.norm)
        layers.check_image_size(
            *self.crop,
            minimum=patchgan.min_size(mc.receptive_field),
            what=f"data.crop_size for a {mc.receptive_field}x{mc.receptive_field} PatchGAN",
            fix="a smaller model.receptive_field",
        )
        if config.loss.gan not in adversarial.GAN_KINDS:
            raise ValueError(
                f"loss.gan must be one of {adversarial.GAN_KINDS}, got {config.loss.gan!r}."
            )
        lr = schedule.constant_then_linear(
            config.train.learning_rate,
            num_steps=config.train.num_steps,
            decay_steps=int(config.train.num_steps * config.train.decay_fraction),
        )
        # optim.adam: optax.adam without the copy of mu that XLA:CPU makes when
        # b1 = 0.5 is a compile-time constant (benchmarks/RESULTS.md).
        self.g_tx = optim.adam(lr, b1=ADAM_B1)
        self.d_tx = optim.adam(lr, b1=ADAM_B1)
        self._pairs = {}  # split -> (inputs, targets) uint8, loaded on first use.

    @property
    def min_side(self) -> int:
        """Smallest input side `translate` accepts."""
        return max(
            self.generator.size_multiple, 8 if self.config.model.generator == "resnet" else 1
        )

    # ------------------------------------------------------------------ state
    def init_state(self, key: jax.Array) -> Pix2PixState:
        k_g, k_d = jax.random.split(key)
        x = jnp.zeros((1, *self.crop, 3))
        params = {
            "generator": self.generator.init(k_g, x, deterministic=True)["params"],
            "discriminator": self.discriminator.init(k_d, x, x)["params"],
        }
        return Pix2PixState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            g_opt_state=self.g_tx.init(params["generator"]),
            d_opt_state=self.d_tx.init(params["discriminator"]),
        )

    # ------------------------------------------------------------------ data
    def pairs(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (inputs, targets) [N, H, W, 3]: 'train' at load_size, others at crop_size."""
        if split not in self._pairs:
            from neural_synth.data import pix2pix_builders  # Lazy: tensorflow-datasets is slow.

            dc = self.config.data
            limit = dc.max_examples if split == "train" else self.config.eval.num_examples
            self._pairs[split] = pix2pix_builders.load_pairs(
                dc.source,
                split,
                data_dir=dc.data_dir or None,
                size=self.load if split == "train" else self.crop,
                max_examples=limit or None,
                direction=dc.direction,
            )
            if not len(self._pairs[split][0]):
                raise ValueError(f"Data source {dc.source!r} has no {split!r} pairs.")
        return self._pairs[split]

    def train_batches(self, *, seed: int, start_step: int, batch_size: int):
        """Jittered random pairs {'input', 'target'} [B, h, w, 3], reproducible from (seed, step, process)."""
        inputs, targets = self.pairs("train")

        def jittered_pairs(rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
            ids = rng.integers(len(inputs), size=batch_size)
            a, b = pix2pix_data.jitter(
                rng,
                inputs[ids],
                targets[ids],
                crop=self.crop,
                load=self.load,
                mirror=self.config.data.mirror,
            )
            return {"input": a, "target": b}

        return sampling.step_batches(
            jittered_pairs, seed=seed, start_step=start_step, batch_size=batch_size
        )

    # ------------------------------------------------------------------ step
    def generate(self, g_params, images: jax.Array, key: jax.Array, *, deterministic: bool):
        """G(images) [B, H, W, 3] in [0, 1]; `key` drives the dropout noise."""
        return self.generator.apply(
            {"params": g_params}, images, deterministic=deterministic, rngs={"dropout": key}
        )

    def discriminator_loss(self, d_params, inputs, targets, fakes):
        """D's halved loss on real pairs and (detached) fake pairs, and its metrics."""
        real = self.discriminator.apply({"params": d_params}, inputs, targets)
        fake = self.discriminator.apply({"params": d_params}, inputs, fakes)
        gan = self.config.loss.gan
        loss = adversarial.discriminator_loss(real, fake, gan=gan)
        accuracy = adversarial.discriminator_accuracy(real, fake, gan=gan)
        return loss, {"loss/d": loss, "d/accuracy": accuracy}

    def generator_loss(self, fakes, inputs, targets, d_params):
        """l1_weight * L1 + gan_weight * non-saturating GAN loss, as a function of the fakes."""
        lc = self.config.loss
        l1 = jnp.mean(jnp.abs(fakes - targets))
        metrics = {"loss/g_l1": l1}
        total = lc.l1_weight * l1
        if lc.gan_weight:
            logits = self.discriminator.apply({"params": d_params}, inputs, fakes)
            metrics["loss/g_gan"] = adversarial.generator_loss(logits, gan=lc.gan)
            total = total + lc.gan_weight * metrics["loss/g_gan"]
        metrics["loss/g_total"] = total
        return total, metrics

    def train_step(self, state: Pix2PixState, batch, key):
        """D step on the detached fakes, then G step through the updated D (one G forward)."""
        x, y = batch["input"], batch["target"]
        g_fn = lambda p: self.generate(p, x, key, deterministic=False)
        fakes, g_vjp = jax.vjp(g_fn, state.params["generator"])
        d_grads, d_metrics = jax.grad(self.discriminator_loss, has_aux=True)(
            state.params["discriminator"], x, y, jax.lax.stop_gradient(fakes)
        )
        d_updates, d_opt_state = self.d_tx.update(
            d_grads, state.d_opt_state, state.params["discriminator"]
        )
        d_params = optax.apply_updates(state.params["discriminator"], d_updates)
        fake_grads, g_metrics = jax.grad(self.generator_loss, has_aux=True)(fakes, x, y, d_params)
        (g_grads,) = g_vjp(fake_grads)
        g_updates, g_opt_state = self.g_tx.update(
            g_grads, state.g_opt_state, state.params["generator"]
        )
        g_params = optax.apply_updates(state.params["generator"], g_updates)
        new_state = state.replace(
            step=state.step + 1,
            params={"generator": g_params, "discriminator": d_params},
            g_opt_state=g_opt_state,
            d_opt_state=d_opt_state,
        )
        return new_state, {**d_metrics, **g_metrics}

    # ------------------------------------------------------------------ eval
    @functools.partial(jax.jit, static_argnums=(0, 4))
    def _generate_jit(self, g_params, images, key, deterministic: bool):
        return self.generate(g_params, images, key, deterministic=deterministic)

    @functools.partial(jax.jit, static_argnums=0)
    def _eval_batch(self, g_params, inputs, targets, key):
        outputs = self.generate(
            g_params, inputs, key, deterministic=not self.config.model.inference_dropout
        )
        return metrics_lib.image_metrics(outputs, targets)

    def _test_batches(self):
        """Float32 (inputs, targets) batches of the held-out pairs, eval.batch_size each."""
        inputs, targets = self.pairs("test")
        size = self.config.eval.batch_size
        for i in range(0, len(inputs), size):
            yield (x[i : i + size].astype(np.float32) / 255.0 for x in (inputs, targets))

    def evaluate(self, state, key) -> dict:
        """Mean L1, PSNR (dB) and SSIM of G's outputs on the held-out pairs."""
        del key  # A fixed key: every evaluation sees the same dropout noise.
        g_params = jax.device_get(state.params["generator"])
        values = {"l1": [], "psnr": [], "ssim": []}
        for i, (inputs, targets) in enumerate(self._test_batches()):
            batch = self._eval_batch(g_params, inputs, targets, jax.random.fold_in(_eval_key(), i))
            for name, v in jax.device_get(batch).items():
                values[name].append(v)
        results = {name: float(np.mean(np.concatenate(v))) for name, v in values.items()}
        return {**results, "num_examples": len(np.concatenate(values["l1"]))}

    def summaries(self, state, key) -> dict[str, np.ndarray]:
        """One grid [1, H', W', 3] whose rows are test examples: input | output | target."""
        del key
        inputs, targets = (x[:NUM_SUMMARY_EXAMPLES] / np.float32(255) for x in self.pairs("test"))
        outputs = self.translate(jax.device_get(state.params), inputs)
        triples = np.stack([inputs, outputs, targets], axis=1).reshape(-1, *inputs.shape[1:])
        return {"input_output_target": io.make_grid(triples, ncols=3)[None]}

    # ------------------------------------------------------------------ inference
    def translate(
        self, params, images: np.ndarray, *, seed: int = EVAL_SEED, deterministic=None
    ) -> np.ndarray:
        """G's outputs for images [H, W, 3] or [B, H, W, 3] of any size >= `min_side`.

        Each side is reflection-padded to the next multiple of the generator's
        size multiple, translated and cropped back. `deterministic` defaults to
        `not config.model.inference_dropout`; `seed` picks the dropout noise.
        """
        x = np.asarray(images, np.float32)
        single = x.ndim == 3
        x = x[None] if single else x
        height, width = x.shape[1:3]
        if min(height, width) < self.min_side:
            raise ValueError(
                f"The input is {height}x{width} px; this {self.config.model.generator} needs "
                f"at least {self.min_side} px per side: use a larger image."
            )
        m = self.generator.size_multiple
        pad_h, pad_w = -height % m, -width % m
        top, left = pad_h // 2, pad_w // 2
        x = np.pad(x, ((0, 0), (top, pad_h - top), (left, pad_w - left), (0, 0)), mode="reflect")
        if deterministic is None:
            deterministic = not self.config.model.inference_dropout
        out = self._generate_jit(
            params["generator"], x, prng.key(seed), bool(deterministic)
        )  # [B, H + pad_h, W + pad_w, 3]
        out = np.asarray(out)[:, top : top + height, left : left + width]
        return out[0] if single else out


def _eval_key() -> jax.Array:
    return prng.key(EVAL_SEED)
