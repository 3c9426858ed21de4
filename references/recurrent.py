r"""Recurrent layers and cells, NumPy float64: the recurrence unrolled, and backpropagation
through time (BPTT) written from the chain rule.

Follows https://pytorch.org/docs/stable/generated/torch.nn.RNN.html,
https://pytorch.org/docs/stable/generated/torch.nn.LSTM.html,
https://pytorch.org/docs/stable/generated/torch.nn.GRU.html and the cells
(https://pytorch.org/docs/stable/generated/torch.nn.RNNCell.html, ``LSTMCell``, ``GRUCell``).

**The cells** (one step; x the input, h the previous hidden state, rows of a batch;
W x means x W^T for a batch of rows; sigma the logistic function):

    RNN:   h' = phi(W_ih x + b_ih + W_hh h + b_hh),       phi = tanh or relu
    LSTM:  i = sigma(W_ii x + b_ii + W_hi h + b_hi)        (input gate)
           f = sigma(W_if x + b_if + W_hf h + b_hf)        (forget gate)
           g = tanh(W_ig x + b_ig + W_hg h + b_hg)         (cell candidate)
           o = sigma(W_io x + b_io + W_ho h + b_ho)        (output gate)
           c' = f * c + i * g,   m = o * tanh(c'),   h' = m, or h' = W_hr m with ``proj_size``
    GRU:   r = sigma(W_ir x + b_ir + W_hr h + b_hr)
           z = sigma(W_iz x + b_iz + W_hz h + b_hz)
           n = tanh(W_in x + b_in + r * (W_hn h + b_hn))   (r multiplies W_hn h + b_hn, as
                                                           torch documents, not h alone)
           h' = (1 - z) * n + z * h

torch stacks the gate blocks row-wise: ``weight_ih`` is [W_ii; W_if; W_ig; W_io] (4H, in) for
the LSTM, [W_ir; W_iz; W_in] (3H, in) for the GRU; ``weight_hh`` and the biases likewise.

**The layers** stack ``num_layers`` of these recurrences: layer l reads the output of layer
l - 1 (for l >= 1 multiplied by a dropout mask / (1 - p) in training), each direction of a
bidirectional layer reads the whole layer input, the forward one from t = 0 up, the reverse one
from each sequence's last step down, and the layer output is the two directions' hidden states
side by side. For sequences of unequal ``lengths`` (what ``pack_padded_sequence`` carries),
step t of sequence b exists only for t < lengths[b]: the state is carried unchanged past the
end, the output there is 0 (``pad_packed_sequence``'s padding), h_n holds each sequence's
state at its last valid step (the forward direction's at t = lengths[b] - 1, the reverse
direction's at t = 0), and the reverse direction starts from h_0 at t = lengths[b] - 1. A
recurrence of masked steps says all of this at once:

    s_t = valid_t ? cell(x_t, s_{t-1}) : s_{t-1},     out_t = valid_t ? h(s_t) : 0.

**Backpropagation through time** is the chain rule applied to that unrolled graph, from the
last step back to the first: with ds_t the cotangent of state s_t (from out_t, from step
t + 1's use of it, and for the last step from h_n / c_n),

    dcell_t = valid_t ? ds_t + (d out_t into h) : 0
    (dx_t, ds_{t-1}^cell, dW_t) = VJP of the cell at step t applied to dcell_t
    ds_{t-1} = valid_t ? ds_{t-1}^cell : ds_t,     dW = sum_t dW_t

and for each cell, writing a for the pre-activations (A = W_ih x + b_ih + W_hh h + b_hh):

    RNN:   da = dh' * phi'(a)      (tanh' = 1 - h'^2; relu' = [a > 0], 0 at the kink as torch)
    LSTM:  dm = dh' (times W_hr with proj_size; dW_hr = sum dh'^T m),
           do = dm * tanh(c'),  dc' += dm * o * (1 - tanh(c')^2),
           di = dc' * g,  df = dc' * c,  dg = dc' * i,  dc = dc' * f,
           da_{i,f,o} = d{i,f,o} * s (1 - s) for each gate s,  da_g = dg * (1 - g^2)
    GRU:   dn = dh' (1 - z),  dz = dh' (h - n),  dh = dh' z + ...,
           da_n = dn (1 - n^2),  dr = da_n * (W_hn h + b_hn),
           da_r = dr r (1 - r),  da_z = dz z (1 - z);
           the input side gets [da_r, da_z, da_n], the hidden side [da_r, da_z, da_n * r]

then, for every cell, dx = da W_ih, dh += da_hidden W_hh, dW_ih = sum da^T x, dW_hh =
sum da_hidden^T h, db_ih = sum da, db_hh = sum da_hidden (sums over the batch and, for the
layers, over time). Between layers, the gradient of layer l's output is the gradient of layer
l + 1's input times the same dropout mask / (1 - p).

**Stable forms.** sigma is the stable logistic of ``references.activations.sigmoid`` (the
argument of exp is never positive); tanh is ``np.tanh``; nothing overflows at |x| ~ 1e4
(the relu RNN grows geometrically there, ~1e45 after 8 steps, far inside float64).
Derivatives are formed from the saved activations (1 - g^2, s (1 - s)), as torch's kernels do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from references.activations import sigmoid

Array = NDArray[np.float64]
State = tuple[Array, ...]  # (h,) for RNN and GRU, (h, c) for LSTM
Mask = NDArray[np.bool_]

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
"""Gate blocks stacked in ``weight_ih`` / ``weight_hh``: 1 (RNN), 4 (LSTM: i, f, g, o),
3 (GRU: r, z, n)."""


# --- one step of each cell, and its VJP -----------------------------------------------------


@dataclass(frozen=True)
class _Params:
    """One cell's parameters (one layer and direction): weight_ih (G H, in), weight_hh
    (G H, H_out), optional biases (G H,), and the LSTM's projection weight_hr (P, H)."""

    weight_ih: Array
    weight_hh: Array
    bias_ih: Array | None = None
    bias_hh: Array | None = None
    weight_hr: Array | None = None


