r"""Update rules of the SGD family, NumPy float64: SGD (with momentum and Nesterov), averaged SGD
and Rprop.

The rule, state and hyper-parameter conventions are those of ``references._optim_common``.
Follows ``torch.optim.SGD``, ``torch.optim.ASGD`` and ``torch.optim.Rprop``
(https://pytorch.org/docs/stable/optim.html) and their implementations ``torch/optim/sgd.py``,
``asgd.py`` and ``rprop.py``, read for torch 2.13.0, operation for operation.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from references._optim_common import Array, _buffers, _gradient, _next_step


class SGDState(NamedTuple):
    r"""Per-parameter state of :func:`sgd`; the field is torch's ``state[p]`` key.

    ``momentum_buffer``: the momentum buffer b_t, shape of the parameter; ``None`` when
    ``momentum == 0``. (torch 2.13 stores nothing at all then: ``state[p]`` stays the empty
    dict, so there is no ``"momentum_buffer"`` key to compare against.)
    """

    momentum_buffer: Array | None


def sgd(
    param: Array,
    grad: Array,
    state: SGDState | None,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
) -> tuple[Array, SGDState]:
    r"""One step of stochastic gradient descent, optionally with momentum.

    With parameter theta_{t-1}, gradient grad = d f / d theta at theta_{t-1}, learning rate
    gamma (``lr``), weight decay lambda (``weight_decay``), momentum mu (``momentum``) and
    dampening tau (``dampening``):

        g_t     = -grad if maximize else grad
        g_t     = g_t + lambda theta_{t-1}                 if lambda != 0   (L2 penalty)
        if mu != 0:
            b_t = g_t                                      on the first step (state is None)
            b_t = mu b_{t-1} + (1 - tau) g_t               afterwards
            g_t = g_t + mu b_t  if nesterov  else  b_t
        theta_t = theta_{t-1} - gamma g_t

    The mapping to ``torch.optim.SGD(params, lr, momentum, dampening, weight_decay, nesterov,
    maximize=...)`` is one to one. As in torch, Nesterov momentum needs ``momentum > 0`` and
    ``dampening == 0`` (ValueError otherwise).

    Divergences: the code follows torch's pseudo-code exactly. Both differ from Sutskever et
    al. (2013), whose velocity carries the learning rate (v_t = mu v_{t-1} + gamma g_t,
    theta_t = theta_{t-1} - v_t): here gamma multiplies the buffer, which matters when gamma
    changes during training. The buffer starts at g_1, not at zero, so dampening only applies
    from the second step on. The weight-decay term is added to the gradient before it enters
    the buffer (coupled L2), not applied to theta separately.

    Returns ``(theta_t, SGDState(b_t or None))``; the inputs are not modified.
    """
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    theta, g = _gradient(param, grad, maximize=maximize, weight_decay=weight_decay)
    buf: Array | None = None
    if momentum != 0:
        previous = None if state is None else state.momentum_buffer
        if previous is None:
            buf = np.array(g, dtype=np.float64, copy=True)  # never alias the caller's grad
        else:
            buf = np.asarray(previous, dtype=np.float64) * momentum + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    return theta + (-lr) * g, SGDState(momentum_buffer=buf)


class RpropState(NamedTuple):
    r"""Per-parameter state of :func:`rprop`; fields are torch's ``state[p]`` keys.

    ``step``: t. ``prev``: the previous (possibly zeroed) gradient. ``step_size``: the
    per-element step sizes Delta_t, starting at ``lr``.
    """

    step: float
    prev: Array
    step_size: Array


def rprop(
    param: Array,
    grad: Array,
    state: RpropState | None,
    *,
    lr: float = 1e-2,
    etas: tuple[float, float] = (0.5, 1.2),
    step_sizes: tuple[float, float] = (1e-6, 50.0),
    maximize: bool = False,
) -> tuple[Array, RpropState]:
    r"""One step of Rprop, resilient backpropagation (Riedmiller & Braun, 1993; iRprop-).

    With (eta-, eta+) = ``etas``, (Delta_min, Delta_max) = ``step_sizes``, g_0 = 0 and
    Delta_0 = ``lr`` everywhere:

        g_t     = -grad if maximize else grad
        s       = sign(g_t g_{t-1})
        Delta_t = clip(Delta_{t-1} * (eta+ if s > 0, eta- if s < 0, 1 if s = 0),
                       Delta_min, Delta_max)
        g_t     = 0 where s < 0                            (no step after a sign change)
        theta_t = theta_{t-1} - sign(g_t) Delta_t
        prev    = g_t                                      (the zeroed gradient)

    Maps to ``torch.optim.Rprop(params, lr, etas, step_sizes, maximize=...)``
    (``torch/optim/rprop.py``, torch 2.13.0).

    Divergences: this is the iRprop- variant (Igel & Huesken, 2000): after a sign change the
    step is skipped and the stored gradient zeroed, rather than the previous step being
    reverted (original Rprop's backtracking). torch's pseudo-code says the same.
    """
    eta_minus, eta_plus = etas
    step_min, step_max = step_sizes
    theta, g = _gradient(param, grad, maximize=maximize)
    step = _next_step(state)
    (prev,) = _buffers(state, theta, "prev")
    (step_size,) = _buffers(state, theta, "step_size", fill=lr)
    s = np.sign(g * prev)
    factor = np.where(s > 0, eta_plus, np.where(s < 0, eta_minus, 1.0))
    step_size = np.clip(step_size * factor, step_min, step_max)
    g = np.where(s < 0, 0.0, g)
    return theta - np.sign(g) * step_size, RpropState(step, g, step_size)


class ASGDState(NamedTuple):
    r"""Per-parameter state of :func:`asgd`; fields are torch's ``state[p]`` keys.

    ``step``: t. ``eta``: the step size eta_t for the next step (starts at ``lr``). ``mu``: the
    averaging coefficient mu_t (starts at 1). ``ax``: the averaged parameter. torch keeps
    ``eta`` and ``mu`` as 0-dim float32 tensors (float64 only when the default dtype is float64).
    """

    step: float
    eta: float
    mu: float
    ax: Array


def asgd(
    param: Array,
    grad: Array,
    state: ASGDState | None,
    *,
    lr: float = 1e-2,
    lambd: float = 1e-4,
    alpha: float = 0.75,
    t0: float = 1e6,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Array, ASGDState]:
    r"""One step of averaged SGD (Polyak & Juditsky, 1992; schedule of Bottou, 2012).

    With gamma = ``lr``, lambda = ``lambd``, lambda' = ``weight_decay``, eta_0 = gamma,
    mu_0 = 1 and ax_0 = 0:

        t       = t + 1
        g_t     = -grad if maximize else grad
        g_t     = g_t + lambda' theta_{t-1}                if lambda' != 0
        theta_t = (1 - lambda eta_{t-1}) theta_{t-1} - eta_{t-1} g_t
        ax_t    = ax_{t-1} + mu_{t-1} (theta_t - ax_{t-1})  (ax_t = theta_t when mu_{t-1} = 1)
        eta_t   = gamma / (1 + lambda gamma t)^alpha
        mu_t    = 1 / max(1, t - t0)

    Maps one to one to ``torch.optim.ASGD(params, lr, lambd, alpha, t0, weight_decay,
    maximize=...)`` (``torch/optim/asgd.py``, torch 2.13.0).

    Divergences: torch's pseudo-code writes the averaging as
    ax_t = ax_{t-1} + mu_t (theta_t - ax_{t-1}) "if mu_t != 1 else theta_t"; the code uses the
    mu stored at the previous step (mu_{t-1}), as here. eta and mu live in float32 in torch.
    """
    theta, g = _gradient(param, grad, maximize=maximize, weight_decay=weight_decay)
    step = _next_step(state)
    eta, mu = (float(lr), 1.0) if state is None else (float(state.eta), float(state.mu))
    (ax,) = _buffers(state, theta, "ax")
    theta = theta * (1 - lambd * eta) - eta * g
    ax = ax + (theta - ax) * mu if mu != 1 else np.array(theta, copy=True)
    new_eta = lr / ((1 + lambd * lr * step) ** alpha)
    new_mu = 1 / max(1, step - t0)
    return theta, ASGDState(step, new_eta, new_mu, ax)
