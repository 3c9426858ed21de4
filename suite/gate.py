r"""The regression gate: is NEW significantly slower than BASELINE, by more than a threshold?

``python -m suite compare BASELINE NEW --threshold 20% --alpha 0.05`` reads two
pytest-benchmark JSON files (``--benchmark-json``; saved runs need ``--benchmark-save-data``,
which gradsuite's plugin turns on) and tests, per benchmark, the per-round timings
``stats.data`` — not one summary number.

Method.
  Let b_1..b_m be the baseline's round times and x_1..x_n the new run's, and t the threshold
  (0.10 for 10%). The question "is the new build slower by more than t?" is the one-sided
  hypothesis test

      H0: X is not stochastically larger than (1 + t) B      H1: it is,

  answered by a Mann-Whitney U (Wilcoxon rank-sum) test of x against the *scaled* baseline
  (1 + t) b. U counts the pairs (x_i, (1 + t) b_j) with x_i larger (ties count 1/2); under H0
  it has mean mn/2 and variance mn/12 ((N + 1) - sum(tau^3 - tau) / (N (N - 1))) with
  N = m + n and tau the sizes of tied groups; the p-value is the upper tail of the normal
  approximation with a continuity correction (within 0.006 of the exact permutation
  p-value for m = n = 8 without ties, within 0.05 with heavy ties; the benchmarks record at
  least 10 rounds, and timings rarely tie). Rank tests ignore how far an outlier lies
  (a round hit by the scheduler counts as one rank), which is what a noisy machine needs.
  Because the test is against the scaled baseline, a significant result means the slowdown
  itself exceeds the threshold, not merely that the runs differ.

  Many benchmarks are compared at once, so the p-values are adjusted by Holm's step-down
  method (family-wise error rate <= alpha across all benchmarks): sorted ascending,
  p_(i) is multiplied by (K - i + 1) and made monotone. A benchmark is SLOWER when its
  adjusted p-value is below alpha; the command exits 1 when any benchmark is SLOWER, 0
  otherwise. FASTER is the mirror test (the baseline slower than (1 + t) times the new run).

  The size of the change is the ratio of medians new / baseline, with a 95% percentile
  bootstrap confidence interval (1000 resamples of each run's rounds, seeded).

Comparing runs from different machines or builds prints one warning line per differing field
on stderr; runs from different CPUs or GPUs are refused unless ``--allow-different-machines``.
Bad input (missing or corrupt files, files that are not pytest-benchmark JSON or lack rounds,
unknown benchmark names) raises :class:`GateError` with a one-line message.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
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
                "gradsuite.numpy_version", "gradsuite.torch_threads", "gradsuite.blas_threads")
MIN_ROUNDS = 5
BOOTSTRAP = 1000


class GateError(Exception):
    """Bad input to ``compare`` / ``report``: the message is one line naming the fix."""


@dataclass(frozen=True)
class Benchmark:
    """One benchmark of a run: its name, group, extra_info and per-round times (seconds)."""

    fullname: str
    name: str
    group: str
    extra_info: dict[str, Any]
    rounds: FloatArray

    @property
    def median(self) -> float:
        return float(np.median(self.rounds))


@dataclass(frozen=True)
class Run:
    """A pytest-benchmark JSON file."""

    path: str
    machine_info: dict[str, Any]
    commit_info: dict[str, Any]
    benchmarks: dict[str, Benchmark] = field(default_factory=dict)


def load_run(path: str | os.PathLike[str]) -> Run:
    """Read a pytest-benchmark JSON file, or raise GateError with a one-line reason."""
    data = read_json(path, GateError, f"write one with `pytest -m bench --benchmark-json {path}`")
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise GateError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list); "
                        f"write one with `pytest -m bench --benchmark-json FILE`")
    run = Run(str(path), dict(data.get("machine_info") or {}),
              dict(data.get("commit_info") or {}))
    for b in data["benchmarks"]:
        try:
            fullname, stats = str(b["fullname"]), b["stats"]
            rounds = np.asarray(stats["data"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            name = b.get("fullname", "?") if isinstance(b, dict) else "?"
            raise GateError(f"{path}: benchmark {name!r} has no per-round times "
                            f"(stats.data); save runs with --benchmark-json or "
                            f"--benchmark-save-data") from None
        if rounds.ndim != 1 or rounds.size == 0 or not np.all(np.isfinite(rounds)):
            raise GateError(f"{path}: benchmark {fullname!r} has no valid per-round times")
        run.benchmarks[fullname] = Benchmark(fullname, str(b.get("name", fullname)),
                                             str(b.get("group") or ""),
                                             dict(b.get("extra_info") or {}), rounds)
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


def rank_average(values: FloatArray) -> tuple[FloatArray, NDArray[np.int64]]:
    """Ranks 1..N with ties sharing their average rank, and the sizes of the tied groups."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    average = upper - (counts - 1) / 2.0
    return average[inverse].astype(np.float64), counts.astype(np.int64)


