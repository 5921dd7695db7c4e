"""The one progress reporter: training steps, optimization steps and tiles.

Long work is never silent: `start()` prints that the first unit includes
compilation (which can take minutes on a CPU), then every `update()` prints

    step 120/1500 (8%) | 9.8 step/s | ETA 2m21s | loss=0.41 ...

with the rate measured since the previous line (slow units show s/step
instead). Only process 0 of a multi-host run prints.
"""

import math
import sys
import time
from collections.abc import Mapping

import jax


def format_duration(seconds: float) -> str:
    """62.5 -> '1m02s'; 3700 -> '1h01m40s'; inf/NaN -> '?'."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def format_rate(rate: float, unit: str) -> str:
    """'9.80 step/s', or '2.50 s/tile' when a unit takes longer than a second."""
    if rate >= 1.0 or rate <= 0.0:
        return f"{rate:.2f} {unit}/s"
    return f"{1.0 / rate:.2f} s/{unit}"


def format_line(
    done: int,
    total: int,
    rate: float,
    *,
    unit: str = "step",
    prefix: str = "",
    metrics: Mapping[str, float] | None = None,
) -> str:
    """`PREFIXstep 120/1500 (8%) | 9.80 step/s | ETA 2m21s | k=v ...`."""
    eta = format_duration((total - done) / rate if rate > 0 else math.inf)
    pct = 100 * done // max(total, 1)
    line = f"{prefix}{unit} {done}/{total} ({pct}%) | {format_rate(rate, unit)} | ETA {eta}"
    if metrics:
        line += " | " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
    return line


class Progress:
    """Progress lines with rate and ETA for `total` units, starting at `done`."""

    def __init__(
        self,
        total: int,
        *,
        done: int = 0,
        unit: str = "step",
        prefix: str = "",
        stream=None,
        enabled: bool = True,
    ):
        self.total, self.unit, self.prefix = total, unit, prefix
        self.stream = stream if stream is not None else sys.stdout
        self.enabled = enabled and jax.process_index() == 0
        self._last_done, self._last_time = done, time.perf_counter()

    def _print(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def start(self, what: str = "") -> None:
        """Says that work begins and that the first unit includes compilation."""
        what = f"{what}: " if what else ""
        self._print(
            f"{self.prefix}{what}compiling... (the first {self.unit} includes compilation; "
            f"{self.total - self._last_done} {self.unit}s to go)"
        )
        self._last_time = time.perf_counter()

    def exclude(self, seconds: float) -> None:
        """Leaves `seconds` (evaluation, summaries) out of the next rate figure."""
        self._last_time += seconds

    def update(self, done: int, metrics: Mapping[str, float] | None = None) -> float:
        """Prints a line for `done` units; returns the units/s since the previous line."""
        now = time.perf_counter()
        rate = (done - self._last_done) / max(now - self._last_time, 1e-9)
        self._last_done, self._last_time = done, now
        shown = dict(sorted(metrics.items())) if metrics else None
        self._print(
            format_line(done, self.total, rate, unit=self.unit, prefix=self.prefix, metrics=shown)
        )
        return rate
