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

References: Grinchuk, Lebedev & Lempitsky, "Learnable Visual Markers", NIPS 2016.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from neural_synth import io
from neural_synth.data import backgrounds
from neural_synth.experiments import vgg_losses
from neural_synth.models import marker as marker_nets
from neural_synth.ops import render as render_lib
from neural_synth.train import prng
from neural_synth.train import state as state_lib

EVAL_SEED = 1_000_003  # Held-out bit strings and backgrounds never seen in training.


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


def bit_metrics(logits: jax.Array, bits: jax.Array) -> dict[str, jax.Array]:
    """Bit accuracy and whole-string accuracy of logits [B, N] against +-1 bits."""
    correct = (logits > 0) == (bits > 0)  # [B, N]
    return {"acc/bits": jnp.mean(correct), "acc/strings": jnp.mean(jnp.all(correct, axis=1))}


def bit_loss(logits: jax.Array, bits: jax.Array) -> jax.Array:
    """Sigmoid cross-entropy of logits [B, N] against +-1 bits, mean over bits."""
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, (bits + 1.0) / 2.0))


class Experiment:
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
        self.tx = optax.adam(state_lib.learning_rate_schedule(config.train))
        self._bank = backgrounds.load_bank(
            config.render.backgrounds, max_side=config.render.background_side
        )
        self._texture = _texture_setup(config.texture) if config.texture.weight > 0 else None
        self._eval_set = self._make_eval_set()
        self._render_jit = jax.jit(self.render)

    # ------------------------------------------------------------------ state
    def init_state(self, key: jax.Array) -> state_lib.TrainState:
        mc, k_s, k_r = self.config.marker, *jax.random.split(key)
        out = self.config.render.out_size
        params = {
            "synth": self.synth.init(k_s, jnp.zeros((1, mc.num_bits)))["params"],
            "recog": self.recog.init(k_r, jnp.zeros((1, out, out, 3)))["params"],
        }
        return state_lib.TrainState.create(params, self.tx)

    # ------------------------------------------------------------------ data
    def train_batches(self, *, seed: int, start_step: int, batch_size: int):
        """Random bit strings and background crops, reproducible from (seed, step, process)."""
        step, num_bits, side = start_step, self.config.marker.num_bits, self.config.render.out_size
        while True:
            rng = np.random.default_rng([seed, step, jax.process_index()])
            yield {
                "bits": random_bits(rng, batch_size, num_bits),
                "background": backgrounds.random_crops(self._bank, rng, batch_size, side),
            }
            step += 1

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
            "loss/bits": bit_loss(logits, batch["bits"]),
            **bit_metrics(logits, batch["bits"]),
        }
        total = metrics["loss/bits"]
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

    def _texture_loss(self, markers):
        module, variables, targets = self._texture
        layers = tuple(targets.weights)
        feats = module.apply(variables, markers[: self.config.texture.num_markers], layers=layers)
        return jnp.mean(targets.loss(feats))

    # ------------------------------------------------------------------ eval
    def _make_eval_set(self):
        ec, rng = self.config.eval, np.random.default_rng(EVAL_SEED)
        bits = random_bits(rng, ec.num_strings, self.config.marker.num_bits)
        bg = backgrounds.random_crops(self._bank, rng, ec.num_strings, self.config.render.out_size)
        return bits, bg

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

    def decode(self, params, images: np.ndarray) -> np.ndarray:
        """Bit probabilities [B, N] for photos [B, H, W, 3] (resized to the training size)."""
        side = self.config.render.out_size
        images = np.stack([io.resize(im, size=(side, side)) for im in images])
        return np.asarray(jax.nn.sigmoid(self.recog.apply({"params": params["recog"]}, images)))


def render_config(rc: ml_collections.ConfigDict) -> render_lib.RenderConfig:
    """Translates the config's `render` block into the renderer's typed options."""
    fields = render_lib.RenderConfig.__dataclass_fields__
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in rc.items() if k in fields}
    return render_lib.RenderConfig(**options)


def _texture_setup(tc: ml_collections.ConfigDict):
    """(VGG module, frozen variables, normalised Gram targets of the texture sample)."""
    weights = dict(zip(tc.layers, tc.layer_weights, strict=True))
    module, variables = vgg_losses.frozen_vgg(tc.vgg_path, layers=tc.layers, seed=tc.vgg_seed)
    texture = io.load_image_or_sample(tc.image, max_side=tc.image_side)
    return module, variables, vgg_losses.StyleTargets(module, variables, [texture], weights)


def load_trained(workdir: str) -> tuple[Experiment, dict]:
    """(experiment, params) of the newest checkpoint of a marker run in `workdir`."""
    from neural_synth import experiments  # The registry imports this module lazily.

    return experiments.load_trained(workdir, "marker")


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
