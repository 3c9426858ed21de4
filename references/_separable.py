r"""Separable linear maps on the last dimensions of an array, for the references of padding,
interpolation and adaptive average pooling.

Each of those ops acts on every spatial dimension independently: along dimension i it is a
matrix W_i of shape (out_i, in_i), and on the whole array

    z[..., o_1, .., o_d] = sum_{j_1, .., j_d} W_1[o_1, j_1] ... W_d[o_d, j_d] x[..., j_1, .., j_d]

(one tensordot per dimension). Its VJP is the same map with the transposed matrices,

    dL/dx[..., j_1, .., j_d] = sum_{o_1, .., o_d} W_1[o_1, j_1] ... W_d[o_d, j_d]
                                                   g[..., o_1, .., o_d]

so a gather (W with one 1 per row) has the scatter-add as its VJP. The matrices are small
(sides of tens), and for 0/1 matrices every entry of the product is exactly one input value,
so these forms are exact where the op only moves values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def apply(x: Array, matrices: Sequence[Array]) -> Array:
    """z = (W_1 x W_2 ... W_d) applied along the last len(matrices) dimensions of ``x``."""
    z = np.asarray(x, dtype=np.float64)
    d = len(matrices)
    for i, w in enumerate(matrices):
        axis = z.ndim - d + i
        z = np.moveaxis(np.tensordot(w, z, axes=([1], [axis])), 0, axis)
    return z


def apply_vjp(g: Array, matrices: Sequence[Array]) -> Array:
    """The VJP of :func:`apply`: the same map with every matrix transposed."""
    return apply(g, [np.transpose(w) for w in matrices])


def one_hot(source: NDArray[np.int64], size: int) -> Array:
    """The gather matrix W[o, j] = 1 if j == source[o] else 0: row o reads x[source[o]]. A
    source outside [0, size) gives a zero row (nothing is read: a constant fill)."""
    return (np.asarray(source)[:, None] == np.arange(size)[None, :]).astype(np.float64)
