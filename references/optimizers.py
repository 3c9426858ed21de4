r"""Optimizer update rules, one parameter tensor at a time, NumPy float64.

Each rule is a pure function in the style of optax: ``new_param, new_state = rule(param, grad,
state, **hyper_parameters)``. Nothing passed in is modified; every array returned is new.

State is a ``NamedTuple`` whose field names are exactly the keys torch keeps in
``optimizer.state[p]`` for that parameter, so ``ref_state.<key>`` can be compared with
``torch_optimizer.state[p][key]``. Initialisation is lazy, as in torch: ``state=None`` means
"first step, nothing stored yet"; the first call builds the state.

Hyper-parameters carry torch.optim's argument names and defaults. The update equations are
the pseudo-code in the torch documentation (https://pytorch.org/docs/stable/optim.html) and the
arithmetic follows torch's implementation (``torch/optim/sgd.py`` and ``torch/optim/adam.py``,
read for torch 2.13.0) operation for operation, so a float64 run agrees with torch's float64
run to rounding (about 1e-15 relative per step); each docstring's "Divergences" note says
where that implementation departs from its pseudo-code or from the original paper.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


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
    theta = np.asarray(param, dtype=np.float64)
    g = np.asarray(grad, dtype=np.float64)
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * theta
    buf: Array | None = None
    if momentum != 0:
        previous = None if state is None else state.momentum_buffer
        if previous is None:
            buf = np.array(g, dtype=np.float64, copy=True)  # never alias the caller's grad
        else:
            buf = np.asarray(previous, dtype=np.float64) * momentum + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    return theta + (-lr) * g, SGDState(momentum_buffer=buf)


class AdamState(NamedTuple):
    r"""Per-parameter state of :func:`adam` and :func:`adamw`; fields are torch's ``state[p]`` keys.

    ``step``: t, the number of steps taken including the one that produced this state. torch
    keeps it as a 0-dim tensor, float32 (exact for integers below 2**24), or float64 when
    ``torch.get_default_dtype()`` is float64 (non-fused); here a Python float.
    ``exp_avg``: the first moment m_t (biased, not yet divided by 1 - beta1^t).
    ``exp_avg_sq``: the second moment v_t (biased).
    ``max_exp_avg_sq``: v_t^max = max(v_1, ..., v_t) elementwise, only with ``amsgrad``;
    ``None`` otherwise (torch then has no ``"max_exp_avg_sq"`` key at all).
    """

    step: float
    exp_avg: Array
    exp_avg_sq: Array
    max_exp_avg_sq: Array | None


def adam(
    param: Array,
    grad: Array,
    state: AdamState | None,
    *,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
) -> tuple[Array, AdamState]:
    r"""One step of Adam (Kingma & Ba, 2015), optionally AMSGrad (Reddi et al., 2018).

    With parameter theta_{t-1}, gradient grad at theta_{t-1}, gamma = ``lr``,
    (beta1, beta2) = ``betas``, epsilon = ``eps``, lambda = ``weight_decay``, and
    m_0 = v_0 = v_0^max = 0 (created on the first step, when ``state`` is None):

        t       = t + 1
        g_t     = -grad if maximize else grad
        g_t     = g_t + lambda theta_{t-1}                 if lambda != 0   (coupled L2)
        m_t     = beta1 m_{t-1} + (1 - beta1) g_t
        v_t     = beta2 v_{t-1} + (1 - beta2) g_t^2
        v_t^max = max(v_{t-1}^max, v_t)                    if amsgrad
        m_hat   = m_t / (1 - beta1^t)
        v_hat   = (v_t^max if amsgrad else v_t) / (1 - beta2^t)
        theta_t = theta_{t-1} - gamma m_hat / (sqrt(v_hat) + epsilon)

    Maps one to one to ``torch.optim.Adam(params, lr, betas, eps, weight_decay, amsgrad,
    maximize=..., decoupled_weight_decay=...)``. With ``decoupled_weight_decay=True`` the L2
    line is replaced by AdamW's theta_{t-1} <- (1 - gamma lambda) theta_{t-1}; that is
    :func:`adamw`, exactly as ``torch.optim.AdamW`` is ``Adam(decoupled_weight_decay=True)``.

    Evaluation order, as torch's single-tensor and foreach (non-capturable) paths:
    m_t = m_{t-1} + (1 - beta1)(g_t - m_{t-1}) (torch's ``lerp_``, equal to the line above up to
    rounding); v_t = beta2 v_{t-1} + ((1 - beta2) g_t) g_t; denominator
    sqrt(v) / sqrt(1 - beta2^t) + epsilon with sqrt(1 - beta2^t) taken as ``** 0.5`` on a
    Python float; theta_t = theta_{t-1} - ((gamma / (1 - beta1^t)) m_t) / denominator.

    Divergences: the code agrees with torch's pseudo-code (epsilon sits outside the square
    root of the bias-corrected v_hat, as in the paper's Algorithm 1). It differs from the
    paper's "more efficient" ordering (end of section 2, used by TensorFlow/Keras), which folds
    both corrections into the step size, gamma sqrt(1 - beta2^t) / (1 - beta1^t), and adds
    epsilon to sqrt(v_t) before correction, i.e. an effective epsilon of
    epsilon sqrt(1 - beta2^t), noticeably larger in early steps. AMSGrad differs from Reddi et
    al.'s Algorithm 2: torch takes the maximum of the *uncorrected* v and then divides by the
    current 1 - beta2^t, where the paper has no bias correction at all. ``weight_decay`` is a
    coupled L2 penalty (it enters m and v), not the decoupled decay of Loshchilov & Hutter.

    Returns ``(theta_t, AdamState(t, m_t, v_t, v_t^max or None))``; the inputs are not
    modified.
    """
    beta1, beta2 = betas
    theta = np.asarray(param, dtype=np.float64)
    g = np.asarray(grad, dtype=np.float64)
    if maximize:
        g = -g

    if state is None:
        step = 0.0
        exp_avg = np.zeros_like(theta)
        exp_avg_sq = np.zeros_like(theta)
        max_exp_avg_sq = np.zeros_like(theta) if amsgrad else None
    else:
        step = float(state.step)
        exp_avg = np.asarray(state.exp_avg, dtype=np.float64)
        exp_avg_sq = np.asarray(state.exp_avg_sq, dtype=np.float64)
        max_exp_avg_sq = state.max_exp_avg_sq
        if amsgrad and max_exp_avg_sq is None:
            raise ValueError(
                "amsgrad=True but the state has no max_exp_avg_sq: amsgrad must be set from the "
                "first step (torch raises KeyError here)"
            )
    step += 1.0

    if weight_decay != 0:
        if decoupled_weight_decay:
            theta = theta * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * theta

    exp_avg = exp_avg + (1 - beta1) * (g - exp_avg)
    exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * g * g

    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5

    if amsgrad:
        max_exp_avg_sq = np.maximum(np.asarray(max_exp_avg_sq, dtype=np.float64), exp_avg_sq)
        denom = np.sqrt(max_exp_avg_sq) / bias_correction2_sqrt + eps
    else:
        max_exp_avg_sq = None
        denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps

    new_param = theta - step_size * exp_avg / denom
    return new_param, AdamState(
        step=step, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq, max_exp_avg_sq=max_exp_avg_sq
    )


def adamw(
    param: Array,
    grad: Array,
    state: AdamState | None,
    *,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    maximize: bool = False,
) -> tuple[Array, AdamState]:
    r"""One step of AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    Same as :func:`adam` except for the weight decay, which is applied to the parameter
    before the update instead of being added to the gradient:

        t       = t + 1
        g_t     = -grad if maximize else grad              (no lambda theta term)
        theta'  = theta_{t-1} - gamma lambda theta_{t-1}   = (1 - gamma lambda) theta_{t-1}
        m_t     = beta1 m_{t-1} + (1 - beta1) g_t
        v_t     = beta2 v_{t-1} + (1 - beta2) g_t^2
        v_t^max = max(v_{t-1}^max, v_t)                    if amsgrad
        m_hat   = m_t / (1 - beta1^t)
        v_hat   = (v_t^max if amsgrad else v_t) / (1 - beta2^t)
        theta_t = theta' - gamma m_hat / (sqrt(v_hat) + epsilon)

    Maps one to one to ``torch.optim.AdamW(params, lr, betas, eps, weight_decay, amsgrad,
    maximize=...)``; note its default ``weight_decay=1e-2`` (Adam's is 0). The state is the
    same :class:`AdamState`.

    Divergences: the code agrees with torch's pseudo-code. Relative to the paper, torch
    multiplies the decay by the learning rate (theta <- theta - gamma lambda theta), whereas
    the paper's Algorithm 2 scales lambda only by the schedule multiplier eta_t
    (theta <- theta - eta_t (alpha m_hat / (sqrt(v_hat) + epsilon) + lambda theta)), so with
    a constant schedule (eta_t = 1) the same ``weight_decay`` decays lr times as fast in
    torch. Epsilon's placement and AMSGrad are as described in :func:`adam`.
    """
    return adam(
        param,
        grad,
        state,
        lr=lr,
        betas=betas,
        eps=eps,
        weight_decay=weight_decay,
        amsgrad=amsgrad,
        maximize=maximize,
        decoupled_weight_decay=True,
    )
