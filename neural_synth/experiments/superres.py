"""Single-image super-resolution (x4, or x8) with per-pixel and perceptual losses.

A feed-forward `SuperResNet` learns to invert the standard degradation: an
optional Gaussian blur, then bicubic downsampling (`ops.resize.low_resolution`,
computed inside the step from high-resolution crops). The loss mixes a
per-pixel term (L1 or L2), Johnson et al.'s feature reconstruction loss (the
mean squared difference of VGG features, `relu2_2` by default, normalised by
the target's mean square) and total variation. A pure pixel loss maximises
PSNR and gives smooth outputs; the feature loss gives lower PSNR and visibly
sharper detail (the paper's finding).

Training crops: scikit-image's photographs by default (minus the held-out
evaluation photos), or a folder, or a tensorflow-datasets dataset prepared
locally (`data.source`, see `neural_synth.data.backgrounds.load_bank`).

Evaluation (`eval.json`): PSNR and SSIM on the Y channel with `scale` pixels
cropped from each border, and the VGG feature distance, of the network and of
bicubic upsampling, on fixed crops of held-out images.

References: Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style
Transfer and Super-Resolution", ECCV 2016; Dong, Loy, He & Tang, "Image
Super-Resolution Using Deep Convolutional Networks", TPAMI 2016 (protocol).
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from neural_synth import io, weights
from neural_synth.data import backgrounds, sampling
from neural_synth.losses import metrics, perceptual
from neural_synth.models import layers, superres
from neural_synth.ops import resize, tiled
from neural_synth.train import checkpoint, prng, schedule
from neural_synth.train import state as state_lib

EVAL_SEED = 4_000_037
PIXEL_KINDS = ("l1", "l2")
ARCHITECTURE = ("scale", "width", "num_residual", "upsample", "residual", "out_kernel")


class SuperResExperiment:
    """The super-resolution experiment (protocol: `neural_synth/train/trainer.py`)."""

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        mc, lc = config.model, config.loss
        superres.check_network_options(mc.scale, mc.upsample)
        self.scale = mc.scale
        self.net = superres.SuperResNet(
            scale=mc.scale,
            width=mc.width,
            num_residual=mc.num_residual,
            upsample=mc.upsample,
            residual=mc.residual,
            out_kernel=mc.out_kernel,
        )
        self._check_sizes()
        if lc.pixel_kind not in PIXEL_KINDS:
            raise ValueError(
                f"loss.pixel_kind must be one of {PIXEL_KINDS}, got {lc.pixel_kind!r}."
            )
        self.weights = {"pixel": lc.pixel_weight, "feature": lc.feature_weight, "tv": lc.tv_weight}
        if min(self.weights.values()) < 0 or max(self.weights.values()) <= 0:
            raise ValueError(f"Loss weights must be >= 0 with one > 0, got {self.weights}.")
        self.feature_weights = dict(zip(lc.feature_layers, lc.feature_layer_weights, strict=True))
        self.vgg, self.vgg_vars = weights.frozen_vgg(
            lc.vgg_path, layers=tuple(self.feature_weights), seed=lc.vgg_seed
        )
        self.tx = optax.adam(
            schedule.constant_then_cosine(
                config.train.learning_rate,
                num_steps=config.train.num_steps,
                decay_steps=int(config.train.num_steps * config.train.decay_fraction),
            )
        )
        self._init_params = None
        if mc.init_from:
            self._init_params = self._pretrained(mc.init_from)

    def _check_sizes(self) -> None:
        s, size = self.scale, self.config.train.size
        layers.check_image_size(
            size, size, multiple=s, minimum=s * superres.MIN_SIDE, what="train.size crops"
        )
        layers.check_image_size(
            self.config.eval.size,
            self.config.eval.size,
            multiple=s,
            minimum=max(s * superres.MIN_SIDE, 2 * s + 11),  # SSIM's window after the crop.
            what="eval.size crops",
        )

    def _pretrained(self, workdir: str):
        """Parameters of the newest checkpoint of another superres run with this network.

        Perceptual fine-tuning from a pixel-loss network, as SRGAN starts from
        SRResNet: early in training a per-pixel loss lowers even the feature
        distance faster than the feature loss itself (measured in the tests).
        """
        source = checkpoint.load_run_config(workdir)
        mine = {k: self.config.model[k] for k in ARCHITECTURE}
        theirs = {k: source.model.get(k) for k in ARCHITECTURE}
        if source.experiment != "superres" or theirs != mine:
            raise ValueError(
                f"model.init_from={workdir!r} holds a {source.experiment!r} run with model "
                f"{theirs}; it must be a superres run with this network, {mine}."
            )
        state, _ = checkpoint.restore_latest(workdir, jax.jit(self.init_state)(prng.key(0)))
        return jax.device_get(state.params)

    # ------------------------------------------------------------------ data
    @functools.cached_property
    def _bank(self) -> list[np.ndarray]:
        """Training photos; with the 'skimage' source, without the held-out eval photos.

        Loaded on first use, so inference (`load_trained`) never reads them.
        """
        dc = self.config.data
        bank = backgrounds.load_bank(dc.source, max_side=dc.image_side, max_images=dc.max_images)
        if dc.source == "skimage":
            held = {s.removeprefix(io.SAMPLE_PREFIX) for s in self.config.eval.images}
            names = backgrounds.SKIMAGE_PHOTOS[: len(bank)]
            bank = [b for b, n in zip(bank, names, strict=True) if n not in held]
        too_small = [b.shape[:2] for b in bank if min(b.shape[:2]) < self.config.train.size]
        if too_small or not bank:
            raise ValueError(
                f"Training photos {too_small or 'none'} are smaller than train.size="
                f"{self.config.train.size}; raise data.image_side or lower train.size."
            )
        return bank

    @functools.cached_property
    def _eval_hr(self) -> np.ndarray:
        """Fixed high-resolution crops of the held-out images: [N, S, S, 3] (loaded on use)."""
        ec, rng = self.config.eval, np.random.default_rng(EVAL_SEED)
        crops = []
        for spec in ec.images:
            image = io.load_image_or_sample(spec, max_side=ec.image_side)
            io.check_min_side(image, ec.size, name=spec)
            crops.append(backgrounds.random_crops([image], rng, ec.crops_per_image, ec.size))
        return np.concatenate(crops)

    def train_batches(self, *, seed: int, start_step: int, batch_size: int):
        """High-resolution crops {'hr': [B, S, S, 3]}, reproducible from (seed, step)."""
        size = self.config.train.size
        make = lambda rng, n: {"hr": backgrounds.random_crops(self._bank, rng, n, size)}
        return sampling.step_batches(make, seed=seed, start_step=start_step, batch_size=batch_size)

    # ------------------------------------------------------------------ step
    def init_state(self, key: jax.Array) -> state_lib.TrainState:
        """Fresh parameters, or those of `model.init_from` (with a fresh optimizer state)."""
        if self._init_params is not None:
            params = jax.tree.map(jnp.asarray, self._init_params)
        else:
            params = self.net.init(key, jnp.zeros((1, 8, 8, 3)))["params"]
        return state_lib.TrainState.create(params, self.tx)

    def low_resolution(self, hr: jax.Array) -> jax.Array:
        """The network's input for high-resolution images [B, H, W, 3] (multiples of scale)."""
        return resize.low_resolution(hr, factor=self.scale, blur_sigma=self.config.data.blur_sigma)

    def feature_distance(self, outputs: jax.Array, hr: jax.Array) -> jax.Array:
        """Per-image relative VGG feature distance [B] (the feature reconstruction loss)."""
        names = tuple(self.feature_weights)
        out_feats = self.vgg.apply(self.vgg_vars, outputs, layers=names)
        hr_feats = self.vgg.apply(self.vgg_vars, hr, layers=names)
        return perceptual.relative_content_loss(
            out_feats, hr_feats, layer_weights=self.feature_weights
        )

    def losses(self, params, hr: jax.Array) -> dict[str, jax.Array]:
        """The weighted loss terms of one batch (terms with weight 0 are not computed)."""
        outputs = self.net.apply({"params": params}, self.low_resolution(hr))
        terms = {}
        if self.weights["pixel"]:
            diff = outputs - hr
            pixel = jnp.abs(diff) if self.config.loss.pixel_kind == "l1" else jnp.square(diff)
            terms["pixel"] = jnp.mean(pixel)
        if self.weights["feature"]:
            terms["feature"] = jnp.mean(self.feature_distance(outputs, hr))
        if self.weights["tv"]:
            terms["tv"] = perceptual.total_variation(outputs)
        return {f"loss/{k}": v for k, v in terms.items()}

    def loss_fn(self, params, batch):
        metrics_ = self.losses(params, batch["hr"])
        total = sum(self.weights[k.split("/")[1]] * v for k, v in metrics_.items())
        return total, {**metrics_, "loss/total": total}

    def train_step(self, state, batch, key):
        del key  # Deterministic given the batch.
        grads, metrics_ = jax.grad(self.loss_fn, has_aux=True)(state.params, batch)
        return state.apply_gradients(grads, self.tx), metrics_

    # ------------------------------------------------------------------ eval
    @functools.partial(jax.jit, static_argnums=0)
    def _eval_images(self, params, hr):
        """Input (nearest-upsampled), bicubic and network outputs of the degraded `hr`.

        Three [B, H, W, 3] batches in [0, 1]; the evaluation and the summaries
        share this one program.
        """
        lr = self.low_resolution(hr)
        height, width = hr.shape[1:3]
        bicubic = resize.bicubic_resize(lr, height=height, width=width)
        net = self.net.apply({"params": params}, lr)
        nearest = layers.upsample_nearest(lr, self.scale)
        return nearest, jnp.clip(bicubic, 0.0, 1.0), jnp.clip(net, 0.0, 1.0)

    @functools.partial(jax.jit, static_argnums=0)
    def _scores(self, images, hr) -> dict[str, jax.Array]:
        """Per-image PSNR / SSIM (Y, border = scale) and VGG feature distance: {name: [B]}."""
        m = metrics.image_metrics(images, hr, luminance=True, border=self.scale)
        return {
            "psnr_y": m["psnr"],
            "ssim_y": m["ssim"],
            "feature_distance": self.feature_distance(images, hr),
        }

    def compare(self, params, hr: np.ndarray) -> dict[str, dict[str, float]]:
        """Mean scores of the network and of bicubic on high-resolution crops [N, S, S, 3].

        Sides must be multiples of the scale (`ops.resize.modcrop`).
        """
        _, bicubic, net = self._eval_images(params, jnp.asarray(hr))
        return {
            name: {k: float(np.mean(v)) for k, v in jax.device_get(self._scores(x, hr)).items()}
            for name, x in (("model", net), ("bicubic", bicubic))
        }

    def evaluate(self, state, key) -> dict:
        """PSNR / SSIM (Y channel, border cropped) and feature distance, network vs bicubic."""
        del key
        scores = self.compare(jax.device_get(state.params), self._eval_hr)
        gain = scores["model"]["psnr_y"] - scores["bicubic"]["psnr_y"]
        return {**scores, "psnr_gain_db": gain, "num_images": len(self._eval_hr)}

    def summaries(self, state, key) -> dict[str, np.ndarray]:
        """One grid whose rows are held-out crops: input (nearest) | bicubic | network | truth."""
        del key
        images = self._eval_images(jax.device_get(state.params), jnp.asarray(self._eval_hr))
        rows = np.stack([np.asarray(x[:4]) for x in (*images, self._eval_hr)], axis=1)
        grid = io.make_grid(rows.reshape(-1, *rows.shape[2:]), ncols=4)
        return {"input_bicubic_output_truth": grid[None]}

    # ------------------------------------------------------------------ inference
    @functools.partial(jax.jit, static_argnums=0)
    def _apply(self, params, images):
        return jnp.clip(self.net.apply({"params": params}, images), 0.0, 1.0)

    def upscale(
        self, params, image: np.ndarray, *, tile: int = 0, progress: bool = False
    ) -> np.ndarray:
        """Upsamples one image [h, w, 3] of any size >= `superres.MIN_SIDE`: [scale*h, scale*w, 3].

        `tile` > 0 runs the network in overlapping windows of about that many
        output pixels per side (`neural_synth.ops.tiled`): the network has no
        image-wide statistics and the halo covers its receptive field, so the
        result equals the untiled one while memory stays that of one window.
        """
        image = np.asarray(image, np.float32)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"upscale expects one RGB image [h, w, 3], got shape {image.shape}.")
        layers.check_image_size(
            *image.shape[:2], minimum=superres.MIN_SIDE, what="images to upscale"
        )
        if tile <= 0:
            return np.asarray(self._apply(params, jnp.asarray(image)[None]))[0]
        out = tiled.tiled_apply(
            lambda xs: self._apply(params, xs[0]),
            [image[None]],
            factors=[self.scale],
            out_channels=3,
            tile=tile,
            halo=superres.receptive_radius(
                scale=self.scale,
                num_residual=self.config.model.num_residual,
                out_kernel=self.config.model.out_kernel,
            ),
            align=self.scale,
            progress=progress,
        )
        return out[0]
