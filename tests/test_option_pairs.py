"""Every pair of kernel-selecting option values, covered on purpose (``suite.covering``): each
example checks one case per row of the record's covering array, so a pair a hundred random draws
would miss (bfloat16 convolution with stride and dilation above 1 on the same dimension) is
checked in every profile, deterministic under the ci profile. Ids name the record
(``pytest -k "option_pair and conv2d"``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import hypothesis
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gradsuite as gs
from suite import battery, catalog, checks, covering, higher, poison

TestOptionPairs = gs.battery(*catalog.OPS, only=(
    "test_every_option_pair_matches_reference", "test_every_option_pair_in_low_precision"))


# --- the covering array itself ------------------------------------------------------------------

COVERED = [s for s in catalog.OPS if isinstance(s.inputs, covering.CoveringInputs)]


@pytest.mark.parametrize("spec", COVERED, ids=lambda s: s.name)
def test_rows_cover_every_allowed_pair_and_break_no_rule(spec: gs.OpSpec) -> None:
    factors = spec.inputs.covering()
    rows = covering.pairwise(factors)
    assert covering.uncovered_pairs(rows, factors) == []
    assert all(factors.allowed(row) for row in rows)
    assert rows == covering.pairwise(factors), "the rows must not depend on the run"
    # A covering array is far smaller than the product of the factors' sizes.
    product = 1
    for values in factors.values.values():
        product *= len(values)
    assert len(rows) < product


def test_a_dropped_row_leaves_pairs_uncovered() -> None:
    """The coverage test above can fail: drop any row of a small array and pairs go missing."""
    factors = covering.Factors({"a": (1, 2), "b": ("x", "y"), "c": (False, True)})
    rows = covering.pairwise(factors)
    assert len(rows) == 4  # the optimum for three two-valued factors
    for i in range(len(rows)):
        assert covering.uncovered_pairs(rows[:i] + rows[i + 1:], factors)


def test_a_refused_pair_is_never_required_and_never_drawn() -> None:
    factors = covering.Factors({"kind": ("same", "ints"), "stride": (1, 2), "bias": (0, 1)},
                               lambda row: not (row.get("kind") == "same"
                                                and row.get("stride", 1) != 1))
    rows = covering.pairwise(factors)
    assert {"kind": "same", "stride": 2}.items() - rows[0].items()
    assert not any(r["kind"] == "same" and r["stride"] == 2 for r in rows)
    assert covering.uncovered_pairs(rows, factors) == []


def test_factors_that_cannot_complete_a_row_are_refused_with_the_fix() -> None:
    # a=2 goes with any b, but with no c: the pair (a=2, b=1) is allowed and cannot be completed
    factors = covering.Factors({"a": (1, 2), "b": (1, 2), "c": (1, 2)},
                               lambda row: not (row.get("a") == 2 and "c" in row))
    with pytest.raises(ValueError, match="no value of 'c' is allowed"):
        covering.pairwise(factors)


def _conv2d_wrong_when_strided_and_dilated(input: torch.Tensor, weight: torch.Tensor,
                                           bias: torch.Tensor | None = None, stride: Any = 1,
                                           padding: Any = 0, dilation: Any = 1,
                                           groups: int = 1) -> torch.Tensor:
    """conv2d that is off by 1 % when the last dimension has stride and dilation above 1 (the
    shape of the bfloat16 conv2d report of issue 13): one pair of option values."""
    out = F.conv2d(input, weight, bias, stride, padding, dilation, groups)

    def last(v: Any) -> int:
        return v if isinstance(v, int) else v[-1]

    if last(stride) == 1 or last(dilation) == 1:
        return out
    return out * 1.01


def _simplest(strategy: Any, condition: Any = lambda _: True) -> Any:
    """Hypothesis's simplest value of ``strategy`` meeting ``condition`` (deterministic; no
    failure to shrink)."""
    return hypothesis.find(strategy, condition,
                           settings=hypothesis.settings(database=None, max_examples=200))


def _nonzero_output(spec: gs.OpSpec) -> Any:
    """Cases whose output is not all zero (the simplest scale is 0, and the simplest sides let
    a padded window read only padding)."""
    return lambda case: bool(np.abs(spec.reference(case)).max() > 0.1)


def test_a_bug_in_one_pair_of_options_fails_on_the_rows_that_hold_it() -> None:
    """The battery's check passes conv2d; a conv2d wrong on one pair of option values fails on
    the covering rows holding that pair (each row's simplest case), and on no other row."""
    spec = next(s for s in catalog.OPS if s.name == "conv2d")
    gs.battery(spec, only=("test_every_option_pair_matches_reference",)) \
        .test_every_option_pair_matches_reference(None, spec=spec, dtype=torch.float64,
                                                  device="cpu")
    bad = dataclasses.replace(spec, torch_fn=_conv2d_wrong_when_strided_and_dilated)
    failed, holding = [], []
    for row in covering.rows_of(spec.inputs):
        if row["stride[1]"] > 1 and row["dilation[1]"] > 1:
            holding.append(row)
        try:
            checks.run("forward", bad, _simplest(covering.case_for(spec.inputs, row),
                                                        _nonzero_output(spec)),
                       dtype=torch.float64, device="cpu")
        except AssertionError:
            failed.append(row)
    assert holding and failed == holding


class _AdamWrongWithAmsgradAndMaximize(torch.optim.Adam):
    """Adam whose step is off by 1e-3 when amsgrad and maximize are both on: one pair of flag
    values."""

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = super().step(closure)
        for group in self.param_groups:
            if group["amsgrad"] and group["maximize"]:
                for p in group["params"]:
                    p.add_(1e-3)
        return loss


def test_a_bug_in_one_pair_of_optimizer_flags_fails_on_the_rows_that_hold_it() -> None:
    spec = next(s for s in catalog.OPTIMIZERS if s.name == "adam")
    name = "test_every_flag_pair_steps_match_reference"
    gs.battery(spec, only=(name,)).test_every_flag_pair_steps_match_reference(
        None, spec=spec, implementation="for-loop", dtype=torch.float64, device="cpu")
    bad = dataclasses.replace(spec, torch_cls=_AdamWrongWithAmsgradAndMaximize)
    base = _simplest(battery._runs(spec, "for-loop", torch.float64))
    rows = battery._flag_rows(spec, base.hyper)
    failed = []
    for row in rows:
        try:
            checks.run("optimizer_steps", bad, battery._with_row(base, row),
                       implementation="for-loop", dtype=torch.float64, device="cpu")
        except AssertionError:
            failed.append(row)
    holding = [r for r in rows if r["amsgrad"] and r["maximize"]]
    assert holding and failed == holding


# --- the two bfloat16 convolution reports of issue 13, at their exact shapes ------------------
# Reported from random-seed runs (torch 2.13.0 and 2.15.0 CPU): conv2d wrong when stride and
# dilation above 1 act on one dimension, and conv1d's weight gradient left as memory never
# written. Not reproduced on this machine (AVX2, torch 2.13.0+cpu; KNOWN_DIFFERENCES.md), so
# these are plain tests: under poisoned memory they fail wherever either defect shows, and the
# covering rows above hold both option pairs in every example.


def _case(arrays: dict[str, np.ndarray], **options: Any) -> gs.Case:
    return gs.Case(arrays, tuple(arrays), options, 0)


def _reported_cases() -> dict[str, tuple[str, gs.Case]]:
    rng = np.random.default_rng(22)
    return {
        "conv2d stride (1, 2) dilation (1, 2) groups 2": ("conv2d", _case(
            {"input": rng.standard_normal((4, 5, 5)),
             "weight": rng.standard_normal((2, 2, 1, 3)) / np.sqrt(6)},
            stride=(1, 2), dilation=(1, 2), groups=2)),
        "conv1d stride 3 padding 1 of one element": ("conv1d", _case(
            {"input": rng.standard_normal((1, 1)),
             "weight": rng.standard_normal((1, 1, 2)) / np.sqrt(2)},
            stride=3, padding=1)),
    }


@pytest.mark.parametrize("report", list(_reported_cases()))
@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
def test_reported_half_precision_convolutions(report: str, half: torch.dtype) -> None:
    name, case = _reported_cases()[report]
    spec = next(s for s in catalog.OPS if s.name == name)
    with poison.poisoned(poison.missing() is None):
        for _ in range(3):  # "not always", the report said: three calls, each compared
            higher.check_low_precision(spec, case, half, "cpu")
