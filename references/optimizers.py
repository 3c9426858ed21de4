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

from collections.abc import Callable
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


class AdamaxState(NamedTuple):
    r"""Per-parameter state of :func:`adamax`; fields are torch's ``state[p]`` keys.

    ``step``: t (torch: a 0-dim float32 tensor, exact for integers below 2**24).
    ``exp_avg``: the first moment m_t. ``exp_inf``: the exponentially weighted infinity norm u_t.
    """

    step: float
    exp_avg: Array
    exp_inf: Array


def adamax(
    param: Array,
    grad: Array,
    state: AdamaxState | None,
    *,
    lr: float = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Array, AdamaxState]:
    r"""One step of Adamax, Adam's infinity-norm variant (Kingma & Ba, 2015, section 7.1).

    With gamma = ``lr``, (beta1, beta2) = ``betas``, epsilon = ``eps``, lambda =
    ``weight_decay`` and m_0 = u_0 = 0:

        t       = t + 1
        g_t     = -grad if maximize else grad
        g_t     = g_t + lambda theta_{t-1}                 if lambda != 0
        m_t     = beta1 m_{t-1} + (1 - beta1) g_t
        u_t     = max(beta2 u_{t-1}, |g_t| + epsilon)
        theta_t = theta_{t-1} - gamma / (1 - beta1^t) * m_t / u_t

    Maps one to one to ``torch.optim.Adamax(params, lr, betas, eps, weight_decay,
    maximize=...)``; torch's ``torch/optim/adamax.py`` was read for torch 2.13.0.

    Divergences: torch's pseudo-code and code put epsilon *inside* the maximum (|g_t| + eps),
    whereas the paper has no epsilon at all (u_t = max(beta2 u_{t-1}, |g_t|)); torch's form keeps
    u_t > 0 so the division is always defined.
    """
    beta1, beta2 = betas
    theta = np.asarray(param, dtype=np.float64)
    g = np.asarray(grad, dtype=np.float64)
    if maximize:
        g = -g
    if state is None:
        step, exp_avg, exp_inf = 0.0, np.zeros_like(theta), np.zeros_like(theta)
    else:
        step = float(state.step)
        exp_avg = np.asarray(state.exp_avg, dtype=np.float64)
        exp_inf = np.asarray(state.exp_inf, dtype=np.float64)
    step += 1.0
    if weight_decay != 0:
        g = g + weight_decay * theta
    exp_avg = exp_avg + (1 - beta1) * (g - exp_avg)
    exp_inf = np.maximum(exp_inf * beta2, np.abs(g) + eps)
    clr = lr / (1 - beta1**step)
    return theta - clr * exp_avg / exp_inf, AdamaxState(step, exp_avg, exp_inf)


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
    theta = np.asarray(param, dtype=np.float64)
    g = np.asarray(grad, dtype=np.float64)
    if state is None:
        step, total = 0.0, np.full_like(theta, initial_accumulator_value)
    else:
        step, total = float(state.step), np.asarray(state.sum, dtype=np.float64)
    step += 1.0
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * theta
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
    theta = np.asarray(param, dtype=np.float64)
    g = np.asarray(grad, dtype=np.float64)
    if state is None:
        step, square_avg, acc_delta = 0.0, np.zeros_like(theta), np.zeros_like(theta)
    else:
        step = float(state.step)
        square_avg = np.asarray(state.square_avg, dtype=np.float64)
        acc_delta = np.asarray(state.acc_delta, dtype=np.float64)
    step += 1.0
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * theta
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
    theta = np.asarray(param, dtype=np.float64)
    g = np.asarray(grad, dtype=np.float64)
    if state is None:
        step, square_avg = 0.0, np.zeros_like(theta)
        buf = np.zeros_like(theta) if momentum > 0 else None
        grad_avg = np.zeros_like(theta) if centered else None
    else:
        step, square_avg = float(state.step), np.asarray(state.square_avg, dtype=np.float64)
        buf, grad_avg = state.momentum_buffer, state.grad_avg
    step += 1.0
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * theta
    square_avg = square_avg * alpha + (1 - alpha) * g * g
    if centered:
        grad_avg = np.asarray(grad_avg, dtype=np.float64)
        grad_avg = grad_avg + (1 - alpha) * (g - grad_avg)
        avg = np.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = np.sqrt(square_avg) + eps
    if momentum > 0:
        buf = np.asarray(buf, dtype=np.float64) * momentum + g / avg
        new_theta = theta - lr * buf
    else:
        new_theta = theta - lr * g / avg
    return new_theta, RMSpropState(step, square_avg, buf, grad_avg)


