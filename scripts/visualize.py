r"""Look inside a trained ImageNet classifier (EfficientNet-Lite0 bundled, or VGG16/19).

  python -m scripts.visualize classify   --image skimage:chelsea
  python -m scripts.visualize saliency   --image skimage:chelsea --out saliency.png
  python -m scripts.visualize smoothgrad --image skimage:coffee  --out smooth.png
  python -m scripts.visualize guided     --image photo.jpg --classes 281,285 --out guided.png
  python -m scripts.visualize deconv     --image skimage:chelsea --layer block5 --out deconv.png
  python -m scripts.visualize gradcam    --image skimage:astronaut --out cam.png
  python -m scripts.visualize classmodel --classes 281,967,130,954 --out classes.png
  python -m scripts.visualize dream      --image skimage:chelsea --layers block10_expand --out dream.png
  python -m scripts.visualize invert     --image skimage:chelsea --layers block2,block5,block10 --out inv.png
  python -m scripts.visualize rf         --layer block5 --out rf.png

Photos are centre-cropped and resized to --size for the classifier (not for
`dream`, which keeps the photo's shape, shrunk to --max_side). Attribution
commands explain the classes in --classes (default: the top-1 prediction), one
row per class: input, map, overlay; with --layer they explain one neuron of
that layer instead (its channel --channel at its strongest position; default:
the most active channel). Optimizing commands print progress with an ETA.
`--model vgg16 --weights DIR` uses a ported VGG with its fc head.
Class labels are ImageNet synset ids (names with --labels FILE).
"""

import numpy as np
from absl import flags

from neural_synth import io
from neural_synth import progress as progress_lib
from neural_synth.data import imagenet
from neural_synth.viz import (
    ascent,
    attribution,
    class_model,
    classifiers,
    dream,
    figures,
    inversion,
    receptive_field,
)
from scripts import common

_IMAGE = flags.DEFINE_string(
    "image", "skimage:chelsea", "Input photo: a path, or skimage:NAME (a scikit-image sample)."
)
_OUT = flags.DEFINE_string("out", None, "Output PNG/JPEG (classify: optional, the model input).")
_MODEL = flags.DEFINE_enum("model", "efficientnet_lite0", classifiers.NAMES, "Classifier.")
_WEIGHTS = flags.DEFINE_string(
    "weights", None, "VGG: directory of a ported checkpoint with fc head (scripts.convert_vgg)."
)
_LABELS = flags.DEFINE_string(
    "labels", None, "Text file with 1000 ImageNet class names, one per line (default: synsets)."
)
_SIZE = flags.DEFINE_integer(
    "size", 224, "Side of the square network input, pixels.", lower_bound=32
)
_CLASSES = flags.DEFINE_list("classes", None, "ImageNet class indices (default: top-1).")
_TOP = flags.DEFINE_integer("top", 5, "classify: number of classes to print.", lower_bound=1)
_LAYER = flags.DEFINE_string(
    "layer", None, "Attribution: explain a neuron of this layer; gradcam/rf: the layer."
)
_CHANNEL = flags.DEFINE_integer("channel", None, "With --layer: the channel (default: strongest).")
_LAYERS = flags.DEFINE_list("layers", None, "dream: layers to amplify; invert: layers to invert.")
_BATCH = flags.DEFINE_integer(
    "batch_size", 16, "Images per network pass (the memory knob).", lower_bound=1
)
_SAMPLES = flags.DEFINE_integer("samples", 16, "smoothgrad: noisy copies.", lower_bound=1)
_NOISE = flags.DEFINE_float("noise", 0.15, "smoothgrad: noise std / (max - min) of the image.")
_STEPS = flags.DEFINE_integer("steps", None, "Optimization steps (classmodel 200, invert 200).")
_LR = flags.DEFINE_float("lr", 0.05, "classmodel/invert: Adam learning rate.")
_JITTER = flags.DEFINE_integer(
    "jitter", None, "Random shift per step, pixels (default per command)."
)
_PARAM = flags.DEFINE_enum(
    "param", "fourier", ("pixel", "fourier"), "classmodel/invert: image parameterisation."
)
_L2 = flags.DEFINE_float("l2", 1.0, "classmodel: weight of the L2 penalty on the network input.")
_TV = flags.DEFINE_float("tv", None, "classmodel/invert: total variation weight (0 / 1).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of noise and jitter.")
_OCTAVES = flags.DEFINE_integer("octaves", 4, "dream: number of octaves.", lower_bound=1)
_OCTAVE_SCALE = flags.DEFINE_float("octave_scale", 1.4, "dream: size ratio between octaves.")
_DREAM_STEPS = flags.DEFINE_integer("dream_steps", 10, "dream: steps per octave.", lower_bound=0)
_STEP_SIZE = flags.DEFINE_float("step_size", 0.01, "dream: step size (normalised gradient).")
_TILE = flags.DEFINE_integer("tile", 0, "dream: gradient tiles of this side (0: whole image).")
_MAX_SIDE = flags.DEFINE_integer("max_side", 400, "dream: shrink the photo to this longest side.")

