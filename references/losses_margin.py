r"""Margin and embedding losses and their VJPs, NumPy float64: soft margin, hinge embedding,
margin ranking, multi-class and multi-label margin, multi-label soft margin, cosine embedding and
triplet margin (with torch's default distance).

The hinge-type losses are max(z, 0) of some margin expression z; whether the gradient passes at
the kink z = 0 (torch's clamp_min) is the VJPs' ``clamp_closed`` option, see
``references._loss_common._active`` and docs/conventions.md.
The forward/VJP and reduction conventions are those of ``references._loss_common``.

Follows ``torch.nn.SoftMarginLoss``, ``torch.nn.HingeEmbeddingLoss``,
``torch.nn.MarginRankingLoss``, ``torch.nn.MultiMarginLoss``, ``torch.nn.MultiLabelMarginLoss``,
``torch.nn.MultiLabelSoftMarginLoss``, ``torch.nn.CosineEmbeddingLoss``,
``torch.nn.TripletMarginLoss`` and ``torch.nn.TripletMarginWithDistanceLoss``
(https://pytorch.org/docs/stable/nn.html#loss-functions), and torch's kernels
(aten/src/ATen/native/Loss.cpp) where they differ from the documentation.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from references._broadcast import sum_to_shape as _sum_to_shape
from references._loss_common import (
    Array,
    _active,
    _pair,
    _reduce,
    _reduce_vjp,
    _sigmoid,
    _softplus,
)


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


def _margin_classes(input: Array, target: Array,
                    per_class: bool) -> tuple[Array, NDArray[np.int64], bool]:
    r"""(x as (N, C), the target as (N,) or, ``per_class``, as (N, C); whether the input was
    unbatched). An unbatched input is one sample: (C,), or 0-d (one class); its target may be
    0-d or (1,) for a class index (torch accepts both)."""
    x = np.asarray(input, dtype=np.float64)
    unbatched = x.ndim <= 1
    x2 = np.reshape(x, (1, -1)) if unbatched else x
    t = np.asarray(target).astype(np.int64)
    return x2, np.reshape(t, x2.shape if per_class else x2.shape[:1]), unbatched


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
    KNOWN_DIFFERENCES.md. Reduction over the N samples; the unreduced loss has the target's
    shape (an unbatched (C,) or 0-d input takes a 0-d or a (1,) target).

    Derivative, with z_{n,i} = margin - x_{n,y_n} + x_{n,i} and the active set z > 0 (torch's
    kernel uses a strict >, so the gradient is 0 at the kink z = 0):
    dl/dx_{n,i} = w_{y_n} p z^{p-1} / C for active i != y_n, and dl/dx_{n,y_n} = -sum of those.
    Numerics: exact up to roundings. Follows ``torch.nn.functional.multi_margin_loss`` /
    ``torch.nn.MultiMarginLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.MultiMarginLoss.html).
    """
    x, t, _ = _margin_classes(input, target, per_class=False)
    z, active, w_y = _multi_margin_terms(x, t, margin, weight)
    loss = w_y * np.sum(np.where(active, z**p, 0.0), axis=1) / x.shape[1]
    return _reduce(np.reshape(loss, np.shape(target)), reduction, np.size(loss))


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
    x, t, _ = _margin_classes(input, target, per_class=False)
    z, active, w_y = _multi_margin_terms(x, t, margin, weight)
    n = x.shape[0]
    s = np.reshape(_reduce_vjp(g, np.shape(target), reduction, n), (n,))
    d = np.where(active, p * z ** (p - 1), 0.0) * (s * w_y / x.shape[1])[:, None]
    np.put_along_axis(d, t[:, None], -np.sum(d, axis=1, keepdims=True), axis=1)
    return {"input": np.reshape(d, np.shape(input))}


