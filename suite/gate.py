r"""The regression gate: is NEW significantly slower than BASELINE, by more than a threshold?

``python -m suite compare BASELINE NEW --threshold 20% --alpha 0.05`` reads two benchmark runs
and tests, per benchmark, the timings of each side — not one summary number. A run is either

- a *several-process run* (``python -m suite measure --processes K``, ``suite.sampling``): the
  same ``pytest -m bench`` selection run in K fresh processes, merged into one file that keeps
  every process's rounds; or
- a plain pytest-benchmark JSON file (``--benchmark-json``; saved runs need
  ``--benchmark-save-data``, which gradsuite's plugin turns on): one process.

The unit of the test. A benchmark's speed differs between processes more than between the
rounds of one process: memory layout and alignment are fixed when a process starts, and put a
benchmark in one of a few speed modes (measured on the 2-core machine: one op's
forward+backward took 576-598 us in 3 processes and 686-693 us in 5 others). Rounds of one
process are many measurements of *one* draw of the mode, so a rank test on rounds compares two
modes, not two builds, and false-alarms whenever the two processes drew different modes. So
when both runs hold several processes, the gate's unit is the process: each process
contributes the median of its rounds, and the test compares the two samples of per-process
medians. A comparison of one-process runs still works (on the rounds, as before) with a
warning that it can false-alarm.

Method.
  Let b_1..b_m be the baseline's units (per-process medians, or rounds of a one-process run)
  and x_1..x_n the new run's, and t the threshold (0.10 for 10%). The question "is the new
  build slower by more than t?" is the one-sided hypothesis test

      H0: X is not stochastically larger than (1 + t) B      H1: it is,

  answered by a Mann-Whitney U (Wilcoxon rank-sum) test of x against the *scaled* baseline
  (1 + t) b. U counts the pairs (x_i, (1 + t) b_j) with x_i larger (ties count 1/2).
  For N = m + n <= EXACT_MAX (several-process runs of up to 25 processes a side; 10 a side
  is N = 20) the p-value is exact: the permutation distribution of the rank sum of x over all
  C(N, m) ways to split the N pooled values (midranks for ties, so the test stays exact
  conditional on the ties), counted by dynamic programming over the ranks. Above that
  (one-process runs of more than 25 rounds a side) it is the normal approximation with tie
  and continuity corrections: mean mn/2, variance
  mn/12 ((N + 1) - sum(tau^3 - tau) / (N (N - 1))) with tau the sizes of tied groups
  (within 0.006 of the exact p-value for m = n = 8 without ties).
  Rank tests ignore how far an outlier lies (a round or a process hit by the scheduler counts
  as one rank), which is what a noisy machine needs. Because the test is against the scaled
  baseline, a significant result means the slowdown itself exceeds the threshold, not merely
  that the runs differ.

  Many benchmarks are compared at once, so the p-values are adjusted by Holm's step-down
  method (family-wise error rate <= alpha across all M benchmarks): sorted ascending,
  p_(i) is multiplied by (M - i + 1) and made monotone. A benchmark is SLOWER when its
  adjusted p-value is below alpha; the command exits 1 when any benchmark is SLOWER, 0
  otherwise. FASTER is the mirror test (the baseline slower than (1 + t) times the new run).

  With few units the exact test cannot reach a small p-value at all: its smallest is
  1 / C(m + n, m) (1/20 for 3 processes a side, 5.4e-6 for 10). When that, times the number
  of benchmarks compared, is not below alpha, no slowdown could ever fail the gate, and
  :func:`compare_runs` refuses with the number of processes that would do
  (:func:`processes_needed`).

  The size of the change is the ratio of medians new / baseline (of the per-process medians
  in a several-process run), with a 95% percentile bootstrap confidence interval (1000
  resamples of each side's units — processes or rounds —, seeded).

Every benchmark of the baseline must be in the new run: an interrupted run lacks most of them,
and would otherwise pass. :func:`compare_runs` refuses such a pair, naming how many are
missing, unless ``allow_missing`` (``--allow-missing``). Comparing runs from different machines
or builds prints one warning line per differing field on stderr; runs from different CPUs or
GPUs are refused unless ``--allow-different-machines``. Bad input (missing or corrupt files,
files that are not benchmark runs or lack rounds, unknown benchmark names, a threshold without
its % sign) raises :class:`GateError` with a one-line message.
"""