def _affine(x: Array, weight: Array, bias: Array | None) -> Array:
    """x W^T + b for a batch of rows x."""
    y = x @ weight.T
    return y if bias is None else y + bias


def _step(kind: str, x: Array, state: State, p: _Params, nonlinearity: str
          ) -> tuple[State, dict[str, Array]]:
    """One step of the cell: the new state and what its VJP needs (the module docstring's
    equations, read top to bottom)."""
    h = state[0]
    gi = _affine(x, p.weight_ih, p.bias_ih)
    gh = _affine(h, p.weight_hh, p.bias_hh)
    if kind == "rnn":
        a = gi + gh
        h_new = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)
        return (h_new,), {"x": x, "h": h, "a": a, "h_new": h_new}
    if kind == "lstm":
        c = state[1]
        ai, af, ag, ao = np.split(gi + gh, 4, axis=-1)
        i, f, g, o = sigmoid(ai), sigmoid(af), np.tanh(ag), sigmoid(ao)
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        m = o * tc
        h_new = m if p.weight_hr is None else m @ p.weight_hr.T
        return (h_new, c_new), {"x": x, "h": h, "c": c, "i": i, "f": f, "g": g, "o": o,
                                "tc": tc, "m": m}
    # gru
    gir, giz, gin = np.split(gi, 3, axis=-1)
    ghr, ghz, ghn = np.split(gh, 3, axis=-1)
    r, z = sigmoid(gir + ghr), sigmoid(giz + ghz)
    n = np.tanh(gin + r * ghn)
    h_new = (1.0 - z) * n + z * h
    return (h_new,), {"x": x, "h": h, "r": r, "z": z, "n": n, "ghn": ghn}


def _step_vjp(kind: str, d_new: State, cache: Mapping[str, Array], p: _Params,
              nonlinearity: str) -> tuple[Array, State, dict[str, Array]]:
    """The VJP of :func:`_step`: (dx, d state, d parameters) for the cotangent ``d_new`` of the
    new state (the module docstring's BPTT equations for one step)."""
    x, h = cache["x"], cache["h"]
    grads: dict[str, Array] = {}
    if kind == "rnn":
        dh_new = d_new[0]
        slope = 1.0 - cache["h_new"] ** 2 if nonlinearity == "tanh" else \
            (cache["a"] > 0).astype(np.float64)
        da_in = da_hid = dh_new * slope
        dh_direct = np.zeros_like(h)
        d_rest: State = ()
    elif kind == "lstm":
        dh_new, dc_new = d_new
        i, f, g, o, tc = (cache[k] for k in ("i", "f", "g", "o", "tc"))
        if p.weight_hr is not None:
            grads["weight_hr"] = dh_new.T @ cache["m"]
            dm = dh_new @ p.weight_hr
        else:
            dm = dh_new
        do = dm * tc
        dc = dc_new + dm * o * (1.0 - tc**2)
        di, df, dg = dc * g, dc * cache["c"], dc * i
        da_in = da_hid = np.concatenate(
            [di * i * (1.0 - i), df * f * (1.0 - f), dg * (1.0 - g**2), do * o * (1.0 - o)],
            axis=-1)
        dh_direct = np.zeros_like(h)
        d_rest = (dc * f,)
    else:  # gru
        dh_new = d_new[0]
        r, z, n, ghn = (cache[k] for k in ("r", "z", "n", "ghn"))
        dn = dh_new * (1.0 - z)
        dz = dh_new * (h - n)
        dan = dn * (1.0 - n**2)
        dar = dan * ghn * r * (1.0 - r)
        daz = dz * z * (1.0 - z)
        da_in = np.concatenate([dar, daz, dan], axis=-1)
        da_hid = np.concatenate([dar, daz, dan * r], axis=-1)
        dh_direct = dh_new * z
        d_rest = ()
    grads["weight_ih"] = da_in.T @ x
    grads["weight_hh"] = da_hid.T @ h
    if p.bias_ih is not None:
        grads["bias_ih"] = da_in.sum(axis=0)
    if p.bias_hh is not None:
        grads["bias_hh"] = da_hid.sum(axis=0)
    dx = da_in @ p.weight_ih
    dh = da_hid @ p.weight_hh + dh_direct
    return dx, (dh, *d_rest), grads


