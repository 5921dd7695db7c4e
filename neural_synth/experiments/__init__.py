"""Explicit registry of experiments selected by `config.experiment`.

Each entry names a module that defines `Experiment(config)` following the
protocol documented in `neural_synth/train/trainer.py`. Modules are imported
lazily so that one experiment's dependencies never slow another's start-up.
"""

import importlib

import jax
import ml_collections

REGISTRY = {
    "marker": "neural_synth.experiments.marker",
    "pix2pix": "neural_synth.experiments.pix2pix",
    "texture_net": "neural_synth.experiments.texture_net",
    "stylize_net": "neural_synth.experiments.stylize_net",
}


def get(name: str):
    """The experiment module registered as `name`."""
    if name not in REGISTRY:
        raise ValueError(f"Unknown experiment {name!r}; registered: {', '.join(sorted(REGISTRY))}.")
    return importlib.import_module(REGISTRY[name])


def build(config: ml_collections.ConfigDict):
    """Instantiates the experiment `config.experiment` with its config."""
    return get(config.experiment).Experiment(config)


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
