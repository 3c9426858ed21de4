"""A markdown summary of a test run, for a CI job's step summary or a file.

One row per record x dtype x device: how many tests passed, failed, were expected to fail
(a recorded torch defect) and were skipped, and the largest error any passing comparison saw
relative to its tolerance (1 is the limit; see ``suite.drift``). Skips are listed with their
reasons, failures by node id. In a run with a compiled backend (``--backend``), rows are also
split by backend and count the recompiles of their tests (``suite.compiled``), and tests that
recompiled more than ``MANY_RECOMPILES`` times are listed. Tests that check no particular record
(the harness's own tests) are grouped under their file.

The plugin labels each test when it is set up (``labels``, stored in the item's
``user_properties``, so pytest-xdist carries them to the controller and JUnit XML keeps them)
and feeds every report to a :class:`Summary`.
"""

from __future__ import annotations

import collections
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from suite.compiled import MANY_RECOMPILES, describe_causes

# user_properties keys written by the plugin.
RECORD, DTYPE, DEVICE, RATIO = ("gradsuite_record", "gradsuite_dtype", "gradsuite_device",
                                "gradsuite_error_ratio")
BACKEND, RECOMPILES = "gradsuite_backend", "gradsuite_recompiles"
# The recompiles by cause (``TestCompiles.why``: "rank 3, option 1").
RECOMPILE_CAUSES = "gradsuite_recompile_causes"
OUTCOMES = ("passed", "failed", "xfailed", "skipped")
MAX_LISTED = 50


def labels(params: Mapping[str, Any], path: str) -> dict[str, str]:
    """The record, dtype and device a test checks, read from its parameters.

    A record is any parameter with a ``name`` and a ``torch_fn`` or ``torch_cls`` (the record
    types of ``suite.specs``); a dtype is a ``torch.dtype`` parameter; a device the ``device``
    parameter. A test with no record is labelled with its file.
    """
    record = next((str(v.name) for v in params.values() if hasattr(v, "name")
                   and (hasattr(v, "torch_fn") or hasattr(v, "torch_cls"))), path)
    dtype = next((str(v).removeprefix("torch.") for v in params.values()
                  if isinstance(v, torch.dtype)), "-")
    device = str(params.get("device", "-"))
    labels = {RECORD: record, DTYPE: dtype, DEVICE: device}
    if params.get("backend", "eager") != "eager":
        labels[BACKEND] = str(params["backend"])
    return labels


@dataclass
class Row:
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    ratio: float | None = None
    recompiles: int | None = None  # summed over the row's compiled tests


@dataclass
class Summary:
    """Collects test reports; renders them as markdown."""

    rows: dict[tuple[str, str, str, str], Row] = field(default_factory=dict)
    skips: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)
    recompiled: list[tuple[str, int]] = field(default_factory=list)  # (node id, recompiles)
    causes: collections.Counter[str] = field(default_factory=collections.Counter)
    # recompiles per compiled test (its call report), for the median and maximum
    per_test: list[int] = field(default_factory=list)

    def add(self, report: Any) -> None:
        """Count a pytest TestReport once per test: its call phase, or a setup phase that did
        not pass (a skip or an error), or a teardown error."""
        when, outcome = report.when, report.outcome
        if when == "setup" and outcome == "passed":
            return
        if when == "teardown" and outcome != "failed":
            return
        props = dict(report.user_properties)
        key = (str(props.get(RECORD, report.nodeid.split("::")[0])),
               str(props.get(DTYPE, "-")), str(props.get(DEVICE, "-")),
               str(props.get(BACKEND, "eager")))
        row = self.rows.setdefault(key, Row())
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if outcome == "skipped" else "passed"
        row.counts[outcome] += 1
        if outcome == "skipped":
            self.skips[_skip_reason(report)] += 1
        elif outcome == "failed":
            self.failures.append(report.nodeid)
        ratio = props.get(RATIO)
        if outcome == "passed" and isinstance(ratio, int | float):
            row.ratio = ratio if row.ratio is None else max(row.ratio, float(ratio))
        recompiles = props.get(RECOMPILES)
        if isinstance(recompiles, int):
            row.recompiles = (row.recompiles or 0) + recompiles
            self.per_test.append(recompiles)
            if recompiles > MANY_RECOMPILES:
                self.recompiled.append((report.nodeid, recompiles))
        self.causes.update(_causes(props.get(RECOMPILE_CAUSES)))

    def totals(self) -> collections.Counter[str]:
        total: collections.Counter[str] = collections.Counter()
        for row in self.rows.values():
            total.update(row.counts)
        return total

    def markdown(self, header: Iterable[str] = ()) -> str:
        total = self.totals()
        # Runs with a compiled backend get a backend and a recompiles column; eager-only runs
        # keep the table as it was.
        compiled = any(key[3] != "eager" or row.recompiles is not None
                       for key, row in self.rows.items())
        extra = " backend |" if compiled else ""
        lines = ["## gradsuite", *header, "",
                 ", ".join(f"{total[o]} {o}" for o in OUTCOMES), "",
                 f"| record | dtype | device |{extra} passed | failed | xfailed | skipped | "
                 "largest error / tolerance |" + (" recompiles |" if compiled else ""),
                 "|---|---|---|" + ("---|" if compiled else "") + "---:|---:|---:|---:|---:|"
                 + ("---:|" if compiled else "")]
        for (record, dtype, device, backend), row in sorted(self.rows.items()):
            ratio = "" if row.ratio is None else f"{row.ratio:.3g}"
            middle = f" {backend} |" if compiled else ""
            tail = f" {'' if row.recompiles is None else row.recompiles} |" if compiled else ""
            lines.append(f"| {record} | {dtype} | {device} |{middle} "
                         + " | ".join(str(row.counts[o] or "") for o in OUTCOMES)
                         + f" | {ratio} |{tail}")
        if self.failures:
            lines += ["", f"### Failed ({len(self.failures)})", ""]
            lines += [f"- `{n}`" for n in self.failures[:MAX_LISTED]]
            if len(self.failures) > MAX_LISTED:
                lines.append(f"- ... and {len(self.failures) - MAX_LISTED} more")
        if self.per_test:
            median = statistics.median(self.per_test)
            why = describe_causes(self.causes)
            lines += ["", f"Recompiles per compiled test: median {median:g}, maximum "
                          f"{max(self.per_test)} over {len(self.per_test)} tests"
                          + (f"; by the guard that failed: {why}" if why else "")]
        if self.recompiled:
            lines += ["", f"### Recompiled more than {MANY_RECOMPILES} times "
                          f"({len(self.recompiled)})", ""]
            lines += [f"- `{n}`: {k}" for n, k in self.recompiled[:MAX_LISTED]]
        if self.skips:
            lines += ["", "### Skipped, by reason", "", "| tests | reason |", "|---:|---|"]
            lines += [f"| {n} | {reason.replace('|', '/')} |"
                      for reason, n in self.skips.most_common(MAX_LISTED)]
        return "\n".join(lines) + "\n"


def _causes(text: object) -> collections.Counter[str]:
    """``"rank 3, option 1"`` (a ``RECOMPILE_CAUSES`` property) as a Counter."""
    counts: collections.Counter[str] = collections.Counter()
    if isinstance(text, str):
        for part in text.split(", "):
            name, _, n = part.rpartition(" ")
            if name and n.isdigit():
                counts[name] += int(n)
    return counts


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr).splitlines()[-1] if longrepr else "(no reason)"
