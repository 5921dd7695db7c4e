"""Train an experiment selected by a config file.

  python -m scripts.train --config=configs/marker.py [--workdir=runs/marker]
  python -m scripts.train --config=configs/marker.py:smoke --config.train.num_steps=50

Rerunning the same command resumes from the newest checkpoint in the workdir.
"""

import os

from absl import app, flags
from ml_collections import config_flags

from neural_synth import experiments
from scripts import common

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Experiment config file, e.g. configs/marker.py[:variant]; fields can be "
    "overridden with --config.<field>=<value>.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "Where checkpoints, metrics.jsonl, eval.json, config.json and sample "
    "grids go (default: runs/<experiment>). An existing run there is resumed.",
)
flags.mark_flag_as_required("config")


def run() -> None:
    config = _CONFIG.value
    workdir = _WORKDIR.value or os.path.join("runs", config.experiment)
    experiments.train_from_config(config, workdir)
    print(f"Done. Results in {workdir}: eval.json, metrics.jsonl, samples/, checkpoints/")


if __name__ == "__main__":
    app.run(common.main(run))
