"""pytest-benchmark's median, as suite.bench.run measures it, against torch.utils.benchmark.Timer
on the same targets (suite/accuracy.py). Run as one command that prints the table::

    python -m suite.accuracy            # or: pytest -m bench -k accuracy --benchmark-json=a.json
                                        #     python -m suite.accuracy --from a.json
"""

from __future__ import annotations

import pytest

from suite import accuracy

pytestmark = pytest.mark.bench


@pytest.mark.parametrize("target", accuracy.TARGETS, ids=lambda t: t.id)
def test_accuracy(benchmark, target, device) -> None:
    accuracy.run(benchmark, target, device)
