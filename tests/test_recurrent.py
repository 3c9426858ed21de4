"""Recurrent behaviour the generic record checks cannot run: packed sequences (which torch.func
cannot transform), dropout between layers with torch's own masks, eval mode, a relu kink hit
exactly, non-contiguous arrays.

The records without sequence lengths (suite/catalog/recurrent.py ``RECORDS``) go through every
generic check in tests/test_ops.py, test_higher_order.py and test_transforms.py (all are off
the half-precision ladder, each record saying why). Here the same check functions
(``suite.gradcheck``, ``suite.higher``) run on the packed records (``PACKED``) and on cases
with dropout; every comparison goes through ``suite.compare`` with the tolerances of
``suite.tolerances`` and the records' own widenings (none today).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from references import recurrent as ref
from suite import catalog, compare, higher
from suite import gradcheck as gc
from suite import tolerances as tols
from suite.catalog import recurrent as records
from suite.inputs import recurrent as ri
from suite.specs import Array, Case, OpSpec

PACKED = pytest.mark.parametrize("spec", records.PACKED, ids=catalog.spec_id)
LAYERS = [*(s for s in records.RECORDS if isinstance(s.inputs, ri.Recurrent)), *records.PACKED]


def _maker(spec: OpSpec) -> ri.Recurrent:
    assert isinstance(spec.inputs, ri.Recurrent), spec.name
    return spec.inputs


# --- packed sequences ------------------------------------------------------------------------


@PACKED
@given(data=st.data())
def test_packed_forward_matches_reference(spec: OpSpec, dtype: torch.dtype, device: str,
                                          data: st.DataObject) -> None:
    """nn.X on pack_padded_sequence(input, lengths, enforce_sorted) and pad_packed_sequence back
    against the reference: 0 past each length, h_n at each sequence's last valid step."""
    gc.check_forward(spec, data.draw(spec.cases(), label="case"), dtype, device)


@PACKED
@given(data=st.data())
def test_packed_gradient_matches_reference(spec: OpSpec, dtype: torch.dtype, device: str,
                                           data: st.DataObject) -> None:
    """BPTT through packed sequences: torch's gradient of every input, initial state, weight and
    bias against the reference VJP."""
    gc.check_gradient(spec, data.draw(spec.cases(), label="case"), dtype, device)


@PACKED
@given(data=st.data())
def test_packed_reference_vjp_matches_finite_differences(spec: OpSpec,
                                                         data: st.DataObject) -> None:
    gc.check_reference_vjp(spec, data.draw(spec.cases(), label="case"))


@PACKED
@settings(max_examples=25)  # the ceiling of tests/test_higher_order.py, for the same reason
@given(data=st.data())
def test_packed_double_backward_matches_reference(spec: OpSpec, device: str,
                                                  data: st.DataObject) -> None:
    higher.check_double_backward(spec, data.draw(spec.cases(), label="case"), device)


@PACKED
@pytest.mark.xfail(strict=True, raises=RuntimeError,
                   reason="torch 2.13.0: torch.func.vjp through a packed RNN fails inside the "
                          "kernel with 'Cannot access data pointer of Tensor that doesn't have "
                          "storage' (pytorch/functorch#629, open); KNOWN_DIFFERENCES.md. "
                          "Strict: when it works, the packed records can join the catalogue")
def test_packed_func_vjp_matches_autograd(spec: OpSpec) -> None:
    higher.check_func_vjp(spec, spec.inputs.sized(3), torch.float64, "cpu")


@PACKED
@pytest.mark.xfail(strict=True, raises=NotImplementedError,
                   reason="torch 2.13.0: 'Trying to use forward AD with _pack_padded_sequence "
                          "that does not support it because it has not been implemented yet'. "
                          "Strict: a forward-AD formula turns this into a failure to act on")
def test_packed_jvp_matches_reference(spec: OpSpec) -> None:
    higher.check_jvp(spec, spec.inputs.sized(3), "cpu")


def test_packed_records_mirror_the_catalogue() -> None:
    """One packed record per layer record, each drawing lengths in every case."""
    layers = {s.name for s in records.RECORDS if isinstance(s.inputs, ri.Recurrent)}
    assert {s.name.removesuffix("_packed") for s in records.PACKED} == layers
    for spec in records.PACKED:
        assert "lengths" in spec.inputs.sized(4).arrays, spec.name


