"""What one gradsuite check costs against ``torch.autograd.gradcheck(fast_mode=True)``.

For every op record and inputs of about 10^2 to 10^6 elements (the largest array), ours (the
three-way check: forward, gradient, reference VJP against finite differences; float64, CPU,
one thread) and gradcheck's cheapest meaningful mode on the same input, timed in alternating
rounds on one clock; ``extra_info["ratio"]`` is ours / gradcheck (``suite/checkcost.py`` says
what each side does, which flags gradcheck gets, and when a size is skipped)::

    pytest -m bench -k checkcost --benchmark-json=checkcost.json     # every record and size
    pytest -m bench -k "checkcost and (1e4 or 1e6)"                  # the sizes judged
    python -m suite.checkcost checkcost.json                         # ratios; records above 1
    python -m suite report checkcost.json --out report               # the same, and a plot

Each record's sizes run smallest first: a larger size is predicted from the smaller ones and
skipped when one check would exceed ``suite.checkcost.CEILING_S``.
"""

from __future__ import annotations

import math

import pytest

from suite import catalog, checkcost

pytestmark = pytest.mark.bench

CASES = [pytest.param(spec, elements, id=f"{spec.name}-1e{round(math.log10(elements))}")
         for spec in catalog.OPS for elements in checkcost.ELEMENTS]


@pytest.mark.parametrize(("spec", "elements"), CASES)
def test_checkcost(benchmark, spec, elements) -> None:
    benchmark.group = f"check cost 1e{round(math.log10(elements))}"
    checkcost.run(benchmark, spec, elements)
