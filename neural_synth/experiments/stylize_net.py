"""Stylization networks: a transformation network trained once per set of styles.

Johnson's transformation network maps a content photo to a stylized one in a
single forward pass. Training matches the output's VGG Gram statistics to a
style image's and its features at the content layers to the photo's (perceptual
losses), plus total variation. With several style images the network uses
conditional instance norm: each training example is drawn with one style, and
at inference any convex blend of the styles is one forward pass.

Content photos: random crops of scikit-image's photographs by default, or a
folder, or a tensorflow-datasets dataset prepared locally (e.g. COCO, as in the
paper); see `neural_synth.data.backgrounds.load_bank`.

References: Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style
Transfer and Super-Resolution", ECCV 2016; Ulyanov, Vedaldi & Lempitsky,
"Instance Normalization", 2016; Dumoulin, Shlens & Kudlur, "A Learned
Representation for Artistic Style", ICLR 2017.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from neural_synth import io, weights
from neural_synth.data import backgrounds, sampling
from neural_synth.losses import perceptual, style
from neural_synth.models import feedforward
from neural_synth.models import layers as nn_layers
from neural_synth.ops import tiled
from neural_synth.train import schedule
from neural_synth.train import state as state_lib

EVAL_SEED = 3_000_017
MIN_SIDE = 16  # Smaller inputs leave the 1/4-resolution maps too small to reflect-pad.
DEFAULT_STATS_PIXELS = 2048 * 2048  # Instance-norm statistics of tiled runs: from <= this area.


class StylizeNetExperiment:
    """The stylization-network experiment (protocol: `neural_synth/train/trainer.py`)."""

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        sc = config.style
        self.styles = [io.load_image_or_sample(p, max_side=sc.image_side) for p in sc.images]
        self.net = feedforward.TransformNet(
            width=config.model.width,
            num_residual=config.model.num_residual,
            num_styles=len(self.styles),
        )
        nn_layers.check_image_size(
            config.train.size,
            config.train.size,
            multiple=feedforward.TRANSFORM_STRIDE,
            what="train.size for a TransformNet",
        )
        self.tx = optax.adam(
            schedule.constant_then_cosine(
                config.train.learning_rate,
                num_steps=config.train.num_steps,
                decay_steps=int(config.train.num_steps * config.train.decay_fraction),
            )
        )
        self.content_layer_weights = dict(
            zip(sc.content_layers, sc.content_layer_weights, strict=True)
        )
        layer_weights = dict(zip(sc.layers, sc.layer_weights, strict=True))
        self.layers = tuple(dict.fromkeys((*sc.layers, *sc.content_layers)))
        self.vgg, self.vgg_vars = weights.frozen_vgg(
            sc.vgg_path, layers=self.layers, seed=sc.vgg_seed
        )
        style_features = [  # Styles may differ in size: one forward pass each.
            self.vgg.apply(self.vgg_vars, jnp.asarray(s)[None], layers=tuple(layer_weights))
            for s in self.styles
        ]
        self.targets = style.stacked_targets(style_features, layer_weights)
        self._bank = backgrounds.load_bank(
            config.data.source, max_side=config.data.image_side, max_images=config.data.max_images
        )
        self._eval_set = self._make_eval_set()

    @property
    def num_styles(self) -> int:
        return len(self.styles)

    # ------------------------------------------------------------------ state and data
    def init_state(self, key: jax.Array) -> state_lib.TrainState:
        images = jnp.zeros((1, 16, 16, 3))
        params = self.net.init(key, images, *self._style_args(jnp.zeros((1,), jnp.int32)))
        return state_lib.TrainState.create(params["params"], self.tx)

    def train_batches(self, *, seed: int, start_step: int, batch_size: int):
        """Content crops and a style index per example, reproducible from (seed, step, process)."""
        return sampling.step_batches(
            self._content_batch, seed=seed, start_step=start_step, batch_size=batch_size
        )

    def _content_batch(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        return {
            "content": backgrounds.random_crops(
                self._bank, rng, batch_size, self.config.train.size
            ),
            "style": rng.integers(0, self.num_styles, batch_size).astype(np.int32),
        }

    def _make_eval_set(self):
        ec, rng = self.config.eval, np.random.default_rng(EVAL_SEED)
        content = backgrounds.random_crops(self._bank, rng, ec.num_images, self.config.train.size)
        return content, np.arange(ec.num_images, dtype=np.int32) % self.num_styles

    # ------------------------------------------------------------------ step
    def _style_args(self, style_ids: jax.Array) -> tuple:
        """() for a single-style net; (one-hot style weights [B, N],) otherwise."""
        if self.num_styles == 1:
            return ()
        return (jax.nn.one_hot(style_ids, self.num_styles),)

    def stylize_batch(self, params, content, style_ids) -> jax.Array:
        return self.net.apply({"params": params}, content, *self._style_args(style_ids))

    def losses(self, outputs, content, style_ids) -> dict[str, jax.Array]:
        """Per-term means over the batch: content, style, total variation."""
        feats = self.vgg.apply(self.vgg_vars, outputs, layers=self.layers)
        content_layers = tuple(self.content_layer_weights)
        content_feats = self.vgg.apply(self.vgg_vars, content, layers=content_layers)
        return {
            "loss/content": jnp.mean(
                perceptual.relative_content_loss(
                    feats, content_feats, layer_weights=self.content_layer_weights
                )
            ),
            "loss/style": jnp.mean(self.targets.loss(feats, style_ids)),
            "loss/tv": perceptual.total_variation(outputs),
        }

    def loss_fn(self, params, batch):
        outputs = self.stylize_batch(params, batch["content"], batch["style"])
        metrics = self.losses(outputs, batch["content"], batch["style"])
        lc = self.config.loss
        total = (
            lc.content_weight * metrics["loss/content"]
            + lc.style_weight * metrics["loss/style"]
            + lc.tv_weight * metrics["loss/tv"]
        )
        metrics["loss/total"] = total
        return total, metrics

    def train_step(self, state, batch, key):
        del key  # Deterministic given the batch.
        grads, metrics = jax.grad(self.loss_fn, has_aux=True)(state.params, batch)
        return state.apply_gradients(grads, self.tx), metrics

    # ------------------------------------------------------------------ eval
    @functools.partial(jax.jit, static_argnums=0)
    def _eval_batch(self, params, content, style_ids):
        return self.losses(self.stylize_batch(params, content, style_ids), content, style_ids)

    def evaluate(self, state, key) -> dict:
        """Content, style and TV losses on fixed held-out crops (styles in turn)."""
        del key
        content, style_ids = self._eval_set
        metrics = jax.device_get(self._eval_batch(jax.device_get(state.params), content, style_ids))
        return {k.replace("loss/", ""): float(v) for k, v in metrics.items()}

    def summaries(self, state, key) -> dict[str, np.ndarray]:
        """Held-out content crops, their stylizations (styles in turn), and the styles."""
        del key
        content, style_ids = self._eval_set
        params = jax.device_get(state.params)
        outputs = jax.jit(self.stylize_batch)(params, content, style_ids)
        styles = [io.resize(s, size=content.shape[1:3]) for s in self.styles]
        return {"content": content, "stylized": np.asarray(outputs), "styles": np.stack(styles)}

    # ------------------------------------------------------------------ inference
    def blend_weights(self, blend: list[float] | None) -> np.ndarray | None:
        """[1, N] normalised blend weights (None for a single-style net); a clear error if bad."""
        if self.num_styles == 1:
            if blend not in (None, [1.0]):
                raise ValueError("This network holds one style; blend_weights do not apply.")
            return None
        blend = [1.0] * self.num_styles if blend is None else list(blend)
        w = np.asarray(blend, np.float32)
        if w.shape != (self.num_styles,) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(
                f"blend_weights needs {self.num_styles} non-negative numbers with a positive "
                f"sum (one per style: {', '.join(self.config.style.images)}), got {blend}."
            )
        return (w / w.sum())[None]

    def stylize(
        self,
        params,
        image: np.ndarray,
        *,
        blend_weights: np.ndarray | None = None,
        tile: int = 0,
        stats_pixels: int = DEFAULT_STATS_PIXELS,
        progress: bool = False,
    ) -> np.ndarray:
        """Stylizes one image [H, W, 3] of any size >= 16 px; returns [H, W, 3].

        The image is reflection-padded to a multiple of 4 (the network's stride)
        and cropped back. `tile` > 0 runs it in overlapping tiles of that size
        (seam-free, `neural_synth.ops.tiled`), with instance-norm statistics from
        the image shrunk to at most `stats_pixels` pixels (exact when it fits).
        """
        h, w = image.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise ValueError(
                f"The input image is {h}x{w}; the network needs at least {MIN_SIDE} px."
            )
        padded = np.pad(image, ((0, -h % 4), (0, -w % 4), (0, 0)), mode="reflect")[None]
        extra = () if blend_weights is None else (jnp.asarray(blend_weights),)
        variables = {"params": params}
        if tile > 0:
            run = tiled.image_tiler(
                self.net.apply,
                variables,
                tile=tile,
                halo=feedforward.transform_receptive_radius(self.config.model.num_residual),
                align=feedforward.TRANSFORM_STRIDE,
                stats_pixels=stats_pixels,
                extra_args=extra,
            )
            out = run(padded, progress=progress)
        else:
            out = jax.jit(self.net.apply)(variables, jnp.asarray(padded), *extra)
        return np.asarray(out[0, :h, :w])