# --- one direction of one layer over the sequence -------------------------------------------


@dataclass
class _Scan:
    """One direction of one layer: its outputs (T, B, H_out), final state, and the caches."""

    out: Array
    final: State
    caches: dict[int, dict[str, Array]] = field(default_factory=dict)


def _order(steps: int, reverse: bool) -> range:
    return range(steps - 1, -1, -1) if reverse else range(steps)


def _scan(kind: str, x: Array, state: State, p: _Params, valid: Mask, reverse: bool,
          nonlinearity: str) -> _Scan:
    """s_t = valid_t ? cell(x_t, s_{t-1}) : s_{t-1}, out_t = valid_t ? h(s_t) : 0, over
    t = 0..T-1 (or T-1..0 for the reverse direction); ``valid`` is (T, B)."""
    out = np.zeros((x.shape[0], x.shape[1], state[0].shape[-1]))
    result = _Scan(out, state)
    for t in _order(x.shape[0], reverse):
        new, cache = _step(kind, x[t], state, p, nonlinearity)
        keep = valid[t][:, None]
        state = tuple(np.where(keep, s_new, s) for s_new, s in zip(new, state, strict=True))
        out[t] = np.where(keep, new[0], 0.0)
        result.caches[t] = cache
    result.final = state
    return result


def _scan_vjp(kind: str, scan: _Scan, d_out: Array, d_final: State, p: _Params, valid: Mask,
              reverse: bool, nonlinearity: str) -> tuple[Array, State, dict[str, Array]]:
    """BPTT through :func:`_scan`: from the last step processed back to the first, each valid
    step's cell VJP applied to (d state + d output), each invalid step passing d state through
    unchanged. Returns (d input (T, B, in), d initial state, d parameters summed over time)."""
    steps, batch = d_out.shape[:2]
    d_state = d_final
    dx = np.zeros((steps, batch, p.weight_ih.shape[1]))
    grads: dict[str, Array] = {}
    for t in reversed(_order(steps, reverse)):
        keep = valid[t][:, None]
        d_new = (np.where(keep, d_state[0] + d_out[t], 0.0),
                 *(np.where(keep, d, 0.0) for d in d_state[1:]))
        dx[t], d_prev, step_grads = _step_vjp(kind, d_new, scan.caches[t], p, nonlinearity)
        d_state = tuple(np.where(keep, dp, d) for dp, d in zip(d_prev, d_state, strict=True))
        for name, gw in step_grads.items():
            grads[name] = grads[name] + gw if name in grads else gw
    return dx, d_state, grads


# --- the stacked, possibly bidirectional network ---------------------------------------------


@dataclass
class _Layout:
    """How the caller's arrays map to the time-major batched form (T, B, features)."""

    batched: bool
    batch_first: bool

    def to_time_major(self, a: Array) -> Array:
        if not self.batched:
            return a[:, None, :]
        return np.swapaxes(a, 0, 1) if self.batch_first else a

    def from_time_major(self, a: Array) -> Array:
        if not self.batched:
            return a[:, 0, :]
        return np.swapaxes(a, 0, 1) if self.batch_first else a

    def state_in(self, a: Array) -> Array:
        """h_0 / c_0: (L D, B, H), or (L D, H) unbatched; never batch-first."""
        return a if self.batched else a[:, None, :]

    def state_out(self, a: Array) -> Array:
        return a if self.batched else a[:, 0, :]


@dataclass
class _Network:
    """Everything the forward computed that the VJP reuses."""

    layout: _Layout
    valid: Mask
    inputs: list[Array]  # each layer's input, time-major (after dropout for l >= 1)
    scans: dict[tuple[int, int], _Scan]
    output: Array  # the last layer's output, in the caller's layout
    h_n: Array
    c_n: Array | None


def _suffix(direction: int) -> str:
    return "_reverse" if direction else ""


