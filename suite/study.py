"""The gate's own error rates: ``python -m suite gate-study``.

How often does ``python -m suite compare`` fail a build that did not change (a false alarm),
and how often does it catch a real slowdown? Both depend on the machine, so the study measures
them where it runs:

- **benchmarks**: a subset that spans every family, ``DEFAULT_OPS`` (activations tanh, gelu,
  relu; layers linear, layer_norm, conv2d; losses cross_entropy,
  binary_cross_entropy_with_logits, mse_loss; optimizers adam and sgd), timed by torch in
  float64 and float32 and by the NumPy reference (float64), forward and forward+backward (one
  step per implementation for optimizers: for-loop, foreach, fused), at n = 16, 64 and 256:
  the benchmark node ids of ``tests/test_ops.py`` and ``tests/test_optimizers.py`` that match,
  204 with the defaults (54 activation, 54 layer, 54 loss, 42 optimizer benchmarks);
- **runs**: for each pair i = 1..PAIRS, in this order, ``same-i-a``, ``same-i-b`` (the same
  build twice) and ``slow-i`` (the same build with every benchmark's target made SLOWDOWN
  times slower, ``GRADSUITE_BENCH_PLANTED_SLOWDOWN``, ``suite.bench.planted``); each run is
  ``suite.sampling.measure`` of PROCESSES fresh processes (``--parallel J`` at a time; with
  ``--rounds N`` each benchmark gets N rounds a process, ``pytest --bench-rounds``).
  Interleaving the three kinds spreads slow changes of the machine's load over all of them;
- **verdicts**: at thresholds 10% and 20%, ``compare_runs(same-i-a, same-i-b)`` (a pair with
  any SLOWER benchmark is a false alarm: the gate would exit 1) and
  ``compare_runs(same-i-a, slow-i)`` (caught when the gate exits 1), at ``--alpha``. For
  contrast the same pairs are also compared the old way, on the rounds of one process a side
  (each run's first process).

``OUT/runs/*.json`` keep every run (a study run again with the same settings reuses the runs
already complete, so an interrupted study resumes); ``OUT/study.md`` and ``OUT/study.json``
hold the figures. Timing figures are only as quiet as the machine: run it alone.
"""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from suite import drift, sampling
from suite import gate as gt

DEFAULT_OPS = ("tanh", "gelu", "relu", "linear", "layer_norm", "conv2d", "cross_entropy",
               "binary_cross_entropy_with_logits", "mse_loss", "adam", "sgd")
DEFAULT_SIZES = (16, 64, 256)
DTYPES = ("float64", "float32")
THRESHOLDS = (0.10, 0.20)
# The battery's benchmark methods of gradsuite's own op and optimizer records.
BENCH_FILES = ("tests/test_ops.py", "tests/test_optimizers.py")
_OP_ID = re.compile(r"::test_benchmark\[cpu-(?P<dtype>float\d+)-(?P<op>\w+)-(?:forward\+backward|"
                    r"forward)-(?P<impl>torch|numpy)-n(?P<n>\d+)\]$")
_STEP_ID = re.compile(r"::test_benchmark_step\[cpu-(?P<dtype>float\d+)-(?P<op>\w+)-"
                      r"(?P<impl>for-loop|foreach|fused|numpy)-n(?P<n>\d+)\]$")


@dataclass(frozen=True)
class Plan:
    """What a study measures."""

    node_ids: tuple[str, ...]
    families: dict[str, int]  # benchmarks per family
    pairs: int
    processes: int
    slowdown: float
    alpha: float
    ops: tuple[str, ...] = ()
    sizes: tuple[int, ...] = ()
    rounds: int | None = None  # --bench-rounds of every process (None: suite.bench's schedule)
    parallel: int = 1  # processes measured at a time

    def pytest_args(self) -> list[str]:
        """What each measuring process is given: the node ids, and the round count if fixed."""
        fixed = [f"--bench-rounds={self.rounds}"] if self.rounds else []
        return [*fixed, *self.node_ids]

    def runs(self) -> list[tuple[str, float | None]]:
        """(run name, planted slowdown) in measuring order."""
        order: list[tuple[str, float | None]] = []
        for i in range(1, self.pairs + 1):
            order += [(f"same-{i:02d}-a", None), (f"same-{i:02d}-b", None),
                      (f"slow-{i:02d}", self.slowdown)]
        return order


