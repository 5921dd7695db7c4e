"""Shared helpers: a shallow random-weight VGG19 (only the layers up to relu2_1).

Building only conv1_1, conv1_2 and conv2_1 with NumPy keeps the tests fast:
`vgg.VGG.apply` stops at the deepest requested layer, so the rest is never needed.
"""

import functools

import jax.numpy as jnp
import numpy as np

from neural_synth import io
from neural_synth.models import vgg
from neural_synth.optimize import options as options_lib

SHALLOW = ("conv1_1", "conv1_2", "conv2_1")


def shallow_params(seed: int = 0) -> dict:
    """He-normal kernels and small random biases for the first three conv layers."""
    rng = np.random.default_rng(seed)
    shapes = vgg.param_shapes("vgg19")
    params = {}
    for name in SHALLOW:
        kernel = shapes[name]["kernel"]
        scale = np.sqrt(2.0 / np.prod(kernel[:3]))
        params[name] = {
            "kernel": jnp.asarray(rng.standard_normal(kernel) * scale, jnp.float32),
            "bias": jnp.asarray(0.05 * rng.standard_normal(shapes[name]["bias"]), jnp.float32),
        }
    return params


@functools.cache
def shallow_vgg() -> tuple[vgg.VGG, dict]:
    return vgg.VGG(arch="vgg19", pooling="avg"), shallow_params()


@functools.cache
def images() -> dict[str, np.ndarray]:
    """Small sample images: content (astronaut), two styles (chelsea, brick) at 32x32."""
    return {
        name: io.load_image_or_sample(f"skimage:{name}", size=(32, 32))
        for name in ("astronaut", "chelsea", "brick")
    }


def shallow_options(**changes) -> options_lib.GatysOptions:
    base = dict(
        style_layers=("relu1_1", "relu2_1"),
        content_layers=("relu2_1",),
        chunk_size=4,
        num_steps=4,
    )
    return options_lib.GatysOptions(**{**base, **changes})
