"""Generate textures of any size with a trained texture network.

  python -m scripts.texture_net --workdir=runs/texture_net --size=2048x2048 --out=t.png
  python -m scripts.texture_net --workdir=W --size=512x768 --num=4 --seed=3 --out=t.png
  python -m scripts.texture_net --workdir=W --size=10000x10000 --tile=1024 --out=huge.png

Sizes must be multiples of 2^(num_scales-1) (16 with the default config). Large
sizes are generated in overlapping tiles (automatically above --auto_tile_pixels,
or with --tile) in bounded memory and without seams. With --num > 1 the textures
are written as one grid.
"""

from absl import flags

from neural_synth import experiments, io
from scripts import common

_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory of a trained texture_net run.")
_SIZE = flags.DEFINE_string("size", "512x512", f"Output size {common.SIZE_HELP}.")
_OUT = flags.DEFINE_string("out", None, "Output image path (PNG or JPEG).")
_NUM = flags.DEFINE_integer("num", 1, "Number of textures (written as a grid).")
_SEED = flags.DEFINE_integer("seed", 0, "Noise seed; texture i uses seed + i.")
_TILE = flags.DEFINE_integer("tile", 0, "Tile size for tiled generation; 0 = automatic.")
_AUTO = flags.DEFINE_integer(
    "auto_tile_pixels", 2048 * 2048, "Without --tile, sizes above this many pixels are tiled."
)
flags.mark_flags_as_required(["workdir", "out"])


def generate() -> None:
    height, width = common.parse_size(_SIZE.value)
    io.check_save_path(_OUT.value)
    exp, params = experiments.load_trained(_WORKDIR.value, "texture_net")
    tile = common.auto_tile(height, width, _TILE.value, _AUTO.value)
    images = exp.generate(
        params, height=height, width=width, num=_NUM.value, seed=_SEED.value, tile=tile,
        progress=tile > 0,
    )  # fmt: skip
    if len(images) == 1:
        io.save_image(_OUT.value, images[0])
    else:
        io.save_grid(_OUT.value, images)
    how = f"in {tile}px tiles" if tile else "untiled"
    print(f"Wrote {_OUT.value}: {len(images)} texture(s) of {width}x{height} ({how}).")


if __name__ == "__main__":
    common.run(generate)
