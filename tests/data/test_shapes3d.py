"""The procedural 3-D objects and their ray-casting renderer (`neural_synth/data/shapes3d.py`)."""

import numpy as np
import pytest

from neural_synth.data import shapes3d

SIZE = 32


@pytest.fixture(scope="module")
def shapes():
    return shapes3d.make_shapes(40, seed=0)


def _single(kind: str, centre, size, colour=(0.8, 0.6, 0.4)) -> shapes3d.Shapes:
    """One object made of one primitive."""
    tables = {
        "box": np.zeros((1, shapes3d.MAX_BOXES, shapes3d.ROW), np.float32),
        "cylinder": np.zeros((1, shapes3d.MAX_CYLINDERS, shapes3d.ROW), np.float32),
        "sphere": np.zeros((1, shapes3d.MAX_SPHERES, shapes3d.ROW), np.float32),
    }
    tables[kind][0, 0] = [*centre, *size, *colour, 1.0]
    return shapes3d.Shapes(tables["box"], tables["cylinder"], tables["sphere"], ("test",))


def _pixel_centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) [S, S] of the pixel centres in object units (row 0 at the top)."""
    c = ((np.arange(size) + 0.5) / size * 2 - 1) * shapes3d.VIEW_EXTENT
    return np.meshgrid(c, -c)


def test_masks_are_exactly_the_drawn_pixels(shapes):
    ids = np.arange(len(shapes))  # Every family, eight objects each.
    images, masks = shapes3d.render_views(shapes[ids], ids * 37.0, 10.0 + ids % 4 * 15, size=SIZE)
    assert images.shape == (40, SIZE, SIZE, 3) and masks.shape == (40, SIZE, SIZE, 1)
    assert set(np.unique(masks)) == {0.0, 1.0}
    drawn = np.any(images > 0, axis=-1, keepdims=True)
    np.testing.assert_array_equal(drawn, masks > 0)
    coverage = masks.mean(axis=(1, 2, 3))
    assert np.all(coverage > 0.03) and np.all(coverage < 0.8), coverage
    assert images.min() >= 0 and images.max() <= 1


def test_primitives_project_where_geometry_says():
    x, y = _pixel_centres(SIZE)
    # A box seen head-on (azimuth 0, elevation 0) is the rectangle of its x and y extent.
    _, mask = shapes3d.render_views(
        _single("box", (0.1, -0.2, 0.3), (0.5, 0.3, 0.2)), 0, 0, size=SIZE
    )
    want = (np.abs(x - 0.1) <= 0.5) & (np.abs(y + 0.2) <= 0.3)
    np.testing.assert_array_equal(mask[0, ..., 0] > 0, want)
    # From the side (azimuth 90) its z extent shows, mirrored: +z is on the left.
    _, mask = shapes3d.render_views(
        _single("box", (0.1, -0.2, 0.3), (0.5, 0.3, 0.2)), 90, 0, size=SIZE
    )
    want = (np.abs(x + 0.3) <= 0.2) & (np.abs(y + 0.2) <= 0.3)
    np.testing.assert_array_equal(mask[0, ..., 0] > 0, want)
    # A sphere is a disk; a vertical cylinder is a disk from above and a rectangle from the front.
    _, mask = shapes3d.render_views(_single("sphere", (0.2, 0, 0), (0.6,) * 3), 0, 35, size=SIZE)
    np.testing.assert_array_equal(mask[0, ..., 0] > 0, (x - 0.2) ** 2 + y**2 <= 0.36)
    cylinder = _single("cylinder", (0, 0, 0), (0.4, 0.7, 0.4))
    _, mask = shapes3d.render_views(cylinder, 0, 90, size=SIZE)
    np.testing.assert_array_equal(mask[0, ..., 0] > 0, x**2 + y**2 <= 0.16)
    _, mask = shapes3d.render_views(cylinder, 0, 0, size=SIZE)
    np.testing.assert_array_equal(mask[0, ..., 0] > 0, (np.abs(x) <= 0.4) & (np.abs(y) <= 0.7))


def test_lambert_shading_of_a_face_toward_the_camera():
    image, _ = shapes3d.render_views(_single("box", (0, 0, 0), (0.5, 0.5, 0.5)), 0, 0, size=SIZE)
    light = shapes3d.LIGHT / np.linalg.norm(shapes3d.LIGHT)  # The face's normal is the view axis.
    shade = shapes3d.AMBIENT + (1 - shapes3d.AMBIENT) * light[2]
    np.testing.assert_allclose(
        image[0, SIZE // 2, SIZE // 2], np.array([0.8, 0.6, 0.4]) * shade, rtol=1e-5
    )


def test_a_full_turn_gives_the_same_image(shapes):
    ids = np.arange(10)
    az = np.linspace(0, 330, 10)
    images, masks = shapes3d.render_views(shapes[ids], az, 20.0, size=SIZE)
    turned, turned_masks = shapes3d.render_views(shapes[ids], az + 360, 20.0, size=SIZE)
    np.testing.assert_array_equal(turned_masks, masks)
    np.testing.assert_allclose(turned, images, atol=1e-4)
    chairs_and_sofas = [0, 4, 5, 9]  # No rotational symmetry: a half turn does change them.
    half, _ = shapes3d.render_views(shapes[ids], az + 180, 20.0, size=SIZE)
    change = np.abs(half - images).mean(axis=(1, 2, 3))[chairs_and_sofas]
    assert np.all(change > 1e-3), change


def test_identities_differ_and_are_stable(shapes):
    images, _ = shapes3d.render_views(shapes, 30.0, 20.0, size=SIZE)
    diff = np.abs(images[:, None] - images[None]).mean(axis=(2, 3, 4))  # [N, N]
    off = diff[~np.eye(len(shapes), dtype=bool)]
    assert off.min() > 0.005, off.min()
    assert [shapes.families[i] for i in range(5)] == list(shapes3d.FAMILIES)
    few = shapes3d.make_shapes(5, seed=0)  # Identity i is the same object for any count.
    np.testing.assert_array_equal(few.boxes, shapes.boxes[:5])
    other = shapes3d.make_shapes(5, seed=1)
    assert not np.array_equal(other.boxes, few.boxes)
    with pytest.raises(ValueError, match="num_identities must be >= 1"):
        shapes3d.make_shapes(0)


def test_view_cache_matches_direct_rendering(shapes):
    azimuths, elevations = np.array([0.0, 90.0, 200.0]), np.array([10.0, 40.0])
    cache = shapes3d.ViewCache(shapes, azimuths, elevations, size=SIZE)
    ids, a, e = np.array([3, 7, 3, 0]), np.array([2, 0, 2, 1]), np.array([1, 0, 1, 1])
    images, masks = cache.get(ids, a, e)
    want, want_masks = shapes3d.render_views(shapes[ids], azimuths[a], elevations[e], size=SIZE)
    np.testing.assert_array_equal(masks, want_masks)
    np.testing.assert_allclose(images, want, atol=0.5 / 255 + 1e-6)  # Stored as 8-bit.
    again, _ = cache.get(ids[::-1], a[::-1], e[::-1])  # Cached views: the same values.
    np.testing.assert_array_equal(again, images[::-1])
