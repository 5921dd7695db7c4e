"""DeepWarp: redirecting the gaze of rendered eyes with a learned warp and lightness correction.

The network (`models/deepwarp.py`) sees an eye crop, its 7 landmarks and the
change of gaze, and is trained end to end to reproduce the same eye rendered
at the new gaze (`data/eyes.py`), with the squared error (the paper's loss).
Training pairs are identities 0 .. `data.num_identities` - 1 at gazes on a
grid of `data.angle_step` degrees (within +-`max_yaw`, +-`max_pitch`) and
changes of at most `max_redirect_yaw` / `max_redirect_pitch` per axis.

Evaluation: pairs whose source and target gazes lie halfway between the
training grid's (held-out angles), for `eval.num_identities` held-out eyes
(identities from `HELD_OUT_START` on, never trained) and as many training
eyes; each eye is redirected by each of `eval.pitch_deltas` (vertical) and
`eval.yaw_deltas` (horizontal) from a source gaze drawn so that the target
stays on the held-out grid. Scores: the MSE of the output against the true
rendering, and that of the input unchanged (the identity baseline), overall
and per redirection. The other baselines of the paper (warp without
lightness correction, single-scale warp) are the same experiment with
`model.lightness=False` or `model.coarse_to_fine=False`
(`benchmarks/deepwarp.py` trains each).

References: Ganin, Kononenko, Sungatullina & Lempitsky, "DeepWarp:
Photorealistic Image Resynthesis for Gaze Manipulation", ECCV 2016.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from neural_synth import io
from neural_synth.data import eyes, sampling
from neural_synth.losses import perceptual
from neural_synth.models import deepwarp
from neural_synth.train import schedule
from neural_synth.train import state as state_lib

HELD_OUT_START = 1_000_000  # Held-out identities are HELD_OUT_START + i.
EVAL_STREAM = 1  # Seed-sequence stream of the evaluation pairs (training uses 0).
PAD_MULTIPLE = 8  # Inference batches are padded to a multiple of this.


def angle_name(yaw: float, pitch: float) -> str:
    """'pitch+15', 'yaw-10' or 'yaw+5,pitch-10': the key of a redirection in eval.json."""
    parts = [f"{n}{v:+g}" for n, v in (("yaw", yaw), ("pitch", pitch)) if v]
    return ",".join(parts) or "none"


class DeepWarpExperiment:
    """The gaze-redirection experiment (protocol: `neural_synth/train/trainer.py`)."""

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        dc, mc, tc = config.data, config.model, config.train
        self.size = (dc.height, dc.width)
        self.net = deepwarp.DeepWarp(
            width=mc.width,
            depth=mc.depth,
            coarse_width=mc.coarse_width,
            coarse_depth=mc.coarse_depth,
            embed_features=mc.embed_features,
            kernel_size=mc.kernel_size,
            coarse_to_fine=mc.coarse_to_fine,
            lightness=mc.lightness,
            num_palette=mc.num_palette,
        )
        self.tx = optax.adam(
            schedule.constant_then_cosine(
                tc.learning_rate,
                num_steps=tc.num_steps,
                decay_steps=int(tc.num_steps * tc.decay_fraction),
            )
        )
        self.yaw_grid = eyes.angle_grid(dc.max_yaw, dc.angle_step)
        self.pitch_grid = eyes.angle_grid(dc.max_pitch, dc.angle_step)
        self.train_eyes = eyes.make_identities(np.arange(dc.num_identities), seed=dc.identity_seed)

    # ------------------------------------------------------------------ state and data
    def init_state(self, key: jax.Array) -> state_lib.TrainState:
        image = jnp.zeros((1, *self.size, 3))
        landmarks, angle = jnp.zeros((1, eyes.NUM_LANDMARKS, 2)), jnp.zeros((1, 2))
        params = self.net.init(key, image, landmarks, angle)["params"]
        return state_lib.TrainState.create(params, self.tx)

    def train_batches(self, *, seed: int, start_step: int, batch_size: int):
        """Random pairs (training identities, grid gazes), reproducible from (seed, step)."""
        return sampling.step_batches(
            self._random_batch, seed=seed, start_step=start_step, batch_size=batch_size
        )

    def _jitter(self, rng: np.random.Generator, num: int) -> eyes.CameraJitter:
        return eyes.random_jitter(rng, num) if self.config.data.jitter else eyes.no_jitter(num)

    def _random_batch(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        dc = self.config.data
        ids = rng.integers(0, dc.num_identities, batch_size)
        yaw = eyes.sample_redirections(
            rng, batch_size, self.yaw_grid, max_redirect=dc.max_redirect_yaw
        )
        pitch = eyes.sample_redirections(
            rng, batch_size, self.pitch_grid, max_redirect=dc.max_redirect_pitch
        )
        source = np.stack([yaw[0], pitch[0]], -1)
        target = np.stack([yaw[1], pitch[1]], -1)
        return eyes.render_pairs(
            self.train_eyes[ids], source, target, self._jitter(rng, batch_size),
            size=self.size, supersample=dc.supersample,
        )  # fmt: skip

    # ------------------------------------------------------------------ step
    def apply(self, params, images, landmarks, angles):
        """(redirected images [B, H, W, 3], extras) (see `models.deepwarp.DeepWarp`)."""
        return self.net.apply({"params": params}, images, landmarks, angles)

    def loss_fn(self, params, batch):
        output, _ = self.apply(params, batch["input"], batch["landmarks"], batch["angle"])
        loss = perceptual.mse(output, batch["target"])
        baseline = perceptual.mse(batch["input"], batch["target"])
        return loss, {"loss/mse": loss, "loss/input_mse": baseline}

    def train_step(self, state, batch, key):
        del key  # The pairs come with the batch.
        grads, metrics_ = jax.grad(self.loss_fn, has_aux=True)(state.params, batch)
        return state.apply_gradients(grads, self.tx), metrics_

    # ------------------------------------------------------------------ eval
    @functools.cached_property
    def redirections(self) -> list[tuple[float, float]]:
        """The evaluated changes of gaze (yaw, pitch): vertical ones, then horizontal ones."""
        ec = self.config.eval
        return [(0.0, float(p)) for p in ec.pitch_deltas] + [(float(y), 0.0) for y in ec.yaw_deltas]

    def _held_out_grids(self) -> tuple[np.ndarray, np.ndarray]:
        dc = self.config.data
        half = dc.angle_step / 2.0
        return (
            eyes.angle_grid(dc.max_yaw, dc.angle_step, offset=half),
            eyes.angle_grid(dc.max_pitch, dc.angle_step, offset=half),
        )

    @staticmethod
    def _sources(rng, grid: np.ndarray, delta: float, num: int) -> np.ndarray:
        """`num` source angles on `grid` whose target (source + delta) is on it too."""
        valid = grid[np.isin(np.round(grid + delta, 3), np.round(grid, 3))]
        if valid.size == 0:
            raise ValueError(
                f"eval redirection {delta:g} leaves the held-out gazes (+-{grid.max():g} "
                "degrees); use smaller eval.pitch_deltas / eval.yaw_deltas."
            )
        return rng.choice(valid, num)

    def _eval_pairs(self, first_id: int, num: int) -> dict[str, np.ndarray]:
        """Each of `num` identities from `first_id` redirected by each of `redirections`."""
        dc = self.config.data
        rng = sampling.step_rng(self.config.eval.seed, first_id, EVAL_STREAM)
        yaw_grid, pitch_grid = self._held_out_grids()
        source, target = [], []
        for d_yaw, d_pitch in self.redirections:
            src = np.stack(
                [
                    self._sources(rng, yaw_grid, d_yaw, num),
                    self._sources(rng, pitch_grid, d_pitch, num),
                ],
                -1,
            )
            source.append(src)
            target.append(src + np.array([d_yaw, d_pitch], np.float32))
        identities = eyes.make_identities(first_id + np.arange(num), seed=dc.identity_seed)
        count = num * len(self.redirections)
        pairs = eyes.render_pairs(
            identities[np.tile(np.arange(num), len(self.redirections))],
            np.concatenate(source), np.concatenate(target), self._jitter(rng, count),
            size=self.size, supersample=dc.supersample,
        )  # fmt: skip
        pairs["redirection"] = np.repeat(np.arange(len(self.redirections)), num)
        return pairs

    @functools.cached_property
    def eval_sets(self) -> dict[str, dict[str, np.ndarray]]:
        """Held-out-gaze pairs of held-out identities and of training identities."""
        num = self.config.eval.num_identities
        return {
            "held_out_identities": self._eval_pairs(HELD_OUT_START, num),
            "training_identities": self._eval_pairs(0, min(num, self.config.data.num_identities)),
        }

    @functools.partial(jax.jit, static_argnums=0)
    def _predict(self, params, images, landmarks, angles):
        output, extras = self.apply(params, images, landmarks, angles)
        return output, extras["warped"]

    def predict(self, params, images, landmarks, angles) -> tuple[np.ndarray, np.ndarray]:
        """(outputs, warped images before lightness correction) [N, H, W, 3], in batches.

        Batches are padded to multiples of `PAD_MULTIPLE` so that a few shapes
        (and compilations) serve every request.
        """
        size, outs = self.config.eval.batch_size, []
        for i in range(0, len(images), size):
            chunk = [np.asarray(x[i : i + size]) for x in (images, landmarks, angles)]
            num = len(chunk[0])
            pad = -num % PAD_MULTIPLE
            chunk = [np.concatenate([x, np.repeat(x[-1:], pad, 0)]) for x in chunk]
            out = jax.device_get(self._predict(params, *chunk))
            outs.append([o[:num] for o in out])
        return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])

    def _scores(self, params, pairs: dict[str, np.ndarray]) -> dict:
        outputs, _ = self.predict(params, pairs["input"], pairs["landmarks"], pairs["angle"])
        model = np.mean(np.square(outputs - pairs["target"]), axis=(1, 2, 3))
        unchanged = np.mean(np.square(pairs["input"] - pairs["target"]), axis=(1, 2, 3))
        per_angle = {}
        for index, (d_yaw, d_pitch) in enumerate(self.redirections):
            chosen = pairs["redirection"] == index
            per_angle[angle_name(d_yaw, d_pitch)] = {
                "mse": float(model[chosen].mean()),
                "input_mse": float(unchanged[chosen].mean()),
            }
        return {
            "mse": float(model.mean()),
            "input_mse": float(unchanged.mean()),
            "per_angle": per_angle,
        }

    def evaluate(self, state, key) -> dict:
        """MSE against the true renderings on held-out gazes, of the model and of the input."""
        del key  # Deterministic: the same pairs every evaluation.
        params = jax.device_get(state.params)
        scores = {name: self._scores(params, pairs) for name, pairs in self.eval_sets.items()}
        return {**scores, "num_pairs": len(self.eval_sets["held_out_identities"]["input"])}

    def summaries(self, state, key) -> dict[str, np.ndarray]:
        """Held-out eyes redirected by the largest upward change.

        Rows: input, output, true target, warped image before lightness correction.
        """
        del key
        params = jax.device_get(state.params)
        pairs = self.eval_sets["held_out_identities"]
        pitches = [p for _, p in self.redirections]
        chosen = np.flatnonzero(pairs["redirection"] == int(np.argmax(pitches)))[:8]
        output, warped = self.predict(
            params, pairs["input"][chosen], pairs["landmarks"][chosen], pairs["angle"][chosen]
        )
        rows = np.concatenate([pairs["input"][chosen], output, pairs["target"][chosen], warped])
        grid = io.make_grid(np.clip(rows, 0.0, 1.0), ncols=len(chosen))
        return {"held_out": np.repeat(np.repeat(grid, 3, 0), 3, 1)[None]}  # 3x: crops are small.

    # ------------------------------------------------------------------ inference
    @functools.cached_property
    def mean_landmarks(self) -> np.ndarray:
        """[7, 2] landmarks of the average training eye looking ahead, in model pixels."""
        num = min(len(self.train_eyes), 256)
        return eyes.eye_landmarks(self.train_eyes[:num], 0.0, 0.0, size=self.size).mean(axis=0)

    def check_angles(self, angles) -> np.ndarray:
        """[N, 2] (yaw, pitch) changes as float32, or a ValueError naming the trained range."""
        angles = np.asarray(angles, np.float32).reshape(-1, 2)
        dc = self.config.data
        for axis, limit, name in (
            (0, dc.max_redirect_yaw, "yaw"),
            (1, dc.max_redirect_pitch, "pitch"),
        ):
            worst = float(np.abs(angles[:, axis]).max())
            if worst > limit + 1e-6 or not np.isfinite(worst):
                raise ValueError(
                    f"a {name} change of {worst:g} degrees is outside the trained range: this run "
                    f"learned {name} changes up to +-{limit:g} degrees."
                )
        return angles

    def _model_landmarks(self, landmarks, height: int, width: int) -> np.ndarray:
        """Landmarks [7, 2] of an H x W crop (None: the average eye's), in model pixels."""
        if landmarks is None:
            return self.mean_landmarks
        landmarks = np.asarray(landmarks, np.float32)
        if landmarks.shape != (eyes.NUM_LANDMARKS, 2) or not np.all(np.isfinite(landmarks)):
            raise ValueError(
                f"landmarks must be {eyes.NUM_LANDMARKS} finite (x, y) points "
                f"({', '.join(eyes.LANDMARK_NAMES)}), got shape {landmarks.shape}."
            )
        scale = np.array([self.size[1] / width, self.size[0] / height], np.float32)
        return (landmarks + 0.5) * scale - 0.5  # Pixel centres of the resized crop.

    def redirect(self, params, image, angles, *, landmarks=None) -> np.ndarray:
        """An eye crop [H, W, 3] (any size) redirected by each of `angles`: [N, H, W, 3].

        The crop is resized to the model's size, redirected and resized back.
        `angles` are [N, 2] (or one pair) changes of (yaw, pitch) in degrees,
        within the trained range; `landmarks` are the crop's 7 landmarks
        [7, 2] in its own pixels (order: `data.eyes.LANDMARK_NAMES`), by default
        those of the average training eye (crops framed like the training data).
        """
        image = np.asarray(image, np.float32)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"image must be [H, W, 3], got shape {image.shape}.")
        height, width = image.shape[:2]
        angles = self.check_angles(angles)
        marks = self._model_landmarks(landmarks, height, width)
        small = io.resize(image, size=self.size)
        num = len(angles)
        outputs, _ = self.predict(
            params, np.repeat(small[None], num, 0), np.repeat(marks[None], num, 0), angles
        )
        if (height, width) == self.size:
            return np.clip(outputs, 0.0, 1.0)
        return np.stack([io.resize(np.clip(o, 0.0, 1.0), size=(height, width)) for o in outputs])

    def sample_eye(self, identity: int, yaw: float = 0.0, pitch: float = 0.0) -> np.ndarray:
        """The renderer's crop [H, W, 3] of a held-out eye (`HELD_OUT_START + identity`)."""
        identities = eyes.make_identities(
            [HELD_OUT_START + int(identity)], seed=self.config.data.identity_seed
        )
        return eyes.render_eyes(identities, yaw, pitch, size=self.size)[0][0]
