"""The regression gate (python -m suite compare, suite.gate, suite.sampling): its statistics,
its verdicts on synthetic runs with known distributions (seeded lognormal rounds, per-process
speed modes, a planted 1.5x), and what it refuses. No test here depends on this machine's
timing: real timings belong to the benchmarks (tests/benchmarks/test_calibration.py)."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from suite import bench, gate, sampling, study
from suite.__main__ import main
from tests import synthetic_runs as sr

# --- statistics -------------------------------------------------------------------------


def _enumerated_greater(x: np.ndarray, y: np.ndarray) -> float:
    """The exact permutation p-value of the rank sum of x, by enumerating every split."""
    both = np.concatenate([x, y])
    ranks, _ = gate.rank_average(both)
    observed = ranks[:x.size].sum()
    sums = [ranks[list(c)].sum() for c in itertools.combinations(range(both.size), x.size)]
    return float(np.mean(np.asarray(sums) >= observed - 1e-9))


@pytest.mark.parametrize("shift", [0.0, 0.4, 1.0, -0.5, 3.0])
@pytest.mark.parametrize("sizes", [(8, 8), (5, 9), (3, 3)])
def test_exact_mann_whitney_is_the_permutation_test(shift: float, sizes: tuple[int, int]) -> None:
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal(sizes[0]) + shift, rng.standard_normal(sizes[1])
    assert gate.mann_whitney_greater(x, y) == pytest.approx(_enumerated_greater(x, y),
                                                             rel=1e-12)


def test_exact_mann_whitney_stays_exact_with_ties() -> None:
    x, y = np.array([1.0, 1, 2, 2, 3, 3, 3, 4]), np.array([1.0, 1, 1, 2, 2, 2, 3, 3])
    assert gate.mann_whitney_greater(x, y) == pytest.approx(_enumerated_greater(x, y),
                                                             rel=1e-12)
    assert gate.mann_whitney_greater(np.ones(10), np.ones(10)) == 1.0
    # Complete separation: the smallest p-value there is, 1 / C(20, 10).
    assert gate.mann_whitney_greater(np.full(10, 2.0) + np.arange(10) * 1e-3,
                                     np.ones(10)) == pytest.approx(gate.smallest_p(10, 10))


def test_normal_approximation_above_the_exact_range() -> None:
    """Above EXACT_MAX values the normal approximation is used; it is within 0.006 of the
    exact p-value for m = n = 8 without ties (the module docstring's figure)."""
    rng = np.random.default_rng(3)
    for shift in (0.0, 0.4, 1.0):
        x, y = rng.standard_normal(8) + shift, rng.standard_normal(8)
        assert gate._normal_greater(x, y) == pytest.approx(_enumerated_greater(x, y), abs=0.006)
    x, y = rng.standard_normal(30) + 0.5, rng.standard_normal(30)
    assert x.size + y.size > gate.EXACT_MAX
    assert gate.mann_whitney_greater(x, y) == gate._normal_greater(x, y)


def test_smallest_p_and_the_processes_holm_needs() -> None:
    assert gate.smallest_p(3, 3) == pytest.approx(1 / 20)
    assert gate.smallest_p(10, 10) == pytest.approx(1 / 184756)
    # Holm can reject when C(2K, K) > benchmarks / alpha.
    assert gate.processes_needed(186, 0.05) == 8  # C(14, 7) = 3432 < 3720 < C(16, 8) = 12870
    assert gate.processes_needed(1, 0.05) == 4  # C(6, 3) = 20: 1/20 is not below 0.05
    assert gate.processes_needed(2000, 0.05) == 9  # C(18, 9) = 48620 > 40000


def test_holm_adjustment() -> None:
    # Sorted 0.01, 0.02, 0.04 times 3, 2, 1 -> 0.03, 0.04, 0.04 (monotone), in input order.
    assert gate.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert gate.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # 0.9 raised to 1.0: monotone
    assert gate.holm([]) == []


@pytest.mark.parametrize(("text", "value"), [("10%", 0.1), ("0%", 0.0), ("100%", 1.0),
                                             (" 20 %", 0.2), ("12.5%", 0.125)])
def test_threshold_is_a_percentage(text: str, value: float) -> None:
    assert gate.parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize(("text", "says"), [
    ("20", "write 20%"), ("0.2", "write 20%"), ("ten", "such as 20%"), ("", "such as 20%"),
    ("-5%", "between 0% and 100%"), ("150%", "between 0% and 100%"),
    ("nan%", "between 0% and 100%"), ("inf%", "between 0% and 100%"),
])
def test_bad_threshold_is_refused_with_the_fix(text: str, says: str) -> None:
    with pytest.raises(gate.GateError, match="--threshold") as err:
        gate.parse_threshold(text)
    assert says in str(err.value)


@pytest.mark.parametrize("text", ["0", "1", "5%", "nan", "-0.1", "x"])
def test_bad_alpha_is_refused(text: str) -> None:
    with pytest.raises(gate.GateError, match="strictly between 0 and 1"):
        gate.parse_alpha(text)


def test_the_gate_tests_the_slowdown_beyond_the_threshold_not_a_difference() -> None:
    """5% slower with tight rounds is significant as a difference, but not beyond 10%."""
    rng = np.random.default_rng(0)
    base = 1e-3 * (1 + 0.01 * rng.standard_normal(30))
    slower = 1.05 * 1e-3 * (1 + 0.01 * rng.standard_normal(30))
    assert gate.mann_whitney_greater(slower, base) < 1e-6
    assert gate.mann_whitney_greater(slower, 1.10 * base) > 0.5


# --- verdicts on synthetic runs ---------------------------------------------------------

BENCHMARKS = sr.names(30)
PAIRS = 6


def _pair(tmp_path: Path, seed: int, *, processes: int = 10, slowdown: float = 1.0,
          modes=sr.TWO_MODES) -> tuple[gate.Run, gate.Run]:
    """A baseline and a new run of the same distribution (times ``slowdown``), drawn apart."""
    base = sr.load(sr.simulate(2 * seed, BENCHMARKS, processes=processes, modes=modes),
                   tmp_path, f"base-{seed}.json")
    new = sr.load(sr.simulate(2 * seed + 1, BENCHMARKS, processes=processes, modes=modes,
                              slowdown=slowdown), tmp_path, f"new-{seed}.json")
    return base, new


@pytest.mark.parametrize("threshold", [0.10, 0.20])
def test_same_build_across_processes_raises_no_alarm(tmp_path: Path, threshold: float) -> None:
    """Processes land in a fast or a 1.19x mode at random: per-process medians see it as the
    spread it is, and no pair of same-build runs alarms."""
    for seed in range(PAIRS):
        result = gate.compare_runs(*_pair(tmp_path, seed), threshold=threshold)
        assert result.unit == "processes" and not result.warnings
        assert result.slower == [], gate.table(result, only_changed=True)


def test_one_process_a_side_false_alarms_on_speed_modes(tmp_path: Path) -> None:
    """The wrong unit, planted: the same runs compared on the rounds of their first process
    alarm at 10% whenever the two processes drew different modes (every pair here), which is
    why the gate samples processes."""
    alarmed = 0
    for seed in range(PAIRS):
        base, new = _pair(tmp_path, seed)
        result = gate.compare_runs(study.first_process(base), study.first_process(new),
                                   threshold=0.10)
        assert result.unit == "rounds" and result.warnings == (gate.ONE_PROCESS_WARNING,)
        alarmed += bool(result.slower)
    assert alarmed == PAIRS


@pytest.mark.parametrize("threshold", [0.10, 0.20])
def test_planted_slowdown_of_one_and_a_half_is_caught(tmp_path: Path, threshold: float) -> None:
    for seed in range(PAIRS):
        result = gate.compare_runs(*_pair(tmp_path, seed, slowdown=1.5), threshold=threshold)
        assert len(result.slower) == len(BENCHMARKS)
        for c in result.comparisons:
            # The size of the planted change: mode draws move either run's median by up to
            # 1.19x, and noise by a few percent more.
            assert 1.5 / 1.19 / 1.05 < c.ratio < 1.5 * 1.19 * 1.05, c
            assert c.ci[0] > 1 + threshold, c


def test_a_slowdown_within_the_threshold_never_fails(tmp_path: Path) -> None:
    """1.05x in one tight mode is a real difference, but not beyond 10%; 1.5x is not beyond
    60%: the threshold is the user's."""
    for slowdown, threshold in ((1.05, 0.10), (1.5, 0.60)):
        base, new = _pair(tmp_path, 0, slowdown=slowdown, modes=((1.0, 1.0),))
        assert gate.compare_runs(base, new, threshold=threshold).slower == []


def test_a_mode_jump_of_every_new_process_is_a_slowdown(tmp_path: Path) -> None:
    """When *every* process of the new build lands in a 1.7x mode, the build is slower, and
    the gate says so at 20%; when each side's processes draw from the same 1.0/1.7 mixture,
    it does not."""
    mixture = ((1.0, 0.6), (1.7, 0.4))
    base = sr.load(sr.simulate(1, BENCHMARKS, processes=10), tmp_path, "fast.json")
    slow = sr.load(sr.simulate(2, BENCHMARKS, processes=10, modes=((1.7, 1.0),)), tmp_path,
                   "slow.json")
    assert len(gate.compare_runs(base, slow, threshold=0.2).slower) == len(BENCHMARKS)
    for seed in range(PAIRS):
        assert gate.compare_runs(*_pair(tmp_path, seed, modes=mixture), threshold=0.2).slower \
            == []


def test_too_few_processes_are_refused_as_a_gate_that_cannot_fail(tmp_path: Path) -> None:
    base, new = _pair(tmp_path, 0, processes=3, slowdown=3.0)
    with pytest.raises(gate.GateError, match="could never fail") as err:
        gate.compare_runs(base, new)
    assert "smallest p-value is 0.05" in str(err.value)
    assert f"at least {gate.processes_needed(len(BENCHMARKS), 0.05)} processes" in str(err.value)
    one = [BENCHMARKS[0]]
    with pytest.raises(gate.GateError, match="could never fail"):  # 1/20 is not below 0.05
        gate.compare_runs(base, new, names=one)
    base, new = _pair(tmp_path, 0, processes=4, slowdown=3.0)
    assert len(gate.compare_runs(base, new, names=one).slower) == 1  # 1/70 < 0.05


def test_single_process_files_still_compare_with_a_warning(tmp_path: Path, capsys) -> None:
    base = sr.write(tmp_path / "base.json", sr.simulate(0, BENCHMARKS[:3], processes=1))
    new = sr.write(tmp_path / "new.json", sr.simulate(1, BENCHMARKS[:3], processes=1,
                                                      slowdown=1.5))
    assert main(["compare", str(base), str(new), "--threshold", "10%"]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == f"WARNING: {gate.ONE_PROCESS_WARNING}"
    assert "3 benchmarks compared: 3 significantly slower by more than 10%" in captured.out
    assert "on the rounds of one process a side" in captured.out


def test_several_process_run_reports_the_per_process_median(tmp_path: Path, capsys) -> None:
    per_process = {"test_op[x]": [[1.0, 1.0, 9.0], [2.0, 2.0, 2.0], [3.0, 0.5, 3.0]]}
    run = sr.load(per_process, tmp_path, "run.json")
    bench_ = run.benchmarks[f"{sr.FILE}::test_op[x]"]
    assert run.processes == 3 and bench_.medians.tolist() == [1.0, 2.0, 3.0]
    assert bench_.median == 2.0 and bench_.rounds.size == 9


# --- missing benchmarks, names, machines ------------------------------------------------


def _files(tmp_path: Path, new_machine: dict | None = None, count: int = 24,
           new_count: int | None = None) -> tuple[str, str]:
    base = sr.write(tmp_path / "base.json", sr.simulate(0, sr.names(count), processes=10))
    new = sr.write(tmp_path / "new.json", sr.simulate(1, sr.names(new_count or count),
                                                      processes=10), machine=new_machine)
    return str(base), str(new)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_an_interrupted_run_fails_the_gate_unless_allowed(tmp_path: Path, capsys) -> None:
    base, new = _files(tmp_path, new_count=4)
    assert main(["compare", base, new]) == 2
    err = _one_line_error(capsys)
    assert "lacks 20 of the 24 benchmarks" in err and "--allow-missing" in err
    assert main(["compare", base, new, "--allow-missing"]) == 0
    out = capsys.readouterr().out
    assert "4 benchmarks compared" in out and "20 benchmarks of the baseline missing" in out
    assert out.count("only in ") == 20
    # Naming the benchmarks that are there is fine; naming a missing one is not.
    assert main(["compare", base, new, "--benchmark", "test_op[b001]"]) == 0
    capsys.readouterr()
    assert main(["compare", base, new, "--benchmark", "test_op[b010]"]) == 2
    assert "lacks 1 of the 1 benchmarks" in _one_line_error(capsys)


def test_new_benchmarks_are_listed_not_refused(tmp_path: Path, capsys) -> None:
    base, new = _files(tmp_path, count=20, new_count=24)
    assert main(["compare", base, new]) == 0
    assert capsys.readouterr().out.count("only in ") == 4


def test_unknown_benchmark_name_lists_close_matches(tmp_path: Path, capsys) -> None:
    base, new = _files(tmp_path)
    assert main(["compare", base, new, "--benchmark", "test_op[b001]"]) == 0
    capsys.readouterr()
    assert main(["compare", base, new, "--benchmark", "test_op[b0001]"]) == 2
    err = _one_line_error(capsys)
    assert "unknown benchmark 'test_op[b0001]'" in err and "did you mean 'test_op[b001]'" in err


def test_other_torch_build_warns_loudly_but_compares(tmp_path: Path, capsys) -> None:
    machine = json.loads(json.dumps(sr.MACHINE))
    machine["gradsuite"]["torch_version"] = "2.4.1"
    machine["gradsuite"]["torch_threads"] = 2
    base, new = _files(tmp_path, machine)
    assert main(["compare", base, new]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("WARNING: runs differ in") for line in err)
    assert any("torch_version: '2.13.0'" in line and "'2.4.1'" in line for line in err)


def test_runs_from_different_machines_are_refused(tmp_path: Path, capsys) -> None:
    machine = json.loads(json.dumps(sr.MACHINE))
    machine["cpu"]["brand_raw"] = machine["gradsuite"]["cpu_model"] = "another CPU"
    base, new = _files(tmp_path, machine)
    assert main(["compare", base, new]) == 2
    assert "--allow-different-machines" in _one_line_error(capsys)
    assert main(["compare", base, new, "--allow-different-machines"]) == 0
    assert capsys.readouterr().err.count("WARNING: runs differ in") == 2


def test_a_planted_run_says_so(tmp_path: Path, capsys) -> None:
    base = sr.write(tmp_path / "base.json", sr.simulate(0, BENCHMARKS, processes=10))
    new = sr.write(tmp_path / "new.json", sr.simulate(1, BENCHMARKS, processes=10,
                                                      slowdown=1.5),
                   extra_info={"planted_slowdown": 1.5})
    assert main(["compare", str(base), str(new)]) == 1
    assert "planted slowdown of 1.5x" in capsys.readouterr().err


# --- measuring several processes --------------------------------------------------------


def _fake_pytest(tmp_path: Path, monkeypatch, *, returncode: int = 0,
                 skip_in: tuple[int, ...] = ()) -> list[list[str]]:
    """Replace the measuring subprocess: each call writes a synthetic pytest-benchmark
    JSON (process i's rounds; benchmark b001 absent from the processes in ``skip_in``)."""
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        assert kwargs["env"].get(sampling.PLANTED_ENV) in (None, "", "2")
        i = len(calls)
        per = sr.simulate(i, sr.names(3), processes=1)
        if i in skip_in:
            del per["test_op[b001]"]
        if returncode == 0:
            out = next(a.split("=", 1)[1] for a in cmd if a.startswith("--benchmark-json="))
            data = sr.run_data(per)
            data["datetime"], data["version"] = "2026-12-01T00:00:00", "5.3.1"
            Path(out).write_text(json.dumps(data))
        return subprocess.CompletedProcess(cmd, returncode, "", "ERROR: file or directory "
                                           "not found: nosuch" if returncode else "")

    monkeypatch.setattr(sampling.subprocess, "run", fake_run)
    return calls


def test_measure_merges_processes_keeping_each_ones_rounds(tmp_path: Path, monkeypatch,
                                                          capsys) -> None:
    calls = _fake_pytest(tmp_path, monkeypatch, skip_in=(2,))
    out = tmp_path / "sub" / "run.json"
    assert main(["measure", "--processes", "4", "--out", str(out), "--", "-k", "tanh"]) == 0
    assert len(calls) == 4 and all(c[-4:-2] == ["-k", "tanh"] for c in calls)
    data = json.loads(out.read_text())
    assert data["gradsuite"] == {"format": gate.PROCESSES_FORMAT, "processes": 4,
                                 "pytest_args": ["-k", "tanh"], "planted_slowdown": None,
                                 "parallel": 1}
    run = gate.load_run(out)
    assert run.processes == 4
    assert [len(b.processes) for b in run.benchmarks.values()] == [4, 3, 4]
    b = run.benchmarks[f"{sr.FILE}::test_op[b000]"]
    assert b.rounds.size == 48 and data["benchmarks"][0]["stats"]["median"] == b.median
    assert "wrote" in capsys.readouterr().out


def test_measure_runs_processes_side_by_side_when_asked(tmp_path: Path, monkeypatch) -> None:
    calls = _fake_pytest(tmp_path, monkeypatch)
    out = tmp_path / "run.json"
    assert main(["measure", "--processes", "4", "--parallel", "2", "--out", str(out),
                 "--", "-k", "tanh"]) == 0
    data = json.loads(out.read_text())
    assert len(calls) == 4 and data["gradsuite"]["parallel"] == 2
    assert [len(b.processes) for b in gate.load_run(out).benchmarks.values()] == [4, 4, 4]


def test_measure_refuses_more_processes_at_a_time_than_cores(tmp_path: Path, monkeypatch,
                                                             capsys) -> None:
    calls = _fake_pytest(tmp_path, monkeypatch)
    monkeypatch.setattr(sampling.os, "cpu_count", lambda: 2)
    code = main(["measure", "--parallel", "3", "--out", str(tmp_path / "run.json")])
    assert code == 2 and not calls and not list(tmp_path.iterdir())
    assert "--parallel 3: use 1 to 2" in _one_line_error(capsys)


def test_measure_writes_nothing_when_a_process_fails(tmp_path: Path, monkeypatch,
                                                     capsys) -> None:
    _fake_pytest(tmp_path, monkeypatch, returncode=4)
    out = tmp_path / "run.json"
    assert main(["measure", "--out", str(out), "--", "nosuch"]) == 2
    err = _one_line_error(capsys)
    assert "process 1/10: pytest exited 4 (ERROR: file or directory not found: nosuch)" in err
    assert not out.exists() and not list(tmp_path.iterdir())
    assert main(["measure", "--parallel", "2", "--out", str(out), "--", "nosuch"]) == 2
    assert "pytest exited 4" in _one_line_error(capsys)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_measure_interrupted_writes_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sampling.subprocess, "run", interrupted)
    assert main(["measure", "--out", str(tmp_path / "run.json")]) == 130
    assert capsys.readouterr().err == "interrupted: nothing written\n"
    assert not list(tmp_path.iterdir())


def test_planted_slowdown_multiplies_each_calls_time(monkeypatch) -> None:
    """suite.bench.planted on a fake clock: a call of 10 ticks takes 15 at 1.5x, a slow-mode
    call of 12 takes 18, with busy work of 1/100 tick a turn, and a wrapper that costs 1/4
    tick a call taken out of it."""
    now = [0.0]

    def clock() -> float:
        return now[0]

    def spin(n: int) -> None:
        now[0] += 0.25 + n / 100  # a call of the wrapper's busy work, then its turns

    for ticks in (10.0, 12.0):
        def call(ticks: float = ticks) -> str:
            now[0] += ticks
            return "out"

        slowed = bench.planted(call, 1.5, clock, spin=spin)
        start = now[0]
        assert slowed() == "out"
        assert now[0] - start == pytest.approx(1.5 * ticks, abs=0.01)
    assert bench.per_call(lambda: None, clock) == 0.0  # the fake clock stands still
    for text, factor in (("", None), ("1.5", 1.5), (" 2 ", 2.0)):
        assert sampling.planted_slowdown({sampling.PLANTED_ENV: text}) == factor
    for text in ("0.5", "fast", "inf"):
        with pytest.raises(gate.GateError, match="GRADSUITE_BENCH_PLANTED_SLOWDOWN"):
            sampling.planted_slowdown({sampling.PLANTED_ENV: text})


def test_compare_rerun_measures_as_the_new_run_was_measured(tmp_path: Path, monkeypatch,
                                                             capsys) -> None:
    seen = {}

    def fake_rerun(base, flagged, **kwargs):
        seen.update(kwargs)
        return gate.compare_runs(base, base, threshold=0.1, alpha=0.05)

    monkeypatch.setattr(sampling, "rerun", fake_rerun)
    names = sr.names(3)
    base = sr.write(tmp_path / "base.json", sr.simulate(0, names, processes=10))
    data = sr.run_data(sr.simulate(1, names, processes=10, slowdown=2.0),
                       machine={**sr.MACHINE, "gradsuite": {**sr.MACHINE["gradsuite"],
                                                            "bench_rounds": 5}})
    data["gradsuite"]["parallel"] = 2
    new = tmp_path / "new.json"
    new.write_text(json.dumps(data))
    assert main(["compare", str(base), str(new), "--rerun", "--pytest-arg=--device=cpu"]) == 0
    assert seen["processes"] == 10 and seen["parallel"] == 2
    assert seen["pytest_args"] == ["--bench-rounds=5", "--device=cpu"]
    out, err = capsys.readouterr()
    assert "0 of 3 slowdowns confirmed" in out
    assert "measured 1 process(es) at a time and" in err and "bench_rounds" in err


def test_rerun_measures_in_as_many_processes_as_the_new_run(tmp_path: Path,
                                                            monkeypatch) -> None:
    seen = {}

    def fake_measure(args, processes, out, **kwargs):
        seen["processes"], seen["args"] = processes, args
        return sr.load(sr.simulate(5, BENCHMARKS[:2], processes=processes), tmp_path, "re.json")

    monkeypatch.setattr(sampling, "measure", fake_measure)
    base = sr.load(sr.simulate(0, BENCHMARKS, processes=10), tmp_path, "base.json")
    flagged = [f"{sr.FILE}::{n}" for n in BENCHMARKS[:2]]
    again = sampling.rerun(base, flagged, threshold=0.1, alpha=0.05, processes=10,
                           pytest_args=["--device", "cpu"])
    assert seen == {"processes": 10, "args": ["--device", "cpu", *flagged]}
    assert [c.fullname for c in again.comparisons] == flagged and again.slower == []
