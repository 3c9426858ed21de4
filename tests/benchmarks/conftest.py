"""The reference-speed benchmark's table at the end of a run (``pytest -m bench -k refspeed``)."""

from __future__ import annotations

import os
import sys

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    module = sys.modules.get("tests.benchmarks.test_reference_speed")
    text = module.summary() if module is not None else None
    if text is None:
        return
    terminalreporter.section("NumPy reference / torch CPU (1 thread), forward + VJP, float64")
    for line in text.splitlines():
        terminalreporter.write_line(line)
    path = os.environ.get("GRADSUITE_REFSPEED_MD")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + "\n")
