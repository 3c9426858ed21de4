"""Numerics drift: every comparison reports its error relative to tolerance; a run records the
largest per test (also under pytest-xdist); the report lists the tests whose error grew."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from suite import compare, drift
from suite.__main__ import main
from suite.tolerances import Tolerance

REPO = pathlib.Path(__file__).resolve().parent.parent
TOL = Tolerance(rtol=1e-3, atol=1e-6)


@pytest.fixture
def recorder():
    with drift.recording() as rec:
        yield rec


def test_every_comparison_reports_its_error_relative_to_tolerance(recorder) -> None:
    recorder.current = "tests/x.py::test_y"  # what the plugin sets while a test runs
    expected = np.array([1.0, 2.0, -4.0, np.nan, np.inf])
    actual = expected + np.array([5e-4, 1e-3, 0.0, 0.0, 0.0])
    compare.assert_close(actual, expected, tol=TOL, what="op: forward", context="float64")
    # Worst element: 1e-3 / (1e-6 + 1e-3 * 2) ~ 0.4998; NaN == NaN and inf == inf count 0.
    entry = recorder.entries["tests/x.py::test_y"]
    assert entry["ratio"] == pytest.approx(1e-3 / (1e-6 + 2e-3))
    assert entry["what"] == "op: forward" and entry["comparisons"] == 1
    # A worse comparison later in the same test replaces it; a better one only counts.
    compare.find_mismatch(expected * 1.01, expected, tol=TOL, what="op: VJP", context="c")
    compare.find_mismatch(expected, expected, tol=TOL, what="op: VJP 2", context="c")
    entry = recorder.entries["tests/x.py::test_y"]
    assert entry["what"] == "op: VJP" and entry["ratio"] > 1 and entry["comparisons"] == 3


def test_a_non_finite_difference_is_an_infinite_ratio(recorder) -> None:
    recorder.current = "tests/x.py::test_y"
    compare.find_mismatch(np.array([np.inf]), np.array([-np.inf]), tol=TOL, what="w", context="")
    assert recorder.entries["tests/x.py::test_y"]["ratio"] == np.inf


def test_nothing_is_recorded_outside_a_test_or_when_off(monkeypatch) -> None:
    with drift.recording() as rec:
        compare.find_mismatch(np.ones(2), np.ones(2), tol=TOL, what="w", context="")
    assert rec.entries == {}
    monkeypatch.setattr(drift, "RECORDER", None)
    compare.find_mismatch(np.ones(2), np.ones(2), tol=TOL, what="w", context="")


def test_tests_of_the_recorder_leave_the_session_recorder_in_place() -> None:
    outer = drift.RECORDER
    with drift.recording() as inner:
        assert drift.RECORDER is inner
    assert drift.RECORDER is outer


def test_merge_keeps_the_worst_ratio_and_adds_the_counts() -> None:
    a = {"t1": {"ratio": 0.2, "what": "a", "context": "", "comparisons": 3}}
    b = {"t1": {"ratio": 0.5, "what": "b", "context": "", "comparisons": 2},
         "t2": {"ratio": 0.1, "what": "c", "context": "", "comparisons": 1}}
    merged = drift.merge([a, b])
    assert merged["t1"] == {"ratio": 0.5, "what": "b", "context": "", "comparisons": 5}
    assert merged["t2"]["ratio"] == 0.1


def _record(path: pathlib.Path, ratios: dict[str, float], torch_version: str) -> str:
    tests = {t: {"ratio": r, "what": f"{t.split('[')[-1]}: forward", "context": "",
                 "comparisons": 1} for t, r in ratios.items()}
    drift.save(path, tests, {"torch_version": torch_version})
    return str(path)


def test_report_lists_the_tests_whose_error_grew(tmp_path: pathlib.Path) -> None:
    old = _record(tmp_path / "old.json", {"t[tanh]": 0.01, "t[relu]": 0.0, "t[gelu]": 0.2,
                                          "t[silu]": 0.001}, "2.4.1")
    new = _record(tmp_path / "new.json", {"t[tanh]": 0.3, "t[relu]": 0.05, "t[gelu]": 0.25,
                                          "t[silu]": 0.005, "t[elu]": 0.9}, "2.13.0")
    grown = drift.grown(drift.load(old), drift.load(new), factor=2.0)
    # relu: 0 -> 0.05 (new error); tanh: 30x; gelu grew 1.25x only; silu stays under 1%.
    assert [g.test for g in grown] == ["t[relu]", "t[tanh]"]
    out = tmp_path / "r"
    assert main(["report", "--drift", old, new, "--out", str(out), "--no-plots"]) == 0
    summary = (out / "summary.md").read_text()
    assert "2 of 4 tests in both" in summary
    assert "torch_version: '2.4.1' -> '2.13.0'" in summary
    assert "| `t[tanh]` | tanh]: forward | 0.01 | 0.3 | 30x |" in summary


def test_corrupt_drift_record_is_a_one_line_error(tmp_path: pathlib.Path, capsys) -> None:
    good = _record(tmp_path / "good.json", {"t": 0.1}, "2.13.0")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "gradsuite-drift/1", "tests": {"t": {"ratio": "x"}}}')
    assert main(["report", "--drift", good, str(bad), "--no-plots",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no numeric 'ratio'" in err and "\n" not in err
    bad.write_text(json.dumps({"tests": {}}))
    assert main(["report", "--drift", good, str(bad), "--no-plots",
                 "--out", str(tmp_path / "r")]) == 2
    assert "not a gradsuite drift record" in capsys.readouterr().err


def test_drift_json_records_a_run_across_xdist_workers(tmp_path: pathlib.Path) -> None:
    """Two workers each record their part; the controller merges them into one file.

    (Without pytest-xdist the same run is serial: the controller path alone.)"""
    try:
        import xdist  # noqa: F401

        workers = ["-n", "2"]
    except ImportError:
        workers = []
    path = tmp_path / "drift.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--device", "cpu",
         *[f"tests/test_ops.py::TestOps::test_forward_matches_reference[cpu-float64-{op}]"
           for op in ("sigmoid", "tanh")], "--dtype", "float64", "--hypothesis-profile=dev",
         f"--drift-json={path}", *workers],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    record = drift.load(path)
    tests = sorted(record.tests)
    assert len(tests) == 2 and all("test_forward_matches_reference" in t for t in tests), tests
    for entry in record.tests.values():
        assert 0 <= entry["ratio"] <= 1 and entry["comparisons"] >= 1
    assert record.metadata["hypothesis_profile"] == "dev"
    assert not list(tmp_path.glob(".*.tmp"))
