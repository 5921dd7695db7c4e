"""Backward rules against hand-computed two-layer nets; max-pool switches; probes."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neural_synth.models import probes

# Two-layer net: score = w2 . rectifier(W1 x).
W1 = np.array([[1, 0, 1, 0], [0, 1, 0, -1], [1, 1, 1, 1]], np.float32)
X = np.array([1, -1, 2, 0.5], np.float32)  # W1 x = [3, -1.5, 2.5]
W2 = np.array([1, 2, -1], np.float32)


def _input_signal(rule: str, rectifier=probes.relu) -> np.ndarray:
    score = lambda x: jnp.dot(jnp.asarray(W2), rectifier(jnp.asarray(W1) @ x, rule))
    return np.asarray(jax.jit(jax.grad(score))(jnp.asarray(X)))


# By hand: the signal reaching the hidden units, then W1^T times it.
#   gradient:  w2 * [h > 0]           = [1, 0, -1] -> [0, -1, 0, -1]
#   guided:    w2 * [h > 0] * [w2 > 0] = [1, 0, 0]  -> [1, 0, 1, 0]
#   deconvnet: max(w2, 0)             = [1, 2, 0]  -> [1, 2, 1, -2]
@pytest.mark.parametrize(
    "rule,expected",
    [("gradient", [0, -1, 0, -1]), ("guided", [1, 0, 1, 0]), ("deconvnet", [1, 2, 1, -2])],
)
def test_relu_rules_on_a_two_layer_net(rule, expected):
    np.testing.assert_array_equal(_input_signal(rule), np.array(expected, np.float32))


# ReLU6 with identity first layer: h = x = [7, 3, -1, 2], signal w = [1, -2, 4, 3].
#   gradient:  w * [0 < h < 6]           = [0, -2, 0, 3]
#   guided:    w * [0 < h < 6] * [w > 0] = [0, 0, 0, 3]
#   deconvnet: max(w, 0)                 = [1, 0, 4, 3]
@pytest.mark.parametrize(
    "rule,expected",
    [("gradient", [0, -2, 0, 3]), ("guided", [0, 0, 0, 3]), ("deconvnet", [1, 0, 4, 3])],
)
def test_relu6_rules(rule, expected):
    h, w = jnp.array([7.0, 3.0, -1.0, 2.0]), jnp.array([1.0, -2.0, 4.0, 3.0])
    got = jax.grad(lambda h: jnp.dot(w, probes.relu6(h, rule)))(h)
    np.testing.assert_array_equal(got, np.array(expected, np.float32))


def test_forward_is_the_same_for_every_rule():
    x = jnp.linspace(-3, 9, 25)
    for rule in probes.RULES:
        np.testing.assert_array_equal(probes.relu(x, rule), jnp.maximum(x, 0))
        np.testing.assert_array_equal(probes.relu6(x, rule), jnp.clip(x, 0, 6))


@pytest.mark.parametrize("rule", probes.RULES)
def test_max_pool_switches_route_to_the_argmax(rule):
    rng = np.random.default_rng(0)
    x = rng.permutation(32).astype(np.float32).reshape(1, 4, 8, 1)  # Distinct values.
    w = rng.standard_normal((1, 2, 4, 1)).astype(np.float32)
    got = jax.grad(lambda x: jnp.sum(w * probes.max_pool(probes.relu(x, rule), rule)))(x)
    want = np.zeros_like(x)
    for i in range(2):
        for j in range(4):
            window = x[0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2, 0]
            r, c = np.unravel_index(np.argmax(window), (2, 2))
            # The pool passes the signal to its argmax; the rectifier behind it
            # (x > 0 there) lets all of it through, or only its positive part.
            signal = w[0, i, j, 0] if rule == "gradient" else max(w[0, i, j, 0], 0)
            want[0, 2 * i + r, 2 * j + c, 0] = signal
    np.testing.assert_array_equal(np.asarray(got), want)


class _Tapped(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = probes.probe(self, "hidden", nn.Dense(3, name="dense")(x))
        return jnp.sum(h**2), h


def test_probe_gives_the_gradient_at_an_intermediate_activation():
    model, x = _Tapped(), jnp.ones((2, 4))
    params = model.init(jax.random.key(0), x)["params"]
    _, h = model.apply({"params": params}, x)
    grad = jax.grad(lambda o: model.apply({"params": params, probes.OFFSETS: {"hidden": o}}, x)[0])(
        jnp.zeros_like(h)
    )
    np.testing.assert_allclose(grad, 2 * h, rtol=1e-6)  # d sum(h^2) / dh.


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="guided"):
        probes.relu(jnp.ones(2), "hook")
