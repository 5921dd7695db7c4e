"""Tests for neural_synth.io: every Pillow mode, broken files, resizing, saving, grids."""

import struct
import zlib

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageFile

from neural_synth import io


def _save(tmp_path, name, pil_image, **kwargs):
    path = tmp_path / name
    pil_image.save(path, **kwargs)
    return path


def _rgb_u8(height=4, width=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- modes


def test_rgb_png_exact(tmp_path):
    pixels = _rgb_u8()
    image = io.load_image(_save(tmp_path, "a.png", Image.fromarray(pixels)))
    assert image.dtype == np.float32 and image.shape == (4, 6, 3)
    np.testing.assert_array_equal(image, pixels.astype(np.float32) / 255.0)


def test_rgba_composites_over_white_black_or_drops(tmp_path):
    rgba = np.array([[[200, 100, 50, 128], [10, 20, 30, 0], [1, 2, 3, 255]]], np.uint8)
    path = _save(tmp_path, "a.png", Image.fromarray(rgba, "RGBA"))
    rgb, a = rgba[..., :3] / 255.0, rgba[..., 3:] / 255.0
    np.testing.assert_allclose(io.load_image(path), rgb * a + (1 - a), atol=1e-6)
    np.testing.assert_allclose(io.load_image(path, alpha="black"), rgb * a, atol=1e-6)
    np.testing.assert_allclose(io.load_image(path, alpha="drop"), rgb, atol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        io.load_image(path, alpha="pink")


def test_grayscale_l_expands_to_three_equal_channels(tmp_path):
    gray = np.array([[0, 64, 255], [1, 2, 3]], np.uint8)
    image = io.load_image(_save(tmp_path, "g.png", Image.fromarray(gray, "L")))
    assert image.shape == (2, 3, 3)
    for c in range(3):
        np.testing.assert_array_equal(image[..., c], gray / np.float32(255.0))


def test_la_composites_over_white(tmp_path):
    la = np.array([[[100, 255], [100, 0], [0, 51]]], np.uint8)
    image = io.load_image(_save(tmp_path, "la.png", Image.fromarray(la, "LA")))
    expected = np.array([100 / 255, 1.0, 1 - 51 / 255], np.float32)
    np.testing.assert_allclose(image[0], np.repeat(expected[:, None], 3, axis=1), atol=1e-6)


def test_palette_with_transparent_index(tmp_path):
    pil = Image.fromarray(np.array([[0, 1, 2]], np.uint8), "P")
    pil.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    path = _save(tmp_path, "p.png", pil, transparency=0)
    assert Image.open(path).mode == "P"
    expected = np.array([[[1, 1, 1], [1, 0, 0], [0, 0, 1]]], np.float32)  # index 0 -> white
    np.testing.assert_array_equal(io.load_image(path), expected)
    # Without transparency the same index is black.
    opaque = pil.copy()
    opaque.info.pop("transparency", None)
    expected[0, 0] = 0.0
    np.testing.assert_array_equal(io.load_image(_save(tmp_path, "q.png", opaque)), expected)


def test_one_bit(tmp_path):
    bits = np.array([[True, False], [False, True]])
    image = io.load_image(_save(tmp_path, "b.png", Image.fromarray(bits)))
    np.testing.assert_array_equal(image[..., 0], bits.astype(np.float32))
    np.testing.assert_array_equal(image[..., 1], image[..., 2])


@pytest.mark.parametrize(
    "mode, ext",
    [("I;16", "png"), ("I;16B", "tif"), ("I", "tif")],
)
def test_sixteen_bit_scaled_by_65535(tmp_path, mode, ext):
    values = np.array([[0, 32768, 65535, 1]], np.uint16)
    if mode == "I;16":
        pil = Image.fromarray(values)
    elif mode == "I;16B":
        pil = Image.frombytes("I;16B", (4, 1), values.astype(">u2").tobytes())
    else:
        pil = Image.fromarray(values.astype(np.int32))
    path = _save(tmp_path, f"s.{ext}", pil)
    assert Image.open(path).mode == mode
    image = io.load_image(path)
    np.testing.assert_allclose(image[0, :, 0], [0.0, 32768 / 65535, 1.0, 1 / 65535], rtol=1e-6)
    assert abs(image[0, 1, 1] - 0.5) < 1e-4  # Precision beyond 8 bits is kept.


def test_cmyk_jpeg_matches_rgb(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:8, :8] = (255, 0, 0)
    rgb[:8, 8:] = (0, 0, 255)
    rgb[8:, :8] = (255, 255, 0)
    rgb[8:, 8:] = (40, 160, 90)
    cmyk = Image.fromarray(rgb).convert("CMYK")
    path = _save(tmp_path, "c.jpg", cmyk, quality=100)
    assert Image.open(path).mode == "CMYK"
    image = io.load_image(path)
    # Away from block edges, JPEG error is small.
    for rows, cols in [(slice(2, 6), slice(2, 6)), (slice(10, 14), slice(10, 14))]:
        np.testing.assert_allclose(image[rows, cols], rgb[rows, cols] / 255.0, atol=0.04)


def test_exif_orientation_6_is_applied(tmp_path):
    pixels = _rgb_u8(height=2, width=3)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display.
    path = _save(tmp_path, "o.png", Image.fromarray(pixels), exif=exif)
    image = io.load_image(path)
    assert image.shape == (3, 2, 3)
    # Clockwise: the stored top-left pixel ends up top-right, bottom-left -> top-left.
    np.testing.assert_array_equal(image[0, 1], pixels[0, 0] / np.float32(255.0))
    np.testing.assert_array_equal(image[0, 0], pixels[1, 0] / np.float32(255.0))
    np.testing.assert_array_equal(image, np.rot90(pixels, k=-1) / np.float32(255.0))


# ----------------------------------------------------------------------------- broken files


def _assert_one_line_error(path, **kwargs):
    with pytest.raises(io.ImageError) as info:
        io.load_image(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert isinstance(info.value, ValueError)
    return message


def _noise_file(tmp_path, name, **kwargs):
    return _save(tmp_path, name, Image.fromarray(_rgb_u8(64, 64, seed=1)), **kwargs)


def test_missing_file_and_directory(tmp_path):
    assert "does not exist" in _assert_one_line_error(tmp_path / "nope.png")
    assert "directory" in _assert_one_line_error(tmp_path)


@pytest.mark.parametrize("content", [b"", np.random.default_rng(0).bytes(500)])
def test_empty_or_random_bytes(tmp_path, content):
    path = tmp_path / "junk.png"
    path.write_bytes(content)
    assert "re-export" in _assert_one_line_error(path)


@pytest.mark.parametrize("name, options", [("t.png", {}), ("t.jpg", {"quality": 90})])
def test_truncated_files_fail(tmp_path, name, options):
    path = _noise_file(tmp_path, name, **options)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_one_line_error(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_decompression_bomb_small_limit(tmp_path):
    path = _noise_file(tmp_path, "big.png")
    message = _assert_one_line_error(path, max_pixels=1000)
    assert "max_pixels" in message and "64x64" in message
    assert io.load_image(path, max_pixels=64 * 64).shape == (64, 64, 3)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def test_decompression_bomb_default_limit_from_header_only(tmp_path):
    # A 50000x50000 PNG header with no pixel data: must be refused from the header,
    # before Pillow's own (global) limit or any decoding is involved.
    header = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IEND", b"")
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    limit = Image.MAX_IMAGE_PIXELS
    assert "max_pixels" in _assert_one_line_error(path)
    assert Image.MAX_IMAGE_PIXELS == limit  # Pillow's global is restored.


# ----------------------------------------------------------------------------- resizing


def test_resize_semantics():
    image = np.random.default_rng(0).random((40, 20, 3), dtype=np.float32)
    assert io.resize(image, max_side=10).shape == (10, 5, 3)
    np.testing.assert_array_equal(io.resize(image, max_side=100), image)  # Never enlarges.
    assert io.resize(image, size=(7, 30)).shape == (7, 30, 3)  # (height, width).
    assert io.target_size(300, 451, max_side=64) == (43, 64)
    for bad in [
        dict(max_side=10, size=(5, 5)),
        dict(max_side=0),
        dict(size=(5,)),
        dict(size=(0, 3)),
    ]:
        with pytest.raises(ValueError):
            io.resize(image, **bad)


def test_resize_is_float_lanczos_reproducing_linear_ramps():
    width = 64
    ramp = (np.arange(width, dtype=np.float32) + 0.5) / width  # Pixel-centre values.
    image = np.broadcast_to(ramp[None, :, None], (8, width, 3)).copy() * 0.5 + 0.25
    small = io.resize(image, size=(4, 32))
    expected = ((np.arange(32) + 0.5) / 32) * 0.5 + 0.25
    # A symmetric, normalised kernel reproduces a linear ramp away from the borders,
    # to float precision: no 8-bit rounding anywhere.
    np.testing.assert_allclose(small[2, 4:-4, 1], expected[4:-4], atol=1e-5)
    constant = np.full((9, 9, 3), 0.1234, np.float32)
    np.testing.assert_allclose(io.resize(constant, size=(4, 5)), 0.1234, atol=1e-6)
    # Lanczos overshoot on a hard edge is clipped into [0, 1].
    edge = np.zeros((16, 16, 3), np.float32)
    edge[:, 8:] = 1.0
    up = io.resize(edge, size=(40, 40))
    assert up.min() >= 0.0 and up.max() <= 1.0


def test_load_image_resizes_like_resize(tmp_path):
    path = _noise_file(tmp_path, "n.png")
    full = io.load_image(path)
    np.testing.assert_array_equal(io.load_image(path, max_side=16), io.resize(full, max_side=16))
    assert io.load_image(path, size=(10, 20)).shape == (10, 20, 3)


def test_samples_and_specs(tmp_path):
    chelsea = io.load_image_or_sample("skimage:chelsea", max_side=64)
    assert chelsea.shape == (43, 64, 3) and chelsea.dtype == np.float32
    assert 0.0 <= chelsea.min() and chelsea.max() <= 1.0 and chelsea.std() > 0.05
    camera = io.sample_image("camera", max_side=32)
    assert camera.shape == (32, 32, 3)
    np.testing.assert_array_equal(camera[..., 0], camera[..., 2])
    with pytest.raises(io.ImageError, match="astronaut"):
        io.load_image_or_sample("skimage:nonesuch")
    path = _noise_file(tmp_path, "n.png")
    np.testing.assert_array_equal(io.load_image_or_sample(str(path)), io.load_image(path))


# ----------------------------------------------------------------------------- saving


def test_png_round_trip_exact(tmp_path):
    pixels = _rgb_u8(5, 7, seed=3)
    path = io.save_image(tmp_path / "deep" / "dir" / "x.png", pixels / 255.0)
    np.testing.assert_array_equal(io.load_image(path), pixels / np.float32(255.0))
    io.save_image(tmp_path / "u.png", pixels)  # uint8 as is.
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "u.png")), pixels)
    io.save_image(tmp_path / "j.png", jnp.asarray(pixels / 255.0))  # JAX arrays.
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "j.png")), pixels)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_save_grayscale_shapes_and_clipping(tmp_path):
    gray = np.array([[-0.5, 0.0, 0.5, 1.5]], np.float32)
    for name, image in [("a.png", gray), ("b.png", gray[..., None])]:
        io.save_image(tmp_path / name, image)
        saved = Image.open(tmp_path / name)
        assert saved.mode == "L"
        np.testing.assert_array_equal(np.asarray(saved), [[0, 0, 128, 255]])


