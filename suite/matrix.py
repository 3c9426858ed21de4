"""The version report: op x torch version, from the saved results of several environments.

Each environment (a tox env such as ``py311-torch21-numpy1``) leaves a folder with the JUnit XML
of its run (``junit.xml``: pass, fail, skip and time per test) and its drift record
(``drift.json``: the largest error each test saw, relative to its tolerance; see
``suite.drift``). This module folds those per-test results into one row per op (the record name
in the test id, e.g. ``tanh`` in ``test_forward_matches_reference[cpu-float32-tanh]``; tests that
name no record keep their own name) and one column per environment:

    op    | torch 2.0.1 (py311-torch20-numpy1) | torch 2.13.0 (py311-torch213-numpy2)
    tanh  | pass 0.031 · 1.2 s                 | pass 0.029 · 1.1 s
    relu  | FAIL 1/12                          | pass 0 · 0.8 s

A cell is ``pass``, ``FAIL k/n`` (k of the op's n tests failed or errored) or ``skip`` (every
test skipped), then the largest error ratio (1 is the tolerance) and the total test time.
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
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    ratio: float = 0.0  # greatest error / tolerance over the op's tests (0 when none recorded)

    def render(self) -> str:
        if self.tests == 0:
            return "—"
        if self.failed:
            return f"FAIL {self.failed}/{self.tests}"
        if self.skipped == self.tests:
            return "skip"
        return f"pass {self.ratio:.3g} · {self.seconds:.1f} s"


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
        cell = env.cells.setdefault(op_of(node, records), Cell())
        cell.tests += 1
        cell.seconds += float(case.get("time", 0) or 0)
        if case.find("failure") is not None or case.find("error") is not None:
            cell.failed += 1
        elif case.find("skipped") is not None:
            cell.skipped += 1
        cell.ratio = max(cell.ratio, ratios.get(node, 0.0))
    return env


def load(results: Path, records: set[str]) -> list[Environment]:
    """Every environment folder under ``results`` (those holding a ``junit.xml``), by name."""
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
    lines += ["", "Cells: pass / FAIL k/n / skip, then the largest error relative to its "
              "tolerance (1 = at the tolerance) and the total test time."]
    return "\n".join(lines)