class NAdamState(NamedTuple):
    r"""Per-parameter state of :func:`nadam`; fields are torch's ``state[p]`` keys.

    ``step``: t. ``mu_product``: prod_{i<=t} mu_i; torch keeps it as a 0-dim float32 tensor
    (float64 only when the default dtype is float64), so it carries float32 rounding.
    ``exp_avg``: m_t. ``exp_avg_sq``: v_t.
    """

    step: float
    mu_product: float
    exp_avg: Array
    exp_avg_sq: Array


def nadam(
    param: Array,
    grad: Array,
    state: NAdamState | None,
    *,
    lr: float = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum_decay: float = 4e-3,
    decoupled_weight_decay: bool = False,
    maximize: bool = False,
) -> tuple[Array, NAdamState]:
    r"""One step of NAdam: Adam with Nesterov momentum (Dozat, 2016).

    With gamma = ``lr``, (beta1, beta2) = ``betas``, psi = ``momentum_decay``, lambda =
    ``weight_decay``, m_0 = v_0 = 0 and mu-product 1:

        t       = t + 1
        g_t     = -grad if maximize else grad
        theta'  = (1 - gamma lambda) theta_{t-1}           if decoupled_weight_decay
        g_t     = g_t + lambda theta_{t-1}                 otherwise, if lambda != 0
        mu_t    = beta1 (1 - 0.5 * 0.96^(t psi)),  mu_{t+1} = beta1 (1 - 0.5 * 0.96^((t+1) psi))
        P_t     = P_{t-1} mu_t                                             (mu_product)
        m_t     = beta1 m_{t-1} + (1 - beta1) g_t
        v_t     = beta2 v_{t-1} + (1 - beta2) g_t^2
        d_t     = sqrt(v_t / (1 - beta2^t)) + epsilon
        theta_t = theta' - gamma (1 - mu_t) / (1 - P_t) g_t / d_t
                         - gamma mu_{t+1} / (1 - P_t mu_{t+1}) m_t / d_t

    Maps one to one to ``torch.optim.NAdam(params, lr, betas, eps, weight_decay, momentum_decay,
    decoupled_weight_decay, maximize=...)`` (``torch/optim/nadam.py``, torch 2.13.0).

    Divergences: the code follows torch's pseudo-code. Dozat's paper uses a constant or
    warm-up schedule for mu without naming 0.96 and psi; torch follows Keras' schedule.
    ``mu_product`` is rounded to float32 in torch at every step (see :class:`NAdamState`), so
    float64 runs agree only to float32 precision in the step coefficients.
    """
    beta1, beta2 = betas
    theta = np.asarray(param, dtype=np.float64)
    g = np.asarray(grad, dtype=np.float64)
    if maximize:
        g = -g
    if state is None:
        step, mu_product = 0.0, 1.0
        exp_avg, exp_avg_sq = np.zeros_like(theta), np.zeros_like(theta)
    else:
        step, mu_product = float(state.step), float(state.mu_product)
        exp_avg = np.asarray(state.exp_avg, dtype=np.float64)
        exp_avg_sq = np.asarray(state.exp_avg_sq, dtype=np.float64)
    step += 1.0
    bias_correction2 = 1 - beta2**step
    if weight_decay != 0:
        if decoupled_weight_decay:
            theta = theta * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * theta
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    mu_product = mu_product * mu
    exp_avg = exp_avg + (1 - beta1) * (g - exp_avg)
    exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * g * g
    denom = np.sqrt(exp_avg_sq / bias_correction2) + eps
    mu_product_next = mu_product * mu_next
    theta = theta + (-lr * (1.0 - mu) / (1.0 - mu_product)) * g / denom
    theta = theta + ((-lr * mu_next) / (1.0 - mu_product_next)) * exp_avg / denom
    return theta, NAdamState(step, mu_product, exp_avg, exp_avg_sq)


