"""Pure loss and statistics functions: `gram` (style statistics), `perceptual` (losses)."""

from neural_synth.losses import gram, perceptual

__all__ = ["gram", "perceptual"]
