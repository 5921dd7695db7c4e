"""DeepWarp gaze redirection (Ganin, Kononenko, Sungatullina & Lempitsky, ECCV 2016).

  python -m scripts.train --config=configs/deepwarp.py            # default: CPU, minutes
  python -m scripts.train --config=configs/deepwarp.py:smoke      # seconds, for tests
  python -m scripts.train --config=configs/deepwarp.py:paper      # wider, longer, GPU-sized
  python -m scripts.train --config=configs/deepwarp.py --config.model.lightness=False
  python -m scripts.gaze --workdir=runs/deepwarp --image eye.png --pitch 15 --out o.png

A warp network learns to redirect the gaze of rendered eyes
(`neural_synth/data/eyes.py`): pairs of one identity at two gazes on a grid
of `data.angle_step` degrees. Evaluation uses held-out identities and gazes
halfway between the grid's (held-out angles), against the input unchanged.
The ablations of the paper's table are config options: `model.lightness`
(lightness correction) and `model.coarse_to_fine` (two scales); the
benchmark `python -m benchmarks.deepwarp` trains each and writes the table.
"""

import ml_collections

VARIANTS = ("default", "smoke", "paper")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = arg or "default"
    if variant not in VARIANTS:
        raise ValueError(f"Unknown deepwarp variant {variant!r}; choose from {VARIANTS}.")
    c = ml_collections.ConfigDict()
    c.experiment = "deepwarp"
    c.seed = 0
    c.data = dict(
        num_identities=2000,  # training eyes 0 .. n-1; held-out eyes come after 10^6
        identity_seed=0,  # which eyes: their parameters come from (identity_seed, i)
        height=41,
        width=51,
        max_yaw=20.0,  # gazes within +-max_yaw, +-max_pitch degrees
        max_pitch=20.0,
        angle_step=5.0,  # training gazes: multiples of this; held out: halfway between
        max_redirect_yaw=10.0,  # largest change of gaze in a pair, per axis
        max_redirect_pitch=15.0,
        jitter=True,  # head-fixed camera jitter (shift, scale, rotation) per pair
        supersample=2,  # renderer samples per pixel along each axis
    )
    c.model = dict(
        width=24,  # fine stage (full resolution): most of the step's time
        depth=3,
        coarse_width=32,  # coarse stage (half resolution)
        coarse_depth=4,
        embed_features=16,
        kernel_size=3,
        coarse_to_fine=True,  # False: the single-scale ablation
        lightness=True,  # False: the warp-only ablation
        num_palette=2,
    )
    c.train = dict(
        num_steps=800,  # 8-10 min on a shared 2-core CPU
        batch_size=32,
        learning_rate=2e-3,
        decay_fraction=0.3,  # cosine decay of the learning rate over the last 30% of steps
        log_every_steps=100,
        checkpoint_every_steps=400,
        keep_checkpoints=2,
        eval_every_steps=800,
        summary_every_steps=800,
    )
    c.eval = dict(
        num_identities=64,  # held-out eyes (and as many training eyes)
        pitch_deltas=(-15.0, -10.0, -5.0, 5.0, 10.0, 15.0),  # vertical redirections
        yaw_deltas=(-10.0, 10.0),  # horizontal redirections
        seed=1,  # source gazes and cameras of the evaluation pairs
        batch_size=256,
    )
    if variant == "smoke":
        c.data.update(num_identities=64)
        c.model.update(width=16, depth=2, coarse_width=16, coarse_depth=2, embed_features=8)
        c.train.update(
            num_steps=60,
            batch_size=16,
            learning_rate=3e-3,
            log_every_steps=20,
            checkpoint_every_steps=30,
            eval_every_steps=60,
            summary_every_steps=60,
        )
        c.eval.update(num_identities=8, pitch_deltas=(-15.0, 15.0), yaw_deltas=(10.0,))
    elif variant == "paper":
        # Wider stages, 5x5 kernels and many more steps; not yet run (no GPU figures).
        c.data.update(num_identities=20000)
        c.model.update(width=64, depth=5, coarse_width=64, coarse_depth=5, kernel_size=5)
        c.train.update(
            num_steps=100_000,
            batch_size=128,
            learning_rate=1e-3,
            checkpoint_every_steps=5000,
            eval_every_steps=10000,
            summary_every_steps=10000,
        )
        c.eval.update(num_identities=256)
    return c