def _layer_params(weights: Mapping[str, Array], layer: int, direction: int) -> _Params:
    key = f"_l{layer}{_suffix(direction)}"
    return _Params(weights[f"weight_ih{key}"], weights[f"weight_hh{key}"],
                   weights.get(f"bias_ih{key}"), weights.get(f"bias_hh{key}"),
                   weights.get(f"weight_hr{key}"))


def _forward(kind: str, input: Array, h_0: Array | None, c_0: Array | None,
             lengths: Array | None, weights: Mapping[str, Array], num_layers: int,
             bidirectional: bool, batch_first: bool, dropout: float, dropout_mask: Array | None,
             nonlinearity: str) -> _Network:
    x = np.asarray(input, dtype=np.float64)
    layout = _Layout(x.ndim == 3, batch_first)
    layer_input = layout.to_time_major(x)
    steps, batch = layer_input.shape[:2]
    dirs = 2 if bidirectional else 1
    hidden = weights["weight_hh_l0"].shape[0] // GATES[kind]
    out_size = weights["weight_hh_l0"].shape[1]  # proj_size for a projected LSTM, else hidden
    valid: Mask = np.ones((steps, batch), dtype=np.bool_) if lengths is None else \
        np.arange(steps)[:, None] < np.asarray(lengths)[None, :]
    h0 = np.zeros((num_layers * dirs, batch, out_size)) if h_0 is None else layout.state_in(h_0)
    c0 = np.zeros((num_layers * dirs, batch, hidden)) if c_0 is None else layout.state_in(c_0)
    inputs: list[Array] = []
    scans: dict[tuple[int, int], _Scan] = {}
    finals: list[State] = []
    for layer in range(num_layers):
        if layer > 0 and dropout > 0.0:
            if dropout_mask is None:
                raise ValueError("dropout between layers needs the mask torch drew "
                                 "(dropout_mask); pass dropout=0.0 for eval mode")
            mask = layout.to_time_major(dropout_mask[layer - 1])
            layer_input = layer_input * mask / (1.0 - dropout) if dropout < 1.0 else \
                np.zeros_like(layer_input)
        inputs.append(layer_input)
        outs = []
        for d in range(dirs):
            k = layer * dirs + d
            state: State = (h0[k],) if kind != "lstm" else (h0[k], c0[k])
            scan = _scan(kind, layer_input, state, _layer_params(weights, layer, d), valid,
                         bool(d), nonlinearity)
            scans[layer, d] = scan
            outs.append(scan.out)
            finals.append(scan.final)
        layer_input = np.concatenate(outs, axis=-1)
    c_n = layout.state_out(np.stack([s[1] for s in finals])) if kind == "lstm" else None
    return _Network(layout, valid, inputs, scans, layout.from_time_major(layer_input),
                    layout.state_out(np.stack([s[0] for s in finals])), c_n)


def _flat(net: _Network) -> Array:
    parts = [net.output, net.h_n] + ([] if net.c_n is None else [net.c_n])
    return np.concatenate([np.ravel(a) for a in parts])


def _backward(kind: str, g: Array, net: _Network, h_0: Array | None, c_0: Array | None,
              weights: Mapping[str, Array], num_layers: int, bidirectional: bool,
              dropout: float, dropout_mask: Array | None, nonlinearity: str
              ) -> dict[str, Array]:
    """BPTT through every layer, top to bottom, each direction by :func:`_scan_vjp`."""
    layout = net.layout
    dirs = 2 if bidirectional else 1
    sizes = [net.output.size, net.h_n.size, 0 if net.c_n is None else net.c_n.size]
    g_out, g_h, g_c = np.split(np.asarray(g, dtype=np.float64), np.cumsum(sizes)[:2])
    d_layer_out = layout.to_time_major(g_out.reshape(net.output.shape))
    d_h = layout.state_in(g_h.reshape(net.h_n.shape))
    d_c = None if net.c_n is None else layout.state_in(g_c.reshape(net.c_n.shape))
    grads: dict[str, Array] = {}
    d_h0 = np.zeros_like(d_h)
    d_c0 = None if d_c is None else np.zeros_like(d_c)
    out_size = d_h.shape[-1]
    for layer in reversed(range(num_layers)):
        d_input = np.zeros_like(net.inputs[layer])
        for d in range(dirs):
            k = layer * dirs + d
            p = _layer_params(weights, layer, d)
            d_final: State = (d_h[k],) if d_c is None else (d_h[k], d_c[k])
            d_out = d_layer_out[..., d * out_size:(d + 1) * out_size]
            dx, d_state, step_grads = _scan_vjp(kind, net.scans[layer, d], d_out, d_final, p,
                                                net.valid, bool(d), nonlinearity)
            d_input += dx
            d_h0[k] = d_state[0]
            if d_c0 is not None:
                d_c0[k] = d_state[1]
            grads |= {f"{name}_l{layer}{_suffix(d)}": gw for name, gw in step_grads.items()}
        if layer > 0 and dropout > 0.0:
            assert dropout_mask is not None  # the forward refused to run without it
            mask = layout.to_time_major(dropout_mask[layer - 1])
            d_input = d_input * mask / (1.0 - dropout) if dropout < 1.0 else \
                np.zeros_like(d_input)
        d_layer_out = d_input
    grads["input"] = layout.from_time_major(d_layer_out)
    if h_0 is not None:
        grads["h_0"] = layout.state_out(d_h0)
    if c_0 is not None and d_c0 is not None:
        grads["c_0"] = layout.state_out(d_c0)
    return grads


