r"""Probabilistic losses and their VJPs, NumPy float64: Poisson and Gaussian negative log
likelihood, and the Kullback-Leibler divergence.

Each is a negative log likelihood (or a divergence) evaluated element by element and reduced over
all elements; the target is differentiable as in torch. The forward/VJP and reduction conventions
are those of ``references._loss_common``.

Follows ``torch.nn.PoissonNLLLoss``, ``torch.nn.GaussianNLLLoss`` and ``torch.nn.KLDivLoss``
(https://pytorch.org/docs/stable/nn.html#loss-functions), and torch's kernel
(aten/src/ATen/native/Loss.cpp) where the documentation leaves a detail open.
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


def poisson_nll_loss(
    input: Array,
    target: Array,
    log_input: bool = True,
    full: bool = False,
    eps: float = 1e-8,
    reduction: str = "mean",
) -> Array:
    r"""Poisson negative log likelihood of rate exp(x) (log_input) or x, for counts y.

    l_n = exp(x_n) - y_n x_n                 (log_input=True)
    l_n = x_n - y_n log(x_n + eps)           (log_input=False)
    plus, if ``full``, Stirling's term  y log y - y + 0.5 log(2 pi y)  where y > 1 (0 where
    y <= 1, as torch masks it). Reduction over all elements.

    Derivatives: log_input: dl/dx = exp(x) - y, dl/dy = -x; otherwise dl/dx = 1 - y / (x + eps),
    dl/dy = -log(x + eps); Stirling adds dl/dy = log y + 1 / (2 y) for y > 1 (0 for y <= 1: the
    term jumps at y = 1, where the loss is not differentiable in y).

    Numerics: textbook forms, as torch; exp(x) overflows only where the loss itself exceeds the
    float range. Follows ``torch.nn.functional.poisson_nll_loss`` / ``torch.nn.PoissonNLLLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.PoissonNLLLoss.html) and torch's kernel
    (aten/src/ATen/native/Loss.cpp) for the y <= 1 mask. At y = 0 with ``full`` torch's target
    gradient is nan (0 * log 0 in the masked branch); this reference is not defined there for
    the target gradient either (0 * -inf), see KNOWN_DIFFERENCES.md.
    """
    x, y, _ = _pair(input, target)
    loss = np.exp(x) - y * x if log_input else x - y * np.log(x + eps)
    if full:
        big = y > 1
        ys = np.where(big, y, 2.0)  # any value > 1 keeps log finite in the unselected branch
        loss = loss + np.where(big, ys * np.log(ys) - ys + 0.5 * np.log(2 * np.pi * ys), 0.0)
    return _reduce(loss, reduction, loss.size)


def poisson_nll_loss_vjp(
    g: Array,
    input: Array,
    target: Array,
    log_input: bool = True,
    full: bool = False,
    eps: float = 1e-8,
    reduction: str = "mean",
) -> dict[str, Array]:
    r"""dL/dx = gbar (exp(x) - y | 1 - y / (x + eps)), dL/dy = gbar (-x | -log(x + eps)) + Stirling.

    The Stirling part of dL/dy is 0 * log(y) where y <= 1: 0 for y in (0, 1], nan at y = 0 with
    ``full``, exactly as torch's autograd computes it (the VJP of the masked term; the true
    derivative there is finite). KNOWN_DIFFERENCES.md.
    """
    x, y, d = _pair(input, target)
    gbar = _reduce_vjp(g, d.shape, reduction, d.size)
    if log_input:
        d_input, d_target = np.exp(x) - y, -x + 0.0 * y
    else:
        d_input, d_target = 1.0 - y / (x + eps), -np.log(x + eps) + 0.0 * y
    if full:
        with np.errstate(divide="ignore", invalid="ignore"):
            d_target = d_target + np.where(y > 1, np.log(y) + 0.5 / y, 0.0 * np.log(y))
    return {"input": _sum_to_shape(gbar * d_input, x.shape),
            "target": _sum_to_shape(gbar * d_target, y.shape)}


def _gaussian_var(x: Array, var: Array) -> Array:
    r"""var reshaped as torch does: input.shape[:-1] gets a trailing 1; else it must broadcast."""
    v = np.asarray(var, dtype=np.float64)
    if v.shape != x.shape:
        if v.shape == x.shape[:-1]:
            v = v[..., None]
        elif not (v.ndim == x.ndim
                  and sum(b for a, b in zip(x.shape, v.shape, strict=True) if a != b) == 1):
            raise ValueError("var is of incorrect size")
    if np.any(v < 0):
        raise ValueError("var has negative entry/entries")
    return v


def gaussian_nll_loss(
    input: Array,
    target: Array,
    var: Array,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Array:
    r"""Gaussian negative log likelihood of target y under N(x, var).

    l_n = 0.5 (log v_n + (x_n - y_n)^2 / v_n)  (+ 0.5 log(2 pi) if ``full``),  v = max(var, eps),
    reduced over all elements. ``var`` has the input's shape, or the input's shape without its
    last dimension (one variance per row), or the input's shape with exactly one dimension of
    size 1; it is broadcast against the input.

    Derivatives: dl/dx = (x - y) / v = -dl/dy;  dl/dvar = 0.5 (1 / v - (x - y)^2 / v^2).
    torch clamps var in place under ``torch.no_grad()``, so the clamp is invisible to autograd:
    below eps the gradient w.r.t. var is still 0.5 (1/eps - d^2/eps^2) (a straight-through
    clamp), not the 0 of max(var, eps). This reference follows torch (KNOWN_DIFFERENCES.md).
    The VJP w.r.t. var sums over the broadcast dimensions.

    Numerics: the textbook form; eps keeps log v and 1 / v finite at var = 0.
    Follows ``torch.nn.functional.gaussian_nll_loss`` / ``torch.nn.GaussianNLLLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.GaussianNLLLoss.html).
    """
    x, _, d = _pair(input, target)
    v = np.maximum(_gaussian_var(x, var), eps)
    loss = 0.5 * (np.log(v) + d * d / v)
    if full:
        loss = loss + 0.5 * np.log(2 * np.pi)
    return _reduce(loss, reduction, loss.size)


def gaussian_nll_loss_vjp(
    g: Array,
    input: Array,
    target: Array,
    var: Array,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> dict[str, Array]:
    r"""dL/dx = gbar d / v = -dL/dy,  dL/dvar = sum over broadcast of gbar 0.5 (1/v - d^2/v^2)."""
    x, y, d = _pair(input, target)
    v0 = _gaussian_var(x, var)
    v = np.maximum(v0, eps)
    shape = np.broadcast_shapes(d.shape, v.shape)
    gbar = _reduce_vjp(g, shape, reduction, int(np.prod(shape)))
    d_input = gbar * d / v
    d_var = _sum_to_shape(gbar * 0.5 * (1.0 / v - d * d / (v * v)), v0.shape)
    return {"input": _sum_to_shape(d_input, x.shape), "target": _sum_to_shape(-d_input, y.shape),
            "var": np.reshape(d_var, np.shape(var))}


def kl_div(input: Array, target: Array, reduction: str = "mean", log_target: bool = False) -> Array:
    r"""Kullback-Leibler divergence, pointwise: x = log q (the input), y = p or log p (the target).

    l_n = y_n (log y_n - x_n)            (log_target=False; 0 where y_n = 0, the limit of y log y)
    l_n = exp(y_n) (y_n - x_n)           (log_target=True)
    Reduction: "none", "sum", "mean" (over all elements: not the divergence), or "batchmean"
    (sum / input.shape[0], the divergence averaged over the batch; the plain sum for a 0-d input).

    Derivatives: dl/dx = -y (resp. -exp(y));  dl/dy = log y + 1 - x (resp. exp(y)(y - x + 1)).
    At y = 0 (log_target=False) the target derivative is -inf; torch returns nan there (the
    VJP of xlogy at 0), and this reference follows torch.

    Numerics: y log y is formed as xlogy (0 at y = 0, no 0 * -inf), as torch does.
    Follows ``torch.nn.functional.kl_div`` / ``torch.nn.KLDivLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.KLDivLoss.html).
    """
    x, y, _ = _pair(input, target)
    if log_target:
        loss = np.exp(y) * (y - x)
    else:
        with np.errstate(divide="ignore"):
            loss = np.where(y == 0, 0.0, y * np.log(np.where(y == 0, 1.0, y))) - y * x
    return _kl_reduce(loss, reduction, x)


def _kl_denominator(reduction: str, x: Array, loss: Array) -> tuple[str, float]:
    if reduction == "batchmean":
        return "mean", float(x.shape[0]) if x.ndim else 1.0
    return reduction, float(loss.size)


def _kl_reduce(loss: Array, reduction: str, x: Array) -> Array:
    reduction, denominator = _kl_denominator(reduction, x, loss)
    return _reduce(loss, reduction, denominator)


def kl_div_vjp(
    g: Array, input: Array, target: Array, reduction: str = "mean", log_target: bool = False
) -> dict[str, Array]:
    r"""dL/dx = -gbar y (or -gbar e^y),  dL/dy = gbar (log y + 1 - x) (or gbar e^y (y - x + 1))."""
    x, y, d = _pair(input, target)
    red, denominator = _kl_denominator(reduction, x, d)
    gbar = _reduce_vjp(g, d.shape, red, denominator)
    if log_target:
        e = np.exp(y)
        d_input, d_target = -e + 0.0 * x, e * (y - x + 1.0)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            # torch: nan at y = 0 (xlogy's VJP there), where the derivative is -inf.
            d_input, d_target = -y + 0.0 * x, np.where(y == 0, np.nan, np.log(y) + 1.0 - x)
    return {"input": _sum_to_shape(gbar * d_input, x.shape),
            "target": _sum_to_shape(gbar * d_target, y.shape)}
