"""Every learning-rate scheduler record: torch's lr sequence against the reference's closed
form over drawn settings and epochs, and a census of torch.optim.lr_scheduler."""

from __future__ import annotations

import inspect

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from suite import catalog, schedulecheck
from suite.catalog import schedulers as scheduler_records
from suite.specs import SchedulerSpec


@pytest.mark.parametrize("spec", catalog.SCHEDULERS, ids=catalog.spec_id)
@given(data=st.data())
def test_schedule_matches_reference(spec: SchedulerSpec, data) -> None:
    options = data.draw(spec.options, label="options")
    lrs = data.draw(st.lists(st.floats(1e-4, 1.0), min_size=1, max_size=3), label="group lrs")
    limit = spec.max_epochs(options) if spec.max_epochs else 60
    epochs = data.draw(st.integers(1, limit), label="epochs")
    if spec.metric_driven:
        # A metric that improves, stalls and worsens: plateaus are what the scheduler reacts to.
        steps: int | list[float] = data.draw(st.lists(
            st.sampled_from([1.0, 0.99, 0.9, 0.5, 2.0, 0.9999]), min_size=1, max_size=40),
            label="metrics")
    else:
        steps = epochs
    schedulecheck.check_schedule(spec, options, lrs, steps)


def test_every_torch_scheduler_has_a_record_or_a_written_reason() -> None:
    classes = {name for name, cls in inspect.getmembers(torch.optim.lr_scheduler,
                                                        inspect.isclass)
               if issubclass(cls, torch.optim.lr_scheduler.LRScheduler)}
    recorded = {spec.torch_cls.__name__ for spec in catalog.SCHEDULERS}
    missing = classes - recorded - set(scheduler_records.EXCLUDED)
    assert not missing, (f"torch {torch.__version__} offers schedulers with no record in "
                         f"suite/catalog/schedulers.py and no reason in EXCLUDED: "
                         f"{sorted(missing)}")


def test_scheduler_record_names_match_their_references() -> None:
    names = [s.name for s in catalog.SCHEDULERS]
    assert names == sorted(set(names))
    for spec in catalog.SCHEDULERS:
        assert spec.ref.__name__ == spec.name
        assert spec.ref.__module__ == "references.schedulers"