DREAM_LAYERS = ["block10_expand"]
INVERT_LAYERS = ["stem", "block2", "block5", "block10"]


def _classifier() -> classifiers.Classifier:
    return classifiers.load(_MODEL.value, weights=_WEIGHTS.value)


def _photo(size: int | None = None) -> np.ndarray:
    image = io.load_image_or_sample(_IMAGE.value)
    return classifiers.prepare_image(image, size or _SIZE.value)


def _out() -> str:
    return str(io.check_save_path(common.require(_OUT, "this command")))


def _save(image: np.ndarray, what: str) -> None:
    io.save_image(_OUT.value, image)
    print(f"Wrote {_OUT.value} ({what}, {image.shape[1]}x{image.shape[0]})")


def _predict(classifier, image: np.ndarray) -> np.ndarray:
    """Softmax probabilities [1000] of one image."""
    import jax  # Lazy: flag parsing stays fast.

    module, layer = classifier.module(), classifier.logits_layer
    logits = jax.jit(lambda v, x: module.apply(v, x, layers=(layer,))[layer])(
        classifier.variables, image[None]
    )
    return np.asarray(jax.nn.softmax(logits[0]))


def _classes(default=None) -> list[int] | None:
    """--classes as checked ImageNet indices (or `default` when not given)."""
    if not _CLASSES.value:
        return default
    try:
        return [imagenet.check_class(int(c)) for c in _CLASSES.value]
    except ValueError:
        raise ValueError(
            f"--classes must be ImageNet indices 0..999, got {_CLASSES.value}"
        ) from None


def _describe(names, probs, index: int) -> str:
    return f"{index:4d} {names[index]:<12} p={probs[index]:.3f}"


def _targets(classifier, image, *, neurons: bool = True) -> tuple[np.ndarray, str | None]:
    """(targets, layer): a channel of --layer (with `neurons`), else classes (default top-1)."""
    names = imagenet.class_names(_LABELS.value)
    if neurons and _LAYER.value:
        layer = classifier.check_layer(_LAYER.value)
        if _CHANNEL.value is not None:
            return np.asarray([_CHANNEL.value]), layer
        return np.asarray([_strongest_channel(classifier, image, layer)]), layer
    probs = _predict(classifier, image)
    classes = _classes([int(np.argmax(probs))])
    for c in classes:
        print("explaining class", _describe(names, probs, c))
    return np.asarray(classes), None


def _strongest_channel(classifier, image, layer: str) -> int:
    acts = classifier.module().apply(classifier.variables, image[None], layers=(layer,))[layer]
    channel = int(np.argmax(np.asarray(acts[0]).max(axis=(0, 1))))
    print(f"explaining {layer} channel {channel} (its strongest neuron)")
    return channel


def classify() -> None:
    if _OUT.value:
        io.check_save_path(_OUT.value)
    image, classifier = _photo(), _classifier()
    probs = _predict(classifier, image)
    names = imagenet.class_names(_LABELS.value)
    print(f"{_MODEL.value} on {_IMAGE.value} ({_SIZE.value}x{_SIZE.value} centre crop):")
    for index in np.argsort(-probs)[: _TOP.value]:
        print("  " + _describe(names, probs, int(index)))
    if _OUT.value:
        _save(image, "model input")


def _attribution(method) -> tuple[np.ndarray, np.ndarray]:
    _out()
    image, classifier = _photo(), _classifier()
    targets, layer = _targets(classifier, image)
    images = np.repeat(image[None], len(targets), axis=0)
    result = method(classifier, images, targets, layer)
    return image, result


def saliency() -> None:
    image, grads = _attribution(
        lambda c, x, t, layer: attribution.gradients(c, x, t, layer=layer, batch_size=_BATCH.value)
    )
    _save(figures.magnitude_rows(image, attribution.saliency_map(grads)), "saliency")


def smoothgrad() -> None:
    image, grads = _attribution(
        lambda c, x, t, layer: attribution.smoothgrad(
            c,
            x,
            t,
            layer=layer,
            num_samples=_SAMPLES.value,
            noise=_NOISE.value,
            seed=_SEED.value,
            batch_size=_BATCH.value,
        )  # fmt: skip
    )
    _save(figures.magnitude_rows(image, attribution.saliency_map(grads)), "SmoothGrad")


def _signed(rule: str, what: str) -> None:
    image, grads = _attribution(
        lambda c, x, t, layer: attribution.gradients(
            c, x, t, rule=rule, layer=layer, batch_size=_BATCH.value
        )
    )
    _save(figures.signed_rows(image, grads), what)


def guided() -> None:
    _signed("guided", "guided backpropagation")


def deconv() -> None:
    if _MODEL.value == "efficientnet_lite0":
        print(
            "note: EfficientNet-Lite0 has no max-pooling, so the deconvnet's picture depends "
            "on the image only through the neuron's position (use guided for more)"
        )
    _signed("deconvnet", "deconvnet")


