"""The version report: op x torch version, from the saved results of several environments.

Each environment (a tox env such as ``py311-torch21-numpy1``) leaves a folder with the JUnit XML
of its run (``junit.xml``: pass, fail, skip and time per test) and its drift record
(``drift.json``: the largest error each test saw, relative to its tolerance; see
``suite.drift``). This module folds those per-test results into one row per op (the record name
in the test id, e.g. ``tanh`` in ``test_forward_matches_reference[cpu-float32-tanh]``; tests that
name no record keep their own name) and one column per environment:

    op        | torch 2.0.1 (py311-torch20-numpy1) | torch 2.13.0 (py311-torch213-numpy2)
    tanh      | pass 0.031 · 1.2 s                 | pass 0.029 · 1.1 s
    relu      | FAIL 1/12 · skip 2                 | pass 0 · skip 2 · 0.8 s
    ctc_loss  | FAIL 1/22 · xfail 1                | pass 0.12 · xfail 1 · 2.8 s

Each outcome gets its own figure. ``pass R``: the op's passing tests, R the largest error ratio
(1 is the tolerance) over those tests only (``pass`` alone when none recorded a comparison).
``FAIL k/n``: k of the op's n tests failed or errored (a strict xfail that passed is a
failure). ``xfail k``: k tests failed as expected (a recorded torch defect, strict xfail): their
error ratios, however large, are not the op's accuracy and are left out of R. ``skip k``: k tests
skipped. Then the total test time. A cell with no passing test shows only its other figures.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from suite import drift


class MatrixError(Exception):
    """Results that cannot be read: the message is one line naming the fix."""


@dataclass
class Cell:
    """What one op did in one environment."""

    tests: int = 0
    passed: int = 0
    failed: int = 0
    xfailed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    # Greatest error / tolerance over the op's *passing* tests; None when none recorded one.
    ratio: float | None = None

    def add(self, outcome: str, seconds: float, ratio: float | None) -> None:
        """Count one test: ``outcome`` is passed, failed, xfailed or skipped; ``ratio`` its
        recorded error ratio (counted only when it passed)."""
        self.tests += 1
        self.seconds += seconds
        setattr(self, outcome, getattr(self, outcome) + 1)
        if outcome == "passed" and ratio is not None:
            self.ratio = ratio if self.ratio is None else max(self.ratio, ratio)

    def render(self) -> str:
        if self.tests == 0:
            return "—"
        parts = []
        if self.failed:
            parts.append(f"FAIL {self.failed}/{self.tests}")
        elif self.passed:
            parts.append("pass" if self.ratio is None else f"pass {self.ratio:.3g}")
        if self.xfailed:
            parts.append(f"xfail {self.xfailed}")
        if self.skipped:
            parts.append(f"skip {self.skipped}")
        if not self.failed and (self.passed or self.xfailed):
            parts.append(f"{self.seconds:.1f} s")
        return " · ".join(parts)


def outcome(case: ET.Element) -> str:
    """passed, failed, xfailed or skipped, from a JUnit ``testcase`` as pytest writes it
    (an expected failure is ``<skipped type="pytest.xfail">``; a strict xfail that passed is
    a ``<failure>``)."""
    if case.find("failure") is not None or case.find("error") is not None:
        return "failed"
    skipped = case.find("skipped")
    if skipped is None:
        return "passed"
    return "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"


@dataclass
class Environment:
    """One environment's results: its label and a cell per op."""

    name: str
    torch_version: str
    cells: dict[str, Cell] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"torch {self.torch_version} ({self.name})"


def op_of(node_id: str, records: set[str]) -> str:
    """The record a test checks: the first token of its parameter id that names a record,
    else the test function's name."""
    name = node_id.split("::")[-1]
    base, _, params = name.partition("[")
    for token in params.rstrip("]").split("-"):
        if token in records:
            return token
    return base


def _node_id(case: ET.Element) -> str:
    classname = case.get("classname", "")
    module = classname.replace(".", "/") + ".py" if classname else ""
    return f"{module}::{case.get('name', '')}"


def load_environment(folder: Path, records: set[str]) -> Environment:
    """Read ``folder/junit.xml`` (required) and ``folder/drift.json`` (optional)."""
    junit = folder / "junit.xml"
    try:
        root = ET.parse(junit).getroot()
    except FileNotFoundError:
        raise MatrixError(f"{junit}: no such file (run the env with "
                          f"`--junitxml={junit}`, as tox.ini does)") from None
    except ET.ParseError as err:
        raise MatrixError(f"{junit}: not valid JUnit XML ({err}); re-run that env") from None
    ratios: dict[str, float] = {}
    torch_version = "?"
    drift_path = folder / "drift.json"
    if drift_path.exists():
        try:
            record = drift.load(drift_path)
        except drift.DriftError as err:
            raise MatrixError(str(err)) from None
        ratios = {test: float(entry["ratio"]) for test, entry in record.tests.items()}
        torch_version = str(record.metadata.get("torch_version", "?"))
    env = Environment(folder.name, torch_version)
    for case in root.iter("testcase"):
        node = _node_id(case)
        try:
            seconds = float(case.get("time", 0) or 0)
        except ValueError:
            raise MatrixError(f"{junit}: test {node!r} has time {case.get('time')!r}, not a "
                              f"number; re-run that env") from None
        env.cells.setdefault(op_of(node, records), Cell()).add(outcome(case), seconds,
                                                                ratios.get(node))
    return env


def load(results: Path, records: set[str]) -> list[Environment]:
    """Every environment folder under ``results`` (those holding a ``junit.xml``), by name."""
    if results.exists() and not results.is_dir():
        raise MatrixError(f"{results}: is a file, not a folder of results (one <env>/junit.xml "
                          f"per environment, as `tox -m matrix` saves them under .results/)")
    if not results.is_dir():
        raise MatrixError(f"{results}: no such folder (run the tox matrix first: "
                          f"`tox -m matrix`, which saves results under .results/)")
    folders = sorted(p for p in results.iterdir() if (p / "junit.xml").exists())
    if not folders:
        raise MatrixError(f"{results}: no environment results in it (expected "
                          f"<env>/junit.xml, as `tox -m matrix` writes)")
    return [load_environment(folder, records) for folder in folders]


def render_markdown(envs: list[Environment]) -> str:
    """The op x environment table as markdown, ops sorted, failures easy to spot."""
    ops = sorted({op for env in envs for op in env.cells})
    header = ["op", *(env.label for env in envs)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for op in ops:
        cells = [env.cells.get(op, Cell()).render() for env in envs]
        lines.append("| " + " | ".join([op, *cells]) + " |")
    failing = [f"{op} under {env.label}" for env in envs for op, c in sorted(env.cells.items())
               if c.failed]
    lines += ["", f"{len(ops)} ops x {len(envs)} environments; "
              f"{len(failing)} op/environment pairs failing" + (":" if failing else ".")]
    lines += [f"- {item}" for item in failing]
    lines += ["", "Cells: `pass R` (R: the largest error relative to its tolerance over the "
              "passing tests, 1 = at the tolerance) or `FAIL k/n` (k of n tests failed); "
              "`xfail k`: k expected failures (recorded torch defects; their errors are not "
              "in R); `skip k`: k skipped; then the total test time."]
    return "\n".join(lines)
