"""Switchable backward rules and additive probes: what visualization needs from a model.

Gradient-based visualizations differ only in how the backward pass crosses the
rectifiers (Springenberg et al. 2015, Fig. 1). A model routes its rectifiers
through `relu` / `relu6` with a `rule`, and the rule picks the backward pass:

| rule | backward signal through a rectifier with input x, incoming signal g |
|---|---|
| 'gradient' | g * [x in the linear range]  (the true gradient; saliency, Grad-CAM) |
| 'guided' | g * [x in the linear range] * [g > 0]  (guided backpropagation) |
| 'deconvnet' | max(g, 0), whatever x was  (Zeiler & Fergus' deconvnet) |

The linear range is x > 0 for ReLU and 0 < x < 6 for ReLU6 (EfficientNet-Lite,
MobileNet): where ReLU6 saturates its gradient is zero, and guided
backpropagation keeps that gate. The deconvnet ignores the forward input of a
rectifier, so it treats ReLU and ReLU6 alike.

Max-pooling crosses backwards through its *switches* under every rule: the
signal goes to the position that won the max (Zeiler & Fergus' unpooling with
switches is exactly the gradient of max-pooling; XLA computes it with one
select-and-scatter). `max_pool` therefore only exists so that models read
uniformly.

The rules are `jax.custom_vjp` functions chosen when the model is built (a
module attribute), so a jitted attribution is an ordinary compiled gradient: no
hooks, nothing mutable, and reused layers behave like any other.

Probes. `probe(module, name, x)` returns `x + offsets[name]` when the variables
passed to `apply` contain an `offsets` collection with that name, else `x`
unchanged. Differentiating with respect to a zero offset gives the gradient of
the output with respect to that intermediate activation (Grad-CAM), without
splitting the model in two.

References: Zeiler & Fergus, "Visualizing and Understanding Convolutional
Networks", ECCV 2014; Springenberg, Dosovitskiy, Brox & Riedmiller, "Striving for
Simplicity: The All Convolutional Net", ICLR 2015 workshop.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

RULES = ("gradient", "guided", "deconvnet")
OFFSETS = "offsets"  # Variable collection of additive probes, {tap name: [B, ...]}.


def check_rule(rule: str) -> None:
    """Raises ValueError naming the valid rules."""
    if rule not in RULES:
        raise ValueError(f"Unknown backward rule {rule!r}; expected one of {RULES}.")


def _guided(forward_fn, gate_fn):
    """A rectifier whose VJP keeps g where gate_fn(x) and g > 0."""

    @jax.custom_vjp
    def fn(x):
        return forward_fn(x)

    def fwd(x):
        return forward_fn(x), x

    def bwd(x, g):
        return (jnp.where(gate_fn(x) & (g > 0), g, jnp.zeros_like(g)),)

    fn.defvjp(fwd, bwd)
    return fn


def _deconvnet(forward_fn):
    """A rectifier whose VJP rectifies the incoming signal and ignores x."""

    @jax.custom_vjp
    def fn(x):
        return forward_fn(x)

    def fwd(x):
        return forward_fn(x), None

    def bwd(_, g):
        return (jnp.maximum(g, 0),)

    fn.defvjp(fwd, bwd)
    return fn


_relu6 = jax.nn.relu6
_RULED = {
    ("relu", "gradient"): jax.nn.relu,
    ("relu", "guided"): _guided(jax.nn.relu, lambda x: x > 0),
    ("relu", "deconvnet"): _deconvnet(jax.nn.relu),
    ("relu6", "gradient"): _relu6,
    ("relu6", "guided"): _guided(_relu6, lambda x: (x > 0) & (x < 6)),
    ("relu6", "deconvnet"): _deconvnet(_relu6),
}


def relu(x: jax.Array, rule: str = "gradient") -> jax.Array:
    """max(x, 0) with the backward pass of `rule` (see the module docstring)."""
    check_rule(rule)
    return _RULED["relu", rule](x)


def relu6(x: jax.Array, rule: str = "gradient") -> jax.Array:
    """min(max(x, 0), 6) with the backward pass of `rule`."""
    check_rule(rule)
    return _RULED["relu6", rule](x)


def max_pool(x: jax.Array, rule: str = "gradient", *, window: int = 2) -> jax.Array:
    """Non-overlapping `window` x `window` max-pooling (VALID) of [B, H, W, C].

    Every rule uses the pooling switches backwards (the gradient of max-pooling).
    """
    check_rule(rule)
    return nn.max_pool(x, (window, window), strides=(window, window))


def probe(module: nn.Module, name: str, x: jax.Array) -> jax.Array:
    """`x` plus the offset `name` of the `offsets` collection, when one was passed."""
    if module.has_variable(OFFSETS, name):
        return x + module.get_variable(OFFSETS, name)
    return x
