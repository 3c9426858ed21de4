r"""Classification losses and their VJPs, NumPy float64: cross entropy, NLL, binary cross entropy
(on probabilities and on logits), and the linear layer fused with cross entropy.

Cross entropy and NLL take class indices (cross entropy also class probabilities), with class
weights, ``ignore_index`` and label smoothing; "mean" divides by the total weight of the kept
targets. The forward/VJP and reduction conventions are those of ``references._loss_common``.

Follows ``torch.nn.CrossEntropyLoss``, ``torch.nn.NLLLoss``, ``torch.nn.BCELoss`` and
``torch.nn.BCEWithLogitsLoss`` (https://pytorch.org/docs/stable/nn.html#loss-functions), and
for the details the documentation leaves open torch's kernels
(aten/src/ATen/native/LossNLL.cpp, Loss.cpp), named in each docstring.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from references._broadcast import sum_to_shape as _sum_to_shape
from references._loss_common import (
    Array,
    _pair,
    _reduce,
    _reduce_vjp,
    _sigmoid,
    _softplus,
)
from references.activations import softmax
from references.layers import linear, linear_vjp


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



def _linear_logits(input: Array, linear_weight: Array,
                   linear_bias: Array | None) -> tuple[Array, Array, Array | None]:
    r"""(z, W_flat, b_flat): the logits of shape (*batch, C, d1, ..., dK) and the weight and
    bias flattened to (C d1 ... dK, in) and (C d1 ... dK,), the Linear layer that computes them."""
    w = np.asarray(linear_weight, dtype=np.float64)
    a = np.asarray(input, dtype=np.float64)
    if w.ndim < 2 or a.ndim not in (1, 2) or a.shape[-1] != w.shape[-1]:
        raise ValueError(f"input {a.shape} must be (in,) or (N, in) and linear_weight "
                         f"(C, d1, ..., dK, in) with the same in; got {w.shape}")
    if w.ndim > 2 and a.ndim == 1:
        raise ValueError("a K-dimensional linear_weight needs a batched input (N, in)")
    w_flat = w.reshape(-1, w.shape[-1])
    b_flat = None
    if linear_bias is not None:
        b = np.asarray(linear_bias, dtype=np.float64)
        if b.shape != w.shape[:-1]:
            raise ValueError(f"linear_bias must have shape {w.shape[:-1]}; got {b.shape}")
        b_flat = b.reshape(-1)
    z = linear(a, w_flat, b_flat).reshape((*a.shape[:-1], *w.shape[:-1]))
    return z, w_flat, b_flat


def linear_cross_entropy(
    input: Array,
    linear_weight: Array,
    target: Array,
    linear_bias: Array | None = None,
    weight: Array | None = None,
    reduction: str = "mean",
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> Array:
    r"""Cross entropy of the logits of a Linear layer: L = cross_entropy(a W^T + b, y).

    With input a of shape (in,) or (N, in), ``linear_weight`` W of shape (C, in) and
    ``linear_bias`` b of shape (C,):

        z_n = W a_n + b                 (the logits, (N, C); references.layers.linear)
        L   = cross_entropy(z, y; weight, reduction, ignore_index, label_smoothing)

    with every cross-entropy option as :func:`cross_entropy` states it (class-index or
    class-probability targets, class weights, "mean" over the kept targets' weights, label
    smoothing). K-dimensional loss: W of shape (C, d1, ..., dK, in) (and b (C, d1, ..., dK))
    needs a batched input and gives logits z_{n, c, i1, ..., iK} = W_{c, i1, ..., iK} . a_n + b,
    of shape (N, C, d1, ..., dK), against targets (N, d1, ..., dK) or probabilities
    (N, C, d1, ..., dK): the Linear layer with C d1 ... dK outputs, its output reshaped.
    ``ignore_index`` None is cross entropy's -100 (torch maps it so for class indices; with
    probability targets it must be None).

    Derivative (chain rule through the logits): with G = dL/dz from :func:`cross_entropy_vjp`
    (G_n = s_n (p_n sum_c q_{n,c} - q_n)), reshaped to (N, C d1 ... dK),

        dL/da = G W,   dL/dW = G^T a (summed over the batch),   dL/db = sum_n G_n,

    (references.layers.linear_vjp), each reshaped to its argument's shape; a probability target's
    gradient is cross entropy's, dL/dt_{n,c} = -s_n (1 - eps) w_c log p_{n,c}.

    Numerics: the logits are a matmul (no overflow for any finite inputs of moderate size), and
    the cross entropy takes them through the stable log_softmax of :func:`cross_entropy`.

    Follows ``torch.nn.functional.linear_cross_entropy`` / ``torch.nn.LinearCrossEntropyLoss``
    (new in torch 2.13; https://pytorch.org/docs/stable/generated/torch.nn.LinearCrossEntropyLoss.html),
    whose documentation defines it as exactly this composition, ``cross_entropy(linear(input,
    linear_weight), target, ...)``, and its reshape of a K-dimensional weight.
    """
    z, _, _ = _linear_logits(input, linear_weight, linear_bias)
    return cross_entropy(z, target, weight, -100 if ignore_index is None else ignore_index,
                         reduction, label_smoothing)


def linear_cross_entropy_vjp(
    g: Array,
    input: Array,
    linear_weight: Array,
    target: Array,
    linear_bias: Array | None = None,
    weight: Array | None = None,
    reduction: str = "mean",
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> dict[str, Array]:
    r"""VJP of :func:`linear_cross_entropy`: G = dL/dz by cross_entropy_vjp, then the Linear
    layer's VJP, dL/da = G W, dL/dW = G^T a, dL/db = sum_n G_n (each reshaped to its argument's
    shape); a probability target's gradient passes through from cross entropy."""
    z, w_flat, b_flat = _linear_logits(input, linear_weight, linear_bias)
    ce = cross_entropy_vjp(g, z, target, weight, -100 if ignore_index is None else ignore_index,
                           reduction, label_smoothing)
    a = np.asarray(input, dtype=np.float64)
    dz = ce["input"].reshape((*a.shape[:-1], w_flat.shape[0]))
    lin = linear_vjp(dz, a, w_flat, b_flat)
    grads = {"input": lin["input"], "linear_weight": lin["weight"].reshape(np.shape(linear_weight))}
    if linear_bias is not None:
        grads["linear_bias"] = lin["bias"].reshape(np.shape(linear_bias))
    if "target" in ce:
        grads["target"] = ce["target"]
    return grads


