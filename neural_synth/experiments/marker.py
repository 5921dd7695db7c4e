"""Learnable visual markers: synthesizer -> rendering network -> recognizer.

Bits (+-1) go through a synthesizer network to a marker image, a rendering
network without learned parameters places it on a background and applies
random print-and-photograph distortions (fresh parameters per sample and step),
and a recognizer recovers the bits. Both networks train end to end with sigmoid
cross-entropy; optionally a Gram loss on VGG features pulls the markers' look
toward a texture sample (texture.weight > 0).

The distortion strength ramps linearly from 0 to 1 over `render.ramp_steps`,
inside the compiled step (no recompilation). Evaluation decodes fixed held-out
bit strings at several strengths ('none', 'training', 'stronger').

With `localizer.enabled`, a localizer network trains in the same step: the
same markers are rendered into larger scenes (`localizer.size` square, the
marker anywhere at 10-100% of the side, rotated and in perspective; a share
of the scenes has no marker) and the localizer learns their four corners
(heat maps + soft-argmax) and a presence logit; its loss also reaches the
synthesizer (`localizer.synth_gradient`), so markers become easy to find.
`marker_reader` chains localizer -> rectification -> recognizer -> code.
With `marker.code = 'bch64'` the 64 raw bits carry a 4-byte message
(`neural_synth/codes/ecc.py`).

References: Grinchuk, Lebedev & Lempitsky, "Learnable Visual Markers", NIPS 2016.
"""

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from neural_synth import io, weights
from neural_synth.codes import ecc
from neural_synth.data import backgrounds, sampling
from neural_synth.losses import bits as bit_losses
from neural_synth.losses import localization, style
from neural_synth.models import marker as marker_nets
from neural_synth.ops import render as render_lib
from neural_synth.ops import sampler
from neural_synth.train import prng, schedule
from neural_synth.train import state as state_lib

EVAL_SEED = 1_000_003  # Held-out bit strings and backgrounds never seen in training.
CODES = ("none", "bch64")
CORNER_CANDIDATES = 6  # Heat-map peaks `locate(unordered=True)` picks the marker's 4 corners from.  # Payload codes: raw bits, or a 4-byte message in 64 bits.


def random_bits(rng: np.random.Generator, num: int, num_bits: int) -> np.ndarray:
    """[num, num_bits] float32 values in {-1, +1}."""
    return rng.integers(0, 2, size=(num, num_bits)).astype(np.float32) * 2.0 - 1.0


def bits_to_string(bits: np.ndarray) -> str:
    return "".join("1" if b > 0 else "0" for b in np.asarray(bits).ravel())


def string_to_bits(text: str, num_bits: int) -> np.ndarray:
    """'0110...' -> [1, num_bits] +-1 array; a clear error on a bad string."""
    if len(text) != num_bits or set(text) - {"0", "1"}:
        raise ValueError(
            f"--bits must be {num_bits} characters of 0/1, got {text!r} ({len(text)} characters)."
        )
    return np.array([[1.0 if c == "1" else -1.0 for c in text]], np.float32)