def mann_whitney_greater(x: FloatArray, y: FloatArray) -> float:
    """One-sided p-value of the Mann-Whitney U test that ``x`` tends to exceed ``y``
    (normal approximation, tie and continuity corrections; see the module docstring)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n1, n2 = x.size, y.size
    if n1 == 0 or n2 == 0:
        return 1.0
    ranks, ties = rank_average(np.concatenate([x, y]))
    u = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    tie_term = float(np.sum(ties.astype(np.float64) ** 3 - ties)) / (n * (n - 1)) if n > 1 else 0
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    if var <= 0:  # every value tied: no evidence either way
        return 1.0
    z = (u - n1 * n2 / 2.0 - 0.5) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


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
    """Percentile bootstrap confidence interval of median(new) / median(base)."""
    rng = np.random.default_rng(seed)
    b = np.median(base[rng.integers(0, base.size, (BOOTSTRAP, base.size))], axis=1)
    n = np.median(new[rng.integers(0, new.size, (BOOTSTRAP, new.size))], axis=1)
    r = n / b
    lo, hi = np.quantile(r, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


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
    only_base: list[str]
    only_new: list[str]
    threshold: float
    alpha: float

    @property
    def slower(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict == "SLOWER"]

    @property
    def faster(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict == "faster"]


def select(run: Run, names: Sequence[str]) -> list[str]:
    """The fullnames of ``run`` matching ``names`` (a benchmark's name or full name).

    Raises GateError for a name matching nothing."""
    if not names:
        return list(run.benchmarks)
    chosen = []
    for wanted in names:
        hits = [k for k, b in run.benchmarks.items() if wanted in (k, b.name)]
        if not hits:
            raise GateError(f"unknown benchmark {wanted!r}: not in {run.path} "
                            f"({len(run.benchmarks)} benchmarks; `python -m suite compare "
                            f"--list {run.path}` lists them)")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def compare_runs(base: Run, new: Run, *, threshold: float = 0.20, alpha: float = 0.05,
                 names: Sequence[str] = ()) -> GateResult:
    """Test every benchmark present in both runs (or those named) at ``threshold``/``alpha``."""
    if threshold < 0 or not 0 < alpha < 1:
        raise GateError(f"need threshold >= 0 and 0 < alpha < 1, got {threshold}, {alpha}")
    wanted = select(new, names)
    if names:
        select(base, names)
    common = [k for k in wanted if k in base.benchmarks]
    if not common:
        raise GateError(f"{base.path} and {new.path} share no benchmark: compare runs of the "
                        f"same benchmarks")
    for k in common:
        for run in (base, new):
            if run.benchmarks[k].rounds.size < MIN_ROUNDS:
                raise GateError(f"{run.path}: {k!r} has {run.benchmarks[k].rounds.size} rounds; "
                                f"the rank test needs at least {MIN_ROUNDS}")
    scale = 1.0 + threshold
    p_slow = holm([mann_whitney_greater(new.benchmarks[k].rounds,
                                        scale * base.benchmarks[k].rounds) for k in common])
    p_fast = holm([mann_whitney_greater(base.benchmarks[k].rounds,
                                        scale * new.benchmarks[k].rounds) for k in common])
    rows = []
    for i, k in enumerate(common):
        b, n = base.benchmarks[k], new.benchmarks[k]
        verdict = "SLOWER" if p_slow[i] < alpha else "faster" if p_fast[i] < alpha else "same"
        rows.append(Comparison(k, n.name, n.group, n.extra_info, b.median, n.median,
                               ratio_ci(b.rounds, n.rounds, seed=i), p_slow[i], p_fast[i],
                               verdict))
    only_base = [k for k in base.benchmarks if k not in new.benchmarks and not names]
    only_new = [k for k in wanted if k not in base.benchmarks]
    return GateResult(rows, only_base, only_new, threshold, alpha)


def parse_threshold(text: str) -> float:
    """``10%`` or ``0.1`` -> 0.1."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise GateError(f"--threshold needs a non-negative fraction or percentage such as "
                        f"10%, got {text!r}")
    return value


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


def summary(result: GateResult) -> str:
    """One line: how many compared, slower, faster, at which threshold and level."""
    return (f"{len(result.comparisons)} benchmarks compared: {len(result.slower)} significantly "
            f"slower by more than {100 * result.threshold:g}%, {len(result.faster)} faster "
            f"(Mann-Whitney U on the rounds, Holm-adjusted, alpha={result.alpha:g})")


def rerun(base: Run, flagged: Sequence[str], *, threshold: float, alpha: float,
          pytest_args: Sequence[str] = ()) -> GateResult:
    """Measure the ``flagged`` benchmarks again (a fresh ``pytest -m bench`` of just those node
    ids, in the current environment) and test the new measurement against ``base``.

    A slowdown is real when it shows in two independent measurements; a burst of load from
    another process during one benchmark's rounds (the typical false alarm on a shared
    machine) does not repeat.
    """
    with tempfile.TemporaryDirectory(prefix="gradsuite-rerun-") as tmp:
        out = os.path.join(tmp, "rerun.json")
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "bench",
               *pytest_args, *flagged, f"--benchmark-json={out}"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not os.path.exists(out):
            tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
            raise GateError(f"re-measuring {len(flagged)} benchmarks failed "
                            f"(exit {done.returncode}: {tail[0]}); run from the repository "
                            f"root with the new build installed")
        again = load_run(out)
    return compare_runs(base, again, threshold=threshold, alpha=alpha,
                        names=[k for k in flagged if k in again.benchmarks])
