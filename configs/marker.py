"""Learnable visual markers (Grinchuk, Lebedev & Lempitsky, NIPS 2016).

  python -m scripts.train --config=configs/marker.py            # default: 1600 steps, 5.3-12.7 min on 2 CPU cores (RESULTS.md)
  python -m scripts.train --config=configs/marker.py:full       # 2.5x the steps (~14 min, estimated)
  python -m scripts.train --config=configs/marker.py:smoke      # seconds, for tests
  python -m scripts.train --config=configs/marker.py:paper      # larger markers, GPU-sized

Every variant but smoke trains 64 raw bits carrying a 4-byte message
(marker.code='bch64') and a localizer, so `scripts.marker decode` reads
whole photos.

Any field can be overridden: --config.marker.num_bits=48 --config.train.num_steps=500.
"""

import ml_collections

VARIANTS = ("default", "full", "smoke", "paper")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = arg or "default"
    if variant not in VARIANTS:
        raise ValueError(f"Unknown marker config variant {variant!r}; choose from {VARIANTS}.")
    c = ml_collections.ConfigDict()
    c.experiment = "marker"
    c.seed = 0

    c.marker = dict(
        num_bits=64,
        marker_size=32,
        synthesizer="linear",  # learns 64 bits far faster than "upconv" (RESULTS.md)
        synth_width=64,
        recog_width=16,
        recog_norm=True,
        code="bch64",  # 'bch64': a 4-byte message in 64 raw bits (BCH + CRC); 'none': raw bits
    )
    c.localizer = localizer_defaults()
    c.reader = dict(
        passes=2,  # localization passes: the whole photo, then crops around the marker
        crop_fill=0.6,  # share of a fine pass's crop that the marker spans
        rect_fill=0.8,  # share of the recognizer's frame the rectified marker spans
        align_rounds=2,  # rounds of the jittered-outline search for the recognizer's best read
        align_shift=0.05,  # its first round's shifts, as a share of the marker's side
        align_scale=0.07,  # and scales, 1 +- this
        chase_bits=0,  # soft decoding: flip patterns of this many least confident bits
        max_corrections=3,  # accept codewords this close (code corrects 4; marker_reader.MAX_CORRECTIONS)
    )
    c.render = render_defaults()
    c.texture = texture_defaults()
    c.train = dict(
        num_steps=1600,  # reads 98.3-98.9% of 1024 moderate photos (RESULTS.md); 5.3-12.7 min on 2 cores
        batch_size=32,
        learning_rate=1e-3,
        decay_fraction=0.3,  # cosine decay of the learning rate over the last 30% of steps
        log_every_steps=100,
        checkpoint_every_steps=500,
        keep_checkpoints=2,
        eval_every_steps=1000,
        summary_every_steps=1000,
    )
    c.eval = dict(
        num_strings=1024,
        batch_size=256,
        strengths=dict(none=0.0, training=1.0, stronger=1.5),
        num_scenes=512,  # held-out localizer scenes (corner error, detection)
    )

    if variant == "full":
        c.train.update(num_steps=4000)
        c.render.update(ramp_steps=2000)
    elif variant == "smoke":
        c.marker.update(
            num_bits=8,
            marker_size=16,
            synthesizer="upconv",  # at 8 bits and 300 steps it localizes better than linear
            synth_width=32,
            recog_width=8,
            code="none",
        )
        c.localizer.update(size=32, width=4, batch_size=8)
        c.render.update(out_size=24, background_side=96, ramp_steps=10)
        c.train.update(
            num_steps=20,
            batch_size=8,
            log_every_steps=5,
            checkpoint_every_steps=10,
            eval_every_steps=20,
            summary_every_steps=20,
        )
        c.eval.update(num_strings=32, batch_size=32, num_scenes=32)
    elif variant == "paper":
        # 64 bits on 64x64 markers seen in 96x96 crops, the localizer on 128x128
        # scenes. NOT yet measured (no GPU run so far): record the real time and
        # accuracy (benchmarks.marker_photos) in RESULTS.md.
        c.marker.update(marker_size=64, synth_width=128, recog_width=32)
        c.localizer.update(size=128, width=24, batch_size=64)
        c.render.update(out_size=96, background_side=384, ramp_steps=15000)
        c.train.update(
            num_steps=30000,
            batch_size=128,
            checkpoint_every_steps=2000,
            eval_every_steps=5000,
            summary_every_steps=5000,
        )
    return c


def render_defaults() -> ml_collections.ConfigDict:
    """Rendering-network options (neural_synth.ops.render.RenderConfig) plus data/ramp."""
    return ml_collections.ConfigDict(
        dict(
            out_size=48,  # side of the rendered photo the recognizer sees
            backgrounds="skimage",  # 'skimage' | 'folder:/path' | 'tfds:NAME[:SPLIT]'
            background_side=192,  # background images are loaded at this longest side
            procedural_fraction=0.25,  # share of procedural (noise/stripes/blobs) backgrounds
            ramp_steps=800,  # distortion strength ramps 0 -> 1 over these steps
            easy_fraction=0.25,  # share of each batch rendered at U(0, 1) x the ramp strength
            # Distortions at strength 1 (see neural_synth.ops.render.RenderConfig).
            placement=True,
            marker_scale=(0.7, 0.95),
            warp=True,
            max_rotation=0.2,
            max_perspective=0.1,
            color=True,
            max_brightness=0.1,
            max_contrast=0.2,
            max_saturation=0.2,
            max_hue=0.1,
            max_gamma=0.2,
            gaussian_blur=True,
            max_blur_sigma=0.6,
            motion_blur=True,
            max_motion_length=1.5,
            motion_taps=5,
            resample=True,
            min_resample_scale=0.75,
            noise=True,
            max_noise_std=0.02,
            jpeg=True,
            min_jpeg_quality=50.0,
            jpeg_rounding="cubic",
        )
    )


def localizer_defaults() -> ml_collections.ConfigDict:
    """The localizer network and the scenes it trains on (rendered with `render`'s distortions)."""
    return ml_collections.ConfigDict(
        dict(
            enabled=True,
            size=64,  # side of the square scenes (and of each localization pass's frame)
            width=12,  # channels of the first level (x2, x4 deeper)
            batch_size=16,  # scenes per step (the first markers of the batch)
            weight=1.0,  # of the localization loss against the bit loss
            heatmap_weight=0.05,  # cross-entropy toward Gaussian corner maps
            heatmap_sigma=1.0,  # their width in heat-map cells
            presence_weight=0.1,
            absent_fraction=0.15,  # scenes without a marker (teaches "no marker found")
            synth_gradient=False,  # True: localization also shapes the markers (hurt bits)
            # Scene geometry at strength 1: bounding box 10-100% of the side,
            # rotation up to 0.8 rad (46 degrees), corner jitter 15% of the half-side.
            marker_scale=(0.1, 1.0),
            max_rotation=0.8,
            max_perspective=0.15,
        )
    )


def texture_defaults() -> ml_collections.ConfigDict:
    """Gram loss toward a texture sample; off (weight 0) in the plain marker config."""
    return ml_collections.ConfigDict(
        dict(
            weight=0.0,
            image="skimage:brick",  # a path or skimage:NAME
            image_side=128,
            vgg_path="",  # ported weights (scripts.convert_vgg); '' = random features
            vgg_seed=0,
            layers=("relu1_1", "relu2_1", "relu3_1"),
            layer_weights=(1.0, 1.0, 1.0),
            num_markers=16,  # markers per step that enter the (costly) VGG loss
        )
    )
