"""Texture-styled learnable markers: recognition loss + Gram loss toward a texture.

  python -m scripts.train --config=configs/marker_texture.py
  python -m scripts.train --config=configs/marker_texture.py:smoke
  python -m scripts.train --config=configs/marker_texture.py \
      --config.texture.image=my_texture.jpg --config.texture.vgg_path=weights/vgg19

The markers' VGG Gram statistics are pulled toward those of the texture sample
(default: scikit-image's brick), weighted against bit recognition. Without
`texture.vgg_path` the features come from a random-weight VGG19.
"""

import ml_collections

from configs import marker

VARIANTS = ("default", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = arg or "default"
    if variant not in VARIANTS:
        raise ValueError(f"Unknown marker_texture variant {variant!r}; choose from {VARIANTS}.")
    c = marker.get_config(variant)
    c.texture.weight = 1.0
    if variant == "smoke":
        c.texture.update(
            image_side=64, num_markers=4, layers=("relu1_1", "relu2_1"), layer_weights=(1.0, 1.0)
        )
    return c
