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

import math

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


# --- embedding_bag -------------------------------------------------------------------------


def _bags(input: Array, offsets: Array | None, include_last_offset: bool
          ) -> tuple[NDArray[np.int64], NDArray[np.int64], int]:
    """(the flat indices, the bag of each position, the number of bags B). A 2-D input
    (B, N) has one bag per row; a 1-D input is cut at ``offsets`` (bag b is
    input[offsets[b]:offsets[b + 1]], the last one running to the end, or to offsets[-1] with
    ``include_last_offset``, where offsets has B + 1 entries)."""
    idx = np.asarray(input, dtype=np.int64)
    if idx.ndim == 2:
        return idx.reshape(-1), np.repeat(np.arange(idx.shape[0]), idx.shape[1]), idx.shape[0]
    if offsets is None:
        raise ValueError("a 1-D input needs offsets")
    starts = np.asarray(offsets, dtype=np.int64)
    if include_last_offset:
        if starts[-1] != idx.size:
            raise ValueError(f"with include_last_offset the last offset is the input's length "
                             f"{idx.size}; got {starts[-1]}")
        starts = starts[:-1]
    bag = np.searchsorted(starts, np.arange(idx.size), side="right") - 1
    return idx, bag, starts.size


def _bag_terms(input: Array, weight: Array, offsets: Array | None,
               per_sample_weights: Array | None, include_last_offset: bool,
               padding_idx: int | None) -> tuple[NDArray[np.int64], NDArray[np.int64], Array,
                                                 Array, Array, int]:
    """(indices, bag of each position, kept-position flags, per-position weights w_p, kept
    count per bag, B); positions equal to ``padding_idx`` are not kept."""
    idx, bag, n_bags = _bags(input, offsets, include_last_offset)
    table = np.asarray(weight, dtype=np.float64)
    keep = np.ones(idx.size, dtype=bool)
    if padding_idx is not None:
        keep = idx != padding_idx % table.shape[0]
    w = np.ones(idx.size) if per_sample_weights is None else np.reshape(per_sample_weights, -1)
    counts = np.bincount(bag[keep], minlength=n_bags).astype(np.float64)
    return idx, bag, keep.astype(np.float64), w, counts, n_bags


def _bag_max(table: Array, idx: NDArray[np.int64], bag: NDArray[np.int64], keep: Array,
             counts: Array, n_bags: int) -> tuple[Array, Array]:
    """The elementwise max over each bag's kept rows (0 for a bag with none), and for each
    position and column whether it is the first position of its bag attaining the max (the
    one row the gradient goes to: a row repeated in a bag is one candidate, as in torch)."""
    rows = table[idx]
    out = np.full((n_bags, table.shape[1]), -np.inf)
    kept = keep.astype(bool)
    np.maximum.at(out, bag[kept], rows[kept])
    out[counts == 0] = 0.0
    hit = (rows == out[bag]) & kept[:, None]
    before = np.cumsum(hit, axis=0) - hit  # hits at earlier positions, over all bags
    starts = np.searchsorted(bag, np.arange(n_bags))  # first position of each bag
    base = np.vstack([np.zeros((1, hit.shape[1]), dtype=np.int64), np.cumsum(hit, axis=0)])
    return out, hit & (before - base[starts][bag] == 0)


def embedding_bag(input: Array, weight: Array, offsets: Array | None = None,
                  per_sample_weights: Array | None = None, mode: str = "mean",
                  include_last_offset: bool = False, padding_idx: int | None = None) -> Array:
    r"""Per bag b (the positions p of ``input`` in it, :func:`_bags`), over the kept positions
    (``input[p] != padding_idx``; a negative padding_idx counts from the end):

        sum:   out_b = sum_p w_p W[input_p]          (w_p = per_sample_weights[p], or 1)
        mean:  out_b = (1 / n_b) sum_p W[input_p]    (n_b kept positions)
        max:   out_b[j] = max_p W[input_p, j]

    and 0 for a bag with no kept position. Shapes: ``input`` (B, N) or 1-D with ``offsets``
    (B or B + 1 entries, offsets[0] = 0), ``weight`` (num_embeddings, D), out (B, D).
    per_sample_weights only with mode "sum" (as torch). Follows
    ``torch.nn.functional.embedding_bag`` / ``torch.nn.EmbeddingBag``
    (https://pytorch.org/docs/stable/generated/torch.nn.EmbeddingBag.html); max_norm,
    scale_grad_by_freq and sparse are not covered (an in-place renormalisation and two
    gradient conventions, not the function).
    """
    table = np.asarray(weight, dtype=np.float64)
    idx, bag, keep, w, counts, n_bags = _bag_terms(input, table, offsets, per_sample_weights,
                                                   include_last_offset, padding_idx)
    if mode == "max":
        return _bag_max(table, idx, bag, keep, counts, n_bags)[0]
    out = np.zeros((n_bags, table.shape[1]))
    np.add.at(out, bag, (keep * w)[:, None] * table[idx])
    return out / np.maximum(counts, 1)[:, None] if mode == "mean" else out


