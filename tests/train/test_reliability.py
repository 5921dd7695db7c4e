"""Nothing is lost to faults: finite checkpoints, one run per workdir, clean failed starts."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from neural_synth import experiments
from neural_synth.experiments import marker
from neural_synth.train import checkpoint, prng, trainer, workdir
from tests import helpers


def smoke_config(**train):
    config = helpers.load_config("marker", "smoke")
    config.train.update(eval_every_steps=0, summary_every_steps=0)
    config.train.update(train)
    return config


def test_infinite_learning_rate_never_checkpoints_nan_parameters(tmp_path):
    config = smoke_config(learning_rate=float("inf"), log_every_steps=1, checkpoint_every_steps=1)
    with pytest.raises(trainer.NonFiniteError, match=r"step 1.*no checkpoint saved yet"):
        experiments.train_from_config(config, str(tmp_path))
    for step in checkpoint.saved_steps(str(tmp_path)):
        exp = marker.MarkerExperiment(config)
        ckpt = checkpoint.Checkpointer(str(tmp_path))
        state = ckpt.restore(exp.init_state(prng.key(0)), step)
        ckpt.close()
        assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state.params)))


def test_second_run_on_a_live_workdir_is_refused(tmp_path):
    with workdir.hold(str(tmp_path)):
        with pytest.raises(workdir.WorkdirBusyError, match="in use by another training run"):
            experiments.train_from_config(smoke_config(num_steps=2), str(tmp_path))
    assert not checkpoint.saved_steps(str(tmp_path))  # The refused run wrote nothing.


def test_a_killed_holder_does_not_leave_the_lock_stuck(tmp_path):
    code = (
        "import sys, time; from neural_synth.train import workdir\n"
        "with workdir.hold(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=helpers.ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(workdir.WorkdirBusyError, match=f"pid {proc.pid}"):
        with workdir.hold(str(tmp_path)):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.1)
    with workdir.hold(str(tmp_path)) as created:  # Free again.
        assert not created


@pytest.mark.parametrize(
    "field, value, message",
    [("batch_size", 0, "batch_size must be >= 1"), ("log_every_steps", -1, "must be >= 0")],
)
def test_impossible_schedules_are_clear_errors(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):
        experiments.train_from_config(smoke_config(**{field: value}), str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


def test_zero_cadences_mean_only_at_the_end(tmp_path):
    config = smoke_config(num_steps=4, log_every_steps=0, checkpoint_every_steps=0)
    experiments.train_from_config(config, str(tmp_path))
    assert checkpoint.saved_steps(str(tmp_path)) == [4]
    rows = [line for line in open(tmp_path / "metrics.jsonl") if "loss/total" in line]
    assert len(rows) == 1 and rows[0].startswith('{"step": 4')


class _BrokenData(marker.MarkerExperiment):
    def train_batches(self, **kwargs):
        raise OSError("the data folder vanished")


def test_a_failed_start_leaves_no_workdir_and_keeps_an_existing_one(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "build", lambda config: _BrokenData(config))
    with pytest.raises(OSError, match="vanished"):
        experiments.train_from_config(smoke_config(), str(tmp_path / "new"))
    assert not os.path.exists(tmp_path / "new")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "notes.txt").write_text("mine")
    with pytest.raises(OSError, match="vanished"):
        experiments.train_from_config(smoke_config(), str(tmp_path / "old"))
    assert (tmp_path / "old" / "notes.txt").read_text() == "mine"
