"""The one statistics and loss layer: pure functions, arrays in, arrays out.

Modules: `gram` (Gram / masked Gram / mean / mean+std statistics, with the fast
Gram gradient), `style` (style targets and the style loss: per-layer
`layer_weights`, per-style `blend_weights`, regions), `perceptual` (mse,
content, total variation, diversity, target normalization), `adversarial` (GAN
losses), `bits` (bit loss and accuracies of markers), `metrics` (PSNR, SSIM).
"""

from neural_synth.losses import adversarial, bits, gram, metrics, perceptual, style

__all__ = ["adversarial", "bits", "gram", "metrics", "perceptual", "style"]
