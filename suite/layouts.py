"""Checks of one record at special inputs: exact non-differentiable points, NaN and infinities,
non-contiguous views, empty and 0-d tensors, and broadcast arguments.

Each takes a drawn case and turns it into the special input; the comparison is the forward and
gradient check of ``suite.gradcheck`` (or, for views, a forward and gradient through the view).
docs/conventions.md states every rule checked.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch
from hypothesis import assume
from hypothesis import strategies as st

from suite import compare
from suite import gradcheck as gc
from suite import tolerances as tols
from suite.devices import dtype_name
from suite.specs import Array, Case, OpSpec, round_to

# --- exact points ---------------------------------------------------------------------------


def at_exact_points(spec: OpSpec, case: Case) -> Case:
    """The case with every ``input`` element replaced by the record's exact points (its kinks
    for these options), cycling through them."""
    assert spec.exact_points is not None
    points = spec.exact_points(case.options)
    x = case.arrays["input"]
    values = np.resize(np.asarray(points, dtype=np.float64), x.shape) if points else x
    return dataclasses.replace(case, arrays={**case.arrays, "input": values})


def check_exact_points(spec: OpSpec, case: Case, dtype: torch.dtype, device: str) -> None:
    """torch at the op's kinks equals the reference, whose VJP states torch's convention there."""
    __tracebackhide__ = True
    case = at_exact_points(spec, case)
    gc.check_forward(spec, case, dtype, device)
    gc.check_gradient(spec, case, dtype, device)


# --- NaN and infinities ---------------------------------------------------------------------

SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def with_special_value(case: Case, value: str) -> Case:
    """The case with NaN or an infinity in the first and last ``input`` element."""
    x = case.arrays["input"].copy()
    x.flat[0] = x.flat[-1] = SPECIAL[value]
    return dataclasses.replace(case, arrays={**case.arrays, "input": x})


def _masked_at_nan(a: Array, x: Array) -> Array:
    return np.where(np.isnan(x), np.nan, a) if a.shape == x.shape else a


def check_special_value(spec: OpSpec, case: Case, value: str, dtype: torch.dtype,
                        device: str, place: bool = True) -> None:
    """Forward everywhere; the gradient everywhere except at NaN inputs, whose gradient torch
    does not fix (docs/conventions.md: g, 0 or NaN depending on the kernel path). ``place``:
    put the value in the first and last element (False: the case holds it already)."""
    __tracebackhide__ = True
    if place:
        case = with_special_value(case, value)
    gc.check_forward(spec, case, dtype, device)
    case = case.rounded_to(dtype)
    x = case.arrays["input"]
    tensors = gc.to_tensors(case, dtype, device)
    out = spec.torch_fn(**tensors, **case.options)
    g = round_to(gc.cotangent(case, tuple(out.shape)), dtype)
    out.backward(torch.tensor(g, dtype=dtype, device=device))
    expected = spec.reference_vjp(g, case, as_torch=True)
    tol = spec.tolerance(tols.Kind.GRADIENT, dtype)
    for name in case.differentiable:
        grad = tensors[name].grad
        actual = np.zeros(x.shape) if grad is None else compare.to_numpy(grad)
        compare.assert_close(
            _masked_at_nan(actual, x), _masked_at_nan(expected[name], x), tol=tol,
            what=f"{spec.name}: VJP w.r.t. {name} with {value} in the input (NaN inputs' own "
                 f"entries not compared)",
            context=f"{dtype_name(dtype)}, input={x.shape}, device={device}",
            inputs={"input": x}, case=case)


# --- views ----------------------------------------------------------------------------------
#
# Each layout feeds torch the case's ``input`` through a view: ``make(a)`` returns the leaf
# tensor's values, a function turning the leaf into the view torch sees (whose values are the
# reference's input), and ``pull`` mapping the reference's input gradient onto the leaf.

View = tuple[Array, Callable[[torch.Tensor], torch.Tensor], Callable[[Array], Array]]


def _transposed(a: Array) -> View:
    order = tuple(reversed(range(a.ndim)))
    return (np.ascontiguousarray(np.transpose(a, order)), lambda t: t.permute(order),
            lambda g: np.transpose(g, order))


def _strided(a: Array) -> View:
    base = np.zeros((*a.shape[:-1], 2 * a.shape[-1]))
    base[..., ::2] = a

    def pull(g: Array) -> Array:
        out = np.zeros(base.shape)
        out[..., ::2] = g
        return out

    return base, lambda t: t[..., ::2], pull


def _expanded(a: Array) -> View:
    # dim 0 of size 1 broadcast to a's size (stride 0): the gradient sums over the copies
    return (a[:1].copy(), lambda t: t.expand(a.shape),
            lambda g: np.sum(g, axis=0, keepdims=True))


# name -> (view maker, the fewest dims it needs)
LAYOUTS: dict[str, tuple[Callable[[Array], View], int]] = {
    "transposed": (_transposed, 2), "strided": (_strided, 1), "expanded": (_expanded, 1)}


def check_layout(spec: OpSpec, case: Case, layout: str, dtype: torch.dtype,
                 device: str) -> None:
    """A transposed, step-sliced or expanded (stride-0) view of ``input`` gives the reference's
    forward and gradient (the gradient of the viewed tensor: zero between the steps, summed over
    the copies)."""
    __tracebackhide__ = True
    make = LAYOUTS[layout][0]
    case = case.rounded_to(dtype)
    leaf_values, view_of, pull = make(case.arrays["input"])
    leaf = torch.tensor(leaf_values, dtype=dtype, device=device, requires_grad=True)
    view = view_of(leaf)
    x = compare.to_numpy(view)  # the values torch sees: the reference's input
    case = dataclasses.replace(case, arrays={**case.arrays, "input": x})
    others = {k: t for k, t in gc.to_tensors(case, dtype, device).items() if k != "input"}
    out = spec.torch_fn(input=view, **others, **case.options)
    g = round_to(gc.cotangent(case, tuple(out.shape)), dtype)
    out.backward(torch.tensor(g, dtype=dtype, device=device))
    where = f"{layout} input, {spec.name}"
    context = f"{dtype_name(dtype)}, input={x.shape} ({layout}), device={device}"
    compare.assert_close(compare.to_numpy(out), spec.reference(case),
                         tol=spec.tolerance(tols.Kind.FORWARD, dtype), what=f"{where}: forward",
                         context=context, inputs={"input": x}, case=case)
    expected = spec.reference_vjp(g, case, as_torch=True)
    gtol = spec.tolerance(tols.Kind.GRADIENT, dtype)
    leaf_grad = leaf.grad
    assert leaf_grad is not None, f"{where}: torch gave the viewed tensor no gradient"
    compare.assert_close(compare.to_numpy(leaf_grad), pull(expected["input"]), tol=gtol,
                         what=f"{where}: VJP w.r.t. the viewed tensor", context=context,
                         case=case)
    for name, t in others.items():
        if name in case.differentiable:
            grad = t.grad
            actual = np.zeros(case.arrays[name].shape) if grad is None else compare.to_numpy(grad)
            compare.assert_close(actual, expected[name], tol=gtol,
                                 what=f"{where}: VJP w.r.t. {name}", context=context,
                                 case=case)


# --- empty and 0-d --------------------------------------------------------------------------

# Shapes with a 0-size dim, per number of dims; and the 0-d shape.
EMPTY_SHAPES: dict[int, list[tuple[int, ...]]] = {
    1: [(0,)], 2: [(3, 0), (0, 2)], 3: [(0, 2, 3), (2, 0, 3)], 4: [(2, 3, 0, 4)]}


def odd_shapes(min_dims: int, max_dims: int) -> list[tuple[int, ...]]:
    """Shapes with a 0-size dim (and the 0-d shape) for inputs of ``min_dims`` to ``max_dims``."""
    return [s for d in range(min_dims, max_dims + 1) for s in EMPTY_SHAPES.get(d, [()])]


# --- broadcast arguments --------------------------------------------------------------------


def broadcast_case(spec: OpSpec, data: st.DataObject) -> Case:
    """A drawn case with one of ``spec.broadcasts`` cut to size 1 along some of its dimensions,
    so that torch (and NumPy, in the reference) broadcast it against the other arrays."""
    case = data.draw(spec.cases(), label="case")
    name = data.draw(st.sampled_from(spec.broadcasts), label="broadcast argument")
    array = case.arrays[name]
    cuttable = range(array.ndim if spec.broadcasts_last_dim else array.ndim - 1)
    long_axes = [i for i in cuttable if array.shape[i] > 1]
    assume(long_axes)
    cut = data.draw(st.sets(st.sampled_from(long_axes), min_size=1), label="axes cut to 1")
    index = tuple(slice(0, 1) if i in cut else slice(None) for i in range(array.ndim))
    smaller = array[index].copy()
    # The input maker kept every element (or row) away from the op's kinks with the arrays it
    # drew; the cut replaces this argument's values by its first slice's, which may sit at a
    # kink against the other arguments (a triplet's |a - p + eps| near 0, its swap's tie),
    # where a finite difference straddles it. The same rule, on what torch sees, keeps it away.
    near_kink = getattr(spec.inputs, "near_kink", None)
    if near_kink is not None:
        assume(not near_kink({**case.arrays, name: np.broadcast_to(smaller, array.shape)},
                             case.options))
    return dataclasses.replace(case, arrays={**case.arrays, name: smaller})
