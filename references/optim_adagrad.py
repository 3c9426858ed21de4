r"""Update rules that scale each coordinate by its accumulated squared gradients, NumPy float64:
Adagrad, Adadelta and RMSprop.

The rule, state and hyper-parameter conventions are those of ``references._optim_common``.
Follows ``torch.optim.Adagrad``, ``torch.optim.Adadelta`` and ``torch.optim.RMSprop``
(https://pytorch.org/docs/stable/optim.html) and their implementations ``torch/optim/adagrad.py``,
``adadelta.py`` and ``rmsprop.py``, read for torch 2.13.0, operation for operation.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from references._optim_common import Array, _buffers, _gradient, _lerp, _next_step


class AdagradState(NamedTuple):
    r"""Per-parameter state of :func:`adagrad`; fields are torch's ``state[p]`` keys.

    ``step``: t. ``sum``: the running sum of squared gradients s_t, starting at
    ``initial_accumulator_value``. torch creates this state in the constructor (not lazily), so
    the first step already sees ``step == 0`` and ``sum == initial_accumulator_value``.
    """

    step: float
    sum: Array


def adagrad(
    param: Array,
    grad: Array,
    state: AdagradState | None,
    *,
    lr: float = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    maximize: bool = False,
) -> tuple[Array, AdagradState]:
    r"""One step of Adagrad (Duchi, Hazan & Singer, 2011), dense gradients.

    With gamma = ``lr``, eta = ``lr_decay``, lambda = ``weight_decay``, tau =
    ``initial_accumulator_value`` and s_0 = tau:

        t       = t + 1
        g_t     = -grad if maximize else grad
        g_t     = g_t + lambda theta_{t-1}                 if lambda != 0
        gamma~  = gamma / (1 + (t - 1) eta)
        s_t     = s_{t-1} + g_t^2
        theta_t = theta_{t-1} - gamma~ g_t / (sqrt(s_t) + epsilon)

    Maps one to one to ``torch.optim.Adagrad(params, lr, lr_decay, weight_decay,
    initial_accumulator_value, eps, maximize=...)`` (``torch/optim/adagrad.py``, torch 2.13.0).

    Divergences: the code follows torch's pseudo-code. The paper's diagonal update has no
    epsilon, no learning-rate decay and starts the accumulator at zero (tau = 0).
    """
    theta, g = _gradient(param, grad, maximize=maximize, weight_decay=weight_decay)
    step = _next_step(state)
    (total,) = _buffers(state, theta, "sum", fill=initial_accumulator_value)
    clr = lr / (1 + (step - 1) * lr_decay)
    total = total + g * g
    return theta - clr * g / (np.sqrt(total) + eps), AdagradState(step, total)


class AdadeltaState(NamedTuple):
    r"""Per-parameter state of :func:`adadelta`; fields are torch's ``state[p]`` keys.

    ``step``: t. ``square_avg``: v_t, the running average of g^2. ``acc_delta``: u_t, the
    running average of the squared updates.
    """

    step: float
    square_avg: Array
    acc_delta: Array


def adadelta(
    param: Array,
    grad: Array,
    state: AdadeltaState | None,
    *,
    lr: float = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Array, AdadeltaState]:
    r"""One step of Adadelta (Zeiler, 2012).

    With gamma = ``lr``, rho = ``rho``, epsilon = ``eps``, lambda = ``weight_decay`` and
    v_0 = u_0 = 0:

        g_t     = -grad if maximize else grad
        g_t     = g_t + lambda theta_{t-1}                 if lambda != 0
        v_t     = rho v_{t-1} + (1 - rho) g_t^2
        Delta_t = sqrt(u_{t-1} + epsilon) / sqrt(v_t + epsilon) * g_t
        u_t     = rho u_{t-1} + (1 - rho) Delta_t^2
        theta_t = theta_{t-1} - gamma Delta_t

    Maps one to one to ``torch.optim.Adadelta(params, lr, rho, eps, weight_decay,
    maximize=...)`` (``torch/optim/adadelta.py``, torch 2.13.0).

    Divergences: the paper has no learning rate (gamma = 1, torch's default) and no weight
    decay; otherwise the same.
    """
    theta, g = _gradient(param, grad, maximize=maximize, weight_decay=weight_decay)
    step = _next_step(state)
    square_avg, acc_delta = _buffers(state, theta, "square_avg", "acc_delta")
    square_avg = square_avg * rho + (1 - rho) * g * g
    delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * g
    acc_delta = acc_delta * rho + (1 - rho) * delta * delta
    return theta - lr * delta, AdadeltaState(step, square_avg, acc_delta)


class RMSpropState(NamedTuple):
    r"""Per-parameter state of :func:`rmsprop`; fields are torch's ``state[p]`` keys.

    ``step``: t. ``square_avg``: v_t. ``momentum_buffer``: b_t, only when ``momentum > 0``
    (else None: torch has no such key). ``grad_avg``: g_t^ave, only when ``centered``.
    """

    step: float
    square_avg: Array
    momentum_buffer: Array | None
    grad_avg: Array | None


def rmsprop(
    param: Array,
    grad: Array,
    state: RMSpropState | None,
    *,
    lr: float = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    maximize: bool = False,
) -> tuple[Array, RMSpropState]:
    r"""One step of RMSprop (Hinton, Coursera lecture 6e), optionally centered (Graves, 2013).

    With gamma = ``lr``, alpha = ``alpha``, epsilon = ``eps``, lambda = ``weight_decay``,
    mu = ``momentum`` and v_0 = b_0 = g^ave_0 = 0:

        g_t     = -grad if maximize else grad
        g_t     = g_t + lambda theta_{t-1}                 if lambda != 0
        v_t     = alpha v_{t-1} + (1 - alpha) g_t^2
        v~_t    = v_t - (g^ave_t)^2, g^ave_t = alpha g^ave_{t-1} + (1 - alpha) g_t   if centered
        b_t     = mu b_{t-1} + g_t / (sqrt(v~_t) + epsilon)                          if mu > 0
        theta_t = theta_{t-1} - gamma b_t        (or - gamma g_t / (sqrt(v~_t) + epsilon))

    Maps one to one to ``torch.optim.RMSprop(params, lr, alpha, eps, weight_decay, momentum,
    centered, maximize=...)`` (``torch/optim/rmsprop.py``, torch 2.13.0).

    Divergences: epsilon is added outside the square root (the lecture adds nothing; Graves
    adds it inside); the momentum buffer carries 1 / (sqrt(v) + eps) but not the learning rate.
    """
    theta, g = _gradient(param, grad, maximize=maximize, weight_decay=weight_decay)
    step = _next_step(state)
    (square_avg,) = _buffers(state, theta, "square_avg")
    if state is None:
        buf = np.zeros_like(theta) if momentum > 0 else None
        grad_avg = np.zeros_like(theta) if centered else None
    else:
        buf, grad_avg = state.momentum_buffer, state.grad_avg
    square_avg = square_avg * alpha + (1 - alpha) * g * g
    if centered:
        grad_avg = np.asarray(grad_avg, dtype=np.float64)
        grad_avg = _lerp(grad_avg, g, 1 - alpha)
        avg = np.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = np.sqrt(square_avg) + eps
    if momentum > 0:
        buf = np.asarray(buf, dtype=np.float64) * momentum + g / avg
        new_theta = theta - lr * buf
    else:
        new_theta = theta - lr * g / avg
    return new_theta, RMSpropState(step, square_avg, buf, grad_avg)