class MarkerExperiment:
    """The marker experiment (protocol: `neural_synth/train/trainer.py`)."""

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        mc = config.marker
        self.synth = marker_nets.synthesizer(
            mc.synthesizer, marker_size=mc.marker_size, width=mc.synth_width
        )
        self.recog = marker_nets.Recognizer(
            num_bits=mc.num_bits, width=mc.recog_width, norm=mc.recog_norm
        )
        self.render_cfg = render_config(config.render)
        _check_code(mc.code, mc.num_bits)
        self.localizer = None
        if config.localizer.enabled:
            self.localizer = marker_nets.Localizer(width=config.localizer.width)
            self.scene_cfg = scene_config(config.render, config.localizer)
        self.tx = optax.adam(
            schedule.constant_then_cosine(
                config.train.learning_rate,
                num_steps=config.train.num_steps,
                decay_steps=int(config.train.num_steps * config.train.decay_fraction),
            )
        )
        self._bank = backgrounds.load_bank(
            config.render.backgrounds, max_side=config.render.background_side
        )
        self._texture = _texture_setup(config.texture) if config.texture.weight > 0 else None
        self._eval_set = self._make_eval_set()
        self._render_jit = jax.jit(self.render)
        self._scene_eval = self._make_scene_eval_set() if self.localizer else None

    # ------------------------------------------------------------------ state
    def init_state(self, key: jax.Array) -> state_lib.TrainState:
        mc, k_s, k_r = self.config.marker, *jax.random.split(key)
        out = self.config.render.out_size
        params = {
            "synth": self.synth.init(k_s, jnp.zeros((1, mc.num_bits)))["params"],
            "recog": self.recog.init(k_r, jnp.zeros((1, out, out, 3)))["params"],
        }
        if self.localizer is not None:
            side = self.config.localizer.size
            k_l = jax.random.fold_in(key, 7)
            params["loc"] = self.localizer.init(k_l, jnp.zeros((1, side, side, 3)))["params"]
        return state_lib.TrainState.create(params, self.tx)

    # ------------------------------------------------------------------ data
    def train_batches(self, *, seed: int, start_step: int, batch_size: int):
        """Random bit strings and background crops, reproducible from (seed, step, process)."""
        return sampling.step_batches(
            self._random_batch, seed=seed, start_step=start_step, batch_size=batch_size
        )

    def _random_batch(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        side = self.config.render.out_size
        batch = {
            "bits": random_bits(rng, batch_size, self.config.marker.num_bits),
            "background": backgrounds.random_crops(self._bank, rng, batch_size, side),
        }
        if self.localizer is not None:
            lc = self.config.localizer
            num = min(lc.batch_size, batch_size)
            batch["scene"] = backgrounds.random_crops(self._bank, rng, num, lc.size)
        return batch

    # ------------------------------------------------------------------ step
    def render(self, key, markers, background, strength):
        return render_lib.render(
            key,
            markers,
            background,
            strength=strength,
            cfg=self.render_cfg,
            out_size=self.config.render.out_size,
        )

    def _mix_procedural(self, key, background):
        """Replaces a random share of the backgrounds with procedural textures."""
        k_pick, k_make = jax.random.split(jax.random.fold_in(key, 1))
        b, size = background.shape[0], background.shape[1]
        pick = jax.random.uniform(k_pick, (b, 1, 1, 1)) < self.config.render.procedural_fraction
        return jnp.where(pick, render_lib.procedural_backgrounds(k_make, b, size), background)

    def strength_at(self, step: jax.Array) -> jax.Array:
        ramp = max(self.config.render.ramp_steps, 1)
        return jnp.minimum(1.0, (step.astype(jnp.float32) + 1.0) / ramp)

    def example_strengths(self, key, batch_size: int, strength: jax.Array) -> jax.Array:
        """[B] strengths: `strength`, except an `easy_fraction` share drawn from U(0, strength).

        The easy share keeps mild distortions (down to none) in the training
        distribution once the ramp has reached full strength.
        """
        k_easy, k_level = jax.random.split(jax.random.fold_in(key, 2))
        easy = jax.random.uniform(k_easy, (batch_size,)) < self.config.render.easy_fraction
        return strength * jnp.where(easy, jax.random.uniform(k_level, (batch_size,)), 1.0)

    def loss_fn(self, params, batch, key, strength):
        markers = self.synth.apply({"params": params["synth"]}, batch["bits"])
        background = self._mix_procedural(key, batch["background"])
        strengths = self.example_strengths(key, markers.shape[0], strength)
        photos = self.render(key, markers, background, strengths)
        logits = self.recog.apply({"params": params["recog"]}, photos)
        metrics = {
            "loss/bits": bit_losses.bit_loss(logits, batch["bits"]),
            **bit_losses.bit_metrics(logits, batch["bits"]),
        }
        total = metrics["loss/bits"]
        if self.localizer is not None:
            loc_total, loc_metrics = self._localization_loss(
                params["loc"], markers, batch, key, strength
            )
            metrics.update(loc_metrics)
            total = total + self.config.localizer.weight * loc_total
        if self._texture is not None:
            metrics["loss/texture"] = self._texture_loss(markers)
            total = total + self.config.texture.weight * metrics["loss/texture"]
        metrics["loss/total"] = total
        return total, metrics

    def train_step(self, state, batch, key):
        strength = self.strength_at(state.step)
        grads, metrics = jax.grad(self.loss_fn, has_aux=True)(state.params, batch, key, strength)
        metrics["render/strength"] = strength
        return state.apply_gradients(grads, self.tx), metrics

    # ------------------------------------------------------------------ localizer
    def render_scenes(self, key, markers, background, strength, present):
        """Scenes [B, L, L, 3] with the markers where `present` [B] (bool), and true quads [B, 4, 2].

        Absent markers are moved far outside the frame, so their scenes show
        only the (distorted) background.
        """
        side = self.config.localizer.size
        params = render_lib.sample_params(
            key,
            markers.shape[0],
            strength=strength,
            cfg=self.scene_cfg,
            out_size=side,
            background_size=background.shape[1:3],
        )
        quad = params["quad"]
        params["quad"] = jnp.where(present[:, None, None], quad, quad + 4.0 * side)
        scenes = render_lib.render_with_params(
            markers, background, params, cfg=self.scene_cfg, out_size=side
        )
        return scenes, quad

    def locate(self, loc_params, scenes, unordered: bool = False):
        """(corners [B, 4, 2] in scene pixels, heat-map logits, presence logits [B]).

        By default each corner is the soft-argmax of its own map, in the
        marker's order. `unordered` (reading photos) ignores which map a
        corner's evidence sits in: the four maps' probabilities are summed
        and the four strongest peaks, ordered clockwise, are the corners.
        A marker near 45 degrees, whose corner order the localizer cannot
        tell, then still gets its four true corners (the reader tries all
        four orders), where per-map soft-argmax would average two corners.
        """
        logits, presence = self.localizer.apply({"params": loc_params}, scenes)
        stride = scenes.shape[1] // logits.shape[1]
        if unordered:
            probs = jax.nn.softmax(logits.reshape(logits.shape[0], -1, 4), axis=1)
            heat = jnp.sum(probs, axis=-1).reshape(logits.shape[:3])
            points, heights = sampler.peak_points(heat, num=CORNER_CANDIDATES, stride=stride)
            corners = plausible_quad(points, heights)
        else:
            corners, _ = sampler.soft_argmax(logits, stride=stride)
        return corners, logits, presence

    def _localization_loss(self, loc_params, markers, batch, key, strength):
        lc, background = self.config.localizer, batch["scene"]
        num = background.shape[0]
        markers = markers[:num] if lc.synth_gradient else jax.lax.stop_gradient(markers[:num])
        k_scene, k_present = jax.random.split(jax.random.fold_in(key, 3))
        present = jax.random.uniform(k_present, (num,)) >= lc.absent_fraction
        background = self._mix_procedural(k_scene, background)
        strength = self.example_strengths(k_scene, num, strength)
        scenes, quad = self.render_scenes(k_scene, markers, background, strength, present)
        corners, logits, presence = self.locate(loc_params, scenes)
        weights = present.astype(jnp.float32)
        stride = lc.size // logits.shape[1]
        metrics = {
            "loss/corners": localization.corner_loss(corners, quad, weights, scale=lc.size),
            "loss/heatmap": localization.heatmap_loss(
                logits, quad, weights, stride=stride, sigma=lc.heatmap_sigma
            ),
            "loss/presence": bit_losses.bit_loss(presence[:, None], 2.0 * weights[:, None] - 1),
            "loc/corner_px": jnp.sum(localization.corner_errors(corners, quad) * weights)
            / jnp.maximum(jnp.sum(weights), 1.0),
            "loc/presence_acc": jnp.mean((presence > 0) == present),
        }
        total = (
            metrics["loss/corners"]
            + lc.heatmap_weight * metrics["loss/heatmap"]
            + lc.presence_weight * metrics["loss/presence"]
        )
        return total, metrics

    def _texture_loss(self, markers):
        module, variables, targets = self._texture
        layers = tuple(targets.layer_weights)
        feats = module.apply(variables, markers[: self.config.texture.num_markers], layers=layers)
        return jnp.mean(targets.loss(feats))

    # ------------------------------------------------------------------ eval
    def _make_eval_set(self):
        ec, rng = self.config.eval, np.random.default_rng(EVAL_SEED)
        bits = random_bits(rng, ec.num_strings, self.config.marker.num_bits)
        bg = backgrounds.random_crops(self._bank, rng, ec.num_strings, self.config.render.out_size)
        return bits, bg

    def _make_scene_eval_set(self):
        """Held-out scene backgrounds, marker bits and presence flags for localization eval."""
        ec, side = self.config.eval, self.config.localizer.size
        rng = np.random.default_rng(EVAL_SEED + 1)
        bits = random_bits(rng, ec.num_scenes, self.config.marker.num_bits)
        bg = backgrounds.random_crops(self._bank, rng, ec.num_scenes, side)
        present = rng.random(ec.num_scenes) >= self.config.localizer.absent_fraction
        return bits, bg, present

    @functools.partial(jax.jit, static_argnums=0)
    def _locate_batch(self, params, bits, background, present, key):
        markers = self.synth.apply({"params": params["synth"]}, bits)
        scenes, quad = self.render_scenes(key, markers, background, 1.0, present)
        corners, _, presence = self.locate(params["loc"], scenes)
        return localization.corner_errors(corners, quad), presence, quad

    def evaluate_localizer(self, params) -> dict:
        """Corner error (scene pixels) and detection on held-out scenes at strength 1."""
        bits, bg, present = self._scene_eval
        size, errors, presence, quads = self.config.eval.batch_size, [], [], []
        for i in range(0, len(bits), size):
            k = jax.random.fold_in(prng.key(EVAL_SEED + 1), i)
            sl = slice(i, i + size)
            e, p, q = self._locate_batch(params, bits[sl], bg[sl], present[sl], k)
            errors.append(np.asarray(e)), presence.append(np.asarray(p)), quads.append(q)
        errors, presence = np.concatenate(errors)[present], np.concatenate(presence)
        quads = np.concatenate(quads)[present]
        side = np.sqrt(np.abs(_quad_area(quads))) / self.config.localizer.size  # [N]
        big = side >= 0.15
        return {
            "scene_size": self.config.localizer.size,
            "corner_error_px_median": float(np.median(errors)),
            "corner_error_px_mean": float(np.mean(errors)),
            "corner_error_px_p90_side_ge_15pct": float(np.percentile(errors[big], 90)),
            "detection_rate": float(np.mean(presence[present] > 0)),
            "false_positive_rate": float(np.mean(presence[~present] > 0)),
        }

    @functools.partial(jax.jit, static_argnums=0)
    def _decode_batch(self, params, bits, background, key, strength):
        markers = self.synth.apply({"params": params["synth"]}, bits)
        photos = self.render(key, markers, background, strength)
        correct = (self.recog.apply({"params": params["recog"]}, photos) > 0) == (bits > 0)
        return jnp.sum(correct), jnp.sum(jnp.all(correct, axis=1))

    def evaluate(self, state, key) -> dict:
        """Bit and string accuracy on the held-out strings at each eval strength."""
        ec, (bits, bg) = self.config.eval, self._eval_set
        params = jax.device_get(state.params)
        results = {}
        for name, strength in ec.strengths.items():
            bit_ok = str_ok = 0
            for i in range(0, len(bits), ec.batch_size):
                k = jax.random.fold_in(prng.key(EVAL_SEED), i)  # Same distortions every eval.
                b, s = self._decode_batch(
                    params,
                    bits[i : i + ec.batch_size],
                    bg[i : i + ec.batch_size],
                    k,
                    jnp.float32(strength),
                )
                bit_ok, str_ok = bit_ok + int(b), str_ok + int(s)
            results[name] = {
                "strength": float(strength),
                "bit_accuracy": bit_ok / bits.size,
                "string_accuracy": str_ok / len(bits),
            }
        if self.localizer is not None:
            results["localizer"] = self.evaluate_localizer(params)
        return results

    def summaries(self, state, key) -> dict[str, np.ndarray]:
        """Markers for 16 fixed strings and their renderings at training strength."""
        bits, bg = self._eval_set[0][:16], self._eval_set[1][:16]
        params = jax.device_get(state.params)
        markers = self.synth.apply({"params": params["synth"]}, bits)
        photos = self._render_jit(prng.key(EVAL_SEED), markers, bg, jnp.float32(1.0))
        return {"markers": np.asarray(markers), "rendered": np.asarray(photos)}

    # ------------------------------------------------------------------ inference
    def encode(self, params, bits: np.ndarray) -> np.ndarray:
        """Markers [B, S, S, 3] for +-1 bits [B, N]."""
        return np.asarray(self.synth.apply({"params": params["synth"]}, jnp.asarray(bits)))

    def message_bits(self, message: str | bytes) -> np.ndarray:
        """+-1 raw bits [1, N] that carry `message` under the model's code ('bch64')."""
        if self.config.marker.code != "bch64":
            raise ValueError(
                f"this model has no message code (marker.code={self.config.marker.code!r}, "
                f"{self.config.marker.num_bits} bits); give --bits instead of --message."
            )
        raw = ecc.marker_code().encode(ecc.pack_message(message))
        return raw[None].astype(np.float32) * 2.0 - 1.0

    @property
    def min_side(self) -> int:
        """The smallest photo side `decode` accepts: the marker's own size in pixels."""
        return self.config.marker.marker_size

    def decode(self, params, images: np.ndarray) -> np.ndarray:
        """Bit probabilities [B, N] for photos [B, H, W, 3] (resized to the training size).

        Photos with a side below `min_side` are refused: fewer pixels than the
        marker has cannot hold its bits (a 1x1 image would decode to noise).
        """
        height, width = np.shape(images)[1:3]
        if min(height, width) < self.min_side:
            raise ValueError(
                f"A {width}x{height} image is too small to decode: the marker needs at least "
                f"{self.min_side} px per side; photograph it larger or crop less tightly."
            )
        side = self.config.render.out_size
        images = np.stack([io.resize(im, size=(side, side)) for im in images])
        return np.asarray(jax.nn.sigmoid(self.recog.apply({"params": params["recog"]}, images)))


def render_config(rc: ml_collections.ConfigDict) -> render_lib.RenderConfig:
    """Translates the config's `render` block into the renderer's typed options."""
    fields = render_lib.RenderConfig.__dataclass_fields__
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in rc.items() if k in fields}
    return render_lib.RenderConfig(**options)