_LayerOptions = dict[str, Any]


def _options(num_layers: int, bidirectional: bool, batch_first: bool, dropout: float,
             dropout_mask: Array | None, training: bool, nonlinearity: str) -> _LayerOptions:
    """The network's options; dropout acts only in ``training`` (nn.Module.train()), as in
    torch, where an eval-mode module ignores its ``dropout``."""
    return {"num_layers": num_layers, "bidirectional": bidirectional,
            "batch_first": batch_first, "dropout": dropout if training else 0.0,
            "dropout_mask": dropout_mask, "nonlinearity": nonlinearity}


def _layers_vjp(kind: str, g: Array, input: Array, h_0: Array | None, c_0: Array | None,
                lengths: Array | None, weights: Mapping[str, Array],
                options: _LayerOptions) -> dict[str, Array]:
    net = _forward(kind, input, h_0, c_0, lengths, weights, **options)
    del options["batch_first"]
    return _backward(kind, g, net, h_0, c_0, weights, **options)


# --- public: the layers --------------------------------------------------------------------
#
# Arguments shared by the three layers (torch's names and shapes; D = 2 if bidirectional else
# 1, H_out = proj_size for a projected LSTM, else hidden_size):
#   input      (T, B, in), (B, T, in) with batch_first, or unbatched (T, in)
#   h_0        (num_layers * D, B, H_out), or unbatched (num_layers * D, H_out); never
#              batch-first; zeros when absent (c_0 likewise, with H)
#   lengths    (B,) int: the valid steps of each sequence, what pack_padded_sequence is
#              given; enforce_sorted (how torch is told their order) does not change the values
#   dropout    p, with dropout_mask (num_layers - 1, *output shape): the 0/1 masks torch drew
#              between layers (kept elements scaled by 1 / (1 - p)); ignored unless training
#   weights    torch's parameter names: weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k},
#              bias_hh_l{k} (and weight_hr_l{k}), the same with _reverse; hidden and input
#              sizes, bias and projection are read from them
# Each returns ONE flat vector: the output (T, B, D * H_out) in the input's layout (0 past each
# sequence's length), then h_n (num_layers * D, B, H_out) (then the LSTM's c_n
# (num_layers * D, B, H)), each raveled in C order and concatenated; the torch side
# (suite/catalog/recurrent.py) returns the same concatenation, so one cotangent reaches every
# output at once.


def rnn_tanh(input: Array, h_0: Array | None = None, lengths: Array | None = None, *,
             num_layers: int = 1, bidirectional: bool = False, batch_first: bool = False,
             enforce_sorted: bool = True, dropout: float = 0.0,
             dropout_mask: Array | None = None, training: bool = True,
             **weights: Array) -> Array:
    r"""torch.nn.RNN(nonlinearity="tanh"): per layer and direction
    h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), unrolled over t as the module docstring
    says (shared arguments and the flat result: the comment above)."""
    options = _options(num_layers, bidirectional, batch_first, dropout, dropout_mask,
                       training, "tanh")
    return _flat(_forward("rnn", input, h_0, None, lengths, weights, **options))


def rnn_tanh_vjp(g: Array, input: Array, h_0: Array | None = None, lengths: Array | None = None,
                 *, num_layers: int = 1, bidirectional: bool = False, batch_first: bool = False,
                 enforce_sorted: bool = True, dropout: float = 0.0,
                 dropout_mask: Array | None = None, training: bool = True,
                 **weights: Array) -> dict[str, Array]:
    r"""BPTT for :func:`rnn_tanh` (the module docstring): for the cotangent ``g`` of the flat
    (output, h_n), from the last step back to the first, da_t = (d out_t + dh_t) (1 - h_t^2),
    dh_{t-1} = da_t W_hh, dx_t = da_t W_ih, dW_ih = sum_t da_t^T x_t, dW_hh = sum_t da_t^T
    h_{t-1}, db = sum_t da_t; layer by layer, top down. Gradients of ``input``, ``h_0`` (when
    given) and every weight and bias."""
    options = _options(num_layers, bidirectional, batch_first, dropout, dropout_mask,
                       training, "tanh")
    return _layers_vjp("rnn", g, input, h_0, None, lengths, weights, options)


