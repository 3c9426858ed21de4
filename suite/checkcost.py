"""What one gradsuite check costs against ``torch.autograd.gradcheck``'s fast mode.

``pytest -m bench -k checkcost`` (tests/benchmarks/test_check_cost.py) times, for every op
record and inputs whose largest array holds about 10^2, 10^3, 10^4, 10^5 and 10^6 elements:

- **ours**: gradsuite's three-way check of that one case — ``check_forward``,
  ``check_gradient`` and ``check_reference_vjp`` (``suite.gradcheck``), float64, CPU. The
  cotangent g is drawn once per round (``gradcheck.cotangent`` keeps the last draws, and each
  round starts by forgetting them), so a round costs what a fresh case's three checks cost;
- **gradcheck**: ``torch.autograd.gradcheck(fn, inputs, **GRADCHECK_OPTIONS)`` on the same
  case: float64 tensors, ``requires_grad`` on the case's differentiable arrays (the others,
  integer ones included, are held fixed inside ``fn``), the same options;

and records ``ratio`` = median(ours) / median(gradcheck) in ``extra_info``, with both medians,
every gradcheck round and why a side did not run. Both run on one thread (``--torch-threads
1``, the default; BLAS pinned to one thread by the plugin) and are timed on the same clock
(``suite.bench.timer``: the thread's CPU time), in alternating rounds — a gradcheck call before
each timed call of ours — so that load from other processes falls on both alike.

gradcheck's options (``GRADCHECK_OPTIONS``): the cheapest meaningful gradcheck. Fast mode
(one random direction u per input and one cotangent v: <v, J u> by central differences, two
evaluations per differentiable input, against the backward pass's <J^T v, u>);
``check_undefined_grad=False`` (by default it runs one more backward with undefined output
gradients, a check of autograd plumbing, not of values); batched-gradient, forward-AD and
gradient-dtype checks off (their defaults). What no flag turns off: the backward pass runs
twice (gradcheck's reentrancy check) and once more with zero output gradients
(``_test_backward_mul_by_grad_output``).

Where gradcheck cannot run, ``extra_info["gradcheck"]`` says why and ``ratio`` is None: a
record whose torch gradient is knowingly not the derivative of its forward
(``OpSpec.torch_vjp_options``: gradcheck would fail on it), and any input where fast mode
disagrees (a kink of a piecewise op straddled by gradcheck's step, or a real error): a failing
fast-mode gradcheck recomputes the whole Jacobian in slow mode for its message (hours at
10^6 elements), so the first call runs with that recomputation replaced by an exception. No op
record draws random numbers (rrelu's is ``F.rrelu`` with ``training=False``, its default:
leaky_relu with the mean slope), so gradcheck's repeated calls see one function.

Sizes. ``sized_for(spec, elements)`` picks the ``n`` of ``spec.inputs.sized(n)`` whose largest
array is nearest ``elements`` (on a log scale); a target that no ``n`` reaches within a factor
``MAX_OFF`` (a convolution's smallest sized case holds 800 elements) is skipped with the
smallest case's size. Super-linear checks stop early: before a size is measured, the cost of
one call of ours is predicted from the two sizes below it (``predict``), and a size predicted
(or measured) above ``CEILING_S`` is skipped, saying so.

``python -m suite.checkcost RUN.json`` prints the ratio per record and size and names every
record above 1 at 10^4 and 10^6 (``python -m suite report RUN.json`` writes the same table and
a plot of ratio against size).
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any
from unittest import mock

import numpy as np
import torch

from suite import bench
from suite import gradcheck as gc
from suite.specs import Case, OpSpec

KIND = "check cost"
"""``extra_info["kind"]`` of a check-cost benchmark (``suite.report`` finds them by it)."""
ELEMENTS = (10**2, 10**3, 10**4, 10**5, 10**6)
"""Target sizes: elements of the case's largest array."""
TARGETS = (10**4, 10**6)
"""The sizes issue 15's target (ratio <= 1) is judged at."""
GRADCHECK_OPTIONS: dict[str, Any] = {
    "fast_mode": True, "check_undefined_grad": False, "check_batched_grad": False,
    "check_batched_forward_grad": False, "check_forward_ad": False, "check_backward_ad": True,
    "check_grad_dtypes": False}
