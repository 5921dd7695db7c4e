"""Reading markers in whole photos: localize -> rectify -> recognize -> error-correct.

`MarkerReader(exp, params).read(photos)` takes photos of any size (float32
[H, W, 3] in [0, 1]) in which one marker covers roughly 10-90% of the
shorter side, anywhere, rotated and in perspective, and for each returns a
`Reading`:

  1. localize, coarse: the whole photo, letterboxed into the localizer's
     L x L frame, gives four corners and a presence probability; the corners
     are the four strongest peaks of the summed corner maps, in clockwise
     order (`MarkerExperiment.locate(unordered=True)`): near +-45 degrees
     the localizer cannot tell which corner is which, and per-map
     soft-argmax would average two of them;
  2. localize, fine (`reader.passes` - 1 times): a square crop around the
     previous corners (the marker spanning `reader.crop_fill` of it) is
     resampled to L x L and located again, for sub-pixel corners;
  3. rectify: the homography from the recognizer's frame (the marker upright,
     spanning `reader.rect_fill` of the side, as in training) to the photo
     resamples the marker, once per corner order (4 rotations); a search
     over slightly shifted and scaled outlines keeps the one the recognizer
     reads most confidently (`MarkerReader._align`);
  4. recognize all four rotations, decode each with the model's code and
     keep the one whose message verifies within `reader.max_corrections`
     corrected bits (without a code, or when none verifies, the one the
     recognizer is most confident about).

Every resampling reads from an antialiased pyramid of the photo (Lanczos
halvings), so a large photo is never sampled with aliasing. A photo is
reported without a marker when the presence probability is below 0.5 and no
rotation verifies.
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth import io
from neural_synth.codes import ecc
from neural_synth.data import photo_sim
from neural_synth.experiments import marker as marker_lib
from neural_synth.ops import sampler

STATUSES = ("ok", "uncorrectable", "checksum", "unreliable", "no_marker", "raw")
# Codewords are accepted within this many raw bits of the read, one fewer than
# the code corrects: of the 64-bit words within 4 of a codeword, 94% lie at
# exactly 4, so a garbage read (a misplaced outline, a marker too small to
# resolve) that verified wrong data at 4 (2 of 1,600 photos of markers at 10%
# of the side) does so ~16x less often at 3 (benchmarks/RESULTS.md).
MAX_CORRECTIONS = 3


@dataclasses.dataclass
class Reading:
    """What `MarkerReader.read` found in one photo.

    Attributes:
      found: a marker is in the photo (presence >= 0.5 or a verified message).
      verified: the message passed the code's checks (always False without a code).
      status: 'ok', 'uncorrectable' / 'checksum' (found, too many bit errors),
        'unreliable' (a codeword was reached, but only by correcting more
        than `reader.max_corrections` bits: rejected), 'no_marker', or 'raw'
        (the model has no code: bits only).
      message: the decoded message (text, or bytes when not printable) if verified.
      bits: the raw bits read (0/1 string), in the chosen rotation.
      probs: [N] bit probabilities.
      corners: [4, 2] the marker's outer corners (TL, TR, BR, BL) in photo pixels.
      presence: the localizer's presence probability (coarse pass).
      rotation: the chosen corner order: quarter turns from the clockwise
        order (starting at the leftmost) the localizer's peaks come in.
      num_corrected: raw bits the code corrected (-1 if none).
    """

    found: bool
    verified: bool
    status: str
    message: str | bytes | None
    bits: str
    probs: np.ndarray
    corners: np.ndarray
    presence: float
    rotation: int
    num_corrected: int

    def to_json(self) -> dict:
        """A JSON-ready dict (the command line prints it)."""
        message = self.message
        return {
            "found": self.found,
            "verified": self.verified,
            "status": self.status,
            "message": message if isinstance(message, str) else None,
            "message_hex": None if message is None else _as_bytes(message).hex(),
            "bits": self.bits,
            "corners": np.round(self.corners, 2).tolist(),
            "presence": round(self.presence, 4),
            "rotation": self.rotation,
            "num_corrected": self.num_corrected,
            "min_confidence": round(float(np.min(np.abs(self.probs - 0.5)) + 0.5), 4),
        }


def _as_bytes(message: str | bytes) -> bytes:
    return message.encode("utf-8") if isinstance(message, str) else message


class _Pyramid:
    """A photo and its Lanczos-halved levels, resampled through homographies."""

    def __init__(self, photo: np.ndarray):
        self.photo = np.asarray(photo, np.float32)
        self._levels = {0: self.photo}

    def _level(self, k: int) -> np.ndarray:
        if k not in self._levels:
            height, width = self.photo.shape[:2]
            size = (max(1, round(height / 2**k)), max(1, round(width / 2**k)))
            self._levels[k] = io.resize(self.photo, size=size)
        return self._levels[k]

    def warp(self, to_photo: np.ndarray, out_size: int) -> np.ndarray:
        """[K, out, out, 3] views for output->photo homographies [K, 3, 3]."""
        scale = _pixel_scale(to_photo[0], out_size)
        k = max(0, int(round(math.log2(scale)))) if scale > 1.0 else 0
        k = min(k, int(math.log2(max(1, min(self.photo.shape[:2]) // 4))))
        level = self._level(k)
        ay = level.shape[0] / self.photo.shape[0]
        ax = level.shape[1] / self.photo.shape[1]
        to_level = np.array([[ax, 0, 0.5 * ax - 0.5], [0, ay, 0.5 * ay - 0.5], [0, 0, 1]])
        h = np.einsum("ij,kjl->kil", to_level, to_photo).astype(np.float32)
        return np.asarray(_warp(jnp.asarray(level), jnp.asarray(h), out_size))


@functools.partial(jax.jit, static_argnums=2)
def _warp(image, h, out_size: int):
    """[K, out, out, 3] views of one image [H, W, 3] through homographies [K, 3, 3]."""
    grid = jnp.broadcast_to(sampler.pixel_grid(out_size), (h.shape[0], out_size, out_size, 2))
    coords = sampler.apply_homography(h, grid).reshape(1, -1, out_size, 2)
    return sampler.bilinear_sample(image[None], coords).reshape(h.shape[0], out_size, out_size, -1)


def _pixel_scale(h: np.ndarray, out_size: int) -> float:
    """Photo pixels per output pixel at the output's centre (sqrt of the Jacobian)."""
    c = (out_size - 1) / 2.0
    pts = np.array([[c, c, 1.0], [c + 1, c, 1.0], [c, c + 1, 1.0]]) @ h.T
    pts = pts[:, :2] / pts[:, 2:]
    (ax, ay), (bx, by) = pts[1] - pts[0], pts[2] - pts[0]
    return float(np.sqrt(abs(ax * by - ay * bx)))