# --- dropout between layers, with torch's masks -----------------------------------------------
#
# torch draws the masks inside its kernel, from its generator: they cannot be passed in, and
# the outputs of the inner layers are not returned. They are recovered from probe runs: the
# same module configuration and shapes, the same dropout p, the same seed, but weights that
# make every layer a position-by-position map of its input (no recurrence, each unit reading one
# input position, biases b_l), so the probe's output shows which positions were dropped:
#     y_0 = psi(b_0),  y_l = psi(m_l * y_{l-1} / (1 - p) + b_l),   m_l in {0, 1}
# with psi(u) = tanh(u) (RNN tanh, and the GRU with its update gate shut: z = sigma(-40)),
# max(0, u) (RNN relu), tanh(tanh(u)) (the LSTM with its input and output gates open and its
# forget gate shut: i = o = sigma(40), f = sigma(-40)). The mask m_l between layers l - 1 and l
# is read from a probe of l + 1 layers (torch draws the masks layer by layer, so a shorter
# module under the same seed draws the same first masks), given the masks before it. The only
# assumption is that the masks depend on the seed and the shapes, not on the values: if it
# failed, the masks would be wrong, and the comparison below would fail (never pass).

PROBE_BIAS = (0.5, 0.3, 0.2)
"""b_l: kept and dropped positions then differ by >= 0.23 in every layer's probe output, for
every p in [0.05, 0.95] and every psi (at least 0.2 is checked at each decode; a probe output
is read as the nearer of the two, and must be within 0.05 of it)."""
_GATE = 40.0  # sigma(40) = 1 - 4e-18: a gate held open (or, at -40, shut) to float64 precision


def _psi(maker: ri.Recurrent) -> Callable[[Array], Array]:
    if maker.kind == "lstm":
        return lambda u: np.tanh(np.tanh(u))
    if maker.nonlinearity == "relu":
        return lambda u: np.maximum(u, 0.0)
    return np.tanh


def _probe_arrays(maker: ri.Recurrent, case: Case, layers: int,
                  gate: float = _GATE) -> dict[str, Array]:
    """The probe's arrays for a module of ``layers`` layers, shaped like the case's; ``gate``
    the bias that holds a gate open (+) or shut (-)."""
    gates = ref.GATES[maker.kind]
    candidate = {"rnn": 0, "lstm": 2, "gru": 2}[maker.kind]  # the block psi acts through
    arrays: dict[str, Array] = {"input": np.zeros(case.arrays["input"].shape)}
    if "lengths" in case.arrays:
        arrays["lengths"] = case.arrays["lengths"]
    for name, a in case.arrays.items():
        if name.startswith(("weight_", "bias_")) and int(name.split("_l")[1][0]) < layers:
            arrays[name] = np.zeros(a.shape)
    hidden = case.arrays["weight_hh_l0"].shape[0] // gates
    out = case.arrays["weight_hh_l0"].shape[1]
    block = slice(candidate * hidden, (candidate + 1) * hidden)
    for name in [n for n in arrays if n.startswith("bias_ih")]:
        layer, direction = int(name.split("_l")[1][0]), int(name.endswith("_reverse"))
        suffix = name.removeprefix("bias_ih")
        arrays[name][block] = PROBE_BIAS[layer]
        if maker.kind == "lstm":  # i and o open, f shut: c = g, h = tanh(g)
            arrays[name][:hidden] = gate
            arrays[name][hidden:2 * hidden] = -gate
            arrays[name][3 * hidden:] = gate
            if f"weight_hr{suffix}" in arrays:  # project onto the first P units
                np.fill_diagonal(arrays[f"weight_hr{suffix}"], 1.0)
        if maker.kind == "gru":  # z shut: h = n
            arrays[name][hidden:2 * hidden] = -gate
        if layer > 0:  # unit j of this direction reads position (direction, j) of the input
            weight = arrays[f"weight_ih{suffix}"]
            for j in range(out):
                weight[candidate * hidden + j, direction * out + j] = 1.0
    return arrays


@contextlib.contextmanager
def _seeded(seed: int, device: str) -> Iterator[None]:
    """torch's generators seeded with ``seed`` inside, restored after."""
    devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _output_shape(case: Case) -> tuple[int, ...]:
    width = case.arrays["weight_hh_l0"].shape[1] * (2 if case.options["bidirectional"] else 1)
    return (*case.arrays["input"].shape[:-1], width)


