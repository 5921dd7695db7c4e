"""Image descriptors from (masked) style statistics of frozen VGG features.

An image's descriptor concatenates, for each chosen layer, its style
statistic (`losses.gram.style_statistic`: a Gram matrix, or per-channel mean
and standard deviation) computed over a mask, each layer's block scaled to
unit length and the whole divided by sqrt(number of layers) (so descriptors
have unit length and every layer counts equally). Gram matrices are stored as
their upper triangle with off-diagonal entries times sqrt(2), so Euclidean
distances between descriptors are Frobenius distances between the matrices.
With `signed_sqrt`, each entry is replaced by sign(x) sqrt(|x|) first (power
normalisation, which evens out the few very large Gram entries).

Images are letterboxed into a square of `image_side` px (longest side scaled
to it, the rest reflection-padded) so that one compiled program serves every
image; the padding is always masked out.

Masks (`mask` of `DescriptorSpec`):
- 'none': the whole image;
- 'given': a mask per image, in [0, 1] (e.g. a segmentation);
- 'auto': computed from the deepest feature map, as the similar-clothes
  recipe in the seed's comment thread does: the channel-summed activation of
  the last pooling layer, scaled to [0, 1] per image and thresholded
  (`activation_mask`). With random VGG weights this marks regions of strong
  local contrast rather than objects; with ported ImageNet weights, salient
  objects.

References: Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional
Neural Networks", CVPR 2016 (Gram matrices); Gatys et al., "Controlling
Perceptual Factors in Neural Style Transfer", CVPR 2017 (masked statistics);
Huang & Belongie, ICCV 2017 (mean and std); Perronnin, Sanchez & Mensink,
"Improving the Fisher Kernel for Large-Scale Image Classification", ECCV 2010
(power normalisation).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth import io, weights
from neural_synth.losses import gram

MASK_MODES = ("none", "given", "auto")
MASK_LAYER = "pool5"  # The last pooling layer of VGG16 and VGG19: the 'auto' mask's source.
NORM_EPS = 1e-12


@dataclasses.dataclass(frozen=True)
class DescriptorSpec:
    """What a descriptor holds; stored in an index's metadata so queries match it.

    Attributes:
      layers: VGG layers whose statistics are used.
      kind: 'gram', 'mean' or 'mean_std' (`losses.gram.KINDS`).
      image_side: images are letterboxed into this square (a multiple of 32).
      mask: 'none', 'given' or 'auto' (see the module docstring).
      mask_threshold: 'auto' keeps positions whose scaled activation is >= this.
      signed_sqrt: power-normalise entries before the per-layer scaling.
      vgg_path: ported VGG weights ('' = random VGG19 drawn from `vgg_seed`).
      vgg_seed: seed of the random weights.
    """

    layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1")
    kind: str = "gram"
    image_side: int = 224
    mask: str = "none"
    mask_threshold: float = 0.5
    signed_sqrt: bool = True
    vgg_path: str = ""
    vgg_seed: int = 0

    def __post_init__(self):
        gram.check_kind(self.kind)
        if self.mask not in MASK_MODES:
            raise ValueError(f"Unknown mask mode {self.mask!r}; choose from {MASK_MODES}.")
        if self.image_side < 32 or self.image_side % 32:
            raise ValueError(f"image_side must be a multiple of 32 (>= 32), got {self.image_side}.")
        if not self.layers:
            raise ValueError("A descriptor needs at least one layer.")
        object.__setattr__(self, "layers", tuple(self.layers))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DescriptorSpec":
        return cls(**{**data, "layers": tuple(data["layers"])})


def letterbox(image: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """(image [side, side, C], valid [side, side]): scaled to fit, reflection-padded, centred.

    The longest side is resized (Lanczos, `io.resize`) to `side`; `valid` is 1
    on the image and 0 on the padding.
    """
    h, w = image.shape[:2]
    scale = side / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    image = io.resize(image, size=(nh, nw))
    top, left = (side - nh) // 2, (side - nw) // 2
    pads = ((top, side - nh - top), (left, side - nw - left), (0, 0))
    valid = np.zeros((side, side), np.float32)
    valid[top : top + nh, left : left + nw] = 1.0
    return np.pad(image, pads, mode="reflect"), valid


def activation_mask(features: jax.Array, *, threshold: float) -> jax.Array:
    """Coarse foreground mask [B, h, w] in {0, 1} from a deep feature map [B, h, w, C].

    The channel sum of the activations, scaled to [0, 1] per image (min to
    max), thresholded at `threshold`.
    """
    energy = jnp.sum(features, axis=-1)  # [B, h, w]
    low = jnp.min(energy, axis=(1, 2), keepdims=True)
    high = jnp.max(energy, axis=(1, 2), keepdims=True)
    scaled = (energy - low) / jnp.maximum(high - low, NORM_EPS)
    return (scaled >= threshold).astype(jnp.float32)


def _flatten(statistic, kind: str) -> jax.Array:
    """A layer's statistic as [B, D]: Gram upper triangle (off-diagonal x sqrt 2), or vectors."""
    if kind == "gram":
        c = statistic.shape[-1]
        rows, cols = np.triu_indices(c)
        scale = np.where(rows == cols, 1.0, np.sqrt(2.0)).astype(np.float32)
        return statistic[:, rows, cols] * scale
    if kind == "mean_std":
        return jnp.concatenate(statistic, axis=-1)
    return statistic


