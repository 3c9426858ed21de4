"""Several processes per side: ``python -m suite measure --processes K --out RUN.json -- ARGS``.

A benchmark's speed differs more between processes than between the rounds of one process
(memory layout and alignment are drawn when a process starts; ``suite.gate`` explains), so the
regression gate compares samples of processes. ``measure`` runs the same selection,
``python -m pytest -m bench ARGS --benchmark-json=...``, in K fresh processes one after the
other (pyperf's workers, for the same reason), or J at a time with ``--parallel J`` (each on
its own core: with one torch thread the clock is the thread's CPU time, but the neighbours'
cache and memory traffic is then in the timings), and merges them into one run file:

- pytest-benchmark's layout (``machine_info``, ``commit_info``, ``benchmarks`` with ``name``,
  ``fullname``, ``group``, ``extra_info`` and ``stats.data`` = every round of every process,
  so tools that read pytest-benchmark files still read it), plus
- per benchmark ``processes``: the rounds of each process that ran it, in order, and
- ``gradsuite``: ``{"format": "gradsuite-processes/1", "processes": K, "pytest_args": ARGS,
  "planted_slowdown": ..., "parallel": J}``.

``stats.median`` is the median of the per-process medians, the figure the gate reports. A
benchmark skipped in some processes (a size at the ``suite.bench.MAX_CALL_S`` ceiling) keeps
the processes that ran it. The file is written once, atomically, when every process has
finished: an interrupted or failed measurement leaves nothing behind.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from suite import drift
from suite import gate as gt

# Environment variable that makes every benchmark's target slower by a factor (suite.bench):
# the gate study's planted regression, never set in ordinary runs.
PLANTED_ENV = "GRADSUITE_BENCH_PLANTED_SLOWDOWN"
# pytest options measure sets itself.
OWN_OPTIONS = ("--benchmark-json", "--benchmark-autosave", "--benchmark-save",
               "--benchmark-storage")


def planted_slowdown(environ: Mapping[str, str]) -> float | None:
    """The factor ``GRADSUITE_BENCH_PLANTED_SLOWDOWN`` asks for (None when unset or empty).

    Raises GateError unless it is a finite number of at least 1."""
    text = environ.get(PLANTED_ENV, "").strip()
    if not text:
        return None
    try:
        factor = float(text)
    except ValueError:
        factor = math.nan
    if not (math.isfinite(factor) and factor >= 1):
        raise gt.GateError(f"{PLANTED_ENV} needs a factor of at least 1 such as 1.5, got "
                           f"{text!r} (unset it for ordinary runs)")
    return factor


def pytest_command(pytest_args: Sequence[str], json_path: str) -> list[str]:
    """One measuring process: the benchmarks selected by ``pytest_args``, saved to
    ``json_path``; pytest-benchmark's storage folder beside it (a temporary folder), so
    that measuring leaves nothing in the working folder."""
    storage = Path(json_path).parent / "storage"
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "bench",
            *pytest_args, f"--benchmark-json={json_path}",
            f"--benchmark-storage=file://{storage}"]


def check_pytest_args(pytest_args: Sequence[str]) -> None:
    """Refuse options that measure sets itself."""
    for arg in pytest_args:
        if arg.split("=", 1)[0] in OWN_OPTIONS:
            raise gt.GateError(f"{arg.split('=', 1)[0]} is measure's own (it writes one JSON "
                               f"per process and merges them into --out): drop it")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def merge(parts: Sequence[tuple[dict[str, Any], gt.Run]], *, pytest_args: Sequence[str],
          planted: float | None = None, parallel: int = 1) -> dict[str, Any]:
    """One run file from the (raw JSON, loaded run) of each process (see the module docstring).

    Raises GateError when the processes ran on different machines."""
    first_raw, first = parts[0]
    for _, run in parts[1:]:
        hardware, _ = gt.machine_differences(first, run)
        if hardware:
            raise gt.GateError(f"the processes ran on different machines ({hardware[0]}): "
                               f"measure on one machine")
    entries: dict[str, dict[str, Any]] = {}
    rounds: dict[str, list[list[float]]] = {}
    for raw, run in parts:
        raw_by_name = {str(b.get("fullname")): b for b in raw["benchmarks"]}
        for fullname, bench in run.benchmarks.items():
            if fullname not in entries:
                src = raw_by_name[fullname]
                entries[fullname] = {key: src[key] for key in
                                     ("name", "fullname", "group", "params", "param",
                                      "extra_info", "options") if key in src}
                rounds[fullname] = []
            rounds[fullname].append([float(v) for v in bench.rounds])
    benchmarks = []
    for fullname, entry in entries.items():
        per_process = rounds[fullname]
        medians = [float(np.median(p)) for p in per_process]
        data = [v for p in per_process for v in p]
        entry["stats"] = {"data": data, "median": float(np.median(medians)),
                          "rounds": len(data), "processes": len(per_process)}
        entry["processes"] = per_process
        benchmarks.append(entry)
    return {"machine_info": first.machine_info, "commit_info": first.commit_info,
            "datetime": first_raw.get("datetime"), "version": first_raw.get("version"),
            "gradsuite": {"format": gt.PROCESSES_FORMAT, "processes": len(parts),
                          "pytest_args": list(pytest_args), "planted_slowdown": planted,
                          "parallel": parallel},
            "benchmarks": benchmarks}


def measure(pytest_args: Sequence[str], processes: int, out: str | os.PathLike[str], *,
            env: Mapping[str, str] | None = None, parallel: int = 1,
            progress: Callable[[str], None] | None = print) -> gt.Run:
    """Run the benchmarks ``pytest_args`` select in ``processes`` fresh processes, ``parallel``
    at a time (default one after the other), merge them and write ``out`` atomically; return
    the merged run.

    ``env`` adds to (or overrides) this process's environment for the measuring processes.
    Raises GateError (nothing written) when a process fails or selects no benchmark."""
    if processes < 1:
        raise gt.GateError(f"--processes needs a positive count, got {processes}")
    check_parallel(parallel)
    check_pytest_args(pytest_args)
    environment = {**os.environ, **(env or {})}
    planted = planted_slowdown(environment)
    start = time.perf_counter()
    finished = [0]
    with tempfile.TemporaryDirectory(prefix="gradsuite-measure-") as tmp:
        def one(i: int) -> tuple[dict[str, Any], gt.Run]:
            path = os.path.join(tmp, f"process-{i}.json")
            t0 = time.perf_counter()
            done = subprocess.run(pytest_command(pytest_args, path), capture_output=True,
                                  text=True, check=False, env=environment)
            if done.returncode == 5:
                raise gt.GateError(f"`pytest -m bench {' '.join(pytest_args)}` selected no "
                                   f"benchmark; check the selection (-k, node ids)")
            if done.returncode != 0 or not os.path.exists(path):
                raise gt.GateError(f"process {i}/{processes}: pytest exited "
                                   f"{done.returncode} ({_last_line(done.stdout + done.stderr)})"
                                   f"; nothing written")
            run = gt.load_run(path)
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
            finished[0] += 1
            if progress is not None:
                n = finished[0]
                left = (time.perf_counter() - start) / n * (processes - n)
                progress(f"process {i}/{processes}: {len(run.benchmarks)} benchmarks in "
                         f"{time.perf_counter() - t0:.0f} s"
                         + (f" (about {left:.0f} s left)" if n < processes else ""))
            return raw, run

        if parallel == 1:
            parts = [one(i) for i in range(1, processes + 1)]
        else:
            # Threads only wait on their subprocess; a failure surfaces from map in order
            # (the others still finish: a process cannot be half measured).
            with ThreadPoolExecutor(max_workers=parallel) as pool:
                parts = list(pool.map(one, range(1, processes + 1)))
    merged = merge(parts, pytest_args=pytest_args, planted=planted, parallel=parallel)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    drift.write_json_atomic(out, merged)
    return gt.load_run(out)


def check_parallel(parallel: int) -> None:
    """Refuse more simultaneous processes than cores: each must have a core to itself, or
    the clock measures the waiting."""
    cores = os.cpu_count() or 1
    if parallel < 1 or parallel > cores:
        raise gt.GateError(f"--parallel {parallel}: use 1 to {cores} (this machine's cores; "
                           f"each measuring process needs one to itself)")


def rerun(base: gt.Run, flagged: Sequence[str], *, threshold: float, alpha: float,
          processes: int, pytest_args: Sequence[str] = (), parallel: int = 1) -> gt.GateResult:
    """Measure the ``flagged`` benchmarks again (``processes`` fresh processes of just those
    node ids, ``parallel`` at a time up to this machine's cores, in the current environment)
    and test the new measurement against ``base``.

    A slowdown is real when it shows in two independent measurements; a burst of load from
    another process during one measurement (the typical false alarm on a shared machine)
    does not repeat."""
    with tempfile.TemporaryDirectory(prefix="gradsuite-rerun-") as tmp:
        out = Path(tmp) / "rerun.json"
        if processes > 1:
            again = measure([*pytest_args, *flagged], processes, out, progress=None,
                            parallel=min(parallel, os.cpu_count() or 1))
        else:
            cmd = pytest_command([*pytest_args, *flagged], str(out))
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0 or not out.exists():
                raise gt.GateError(f"re-measuring {len(flagged)} benchmarks failed (exit "
                                   f"{done.returncode}: {_last_line(done.stdout + done.stderr)}"
                                   f"); run from the repository root with the new build "
                                   f"installed")
            again = gt.load_run(out)
    return gt.compare_runs(base, again, threshold=threshold, alpha=alpha,
                           names=[k for k in flagged if k in again.benchmarks],
                           allow_missing=True)
