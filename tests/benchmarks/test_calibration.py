"""A planted slowdown for checking the regression gate on a real machine.

``test_gate_calibration`` times a fixed workload (64 x 64 float64 matrix products, in cache,
one thread) repeated ``GRADSUITE_BENCH_SLOWDOWN`` times as much as normal (default 1: the
normal workload). Two runs of the same build must not alarm; a run with
``GRADSUITE_BENCH_SLOWDOWN=1.5`` must::

    python -m suite measure --processes 5 --out base.json -- -k calibration
    GRADSUITE_BENCH_SLOWDOWN=1.5 python -m suite measure --processes 5 --out slow.json -- \
        -k calibration
    python -m suite compare base.json slow.json      # exit 1: 'SLOWER'

(Five processes a side: the gate's unit is the process, suite/gate.py.) The gate study
(``python -m suite gate-study``) plants a slowdown in every benchmark instead, with
``GRADSUITE_BENCH_PLANTED_SLOWDOWN`` (suite.bench.planted).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from suite import bench

pytestmark = pytest.mark.bench

UNITS = 20  # matrix products per call at slowdown 1


def _workload(units: int):
    a = np.random.default_rng(0).standard_normal((64, 64))

    def call() -> None:
        for _ in range(units):
            a @ a

    return call


def test_gate_calibration(benchmark) -> None:
    slowdown = float(os.environ.get("GRADSUITE_BENCH_SLOWDOWN", "1"))
    benchmark.group = "gate calibration"
    benchmark.extra_info.update({"op": "calibration", "pass": "planted", "slowdown": slowdown})
    bench.run(benchmark, _workload(round(UNITS * slowdown)), "cpu")
