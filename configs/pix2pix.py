"""pix2pix: U-Net generator + PatchGAN discriminator (Isola et al., CVPR 2017).

  python -m scripts.train --config=configs/pix2pix.py            # default: CPU, edges2x:skimage
  python -m scripts.train --config=configs/pix2pix.py:smoke      # seconds, for tests
  python -m scripts.train --config=configs/pix2pix.py:paper      # facades at 256x256, GPU-sized

Any field can be overridden, e.g. --config.loss.gan_weight=0 (the L1-only
baseline), --config.data.source=paired:/data/facades, --config.model.norm=instance,
--config.data.crop_size="(64, 96)" (non-square: both sides must be multiples of
2^num_downs).
"""

import ml_collections

VARIANTS = ("default", "smoke", "paper")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = arg or "default"
    if variant not in VARIANTS:
        raise ValueError(f"Unknown pix2pix config variant {variant!r}; choose from {VARIANTS}.")
    c = ml_collections.ConfigDict()
    c.experiment = "pix2pix"
    c.seed = 0

    c.data = dict(
        # 'edges2x:skimage' | 'edges2x:folder:/path' | 'edges2x:tfds:NAME' | 'paired:/path' | 'tfds:NAME'
        source="edges2x:skimage",
        data_dir="",  # tfds data dir ('' = tfds' default, $TFDS_DATA_DIR or ~/tensorflow_datasets)
        direction="AtoB",  # 'AtoB' (edges -> photo for edges2x) or 'BtoA'
        load_size=(72, 72),  # (height, width) the pairs are resized to before the random crop
        crop_size=(64, 64),  # (height, width) the networks see in training
        mirror=True,
        max_examples=0,  # 0 = all training pairs
    )
    c.model = dict(
        generator="unet",  # 'unet' | 'encoder_decoder' | 'resnet'
        width=32,
        num_downs=0,  # U-Net levels; 0 = from crop_size (largest k with min side / 2^k >= 1, <= 8)
        norm="batch",  # 'batch' (current batch's statistics, also at test time) | 'instance' | 'none'
        dropout=0.5,  # dropout in the 3 innermost decoder layers, the generator's only noise
        inference_dropout=True,  # keep dropout on in evaluation and inference (as the paper)
        receptive_field=16,  # PatchGAN: 1 (pixel), 16, 70 or 286
        disc_width=32,
    )
    c.loss = dict(l1_weight=100.0, gan="vanilla", gan_weight=1.0)  # gan: 'vanilla' | 'lsgan'
    c.train = dict(
        num_steps=4000,
        batch_size=4,
        learning_rate=2e-4,
        decay_fraction=0.5,  # linear decay to 0 over the last 50% of steps (as the paper's epochs)
        log_every_steps=100,
        checkpoint_every_steps=1000,
        keep_checkpoints=2,
        eval_every_steps=500,
        summary_every_steps=1000,
    )
    c.eval = dict(num_examples=0, batch_size=6)  # 0 = every test pair

    if variant == "smoke":
        c.data.update(load_size=(36, 36), crop_size=(32, 32))
        c.model.update(width=8, disc_width=8, num_downs=3)
        c.train.update(
            num_steps=20,
            batch_size=4,
            log_every_steps=5,
            checkpoint_every_steps=10,
            eval_every_steps=20,
            summary_every_steps=20,
        )
        c.eval.update(num_examples=16, batch_size=8)
    elif variant == "paper":
        # Facades in the pix2pix layout (train/ val/ test/ folders of A|B images):
        # --config.data.source=paired:/path/to/facades. 400 training images x 200
        # epochs at batch 1 = 80k steps, learning rate decayed over the last 100.
        # Cost: 87 GFLOP per step (XLA cost analysis of the train step, batch 1).
        # Expected, NOT measured (no GPU run so far): ~1-2 h on one H100.
        c.data.update(
            source="paired:facades", direction="BtoA", load_size=(286, 286), crop_size=(256, 256)
        )
        c.model.update(width=64, disc_width=64, receptive_field=70)
        c.train.update(
            num_steps=80000,
            batch_size=1,
            log_every_steps=400,
            checkpoint_every_steps=4000,
            eval_every_steps=8000,
            summary_every_steps=8000,
        )
        c.eval.update(batch_size=1)
    return c
