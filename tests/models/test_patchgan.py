"""PatchGAN discriminators: measured receptive fields, output sizes, torch equivalence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.models import patchgan


def _pair(shape, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(jnp.asarray(rng.uniform(size=shape), jnp.float32) for _ in range(2))


@pytest.mark.parametrize("field", [1, 16, 70, 286])
def test_receptive_field_measured_from_the_model(field):
    model = patchgan.PatchGAN(receptive_field=field, width=2, norm="none")
    x = jnp.zeros((1, 96, 96, 3))
    params = model.init(jax.random.key(0), x, x)
    fn = jax.jit(lambda image: model.apply(params, image[..., :3], image[..., 3:]))
    start = max(32, patchgan.min_size(field))  # The doubling search starts here.
    assert patchgan.receptive_field(fn, 6, size=start) == field


def test_receptive_field_of_a_known_stack():
    # Two 3x3 convs then a stride-2 3x3 conv: 3 + 2 + 2 = 7 pixels.
    def fn(x):
        k = jnp.ones((3, 3, x.shape[-1], 1))
        conv = lambda y, s: jax.lax.conv_general_dilated(
            y, k[..., : y.shape[-1], :], (s, s), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return conv(conv(conv(x, 1), 1), 2)

    assert patchgan.receptive_field(fn, 1) == 7


@pytest.mark.parametrize(
    ("field", "hw", "out"),
    [
        (1, (8, 12), (8, 12)),
        (16, (32, 48), (14, 22)),
        (70, (64, 32), (6, 2)),
        (286, (96, 96), (1, 1)),
    ],
)
def test_output_size(field, hw, out):
    model = patchgan.PatchGAN(receptive_field=field, width=2)
    cond, image = _pair((2, *hw, 3))
    params = model.init(jax.random.key(0), cond, image)
    assert model.apply(params, cond, image).shape == (2, *out, 1)


def test_bad_receptive_field_and_too_small_images_are_errors():
    x = jnp.zeros((1, 32, 32, 3))
    with pytest.raises(ValueError, match="choose from"):
        patchgan.PatchGAN(receptive_field=34).init(jax.random.key(0), x, x)
    with pytest.raises(ValueError, match="choose from"):
        patchgan.min_size(34)
    with pytest.raises(ValueError, match="at least 96 px per side, got 32x32"):
        patchgan.PatchGAN(receptive_field=286).init(jax.random.key(0), x, x)


def test_patchgan_matches_torch_reference():
    torch = pytest.importorskip("torch")
    from benchmarks import pix2pix as bench

    model = patchgan.PatchGAN(receptive_field=70, width=4, norm="batch")
    cond, image = _pair((2, 32, 40, 3), seed=1)
    params = model.init(jax.random.key(0), cond, image)
    out = model.apply(params, cond, image)
    ref = bench.torch_patchgan(70, 4, "batch")
    bench.copy_params_to_torch(params["params"], ref)
    to_torch = lambda a: torch.from_numpy(np.asarray(a).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        want = ref(to_torch(cond), to_torch(image)).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(out, want, atol=2e-5)