def scene_config(rc: ml_collections.ConfigDict, lc: ml_collections.ConfigDict):
    """The renderer's options for localizer scenes: `render`'s, with the scene geometry."""
    return dataclasses.replace(
        render_config(rc),
        placement=True,
        marker_scale=tuple(lc.marker_scale),
        max_rotation=lc.max_rotation,
        max_perspective=lc.max_perspective,
    )


def _check_code(code: str, num_bits: int) -> None:
    if code not in CODES:
        raise ValueError(f"marker.code must be one of {CODES}, got {code!r}.")
    if code == "bch64" and num_bits != ecc.NUM_RAW_BITS:
        raise ValueError(
            f"marker.code='bch64' needs marker.num_bits={ecc.NUM_RAW_BITS}, got {num_bits}; "
            "use marker.code='none' for other bit counts."
        )


def plausible_quad(points: jax.Array, heights: jax.Array) -> jax.Array:
    """The strongest plausible marker outline among candidate corners: [B, 4, 2], clockwise.

    Of every 4 of the K candidate points [B, K, 2] (peak heights [B, K]), the
    quads that are convex with every angle within 35-145 degrees and sides
    within 4x of each other compete on their summed height; if none
    qualifies, the 4 strongest points are taken. A background edge that
    outshines one true corner then loses to the marker's own outline.
    """
    subsets = np.array(list(itertools.combinations(range(points.shape[1]), 4)))  # [S, 4]
    batch = points.shape[0]
    quads = sampler.clockwise(points[:, subsets].reshape(-1, 4, 2)).reshape(batch, -1, 4, 2)
    edges = jnp.roll(quads, -1, axis=2) - quads  # [B, S, 4, 2]
    nxt = jnp.roll(edges, -1, axis=2)
    cross = edges[..., 0] * nxt[..., 1] - edges[..., 1] * nxt[..., 0]
    lengths = jnp.linalg.norm(edges, axis=-1) + 1e-6
    cosine = -jnp.sum(edges * nxt, axis=-1) / (lengths * jnp.roll(lengths, -1, axis=2))
    valid = (
        jnp.all(cross > 0, axis=-1)
        & jnp.all(jnp.abs(cosine) <= np.cos(np.radians(35.0)), axis=-1)
        & (jnp.max(lengths, axis=-1) <= 4.0 * jnp.min(lengths, axis=-1))
    )
    score = jnp.where(valid, jnp.sum(heights[:, subsets], axis=-1), -jnp.inf)
    best = jnp.where(jnp.any(valid, axis=1), jnp.argmax(score, axis=1), 0)  # subset 0: top 4
    return jnp.take_along_axis(quads, best[:, None, None, None], axis=1)[:, 0]