class RAdamState(NamedTuple):
    r"""Per-parameter state of :func:`radam`; fields are torch's ``state[p]`` keys.

    ``step``: t. ``exp_avg``: m_t. ``exp_avg_sq``: v_t.
    """

    step: float
    exp_avg: Array
    exp_avg_sq: Array


def radam(
    param: Array,
    grad: Array,
    state: RAdamState | None,
    *,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    maximize: bool = False,
) -> tuple[Array, RAdamState]:
    r"""One step of RAdam, rectified Adam (Liu et al., 2020).

    With gamma = ``lr``, (beta1, beta2) = ``betas``, lambda = ``weight_decay``, m_0 = v_0 = 0
    and rho_inf = 2 / (1 - beta2) - 1:

        t       = t + 1
        g_t     = -grad if maximize else grad
        theta'  = (1 - gamma lambda) theta_{t-1}           if decoupled_weight_decay
        g_t     = g_t + lambda theta_{t-1}                 otherwise, if lambda != 0
        m_t     = beta1 m_{t-1} + (1 - beta1) g_t;   m_hat = m_t / (1 - beta1^t)
        v_t     = beta2 v_{t-1} + (1 - beta2) g_t^2
        rho_t   = rho_inf - 2 t beta2^t / (1 - beta2^t)
        if rho_t > 5:
            l_t = sqrt(1 - beta2^t) / (sqrt(v_t) + epsilon)
            r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
            theta_t = theta' - gamma m_hat l_t r_t
        else:
            theta_t = theta' - gamma m_hat           (warm-up: plain momentum SGD)

    Maps one to one to ``torch.optim.RAdam(params, lr, betas, eps, weight_decay,
    decoupled_weight_decay, maximize=...)`` (``torch/optim/radam.py``, torch 2.13.0).

    Divergences: the paper's threshold is rho_t > 4; torch (code and pseudo-code) uses
    rho_t > 5, so step 5 with beta2 = 0.999 (rho_5 ~ 4.99) is still a warm-up step. Epsilon
    is added to sqrt(v_t) before the bias correction, as in torch's code.
    """
    beta1, beta2 = betas
    theta = np.asarray(param, dtype=np.float64)
    g = np.asarray(grad, dtype=np.float64)
    if maximize:
        g = -g
    if state is None:
        step, exp_avg, exp_avg_sq = 0.0, np.zeros_like(theta), np.zeros_like(theta)
    else:
        step = float(state.step)
        exp_avg = np.asarray(state.exp_avg, dtype=np.float64)
        exp_avg_sq = np.asarray(state.exp_avg_sq, dtype=np.float64)
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
    m_hat = exp_avg / bias_correction1
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2
    if rho_t > 5.0:
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf
                / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
        adaptive_lr = bias_correction2**0.5 / (np.sqrt(exp_avg_sq) + eps)
        theta = theta - m_hat * lr * adaptive_lr * rect
    else:
        theta = theta - m_hat * lr
    return theta, RAdamState(step, exp_avg, exp_avg_sq)


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
    theta = np.asarray(param, dtype=np.float64)
    g = np.asarray(grad, dtype=np.float64)
    if maximize:
        g = -g
    if state is None:
        step, prev, step_size = 0.0, np.zeros_like(theta), np.full_like(theta, lr)
    else:
        step = float(state.step)
        prev = np.asarray(state.prev, dtype=np.float64)
        step_size = np.asarray(state.step_size, dtype=np.float64)
    step += 1.0
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
    theta = np.asarray(param, dtype=np.float64)
    g = np.asarray(grad, dtype=np.float64)
    if maximize:
        g = -g
    if state is None:
        step, eta, mu, ax = 0.0, float(lr), 1.0, np.zeros_like(theta)
    else:
        step, eta, mu = float(state.step), float(state.eta), float(state.mu)
        ax = np.asarray(state.ax, dtype=np.float64)
    step += 1.0
    if weight_decay != 0:
        g = g + weight_decay * theta
    theta = theta * (1 - lambd * eta) - eta * g
    ax = ax + (theta - ax) * mu if mu != 1 else np.array(theta, copy=True)
    new_eta = lr / ((1 + lambd * lr * step) ** alpha)
    new_mu = 1 / max(1, step - t0)
    return theta, ASGDState(step, new_eta, new_mu, ax)


