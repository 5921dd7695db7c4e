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
_ALL_SIZES = ["0.1", "0.2", "0.35", "0.6", "0.9", "range"]
_SIZES = flags.DEFINE_list("sizes", _ALL_SIZES, "Marker sizes.")
_SEVERITIES = flags.DEFINE_list("severities", list(photo_sim.SEVERITIES), "Severities.")
_CHASE = flags.DEFINE_integer("chase_bits", None, "Soft-decoding width (default: the model's).")
_PASSES = flags.DEFINE_integer("passes", None, "Localization passes (default: the model's).")
_MAX_CORRECTIONS = flags.DEFINE_integer(
    "max_corrections", None, "Accept codewords within this many bits (default: the model's)."
)
_JSON = flags.DEFINE_string("json", None, "Also write the table as JSON here.")
_SEED = flags.DEFINE_integer("seed", 2024, "Seed of the photos (held out from training).")
_NO_MARKER = flags.DEFINE_bool(
    "no_marker", True, "Also measure false positives on marker-free photos."
)


def _cell_seed(severity: str, size: str) -> int:
    """The same photos for a cell whichever other cells run (sizes outside the list: by value)."""
    z = _ALL_SIZES.index(size) if size in _ALL_SIZES else round(1000 * float(size))
    return _SEED.value + 100 * list(photo_sim.SEVERITIES).index(severity) + z


def _no_marker_rates(reader, num: int, seed: int) -> tuple[float, int]:
    """(share of marker-free photos (moderate) reported with a marker, how many 'verified' a message)."""
    import numpy as np

    rng, bank = np.random.default_rng(seed), photo_sim.photo_bank()
    found = verified = 0
    for start in range(0, num, 32):
        photos = [photo_sim.simulate(rng, None, bank)[0] for _ in range(min(32, num - start))]
        readings = reader.read(photos)
        found += sum(r.found for r in readings)
        verified += sum(r.verified for r in readings)
    return found / num, verified


def main(argv):
    del argv
    common.setup()
    exp, params = experiments.load_trained(_WORKDIR.value, "marker")
    reader = marker_reader.MarkerReader(
        exp,
        params,
        passes=_PASSES.value,
        chase_bits=_CHASE.value,
        max_corrections=_MAX_CORRECTIONS.value,
    )
    print(
        f"model: {exp.config.marker.num_bits} raw bits, code {exp.config.marker.code}; "
        f"{_NUM.value} photos per cell; passes={reader.passes}, chase_bits={reader.chase_bits}, "
        f"max_corrections={reader.max_corrections}"
    )
    print("severity | size | bits | exact+verified | verified-wrong | detected | corner px | s")
    rows = []
    for severity in _SEVERITIES.value:
        for size in _SIZES.value:
            start = time.perf_counter()
            outcomes = marker_reader.photo_trials(
                exp,
                params,
                reader,
                num=_NUM.value,
                severity=severity,
                size=None if size == "range" else float(size),
                seed=_cell_seed(severity, size),
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
    result = {"rows": rows}
    if _NO_MARKER.value:
        rate, verified = _no_marker_rates(reader, _NUM.value, _SEED.value - 1)
        result.update(false_positive_rate=rate, no_marker_verified=verified)
        print(f"no-marker photos reported as containing a marker: {rate:.4f}; verified: {verified}")
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    app.run(main)
