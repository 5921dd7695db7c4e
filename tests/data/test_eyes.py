"""The procedural eye renderer: gaze geometry, landmarks against pixels, determinism, lighting."""

import dataclasses

import numpy as np
import pytest

from neural_synth.data import eyes


def _luminance(images: np.ndarray) -> np.ndarray:
    return images @ np.array([0.299, 0.587, 0.114], np.float32)


def _clear_eye(index: int = 3) -> eyes.EyeIdentities:
    """An identity whose pupil is the only near-black region (bright iris, no shadow or highlight)."""
    eye = eyes.make_identities([index])
    return dataclasses.replace(
        eye,
        iris=np.array([[0.5, 0.8, 1.0]], np.float32),
        shadow=np.zeros(1, np.float32),
        highlight=np.zeros(1, np.float32),
        lash=np.zeros(1, np.float32),
        gain=np.ones(1, np.float32),
    )


def _pupil_centroid(image: np.ndarray) -> np.ndarray:
    """(x, y) centroid of the near-black pixels of one image, weighted by their darkness."""
    weight = np.clip(0.05 - _luminance(image), 0.0, None)
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    return np.array([np.sum(weight * xs), np.sum(weight * ys)]) / np.sum(weight)


def test_shapes_range_and_names():
    images, landmarks = eyes.render_eyes(eyes.make_identities(np.arange(5)), 10.0, -5.0)
    assert images.shape == (5, eyes.HEIGHT, eyes.WIDTH, 3) and images.dtype == np.float32
    assert landmarks.shape == (5, eyes.NUM_LANDMARKS, 2) == (5, len(eyes.LANDMARK_NAMES), 2)
    assert 0.0 <= images.min() and images.max() <= 1.0
    camera = eyes.random_jitter(np.random.default_rng(5), 5)
    rendered = eyes.render_eyes(eyes.make_identities(np.arange(5)), 3.0, 8.0, jitter=camera)[1]
    computed = eyes.eye_landmarks(eyes.make_identities(np.arange(5)), 3.0, 8.0, jitter=camera)
    np.testing.assert_array_equal(computed, rendered)  # The same without rendering.


def test_iris_centre_moves_monotonically_with_pitch_and_yaw():
    eye = _clear_eye()
    angles = np.arange(-20.0, 21.0, 5.0)
    n = len(angles)
    many = eye[np.zeros(n, int)]
    pitch_images, pitch_marks = eyes.render_eyes(many, 0.0, angles)
    yaw_images, yaw_marks = eyes.render_eyes(many, angles, 0.0)
    # Looking up moves the iris up (image y decreases); looking right moves it right.
    assert np.all(np.diff(pitch_marks[:, 6, 1]) < -0.5)
    assert np.all(np.diff(yaw_marks[:, 6, 0]) > 0.5)
    np.testing.assert_allclose(pitch_marks[:, 6, 0], pitch_marks[0, 6, 0], atol=1e-4)
    np.testing.assert_allclose(yaw_marks[:, 6, 1], yaw_marks[0, 6, 1], atol=0.3)
    # The same from the pixels: the pupil's centroid.
    pitch_pupils = np.stack([_pupil_centroid(im) for im in pitch_images])
    yaw_pupils = np.stack([_pupil_centroid(im) for im in yaw_images])
    assert np.all(np.diff(pitch_pupils[:, 1]) < -0.2), pitch_pupils
    assert np.all(np.diff(yaw_pupils[:, 0]) > 0.5), yaw_pupils


@pytest.mark.parametrize("jitter", [False, True])
def test_iris_landmark_is_on_the_rendered_pupil(jitter):
    eye = _clear_eye(7)[np.zeros(9, int)]
    yaw, pitch = np.meshgrid([-10.0, 0.0, 10.0], [-10.0, 0.0, 10.0])
    camera = eyes.random_jitter(np.random.default_rng(0), 9) if jitter else None
    images, landmarks = eyes.render_eyes(eye, yaw.ravel(), pitch.ravel(), jitter=camera)
    for image, marks in zip(images, landmarks, strict=True):
        # The pupil's ellipse is centred within R (cos pupil - cos iris) sin(10 deg) ~ 0.3 px.
        np.testing.assert_allclose(_pupil_centroid(image), marks[6], atol=0.5)


def _bilinear(mask: np.ndarray, x: float, y: float) -> float:
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    fx, fy = x - x0, y - y0
    m = mask[y0 : y0 + 2, x0 : x0 + 2]
    return float(
        m[0, 0] * (1 - fx) * (1 - fy)
        + m[0, 1] * fx * (1 - fy)
        + m[1, 0] * (1 - fx) * fy
        + m[1, 1] * fx * fy
    )


