"""Comparing torch's numbers with the reference, and failure messages that explain themselves.

The check is vectorised; the message is built only on failure. Every failure message comes from
a :class:`Mismatch`, so messages and reports cannot disagree.

e.g. ``assert_close(actual, expected, tol=Tolerance(1.3e-6, 1e-5), what=...)`` fails with::

    tanh: VJP w.r.t. input is not close to the reference  [float32, shape=(3, 4), device=cpu]
    Mismatched elements: 2 / 12 (16.7%)
    Greatest absolute difference: 3.1e-04 at index (1, 2) (up to 1e-05 allowed)
    Greatest relative difference: 2.0e-03 at index (1, 2) (up to 1.3e-06 allowed)
      actual[1, 2]=0.15234  expected[1, 2]=0.15265  input[1, 2]=2.4101
    Case: ...
    Reproduce: pytest 'tests/test_ops.py::TestOps::test_gradient_matches_reference[cpu-tanh]'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np
import torch

from suite import drift, poison, reproduce
from suite.specs import Array
from suite.tolerances import Tolerance

Index = tuple[int, ...]


@dataclass(frozen=True)
class Mismatch:
    """What differed, by how much, where, and how to get it back."""

    what: str  # e.g. "tanh: VJP w.r.t. input"
    context: str  # e.g. "float32, shape=(3, 4), device=cpu"
    n_mismatch: int
    n_total: int
    max_abs: float
    idx_abs: Index
    max_rel: float
    idx_rel: Index
    tol: Tolerance
    at_index: str  # actual, expected and the inputs at the worst index
    slack: str = ""  # the conditioning allowance at the worst index, when there is one
    case: str = ""
    verdict: str = ""
    reproducer: str = field(default_factory=reproduce.command)

    def message(self) -> str:
        pct = 100.0 * self.n_mismatch / max(1, self.n_total)
        lines = [
            f"{self.what} is not close to the reference  [{self.context}]",
            f"Mismatched elements: {self.n_mismatch} / {self.n_total} ({pct:.1f}%)",
            f"Greatest absolute difference: {self.max_abs:.3g} at index {self.idx_abs} "
            f"(up to {self.tol.atol:.3g} allowed{self.slack})",
            f"Greatest relative difference: {self.max_rel:.3g} at index {self.idx_rel} "
            f"(up to {self.tol.rtol:.3g} allowed)",
            f"  {self.at_index}",
        ]
        if self.case:
            lines += ["Case:", self.case]
        if self.verdict:
            lines.append(f"Verdict: {self.verdict}")
        lines.append(f"Reproduce: {self.reproducer}")
        return "\n".join(lines)


def to_numpy(t: torch.Tensor) -> Array:
    """A float64 NumPy copy of ``t`` (never a view: torch may update ``t`` in place later)."""
    t = t.detach()
    if t.dtype == torch.float64 and t.device.type == "cpu":  # the common case, ~3x cheaper
        return t.numpy().copy()
    return t.to("cpu", torch.float64).numpy()  # .to() made a new tensor: its array is ours


def _fmt_idx(name: str, idx: Index) -> str:
    return f"{name}[{', '.join(map(str, idx))}]" if idx else name


def find_mismatch(actual: Array, expected: Array, *, tol: Tolerance, what: str, context: str,
                  inputs: Mapping[str, Array] | None = None,
                  slack: Array | None = None,
                  slack_reason: str = "sum |terms|", record: bool = True) -> Mismatch | None:
    """The :class:`Mismatch` between ``actual`` and ``expected``, or None when they are close.

    ``slack``, where given, is an absolute allowance per element added to ``tol.atol``: the
    conditioning of a sum of signed terms (``suite.tolerances.SUMMATION``), or another derived
    allowance that ``slack_reason`` names in the message. Both arrays are
    promoted to float64 first. NaN matches NaN and infinities match when their signs do
    (the reference states where torch should produce them). Shapes must agree exactly.
    ``inputs`` of the same shape are shown at the worst index; others are summarised by range.
    ``record=False`` leaves the drift record alone (a trial comparison before the final one).
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        return Mismatch(what, context, a.size, max(a.size, e.size), np.inf, (), np.inf, (), tol,
                        f"shape {a.shape} but the reference has shape {e.shape}")
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - e)
        extra = 0.0 if slack is None else np.broadcast_to(slack, e.shape)
        if drift.RECORDER is None and diff.size and np.isfinite(diff.max()) and \
                bool(np.all(diff <= tol.atol + extra + tol.rtol * np.abs(e))):
            # The common case in fewer passes: every difference finite (a NaN or infinite
            # one makes the max so) and within the tolerance.
            return None
        same = (a == e) | (np.isnan(a) & np.isnan(e))
        # A finite difference is required: inf <= atol + rtol * inf would pass inf vs -inf.
        close = same | (np.isfinite(diff) & (diff <= tol.atol + extra + tol.rtol * np.abs(e)))
    if record and drift.RECORDER is not None:  # numerics drift: error relative to tolerance
        drift.observe(what, context, diff, e, same, tol, extra)
    if close.all():
        return None
    # Greatest differences over the mismatching elements only, as torch.testing does.
    diff = np.where(close | np.isnan(diff), np.where(close, 0.0, np.inf), diff)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(close, 0.0, diff / np.abs(e))
    rel = np.where(np.isnan(rel), np.inf, rel)
    idx_abs = tuple(int(i) for i in np.unravel_index(np.argmax(diff), diff.shape))
    idx_rel = tuple(int(i) for i in np.unravel_index(np.argmax(rel), rel.shape))
    at = [f"{_fmt_idx('actual', idx_abs)}={a[idx_abs]:.8g}",
          f"{_fmt_idx('expected', idx_abs)}={e[idx_abs]:.8g}"]
    for name, x in (inputs or {}).items():
        x = np.asarray(x)
        if x.shape == a.shape:
            at.append(f"{_fmt_idx(name, idx_abs)}={x[idx_abs]:.8g}")
    note = "" if slack is None else f" + {np.broadcast_to(slack, e.shape)[idx_abs]:.3g} " \
        f"for {slack_reason} there"
    return Mismatch(what, context, int((~close).sum()), a.size, float(diff[idx_abs]), idx_abs,
                    float(rel[idx_rel]), idx_rel, tol, "  ".join(at), slack=note)


