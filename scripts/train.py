"""Train an experiment selected by a config file.

  python -m scripts.train --config=configs/marker.py [--workdir=runs/marker]
  python -m scripts.train --config=configs/marker.py:smoke --config.train.num_steps=50

Rerunning the same command resumes from the newest checkpoint in the workdir.

Several hosts: start the same command on every host with
  --distributed                                   (SLURM, Open MPI, Kubernetes: detected)
  --coordinator_address=HOST0:PORT --num_processes=N --process_id=I    (anything else)
and one shared --workdir; each process feeds its own rows, process 0 writes.
"""

import os

import jax
from absl import flags
from ml_collections import config_flags

from neural_synth import experiments, mesh
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
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed",
    False,
    "Join a multi-host run: with --coordinator_address etc. as given, or detected from the "
    "cluster (SLURM, Open MPI, Kubernetes) when they are omitted.",
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "Multi-host: HOST:PORT of process 0 (same on every process)."
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Multi-host: number of processes (same on every process).", lower_bound=1
)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "Multi-host: this process's index, 0 .. num_processes - 1.", lower_bound=0
)
flags.mark_flag_as_required("config")


def run() -> None:
    common.check_config_overrides(_CONFIG)
    if _DISTRIBUTED.value or _COORDINATOR.value:
        mesh.initialize_processes(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    config = _CONFIG.value
    workdir = _WORKDIR.value or os.path.join("runs", config.experiment)
    experiments.train_from_config(config, workdir)
    if jax.process_index() == 0:
        print(f"Done. Results in {workdir}: eval.json, metrics.jsonl, samples/, checkpoints/")


if __name__ == "__main__":
    common.restart_with_malloc_tunables()
    common.run(run)
