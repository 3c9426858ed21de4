"""Benchmarks that run only when asked for by name.

The check-cost comparison (``test_checkcost``, tens of minutes: it times 10^6-element checks)
and the timer-agreement study (``test_accuracy``, the accuracy of the benchmarks themselves)
are not part of ``pytest -m bench``, the benchmark run the regression gate compares: they run
when ``-k`` or ``-m`` names them (``pytest -m bench -k checkcost``, ``-k accuracy``) or their
file is named on the command line (``python -m suite.accuracy`` does so).
"""

from __future__ import annotations

import pytest

ON_REQUEST = {"test_checkcost": ("checkcost", "test_check_cost"),
              "test_accuracy": ("accuracy", "test_bench_accuracy")}
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