def assert_close(actual: Array, expected: Array, *, tol: Tolerance, what: str, context: str,
                 inputs: Mapping[str, Array] | None = None, case: Any = "",
                 verdict: Any = "", slack: Array | Callable[[], Array | None] | None = None,
                 slack_reason: str = "sum |terms|") -> None:
    """Raise AssertionError with a :class:`Mismatch` message unless the arrays are close.

    ``verdict`` and ``case`` may be strings or zero-argument callables producing one (or, for
    ``case``, an object with a ``describe()`` method, e.g. a ``suite.specs.Case``); they are
    only evaluated on failure (the verdict may be an expensive cross-check such as finite
    differences; describing a case costs more than a passing comparison). ``slack`` may be a
    zero-argument callable too: it is computed only when the arrays are not close without it
    (an allowance only widens, so a comparison that passes without it passes with it).
    """
    __tracebackhide__ = True
    later = slack if callable(slack) else None
    now = None if callable(slack) else slack
    m = find_mismatch(actual, expected, tol=tol, what=what, context=context, inputs=inputs,
                      slack=now, slack_reason=slack_reason)
    if m is not None and later is not None:
        m = find_mismatch(actual, expected, tol=tol, what=what, context=context, inputs=inputs,
                          slack=later(), slack_reason=slack_reason)
    if m is None:
        return
    text = verdict() if callable(verdict) else verdict
    if poison.active() and _unwritten(actual, expected):
        text = f"{poison.HINT}. {text}" if text else poison.HINT
    m = Mismatch(**{**m.__dict__, "case": described(case), "verdict": text})
    fail(m.message())


def _unwritten(actual: Array, expected: Array) -> bool:
    """Whether ``actual`` is NaN where ``expected`` is finite (under poisoned memory, an element
    never written)."""
    a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    return a.shape == e.shape and bool(np.any(np.isnan(a) & np.isfinite(e)))


def fail(message: str) -> NoReturn:
    """Raise the AssertionError of a failed comparison. Every comparison failure, and the
    replayed failure of an input torch was seen to be nondeterministic on
    (``suite.nondeterminism``), is raised on this one line: Hypothesis tells failures apart by
    where they were raised, and would call a replay raised elsewhere "flaky"."""
    __tracebackhide__ = True
    raise AssertionError(message)


def described(case: Any) -> str:
    """A case argument as text: a string, a callable producing one, or a describable object."""
    if hasattr(case, "describe"):
        return str(case.describe())
    return str(case() if callable(case) else case)


def assert_state_close(actual: Any, expected: Any, *, tol: Tolerance, what: str, context: str,
                       case: str = "") -> None:
    """Like :func:`assert_close` for an optimizer state entry, which may be absent (None) on
    both sides (e.g. no momentum buffer); absent on one side only fails, naming both types."""
    __tracebackhide__ = True
    if actual is None or expected is None:
        if actual is not expected:
            raise AssertionError(f"{what}: torch has {type(actual).__name__}, the reference "
                                 f"{type(expected).__name__}  [{context}]\nCase:\n{case}")
        return
    assert_close(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                 tol=tol, what=what, context=context, case=case)