def linear_cross_entropy_chunked(
    input: Array,
    linear_weight: Array,
    target: Array,
    linear_bias: Array | None = None,
    weight: Array | None = None,
    reduction: str = "mean",
    ignore_index: int | None = None,
    options: object = None,
) -> Array:
    r"""The chunked path of the fused loss: the same L as :func:`linear_cross_entropy`.

    torch's chunked path (``options`` a ``LinearCrossEntropyOptions``; class-index targets, no
    label smoothing, C-dimensional logits) takes the batch ``batch_chunk_size`` rows at a time and
    never forms all N x C logits: per chunk it adds -w_{y_n} / D (z_{n, y_n} - m_n) and
    w_{y_n} / D log sum_c exp(z_{n,c} - m_n) to the loss (m_n the row maximum; D the kept
    targets' weight for "mean", 1 for "sum"), and precomputes the gradients
    dL/da_n = s_n (W_{y_n} - p_n W),  dL/dW = sum over chunks of (s (p - onehot))^T a,
    dL/db = sum_n s_n (p_n - onehot_n), with s_n = -w_{y_n} / D (weights of ignored targets 0).
    That is the formula above evaluated in another order (a per-chunk sum over the batch), so the
    value is the formula's; ``options`` (chunk size, accumulation policy, retain-graph flag, as
    a mapping of LinearCrossEntropyOptions' fields) only chooses that order and the scratch
    buffers, and is accepted here for the record's sake and not used.

    Follows ``torch.nn.functional.linear_cross_entropy(..., options=...)`` and
    ``torch.nn.LinearCrossEntropyOptions``
    (https://pytorch.org/docs/stable/generated/torch.nn.LinearCrossEntropyLoss.html) and the
    chunked implementation (``torch/nn/modules/linear_cross_entropy.py``, torch 2.13.0).
    """
    return linear_cross_entropy(input, linear_weight, target, linear_bias, weight, reduction,
                                ignore_index)


def linear_cross_entropy_chunked_vjp(
    g: Array,
    input: Array,
    linear_weight: Array,
    target: Array,
    linear_bias: Array | None = None,
    weight: Array | None = None,
    reduction: str = "mean",
    ignore_index: int | None = None,
    options: object = None,
) -> dict[str, Array]:
    r"""VJP of :func:`linear_cross_entropy_chunked`: that of :func:`linear_cross_entropy`."""
    return linear_cross_entropy_vjp(g, input, linear_weight, target, linear_bias, weight,
                                    reduction, ignore_index)


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
    grad = np.zeros(x.shape)  # [c = y_n] is one class per sample: scatter -s_n w_{y_n} there
    with np.errstate(invalid="ignore"):
        np.put_along_axis(grad, np.expand_dims(y, class_dim),
                          -np.expand_dims(s * w[y], class_dim), axis=class_dim)
    return {"input": grad}


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

    sp is softplus (see binary_cross_entropy_with_logits). Stable form of the target's
    derivative: sp(x) = x + sp(-x), so p sp(-x) - sp(x) = (p - 1) sp(-x) - x, which is exactly -x
    without pos_weight; the difference of the two softplus values cancels to rounding noise for
    small |x| (-1.5e-159 came out as 0 at x = 1.5e-154).
    """
    x, y, _ = _pair(input, target)
    w = 1.0 if weight is None else np.asarray(weight, dtype=np.float64)
    p = 1.0 if pos_weight is None else np.asarray(pos_weight, dtype=np.float64)
    shape = np.broadcast_shapes(x.shape, y.shape, np.shape(w), np.shape(p))
    gbar = _reduce_vjp(g, shape, reduction, int(np.prod(shape)))
    d_input = gbar * w * ((1.0 + (p - 1.0) * y) * _sigmoid(x) - p * y)
    d_target = gbar * w * ((p - 1.0) * _softplus(-x) - x)
    return {"input": _sum_to_shape(d_input, x.shape), "target": _sum_to_shape(d_target, y.shape)}
