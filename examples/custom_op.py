"""A softplus registered as a ``torch.library.custom_op``, with a fake (meta) implementation for
torch.compile and export, and its backward registered with ``register_autograd``.

softplus(x) = log(1 + exp(beta x)) / beta, linear (x) where beta x > threshold, as torch's own
F.softplus; d/dx = sigmoid(beta x) below the threshold, 1 above.
"""

from __future__ import annotations

from typing import Any

import torch


@torch.library.custom_op("gradsuite_examples::softplus", mutates_args=())
def softplus(input: torch.Tensor, beta: float = 1.0, threshold: float = 20.0) -> torch.Tensor:
    # Half precision computes in float32 and rounds once at the end, as torch's kernels do:
    # a chain of float16 operations would round at every step.
    x = input.float() if input.dtype in (torch.float16, torch.bfloat16) else input
    scaled = x * beta
    # clamp: exp of the branch torch.where discards must not overflow
    smooth = torch.log1p(torch.exp(torch.clamp(scaled, max=threshold))) / beta
    return torch.where(scaled > threshold, x, smooth).to(input.dtype)


@softplus.register_fake
def _(input: torch.Tensor, beta: float = 1.0, threshold: float = 20.0) -> torch.Tensor:
    return torch.empty_like(input)


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    x, beta, threshold = inputs
    ctx.save_for_backward(x)
    ctx.beta, ctx.threshold = beta, threshold


def _backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None, None]:
    (x,) = ctx.saved_tensors
    wide = x.dtype in (torch.float16, torch.bfloat16)
    xs, gs = (x.float(), g.float()) if wide else (x, g)
    scaled = xs * ctx.beta
    return torch.where(scaled > ctx.threshold, gs, gs * torch.sigmoid(scaled)).to(g.dtype), \
        None, None


softplus.register_autograd(_backward, setup_context=_setup_context)
