"""Tests for blur, noise and resampling against NumPy / independent implementations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from neural_synth.ops import filters, sampler


def _images(batch=2, height=16, width=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, size=(batch, height, width, 3)).astype(np.float32)


def _np_gaussian_kernel(sigma, truncate=4.0):
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def test_gaussian_blur_of_delta_is_numpy_kernel_per_example():
    delta = np.zeros((2, 21, 21, 1), np.float32)
    delta[:, 10, 10] = 1.0
    out = np.asarray(jax.jit(filters.gaussian_blur)(delta, jnp.array([0.0, 1.3])))
    np.testing.assert_array_equal(out[0], delta[0])  # sigma 0: exact identity.
    k = _np_gaussian_kernel(1.3)
    expected = np.zeros((21, 21))
    r = len(k) // 2
    expected[10 - r : 10 + r + 1, 10 - r : 10 + r + 1] = np.outer(k, k)
    np.testing.assert_allclose(out[1, ..., 0], expected, atol=1e-6)


def test_gaussian_blur_preserves_constants_and_mean():
    constant = np.full((2, 12, 9, 3), 0.37, np.float32)
    out = jax.jit(filters.gaussian_blur)(constant, jnp.array([0.8, 3.0]))
    np.testing.assert_allclose(out, constant, atol=1e-6)
    # Away from the borders a blur moves no mass: the mean of a periodic-free
    # interior pattern is kept.
    images = _images()
    blurred = np.asarray(jax.jit(filters.gaussian_blur)(images, 1.0))
    np.testing.assert_allclose(blurred.mean(), images.mean(), atol=5e-3)
    assert blurred.std() < images.std()


def test_motion_blur_integer_taps_is_a_box_filter():
    # length 4 with 5 taps samples offsets -2..2 exactly: a 5-tap box filter with
    # the border replicated, horizontal for example 0 and vertical for example 1.
    images = _images()
    fn = jax.jit(lambda x, n, a: filters.motion_blur(x, n, a, num_taps=5))
    out = np.asarray(fn(images, jnp.array([4.0, 4.0]), jnp.array([0.0, np.pi / 2])))
    padded_x = np.pad(images[0], ((0, 0), (2, 2), (0, 0)), mode="edge")
    box_x = sum(padded_x[:, i : i + 20] for i in range(5)) / 5
    padded_y = np.pad(images[1], ((2, 2), (0, 0), (0, 0)), mode="edge")
    box_y = sum(padded_y[i : i + 16] for i in range(5)) / 5
    np.testing.assert_allclose(out[0], box_x, atol=1e-5)
    np.testing.assert_allclose(out[1], box_y, atol=1e-5)
    np.testing.assert_allclose(fn(images, 0.0, 0.7), images, atol=1e-6)


@pytest.mark.parametrize("lengths", [(3.3, 1.7), (1.9, 0.6)], ids=["matrices", "stencil"])
def test_motion_blur_equals_mean_of_bilinear_samples(lengths):
    # Fractional offsets in an arbitrary direction: the blur must equal 2-D
    # clamped bilinear sampling at the shifted positions, both when a shift
    # exceeds one pixel (matrix products) and when none does (3 x 3 stencil).
    images = _images()
    length, angle = np.array(lengths, np.float32), np.array([0.4, 2.5], np.float32)

    @jax.jit
    def run(images):
        blurred = filters.motion_blur(images, length, angle, num_taps=4)
        grid = sampler.pixel_grid((16, 20))
        samples = []
        for t in np.linspace(-0.5, 0.5, 4):
            shift = (t * length)[:, None] * np.stack([np.cos(angle), np.sin(angle)], -1)
            coords = grid[None] + shift[:, None, None, :]
            samples.append(sampler.bilinear_sample(images, coords, fill=None))
        return blurred, sum(samples) / 4

    blurred, reference = run(images)
    np.testing.assert_allclose(blurred, reference, atol=1e-5)


def test_motion_blur_stencil_and_matrices_agree_in_values_and_gradients():
    images = _images(3)
    # Shifts within one pixel and away from the tent's kinks (0, +-1), where
    # the two forms may pick different subgradients.
    shift = np.linspace(-0.5, 0.5, 4)[None] * np.array([[0.3], [1.4], [2.0]])
    shift_x, shift_y = (jnp.asarray(shift * f, jnp.float32) for f in (np.cos(0.7), np.sin(0.7)))
    weights = _images(3, seed=1)

    def loss(fn, x, sx, sy):
        return jnp.sum(fn(x, sx, sy) * weights)

    @jax.jit
    def run(images, sx, sy):
        return [
            (fn(images, sx, sy), jax.grad(loss, argnums=(1, 2, 3))(fn, images, sx, sy))
            for fn in (filters._stencil_motion_blur, filters._matrix_motion_blur)
        ]

    (stencil, stencil_grads), (matrices, matrix_grads) = run(images, shift_x, shift_y)
    np.testing.assert_allclose(stencil, matrices, atol=1e-6)
    for a, b in zip(stencil_grads, matrix_grads, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-5)


def test_noise_identity_at_zero_and_per_example_std():
    images = np.full((2, 32, 32, 3), 0.5, np.float32)
    fn = jax.jit(filters.gaussian_noise)
    out = np.asarray(fn(jax.random.key(0), images, jnp.array([0.0, 0.1])))
    np.testing.assert_array_equal(out[0], images[0])
    assert abs(out[1].std() - 0.1) < 0.01 and abs(out[1].mean() - 0.5) < 0.01
    other = np.asarray(fn(jax.random.key(1), images, 0.1))
    assert not np.allclose(other[1], out[1])


def test_noise_normals_are_standard_normal_and_independent():
    z = np.asarray(
        jax.jit(filters._normal_16bit, static_argnums=(1, 2))(jax.random.key(4), 3, 20001)
    )
    assert z.shape == (3, 20001)  # Odd: the last draw's second half is unused.
    assert scipy.stats.kstest(z.ravel(), "norm").pvalue > 1e-3
    assert abs(np.mean(z)) < 0.02 and abs(np.std(z) - 1.0) < 0.02
    pairs = z[:, :20000].reshape(-1, 2)  # The two halves of each 32-bit draw.
    assert abs(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1]) < 0.03


def _jax_resize_down_up(image, low):
    """Independent reference: jax.image.resize (scale_and_translate) down then up."""
    down = jax.image.resize(image, (low, low, 3), "linear", antialias=True)
    return jax.image.resize(down, image.shape, "linear")


def test_downsample_upsample_matches_jax_image_resize():
    images = _images(2, 16, 16)
    fn = jax.jit(filters.downsample_upsample)
    out = np.asarray(fn(images, jnp.array([1.0, 0.5])))
    np.testing.assert_array_equal(out[0], images[0])
    np.testing.assert_allclose(out[1], _jax_resize_down_up(images[1], 8), atol=1e-5)
    out = np.asarray(fn(images, 0.25))
    np.testing.assert_allclose(out[0], _jax_resize_down_up(images[0], 4), atol=1e-5)


def test_downsample_upsample_without_antialias_is_point_sampling():
    images = _images(1, 16, 16)
    out = jax.jit(lambda x: filters.downsample_upsample(x, 0.5, antialias=False))(images)
    down = jax.image.resize(images[0], (8, 8, 3), "linear", antialias=False)
    np.testing.assert_allclose(out[0], jax.image.resize(down, (16, 16, 3), "linear"), atol=1e-5)


# (op, neutral arguments, per-example arguments for B=2).
OPS = {
    "gaussian_blur": (filters.gaussian_blur, (0.0,), (jnp.array([0.5, 2.0]),)),
    "motion_blur": (
        filters.motion_blur,
        (0.0, 0.3),
        (jnp.array([2.0, 5.0]), jnp.array([0.3, 2.0])),
    ),
    "gaussian_noise": (
        lambda x, s: filters.gaussian_noise(jax.random.key(0), x, s),
        (0.0,),
        (jnp.array([0.05, 0.2]),),
    ),
    "downsample_upsample": (filters.downsample_upsample, (1.0,), (jnp.array([0.7, 0.3]),)),
}


@pytest.fixture(scope="module")
def results():
    """Every op compiled once: neutral, per-example, same-image and gradient results."""
    images = _images()
    same = np.broadcast_to(images[:1], images.shape)
    # One call per op on a batch of 6: neutral x2, per-example x2, same image x2.
    batch = np.concatenate([images, images, same])

    @jax.jit
    def run(batch, images):
        out = {}
        for name, (op, neutral, args) in OPS.items():
            stacked = [
                jnp.concatenate([jnp.full((2,), n), a, a])
                for n, a in zip(neutral, args, strict=True)
            ]
            neutral_out, value, same_out = jnp.split(op(batch, *stacked), 3)
            loss = lambda x, op=op, a=args: jnp.sum(op(x, *a) ** 2)
            grad = jax.grad(loss)(images)
            out[name] = dict(neutral=neutral_out, value=value, same=same_out, grad=grad)
        return out

    return images, jax.tree.map(np.asarray, run(batch, images))


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_identity_range_gradient_and_per_example(name, results):
    images, outs = results
    out = outs[name]
    np.testing.assert_allclose(out["neutral"], images, atol=1e-5)
    assert out["value"].min() >= 0.0 and out["value"].max() <= 1.0
    # Per-example parameters differ: the same image gets different results.
    assert np.abs(out["same"][0] - out["same"][1]).max() > 1e-2
    assert np.all(np.isfinite(out["grad"])) and np.abs(out["grad"]).sum() > 0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="num_taps"):
        filters.motion_blur(jnp.zeros((1, 4, 4, 3)), 1.0, 0.0, num_taps=1)
    with pytest.raises(ValueError, match="one per example"):
        filters.gaussian_blur(jnp.zeros((2, 4, 4, 3)), jnp.ones((3,)))