class SparseAdamState(NamedTuple):
    r"""Per-parameter state of :func:`sparse_adam`; fields are torch's ``state[p]`` keys.

    ``step``: t (a Python int in torch), counted on every step the parameter has a gradient,
    even an empty one. ``exp_avg``, ``exp_avg_sq``: m_t and v_t, dense, updated only where the
    gradient has entries.
    """

    step: float
    exp_avg: Array
    exp_avg_sq: Array


def sparse_adam(
    param: Array,
    grad: Array,
    state: SparseAdamState | None,
    *,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    maximize: bool = False,
) -> tuple[Array, SparseAdamState]:
    r"""One step of SparseAdam: Adam applied only at the entries a sparse gradient holds.

    ``grad`` is a ``numpy.ma.MaskedArray``: masked entries are absent from the sparse gradient
    (a plain array means every entry is present). At present entries S, with m_0 = v_0 = 0:

        t          = t + 1
        g_t        = -grad if maximize else grad
        m_t[S]     = m_{t-1}[S] + (1 - beta1)(g_t[S] - m_{t-1}[S]),  m_t = m_{t-1} elsewhere
        v_t[S]     = v_{t-1}[S] + (1 - beta2)(g_t[S]^2 - v_{t-1}[S]), likewise
        theta_t[S] = theta_{t-1}[S]
                     - gamma sqrt(1 - beta2^t) / (1 - beta1^t) m_t[S] / (sqrt(v_t[S]) + epsilon)

    Maps to ``torch.optim.SparseAdam(params, lr, betas, eps, maximize)`` with
    ``torch.sparse_coo_tensor`` gradients (``torch/optim/_functional.py``, torch 2.13.0).

    Divergences: epsilon is added to the *uncorrected* sqrt(v_t) and the correction folded
    into the step size, i.e. the paper's "efficient" ordering, unlike :func:`adam`. Moments
    of absent entries neither decay nor count their steps, so the bias correction of an entry
    seen rarely uses the parameter's global t, not the entry's own count.
    """
    beta1, beta2 = betas
    theta = np.asarray(param, dtype=np.float64)
    present = ~np.ma.getmaskarray(grad)
    g = np.asarray(np.ma.getdata(grad), dtype=np.float64)
    if maximize:
        g = -g
    if state is None:
        step, exp_avg, exp_avg_sq = 0.0, np.zeros_like(theta), np.zeros_like(theta)
    else:
        step = float(state.step)
        exp_avg = np.asarray(state.exp_avg, dtype=np.float64)
        exp_avg_sq = np.asarray(state.exp_avg_sq, dtype=np.float64)
    step += 1.0
    if not present.any():
        return np.array(theta, copy=True), SparseAdamState(step, exp_avg, exp_avg_sq)
    exp_avg = np.where(present, exp_avg + (1 - beta1) * (g - exp_avg), exp_avg)
    exp_avg_sq = np.where(present, exp_avg_sq + (1 - beta2) * (g * g - exp_avg_sq), exp_avg_sq)
    step_size = lr * np.sqrt(1 - beta2**step) / (1 - beta1**step)
    update = step_size * exp_avg / (np.sqrt(exp_avg_sq) + eps)
    return np.where(present, theta - update, theta), SparseAdamState(step, exp_avg, exp_avg_sq)


class LBFGSState(NamedTuple):
    r"""The state of :func:`lbfgs`; field names are torch's ``state`` keys.

    torch keeps L-BFGS's state once, under the first parameter, over the flat vector of all
    parameters. ``func_evals``, ``n_iter``: objective evaluations and iterations over all
    steps. ``d``: the last search direction; ``t``: the last step length; ``old_dirs``,
    ``old_stps``: the curvature pairs y_k = g_{k+1} - g_k and s_k = t_k d_k, oldest first (at
    most ``history_size``); ``ro``: 1 / (y_k^T s_k); ``H_diag``: gamma_k, the scale of the
    initial inverse Hessian; ``prev_flat_grad``, ``prev_loss``: the gradient and loss at the
    start of the last iteration. All but the two counts are ``None`` until an iteration runs.
    """

    func_evals: int
    n_iter: int
    d: Array | None = None
    t: float | None = None
    old_dirs: tuple[Array, ...] | None = None
    old_stps: tuple[Array, ...] | None = None
    ro: tuple[float, ...] | None = None
    H_diag: float | None = None
    prev_flat_grad: Array | None = None
    prev_loss: float | None = None


