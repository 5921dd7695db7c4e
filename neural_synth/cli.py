"""Shared start-up and error handling for the command-line tools in `scripts/`."""

import os
import sys
from collections.abc import Callable

import jax
from absl import flags, logging

# Errors a user can cause (bad file, bad size, bad config, NaN in training):
# reported as one line and exit status 1, never a traceback.
USER_ERRORS = (ValueError, OSError, FloatingPointError)
CACHE_ENV = "NEURAL_SYNTH_CACHE_DIR"


def setup() -> None:
    """Quiet library logs (unless --verbosity is given) and a persistent XLA cache.

    The compilation cache (`$NEURAL_SYNTH_CACHE_DIR`, default
    ~/.cache/neural_synth/xla; set it to '' to disable) makes a rerun, such as
    resuming a training run or decoding another image, skip recompilation.
    """
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    cache = os.environ.get(
        CACHE_ENV, os.path.join(os.path.expanduser("~"), ".cache", "neural_synth", "xla")
    )
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def run(fn: Callable[[], object]) -> None:
    """Calls `fn`; a user error prints `error: ...` on stderr and exits 1."""
    try:
        fn()
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' -> (H, W); a clear error otherwise."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"A size must look like 2048x2048 (HEIGHTxWIDTH), got {text!r}.") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"A size must be positive, got {text!r}.")
    return h, w


def auto_tile(height: int, width: int, tile: int, auto_pixels: int) -> int:
    """The tile size to use: --tile, else 1024 above `auto_pixels`, else 0 (untiled)."""
    return tile or (1024 if height * width > auto_pixels else 0)
