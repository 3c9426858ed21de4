"""Input makers for the recurrent layers and cells (suite/catalog/recurrent.py).

Arrays carry torch's names: ``input``, ``h_0`` (and the LSTM's ``c_0``), ``lengths`` (the
valid steps of each sequence, for ``pack_padded_sequence``), and the module's parameters by
their ``named_parameters`` names (``weight_ih_l0``, ``bias_hh_l1_reverse``, ``weight_hr_l0``,
...; ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` for a cell). Weights are normal
values / sqrt(hidden), the scale of torch's default U(-1/sqrt(H), 1/sqrt(H)) initialisation,
so a step neither explodes nor dies whatever the width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hypothesis import assume
from hypothesis import strategies as st

from references import recurrent as ref
from suite import hard
from suite.inputs.layers import VALUE_SCALES
from suite.specs import Array, Case
from suite.strategies import SEEDS

# The recurrent makers' hard scenarios: every value scenario and the vector widths; no long
# reductions (the BPTT reference is a Python loop over time steps; a sum over 10^4 terms
# happens nowhere in these layers at the sizes they run: their long axis is time).
HARD_SCENARIOS = (*hard.VALUE_SCENARIOS, "simd")


def _hard_values(case: Case, scenario: str, dtype: torch.dtype, drawn: int,
                 nonlinearity: str) -> Case:
    """``case`` with its input (and initial states) of a hard scenario (power 2: they enter
    matrix products); for relu, pre-activations kept RELU_MARGIN (relative to the inputs' size)
    off the kink, where float32 rounding could put torch and the reference on different
    sides."""
    rng = hard.rng_for(case.seed)
    arrays, label = dict(case.arrays), ""
    for name in ("input", "h_0", "c_0"):
        if name not in arrays:
            continue
        a = arrays[name]
        if scenario in hard.VALUE_SCENARIOS:
            arrays[name], label = hard.values(rng, a.shape, scenario, dtype, power=2)
        elif name == "input":
            arrays[name], label = hard.place(rng, a, dtype, drawn, power=2)
    if nonlinearity == "relu":
        size = max(float(np.max(np.abs(a), initial=0.0)) for a in arrays.values()
                   if a.dtype.kind == "f")
        assume(_relu_margin(arrays, case) >= RELU_MARGIN * (1.0 + size))
    return hard.rewrite(case, arrays, f"{scenario}: {label}")


def _relu_margin(arrays: dict[str, Array], case: Case) -> float:
    if "weight_ih_l0" in arrays:
        return kink_distance(arrays, dict(case.options))
    return RecurrentCell._margin(arrays)

# relu's derivative jumps where a pre-activation a is 0. A central difference of step h = 1e-6
# along a direction v moves a by h |da/dv|, so it straddles the kink only where
# |a| < 1e-6 |da/dv|; float32 moves a by ~eps32 * sum|terms| <= ~1e-5. Cases whose nonzero
# pre-activations come closer to 0 than RELU_MARGIN = 1e-4 are redrawn from the next seed
# (exact zeros are structural: ``kink_distance``). Measured over 1500 drawn cases, with the
# check's own directions: |da/dv| / |a| <= 5.6e4, 18x below the 1e6 a straddle needs; and over
# 3000 configurations the redraw loop needed at most a few tries (99th percentile: one).
# (1e-3 was tried first: deep relu stacks without bias at input scale 0.1 have every
# pre-activation ~1e-2, and some configurations found no clean draw in 100.)
RELU_MARGIN = 1e-4
_REDRAWS = 100  # measured 99th percentile: one redraw (above); 100 never run out


def _normal(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0) -> Array:
    return rng.standard_normal(shape) * scale


def _suffix(layer: int, direction: int) -> str:
    return f"_l{layer}" + ("_reverse" if direction else "")


def kink_distance(arrays: dict[str, Array], options: dict[str, Any]) -> float:
    """The smallest nonzero |a| over the relu RNN's pre-activations at valid steps.

    An exact 0 is structural: every term of its sum is an exact zero (a dead unit's output, a
    dropped element or a zero initial state, times a weight; no bias), so it stays exactly 0
    under any perturbation the checks make (the dead units upstream are at least the margin
    below 0), and torch and the reference both take relu'(0) = 0 there."""
    pre = np.abs(ref.relu_pre_activations(**arrays, **options))  # type: ignore[arg-type]
    return float(np.min(pre[pre != 0], initial=np.inf))


@dataclass(frozen=True)
class _Shape:
    """One drawn configuration of a recurrent layer (everything but the values)."""

    steps: int
    batch: int | None  # None: unbatched input (T, in)
    n_in: int
    hidden: int
    proj: int  # 0: no projection
    layers: int
    bidirectional: bool
    batch_first: bool
    bias: bool
    initial: bool  # h_0 (and c_0) given
    lengths: tuple[int, ...] | None  # packed: the valid steps of each sequence
    enforce_sorted: bool
    scale: float


@dataclass(frozen=True)
class Recurrent:
    """nn.RNN (``kind="rnn"`` with ``nonlinearity``), nn.LSTM (``"lstm"``: ``proj_size`` drawn
    too) or nn.GRU (``"gru"``): T <= ``max_steps`` steps, unbatched or a batch of 1-4, input
    and hidden sizes 1-6, 1-3 layers, one or two directions, batch_first, bias, initial states
    given or zeros; with ``packed``, a batch of sequences of unequal ``lengths`` 1..T (sorted
    by decreasing length or not, ``enforce_sorted`` saying which). Inputs at a drawn scale
    (1, 0.1, 5), initial states standard normal."""

    kind: str
    nonlinearity: str = "tanh"
    packed: bool = False
    """Every case has ``lengths`` (a batch of sequences of unequal lengths), or none has."""
    dropout: bool = False
    """Cases for tests/test_recurrent.py's dropout check: 2-3 layers, biases (its mask probe
    needs them), and a drawn ``dropout`` p (0.5, 1, or in [0.05, 0.95])."""
    max_steps: int = 6
    bench_sizes: tuple[int, ...] = (8, 32, 128)

    def _arrays(self, s: _Shape, rng: np.random.Generator) -> dict[str, Array]:
        gates = ref.GATES[self.kind]
        dirs = 2 if s.bidirectional else 1
        out = s.proj or s.hidden
        x_shape = (s.steps, s.n_in) if s.batch is None else \
            (s.batch, s.steps, s.n_in) if s.batch_first else (s.steps, s.batch, s.n_in)
        arrays = {"input": _normal(rng, x_shape, s.scale)}
        state = (s.layers * dirs,) if s.batch is None else (s.layers * dirs, s.batch)
        if s.initial:
            arrays["h_0"] = _normal(rng, (*state, out))
            if self.kind == "lstm":
                arrays["c_0"] = _normal(rng, (*state, s.hidden))
        if s.lengths is not None:
            arrays["lengths"] = np.array(s.lengths, dtype=np.int64)
        w = 1.0 / math.sqrt(s.hidden)
        for layer in range(s.layers):
            for d in range(dirs):
                k = _suffix(layer, d)
                n_in = s.n_in if layer == 0 else dirs * out
                arrays[f"weight_ih{k}"] = _normal(rng, (gates * s.hidden, n_in), w)
                arrays[f"weight_hh{k}"] = _normal(rng, (gates * s.hidden, out), w)
                if s.bias:
                    arrays[f"bias_ih{k}"] = _normal(rng, (gates * s.hidden,), w)
                    arrays[f"bias_hh{k}"] = _normal(rng, (gates * s.hidden,), w)
                if s.proj:
                    arrays[f"weight_hr{k}"] = _normal(rng, (s.proj, s.hidden), w)
        return arrays

    def _options(self, s: _Shape) -> dict[str, Any]:
        options: dict[str, Any] = {"num_layers": s.layers, "bidirectional": s.bidirectional,
                                   "batch_first": s.batch_first}
        if s.lengths is not None:
            options["enforce_sorted"] = s.enforce_sorted
        return options

    def _case(self, s: _Shape, seed: int, off_kinks: bool = True) -> Case:
        options = self._options(s)
        for attempt in range(_REDRAWS):
            arrays = self._arrays(s, np.random.default_rng([seed, attempt]))
            if not off_kinks or self.nonlinearity != "relu" or \
                    kink_distance(arrays, options) >= RELU_MARGIN:
                break
        else:
            raise AssertionError(f"no draw in {_REDRAWS} keeps every relu pre-activation "
                                 f"{RELU_MARGIN} away from the kink: {s}, seed {seed}")
        differentiable = tuple(k for k in arrays if k != "lengths")
        return Case(arrays, differentiable, options, seed)

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            steps = draw(st.integers(1, self.max_steps), label="T")
            batches = st.integers(1, 4) if self.packed else st.one_of(st.none(),
                                                                       st.integers(1, 4))
            batch = draw(batches, label="batch (None: unbatched)")
            hidden = draw(st.integers(1, 6), label="hidden_size")
            proj = 0
            if self.kind == "lstm" and hidden > 1:
                proj = draw(st.one_of(st.just(0), st.integers(1, hidden - 1)), label="proj_size")
            lengths, enforce_sorted = None, True
            if self.packed and batch is not None:
                lengths = tuple(draw(st.lists(st.integers(1, steps), min_size=batch,
                                              max_size=batch), label="lengths"))
                enforce_sorted = draw(st.booleans(), label="enforce_sorted")
                if enforce_sorted:
                    lengths = tuple(sorted(lengths, reverse=True))
            shape = _Shape(steps, batch, draw(st.integers(1, 6), label="input_size"), hidden,
                           proj, draw(st.integers(2 if self.dropout else 1, 3),
                                      label="num_layers"),
                           draw(st.booleans(), label="bidirectional"),
                           draw(st.booleans(), label="batch_first"),
                           self.dropout or draw(st.booleans(), label="bias"),
                           draw(st.booleans(), label="initial states given"), lengths,
                           enforce_sorted, draw(VALUE_SCALES, label="scale"))
            case = self._case(shape, draw(SEEDS, label="seed"))
            if self.dropout:
                p = draw(st.one_of(st.sampled_from((0.5, 1.0)), st.floats(0.05, 0.95)),
                         label="dropout")
                case = Case(case.arrays, case.differentiable, {**case.options, "dropout": p},
                            case.seed)
            return case

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        """T = n steps of a batch of 4, input and hidden size n, one layer, bias, h_0 given (for
        benchmarks and large inputs, which take no finite differences: kinks are not avoided);
        with ``packed``, lengths n / 2, n, 1, n / 3 (unsorted)."""
        lengths = (max(1, n // 2), n, 1, max(1, n // 3)) if self.packed else None
        shape = _Shape(n, 4, n, n, 0, 1, False, False, True, True, lengths, not self.packed, 1.0)
        return self._case(shape, seed, off_kinks=False)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): inputs and initial states of a drawn value scenario
        on the usual configurations; or a hidden size of each ``suite.hard.SIMD_SIZES`` size
        (one layer, two steps) with extremes in the input's vector body and tail. No long
        scenario (``HARD_SCENARIOS``)."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw, HARD_SCENARIOS)
            if scenario == "simd":
                size = hard.simd_size(draw, zero_dim=False) or 1
                lengths = (2, 1) if self.packed else None
                shape = _Shape(2, 2, size, size, 0, 1, False, False, True, True, lengths,
                               True, 1.0)
                case = self._case(shape, draw(SEEDS, label="seed"))
            else:
                case = draw(self.strategy(), label="case")
            return _hard_values(case, scenario, dtype, draw(st.integers(0, 2**16),
                                                            label="position"),
                                self.nonlinearity)

        return cases()


@dataclass(frozen=True)
class RecurrentCell:
    """nn.RNNCell (``kind="rnn"`` with ``nonlinearity``), nn.LSTMCell or nn.GRUCell: ``input``
    (B, in) with B 1-8 or unbatched (in,), input and hidden sizes 1-8, bias, ``h_0`` (and
    ``c_0``) given or zeros; inputs at a drawn scale, states standard normal."""

    kind: str
    nonlinearity: str = "tanh"

    def _case(self, batch: int | None, n_in: int, hidden: int, bias: bool, initial: bool,
              scale: float, seed: int, off_kinks: bool = True) -> Case:
        gates = ref.GATES[self.kind]
        rows = () if batch is None else (batch,)
        w = 1.0 / math.sqrt(hidden)
        for attempt in range(_REDRAWS):
            rng = np.random.default_rng([seed, attempt])
            arrays = {"input": _normal(rng, (*rows, n_in), scale),
                      "weight_ih": _normal(rng, (gates * hidden, n_in), w),
                      "weight_hh": _normal(rng, (gates * hidden, hidden), w)}
            if bias:
                arrays["bias_ih"] = _normal(rng, (gates * hidden,), w)
                arrays["bias_hh"] = _normal(rng, (gates * hidden,), w)
            if initial:
                arrays["h_0"] = _normal(rng, (*rows, hidden))
                if self.kind == "lstm":
                    arrays["c_0"] = _normal(rng, (*rows, hidden))
            if not off_kinks or self.nonlinearity != "relu" or \
                    self._margin(arrays) >= RELU_MARGIN:
                break
        else:
            raise AssertionError(f"no draw in {_REDRAWS} keeps every relu pre-activation "
                                 f"{RELU_MARGIN} away from the kink (seed {seed})")
        return Case(arrays, tuple(arrays), {}, seed)

    @staticmethod
    def _margin(arrays: dict[str, Array]) -> float:
        """The smallest |a| of the cell's pre-activations: the cell is one step of a
        one-layer network, whose pre-activations :func:`references.recurrent.
        relu_pre_activations` gives."""
        as_layer = {"input": np.atleast_2d(arrays["input"])[None]}
        if "h_0" in arrays:
            as_layer["h_0"] = np.atleast_2d(arrays["h_0"])[None]
        as_layer |= {f"{k}_l0": v for k, v in arrays.items() if k.startswith(("weight", "bias"))}
        return kink_distance(as_layer, {})

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            return self._case(draw(st.one_of(st.none(), st.integers(1, 8)), label="batch"),
                              draw(st.integers(1, 8), label="input_size"),
                              draw(st.integers(1, 8), label="hidden_size"),
                              draw(st.booleans(), label="bias"),
                              draw(st.booleans(), label="h_0 given"),
                              draw(VALUE_SCALES, label="scale"), draw(SEEDS, label="seed"))

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        """A batch of n rows, input and hidden size n, bias, h_0 given (kinks not avoided, as
        for :meth:`Recurrent.sized`)."""
        return self._case(n, n, n, True, True, 1.0, seed, off_kinks=False)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): as :meth:`Recurrent.hard`, for one step."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw, HARD_SCENARIOS)
            if scenario == "simd":
                size = hard.simd_size(draw, zero_dim=False) or 1
                case = self._case(2, size, size, True, True, 1.0, draw(SEEDS, label="seed"))
            else:
                case = draw(self.strategy(), label="case")
            return _hard_values(case, scenario, dtype, draw(st.integers(0, 2**16),
                                                            label="position"),
                                self.nonlinearity)

        return cases()
