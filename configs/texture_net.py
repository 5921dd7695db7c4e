"""Texture networks (Ulyanov et al., ICML 2016; Improved Texture Networks, CVPR 2017).

  python -m scripts.train --config=configs/texture_net.py           # default: CPU, minutes
  python -m scripts.train --config=configs/texture_net.py:smoke     # seconds, for tests
  python -m scripts.train --config=configs/texture_net.py:paper     # pretrained VGG, 256 px
  python -m scripts.texture_net --workdir=runs/texture_net --size=2048x2048 --out=t.png

A generator learns to produce new samples of one texture (default: scikit-image's
brick) from noise, by matching Gram statistics of VGG19 features (random weights
unless --config.texture.vgg_path names weights ported with scripts.convert_vgg).
--config.loss.diversity_weight > 0 adds the diversity term of Improved Texture
Networks; --config.model.padding=circular makes textures tileable.
"""

import ml_collections

VARIANTS = ("default", "smoke", "paper")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = arg or "default"
    if variant not in VARIANTS:
        raise ValueError(f"Unknown texture_net variant {variant!r}; choose from {VARIANTS}.")
    c = ml_collections.ConfigDict()
    c.experiment = "texture_net"
    c.seed = 0
    c.texture = dict(
        image="skimage:brick",  # a path or skimage:NAME
        image_side=256,  # the sample is loaded at this longest side
        vgg_path="",  # ported weights (scripts.convert_vgg); '' = random VGG19 features
        vgg_seed=0,
        layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1"),
        layer_weights=(1.0, 1.0, 1.0, 1.0),
    )
    c.model = dict(num_scales=5, width=8, padding="reflect")  # padding: 'reflect' | 'circular'
    c.loss = dict(diversity_weight=0.0, diversity_layer="relu4_1")
    c.train = dict(
        size=128,  # side of the training samples (a multiple of 2^(num_scales-1))
        num_steps=600,
        batch_size=4,
        learning_rate=1e-2,
        decay_fraction=0.5,
        log_every_steps=50,
        checkpoint_every_steps=200,
        keep_checkpoints=2,
        eval_every_steps=300,
        summary_every_steps=300,
    )
    c.eval = dict(num_samples=4)
    if variant == "smoke":
        c.texture.update(image_side=64, layers=("relu1_1", "relu2_1"), layer_weights=(1.0, 1.0))
        c.model.update(num_scales=3, width=4)
        c.loss.update(diversity_layer="relu2_1")
        c.train.update(
            size=32,
            num_steps=20,
            batch_size=4,
            log_every_steps=5,
            checkpoint_every_steps=10,
            eval_every_steps=20,
            summary_every_steps=20,
        )
        c.eval.update(num_samples=2)
    elif variant == "paper":
        # Ulyanov et al.: 256 px samples, batch 16, ~2000 iterations, pretrained VGG19.
        c.texture.update(
            vgg_path="weights/vgg19",
            layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
            layer_weights=(1.0,) * 5,
        )
        c.model.update(num_scales=6, width=8)
        c.loss.update(diversity_weight=0.1)
        c.train.update(size=256, num_steps=3000, batch_size=16, learning_rate=1e-1)
    return c
