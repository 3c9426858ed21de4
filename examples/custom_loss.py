"""A loss of your own, with your own NumPy reference: log-cosh.

    loss(x, t) = reduce(log(cosh(x - t))),  d loss / dx = reduce'(tanh(x - t)) = -d loss / dt

log(cosh(d)) = |d| + log1p(exp(-2|d|)) - log 2 stays finite for large |d| (cosh overflows
at |d| ~ 710 in float64).
"""

from __future__ import annotations

import numpy as np
import torch


def log_cosh_loss(input: torch.Tensor, target: torch.Tensor,
                  reduction: str = "mean") -> torch.Tensor:
    """The torch implementation under test (half precision computed in float32, rounded once)."""
    half = input.dtype in (torch.float16, torch.bfloat16)
    d = (input.float() - target.float()) if half else input - target
    pointwise = d.abs() + torch.log1p(torch.exp(-2 * d.abs())) - np.log(2.0)
    if reduction != "none":
        pointwise = pointwise.sum() if reduction == "sum" else pointwise.mean()
    return pointwise.to(input.dtype)


def log_cosh_loss_reference(input: np.ndarray, target: np.ndarray,
                            reduction: str = "mean") -> np.ndarray:
    """NumPy, float64, from the formula."""
    d = np.abs(input - target)
    pointwise = d + np.log1p(np.exp(-2 * d)) - np.log(2.0)
    if reduction == "none":
        return pointwise
    return np.asarray(pointwise.sum() if reduction == "sum" else pointwise.mean())


def log_cosh_loss_reference_vjp(g: np.ndarray, input: np.ndarray, target: np.ndarray,
                                reduction: str = "mean") -> dict[str, np.ndarray]:
    """d/dx log cosh(x - t) = tanh(x - t); the mean divides by the number of elements."""
    scale = 1.0 / input.size if reduction == "mean" and input.size else 1.0
    grad = np.broadcast_to(g, input.shape) * np.tanh(input - target) * scale
    return {"input": grad, "target": -grad}
