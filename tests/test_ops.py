"""Every op record: forward value, torch's gradient, and the reference against finite differences;
and, for records with a ``module``, the torch.nn module form against the functional form.

Records and dtypes/devices are parametrized (ids name the op: ``pytest -k softmax``); Hypothesis
draws shapes, values and options inside each test.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from suite import catalog
from suite import gradcheck as gc
from suite.specs import Case, OpSpec

OPS = pytest.mark.parametrize("spec", catalog.OPS, ids=catalog.spec_id)


@OPS
@given(data=st.data())
def test_forward_matches_reference(spec: OpSpec, dtype: torch.dtype, device: str, data) -> None:
    gc.check_forward(spec, data.draw(spec.inputs.strategy(), label="case"), dtype, device)


@OPS
@given(data=st.data())
def test_gradient_matches_reference(spec: OpSpec, dtype: torch.dtype, device: str, data) -> None:
    gc.check_gradient(spec, data.draw(spec.inputs.strategy(), label="case"), dtype, device)


@OPS
@given(data=st.data())
def test_reference_vjp_matches_finite_differences(spec: OpSpec, data) -> None:
    gc.check_reference_vjp(spec, data.draw(spec.inputs.strategy(), label="case"))


# Magnitudes that overflow naive forms: exp(1e4) is inf in float64, exp(89) in float32.
LARGE = (1e4, -1e4)


@OPS
@pytest.mark.parametrize("factor", LARGE, ids=["1e4", "-1e4"])
def test_reference_is_finite_at_large_inputs(spec: OpSpec, factor: float) -> None:
    case = spec.inputs.sized(8, seed=0).scaled(factor)
    value = spec.reference(case)
    g = gc.cotangent(case, np.shape(value))
    grads = spec.reference_vjp(g, case)
    gc.require_vjp_shapes(grads, case.arrays, case.differentiable, spec.ref_vjp)
    bad = [name for name, a in {"forward": value, **grads}.items() if not np.isfinite(a).all()]
    assert not bad, f"{spec.name}: reference is not finite at |x| ~ {abs(factor):g} in: {bad}\n" \
                    f"Case:\n{case.describe()}"


@pytest.mark.parametrize("spec", [s for s in catalog.OPS if s.overflow_prone], ids=catalog.spec_id)
@pytest.mark.parametrize("factor", LARGE, ids=["1e4", "-1e4"])
def test_forward_matches_reference_at_large_inputs(spec: OpSpec, factor: float, dtype, device):
    gc.check_forward(spec, spec.inputs.sized(8, seed=0).scaled(factor), dtype, device)


# Records with a torch.nn module form (nn.X beside F.x): losses, activations, layers.
WITH_MODULE = [s for s in catalog.OPS if s.module is not None]


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss:UserWarning")
@pytest.mark.parametrize("spec", WITH_MODULE, ids=catalog.spec_id)
# The module calls the same kernel as the functional form: what can differ is how arguments,
# options and modes reach it, which 25 draws of every option cover (the CI budget, not the
# numerics).
@settings(max_examples=25)
@given(data=st.data())
def test_module_agrees_with_functional(spec: OpSpec, dtype: torch.dtype, device: str,
                                       data) -> None:
    gc.check_module_form(spec, data.draw(spec.inputs.strategy(), label="case"), dtype, device)


BROADCASTS = [s for s in catalog.OPS if s.broadcasts]


def _broadcast_case(spec: OpSpec, data: st.DataObject) -> Case:
    """A drawn case with one of ``spec.broadcasts`` cut to size 1 along some of its dimensions,
    so that torch (and NumPy, in the reference) broadcast it against the other arrays."""
    case = data.draw(spec.inputs.strategy(), label="case")
    name = data.draw(st.sampled_from(spec.broadcasts), label="broadcast argument")
    array = case.arrays[name]
    cuttable = range(array.ndim if spec.broadcasts_last_dim else array.ndim - 1)
    long_axes = [i for i in cuttable if array.shape[i] > 1]
    assume(long_axes)
    cut = data.draw(st.sets(st.sampled_from(long_axes), min_size=1), label="axes cut to 1")
    index = tuple(slice(0, 1) if i in cut else slice(None) for i in range(array.ndim))
    return dataclasses.replace(case, arrays={**case.arrays, name: array[index].copy()})


@pytest.mark.parametrize("spec", BROADCASTS, ids=catalog.spec_id)
@settings(max_examples=25)  # ceiling: 13 records x 2 dtypes; the layouts vary little per draw
@given(data=st.data())
def test_broadcast_argument(spec: OpSpec, dtype: torch.dtype, device: str,
                            data: st.DataObject) -> None:
    """An argument of smaller (broadcastable) shape: torch's forward and gradients against the
    reference, whose VJP sums the gradient back over the broadcast copies, itself checked
    against finite differences."""
    case = _broadcast_case(spec, data)
    with warnings.catch_warnings():
        # torch warns that a target size different from the input size "will likely lead to
        # incorrect results due to broadcasting": that broadcasting is what is checked here.
        warnings.simplefilter("ignore", UserWarning)
        gc.check_forward(spec, case, dtype, device)
        gc.check_gradient(spec, case, dtype, device)
    gc.check_reference_vjp(spec, case)


def test_every_broadcast_record_names_its_arrays() -> None:
    """``broadcasts`` names arrays the record's input maker draws (a typo would check nothing)."""
    for spec in BROADCASTS:
        drawn = spec.inputs.sized(8, seed=0).arrays  # type: ignore[attr-defined]
        assert set(spec.broadcasts) <= set(drawn), (spec.name, spec.broadcasts, list(drawn))
