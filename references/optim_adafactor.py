r"""Adafactor's update rule, NumPy float64: factored second moments for matrices, a full one for
vectors, relative step sizes and update clipping.

The rule, state and hyper-parameter conventions are those of ``references._optim_common``.
Follows ``torch.optim.Adafactor`` (https://pytorch.org/docs/stable/generated/torch.optim.Adafactor.html,
after Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", 2018)
and its implementation (``torch/optim/_adafactor.py``), read for torch 2.13.0, operation for
operation.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from references._optim_common import Array, _gradient, _lerp, _next_step

# float64's machine epsilon: torch's eps1 when it is None, for float64 parameters.
_FLOAT64_EPS = float(np.finfo(np.float64).eps)


class AdafactorState(NamedTuple):
    r"""Per-parameter state of :func:`adafactor`; fields are torch's ``state[p]`` keys.

    ``step``: t, the number of steps taken including the one that produced this state (torch: a
    0-dim float32 tensor, exact for integers below 2**24).
    ``row_var``: R_t, the running mean over the last dimension of G_t^2, shape (..., n, 1); only
    for parameters of two or more dimensions (``None`` otherwise: torch has no such key).
    ``col_var``: C_t, the running mean over the second-to-last dimension, shape (..., 1, m);
    likewise only for two or more dimensions.
    ``variance``: V_t, the running mean of G_t^2 itself, only for 0-d and 1-d parameters.
    """

    step: float
    row_var: Array | None
    col_var: Array | None
    variance: Array | None


def _weight_in(weight: float, param_eps: float) -> float:
    """A lerp weight as torch's kernel holds it: in the parameters' precision, float32 for
    float32 (and for float16/bfloat16, whose kernels compute in float32); exact in float64."""
    return weight if param_eps <= _FLOAT64_EPS else float(np.float32(weight))


def adafactor(
    param: Array,
    grad: Array,
    state: AdafactorState | None,
    *,
    lr: float = 1e-2,
    beta2_decay: float = -0.8,
    eps: tuple[float | None, float] = (None, 1e-3),
    d: float = 1.0,
    weight_decay: float = 0.0,
    maximize: bool = False,
    param_eps: float = _FLOAT64_EPS,
) -> tuple[Array, AdafactorState]:
    r"""One step of Adafactor as torch.optim.Adafactor defines it.

    With theta_{t-1} = ``param``, gamma = ``lr``, tau = ``beta2_decay``, (eps1, eps2) = ``eps``
    (eps1 None: ``param_eps``, the machine epsilon of the parameters' dtype, as torch takes
    ``torch.finfo(param.dtype).eps``), d the clipping threshold, lambda = ``weight_decay``,
    and R_0 = C_0 = V_0 = 0:

        G_t       = -grad if maximize else grad
        t         = t + 1
        1 - b2_t  = t^tau                                (so b2_1 = 0: the first step has no memory)
        rho_t     = min(gamma, 1 / sqrt(t))
        alpha_t   = max(eps2, RMS(theta_{t-1})) rho_t    (RMS(x) = ||x||_2 / sqrt(numel))
        theta     = theta_{t-1} (1 - gamma lambda)       (decoupled weight decay)
        if dim(G_t) >= 2 (factored over the last two dimensions, (n, m)):
            R_t   = b2_t R_{t-1} + (1 - b2_t) mean_j G_t^2          (..., n, 1)
            C_t   = b2_t C_{t-1} + (1 - b2_t) mean_i G_t^2          (..., 1, m)
            V^_t  = R_t C_t / max(mean_i R_t, eps1)                 (..., n, m)
        else:
            V_t   = b2_t V_{t-1} + (1 - b2_t) G_t^2;   V^_t = V_t
        U_t       = G_t / sqrt(max(V^_t, eps1^2))
        U^_t      = U_t / max(1, RMS(U_t) / d)
        theta_t   = theta - alpha_t U^_t

    Means replace the paper's sums (R_t C_t / (1^T R_t) with sums equals R_t C_t / mean(R_t)
    with means, as torch's documentation notes). Evaluation order as torch's single-tensor and
    foreach paths: the row and column means as ||G_t||^2 / size along the dimension; the running
    means by torch's ``lerp_`` (``references._optim_common._lerp``: exactly the new mean when
    1 - b2_t = 1), whose scalar weight 1 - b2_t torch's kernel takes in the parameters' precision
    (float32 for float32 and half parameters: ``_weight_in``; with tau near 0, b2_t ~ -tau ln t
    is of the order of float32's rounding of 1 - b2_t, so the rounding changes the memory b2_t
    by tens of percent, and a variance estimate dominated by a past gradient with it); the
    clamp of V^_t at eps1^2 before the reciprocal square root; alpha_t / max(1, ||U_t||_2 /
    (sqrt(numel) d)) times U_t subtracted last. lr as a tensor is its value (torch's
    ``_to_scalar``).

    Divergences, all stated by torch's documentation: lr caps the relative step rho_t (the
    paper's constant is 0.01) and scales the decoupled weight decay; eps1 is applied to the
    variance estimate and the update (the paper adds eps1 to G_t^2 inside R and C); the paper's
    first-moment option (beta1) does not exist here. The documentation's argument list gives
    weight_decay's default as 1e-2 while the signature's is 0.0 (KNOWN_DIFFERENCES.md); this
    reference takes the signature's.
    """
    eps1, eps2 = eps
    if eps1 is None:
        eps1 = param_eps
    theta_prev, g = _gradient(param, grad, maximize=maximize)
    t = _next_step(state)
    one_minus_beta2 = _weight_in(t**beta2_decay, param_eps)
    rho = min(lr, 1 / t**0.5)
    alpha = max(eps2, float(np.linalg.norm(theta_prev.ravel())) / theta_prev.size**0.5) * rho
    theta = theta_prev * (1 - lr * weight_decay) if weight_decay != 0 else theta_prev
    row_var = col_var = variance = None
    if g.ndim >= 2:
        row_prev = (np.zeros((*g.shape[:-1], 1)) if state is None
                    else np.asarray(state.row_var, dtype=np.float64))
        col_prev = (np.zeros((*g.shape[:-2], 1, g.shape[-1])) if state is None
                    else np.asarray(state.col_var, dtype=np.float64))
        row_mean = np.sum(g * g, axis=-1, keepdims=True) / g.shape[-1]
        col_mean = np.sum(g * g, axis=-2, keepdims=True) / g.shape[-2]
        row_var = _lerp(row_prev, row_mean, one_minus_beta2)
        col_var = _lerp(col_prev, col_mean, one_minus_beta2)
        estimate = (row_var @ col_var) / np.maximum(np.mean(row_var, axis=-2, keepdims=True),
                                                    eps1)
    else:
        variance_prev = (np.zeros_like(g) if state is None
                         else np.asarray(state.variance, dtype=np.float64))
        variance = _lerp(variance_prev, g * g, one_minus_beta2)
        estimate = variance
    update = g / np.sqrt(np.maximum(estimate, eps1 * eps1))
    rms_update = float(np.linalg.norm(update.ravel())) / (update.size**0.5 * d)
    theta = theta - alpha / max(1.0, rms_update) * update
    return theta, AdafactorState(t, row_var, col_var, variance)
