r"""Distance functions, NumPy float64: cosine similarity and the pairwise p-norm distance.

Both broadcast their two arguments against each other first (as torch does) and reduce one
axis of the common shape; each VJP sums its gradient back over the copies broadcasting made
(:func:`_sum_to_shape`).

Follows ``torch.nn.functional.cosine_similarity`` / ``torch.nn.CosineSimilarity``
(https://pytorch.org/docs/stable/generated/torch.nn.CosineSimilarity.html) and
``torch.nn.functional.pairwise_distance`` / ``torch.nn.PairwiseDistance``
(https://pytorch.org/docs/stable/generated/torch.nn.PairwiseDistance.html).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from references._broadcast import sum_to_shape as _sum_to_shape

Array = NDArray[np.float64]


def _broadcast(x1: Array, x2: Array) -> tuple[Array, Array]:
    a, b = np.broadcast_arrays(np.asarray(x1, dtype=np.float64), np.asarray(x2, dtype=np.float64))
    return a, b


# --- cosine_similarity ---------------------------------------------------------------------


def cosine_similarity(x1: Array, x2: Array, dim: int = 1, eps: float = 1e-8) -> Array:
    r"""cos = (a . b) / (max(||a||, eps) max(||b||, eps)), along ``dim`` of the broadcast pair
    (a, b) (``dim`` refers to the common shape; the norms are taken over the broadcast vectors,
    so a feature dimension of size 1 is repeated: [c] against [u, v] is the cosine of [c, c]
    and [u, v]).

    This is ``torch.nn.functional.cosine_similarity``'s documented formula and what torch
    computes; ``torch.nn.CosineSimilarity``'s docstring writes max(||a|| ||b||, eps) instead,
    which differs where a norm is below eps (KNOWN_DIFFERENCES.md).
    """
    a, b = _broadcast(x1, x2)
    c1 = np.maximum(np.linalg.norm(a, axis=dim, keepdims=True), eps)
    c2 = np.maximum(np.linalg.norm(b, axis=dim, keepdims=True), eps)
    # (a / c1) . (b / c2): the same quotient, without a . b and c1 c2 (~|x|^2) overflowing
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum(a / c1 * (b / c2), axis=dim)


def _cosine_side(g: Array, a: Array, b: Array, dim: int, eps: float,
                 straight_through: bool) -> Array:
    """d cos / d a contracted with g, for the broadcast pair: with n = ||a||, c_a = max(n, eps)
    and the clamp active (n < eps) or not,

        g (b / (c_a c_b) - (a . b) / (c_a^2 c_b) * a / n * [n > eps])

    the derivative; with ``straight_through`` the indicator is [n > 0] (torch clamps the norm
    in place under no_grad, so autograd differentiates the norm as if unclamped). Evaluated as
    g (b / c_b - ((a / c_a) . (b / c_b)) a / n [.]) / c_a, which is the same expression: each
    factor is O(1) or the result's own 1 / c_a, whereas c_a^2 c_b (~|x|^3) overflows float64
    above ~5.6e102 and drops the second term."""
    n_a = np.linalg.norm(a, axis=dim, keepdims=True)
    c_a = np.maximum(n_a, eps)
    c_b = np.maximum(np.linalg.norm(b, axis=dim, keepdims=True), eps)
    g = np.expand_dims(g, dim)
    active = (n_a > 0) if straight_through else (n_a > eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(active, a / np.where(n_a > 0, n_a, 1.0), 0.0)
        b_unit = b / c_b
        cos = np.sum(a / c_a * b_unit, axis=dim, keepdims=True)
        return g * (b_unit - cos * unit) / c_a


def cosine_similarity_vjp(g: Array, x1: Array, x2: Array, dim: int = 1, eps: float = 1e-8, *,
                          straight_through: bool = False) -> dict[str, Array]:
    r"""VJP of :func:`cosine_similarity`: with n_a = ||a||, c_a = max(n_a, eps),

        dL/da = g (b / (c_a c_b) - cos a / (c_a n_a) [n_a > eps])

    (and symmetrically for b), summed back over broadcast copies. Below eps the clamped norm is
    a constant, and dL/da = g b / (eps c_b). ``straight_through=True`` gives torch's gradient
    instead, which keeps the second term for 0 < n_a <= eps (KNOWN_DIFFERENCES.md); both agree
    wherever the norms exceed eps.
    """
    a, b = _broadcast(x1, x2)
    return {"x1": _sum_to_shape(_cosine_side(g, a, b, dim, eps, straight_through),
                                np.shape(x1)),
            "x2": _sum_to_shape(_cosine_side(g, b, a, dim, eps, straight_through),
                                np.shape(x2))}


# --- pairwise_distance ---------------------------------------------------------------------


def pairwise_distance(x1: Array, x2: Array, p: float = 2.0, eps: float = 1e-6,
                      keepdim: bool = False) -> Array:
    r"""dist = ||d||_p,  d = x1 - x2 + eps (eps added to every component, as torch does),
    along the last dimension of the broadcast pair:

        ||d||_p = (sum_i |d_i|^p)^(1 / p)   (p != 0, +-inf; p < 0 allowed)
        ||d||_0 = #{i: d_i != 0},  ||d||_inf = max_i |d_i|,  ||d||_-inf = min_i |d_i|.

    ``keepdim`` keeps the reduced dimension (size 1).
    """
    a, b = _broadcast(x1, x2)
    d = a - b + eps
    return _norm(d, p, keepdim)


def _norm(d: Array, p: float, keepdim: bool) -> Array:
    """||d||_p over the last axis, evaluated scaled as m (sum_i (|d_i| / m)^p)^(1 / p) with m =
    max_i |d_i| for p > 0 and min_i |d_i| for p < 0 (the dominant term, so every term is at
    most 1 and one is 1): the unscaled sum |d_i|^p underflows for subnormal d (and overflows
    for huge d) where the norm is representable."""
    ad = np.abs(d)
    if p == 0:
        return np.sum(ad != 0, axis=-1, keepdims=keepdim).astype(np.float64)
    if math.isinf(p):
        return (np.max if p > 0 else np.min)(ad, axis=-1, keepdims=keepdim)
    m = (np.max(ad, axis=-1, keepdims=True, initial=0.0) if p > 0
         else np.min(ad, axis=-1, keepdims=True, initial=math.inf))
    m = np.where((m > 0) & np.isfinite(m), m, 1.0)
    with np.errstate(divide="ignore", over="ignore"):  # |0|^p = inf for p < 0: the norm is 0
        out = np.sum((ad / m) ** p, axis=-1, keepdims=True) ** (1.0 / p) * m
    return out if keepdim else out[..., 0]


def pairwise_distance_vjp(g: Array, x1: Array, x2: Array, p: float = 2.0, eps: float = 1e-6,
                          keepdim: bool = False) -> dict[str, Array]:
    r"""VJP of :func:`pairwise_distance`: dL/dx1 = g d||d||_p/dd, dL/dx2 = -that, each summed
    back over broadcast copies, with

        d||d||_p / dd_i = sign(d_i) |d_i|^(p - 1) / ||d||_p^(p - 1)
        p = inf (-inf): sign(d_i) at the components attaining the max (min) of |d|, shared
                        equally between ties (torch's convention)
        p = 0: 0 (a count).

    At d_i = 0 the derivative does not exist for p <= 1 (|d_i|^(p - 1) is infinite, or |.| has
    a kink); torch gives 0 there, and so does this (and 0 for a zero vector d).
    """
    a, b = _broadcast(x1, x2)
    d = a - b + eps
    gk = np.asarray(g, dtype=np.float64)
    gk = gk if keepdim else gk[..., None]
    ad = np.abs(d)
    if p == 0:
        dd = np.zeros(d.shape)
    elif math.isinf(p):
        extreme = ad == (np.max if p > 0 else np.min)(ad, axis=-1, keepdims=True)
        dd = np.sign(d) * extreme / np.sum(extreme, axis=-1, keepdims=True)
    elif p == 2:  # d_i / ||d||_2, one correctly rounded quotient (the logs' form at p = 2)
        dist = _norm(d, p, keepdim=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            dd = np.where(dist == 0, 0.0, d / dist)
    else:
        dist = _norm(d, p, keepdim=True)
        # |d_i|^(p-1) / dist^(p-1) in logs: each power alone leaves float64's range for
        # subnormal or huge d, and the quotient |d_i| / dist can be subnormal (few digits)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            dd = np.sign(d) * np.exp((p - 1.0) * (np.log(ad) - np.log(dist)))
        dd = np.where((d == 0) | (dist == 0), 0.0, dd)
    return {"x1": _sum_to_shape(gk * dd, np.shape(x1)),
            "x2": _sum_to_shape(-gk * dd, np.shape(x2))}
