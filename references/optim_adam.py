r"""Update rules of the Adam family, NumPy float64: Adam (and AMSGrad), AdamW, Adamax, NAdam, RAdam
and SparseAdam.

The rule, state and hyper-parameter conventions are those of ``references._optim_common``.
Follows ``torch.optim.Adam``, ``AdamW``, ``Adamax``, ``NAdam``, ``RAdam`` and ``SparseAdam``
(https://pytorch.org/docs/stable/optim.html) and their implementations (``torch/optim/adam.py``,
``adamax.py``, ``nadam.py``, ``radam.py``, ``_functional.py``), read for torch 2.13.0, operation
for operation.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from references._optim_common import Array, _buffers, _gradient, _lerp, _next_step


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
    m_t = lerp(m_{t-1}, g_t, 1 - beta1) evaluated as torch's ``lerp_`` is
    (``references._optim_common._lerp``: exactly g_t when beta1 = 0, where the one-sided
    m_{t-1} + 1 (g_t - m_{t-1}) loses a g_t far smaller than m_{t-1});
    v_t = beta2 v_{t-1} + ((1 - beta2) g_t) g_t; denominator sqrt(v) / sqrt(1 - beta2^t)
    + epsilon with sqrt(1 - beta2^t) taken as ``** 0.5`` on a Python float;
    theta_t = theta_{t-1} - ((gamma / (1 - beta1^t)) m_t) / denominator.

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
    theta, g = _gradient(param, grad, maximize=maximize, weight_decay=weight_decay, lr=lr,
                         decoupled=decoupled_weight_decay)
    step = _next_step(state)
    exp_avg, exp_avg_sq = _buffers(state, theta, "exp_avg", "exp_avg_sq")
    if state is None:
        max_exp_avg_sq = np.zeros_like(theta) if amsgrad else None
    else:
        max_exp_avg_sq = state.max_exp_avg_sq
        if amsgrad and max_exp_avg_sq is None:
            raise ValueError(
                "amsgrad=True but the state has no max_exp_avg_sq: amsgrad must be set from the "
                "first step (torch raises KeyError here)"
            )

    exp_avg = _lerp(exp_avg, g, 1 - beta1)
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
    theta, g = _gradient(param, grad, maximize=maximize, weight_decay=weight_decay)
    step = _next_step(state)
    exp_avg, exp_inf = _buffers(state, theta, "exp_avg", "exp_inf")
    exp_avg = _lerp(exp_avg, g, 1 - beta1)
    exp_inf = np.maximum(exp_inf * beta2, np.abs(g) + eps)
    clr = lr / (1 - beta1**step)
    return theta - clr * exp_avg / exp_inf, AdamaxState(step, exp_avg, exp_inf)


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
    theta, g = _gradient(param, grad, maximize=maximize, weight_decay=weight_decay, lr=lr,
                         decoupled=decoupled_weight_decay)
    step = _next_step(state)
    mu_product = 1.0 if state is None else float(state.mu_product)
    exp_avg, exp_avg_sq = _buffers(state, theta, "exp_avg", "exp_avg_sq")
    bias_correction2 = 1 - beta2**step
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    mu_product = mu_product * mu
    exp_avg = _lerp(exp_avg, g, 1 - beta1)
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
    theta, g = _gradient(param, grad, maximize=maximize, weight_decay=weight_decay, lr=lr,
                         decoupled=decoupled_weight_decay)
    step = _next_step(state)
    exp_avg, exp_avg_sq = _buffers(state, theta, "exp_avg", "exp_avg_sq")
    exp_avg = _lerp(exp_avg, g, 1 - beta1)
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
    present = ~np.ma.getmaskarray(grad)
    theta, g = _gradient(param, np.ma.getdata(grad), maximize=maximize)
    step = _next_step(state)
    exp_avg, exp_avg_sq = _buffers(state, theta, "exp_avg", "exp_avg_sq")
    if not present.any():
        return np.array(theta, copy=True), SparseAdamState(step, exp_avg, exp_avg_sq)
    exp_avg = np.where(present, exp_avg + (1 - beta1) * (g - exp_avg), exp_avg)
    exp_avg_sq = np.where(present, exp_avg_sq + (1 - beta2) * (g * g - exp_avg_sq), exp_avg_sq)
    step_size = lr * np.sqrt(1 - beta2**step) / (1 - beta1**step)
    update = step_size * exp_avg / (np.sqrt(exp_avg_sq) + eps)
    return np.where(present, theta - update, theta), SparseAdamState(step, exp_avg, exp_avg_sq)
