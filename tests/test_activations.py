"""Activations beyond the generic checks of tests/test_ops.py: a census of torch.nn's activation
classes against the catalogue, exact non-differentiable points, NaN and infinities, and layouts
(non-contiguous, expanded, 0-size and 0-d inputs). docs/conventions.md states every rule checked.

Everything is table-driven from the records: the exact points come from ``OpSpec.exact_points``,
the conventions there from the reference VJPs, and the accepted dims from the input maker.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from suite import catalog, compare, versions
from suite import gradcheck as gc
from suite import inputs as hi
from suite import strategies as hs
from suite import tolerances as tols
from suite.specs import Case, OpSpec, round_to

ACTIVATIONS = [s for s in catalog.OPS if s.family == "activation"]
ELEMENTWISE = [s for s in ACTIVATIONS if isinstance(s.inputs, hi.Elementwise)]
WITH_EXACT_POINTS = [s for s in ACTIVATIONS if s.exact_points is not None]

# Classes of torch.nn.modules.activation that are not activation functions, with the reason.
NOT_ACTIVATIONS = {
    "MultiheadAttention": "a layer with learned projections, not an activation function",
}


# Activation records without a torch.nn module form, with the reason (the record says it too).
NO_MODULE = {
    "clamp": "torch.nn has no Clamp module (nn.Hardtanh, clamp with both bounds, has a record)",
}


def _documented_class(spec: OpSpec) -> str | None:
    """The torch.nn class a record's docs page names (``.../torch.nn.ReLU.html`` -> ReLU)."""
    match = re.search(r"/torch\.nn\.(\w+)\.html$", spec.docs)
    return match.group(1) if match else None


def test_every_torch_nn_activation_has_a_record() -> None:
    """Lists torch.nn's activation classes at run time: a new one fails until it has a record
    whose ``module`` is that class (tests/test_ops.py checks it against the functional form)."""
    module = torch.nn.modules.activation
    classes = {name for name, obj in vars(module).items()
               if inspect.isclass(obj) and issubclass(obj, torch.nn.Module)
               and obj.__module__ == module.__name__ and not name.startswith("_")
               and getattr(torch.nn, name, None) is obj}
    covered = {s.module.__name__ for s in ACTIVATIONS if s.module is not None}
    missing = sorted(classes - covered - set(NOT_ACTIVATIONS))
    assert not missing, (f"torch {torch.__version__} has activation classes without a record "
                         f"(with module=...) in suite/catalog/activations.py: {missing} (add "
                         f"one, or list the class in NOT_ACTIVATIONS with the reason)")
    # The exclusions are written against torch 2.13; an older torch lacks some of the classes
    # they name (added later), which is not staleness.
    if versions.torch_at_least("2.13"):
        stale = sorted(set(NOT_ACTIVATIONS) - classes)
        assert not stale, f"NOT_ACTIVATIONS names classes torch no longer has: {stale}"


def test_every_activation_record_has_its_module_form() -> None:
    """Each record's ``module`` is the class its docs page documents; only the records in
    NO_MODULE have none."""
    without = sorted(s.name for s in ACTIVATIONS if s.module is None)
    assert without == sorted(NO_MODULE), (f"activation records without module=: {without}; "
                                          f"expected exactly {sorted(NO_MODULE)}")
    wrong = {s.name: (s.module.__name__, _documented_class(s)) for s in ACTIVATIONS
             if s.module is not None and s.module.__name__ != _documented_class(s)}
    assert not wrong, f"records whose module is not the documented class (module, docs): {wrong}"


# --- exact points -------------------------------------------------------------------------------


def _at_exact_points(case: Case, points: tuple[float, ...]) -> Case:
    """The case with every ``input`` element replaced by the exact points, cycling through them."""
    x = case.arrays["input"]
    values = np.resize(np.asarray(points, dtype=np.float64), x.shape) if points else x
    return Case({**case.arrays, "input": values}, case.differentiable, case.options, case.seed)


@pytest.mark.parametrize("spec", WITH_EXACT_POINTS, ids=catalog.spec_id)
@settings(max_examples=20)  # a handful of points per op: 20 option draws cover them
@given(data=st.data())
def test_forward_and_gradient_at_exact_points(spec: OpSpec, dtype: torch.dtype, device: str,
                                              data) -> None:
    """torch at the op's kinks equals the reference, whose VJP states torch's convention there."""
    case = data.draw(spec.inputs.strategy(), label="case")
    assert spec.exact_points is not None
    case = _at_exact_points(case, spec.exact_points(case.options))
    gc.check_forward(spec, case, dtype, device)
    gc.check_gradient(spec, case, dtype, device)


# --- NaN and infinities -------------------------------------------------------------------------

SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

