r"""Muon's update rule, NumPy float64 with torch's bfloat16 Newton-Schulz iteration emulated:
momentum, an orthogonalised update, decoupled weight decay and a shape-dependent learning rate.

The rule, state and hyper-parameter conventions are those of ``references._optim_common``.
Follows ``torch.optim.Muon`` (https://pytorch.org/docs/stable/generated/torch.optim.Muon.html,
after K. Jordan, "Muon: An optimizer for hidden layers in neural networks", 2024, and Liu et
al., "Muon is Scalable for LLM Training", 2025) and its implementation (``torch/optim/_muon.py``),
read for torch 2.13.0, operation for operation.

torch runs the Newton-Schulz iteration in bfloat16 whatever the parameters' dtype (as Jordan's
implementation does): every intermediate is rounded to bfloat16. The reference does the same
rounding in NumPy (round to nearest, ties to even, through float32 as torch's conversion goes),
so that the comparison measures torch's arithmetic, not bfloat16's; the exact float64 iteration
differs from torch's by up to ~0.05 absolute in the orthogonalised update (KNOWN_DIFFERENCES.md).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from references._optim_common import Array, _buffers, _gradient, _lerp

# Keller Jordan's quintic coefficients and step count, torch's defaults.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
# float32's unit roundoff: torch accumulates bfloat16 products in float32.
_U32 = 2.0**-24


class MuonState(NamedTuple):
    r"""Per-parameter state of :func:`muon`; the field is torch's ``state[p]`` key.

    ``momentum_buffer``: B_t = mu B_{t-1} + (1 - mu) g_t, the exponential moving average of the
    gradients (torch's ``lerp_``; its documentation writes mu B_{t-1} + g_t, KNOWN_DIFFERENCES.md).
    """

    momentum_buffer: Array


def _bfloat16(x: Array, error: Array | float = 0.0) -> tuple[Array, int]:
    r"""``x`` rounded to bfloat16 (float64 -> float32 -> bfloat16, each to nearest even, as torch
    casts), and how many elements lie within ``error`` of a rounding tie (the midpoint of their
    two bfloat16 neighbours): where torch's own value of x may be off by ``error``, those could
    round either way."""
    x = np.asarray(x, dtype=np.float64)
    bits = x.astype(np.float32).view(np.uint32)
    low = bits & np.uint32(0xFFFF0000)
    high = (low.astype(np.uint64) + 0x10000).astype(np.uint32)
    nearest = (bits.astype(np.uint64) + 0x7FFF + ((bits >> 16) & 1)).astype(np.uint32) \
        & np.uint32(0xFFFF0000)
    low_f, high_f, near_f = (v.view(np.float32).astype(np.float64) for v in (low, high, nearest))
    ties = np.abs(x - (low_f + high_f) / 2) <= error
    return near_f, int(np.count_nonzero(ties))


def _newton_schulz(update: Array, coefficients: tuple[float, float, float], steps: int,
                   eps: float, input_error: Array | float = 0.0) -> tuple[Array, int]:
    r"""NS_k^{(a,b,c)}(X; eps) as torch computes it, in bfloat16; and the number of roundings
    that lie within torch's float32 accumulation error of a bfloat16 tie.

    With X transposed when it has more rows than columns (so X X^T is the smaller Gram matrix):

        X   = X / max(||X||_F, eps)                  (spectral norm <= 1; eps in bfloat16)
        k times:  A = X X^T;  B = b A + c A A;  X = a X + B X
        transposed back.

    Each line is one torch bfloat16 operation, rounded once to bfloat16 after a float32
    accumulation, which the reference does in float64 (bfloat16 products are exact in both).
    A float32 sum of k products is within (k + 2) 2**-24 sum |terms| of the exact value (any
    summation order; +2 for the scaling and the added term of addmm); where the exact value lies
    that close to a tie, torch's rounding is undetermined, and the count says so.
    ``input_error`` bounds how far torch's X (computed in the parameters' dtype) may be from
    this one before its first rounding.
    """
    a, b, c = coefficients
    transposed = update.shape[0] > update.shape[1]
    x = update.T if transposed else update
    error = np.asarray(input_error, dtype=np.float64)
    x, ties = _bfloat16(x, error.T if transposed and error.ndim == 2 else error)
    exact_norm = math.sqrt(float(np.sum(x * x)))
    norm, tied = _bfloat16(np.asarray(exact_norm), x.size * _U32 * exact_norm)
    ties += tied
    # clamp(min=eps) of a bfloat16 norm is bfloat16 too: eps itself is rounded.
    denominator, _ = _bfloat16(np.asarray(max(float(norm), eps)))
    scaled = x / denominator
    x, tied = _bfloat16(scaled, _U32 * np.abs(scaled))
    ties += tied
    for _ in range(steps):
        k, rows = x.shape[1], x.shape[0]
        gram, tied_a = _bfloat16(x @ x.T, (k + 2) * _U32 * (np.abs(x) @ np.abs(x).T))
        poly, tied_b = _bfloat16(b * gram + c * (gram @ gram),
                                 (rows + 2) * _U32 * (abs(b) * np.abs(gram)
                                                      + abs(c) * (np.abs(gram) @ np.abs(gram))))
        x, tied_x = _bfloat16(a * x + poly @ x,
                              (rows + 2) * _U32 * (abs(a) * np.abs(x) + np.abs(poly) @ np.abs(x)))
        ties += tied_a + tied_b + tied_x
    return (x.T if transposed else x), ties


def _adjusted_lr(lr: float, adjust_lr_fn: str | None, shape: tuple[int, ...]) -> float:
    r"""gamma sqrt(max(1, A / B)) ("original", None), 0.2 gamma sqrt(max(A, B))
    ("match_rms_adamw") for a parameter of shape (A, B)."""
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return lr * math.sqrt(max(1, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return lr * 0.2 * math.sqrt(max(rows, cols))
    raise ValueError(f"adjust_lr_fn must be None, 'original' or 'match_rms_adamw'; got "
                     f"{adjust_lr_fn!r}")


def _momentum(grad: Array, state: MuonState | None, momentum: float,
              nesterov: bool) -> tuple[Array, Array]:
    r"""(B_t, the Newton-Schulz input): B_t = lerp(B_{t-1}, g, 1 - mu) and, with nesterov,
    lerp(g, B_t, mu), else B_t (torch's two lerps, ``references._optim_common._lerp``)."""
    g = np.asarray(grad, dtype=np.float64)
    (buf,) = _buffers(state, g, "momentum_buffer")
    buf = _lerp(buf, g, 1 - momentum)
    return buf, (_lerp(g, buf, momentum) if nesterov else buf)


def muon(
    param: Array,
    grad: Array,
    state: MuonState | None,
    *,
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    momentum: float = 0.95,
    nesterov: bool = True,
    ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    eps: float = 1e-7,
    ns_steps: int = 5,
    adjust_lr_fn: str | None = None,
) -> tuple[Array, MuonState]:
    r"""One step of Muon for a matrix parameter, as torch.optim.Muon computes it.

    With theta_{t-1} = ``param`` of shape (A, B), gamma = ``lr``, lambda = ``weight_decay``,
    mu = ``momentum`` and B_0 = 0:

        B_t      = mu B_{t-1} + (1 - mu) g_t
        B~_t     = (1 - mu) g_t + mu B_t                    if nesterov, else B_t
        O_t      = NS_k^{(a,b,c)}(B~_t; eps)                (in bfloat16, see _newton_schulz)
        theta    = theta_{t-1} (1 - gamma lambda)           (decoupled weight decay)
        theta_t  = theta - AdjustLR(gamma; A, B) O_t

    AdjustLR: gamma sqrt(max(1, A / B)) ("original", the default) or 0.2 gamma sqrt(max(A, B))
    ("match_rms_adamw"). Evaluation order as torch's single-tensor path: the two lerps, the
    iteration, then theta (1 - gamma lambda) and the subtraction of AdjustLR times O_t (exact
    bfloat16 values, widened). torch has no maximize option for Muon and no foreach path.

    Divergences from the documentation (KNOWN_DIFFERENCES.md): it writes B_t = mu B_{t-1} + g_t
    and g_t + mu B_t; torch keeps the moving average above, whose buffer is (1 - mu) times the
    documented one. Newton-Schulz starts by dividing by the norm, so O_t is the same unless the
    norm falls below eps, but the stored momentum_buffer differs. It calls weight_decay an "L2
    penalty" while applying it decoupled, as its own pseudo-code does.
    """
    theta, g = _gradient(param, grad, maximize=False)
    if theta.ndim != 2:
        raise ValueError(f"Muon takes 2-D parameters only; got shape {theta.shape}")
    buf, update = _momentum(g, state, momentum, nesterov)
    ortho, _ = _newton_schulz(update, ns_coefficients, ns_steps, eps)
    adjusted = _adjusted_lr(lr, adjust_lr_fn, theta.shape)
    theta = theta * (1 - lr * weight_decay)
    return theta - adjusted * ortho, MuonState(buf)