def rnn_relu(input: Array, h_0: Array | None = None, lengths: Array | None = None, *,
             num_layers: int = 1, bidirectional: bool = False, batch_first: bool = False,
             enforce_sorted: bool = True, dropout: float = 0.0,
             dropout_mask: Array | None = None, training: bool = True,
             **weights: Array) -> Array:
    r"""torch.nn.RNN(nonlinearity="relu"): per layer and direction
    h_t = max(0, W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), unrolled over t as the module
    docstring says (shared arguments and the flat result: the comment above). Not
    differentiable where a pre-activation is 0 (:func:`relu_pre_activations`)."""
    options = _options(num_layers, bidirectional, batch_first, dropout, dropout_mask,
                       training, "relu")
    return _flat(_forward("rnn", input, h_0, None, lengths, weights, **options))


def rnn_relu_vjp(g: Array, input: Array, h_0: Array | None = None, lengths: Array | None = None,
                 *, num_layers: int = 1, bidirectional: bool = False, batch_first: bool = False,
                 enforce_sorted: bool = True, dropout: float = 0.0,
                 dropout_mask: Array | None = None, training: bool = True,
                 **weights: Array) -> dict[str, Array]:
    r"""BPTT for :func:`rnn_relu`: as :func:`rnn_tanh_vjp` with relu'(a_t) = [a_t > 0] in
    place of 1 - h_t^2 (0 at the kink, as torch's relu backward gives)."""
    options = _options(num_layers, bidirectional, batch_first, dropout, dropout_mask,
                       training, "relu")
    return _layers_vjp("rnn", g, input, h_0, None, lengths, weights, options)


def relu_pre_activations(input: Array, h_0: Array | None = None,
                         lengths: Array | None = None, *, num_layers: int = 1,
                         bidirectional: bool = False, batch_first: bool = False,
                         enforce_sorted: bool = True, dropout: float = 0.0,
                         dropout_mask: Array | None = None, training: bool = True,
                         **weights: Array) -> Array:
    r"""Every pre-activation a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh of
    :func:`rnn_relu` at a valid step, of every layer and direction, flat: where one is 0, relu'
    jumps and the network is not differentiable there (the input maker and the dropout test
    keep them away from 0; not a torch op, so no record)."""
    options = _options(num_layers, bidirectional, batch_first, dropout, dropout_mask,
                       training, "relu")
    net = _forward("rnn", input, h_0, None, lengths, weights, **options)
    return np.concatenate([scan.caches[t]["a"][net.valid[t]].ravel()
                           for scan in net.scans.values() for t in sorted(scan.caches)])


def lstm(input: Array, h_0: Array | None = None, c_0: Array | None = None,
lengths: Array | None = None, *,
         num_layers: int = 1, bidirectional: bool = False, batch_first: bool = False,
         enforce_sorted: bool = True, dropout: float = 0.0,
         dropout_mask: Array | None = None, training: bool = True,
         **weights: Array) -> Array:
    r"""torch.nn.LSTM: per layer and direction the LSTM cell of the module docstring,
    c_t = f_t c_{t-1} + i_t g_t, h_t = o_t tanh(c_t) (times W_hr when ``weight_hr_l{k}`` (P, H)
    is given: proj_size = P; c keeps size H), unrolled over t (shared arguments and the flat
    result, which ends with c_n: the comment above)."""
    options = _options(num_layers, bidirectional, batch_first, dropout, dropout_mask,
                       training, "tanh")
    return _flat(_forward("lstm", input, h_0, c_0, lengths, weights, **options))


def lstm_vjp(g: Array, input: Array, h_0: Array | None = None, c_0: Array | None = None,
lengths: Array | None = None,
             *, num_layers: int = 1, bidirectional: bool = False, batch_first: bool = False,
             enforce_sorted: bool = True, dropout: float = 0.0,
             dropout_mask: Array | None = None, training: bool = True,
             **weights: Array) -> dict[str, Array]:
    r"""BPTT for :func:`lstm` (the module docstring): for the cotangent ``g`` of the flat
    (output, h_n, c_n), from the last step back, dm_t = (d out_t + dh_t) (W_hr), dc_t +=
    dm_t o_t (1 - tanh(c_t)^2), dc_{t-1} = dc_t f_t, the gates' da_t from do, di, df, dg, and
    dh_{t-1} = da_t W_hh: the cell state carries its own cotangent through time beside h's.
    Gradients of ``input``, ``h_0`` and ``c_0`` (when given), every weight and bias, and
    ``weight_hr_l{k}``."""
    options = _options(num_layers, bidirectional, batch_first, dropout, dropout_mask,
                       training, "tanh")
    return _layers_vjp("lstm", g, input, h_0, c_0, lengths, weights, options)


