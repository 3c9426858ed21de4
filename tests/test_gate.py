"""The regression gate (python -m suite compare): its statistics, its verdicts on real
measurements of a same-build pair and of a planted 1.5x slowdown, and its bad-input errors."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np
import pytest

from suite import bench, gate
from suite.__main__ import main

# --- statistics -------------------------------------------------------------------------


def _exact_mwu_greater(x: np.ndarray, y: np.ndarray) -> float:
    """The exact permutation p-value of U (x larger), by enumerating every split."""
    both = np.concatenate([x, y])
    ranks, _ = gate.rank_average(both)
    observed = ranks[:x.size].sum()
    sums = [ranks[list(c)].sum() for c in itertools.combinations(range(both.size), x.size)]
    return float(np.mean(np.asarray(sums) >= observed - 1e-9))


@pytest.mark.parametrize("shift", [0.0, 0.4, 1.0, -0.5])
def test_mann_whitney_matches_the_exact_permutation_test(shift: float) -> None:
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal(8) + shift, rng.standard_normal(8)
    assert gate.mann_whitney_greater(x, y) == pytest.approx(_exact_mwu_greater(x, y),
                                                             abs=0.006)


def test_mann_whitney_handles_ties_and_degenerate_samples() -> None:
    assert gate.mann_whitney_greater(np.ones(10), np.ones(10)) == 1.0
    assert gate.mann_whitney_greater(np.full(10, 2.0), np.ones(10)) < 1e-4
    x, y = np.array([1.0, 1, 2, 2, 3, 3, 3, 4]), np.array([1.0, 1, 1, 2, 2, 2, 3, 3])
    # Heavy ties (3 of 4 values tied) are the normal approximation's worst case: 0.17 vs 0.22.
    assert gate.mann_whitney_greater(x, y) == pytest.approx(_exact_mwu_greater(x, y), abs=0.05)


def test_holm_adjustment() -> None:
    # Sorted 0.01, 0.02, 0.04 times 3, 2, 1 -> 0.03, 0.04, 0.04 (monotone), in input order.
    assert gate.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert gate.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # 0.9 raised to 1.0: monotone
    assert gate.holm([]) == []


@pytest.mark.parametrize(("text", "value"), [("10%", 0.1), ("0.25", 0.25), ("0%", 0.0)])
def test_threshold_parsing(text: str, value: float) -> None:
    assert gate.parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["ten", "-5%", "nan"])
def test_bad_threshold_is_an_error(text: str) -> None:
    with pytest.raises(gate.GateError, match="--threshold"):
        gate.parse_threshold(text)


def test_the_gate_tests_the_slowdown_beyond_the_threshold_not_a_difference() -> None:
    """5% slower with tight rounds is significant as a difference, but not beyond 10%."""
    rng = np.random.default_rng(0)
    base = 1e-3 * (1 + 0.01 * rng.standard_normal(30))
    slower = 1.05 * 1e-3 * (1 + 0.01 * rng.standard_normal(30))
    assert gate.mann_whitney_greater(slower, base) < 1e-6
    assert gate.mann_whitney_greater(slower, 1.10 * base) > 0.5


# --- real measurements ------------------------------------------------------------------

ROUNDS = 30


def _workload(units: int):
    a = np.random.default_rng(0).standard_normal((48, 48))

    def call() -> None:
        for _ in range(units):
            a @ a

    return call


def _measure(targets: dict[str, list]) -> dict[str, dict[str, list[float]]]:
    """Per-round times (s per call) of each (label -> [run A target, run B target]).

    Rounds of A and B alternate, as an A/B comparison on one machine should be measured: a
    burst of load from another process then falls on both runs alike. Each round repeats the
    call for about 2 ms, timed by the benchmarks' clock (suite.bench.timer).
    """
    clock = bench.timer("cpu")
    out: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    for label, (fa, fb) in targets.items():
        fa(), fb()  # warm-up
        t0 = time.perf_counter()
        fa()
        iterations = max(1, int(0.002 / max(time.perf_counter() - t0, 1e-7)))
        for run in ("A", "B"):
            out[run][label] = []
        for _ in range(ROUNDS):
            for run, f in (("A", fa), ("B", fb)):
                start = clock()
                for _ in range(iterations):
                    f()
                out[run][label].append((clock() - start) / iterations)
    return out


def _bench_json(path: Path, rounds: dict[str, list[float]], machine: dict | None = None) -> Path:
    """A pytest-benchmark JSON file holding these rounds (the fields the gate reads)."""
    machine = machine or {"machine": "x86_64", "cpu": {"brand_raw": "test CPU"},
                          "python_version": "3.11.7",
                          "gradsuite": {"torch_version": "2.13.0", "cpu_model": "test CPU",
                                        "torch_threads": 1, "blas_threads": [1]}}
    data = {"machine_info": machine, "commit_info": {}, "benchmarks": [
        {"name": f"test_op[{label}]", "fullname": f"tests/benchmarks/test_bench.py::"
         f"test_op[{label}]", "group": label, "extra_info": {},
         "stats": {"data": values, "median": float(np.median(values))}}
        for label, values in rounds.items()]}
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def measured() -> dict[str, dict[str, dict[str, list[float]]]]:
    """Real timings: the same build twice, and a build whose op does 1.5x the work."""
    sizes = {"small": 4, "medium": 8, "large": 16}
    same = _measure({k: [_workload(u), _workload(u)] for k, u in sizes.items()})
    slowed = _measure({k: [_workload(2 * u), _workload(3 * u)] for k, u in sizes.items()})
    return {"same": same, "slowed": slowed}


def test_same_build_raises_no_alarm(measured, tmp_path: Path, capsys) -> None:
    base = _bench_json(tmp_path / "base.json", measured["same"]["A"])
    new = _bench_json(tmp_path / "new.json", measured["same"]["B"])
    assert main(["compare", str(base), str(new), "--threshold", "10%"]) == 0
    out = capsys.readouterr().out
    assert "SLOWER" not in out, out
    assert "3 benchmarks compared: 0 significantly slower" in out


def test_planted_slowdown_of_one_and_a_half_is_caught(measured, tmp_path: Path,
                                                      capsys) -> None:
    base = _bench_json(tmp_path / "base.json", measured["slowed"]["A"])
    new = _bench_json(tmp_path / "new.json", measured["slowed"]["B"])
    assert main(["compare", str(base), str(new), "--threshold", "10%"]) == 1
    out = capsys.readouterr().out
    assert out.count("SLOWER") == 3, out
    result = gate.compare_runs(gate.load_run(base), gate.load_run(new), threshold=0.1)
    for c in result.comparisons:
        assert 1.3 < c.ratio < 1.7 and c.ci[0] > 1.1, c  # the size of the planted change
    # The threshold is the user's: a 1.5x slowdown is within a 60% allowance.
    assert main(["compare", str(base), str(new), "--threshold", "60%"]) == 0


# --- machine information and bad input --------------------------------------------------


def _files(tmp_path: Path, new_machine: dict | None = None) -> tuple[str, str]:
    rounds = {"a": list(np.linspace(1e-3, 1.1e-3, 12)), "b": list(np.linspace(2e-3, 2.2e-3, 12))}
    base = _bench_json(tmp_path / "base.json", rounds)
    new = _bench_json(tmp_path / "new.json", rounds, new_machine)
    return str(base), str(new)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_other_torch_build_warns_loudly_but_compares(tmp_path: Path, capsys) -> None:
    machine = json.loads((Path(_files(tmp_path)[0])).read_text())["machine_info"]
    machine["gradsuite"]["torch_version"] = "2.4.1"
    machine["gradsuite"]["torch_threads"] = 2
    base, new = _files(tmp_path, machine)
    assert main(["compare", base, new]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("WARNING: runs differ in") for line in err)
    assert any("torch_version: '2.13.0'" in line and "'2.4.1'" in line for line in err)


def test_runs_from_different_machines_are_refused(tmp_path: Path, capsys) -> None:
    machine = json.loads((Path(_files(tmp_path)[0])).read_text())["machine_info"]
    machine["cpu"]["brand_raw"] = machine["gradsuite"]["cpu_model"] = "another CPU"
    base, new = _files(tmp_path, machine)
    assert main(["compare", base, new]) == 2
    assert "--allow-different-machines" in _one_line_error(capsys)
    assert main(["compare", base, new, "--allow-different-machines"]) == 0
    assert capsys.readouterr().err.count("WARNING: runs differ in") == 2


@pytest.mark.parametrize(("content", "says"), [
    (None, "no such file"),
    ("{not json", "not valid JSON"),
    ('{"benchmarks": [{"fullname": "x", "stats": {"median": 1}}]}', "no per-round times"),
    ('[1, 2]', "not a pytest-benchmark JSON file"),
    ('{"benchmarks": []}', "holds no benchmarks"),
])
def test_bad_file_is_a_one_line_error(tmp_path: Path, capsys, content: str | None,
                                      says: str) -> None:
    good, _ = _files(tmp_path)
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    assert main(["compare", good, str(bad)]) == 2
    assert says in _one_line_error(capsys)


def test_unknown_benchmark_name_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    base, new = _files(tmp_path)
    assert main(["compare", base, new, "--benchmark", "test_op[a]"]) == 0
    capsys.readouterr()
    assert main(["compare", base, new, "--benchmark", "test_op[nope]"]) == 2
    assert "unknown benchmark 'test_op[nope]'" in _one_line_error(capsys)


def test_runs_sharing_no_benchmark_are_an_error(tmp_path: Path, capsys) -> None:
    base = _bench_json(tmp_path / "base.json", {"a": [1e-3] * 10})
    new = _bench_json(tmp_path / "new.json", {"b": [1e-3] * 10})
    assert main(["compare", str(base), str(new)]) == 2
    assert "share no benchmark" in _one_line_error(capsys)