def multilabel_margin_loss(input: Array, target: Array, reduction: str = "mean") -> Array:
    r"""Multi-label hinge loss (torch's MultiLabelMarginLoss docs): for each sample,

        l_n = (1 / C) sum_j sum_{i not a target} max(0, 1 - (x_{n, y_j} - x_{n, i})),

    j over the target positions y_1, y_2, ... of row n before its first -1 (the rest of the row
    is ignored; a class listed twice is counted twice, as the formula and torch's kernel do),
    i over the classes listed nowhere among them. Grouping the positions by class,

        l_n = (1 / C) sum_c m_c sum_i u_i max(0, z_{c,i}),   z_{c,i} = 1 - x_{n,c} + x_{n,i},

    with m_c the number of positions holding class c and u_i = [m_i = 0]. Input (C,), 0-d (one
    class) or (N, C), target int64 of the same shape. Reduction over the N samples.
    Derivative, with the active pairs z > 0 (torch's kernel uses a strict >, so the gradient is
    0 at the kink z = 0): dl/dx_i = (1 / C) (u_i sum_c m_c [z_{c,i} > 0]
    - m_i sum_k u_k [z_{i,k} > 0]). ``target`` is not differentiable.
    Numerics: z is formed as torch's kernel forms it, (1 - x_c) + x_i, so the kink falls on the
    same side; the sums over pairs are matrix products in float64 (exact up to roundings).
    Follows ``torch.nn.functional.multilabel_margin_loss`` / ``torch.nn.MultiLabelMarginLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.MultiLabelMarginLoss.html).
    """
    x, t, unbatched = _margin_classes(input, target, per_class=True)
    m = _multilabel_multiplicity(t)
    u = (m == 0).astype(np.float64)
    loss = np.empty(x.shape[0])
    for rows in _pair_blocks(x.shape):
        z = _multilabel_z(x[rows])
        hinge = np.maximum(z, 0.0, out=z)
        loss[rows] = np.sum(m[rows] * (hinge @ u[rows, :, None])[..., 0], axis=1)
    loss = loss / x.shape[1]
    return _reduce(loss[0] if unbatched else loss, reduction, loss.size)


def _multilabel_multiplicity(t: NDArray[np.int64]) -> Array:
    r"""m[n, c]: how many of row n's target positions before its first -1 hold class c."""
    n, c = t.shape
    before_stop = np.cumsum(t == -1, axis=1) == 0
    rows, cols = np.nonzero(before_stop)
    m = np.zeros((n, c))
    np.add.at(m, (rows, t[rows, cols]), 1.0)
    return m


# Rows of multilabel_margin_loss's (N, C, C) pair array are taken a block at a time, each block
# of about this many pairs, so memory stays O(C^2) while every operation is vectorised.
_PAIRS_PER_BLOCK = 2**16


