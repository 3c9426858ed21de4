"""python -m suite report: the markdown summary, the plots, and its bad-input errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from suite import gate, report
from suite.__main__ import main

SIZES = (16, 64, 256, 1024)
PNG = b"\x89PNG\r\n\x1a\n"


def test_growth_exponent_is_fitted_over_the_upper_sweep() -> None:
    # Overhead dominates the small sizes; the upper half shows n^2 and n^3.
    quadratic = {n: 1e-6 + 1e-8 * n**2 for n in SIZES}
    cubic = {n: 1e-6 + 1e-10 * n**3 for n in SIZES}
    assert report.growth_exponent(quadratic) == pytest.approx(2.0, abs=0.05)
    assert report.growth_exponent(cubic) == pytest.approx(3.0, abs=0.05)
    assert np.isnan(report.growth_exponent({16: 1.0}))


def _run(path: Path, scale: dict[str, float] | None = None) -> Path:
    """A benchmark JSON like `pytest -m bench` writes: two ops, torch and numpy, a sweep."""
    rng = np.random.default_rng(0)
    benchmarks = []
    for op, power, coefficient in (("tanh", 2, 1e-9), ("linear", 3, 1e-11)):
        for impl, dtype, factor in (("torch", "float32", 1.0), ("torch", "float64", 1.5),
                                    ("numpy", "float64", 3.0)):
            for n in SIZES:
                name = f"test_op[cpu-{dtype}-{op}-forward-{impl}-n{n}]"
                median = factor * (1e-7 + coefficient * n**power) * (scale or {}).get(op, 1.0)
                data = list(median * (1 + 0.01 * rng.standard_normal(12)))
                benchmarks.append({
                    "name": name, "fullname": f"tests/test_ops.py::TestOps::{name}",
                    "group": f"{op} forward n={n}",
                    "extra_info": {"op": op, "pass": "forward", "impl": impl, "device": "cpu",
                                   "dtype": dtype, "n": n},
                    "stats": {"data": data}})
    machine = {"machine": "x86_64", "python_version": "3.11.7",
               "gradsuite": {"torch_version": "2.13.0", "numpy_version": "2.4.6",
                             "cpu_model": "test CPU", "torch_threads": 1, "blas_threads": [1]}}
    path.write_text(json.dumps({"machine_info": machine, "benchmarks": benchmarks}))
    return path


def test_report_writes_summary_and_plots(tmp_path: Path, capsys) -> None:
    pytest.importorskip("matplotlib", reason="plots need the report extra")
    new = _run(tmp_path / "new.json", scale={"tanh": 1.5})
    base = _run(tmp_path / "base.json")
    out = tmp_path / "report"
    assert main(["report", str(new), "--baseline", str(base), "--out", str(out)]) == 0
    summary = (out / "summary.md").read_text()
    assert "| tanh | forward | torch cpu float32 |" in summary
    assert "| linear | forward | numpy |" in summary
    rows = [line for line in summary.splitlines() if line.startswith("| linear | forward")]
    exponents = [float(line.rstrip(" |").rsplit("|", 1)[1]) for line in rows]
    assert exponents == pytest.approx([3.0] * 3, abs=0.05), rows
    assert "significantly slower by more than 20%" in summary and "SLOWER" in summary
    for name in ("scaling-tanh.png", "scaling-linear.png", "comparison.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) < 200_000, name
    assert not list(out.glob(".*.tmp")), "temporary files left behind"
    assert "wrote" in capsys.readouterr().out


def test_markdown_only_report_needs_no_matplotlib(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    new = _run(tmp_path / "new.json")
    assert main(["report", str(new), "--no-plots", "--out", str(tmp_path / "r")]) == 0
    assert "## Time against size" in (tmp_path / "r" / "summary.md").read_text()


def test_missing_matplotlib_names_the_extra(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    new = _run(tmp_path / "new.json")
    assert main(["report", str(new), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'gradsuite[report]'" in err and "\n" not in err
    assert not (tmp_path / "r").exists(), "nothing is written when the report cannot be made"


@pytest.mark.parametrize(("args", "says"), [
    ([], "report needs something to report"),
    (["missing.json"], "no such file"),
    (["--drift", "missing-old.json", "missing-new.json", "--no-plots"], "no such file"),
])
def test_report_bad_input_is_a_one_line_error(tmp_path: Path, monkeypatch, capsys,
                                              args: list[str], says: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["report", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err, err


def test_report_compares_only_runs_of_one_machine(tmp_path: Path, capsys) -> None:
    new, base = _run(tmp_path / "new.json"), _run(tmp_path / "base.json")
    data = json.loads(base.read_text())
    data["machine_info"]["gradsuite"]["cpu_model"] = "another CPU"
    base.write_text(json.dumps(data))
    assert main(["report", str(new), "--baseline", str(base), "--no-plots",
                 "--out", str(tmp_path / "r")]) == 2
    assert "different machines" in capsys.readouterr().err


def test_report_on_a_run_without_gradsuite_fields_still_renders(tmp_path: Path) -> None:
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps({"benchmarks": [
        {"name": "test_x", "fullname": "t.py::test_x", "stats": {"data": [1e-3] * 6}}]}))
    run = gate.load_run(path)
    written = report.render(run, out=str(tmp_path / "r"), plots=False)
    assert Path(written[0]).read_text().startswith("# gradsuite benchmark report")