def test_jpeg_round_trip_close(tmp_path):
    y, x = np.mgrid[0:32, 0:48] / 48.0
    image = np.stack([x, y, 0.5 * (x + y)], axis=-1).astype(np.float32)
    path = io.save_image(tmp_path / "x.JPG", image, quality=95)
    assert Image.open(path).format == "JPEG"
    assert np.abs(io.load_image(path) - image).mean() < 0.01


def test_save_errors(tmp_path):
    with pytest.raises(ValueError, match=".png"):
        io.save_image(tmp_path / "x.bmp", np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="shape|got"):
        io.save_image(tmp_path / "x.png", np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        io.save_image(tmp_path / "x.png", np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="dtype"):
        io.save_image(tmp_path / "x.png", np.zeros((2, 2), np.int64))


# ----------------------------------------------------------------------------- grids


def test_make_grid_matches_hand_built_layout():
    rng = np.random.default_rng(0)
    tiles = rng.random((5, 2, 3, 3), dtype=np.float32)
    pad, value = 1, 0.25

    def row(items):  # Tiles side by side, with a pad column before each and at the end.
        parts = []
        for item in items:
            parts += [np.full((2, pad, 3), value, np.float32), item]
        return np.concatenate(parts + [np.full((2, pad, 3), value, np.float32)], axis=1)

    blank = np.full((2, 3, 3), value, np.float32)
    rows = [row(tiles[0:3]), row([tiles[3], tiles[4], blank])]
    hpad = np.full((pad, rows[0].shape[1], 3), value, np.float32)
    expected = np.concatenate([hpad, rows[0], hpad, rows[1], hpad], axis=0)
    grid = io.make_grid(tiles, ncols=3, padding=pad, pad_value=value)
    assert grid.shape == (7, 13, 3)
    np.testing.assert_array_equal(grid, expected)
    # Default columns: ceil(sqrt(5)) = 3 -> same layout.
    np.testing.assert_array_equal(io.make_grid(tiles, padding=pad, pad_value=value), expected)
    # One channel and uint8 inputs are expanded / scaled.
    gray = io.make_grid(
        np.round(tiles[..., :1] * 255).astype(np.uint8), ncols=3, padding=pad, pad_value=value
    )
    np.testing.assert_allclose(gray[1:3, 1:4, 2], tiles[0, ..., 0], atol=0.5 / 255)
    with pytest.raises(ValueError):
        io.make_grid(np.zeros((2, 3, 3)))


def test_save_grid(tmp_path):
    images = np.random.default_rng(0).random((4, 8, 10, 3), dtype=np.float32)
    path = io.save_grid(tmp_path / "g.png", images, padding=2)
    assert Image.open(path).size == (2 * 12 + 2, 2 * 10 + 2)  # (width, height)
