"""Transform agreement: torch.func.vjp against autograd (the battery's check), torch.compile
against the reference on a representative subset."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gradsuite as gs
from suite import catalog, higher
from suite.specs import OpSpec

OPS = pytest.mark.parametrize("spec", catalog.OPS, ids=catalog.spec_id)


TestFunc = gs.battery(*catalog.OPS, only=("test_func_vjp_matches_autograd",))


# A representative subset: an activation, a linear layer, a loss and a norm. Each compile takes
# seconds, so the records are compiled once per dtype with dynamic shapes (suite.higher).
COMPILED = ("gelu", "linear", "cross_entropy", "layer_norm")


# Ceiling: a new shape or option can still trigger a recompile (seconds each); 5 examples per
# record and dtype keep the test near 40 s under the ci profile.
@pytest.mark.parametrize("spec", [catalog.by_name(n) for n in COMPILED], ids=catalog.spec_id)
@settings(max_examples=5)
@given(data=st.data())
def test_compiled_matches_reference(spec: OpSpec, dtype: torch.dtype, device: str,
                                    data: st.DataObject) -> None:
    case = data.draw(spec.cases(), label="case")
    try:
        higher.check_compiled(spec, case, dtype, device)
    except higher.CompileError as error:
        # A compile failure fails the test with the compiler's error (not as a numerical
        # mismatch, and never as a pass or a silent skip).
        pytest.fail(f"torch.compile failed (not a numerical mismatch): {error}")