def test_lid_landmarks_lie_on_the_rendered_eye_opening():
    num = 12
    identities = eyes.make_identities(np.arange(num))
    rng = np.random.default_rng(1)
    camera = eyes.random_jitter(rng, num)
    yaw, pitch = rng.uniform(-20, 20, num), rng.uniform(-20, 20, num)
    options = dict(jitter=camera, supersample=4)
    images, landmarks = eyes.render_eyes(identities, yaw, pitch, **options)
    no_skin = dataclasses.replace(identities, skin=np.zeros_like(identities.skin))
    # The pixels that change with the skin's colour are the skin (~0.1-2 summed over RGB).
    skin = np.abs(images - eyes.render_eyes(no_skin, yaw, pitch, **options)[0]).sum(-1)
    for i in range(num):
        marks = landmarks[i]
        at = lambda point, i=i: _bilinear(skin[i], *point)
        for k, down in ((1, 1.5), (2, 1.5), (4, -1.5), (5, -1.5)):  # Eye toward the centre.
            assert at(marks[k] + (0.0, down)) < 0.01 and at(marks[k] - (0.0, down)) > 0.05
        centre = marks[[1, 2, 4, 5]].mean(axis=0)
        for k in (0, 3):  # Corners: skin beyond, the opening begins within.
            inward = (centre - marks[k]) / np.linalg.norm(centre - marks[k])
            outside = at(marks[k] - 1.5 * inward)
            assert outside > 0.02 and at(marks[k] + 4.0 * inward) < 0.7 * outside


def test_same_identity_and_angle_is_deterministic():
    camera = eyes.random_jitter(np.random.default_rng(2), 3)
    ids = np.array([4, 17, 4])
    a = eyes.render_eyes(eyes.make_identities(ids), [5.0, -10.0, 5.0], 7.5, jitter=camera)
    b = eyes.render_eyes(eyes.make_identities(ids), [5.0, -10.0, 5.0], 7.5, jitter=camera)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    plain, _ = eyes.render_eyes(eyes.make_identities(ids), [5.0, -10.0, 5.0], 7.5)
    np.testing.assert_array_equal(plain[0], plain[2])  # Identity 4 twice in one batch.
    # An identity does not depend on the batch it is drawn with, but on the seed.
    alone = eyes.make_identities([17])
    np.testing.assert_array_equal(alone.skin, eyes.make_identities(np.arange(20))[17].skin)
    assert not np.array_equal(alone.skin, eyes.make_identities([17], seed=1).skin)
    assert np.abs(a[0][0] - a[0][1]).mean() > 0.01  # Two identities differ.


def test_light_from_above_brightens_the_iris_when_looking_up():
    identities = eyes.make_identities(np.arange(8))
    down, _, down_masks = eyes.render_eyes(identities, 0.0, -15.0, return_masks=True)
    up, _, up_masks = eyes.render_eyes(identities, 0.0, 15.0, return_masks=True)

    def iris_brightness(images, masks):
        iris = masks["iris"] - masks["pupil"]
        return np.sum(_luminance(images) * iris, axis=(1, 2)) / np.sum(iris, axis=(1, 2))

    ratio = iris_brightness(up, up_masks) / iris_brightness(down, down_masks)
    # The lid's shadow band can cancel it for an eye whose light is steep; on average
    # the iris is >10% brighter 30 degrees higher.
    assert ratio.mean() > 1.1 and np.sum(ratio > 1.0) >= 6, ratio
    # Looking up opens the eye: the upper lid follows the gaze.
    assert np.all(up_masks["opening"].sum(axis=(1, 2)) > down_masks["opening"].sum(axis=(1, 2)))


def test_angle_grids_and_redirections():
    train = eyes.angle_grid(20.0, 5.0)
    held_out = eyes.angle_grid(20.0, 5.0, offset=2.5)
    np.testing.assert_array_equal(train, np.arange(-20.0, 21.0, 5.0))
    np.testing.assert_array_equal(held_out, np.arange(-17.5, 18.0, 5.0))
    source, target = eyes.sample_redirections(
        np.random.default_rng(0), 5000, train, max_redirect=10.0
    )
    assert np.isin(source, train).all() and np.isin(target, train).all()
    assert np.abs(target - source).max() == 10.0
    assert set(np.unique(target - source)) == {-10.0, -5.0, 0.0, 5.0, 10.0}
    with pytest.raises(ValueError, match="step > 0"):
        eyes.angle_grid(20.0, 0.0)


def test_pairs_share_identity_and_camera():
    identities = eyes.make_identities([3, 9])
    camera = eyes.random_jitter(np.random.default_rng(3), 2)
    source = np.array([[0.0, -5.0], [5.0, 10.0]], np.float32)
    target = np.array([[0.0, 10.0], [-5.0, 10.0]], np.float32)
    pairs = eyes.render_pairs(identities, source, target, camera)
    np.testing.assert_array_equal(pairs["angle"], [[0.0, 15.0], [-10.0, 0.0]])
    again, marks = eyes.render_eyes(identities, target[:, 0], target[:, 1], jitter=camera)
    np.testing.assert_array_equal(pairs["target"], again)
    assert not np.allclose(pairs["landmarks"], marks)  # The input's landmarks, not the target's.
