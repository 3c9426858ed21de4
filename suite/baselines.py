"""Baseline-relative tolerance: a kernel judged by the standard of the torch op it replaces.

For a record with ``baseline`` (``suite.specs.Baseline``), in the baseline's dtypes the error
of torch_fn against the float64 reference, ``max |actual - expected|``, may be at most ``k``
times the error of the baseline op (torch eager's) on the same rounded inputs, where ``k`` is
the baseline's ``forward`` or ``gradient`` factor (FlashAttention's tests: 2 for outputs, 3 for
gradients). A baseline that is exact would demand an exact kernel, so its error is taken as at
least that of a correctly rounded result, half an ulp of the largest |expected| in the dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from suite import compare
from suite.devices import dtype_name
from suite.specs import Array, OpSpec


def applies(spec: OpSpec, dtype: torch.dtype) -> bool:
    """Whether ``spec`` is judged relative to its baseline in ``dtype``."""
    return spec.baseline is not None and dtype in spec.baseline.dtypes


def max_error(actual: Array, expected: Array) -> float:
    """max |actual - expected| over the elements, NaN matching NaN and equal infinities; inf
    where one side is not finite and the other differs."""
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if a.shape != e.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        same = (a == e) | (np.isnan(a) & np.isnan(e))
        diff = np.where(same, 0.0, np.abs(a - e))
    return float(np.max(np.where(np.isnan(diff), np.inf, diff)))


def floor(expected: Array, dtype: torch.dtype) -> float:
    """A correctly rounded result's error: half an ulp of the largest finite |expected|."""
    e = np.abs(np.asarray(expected, np.float64))
    finite = e[np.isfinite(e)]
    peak = float(finite.max()) if finite.size else 0.0
    return 0.5 * float(torch.finfo(dtype).eps) * peak


def assert_within(actual: Array, baseline: Array, expected: Array, *, k: float,
                  dtype: torch.dtype, what: str, context: str, case: Any = "") -> None:
    """Raise AssertionError, showing both errors, unless ``actual`` is within ``k`` times the
    baseline's error of ``expected``."""
    __tracebackhide__ = True
    ours, theirs = max_error(actual, expected), max_error(baseline, expected)
    allowed = k * max(theirs, floor(expected, dtype))
    if ours <= allowed:
        return
    lines = [f"{what} is not within {k:g}x torch's own error  [{context}]",
             f"Greatest absolute error against the float64 reference: {ours:.3g} (torch eager's "
             f"{dtype_name(dtype)} op on the same inputs: {theirs:.3g}; allowed {k:g} x "
             f"max({theirs:.3g}, half an ulp {floor(expected, dtype):.3g}) = {allowed:.3g})"]
    if case:
        lines += ["Case:", compare.described(case)]
    raise AssertionError("\n".join(lines))
