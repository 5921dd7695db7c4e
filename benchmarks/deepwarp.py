"""DeepWarp and the paper's baselines, trained and compared on held-out eyes and gazes.

  python -m benchmarks.deepwarp [--config=configs/deepwarp.py[:variant]] [--root=/tmp/deepwarp_bench]
      [--variants=full,no_lightness,single_scale] [--out=table.md]

Trains each variant of the config (full: as configured; no_lightness:
`model.lightness=False`; single_scale: `model.coarse_to_fine=False`) in
ROOT/VARIANT through the shared trainer, one after the other on this
machine, and writes a markdown table of their held-out MSE (overall and per
redirection) next to the input-unchanged baseline, with the training time,
the CPU and the load average. A finished run in ROOT/VARIANT is reused (its
time is then the one recorded when it was trained).
"""

import json
import os
import time

from absl import flags
from ml_collections import config_flags

from neural_synth import experiments
from scripts import common

_CONFIG = config_flags.DEFINE_config_file("config", "configs/deepwarp.py", "DeepWarp config.")
_ROOT = flags.DEFINE_string("root", "/tmp/deepwarp_bench", "Work directories go in ROOT/VARIANT.")
_VARIANTS = flags.DEFINE_list(
    "variants", ["full", "no_lightness", "single_scale"], "Which variants to train and compare."
)
_OUT = flags.DEFINE_string("out", None, "Also write the markdown table to this file.")

ABLATIONS = {
    "full": {},
    "no_lightness": {"lightness": False},
    "single_scale": {"coarse_to_fine": False},
}
LABELS = {
    "full": "DeepWarp (coarse-to-fine + lightness correction)",
    "no_lightness": "warp only, no lightness correction",
    "single_scale": "single-scale warp (+ lightness correction)",
}
TIME_FILE = "train_time.json"


def _load_average() -> str:
    with open("/proc/loadavg", encoding="utf-8") as f:
        return " ".join(f.read().split()[:3])


def _cpu_name() -> str:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    return f"{names[0]} x {len(names)}" if names else "unknown CPU"


def _train(name: str) -> dict:
    """Trains (or reuses) one variant; returns its eval.json plus the recorded times."""
    if name not in ABLATIONS:
        raise ValueError(f"Unknown variant {name!r}; choose from {', '.join(ABLATIONS)}.")
    config = _CONFIG.value.copy_and_resolve_references()
    with config.unlocked():
        config.model.update(ABLATIONS[name])
    workdir = os.path.join(_ROOT.value, name)
    timing = os.path.join(workdir, TIME_FILE)
    if not os.path.exists(timing):
        load, wall, cpu = _load_average(), time.perf_counter(), time.process_time()
        experiments.train_from_config(config, workdir)
        record = {
            "wall_s": time.perf_counter() - wall,
            "cpu_s": time.process_time() - cpu,
            "load_before": load,
            "load_after": _load_average(),
        }
        with open(timing, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
    with open(os.path.join(workdir, "eval.json"), encoding="utf-8") as f:
        result = json.load(f)
    with open(timing, encoding="utf-8") as f:
        result["time"] = json.load(f)
    return result


def _angle_order(name: str) -> tuple[int, float]:
    """Sort key of eval.json's redirection names ('pitch-15', 'yaw+10'): pitch first, ascending."""
    axis, _, value = name.partition("+") if "+" in name else name.partition("-")
    sign = 1.0 if "+" in name else -1.0
    return (0 if axis == "pitch" else 1, sign * float(value))


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def table(results: dict[str, dict], config) -> str:
    """The markdown tables: overall held-out MSE and time, then MSE per redirection."""
    first = next(iter(results.values()))
    held = first["held_out_identities"]
    angles = sorted(held["per_angle"], key=_angle_order)
    lines = [
        _row(["model", "held-out eyes MSE", "vs input", "training eyes MSE", "train time"]),
        _row(["---"] + ["---:"] * 4),
        _row(["input unchanged", f"{held['input_mse']:.5f}", "1.00",
              f"{first['training_identities']['input_mse']:.5f}", "-"]),
    ]  # fmt: skip
    for name, r in results.items():
        mse = r["held_out_identities"]["mse"]
        lines.append(_row([
            LABELS[name], f"{mse:.5f}", f"{mse / held['input_mse']:.3f}",
            f"{r['training_identities']['mse']:.5f}",
            f"{r['time']['wall_s'] / 60:.1f} min (load {r['time']['load_before']})",
        ]))  # fmt: skip
    lines += ["", _row(["held-out MSE x 1e4", *angles]), _row(["---"] + ["---:"] * len(angles))]
    lines.append(
        _row(
            ["input unchanged", *(f"{held['per_angle'][a]['input_mse'] * 1e4:.1f}" for a in angles)]
        )
    )
    for name, r in results.items():
        per = r["held_out_identities"]["per_angle"]
        lines.append(_row([LABELS[name], *(f"{per[a]['mse'] * 1e4:.2f}" for a in angles)]))
    steps, batch = config.train.num_steps, config.train.batch_size
    lines += [
        "",
        f"{steps} steps of batch {batch}, {first['num_pairs']} held-out pairs "
        f"({config.eval.num_identities} held-out eyes x {len(angles)} redirections, gazes halfway "
        f"between the training grid's). CPU: {_cpu_name()}; load average now {_load_average()}.",
    ]
    return "\n".join(lines)


def main() -> None:
    results = {name: _train(name) for name in _VARIANTS.value}
    text = table(results, _CONFIG.value)
    print(text)
    if _OUT.value:
        with open(_OUT.value, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    common.run(main)
