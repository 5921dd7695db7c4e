"""Up-convolutional generator (Dosovitskiy, Springenberg & Brox, "Learning to Generate Chairs", CVPR 2015).

  python -m scripts.train --config=configs/upconv.py            # default: CPU, minutes
  python -m scripts.train --config=configs/upconv.py:smoke      # seconds, for tests
  python -m scripts.train --config=configs/upconv.py:paper      # 128 px, 809 objects, GPU-sized
  python -m scripts.upconv --workdir=runs/upconv rotate --id 3 --out r.gif

A generator learns to draw procedural objects (chairs, tables, stools, lamps,
sofas; `neural_synth/data/shapes3d.py`) from their identity and a viewpoint,
as an RGB image and a mask. It trains on `data.num_azimuths` evenly spaced
azimuths at each of `data.elevations` and is evaluated halfway between them.
"""

import ml_collections

VARIANTS = ("default", "smoke", "paper")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = arg or "default"
    if variant not in VARIANTS:
        raise ValueError(f"Unknown upconv variant {variant!r}; choose from {VARIANTS}.")
    c = ml_collections.ConfigDict()
    c.experiment = "upconv"
    c.seed = 0
    c.data = dict(
        num_identities=300,  # objects (identity i is the same object for any count)
        shape_seed=0,  # which objects: their parameters come from (shape_seed, i)
        image_size=64,
        num_azimuths=12,  # training azimuths, 30 degrees apart; held out: halfway between
        elevations=(15.0, 30.0),
    )
    c.model = dict(
        base_size=4,  # the fully connected layers end in a base_size^2 x width map
        width=128,  # halved per 2x block down to min_width (256: 2x the CPU time per step)
        min_width=32,
        hidden=512,
        kernel_size=5,  # of the convolution after each unpooling (the paper's 5x5)
        upsample="unpool",  # 'unpool' (zeros, the paper) | 'resize' (nearest neighbour)
    )
    c.loss = dict(mask_weight=1.0)  # of the mask's squared error against the RGB's
    c.train = dict(
        num_steps=2400,
        batch_size=32,
        learning_rate=2e-3,
        warmup_steps=50,  # linear warm-up from learning_rate / warmup_steps
        decay_fraction=0.3,  # cosine decay of the learning rate over the last 30% of steps
        log_every_steps=100,
        checkpoint_every_steps=600,
        keep_checkpoints=2,
        eval_every_steps=1200,
        summary_every_steps=1200,
    )
    c.eval = dict(num_identities=60, batch_size=128)
    if variant == "smoke":
        c.data.update(num_identities=12, image_size=16, num_azimuths=6, elevations=(20.0,))
        c.model.update(width=64, min_width=16, hidden=64, kernel_size=3)
        c.train.update(
            num_steps=60,
            batch_size=16,
            learning_rate=3e-3,
            warmup_steps=10,
            log_every_steps=20,
            checkpoint_every_steps=30,
            eval_every_steps=60,
            summary_every_steps=60,
        )
        c.eval.update(num_identities=12, batch_size=128)
    elif variant == "paper":
        # The paper: 809 chairs, 31 azimuths x 2 elevations, 128 px, 5x5 up-convolutions.
        # Not yet run: no GPU figures recorded (RESULTS.md).
        c.data.update(num_identities=809, image_size=128, num_azimuths=31, elevations=(20.0, 30.0))
        c.model.update(width=512, min_width=64, hidden=1024)
        c.train.update(
            num_steps=100_000,
            batch_size=64,
            learning_rate=5e-4,
            checkpoint_every_steps=5000,
            eval_every_steps=10000,
            summary_every_steps=10000,
        )
        c.eval.update(num_identities=200, batch_size=256)
    return c
