"""When torch gives different answers for the same input, say so, and keep failing.

A failing comparison re-runs torch on the same input. If the two runs differ (bit for bit),
the failure says "torch's output is not deterministic for this input: run 1 ..., run 2 ..."
instead of leaving Hypothesis to report a generic flaky test, and the input is remembered, so
that every later call of the same check on it (Hypothesis replays a failing example) fails
with the same message rather than passing by luck.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import torch

from suite import compare
from suite.devices import dtype_name
from suite.specs import Array, Case, OpSpec

_KNOWN: dict[tuple[str, str, str, str, str], str] = {}


def _key(spec: OpSpec, check: str, case: Case, dtype: torch.dtype,
         device: str) -> tuple[str, str, str, str, str]:
    digest = hashlib.sha1(repr((sorted(case.options.items(), key=str), case.seed)).encode())
    for name, a in sorted(case.arrays.items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(a).tobytes())
        digest.update(repr(a.shape).encode())
    return spec.name, check, digest.hexdigest(), dtype_name(dtype), device


def refuse_known(spec: OpSpec, check: str, case: Case, dtype: torch.dtype, device: str) -> None:
    """Fail at once, with the recorded message, on an input torch was seen to be
    nondeterministic on."""
    __tracebackhide__ = True
    if _KNOWN:
        message = _KNOWN.get(_key(spec, check, case, dtype, device))
        if message is not None:
            compare.fail(message)


def verdict(spec: OpSpec, check: str, case: Case, dtype: torch.dtype, device: str,
            first: Sequence[Array], run: Callable[[], Sequence[Array]]) -> str:
    """Called on a failure: run torch again; when the runs differ, remember the input and say
    how they differ; otherwise ''."""
    second = run()
    for i, (a, b) in enumerate(zip(first, second, strict=True)):
        a, b = np.asarray(a), np.asarray(b)
        with np.errstate(invalid="ignore"):
            same = (a == b) | (np.isnan(a) & np.isnan(b))
        if a.shape == b.shape and same.all():
            continue
        where = tuple(int(j) for j in np.unravel_index(np.argmin(same), a.shape)) \
            if a.shape == b.shape and a.size else ()
        output = f"output {i} " if len(first) > 1 else ""
        message = (f"torch's output is not deterministic for this input: run 1 gave "
                   f"{output}{a[where] if a.size else a}, run 2 gave "
                   f"{b[where] if b.size else b} at index {where} ({int((~same).sum())} of "
                   f"{a.size} elements differ between two calls on the same tensors; "
                   f"{spec.name} {check}, {dtype_name(dtype)}, {device})")
        _KNOWN[_key(spec, check, case, dtype, device)] = message
        return message
    return ""