def _valid(case: Case) -> Array:
    """Which (time, batch) positions of the output exist, in the output's layout."""
    shape = _output_shape(case)[:-1]
    if "lengths" not in case.arrays:
        return np.ones(shape, dtype=bool)
    steps = np.arange(shape[1] if case.options["batch_first"] else shape[0])
    valid = steps[:, None] < case.arrays["lengths"][None, :]
    return valid.T if case.options["batch_first"] else valid


def recover_masks(spec: OpSpec, case: Case, dtype: torch.dtype, device: str, seed: int,
                  gate: float = _GATE) -> Array:
    """The 0/1 dropout masks torch draws between the layers of ``spec``'s module on ``case``
    (options ``num_layers`` and ``dropout``) under ``seed``: (num_layers - 1, *output shape),
    from probe runs (the comment above). Raises AssertionError when a probe output is not one
    of the two values its decode expects."""
    maker = _maker(spec)
    p = case.options["dropout"]
    layers = case.options["num_layers"]
    shape = _output_shape(case)
    masks = np.zeros((layers - 1, *shape))
    if p >= 1.0:  # everything is dropped (torch returns zeros, no draw to recover)
        return masks
    psi, valid = _psi(maker), _valid(case)[..., None]
    y = psi(np.full(shape, PROBE_BIAS[0]))
    for layer in range(1, layers):
        probe = Case(_probe_arrays(maker, case, layer + 1, gate), (),
                     {**case.options, "num_layers": layer + 1}, case.seed)
        tensors = gc.to_tensors(probe, dtype, device)
        with _seeded(seed, device), torch.no_grad():
            flat = spec.torch_fn(**tensors, **probe.options)
        out = compare.to_numpy(flat)[:math.prod(shape)].reshape(shape)
        kept = psi(y / (1.0 - p) + PROBE_BIAS[layer])
        dropped = psi(np.zeros(shape) + PROBE_BIAS[layer])
        gap = float(np.min(np.abs(kept - dropped)))
        assert gap > 0.2, f"probe values {gap:.3g} apart for p={p}: choose other PROBE_BIAS"
        is_kept = np.abs(out - kept) < np.abs(out - dropped)
        off = np.where(valid, np.minimum(np.abs(out - kept), np.abs(out - dropped)), 0.0)
        assert off.max() < 0.05, (
            f"{spec.name}: probe output {off.max():.3g} away from both values its decode "
            f"expects (layer {layer}): the probe does not isolate the dropout mask")
        masks[layer - 1] = is_kept
        y = np.where(is_kept, kept, dropped)
    return masks


def _with_seed(torch_fn: Callable[..., torch.Tensor], seed: int,
               device: str) -> Callable[..., torch.Tensor]:
    """``torch_fn`` run under ``seed``; the reference's ``dropout_mask`` is not passed to it
    (torch draws its own mask)."""

    def seeded(dropout_mask: Any = None, **kwargs: Any) -> torch.Tensor:
        with _seeded(seed, device):
            return torch_fn(**kwargs)

    seeded.__name__ = f"{getattr(torch_fn, '__name__', 'torch_fn')} (seeded)"
    return seeded


def _dropout_case(spec: OpSpec, case: Case, dtype: torch.dtype, device: str,
                  seed: int) -> tuple[OpSpec, Case]:
    """The record run with dropout under ``seed``, and the case with torch's masks added."""
    masks = recover_masks(spec, case, dtype, device, seed)
    dropped = Case({**case.arrays, "dropout_mask": masks}, case.differentiable,
                   case.options, case.seed)
    return dataclasses.replace(spec, torch_fn=_with_seed(spec.torch_fn, seed, device)), dropped


