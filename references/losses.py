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
    """
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
    so that D = 0 leaves their gradient 0, as in torch). Only ``input`` is differentiable.
    """
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
