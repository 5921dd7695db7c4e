"""Explicit registry of experiments selected by `config.experiment`.

Each entry names a module and its experiment class, which follows the protocol
documented in `neural_synth/train/trainer.py`. Modules are imported lazily so
that one experiment's dependencies never slow another's start-up. This package
sits above `neural_synth/train/`: it looks experiments up and hands them to the
trainer, which never imports it.
"""

import importlib

import jax
import ml_collections

REGISTRY = {  # name -> (module, experiment class)
    "marker": ("neural_synth.experiments.marker", "MarkerExperiment"),
    "pix2pix": ("neural_synth.experiments.pix2pix", "Pix2PixExperiment"),
    "texture_net": ("neural_synth.experiments.texture_net", "TextureNetExperiment"),
    "stylize_net": ("neural_synth.experiments.stylize_net", "StylizeNetExperiment"),
    "upconv": ("neural_synth.experiments.upconv", "UpconvExperiment"),
    "superres": ("neural_synth.experiments.superres", "SuperResExperiment"),
    "deepwarp": ("neural_synth.experiments.deepwarp", "DeepWarpExperiment"),
}


def get(name: str) -> type:
    """The experiment class registered as `name`."""
    if name not in REGISTRY:
        raise ValueError(f"Unknown experiment {name!r}; registered: {', '.join(sorted(REGISTRY))}.")
    module, cls = REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


def build(config: ml_collections.ConfigDict):
    """Instantiates the experiment `config.experiment` with its config."""
    return get(config.experiment)(config)


def train_from_config(config: ml_collections.ConfigDict, workdir: str, *, devices=None):
    """Builds `config.experiment` and trains it in `workdir` (see `train.trainer.train`)."""
    from neural_synth.train import trainer  # Lazy: the registry stays light.

    return trainer.train(build(config), config, workdir, devices=devices)


def load_trained(workdir: str, name: str):
    """(experiment, params) of the newest checkpoint of a `name` run in `workdir`.

    Inference commands use this: the experiment is rebuilt from the run's saved
    config, and its state restored through the trainer's checkpoints.
    """
    from neural_synth.train import checkpoint, prng  # Lazy: the registry stays light.

    config = checkpoint.load_run_config(workdir)
    if config.experiment != name:
        raise ValueError(f"{workdir} holds a {config.experiment!r} run, not a {name!r} run.")
    exp = build(config)
    state, _ = checkpoint.restore_latest(workdir, jax.jit(exp.init_state)(prng.key(0)))
    return exp, jax.device_get(state.params)