@pytest.mark.parametrize("spec", LAYERS, ids=catalog.spec_id)
@settings(max_examples=25)  # each example runs 1-2 probes besides the checks
@given(data=st.data())
def test_dropout_between_layers_with_torchs_masks(spec: OpSpec, dtype: torch.dtype,
                                                  device: str, data: st.DataObject) -> None:
    """In training with dropout p, torch's output and every gradient equal the reference's for
    the masks torch drew (recovered by :func:`recover_masks`): kept elements of each layer's
    output scaled by 1 / (1 - p) on the way into the next layer, the same masks in the backward
    pass; and the reference agrees with finite differences given them. Not checked: that the
    masks are Bernoulli(1 - p) (a statistical question, not an arithmetic one)."""
    maker = dataclasses.replace(_maker(spec), dropout=True)
    case = data.draw(maker.strategy(), label="case")
    seed = data.draw(st.integers(0, 2**31 - 1), label="torch seed")
    spec, case = _dropout_case(spec, case, dtype, device, seed)
    if maker.nonlinearity == "relu":  # the masks move the pre-activations: keep off the kink
        assume(ri.kink_distance(dict(case.arrays), dict(case.options)) >= ri.RELU_MARGIN)
    gc.check_forward(spec, case, dtype, device)
    gc.check_gradient(spec, case, dtype, device)
    if dtype == torch.float64:
        gc.check_reference_vjp(spec, case)


@pytest.mark.parametrize("spec", LAYERS, ids=catalog.spec_id)
@settings(max_examples=25)  # the module's mode is all that differs from the records' checks
@given(data=st.data())
def test_dropout_is_off_in_eval_mode(spec: OpSpec, dtype: torch.dtype, device: str,
                                     data: st.DataObject) -> None:
    """A module with dropout p in eval mode computes the network without dropout (forward and
    gradients against the reference with ``training=False``)."""
    case = data.draw(dataclasses.replace(_maker(spec), dropout=True).strategy(), label="case")
    case = Case(case.arrays, case.differentiable, {**case.options, "training": False},
                case.seed)
    gc.check_forward(spec, case, dtype, device)
    gc.check_gradient(spec, case, dtype, device)


LSTM = catalog.by_name("lstm")


def _fixed_dropout_case() -> Case:
    """A 3-layer bidirectional LSTM with p = 0.5: both masks have kept and dropped elements."""
    options = {"num_layers": 3, "bidirectional": True, "batch_first": False, "dropout": 0.5}
    rng = np.random.default_rng(7)
    arrays = {"input": rng.standard_normal((4, 2, 4))}  # T = 4, B = 2, input 4, hidden 4
    for layer in range(3):
        for suffix in ("", "_reverse"):
            n_in = 4 if layer == 0 else 8
            arrays |= {f"weight_ih_l{layer}{suffix}": rng.standard_normal((16, n_in)) / 2,
                       f"weight_hh_l{layer}{suffix}": rng.standard_normal((16, 4)) / 2,
                       f"bias_ih_l{layer}{suffix}": rng.standard_normal(16) / 2,
                       f"bias_hh_l{layer}{suffix}": rng.standard_normal(16) / 2}
    return Case(arrays, tuple(arrays), options, 0)


def test_dropout_check_fails_on_a_wrong_mask(dtype: torch.dtype) -> None:
    """The recovered masks pass; the same masks with one element flipped fail: the check sees
    the mask, and the recovery is what makes it pass."""
    spec, case = _dropout_case(LSTM, _fixed_dropout_case(), dtype, "cpu", seed=11)
    masks = case.arrays["dropout_mask"]
    assert 0 < masks.mean() < 1 and masks.shape == (2, 4, 2, 8)
    gc.check_forward(spec, case, dtype, "cpu")
    for layer in range(2):
        wrong = masks.copy()
        wrong[layer, 1, 0, 3] = 1 - wrong[layer, 1, 0, 3]
        bad = Case({**case.arrays, "dropout_mask": wrong}, case.differentiable, case.options,
                   case.seed)
        with pytest.raises(AssertionError, match="lstm: forward is not close"):
            gc.check_forward(spec, bad, dtype, "cpu")


def test_mask_recovery_fails_on_a_probe_that_does_not_isolate_the_mask() -> None:
    """A probe whose gates are left half open mixes the steps (c accumulates over time, h is
    no longer psi of one input): the decode says so instead of returning a wrong mask."""
    with pytest.raises(AssertionError, match="does not isolate the dropout mask"):
        recover_masks(LSTM, _fixed_dropout_case(), torch.float64, "cpu", seed=11, gate=0.0)


# --- the relu RNN's inputs keep off its kinks ----------------------------------------------


RELU = [s for s in (*records.RECORDS, *records.PACKED)
        if getattr(s.inputs, "nonlinearity", None) == "relu"]


