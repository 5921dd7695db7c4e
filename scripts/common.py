"""What every command-line tool in `scripts/` shares: start-up, one-line errors, sizes.

The library raises exceptions that name the fix in terms of its arguments; this
module is the one place that turns them into `error: ...` on stderr and exit
status 1 (DESIGN.md section 3a). Every script ends with

    if __name__ == "__main__":
        app.run(common.main(run))                       # one job
        app.run(common.main(commands={"a": a, ...}))    # subcommands
"""

import os
import sys
from collections.abc import Callable, Mapping

from absl import flags, logging

# Errors a user can cause (bad file, bad size, bad config, NaN in training, a
# missing optional dependency): one line and exit status 1, never a traceback.
USER_ERRORS = (ValueError, OSError, FloatingPointError, ImportError)
CACHE_ENV = "NEURAL_SYNTH_CACHE_DIR"
SIZE_HELP = "WIDTHxHEIGHT, e.g. 640x480"


def setup() -> None:
    """Quiet library logs (unless --verbosity is given) and a persistent XLA cache.

    The compilation cache (`$NEURAL_SYNTH_CACHE_DIR`, default
    ~/.cache/neural_synth/xla; set it to '' to disable) makes a rerun, such as
    resuming a training run or decoding another image, skip recompilation.
    """
    import jax  # Lazy: tools that never touch JAX start fast.

    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    default = os.path.join(os.path.expanduser("~"), ".cache", "neural_synth", "xla")
    cache = os.environ.get(CACHE_ENV, default)
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def fail(message: object) -> None:
    """Prints `error: MESSAGE` as one line on stderr and exits with status 1."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    sys.exit(1)


def _target(args: list[str], fn, commands, default) -> Callable[[], object]:
    """The function that `args` (argv without the program) selects."""
    if commands is None:
        if args:
            raise ValueError(f"unexpected arguments {args}; use --flag=value")
        return fn
    if not args and default is not None:
        return commands[default]
    if len(args) != 1 or args[0] not in commands:
        raise ValueError(f"give one command: {' | '.join(commands)} (got {args or 'none'})")
    return commands[args[0]]


def main(
    fn: Callable[[], object] | None = None,
    *,
    commands: Mapping[str, Callable[[], object]] | None = None,
    default: str | None = None,
) -> Callable[[list[str]], None]:
    """An absl `main(argv)` that runs `fn` (or the command named in argv).

    User errors (USER_ERRORS) become one `error: ...` line and exit status 1.
    `default` names the command run when argv gives none.
    """
    if (fn is None) == (commands is None):
        raise TypeError("give either fn or commands")

    def absl_main(argv: list[str]) -> None:
        try:
            target = _target(list(argv[1:]), fn, commands, default)
            setup()
            target()
        except USER_ERRORS as e:
            fail(e)

    return absl_main


def require(flag: flags.FlagHolder, command: str):
    """The flag's value; a clear error when `command` needs it and it is unset."""
    if flag.value is None or flag.value == "":
        raise ValueError(f"{command} needs --{flag.name}")
    return flag.value


def parse_size(text: str, flag: str = "size") -> tuple[int, int]:
    """'WIDTHxHEIGHT' (as image tools write sizes) -> (height, width)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--{flag} must look like 640x480 (WIDTHxHEIGHT), got {text!r}")
    width, height = (int(p) for p in parts)
    return height, width


def parse_floats(values: list[str] | None, flag: str) -> tuple[float, ...] | None:
    """A list flag of numbers as floats (None stays None); the error names the flag."""
    if values is None:
        return None
    try:
        return tuple(float(v) for v in values)
    except ValueError:
        raise ValueError(f"--{flag} must be comma-separated numbers, got {values}") from None


def auto_tile(height: int, width: int, tile: int, auto_pixels: int) -> int:
    """The tile size to use: --tile, else 1024 above `auto_pixels`, else 0 (untiled)."""
    return tile or (1024 if height * width > auto_pixels else 0)