def gradcam() -> None:
    _out()
    image, classifier = _photo(), _classifier()
    layer = _LAYER.value and classifier.check_layer(_LAYER.value)  # The CAM layer here.
    classes, _ = _targets(classifier, image, neurons=False)
    images = np.repeat(image[None], len(classes), axis=0)
    cams = attribution.gradcam(classifier, images, classes, layer=layer, batch_size=_BATCH.value)
    guided_maps = (
        attribution.guided_backprop(classifier, images, classes, batch_size=_BATCH.value)
        * cams[..., None]
    )
    print(f"Grad-CAM layer: {layer or classifier.cam_layer}")
    _save(figures.gradcam_rows(image, cams, guided_maps), "Grad-CAM")


def _reporter(total: int, what: str):
    reporter = progress_lib.Progress(total, unit="step", prefix=f"{what}: ")
    reporter.start()
    return lambda report: reporter.update(report.step, {"loss": report.loss})


def _ascent_options(default_steps: int, default_jitter: int) -> ascent.AscentOptions:
    steps = default_steps if _STEPS.value is None else _STEPS.value
    jitter = default_jitter if _JITTER.value is None else _JITTER.value
    return ascent.AscentOptions(
        num_steps=steps, learning_rate=_LR.value, jitter=jitter,
        parameterization=_PARAM.value, seed=_SEED.value, chunk_size=max(1, min(25, steps)),
    )  # fmt: skip


def classmodel() -> None:
    _out()
    classes, options = _classes([281, 967, 130, 954]), _ascent_options(200, 8)
    options.check()
    classifier = _classifier()
    images = class_model.class_models(
        classifier, classes, size=_SIZE.value, l2=_L2.value, tv=_TV.value or 0.0,
        options=options, callback=_reporter(options.num_steps, "class models"),
    )  # fmt: skip
    names = imagenet.class_names(_LABELS.value)
    probs = [_predict(classifier, x) for x in images]
    for c, p in zip(classes, probs, strict=True):
        print(f"class {_describe(names, p, c)} | top-1 {names[int(np.argmax(p))]}")
    _save(io.make_grid(images, ncols=min(4, len(images))), "class models")


def dream_command() -> None:
    _out()
    image = io.load_image_or_sample(_IMAGE.value, max_side=_MAX_SIDE.value)
    classifier = _classifier()
    layers = _LAYERS.value or (DREAM_LAYERS if _MODEL.value == "efficientnet_lite0" else None)
    if not layers:
        raise ValueError("dream needs --layers for VGG, e.g. --layers relu4_1")
    options = dream.DreamOptions(
        num_octaves=_OCTAVES.value, octave_scale=_OCTAVE_SCALE.value,
        steps_per_octave=_DREAM_STEPS.value, step_size=_STEP_SIZE.value,
        jitter=32 if _JITTER.value is None else _JITTER.value, tile=_TILE.value, seed=_SEED.value,
    )  # fmt: skip
    total = options.num_octaves * options.steps_per_octave
    result = dream.dream(
        classifier, image, layers, options, callback=_reporter(total, f"dream {','.join(layers)}")
    )
    _save(result, "DeepDream")


def invert() -> None:
    _out()
    image, classifier = _photo(), _classifier()
    layers = _LAYERS.value or (INVERT_LAYERS if _MODEL.value == "efficientnet_lite0" else None)
    if not layers:
        raise ValueError("invert needs --layers for VGG, e.g. --layers relu2_1,relu4_1")
    layers = [classifier.check_layer(name) for name in layers]
    options = _ascent_options(200, 2)
    outputs = [image]
    for layer in layers:
        outputs.append(
            inversion.invert(
                classifier,
                image[None],
                layer,
                tv=1.0 if _TV.value is None else _TV.value,
                options=options,
                callback=_reporter(options.num_steps, f"invert {layer}"),
            )[0]  # fmt: skip
        )
    _save(io.make_grid(np.stack(outputs), ncols=len(outputs)), "input, then " + ", ".join(layers))


def rf() -> None:
    _out()
    image, classifier = _photo(), _classifier()
    layer = classifier.check_layer(_LAYER.value or "block5")
    size = image.shape[0]
    rows, cols = receptive_field.arithmetic(classifier, layer, size, size)
    position = (rows.length // 2, cols.length // 2)
    expected = receptive_field.expected_box(classifier, layer, size, size, position)
    sensitivity, measured = receptive_field.measure(
        classifier, layer, size, size, position=position, seed=_SEED.value
    )
    print(f"{layer}: {rows.length}x{cols.length} neurons, jump {rows.jump} px, receptive field "
          f"{rows.size} px (arithmetic); neuron {position} sees rows {expected[0]}:{expected[2]}, "
          f"cols {expected[1]}:{expected[3]}; measured {measured}")  # fmt: skip
    _save(figures.receptive_field_figure(image, sensitivity, expected, measured), "receptive field")


COMMANDS = {
    "classify": classify,
    "saliency": saliency,
    "smoothgrad": smoothgrad,
    "deconv": deconv,
    "guided": guided,
    "gradcam": gradcam,
    "classmodel": classmodel,
    "dream": dream_command,
    "invert": invert,
    "rf": rf,
}

if __name__ == "__main__":
    common.run(commands=COMMANDS)
