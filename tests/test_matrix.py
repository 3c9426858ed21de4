"""The version report folds per-environment JUnit and drift results into op x version."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from suite import drift, matrix
from suite.__main__ import main

_OPS = "tests.test_ops"
JUNIT = "\n".join([
    '<?xml version="1.0" encoding="utf-8"?>',
    '<testsuites><testsuite name="pytest">',
    f'<testcase classname="{_OPS}" name="test_forward_matches_reference[cpu-float64-tanh]"'
    ' time="0.5"/>',
    f'<testcase classname="{_OPS}" name="test_gradient_matches_reference[cpu-float64-tanh]"'
    ' time="0.25">{tanh_result}</testcase>',
    f'<testcase classname="{_OPS}" name="test_forward_matches_reference[cuda-float64-relu]"'
    ' time="0"><skipped type="pytest.skip" message="no CUDA"/></testcase>',
    # A recorded torch defect: a strict xfail, its (huge) error ratio in the drift record.
    f'<testcase classname="{_OPS}" name="test_gradient_matches_reference[cpu-float64-ctc_loss]"'
    ' time="0.5"><skipped type="pytest.xfail" message="torch defect"/></testcase>',
    f'<testcase classname="{_OPS}" name="test_forward_matches_reference[cpu-float64-ctc_loss]"'
    ' time="0.25"/>',
    '<testcase classname="tests.test_training"'
    ' name="test_mlp_classifier_trajectory_matches_reference[cpu]" time="1.5"/>',
    '</testsuite></testsuites>',
])


def _env(root: Path, name: str, torch_version: str, *, fail: bool, ratio: float) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    result = '<failure message="tanh: VJP w.r.t. input is not close"/>' if fail else ""
    (folder / "junit.xml").write_text(JUNIT.format(tanh_result=result))
    tests = {"tests/test_ops.py::test_forward_matches_reference[cpu-float64-tanh]":
             {"ratio": ratio, "what": "tanh: forward", "context": "", "comparisons": 20},
             "tests/test_ops.py::test_gradient_matches_reference[cpu-float64-ctc_loss]":
             {"ratio": 6.45e8, "what": "ctc_loss: VJP", "context": "", "comparisons": 20},
             "tests/test_ops.py::test_forward_matches_reference[cpu-float64-ctc_loss]":
             {"ratio": 0.0625, "what": "ctc_loss: forward", "context": "", "comparisons": 20}}
    drift.save(folder / "drift.json", tests, drift.metadata(torch_version=torch_version))


def test_version_matrix_shows_pass_fail_error_ratio_and_time(tmp_path: Path) -> None:
    _env(tmp_path, "py311-torch20-numpy1", "2.0.1", fail=True, ratio=0.5)
    _env(tmp_path, "py311-torch213-numpy2", "2.13.0", fail=False, ratio=0.125)
    envs = matrix.load(tmp_path, {"tanh", "relu", "ctc_loss"})
    table = matrix.render_markdown(envs)
    assert "| op | torch 2.0.1 (py311-torch20-numpy1) | torch 2.13.0 (py311-torch213-numpy2) |" \
        in table
    assert "| tanh | FAIL 1/2 | pass 0.125 · 0.8 s |" in table
    assert "| relu | skip 1 | skip 1 |" in table
    # No comparison recorded for it: `pass`, not `pass 0` (which would claim a zero error).
    assert "| test_mlp_classifier_trajectory_matches_reference | pass · 1.5 s | pass · 1.5 s |" \
        in table
    assert "- tanh under torch 2.0.1 (py311-torch20-numpy1)" in table
    assert "- ctc_loss" not in table


def test_expected_failures_are_counted_apart_from_passes(tmp_path: Path) -> None:
    """ctc_loss's strict xfail (a recorded torch defect, error ratio 6.45e8) is an xfail,
    not part of the op's pass figure: the largest ratio counts passing tests only."""
    _env(tmp_path, "py311-torch213-numpy2", "2.13.0", fail=False, ratio=0.125)
    table = matrix.render_markdown(matrix.load(tmp_path, {"tanh", "relu", "ctc_loss"}))
    assert "| ctc_loss | pass 0.0625 · xfail 1 · 0.8 s |" in table
    assert "6.45e+08" not in table


@pytest.mark.parametrize(("cases", "cell"), [
    ([("passed", 0.5), ("passed", 0.25)], "pass 0.5 · 2.0 s"),
    ([("passed", None)], "pass · 1.0 s"),
    ([("passed", 0.5), ("xfailed", 9e9), ("skipped", None)], "pass 0.5 · xfail 1 · skip 1 · 3.0 s"),
    ([("xfailed", 9e9)], "xfail 1 · 1.0 s"),
    ([("skipped", None), ("skipped", None)], "skip 2"),
    ([("failed", 2.0), ("passed", 0.5), ("xfailed", 1.0)], "FAIL 1/3 · xfail 1"),
    ([], "—"),
])
def test_cell_gives_each_outcome_its_own_figure(cases, cell: str) -> None:
    c = matrix.Cell()
    for outcome, ratio in cases:
        c.add(outcome, 1.0, ratio)
    assert c.render() == cell


@pytest.mark.parametrize(("element", "outcome"), [
    ("", "passed"),
    ('<skipped type="pytest.skip" message="no CUDA"/>', "skipped"),
    ('<skipped type="pytest.xfail" message="torch defect"/>', "xfailed"),
    ('<failure message="[XPASS(strict)] torch defect"/>', "failed"),
    ('<error message="failed on setup"/>', "failed"),
])
def test_junit_outcomes_as_pytest_writes_them(element: str, outcome: str) -> None:
    case = ET.fromstring(f'<testcase name="t" time="1">{element}</testcase>')
    assert matrix.outcome(case) == outcome


def test_version_matrix_names_the_fix_for_missing_or_corrupt_results(tmp_path: Path) -> None:
    with pytest.raises(matrix.MatrixError, match="no such folder"):
        matrix.load(tmp_path / "absent", set())
    with pytest.raises(matrix.MatrixError, match="no environment results"):
        matrix.load(tmp_path, set())
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "junit.xml").write_text("<testsuites><testcase")
    with pytest.raises(matrix.MatrixError, match="not valid JUnit XML"):
        matrix.load(tmp_path, set())
    (tmp_path / "env" / "junit.xml").write_text(JUNIT.format(tanh_result=""))
    (tmp_path / "env" / "drift.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(matrix.MatrixError, match="not a gradsuite drift record"):
        matrix.load(tmp_path, set())


def test_report_versions_command_prints_and_saves_the_matrix(tmp_path: Path, capsys) -> None:
    _env(tmp_path / "results", "py311-torch213-numpy2", "2.13.0", fail=False, ratio=0.25)
    assert main(["report", "--versions", str(tmp_path / "results"),
                 "--out", str(tmp_path / "out")]) == 0
    saved = (tmp_path / "out" / "versions.md").read_text()
    assert "| tanh | pass 0.25 · 0.8 s |" in saved
    assert "| ctc_loss | pass 0.0625 · xfail 1 · 0.8 s |" in saved
    assert saved.strip() in capsys.readouterr().out


def test_report_versions_command_exits_2_with_one_line_on_bad_input(tmp_path: Path,
                                                                      capsys) -> None:
    assert main(["report", "--versions", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such folder" in err