@pytest.mark.parametrize("spec", RELU, ids=catalog.spec_id)
@given(data=st.data())
def test_relu_cases_keep_their_pre_activations_off_the_kink(spec: OpSpec,
                                                            data: st.DataObject) -> None:
    """Every pre-activation of a drawn relu case is at least RELU_MARGIN from 0, where
    relu' jumps, or exactly 0 (structurally: ``kink_distance``): finite differences and
    float32 rounding never straddle the kink."""
    case = data.draw(spec.cases(), label="case")
    arrays = dict(case.arrays)
    if "weight_ih" in arrays:  # a cell: one step of a one-layer network
        arrays = {"input": np.atleast_2d(arrays.pop("input"))[None],
                  **({"h_0": np.atleast_2d(arrays.pop("h_0"))[None]} if "h_0" in arrays
                     else {}),
                  **{f"{k}_l0": v for k, v in arrays.items()}}
    assert ri.kink_distance(arrays, dict(case.options)) >= ri.RELU_MARGIN


@pytest.mark.parametrize("spec", [s for s in RELU if s in records.RECORDS], ids=catalog.spec_id)
def test_relu_rnn_at_a_pre_activation_of_exactly_zero(spec: OpSpec, dtype: torch.dtype,
                                                      device: str) -> None:
    """Exactly at relu's kink (a = 0.5 * 1 - 0.5 = 0, exact in every dtype) torch takes
    relu'(0) = 0, as the reference does: the weight_ih gradient there is 0, not g x."""
    arrays: dict[str, Array] = {"input": np.ones((1, 1)), "weight_ih": np.full((1, 1), 0.5),
                                "weight_hh": np.zeros((1, 1)), "bias_ih": np.full(1, -0.5),
                                "bias_hh": np.zeros(1)}
    options: dict[str, Any] = {}
    if "weight_ih" not in spec.inputs.sized(2).arrays:  # a layer: T = 1, B = 1, one layer
        arrays = {"input": arrays["input"][None],
                  **{f"{k}_l0": v for k, v in arrays.items() if k != "input"}}
        options = {"num_layers": 1, "bidirectional": False, "batch_first": False}
    case = Case(arrays, tuple(arrays), options, 0)
    gc.check_forward(spec, case, dtype, device)
    gc.check_gradient(spec, case, dtype, device)


# --- layouts: non-contiguous views of every array ----------------------------------------------


def _view(a: Array, dtype: torch.dtype, device: str
          ) -> tuple[torch.Tensor, torch.Tensor, Callable[[Array], Array]]:
    """A leaf tensor, a non-contiguous view of it holding ``a``'s values (transposed for 2 or
    more dimensions, every other element for one), and the map of a gradient of the view onto
    the leaf."""
    if a.ndim >= 2:
        leaf = torch.tensor(np.ascontiguousarray(a.T), dtype=dtype, device=device,
                            requires_grad=True)
        return leaf, leaf.T if a.ndim == 2 else leaf.permute(*reversed(range(a.ndim))), \
            lambda g: np.ascontiguousarray(g.T)
    base = np.zeros(2 * a.size)
    base[::2] = a

    def pull(g: Array) -> Array:
        out = np.zeros(base.shape)
        out[::2] = g
        return out

    leaf = torch.tensor(base, dtype=dtype, device=device, requires_grad=True)
    return leaf, leaf[::2], pull


