r"""Private helpers shared by the loss references (``references/losses_*.py``), NumPy float64.

The convention every loss module follows: each forward ``f(input, target, **options)`` is paired
with ``f_vjp(g, input, target, **options)``, where ``g`` is the cotangent of the loss: a scalar for
``reduction="mean"`` or ``"sum"``, an array of the unreduced loss's shape for ``reduction="none"``.
The result maps each differentiable argument to the gradient of ``sum(g * loss)`` with respect to
it.

Every loss is first computed per element (the ``"none"`` form ``l``) and then reduced by one
shared rule, :func:`_reduce`: ``"sum"`` is sum_n l_n, ``"mean"`` is sum_n l_n / D with a
loss-specific denominator D (the element count for MSE, the total target weight for cross
entropy). Hence the VJP of the reduction is the same for every loss, :func:`_reduce_vjp`:
dL/dl_n = g_n, g or g / D.

Also here: the float64 view of an (input, target) pair, the overflow-free softplus and
sigmoid, and the active set of a hinge max(z, 0); the adjoint of broadcasting is
``references._broadcast.sum_to_shape``. The torch documentation followed: https://pytorch.org/docs/stable/nn.html#loss-functions.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from references import activations

Array = NDArray[np.float64]

_REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"reduction must be one of {', '.join(map(repr, _REDUCTIONS))}; got {reduction!r}"
        )


def _reduce(loss: Array, reduction: str, denominator: float) -> Array:
    r"""Reduce the per-element loss l: "none" -> l, "sum" -> sum_n l_n, "mean" -> sum_n l_n / D.

    D = 0 gives nan (0/0) or +-inf silently, as torch does.
    """
    _check_reduction(reduction)
    if reduction == "none":
        return loss
    total = np.sum(loss)
    if reduction == "sum":
        return np.asarray(total, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(total / denominator, dtype=np.float64)


def _reduce_vjp(g: Array, shape: tuple[int, ...], reduction: str, denominator: float) -> Array:
    r"""dL/dl_n for the reduction of a per-element loss l of ``shape``: g_n, g, or g / D."""
    _check_reduction(reduction)
    g = np.asarray(g, dtype=np.float64)
    if reduction == "mean":
        with np.errstate(divide="ignore", invalid="ignore"):
            g = g / denominator
    return np.broadcast_to(g, shape)


def _pair(input: Array, target: Array) -> tuple[Array, Array, Array]:
    x = np.asarray(input, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    return x, y, x - y


def _softplus(z: Array) -> Array:
    r"""log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)): never overflows, exact for z << 0."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def _sigmoid(z: Array) -> Array:
    r"""1 / (1 + exp(-z)) by :func:`references.activations.sigmoid`: full relative precision
    for z < 0 (exp(-z) large, no cancellation); 0 below z = -709.78, where the value is a
    subnormal < 2.3e-308."""
    return activations.sigmoid(z)


def _active(z: Array, clamp_closed: bool) -> NDArray[np.bool_]:
    r"""Where max(z, 0) passes its gradient: z >= 0 when ``clamp_closed`` (torch 2.13 and older:
    clamp_min's backward kept the gradient at the bound), z > 0 otherwise (torch 2.14 and newer
    give 0 at the bound; docs/conventions.md)."""
    return (z >= 0) if clamp_closed else (z > 0)