def collect(pytest_args: Sequence[str] = ()) -> list[str]:
    """The benchmark node ids of ``BENCH_FILES`` on the CPU in ``DTYPES`` (pytest
    --collect-only, from the repository root)."""
    missing = [f for f in BENCH_FILES if not Path(f).exists()]
    if missing:
        raise gt.GateError(f"{missing[0]} is not here: run the gate study from the "
                           f"repository root")
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
           "-m", "bench", *BENCH_FILES, "--device", "cpu", "--dtype", ",".join(DTYPES),
           *pytest_args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
        raise gt.GateError(f"collecting the benchmarks failed (exit {done.returncode}: "
                           f"{tail[0]})")
    return [line.strip() for line in done.stdout.splitlines() if "::" in line]


def op_of(node_id: str) -> str | None:
    """The record a benchmark node id times (None for other benchmarks)."""
    match = _OP_ID.search(node_id) or _STEP_ID.search(node_id)
    return match["op"] if match else None


def choose(node_ids: Sequence[str], ops: Sequence[str], sizes: Sequence[int]) -> list[str]:
    """The node ids of ``ops`` at ``sizes``: torch in every dtype, NumPy in float64 only (it
    runs once; the other rows skip)."""
    chosen = []
    for node in node_ids:
        match = _OP_ID.search(node) or _STEP_ID.search(node)
        if match is None or match["op"] not in ops or int(match["n"]) not in sizes:
            continue
        if match["impl"] == "numpy" and match["dtype"] != "float64":
            continue
        chosen.append(node)
    return chosen


def plan(*, ops: Sequence[str] | None = None, sizes: Sequence[int] | None = None,
         pairs: int = 10, processes: int = 10, slowdown: float = 1.5,
         alpha: float = 0.05, node_ids: Sequence[str] | None = None,
         rounds: int | None = None, parallel: int = 1) -> Plan:
    """Select the benchmarks (collecting them unless ``node_ids`` is given) and check that
    the gate can fail with this many processes, before anything is measured."""
    from suite import catalog

    ops = tuple(ops or DEFAULT_OPS)
    sizes = tuple(sizes or DEFAULT_SIZES)
    family = {s.name: s.family for s in catalog.OPS}
    family.update({o.name: "optimizer" for o in catalog.OPTIMIZERS})
    unknown = [op for op in ops if op not in family]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], list(family), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise gt.GateError(f"--ops: no benchmarked record named {unknown[0]!r}{hint} "
                           f"(`python -m suite list` lists them)")
    chosen = choose(collect() if node_ids is None else node_ids, ops, sizes)
    timed = Counter(op_of(node) for node in chosen)
    missing = [op for op in ops if not timed[op]]
    if missing:
        raise gt.GateError(f"--ops {missing[0]}: no benchmark at sizes "
                           f"{','.join(map(str, sizes))}; choose sizes it sweeps "
                           f"(suite.bench.sizes)")
    counts = Counter(family[str(op_of(node))] for node in chosen)
    needed = gt.processes_needed(len(chosen), alpha)
    if processes < needed:
        raise gt.GateError(f"--processes {processes}: with {len(chosen)} benchmarks the gate "
                           f"could never fail at alpha {alpha:g} (Holm); use at least {needed}")
    sampling.check_parallel(parallel)
    return Plan(tuple(chosen), dict(sorted(counts.items())), pairs, processes, slowdown, alpha,
                ops, sizes, rounds, parallel)


