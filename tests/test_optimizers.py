"""Every optimizer record, every implementation torch offers, several steps in lockstep."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from suite import catalog
from suite import optimcheck as oc
from suite import strategies as hs
from suite.specs import OptimizerSpec


@pytest.mark.parametrize("implementation", list(oc.IMPLEMENTATIONS))
@pytest.mark.parametrize("spec", catalog.OPTIMIZERS, ids=catalog.spec_id)
@given(data=st.data())
def test_optimizer_steps_match_reference(spec: OptimizerSpec, implementation: str,
                                         dtype: torch.dtype, device: str, data) -> None:
    reason = oc.unavailable(spec, implementation, dtype, device)
    if reason:
        pytest.skip(reason)
    run = data.draw(hs.optimizer_runs(spec.hyper), label="run")
    oc.check_run(spec, run, implementation, dtype, device)
