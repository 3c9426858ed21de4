r"""Regression losses and their VJPs, NumPy float64: MSE, L1, smooth L1 and Huber.

Each is a function of the difference d = input - target, element by element, reduced over all
elements; input and target broadcast against each other (torch warns but broadcasts), so each
VJP sums its gradient back to its argument's shape. The forward/VJP and reduction conventions are
those of ``references._loss_common``.

Follows ``torch.nn.MSELoss``, ``torch.nn.L1Loss``, ``torch.nn.SmoothL1Loss`` and
``torch.nn.HuberLoss`` (https://pytorch.org/docs/stable/nn.html#loss-functions), named in each
docstring.
"""

from __future__ import annotations

import numpy as np

from references._broadcast import sum_to_shape as _sum_to_shape
from references._loss_common import (
    Array,
    _pair,
    _reduce,
    _reduce_vjp,
)


def mse_loss(input: Array, target: Array, reduction: str = "mean") -> Array:
    r"""l_n = (x_n - y_n)^2, reduced: "none" -> l, "sum" -> sum_n l_n, "mean" -> sum_n l_n / N.

    N is the number of elements of l (the broadcast shape of x and y).

    Derivative: dl_n/dx_n = 2 (x_n - y_n) = -dl_n/dy_n. VJP: with gbar_n = dL/dl_n (g_n, g or
    g / N), dL/dx = 2 gbar (x - y) and dL/dy = -dL/dx, each summed back to its argument's shape
    where x and y were broadcast against each other.

    Numerics: a difference and a square, each correctly rounded, so no rewrite is needed; it
    overflows only where (x - y)^2 itself exceeds the float64 range, as torch does.
    Follows ``torch.nn.functional.mse_loss`` / ``torch.nn.MSELoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.MSELoss.html). The documentation asks for
    equal shapes; torch broadcasts different shapes (with a UserWarning), and so does this
    reference. An empty input with "mean" gives nan, as in torch.
    """
    diff = np.asarray(input, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    loss = diff * diff
    return _reduce(loss, reduction, loss.size)


def mse_loss_vjp(
    g: Array, input: Array, target: Array, reduction: str = "mean"
) -> dict[str, Array]:
    r"""VJP of MSE:  dL/dx = 2 gbar (x - y),  dL/dy = -dL/dx,  gbar = dL/dl (see mse_loss)."""
    x = np.asarray(input, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    diff = x - y
    gbar = _reduce_vjp(g, diff.shape, reduction, diff.size)
    d_input = 2.0 * gbar * diff
    return {"input": _sum_to_shape(d_input, x.shape), "target": _sum_to_shape(-d_input, y.shape)}


def l1_loss(input: Array, target: Array, reduction: str = "mean") -> Array:
    r"""l_n = |x_n - y_n|, reduced by "none", "sum" or "mean" (over all N elements).

    Derivative: dl/dx = sign(x - y) = -dl/dy, with torch's choice sign(0) = 0 at the kink.
    Numerics: exact up to the rounding of the difference.
    Follows ``torch.nn.functional.l1_loss`` / ``torch.nn.L1Loss``
    (https://pytorch.org/docs/stable/generated/torch.nn.L1Loss.html); input and target broadcast.
    """
    _, _, d = _pair(input, target)
    loss = np.abs(d)
    return _reduce(loss, reduction, loss.size)


def l1_loss_vjp(g: Array, input: Array, target: Array, reduction: str = "mean") -> dict[str, Array]:
    r"""dL/dx = gbar sign(x - y) (sign(0) = 0), dL/dy = -dL/dx, summed back to each shape."""
    x, y, d = _pair(input, target)
    d_input = _reduce_vjp(g, d.shape, reduction, d.size) * np.sign(d)
    return {"input": _sum_to_shape(d_input, x.shape), "target": _sum_to_shape(-d_input, y.shape)}


def smooth_l1_loss(
    input: Array, target: Array, reduction: str = "mean", beta: float = 1.0
) -> Array:
    r"""l_n = 0.5 d_n^2 / beta if |d_n| < beta, else |d_n| - 0.5 beta;  d = x - y.

    beta = 0 is the L1 loss (the quadratic piece is empty). Derivative: dl/dd = d / beta inside,
    sign(d) outside (continuous at |d| = beta); for beta = 0, sign(d) with sign(0) = 0 as torch.
    dl/dx = dl/dd = -dl/dy. Reduction over all elements.
    Numerics: the branches are selected, never both evaluated into the result, so beta = 0 never
    divides by zero in the output.
    Follows ``torch.nn.functional.smooth_l1_loss`` / ``torch.nn.SmoothL1Loss``
    (https://pytorch.org/docs/stable/generated/torch.nn.SmoothL1Loss.html).
    """
    _, _, d = _pair(input, target)
    a = np.abs(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = np.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta)
    return _reduce(loss, reduction, loss.size)


def smooth_l1_loss_vjp(
    g: Array, input: Array, target: Array, reduction: str = "mean", beta: float = 1.0
) -> dict[str, Array]:
    r"""dL/dx = gbar (d / beta if |d| < beta else sign(d)),  dL/dy = -dL/dx."""
    x, y, d = _pair(input, target)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(np.abs(d) < beta, d / beta, np.sign(d))
    d_input = _reduce_vjp(g, d.shape, reduction, d.size) * slope
    return {"input": _sum_to_shape(d_input, x.shape), "target": _sum_to_shape(-d_input, y.shape)}


def huber_loss(input: Array, target: Array, reduction: str = "mean", delta: float = 1.0) -> Array:
    r"""l_n = 0.5 d_n^2 if |d_n| < delta, else delta (|d_n| - 0.5 delta);  d = x - y, delta > 0.

    Huber = delta * SmoothL1 with beta = delta. Derivative: dl/dd = d inside, delta sign(d)
    outside (continuous at |d| = delta); dl/dx = dl/dd = -dl/dy. Reduction over all elements.
    Written with the clamped difference c = clamp(d, -delta, delta) (the derivative): l = c (d -
    c / 2) is 0.5 d^2 inside and delta (|d| - 0.5 delta) outside, each with the same operations
    as the piecewise form (so the same roundings), without selecting between two arrays.
    Follows ``torch.nn.functional.huber_loss`` / ``torch.nn.HuberLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.HuberLoss.html).
    """
    _, _, d = _pair(input, target)
    c = np.clip(d, -delta, delta)
    loss = c * (d - 0.5 * c)
    return _reduce(loss, reduction, loss.size)


def huber_loss_vjp(
    g: Array, input: Array, target: Array, reduction: str = "mean", delta: float = 1.0
) -> dict[str, Array]:
    r"""dL/dx = gbar (d if |d| <= delta else delta sign(d)) = gbar clamp(d, -delta, delta),
    dL/dy = -dL/dx."""
    x, y, d = _pair(input, target)
    slope = np.clip(d, -delta, delta)
    d_input = _reduce_vjp(g, d.shape, reduction, d.size) * slope
    return {"input": _sum_to_shape(d_input, x.shape), "target": _sum_to_shape(-d_input, y.shape)}
