"""Every op record: forward value, torch's gradient, and the reference against finite differences.

Records and dtypes/devices are parametrized (ids name the op: ``pytest -k softmax``); Hypothesis
draws shapes, values and options inside each test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from suite import catalog
from suite import gradcheck as gc
from suite.specs import OpSpec

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
    bad = [name for name, a in {"forward": value, **grads}.items() if not np.isfinite(a).all()]
    assert not bad, f"{spec.name}: reference is not finite at |x| ~ {abs(factor):g} in: {bad}\n" \
                    f"Case:\n{case.describe()}"


@pytest.mark.parametrize("spec", [s for s in catalog.OPS if s.overflow_prone], ids=catalog.spec_id)
@pytest.mark.parametrize("factor", LARGE, ids=["1e4", "-1e4"])
def test_forward_matches_reference_at_large_inputs(spec: OpSpec, factor: float, dtype, device):
    gc.check_forward(spec, spec.inputs.sized(8, seed=0).scaled(factor), dtype, device)
