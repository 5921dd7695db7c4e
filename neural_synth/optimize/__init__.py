"""Image optimization: Gatys texture synthesis and style transfer.

Modules: `gatys` (the entry point `synthesize`, options, loss), `loop` (compiled
chunked L-BFGS / Adam loops), `tiling` (exact loss and gradient in tiles for
large outputs), `multiscale` (coarse-to-fine sizes), `color_transfer`
(luminance-only transfer, colour matching), `palette` (palette reduction),
`masks` (regions for spatial control), `statistics` (Gram matrices with a fast
gradient), `gatys_cli` (flags shared by scripts/stylize.py and scripts/texture.py).
"""