@pytest.mark.parametrize("spec", [*records.RECORDS, *records.PACKED], ids=catalog.spec_id)
@settings(max_examples=10)  # the layout is fixed; the draws only vary the views' extents
@given(data=st.data())
def test_non_contiguous_arrays(spec: OpSpec, dtype: torch.dtype, device: str,
                               data: st.DataObject) -> None:
    """Every float array (input, initial states, weights, biases) given as a non-contiguous
    view: forward and every gradient (of the leaf behind the view) against the reference."""
    case = data.draw(spec.cases(), label="case").rounded_to(dtype)
    views = {name: _view(a, dtype, device) for name, a in case.arrays.items()
             if name in case.differentiable}
    # a view is non-contiguous wherever it can be (two sides > 1, or a 1-D array of > 1)
    assert all(not v.is_contiguous() for _, v, _ in views.values()
               if sum(n > 1 for n in v.shape) >= min(2, v.ndim))
    others = {k: t for k, t in gc.to_tensors(case, dtype, device).items() if k not in views}
    out = spec.torch_fn(**{k: v for k, (_, v, _) in views.items()}, **others, **case.options)
    g = gc.round_to(gc.cotangent(case, tuple(out.shape)), dtype)
    out.backward(torch.tensor(g, dtype=dtype, device=device))
    context = f"{dtype}, non-contiguous views, device={device}".replace("torch.", "")
    tol = dict(spec.tol)
    compare.assert_close(compare.to_numpy(out), spec.reference(case),
                         tol=tols.resolve(dtype, tols.Kind.FORWARD,
                                          tol.get((tols.Kind.FORWARD, dtype))),
                         what=f"{spec.name} on non-contiguous views: forward", context=context,
                         case=case.describe())
    expected = spec.reference_vjp(g, case)
    for name, (leaf, _, pull) in views.items():
        compare.assert_close(compare.to_numpy(leaf.grad), pull(expected[name]),
                             tol=tols.resolve(dtype, tols.Kind.GRADIENT,
                                              tol.get((tols.Kind.GRADIENT, dtype))),
                             what=f"{spec.name} on non-contiguous views: VJP w.r.t. {name}",
                             context=context, case=case.describe())


# The thorough profile's seed 1301 drew a GRU cell whose update gate saturates (input at scale
# 9, h' = -9.6e-9 from n ~ 0.1): each evaluation of the reference is off by ~eps |n|, so the
# difference quotient at h = 1e-6 was 0.9 % off a correct VJP, beyond a rounding floor taken
# from |h'|. The floor now takes the gate terms' sizes (RecurrentGates.forward).
_SATURATED_GRU = Case(
    {"input": np.array([4.088812033451808, 8.695546247331595, -3.0549256643726497,
                        -6.360886892386224, -3.219369412805364, 8.999044078310247,
                        2.0759947626717934]),
     "weight_ih": np.array([
         [0.6692304885898045, 0.6448611358062113, -0.18387574185576844, 1.3067209615475186,
          -0.07025617319342337, -1.0146048584070984, 1.5533225578711267],
         [-1.5725490361907144, 1.3190378887683254, -1.2715165431303903, -0.1611672558507256,
          0.28067536444685637, 0.7508825319785467, 1.2826866186724664],
         [0.3118963107313339, 0.00221343253535055, 1.4344836298504622, 0.8536824112837437,
          1.5830242491044444, 1.0390093609850428, -1.558098844835008]]),
     "weight_hh": np.array([[0.8945235367789485], [-2.1631769660818225],
                            [-0.29937211780114553]])},
    ("input", "weight_ih", "weight_hh"), {}, 5089)


def test_saturated_gru_cell_reference_passes_finite_differences() -> None:
    gc.check_reference_vjp(catalog.by_name("gru_cell"), _SATURATED_GRU)


# Seed 2143 (torch 2.14.1 and 2.13.0) drew a one-step GRU layer whose update gate saturates
# (z = 1 - 4.3e-8, output -4.3e-8 from n ~ -1): the reference's finite differences and the JVP
# check failed their floor of |f| by 1.6x (1.03e-10 against 6.3e-11). A layer now carries its
# steps' M (RecurrentGates.forward) as a cell does.
_SATURATED_GRU_LAYER = Case(
    {"input": np.array([
        0.17047446994658685, -0.8454802176096482, -2.4558008999192737, 6.692163206022598,
        6.634744430922234, -7.551299002410242]).reshape((1, 6)),
     "weight_ih_l0": np.array([
        0.5622524470425171, -0.09450740419889243, 0.07366968591425628, 0.24425643192283555,
        0.6863167282357586, 0.09945083536790324, 0.4579930698901042, -1.3991485634446017,
        0.504351630620009, -0.8018735668585038, 2.178558662706579, -1.0399612328136416,
        0.4402893715304192, 0.3121521966329616, 1.3599900025796006, -0.6176477033982081,
        -1.9486573783482604, 1.3682686782157696]).reshape((3, 6)),
     "weight_hh_l0": np.array([
        -0.27213572018498106, -0.06758226451770291, -1.5132867535578232]).reshape((3, 1))},
    ("input", "weight_ih_l0", "weight_hh_l0"),
    {"num_layers": 1, "bidirectional": False, "batch_first": False}, 1045441)


