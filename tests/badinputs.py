"""A corpus of bad and odd input files for the command-line tools (tests and benchmarks).

`images(folder)`, `weight_files(folder)`, `vgg_dirs(folder)` write the files and
return `Case`s: the path, whether it must load, and a regular expression the
one-line error must match (it must also name the file). `valid_image_bytes()`
and `valid_weight_files()` give the seeds that the fuzz tests mutate.

Nothing here is large on disk: the decompression bomb is a 20000x20000 grayscale
PNG of ~390 KB (the size of the one reported in issue 11), and every weights file
but the wrong-architecture one is a few kilobytes.
"""

import dataclasses
import io
import json
import os
import pathlib
import struct
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image

from tests.weights import writers

ODD_SIZE = (48, 64)  # (height, width) of the images that must load; large enough for every tool.
BOMB_SIDE = 20000


@dataclasses.dataclass(frozen=True)
class Case:
    """One corpus file: `problem` is a regex the error must match; None means it must load."""

    name: str
    path: pathlib.Path
    problem: str | None = None
    shape: tuple[int, int] | None = None  # (height, width) after loading, for files that load.

    @property
    def bad(self) -> bool:
        return self.problem is not None


# ----------------------------------------------------------------------------- images


def gradient_rgb(height: int = ODD_SIZE[0], width: int = ODD_SIZE[1]) -> np.ndarray:
    """uint8 [H, W, 3]: a smooth colour image (compresses well, survives JPEG)."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([255 * x / max(width - 1, 1), 255 * y / max(height - 1, 1), 128 + 0 * x], -1)
    return rgb.astype(np.uint8)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A valid side x side 8-bit grayscale PNG of zeros: ~390 KB on disk for 20000 px.

    Decoding it as float RGB would take about 22 bytes per pixel (8.8 GB at 20000 px).
    """
    compressor = zlib.compressobj(9)
    row = bytes(side + 1)  # Filter byte 0 + `side` zero pixels.
    rows_per_chunk = max(1, (1 << 24) // len(row))
    chunks, done = [], 0
    while done < side:
        n = min(rows_per_chunk, side - done)
        chunks.append(compressor.compress(row * n))
        done += n
    chunks.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(chunks))
        + _png_chunk(b"IEND", b"")
    )


def _encode(pil: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    pil.save(buf, format=fmt, **options)
    return buf.getvalue()


def valid_image_bytes() -> dict[str, bytes]:
    """{'png' | 'jpeg' | 'gif': bytes} of small valid images, the fuzzing seeds."""
    pil = Image.fromarray(gradient_rgb(12, 16))
    frames = [pil.convert("P"), Image.fromarray(255 - gradient_rgb(12, 16)).convert("P")]
    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        "png": _encode(pil, "PNG"),
        "jpeg": _encode(pil, "JPEG", quality=80, exif=exif),
        "gif": _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50),
    }


def _odd_images(folder: pathlib.Path) -> list[Case]:
    """Files in unusual modes that every tool must read (as float RGB of ODD_SIZE)."""
    h, w = ODD_SIZE
    rgb = gradient_rgb(h, w)
    pil = Image.fromarray(rgb)
    gray16 = (np.linspace(0, 65535, h * w).reshape(h, w)).astype(np.uint16)
    rgba = np.concatenate([rgb, np.full((h, w, 1), 128, np.uint8)], -1)
    frames = [pil.convert("P"), Image.fromarray(255 - rgb).convert("P")]
    exif = Image.Exif()
    exif[0x0112] = 6  # Rotate 90 degrees clockwise to display: stored W x H becomes H x W.
    rotated_stored = Image.fromarray(np.ascontiguousarray(np.rot90(rgb, k=1)))  # [W, H, 3]
    files = {
        "cmyk.jpg": _encode(pil.convert("CMYK"), "JPEG", quality=95),
        "gray16.png": _encode(Image.fromarray(gray16), "PNG"),
        "palette.png": _encode(pil.convert("P"), "PNG"),
        "rgba.png": _encode(Image.fromarray(rgba, "RGBA"), "PNG"),
        "onebit.png": _encode(pil.convert("1"), "PNG"),
        "animated.gif": _encode(
            frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50
        ),
        "exif_rotated.jpg": _encode(rotated_stored, "JPEG", quality=95, exif=exif),
    }
    cases = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        cases.append(Case(name, folder / name, shape=ODD_SIZE))
    return cases