def _box_matrix(x0: float, y0: float, side: float, out_size: int) -> np.ndarray:
    """Frame -> photo map of an out_size frame showing the square [x0, x0+side] x [y0, y0+side].

    (x0, y0) is the box's outer corner in photo pixel coordinates (pixel
    centres at integers, so a whole W-wide photo starts at -0.5).
    """
    s = side / out_size
    return np.array([[s, 0, x0 + 0.5 * s], [0, s, y0 + 0.5 * s], [0, 0, 1]], np.float64)


def _whole_photo_box(shape) -> tuple[float, float, float]:
    height, width = shape[:2]
    side = float(max(height, width))
    return (width - side) / 2.0 - 0.5, (height - side) / 2.0 - 0.5, side


def _box_around(corners: np.ndarray, fill: float, min_side: float) -> tuple[float, float, float]:
    """A square box centred on the corners' bounding box, which spans `fill` of its side."""
    low, high = corners.min(axis=0), corners.max(axis=0)
    side = max(float(np.max(high - low)) / fill, min_side)
    centre = (low + high) / 2.0
    return centre[0] - side / 2.0, centre[1] - side / 2.0, side


def _apply(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Maps points [K, 2] through a 3x3 homography."""
    p = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ h.T
    return p[:, :2] / p[:, 2:]


def rectifying_homographies(corners: np.ndarray, out_size: int, fill: float) -> np.ndarray:
    """[..., 4, 3, 3] maps from the recognizer's frame to the photo for corners [..., 4, 2].

    One map per corner order: rotation k puts photo corner k at the marker's
    top-left; the marker spans `fill` of the frame, centred and upright.
    """
    quads = np.stack([np.roll(corners, -k, axis=-2) for k in range(4)], axis=-3)
    to_photo = sampler.square_to_quad(jnp.asarray(quads, jnp.float32))
    return np.asarray(sampler.matmul3(to_photo, _frame_to_square(out_size, fill)), np.float64)


@functools.lru_cache(maxsize=8)
def _frame_to_square(out_size: int, fill: float) -> jax.Array:
    """The map from the recognizer's frame to the unit square of the marker spanning `fill` of it."""
    r, c = fill * out_size / 2.0, (out_size - 1) / 2.0
    frame = np.array([[c - r, c - r], [c + r, c - r], [c + r, c + r], [c - r, c + r]])
    return sampler.invert_homography(sampler.square_to_quad(jnp.asarray(frame)))


def jittered_quads(quad: np.ndarray, shift: float, scale: float) -> np.ndarray:
    """[27, 4, 2]: `quad` [4, 2] shifted by {-1, 0, 1} x `shift` of its side in x and y, scaled by 1 + {-1, 0, 1} x `scale`."""
    centre = quad.mean(axis=0)
    side = float(np.sqrt(abs(marker_lib._quad_area(quad[None])[0])))
    steps = (-1.0, 0.0, 1.0)
    return np.stack(
        [
            centre + (1.0 + a * scale) * (quad - centre) + side * shift * np.array([dx, dy])
            for a in steps
            for dx in steps
            for dy in steps
        ]
    )


class MarkerReader:
    """Reads markers in photos with a trained marker model (localizer included).

    Args:
      exp: a `MarkerExperiment` with a localizer (`localizer.enabled`).
      params: its parameters (`experiments.load_trained`).
      passes: localization passes (1 coarse + fine ones); default `reader.passes`.
      chase_bits: soft-decoding width (`ecc.MarkerCode.decode_probs`); default
        `reader.chase_bits`.
      max_corrections: a codeword reached only by correcting more raw bits
        than this is rejected ('unreliable'); default `reader.max_corrections`.
    """

    def __init__(
        self,
        exp,
        params,
        *,
        passes: int | None = None,
        chase_bits: int | None = None,
        max_corrections: int | None = None,
    ):
        if exp.localizer is None:
            raise ValueError(
                "this marker model has no localizer (trained with localizer.enabled=False); "
                "retrain with the default config to read markers in whole photos."
            )
        rc = exp.config.reader
        self.exp, self.params = exp, params
        self.passes = rc.passes if passes is None else passes
        self.chase_bits = rc.chase_bits if chase_bits is None else chase_bits
        default_max = rc.get("max_corrections", MAX_CORRECTIONS)
        self.max_corrections = default_max if max_corrections is None else max_corrections
        self.crop_fill, self.rect_fill = rc.crop_fill, rc.rect_fill
        self.align_rounds = rc.get("align_rounds", 0)
        self.align_shift, self.align_scale = rc.get("align_shift", 0.0), rc.get("align_scale", 0.0)
        self.frame = exp.config.localizer.size
        self.crop = exp.config.render.out_size
        self._code = exp.config.marker.code
        self._locate = jax.jit(lambda p, x: _locate_probs(exp, p, x))
        self._recognize = jax.jit(lambda p, x: jax.nn.sigmoid(exp.recog.apply({"params": p}, x)))

    def locate(self, photos) -> tuple[list[np.ndarray], np.ndarray]:
        """(corners [4, 2] per photo in photo pixels, presence probabilities [B])."""
        return self._locate_in([_Pyramid(p) for p in photos])

    def _locate_in(self, pyramids: list[_Pyramid]) -> tuple[list[np.ndarray], np.ndarray]:
        boxes = [_whole_photo_box(p.photo.shape) for p in pyramids]
        corners, presence = self._pass(pyramids, boxes)
        min_side = self.frame / 4.0
        for _ in range(self.passes - 1):
            boxes = [_box_around(c, self.crop_fill, min_side) for c in corners]
            corners, _ = self._pass(pyramids, boxes)
        return corners, presence

    def _pass(self, pyramids, boxes):
        mats = [_box_matrix(*box, self.frame) for box in boxes]
        frames = np.concatenate(
            [p.warp(m[None], self.frame) for p, m in zip(pyramids, mats, strict=True)]
        )
        corners, presence = self._locate(self.params["loc"], jnp.asarray(frames))
        corners = [_apply(m, c) for m, c in zip(mats, np.asarray(corners, np.float64), strict=True)]
        return corners, np.asarray(presence)

    def read(self, photos) -> list[Reading]:
        """One `Reading` per photo (float32 [H, W, 3] in [0, 1], any sizes)."""
        photos = [np.asarray(p, np.float32) for p in photos]
        for p in photos:
            if p.ndim != 3 or p.shape[-1] != 3 or min(p.shape[:2]) < 8:
                raise ValueError(f"photos must be [H, W, 3] with sides >= 8, got {p.shape}.")
        pyramids = [_Pyramid(p) for p in photos]
        corners, presence = self._locate_in(pyramids)
        readings = []
        for pyramid, c, p in zip(pyramids, corners, presence, strict=True):
            quad, probs = self._align(pyramid, c)
            readings.append(self._decide(quad, float(p), probs))
        return readings

    def _align(self, pyramid: _Pyramid, corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(corners [4, 2], bit probabilities [4 orders, N]) of the outline read most confidently.

        Each of `reader.align_rounds` rounds rectifies jittered copies of the
        outline (shifted by up to `align_shift` of the marker's side, scaled
        by 1 +- `align_scale`) and keeps the copy the recognizer reads most
        confidently; each next round halves the jitter. The first round reads
        every copy in all four corner orders and fixes the best order, later
        rounds read only that one. An outline a few percent of the side off
        costs the recognizer many bits; this search recovers them.
        """
        shift, scale, orders = self.align_shift, self.align_scale, [0, 1, 2, 3]
        for _ in range(self.align_rounds):
            candidates = jittered_quads(corners, shift, scale)
            confidence = _confidence(self._read_orders(pyramid, candidates, orders))  # [J, orders]
            best, k = np.unravel_index(np.argmax(confidence), confidence.shape)
            corners, orders = candidates[best], [orders[k]]
            shift, scale = shift / 2.0, scale / 2.0
        return corners, self._read_orders(pyramid, corners[None], [0, 1, 2, 3])[0]

    def _read_orders(self, pyramid: _Pyramid, quads: np.ndarray, orders: list[int]) -> np.ndarray:
        """Bit probabilities [J, len(orders), N] of outlines [J, 4, 2] rectified in the given corner orders."""
        maps = rectifying_homographies(quads, self.crop, self.rect_fill)[:, orders]
        crops = jnp.asarray(pyramid.warp(maps.reshape(-1, 3, 3), self.crop))
        probs = np.asarray(self._recognize(self.params["recog"], crops))
        return probs.reshape(*maps.shape[:2], -1)

    def _decide(self, corners, presence: float, probs: np.ndarray) -> Reading:
        """Picks the rotation (the one whose message verifies) and builds the Reading."""
        confidence = _confidence(probs)  # [4]
        order = sorted(range(4), key=lambda k: -confidence[k])  # Most confident first.
        best, result = order[0], None
        if self._code == "bch64":
            decoded = [ecc.marker_code().decode_probs(probs[k], chase_bits=self.chase_bits)
                       for k in order]  # fmt: skip
            good = [(d.num_corrected > self.max_corrections, d.soft_cost, i)
                    for i, d in enumerate(decoded) if d.verified]  # fmt: skip
            pick = min(good)[-1] if good else 0
            best, result = order[pick], decoded[pick]
            if result.verified and result.num_corrected > self.max_corrections:
                result = dataclasses.replace(result, verified=False, status="unreliable")
        verified = result is not None and result.verified
        found = verified or presence >= 0.5
        status = "raw" if result is None else result.status
        if not found:
            status = "no_marker"
        return Reading(
            found=found,
            verified=verified,
            status=status,
            message=ecc.unpack_message(result.data) if verified else None,
            bits=marker_lib.bits_to_string(probs[best] - 0.5),
            probs=probs[best],
            corners=np.roll(corners, -best, axis=0),
            presence=presence,
            rotation=best,
            num_corrected=result.num_corrected if result is not None else -1,
        )


def _confidence(probs: np.ndarray) -> np.ndarray:
    """How sure the recognizer is of each reading [..., N] -> [...]: mean |p - 0.5|."""
    return np.mean(np.abs(probs - 0.5), axis=-1)


def _locate_probs(exp, loc_params, frames):
    corners, _, presence = exp.locate(loc_params, frames, unordered=True)
    return corners, jax.nn.sigmoid(presence)


# ---------------------------------------------------------------------- evaluation
def random_payloads(exp, rng: np.random.Generator, num: int):
    """(+-1 raw bits [num, N], data bytes per payload or None): random messages under the code."""
    if exp.config.marker.code == "bch64":
        data = [bytes(rng.integers(0, 256, ecc.DATA_BYTES).tolist()) for _ in range(num)]
        raw = np.stack([ecc.marker_code().encode(d) for d in data]).astype(np.float32)
        return raw * 2.0 - 1.0, data
    return marker_lib.random_bits(rng, num, exp.config.marker.num_bits), [None] * num


def photo_trials(exp, params, reader, *, num, severity, size=None, seed=0, batch=32, bank=None):
    """Simulated photos (Pillow, `data/photo_sim`) read back: one dict of outcomes per photo."""
    rng = np.random.default_rng(seed)
    bank = photo_sim.photo_bank() if bank is None else bank
    bits, data = random_payloads(exp, rng, num)
    markers = exp.encode(params, bits)
    out = []
    for start in range(0, num, batch):
        photos, truths = [], []
        for i in range(start, min(num, start + batch)):
            printed = marker_lib.printable(markers[i], 8 * markers.shape[1])
            photo, corners = photo_sim.simulate(rng, printed, bank, severity=severity, size=size)
            photos.append(photo), truths.append(corners)
        for j, reading in enumerate(reader.read(photos)):
            i = start + j
            out.append(_outcome(reading, bits[i], data[i], truths[j]))
    return out


def _outcome(reading: Reading, bits: np.ndarray, data, corners: np.ndarray) -> dict:
    decoded = (reading.probs > 0.5) == (bits > 0)
    errors = [np.mean(np.linalg.norm(np.roll(reading.corners, -k, 0) - corners, axis=1))
              for k in range(4)]  # fmt: skip
    exact = (
        reading.verified and data is not None and _as_bytes(reading.message) == data.rstrip(b"\x00")
    )
    return {
        "bit_accuracy": float(np.mean(decoded)),
        "found": reading.found,
        "verified": reading.verified,
        "exact": bool(exact),
        "wrong_verified": bool(reading.verified and not exact),
        "corner_error_px": float(min(errors)),
    }


def summarize(outcomes: list[dict]) -> dict:
    """Rates over photo outcomes: bits, messages (exact and verified), detection, corners."""

    def rate(key):
        return float(np.mean([o[key] for o in outcomes]))

    errors = np.array([o["corner_error_px"] for o in outcomes])
    found = np.array([o["found"] for o in outcomes])
    return {
        "num_photos": len(outcomes),
        "bit_accuracy": rate("bit_accuracy"),
        "message_exact_verified": rate("exact"),
        "verified_but_wrong": int(sum(o["wrong_verified"] for o in outcomes)),
        "detection_rate": float(np.mean(found)),
        "corner_error_px_median": float(np.median(errors)),
        "corner_error_px_mean": float(np.mean(errors)),
    }
