"""x4 super-resolution with a perceptual (VGG feature reconstruction) loss (Johnson et al.,
ECCV 2016), or a per-pixel loss for comparison.

  python -m scripts.train --config=configs/superres.py             # default: CPU, minutes
  python -m scripts.train --config=configs/superres.py:pixel       # same, per-pixel loss only
  python -m scripts.train --config=configs/superres.py:smoke       # seconds, for tests
  python -m scripts.train --config=configs/superres.py:paper       # COCO, pretrained VGG16
  python -m scripts.train --config=configs/superres.py --config.model.scale=8   # x8
  python -m scripts.superres --workdir=runs/superres --input=small.png --out=big.png

Low-resolution inputs are made from high-resolution crops by bicubic
downsampling (data.blur_sigma > 0 blurs first, as in the paper). Training crops
come from `data.source`: 'skimage' (scikit-image's photographs without the
held-out eval.images, no download), 'folder:/path' or 'tfds:NAME[:SPLIT]' (a
dataset already prepared in the local tfds data dir). Features come from a
random-weight VGG19 unless --config.loss.vgg_path names weights ported with
scripts.convert_vgg.
"""

import ml_collections

VARIANTS = ("default", "pixel", "smoke", "smoke_pixel", "paper")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = arg or "default"
    if variant not in VARIANTS:
        raise ValueError(f"Unknown superres variant {variant!r}; choose from {VARIANTS}.")
    c = ml_collections.ConfigDict()
    c.experiment = "superres"
    c.seed = 0
    # out_kernel 9 in the paper; 3 is 5x cheaper on a CPU (models/superres.py).
    c.model = dict(
        scale=4, width=32, num_residual=4, upsample="subpixel", residual=True, out_kernel=3
    )
    # Workdir of a trained superres run with the same network to start from (e.g. a
    # pixel-loss run, then fine-tune with the feature loss, as SRGAN starts from SRResNet).
    c.model.init_from = ""
    c.data = dict(source="skimage", image_side=512, max_images=64, blur_sigma=0.0)
    c.loss = dict(
        pixel_weight=0.0,
        pixel_kind="l2",  # 'l2' (the paper's per-pixel loss) or 'l1'
        feature_weight=1.0,
        feature_layers=("relu2_2",),
        feature_layer_weights=(1.0,),
        tv_weight=0.0,
        vgg_path="",  # ported weights (scripts.convert_vgg); '' = random VGG19 features
        vgg_seed=0,
    )
    c.train = dict(
        size=64,  # side of the high-resolution crops (a multiple of model.scale)
        num_steps=600,
        batch_size=6,
        learning_rate=1e-3,
        decay_fraction=0.3,
        log_every_steps=50,
        checkpoint_every_steps=200,
        keep_checkpoints=2,
        eval_every_steps=300,
        summary_every_steps=300,
    )
    # Held-out photos (never training crops with the 'skimage' source).
    c.eval = dict(
        images=("skimage:astronaut", "skimage:coffee", "skimage:grass"),
        image_side=512,
        size=192,  # side of the high-resolution eval crops (a multiple of model.scale)
        crops_per_image=4,
    )
    if variant in ("pixel", "smoke_pixel"):
        c.loss.update(pixel_weight=1.0, feature_weight=0.0)
    if variant in ("smoke", "smoke_pixel"):
        c.model.update(width=8, num_residual=1)
        c.train.update(
            size=32,
            num_steps=150,
            batch_size=8,
            learning_rate=2e-3,
            log_every_steps=50,
            checkpoint_every_steps=150,
            eval_every_steps=150,
            summary_every_steps=150,
        )
        c.eval.update(size=64, crops_per_image=4)
    elif variant == "paper":
        # Johnson et al.: 288 px COCO crops, blur sigma 1 + bicubic, batch 4, 200k
        # iterations, Adam 1e-3, VGG16 relu2_2, TV 1e-6..1e-4; 64 channels, 4 blocks.
        c.model.update(width=64, out_kernel=9)
        c.data.update(source="tfds:coco/2017:train", image_side=320, max_images=20000)
        c.data.update(blur_sigma=1.0)
        c.loss.update(vgg_path="weights/vgg16", tv_weight=1e-5)
        c.train.update(size=288, num_steps=200_000, batch_size=4, decay_fraction=0.0)
        c.train.update(checkpoint_every_steps=5000, eval_every_steps=5000)
        c.train.update(summary_every_steps=5000, log_every_steps=100)
    return c
