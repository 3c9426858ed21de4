"""Synthetic benchmark runs with known distributions, for the gate's tests: no test of the gate
depends on this machine's timing (real timings belong to the benchmarks).

A benchmark's round time is ``base * mode * slowdown * exp(process_offset) * exp(noise)``:
``base`` its typical time; ``mode`` the speed mode its process landed in (drawn per process
from ``modes``, as memory layout and alignment draw it on a real machine); ``process_offset``
~ N(0, process_sigma), the smaller per-process differences; ``noise`` ~ N(0, sigma) per round
(lognormal rounds, as timings are: positive, right-skewed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from suite import gate

MACHINE: dict[str, Any] = {
    "machine": "x86_64", "cpu": {"brand_raw": "test CPU"}, "python_version": "3.11.7",
    "gradsuite": {"torch_version": "2.13.0", "numpy_version": "2.4.6", "cpu_model": "test CPU",
                  "torch_threads": 1, "blas_threads": [1]}}
FILE = "tests/test_ops.py::TestOps"
# A benchmark whose processes land in a fast or a 1.19x slower mode, the slow one more often:
# the shape issue 15 measured (576-598 us in 3 processes, 686-693 us in 5 others).
TWO_MODES = ((1.0, 3 / 8), (1.19, 5 / 8))


def names(count: int) -> list[str]:
    return [f"test_op[b{i:03d}]" for i in range(count)]


def simulate(seed: int, benchmarks: Sequence[str], *, processes: int, rounds: int = 12,
             sigma: float = 0.02, process_sigma: float = 0.01,
             modes: Sequence[tuple[float, float]] = ((1.0, 1.0),),
             slowdown: float = 1.0) -> dict[str, list[list[float]]]:
    """benchmark -> per-process round times (seconds), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    factors = np.array([m for m, _ in modes])
    weights = np.array([w for _, w in modes])
    out = {}
    for i, name in enumerate(benchmarks):
        base = 1e-4 * 10 ** (2 * (i % 7) / 7)  # fixed per benchmark: both sides share it
        per_process = []
        for _ in range(processes):
            mode = rng.choice(factors, p=weights / weights.sum())
            offset = rng.normal(0.0, process_sigma)
            noise = rng.normal(0.0, sigma, rounds)
            per_process.append(list(base * mode * slowdown * np.exp(offset + noise)))
        out[name] = per_process
    return out


def run_data(per_process: Mapping[str, Sequence[Sequence[float]]], *,
             machine: Mapping[str, Any] | None = None,
             extra_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON of a run: several processes in suite.sampling's layout when the benchmarks
    have more than one, else a plain pytest-benchmark file."""
    count = max(len(p) for p in per_process.values())
    benchmarks = []
    for name, processes in per_process.items():
        data = [float(v) for p in processes for v in p]
        entry: dict[str, Any] = {"name": name, "fullname": f"{FILE}::{name}", "group": name,
                                 "extra_info": dict(extra_info or {}),
                                 "stats": {"data": data, "median": float(np.median(data))}}
        if count > 1:
            entry["processes"] = [list(map(float, p)) for p in processes]
        benchmarks.append(entry)
    data_: dict[str, Any] = {"machine_info": dict(machine or MACHINE), "commit_info": {},
                             "benchmarks": benchmarks}
    if count > 1:
        data_["gradsuite"] = {"format": gate.PROCESSES_FORMAT, "processes": count,
                              "pytest_args": [], "planted_slowdown": None}
    return data_


def write(path: Path, per_process: Mapping[str, Sequence[Sequence[float]]],
          **kwargs: Any) -> Path:
    path.write_text(json.dumps(run_data(per_process, **kwargs)))
    return path


def load(per_process: Mapping[str, Sequence[Sequence[float]]], tmp_path: Path, name: str,
         **kwargs: Any) -> gate.Run:
    return gate.load_run(write(tmp_path / name, per_process, **kwargs))
