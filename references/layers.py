r"""Layers: the affine and bilinear maps, embedding lookup and dropout, NumPy float64.

Convolution and pooling are in ``references.conv``, normalization in ``references.norms``,
attention in ``references.attention``.

Follows ``torch.nn.functional.linear`` / ``torch.nn.Linear``
(https://pytorch.org/docs/stable/generated/torch.nn.Linear.html), ``bilinear``
(https://pytorch.org/docs/stable/generated/torch.nn.Bilinear.html), ``embedding``
(https://pytorch.org/docs/stable/generated/torch.nn.Embedding.html) and ``dropout``
(https://pytorch.org/docs/stable/generated/torch.nn.Dropout.html).
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


def bilinear(input1: Array, input2: Array, weight: Array, bias: Array | None = None) -> Array:
    r"""y_o = x1^T A_o x2 + b_o = sum_{i, j} x1_i A_{o, i, j} x2_j + b_o, per sample.

    Shapes: ``input1`` (*, in1), ``input2`` (*, in2) with the same batch dimensions,
    ``weight`` A (out, in1, in2), ``bias`` (out,); y has shape (*, out).
    """
    y = np.einsum("...i,oij,...j->...o", input1, weight, input2)
    return y if bias is None else y + bias


def bilinear_vjp(g: Array, input1: Array, input2: Array, weight: Array,
                 bias: Array | None = None) -> dict[str, Array]:
    r"""VJP of :func:`bilinear` for g = dL/dy of shape (*, out):

        dL/dx1_i = sum_o g_o sum_j A_{o, i, j} x2_j
        dL/dx2_j = sum_o g_o sum_i x1_i A_{o, i, j}
        dL/dA_{o, i, j} = sum over the batch of g_o x1_i x2_j
        dL/db_o = sum over the batch of g_o
    """
    n_out, n1, n2 = np.shape(weight)
    g2, a1, a2 = np.reshape(g, (-1, n_out)), np.reshape(input1, (-1, n1)), np.reshape(input2,
                                                                                   (-1, n2))
    grads = {"input1": np.einsum("...o,oij,...j->...i", g, weight, input2),
             "input2": np.einsum("...o,...i,oij->...j", g, input1, weight),
             "weight": np.einsum("no,ni,nj->oij", g2, a1, a2)}
    if bias is not None:
        grads["bias"] = g2.sum(axis=0)
    return grads


def embedding(input: Array, weight: Array, padding_idx: int | None = None,
              scale_grad_by_freq: bool = False) -> Array:
    r"""y[..., :] = W[input[...], :]: row ``input`` of the table ``weight`` (num, dim).

    ``padding_idx`` and ``scale_grad_by_freq`` change only the gradient (see the VJP); the
    forward reads the padding row like any other (torch's F.embedding does not zero it; the
    nn.Embedding module initializes it to zeros).
    """
    return np.asarray(weight, dtype=np.float64)[np.asarray(input)]


def embedding_vjp(g: Array, input: Array, weight: Array, padding_idx: int | None = None,
                  scale_grad_by_freq: bool = False) -> dict[str, Array]:
    r"""VJP of :func:`embedding` with respect to ``weight``, g of shape (*input.shape, dim):

        dL/dW[r, :] = sum over positions p with input[p] = r of g[p, :]

    (a scatter-add: repeated indices accumulate). torch's documented conventions on top:
    ``padding_idx`` (negative counts from the end): that row's gradient is 0, "the entries at
    padding_idx do not contribute to the gradient", although the forward reads it — so with
    padding_idx this is *not* the derivative of the forward. ``scale_grad_by_freq``: row r's
    gradient is divided by the number of times r occurs in ``input``; also not a derivative.
    """
    idx = np.asarray(input, dtype=np.int64).reshape(-1)
    gw = np.zeros(np.shape(weight))
    np.add.at(gw, idx, np.reshape(g, (idx.size, -1)))
    if scale_grad_by_freq:
        counts = np.bincount(idx, minlength=len(gw))
        gw = gw / np.maximum(counts, 1)[:, None]
    if padding_idx is not None:
        gw[padding_idx] = 0.0
    return {"weight": gw}


def dropout(input: Array, mask: Array, p: float = 0.5) -> Array:
    r"""y = x * m / (1 - p) for a given 0/1 mask m (inverted dropout, as torch scales in training).

    F.dropout draws m ~ Bernoulli(1 - p) itself, so this reference takes the mask as an
    argument; ``tests/test_layers.py`` recovers torch's mask from its output. p = 1 drops
    everything (torch returns zeros, not 0 / 0).
    """
    if p == 1.0:
        return np.zeros(np.shape(input))
    return np.asarray(input, dtype=np.float64) * mask / (1.0 - p)


def dropout_vjp(g: Array, input: Array, mask: Array, p: float = 0.5) -> dict[str, Array]:
    r"""VJP of :func:`dropout`: dL/dx = g * m / (1 - p) (0 everywhere when p = 1)."""
    if p == 1.0:
        return {"input": np.zeros(np.shape(input))}
    return {"input": g * mask / (1.0 - p)}