def descriptor_from_features(features: dict, mask, spec: DescriptorSpec) -> jax.Array:
    """Unit-length descriptors [B, D] from VGG features {layer: [B, H, W, C]} and a mask.

    `mask` is [B, h, w] in [0, 1] at any resolution, or None (every position).
    """
    blocks = []
    for name in spec.layers:
        v = _flatten(gram.style_statistic(features[name], spec.kind, mask=mask), spec.kind)
        if spec.signed_sqrt:
            v = jnp.sign(v) * jnp.sqrt(jnp.abs(v))
        v = v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), NORM_EPS)
        blocks.append(v)
    return jnp.concatenate(blocks, axis=-1) / np.sqrt(len(blocks))


class Describer:
    """Descriptors of one `DescriptorSpec` with its frozen VGG (one program per batch size)."""

    def __init__(self, spec: DescriptorSpec):
        self.spec = spec
        wanted = spec.layers + ((MASK_LAYER,) if spec.mask == "auto" else ())
        self.wanted = tuple(dict.fromkeys(wanted))
        self.vgg, self.variables = weights.frozen_vgg(
            spec.vgg_path, layers=self.wanted, seed=spec.vgg_seed
        )

    @functools.partial(jax.jit, static_argnums=0)
    def _describe(self, images, masks):
        feats = self.vgg.apply(self.variables, images, layers=self.wanted)
        if self.spec.mask == "auto":
            coarse = activation_mask(feats[MASK_LAYER], threshold=self.spec.mask_threshold)
            side = images.shape[1]
            masks = masks * gram.resize_mask(coarse, height=side, width=side)
        return descriptor_from_features(feats, masks, self.spec), masks

    def __call__(self, images: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(descriptors [B, D], the masks used [B, S, S]) of letterboxed images [B, S, S, 3].

        `masks` [B, S, S] are the letterbox's valid regions, already multiplied
        by given masks; with mask 'auto' the activation mask is applied too.
        """
        d, m = self._describe(jnp.asarray(images, jnp.float32), jnp.asarray(masks, jnp.float32))
        return np.asarray(d), np.asarray(m)


def load_mask(path: str, *, like: np.ndarray) -> np.ndarray:
    """A mask image as [H, W] in [0, 1] (mean of its channels), resized to `like`'s size."""
    mask = io.load_image(path, size=like.shape[:2])
    return mask.mean(axis=-1)


def prepare_for_index(
    image: np.ndarray, mask: np.ndarray | None, side: int
) -> tuple[np.ndarray, np.ndarray]:
    """(letterboxed image [S, S, 3], weights [S, S]): the valid region times the mask, if any."""
    boxed, valid = letterbox(image, side)
    if mask is not None:
        boxed_mask, _ = letterbox(np.asarray(mask, np.float32)[..., None], side)
        valid = valid * np.clip(boxed_mask[..., 0], 0.0, 1.0)
    return boxed, valid