Objective = Callable[[Array], tuple[float, Array]]


def _cubic_interpolate(x1: float, f1: float, g1: float, x2: float, f2: float, g2: float,
                       bounds: tuple[float, float] | None = None) -> float:
    r"""The minimiser of the cubic through (x1, f1, f1' = g1) and (x2, f2, g2), clipped.

    Nocedal & Wright eq. (3.59): with d1 = g1 + g2 - 3 (f1 - f2) / (x1 - x2) and
    d2 = sqrt(d1^2 - g1 g2), the minimiser seen from the farther point x2 is
    x2 - (x2 - x1) (g2 + d2 - d1) / (g2 - g1 + 2 d2) (and symmetrically from x1). It is clipped
    to ``bounds`` (default: the interval between the points); when d1^2 < g1 g2 the cubic has no
    minimum and the middle of the bounds is returned (torch's ``_cubic_interpolate``, ported
    from minFunc's ``polyinterp``).
    """
    if bounds is not None:
        lo, hi = bounds
    else:
        lo, hi = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square < 0:
        return (lo + hi) / 2.0
    d2 = float(np.sqrt(d2_square))
    if x1 <= x2:
        min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(min_pos, lo), hi)


def _strong_wolfe(phi: Callable[[float], tuple[float, Array]], d: Array, t: float, f: float,
                  g: Array, gtd: float, *, c1: float = 1e-4, c2: float = 0.9,
                  tolerance_change: float = 1e-9,
                  max_ls: int = 25) -> tuple[float, Array, float, int]:
    r"""A step length t along ``d`` satisfying the strong Wolfe conditions.

    phi(t) = (f(x + t d), grad f(x + t d)); f, g, gtd are the loss, gradient and slope g^T d at
    t = 0. The strong Wolfe conditions (Nocedal & Wright eq. 3.7):

        f(x + t d) <= f + c1 t gtd                 (sufficient decrease, Armijo)
        |grad f(x + t d)^T d| <= c2 |gtd|          (curvature)

    Bracketing (N&W Algorithm 3.5): try t; stop with a bracket [t_prev, t] when Armijo fails or
    f stops decreasing (from the third trial on), or when the slope turns non-negative; accept t
    when the curvature condition holds; otherwise extrapolate by cubic interpolation of the last
    two trials clipped to [t + 0.01 (t - t_prev), 10 t]. Zoom (N&W Algorithm 3.6): interpolate a
    cubic over the bracket; a trial within 10% of the bracket's length from an end is moved to
    that 10% mark when the previous trial was also that close (or the trial lies on an end),
    the "insufficient progress" safeguard; the low end (least f) and high end are updated as in
    N&W. Returns (f, grad, t, evaluations) at the low end of the final bracket.

    Divergences from N&W: ``max_ls`` bounds all trials of both phases together (torch passes
    max_eval minus the evaluations already spent); when the bracketing phase runs out, the
    bracket is [0, t] and the lower of its two ends is returned, possibly t = 0; the zoom stops
    once the bracket's length times max|d| falls below ``tolerance_change``. This follows torch
    2.13's ``_strong_wolfe`` (torch/optim/lbfgs.py, ported from ``lswolfe.lua``).
    """
    d_norm = float(np.max(np.abs(d)))
    f_new, g_new = phi(t)
    evals = 1
    gtd_new = float(g_new @ d)
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done = False
    ls_iter = 0
    bracket: list[float] = []
    bracket_f: list[float] = []
    bracket_g: list[Array] = []
    bracket_gtd: list[float] = []
    # Bracketing phase.
    while ls_iter < max_ls:
        if f_new > f + c1 * t * gtd or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        # Extrapolate: a cubic through the last two trials, within [t + 0.01 (t - t_prev), 10 t].
        t_next = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                                    bounds=(t + 0.01 * (t - t_prev), t * 10))
        t_prev, f_prev, g_prev, gtd_prev = t, f_new, g_new, gtd_new
        t = t_next
        f_new, g_new = phi(t)
        evals += 1
        gtd_new = float(g_new @ d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0.0, t], [f, f_new], [g, g_new]
    # Zoom phase: shrink the bracket [low, high] until a trial satisfies both conditions.
    insuf_progress = False
    low, high = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                               bracket[1], bracket_f[1], bracket_gtd[1])
        # Safeguard: keep trials at least 10% of the bracket away from its ends.
        lo_b, hi_b = min(bracket), max(bracket)
        eps = 0.1 * (hi_b - lo_b)
        if min(hi_b - t, t - lo_b) < eps:
            if insuf_progress or t >= hi_b or t <= lo_b:
                t = hi_b - eps if abs(t - hi_b) < abs(t - lo_b) else lo_b + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = phi(t)
        evals += 1
        gtd_new = float(g_new @ d)
        ls_iter += 1
        if f_new > f + c1 * t * gtd or f_new >= bracket_f[low]:
            # No sufficient decrease, or not below the low end: t becomes the high end.
            bracket[high], bracket_f[high] = t, f_new
            bracket_g[high], bracket_gtd[high] = g_new, gtd_new
            low, high = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                # The slope points back past the low end: the old low becomes the high end.
                bracket[high], bracket_f[high] = bracket[low], bracket_f[low]
                bracket_g[high], bracket_gtd[high] = bracket_g[low], bracket_gtd[low]
            bracket[low], bracket_f[low] = t, f_new
            bracket_g[low], bracket_gtd[low] = g_new, gtd_new
    return bracket_f[low], bracket_g[low], bracket[low], evals


