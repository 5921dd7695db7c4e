"""Every config file and variant loads; overrides and typos behave as users expect."""

import glob
import os

import pytest

from neural_synth import experiments
from tests import helpers

CONFIGS = sorted(
    os.path.basename(p)[:-3]
    for p in glob.glob(os.path.join(helpers.ROOT, "configs", "*.py"))
    if not os.path.basename(p).startswith("_")
)


def _variants(name):
    module_text = open(os.path.join(helpers.ROOT, "configs", f"{name}.py")).read()
    return ["default", "smoke"] + (["paper"] if '"paper"' in module_text else [])


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_and_variant_loads_and_names_a_registered_experiment(name):
    for variant in _variants(name):
        config = helpers.load_config(name, None if variant == "default" else variant)
        assert config.experiment in experiments.REGISTRY
        assert config.train.num_steps > 0 and config.train.batch_size > 0
        for key in ("log_every_steps", "checkpoint_every_steps", "eval_every_steps"):
            assert isinstance(config.train[key], int)


def test_unknown_variant_is_an_error():
    with pytest.raises(ValueError, match="Unknown marker config variant"):
        helpers.load_config("marker", "nope")


def test_unknown_experiment_is_an_error():
    with pytest.raises(ValueError, match="registered: "):
        experiments.get("not_an_experiment")


def test_config_typo_on_command_line_fails_without_training(tmp_path):
    result = helpers.run_module(
        "scripts.train",
        "--config=configs/marker.py:smoke",
        f"--workdir={tmp_path}",
        "--config.train.num_stepz=5",
        timeout=120,
    )
    assert result.returncode != 0
    assert "num_stepz" in result.stderr
    assert not (tmp_path / "checkpoints").exists()