def _bad_images(folder: pathlib.Path) -> list[Case]:
    """Files every image-reading tool must refuse with one line naming the problem."""
    png = _encode(Image.fromarray(gradient_rgb()), "PNG")
    jpeg = _encode(Image.fromarray(gradient_rgb()), "JPEG", quality=90)
    files = {
        "empty.png": (b"", "empty"),
        "truncated.png": (png[: len(png) // 2], "truncated"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "text.png": (b"This is a text file, not a picture.\n" * 4, "not an image"),
        "bomb.png": (bomb_png(), "decompression bomb"),
        "tiny.png": (_encode(Image.new("RGB", (1, 1), "red"), "PNG"), "1x1"),
    }
    cases = []
    for name, (data, problem) in files.items():
        (folder / name).write_bytes(data)
        cases.append(Case(name, folder / name, problem))
    cases.append(Case("missing.png", folder / "missing.png", "does not exist"))
    return cases


def images(folder: str | os.PathLike) -> list[Case]:
    """Writes the image corpus into `folder`: bad files first, then odd modes that load."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return _bad_images(folder) + _odd_images(folder)


# ----------------------------------------------------------------------------- weights


def tiny_state_dict() -> dict:
    """A small torchvision-named state dict: readable by every reader, too small to port."""
    rng = np.random.default_rng(0)
    return {
        "features.0.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "features.0.bias": rng.standard_normal(4).astype(np.float32),
    }


def _write_safetensors(path: pathlib.Path, tensors: dict) -> None:
    """A .safetensors file written by hand (header JSON + raw little-endian data)."""
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array, "<f4").tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def valid_weight_files(folder: str | os.PathLike) -> dict[str, pathlib.Path]:
    """{'pth_zip' | 'pth_legacy' | 'safetensors' | 'h5': path} of small readable files."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = tiny_state_dict()
    paths = {
        "pth_zip": folder / "valid_zip.pth",
        "pth_legacy": folder / "valid_legacy.pth",
        "safetensors": folder / "valid.safetensors",
        "h5": folder / "valid.h5",
    }
    writers.write_pth_zip(paths["pth_zip"], dict(sd))
    writers.write_pth_legacy(paths["pth_legacy"], dict(sd))
    _write_safetensors(paths["safetensors"], sd)
    kernel = np.transpose(sd["features.0.weight"], (2, 3, 1, 0))
    writers.write_keras_h5(paths["h5"], {"block1_conv1": (kernel, sd["features.0.bias"])})
    return paths


def weight_files(folder: str | os.PathLike) -> list[Case]:
    """Weights files `convert_vgg --src` must refuse: garbage, empty, truncated, wrong kind."""
    folder = pathlib.Path(folder)
    valid = valid_weight_files(folder / "valid")
    rng = np.random.default_rng(1)
    cases = []
    for ext, kind in ((".pth", "pth_zip"), (".safetensors", "safetensors"), (".h5", "h5")):
        data = valid[kind].read_bytes()
        for name, content in (
            (f"empty{ext}", b""),
            (f"garbage{ext}", rng.bytes(3000)),
            (f"truncated{ext}", data[: len(data) // 2]),
        ):
            (folder / name).write_bytes(content)
            problem = "empty" if not content else r"truncated|not a|unrecognized|corrupt"
            cases.append(Case(name, folder / name, problem))
    legacy = valid["pth_legacy"].read_bytes()
    (folder / "truncated_legacy.pth").write_bytes(legacy[: len(legacy) - 100])
    cases.append(Case("truncated_legacy.pth", folder / "truncated_legacy.pth", "truncated"))
    writers.write_pth_zip(
        folder / "not_vgg.pth", {"layer1.0.conv1.weight": np.ones((2, 2), np.float32)}
    )
    cases.append(Case("not_vgg.pth", folder / "not_vgg.pth", "no VGG tensors"))
    writers.write_pth_zip(folder / "too_small.pth", dict(tiny_state_dict()))
    cases.append(Case("too_small.pth", folder / "too_small.pth", "vgg16 or vgg19"))
    writers.write_keras_h5(folder / "vgg16.h5", writers.keras_layers("vgg16", head=None))
    cases.append(Case("vgg16.h5 as vgg19", folder / "vgg16.h5", "use --arch vgg16"))
    return cases


def vgg_dirs(folder: str | os.PathLike, ported: str | os.PathLike) -> list[Case]:
    """Broken copies of the ported checkpoint `ported` that `--vgg DIR` must refuse."""
    folder, ported = pathlib.Path(folder), pathlib.Path(ported)
    params, meta = (ported / "params.npz").read_bytes(), (ported / "metadata.json").read_bytes()
    layouts = {
        "vgg_empty_dir": ({}, "metadata.json is missing"),
        "vgg_no_params": ({"metadata.json": meta}, "params.npz is missing"),
        "vgg_bad_json": ({"metadata.json": b"{not json", "params.npz": params}, "corrupt"),
        "vgg_modified_params": (
            {"metadata.json": meta, "params.npz": params[:-10] + bytes(10)},
            "corrupt or was modified",
        ),
    }
    cases = []
    for name, (files, problem) in layouts.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for file_name, content in files.items():
            (folder / name / file_name).write_bytes(content)
        cases.append(Case(name, folder / name, problem))
    cases.append(Case("vgg_missing_dir", folder / "vgg_missing_dir", "no ported VGG checkpoint"))
    return cases


# ----------------------------------------------------------------------------- commands

PRECIOUS = b"An output that existed before the run; a failed run must leave it byte-identical.\n"


@dataclasses.dataclass(frozen=True)
class Command:
    """How one command-line tool reads one kind of input.

    `argv(input, out, runs, scratch)` gives the module and its arguments, where
    `runs` maps 'marker' | 'pix2pix' | 'stylize_net' | 'texture_net' to trained
    work directories (and 'vgg16.h5' to a weights file) and `scratch` is an
    empty folder for the run. `out` is the
    output file (or folder, for convert_vgg) the tool writes, None if it writes none.
    """

    name: str
    argv: Callable[..., list[str]]
    writes: str | None = "file"  # 'file', 'dir' or None.
    ok_codes: tuple[int, ...] = (0,)  # Exit statuses of a successful read.


def _rescale_folder(image: str, scratch: pathlib.Path) -> str:
    """A folder holding (a link to) just `image`, for --rescale_images."""
    folder = scratch / "rescale_images"
    folder.mkdir(exist_ok=True)
    (folder / os.path.basename(image)).symlink_to(os.path.abspath(image))
    return str(folder)


FAST_GATYS = ("--steps=1", "--max_side=64", "--style_max_side=64")
IMAGE_COMMANDS = {
    c.name: c
    for c in [
        Command(
            "features",
            lambda x, out, runs, s: ["scripts.features", f"--image={x}", f"--out={out}",
                                     "--layers=relu1_1", "--max_side=64"],
        ),
        Command(
            "texture",
            lambda x, out, runs, s: ["scripts.texture", f"--texture={x}", f"--out={out}",
                                     "--steps=1", "--style_max_side=64"],
        ),
        Command(
            "stylize --content",
            lambda x, out, runs, s: ["scripts.stylize", f"--content={x}", f"--out={out}",
                                     *FAST_GATYS],
        ),
        Command(
            "stylize --style",
            lambda x, out, runs, s: ["scripts.stylize", f"--style={x}", f"--out={out}",
                                     *FAST_GATYS],
        ),
        Command(
            "stylize --masks",
            lambda x, out, runs, s: ["scripts.stylize", f"--masks={x}", f"--out={out}",
                                     *FAST_GATYS],
        ),
        Command(
            "stylize_net",
            lambda x, out, runs, s: ["scripts.stylize_net", f"--workdir={runs['stylize_net']}",
                                     f"--input={x}", f"--out={out}"],
        ),
        Command(
            "pix2pix translate",
            lambda x, out, runs, s: ["scripts.pix2pix", f"--workdir={runs['pix2pix']}",
                                     f"--input={x}", f"--out={out}"],
        ),
        Command(
            "pix2pix edges",
            lambda x, out, runs, s: ["scripts.pix2pix", "edges", f"--input={x}", f"--out={out}"],
        ),
        Command(
            "marker decode",
            lambda x, out, runs, s: ["scripts.marker", "decode", f"--workdir={runs['marker']}",
                                     f"--image={x}"],
            writes=None,
            ok_codes=(0, 2, 3),  # 2: no marker found, 3: bits uncorrectable (a read, no error).
        ),
        Command(
            "convert_vgg --rescale_images",
            lambda x, out, runs, s: ["scripts.convert_vgg", f"--src={runs['vgg16.h5']}",
                                     f"--out={out}", "--arch=vgg16", "--overwrite", "--rescale",
                                     f"--rescale_images={_rescale_folder(x, s)}"],
            writes="dir",
        ),
        Command(
            "visualize classify",
            lambda x, out, runs, s: ["scripts.visualize", "classify", f"--image={x}"],
            writes=None,
        ),
        Command(
            "visualize saliency",
            lambda x, out, runs, s: ["scripts.visualize", "saliency", f"--image={x}",
                                     f"--out={out}"],
        ),
        Command(
            "train texture_net (config.texture.image)",
            lambda x, out, runs, s: ["scripts.train", "--config=configs/texture_net.py:smoke",
                                     f"--config.texture.image={x}", f"--workdir={s / 'run'}",
                                     "--config.train.num_steps=1"],
            writes=None,
        ),
    ]
}  # fmt: skip
WEIGHT_COMMANDS = {
    "convert_vgg": Command(
        "convert_vgg",
        lambda w, out, runs, s: [
            "scripts.convert_vgg",
            f"--src={w}",
            f"--out={out}",
            "--overwrite",
            "--arch=auto",
        ],
        writes="dir",
    ),
}
VGG_DIR_COMMANDS = {
    c.name: c
    for c in [
        Command(
            "features --vgg",
            lambda d, out, runs, s: ["scripts.features", f"--vgg={d}", f"--out={out}",
                                     "--layers=relu1_1", "--max_side=64"],
        ),
        Command(
            "texture --vgg",
            lambda d, out, runs, s: ["scripts.texture", f"--vgg={d}", f"--out={out}",
                                     "--steps=1", "--style_max_side=64"],
        ),
        Command(
            "visualize --weights",
            lambda d, out, runs, s: ["scripts.visualize", "saliency", "--model=vgg16",
                                     f"--weights={d}", "--image=skimage:chelsea", f"--out={out}"],
        ),
        Command(
            "stylize --vgg",
            lambda d, out, runs, s: ["scripts.stylize", f"--vgg={d}", f"--out={out}", *FAST_GATYS],
        ),
    ]
}  # fmt: skip
# Commands that write an image, each with a good input, for the output-path cases.
OUTPUT_COMMANDS = {
    "features": IMAGE_COMMANDS["features"],
    "texture": IMAGE_COMMANDS["texture"],
    "stylize --content": IMAGE_COMMANDS["stylize --content"],
    "stylize_net": IMAGE_COMMANDS["stylize_net"],
    "pix2pix translate": IMAGE_COMMANDS["pix2pix translate"],
    "pix2pix edges": IMAGE_COMMANDS["pix2pix edges"],
    "texture_net": Command(
        "texture_net",
        lambda x, out, runs, s: ["scripts.texture_net", f"--workdir={runs['texture_net']}",
                                 f"--out={out}", "--size=32x32"],
    ),
    "marker encode": Command(
        "marker encode",
        lambda x, out, runs, s: ["scripts.marker", "encode", f"--workdir={runs['marker']}",
                                 "--bits=01010101", f"--out={out}", "--size=32"],
    ),
}  # fmt: skip


def output_cases(folder: str | os.PathLike) -> list[Case]:
    """Output paths no tool can write: an existing folder, a path below an existing file."""
    folder = pathlib.Path(folder)
    (folder / "out_is_a_dir.png").mkdir(parents=True, exist_ok=True)
    (folder / "a_file").write_bytes(PRECIOUS)
    return [
        Case("--out is a directory", folder / "out_is_a_dir.png", "is a directory"),
        Case("--out inside a file", folder / "a_file" / "out.png", "is a file, not a directory"),
    ]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a command did: exit status, stderr, and whether the existing output survived."""

    returncode: int
    stdout: str
    stderr: str
    untouched: bool | None  # None when the command writes no output (or succeeded).

    @property
    def lines(self) -> list[str]:
        return self.stderr.strip().splitlines()

    @property
    def message(self) -> str:
        return self.lines[-1] if self.lines else ""

    @property
    def traceback(self) -> bool:
        return "Traceback" in self.stderr


def _snapshot(out: pathlib.Path | None) -> dict[str, bytes] | None:
    if out is None or not out.exists():
        return None
    if out.is_file():
        return {"": out.read_bytes()}
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def prepare_output(out: pathlib.Path, writes: str | None, ported: pathlib.Path | None) -> None:
    """Puts a precious existing output at `out` (a file, or a copy of `ported` weights)."""
    if writes == "file" and not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(PRECIOUS)
    elif writes == "dir" and ported is not None and not out.exists():
        out.mkdir(parents=True)
        for name in ("params.npz", "metadata.json"):
            (out / name).write_bytes((ported / name).read_bytes())


def run(argv: list[str], *, out: pathlib.Path | None = None, timeout: float = 600) -> Outcome:
    """Runs `python -m argv...` and reports whether an existing `out` was left untouched."""
    from tests import helpers  # Lazy: benchmarks import this module too.

    before = _snapshot(out)
    result = helpers.run_module(*argv, timeout=timeout)
    untouched = None if before is None else _snapshot(out) == before
    return Outcome(result.returncode, result.stdout, result.stderr, untouched)
