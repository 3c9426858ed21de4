"""Benchmarks that run only when asked for by name.

The check-cost comparison (``test_checkcost``, tens of minutes: it times 10^6-element checks),
the timer-agreement study (``test_accuracy``, the accuracy of the benchmarks themselves) and the
references' speed against torch (``test_refspeed``, 10^6-element cases of every op record) are
not part of ``pytest -m bench``, the benchmark run the regression gate compares: they run when
``-k`` or ``-m`` names them (``pytest -m bench -k checkcost``, ``-k accuracy``,
``-k refspeed``) or their file is named on the command line (``python -m suite.accuracy`` does
so). The reference-speed run's table is printed at the end of the run.
"""

from __future__ import annotations

import os
import sys

import pytest

ON_REQUEST = {"test_checkcost": ("checkcost", "test_check_cost"),
              "test_accuracy": ("accuracy", "test_bench_accuracy"),
              "test_refspeed": ("refspeed", "test_reference_speed")}
"""test function -> (the word that asks for it in -k or -m, its file's stem)."""


def requested(config: pytest.Config, function: str) -> bool:
    """Whether the command line asks for ``function`` by name (see the module docstring)."""
    word, stem = ON_REQUEST[function]
    asked = f"{config.option.keyword or ''} {config.option.markexpr or ''}".lower()
    return word in asked or any(stem in str(arg) for arg in config.args)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    dropped = [i for i in items if getattr(i, "originalname", None) in ON_REQUEST
               and not requested(config, i.originalname)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The reference-speed table (tests/benchmarks/test_reference_speed.py), when it ran; also
    written to $GRADSUITE_REFSPEED_MD if set."""
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