from __future__ import annotations

import difflib
import functools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from suite.drift import read_json

FloatArray = NDArray[np.float64]

# machine_info fields that identify the hardware: runs that differ here are not comparable.
MACHINE_FIELDS = ("machine", "cpu.brand_raw", "gradsuite.cpu_model", "gradsuite.cuda_device")
# Builds and settings that change timings: comparing across them is legitimate (a torch
# upgrade) but must be said loudly.
BUILD_FIELDS = ("python_version", "gradsuite.torch_version", "gradsuite.torch_cuda",
                "gradsuite.numpy_version", "gradsuite.torch_threads", "gradsuite.blas_threads",
                "gradsuite.bench_rounds")
MIN_ROUNDS = 5
BOOTSTRAP = 1000
# Up to this many pooled units the Mann-Whitney p-value is exact (module docstring).
EXACT_MAX = 50
# The format tag of a several-process run (suite.sampling writes it).
PROCESSES_FORMAT = "gradsuite-processes/1"
# A threshold is a percentage between these (inclusive).
THRESHOLD_RANGE = (0.0, 100.0)
ONE_PROCESS_WARNING = (
    "one process per side: a benchmark's speed mode differs between processes (memory "
    "layout), so comparing the rounds of one process with another's can false-alarm; measure "
    "each side with `python -m suite measure --processes 10` (suite/gate.py)")


class GateError(Exception):
    """Bad input to ``compare`` / ``report``: the message is one line naming the fix."""


@dataclass(frozen=True)
class Benchmark:
    """One benchmark of a run: its name, group, extra_info and per-round times (seconds),
    per process (one entry for a one-process run)."""

    fullname: str
    name: str
    group: str
    extra_info: dict[str, Any]
    processes: tuple[FloatArray, ...]

    @functools.cached_property
    def rounds(self) -> FloatArray:
        """Every round of every process."""
        return np.concatenate(self.processes)

    @functools.cached_property
    def medians(self) -> FloatArray:
        """The median round of each process."""
        return np.array([np.median(p) for p in self.processes], dtype=np.float64)

    @functools.cached_property
    def median(self) -> float:
        """The median of the per-process medians (one process: the median round)."""
        return float(np.median(self.medians))


@dataclass(frozen=True)
class Run:
    """A benchmark run: a pytest-benchmark JSON file, or several processes merged into one."""

    path: str
    machine_info: dict[str, Any]
    commit_info: dict[str, Any]
    benchmarks: dict[str, Benchmark] = field(default_factory=dict)
    processes: int = 1  # how many processes measured it (suite.sampling)
    parallel: int = 1  # how many of them ran at a time


def _rounds(values: Any) -> FloatArray | None:
    """A one-dimensional array of positive finite times, or None."""
    try:
        rounds = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if rounds.ndim != 1 or rounds.size == 0 or not np.all(np.isfinite(rounds)) \
            or not np.all(rounds > 0):
        return None
    return rounds