def describe(p: Plan) -> str:
    """What the plan measures, in a few lines."""
    families = ", ".join(f"{n} {f}" for f, n in p.families.items())
    return (f"gate study: {len(p.node_ids)} benchmarks ({families}; ops {', '.join(p.ops)}; "
            f"n = {', '.join(map(str, p.sizes))}; {', '.join(DTYPES)})\n"
            f"{3 * p.pairs} runs of {p.processes} processes each: {p.pairs} same-build pairs "
            f"and {p.pairs} runs planted {p.slowdown:g}x slower, "
            f"{3 * p.pairs * p.processes} processes in all, {p.parallel} at a time; "
            + (f"{p.rounds} rounds a benchmark" if p.rounds else
               "rounds as suite.bench schedules them (10 to 40)"))


def _reusable(path: Path, p: Plan, planted: float | None) -> gt.Run | None:
    """The run at ``path`` when it is complete and was measured with these settings."""
    try:
        with open(path, encoding="utf-8") as f:
            ours = json.load(f).get("gradsuite") or {}
        run = gt.load_run(path)
    except (OSError, ValueError, AttributeError, gt.GateError):
        return None
    same = (ours.get("pytest_args") == p.pytest_args() and ours.get("processes") == p.processes
            and ours.get("planted_slowdown") == planted
            and ours.get("parallel", 1) == p.parallel)
    return run if same else None


def first_process(run: gt.Run) -> gt.Run:
    """``run`` as if only its first process had measured it (the one-process unit)."""
    benchmarks = {k: gt.Benchmark(b.fullname, b.name, b.group, b.extra_info, b.processes[:1])
                  for k, b in run.benchmarks.items()}
    return gt.Run(f"{run.path} (process 1)", run.machine_info, run.commit_info, benchmarks, 1)


@dataclass
class Tally:
    """The verdicts of one unit and threshold over every pair."""

    unit: str
    threshold: float
    same_alarms: list[int] = field(default_factory=list)  # SLOWER benchmarks per same pair
    slow_flagged: list[int] = field(default_factory=list)  # SLOWER benchmarks per slowed pair
    compared: int = 0
    slow_ratios: list[float] = field(default_factory=list)
    same_ratios: list[float] = field(default_factory=list)
    refused: str = ""

    def row(self) -> list[str]:
        if self.refused:
            return [self.unit, f"{100 * self.threshold:g}%", f"refused: {self.refused}",
                    "", "", "", ""]
        import numpy as np

        pairs = len(self.same_alarms)
        return [self.unit, f"{100 * self.threshold:g}%",
                f"{sum(a > 0 for a in self.same_alarms)}/{pairs}",
                f"{sum(self.same_alarms)}/{self.compared * pairs}",
                f"{sum(f > 0 for f in self.slow_flagged)}/{len(self.slow_flagged)}",
                f"{sum(self.slow_flagged)}/{self.compared * len(self.slow_flagged)}",
                f"{np.median(self.slow_ratios):.3f}x" if self.slow_ratios else ""]


HEAD = ["unit", "threshold", "same-build pairs that alarmed", "false-alarm benchmarks",
        "slowed pairs caught", "slowed benchmarks flagged", "median measured slowdown"]


def analyse(p: Plan, runs: dict[str, gt.Run]) -> list[Tally]:
    """Every unit and threshold's verdicts over the pairs."""
    tallies = []
    units = [(f"processes ({p.processes} a side)", lambda r: r),
             ("one process a side (rounds)", first_process)]
    for unit, view in units:
        for threshold in THRESHOLDS:
            tally = Tally(unit, threshold)
            try:
                for i in range(1, p.pairs + 1):
                    a = view(runs[f"same-{i:02d}-a"])
                    same = gt.compare_runs(a, view(runs[f"same-{i:02d}-b"]),
                                           threshold=threshold, alpha=p.alpha,
                                           intervals=False)
                    slow = gt.compare_runs(a, view(runs[f"slow-{i:02d}"]),
                                           threshold=threshold, alpha=p.alpha,
                                           intervals=False)
                    tally.compared = len(same.comparisons)
                    tally.same_alarms.append(len(same.slower))
                    tally.slow_flagged.append(len(slow.slower))
                    tally.same_ratios += [c.ratio for c in same.comparisons]
                    tally.slow_ratios += [c.ratio for c in slow.comparisons]
            except gt.GateError as err:
                tally.refused = str(err)
            tallies.append(tally)
    return tallies


