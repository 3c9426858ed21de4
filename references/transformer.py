r"""Multi-head attention and the transformer layers, NumPy float64, composed from the layer
references: ``references.layers.linear`` (the projections and the feed-forward network),
``references.activations`` (softmax for each head's attention probabilities, relu and gelu)
and ``references.norms.layer_norm``; each head is scaled dot-product attention
(``references.attention``'s formula, softmax(q k^T / sqrt(hd) + M) v) with its probabilities
computed once, for the output, the returned weights and the VJP. Every VJP is the chain rule
through those pieces, each piece's own VJP doing its part.

Multi-head attention (Vaswani et al. 2017, sec. 3.2.2; ``torch.nn.MultiheadAttention``,
https://pytorch.org/docs/stable/generated/torch.nn.MultiheadAttention.html):

    q = query W_q^T + b_q,   k = key W_k^T + b_k,   v = value W_v^T + b_v      (E = H hd)
    [bias_k: k gets one more row, bias_k, after the projection; bias_v likewise for v]
    split the last axis into H heads of hd;  [add_zero_attn: one more all-zero key and value]
    head_h = softmax(q_h k_h^T / sqrt(hd) + M) v_h
    out = concat_h(head_h) W_o^T + b_o

with M the additive mask: attn_mask (boolean: True is *not* allowed, i.e. -inf; float: added)
plus key_padding_mask (one row per batch entry, the same convention), both padded with 0
(allowed) for the bias_k and zero-attention columns. ``W_q, W_k, W_v`` are the three row blocks
of ``in_proj_weight`` (packed: query, key and value all have E features) or
``q/k/v_proj_weight`` (separate: key has kdim, value vdim features); ``b_q, b_k, b_v`` the
three blocks of ``in_proj_bias`` in both cases. The returned weights are the softmax
probabilities P (N, H, L, S'), averaged over the heads when ``average_attn_weights``.

The transformer layers (``torch.nn.TransformerEncoderLayer`` and ``TransformerDecoderLayer``,
https://pytorch.org/docs/stable/generated/torch.nn.TransformerEncoderLayer.html,
https://pytorch.org/docs/stable/generated/torch.nn.TransformerDecoderLayer.html) chain
self-attention, (decoder only) attention over the encoder's ``memory`` and the feed-forward
network ff(x) = linear2(activation(linear1(x))), each wrapped in a residual connection and a
layer normalization: post-norm (``norm_first=False``, the paper's) x <- LN(x + block(x)), or
pre-norm x <- x + block(LN(x)). Dropout is the identity (evaluation mode); training-mode
dropout is checked with torch's own masks in tests/test_layers.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from references import activations, layers, norms

Array = NDArray[np.float64]
Grads = dict[str, Array]


# --- layouts and masks ---------------------------------------------------------------------


def _batch_first(x: Array, batched: bool, batch_first: bool) -> Array:
    """(N, L, E) from torch's layout: (L, N, E) unless batch_first, (L, E) unbatched."""
    if not batched:
        return x[None]
    return x if batch_first else np.swapaxes(x, 0, 1)


def _from_batch_first(x: Array, batched: bool, batch_first: bool) -> Array:
    """Back from (N, L, E) to torch's layout (the inverse of :func:`_batch_first`)."""
    if not batched:
        return x[0]
    return x if batch_first else np.swapaxes(x, 0, 1)


def _additive(mask: Array | None) -> Array | None:
    """A mask as additive scores: boolean True (not allowed) is -inf, False is 0; float as is."""
    if mask is None:
        return None
    if mask.dtype == np.bool_:
        return np.where(mask, -np.inf, 0.0)
    return np.asarray(mask, dtype=np.float64)


def _is_float(mask: Array | None) -> bool:
    return mask is not None and mask.dtype != np.bool_


# --- one multi-head attention call, batch-first ----------------------------------------------


@dataclass(frozen=True)
class _Projections:
    """The parameters of one multi-head attention block, by torch's argument names."""

    out_proj_weight: Array
    in_proj_weight: Array | None = None
    q_proj_weight: Array | None = None
    k_proj_weight: Array | None = None
    v_proj_weight: Array | None = None
    in_proj_bias: Array | None = None
    bias_k: Array | None = None
    bias_v: Array | None = None
    out_proj_bias: Array | None = None

    def weights(self) -> tuple[Array, Array, Array]:
        """W_q, W_k, W_v: the row blocks of in_proj_weight, or the separate weights."""
        if self.in_proj_weight is not None:
            w_q, w_k, w_v = np.split(np.asarray(self.in_proj_weight, dtype=np.float64), 3)
            return w_q, w_k, w_v
        assert self.q_proj_weight is not None and self.k_proj_weight is not None
        assert self.v_proj_weight is not None
        return self.q_proj_weight, self.k_proj_weight, self.v_proj_weight

    def biases(self) -> tuple[Array | None, Array | None, Array | None]:
        if self.in_proj_bias is None:
            return None, None, None
        b_q, b_k, b_v = np.split(np.asarray(self.in_proj_bias, dtype=np.float64), 3)
        return b_q, b_k, b_v


@dataclass(frozen=True)
class _Attention:
    """One multi-head attention call's intermediates, all batch-first: what its VJP reads."""

    p: _Projections
    heads: int
    q_in: Array  # (N, L, E)
    k_in: Array  # (N, S, kdim)
    v_in: Array  # (N, S, vdim)
    q4: Array  # (N, H, L, hd)
    k4: Array  # (N, H, S', hd), S' = S + [bias_k] + [add_zero_attn]
    v4: Array
    mask: Array | None  # (N, H, L, S') additive
    scores: Array  # (N, H, L, S')
    softmax: Array  # softmax(scores)
    probs: Array  # the returned weights: softmax(scores), times ``dropped`` with dropout
    concat: Array  # (N, L, E), the heads side by side
    output: Array  # (N, L, E)
    attn_mask: Array | None
    key_padding_mask: Array | None  # (N, S)
    add_zero_attn: bool
    dropped: Array | None  # attention dropout: the kept/dropped factor m / (1 - p), or None


