"""A GELU written as a torch.autograd.Function, the way a custom kernel is wrapped: a correct
one (``gelu``) and one with a planted backward bug (``bad_gelu``).

gelu(x) = x Phi(x), Phi the standard normal CDF; d/dx = Phi(x) + x phi(x).
"""

from __future__ import annotations

import math

import torch

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x * _SQRT_HALF)


def _pdf(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * x * x) * _INV_SQRT_2PI


class _Gelu(torch.autograd.Function):
    """forward / setup_context / backward / jvp: the form torch.func's transforms (jvp, vmap,
    torch.func.vjp) require of an autograd.Function; ``generate_vmap_rule``: vmap batches it by
    running this forward and backward on batched tensors (gradsuite's vmap check then checks
    that rule; without one it skips, in torch's words)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x * _cdf(x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[override]
        (x,) = inputs
        ctx.save_for_backward(x)
        ctx.x = x  # forward mode reads the primal here

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return g * (_cdf(x) + x * _pdf(x))

    @staticmethod
    def jvp(ctx, t: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return (_cdf(ctx.x) + ctx.x * _pdf(ctx.x)) * t


class _BadGelu(_Gelu):
    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return g * _cdf(x)  # planted bug: the x * pdf(x) term is missing


def gelu(input: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """Exact GELU (approximate="none"); the tanh form is torch's own."""
    if approximate != "none":
        return torch.nn.functional.gelu(input, approximate=approximate)
    return _Gelu.apply(input)


def bad_gelu(input: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """GELU whose backward forgets a term: gradsuite must catch it."""
    if approximate != "none":
        return torch.nn.functional.gelu(input, approximate=approximate)
    return _BadGelu.apply(input)
