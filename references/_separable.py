r"""Separable linear maps on the last dimensions of an array, for the references of padding,
interpolation and adaptive average pooling.

Each of those ops acts on every spatial dimension independently: along dimension i it is a
matrix W_i of shape (out_i, in_i), and on the whole array

    z[..., o_1, .., o_d] = sum_{j_1, .., j_d} W_1[o_1, j_1] ... W_d[o_d, j_d] x[..., j_1, .., j_d]

(one map per dimension, applied in turn). Its VJP is the same map with the transposed matrices,

    dL/dx[..., j_1, .., j_d] = sum_{o_1, .., o_d} W_1[o_1, j_1] ... W_d[o_d, j_d]
                                                   g[..., o_1, .., o_d]

so a gather (W with one 1 per row) has the scatter-add as its VJP.

Each W has only a few nonzeros per row (one for a gather, two for linear, four for cubic
interpolation, a window for area and antialiased resampling), so it is held by its **taps**,
not densely: ``source`` and ``weight`` of shape (out, K) with

    W[o, j] = sum_k weight[o, k] [j == source[o, k]],
    z[..., o] = sum_k weight[o, k] x[..., source[o, k]]

(a tap of weight 0 reads nothing). Applying W is then K gathers (``np.take``) along the
dimension, weighted and added, in O(K |z|) rather than the O(in |z|) of a dense product; W^T
has taps too (row j of W^T lists the outputs o that read j: :func:`transpose`), so the VJP is
the same few gathers, not a scatter with ``np.add.at``. Where W only moves values (weights 1 and
0) every output is exactly one input value, or a sum of the values sent to it: the forms are
exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
Index = NDArray[np.int64]


class Taps(NamedTuple):
    """A matrix W (out x size) with few nonzeros per row: W[o, j] = sum_k weight[o, k]
    [j == source[o, k]]; ``source`` and ``weight`` have shape (out, K), ``size`` is in."""

    source: Index
    weight: Array
    size: int


def taps(source: NDArray[np.integer], weight: NDArray[np.floating], size: int) -> Taps:
    """W from its taps (out, K); a weight of 0 reads nothing, whatever its source."""
    w = np.asarray(weight, dtype=np.float64)
    i = np.where(w != 0, np.asarray(source), 0).astype(np.int64)
    return Taps(i, w, size)


def gather(source: NDArray[np.integer], size: int) -> Taps:
    """The gather W[o, j] = 1 if j == source[o] else 0: row o reads x[source[o]]. A source
    outside [0, size) gives a zero row (nothing is read: a constant fill)."""
    s = np.asarray(source)
    inside = (s >= 0) & (s < size)
    return taps(s[:, None], inside[:, None].astype(np.float64), size)


def transpose(w: Taps) -> Taps:
    """The taps of W^T: row j lists the outputs o with W[o, j] != 0 (in increasing o), padded
    with weight 0 to the largest count. Rows of W^T that nothing reads are zero."""
    out, k = w.source.shape
    o = np.repeat(np.arange(out), k)
    j, weight = w.source.ravel(), w.weight.ravel()
    kept = weight != 0
    o, j, weight = o[kept], j[kept], weight[kept]
    order = np.lexsort((o, j))  # by input j, then output o
    o, j, weight = o[order], j[order], weight[order]
    count = np.bincount(j, minlength=w.size)
    rank = np.arange(j.size) - (np.cumsum(count) - count)[j]  # place of o among j's readers
    width = max(int(count.max(initial=0)), 1)
    source = np.zeros((w.size, width), dtype=np.int64)
    weights = np.zeros((w.size, width))
    source[j, rank], weights[j, rank] = o, weight
    return Taps(source, weights, out)


# Maps with more taps than this per output, and at most this many entries dense, are applied
# as one dense product (the tap loop below costs a pass over x per tap).
_WIDE_TAPS = 64
_DENSE_ELEMENTS = 1 << 22


def _apply_axis(x: Array, w: Taps, axis: int) -> Array:
    """z[.., o, ..] = sum_k weight[o, k] x[.., source[o, k], ..] along ``axis``: one gather per
    tap k, of the whole dimension where most rows have a k-th tap (a row without one adds
    0 x[.., 0, ..], nothing for finite x, as the dense product did), else of those rows alone
    (the edges of a padding, say)."""
    out, k_taps = w.source.shape
    shape = (*x.shape[:axis], out, *x.shape[axis + 1:])
    if k_taps > _WIDE_TAPS and out * x.shape[axis] <= _DENSE_ELEMENTS:
        # Wide windows (an adaptive mean over 10^4 inputs): one product with the dense map,
        # where a gather per tap would loop 10^4 times.
        dense = np.zeros((out, x.shape[axis]))
        np.add.at(dense, (np.repeat(np.arange(out), k_taps), w.source.ravel()),
                  w.weight.ravel())
        return np.moveaxis(np.tensordot(dense, x, axes=([1], [axis])), 0, axis)
    trailing = (1,) * (x.ndim - axis - 1)  # a per-row factor broadcasts along ``axis``
    z = None
    for k in range(k_taps):
        weight, source = w.weight[:, k], w.source[:, k]
        rows = np.flatnonzero(weight)
        if 2 * rows.size >= out:
            term = np.take(x, source, axis=axis)
            if not np.all(weight == 1.0):
                term *= weight.reshape(out, *trailing)
            if z is None:
                z = term
            else:
                z += term
        else:
            if z is None:
                z = np.zeros(shape)
            at = (slice(None),) * axis + (rows,)
            z[at] += np.take(x, source[rows], axis=axis) * weight[rows].reshape(-1, *trailing)
    return np.zeros(shape) if z is None else z


def apply(x: Array, maps: Sequence[Taps]) -> Array:
    """z = (W_1 x W_2 ... W_d) applied along the last len(maps) dimensions of ``x``."""
    z = np.asarray(x, dtype=np.float64)
    d = len(maps)
    for i, w in enumerate(maps):
        z = _apply_axis(z, w, z.ndim - d + i)
    return z


def apply_vjp(g: Array, maps: Sequence[Taps]) -> Array:
    """The VJP of :func:`apply`: the same map with every matrix transposed (each dimension of
    the result is its W's ``size``, the input's side)."""
    return apply(g, [transpose(w) for w in maps])