def lbfgs(
    params: Array,
    closure: Objective,
    state: LBFGSState | None,
    *,
    lr: float = 1.0,
    max_iter: int = 20,
    max_eval: int | None = None,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
    history_size: int = 100,
    line_search_fn: str | None = None,
) -> tuple[Array, float, LBFGSState]:
    r"""One ``step(closure)`` of torch's L-BFGS: up to ``max_iter`` quasi-Newton iterations.

    ``params`` is the flat float64 vector of all parameters (torch concatenates them, complex
    ones as real pairs); ``closure(x) -> (f(x), grad f(x))``. Returns (new params, the loss at
    the old params, new state). Each iteration k, with g_k = grad f(x_k):

        d_0 = -g_0,  gamma = 1                                      (first iteration ever)
        y = g_k - g_{k-1},  s = t_{k-1} d_{k-1}                     (later iterations)
        if y^T s > 1e-10: append (y, s, rho = 1 / y^T s), dropping the oldest past
                          history_size; gamma = y^T s / y^T y
        d_k = -H_k g_k by the two-loop recursion (N&W Algorithm 7.4) with H_0 = gamma I:
            q = -g_k;  for i newest..oldest: a_i = rho_i s_i^T q,  q -= a_i y_i
            r = gamma q;  for i oldest..newest: b_i = rho_i y_i^T r,  r += (a_i - b_i) s_i
        t_k = lr min(1, 1 / ||g_0||_1) on the first iteration ever, else lr
        stop if g_k^T d_k > -tolerance_change
        x_{k+1} = x_k + t_k d_k, with t_k from :func:`_strong_wolfe` when
                  line_search_fn == "strong_wolfe", else fixed (then f, g are re-evaluated
                  at x_{k+1} unless this is the step's last iteration)

    and the step stops after max_iter iterations, when the evaluations reach max_eval, when
    max|g| <= tolerance_grad (also checked before the first iteration, which then returns at
    once), when max|t_k d_k| <= tolerance_change, or when |f_{k+1} - f_k| < tolerance_change.

    torch argument mapping: ``torch.optim.LBFGS(params, lr, max_iter, max_eval,
    tolerance_grad, tolerance_change, history_size, line_search_fn)``, ``max_eval`` defaulting
    to ``max_iter * 5 // 4``; the state is torch's ``optimizer.state[first param]``. Follows
    torch/optim/lbfgs.py of torch 2.13.0 operation for operation (docs:
    https://pytorch.org/docs/stable/generated/torch.optim.LBFGS.html).

    Divergences from Nocedal & Wright: the curvature pairs are kept only when y^T s > 1e-10
    (an absolute threshold, not relative to |y||s|) — otherwise the history and gamma stay as
    they were; the history and directions persist across ``step`` calls, so a new step's first
    iteration continues with y = g - (gradient at the start of the previous iteration), which
    without a line search is *not* the gradient at the parameters the previous step ended on
    (the last fixed step is not re-evaluated); the initial trial step of the first iteration
    ever is scaled by 1 / ||g||_1; without a line search the step is the fixed lr, not a
    Wolfe step; the stopping tests use max-norms and absolute (not relative) tolerances.
    """
    if max_eval is None:
        max_eval = max_iter * 5 // 4
    x = np.array(params, dtype=np.float64, copy=True)
    func_evals = 0 if state is None else state.func_evals
    total_iter = 0 if state is None else state.n_iter
    orig_loss, flat_grad = closure(x)
    loss = float(orig_loss)
    current_evals = 1
    func_evals += 1
    if np.max(np.abs(flat_grad)) <= tolerance_grad:
        if state is None:
            return x, orig_loss, LBFGSState(func_evals, total_iter)
        return x, orig_loss, state._replace(func_evals=func_evals)
    prev = state if state is not None else LBFGSState(func_evals, total_iter)
    d, t, h_diag = prev.d, prev.t, prev.H_diag
    old_dirs = list(prev.old_dirs or ())
    old_stps = list(prev.old_stps or ())
    ro = list(prev.ro or ())
    prev_flat_grad, prev_loss = prev.prev_flat_grad, prev.prev_loss
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        total_iter += 1
        # Search direction.
        if total_iter == 1:
            d = -flat_grad
            old_dirs, old_stps, ro = [], [], []
            h_diag = 1.0
        else:
            assert d is not None and t is not None and prev_flat_grad is not None
            y = flat_grad - prev_flat_grad
            s = d * t
            ys = float(y @ s)
            if ys > 1e-10:
                if len(old_dirs) == history_size:
                    old_dirs.pop(0)
                    old_stps.pop(0)
                    ro.pop(0)
                old_dirs.append(y)
                old_stps.append(s)
                ro.append(1.0 / ys)
                h_diag = ys / float(y @ y)
            assert h_diag is not None
            # Two-loop recursion: d = -H g.
            al = [0.0] * len(old_dirs)
            q = -flat_grad
            for i in range(len(old_dirs) - 1, -1, -1):
                al[i] = float(old_stps[i] @ q) * ro[i]
                q = q - al[i] * old_dirs[i]
            r = q * h_diag
            for i in range(len(old_dirs)):
                be_i = float(old_dirs[i] @ r) * ro[i]
                r = r + (al[i] - be_i) * old_stps[i]
            d = r
        prev_flat_grad = np.array(flat_grad, copy=True)
        prev_loss = loss
        # Step length.
        t = min(1.0, 1.0 / float(np.sum(np.abs(flat_grad)))) * lr if total_iter == 1 else lr
        gtd = float(flat_grad @ d)
        if gtd > -tolerance_change:
            break
        ls_func_evals = 0
        if line_search_fn is not None:
            if line_search_fn != "strong_wolfe":
                raise RuntimeError("only 'strong_wolfe' is supported")

            def phi(step: float, x0: Array = x, d0: Array = d) -> tuple[float, Array]:
                f_t, g_t = closure(x0 + step * d0)  # torch's _directional_evaluate
                return float(f_t), g_t

            loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                phi, d, t, loss, flat_grad, gtd, max_ls=max_eval - current_evals)
            x = x + t * d
            opt_cond = bool(np.max(np.abs(flat_grad)) <= tolerance_grad)
        else:
            x = x + t * d
            opt_cond = False
            if n_iter != max_iter:
                f_x, flat_grad = closure(x)
                loss = float(f_x)
                opt_cond = bool(np.max(np.abs(flat_grad)) <= tolerance_grad)
                ls_func_evals = 1
        current_evals += ls_func_evals
        func_evals += ls_func_evals
        # Stopping tests.
        if n_iter == max_iter or current_evals >= max_eval or opt_cond:
            break
        if np.max(np.abs(d * t)) <= tolerance_change:
            break
        if abs(loss - prev_loss) < tolerance_change:
            break
    new_state = LBFGSState(func_evals, total_iter, d, t, tuple(old_dirs), tuple(old_stps),
                           tuple(ro), h_diag, prev_flat_grad, prev_loss)
    return x, orig_loss, new_state
