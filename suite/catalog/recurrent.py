"""Recurrent records: nn.RNN (tanh, relu), nn.LSTM, nn.GRU and their cells, alphabetical.

torch.nn.functional has no recurrent function: the torch callable of each record is the
module itself, built from the case's sizes and options (on the meta device: it holds no
values) and called through ``torch.func.functional_call`` with the case's tensors as its
parameters (``strict``: every parameter the module has must come from the case), so autograd
differentiates the module's own forward with respect to the case's weights. Sequences of
unequal ``lengths`` go through ``pack_padded_sequence`` (with the drawn ``enforce_sorted``)
and back through ``pad_packed_sequence``. The callable returns ONE tensor, the flat
concatenation of (output, h_n) (and c_n), as the references in references/recurrent.py do:
one cotangent then reaches every output, and the generic checks (forward, gradient of every
weight, bias and initial state, finite differences of the reference, JVP and double backward,
torch.func.vjp, large inputs, benchmarks) apply unchanged. There is no second torch form to
compare the module with (``module`` stays None). On the CPU, float32 nn.LSTM runs oneDNN's
kernel (with ``proj_size`` torch warns that oneDNN lacks projections and falls back), float64
and the other modules torch's own: the dtype parametrization checks both paths. Dropout
between layers draws its mask inside torch's kernel: tests/test_recurrent.py recovers it and
checks it there; the records run without dropout (torch's default).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from references import recurrent as ref
from suite import conditioning
from suite.inputs import recurrent as ri
from suite.specs import OpSpec
from suite.tolerances import Kind, Tolerance

_DOCS = "https://pytorch.org/docs/stable/generated/torch.nn.{}.html"


def _flat(*parts: Tensor) -> Tensor:
    return torch.cat([p.reshape(-1) for p in parts])


def run_layer(cls: type[nn.RNN] | type[nn.LSTM] | type[nn.GRU], input: Tensor,
              hx: Tensor | tuple[Tensor, Tensor] | None, lengths: Tensor | None,
              weights: dict[str, Tensor], *, num_layers: int, bidirectional: bool,
              batch_first: bool, enforce_sorted: bool, dropout: float = 0.0,
              training: bool = True, **kwargs: object
              ) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
    """``cls`` (nn.RNN, nn.LSTM, nn.GRU) with the case's ``weights`` as its parameters, on
    ``input`` (packed by ``lengths`` when given, and padded back to the input's T): the output
    and torch's h_n (or (h_n, c_n)). ``kwargs`` are further constructor arguments
    (nonlinearity, proj_size); the sizes and bias are read from the weights. The module is in
    ``training`` mode (a module's default): with ``dropout`` > 0 it draws masks between layers
    from torch's generator, which the caller seeds."""
    gates = ref.GATES[{nn.RNN: "rnn", nn.LSTM: "lstm", nn.GRU: "gru"}[cls]]
    module = cls(input.shape[-1], weights["weight_hh_l0"].shape[0] // gates,
                 num_layers=num_layers, bias="bias_ih_l0" in weights, batch_first=batch_first,
                 dropout=dropout, bidirectional=bidirectional, device="meta", dtype=input.dtype,
                 **kwargs).train(training)
    x: Tensor | nn.utils.rnn.PackedSequence = input
    if lengths is not None:
        x = pack_padded_sequence(input, lengths.cpu(), batch_first=batch_first,
                                 enforce_sorted=enforce_sorted)
    out, h_n = torch.func.functional_call(module, weights, (x, hx), strict=True)
    if lengths is not None:
        out, _ = pad_packed_sequence(out, batch_first=batch_first,
                                     total_length=input.shape[1 if batch_first else 0])
    return out, h_n


def _weights(options: dict[str, Tensor | object]) -> tuple[dict[str, Tensor], dict[str, object]]:
    weights = {k: v for k, v in options.items() if isinstance(v, Tensor)}
    return weights, {k: v for k, v in options.items() if k not in weights}


def _layer_defaults(options: dict[str, object]) -> dict[str, object]:
    return {"num_layers": 1, "bidirectional": False, "batch_first": False,
            "enforce_sorted": True} | options


def _rnn(nonlinearity: str) -> Callable[..., Tensor]:
    def rnn(input: Tensor, h_0: Tensor | None = None, lengths: Tensor | None = None,
            **options: Tensor | object) -> Tensor:
        weights, rest = _weights(options)
        out, h_n = run_layer(nn.RNN, input, h_0, lengths, weights,
                             nonlinearity=nonlinearity, **_layer_defaults(rest))  # type: ignore[arg-type]
        assert isinstance(h_n, Tensor)
        return _flat(out, h_n)

    rnn.__name__ = f"rnn_{nonlinearity} (nn.RNN)"
    return rnn


def lstm(input: Tensor, h_0: Tensor | None = None, c_0: Tensor | None = None,
         lengths: Tensor | None = None, **options: Tensor | object) -> Tensor:
    """nn.LSTM (proj_size read from ``weight_hr_l0``) on the case: flat (output, h_n, c_n)."""
    weights, rest = _weights(options)
    proj = weights["weight_hr_l0"].shape[0] if "weight_hr_l0" in weights else 0
    hx = None if h_0 is None or c_0 is None else (h_0, c_0)
    out, (h_n, c_n) = run_layer(nn.LSTM, input, hx, lengths, weights, proj_size=proj,
                                **_layer_defaults(rest))  # type: ignore[arg-type]
    return _flat(out, h_n, c_n)


def gru(input: Tensor, h_0: Tensor | None = None, lengths: Tensor | None = None,
        **options: Tensor | object) -> Tensor:
    """nn.GRU on the case: flat (output, h_n)."""
    weights, rest = _weights(options)
    out, h_n = run_layer(nn.GRU, input, h_0, lengths, weights,
                         **_layer_defaults(rest))  # type: ignore[arg-type]
    assert isinstance(h_n, Tensor)
    return _flat(out, h_n)


def _cell(cls: type[nn.RNNCellBase], **ctor: object) -> Callable[..., Tensor]:
    """``cls`` (nn.RNNCell, nn.LSTMCell, nn.GRUCell) with the case's weights as parameters:
    h' (flat), or flat (h', c') for the LSTM cell."""
    gates = {nn.RNNCell: 1, nn.LSTMCell: 4, nn.GRUCell: 3}[cls]

    def cell(input: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor | None = None,
             bias_hh: Tensor | None = None, h_0: Tensor | None = None,
             c_0: Tensor | None = None) -> Tensor:
        params = {"weight_ih": weight_ih, "weight_hh": weight_hh}
        if bias_ih is not None and bias_hh is not None:
            params |= {"bias_ih": bias_ih, "bias_hh": bias_hh}
        module = cls(input.shape[-1], weight_hh.shape[0] // gates, bias=bias_ih is not None,
                     device="meta", dtype=input.dtype, **ctor)  # type: ignore[arg-type]
        hx = h_0 if cls is not nn.LSTMCell or h_0 is None or c_0 is None else (h_0, c_0)
        out = torch.func.functional_call(module, params, (input, hx), strict=True)
        return _flat(*out) if isinstance(out, tuple) else _flat(out)

    cell.__name__ = cls.__name__ + "".join(f"({v})" for v in ctor.values())
    return cell


# Off the half-precision ladder (tests/test_precision.py), why. The ladder's rows bound a few
# roundings of an elementwise result, and ``terms`` (sum |terms|) the rounding of single sums.
# A cell chains rounded elementwise kernels (gates, c' = f c + i g, o tanh(c')) after its
# pre-activation sums over the input and hidden size, and the rounding of those sums moves
# every derivative factor of the VJP (1 - tanh(a)^2 by 2 |h| (1 - h^2) * that rounding)
# before the weight gradients sum the products over the batch; a layer compounds this through
# time (each step's rounded state feeds every later step through the step's Jacobian, and BPTT
# sums each weight gradient over T steps too). Bounding either needs a running error analysis
# of the cell's forward and VJP, propagated through time for the layers (sum |terms| carried
# by |J|): not written yet. Measured without one (torch 2.13.0 CPU, 30 draws per record and
# half dtype, rows alone): layers 236 of 240 draws within the rows, 4 over by 1.06x-2.25x;
# cells 239 of 240, 1 over by 1.19x; every excess in a weight gradient, none O(1).
_CELL = ("the VJP's derivative factors carry the rounding of the pre-activation sums, then the "
         "weight gradients sum them over the batch: no running error bound of the cell's "
         "forward and VJP is written yet (sum |terms| of one sum does not bound it)")
_COMPOUNDS = ("a recurrence compounds rounding through time (each step's half-precision state "
              "feeds every later step; BPTT sums weight gradients over steps and batch): no "
              "running error bound of the unrolled forward and BPTT is written yet")
# relu adds a kink: a half-precision pre-activation is off by ~eps16 sum |terms| ~ 1e-3, past
# the margin the input maker keeps (RELU_MARGIN, sized for float32 and finite differences), so
# torch can take the other side of relu than the reference: an O(|g|) gradient difference that
# no rounding allowance covers.
_KINK = ("; and relu's kink: a half-precision pre-activation can round across 0 and take the "
         "other branch than the reference (an O(|g|) gradient difference)")


# float32 gradients of the unrolled layers. BPTT's backward step is a matvec of size <= H = 6
# (suite/inputs/recurrent.py) whose Jacobian diag(f') W_hh^T has norm up to ~2 for the drawn
# weights (N(0, 1) / sqrt(H): the spectral radius of such a matrix is ~1-2), so a rounding made
# k steps before the end of the chain is amplified up to 2^k; over T <= 6 steps, L <= 3 layers
# and two directions, with dropout scaling a layer's input by up to 1 / (1 - p) = 20, the error
# of a weight gradient relative to its terms' scale is about eps32 * H * 2^T = 1.2e-7 * 6 * 64
# ~ 5e-5: above the GRADIENT row's ~84 ulp (1e-5). 1e-4 (rtol and atol) keeps a 2x margin; a
# lost recurrent term or a wrong gate is off by 1e-1 or more (tests/test_harness.py plants
# both). The cells (one step) stay at the row.
_BPTT_FLOAT32 = {(Kind.GRADIENT, torch.float32): Tolerance(rtol=1e-4, atol=1e-4)}

# torch.func.vmap of the layers and of the LSTM cell: torch 2.13.0 has no batching rule and
# no fallback for their fused kernels (its own words, below). The RNN and GRU cells batch their
# forward, but torch.func.vmap of their VJP fails: a bug kept as a strict xfail in
# tests/test_vmap.py (KNOWN_DIFFERENCES.md).
_NO_BATCHING_RULE = ("torch.func.vmap (torch 2.13.0): 'Batching rule not implemented for "
                     "aten::{}. We could not generate a fallback.'")

# Without sequence lengths: nn.X on a plain tensor, every sequence T steps long.
RECORDS = (
    OpSpec(name="gru", family="layer", torch_fn=gru, ref=ref.gru, ref_vjp=ref.gru_vjp,
           inputs=ri.Recurrent("gru"),
           gates=conditioning.RecurrentGates("gru"), docs=_DOCS.format("GRU"),
           low_precision=_COMPOUNDS, tol=_BPTT_FLOAT32,
           vmap=_NO_BATCHING_RULE.format("gru.input")),
    OpSpec(name="gru_cell", family="layer", torch_fn=_cell(nn.GRUCell), ref=ref.gru_cell,
           ref_vjp=ref.gru_cell_vjp, inputs=ri.RecurrentCell("gru"),
           gates=conditioning.RecurrentGates("gru", cell=True),
           docs=_DOCS.format("GRUCell"), low_precision=_CELL),
    OpSpec(name="lstm", family="layer", torch_fn=lstm, ref=ref.lstm, ref_vjp=ref.lstm_vjp,
           inputs=ri.Recurrent("lstm"),
           gates=conditioning.RecurrentGates("lstm"), docs=_DOCS.format("LSTM"),
           low_precision=_COMPOUNDS, tol=_BPTT_FLOAT32,
           vmap=_NO_BATCHING_RULE.format("lstm.input")),
    OpSpec(name="lstm_cell", family="layer", torch_fn=_cell(nn.LSTMCell), ref=ref.lstm_cell,
           ref_vjp=ref.lstm_cell_vjp, inputs=ri.RecurrentCell("lstm"),
           gates=conditioning.RecurrentGates("lstm", cell=True),
           docs=_DOCS.format("LSTMCell"), low_precision=_CELL,
           vmap=_NO_BATCHING_RULE.format("lstm_cell")),
    OpSpec(name="rnn_relu", family="layer", torch_fn=_rnn("relu"), ref=ref.rnn_relu,
           ref_vjp=ref.rnn_relu_vjp, inputs=ri.Recurrent("rnn", "relu"),
           gates=conditioning.RecurrentGates("rnn", "relu"),
           docs=_DOCS.format("RNN"), low_precision=_COMPOUNDS + _KINK, tol=_BPTT_FLOAT32,
           vmap=_NO_BATCHING_RULE.format("rnn_relu.input")),
    OpSpec(name="rnn_relu_cell", family="layer",
           torch_fn=_cell(nn.RNNCell, nonlinearity="relu"), ref=ref.rnn_relu_cell,
           ref_vjp=ref.rnn_relu_cell_vjp, inputs=ri.RecurrentCell("rnn", "relu"),
           gates=conditioning.RecurrentGates("rnn", "relu", cell=True),
           docs=_DOCS.format("RNNCell"), low_precision=_CELL + _KINK),
    OpSpec(name="rnn_tanh", family="layer", torch_fn=_rnn("tanh"), ref=ref.rnn_tanh,
           ref_vjp=ref.rnn_tanh_vjp, inputs=ri.Recurrent("rnn", "tanh"),
           gates=conditioning.RecurrentGates("rnn", "tanh"),
           docs=_DOCS.format("RNN"), low_precision=_COMPOUNDS, tol=_BPTT_FLOAT32,
           vmap=_NO_BATCHING_RULE.format("rnn_tanh.input")),
    OpSpec(name="rnn_tanh_cell", family="layer",
           torch_fn=_cell(nn.RNNCell, nonlinearity="tanh"), ref=ref.rnn_tanh_cell,
           ref_vjp=ref.rnn_tanh_cell_vjp, inputs=ri.RecurrentCell("rnn", "tanh"),
           gates=conditioning.RecurrentGates("rnn", "tanh", cell=True),
           docs=_DOCS.format("RNNCell"), low_precision=_CELL),
)

# With sequence lengths: nn.X on pack_padded_sequence(input, lengths, enforce_sorted), its
# output through pad_packed_sequence. Not in the catalogue: torch.func transforms cannot run
# through packed sequences (torch 2.13: torch.func.vjp fails inside the packed RNN kernel with
# "Cannot access data pointer of Tensor that doesn't have storage", pytorch/functorch#629, and
# forward AD of _pack_padded_sequence "has not been implemented yet"), and the generic checks
# run every transform on every record. tests/test_recurrent.py runs the other generic checks on
# these (forward, gradient, finite differences of the reference, double backward, layouts,
# dropout) and keeps both transforms as strict xfails.
PACKED = tuple(
    dataclasses.replace(spec, name=f"{spec.name}_packed",
                        inputs=dataclasses.replace(spec.inputs, packed=True))
    for spec in RECORDS if isinstance(spec.inputs, ri.Recurrent))