def gru(input: Array, h_0: Array | None = None, lengths: Array | None = None, *,
        num_layers: int = 1, bidirectional: bool = False, batch_first: bool = False,
        enforce_sorted: bool = True, dropout: float = 0.0,
        dropout_mask: Array | None = None, training: bool = True,
        **weights: Array) -> Array:
    r"""torch.nn.GRU: per layer and direction the GRU cell of the module docstring,
    n_t = tanh(W_in x_t + b_in + r_t (W_hn h_{t-1} + b_hn)), h_t = (1 - z_t) n_t + z_t h_{t-1},
    unrolled over t (shared arguments and the flat result: the comment above)."""
    options = _options(num_layers, bidirectional, batch_first, dropout, dropout_mask,
                       training, "tanh")
    return _flat(_forward("gru", input, h_0, None, lengths, weights, **options))


def gru_vjp(g: Array, input: Array, h_0: Array | None = None, lengths: Array | None = None,
            *, num_layers: int = 1, bidirectional: bool = False, batch_first: bool = False,
            enforce_sorted: bool = True, dropout: float = 0.0,
            dropout_mask: Array | None = None, training: bool = True,
            **weights: Array) -> dict[str, Array]:
    r"""BPTT for :func:`gru` (the module docstring): for the cotangent ``g`` of the flat
    (output, h_n), from the last step back, dh_{t-1} = dh'_t z_t + [da_r, da_z, da_n r]_t W_hh
    with dh'_t = d out_t + dh_t; gradients of ``input``, ``h_0`` (when given) and every weight
    and bias."""
    options = _options(num_layers, bidirectional, batch_first, dropout, dropout_mask,
                       training, "tanh")
    return _layers_vjp("gru", g, input, h_0, None, lengths, weights, options)


# --- public: the cells ---------------------------------------------------------------------


def _cell(kind: str, input: Array, h_0: Array | None, c_0: Array | None, weight_ih: Array,
          weight_hh: Array, bias_ih: Array | None, bias_hh: Array | None,
          nonlinearity: str) -> tuple[State, dict[str, Array], bool]:
    x = np.asarray(input, dtype=np.float64)
    batched = x.ndim == 2
    x = x if batched else x[None, :]
    hidden = weight_hh.shape[0] // GATES[kind]
    rows = x.shape[0]

    def state_in(a: Array | None) -> Array:
        if a is None:
            return np.zeros((rows, hidden))
        return np.asarray(a, dtype=np.float64) if batched else np.asarray(a)[None, :]

    state: State = (state_in(h_0),) if kind != "lstm" else (state_in(h_0), state_in(c_0))
    new, cache = _step(kind, x, state, _Params(weight_ih, weight_hh, bias_ih, bias_hh),
                       nonlinearity)
    return new, cache, batched


def _cell_flat(new: State, batched: bool) -> Array:
    return np.concatenate([np.ravel(s if batched else s[0]) for s in new])


def _cell_vjp(kind: str, g: Array, input: Array, h_0: Array | None, c_0: Array | None,
              weight_ih: Array, weight_hh: Array, bias_ih: Array | None, bias_hh: Array | None,
              nonlinearity: str) -> dict[str, Array]:
    new, cache, batched = _cell(kind, input, h_0, c_0, weight_ih, weight_hh, bias_ih, bias_hh,
                                nonlinearity)
    parts = np.split(np.asarray(g, dtype=np.float64), len(new))
    d_new = tuple(part.reshape(s.shape) for part, s in zip(parts, new, strict=True))
    dx, d_state, grads = _step_vjp(kind, d_new, cache,
                                   _Params(weight_ih, weight_hh, bias_ih, bias_hh), nonlinearity)

    def out(a: Array) -> Array:
        return a if batched else a[0]

    grads["input"] = out(dx)
    if h_0 is not None:
        grads["h_0"] = out(d_state[0])
    if c_0 is not None:
        grads["c_0"] = out(d_state[1])
    return grads


# Shapes shared by the cells: input (B, in) or unbatched (in,); h_0 (and c_0) (B, H) or (H,),
# zeros when absent (torch's hx; nn.RNNCell and nn.GRUCell call it hidden); weight_ih
# (G H, in), weight_hh (G H, H), optional bias_ih, bias_hh (G H,), G the gate blocks (GATES).


