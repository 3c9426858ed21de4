"""The precision ladder: float16 and bfloat16 against the float64 reference.

float64 and float32 are the plugin's ``dtype`` parametrization (tests/test_ops.py); the half
precisions run here, for the records that declare ``low_precision``, so the rest of the suite
is not multiplied by two more dtypes. torch receives the rounded inputs, the reference runs in
float64 on exactly those values, and the tolerances are suite/tolerances.py's eps-derived half
rows. A kernel torch lacks in half precision on the device skips with torch's own message.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from suite import catalog, higher
from suite import tolerances as tols
from suite.specs import OpSpec

HALF = pytest.mark.parametrize("half", [torch.float16, torch.bfloat16],
                               ids=["float16", "bfloat16"])
ON_LADDER = [s for s in catalog.OPS if s.low_precision is True]
LOW = pytest.mark.parametrize("spec", ON_LADDER, ids=catalog.spec_id)


# Ceiling: ~45 records x 2 dtypes; half-precision kernels are slow on CPU. 15 examples per
# record and dtype keep the module near 30 s under the ci profile.
@LOW
@HALF
@settings(max_examples=15)
@given(data=st.data())
def test_low_precision_matches_reference(spec: OpSpec, half: torch.dtype, device: str,
                                         data: st.DataObject) -> None:
    higher.check_low_precision(spec, data.draw(spec.inputs.strategy(), label="case"), half,
                               device)


def test_tolerances_follow_machine_epsilon() -> None:
    """Every rung's forward and gradient tolerance grows with the dtype's eps: the ladder is
    ordered, and the half rows are the eps multiples suite/tolerances.py derives."""
    ladder = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
    for kind in (tols.Kind.FORWARD, tols.Kind.GRADIENT):
        rows = [tols.resolve(d, kind) for d in ladder]
        assert [r.rtol for r in rows] == sorted(r.rtol for r in rows), kind
        for d in (torch.float16, torch.bfloat16):
            eps = torch.finfo(d).eps
            row = tols.resolve(d, kind)
            assert row.rtol == 4 * eps
            assert row.atol == (2 * eps if kind is tols.Kind.FORWARD else 8 * eps)


def test_every_record_is_on_the_ladder_or_says_why() -> None:
    """A record off the half-precision ladder carries the written reason (``low_precision``
    is then a string); a record with sums of signed terms declares how to compute them."""
    for spec in catalog.OPS:
        assert spec.low_precision is True or (isinstance(spec.low_precision, str)
                                              and len(spec.low_precision) > 20), spec.name
    assert len(ON_LADDER) >= 40, [s.name for s in ON_LADDER]
