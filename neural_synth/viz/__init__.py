"""Looking inside trained networks.

- `classifiers`: the networks the methods run on (the bundled ImageNet
  EfficientNet-Lite0, ported VGG16/19 with fc head) and photo preparation.
- `attribution`: gradient saliency, SmoothGrad, guided backpropagation,
  deconvnet, Grad-CAM, guided Grad-CAM (batched, jitted, `batch_size` knob).
- `ascent`, `parameterize`: optimizing images (Adam, jitter, pixel or
  decorrelated Fourier parameterisation); `class_model` (Simonyan et al.),
  `inversion` (Mahendran & Vedaldi) build on them; `dream`: DeepDream with
  octaves, jitter and tiled gradients.
- `receptive_field`: receptive fields by arithmetic and by gradient.
- `features`: per-filter feature-map grids; `heatmap`, `figures`: pictures.
"""
