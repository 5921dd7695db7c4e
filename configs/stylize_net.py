"""Stylization networks (Johnson et al., ECCV 2016, with instance norm; several styles
in one network with conditional instance norm, Dumoulin et al., ICLR 2017).

  python -m scripts.train --config=configs/stylize_net.py           # default: CPU, minutes
  python -m scripts.train --config=configs/stylize_net.py:smoke     # seconds, for tests
  python -m scripts.train --config=configs/stylize_net.py:multi     # two styles, one network
  python -m scripts.train --config=configs/stylize_net.py:paper     # COCO, pretrained VGG16
  python -m scripts.stylize_net --workdir=runs/stylize_net --input=in.jpg --out=out.png

Content photos come from `data.source`: 'skimage' (random crops of scikit-image's
photographs, no download), 'folder:/path' or 'tfds:NAME[:SPLIT]' (a dataset
already prepared in the local tfds data dir). Features come from a random-weight
VGG19 unless --config.style.vgg_path names weights ported with scripts.convert_vgg.
"""

import ml_collections

VARIANTS = ("default", "smoke", "multi", "paper")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = arg or "default"
    if variant not in VARIANTS:
        raise ValueError(f"Unknown stylize_net variant {variant!r}; choose from {VARIANTS}.")
    c = ml_collections.ConfigDict()
    c.experiment = "stylize_net"
    c.seed = 0
    c.style = dict(
        images=("skimage:immunohistochemistry",),  # paths or skimage:NAME; >1 = conditional IN
        image_side=256,
        vgg_path="",  # ported weights (scripts.convert_vgg); '' = random VGG19 features
        vgg_seed=0,
        layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1"),
        layer_weights=(1.0, 1.0, 1.0, 1.0),
        # relu2_2: random-weight relu4_2 keeps too little layout (see scripts.stylize).
        content_layers=("relu2_2",),
        content_layer_weights=(1.0,),
    )
    c.data = dict(source="skimage", image_side=320, max_images=64)  # longest side of loaded photos
    c.model = dict(width=16, num_residual=5)
    c.loss = dict(content_weight=1.0, style_weight=2.0, tv_weight=0.0)
    c.train = dict(
        size=128,  # side of the content crops (a multiple of 4)
        num_steps=400,
        batch_size=4,
        learning_rate=2e-3,
        decay_fraction=0.3,
        log_every_steps=50,
        checkpoint_every_steps=200,
        keep_checkpoints=2,
        eval_every_steps=200,
        summary_every_steps=200,
    )
    c.eval = dict(num_images=8)
    if variant == "smoke":
        c.style.update(image_side=64, layers=("relu1_1", "relu2_1"), layer_weights=(1.0, 1.0))
        c.style.update(content_layers=("relu2_1",))
        c.data.update(image_side=96, max_images=4)
        c.model.update(width=4, num_residual=1)
        c.train.update(
            size=32,
            num_steps=20,
            batch_size=4,
            learning_rate=1e-2,
            log_every_steps=5,
            checkpoint_every_steps=10,
            eval_every_steps=20,
            summary_every_steps=20,
        )
        c.eval.update(num_images=4)
    elif variant == "multi":
        c.style.update(images=("skimage:immunohistochemistry", "skimage:hubble_deep_field"))
        c.train.update(num_steps=800)
    elif variant == "paper":
        # Johnson et al.: COCO 256 px crops, batch 4, 40k iterations, VGG16 losses.
        c.style.update(
            images=("style.jpg",),
            image_side=512,
            vgg_path="weights/vgg16",
            layers=("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
            content_layers=("relu3_3",),
        )
        c.data.update(source="tfds:coco/2017:train", image_side=320, max_images=20000)
        c.model.update(width=32, num_residual=5)
        c.loss.update(style_weight=5.0, tv_weight=1e-6)
        c.train.update(size=256, num_steps=40000, checkpoint_every_steps=2000)
    return c
