"""Pretrained VGG weights: porting from PyTorch / safetensors / Keras files, and loading.

Port once (no network, no source framework needed):

    python -m scripts.convert_vgg --src vgg19-dcbb9e9d.pth --arch vgg19 --out weights/vgg19

then load anywhere:

    module, params = weights.load_vgg("weights/vgg19")
    feats = module.apply({"params": params}, images, layers=("relu4_2",))

Modules: `pth` (torch-free .pth reader), `formats` (format detection, safetensors
and Keras .h5 readers), `convert` (layout mapping and checks), `store` (the
params.npz + metadata.json checkpoint), `rescale` (mean-activation rescaling).
"""

from neural_synth.weights.convert import convert_vgg, detect_arch, port
from neural_synth.weights.errors import WeightFormatError
from neural_synth.weights.formats import read_source
from neural_synth.weights.rescale import mean_activations, rescale_mean_activation
from neural_synth.weights.store import frozen_vgg, load_params, load_vgg, save

__all__ = [
    "WeightFormatError",
    "convert_vgg",
    "detect_arch",
    "frozen_vgg",
    "load_params",
    "load_vgg",
    "mean_activations",
    "port",
    "read_source",
    "rescale_mean_activation",
    "save",
]
