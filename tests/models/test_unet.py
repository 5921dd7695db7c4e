"""pix2pix generators: shapes and size rules, dropout, batch statistics, torch equivalence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.models import unet


def _images(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(size=shape), jnp.float32)


def _apply(model, x, *, deterministic=True, key=0):
    variables = model.init(jax.random.key(0), x, deterministic=True)
    out = model.apply(
        variables, x, deterministic=deterministic, rngs={"dropout": jax.random.key(key)}
    )
    return variables, out


@pytest.mark.parametrize(
    ("kind", "hw", "num_downs", "want_downs"),
    [
        ("unet", (32, 32), 0, 5),
        ("unet", (32, 64), 0, 5),  # Non-square: the short side sets the depth.
        ("unet", (24, 40), 3, 3),
        ("encoder_decoder", (16, 16), 0, 4),
        ("resnet", (12, 20), 0, None),
    ],
)
def test_generator_output_shape_and_range(kind, hw, num_downs, want_downs):
    model = unet.generator(kind, image_size=hw, width=4, num_downs=num_downs, norm="instance")
    if want_downs is not None:
        assert model.num_downs == want_downs
    x = _images((2, *hw, 3))
    _, out = _apply(model, x)
    assert out.shape == (2, *hw, 3)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_num_downs_rule():
    assert unet.num_downs_for(256, 256) == 8
    assert unet.num_downs_for(512, 1024) == 8  # Capped at 8, as the paper's U-Net.
    assert unet.num_downs_for(64, 64) == 6
    assert unet.num_downs_for(40, 64) == 5  # Largest k with 40 / 2^k >= 1.


def test_non_divisible_size_fails_with_the_rule():
    model = unet.UNet(num_downs=3, width=4)
    with pytest.raises(
        ValueError, match=r"multiples of 2\^3 = 8 .*got 30x20 \(width x height\); e.g. use 32x24"
    ):
        model.init(jax.random.key(0), jnp.zeros((1, 20, 30, 3)), deterministic=True)
    with pytest.raises(ValueError, match=r"multiples of 2\^6 = 64 .*got 128x96"):
        unet.generator("unet", image_size=(96, 128))  # Depth 6 from the 96 px side.
    with pytest.raises(ValueError, match=r"multiples of 2\^2 = 4"):
        unet.generator("resnet", image_size=(18, 20))
    unet.generator("unet", image_size=(96, 128), num_downs=5)  # The fix the message names.


def test_unknown_names_are_errors():
    with pytest.raises(ValueError, match="Unknown generator"):
        unet.generator("vae", image_size=(32, 32))
    with pytest.raises(ValueError, match="Unknown norm"):
        unet.UNet(num_downs=3, width=4, norm="group").init(
            jax.random.key(0), jnp.zeros((1, 8, 8, 3)), deterministic=True
        )


def test_dropout_is_the_only_noise_and_can_be_switched_off():
    model = unet.UNet(num_downs=4, width=4)
    x = _images((1, 16, 16, 3))
    variables, a = _apply(model, x, deterministic=False, key=1)
    _, b = _apply(model, x, deterministic=False, key=2)
    _, c = _apply(model, x, deterministic=True, key=1)
    _, d = _apply(model, x, deterministic=True, key=2)
    assert float(jnp.abs(a - b).max()) > 1e-3  # Different noise, different outputs.
    np.testing.assert_array_equal(c, d)  # Without dropout the key does not matter.
    quiet = unet.UNet(num_downs=4, width=4, dropout=0.0)
    e = quiet.apply(variables, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
    np.testing.assert_allclose(e, c, atol=1e-6)


def test_batch_norm_uses_the_batch_statistics_and_instance_norm_does_not():
    x = _images((3, 16, 16, 3))
    other = x.at[1:].set(_images((2, 16, 16, 3), seed=5))
    for norm, coupled in (("batch", True), ("instance", False)):
        model = unet.UNet(num_downs=3, width=4, norm=norm)
        variables, out = _apply(model, x)
        out_other = model.apply(variables, other, deterministic=True)
        change = float(jnp.abs(out[0] - out_other[0]).max())
        assert (change > 1e-4) == coupled, (norm, change)
    # Batch-norm layers hold no running averages: parameters only, nothing mutable.
    assert set(variables) == {"params"}


def test_initialisation_follows_the_paper():
    model = unet.UNet(num_downs=4, width=8, norm="batch")
    init = jax.jit(lambda key: model.init(key, jnp.zeros((1, 16, 16, 3)), deterministic=True))
    params = init(jax.random.key(0))["params"]
    kernels = np.concatenate(
        [np.ravel(v) for p in params.values() for k, v in p.items() if "kernel" in k]
    )
    scales = np.concatenate([np.ravel(p["scale"]) for p in params.values() if "scale" in p])
    assert abs(kernels.std() - 0.02) < 0.001 and abs(kernels.mean()) < 0.001
    assert abs(scales.mean() - 1.0) < 0.005 and abs(scales.std() - 0.02) < 0.006
    assert "bias" not in params["down1"]  # No bias before batch norm (junyanz).
    assert "bias" in params["up0"]  # The output layer has one.


def test_gradients_are_finite_under_jit():
    model = unet.generator("unet", image_size=(16, 16), width=4)
    x = _images((2, 16, 16, 3))
    params = model.init(jax.random.key(0), x, deterministic=True)

    @jax.jit
    def grads(p):
        out = model.apply(p, x, deterministic=False, rngs={"dropout": jax.random.key(3)})
        return jax.grad(lambda q: jnp.mean(model.apply(q, x, deterministic=True) ** 2))(p), out

    g, _ = grads(params)
    assert all(np.isfinite(v).all() for v in jax.tree.leaves(g))


def test_unet_matches_torch_reference():
    torch = pytest.importorskip("torch")
    from benchmarks import pix2pix as bench

    model = unet.UNet(num_downs=4, width=4, norm="batch")
    x = _images((2, 16, 32, 3), seed=3)
    variables, out = _apply(model, x)
    ref = bench.torch_unet(4, 4, "batch")
    bench.copy_params_to_torch(variables["params"], ref)
    with torch.no_grad():
        want = ref(torch.from_numpy(np.array(x).transpose(0, 3, 1, 2).copy()), deterministic=True)
    np.testing.assert_allclose(out, want.numpy().transpose(0, 2, 3, 1), atol=2e-5)
