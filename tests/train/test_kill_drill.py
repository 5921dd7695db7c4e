"""Kill-anywhere resume (the short form of `python -m benchmarks.kill_drill`)."""

import os
import shutil

from benchmarks import kill_drill

NUM_STEPS = 30


def test_random_kills_resume_to_the_same_run(tmp_path):
    history, checks = kill_drill.drill(
        str(tmp_path),
        kills=2,
        num_steps=NUM_STEPS,
        delays=(0.0, 2.0),
        seed=1,
        cache_dir=os.environ["NEURAL_SYNTH_CACHE_DIR"],  # The suite's: a rerun skips compiling.
    )
    assert len(history) == 2
    assert all(checks.values()), checks

    # The checks can fail: a replayed metric row, another eval.json.
    tampered = str(tmp_path / "tampered")
    shutil.copytree(str(tmp_path / "drilled"), tampered)
    with open(os.path.join(tampered, "metrics.jsonl"), "a") as f:
        f.write(open(os.path.join(tampered, "metrics.jsonl")).readline())
    with open(os.path.join(tampered, "eval.json"), "w") as f:
        f.write('{"step": 0}')
    bad = kill_drill.compare(str(tmp_path / "reference"), tampered, NUM_STEPS)
    assert not bad["every metric row once (no duplicates, none lost)"]
    assert not bad["eval.json equal"] and bad["final parameters bitwise equal"]
