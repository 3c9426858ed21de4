"""Option pairs covered on purpose: a covering array of an input maker's option values.

A hundred random draws rarely hit a particular pair of option values (bfloat16 ``conv2d`` with
stride > 1 and dilation > 1 on the same dimension is one pair among hundreds), and a
derandomized profile never draws the pairs it happened to miss. An input maker that takes this
module's part declares *factors* (labels of its own draws, each with the values that select
different kernel paths) and which partial assignments torch accepts; :func:`pairwise` builds a
small set of rows in which every allowed pair of values of two factors appears at least once
(a strength-2 covering array, the AETG greedy construction of Cohen et al., IEEE TSE 1997,
made deterministic), and :func:`steered` makes the maker's own drawing code take a row's values
for those labels while Hypothesis draws everything else (sizes, values, seeds) as usual. Each
example of a covering test therefore checks every pair, and Hypothesis still shrinks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from hypothesis import strategies as st

from suite.specs import Case

Assignment = dict[str, Any]
Pair = tuple[tuple[str, int], tuple[str, int]]  # (factor, index of its value), twice


def _always(_: Mapping[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class Factors:
    """The option values to cover: ``values[label]`` are the values the maker's draw labelled
    ``label`` may take that select different kernel paths; ``allowed(partial)`` says whether a
    partial assignment is one torch accepts (False only where the given labels conflict, e.g.
    ``padding="same"`` with a stride above 1)."""

    values: Mapping[str, Sequence[Any]]
    allowed: Callable[[Mapping[str, Any]], bool] = field(default=_always)

    def __post_init__(self) -> None:
        empty = [k for k, v in self.values.items() if not v]
        if empty:
            raise ValueError(f"factors {empty} have no values: give each at least one")


@runtime_checkable
class CoveringInputs(Protocol):
    """An input maker whose option pairs are covered on purpose."""

    def covering(self) -> Factors:
        """The factors: labels of this maker's draws and the values to cover."""
        ...

    def draw_case(self, draw: st.DrawFn) -> Case:
        """One case, every choice made through ``draw`` (``strategy()`` is this under
        ``st.composite``), so that :func:`steered` can fix the covered labels."""
        ...


def _all_pairs(factors: Factors) -> set[Pair]:
    names = list(factors.values)
    pairs: set[Pair] = set()
    for a, b in itertools.combinations(names, 2):
        for i, va in enumerate(factors.values[a]):
            for j, vb in enumerate(factors.values[b]):
                if factors.allowed({a: va, b: vb}):
                    pairs.add(((a, i), (b, j)))
    return pairs


def _pairs_of(row: Mapping[str, int], names: Sequence[str]) -> Iterable[Pair]:
    for a, b in itertools.combinations([n for n in names if n in row], 2):
        yield (a, row[a]), (b, row[b])


def pairwise(factors: Factors) -> list[Assignment]:
    """Rows (one value per factor) in which every allowed pair of two factors' values occurs.

    Greedy and deterministic: each row starts from the first pair not yet covered, then gives
    each other factor, in declaration order, the allowed value that covers the most pairs not
    yet covered (the first such value on a tie). Raises ValueError when a started row cannot be
    completed (``allowed`` then refuses every value of some factor)."""
    names = list(factors.values)
    uncovered = _all_pairs(factors)
    rows: list[Assignment] = []
    if len(names) == 1:  # no pairs: each value once
        return [{names[0]: v} for v in factors.values[names[0]]]
    while uncovered:
        (a, i), (b, j) = min(uncovered, key=lambda p: (names.index(p[0][0]),
                                                       names.index(p[1][0]), p[0][1], p[1][1]))
        row = {a: i, b: j}
        for name in names:
            if name in row:
                continue
            best, gain = None, -1
            for k in range(len(factors.values[name])):
                trial = {**row, name: k}
                if not factors.allowed(_values(factors, trial)):
                    continue
                new = sum(1 for p in _pairs_of(trial, names)
                          if name in (p[0][0], p[1][0]) and p in uncovered)
                if new > gain:
                    best, gain = k, new
            if best is None:
                raise ValueError(f"covering: no value of {name!r} is allowed with "
                                 f"{_values(factors, row)}: fix the factors' allowed rule")
            row[name] = best
        uncovered -= set(_pairs_of(row, names))
        rows.append(_values(factors, row))
    return rows


