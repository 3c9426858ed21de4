r"""Loss functions and their vector-Jacobian products, NumPy float64.

Each forward ``f(input, target, **options)`` is paired with ``f_vjp(g, input, target, **options)``,
where ``g`` is the cotangent of the loss: a scalar for ``reduction="mean"`` or ``"sum"``, an array
of the unreduced loss's shape for ``reduction="none"``. The result maps each differentiable
argument to the gradient of ``sum(g * loss)`` with respect to it.

Every loss is first computed per element (the ``"none"`` form ``l``) and then reduced by one
shared rule: ``"sum"`` is sum_n l_n, ``"mean"`` is sum_n l_n / D with a loss-specific denominator
D (the element count for MSE, the total target weight for cross entropy). Hence the VJP of the
reduction is the same for every loss: dL/dl_n = g_n, g or g / D.

The torch documentation followed is named in each docstring (https://pytorch.org/docs/stable/nn.html).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from references.activations import softmax

Array = NDArray[np.float64]

_REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"reduction must be one of {', '.join(map(repr, _REDUCTIONS))}; got {reduction!r}"
        )


def _reduce(loss: Array, reduction: str, denominator: float) -> Array:
    r"""Reduce the per-element loss l: "none" -> l, "sum" -> sum_n l_n, "mean" -> sum_n l_n / D.

    D = 0 gives nan (0/0) or +-inf silently, as torch does.
    """
    _check_reduction(reduction)
    if reduction == "none":
        return loss
    total = np.sum(loss)
    if reduction == "sum":
        return np.asarray(total, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(total / denominator, dtype=np.float64)


def _reduce_vjp(g: Array, shape: tuple[int, ...], reduction: str, denominator: float) -> Array:
    r"""dL/dl_n for the reduction of a per-element loss l of ``shape``: g_n, g, or g / D."""
    _check_reduction(reduction)
    g = np.asarray(g, dtype=np.float64)
    if reduction == "mean":
        with np.errstate(divide="ignore", invalid="ignore"):
            g = g / denominator
    return np.broadcast_to(g, shape)


def _sum_to_shape(grad: Array, shape: tuple[int, ...]) -> Array:
    r"""Adjoint of broadcasting to ``grad.shape``: sum over the axes that broadcasting created."""
    leading = grad.ndim - len(shape)
    grad = np.sum(grad, axis=tuple(range(leading)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return np.sum(grad, axis=stretched, keepdims=True)


def mse_loss(input: Array, target: Array, reduction: str = "mean") -> Array:
    r"""l_n = (x_n - y_n)^2, reduced: "none" -> l, "sum" -> sum_n l_n, "mean" -> sum_n l_n / N.

    N is the number of elements of l (the broadcast shape of x and y).

    Derivative: dl_n/dx_n = 2 (x_n - y_n) = -dl_n/dy_n. VJP: with gbar_n = dL/dl_n (g_n, g or
    g / N), dL/dx = 2 gbar (x - y) and dL/dy = -dL/dx, each summed back to its argument's shape
    where x and y were broadcast against each other.

    Numerics: a difference and a square, each correctly rounded, so no rewrite is needed; it
    overflows only where (x - y)^2 itself exceeds the float64 range, as torch does.
    Follows ``torch.nn.functional.mse_loss`` / ``torch.nn.MSELoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.MSELoss.html). The documentation asks for
    equal shapes; torch broadcasts different shapes (with a UserWarning), and so does this
    reference. An empty input with "mean" gives nan, as in torch.
    """
    diff = np.asarray(input, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    loss = diff * diff
    return _reduce(loss, reduction, loss.size)


def mse_loss_vjp(
    g: Array, input: Array, target: Array, reduction: str = "mean"
) -> dict[str, Array]:
    r"""VJP of MSE:  dL/dx = 2 gbar (x - y),  dL/dy = -dL/dx,  gbar = dL/dl (see mse_loss)."""
    x = np.asarray(input, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    diff = x - y
    gbar = _reduce_vjp(g, diff.shape, reduction, diff.size)
    d_input = 2.0 * gbar * diff
    return {"input": _sum_to_shape(d_input, x.shape), "target": _sum_to_shape(-d_input, y.shape)}


def _class_targets(
    input: Array, target: Array, weight: Array | None, ignore_index: int, label_smoothing: float
) -> tuple[Array, int, NDArray[np.int64], NDArray[np.bool_], Array]:
    r"""Validate cross-entropy arguments; return (x, class_dim, y, valid, w).

    ``y`` has ignored targets replaced by class 0 (so it can index safely) and ``valid`` marks the
    non-ignored ones; ``w`` is the per-class weight (ones when ``weight`` is None).
    """
    x = np.asarray(input, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError("input must have a class dimension: shape (C,), (N, C) or (N, C, d1, ...)")
    class_dim = 0 if x.ndim == 1 else 1
    n_classes = x.shape[class_dim]
    target = np.asarray(target)
    if not np.issubdtype(target.dtype, np.integer):
        raise TypeError(f"target must hold integer class indices; got dtype {target.dtype}")
    expected = x.shape[:class_dim] + x.shape[class_dim + 1 :]
    if target.shape != expected:
        raise ValueError(f"target shape {target.shape} must be {expected} for input {x.shape}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0.0, 1.0]; got {label_smoothing}")
    w = np.ones(n_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    if w.shape != (n_classes,):
        raise ValueError(f"weight must have shape ({n_classes},); got {w.shape}")
    valid = target != ignore_index
    out_of_range = valid & ((target < 0) | (target >= n_classes))
    if np.any(out_of_range):
        raise IndexError(f"Target {target[out_of_range].flat[0]} is out of bounds.")
    y = np.where(valid, target, 0).astype(np.int64)
    return x, class_dim, y, valid, w


def _log_softmax(x: Array, dim: int) -> Array:
    r"""log_softmax(x)_i = (x_i - m) - log1p(sum_{j != k} exp(x_j - m)), m = x_k = max_j x_j.

    The same max shift as ``references.activations.log_softmax`` (every exp argument <= 0), but the
    term exp(x_k - m) = 1 is taken out of the sum and added by log1p: when the other classes are
    far below the maximum, -log p_k is tiny and log(1 + s) would keep only its absolute precision,
    log1p(s) keeps its relative precision.
    """
    shifted = x - np.max(x, axis=dim, keepdims=True)
    others = np.exp(shifted)
    np.put_along_axis(others, np.argmax(x, axis=dim, keepdims=True), 0.0, axis=dim)
    return shifted - np.log1p(np.sum(others, axis=dim, keepdims=True))


def _per_class(v: Array | NDArray[np.int64], ndim: int, class_dim: int) -> Array:
    r"""Reshape a per-class vector (C,) to broadcast along ``class_dim`` of an ``ndim``-d array."""
    return np.reshape(v, (-1,) + (1,) * (ndim - class_dim - 1))


def cross_entropy(
    input: Array,
    target: Array,
    weight: Array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Array:
    r"""Cross entropy of logits x against class indices y, with class weights w and smoothing eps.

    With log p_n = log_softmax(x_n) over the C classes (w_c = 1 when ``weight`` is None), for every
    sample n whose target is not ``ignore_index``:

        nll_n    = -w_{y_n} log p_{n,y_n}
        smooth_n = -sum_c w_c log p_{n,c}
        l_n      = (1 - eps) nll_n + (eps / C) smooth_n

    and l_n = 0 for ignored samples. Equivalently l_n = -sum_c q_{n,c} log p_{n,c} with the
    (weighted, smoothed) target distribution  q_{n,c} = (1 - eps) w_{y_n} [c = y_n] + (eps / C) w_c.
    Reduction: "none" -> l, "sum" -> sum_n l_n, "mean" -> sum_n l_n / D with
    D = sum over non-ignored n of w_{y_n} (the count of non-ignored samples when unweighted);
    the same D divides the smoothing term. D = 0 (every target ignored) gives nan.
    Shapes: input (C,) with a 0-d target (unbatched), (N, C) with target (N,), or
    (N, C, d1, ...) with target (N, d1, ...), where n runs over N, d1, ...; "none" returns an
    array of the target's shape.

    Derivative: since sum_c p_{n,c} = 1,  dl_n/dx_n = p_n sum_c q_{n,c} - q_n.
    VJP: dL/dx_n = s_n (softmax(x_n) sum_c q_{n,c} - q_n) with the per-sample scale
    s_n = dL/dl_n = g_n ("none"), g ("sum") or g / D ("mean"); s_n = 0 for ignored samples.

    Stable form: log_softmax subtracts the row maximum, so logits of magnitude 1e4 give finite
    values, and adds the maximum's own term through log1p, so the tiny loss of a confident correct
    prediction keeps its relative precision (torch's log(sum exp) keeps only absolute precision).
    The smoothing term is only formed when eps > 0: a -inf logit then makes the loss +inf (the
    uniform part puts mass on an impossible class), while with eps = 0 it must not turn the loss
    into nan through 0 * inf. Ignored samples are selected away (not multiplied by 0).

    Follows ``torch.nn.functional.cross_entropy`` / ``torch.nn.CrossEntropyLoss`` with class-index
    targets (https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html). For label
    smoothing, which the documentation describes only in words, it follows torch's implementation
    (``cross_entropy_loss_label_smoothing``, aten/src/ATen/native/LossNLL.cpp): with weights,
    "mean" divides by D, not by N as for the equivalent class-probability target.

    Class-probability targets (a floating ``target`` of the input's shape, torch's second form):

        l_n = -sum_c w_c t_{n,c} log p_{n,c},   t = (1 - eps) target + eps / C,

    ``ignore_index`` does not apply, and "mean" divides by the number of samples
    N * d1 * ... (input.numel() / C), not by a weight sum. Derivatives, with
    q_{n,c} = w_c t_{n,c}:  dl_n/dx_n = p_n sum_c q_{n,c} - q_n as above, and
    dl_n/dtarget_{n,c} = -(1 - eps) w_c log p_{n,c}.
    """
    if _is_probability_target(target):
        return _cross_entropy_probabilities(input, target, weight, reduction, label_smoothing)
    x, class_dim, y, valid, w = _class_targets(input, target, weight, ignore_index, label_smoothing)
    eps, n_classes = label_smoothing, x.shape[class_dim]
    total_weight = np.sum(w[y], where=valid)  # D
    log_p = _log_softmax(x, dim=class_dim)
    y_c = np.expand_dims(y, class_dim)
    log_p_y = np.squeeze(np.take_along_axis(log_p, y_c, axis=class_dim), axis=class_dim)
    loss = np.where(valid, -w[y] * log_p_y, 0.0)  # nll
    if eps > 0:
        w_c = _per_class(w, x.ndim, class_dim)
        smooth = np.where(valid, -np.sum(w_c * log_p, axis=class_dim), 0.0)
        loss = (1.0 - eps) * loss + (eps / n_classes) * smooth
    return _reduce(loss, reduction, total_weight)


def cross_entropy_vjp(
    g: Array,
    input: Array,
    target: Array,
    weight: Array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> dict[str, Array]:
    r"""VJP of cross entropy:  dL/dx_n = s_n (softmax(x_n) sum_c q_{n,c} - q_n).

    q_{n,c} = (1 - eps) w_{y_n} [c = y_n] + (eps / C) w_c is the weighted, smoothed target
    distribution and s_n = g_n, g or g / D the per-sample scale, 0 for ignored samples (selected,
    so that D = 0 leaves their gradient 0, as in torch). With class-index targets only ``input``
    is differentiable; with probability targets see ``_cross_entropy_probabilities_vjp``.
    """
    if _is_probability_target(target):
        return _cross_entropy_probabilities_vjp(g, input, target, weight, reduction,
                                                label_smoothing)
    x, class_dim, y, valid, w = _class_targets(input, target, weight, ignore_index, label_smoothing)
    eps, n_classes = label_smoothing, x.shape[class_dim]
    total_weight = np.sum(w[y], where=valid)  # D
    s = np.where(valid, _reduce_vjp(g, valid.shape, reduction, total_weight), 0.0)
    one_hot = _per_class(np.arange(n_classes), x.ndim, class_dim) == np.expand_dims(y, class_dim)
    w_y = np.expand_dims(w[y], class_dim)
    q = (1.0 - eps) * w_y * one_hot + (eps / n_classes) * _per_class(w, x.ndim, class_dim)
    p = softmax(x, dim=class_dim)
    with np.errstate(invalid="ignore"):  # D = 0 with non-ignored samples: inf * 0 = nan, as torch
        grad = np.expand_dims(s, class_dim) * (p * np.sum(q, axis=class_dim, keepdims=True) - q)
    return {"input": grad}


def _check_probability_target(x: Array, target: Array, label_smoothing: float) -> Array:
    r"""Validate a class-probability target (the input's shape, floating); return it as float64."""
    y = np.asarray(target, dtype=np.float64)
    if y.shape != x.shape:
        raise ValueError(f"probability target shape {y.shape} must equal input shape {x.shape}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0.0, 1.0]; got {label_smoothing}")
    return y


def _is_probability_target(target: Array) -> bool:
    return np.asarray(target).dtype.kind == "f"


def _probability_terms(
    input: Array, target: Array, weight: Array | None, label_smoothing: float
) -> tuple[Array, int, Array, Array, float]:
    r"""(x, class_dim, log p, q = w t, N) for a class-probability target (see cross_entropy)."""
    x = np.asarray(input, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError("input must have a class dimension: shape (C,), (N, C) or (N, C, d1, ...)")
    y = _check_probability_target(x, target, label_smoothing)
    class_dim = 0 if x.ndim == 1 else 1
    n_classes = x.shape[class_dim]
    w = np.ones(n_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    if w.shape != (n_classes,):
        raise ValueError(f"weight must have shape ({n_classes},); got {w.shape}")
    t = (1.0 - label_smoothing) * y + label_smoothing / n_classes
    q = _per_class(w, x.ndim, class_dim) * t
    return x, class_dim, _log_softmax(x, dim=class_dim), q, x.size / max(n_classes, 1)


def _cross_entropy_probabilities(
    input: Array, target: Array, weight: Array | None, reduction: str, label_smoothing: float
) -> Array:
    r"""l_n = -sum_c w_c t_{n,c} log p_{n,c}; "mean" divides by N (see cross_entropy)."""
    _, class_dim, log_p, q, n_samples = _probability_terms(input, target, weight, label_smoothing)
    # q = 0 selects 0, not 0 * log p (a -inf logit with zero target mass must not give nan).
    loss = -np.sum(np.where(q == 0.0, 0.0, q * log_p), axis=class_dim)
    return _reduce(loss, reduction, n_samples)


def _cross_entropy_probabilities_vjp(
    g: Array, input: Array, target: Array, weight: Array | None, reduction: str,
    label_smoothing: float,
) -> dict[str, Array]:
    r"""dL/dx_n = s_n (p_n sum_c q_{n,c} - q_n),  dL/dtarget_n = -s_n (1 - eps) w log p_n."""
    x, class_dim, log_p, q, n_samples = _probability_terms(input, target, weight, label_smoothing)
    n_classes = x.shape[class_dim]
    w = np.ones(n_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    shape = log_p.shape[:class_dim] + log_p.shape[class_dim + 1 :]
    s = np.expand_dims(_reduce_vjp(g, shape, reduction, n_samples), class_dim)
    p = softmax(x, dim=class_dim)
    d_input = s * (p * np.sum(q, axis=class_dim, keepdims=True) - q)
    d_target = -s * (1.0 - label_smoothing) * _per_class(w, x.ndim, class_dim) * log_p
    return {"input": d_input, "target": d_target}


def nll_loss(
    input: Array,
    target: Array,
    weight: Array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Array:
    r"""Negative log likelihood of log-probabilities x against class indices y.

    l_n = -w_{y_n} x_{n, y_n} for targets other than ``ignore_index``, 0 for ignored ones;
    "mean" divides sum_n l_n by D = sum over kept n of w_{y_n} (D = 0 gives nan, as torch).
    Shapes as cross_entropy: (C,) with a 0-d target, (N, C) with (N,), (N, C, d1, ...) with
    (N, d1, ...).

    Derivative: dl_n/dx_{n,c} = -w_{y_n} [c = y_n]; VJP dL/dx_{n,c} = -s_n w_{y_n} [c = y_n] with
    s_n = g_n, g or g / D, and 0 for ignored samples.

    Numerics: a selection and a product, exact up to one rounding; nothing to stabilise. x need
    not be normalised (torch does not check it).
    Follows ``torch.nn.functional.nll_loss`` / ``torch.nn.NLLLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.NLLLoss.html).
    """
    x, class_dim, y, valid, w = _class_targets(input, target, weight, ignore_index, 0.0)
    x_y = np.squeeze(np.take_along_axis(x, np.expand_dims(y, class_dim), axis=class_dim),
                     axis=class_dim)
    loss = np.where(valid, -w[y] * x_y, 0.0)
    return _reduce(loss, reduction, np.sum(w[y], where=valid))


def nll_loss_vjp(
    g: Array,
    input: Array,
    target: Array,
    weight: Array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> dict[str, Array]:
    r"""VJP of NLL:  dL/dx_{n,c} = -s_n w_{y_n} [c = y_n]  (0 for ignored samples)."""
    x, class_dim, y, valid, w = _class_targets(input, target, weight, ignore_index, 0.0)
    total_weight = np.sum(w[y], where=valid)
    s = np.where(valid, _reduce_vjp(g, valid.shape, reduction, total_weight), 0.0)
    one_hot = _per_class(np.arange(x.shape[class_dim]), x.ndim, class_dim) == np.expand_dims(
        y, class_dim)
    with np.errstate(invalid="ignore"):
        grad = np.where(one_hot, -np.expand_dims(s * w[y], class_dim), 0.0)
    return {"input": grad}


def _pair(input: Array, target: Array) -> tuple[Array, Array, Array]:
    x = np.asarray(input, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    return x, y, x - y


def l1_loss(input: Array, target: Array, reduction: str = "mean") -> Array:
    r"""l_n = |x_n - y_n|, reduced by "none", "sum" or "mean" (over all N elements).

    Derivative: dl/dx = sign(x - y) = -dl/dy, with torch's choice sign(0) = 0 at the kink.
    Numerics: exact up to the rounding of the difference.
    Follows ``torch.nn.functional.l1_loss`` / ``torch.nn.L1Loss``
    (https://pytorch.org/docs/stable/generated/torch.nn.L1Loss.html); input and target broadcast.
    """
    _, _, d = _pair(input, target)
    loss = np.abs(d)
    return _reduce(loss, reduction, loss.size)


def l1_loss_vjp(g: Array, input: Array, target: Array, reduction: str = "mean") -> dict[str, Array]:
    r"""dL/dx = gbar sign(x - y) (sign(0) = 0), dL/dy = -dL/dx, summed back to each shape."""
    x, y, d = _pair(input, target)
    d_input = _reduce_vjp(g, d.shape, reduction, d.size) * np.sign(d)
    return {"input": _sum_to_shape(d_input, x.shape), "target": _sum_to_shape(-d_input, y.shape)}


def smooth_l1_loss(
    input: Array, target: Array, reduction: str = "mean", beta: float = 1.0
) -> Array:
    r"""l_n = 0.5 d_n^2 / beta if |d_n| < beta, else |d_n| - 0.5 beta;  d = x - y.

    beta = 0 is the L1 loss (the quadratic piece is empty). Derivative: dl/dd = d / beta inside,
    sign(d) outside (continuous at |d| = beta); for beta = 0, sign(d) with sign(0) = 0 as torch.
    dl/dx = dl/dd = -dl/dy. Reduction over all elements.
    Numerics: the branches are selected, never both evaluated into the result, so beta = 0 never
    divides by zero in the output.
    Follows ``torch.nn.functional.smooth_l1_loss`` / ``torch.nn.SmoothL1Loss``
    (https://pytorch.org/docs/stable/generated/torch.nn.SmoothL1Loss.html).
    """
    _, _, d = _pair(input, target)
    a = np.abs(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = np.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta)
    return _reduce(loss, reduction, loss.size)


def smooth_l1_loss_vjp(
    g: Array, input: Array, target: Array, reduction: str = "mean", beta: float = 1.0
) -> dict[str, Array]:
    r"""dL/dx = gbar (d / beta if |d| < beta else sign(d)),  dL/dy = -dL/dx."""
    x, y, d = _pair(input, target)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(np.abs(d) < beta, d / beta, np.sign(d))
    d_input = _reduce_vjp(g, d.shape, reduction, d.size) * slope
    return {"input": _sum_to_shape(d_input, x.shape), "target": _sum_to_shape(-d_input, y.shape)}


def huber_loss(input: Array, target: Array, reduction: str = "mean", delta: float = 1.0) -> Array:
    r"""l_n = 0.5 d_n^2 if |d_n| < delta, else delta (|d_n| - 0.5 delta);  d = x - y, delta > 0.

    Huber = delta * SmoothL1 with beta = delta. Derivative: dl/dd = d inside, delta sign(d)
    outside (continuous at |d| = delta); dl/dx = dl/dd = -dl/dy. Reduction over all elements.
    Numerics: branch selection only.
    Follows ``torch.nn.functional.huber_loss`` / ``torch.nn.HuberLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.HuberLoss.html).
    """
    _, _, d = _pair(input, target)
    a = np.abs(d)
    loss = np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))
    return _reduce(loss, reduction, loss.size)


def huber_loss_vjp(
    g: Array, input: Array, target: Array, reduction: str = "mean", delta: float = 1.0
) -> dict[str, Array]:
    r"""dL/dx = gbar (d if |d| <= delta else delta sign(d)),  dL/dy = -dL/dx."""
    x, y, d = _pair(input, target)
    slope = np.where(np.abs(d) <= delta, d, delta * np.sign(d))
    d_input = _reduce_vjp(g, d.shape, reduction, d.size) * slope
    return {"input": _sum_to_shape(d_input, x.shape), "target": _sum_to_shape(-d_input, y.shape)}


def _softplus(z: Array) -> Array:
    r"""log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)): never overflows, exact for z << 0."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def _sigmoid(z: Array) -> Array:
    r"""1 / (1 + exp(-z)) through exp(-|z|) only, so neither branch overflows."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def soft_margin_loss(input: Array, target: Array, reduction: str = "mean") -> Array:
    r"""l_n = log(1 + exp(-y_n x_n)), reduced over all elements (targets usually +-1).

    Derivative: dl/dx = -y sigmoid(-y x). torch declares ``target`` not differentiable.
    Stable form: softplus(-y x) = max(-y x, 0) + log1p(exp(-|y x|)) stays finite where
    exp(-y x) overflows; torch's kernel evaluates log1p(exp(-y x)) literally and overflows to inf
    for -y x > 709 (float64) / 88 (float32), see KNOWN_DIFFERENCES.md.
    Follows ``torch.nn.functional.soft_margin_loss`` / ``torch.nn.SoftMarginLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.SoftMarginLoss.html).
    """
    x, y, _ = _pair(input, target)
    loss = _softplus(-y * x)
    return _reduce(loss, reduction, loss.size)


def soft_margin_loss_vjp(
    g: Array, input: Array, target: Array, reduction: str = "mean"
) -> dict[str, Array]:
    r"""dL/dx = -gbar y sigmoid(-y x)."""
    x, y, _ = _pair(input, target)
    gbar = _reduce_vjp(g, np.broadcast_shapes(x.shape, y.shape), reduction, np.broadcast(x, y).size)
    return {"input": _sum_to_shape(-gbar * y * _sigmoid(-y * x), x.shape)}


def poisson_nll_loss(
    input: Array,
    target: Array,
    log_input: bool = True,
    full: bool = False,
    eps: float = 1e-8,
    reduction: str = "mean",
) -> Array:
    r"""Poisson negative log likelihood of rate exp(x) (log_input) or x, for counts y.

    l_n = exp(x_n) - y_n x_n                 (log_input=True)
    l_n = x_n - y_n log(x_n + eps)           (log_input=False)
    plus, if ``full``, Stirling's term  y log y - y + 0.5 log(2 pi y)  where y > 1 (0 where
    y <= 1, as torch masks it). Reduction over all elements.

    Derivatives: log_input: dl/dx = exp(x) - y, dl/dy = -x; otherwise dl/dx = 1 - y / (x + eps),
    dl/dy = -log(x + eps); Stirling adds dl/dy = log y + 1 / (2 y) for y > 1 (0 for y <= 1: the
    term jumps at y = 1, where the loss is not differentiable in y).

    Numerics: textbook forms, as torch; exp(x) overflows only where the loss itself exceeds the
    float range. Follows ``torch.nn.functional.poisson_nll_loss`` / ``torch.nn.PoissonNLLLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.PoissonNLLLoss.html) and torch's kernel
    (aten/src/ATen/native/Loss.cpp) for the y <= 1 mask. At y = 0 with ``full`` torch's target
    gradient is nan (0 * log 0 in the masked branch); this reference is not defined there for
    the target gradient either (0 * -inf), see KNOWN_DIFFERENCES.md.
    """
    x, y, _ = _pair(input, target)
    loss = np.exp(x) - y * x if log_input else x - y * np.log(x + eps)
    if full:
        big = y > 1
        ys = np.where(big, y, 2.0)  # any value > 1 keeps log finite in the unselected branch
        loss = loss + np.where(big, ys * np.log(ys) - ys + 0.5 * np.log(2 * np.pi * ys), 0.0)
    return _reduce(loss, reduction, loss.size)


def poisson_nll_loss_vjp(
    g: Array,
    input: Array,
    target: Array,
    log_input: bool = True,
    full: bool = False,
    eps: float = 1e-8,
    reduction: str = "mean",
) -> dict[str, Array]:
    r"""dL/dx = gbar (exp(x) - y | 1 - y / (x + eps)), dL/dy = gbar (-x | -log(x + eps)) + Stirling.

    The Stirling part of dL/dy is 0 * log(y) where y <= 1: 0 for y in (0, 1], nan at y = 0 with
    ``full``, exactly as torch's autograd computes it (the VJP of the masked term; the true
    derivative there is finite). KNOWN_DIFFERENCES.md.
    """
    x, y, d = _pair(input, target)
    gbar = _reduce_vjp(g, d.shape, reduction, d.size)
    if log_input:
        d_input, d_target = np.exp(x) - y, -x + 0.0 * y
    else:
        d_input, d_target = 1.0 - y / (x + eps), -np.log(x + eps) + 0.0 * y
    if full:
        with np.errstate(divide="ignore", invalid="ignore"):
            d_target = d_target + np.where(y > 1, np.log(y) + 0.5 / y, 0.0 * np.log(y))
    return {"input": _sum_to_shape(gbar * d_input, x.shape),
            "target": _sum_to_shape(gbar * d_target, y.shape)}


def _gaussian_var(x: Array, var: Array) -> Array:
    r"""var reshaped as torch does: input.shape[:-1] gets a trailing 1; else it must broadcast."""
    v = np.asarray(var, dtype=np.float64)
    if v.shape != x.shape:
        if v.shape == x.shape[:-1]:
            v = v[..., None]
        elif not (v.ndim == x.ndim
                  and sum(b for a, b in zip(x.shape, v.shape, strict=True) if a != b) == 1):
            raise ValueError("var is of incorrect size")
    if np.any(v < 0):
        raise ValueError("var has negative entry/entries")
    return v


def gaussian_nll_loss(
    input: Array,
    target: Array,
    var: Array,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Array:
    r"""Gaussian negative log likelihood of target y under N(x, var).

    l_n = 0.5 (log v_n + (x_n - y_n)^2 / v_n)  (+ 0.5 log(2 pi) if ``full``),  v = max(var, eps),
    reduced over all elements. ``var`` has the input's shape, or the input's shape without its
    last dimension (one variance per row), or the input's shape with exactly one dimension of
    size 1; it is broadcast against the input.

    Derivatives: dl/dx = (x - y) / v = -dl/dy;  dl/dvar = 0.5 (1 / v - (x - y)^2 / v^2).
    torch clamps var in place under ``torch.no_grad()``, so the clamp is invisible to autograd:
    below eps the gradient w.r.t. var is still 0.5 (1/eps - d^2/eps^2) (a straight-through
    clamp), not the 0 of max(var, eps). This reference follows torch (KNOWN_DIFFERENCES.md).
    The VJP w.r.t. var sums over the broadcast dimensions.

    Numerics: the textbook form; eps keeps log v and 1 / v finite at var = 0.
    Follows ``torch.nn.functional.gaussian_nll_loss`` / ``torch.nn.GaussianNLLLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.GaussianNLLLoss.html).
    """
    x, _, d = _pair(input, target)
    v = np.maximum(_gaussian_var(x, var), eps)
    loss = 0.5 * (np.log(v) + d * d / v)
    if full:
        loss = loss + 0.5 * np.log(2 * np.pi)
    return _reduce(loss, reduction, loss.size)


def gaussian_nll_loss_vjp(
    g: Array,
    input: Array,
    target: Array,
    var: Array,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> dict[str, Array]:
    r"""dL/dx = gbar d / v = -dL/dy,  dL/dvar = sum over broadcast of gbar 0.5 (1/v - d^2/v^2)."""
    x, y, d = _pair(input, target)
    v0 = _gaussian_var(x, var)
    v = np.maximum(v0, eps)
    shape = np.broadcast_shapes(d.shape, v.shape)
    gbar = _reduce_vjp(g, shape, reduction, int(np.prod(shape)))
    d_input = gbar * d / v
    d_var = _sum_to_shape(gbar * 0.5 * (1.0 / v - d * d / (v * v)), v0.shape)
    return {"input": _sum_to_shape(d_input, x.shape), "target": _sum_to_shape(-d_input, y.shape),
            "var": np.reshape(d_var, np.shape(var))}


def kl_div(input: Array, target: Array, reduction: str = "mean", log_target: bool = False) -> Array:
    r"""Kullback-Leibler divergence, pointwise: x = log q (the input), y = p or log p (the target).

    l_n = y_n (log y_n - x_n)            (log_target=False; 0 where y_n = 0, the limit of y log y)
    l_n = exp(y_n) (y_n - x_n)           (log_target=True)
    Reduction: "none", "sum", "mean" (over all elements: not the divergence), or "batchmean"
    (sum / input.shape[0], the divergence averaged over the batch; the plain sum for a 0-d input).

    Derivatives: dl/dx = -y (resp. -exp(y));  dl/dy = log y + 1 - x (resp. exp(y)(y - x + 1)).
    At y = 0 (log_target=False) the target derivative is -inf; torch returns nan there (the
    VJP of xlogy at 0), and this reference follows torch.

    Numerics: y log y is formed as xlogy (0 at y = 0, no 0 * -inf), as torch does.
    Follows ``torch.nn.functional.kl_div`` / ``torch.nn.KLDivLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.KLDivLoss.html).
    """
    x, y, _ = _pair(input, target)
    if log_target:
        loss = np.exp(y) * (y - x)
    else:
        with np.errstate(divide="ignore"):
            loss = np.where(y == 0, 0.0, y * np.log(np.where(y == 0, 1.0, y))) - y * x
    return _kl_reduce(loss, reduction, x)


def _kl_denominator(reduction: str, x: Array, loss: Array) -> tuple[str, float]:
    if reduction == "batchmean":
        return "mean", float(x.shape[0]) if x.ndim else 1.0
    return reduction, float(loss.size)


def _kl_reduce(loss: Array, reduction: str, x: Array) -> Array:
    reduction, denominator = _kl_denominator(reduction, x, loss)
    return _reduce(loss, reduction, denominator)


def kl_div_vjp(
    g: Array, input: Array, target: Array, reduction: str = "mean", log_target: bool = False
) -> dict[str, Array]:
    r"""dL/dx = -gbar y (or -gbar e^y),  dL/dy = gbar (log y + 1 - x) (or gbar e^y (y - x + 1))."""
    x, y, d = _pair(input, target)
    red, denominator = _kl_denominator(reduction, x, d)
    gbar = _reduce_vjp(g, d.shape, red, denominator)
    if log_target:
        e = np.exp(y)
        d_input, d_target = -e + 0.0 * x, e * (y - x + 1.0)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            # torch: nan at y = 0 (xlogy's VJP there), where the derivative is -inf.
            d_input, d_target = -y + 0.0 * x, np.where(y == 0, np.nan, np.log(y) + 1.0 - x)
    return {"input": _sum_to_shape(gbar * d_input, x.shape),
            "target": _sum_to_shape(gbar * d_target, y.shape)}


# torch's EPSILON in binary_cross_entropy_backward (aten/src/ATen/native/Loss.cpp): a C++
# float, so 1e-12 rounded to float32 (9.9999999600e-13); it sets the gradient at x in {0, 1}.
_BCE_EPSILON = float(np.float32(1e-12))


def binary_cross_entropy(
    input: Array, target: Array, weight: Array | None = None, reduction: str = "mean"
) -> Array:
    r"""l_n = -w_n (y_n max(log x_n, -100) + (1 - y_n) max(log(1 - x_n), -100)),  x in [0, 1].

    The weight w broadcasts to the input's shape (ones when None). Reduction over all elements.
    torch clamps each log at -100 so that x in {0, 1} gives a finite loss (documented).

    Derivatives, as torch's backward computes them (not the derivative of the clamped forward):
    dl/dx = w (x - y) / max(x (1 - x), e)  and  dl/dy = -w logit(x) = w (log(1 - x) - log x).
    Here e = float32(1e-12). Away from x in {0, 1} these are the exact derivatives of the
    formula; at x = 0 or 1 torch's input gradient is finite (the floor e) and its target
    gradient is +-inf, although the clamped forward is flat in x and has finite slope in y
    there; the reference follows torch (KNOWN_DIFFERENCES.md). ``weight`` is not
    differentiable in torch.

    Numerics: log and log1p-free textbook form, as torch. Follows
    ``torch.nn.functional.binary_cross_entropy`` / ``torch.nn.BCELoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.BCELoss.html).
    """
    x, y, _ = _pair(input, target)
    if np.any((x < 0) | (x > 1)):
        raise ValueError("all elements of input should be between 0 and 1")
    w = 1.0 if weight is None else np.asarray(weight, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_x, log_1mx = np.maximum(np.log(x), -100.0), np.maximum(np.log(1.0 - x), -100.0)
    loss = -w * (y * log_x + (1.0 - y) * log_1mx)
    return _reduce(loss, reduction, loss.size)


def binary_cross_entropy_vjp(
    g: Array, input: Array, target: Array, weight: Array | None = None, reduction: str = "mean"
) -> dict[str, Array]:
    r"""dL/dx = gbar w (x - y) / max(x (1 - x), e),  dL/dy = -gbar w logit(x)  (as torch)."""
    x, y, d = _pair(input, target)
    w = 1.0 if weight is None else np.asarray(weight, dtype=np.float64)
    shape = np.broadcast_shapes(d.shape, np.shape(w))
    gbar = _reduce_vjp(g, shape, reduction, int(np.prod(shape)))
    with np.errstate(divide="ignore"):
        logit = np.log(x) - np.log1p(-x)
    d_input = gbar * w * d / np.maximum(x * (1.0 - x), _BCE_EPSILON)
    return {"input": _sum_to_shape(d_input, x.shape),
            "target": _sum_to_shape(-gbar * w * logit, y.shape)}


def binary_cross_entropy_with_logits(
    input: Array,
    target: Array,
    weight: Array | None = None,
    reduction: str = "mean",
    pos_weight: Array | None = None,
) -> Array:
    r"""BCE on logits: l_n = -w_n (p_n y_n log sigmoid(x_n) + (1 - y_n) log(1 - sigmoid(x_n))).

    pos_weight p (ones when None) broadcasts against the target, typically along the last (class)
    dimension; weight w broadcasts to the input. Reduction over all elements.
    Rewritten as torch does:  l = w ((1 - y) x + (1 + (p - 1) y) softplus(-x)).

    Derivatives: dl/dx = w ((1 + (p - 1) y) sigmoid(x) - p y)  (equivalently
    w ((1 - y) sigmoid(x) - p y sigmoid(-x)));  dl/dy = w (p softplus(-x) - softplus(x)).
    ``weight`` and ``pos_weight`` are not differentiable in torch.

    Stable form: log sigmoid(x) = -softplus(-x) with softplus(z) = max(z, 0) + log1p(exp(-|z|)),
    finite for any logit (the point of this loss over sigmoid + BCE).
    Follows ``torch.nn.functional.binary_cross_entropy_with_logits`` /
    ``torch.nn.BCEWithLogitsLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.BCEWithLogitsLoss.html).
    """
    x, y, _ = _pair(input, target)
    w = 1.0 if weight is None else np.asarray(weight, dtype=np.float64)
    p = 1.0 if pos_weight is None else np.asarray(pos_weight, dtype=np.float64)
    loss = w * ((1.0 - y) * x + (1.0 + (p - 1.0) * y) * _softplus(-x))
    return _reduce(loss, reduction, loss.size)


def binary_cross_entropy_with_logits_vjp(
    g: Array,
    input: Array,
    target: Array,
    weight: Array | None = None,
    reduction: str = "mean",
    pos_weight: Array | None = None,
) -> dict[str, Array]:
    r"""dL/dx = gbar w ((1 + (p - 1) y) sigmoid(x) - p y), dL/dy = gbar w (p sp(-x) - sp(x)).

    sp is softplus (see binary_cross_entropy_with_logits).
    """
    x, y, _ = _pair(input, target)
    w = 1.0 if weight is None else np.asarray(weight, dtype=np.float64)
    p = 1.0 if pos_weight is None else np.asarray(pos_weight, dtype=np.float64)
    shape = np.broadcast_shapes(x.shape, y.shape, np.shape(w), np.shape(p))
    gbar = _reduce_vjp(g, shape, reduction, int(np.prod(shape)))
    d_input = gbar * w * ((1.0 + (p - 1.0) * y) * _sigmoid(x) - p * y)
    d_target = gbar * w * (p * _softplus(-x) - _softplus(x))
    return {"input": _sum_to_shape(d_input, x.shape), "target": _sum_to_shape(d_target, y.shape)}


def _active(z: Array, clamp_closed: bool) -> NDArray[np.bool_]:
    r"""Where max(z, 0) passes its gradient: z >= 0 when ``clamp_closed`` (torch 2.13 and older:
    clamp_min's backward kept the gradient at the bound), z > 0 otherwise (torch 2.14 and newer
    give 0 at the bound; docs/conventions.md)."""
    return (z >= 0) if clamp_closed else (z > 0)


def hinge_embedding_loss(
    input: Array, target: Array, margin: float = 1.0, reduction: str = "mean"
) -> Array:
    r"""l_n = x_n if y_n = 1,  max(0, margin - x_n) if y_n = -1;  reduced over all elements.

    torch's kernel adds both pieces under the masks [y != -1] and [y != 1], so a target that is
    neither 1 nor -1 gets x + max(0, margin - x); the reference does the same.
    Derivative: dl/dx = [y != -1] - [y != 1] [margin - x >= 0]. At the kink x = margin torch's
    clamp_min passes the gradient (its mask is >=), so dl/dx = -1 there for y = -1.
    ``target`` is not differentiable in torch (it only selects).
    Numerics: exact up to one rounding. Follows ``torch.nn.functional.hinge_embedding_loss`` /
    ``torch.nn.HingeEmbeddingLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.HingeEmbeddingLoss.html).
    """
    x, y, _ = _pair(input, target)
    loss = np.where(y != 1, np.maximum(margin - x, 0.0), 0.0) + np.where(y != -1, x, 0.0)
    return _reduce(loss, reduction, loss.size)


def hinge_embedding_loss_vjp(
    g: Array, input: Array, target: Array, margin: float = 1.0, reduction: str = "mean", *,
    clamp_closed: bool = True,
) -> dict[str, Array]:
    r"""dL/dx = gbar ([y != -1] - [y != 1] [margin - x >= 0]) (``> 0`` unless ``clamp_closed``,
    see :func:`_active`)."""
    x, y, _ = _pair(input, target)
    shape = np.broadcast_shapes(x.shape, y.shape)
    gbar = _reduce_vjp(g, shape, reduction, int(np.prod(shape)))
    slope = (y != -1).astype(np.float64) - ((y != 1) & _active(margin - x, clamp_closed)).astype(
        np.float64)
    return {"input": _sum_to_shape(gbar * slope, x.shape)}


def margin_ranking_loss(
    input1: Array, input2: Array, target: Array, margin: float = 0.0, reduction: str = "mean"
) -> Array:
    r"""l_n = max(0, -y_n (x1_n - x2_n) + margin), reduced over all elements (y usually +-1).

    Derivatives, with the active set a = [-y (x1 - x2) + margin >= 0] (torch's clamp_min passes
    the gradient at the kink): dl/dx1 = -y a, dl/dx2 = y a, dl/dy = -(x1 - x2) a (torch composes
    the loss from differentiable ops, so the target has a gradient too).
    Numerics: exact up to roundings. Follows ``torch.nn.functional.margin_ranking_loss`` /
    ``torch.nn.MarginRankingLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.MarginRankingLoss.html).
    """
    x1, x2, y = (np.asarray(a, dtype=np.float64) for a in (input1, input2, target))
    loss = np.maximum(-y * (x1 - x2) + margin, 0.0)
    return _reduce(loss, reduction, loss.size)


def margin_ranking_loss_vjp(
    g: Array, input1: Array, input2: Array, target: Array, margin: float = 0.0,
    reduction: str = "mean", *, clamp_closed: bool = True,
) -> dict[str, Array]:
    r"""dL/dx1 = -gbar y a,  dL/dx2 = gbar y a,  dL/dy = -gbar (x1 - x2) a;  a = [z >= 0]
    (``> 0`` unless ``clamp_closed``, see :func:`_active`)."""
    x1, x2, y = (np.asarray(a, dtype=np.float64) for a in (input1, input2, target))
    z = -y * (x1 - x2) + margin
    s = _reduce_vjp(g, z.shape, reduction, z.size) * _active(z, clamp_closed)
    return {"input1": _sum_to_shape(-s * y, x1.shape), "input2": _sum_to_shape(s * y, x2.shape),
            "target": _sum_to_shape(-s * (x1 - x2), y.shape)}


def _margin_classes(input: Array, target: Array) -> tuple[Array, NDArray[np.int64], bool]:
    r"""(x as (N, C), target as (N,) or (N, C), whether the input was unbatched)."""
    x = np.asarray(input, dtype=np.float64)
    unbatched = x.ndim <= 1
    x2 = np.reshape(x, (1, -1)) if unbatched else x
    t = np.asarray(target).astype(np.int64)
    t2 = np.reshape(t, (1, *t.shape)) if unbatched else t
    return x2, t2, unbatched


def multi_margin_loss(
    input: Array,
    target: Array,
    p: int = 1,
    margin: float = 1.0,
    weight: Array | None = None,
    reduction: str = "mean",
) -> Array:
    r"""Multi-class hinge loss of scores x (N, C) or (C,) against class indices y:

        l_n = (1 / C) sum_{i != y_n} w_{y_n} max(0, margin - x_{n, y_n} + x_{n, i})^p,  p in {1, 2}.

    This is torch's kernel: the class weight multiplies the p-th power. The documentation writes
    max(0, w_{y_n} (margin - x_y + x_i))^p, which differs for p = 2 (a factor w_{y_n});
    KNOWN_DIFFERENCES.md. Reduction over the N samples.

    Derivative, with z_{n,i} = margin - x_{n,y_n} + x_{n,i} and the active set z > 0 (torch's
    kernel uses a strict >, so the gradient is 0 at the kink z = 0):
    dl/dx_{n,i} = w_{y_n} p z^{p-1} / C for active i != y_n, and dl/dx_{n,y_n} = -sum of those.
    Numerics: exact up to roundings. Follows ``torch.nn.functional.multi_margin_loss`` /
    ``torch.nn.MultiMarginLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.MultiMarginLoss.html).
    """
    x, t, unbatched = _margin_classes(input, target)
    z, active, w_y = _multi_margin_terms(x, t, margin, weight)
    loss = w_y * np.sum(np.where(active, z**p, 0.0), axis=1) / x.shape[1]
    loss = loss[0] if unbatched else loss
    return _reduce(np.asarray(loss), reduction, np.size(loss))


def _multi_margin_terms(
    x: Array, t: NDArray[np.int64], margin: float, weight: Array | None
) -> tuple[Array, NDArray[np.bool_], Array]:
    c = x.shape[1]
    x_y = np.take_along_axis(x, t[:, None], axis=1)
    z = margin - x_y + x
    active = (z > 0) & (np.arange(c)[None, :] != t[:, None])
    w_y = np.ones(t.shape) if weight is None else np.asarray(weight, dtype=np.float64)[t]
    return z, active, w_y


def multi_margin_loss_vjp(
    g: Array,
    input: Array,
    target: Array,
    p: int = 1,
    margin: float = 1.0,
    weight: Array | None = None,
    reduction: str = "mean",
) -> dict[str, Array]:
    r"""dL/dx_{n,i} = s_n w_{y_n} p z^{p-1} / C (active i),  dL/dx_{n,y_n} = -sum_i of those."""
    x, t, unbatched = _margin_classes(input, target)
    z, active, w_y = _multi_margin_terms(x, t, margin, weight)
    n = x.shape[0]
    s = np.reshape(_reduce_vjp(g, () if unbatched else (n,), reduction, n), (n,))
    d = np.where(active, p * z ** (p - 1), 0.0) * (s * w_y / x.shape[1])[:, None]
    np.put_along_axis(d, t[:, None], -np.sum(d, axis=1, keepdims=True), axis=1)
    return {"input": np.reshape(d, np.shape(input))}


def _multilabel_sets(t: NDArray[np.int64]) -> NDArray[np.bool_]:
    r"""is_target[n, c]: c is among row n's targets, which end at the first -1."""
    n, c = t.shape
    before_stop = np.cumsum(t == -1, axis=1) == 0
    is_target = np.zeros((n, c), dtype=bool)
    rows, cols = np.nonzero(before_stop)
    is_target[rows, t[rows, cols]] = True
    return is_target


def multilabel_margin_loss(input: Array, target: Array, reduction: str = "mean") -> Array:
    r"""Multi-label hinge loss: for each sample, targets y_1, y_2, ... end at the first -1;

        l_n = (1 / C) sum_{j in targets} sum_{i not in targets} max(0, 1 - (x_{n,y_j} - x_{n,i})).

    Input (C,) or (N, C), target int64 of the same shape. Reduction over the N samples.
    Derivative, with the active pairs z = 1 - (x_{y_j} - x_i) > 0 (torch's kernel uses a strict
    >, so the gradient is 0 at the kink z = 0): dl/dx_i = +1/C per active pair (i, j),
    dl/dx_{y_j} = -1/C per active pair. ``target`` is not differentiable.
    Numerics: exact up to roundings. Follows ``torch.nn.functional.multilabel_margin_loss`` /
    ``torch.nn.MultiLabelMarginLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.MultiLabelMarginLoss.html).
    """
    x, t, unbatched = _margin_classes(input, target)
    loss = _multilabel_terms(x, t)[0] / x.shape[1]
    loss = loss[0] if unbatched else loss
    return _reduce(np.asarray(loss), reduction, np.size(loss))


def _multilabel_terms(x: Array, t: NDArray[np.int64]) -> tuple[Array, Array]:
    r"""Per sample n: sum over active pairs of z = 1 - (x_{n,j} - x_{n,i}) (j a target, i not,
    z > 0), and per class the count of active pairs with it as i minus those with it as j.

    Row by row, so memory stays O(C^2) rather than O(N C^2).
    """
    is_target = _multilabel_sets(t)
    sums, counts = np.zeros(x.shape[0]), np.zeros(x.shape)
    for n, (row, targets) in enumerate(zip(x, is_target, strict=True)):
        z = 1.0 - (row[:, None] - row[None, :])
        active = targets[:, None] & ~targets[None, :] & (z > 0)
        sums[n] = np.sum(z, where=active)
        counts[n] = np.sum(active, axis=0) - np.sum(active, axis=1)
    return sums, counts


def multilabel_margin_loss_vjp(
    g: Array, input: Array, target: Array, reduction: str = "mean"
) -> dict[str, Array]:
    r"""dL/dx_i = s_n / C (#active pairs with i the non-target - #active pairs with i a target)."""
    x, t, unbatched = _margin_classes(input, target)
    counts = _multilabel_terms(x, t)[1]  # as non-target minus as target
    n = x.shape[0]
    s = np.reshape(_reduce_vjp(g, () if unbatched else (n,), reduction, n), (n,))
    d = counts * (s / x.shape[1])[:, None]
    return {"input": np.reshape(d, np.shape(input))}


def multilabel_soft_margin_loss(
    input: Array, target: Array, weight: Array | None = None, reduction: str = "mean"
) -> Array:
    r"""l_n = -(1 / C) sum_c w_c (y_{n,c} log sigmoid(x_{n,c}) + (1 - y_{n,c}) log sigmoid(-x)).

    Input (N, C) or (C,) (the class dimension is the last), target of the same shape (usually 0
    or 1), weight (C,) (ones when None). Reduction over the samples.
    Derivatives: dl/dx = (w / C) (sigmoid(x) - y);  dl/dy = -(w / C) x (since
    log sigmoid(x) - log sigmoid(-x) = x); torch composes the loss from differentiable ops, so
    the target has a gradient.
    Stable form: log sigmoid(+-x) = -softplus(-+x), finite for any logit.
    Follows ``torch.nn.functional.multilabel_soft_margin_loss`` /
    ``torch.nn.MultiLabelSoftMarginLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.MultiLabelSoftMarginLoss.html).
    """
    x, y, _ = _pair(input, target)
    w = 1.0 if weight is None else np.asarray(weight, dtype=np.float64)
    per_class = w * (y * _softplus(-x) + (1.0 - y) * _softplus(x))
    loss = np.sum(per_class, axis=-1) / x.shape[-1]
    return _reduce(loss, reduction, loss.size)


def multilabel_soft_margin_loss_vjp(
    g: Array, input: Array, target: Array, weight: Array | None = None, reduction: str = "mean"
) -> dict[str, Array]:
    r"""dL/dx = s (w / C) (sigmoid(x) - y),  dL/dy = -s (w / C) x."""
    x, y, _ = _pair(input, target)
    w = 1.0 if weight is None else np.asarray(weight, dtype=np.float64)
    shape = x.shape[:-1]
    s = np.expand_dims(_reduce_vjp(g, shape, reduction, int(np.prod(shape))), -1) * w / x.shape[-1]
    return {"input": s * (_sigmoid(x) - y), "target": -s * x}


# torch's EPSILON in cosine_embedding_loss (aten/src/ATen/native/Loss.cpp): a C++ float, so
# 1e-12 rounded to float32 (9.9999999600e-13), which shows in the gradient at a zero vector.
_COSINE_EPSILON = float(np.float32(1e-12))


def cosine_embedding_loss(
    input1: Array, input2: Array, target: Array, margin: float = 0.0, reduction: str = "mean"
) -> Array:
    r"""l_n = 1 - cos(x1_n, x2_n) if y_n = 1,  max(0, cos(x1_n, x2_n) - margin) if y_n = -1.

    cos(a, b) = a.b / sqrt((|a|^2 + e)(|b|^2 + e)) along the last dimension (torch's
    kernel adds e = float32(1e-12) to each squared norm). Inputs (N, D) with target (N,), or
    (D,) with a 0-d target; a target that is neither +-1 gives 0. Reduction over the samples.

    Derivative: with m_a = |a|^2 + e and cos = a.b / sqrt(m_a m_b),
    dcos/da = b / sqrt(m_a m_b) - cos a / m_a (and symmetrically for b); dl/dcos = -1 (y = 1),
    [cos - margin >= 0] (y = -1; torch's clamp_min passes the gradient at the kink).
    ``target`` is not differentiable in torch.
    Numerics: as torch; e keeps a zero vector's loss finite. Follows
    ``torch.nn.functional.cosine_embedding_loss`` / ``torch.nn.CosineEmbeddingLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.CosineEmbeddingLoss.html).
    """
    cos, y = _cosine_terms(input1, input2, target)[:2]
    loss = np.where(y == 1, 1.0 - cos, 0.0) + np.where(y == -1, np.maximum(cos - margin, 0.0), 0.0)
    return _reduce(loss, reduction, loss.size)


def _cosine_terms(
    input1: Array, input2: Array, target: Array
) -> tuple[Array, Array, Array, Array, Array, Array]:
    a, b = np.asarray(input1, dtype=np.float64), np.asarray(input2, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    m_a = np.sum(a * a, axis=-1) + _COSINE_EPSILON
    m_b = np.sum(b * b, axis=-1) + _COSINE_EPSILON
    cos = np.sum(a * b, axis=-1) / np.sqrt(m_a * m_b)
    return cos, y, a, b, m_a, m_b


def cosine_embedding_loss_vjp(
    g: Array, input1: Array, input2: Array, target: Array, margin: float = 0.0,
    reduction: str = "mean", *, clamp_closed: bool = True,
) -> dict[str, Array]:
    r"""dL/da = s dl/dcos (b / sqrt(m_a m_b) - cos a / m_a), and symmetrically for b."""
    cos, y, a, b, m_a, m_b = _cosine_terms(input1, input2, target)
    slope = np.where(y == 1, -1.0, 0.0) + np.where(
        (y == -1) & _active(cos - margin, clamp_closed), 1.0, 0.0)
    s = (_reduce_vjp(g, cos.shape, reduction, cos.size) * slope)[..., None]
    root, c = np.sqrt(m_a * m_b)[..., None], cos[..., None]
    return {"input1": s * (b / root - c * a / m_a[..., None]),
            "input2": s * (a / root - c * b / m_b[..., None])}


def _pairwise_distance(a: Array, b: Array, p: float, eps: float) -> tuple[Array, Array]:
    r"""(||a - b + eps||_p along the last dim, the difference a - b + eps), as torch."""
    diff = a - b + eps
    return np.sum(np.abs(diff) ** p, axis=-1) ** (1.0 / p), diff


def _pairwise_distance_grad(diff: Array, dist: Array, p: float) -> Array:
    r"""d||v||_p / dv = sign(v) |v|^(p-1) / ||v||^(p-1) (0 for a zero vector, as torch)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        grad = np.sign(diff) * np.abs(diff) ** (p - 1) / dist[..., None] ** (p - 1)
    return np.where(dist[..., None] == 0, 0.0, grad)


def _triplet(
    anchor: Array, positive: Array, negative: Array, margin: float, p: float, eps: float,
    swap: bool, reduction: str,
) -> Array:
    a, pos, neg = (np.asarray(v, dtype=np.float64) for v in (anchor, positive, negative))
    d_pos = _pairwise_distance(a, pos, p, eps)[0]
    d_neg = _pairwise_distance(a, neg, p, eps)[0]
    if swap:
        d_neg = np.minimum(d_neg, _pairwise_distance(pos, neg, p, eps)[0])
    loss = np.maximum(margin + d_pos - d_neg, 0.0)
    return _reduce(loss, reduction, loss.size)


def _triplet_vjp(
    g: Array, anchor: Array, positive: Array, negative: Array, margin: float, p: float,
    eps: float, swap: bool, reduction: str, clamp_closed: bool = True,
) -> dict[str, Array]:
    a, pos, neg = (np.asarray(v, dtype=np.float64) for v in (anchor, positive, negative))
    d_pos, diff_pos = _pairwise_distance(a, pos, p, eps)
    d_an, diff_an = _pairwise_distance(a, neg, p, eps)
    d_pn, diff_pn = _pairwise_distance(pos, neg, p, eps)
    # torch.minimum splits the gradient evenly on ties; draws never tie.
    use_pn = (d_pn < d_an) if swap else np.zeros(d_an.shape, dtype=bool)
    d_neg = np.where(use_pn, d_pn, d_an)
    z = margin + d_pos - d_neg
    s = _reduce_vjp(g, z.shape, reduction, z.size) * _active(z, clamp_closed)
    s_pos = s[..., None] * _pairwise_distance_grad(diff_pos, d_pos, p)
    s_an = (s * ~use_pn)[..., None] * _pairwise_distance_grad(diff_an, d_an, p)
    s_pn = (s * use_pn)[..., None] * _pairwise_distance_grad(diff_pn, d_pn, p)
    return {"anchor": s_pos - s_an, "positive": -s_pos - s_pn, "negative": s_an + s_pn}


def triplet_margin_loss(
    anchor: Array,
    positive: Array,
    negative: Array,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    reduction: str = "mean",
) -> Array:
    r"""l_n = max(0, margin + d(a_n, p_n) - d(a_n, n_n)),  d(u, v) = ||u - v + eps||_p.

    The distance is torch's pairwise_distance: eps is added to the difference (not to the norm).
    With ``swap``, d(a, n) is replaced by min(d(a, n), d(p, n)) (Balntas et al. 2016).
    Inputs (N, D) or (D,); reduction over the samples.

    Derivatives, with the active set z = margin + d_pos - d_neg >= 0 (torch's clamp_min passes the
    gradient at the kink) and dd(u, v)/du = sign(w) |w|^(p-1) / d^(p-1), w = u - v + eps:
    dl/da = dd_pos/da - dd_an/da,  dl/dp = -dd_pos/da - (swap branch) dd_pn/dp,
    dl/dn = dd_an/da (or dd_pn/dp when the swap chose d(p, n)).
    Numerics: the plain p-norm, as torch; eps keeps a zero difference away from the norm's kink
    at 0. Follows ``torch.nn.functional.triplet_margin_loss`` / ``torch.nn.TripletMarginLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.TripletMarginLoss.html).
    """
    return _triplet(anchor, positive, negative, margin, p, eps, swap, reduction)


def triplet_margin_loss_vjp(
    g: Array,
    anchor: Array,
    positive: Array,
    negative: Array,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    reduction: str = "mean",
    *,
    clamp_closed: bool = True,
) -> dict[str, Array]:
    r"""VJP of triplet_margin_loss for anchor, positive and negative (see its docstring)."""
    return _triplet_vjp(g, anchor, positive, negative, margin, p, eps, swap, reduction,
                        clamp_closed)


def triplet_margin_with_distance_loss(
    anchor: Array,
    positive: Array,
    negative: Array,
    margin: float = 1.0,
    swap: bool = False,
    reduction: str = "mean",
) -> Array:
    r"""triplet_margin_loss with torch's default ``distance_function``, pairwise_distance:

        l_n = max(0, margin + d(a_n, p_n) - d(a_n, n_n)),  d(u, v) = ||u - v + 1e-6||_2,

    and the same swap rule. Derivatives as triplet_margin_loss with p = 2, eps = 1e-6.
    A custom ``distance_function`` is not covered (the reference has no torch callable to run).
    Follows ``torch.nn.functional.triplet_margin_with_distance_loss`` /
    ``torch.nn.TripletMarginWithDistanceLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.TripletMarginWithDistanceLoss.html).
    """
    return _triplet(anchor, positive, negative, margin, 2.0, 1e-6, swap, reduction)


def triplet_margin_with_distance_loss_vjp(
    g: Array,
    anchor: Array,
    positive: Array,
    negative: Array,
    margin: float = 1.0,
    swap: bool = False,
    reduction: str = "mean",
    *,
    clamp_closed: bool = True,
) -> dict[str, Array]:
    r"""VJP of triplet_margin_with_distance_loss (triplet_margin_loss's with p = 2, eps = 1e-6)."""
    return _triplet_vjp(g, anchor, positive, negative, margin, 2.0, 1e-6, swap, reduction,
                        clamp_closed)


def _ctc_sequences(
    log_probs: Array, targets: NDArray[np.int64], input_lengths: NDArray[np.int64],
    target_lengths: NDArray[np.int64],
) -> tuple[Array, list[NDArray[np.int64]], NDArray[np.int64], bool]:
    r"""Validate CTC arguments; return (x of shape (T, N, C), each sequence's labels, each
    sequence's input length, whether the input was unbatched)."""
    x = np.asarray(log_probs, dtype=np.float64)
    if x.ndim not in (2, 3):
        raise ValueError(f"log_probs must be (T, C) or (T, N, C); got shape {x.shape}")
    unbatched = x.ndim == 2
    if unbatched:
        x = x[:, None, :]
    n = x.shape[1]
    t_len = np.asarray(input_lengths, dtype=np.int64).reshape(n)
    s_len = np.asarray(target_lengths, dtype=np.int64).reshape(n)
    y = np.asarray(targets, dtype=np.int64)
    if np.any(t_len < 0) or np.any(t_len > x.shape[0]) or np.any(s_len < 0):
        raise ValueError("input_lengths must lie in [0, T] and target_lengths be >= 0")
    if y.ndim == 2 and not unbatched:  # padded (N, S)
        labels = [y[b, : s_len[b]] for b in range(n)]
    else:  # concatenated (sum(target_lengths),), or the (S,) of an unbatched input
        ends = np.cumsum(s_len)
        labels = [y.reshape(-1)[end - k: end] for end, k in zip(ends, s_len, strict=True)]
    return x, labels, t_len, unbatched


def _ctc_log_sum_exp(a: Array, axis: int) -> Array:
    r"""log sum_i exp(a_i) along ``axis``, shifted by the finite maximum; all -inf gives -inf."""
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m, axis)


def _ctc_shift(v: Array, k: int) -> Array:
    r"""v shifted by k positions along its last axis (v_{s-k}), -inf (log 0) where none."""
    out = np.full_like(v, -np.inf)
    if k > 0:
        out[..., k:] = v[..., : v.shape[-1] - k]
    else:
        out[..., : v.shape[-1] + k] = v[..., -k:]
    return out


def _ctc_alpha_beta(
    lp: Array, labels: NDArray[np.int64], blank: int
) -> tuple[float, Array, Array, NDArray[np.int64]]:
    r"""One sequence, lp of shape (T_b, C): (-log p(labels | lp), log alpha, log beta, l').

    l' = (blank, l_1, blank, l_2, ..., l_S, blank) has 2S + 1 entries; a path may skip from
    l'_{s-2} to l'_s when l'_s is a label different from l'_{s-2} (not a blank, not a repeat).
        alpha_0(0) = y_0(blank), alpha_0(1) = y_0(l_1),
        alpha_t(s) = (alpha_{t-1}(s) + alpha_{t-1}(s-1) + [skip] alpha_{t-1}(s-2)) y_t(l'_s),
        beta_{T-1}(2S) = y(blank), beta_{T-1}(2S-1) = y(l_S),
        beta_t(s) = (beta_{t+1}(s) + beta_{t+1}(s+1) + [skip] beta_{t+1}(s+2)) y_t(l'_s),
        p = alpha_{T-1}(2S) + alpha_{T-1}(2S-1),
    all in log space (y_t(k) = exp(lp[t, k]), sums by log-sum-exp).
    """
    ext = np.full(2 * len(labels) + 1, blank, dtype=np.int64)
    ext[1::2] = labels
    n_ext, t_b = len(ext), lp.shape[0]
    skip = np.zeros(n_ext, dtype=bool)
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    log_alpha = np.full((t_b, n_ext), -np.inf)
    log_beta = np.full((t_b, n_ext), -np.inf)
    if t_b == 0:  # no frames: only the empty labelling has probability (1)
        return (0.0 if len(labels) == 0 else np.inf), log_alpha, log_beta, ext
    y = lp[:, ext]  # log y_t(l'_s)
    log_alpha[0, :2] = y[0, :2]
    for t in range(1, t_b):
        a = log_alpha[t - 1]
        paths = np.stack([a, _ctc_shift(a, 1), np.where(skip, _ctc_shift(a, 2), -np.inf)])
        log_alpha[t] = _ctc_log_sum_exp(paths, 0) + y[t]
    log_beta[t_b - 1, -2:] = y[t_b - 1, -2:]
    skip_from = np.zeros(n_ext, dtype=bool)
    skip_from[:-2] = skip[2:]
    for t in range(t_b - 2, -1, -1):
        b = log_beta[t + 1]
        paths = np.stack([b, _ctc_shift(b, -1), np.where(skip_from, _ctc_shift(b, -2), -np.inf)])
        log_beta[t] = _ctc_log_sum_exp(paths, 0) + y[t]
    return -float(_ctc_log_sum_exp(log_alpha[t_b - 1, -2:], 0)), log_alpha, log_beta, ext


def _ctc_denominators(t_len: NDArray[np.int64], s_len: NDArray[np.int64],
                      reduction: str) -> Array:
    r"""What each sequence's loss is divided by under ``reduction``: N max(S_b, 1) for "mean"."""
    _check_reduction(reduction)
    if reduction != "mean":
        return np.ones(len(t_len))
    return len(t_len) * np.maximum(np.asarray(s_len, dtype=np.float64).reshape(-1), 1.0)


def ctc_loss(
    log_probs: Array, targets: NDArray[np.int64], input_lengths: NDArray[np.int64],
    target_lengths: NDArray[np.int64], blank: int = 0, reduction: str = "mean",
    zero_infinity: bool = False,
) -> Array:
    r"""Connectionist temporal classification: l_b = -log p(target_b | log_probs[:T_b, b]).

    p(l | x) sums, over every alignment pi of length T_b (a label or blank per frame) that
    collapses to l (merge repeats, then drop blanks), prod_t exp(x[t, pi_t]). It is computed by
    the forward (alpha) recursion over l' = (blank, l_1, blank, ..., l_S, blank) of Graves et
    al. (2006), eq. 6-8 (``_ctc_alpha_beta``). log_probs is (T, N, C) or unbatched (T, C);
    targets padded (N, S) or concatenated (sum_b S_b,); T_b = input_lengths[b] frames and
    S_b = target_lengths[b] labels are used. An impossible alignment (T_b too short for the
    labels and the blanks between repeats) has p = 0, l_b = inf; ``zero_infinity`` replaces
    such losses by 0. Reduction: "none" -> l (shape (N,), () unbatched), "sum" -> sum_b l_b,
    "mean" -> (1/N) sum_b l_b / max(S_b, 1) (torch's per-target-length mean).

    Derivative (``ctc_loss_vjp``): dl_b/dx[t, b, k] = -sum_{s: l'_s = k} alpha_t(s) beta_t(s)
    / (y_t(k) p) for t < T_b (eq. 14-16 in log space), 0 for t >= T_b.

    Numerics: alpha and beta are kept as logs and every sum is a log-sum-exp shifted by its
    finite maximum: the probabilities underflow float64 after a few hundred frames otherwise.
    log_probs need not be normalised: the recursion is a function of arbitrary reals (torch's
    forward reads the values as they are, too).
    Follows ``torch.nn.functional.ctc_loss`` / ``torch.nn.CTCLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.CTCLoss.html).
    """
    x, labels, t_len, unbatched = _ctc_sequences(log_probs, targets, input_lengths,
                                                 target_lengths)
    loss = np.array([_ctc_alpha_beta(x[: t_len[b], b], labels[b], blank)[0]
                     for b in range(x.shape[1])])
    if zero_infinity:
        loss = np.where(np.isinf(loss), 0.0, loss)
    loss = loss / _ctc_denominators(t_len, np.asarray(target_lengths), reduction)
    if reduction == "none":
        return loss[0] if unbatched else loss
    return np.asarray(np.sum(loss), dtype=np.float64)


def ctc_loss_vjp(
    g: Array, log_probs: Array, targets: NDArray[np.int64], input_lengths: NDArray[np.int64],
    target_lengths: NDArray[np.int64], blank: int = 0, reduction: str = "mean",
    zero_infinity: bool = False, gradient: str = "derivative",
) -> dict[str, Array]:
    r"""VJP of CTC w.r.t. log_probs (Graves et al. 2006, eq. 16, in log space).

    With gbar_b = dL/dl_b (g_b for "none", g for "sum", g / (N max(S_b, 1)) for "mean"), for
    t < T_b:  dL/dx[t, b, k] = -gbar_b sum_{s: l'_s = k} exp(log alpha_t(s) + log beta_t(s)
    - x[t, b, k] + l_b)  (alpha and beta both include y_t(l'_s), hence the division by it), and
    0 for t >= T_b. A sequence with l_b = inf contributes 0 with ``zero_infinity`` and nan
    without it (the derivative does not exist there; torch also gives nan).

    ``gradient="torch"`` gives torch's gradient instead of the derivative: torch's CTC backward
    returns dL/dx + gbar_b exp(x[t, b, k]) for t < T_b (the gradient w.r.t. the logits of a
    log_softmax in front, whose backward removes the extra term when log_probs are normalised);
    KNOWN_DIFFERENCES.md, "CTCLoss's gradient is not the derivative of its forward".
    """
    if gradient not in ("derivative", "torch"):
        raise ValueError(f"gradient must be 'derivative' or 'torch'; got {gradient!r}")
    x, labels, t_len, unbatched = _ctc_sequences(log_probs, targets, input_lengths,
                                                 target_lengths)
    n = x.shape[1]
    gbar = np.broadcast_to(np.asarray(g, dtype=np.float64).reshape(-1), (n,)) \
        / _ctc_denominators(t_len, np.asarray(target_lengths), reduction)
    grad = np.zeros_like(x)
    for b in range(n):
        t_b = t_len[b]
        nll, log_alpha, log_beta, ext = _ctc_alpha_beta(x[:t_b, b], labels[b], blank)
        if np.isinf(nll):
            grad[:t_b, b] = 0.0 if zero_infinity else np.nan
            continue
        occupancy = np.exp(log_alpha + log_beta - x[:t_b, b][:, ext] + nll)  # (T_b, 2S + 1)
        for s, k in enumerate(ext):
            grad[:t_b, b, k] -= gbar[b] * occupancy[:, s]
        if gradient == "torch":
            grad[:t_b, b] += gbar[b] * np.exp(x[:t_b, b])
    return {"log_probs": grad[:, 0] if unbatched else grad}