MAX_OFF = 3.0
"""A target no sized case reaches within this factor is skipped."""
CEILING_S = 20.0
"""A size whose one call of either side is predicted or measured above this is skipped."""
BUDGET_S = 1.0
"""Timed seconds per side, spread over ``MIN_ROUNDS``..``MAX_ROUNDS`` rounds of one call."""
MIN_ROUNDS = 3
WARM_S = 0.25
"""A side whose first call is cheaper than this is called once more before timing (the first
call allocates and picks kernels); a dearer one is timed from its second call on."""
MAX_ROUNDS = 30
DTYPE = torch.float64
DEVICE = "cpu"

# Seconds of one call of ours per (record, target elements), measured in this process: the
# larger sizes' predictions.
_SEEN: dict[tuple[str, int], float] = {}


class FastModeDisagreesError(Exception):
    """gradcheck's fast mode found <v, J u> by finite differences and by the backward pass
    unequal (raised instead of its slow-mode recomputation)."""


def largest(case: Case) -> int:
    """Elements of the case's largest array."""
    return max(int(np.size(a)) for a in case.arrays.values())


def _off(elements: int, target: int) -> float:
    return abs(math.log(max(elements, 1) / target))


@dataclass(frozen=True)
class Sized:
    """The sized case chosen for a target size, or why none is."""

    target: int
    n: int
    case: Case
    skip: str | None = None

    @property
    def elements(self) -> int:
        return largest(self.case)

    def shape(self) -> str:
        return ", ".join(f"{k}{tuple(a.shape)}" for k, a in self.case.arrays.items())


def sized_for(spec: OpSpec, target: int) -> Sized:
    """The case ``spec.inputs.sized(n)`` whose largest array is nearest ``target`` elements
    (``nearest_n``), or why no case is near enough."""
    n = nearest_n(spec, target)
    found = Sized(target, n, spec.inputs.sized(n))
    if _off(found.elements, target) > math.log(MAX_OFF):
        return Sized(target, n, found.case,
                     skip=f"no sized case of {spec.name} holds about {target:.0e} elements: the "
                          f"nearest, n={n}, holds {found.elements} ({found.shape()}), "
                          f"more than {MAX_OFF:g}x off")
    return found


_NEAREST: dict[tuple[str, int], int] = {}