def _object(data: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise GateError(f"{path}: {key!r} is not a JSON object, so not a run this tool wrote; "
                        f"measure one with `python -m suite measure --out {path}`")
    return dict(value)


def load_run(path: str | os.PathLike[str]) -> Run:
    """Read a benchmark run (one process or several), or raise GateError with a one-line
    reason."""
    remedy = f"measure one with `python -m suite measure --out {path}`"
    data = read_json(path, GateError, remedy)
    if isinstance(data, dict) and str(data.get("format", "")).startswith("gradsuite-drift"):
        raise GateError(f"{path}: is a drift record, not a benchmark run (pass it to "
                        f"`python -m suite report --drift OLD NEW`)")
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise GateError(f"{path}: not a benchmark run (no 'benchmarks' list); {remedy}")
    ours = _object(data, "gradsuite", str(path))
    processes = 1
    if ours.get("format") == PROCESSES_FORMAT:
        processes = ours.get("processes")  # type: ignore[assignment]
        if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
            raise GateError(f"{path}: its 'gradsuite.processes' is {processes!r}, not a "
                            f"process count; measure it again with `python -m suite measure`")
    parallel = ours.get("parallel", 1)
    run = Run(str(path), _object(data, "machine_info", str(path)),
              _object(data, "commit_info", str(path)), processes=processes,
              parallel=parallel if isinstance(parallel, int) and parallel >= 1 else 1)
    for b in data["benchmarks"]:
        fullname = str(b.get("fullname", "?")) if isinstance(b, dict) else "?"
        per_process: list[FloatArray | None] | None = None
        if isinstance(b, dict) and isinstance(b.get("processes"), list) and b["processes"]:
            per_process = [_rounds(p) for p in b["processes"]]
        elif isinstance(b, dict) and isinstance(b.get("stats"), dict) \
                and "data" in b["stats"]:
            per_process = [_rounds(b["stats"]["data"])]
        if not isinstance(b, dict) or "fullname" not in b or per_process is None:
            raise GateError(f"{path}: benchmark {fullname!r} has no per-round times "
                            f"(stats.data); save runs with --benchmark-json or "
                            f"--benchmark-save-data")
        if any(p is None for p in per_process):
            raise GateError(f"{path}: benchmark {fullname!r} has no valid per-round times "
                            f"(each a positive finite number of seconds); measure it again")
        if fullname in run.benchmarks:
            raise GateError(f"{path}: benchmark {fullname!r} appears twice; merge several "
                            f"processes with `python -m suite measure`, not by hand")
        extra = b.get("extra_info") or {}
        run.benchmarks[fullname] = Benchmark(
            fullname, str(b.get("name", fullname)), str(b.get("group") or ""),
            dict(extra) if isinstance(extra, Mapping) else {},
            tuple(p for p in per_process if p is not None))
    if not run.benchmarks:
        raise GateError(f"{path}: holds no benchmarks (did `pytest -m bench` select any?)")
    return run


def _get(info: Mapping[str, Any], dotted: str) -> Any:
    value: Any = info
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def machine_differences(base: Run, new: Run) -> tuple[list[str], list[str]]:
    """(hardware differences, build/setting differences), one line each."""
    def lines(fields: Sequence[str]) -> list[str]:
        return [f"{f}: {_get(base.machine_info, f)!r} in {base.path} vs "
                f"{_get(new.machine_info, f)!r} in {new.path}" for f in fields
                if _get(base.machine_info, f) != _get(new.machine_info, f)]

    return lines(MACHINE_FIELDS), lines(BUILD_FIELDS)


# --- statistics -------------------------------------------------------------------------


def rank_average(values: FloatArray) -> tuple[FloatArray, NDArray[np.int64]]:
    """Ranks 1..N with ties sharing their average rank, and the sizes of the tied groups."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    average = upper - (counts - 1) / 2.0
    return average[inverse].astype(np.float64), counts.astype(np.int64)


def _rank_sum_tail(doubled: tuple[int, ...], m: int) -> FloatArray:
    """P(doubled rank sum of m values drawn from ``doubled`` >= s), for every s: a 0/1
    knapsack, ``ways[k, s]`` counting the k-subsets of the ranks seen so far with sum s."""
    total = sum(doubled)
    ways = np.zeros((m + 1, total + 1))
    ways[0, 0] = 1.0
    for r in doubled:
        ways[1:, r:] += ways[:-1, :total + 1 - r].copy()
    return np.cumsum(ways[m, ::-1])[::-1] / ways[m].sum()


_untied_tail = functools.lru_cache(maxsize=512)(_rank_sum_tail)


def _exact_greater(x: FloatArray, y: FloatArray) -> float:
    """P(rank sum of x >= observed) over all C(N, m) splits of the pooled values. Doubled
    midranks are integers; without ties they are 2, 4, ..., 2N whatever the values, so the
    distribution depends on (m, n) only and is computed once per pair of sizes."""
    ranks, ties = rank_average(np.concatenate([x, y]))
    doubled = np.rint(2 * ranks).astype(np.int64)
    m, n = x.size, y.size
    observed = int(doubled[:m].sum())
    if np.all(ties == 1):
        tail = _untied_tail(tuple(range(2, 2 * (m + n) + 1, 2)), m)
    else:
        tail = _rank_sum_tail(tuple(int(r) for r in np.sort(doubled)), m)
    return float(tail[observed])


def _normal_greater(x: FloatArray, y: FloatArray) -> float:
    """The normal approximation of the same p-value (tie and continuity corrections)."""
    n1, n2 = x.size, y.size
    ranks, ties = rank_average(np.concatenate([x, y]))
    u = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    tie_term = float(np.sum(ties.astype(np.float64) ** 3 - ties)) / (n * (n - 1)) if n > 1 else 0
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    if var <= 0:  # every value tied: no evidence either way
        return 1.0
    z = (u - n1 * n2 / 2.0 - 0.5) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def mann_whitney_greater(x: FloatArray, y: FloatArray) -> float:
    """One-sided p-value of the Mann-Whitney U test that ``x`` tends to exceed ``y``: exact
    up to ``EXACT_MAX`` values in all, the normal approximation above (module docstring)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        return 1.0
    if x.size + y.size <= EXACT_MAX:
        return _exact_greater(x, y)
    return _normal_greater(x, y)


def smallest_p(m: int, n: int) -> float:
    """The smallest p-value the exact test can give with m and n values: 1 / C(m + n, m)."""
    return 1.0 / math.comb(m + n, m)


def processes_needed(benchmarks: int, alpha: float) -> int:
    """The fewest processes a side with which Holm over ``benchmarks`` can reject at
    ``alpha``: the smallest K with benchmarks / C(2K, K) < alpha."""
    k = 2
    while benchmarks * smallest_p(k, k) >= alpha:
        k += 1
    return k


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: family-wise error rate control over all the p-values."""
    p = np.asarray(pvalues, dtype=np.float64)
    k = p.size
    if k == 0:
        return []
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (k - np.arange(k))))
    out = np.empty(k)
    out[order] = adjusted
    return [float(v) for v in out]


def ratio_ci(base: FloatArray, new: FloatArray, *, seed: int = 0,
             level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of median(new) / median(base), resampling
    each side's units (rounds, or per-process medians)."""
    rng = np.random.default_rng(seed)
    b = np.median(base[rng.integers(0, base.size, (BOOTSTRAP, base.size))], axis=1)
    n = np.median(new[rng.integers(0, new.size, (BOOTSTRAP, new.size))], axis=1)
    r = n / b
    lo, hi = np.quantile(r, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


# --- the comparison ---------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One benchmark in both runs: the change, its interval, and the test's verdict."""

    fullname: str
    name: str
    group: str
    extra_info: dict[str, Any]
    base_median: float
    new_median: float
    ci: tuple[float, float]
    p_slower: float  # Holm-adjusted
    p_faster: float  # Holm-adjusted
    verdict: str  # "SLOWER", "faster" or "same"

    @property
    def ratio(self) -> float:
        return self.new_median / self.base_median


@dataclass(frozen=True)
class GateResult:
    comparisons: list[Comparison]
    only_base: list[str]  # in the baseline, missing from the new run (allowed by the caller)
    only_new: list[str]
    threshold: float
    alpha: float
    unit: str = "rounds"  # "processes" (per-process medians) or "rounds" (one process)
    processes: tuple[int, int] = (1, 1)
    warnings: tuple[str, ...] = ()

    @property
    def slower(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict == "SLOWER"]

    @property
    def faster(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict == "faster"]


def _unknown(wanted: str, runs: Sequence[Run]) -> GateError:
    """The error for a benchmark name no run holds, with the closest names."""
    known = sorted({n for run in runs for k, b in run.benchmarks.items() for n in (k, b.name)})
    close = difflib.get_close_matches(wanted, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return GateError(f"unknown benchmark {wanted!r}: not in {runs[0].path}{hint} "
                     f"(`python -m suite compare --list {runs[0].path}` lists its "
                     f"{len(runs[0].benchmarks)} benchmarks)")


def select(run: Run, names: Sequence[str], *, also: Sequence[Run] = ()) -> list[str]:
    """The fullnames of ``run`` (and of ``also``) matching ``names`` (a benchmark's name or
    full name), in order. Raises GateError, with the closest names, for a name no run holds."""
    runs = [run, *also]
    if not names:
        return list(run.benchmarks)
    chosen: list[str] = []
    for wanted in names:
        hits = [k for r in runs for k, b in r.benchmarks.items() if wanted in (k, b.name)]
        if not hits:
            raise _unknown(wanted, runs)
        chosen += [h for h in dict.fromkeys(hits) if h not in chosen]
    return chosen


def _planted(run: Run) -> float | None:
    """The slowdown planted in ``run`` (suite.bench.planted), or None."""
    factors = [float(f) for b in run.benchmarks.values()
               if isinstance(f := b.extra_info.get("planted_slowdown"), int | float)]
    return max(factors) if factors else None


def compare_runs(base: Run, new: Run, *, threshold: float = 0.20, alpha: float = 0.05,
                 names: Sequence[str] = (), allow_missing: bool = False,
                 intervals: bool = True) -> GateResult:
    """Test every benchmark of ``base`` (or those named) against ``new`` at
    ``threshold``/``alpha``; see the module docstring for the method and the refusals.
    ``intervals=False`` skips the bootstrap intervals (NaN), for many comparisons."""
    if not 0 <= threshold <= THRESHOLD_RANGE[1] / 100 or not 0 < alpha < 1:
        raise GateError(f"need 0 <= threshold <= 1 and 0 < alpha < 1, got {threshold}, {alpha}")
    wanted = select(base, names, also=[new])
    missing = [k for k in wanted if k in base.benchmarks and k not in new.benchmarks]
    if missing and not allow_missing:
        in_base = sum(k in base.benchmarks for k in wanted)
        raise GateError(f"{new.path} lacks {len(missing)} of the {in_base} benchmarks of "
                        f"{base.path} (first: {missing[0]}); an interrupted run? measure them "
                        f"again, or pass --allow-missing if that is expected")
    common = [k for k in wanted if k in base.benchmarks and k in new.benchmarks]
    only_new = [k for k in (wanted if names else new.benchmarks) if k not in base.benchmarks]
    if not common:
        raise GateError(f"{base.path} and {new.path} share no benchmark: compare runs of the "
                        f"same benchmarks")
    unit = "processes" if base.processes > 1 and new.processes > 1 else "rounds"
    warnings = []
    if unit == "rounds":
        if base.processes > 1 or new.processes > 1:
            warnings.append(f"{base.path} has {base.processes} processes and {new.path} "
                            f"{new.processes}: comparing pooled rounds, not processes; "
                            f"measure both sides with `python -m suite measure`")
        else:
            warnings.append(ONE_PROCESS_WARNING)
    elif base.parallel != new.parallel:
        # Neighbouring processes slow each other (measured: per-process medians spread 1.83x
        # two at a time against 1.40x one at a time, README, Benchmarks).
        warnings.append(f"{base.path} was measured {base.parallel} process(es) at a time and "
                        f"{new.path} {new.parallel}: neighbours change timings; measure both "
                        f"sides with the same --parallel")
    for run in (base, new):
        if (factor := _planted(run)) is not None:
            warnings.append(f"{run.path} was measured with a planted slowdown of {factor:g}x "
                            f"(GRADSUITE_BENCH_PLANTED_SLOWDOWN; the gate study's)")

    def units(b: Benchmark) -> FloatArray:
        return b.medians if unit == "processes" else b.rounds

    if unit == "rounds":
        for k in common:
            for run in (base, new):
                if run.benchmarks[k].rounds.size < MIN_ROUNDS:
                    raise GateError(f"{run.path}: {k!r} has {run.benchmarks[k].rounds.size} "
                                    f"rounds; the rank test needs at least {MIN_ROUNDS}")
    best = min(smallest_p(units(base.benchmarks[k]).size, units(new.benchmarks[k]).size)
               for k in common)
    if best * len(common) >= alpha:
        counts = (base.processes, new.processes) if unit == "processes" else (
            max(base.benchmarks[k].rounds.size for k in common),
            max(new.benchmarks[k].rounds.size for k in common))
        raise GateError(
            f"the gate could never fail: with {counts[0]} and {counts[1]} {unit} a side the "
            f"smallest p-value is {best:.2g}, and Holm over {len(common)} benchmarks needs one "
            f"below {alpha / len(common):.2g}: measure at least "
            f"{processes_needed(len(common), alpha)} processes a side (python -m suite measure "
            f"--processes N) or compare fewer benchmarks (--benchmark NAME)")
    scale = 1.0 + threshold
    pairs = [(units(base.benchmarks[k]), units(new.benchmarks[k])) for k in common]
    p_slow = holm([mann_whitney_greater(n, scale * b) for b, n in pairs])
    p_fast = holm([mann_whitney_greater(b, scale * n) for b, n in pairs])
    rows = []
    for i, k in enumerate(common):
        b, n = base.benchmarks[k], new.benchmarks[k]
        verdict = "SLOWER" if p_slow[i] < alpha else "faster" if p_fast[i] < alpha else "same"
        rows.append(Comparison(k, n.name, n.group, n.extra_info, b.median, n.median,
                               ratio_ci(*pairs[i], seed=i) if intervals else (math.nan, math.nan),
                               p_slow[i], p_fast[i], verdict))
    return GateResult(rows, missing, only_new, threshold, alpha, unit,
                      (base.processes, new.processes), tuple(warnings))


def parse_threshold(text: str) -> float:
    """``20%`` -> 0.2. A threshold is a percentage with its % sign, from 0% to 100%: a bare
    number is refused, since ``20`` would read as 2000% and ``0.2`` as 20%."""
    stripped = text.strip()
    number = stripped[:-1] if stripped.endswith("%") else stripped
    try:
        value = float(number)
    except ValueError:
        raise GateError(f"--threshold needs a percentage such as 20%, got {text!r}") from None
    if not stripped.endswith("%"):
        suggestion = f"{value:g}%" if abs(value) >= 1 else f"{100 * value:g}%"
        raise GateError(f"--threshold needs a percentage with its % sign, got {text!r} "
                        f"(write {suggestion}; a bare number is refused: 20 would be 2000%)")
    low, high = THRESHOLD_RANGE
    if not low <= value <= high:
        raise GateError(f"--threshold must lie between {low:g}% and {high:g}%, got {text!r} "
                        f"(a slowdown below it never fails the gate)")
    return value / 100


def parse_alpha(text: str) -> float:
    """The significance level: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise GateError(f"--alpha needs a number strictly between 0 and 1, such as 0.05; "
                        f"got {text!r}")
    return value


# --- output -----------------------------------------------------------------------------


def format_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def table(result: GateResult, *, markdown: bool = False, only_changed: bool = False) -> str:
    """The per-benchmark table: medians, change with its 95% interval, adjusted p, verdict."""
    head = ("benchmark", "baseline", "new", "change", "95% CI", "p(slower)", "verdict")
    rows = [head]
    for c in result.comparisons:
        if only_changed and c.verdict == "same":
            continue
        rows.append((c.name, format_time(c.base_median), format_time(c.new_median),
                     f"{100 * (c.ratio - 1):+.1f}%",
                     f"[{100 * (c.ci[0] - 1):+.1f}%, {100 * (c.ci[1] - 1):+.1f}%]",
                     f"{c.p_slower:.2g}", c.verdict))
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def method(result: GateResult) -> str:
    """What the p-values were computed on, in words."""
    if result.unit == "processes":
        return (f"Mann-Whitney U on the per-process medians of {result.processes[0]} and "
                f"{result.processes[1]} processes")
    return "Mann-Whitney U on the rounds of one process a side"


def summary(result: GateResult) -> str:
    """One line: how many compared, slower, faster, at which threshold and level."""
    missing = (f"; {len(result.only_base)} benchmarks of the baseline missing from the new run "
               f"(allowed)" if result.only_base else "")
    return (f"{len(result.comparisons)} benchmarks compared: {len(result.slower)} significantly "
            f"slower by more than {100 * result.threshold:g}%, {len(result.faster)} faster "
            f"({method(result)}, Holm-adjusted, alpha={result.alpha:g}){missing}")
