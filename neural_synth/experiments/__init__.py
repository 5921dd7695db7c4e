"""Explicit registry of experiments selected by `config.experiment`.

Each entry names a module that defines `Experiment(config)` following the
protocol documented in `neural_synth/train/trainer.py`. Modules are imported
lazily so that one experiment's dependencies never slow another's start-up.
"""

import importlib

import ml_collections

REGISTRY = {
    "marker": "neural_synth.experiments.marker",
}


def get(name: str):
    """The experiment module registered as `name`."""
    if name not in REGISTRY:
        raise ValueError(f"Unknown experiment {name!r}; registered: {', '.join(sorted(REGISTRY))}.")
    return importlib.import_module(REGISTRY[name])


def build(config: ml_collections.ConfigDict):
    """Instantiates the experiment `config.experiment` with its config."""
    return get(config.experiment).Experiment(config)
