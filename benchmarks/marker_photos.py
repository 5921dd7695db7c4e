"""Markers read from simulated photos: accuracy per marker size and severity.

  python -m benchmarks.marker_photos --workdir=runs/marker [--num=1024] [--json=out.json]

For each severity of the Pillow/NumPy print-and-photograph simulation
(`neural_synth/data/photo_sim.py`: mild, moderate, harsh) and each marker size
in the frame (10%, 20%, 35%, 60%, 90% of the side of a 256x256 photo, plus the
severity's own size range), `--num` held-out photos (photos the training
backgrounds never include, random messages) are read end to end by
`MarkerReader`: localization, rectification, recognition, error correction.
Reported per cell: raw-bit accuracy, messages exact and verified, verified
but wrong (must be 0), detection rate, median corner error in photo pixels;
and the false-positive rate on `--num` photos without a marker.
"""

import json
import time

from absl import app, flags

from neural_synth import experiments
from neural_synth.data import photo_sim
from neural_synth.experiments import marker_reader
from scripts import common

_WORKDIR = flags.DEFINE_string("workdir", "runs/marker", "Work directory of a trained marker run.")
_NUM = flags.DEFINE_integer("num", 1024, "Photos per (size, severity) cell.")
_SIZES = flags.DEFINE_list("sizes", ["0.1", "0.2", "0.35", "0.6", "0.9", "range"], "Marker sizes.")
_SEVERITIES = flags.DEFINE_list("severities", list(photo_sim.SEVERITIES), "Severities.")
_CHASE = flags.DEFINE_integer("chase_bits", None, "Soft-decoding width (default: the model's).")
_PASSES = flags.DEFINE_integer("passes", None, "Localization passes (default: the model's).")
_JSON = flags.DEFINE_string("json", None, "Also write the table as JSON here.")
_SEED = flags.DEFINE_integer("seed", 2024, "Seed of the photos (held out from training).")


def _no_marker_rate(reader, num: int, seed: int) -> float:
    """Share of marker-free photos (moderate severity) in which a marker is reported."""
    import numpy as np

    rng, bank = np.random.default_rng(seed), photo_sim.photo_bank()
    found = 0
    for start in range(0, num, 32):
        photos = [photo_sim.simulate(rng, None, bank)[0] for _ in range(min(32, num - start))]
        found += sum(r.found for r in reader.read(photos))
    return found / num


def main(argv):
    del argv
    common.setup()
    exp, params = experiments.load_trained(_WORKDIR.value, "marker")
    reader = marker_reader.MarkerReader(exp, params, passes=_PASSES.value, chase_bits=_CHASE.value)
    print(
        f"model: {exp.config.marker.num_bits} raw bits, code {exp.config.marker.code}; "
        f"{_NUM.value} photos per cell; passes={reader.passes}, chase_bits={reader.chase_bits}"
    )
    print("severity | size | bits | exact+verified | verified-wrong | detected | corner px | s")
    rows = []
    for s, severity in enumerate(_SEVERITIES.value):
        for z, size in enumerate(_SIZES.value):
            start = time.perf_counter()
            outcomes = marker_reader.photo_trials(
                exp,
                params,
                reader,
                num=_NUM.value,
                severity=severity,
                size=None if size == "range" else float(size),
                seed=_SEED.value + 100 * s + z,
            )
            row = {"severity": severity, "size": size, **marker_reader.summarize(outcomes)}
            rows.append(row)
            print(
                f"{severity} | {size} | {row['bit_accuracy']:.4f} | "
                f"{row['message_exact_verified']:.4f} | {row['verified_but_wrong']} | "
                f"{row['detection_rate']:.4f} | {row['corner_error_px_median']:.2f} | "
                f"{time.perf_counter() - start:.0f}",
                flush=True,
            )
    false_positive = _no_marker_rate(reader, _NUM.value, _SEED.value - 1)
    print(f"no-marker photos reported as containing a marker: {false_positive:.4f}")
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump({"rows": rows, "false_positive_rate": false_positive}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