def _quad_area(quads: np.ndarray) -> np.ndarray:
    """Signed areas [B] of quads [B, 4, 2] (shoelace formula)."""
    x, y = quads[..., 0], quads[..., 1]
    return 0.5 * np.sum(x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y, axis=1)


def _texture_setup(tc: ml_collections.ConfigDict):
    """(VGG module, frozen variables, normalised Gram targets of the texture sample)."""
    layer_weights = dict(zip(tc.layers, tc.layer_weights, strict=True))
    module, variables = weights.frozen_vgg(tc.vgg_path, layers=tc.layers, seed=tc.vgg_seed)
    texture = io.load_image_or_sample(tc.image, max_side=tc.image_side)
    features = module.apply(variables, jnp.asarray(texture)[None], layers=tuple(layer_weights))
    return module, variables, style.stacked_targets([features], layer_weights)


def marker_sheet(
    markers: np.ndarray, labels: list[str], *, cell: int = 256, ncols: int = 3
) -> np.ndarray:
    """A printable sheet: markers upscaled (nearest) to `cell` px with their bit strings.

    Labels wrap to the marker's width so neighbouring columns never overlap.
    """
    from PIL import Image, ImageDraw  # Lazy: only the sheet command draws text.

    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    per_line = max(1, int(cell // max(probe.textlength("0"), 1.0)))
    lines = [[t[i : i + per_line] for i in range(0, len(t), per_line)] for t in labels]
    n, pad, text_h = len(markers), cell // 8, 12 * max(len(ls) for ls in lines) + 8
    nrows = -(-n // ncols)
    sheet = Image.new("RGB", (ncols * (cell + 2 * pad), nrows * (cell + 2 * pad + text_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (m, label_lines) in enumerate(zip(markers, lines, strict=True)):
        x, y = (i % ncols) * (cell + 2 * pad) + pad, (i // ncols) * (cell + 2 * pad + text_h) + pad
        sheet.paste(Image.fromarray(io.to_uint8(printable(m, cell))), (x, y))
        draw.multiline_text((x, y + cell + 4), "\n".join(label_lines), fill="black", spacing=2)
    return np.asarray(sheet, np.float32) / 255.0


def printable(marker_image: np.ndarray, size: int) -> np.ndarray:
    """A marker [S, S, 3] upscaled to [size, size, 3] with nearest neighbours (crisp print)."""
    from PIL import Image

    tile = Image.fromarray(io.to_uint8(marker_image)).resize((size, size), Image.NEAREST)
    return np.asarray(tile, np.float32) / 255.0