# torch results that differ from the rule, each in KNOWN_DIFFERENCES.md: checked to still fail
# (so a fix in torch shows up), then reported as xfail. Keys: (record, special value, dtype).
KNOWN_SPECIAL = {
    ("gelu", "inf", "float32"): "torch 2.1 to 2.15's vectorised float32 gelu gives NaN at +inf "
                                "(float64, the scalar path and torch 2.0.1 give inf)",
} if versions.GELU_FLOAT32_INF_IS_NAN else {}


def _masked_at_nan(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(x), np.nan, a) if a.shape == x.shape else a


def _check_special(spec: OpSpec, case: Case, dtype: torch.dtype, device: str) -> None:
    """Forward everywhere; the gradient everywhere except at NaN inputs, whose gradient torch
    does not fix (docs/conventions.md: g, 0 or NaN depending on the kernel path)."""
    __tracebackhide__ = True
    gc.check_forward(spec, case, dtype, device)
    case = case.rounded_to(dtype)
    x = case.arrays["input"]
    tensors = gc.to_tensors(case, dtype, device)
    out = spec.torch_fn(**tensors, **case.options)
    g = gc.cotangent(case, tuple(out.shape))
    g = round_to(g, dtype)
    out.backward(torch.tensor(g, dtype=dtype, device=device))
    expected = spec.reference_vjp(g, case)
    tol = tols.resolve(dtype, tols.Kind.GRADIENT, spec.tol.get((tols.Kind.GRADIENT, dtype)))
    for name in case.differentiable:
        compare.assert_close(
            _masked_at_nan(compare.to_numpy(tensors[name].grad), x),
            _masked_at_nan(expected[name], x), tol=tol,
            what=f"{spec.name}: VJP w.r.t. {name} (NaN inputs' own entries not compared)",
            context=f"{dtype}, input={x.shape}, device={device}".replace("torch.", ""),
            inputs={"input": x}, case=case.describe())


@pytest.mark.parametrize("value", list(SPECIAL), ids=list(SPECIAL))
@pytest.mark.parametrize("spec", ACTIVATIONS, ids=catalog.spec_id)
def test_forward_and_gradient_with_special_values(spec: OpSpec, value: str,
                                                  dtype: torch.dtype, device: str) -> None:
    """NaN or an infinity in the first and last element (both halves of GLU's dim, two rows of
    softmax's): forward and gradient equal the reference's rule (docs/conventions.md).

    sized(4) gives 16 elements or more, so torch's vectorised kernels (4 float64 or 8 float32
    lanes on AVX2) handle them: the path any realistic tensor takes.
    """
    case = spec.inputs.sized(4, seed=0)
    x = case.arrays["input"].copy()
    x.flat[0] = x.flat[-1] = SPECIAL[value]
    case = Case({**case.arrays, "input": x}, case.differentiable, case.options, case.seed)
    known = KNOWN_SPECIAL.get((spec.name, value, str(dtype).replace("torch.", "")))
    if known is None:
        _check_special(spec, case, dtype, device)
        return
    with pytest.raises(AssertionError):
        _check_special(spec, case, dtype, device)
    pytest.xfail(known)


# --- layouts ------------------------------------------------------------------------------------
#
# Each layout feeds torch the case's ``input`` through a view: ``make(a)`` returns the leaf
# tensor's values and a function turning the leaf into the view torch sees (whose values are
# the reference's input), and ``pull`` maps the reference's input gradient onto the leaf.


def _transposed(a: np.ndarray) -> tuple[np.ndarray, Callable, Callable]:
    order = tuple(reversed(range(a.ndim)))
    return (np.ascontiguousarray(np.transpose(a, order)), lambda t: t.permute(order),
            lambda g: np.transpose(g, order))


def _strided(a: np.ndarray) -> tuple[np.ndarray, Callable, Callable]:
    base = np.zeros((*a.shape[:-1], 2 * a.shape[-1]))
    base[..., ::2] = a

    def pull(g: np.ndarray) -> np.ndarray:
        out = np.zeros(base.shape)
        out[..., ::2] = g
        return out

    return base, lambda t: t[..., ::2], pull


def _expanded(a: np.ndarray) -> tuple[np.ndarray, Callable, Callable]:
    # dim 0 of size 1 broadcast to a's size (stride 0): the gradient sums over the copies
    return (a[:1].copy(), lambda t: t.expand(a.shape),
            lambda g: np.sum(g, axis=0, keepdims=True))


LAYOUTS = {"transposed": (_transposed, 2), "strided": (_strided, 1), "expanded": (_expanded, 1)}


