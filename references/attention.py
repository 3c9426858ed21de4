r"""Scaled dot-product attention, NumPy float64.

Follows ``torch.nn.functional.scaled_dot_product_attention``
(https://pytorch.org/docs/stable/generated/torch.nn.functional.scaled_dot_product_attention.html),
whose documented reference implementation (the "math" path) is what is checked here.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from references._broadcast import sum_to_shape as _sum_to_shape

Array = NDArray[np.float64]


def _bias(attn_mask: Array | None, is_causal: bool, shape: tuple[int, ...]) -> Array | float:
    """The additive score bias: 0 where attention is allowed, -inf where it is not.

    A boolean ``attn_mask`` says which keys take part (True) ; a float one is added as is;
    ``is_causal`` allows key j for query i when j <= i (the upper-left aligned lower triangle
    torch documents, also when L != S).
    """
    if is_causal:
        lq, sk = shape[-2:]
        return np.where(np.tril(np.ones((lq, sk), dtype=bool)), 0.0, -np.inf)
    if attn_mask is None:
        return 0.0
    if attn_mask.dtype == np.bool_:
        return np.where(attn_mask, 0.0, -np.inf)
    return np.asarray(attn_mask, dtype=np.float64)


def _probabilities(query: Array, key: Array, attn_mask: Array | None, is_causal: bool,
                   scale: float | None) -> tuple[Array, float]:
    """P = softmax(q k^T * scale + bias) along the keys, by the max-shifted form."""
    q, k = np.asarray(query, dtype=np.float64), np.asarray(key, dtype=np.float64)
    s = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ np.swapaxes(k, -1, -2) * s
    scores = scores + _bias(attn_mask, is_causal, scores.shape)
    e = np.exp(scores - np.max(scores, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True), s


def scaled_dot_product_attention(query: Array, key: Array, value: Array,
                                 attn_mask: Array | None = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None) -> Array:
    r"""out = softmax(q k^T * scale + bias) v, the softmax over the key axis.

    Shapes: ``query`` (*, L, E), ``key`` (*, S, E), ``value`` (*, S, Ev); out (*, L, Ev), the
    batch dimensions * broadcast against each other (NumPy's matmul rules, as torch's).
    ``scale`` defaults to 1 / sqrt(E). ``bias`` is 0, or from ``attn_mask`` (boolean: True
    takes part, False gets -inf; float: added to the scores; broadcast to (*, L, S)), or from
    ``is_causal`` (key j allowed for query i iff j <= i). The softmax is the max-shifted form
    exp(s - max s) / sum exp(s - max s), which equals the textbook exp(s) / sum exp(s) but
    cannot overflow (scores of |q| |k| ~ 1e8 at |x| ~ 1e4). Every query must be allowed at least
    one key (a fully masked row is 0 / 0). Only ``dropout_p = 0`` is a function.
    """
    assert dropout_p == 0.0, "attention dropout is random; the reference covers dropout_p = 0"
    p, _ = _probabilities(query, key, attn_mask, is_causal, scale)
    return p @ np.asarray(value, dtype=np.float64)


def scaled_dot_product_attention_vjp(g: Array, query: Array, key: Array, value: Array,
                                     attn_mask: Array | None = None, dropout_p: float = 0.0,
                                     is_causal: bool = False,
                                     scale: float | None = None) -> dict[str, Array]:
    r"""VJP of :func:`scaled_dot_product_attention`, with P the attention probabilities:

        dL/dv = P^T g
        dL/dP = g v^T
        dL/dS = P * (dL/dP - sum_keys(dL/dP * P))     (the softmax VJP, row by row)
        dL/dq = dL/dS k * scale,   dL/dk = dL/dS^T q * scale
        dL/d attn_mask = dL/dS summed over the axes the mask was broadcast along (float masks)

    The batch dimensions of q, k, v (and the mask) broadcast against each other, as torch's
    do: each product above has the broadcast batch shape, and each gradient is summed back
    over the dimensions its argument was broadcast along (the VJP of broadcasting), so it has
    exactly its argument's shape.
    """
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (query, key, value))
    p, s = _probabilities(q, k, attn_mask, is_causal, scale)
    dp = g @ np.swapaxes(v, -1, -2)
    ds = p * (dp - np.sum(dp * p, axis=-1, keepdims=True))
    grads = {"query": _sum_to_shape(ds @ k * s, q.shape),
             "key": _sum_to_shape(np.swapaxes(ds, -1, -2) @ q * s, k.shape),
             "value": _sum_to_shape(np.swapaxes(p, -1, -2) @ g, v.shape)}
    if attn_mask is not None and attn_mask.dtype != np.bool_:
        grads["attn_mask"] = _sum_to_shape(ds, attn_mask.shape)
    return grads