def nearest_n(spec: OpSpec, target: int, *, n_max: int = 1 << 22) -> int:
    """The n whose ``spec.inputs.sized(n)`` has its largest array nearest ``target`` elements
    (by their ratio; remembered per record).

    Assumes the largest array does not shrink as n grows (true of every input maker): doubles
    n from 2 until it reaches the target, then bisects, and keeps the nearer of the two
    bracketing sizes."""
    key = (spec.name, target)
    if key in _NEAREST:
        return _NEAREST[key]

    def size(n: int) -> int:
        return largest(spec.inputs.sized(n))

    lo, lo_size = 2, size(2)
    if lo_size >= target:
        _NEAREST[key] = lo
        return lo
    hi, hi_size = lo, lo_size
    while hi_size < target and hi < n_max:
        lo, lo_size = hi, hi_size
        hi *= 2
        hi_size = size(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        mid_size = size(mid)
        if mid_size < target:
            lo, lo_size = mid, mid_size
        else:
            hi, hi_size = mid, mid_size
    chosen = lo if _off(lo_size, target) <= _off(hi_size, target) else hi
    _NEAREST[key] = chosen
    return chosen


# --- the two sides --------------------------------------------------------------------------


def three_way(spec: OpSpec, case: Case) -> Callable[[], tuple[str, ...]]:
    """gradsuite's check of ``case``: forward, gradient and reference VJP against finite
    differences, float64 on the CPU; a call returns the checks that failed (with the first
    line of their message), so that a failure is recorded rather than stopping the benchmark
    (a failing check does extra work, to say who is wrong, so its time is flagged)."""
    checks: tuple[tuple[str, Callable[[], None]], ...] = (
        ("forward", lambda: gc.check_forward(spec, case, DTYPE, DEVICE)),
        ("gradient", lambda: gc.check_gradient(spec, case, DTYPE, DEVICE)),
        ("reference_vjp", lambda: gc.check_reference_vjp(spec, case)))

    def run() -> tuple[str, ...]:
        gc.forget_cotangents()  # each round pays for its cotangent once, as a fresh case does
        failed = []
        for name, check in checks:
            try:
                check()
            except AssertionError as error:
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                failed.append(f"{name}: {first}"[:200])
        return tuple(failed)

    return run


def gradcheck_call(spec: OpSpec, case: Case) -> Callable[[], bool]:
    """``torch.autograd.gradcheck`` on ``case``: float64 tensors, the differentiable arrays
    as its inputs (``requires_grad``), the other arrays and the options fixed inside ``fn``."""
    tensors = gc.to_tensors(case, DTYPE, DEVICE)
    names = tuple(case.differentiable)
    fixed = {k: t for k, t in tensors.items() if k not in names}
    options = dict(case.options)

    def fn(*inputs: torch.Tensor) -> torch.Tensor:
        return spec.torch_fn(**fixed, **dict(zip(names, inputs, strict=True)), **options)

    inputs = tuple(tensors[k] for k in names)
    return lambda: bool(torch.autograd.gradcheck(fn, inputs, **GRADCHECK_OPTIONS))


def gradcheck_refusal(spec: OpSpec, case: Case) -> str | None:
    """Why gradcheck cannot be run on ``spec`` (None: it can)."""
    if spec.torch_vjp_options:
        return (f"torch's gradient of {spec.name} is knowingly not the derivative of its "
                f"forward (torch_vjp_options {dict(spec.torch_vjp_options)}, "
                f"KNOWN_DIFFERENCES.md): gradcheck fails on it, and a failing fast-mode "
                f"gradcheck recomputes the whole Jacobian in slow mode")
    if not case.differentiable:
        return "the case has no differentiable array"
    return None


def _no_slow_mode() -> AbstractContextManager[Any]:
    """gradcheck with its slow-mode recomputation on a fast-mode failure replaced by
    :class:`FastModeDisagreesError` (where this torch has that private function)."""
    module = importlib.import_module("torch.autograd.gradcheck")
    if not hasattr(module, "_run_slow_mode_and_get_error"):
        return nullcontext()

    def refuse(*args: Any, **kwargs: Any) -> str:
        raise FastModeDisagreesError("gradcheck's fast mode: <v, J u> by finite differences "
                                "differs from the backward pass's <J^T v, u>")

    return mock.patch.object(module, "_run_slow_mode_and_get_error", refuse)


def first_gradcheck(call: Callable[[], bool], clock: Callable[[], float]) -> tuple[float,
                                                                                   str | None]:
    """One call of gradcheck (timed; its slow-mode recomputation disabled): the seconds it
    took, and why gradcheck cannot be timed on this input (None: it passed)."""
    t0 = clock()
    try:
        with _no_slow_mode():
            call()
    except FastModeDisagreesError as error:
        return clock() - t0, f"{error} on this input (a kink straddled, or an error)"
    except Exception as error:  # torch's GradcheckError, and whatever fn raises
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return clock() - t0, f"gradcheck raised {type(error).__name__}: {text}"[:300]
    return clock() - t0, None


# --- sizes and schedule ---------------------------------------------------------------------


def predict(seen: Mapping[int, float], elements: int) -> float | None:
    """One call's seconds at ``elements``, extrapolated from the two largest smaller sizes
    measured (time ~ elements^k, k fitted between them and kept in [1, 3]; k = 1 from one
    size); None when nothing smaller was measured."""
    below = sorted(e for e in seen if e < elements)
    if not below:
        return None
    e1 = below[-1]
    k = 1.0
    if len(below) >= 2:
        e0 = below[-2]
        if seen[e0] > 0 and seen[e1] > 0 and e1 > e0:
            k = math.log(seen[e1] / seen[e0]) / math.log(e1 / e0)
    k = min(3.0, max(1.0, k))
    return seen[e1] * (elements / e1) ** k


def rounds(call_s: float) -> int:
    """Rounds per side for a call of ``call_s`` seconds: about ``BUDGET_S`` of timed calls."""
    return int(min(MAX_ROUNDS, max(MIN_ROUNDS, round(BUDGET_S / max(call_s, 1e-9)))))


def ratio(ours: Sequence[float], theirs: Sequence[float]) -> float | None:
    """median(ours) / median(theirs); None without both."""
    if not len(ours) or not len(theirs):
        return None
    below = float(np.median(theirs))
    return float(np.median(ours)) / below if below > 0 else None


# --- the benchmark --------------------------------------------------------------------------


def _timed(fn: Callable[[], Any], clock: Callable[[], float]) -> tuple[float, Any]:
    t0 = clock()
    out = fn()
    return clock() - t0, out


def probe(spec: OpSpec, target: int, clock: Callable[[], float],
          make_ours: Callable[[OpSpec, Case], Callable[[], Any]] = three_way) -> float | None:
    """One call of ours at ``target`` (remembered): the smaller sizes' measurement that the
    larger ones are predicted from when they were not run in this process. None when the
    target is skipped (no case near it, or predicted over the ceiling)."""
    key = (spec.name, target)
    if key in _SEEN:
        return _SEEN[key]
    smaller = [e for e in ELEMENTS if e < target]
    if smaller:
        probe(spec, smaller[-1], clock, make_ours)
    guess = predict(seen(spec), target)
    sized = sized_for(spec, target)
    if sized.skip or (guess is not None and guess > CEILING_S):
        return None
    seconds, _ = _timed(make_ours(spec, sized.case), clock)
    _SEEN[key] = seconds
    return seconds


def seen(spec: OpSpec) -> dict[int, float]:
    """{target elements: seconds of one call of ours} measured for ``spec`` in this process."""
    return {e: s for (name, e), s in _SEEN.items() if name == spec.name}


def run(benchmark: Any, spec: OpSpec, target: int, *,
        clock: Callable[[], float] | None = None,
        make_ours: Callable[[OpSpec, Case], Callable[[], Any]] = three_way,
        make_theirs: Callable[[OpSpec, Case], Callable[[], Any]] = gradcheck_call,
        skip: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Time ours and gradcheck on ``spec``'s case of about ``target`` elements with
    ``benchmark`` (pytest-benchmark's fixture: ours is its target, a gradcheck call is its
    untimed ``setup`` before each round, timed here on the same clock); fill and return
    ``benchmark.extra_info``. ``skip(reason)`` (pytest.skip) ends a size that is not run."""
    if skip is None:
        import pytest

        skip = pytest.skip
    if clock is None:
        clock = bench.timer(DEVICE)
    if torch.get_num_threads() != 1:
        skip(f"the check-cost comparison is single-threaded; torch has "
             f"{torch.get_num_threads()} threads: run with --torch-threads 1 (the default)")
    smaller = [e for e in ELEMENTS if e < target]
    if smaller:
        probe(spec, smaller[-1], clock, make_ours)
    guess = predict(seen(spec), target)
    if guess is not None and guess > CEILING_S:
        skip(f"one check of {spec.name} at {target:.0e} elements is predicted to take "
             f"{guess:.0f} s from the smaller sizes (over the ceiling CEILING_S = "
             f"{CEILING_S:g} s)")
    sized = sized_for(spec, target)
    if sized.skip:
        skip(sized.skip)
    ours = make_ours(spec, sized.case)
    ours_s, failures = _timed(ours, clock)
    if ours_s < WARM_S:  # the first call sets things up; a cheap target is timed again
        ours_s, failures = _timed(ours, clock)
    _SEEN[(spec.name, target)] = ours_s
    if ours_s > CEILING_S:
        skip(f"one check of {spec.name} at {sized.elements} elements took {ours_s:.1f} s, over "
             f"the ceiling CEILING_S = {CEILING_S:g} s")
    refusal = gradcheck_refusal(spec, sized.case)
    theirs: Callable[[], Any] | None = None
    theirs_s = 0.0
    if refusal is None:
        theirs = make_theirs(spec, sized.case)
        theirs_s, refusal = first_gradcheck(theirs, clock)
        if refusal is None and theirs_s < WARM_S:
            theirs_s = _timed(theirs, clock)[0]
        if refusal is None and theirs_s > CEILING_S:
            refusal = (f"one gradcheck call took {theirs_s:.1f} s, over the ceiling "
                       f"CEILING_S = {CEILING_S:g} s")
    if refusal is not None:
        theirs = None
    count = rounds(max(ours_s, theirs_s))
    theirs_rounds: list[float] = []

    def before_each_round() -> None:
        if theirs is not None:
            theirs_rounds.append(_timed(theirs, clock)[0])

    info = benchmark.extra_info
    info.update({
        "kind": KIND, "op": spec.name, "family": spec.family, "target_elements": target,
        "elements": sized.elements, "n": sized.n, "shape": sized.shape(),
        "options": {k: repr(v) for k, v in sized.case.options.items()},
        "differentiable": list(sized.case.differentiable), "dtype": "float64",
        "device": DEVICE, "torch": torch.__version__, "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(), "blas_threads": bench.blas_threads(),
        "timer": getattr(clock, "__name__", repr(clock)), "rounds": count,
        "gradcheck_options": dict(GRADCHECK_OPTIONS),
        "gradcheck": "ran" if theirs is not None else refusal,
        "check_failures": list(failures or ())})
    benchmark._timer = clock  # as suite.bench.run: the clock is chosen per benchmark
    benchmark.pedantic(ours, setup=before_each_round, rounds=count, iterations=1)
    ours_rounds = _rounds_of(benchmark)
    info.update({
        "ours_median": float(np.median(ours_rounds)) if ours_rounds else None,
        "gradcheck_median": float(np.median(theirs_rounds)) if theirs_rounds else None,
        "gradcheck_rounds": theirs_rounds,
        "ratio": ratio(ours_rounds, theirs_rounds)})
    return dict(info)


def _rounds_of(benchmark: Any) -> list[float]:
    """The timed rounds of ours, from pytest-benchmark's fixture (``stats.stats.data``)."""
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    return [float(v) for v in getattr(stats, "data", None) or ()]


# --- reading a run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One record at one target size, read back from a saved run."""

    op: str
    target: int
    elements: int
    ratio: float | None
    ours: float | None
    gradcheck: float | None
    note: str  # why gradcheck did not run, or which checks failed; "" otherwise


def cells(benchmarks: Sequence[Any]) -> list[Cell]:
    """The check-cost cells of a run's benchmarks (``suite.gate.Benchmark``s or anything with
    ``extra_info``), sorted by record and size."""
    out = []
    for b in benchmarks:
        info = b.extra_info
        if info.get("kind") != KIND:
            continue
        note = "" if info.get("gradcheck") == "ran" else f"gradcheck: {info.get('gradcheck')}"
        if info.get("check_failures"):
            note = "; ".join([*([note] if note else []),
                              "failed: " + ", ".join(str(f).split(":")[0]
                                                     for f in info["check_failures"])])
        r = info.get("ratio")
        out.append(Cell(str(info.get("op")), int(info.get("target_elements", 0)),
                        int(info.get("elements", 0)),
                        float(r) if isinstance(r, int | float) else None,
                        info.get("ours_median"), info.get("gradcheck_median"), note))
    return sorted(out, key=lambda c: (c.op, c.target))


def above(found: Sequence[Cell], targets: Sequence[int] = TARGETS,
          limit: float = 1.0) -> dict[int, list[Cell]]:
    """Per target size, the cells whose ratio exceeds ``limit``, dearest first."""
    return {t: sorted((c for c in found if c.target == t and c.ratio is not None
                       and c.ratio > limit), key=lambda c: -(c.ratio or 0.0))
            for t in targets}


def _size(target: int) -> str:
    return f"1e{round(math.log10(target))}"


def table_lines(found: Sequence[Cell], *, markdown: bool = True) -> list[str]:
    """The ratio per record (rows) and target size (columns), then the records above 1 at
    ``TARGETS``; cells without a ratio say why in the notes column."""
    targets = sorted({c.target for c in found})
    by_op: dict[str, dict[int, Cell]] = {}
    for c in found:
        by_op.setdefault(c.op, {})[c.target] = c
    head = ["record", *(_size(t) for t in targets), "notes"]
    rows = []
    for op, row in sorted(by_op.items()):
        values = []
        for t in targets:
            cell = row.get(t)
            if cell is None:
                values.append("")
            elif cell.ratio is None:
                values.append("n/a")
            else:
                mark = "**" if markdown and cell.ratio > 1 else ""
                values.append(f"{mark}{cell.ratio:.2f}{mark}")
        by_note: dict[str, list[str]] = {}
        for c in sorted(row.values(), key=lambda c: c.target):
            if c.note:
                by_note.setdefault(c.note, []).append(_size(c.target))
        rows.append([op, *values, "; ".join(f"{', '.join(sizes)}: {note}"
                                            for note, sizes in by_note.items())])
    lines: list[str] = []
    if markdown:
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head) - 1)]
        for r in [head, *rows]:
            cells_ = [str(v).ljust(w) for v, w in zip(r[:-1], widths, strict=True)]
            lines.append("  ".join([*cells_, str(r[-1])]).rstrip())
    lines.append("")
    for t, dear in above(found).items():
        measured = sum(1 for c in found if c.target == t and c.ratio is not None)
        names = ", ".join(f"{c.op} ({c.ratio:.2f})" for c in dear) or "none"
        lines.append(f"Above 1 at {_size(t)} elements ({len(dear)} of {measured} records "
                     f"measured): {names}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m suite.checkcost RUN.json``: the table and the records above 1."""
    from suite import gate

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m suite.checkcost RUN.json  (a run of pytest -m bench -k "
              "checkcost --benchmark-json RUN.json)", file=sys.stderr)
        return 2
    try:
        found = cells(list(gate.load_run(args[0]).benchmarks.values()))
    except gate.GateError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not found:
        print(f"error: {args[0]}: holds no check-cost benchmarks (pytest -m bench -k "
              f"checkcost)", file=sys.stderr)
        return 2
    print("\n".join(table_lines(found, markdown=False)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
