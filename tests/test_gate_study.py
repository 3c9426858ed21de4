"""python -m suite gate-study (suite.study): its selection of benchmarks, its refusals, and its
analysis, on synthetic runs (no real timing: the measuring is replaced)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suite import gate, sampling, study
from tests import synthetic_runs as sr

NODES = [f"tests/test_ops.py::TestOps::test_benchmark[cpu-{dtype}-{op}-{pass_}-{impl}-n{n}]"
         for op in ("tanh", "hardtanh", "linear") for dtype in ("float64", "float32")
         for pass_ in ("forward", "forward+backward") for impl in ("torch", "numpy")
         for n in (16, 64, 256, 1024)]
STEP = "tests/test_optimizers.py::TestOptimizers::test_benchmark_step"
NODES += [f"{STEP}[cpu-{dtype}-adam-{impl}-n{n}]"
          for dtype in ("float64", "float32") for impl in ("for-loop", "foreach", "fused", "numpy")
          for n in (16, 64)]


def test_choose_selects_ops_sizes_and_numpy_once() -> None:
    chosen = study.choose(NODES, ["tanh", "adam"], [16, 64])
    assert all("hardtanh" not in n and "n256" not in n for n in chosen)
    assert not any("float32" in n and "-numpy-" in n for n in chosen)
    # tanh: 2 passes x (torch in 2 dtypes + numpy once) x 2 sizes; adam: (3 x 2 + 1) x 2.
    assert len(chosen) == 2 * 3 * 2 + 7 * 2
    assert {study.op_of(n) for n in chosen} == {"tanh", "adam"}


def test_plan_counts_families_and_refuses_what_cannot_work() -> None:
    p = study.plan(ops=["tanh", "linear", "adam"], sizes=[16, 64], processes=10,
                   node_ids=NODES)
    assert p.families == {"activation": 12, "layer": 12, "optimizer": 14}
    assert [name for name, _ in p.runs()[:3]] == ["same-01-a", "same-01-b", "slow-01"]
    assert len(p.runs()) == 30 and p.runs()[2][1] == 1.5
    with pytest.raises(gate.GateError, match="did you mean tanh"):
        study.plan(ops=["tahn"], node_ids=NODES)
    with pytest.raises(gate.GateError, match="no benchmark at sizes 4096"):
        study.plan(ops=["tanh"], sizes=[4096], node_ids=NODES)
    # 38 benchmarks: C(12, 6) = 924 > 38 / 0.05 = 760 > C(10, 5) = 252.
    with pytest.raises(gate.GateError, match="use at least 6"):
        study.plan(ops=["tanh", "linear", "adam"], sizes=[16, 64], processes=5,
                   node_ids=NODES)


def _fake_measure(calls: list[str]):
    """Synthetic runs in suite.sampling's layout: two speed modes per process, the planted
    factor applied when the environment asks for it."""
    def measure(args, processes, out, *, env=None, parallel=1, progress=None):
        calls.append(str(out))
        factor = float((env or {}).get(sampling.PLANTED_ENV) or 1.0)
        nodes = [a for a in args if "::" in a]
        per = sr.simulate(len(calls), [a.split("::")[-1] for a in nodes], processes=processes,
                          modes=sr.TWO_MODES, slowdown=factor)
        data = sr.run_data(per, extra_info={"planted_slowdown": factor} if factor > 1 else {})
        data["gradsuite"].update(pytest_args=list(args), parallel=parallel,
                                 planted_slowdown=factor if factor > 1 else None)
        for entry, node in zip(data["benchmarks"], nodes, strict=True):
            entry["fullname"] = node
        Path(out).write_text(json.dumps(data))
        return gate.load_run(out)

    return measure


def test_study_reports_false_alarms_and_detection_and_resumes(tmp_path: Path,
                                                             monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(sampling, "measure", _fake_measure(calls))
    p = study.plan(ops=["tanh", "linear", "adam"], sizes=[16, 64], pairs=2, processes=10,
                   node_ids=NODES)
    text = study.run(p, tmp_path, progress=None)
    assert len(calls) == 6
    rows = {tuple(line.split(" | ")[:2]): line.split(" | ") for line in text.splitlines()
            if line.startswith("| processes") or line.startswith("| one process")}
    for threshold in ("10%", "20%"):
        row = rows[("| processes (10 a side)", threshold)]
        assert row[2:6] == ["0/2", "0/76", "2/2", "76/76"], row
    # The old unit on the same runs: the speed modes make it alarm at 10%.
    one = rows[("| one process a side (rounds)", "10%")]
    assert one[2] != "0/2", one
    saved = json.loads((tmp_path / "study.json").read_text())
    assert saved["pairs"] == 2 and saved["tallies"][0]["same_alarms"] == [0, 0]
    # Run again: every run is reused, nothing measured.
    assert study.run(p, tmp_path, progress=None) and len(calls) == 6
    # Other settings: nothing reused.
    study.run(study.plan(ops=["tanh", "linear", "adam"], sizes=[16, 64], pairs=1,
                         processes=11, node_ids=NODES), tmp_path, progress=None)
    assert len(calls) == 9


def test_study_passes_its_round_count_and_parallelism_to_every_run(tmp_path: Path,
                                                                   monkeypatch) -> None:
    seen: list[tuple[list[str], int]] = []
    fake = _fake_measure([])

    def measure(args, processes, out, **kwargs):
        seen.append((list(args), kwargs["parallel"]))
        return fake(args, processes, out, **kwargs)

    monkeypatch.setattr(sampling, "measure", measure)
    monkeypatch.setattr(sampling.os, "cpu_count", lambda: 2)
    p = study.plan(ops=["tanh"], sizes=[16], pairs=1, processes=10, node_ids=NODES, rounds=5,
                   parallel=2)
    text = study.run(p, tmp_path, progress=None)
    assert len(seen) == 3 and all(args[0] == "--bench-rounds=5" and parallel == 2
                                  for args, parallel in seen)
    assert "--rounds 5 --parallel 2" in text
    # The same study with the default schedule measures every run again.
    study.run(study.plan(ops=["tanh"], sizes=[16], pairs=1, processes=10, node_ids=NODES,
                         parallel=2), tmp_path, progress=None)
    assert len(seen) == 6
    with pytest.raises(gate.GateError, match="--parallel 3: use 1 to 2"):
        study.plan(ops=["tanh"], sizes=[16], node_ids=NODES, parallel=3)
