"""Image optimization: Gatys texture synthesis and style transfer.

Modules: `gatys` (the entry point `synthesize`: one scale after another),
`options` (`GatysOptions` and their checks), `problem` (one scale's targets and
weights), `objective` (the loss), `loop` (compiled chunked L-BFGS / Adam loops),
`tiling` (exact loss and gradient in tiles for large outputs), `multiscale`
(coarse-to-fine sizes), `color_transfer` (luminance-only transfer, colour
matching), `palette` (palette reduction), `masks` (regions for spatial control).
Statistics and losses come from `neural_synth.losses`.
"""
