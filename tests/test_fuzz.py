"""Property-based fuzzing of the file readers: mutated images and weights files.

Each test mutates a small valid file (byte flips, large integers written over
length fields, truncation, insertion, deletion) and checks that the reader
either loads it or raises the project's own error type, which the command-line
tools print as one line:

- `io.load_image`: `io.ImageError`; a loaded image is float32 [H, W, 3] in
  [0, 1] with at most `max_pixels` pixels (the decompression-bomb limit is
  what bounds memory: it is checked from the header, before decoding);
- `weights.read_source` (and `weights.port` on what it returns):
  `weights.WeightFormatError`.

Never another exception, never a hang (an alarm fails an example that takes
more than `HANG_SECONDS`; hypothesis' deadline flags slow ones). Runs are
derandomized (the same examples every run) and bounded by `max_examples`.
"""

import contextlib
import datetime
import os
import pathlib
import signal
import tempfile

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st

from neural_synth import io
from neural_synth.weights import convert, errors, formats
from tests import badinputs
from tests.weights import writers

MAX_PIXELS = 1 << 16  # Far above the seeds (12x16), far below what would hurt.
HANG_SECONDS = 20
# NEURAL_SYNTH_FUZZ_EXAMPLES=5000 runs a deeper search by hand.
FUZZ = hypothesis.settings(
    max_examples=int(os.environ.get("NEURAL_SYNTH_FUZZ_EXAMPLES", "60")),
    deadline=datetime.timedelta(seconds=5),
    derandomize=True,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
# Values that break length and size fields when written over them.
BIG_INTEGERS = [
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"\x80\x00\x00\x00",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff\xff\xff\xff\x7f",
    b"\x00\x01\x00\x00",
]
_POSITION = st.integers(min_value=0, max_value=1 << 20)
_MUTATION = st.one_of(
    st.tuples(st.just("flip"), _POSITION, st.integers(min_value=1, max_value=255)),
    st.tuples(st.just("overwrite"), _POSITION, st.sampled_from(BIG_INTEGERS)),
    st.tuples(st.just("truncate"), _POSITION),
    st.tuples(st.just("insert"), _POSITION, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), _POSITION, st.integers(min_value=1, max_value=64)),
)
MUTATIONS = st.lists(_MUTATION, min_size=1, max_size=4)


def mutate(data: bytes, mutations) -> bytes:
    """Applies (kind, position, ...) mutations in turn; positions wrap around the length."""
    out = bytearray(data)
    for kind, position, *rest in mutations:
        at = position % (len(out) + 1)
        if kind == "flip" and at < len(out):
            out[at] ^= rest[0]
        elif kind == "overwrite":
            out[at : at + len(rest[0])] = rest[0]
        elif kind == "truncate":
            del out[at:]
        elif kind == "insert":
            out[at:at] = rest[0]
        elif kind == "delete":
            del out[at : at + rest[0]]
    return bytes(out)


@contextlib.contextmanager
def no_hang(seconds: int = HANG_SECONDS):
    """Fails (AssertionError) when the body runs longer than `seconds`."""

    def fail(signum, frame):
        raise AssertionError(f"reader hung for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _write(folder: pathlib.Path, name: str, data: bytes) -> pathlib.Path:
    path = folder / name
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------- images

IMAGE_SEEDS = badinputs.valid_image_bytes()


def _check_image(path: pathlib.Path) -> None:
    try:
        with no_hang():
            image = io.load_image(path, max_pixels=MAX_PIXELS)
    except io.ImageError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return
    assert image.dtype == np.float32 and image.ndim == 3 and image.shape[-1] == 3
    assert image.shape[0] * image.shape[1] <= MAX_PIXELS
    assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0


@pytest.mark.parametrize("fmt", sorted(IMAGE_SEEDS))
def test_mutated_images_load_or_raise_image_error(fmt):
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        _check_image(_write(folder, f"seed.{fmt}", IMAGE_SEEDS[fmt]))  # The seed loads.

        @FUZZ
        @hypothesis.given(mutations=MUTATIONS)
        def check(mutations):
            _check_image(_write(folder, f"mutated.{fmt}", mutate(IMAGE_SEEDS[fmt], mutations)))

        check()


# ----------------------------------------------------------------------------- weights


@pytest.fixture(scope="module")
def weight_seeds(tmp_path_factory):
    paths = badinputs.valid_weight_files(tmp_path_factory.mktemp("weight_seeds"))
    return {kind: path.read_bytes() for kind, path in paths.items()}


def _check_weights(path: pathlib.Path) -> None:
    try:
        with no_hang():
            source = formats.read_source(path)
            convert.port(source)  # The tiny seeds never port; damage must not crash it.
    except errors.WeightFormatError as e:
        assert "\n" not in str(e).strip()
        return


@pytest.mark.parametrize("kind", ["pth_zip", "pth_legacy", "safetensors", "h5"])
def test_mutated_weight_files_load_or_raise_weight_format_error(kind, weight_seeds):
    seed = weight_seeds[kind]
    extension = {"pth_zip": ".pth", "pth_legacy": ".pth"}.get(kind, "." + kind)
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        assert formats.read_source(_write(folder, "seed" + extension, seed)).tensors

        @FUZZ
        @hypothesis.given(mutations=MUTATIONS)
        def check(mutations):
            _check_weights(_write(folder, "mutated" + extension, mutate(seed, mutations)))

        check()


# Mutations the search found before the readers were fixed (each escaped as the
# exception named): kept as fixed examples so they stay fixed.
FOUND = [
    ("pth_legacy", [("overwrite", 7888, b"\xff\xff\xff\xff")]),  # MemoryError: storage size.
    ("pth_legacy", [("flip", 7887, 1)]),  # OverflowError: storage size.
    ("pth_legacy", [("insert", 4086, b"\x95")]),  # MemoryError: pickle FRAME size.
    ("pth_legacy", [("insert", 0, b"\x95\x00")]),  # OverflowError: pickle FRAME size.
    ("pth_legacy", [("insert", 14, b"r\xff\xff\xff\x7f")]),  # MemoryError: memo index.
    ("pth_zip", [("flip", 45118, 163)]),  # NotImplementedError: zip flags.
    ("h5", [("flip", 690, 1)]),  # RuntimeError from h5py.
]


@pytest.mark.parametrize("kind, mutations", FOUND)
def test_mutations_found_by_the_search(kind, mutations, weight_seeds, tmp_path):
    extension = ".h5" if kind == "h5" else ".pth"
    _check_weights(_write(tmp_path, "found" + extension, mutate(weight_seeds[kind], mutations)))


def test_zero_stride_tensor_cannot_claim_unbounded_memory(tmp_path):
    storage = writers.Storage("0", np.ones(4, np.float32))
    huge = writers.Tensor(storage, 0, (1 << 40,), (0,))  # 4 TiB as float32, from 16 bytes.
    writers.write_pth_zip(tmp_path / "stride.pth", {"features.0.weight": huge})
    with pytest.raises(errors.WeightFormatError, match="elements but its storage only 4"):
        formats.read_source(tmp_path / "stride.pth")