def embedding_bag_vjp(g: Array, input: Array, weight: Array, offsets: Array | None = None,
                      per_sample_weights: Array | None = None, mode: str = "mean",
                      include_last_offset: bool = False,
                      padding_idx: int | None = None) -> dict[str, Array]:
    r"""VJP of :func:`embedding_bag` for g (B, D), a scatter-add onto the rows read:

        sum:   dW[input_p] += w_p g_b,   d per_sample_weights[p] = <g_b, W[input_p]>
        mean:  dW[input_p] += g_b / n_b
        max:   dW[r, j] += g_b[j] for the row r = input_p of the bag's first maximum in column j

    over kept positions only (padding positions get nothing, their per-sample weight's
    gradient is 0). Here padding is excluded from the forward, so this is its derivative
    (unlike F.embedding's padding_idx).
    """
    table = np.asarray(weight, dtype=np.float64)
    idx, bag, keep, w, counts, n_bags = _bag_terms(input, table, offsets, per_sample_weights,
                                                   include_last_offset, padding_idx)
    gw = np.zeros(table.shape)
    g = np.asarray(g, dtype=np.float64)
    if mode == "max":
        first = _bag_max(table, idx, bag, keep, counts, n_bags)[1]
        np.add.at(gw, idx, first * g[bag])
        return {"weight": gw}
    scale = keep * w / (np.maximum(counts, 1)[bag] if mode == "mean" else 1.0)
    np.add.at(gw, idx, scale[:, None] * g[bag])
    grads = {"weight": gw}
    if per_sample_weights is not None:
        grads["per_sample_weights"] = np.reshape(
            keep * np.sum(g[bag] * table[idx], axis=1), np.shape(per_sample_weights))
    return grads


# --- alpha dropout -------------------------------------------------------------------------

# SELU's negative saturation value alpha' = -lambda alpha (Klambauer et al. 2017,
# "Self-Normalizing Neural Networks", eq. 2 and sec. "New Dropout Technique": lambda =
# 1.0507009873554805, alpha = 1.6732632423543772), the value dropped units are set to.
SELU_SATURATION = -1.0507009873554805 * 1.6732632423543772


def alpha_dropout_affine(p: float) -> tuple[float, float]:
    r"""(a, b) of alpha dropout with drop probability p (Klambauer et al. 2017, with keep
    probability q = 1 - p): a = ((1 - p)(1 + p alpha'^2))^(-1/2), b = -a alpha' p, which keep
    mean 0 and variance 1 of SELU activations."""
    a = 1.0 / math.sqrt((1.0 - p) * (1.0 + p * SELU_SATURATION**2))
    return a, -a * SELU_SATURATION * p


def alpha_dropout(input: Array, mask: Array, p: float = 0.5) -> Array:
    r"""y = a (x m + alpha' (1 - m)) + b for a given 0/1 mask m (1: kept), with alpha' = SELU's
    saturation -lambda alpha ~ -1.7581 and the affine correction (a, b) of
    :func:`alpha_dropout_affine`: kept units become a x + b, dropped ones the constant
    a alpha' + b. Follows ``torch.nn.functional.alpha_dropout`` / ``torch.nn.AlphaDropout``
    (https://pytorch.org/docs/stable/generated/torch.nn.AlphaDropout.html); the mask may
    broadcast (``feature_alpha_dropout`` drops whole channels: m of shape (N, C, 1, ...)).
    torch draws m ~ Bernoulli(1 - p) itself; tests/test_layers.py recovers it from its output.
    p = 1 drops everything, and torch returns x * 0 (zeros; a is infinite there).
    """
    x = np.asarray(input, dtype=np.float64)
    if p == 1.0:
        return x * 0.0
    a, b = alpha_dropout_affine(p)
    return a * (x * mask + SELU_SATURATION * (1.0 - mask)) + b


def alpha_dropout_vjp(g: Array, input: Array, mask: Array, p: float = 0.5) -> dict[str, Array]:
    r"""VJP of :func:`alpha_dropout`: dL/dx = a m g (0 when p = 1)."""
    if p == 1.0:
        return {"input": np.zeros(np.shape(input))}
    a, _ = alpha_dropout_affine(p)
    return {"input": np.broadcast_to(a * mask * g, np.shape(input)).copy()}


# --- flatten and unflatten -----------------------------------------------------------------


def flatten(input: Array, start_dim: int = 0, end_dim: int = -1) -> Array:
    r"""The dimensions start_dim .. end_dim (negative spellings count from the end) merged into
    one of their product's size, in row-major order; a 0-d input becomes shape (1,). Follows
    ``torch.flatten`` / ``torch.nn.Flatten`` (whose defaults are start_dim=1, end_dim=-1:
    https://pytorch.org/docs/stable/generated/torch.nn.Flatten.html). A reshape: the Jacobian
    is a permutation matrix (the identity on the data), so the VJP is g reshaped back.
    """
    x = np.asarray(input, dtype=np.float64)
    if x.ndim == 0:
        return x.reshape(1)
    start, end = start_dim % x.ndim, end_dim % x.ndim
    merged = int(np.prod(x.shape[start:end + 1]))
    return x.reshape(*x.shape[:start], merged, *x.shape[end + 1:])


def flatten_vjp(g: Array, input: Array, start_dim: int = 0, end_dim: int = -1
                ) -> dict[str, Array]:
    r"""VJP of :func:`flatten`: g reshaped to the input's shape."""
    return {"input": np.reshape(g, np.shape(input))}


def unflatten(input: Array, dim: int, sizes: tuple[int, ...]) -> Array:
    r"""Dimension ``dim`` split into ``sizes`` (row-major; one entry may be -1, inferred).
    Follows ``torch.unflatten`` / ``torch.nn.Unflatten``
    (https://pytorch.org/docs/stable/generated/torch.nn.Unflatten.html). A reshape: the VJP is
    g reshaped back.
    """
    x = np.asarray(input, dtype=np.float64)
    d = dim % x.ndim
    return x.reshape(*x.shape[:d], *sizes, *x.shape[d + 1:])


def unflatten_vjp(g: Array, input: Array, dim: int, sizes: tuple[int, ...]) -> dict[str, Array]:
    r"""VJP of :func:`unflatten`: g reshaped to the input's shape."""
    return {"input": np.reshape(g, np.shape(input))}
