"""What every command-line tool in `scripts/` shares: start-up, one-line errors, sizes.

The library raises exceptions that name the fix in terms of its arguments; this
module is the one place that turns them into `error: ...` on stderr and exit
status 1 (DESIGN.md section 3a). Every script ends with

    if __name__ == "__main__":
        common.run(main_fn)                        # one job
        common.run(commands={"a": a_fn, ...})      # subcommands

and bad flags (unknown, mistyped, a misspelt config field, an unknown config
variant) get the same one-line treatment as errors raised while running.
"""

import os
import platform
import sys
from collections.abc import Callable, Mapping

from absl import app, flags, logging

# Errors a user can cause (bad file, bad size, bad config, NaN in training, a
# missing optional dependency): one line and exit status 1, never a traceback.
USER_ERRORS = (ValueError, OSError, FloatingPointError, ImportError)
CACHE_ENV = "NEURAL_SYNTH_CACHE_DIR"
SIZE_HELP = "WIDTHxHEIGHT, e.g. 640x480"


# glibc's malloc hands XLA's per-step temporaries back to the kernel, which then
# zeroes fresh pages for them every step. Blocks of 32 MiB or more (XLA's temp
# buffer is 3.3 GB in the pix2pix batch-8 step) are always mmapped, from a
# thread's arena even with mmap turned off. One arena (the main one, grown by
# brk), no mmap and no trimming keep every block in the heap for reuse, on
# transparent huge pages. The price: the heap keeps its peak size. Measured
# (benchmarks/RESULTS.md): the pix2pix batch-8 step 6.0-7.0 -> 5.1-5.4 s (25% of
# it had been the kernel clearing pages); the marker step 183-192 -> 161-165 ms
# and its default run 6 min 38 s -> 5 min 32 s, against the earlier tunables
# (no arena or mmap settings), which had taken it from 218-222 to 195-201 ms.
GLIBC_MALLOC_TUNABLES = (
    "glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:"
    "glibc.malloc.trim_threshold=17179869184:glibc.malloc.top_pad=268435456"
)


def restart_with_malloc_tunables() -> None:
    """Restarts this command with GLIBC_TUNABLES set (never twice, nor over the user's own)."""
    if "GLIBC_TUNABLES" in os.environ or platform.libc_ver()[0] != "glibc":
        return
    os.environ["GLIBC_TUNABLES"] = GLIBC_MALLOC_TUNABLES
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


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


def _flag_error_line(error: Exception) -> str:
    """The informative part of a flag error (config errors embed a traceback or a repr)."""
    text = str(error).replace("\\'", "'").replace("\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = lines[-1] if lines else type(error).__name__
    for prefix in ("ValueError: ", "KeyError: ", "AttributeError: ", "TypeError: "):
        last = last.removeprefix(prefix)
    if len(last) > 1 and last[0] == last[-1] and last[0] in "'\"":
        last = last[1:-1]  # A KeyError's repr.
    if isinstance(error, KeyError | AttributeError):
        return f"unknown config field {last.replace(' Did you', '; did you')}"
    first = lines[0] if lines else ""
    if first.startswith("flag --") and first != last:  # Keep the flag's name.
        return f"{first.split(':')[0]}: {last}"
    return last


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing with every failure reported as one `error:` line."""
    try:
        return flags.FLAGS(argv)
    except (flags.Error, KeyError, AttributeError, ValueError, TypeError) as e:
        fail(_flag_error_line(e))


def run(
    fn: Callable[[], object] | None = None,
    *,
    commands: Mapping[str, Callable[[], object]] | None = None,
    default: str | None = None,
) -> None:
    """Parses flags and runs `fn` (or the command named on the command line).

    User errors (USER_ERRORS) become one `error: ...` line and exit status 1.
    `default` names the command run when none is given.
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

    app.run(absl_main, flags_parser=parse_flags)


def load_config_file(spec: str):
    """`get_config(arg)` of a config file given as PATH[:ARG] (as --config takes it)."""
    import importlib.util

    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("config_file", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


def _same_shape(default, value) -> bool:
    """Whether an overridden tuple field keeps its default's length and element kinds."""
    if not isinstance(value, tuple | list) or len(value) != len(default):
        return False
    kinds = [(bool,), (int, float), (str,)]
    for d, v in zip(default, value, strict=True):
        kind = next((k for k in kinds if isinstance(d, k)), (type(d),))
        if not isinstance(v, kind) or (isinstance(v, bool) and bool not in kind):
            return False
    return True


def check_config_overrides(holder: flags.FlagHolder) -> None:
    """Tuple fields overridden on the command line must keep the default's shape."""
    from ml_collections import config_flags

    flag = flags.FLAGS[holder.name]
    overrides = config_flags.get_override_values(flag)
    if not overrides:
        return
    defaults = load_config_file(config_flags.get_config_filename(flag))
    for path, value in overrides.items():
        default = defaults
        for part in path.split("."):
            default = default[part]
        if isinstance(default, tuple | list) and not _same_shape(default, value):
            raise ValueError(
                f"config field {path} must be {len(default)} values like "
                f"{tuple(default)}, e.g. --{holder.name}.{path}='{tuple(default)}'; got {value!r}"
            )


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