def test_saturated_gru_layer_passes_finite_differences_and_the_jvp_check() -> None:
    spec = catalog.by_name("gru")
    gc.check_reference_vjp(spec, _SATURATED_GRU_LAYER)
    higher.check_jvp(spec, _SATURATED_GRU_LAYER)


@pytest.mark.parametrize(("kind", "gates"), [("gru", 3), ("lstm", 4), ("rnn_tanh", 1)])
def test_a_layers_rounding_sizes_are_its_cells_over_one_step(kind: str, gates: int) -> None:
    """RecurrentGates.forward of a one-step, one-layer network equals that of the cell on the
    same arrays (the layer's output and h_n are the cell's h'; the LSTM's c_n its c'); over two
    steps the second step's M exceeds the cell's on that step alone, from exact inputs (the
    first step's M is carried)."""
    rng = np.random.default_rng(5)
    batch, features, hidden = 3, 4, 5
    options = {"num_layers": 1, "bidirectional": False, "batch_first": False}
    layer, cell = catalog.by_name(kind), catalog.by_name(f"{kind}_cell")
    assert layer.gates is not None and cell.gates is not None
    weights = {"weight_ih": rng.standard_normal((gates * hidden, features)),
               "weight_hh": rng.standard_normal((gates * hidden, hidden)),
               "bias_ih": rng.standard_normal(gates * hidden)}
    steps = rng.standard_normal((2, batch, features))

    def of_layer(x: Array) -> Array:
        arrays = {"input": x, **{f"{k}_l0": v for k, v in weights.items()}}
        return np.asarray(layer.gates.forward(layer, Case(arrays, ("input",), options, 1)))

    def of_cell(x: Array, **state: Array) -> Array:
        arrays = {"input": x, **state, **weights}
        return np.asarray(cell.gates.forward(cell, Case(arrays, ("input",), {}, 1)))

    size = batch * hidden
    m_one, m_cell = of_layer(steps[:1]), of_cell(steps[0])
    np.testing.assert_allclose(m_one[:size], m_cell[:size], rtol=1e-14)  # output
    np.testing.assert_allclose(m_one[size:], m_cell, rtol=1e-14)  # h_n (and c_n)
    first = np.asarray(layer.ref(steps[:1], **{f"{k}_l0": v for k, v in weights.items()},
                                 **options))
    state = {"h_0": first[size:2 * size].reshape(batch, hidden)}
    if kind == "lstm":
        state["c_0"] = first[2 * size:].reshape(batch, hidden)
    m_two, m_alone = of_layer(steps), of_cell(steps[1], **state)
    assert np.all(m_two[2 * size:3 * size] > m_alone[:size])  # h_n after two steps


def _scaled_vjp(spec: OpSpec, name: str, factor: float) -> OpSpec:
    """The record with its reference VJP w.r.t. ``name`` multiplied by ``factor`` (a planted
    bug)."""
    assert spec.ref_vjp is not None
    ref_vjp = spec.ref_vjp

    def planted(g: Array, **arrays: Array) -> dict[str, Array]:
        grads = dict(ref_vjp(g, **arrays))
        grads[name] = factor * grads[name]
        return grads
    return dataclasses.replace(spec, ref_vjp=planted)


@pytest.mark.parametrize(("record", "name", "saturated", "factor"), [
    ("gru_cell", "weight_ih", _SATURATED_GRU, 10.0), ("gru", "input", _SATURATED_GRU_LAYER, 2.0)])
def test_gru_finite_differences_still_catch_a_planted_vjp_error(
        record: str, name: str, saturated: Case, factor: float) -> None:
    """The floor from M (RecurrentGates.forward) does not hide a VJP that is off: by 10 % on a
    typical case, and by the factor given on a saturated one, whose <J^T g, v> (2.9e-9 for the
    cell's weight_ih, 1.2e-7 for the layer's input) is near the floor that 64 ulp of M give a
    difference quotient at h = 1e-6 (M ~ 1: ~1.4e-8 per unit of |g|; the evaluations' actual
    noise was 1e-10 to 3e-11: an adaptive step would resolve more)."""
    spec = catalog.by_name(record)
    assert isinstance(spec, OpSpec)
    for bug, case in ((1.1, spec.inputs.sized(12, seed=3)), (factor, saturated)):
        with pytest.raises(AssertionError, match=rf"w\.r\.t\. {name} disagrees"):
            gc.check_reference_vjp(_scaled_vjp(spec, name, bug), case)
