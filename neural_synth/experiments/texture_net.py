"""Texture networks: a generator trained once to make new samples of one texture.

Noise at several scales goes through Ulyanov's multi-scale generator; the
samples' Gram statistics on frozen VGG features are pulled toward those of the
texture sample. Optionally the diversity term of Improved Texture Networks
keeps different noise from giving the same texture. After training, any noise
(any size that is a multiple of 2^(num_scales-1)) gives a new texture in one
forward pass; `generate` tiles sizes that do not fit in memory.

References: Ulyanov, Lebedev, Vedaldi & Lempitsky, "Texture Networks:
Feed-forward Synthesis of Textures and Stylized Images", ICML 2016; Ulyanov,
Vedaldi & Lempitsky, "Improved Texture Networks", CVPR 2017.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from neural_synth import io, weights
from neural_synth.data import sampling
from neural_synth.losses import perceptual, style
from neural_synth.models import feedforward
from neural_synth.ops import tiled
from neural_synth.train import schedule
from neural_synth.train import state as state_lib

EVAL_SEED = 2_000_003
DEFAULT_STATS_PIXELS = 2048 * 2048  # Instance-norm statistics of tiled runs: from <= this area.


class TextureNetExperiment:
    """The texture-network experiment (protocol: `neural_synth/train/trainer.py`)."""

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        mc, tc = config.model, config.texture
        self.net = feedforward.TextureNet(
            num_scales=mc.num_scales, width=mc.width, padding=mc.padding
        )
        feedforward.noise_shapes(mc.num_scales, 1, config.train.size, config.train.size)
        self.tx = optax.adam(
            schedule.constant_then_cosine(
                config.train.learning_rate,
                num_steps=config.train.num_steps,
                decay_steps=int(config.train.num_steps * config.train.decay_fraction),
            )
        )
        layer_weights = dict(zip(tc.layers, tc.layer_weights, strict=True))
        self.layers = tuple(dict.fromkeys((*tc.layers, config.loss.diversity_layer)))
        self.vgg, self.vgg_vars = weights.frozen_vgg(
            tc.vgg_path, layers=self.layers, seed=tc.vgg_seed
        )
        self.texture = io.load_image_or_sample(tc.image, max_side=tc.image_side)
        texture_features = self.vgg.apply(
            self.vgg_vars, jnp.asarray(self.texture)[None], layers=tuple(layer_weights)
        )
        self.targets = style.stacked_targets([texture_features], layer_weights)

    # ------------------------------------------------------------------ state and data
    def init_state(self, key: jax.Array) -> state_lib.TrainState:
        side = 4 * 2 ** (self.config.model.num_scales - 1)  # Parameters do not depend on size.
        noises = feedforward.sample_noise(key, self.config.model.num_scales, 1, side, side)
        params = self.net.init(key, noises)["params"]
        return state_lib.TrainState.create(params, self.tx)

    def train_batches(self, *, seed: int, start_step: int, batch_size: int):
        """Uniform noise at every scale, reproducible from (seed, step, process)."""
        return sampling.step_batches(
            self._noise_batch, seed=seed, start_step=start_step, batch_size=batch_size
        )

    def _noise_batch(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        size = self.config.train.size
        shapes = feedforward.noise_shapes(self.config.model.num_scales, batch_size, size, size)
        return {f"noise{k}": rng.random(s, dtype=np.float32) for k, s in enumerate(shapes)}

    # ------------------------------------------------------------------ step
    def generate_from(self, params, noises) -> jax.Array:
        return self.net.apply({"params": params}, noises)

    def losses(self, images: jax.Array) -> dict[str, jax.Array]:
        """Style (and diversity) terms of a batch of samples [B, H, W, 3]."""
        feats = self.vgg.apply(self.vgg_vars, images, layers=self.layers)
        out = {"loss/style": jnp.mean(self.targets.loss(feats))}
        if self.config.loss.diversity_weight > 0:
            out["loss/diversity"] = perceptual.diversity_loss(
                feats[self.config.loss.diversity_layer]
            )
        return out

    def loss_fn(self, params, batch):
        noises = [batch[f"noise{k}"] for k in range(self.config.model.num_scales)]
        metrics = self.losses(self.generate_from(params, noises))
        total = metrics["loss/style"]
        if "loss/diversity" in metrics:
            total = total + self.config.loss.diversity_weight * metrics["loss/diversity"]
        metrics["loss/total"] = total
        return total, metrics

    def train_step(self, state, batch, key):
        del key  # The noise comes with the batch.
        grads, metrics = jax.grad(self.loss_fn, has_aux=True)(state.params, batch)
        return state.apply_gradients(grads, self.tx), metrics

    # ------------------------------------------------------------------ eval
    @functools.partial(jax.jit, static_argnums=(0, 3))
    def _eval_losses(self, params, key, size: int):
        noises = feedforward.sample_noise(
            key, self.config.model.num_scales, self.config.eval.num_samples, size, size
        )
        images = self.generate_from(params, noises)
        metrics = self.losses(images)
        metrics["pixel_diversity"] = jnp.mean(jnp.abs(images - jnp.roll(images, 1, axis=0)))
        return metrics

    def evaluate(self, state, key) -> dict:
        """Style loss and sample diversity of fresh samples, at the training size and 2x."""
        del key  # The same noise every evaluation.
        params, size = jax.device_get(state.params), self.config.train.size
        results = {}
        for name, side in (("train_size", size), ("double_size", 2 * size)):
            key = jax.random.key(EVAL_SEED, impl="rbg")
            metrics = jax.device_get(self._eval_losses(params, key, side))
            results[name] = {k.replace("loss/", ""): float(v) for k, v in metrics.items()}
        return results

    def summaries(self, state, key) -> dict[str, np.ndarray]:
        """Samples at the training size, and the texture sample they imitate."""
        del key
        params = jax.device_get(state.params)
        side = self.config.train.size
        samples = self.generate(params, height=side, width=side, num=self.config.eval.num_samples)
        return {"samples": samples, "texture": self.texture[None]}

    # ------------------------------------------------------------------ inference
    def generate(
        self,
        params,
        *,
        height: int,
        width: int,
        num: int = 1,
        seed: int = 0,
        tile: int = 0,
        stats_pixels: int = DEFAULT_STATS_PIXELS,
        progress: bool = False,
    ) -> np.ndarray:
        """`num` textures [num, H, W, 3]; texture i comes from host noise with seed `seed + i`.

        `tile` > 0 generates each in overlapping tiles of that size (bounded
        memory at any size; seam-free, `neural_synth.ops.tiled`), with the
        instance-norm statistics of a pass on fresh noise of at most
        `stats_pixels` pixels (the same noise, and exact, when the texture fits).
        Tiled and untiled results agree for the same seed.
        """
        k = self.config.model.num_scales
        noises = [feedforward.sample_noise_numpy(seed + i, k, height, width) for i in range(num)]
        if tile <= 0:
            batch = [np.concatenate(scale) for scale in zip(*noises, strict=True)]
            return np.asarray(jax.jit(self.generate_from)(params, batch))
        return np.concatenate(
            [
                self._generate_tiled(params, n, seed + i, tile, stats_pixels, progress)
                for i, n in enumerate(noises)
            ]
        )

    def _generate_tiled(self, params, noise, seed, tile, stats_pixels, progress) -> np.ndarray:
        k, (_, height, width, _) = self.config.model.num_scales, noise[0].shape
        align = 2 ** (k - 1)
        small = tiled.stats_size(height, width, stats_pixels=stats_pixels, multiple=align)
        stats_noise = (
            noise if small == (height, width) else feedforward.sample_noise_numpy(seed, k, *small)
        )
        variables = {"params": params}
        variables.update(
            tiled.capture_stats(self.net.apply, variables, [jnp.asarray(n) for n in stats_noise])
        )
        window_fn = jax.jit(self.net.apply)
        return tiled.tiled_apply(
            lambda xs: window_fn(variables, xs),
            noise,
            factors=[2**i for i in range(k)],
            out_channels=3,
            tile=tile,
            halo=feedforward.texture_receptive_radius(k),
            align=align,
            wrap=self.config.model.padding == "circular",
            progress=progress,
        )
