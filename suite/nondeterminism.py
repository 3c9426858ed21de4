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
    # The torch callable is part of the key: a record made with gs.like shares its name with
    # the built-in one (a planted racy "tanh" must not poison torch's own tanh in the process).
    fn = spec.torch_fn
    callable_id = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}#{id(fn)}"
    digest = hashlib.sha1(repr((sorted(case.options.items(), key=str), case.seed,
                                callable_id)).encode())
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


# --- the repeat check: the same call twice gives the same bits ----------------------------------

_NO_PROMISE = "does not have a deterministic implementation"  # torch's own words


def _call(spec: OpSpec, case: Case, dtype: torch.dtype, device: str,
          g: Array | None) -> tuple[list[Array], list[str], Array | None]:
    """torch's forward and, where the case has differentiable arrays, its VJP for ``g`` (drawn
    from the case when None); with the names of the outputs and the cotangent used."""
    from suite import gradcheck as gc
    from suite.specs import round_to

    tensors = gc.to_tensors(case, dtype, device)
    grad_needed = bool(case.differentiable)
    with torch.set_grad_enabled(grad_needed):
        out = spec.torch_fn(**tensors, **case.options)
    results, names, returned = [compare.to_numpy(out)], ["forward"], [out]
    if grad_needed and out.requires_grad:
        if g is None:
            g = round_to(gc.cotangent(case, tuple(out.shape)), dtype)
        out.backward(torch.tensor(g, dtype=dtype, device=device))
        for name in case.differentiable:
            grad = tensors[name].grad
            if grad is not None:
                results.append(compare.to_numpy(grad))
                names.append(f"VJP w.r.t. {name}")
                returned.append(grad)
    _wipe(returned)
    return results, names, g


def _wipe(tensors: list[torch.Tensor]) -> None:
    """Zero the memory of what a call returned (copied already) before it is freed. A poisoned
    call's output holds NaN where the kernel never wrote; the allocator may hand that very
    memory to the next call (glibc reuses a freed chunk first, and ``poison.litter`` cannot
    be sure to take it over), and an element the kernel never writes would then be NaN in both
    calls, which compare as the same (seen once in a whole run: the planted kernel of
    tests/test_determinism.py passed). Zero bytes are 0.0 in every floating dtype: finite."""
    with torch.no_grad():
        for t in tensors:
            t.untyped_storage().fill_(0)  # type: ignore[attr-defined]  # in torch, not its stubs


def check_repeatable(spec: OpSpec, case: Case, dtype: torch.dtype, device: str) -> None:
    """Two calls of ``spec.torch_fn`` (forward and VJP) on the same tensors give the same bits
    where torch promises determinism (``torch.use_deterministic_algorithms``: an op without a
    deterministic implementation says so, and the check skips with torch's words).

    The first call runs with new memory poisoned (NaN until written, ``suite.poison``), the
    second after freed memory was littered with large finite values: an element a kernel never
    writes differs between them whatever the allocator holds, and is named as such."""
    __tracebackhide__ = True
    import warnings

    import pytest

    from suite import poison

    case = case.rounded_to(dtype)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with poison.poisoned(True):
            first, names, g = _call(spec, case, dtype, device, None)
        poison.litter()
        with poison.poisoned(False):
            second, _, _ = _call(spec, case, dtype, device, g)
    refusal = next((str(w.message) for w in caught if _NO_PROMISE in str(w.message)), None)
    if refusal is not None:
        pytest.skip(f"torch {torch.__version__} promises no determinism here: "
                    f"{refusal.splitlines()[0]}")
    for name, a, b in zip(names, first, second, strict=True):
        with np.errstate(invalid="ignore"):
            same = ((a == b) & (np.signbit(a) == np.signbit(b))) | (np.isnan(a) & np.isnan(b))
        if same.all():
            continue
        where = tuple(int(j) for j in np.unravel_index(np.argmin(same), a.shape))
        unwritten = np.isnan(a) & ~np.isnan(b)
        why = (f"{int(unwritten.sum())} of them NaN in the poisoned call only: elements the "
               f"kernel never wrote" if unwritten.any() else
               "no element was left unwritten: the kernel is not deterministic")
        compare.fail(
            f"{spec.name}: {name} differs between two calls on the same tensors  "
            f"[{dtype_name(dtype)}, device={device}]\n"
            f"call 1 (new memory NaN) gave {a[where]:.8g}, call 2 (freed memory littered with "
            f"large values) gave {b[where]:.8g} at index {where}; {int((~same).sum())} of "
            f"{a.size} elements differ, {why}\nCase:\n{case.describe()}")
