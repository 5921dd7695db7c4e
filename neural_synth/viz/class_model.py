"""Class model visualization: the image a classifier finds most typical of a class.

Simonyan et al. maximise the unnormalised class score with an L2 penalty,

    argmax_I  S_c(I) - lambda * ||I||^2,

starting from the zero image, where I is the network's (mean-subtracted) input.
Here I is `classifier.preprocess(image)`, the zero image is the one the network
sees as zero (`Classifier.zero_image`, ImageNet's mean colour or mid grey), the
penalty is averaged over pixels (so `l2` does not depend on the size) and the
images stay in [0, 1]. Optional: `tv` adds total variation
(`neural_synth.losses.perceptual.total_variation`); `options.jitter` and the
'fourier' parameterisation (`parameterize.py`) give the cleaner pictures of
later work. Several classes are optimized together, one image each (one batch).

References: Simonyan, Vedaldi & Zisserman, ICLR 2014 workshop (class models);
Yosinski et al., "Understanding Neural Networks Through Deep Visualization",
ICML 2015 workshop (jitter, regularisers); Olah et al., Distill 2017.
"""

from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from neural_synth.data import imagenet
from neural_synth.losses import perceptual
from neural_synth.viz import ascent, classifiers


def class_objective(classifier: classifiers.Classifier, *, l2: float, tv: float) -> Callable:
    """objective(images, data) = -sum_b S_{c_b}(x_b) + l2 * sum_b mean(I_b^2) + tv * TV.

    `data` is {'variables': ..., 'classes': int [B]}.
    """
    module, layer = classifier.module("gradient"), classifier.logits_layer

    def fn(images, data):
        logits = module.apply(data["variables"], images, layers=(layer,))[layer]  # [B, 1000]
        scores = jnp.take_along_axis(logits, data["classes"][:, None], axis=1)
        # sum over images of each one's mean squared input (all have the same size).
        penalty = images.shape[0] * perceptual.mean_square(classifier.preprocess(images))
        loss = -jnp.sum(scores) + l2 * penalty
        if tv > 0:
            loss = loss + tv * images.shape[0] * perceptual.total_variation(images)
        return loss

    return fn


def class_models(
    classifier: classifiers.Classifier,
    classes: Sequence[int],
    *,
    size: int = 224,
    l2: float = 1.0,
    tv: float = 0.0,
    options: ascent.AscentOptions | None = None,
    callback: Callable | None = None,
) -> np.ndarray:
    """One optimized image per class, float32 [len(classes), size, size, 3] in [0, 1].

    Args:
      classifier: the network.
      classes: ImageNet class indices.
      size: image side in pixels.
      l2: weight of the mean squared network input (Simonyan et al.'s lambda).
      tv: weight of total variation (0: none).
      options: steps, learning rate, jitter, parameterisation (`ascent.AscentOptions`;
        default `ascent.AscentOptions()`).
      callback: progress reports (`loop.Report`) after every chunk of steps.
    """
    classes = np.asarray([imagenet.check_class(c) for c in classes], np.int32)
    if classes.size == 0:
        raise ValueError("give at least one class")
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    start = np.repeat(classifier.zero_image(size, size)[None], classes.size, axis=0)
    data = {"variables": classifier.variables, "classes": jnp.asarray(classes)}
    options = options or ascent.AscentOptions()
    return ascent.optimize(
        class_objective(classifier, l2=l2, tv=tv), start, data, options, callback=callback
    )