def markdown(p: Plan, tallies: list[Tally], runs: dict[str, gt.Run], seconds: float) -> str:
    """The study's report."""
    first = next(iter(runs.values()))
    ours = first.machine_info.get("gradsuite") or {}
    lines = [f"# Gate study, {datetime.date.today().isoformat()}", "",
             f"`python -m suite gate-study --pairs {p.pairs} --processes {p.processes} "
             f"--slowdown {p.slowdown:g} --ops {','.join(p.ops)} --sizes "
             f"{','.join(map(str, p.sizes))} --alpha {p.alpha:g}"
             + (f" --rounds {p.rounds}" if p.rounds else "")
             + (f" --parallel {p.parallel}" if p.parallel > 1 else "") + "`", "",
             f"- machine: {ours.get('cpu_model', '?')}; torch {ours.get('torch_version', '?')}, "
             f"numpy {ours.get('numpy_version', '?')}; torch threads "
             f"{ours.get('torch_threads', '?')}",
             f"- {describe(p)}".replace("\n", "; "),
             f"- measuring took {seconds / 60:.1f} min (0 when every run was reused)", "",
             "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += ["| " + " | ".join(t.row()) + " |" for t in tallies]
    lines += ["", "A same-build pair *alarmed* when the gate would exit 1 on it (any benchmark "
              "significantly slower beyond the threshold, Holm over all benchmarks); a slowed "
              "pair is *caught* when it would. The one-process rows compare each run's first "
              "process on its rounds (what a plain `pytest --benchmark-json` run gives)."]
    return "\n".join(lines) + "\n"


def run(p: Plan, out: Path, *, progress: Callable[[str], None] | None = print) -> str:
    """Measure (or reuse) every run of ``p`` under ``out/runs``, analyse, write
    ``out/study.md`` and ``out/study.json``; return the markdown. ``progress`` gets a line
    per run."""
    say = progress or (lambda line: None)
    folder = out / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    runs: dict[str, gt.Run] = {}
    start = time.perf_counter()
    measured = 0
    order = p.runs()
    for index, (name, planted) in enumerate(order, 1):
        path = folder / f"{name}.json"
        reused = _reusable(path, p, planted)
        if reused is not None:
            runs[name] = reused
            say(f"run {index}/{len(order)} {name}: reused {path}")
            continue
        env = {sampling.PLANTED_ENV: f"{planted:g}" if planted else ""}
        t0 = time.perf_counter()
        runs[name] = sampling.measure(p.pytest_args(), p.processes, path, env=env,
                                      parallel=p.parallel, progress=None)
        measured += 1
        spent = time.perf_counter() - start
        left = spent / measured * (len(order) - index)
        say(f"run {index}/{len(order)} {name}: {time.perf_counter() - t0:.0f} s "
                 f"(about {left / 60:.0f} min left)")
    seconds = time.perf_counter() - start
    tallies = analyse(p, runs)
    text = markdown(p, tallies, runs, seconds)
    drift.write_bytes_atomic(out / "study.md", text.encode())
    drift.write_json_atomic(out / "study.json", {
        "node_ids": list(p.node_ids), "families": p.families, "pairs": p.pairs,
        "processes": p.processes, "slowdown": p.slowdown, "alpha": p.alpha,
        "rounds": p.rounds, "parallel": p.parallel,
        "measuring_seconds": seconds,
        "tallies": [{"unit": t.unit, "threshold": t.threshold, "same_alarms": t.same_alarms,
                     "slow_flagged": t.slow_flagged, "compared": t.compared,
                     "refused": t.refused} for t in tallies]})
    return text
