r"""Layers: the affine map of a fully connected layer, NumPy float64.

Follows ``torch.nn.functional.linear`` / ``torch.nn.Linear``
(https://pytorch.org/docs/stable/generated/torch.nn.Linear.html).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def linear(input: Array, weight: Array, bias: Array | None = None) -> Array:
    r"""z = a W^T + b on a batch.

    Shapes: ``input`` a of shape (*, in), ``weight`` W of shape (out, in), ``bias`` b of shape
    (out,); z has shape (*, out). Per sample this is the textbook z = W a + b; torch stores the
    batch in the rows, hence a W^T.
    """
    z = np.asarray(input, dtype=np.float64) @ np.asarray(weight, dtype=np.float64).T
    return z if bias is None else z + bias


def linear_vjp(
    g: Array, input: Array, weight: Array, bias: Array | None = None
) -> dict[str, Array]:
    r"""VJP of z = a W^T + b for a cotangent g = dL/dz of shape (*, out):

        dL/da = g W                      shape (*, in)
        dL/dW = sum over the batch of g^T a   i.e. dL/dW_ij = sum_n g_ni a_nj,  shape (out, in)
        dL/db = sum over the batch of g  shape (out,)

    A 1-D input (no batch) is treated as a batch of one.
    """
    a = np.asarray(input, dtype=np.float64)
    g2 = np.reshape(g, (-1, np.shape(weight)[0]))
    a2 = np.reshape(a, (-1, np.shape(weight)[1]))
    grads = {"input": np.reshape(g2 @ weight, a.shape), "weight": g2.T @ a2}
    if bias is not None:
        grads["bias"] = np.sum(g2, axis=0)
    return grads