def _pair_blocks(shape: tuple[int, ...]) -> list[slice]:
    """Row slices of an (N, C) input, each of at most max(1, _PAIRS_PER_BLOCK / C^2) rows."""
    n, c = shape
    size = max(1, _PAIRS_PER_BLOCK // max(c * c, 1))
    return [slice(start, start + size) for start in range(0, n, size)]


def _multilabel_z(x: Array) -> Array:
    r"""z[b, c, i] = 1 - x[b, c] + x[b, i], in torch's order of operations: (1 - x_c) + x_i."""
    return (1.0 - x)[:, :, None] + x[:, None, :]


def multilabel_margin_loss_vjp(
    g: Array, input: Array, target: Array, reduction: str = "mean"
) -> dict[str, Array]:
    r"""dL/dx_i = (s_n / C) (u_i sum_c m_c [z_{c,i} > 0] - m_i sum_k u_k [z_{i,k} > 0])."""
    x, t, unbatched = _margin_classes(input, target, per_class=True)
    m = _multilabel_multiplicity(t)
    u = (m == 0).astype(np.float64)
    n = x.shape[0]
    s = np.reshape(_reduce_vjp(g, () if unbatched else (n,), reduction, n), (n,))
    d = np.empty(x.shape)
    for rows in _pair_blocks(x.shape):
        z = _multilabel_z(x[rows])
        active = np.greater(z, 0.0, out=z)  # [z > 0] as 1.0 / 0.0, in z's place
        as_non_target = (m[rows, None, :] @ active)[:, 0] * u[rows]
        as_target = m[rows] * (active @ u[rows, :, None])[..., 0]
        d[rows] = as_non_target - as_target
    return {"input": np.reshape(d * (s / x.shape[1])[:, None], np.shape(input))}


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
    r"""dL/dx = s (w / C) (sigmoid(x) - y),  dL/dy = -s (w / C) x; each summed back over the
    dimensions broadcasting added (an argument of smaller shape, e.g. a target of one row).

    Stable form: sigmoid(x) - y = (1 - y) sigmoid(x) - y sigmoid(-x), which keeps its relative
    precision in both tails (sigmoid(x) - 1 is 0 in float64 from x ~ 37, where the exact value
    -sigmoid(-x) is e^-x)."""
    x, y, _ = _pair(input, target)
    w = 1.0 if weight is None else np.asarray(weight, dtype=np.float64)
    shape = x.shape[:-1]
    s = np.expand_dims(_reduce_vjp(g, shape, reduction, int(np.prod(shape))), -1) * w / x.shape[-1]
    return {"input": _sum_to_shape(s * ((1 - y) * _sigmoid(x) - y * _sigmoid(-x)),
                                   np.shape(input)),
            "target": _sum_to_shape(-s * x, np.shape(target))}


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
    Broadcasting, as torch's kernel does it: a.b is taken over the broadcast pair, each squared
    norm over its own argument, so a feature dimension of size 1 broadcast against D is *not*
    the cosine of the broadcast vectors (a = [c] against b = [c, c] gives sqrt(2);
    KNOWN_DIFFERENCES.md); the VJP sums the a.b part over the copies and not the norm part.
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
    r"""dL/da = s dl/dcos (b / sqrt(m_a m_b) - cos a / m_a), and symmetrically for b; each summed
    back over the dimensions broadcasting added."""
    cos, y, a, b, m_a, m_b = _cosine_terms(input1, input2, target)
    slope = np.where(y == 1, -1.0, 0.0) + np.where(
        (y == -1) & _active(cos - margin, clamp_closed), 1.0, 0.0)
    s = (_reduce_vjp(g, cos.shape, reduction, cos.size) * slope)[..., None]
    root, c = np.sqrt(m_a * m_b)[..., None], cos[..., None]
    # The a.b part is summed over broadcast copies; |a|^2 counts each entry of a once.
    return {"input1": _sum_to_shape(s * b / root, a.shape)
            - _sum_to_shape(s * c * a / m_a[..., None], a.shape),
            "input2": _sum_to_shape(s * a / root, b.shape)
            - _sum_to_shape(s * c * b / m_b[..., None], b.shape)}


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
    # The swap's min(d_an, d_pn) is torch.minimum, whose gradient goes to the smaller distance
    # and is split evenly between the two on a tie (d_an == d_pn: anchor == positive).
    share_pn = np.where(d_pn < d_an, 1.0, np.where(d_pn == d_an, 0.5, 0.0)) if swap \
        else np.zeros(d_an.shape)
    d_neg = np.minimum(d_pn, d_an) if swap else d_an
    z = margin + d_pos - d_neg
    s = _reduce_vjp(g, z.shape, reduction, z.size) * _active(z, clamp_closed)
    s_pos = s[..., None] * _pairwise_distance_grad(diff_pos, d_pos, p)
    s_an = (s * (1.0 - share_pn))[..., None] * _pairwise_distance_grad(diff_an, d_an, p)
    s_pn = (s * share_pn)[..., None] * _pairwise_distance_grad(diff_pn, d_pn, p)
    # Each summed back over the dimensions broadcasting added (an argument of smaller shape).
    return {"anchor": _sum_to_shape(s_pos - s_an, a.shape),
            "positive": _sum_to_shape(-s_pos - s_pn, pos.shape),
            "negative": _sum_to_shape(s_an + s_pn, neg.shape)}


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