def _split_heads(x: Array, heads: int) -> Array:
    """(N, T, E) -> (N, H, T, E / H)."""
    n, t, e = x.shape
    return x.reshape(n, t, heads, e // heads).transpose(0, 2, 1, 3)


def _merge_heads(x: Array) -> Array:
    """(N, H, T, hd) -> (N, T, H hd): the inverse of :func:`_split_heads`."""
    n, h, t, hd = x.shape
    return x.transpose(0, 2, 1, 3).reshape(n, t, h * hd)


def _combined_mask(attn_mask: Array | None, key_padding_mask: Array | None, n: int, h: int,
                   lq: int, s: int, pad: int) -> Array | None:
    """M (N, H, L, S + pad): attn_mask ((L, S) shared, or (N H, L, S)) plus key_padding_mask
    ((N, S), broadcast over heads and queries), both additive, padded with ``pad`` allowed
    (zero) columns for bias_k and the zero-attention key."""
    if attn_mask is None and key_padding_mask is None:
        return None
    m = np.zeros((n, h, lq, s))
    am, kp = _additive(attn_mask), _additive(key_padding_mask)
    if am is not None:
        m = m + (am if am.ndim == 2 else am.reshape(n, h, lq, s))
    if kp is not None:
        m = m + kp[:, None, None, :]
    return np.concatenate([m, np.zeros((n, h, lq, pad))], axis=-1)


def _attend(q_in: Array, k_in: Array, v_in: Array, p: _Projections, heads: int,
            attn_mask: Array | None, key_padding_mask: Array | None,
            add_zero_attn: bool, dropped: Array | None = None) -> _Attention:
    """One multi-head attention call on batch-first arrays (the module docstring's formula).

    ``dropped`` (N, H, L, S'): attention dropout's factor m / (1 - p) for a given 0/1 mask m
    (torch drops attention probabilities: head_h = (P_h * dropped_h) v_h); None: no dropout,
    and each head is scaled dot-product attention, P_h v_h, with P_h computed once here (the
    returned weights and the VJP read it, as torch's math path keeps it).
    """
    n, lq, e = q_in.shape
    s = k_in.shape[1]
    w_q, w_k, w_v = p.weights()
    b_q, b_k, b_v = p.biases()
    q = layers.linear(q_in, w_q, b_q)
    k = layers.linear(k_in, w_k, b_k)
    v = layers.linear(v_in, w_v, b_v)
    if p.bias_k is not None and p.bias_v is not None:
        k = np.concatenate([k, np.broadcast_to(np.reshape(p.bias_k, (1, 1, e)), (n, 1, e))], 1)
        v = np.concatenate([v, np.broadcast_to(np.reshape(p.bias_v, (1, 1, e)), (n, 1, e))], 1)
    q4, k4, v4 = (_split_heads(x, heads) for x in (q, k, v))
    if add_zero_attn:
        zeros = np.zeros((n, heads, 1, e // heads))
        k4, v4 = np.concatenate([k4, zeros], axis=2), np.concatenate([v4, zeros], axis=2)
    mask = _combined_mask(attn_mask, key_padding_mask, n, heads, lq, s, k4.shape[2] - s)
    scores = q4 @ np.swapaxes(k4, -1, -2) / math.sqrt(e // heads)
    if mask is not None:
        scores = scores + mask
    softmax = activations.softmax(scores)
    probs = softmax if dropped is None else softmax * dropped
    heads_out = probs @ v4  # scaled dot-product attention, its probabilities kept for the VJP
    concat = _merge_heads(heads_out)
    output = layers.linear(concat, p.out_proj_weight, p.out_proj_bias)
    return _Attention(p, heads, q_in, k_in, v_in, q4, k4, v4, mask, scores, softmax, probs,
                      concat, output,
                      attn_mask, key_padding_mask, add_zero_attn, dropped)


def _attend_vjp(a: _Attention, g_out: Array | None, g_probs: Array | None = None) -> Grads:
    """VJP of :func:`_attend` for a cotangent on the output (N, L, E) and/or on the attention
    probabilities (N, H, L, S'). Keys: ``q_in``, ``k_in``, ``v_in``, the projections' names,
    and ``attn_mask`` / ``key_padding_mask`` for float masks (in their batched shapes).

        d concat, dW_o, db_o = linear's VJP of g_out
        head_h = P_h v_h (P_h * D_h with attention dropout D):  dv_h = P_h^T d head_h, and
        d head_h v_h^T joins g_probs (both are cotangents of the returned P, times D after)
        dS = softmax's VJP of g_probs;  dq_h = dS k_h / sqrt(hd),  dk_h = dS^T q_h / sqrt(hd),
        dM = dS
        (scaled dot-product attention's VJP, written with the probabilities the forward kept)
        the zero-attention rows dropped; d bias_k = the sum over the batch of k's extra row;
        dW, db, d input of each projection = linear's VJP; dM summed to each mask's shape.
    """
    p, n, lq, e = a.p, *a.q_in.shape
    s, h = a.k_in.shape[1], a.heads
    grads: Grads = {}
    if g_out is not None:
        out = layers.linear_vjp(g_out, a.concat, p.out_proj_weight, p.out_proj_bias)
        grads["out_proj_weight"] = out["weight"]
        if p.out_proj_bias is not None:
            grads["out_proj_bias"] = out["bias"]
        d_heads = _split_heads(out["input"], h)
        # head = P v, P the probabilities (times dropped): dv = P^T d head, dP = d head v^T
        dv4 = np.swapaxes(a.probs, -1, -2) @ d_heads
        d_probs = d_heads @ np.swapaxes(a.v4, -1, -2)
        g_probs = d_probs if g_probs is None else g_probs + d_probs
    else:
        grads["out_proj_weight"] = np.zeros(np.shape(p.out_proj_weight))
        if p.out_proj_bias is not None:
            grads["out_proj_bias"] = np.zeros(np.shape(p.out_proj_bias))
        dv4 = np.zeros(a.v4.shape)
    assert g_probs is not None, "a cotangent on the output or on the weights"
    if a.dropped is not None:  # the cotangent of P * dropped, times dropped: that of P
        g_probs = g_probs * a.dropped
    # dS, the scores' cotangent: softmax's VJP (``activations.softmax_vjp``), s (g - <g, s>),
    # with the s the forward kept
    dmask = a.softmax * (g_probs - np.sum(g_probs * a.softmax, axis=-1, keepdims=True))
    scale = 1.0 / math.sqrt(e // h)
    dq4 = dmask @ a.k4 * scale
    dk4 = np.swapaxes(dmask, -1, -2) @ a.q4 * scale
    if a.add_zero_attn:
        dk4, dv4 = dk4[:, :, :-1], dv4[:, :, :-1]
    dq, dk, dv = _merge_heads(dq4), _merge_heads(dk4), _merge_heads(dv4)
    if p.bias_k is not None and p.bias_v is not None:
        grads["bias_k"] = dk[:, s:].sum(axis=0).reshape(np.shape(p.bias_k))
        grads["bias_v"] = dv[:, s:].sum(axis=0).reshape(np.shape(p.bias_v))
        dk, dv = dk[:, :s], dv[:, :s]
    w_q, w_k, w_v = p.weights()
    b_q, b_k, b_v = p.biases()
    proj = [layers.linear_vjp(d, x, w, b)
            for d, x, w, b in ((dq, a.q_in, w_q, b_q), (dk, a.k_in, w_k, b_k),
                               (dv, a.v_in, w_v, b_v))]
    grads["q_in"], grads["k_in"], grads["v_in"] = (d["input"] for d in proj)
    if p.in_proj_weight is not None:
        grads["in_proj_weight"] = np.concatenate([d["weight"] for d in proj])
    else:
        grads["q_proj_weight"], grads["k_proj_weight"], grads["v_proj_weight"] = (
            d["weight"] for d in proj)
    if p.in_proj_bias is not None:
        grads["in_proj_bias"] = np.concatenate([d["bias"] for d in proj])
    dm = dmask[..., :s]  # the bias_k and zero-attention columns are constants of torch's
    if _is_float(a.attn_mask):
        assert a.attn_mask is not None
        grads["attn_mask"] = dm.sum(axis=(0, 1)) if a.attn_mask.ndim == 2 \
            else dm.reshape(n * h, lq, s)
    if _is_float(a.key_padding_mask):
        grads["key_padding_mask"] = dm.sum(axis=(1, 2))
    return grads


# --- nn.MultiheadAttention -----------------------------------------------------------------

_PROJECTIONS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight",
                "in_proj_bias", "bias_k", "bias_v", "out_proj_weight", "out_proj_bias")


def _mha_call(query: Array, key: Array | None, value: Array | None,
              key_padding_mask: Array | None, attn_mask: Array | None,
              params: Mapping[str, Array | None], num_heads: int, add_zero_attn: bool,
              batch_first: bool, attn_dropout_mask: Array | None = None,
              dropout_p: float = 0.0) -> tuple[_Attention, bool]:
    """torch's layouts to one batch-first call: key defaults to query (self-attention), value
    to key; an unbatched call is a batch of one (its key_padding_mask (S,) one row, its
    attn_dropout_mask (H, L, S') one entry)."""
    batched = np.ndim(query) == 3
    key = query if key is None else key
    value = key if value is None else value
    q_in, k_in, v_in = (_batch_first(np.asarray(x, dtype=np.float64), batched, batch_first)
                        for x in (query, key, value))
    if key_padding_mask is not None and not batched:
        key_padding_mask = key_padding_mask[None]
    assert params.get("out_proj_weight") is not None, "out_proj_weight is required"
    p = _Projections(**{k: v for k, v in params.items() if v is not None})
    dropped = None
    if dropout_p > 0.0:
        assert attn_dropout_mask is not None, "attention dropout needs the mask torch drew"
        m = np.asarray(attn_dropout_mask, dtype=np.float64)
        dropped = (m if batched else m[None]) / (1.0 - dropout_p)
    return _attend(q_in, k_in, v_in, p, num_heads, attn_mask, key_padding_mask,
                   add_zero_attn, dropped), batched


def multi_head_attention(
    query: Array, key: Array | None = None, value: Array | None = None,
    key_padding_mask: Array | None = None, attn_mask: Array | None = None,
    in_proj_weight: Array | None = None, q_proj_weight: Array | None = None,
    k_proj_weight: Array | None = None, v_proj_weight: Array | None = None,
    in_proj_bias: Array | None = None, bias_k: Array | None = None, bias_v: Array | None = None,
    out_proj_weight: Array | None = None, out_proj_bias: Array | None = None,
    attn_dropout_mask: Array | None = None, *, num_heads: int, add_zero_attn: bool = False,
    batch_first: bool = False, need_weights: bool = True, average_attn_weights: bool = True,
    is_causal: bool = False, output: str = "attn_output", dropout_p: float = 0.0,
) -> Array:
    r"""nn.MultiheadAttention's ``attn_output`` (``output="attn_output"``) or its
    ``attn_output_weights`` (``output="attn_output_weights"``): the module docstring's formula.

    Shapes (torch's): ``query`` (L, N, E), ``key`` (S, N, kdim), ``value`` (S, N, vdim)
    ((N, L, E) ... with ``batch_first``; (L, E) ... unbatched); ``key`` None means ``query``
    (self-attention, as torch's ``query is key``), ``value`` None means ``key``.
    ``key_padding_mask`` (N, S) or (S,); ``attn_mask`` (L, S) or (N H, L, S); ``bias_k``,
    ``bias_v`` (1, 1, E). attn_output has the query's shape; the weights are (N, L, S') averaged
    over heads, or (N, H, L, S'), without N unbatched. Every query must be allowed one key (a
    fully masked row is 0 / 0, NaN in torch too).

    ``need_weights`` changes torch's algorithm (False: fused scaled_dot_product_attention, True:
    explicit softmax), not the values. ``is_causal`` is a hint that ``attn_mask`` is the causal
    mask, which torch may use instead of it; the reference uses ``attn_mask``, so the two must
    agree (torch's documentation: an incorrect hint is undefined behaviour).

    Attention dropout (``dropout_p`` > 0, training) drops attention probabilities: it needs
    torch's 0/1 mask ``attn_dropout_mask`` (N, H, L, S') (torch draws it; tests/test_layers.py
    recovers it from the per-head weights, which torch returns *after* dropout), and then
    head_h = (P_h * m_h / (1 - p)) v_h and the weights are P * m / (1 - p).
    Stable forms: those of the pieces (the max-shifted softmax); nothing here overflows at
    |x| ~ 1e4.
    """
    params = {k: v for k, v in locals().items() if k in _PROJECTIONS}
    a, batched = _mha_call(query, key, value, key_padding_mask, attn_mask, params, num_heads,
                           add_zero_attn, batch_first, attn_dropout_mask, dropout_p)
    if output == "attn_output":
        return _from_batch_first(a.output, batched, batch_first)
    if output != "attn_output_weights":
        raise ValueError(f"output must be 'attn_output' or 'attn_output_weights', got {output!r}")
    assert need_weights, "torch returns no weights without need_weights"
    w = a.probs.mean(axis=1) if average_attn_weights else a.probs
    return w if batched else w[0]


def multi_head_attention_vjp(
    g: Array, query: Array, key: Array | None = None, value: Array | None = None,
    key_padding_mask: Array | None = None, attn_mask: Array | None = None,
    in_proj_weight: Array | None = None, q_proj_weight: Array | None = None,
    k_proj_weight: Array | None = None, v_proj_weight: Array | None = None,
    in_proj_bias: Array | None = None, bias_k: Array | None = None, bias_v: Array | None = None,
    out_proj_weight: Array | None = None, out_proj_bias: Array | None = None,
    attn_dropout_mask: Array | None = None, *, num_heads: int, add_zero_attn: bool = False,
    batch_first: bool = False, need_weights: bool = True, average_attn_weights: bool = True,
    is_causal: bool = False, output: str = "attn_output", dropout_p: float = 0.0,
) -> Grads:
    r"""VJP of :func:`multi_head_attention`: :func:`_attend_vjp` (linear's VJP for every
    projection, scaled dot-product attention's for each head; for the weights, softmax's VJP of
    g, spread evenly over the heads when averaged), then self-attention sums the gradients of
    query, key and value onto the arrays they share (d query = d q_in + d k_in + d v_in when
    ``key`` and ``value`` are None), and each gradient goes back to its argument's layout.
    Gradients w.r.t. arrays the chosen output does not depend on (value, W_o for the weights)
    are zeros; boolean masks have none.
    """
    params = {k: v for k, v in locals().items() if k in _PROJECTIONS}
    a, batched = _mha_call(query, key, value, key_padding_mask, attn_mask, params, num_heads,
                           add_zero_attn, batch_first, attn_dropout_mask, dropout_p)
    if output == "attn_output":
        grads = _attend_vjp(a, _batch_first(np.asarray(g), batched, batch_first))
    else:
        g4 = np.asarray(g) if batched else np.asarray(g)[None]
        if average_attn_weights:
            g4 = np.broadcast_to(g4[:, None] / num_heads, a.probs.shape)
        grads = _attend_vjp(a, None, g4)
    dq, dk, dv = (_from_batch_first(grads.pop(k), batched, batch_first)
                  for k in ("q_in", "k_in", "v_in"))
    if key is None:
        grads["query"] = dq + dk + dv
    elif value is None:
        grads["query"], grads["key"] = dq, dk + dv
    else:
        grads["query"], grads["key"], grads["value"] = dq, dk, dv
    if "key_padding_mask" in grads and not batched:
        grads["key_padding_mask"] = grads["key_padding_mask"][0]
    return grads


# --- nn.TransformerEncoderLayer and nn.TransformerDecoderLayer ------------------------------

_ACTIVATIONS = {"relu": (activations.relu, activations.relu_vjp),
                "gelu": (activations.gelu, activations.gelu_vjp)}


@dataclass(frozen=True)
class _Block:
    """One residual sublayer of a transformer layer: self-attention, attention over the
    memory, or the feed-forward network, with its layer normalization and its masks' names."""

    kind: str  # "self_attn", "multihead_attn" or "ff"
    norm: str  # "norm1", "norm2", "norm3"
    dropout: str  # the nn.Dropout applied to the block's output: "dropout1", ...
    attn_mask: str = ""
    key_padding_mask: str = ""


_ENCODER = (_Block("self_attn", "norm1", "dropout1", "src_mask", "src_key_padding_mask"),
            _Block("ff", "norm2", "dropout2"))
_DECODER = (_Block("self_attn", "norm1", "dropout1", "tgt_mask", "tgt_key_padding_mask"),
            _Block("multihead_attn", "norm2", "dropout2", "memory_mask",
                   "memory_key_padding_mask"),
            _Block("ff", "norm3", "dropout3"))


@dataclass(frozen=True)
class _Layer:
    """A layer call's arrays (by the public functions' names; masks in batched shapes, the
    memory batch-first) and options."""

    arrays: Mapping[str, Array | None]
    memory: Array | None
    nhead: int
    activation: str
    eps: float
    norm_first: bool
    dropped: Mapping[str, Array] = field(default_factory=dict)
    """Training-mode dropout: m / (1 - p) for torch's 0/1 mask m of each nn.Dropout by its
    name ("dropout" inside the feed-forward network, "dropout1", ... after the blocks), in the
    batch-first layout; empty in evaluation mode (dropout the identity)."""

    def drop(self, name: str, x: Array) -> Array:
        """x through the nn.Dropout ``name``: x m / (1 - p) in training, x in evaluation."""
        return x * self.dropped[name] if name in self.dropped else x

    def get(self, name: str) -> Array | None:
        return self.arrays.get(name)

    def required(self, name: str) -> Array:
        a = self.arrays.get(name)
        assert a is not None, f"{name} is required"
        return a

    def projections(self, prefix: str) -> _Projections:
        names = ("in_proj_weight", "in_proj_bias", "out_proj_weight", "out_proj_bias")
        found = {n: self.get(f"{prefix}_{n}") for n in names}
        assert found["out_proj_weight"] is not None, f"{prefix}_out_proj_weight is required"
        return _Projections(**{n: a for n, a in found.items() if a is not None})

    def layer_norm(self, norm: str, x: Array) -> Array:
        return norms.layer_norm(x, (x.shape[-1],), self.get(f"{norm}_weight"),
                                self.get(f"{norm}_bias"), self.eps)

    def layer_norm_vjp(self, norm: str, g: Array, x: Array) -> tuple[Array, Grads]:
        d = norms.layer_norm_vjp(g, x, (x.shape[-1],), self.get(f"{norm}_weight"),
                                 self.get(f"{norm}_bias"), self.eps)
        return d.pop("input"), {f"{norm}_{k}": v for k, v in d.items()}


@dataclass(frozen=True)
class _FeedForward:
    """ff(h) = linear2(dropout(activation(z))), z = linear1(h): what its VJP needs."""

    h: Array
    z: Array
    act: Array  # dropout(activation(z))


def _block(layer: _Layer, b: _Block, h: Array) -> tuple[Array, _FeedForward | _Attention]:
    """The sublayer's function of its input h: attention (query h; keys and values h, or the
    memory) or ff(h) = linear2(activation(linear1(h))). Returns (output, what its VJP needs)."""
    if b.kind == "ff":
        z = layers.linear(h, layer.required("linear1_weight"), layer.get("linear1_bias"))
        act = layer.drop("dropout", _ACTIVATIONS[layer.activation][0](z))
        out = layers.linear(act, layer.required("linear2_weight"), layer.get("linear2_bias"))
        return layer.drop(b.dropout, out), _FeedForward(h, z, act)
    kv = h if b.kind == "self_attn" else layer.memory
    assert kv is not None
    a = _attend(h, kv, kv, layer.projections(b.kind), layer.nhead, layer.get(b.attn_mask),
                layer.get(b.key_padding_mask), add_zero_attn=False)
    return layer.drop(b.dropout, a.output), a


def _block_vjp(layer: _Layer, b: _Block, g: Array,
               cache: _FeedForward | _Attention) -> tuple[Array, Grads]:
    """VJP of :func:`_block`: d h, and the gradients of the block's parameters (and of the
    memory and float masks for attention), by the public functions' names. Dropout's VJP is
    the same product: g m / (1 - p)."""
    g = layer.drop(b.dropout, g)
    if isinstance(cache, _FeedForward):
        second = layers.linear_vjp(g, cache.act, layer.required("linear2_weight"),
                                   layer.get("linear2_bias"))
        dact = layer.drop("dropout", second.pop("input"))
        dz = _ACTIVATIONS[layer.activation][1](dact, cache.z)["input"]
        first = layers.linear_vjp(dz, cache.h, layer.required("linear1_weight"),
                                  layer.get("linear1_bias"))
        grads = {f"linear1_{k}": v for k, v in first.items() if k != "input"}
        grads |= {f"linear2_{k}": v for k, v in second.items()}
        return first["input"], grads
    d = _attend_vjp(cache, g)
    dh = d.pop("q_in")
    dk, dv = d.pop("k_in"), d.pop("v_in")
    grads = {}
    if b.kind == "self_attn":
        dh = dh + dk + dv
    else:
        grads["memory"] = dk + dv
    for mask, name in (("attn_mask", b.attn_mask), ("key_padding_mask", b.key_padding_mask)):
        if mask in d:
            grads[name] = d.pop(mask)
    grads |= {f"{b.kind}_{k}": v for k, v in d.items()}
    return dh, grads


def _layer_forward(layer: _Layer, blocks: tuple[_Block, ...], x: Array
                   ) -> tuple[Array, list[tuple[Array, Array, _FeedForward | _Attention]]]:
    """Each block as a residual sublayer: post-norm x <- LN(x + f(x)), pre-norm
    x <- x + f(LN(x)). Returns the output and, per block, (x, the LN's or f's input, f's
    cache)."""
    caches = []
    for b in blocks:
        if layer.norm_first:
            h = layer.layer_norm(b.norm, x)
            y, cache = _block(layer, b, h)
            caches.append((x, h, cache))
            x = x + y
        else:
            y, cache = _block(layer, b, x)
            u = x + y
            caches.append((x, u, cache))
            x = layer.layer_norm(b.norm, u)
    return x, caches


def _layer_vjp(layer: _Layer, blocks: tuple[_Block, ...], g: Array,
               caches: list[tuple[Array, Array, _FeedForward | _Attention]]) -> tuple[Array, Grads]:
    """The chain rule back through :func:`_layer_forward`, block by block:

        post-norm: du = LN's VJP of g at u = x + f(x);   dx = du + f's VJP of du
        pre-norm:  dh = f's VJP of g;                     dx = g + LN's VJP of dh at x

    Gradients of arrays used by several blocks (the memory) are summed.
    """
    grads: Grads = {}

    def add(more: Grads) -> None:
        for k, v in more.items():
            grads[k] = grads[k] + v if k in grads else v

    for b, (x, inner, cache) in zip(reversed(blocks), reversed(caches), strict=True):
        if layer.norm_first:
            dh, block_grads = _block_vjp(layer, b, g, cache)
            dx, norm_grads = layer.layer_norm_vjp(b.norm, dh, x)
            g = g + dx
        else:
            du, norm_grads = layer.layer_norm_vjp(b.norm, g, inner)
            dx, block_grads = _block_vjp(layer, b, du, cache)
            g = du + dx
        add(block_grads)
        add(norm_grads)
    return g, grads


def _prepare(x: Array, memory: Array | None, arrays: Mapping[str, Array | None], nhead: int,
             activation: str, layer_norm_eps: float, batch_first: bool, norm_first: bool,
             dropout: float = 0.0, dropout_masks: Mapping[str, Array] | None = None
             ) -> tuple[_Layer, Array, bool]:
    """torch's layouts to one batch-first layer call: (the layer, x batch-first, batched).
    Unbatched inputs are a batch of one, their key padding masks one row; dropout masks
    (in their inputs' layouts) become the factors m / (1 - p)."""
    batched = np.ndim(x) == 3
    arrays = {k: (v[None] if v is not None and k.endswith("key_padding_mask") and not batched
                  else v) for k, v in arrays.items()}
    mem = None if memory is None else _batch_first(np.asarray(memory, dtype=np.float64),
                                                   batched, batch_first)
    dropped = {} if not dropout else {
        name: _batch_first(np.asarray(m, dtype=np.float64), batched, batch_first) / (1 - dropout)
        for name, m in (dropout_masks or {}).items()}
    layer = _Layer(arrays, mem, nhead, activation, layer_norm_eps, norm_first, dropped)
    return layer, _batch_first(np.asarray(x, dtype=np.float64), batched, batch_first), batched


def _finish_grads(grads: Grads, first: str, dx: Array, layer: _Layer, batched: bool,
                  batch_first: bool) -> Grads:
    """Gradients back to torch's layouts: the input ``first`` and the memory to their
    sequence layout, an unbatched key padding mask's gradient to one row."""
    grads[first] = _from_batch_first(dx, batched, batch_first)
    if "memory" in grads:
        grads["memory"] = _from_batch_first(grads["memory"], batched, batch_first)
    for k in grads:
        if k.endswith("key_padding_mask") and not batched:
            grads[k] = grads[k][0]
    return grads


def _layer_arrays(values: Mapping[str, object]) -> dict[str, Array | None]:
    """The array arguments among a public function's ``locals()``."""
    return {k: v for k, v in values.items()
            if k != "dropout_masks" and (isinstance(v, np.ndarray) or v is None)}


def transformer_encoder_layer(
    src: Array, src_mask: Array | None = None, src_key_padding_mask: Array | None = None,
    self_attn_in_proj_weight: Array | None = None, self_attn_in_proj_bias: Array | None = None,
    self_attn_out_proj_weight: Array | None = None,
    self_attn_out_proj_bias: Array | None = None, linear1_weight: Array | None = None,
    linear1_bias: Array | None = None, linear2_weight: Array | None = None,
    linear2_bias: Array | None = None, norm1_weight: Array | None = None,
    norm1_bias: Array | None = None, norm2_weight: Array | None = None,
    norm2_bias: Array | None = None, *, nhead: int, activation: str = "relu",
    layer_norm_eps: float = 1e-5, batch_first: bool = False, norm_first: bool = False,
    is_causal: bool = False, dropout: float = 0.0,
    dropout_masks: Mapping[str, Array] | None = None,
) -> Array:
    r"""nn.TransformerEncoderLayer in evaluation mode (dropout the identity):

        post-norm:  x = LN_1(src + SA(src));   out = LN_2(x + FF(x))
        pre-norm:   x = src + SA(LN_1(src));   out = x + FF(LN_2(x))

    SA is multi-head self-attention (:func:`multi_head_attention`, ``nhead`` heads, packed
    projections ``self_attn_*``, masks ``src_mask`` (L, L) or (N nhead, L, L) and
    ``src_key_padding_mask`` (N, L), torch's convention: boolean True is not allowed, float is
    added); FF(x) = linear2(activation(linear1(x))) with ``activation`` "relu" or "gelu" (exact
    erf form, F.gelu's default); LN_i = layer_norm over the last dimension with weight, bias
    (absent with ``bias=False``) and ``layer_norm_eps``. ``src`` is (L, N, E), (N, L, E) with
    ``batch_first``, or (L, E). ``is_causal``: a hint that ``src_mask`` is the causal mask (the
    reference uses the mask). Derivatives: :func:`transformer_encoder_layer_vjp`.

    Training-mode dropout (``dropout`` = p > 0) needs torch's 0/1 masks, ``dropout_masks``
    by module name: "dropout1" (after self-attention) and "dropout2" (after FF), of x's shape,
    and "dropout" (inside FF, after the activation), of linear1's output's shape; each scales
    by m / (1 - p). (Self-attention's own attention dropout is not observable from outside the
    module; tests/test_layers.py sets it to 0 and checks it in multi_head_attention's test.)
    """
    layer, x, batched = _prepare(src, None, _layer_arrays(locals()), nhead, activation,
                                 layer_norm_eps, batch_first, norm_first, dropout,
                                 dropout_masks)
    return _from_batch_first(_layer_forward(layer, _ENCODER, x)[0], batched, batch_first)


def transformer_encoder_layer_vjp(
    g: Array, src: Array, src_mask: Array | None = None,
    src_key_padding_mask: Array | None = None, self_attn_in_proj_weight: Array | None = None,
    self_attn_in_proj_bias: Array | None = None, self_attn_out_proj_weight: Array | None = None,
    self_attn_out_proj_bias: Array | None = None, linear1_weight: Array | None = None,
    linear1_bias: Array | None = None, linear2_weight: Array | None = None,
    linear2_bias: Array | None = None, norm1_weight: Array | None = None,
    norm1_bias: Array | None = None, norm2_weight: Array | None = None,
    norm2_bias: Array | None = None, *, nhead: int, activation: str = "relu",
    layer_norm_eps: float = 1e-5, batch_first: bool = False, norm_first: bool = False,
    is_causal: bool = False, dropout: float = 0.0,
    dropout_masks: Mapping[str, Array] | None = None,
) -> Grads:
    r"""VJP of :func:`transformer_encoder_layer`: the chain rule back through the residual
    sublayers (post-norm: du = LN's VJP of g, dx = du + block's VJP of du; pre-norm:
    dx = g + LN's VJP of the block's VJP of g), each block by its own pieces' VJPs
    (multi-head attention's :func:`_attend_vjp`, linear's, relu's or gelu's, layer_norm's);
    self-attention sums the query's, key's and value's gradients onto x."""
    arrays = _layer_arrays(locals())
    arrays.pop("g")
    layer, x, batched = _prepare(src, None, arrays, nhead, activation, layer_norm_eps,
                                 batch_first, norm_first, dropout, dropout_masks)
    _, caches = _layer_forward(layer, _ENCODER, x)
    dx, grads = _layer_vjp(layer, _ENCODER, _batch_first(np.asarray(g), batched, batch_first),
                           caches)
    return _finish_grads(grads, "src", dx, layer, batched, batch_first)


def transformer_decoder_layer(
    tgt: Array, memory: Array, tgt_mask: Array | None = None,
    memory_mask: Array | None = None, tgt_key_padding_mask: Array | None = None,
    memory_key_padding_mask: Array | None = None,
    self_attn_in_proj_weight: Array | None = None, self_attn_in_proj_bias: Array | None = None,
    self_attn_out_proj_weight: Array | None = None,
    self_attn_out_proj_bias: Array | None = None,
    multihead_attn_in_proj_weight: Array | None = None,
    multihead_attn_in_proj_bias: Array | None = None,
    multihead_attn_out_proj_weight: Array | None = None,
    multihead_attn_out_proj_bias: Array | None = None, linear1_weight: Array | None = None,
    linear1_bias: Array | None = None, linear2_weight: Array | None = None,
    linear2_bias: Array | None = None, norm1_weight: Array | None = None,
    norm1_bias: Array | None = None, norm2_weight: Array | None = None,
    norm2_bias: Array | None = None, norm3_weight: Array | None = None,
    norm3_bias: Array | None = None, *, nhead: int, activation: str = "relu",
    layer_norm_eps: float = 1e-5, batch_first: bool = False, norm_first: bool = False,
    tgt_is_causal: bool = False, memory_is_causal: bool = False, dropout: float = 0.0,
    dropout_masks: Mapping[str, Array] | None = None,
) -> Array:
    r"""nn.TransformerDecoderLayer in evaluation mode (dropout the identity):

        post-norm:  x = LN_1(tgt + SA(tgt));  x = LN_2(x + MHA(x, memory));  out = LN_3(x + FF(x))
        pre-norm:   x = tgt + SA(LN_1(tgt));  x = x + MHA(LN_2(x), memory);  out = x + FF(LN_3(x))

    SA as in :func:`transformer_encoder_layer` with ``tgt_mask``, ``tgt_key_padding_mask``;
    MHA attends from x to ``memory`` (S, N, E) (keys and values; ``multihead_attn_*``
    projections, ``memory_mask`` (L, S) or (N nhead, L, S), ``memory_key_padding_mask``
    (N, S)). The causal hints are hints (the reference uses the masks). Derivatives:
    :func:`transformer_decoder_layer_vjp`. Dropout as the encoder layer's, with "dropout1",
    "dropout2" and "dropout3" after the three blocks.
    """
    arrays = _layer_arrays(locals())
    layer, x, batched = _prepare(tgt, memory, arrays, nhead, activation, layer_norm_eps,
                                 batch_first, norm_first, dropout, dropout_masks)
    return _from_batch_first(_layer_forward(layer, _DECODER, x)[0], batched, batch_first)


def transformer_decoder_layer_vjp(
    g: Array, tgt: Array, memory: Array, tgt_mask: Array | None = None,
    memory_mask: Array | None = None, tgt_key_padding_mask: Array | None = None,
    memory_key_padding_mask: Array | None = None,
    self_attn_in_proj_weight: Array | None = None, self_attn_in_proj_bias: Array | None = None,
    self_attn_out_proj_weight: Array | None = None,
    self_attn_out_proj_bias: Array | None = None,
    multihead_attn_in_proj_weight: Array | None = None,
    multihead_attn_in_proj_bias: Array | None = None,
    multihead_attn_out_proj_weight: Array | None = None,
    multihead_attn_out_proj_bias: Array | None = None, linear1_weight: Array | None = None,
    linear1_bias: Array | None = None, linear2_weight: Array | None = None,
    linear2_bias: Array | None = None, norm1_weight: Array | None = None,
    norm1_bias: Array | None = None, norm2_weight: Array | None = None,
    norm2_bias: Array | None = None, norm3_weight: Array | None = None,
    norm3_bias: Array | None = None, *, nhead: int, activation: str = "relu",
    layer_norm_eps: float = 1e-5, batch_first: bool = False, norm_first: bool = False,
    tgt_is_causal: bool = False, memory_is_causal: bool = False, dropout: float = 0.0,
    dropout_masks: Mapping[str, Array] | None = None,
) -> Grads:
    r"""VJP of :func:`transformer_decoder_layer`, as the encoder layer's; the memory's gradient
    is the attention block's key and value gradients summed."""
    arrays = _layer_arrays(locals())
    arrays.pop("g")
    layer, x, batched = _prepare(tgt, memory, arrays, nhead, activation, layer_norm_eps,
                                 batch_first, norm_first, dropout, dropout_masks)
    _, caches = _layer_forward(layer, _DECODER, x)
    dx, grads = _layer_vjp(layer, _DECODER, _batch_first(np.asarray(g), batched, batch_first),
                           caches)
    return _finish_grads(grads, "tgt", dx, layer, batched, batch_first)


def _feedforward_inputs(name: str, **arguments: object) -> Array:
    """The feed-forward network's pre-activations linear1(h) of a layer call (``name``:
    "transformer_encoder_layer" or "transformer_decoder_layer", with that function's
    arguments): input makers keep relu's kink at 0 away from them."""
    first, blocks = ("src", _ENCODER) if name == "transformer_encoder_layer" else ("tgt", _DECODER)
    arrays = {k: v for k, v in arguments.items() if isinstance(v, np.ndarray)}
    options = {k: v for k, v in arguments.items() if not isinstance(v, np.ndarray)}
    nhead = options["nhead"]
    eps = options.get("layer_norm_eps", 1e-5)
    assert isinstance(nhead, int) and isinstance(eps, float)
    layer, x, _ = _prepare(arrays[first], arrays.get("memory"), arrays, nhead,
                           str(options.get("activation", "relu")), eps,
                           bool(options.get("batch_first")), bool(options.get("norm_first")))
    cache = _layer_forward(layer, blocks, x)[1][-1][2]
    assert isinstance(cache, _FeedForward)
    return cache.z


# --- stacks: nn.TransformerEncoder, nn.TransformerDecoder, nn.Transformer ------------------


@dataclass(frozen=True)
class _Stack:
    """num_layers layers of one kind, each with its own parameters (slices of the stacked
    arrays), sharing the masks and the memory; then an optional final layer norm."""

    blocks: tuple[_Block, ...]
    masks: Mapping[str, Array | None]  # by the layer function's names, batched
    params: Mapping[str, Array]  # (num_layers, ...) by the layer function's names
    memory: Array | None  # batch-first
    nhead: int
    activation: str
    eps: float
    norm_first: bool
    norm_weight: Array | None = None
    norm_bias: Array | None = None
    final_norm: bool = False

    @property
    def num_layers(self) -> int:
        return len(next(iter(self.params.values())))

    def layer(self, i: int) -> _Layer:
        arrays = {**self.masks, **{k: v[i] for k, v in self.params.items()}}
        return _Layer(arrays, self.memory, self.nhead, self.activation, self.eps,
                      self.norm_first)


_StackCaches = tuple[list[list[tuple[Array, Array, _FeedForward | _Attention]]], Array]


def _stack_forward(s: _Stack, x: Array) -> tuple[Array, _StackCaches]:
    """x through every layer in turn, then the final layer norm if there is one."""
    caches = []
    for i in range(s.num_layers):
        x, cache = _layer_forward(s.layer(i), s.blocks, x)
        caches.append(cache)
    before_norm = x
    if s.final_norm:
        x = norms.layer_norm(x, (x.shape[-1],), s.norm_weight, s.norm_bias, s.eps)
    return x, (caches, before_norm)


def _stack_vjp(s: _Stack, g: Array, caches: _StackCaches) -> tuple[Array, Grads]:
    """The chain rule back through :func:`_stack_forward`: the final norm's VJP, then each
    layer's (:func:`_layer_vjp`) from the last to the first. Each parameter's gradient is
    stacked like the parameter; the memory's and the float masks' are summed over layers."""
    layer_caches, before_norm = caches
    grads: Grads = {}
    if s.final_norm:
        d = norms.layer_norm_vjp(g, before_norm, (g.shape[-1],), s.norm_weight, s.norm_bias,
                                 s.eps)
        g = d.pop("input")
        grads |= {f"norm_{k}": v for k, v in d.items()}
    per_layer: list[Grads] = []
    for i in reversed(range(s.num_layers)):
        g, layer_grads = _layer_vjp(s.layer(i), s.blocks, g, layer_caches[i])
        per_layer.insert(0, layer_grads)
    for k in per_layer[0]:
        parts = [lg[k] for lg in per_layer]
        grads[k] = np.stack(parts) if k in s.params else np.sum(parts, axis=0)
    return g, grads


def _stack_layout(x: Array, memory: Array | None, masks: Mapping[str, Array | None],
                  batch_first: bool) -> tuple[Array, Array | None, dict[str, Array | None],
                                              bool]:
    """torch's layouts to batch-first (unbatched: a batch of one, key padding masks one row)."""
    batched = np.ndim(x) == 3
    masks = {k: (v[None] if v is not None and k.endswith("key_padding_mask") and not batched
                 else v) for k, v in masks.items()}
    mem = None if memory is None else _batch_first(np.asarray(memory, dtype=np.float64),
                                                   batched, batch_first)
    return _batch_first(np.asarray(x, dtype=np.float64), batched, batch_first), mem, masks, \
        batched


def _unbatch_masks(grads: Grads, batched: bool) -> Grads:
    return {k: (v[0] if k.endswith("key_padding_mask") and not batched else v)
            for k, v in grads.items()}


def transformer_encoder(src: Array, mask: Array | None = None,
                        src_key_padding_mask: Array | None = None,
                        norm_weight: Array | None = None, norm_bias: Array | None = None, *,
                        nhead: int, activation: str = "relu", layer_norm_eps: float = 1e-5,
                        batch_first: bool = False, norm_first: bool = False,
                        **layers: Array) -> Array:
    r"""nn.TransformerEncoder (evaluation mode): x_0 = src, x_i = layer_i(x_{i-1}) for
    i = 1 .. num_layers (:func:`transformer_encoder_layer`, every layer with ``mask`` as its
    src_mask and the same ``src_key_padding_mask``), then out = LN(x_num_layers) when
    the module has a ``norm`` (a LayerNorm: weight ``norm_weight``, bias ``norm_bias``, eps
    ``layer_norm_eps``; given the weight) or x_num_layers. ``layers``: each layer parameter of
    :func:`transformer_encoder_layer` by its name, stacked along a leading axis of
    num_layers. torch's causal-mask detection is a hint the reference does not need.
    Derivatives: :func:`transformer_encoder_vjp`.
    """
    x, _, masks, batched = _stack_layout(src, None, {"src_mask": mask, "src_key_padding_mask":
                                                     src_key_padding_mask}, batch_first)
    s = _Stack(_ENCODER, masks, layers, None, nhead, activation, layer_norm_eps, norm_first,
               norm_weight, norm_bias, norm_weight is not None)
    return _from_batch_first(_stack_forward(s, x)[0], batched, batch_first)


def transformer_encoder_vjp(g: Array, src: Array, mask: Array | None = None,
                            src_key_padding_mask: Array | None = None,
                            norm_weight: Array | None = None, norm_bias: Array | None = None,
                            *, nhead: int, activation: str = "relu",
                            layer_norm_eps: float = 1e-5, batch_first: bool = False,
                            norm_first: bool = False, **layers: Array) -> Grads:
    r"""VJP of :func:`transformer_encoder` (:func:`_stack_vjp`): the final norm's, then each
    layer's from the last to the first; stacked parameters get stacked gradients, the float
    masks the sum over layers."""
    x, _, masks, batched = _stack_layout(src, None, {"src_mask": mask, "src_key_padding_mask":
                                                     src_key_padding_mask}, batch_first)
    s = _Stack(_ENCODER, masks, layers, None, nhead, activation, layer_norm_eps, norm_first,
               norm_weight, norm_bias, norm_weight is not None)
    _, caches = _stack_forward(s, x)
    dx, grads = _stack_vjp(s, _batch_first(np.asarray(g), batched, batch_first), caches)
    if "src_mask" in grads:
        grads["mask"] = grads.pop("src_mask")
    grads["src"] = _from_batch_first(dx, batched, batch_first)
    return _unbatch_masks(grads, batched)


def transformer_decoder(tgt: Array, memory: Array, tgt_mask: Array | None = None,
                        memory_mask: Array | None = None,
                        tgt_key_padding_mask: Array | None = None,
                        memory_key_padding_mask: Array | None = None,
                        norm_weight: Array | None = None, norm_bias: Array | None = None, *,
                        nhead: int, activation: str = "relu", layer_norm_eps: float = 1e-5,
                        batch_first: bool = False, norm_first: bool = False,
                        memory_is_causal: bool = False, **layers: Array) -> Array:
    r"""nn.TransformerDecoder (evaluation mode): num_layers :func:`transformer_decoder_layer`
    in turn, all attending to the same ``memory`` with the same masks, then the optional final
    layer norm; ``layers`` stacked as in :func:`transformer_encoder`. Derivatives:
    :func:`transformer_decoder_vjp` (the memory's gradient sums every layer's)."""
    x, mem, masks, batched = _stack_layout(
        tgt, memory, {"tgt_mask": tgt_mask, "memory_mask": memory_mask,
                      "tgt_key_padding_mask": tgt_key_padding_mask,
                      "memory_key_padding_mask": memory_key_padding_mask}, batch_first)
    s = _Stack(_DECODER, masks, layers, mem, nhead, activation, layer_norm_eps, norm_first,
               norm_weight, norm_bias, norm_weight is not None)
    return _from_batch_first(_stack_forward(s, x)[0], batched, batch_first)


def transformer_decoder_vjp(g: Array, tgt: Array, memory: Array, tgt_mask: Array | None = None,
                            memory_mask: Array | None = None,
                            tgt_key_padding_mask: Array | None = None,
                            memory_key_padding_mask: Array | None = None,
                            norm_weight: Array | None = None, norm_bias: Array | None = None,
                            *, nhead: int, activation: str = "relu",
                            layer_norm_eps: float = 1e-5, batch_first: bool = False,
                            norm_first: bool = False, memory_is_causal: bool = False,
                            **layers: Array) -> Grads:
    r"""VJP of :func:`transformer_decoder`, as :func:`transformer_encoder_vjp`'s."""
    x, mem, masks, batched = _stack_layout(
        tgt, memory, {"tgt_mask": tgt_mask, "memory_mask": memory_mask,
                      "tgt_key_padding_mask": tgt_key_padding_mask,
                      "memory_key_padding_mask": memory_key_padding_mask}, batch_first)
    s = _Stack(_DECODER, masks, layers, mem, nhead, activation, layer_norm_eps, norm_first,
               norm_weight, norm_bias, norm_weight is not None)
    _, caches = _stack_forward(s, x)
    dx, grads = _stack_vjp(s, _batch_first(np.asarray(g), batched, batch_first), caches)
    grads["tgt"] = _from_batch_first(dx, batched, batch_first)
    grads["memory"] = _from_batch_first(grads["memory"], batched, batch_first)
    return _unbatch_masks(grads, batched)


def _transformer_stacks(src: Array, tgt: Array, masks: Mapping[str, Array | None],
                        norm: Mapping[str, Array | None], layers: Mapping[str, Array],
                        nhead: int, activation: str, layer_norm_eps: float, batch_first: bool,
                        norm_first: bool) -> tuple[_Stack, _Stack, Array, Array, bool]:
    """nn.Transformer's two stacks (the decoder's memory filled in by the caller), with the
    inputs batch-first."""
    x, _, enc_masks, batched = _stack_layout(
        src, None, {k: masks[k] for k in ("src_mask", "src_key_padding_mask")}, batch_first)
    y, _, dec_masks, _ = _stack_layout(
        tgt, None, {k: masks[k] for k in ("tgt_mask", "memory_mask", "tgt_key_padding_mask",
                                          "memory_key_padding_mask")}, batch_first)

    def stack(prefix: str, blocks: tuple[_Block, ...], m: dict[str, Array | None]) -> _Stack:
        params = {k[len(prefix):]: v for k, v in layers.items() if k.startswith(prefix)}
        return _Stack(blocks, m, params, None, nhead, activation, layer_norm_eps, norm_first,
                      norm[f"{prefix}norm_weight"], norm[f"{prefix}norm_bias"], True)

    return stack("encoder_", _ENCODER, enc_masks), stack("decoder_", _DECODER, dec_masks), x, \
        y, batched


def transformer(src: Array, tgt: Array, src_mask: Array | None = None,
                tgt_mask: Array | None = None, memory_mask: Array | None = None,
                src_key_padding_mask: Array | None = None,
                tgt_key_padding_mask: Array | None = None,
                memory_key_padding_mask: Array | None = None,
                encoder_norm_weight: Array | None = None, encoder_norm_bias: Array | None = None,
                decoder_norm_weight: Array | None = None, decoder_norm_bias: Array | None = None,
                *, nhead: int, activation: str = "relu", layer_norm_eps: float = 1e-5,
                batch_first: bool = False, norm_first: bool = False,
                memory_is_causal: bool = False, **layers: Array) -> Array:
    r"""nn.Transformer (evaluation mode; Vaswani et al. 2017, fig. 1):

        memory = LN_enc(encoder stack(src));   out = LN_dec(decoder stack(tgt, memory))

    (:func:`transformer_encoder` and :func:`transformer_decoder`, both with their final layer
    norm, which nn.Transformer always has). ``layers``: the encoder layers' stacked parameters
    prefixed ``encoder_`` and the decoder layers' prefixed ``decoder_``. Derivatives:
    :func:`transformer_vjp`."""
    norm = {"encoder_norm_weight": encoder_norm_weight, "encoder_norm_bias": encoder_norm_bias,
            "decoder_norm_weight": decoder_norm_weight, "decoder_norm_bias": decoder_norm_bias}
    masks = {"src_mask": src_mask, "tgt_mask": tgt_mask, "memory_mask": memory_mask,
             "src_key_padding_mask": src_key_padding_mask,
             "tgt_key_padding_mask": tgt_key_padding_mask,
             "memory_key_padding_mask": memory_key_padding_mask}
    enc, dec, x, y, batched = _transformer_stacks(src, tgt, masks, norm, layers, nhead,
                                                  activation, layer_norm_eps, batch_first,
                                                  norm_first)
    memory = _stack_forward(enc, x)[0]
    dec = _replace_memory(dec, memory)
    return _from_batch_first(_stack_forward(dec, y)[0], batched, batch_first)


def _replace_memory(s: _Stack, memory: Array) -> _Stack:
    return _Stack(s.blocks, s.masks, s.params, memory, s.nhead, s.activation, s.eps,
                  s.norm_first, s.norm_weight, s.norm_bias, s.final_norm)


def transformer_vjp(g: Array, src: Array, tgt: Array, src_mask: Array | None = None,
                    tgt_mask: Array | None = None, memory_mask: Array | None = None,
                    src_key_padding_mask: Array | None = None,
                    tgt_key_padding_mask: Array | None = None,
                    memory_key_padding_mask: Array | None = None,
                    encoder_norm_weight: Array | None = None,
                    encoder_norm_bias: Array | None = None,
                    decoder_norm_weight: Array | None = None,
                    decoder_norm_bias: Array | None = None, *, nhead: int,
                    activation: str = "relu", layer_norm_eps: float = 1e-5,
                    batch_first: bool = False, norm_first: bool = False,
                    memory_is_causal: bool = False, **layers: Array) -> Grads:
    r"""VJP of :func:`transformer`: the decoder stack's VJP (which gives the memory's
    gradient), then the encoder stack's with it; names prefixed back."""
    norm = {"encoder_norm_weight": encoder_norm_weight, "encoder_norm_bias": encoder_norm_bias,
            "decoder_norm_weight": decoder_norm_weight, "decoder_norm_bias": decoder_norm_bias}
    masks = {"src_mask": src_mask, "tgt_mask": tgt_mask, "memory_mask": memory_mask,
             "src_key_padding_mask": src_key_padding_mask,
             "tgt_key_padding_mask": tgt_key_padding_mask,
             "memory_key_padding_mask": memory_key_padding_mask}
    enc, dec, x, y, batched = _transformer_stacks(src, tgt, masks, norm, layers, nhead,
                                                  activation, layer_norm_eps, batch_first,
                                                  norm_first)
    memory, enc_caches = _stack_forward(enc, x)
    dec = _replace_memory(dec, memory)
    _, dec_caches = _stack_forward(dec, y)
    dy, dec_grads = _stack_vjp(dec, _batch_first(np.asarray(g), batched, batch_first),
                               dec_caches)
    dx, enc_grads = _stack_vjp(enc, dec_grads.pop("memory"), enc_caches)
    grads = {("decoder_" + k if k in dec.params or k.startswith("norm_") else k): v
             for k, v in dec_grads.items()}
    grads |= {("encoder_" + k if k in enc.params or k.startswith("norm_") else k): v
              for k, v in enc_grads.items()}
    grads["src"] = _from_batch_first(dx, batched, batch_first)
    grads["tgt"] = _from_batch_first(dy, batched, batch_first)
    return _unbatch_masks(grads, batched)
