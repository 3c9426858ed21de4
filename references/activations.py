r"""Activation functions and their vector-Jacobian products, NumPy float64.

Each forward ``f(input, **options)`` is paired with ``f_vjp(g, input, **options)``, returning
``{"input": g * f'(input)}`` for elementwise functions (the Jacobian is diagonal) and the
full contraction ``J^T g`` for softmax-like functions. All forms are numerically stable for
``|x|`` up to at least 1e4: no ``exp`` of a large positive number is ever taken.

The torch documentation followed is named in each docstring (https://pytorch.org/docs/stable/nn.html).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def sigmoid(input: Array) -> Array:
    r"""sigmoid(x) = 1 / (1 + exp(-x)).

    Derivative: sigmoid'(x) = sigmoid(x) (1 - sigmoid(x)).

    Stable form: for x >= 0 use 1 / (1 + exp(-x)); for x < 0 use exp(x) / (1 + exp(x)), so the
    argument of ``exp`` is never positive and nothing overflows.
    Follows ``torch.sigmoid`` / ``torch.nn.Sigmoid``.
    """
    x = np.asarray(input, dtype=np.float64)
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_vjp(g: Array, input: Array) -> dict[str, Array]:
    r"""d sigmoid/dx = sigmoid(x) (1 - sigmoid(x));  VJP: g * s (1 - s)."""
    s = sigmoid(input)
    return {"input": g * s * (1.0 - s)}


def tanh(input: Array) -> Array:
    r"""tanh(x) = (exp(x) - exp(-x)) / (exp(x) + exp(-x)).

    Derivative: tanh'(x) = 1 - tanh(x)^2.

    ``np.tanh`` saturates to +-1 without overflow. Follows ``torch.tanh`` / ``torch.nn.Tanh``.
    """
    return np.tanh(np.asarray(input, dtype=np.float64))


def tanh_vjp(g: Array, input: Array) -> dict[str, Array]:
    r"""d tanh/dx = 1 - tanh(x)^2;  VJP: g * (1 - tanh(x)^2)."""
    t = tanh(input)
    return {"input": g * (1.0 - t * t)}


def relu(input: Array) -> Array:
    r"""relu(x) = max(0, x).

    Derivative: 1 for x > 0, 0 for x < 0. At the kink x = 0 torch's autograd uses the
    subgradient 0 (the backward is ``g * (x > 0)``); the reference does the same.
    Follows ``torch.nn.functional.relu`` / ``torch.nn.ReLU``.
    """
    x = np.asarray(input, dtype=np.float64)
    return np.maximum(x, 0.0)


def relu_vjp(g: Array, input: Array) -> dict[str, Array]:
    r"""d relu/dx = [x > 0]  (0 at x = 0, torch's convention);  VJP: g * [x > 0]."""
    return {"input": g * (np.asarray(input) > 0)}


def leaky_relu(input: Array, negative_slope: float = 0.01) -> Array:
    r"""leaky_relu(x) = x for x >= 0, negative_slope * x for x < 0.

    Derivative: 1 for x > 0, negative_slope for x < 0. At x = 0 torch's backward takes the
    x > 0 branch's complement, i.e. negative_slope (``self > 0 ? grad : grad * slope``).
    Follows ``torch.nn.functional.leaky_relu`` / ``torch.nn.LeakyReLU``.
    """
    x = np.asarray(input, dtype=np.float64)
    return np.where(x >= 0, x, negative_slope * x)


def leaky_relu_vjp(g: Array, input: Array, negative_slope: float = 0.01) -> dict[str, Array]:
    r"""d leaky_relu/dx = 1 if x > 0 else negative_slope;  VJP: g * that."""
    return {"input": g * np.where(np.asarray(input) > 0, 1.0, negative_slope)}


def softmax(input: Array, dim: int = -1) -> Array:
    r"""softmax(x)_i = exp(x_i) / sum_j exp(x_j), along ``dim``.

    Jacobian: d s_i / d x_j = s_i (delta_ij - s_j), so the VJP is  s * (g - sum_j g_j s_j).

    Stable form: subtract m = max_j x_j first (softmax is shift invariant), so every exp
    argument is <= 0. Follows ``torch.nn.functional.softmax`` / ``torch.nn.Softmax``.
    """
    x = np.asarray(input, dtype=np.float64)
    e = np.exp(x - np.max(x, axis=dim, keepdims=True))
    return e / np.sum(e, axis=dim, keepdims=True)


def softmax_vjp(g: Array, input: Array, dim: int = -1) -> dict[str, Array]:
    r"""VJP of softmax: s * (g - <g, s>) with the inner product taken along ``dim``."""
    s = softmax(input, dim=dim)
    return {"input": s * (g - np.sum(g * s, axis=dim, keepdims=True))}


def log_softmax(input: Array, dim: int = -1) -> Array:
    r"""log_softmax(x)_i = x_i - log sum_j exp(x_j), along ``dim``.

    Jacobian: d y_i / d x_j = delta_ij - softmax(x)_j, so the VJP is  g - softmax(x) * sum_j g_j.

    Stable form: x - m - log sum_j exp(x_j - m) with m = max_j x_j, so every exp argument is
    <= 0 and the sum is >= 1 (its log is finite). Follows ``torch.nn.functional.log_softmax``.
    """
    x = np.asarray(input, dtype=np.float64)
    shifted = x - np.max(x, axis=dim, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=dim, keepdims=True))


def log_softmax_vjp(g: Array, input: Array, dim: int = -1) -> dict[str, Array]:
    r"""VJP of log_softmax: g - softmax(x) * sum_j g_j along ``dim``."""
    return {"input": g - softmax(input, dim=dim) * np.sum(g, axis=dim, keepdims=True)}


def identity(input: Array) -> Array:
    r"""identity(x) = x; derivative 1. The "no activation" layer of a network."""
    return np.asarray(input, dtype=np.float64)


def identity_vjp(g: Array, input: Array) -> dict[str, Array]:
    r"""VJP of the identity: g."""
    return {"input": np.asarray(g, dtype=np.float64)}