def _values(factors: Factors, row: Mapping[str, int]) -> Assignment:
    return {name: factors.values[name][k] for name, k in row.items()}


def uncovered_pairs(rows: Sequence[Mapping[str, Any]], factors: Factors) -> list[str]:
    """The allowed pairs no row holds, spelled ``a=x, b=y`` (empty when ``rows`` cover them)."""
    missing = []
    for (a, i), (b, j) in sorted(_all_pairs(factors)):
        va, vb = factors.values[a][i], factors.values[b][j]
        if not any(a in r and b in r and r[a] == va and r[b] == vb for r in rows):
            missing.append(f"{a}={va!r}, {b}={vb!r}")
    return missing


def steered(draw: st.DrawFn, row: Mapping[str, Any]) -> st.DrawFn:
    """``draw`` that answers a draw labelled with one of ``row``'s factors by the row's value,
    and passes every other draw to Hypothesis."""
    def steered_draw(strategy: st.SearchStrategy[Any], label: Any = None) -> Any:
        if isinstance(label, str) and label in row:
            return row[label]
        return draw(strategy, label=label)

    return steered_draw  # type: ignore[return-value]  # DrawFn is a Protocol with __signature__


def rows_of(inputs: CoveringInputs) -> list[Assignment]:
    """The covering rows of ``inputs`` (built once per maker: the greedy search is quadratic
    in the number of pairs)."""
    from suite.specs import cached_strategy

    return cached_strategy(inputs, "covering rows", lambda: pairwise(inputs.covering()))


def case_for(inputs: CoveringInputs, row: Mapping[str, Any]) -> st.SearchStrategy[Case]:
    """Cases of ``inputs`` with ``row``'s values for its factors."""
    @st.composite
    def cases(draw: st.DrawFn) -> Case:
        return inputs.draw_case(steered(draw, row))

    return cases()


def describe(row: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in row.items())


# --- optimizers: every pair of flag values -------------------------------------------------------

# Hyper-parameters that switch a branch of an update rule, with the values that take each
# branch (a zero weight decay or momentum skips its whole term). Boolean constructor flags of
# the record's drawn hyper-parameters (amsgrad, maximize, nesterov, centered,
# decoupled_weight_decay, ...) are added from torch's signature.
OPTIMIZER_BRANCHES: dict[str, tuple[Any, ...]] = {
    "weight_decay": (0.0, 0.01), "momentum": (0.0, 0.9), "dampening": (0.0, 0.5)}
# Flags that choose the implementation: the checks' ``implementation`` parameter varies them.
IMPLEMENTATION_FLAGS = ("foreach", "fused", "differentiable", "capturable")


def optimizer_factors(torch_cls: Callable[..., Any], drawn: Mapping[str, Any]) -> Factors:
    """The branch-selecting hyper-parameters among ``drawn`` (a record's drawn hyper-parameter
    keys): its boolean flags and the terms a zero switches off. SGD's nesterov needs momentum
    and no dampening (torch refuses it otherwise)."""
    import inspect

    try:
        parameters = inspect.signature(torch_cls).parameters
    except (TypeError, ValueError):
        parameters = {}  # type: ignore[assignment]
    values: dict[str, tuple[Any, ...]] = {}
    for name, parameter in parameters.items():
        if name in drawn and name not in IMPLEMENTATION_FLAGS \
                and isinstance(parameter.default, bool):
            values[name] = (False, True)
    values.update({k: v for k, v in OPTIMIZER_BRANCHES.items() if k in drawn})

    def allowed(row: Mapping[str, Any]) -> bool:
        return not (row.get("nesterov") and (row.get("momentum", 0.9) == 0.0
                                             or row.get("dampening", 0.0) != 0.0))

    return Factors(values, allowed)