def _check_layout(spec: OpSpec, case: Case, layout: str, dtype: torch.dtype, device: str) -> None:
    __tracebackhide__ = True
    make = LAYOUTS[layout][0]
    case = case.rounded_to(dtype)
    leaf_values, view_of, pull = make(case.arrays["input"])
    leaf = torch.tensor(leaf_values, dtype=dtype, device=device, requires_grad=True)
    view = view_of(leaf)
    x = compare.to_numpy(view)  # the values torch sees: the reference's input
    case = Case({**case.arrays, "input": x}, case.differentiable, case.options, case.seed)
    others = {k: t for k, t in gc.to_tensors(case, dtype, device).items() if k != "input"}
    out = spec.torch_fn(input=view, **others, **case.options)
    g = gc.cotangent(case, tuple(out.shape))
    g = round_to(g, dtype)
    out.backward(torch.tensor(g, dtype=dtype, device=device))
    where = f"{layout} input, {spec.name}"
    context = f"{dtype}, input={x.shape} ({layout}), device={device}".replace("torch.", "")
    ftol = tols.resolve(dtype, tols.Kind.FORWARD, spec.tol.get((tols.Kind.FORWARD, dtype)))
    compare.assert_close(compare.to_numpy(out), spec.reference(case),
                         tol=ftol, what=f"{where}: forward", context=context,
                         inputs={"input": x}, case=case.describe())
    expected = spec.reference_vjp(g, case)
    gtol = tols.resolve(dtype, tols.Kind.GRADIENT, spec.tol.get((tols.Kind.GRADIENT, dtype)))
    compare.assert_close(compare.to_numpy(leaf.grad), pull(expected["input"]), tol=gtol,
                         what=f"{where}: VJP w.r.t. the viewed tensor", context=context,
                         case=case.describe())
    for name, t in others.items():
        if name in case.differentiable:
            compare.assert_close(compare.to_numpy(t.grad), expected[name], tol=gtol,
                                 what=f"{where}: VJP w.r.t. {name}", context=context,
                                 case=case.describe())


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("spec", ELEMENTWISE, ids=catalog.spec_id)
@settings(max_examples=10)  # the layout is fixed; values and shapes only vary the view's extent
@given(data=st.data())
def test_non_contiguous_input(spec: OpSpec, layout: str, dtype: torch.dtype, device: str,
                              data) -> None:
    """A transposed, step-sliced or expanded (stride-0) view gives the reference's forward and
    gradient (the gradient of the viewed tensor: zero between the steps, summed over copies)."""
    inputs = spec.inputs
    assert isinstance(inputs, hi.Elementwise)
    min_dims = max(inputs.min_dims, LAYOUTS[layout][1])
    shape = hs.shapes(min_dims=min_dims, max_dims=max(min_dims, inputs.max_dims), max_size=256)
    _check_layout(spec, data.draw(inputs.cases(shape), label="case"), layout, dtype, device)


# Shapes with a 0-size dim, per number of dims; and the 0-d shape.
EMPTY_SHAPES = {1: [(0,)], 2: [(3, 0), (0, 2)], 3: [(0, 2, 3), (2, 0, 3)], 4: [(2, 3, 0, 4)]}


def _odd_shapes(spec: OpSpec) -> list[tuple[int, ...]]:
    inputs = spec.inputs
    assert isinstance(inputs, hi.Elementwise)
    dims = range(inputs.min_dims, inputs.max_dims + 1)
    return [s for d in dims for s in EMPTY_SHAPES.get(d, [()])]


@pytest.mark.parametrize("spec", ELEMENTWISE, ids=catalog.spec_id)
@settings(max_examples=5)  # a few fixed shapes; the values of an empty or 0-d input hardly vary
@given(data=st.data())
def test_empty_and_zero_dim_inputs(spec: OpSpec, dtype: torch.dtype, device: str, data) -> None:
    """0-size dims (and 0-d tensors, where the record accepts them) work forward and backward."""
    inputs = spec.inputs
    assert isinstance(inputs, hi.Elementwise)
    case = data.draw(inputs.cases(st.sampled_from(_odd_shapes(spec))), label="case")
    gc.check_forward(spec, case, dtype, device)
    gc.check_gradient(spec, case, dtype, device)


# --- known differences --------------------------------------------------------------------------


@pytest.mark.xfail(strict=True, reason="torch 2.13's hardsigmoid_backward multiplies by 1.0f/6.0f "
                                       "(a float32 constant) in float64: 2.98e-8 relative error "
                                       "(KNOWN_DIFFERENCES.md); the record widens its float64 "
                                       "gradient tolerance for it until torch is fixed")
def test_hardsigmoid_float64_gradient_at_the_table_tolerance() -> None:
    spec = catalog.by_name("hardsigmoid")
    assert isinstance(spec, OpSpec)
    gc.check_gradient(OpSpec(**{**spec.__dict__, "tol": {}}), spec.inputs.sized(8),
                      torch.float64, "cpu")