def rnn_tanh_cell(input: Array, weight_ih: Array, weight_hh: Array,
                  bias_ih: Array | None = None, bias_hh: Array | None = None,
                  h_0: Array | None = None) -> Array:
    r"""One step of torch.nn.RNNCell(nonlinearity="tanh"): h' = tanh(W_ih x + b_ih + W_hh h
    + b_hh); h' (B, H), or (H,) unbatched (shapes: the comment above)."""
    new, _, batched = _cell("rnn", input, h_0, None, weight_ih, weight_hh, bias_ih, bias_hh,
                            "tanh")
    return _cell_flat(new, batched)


def rnn_tanh_cell_vjp(g: Array, input: Array, weight_ih: Array, weight_hh: Array,
                      bias_ih: Array | None = None, bias_hh: Array | None = None,
                      h_0: Array | None = None) -> dict[str, Array]:
    r"""da = g (1 - h'^2); dx = da W_ih, dh = da W_hh, dW_ih = da^T x, dW_hh = da^T h,
    db_ih = db_hh = sum_batch da."""
    return _cell_vjp("rnn", g, input, h_0, None, weight_ih, weight_hh, bias_ih, bias_hh,
                     "tanh")


def rnn_relu_cell(input: Array, weight_ih: Array, weight_hh: Array,
                  bias_ih: Array | None = None, bias_hh: Array | None = None,
                  h_0: Array | None = None) -> Array:
    r"""One step of torch.nn.RNNCell(nonlinearity="relu"): h' = max(0, W_ih x + b_ih + W_hh h
    + b_hh); h' (B, H), or (H,) unbatched (shapes: the comment above)."""
    new, _, batched = _cell("rnn", input, h_0, None, weight_ih, weight_hh, bias_ih, bias_hh,
                            "relu")
    return _cell_flat(new, batched)


def rnn_relu_cell_vjp(g: Array, input: Array, weight_ih: Array, weight_hh: Array,
                      bias_ih: Array | None = None, bias_hh: Array | None = None,
                      h_0: Array | None = None) -> dict[str, Array]:
    r"""da = g [a > 0] (0 at the kink, as torch); then as :func:`rnn_tanh_cell_vjp`."""
    return _cell_vjp("rnn", g, input, h_0, None, weight_ih, weight_hh, bias_ih, bias_hh,
                     "relu")


def lstm_cell(input: Array, weight_ih: Array, weight_hh: Array, bias_ih: Array | None = None,
              bias_hh: Array | None = None, h_0: Array | None = None,
              c_0: Array | None = None) -> Array:
    r"""One step of torch.nn.LSTMCell, the module docstring's LSTM cell without projection:
    c' = f c + i g, h' = o tanh(c'); h' and c' raveled and concatenated (torch returns the
    pair; shapes: the comment above)."""
    new, _, batched = _cell("lstm", input, h_0, c_0, weight_ih, weight_hh, bias_ih, bias_hh,
                            "tanh")
    return _cell_flat(new, batched)


def lstm_cell_vjp(g: Array, input: Array, weight_ih: Array, weight_hh: Array,
                  bias_ih: Array | None = None, bias_hh: Array | None = None,
                  h_0: Array | None = None, c_0: Array | None = None) -> dict[str, Array]:
    r"""The LSTM step's VJP of the module docstring, for g = (dh', dc') flat: do = dh' tanh(c'),
    dc = dc' + dh' o (1 - tanh(c')^2), then the gates' derivatives s (1 - s) and 1 - g^2,
    dc_0 = dc f, and the affine maps' VJPs as for the RNN cell."""
    return _cell_vjp("lstm", g, input, h_0, c_0, weight_ih, weight_hh, bias_ih, bias_hh,
                     "tanh")


def gru_cell(input: Array, weight_ih: Array, weight_hh: Array, bias_ih: Array | None = None,
             bias_hh: Array | None = None, h_0: Array | None = None) -> Array:
    r"""One step of torch.nn.GRUCell, the module docstring's GRU cell (r applied to
    W_hn h + b_hn): h' = (1 - z) n + z h; h' (B, H), or (H,) unbatched (shapes: the comment
    above)."""
    new, _, batched = _cell("gru", input, h_0, None, weight_ih, weight_hh, bias_ih, bias_hh,
                            "tanh")
    return _cell_flat(new, batched)


def gru_cell_vjp(g: Array, input: Array, weight_ih: Array, weight_hh: Array,
                 bias_ih: Array | None = None, bias_hh: Array | None = None,
                 h_0: Array | None = None) -> dict[str, Array]:
    r"""The GRU step's VJP of the module docstring: dn = g (1 - z), dz = g (h - n),
    dh = g z + [da_r, da_z, da_n r] W_hh, with r's gradient through (W_hn h + b_hn)."""
    return _cell_vjp("gru", g, input, h_0, None, weight_ih, weight_hh, bias_ih, bias_hh,
                     "tanh")
