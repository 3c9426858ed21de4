"""The plugin's inputs: every bad option or environment variable gets one line naming the fix and
a non-zero exit before any test runs; ``pytest --help`` works; Ctrl-C is an interruption.

``BAD_INPUTS`` is also the table of docs/bad-inputs.md ("pytest options"): a test keeps the two
in step, so every documented row is backed by a test.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

# Turning deterministic algorithms on (--poison-memory) imports dynamo, which registers this
# library once per process: imported before any inner run, it stays in the snapshot of modules
# that pytester restores after each one instead of being registered again.
import torch._inductor.test_operators  # noqa: F401

from suite import devices, plugin
from suite import options as opts

REPO = pathlib.Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "bad-inputs.md"

# (input as a user types it, extra environment, exit code, what the one line says)
BAD_INPUTS: list[tuple[str, dict[str, str], int, str]] = [
    ("--dtype float16", {}, 4, "unknown dtype 'float16'; use float64, float32"),
    ("--dtype ,", {}, 4, "unknown dtype"),
    ("--device tpu", {}, 4, "unknown device 'tpu'; use cpu, cuda, cuda:N, mps, xpu"),
    ("--device cpu,tpu", {}, 4, "unknown device 'tpu'"),
    ("--device cuda:7", {}, 4, "--device cuda:7: not available here"),
    ("--torch-threads 0", {}, 4, "--torch-threads needs a positive integer, got '0'"),
    ("--torch-threads two", {}, 4, "--torch-threads needs a positive integer, got 'two'"),
    ("--bench-rounds 3", {}, 4,
     "--bench-rounds needs a whole number of at least 5 (the gate's rank test), got '3'"),
    ("(no option)", {"GRADSUITE_BENCH_ROUNDS": "many"}, 4,
     "GRADSUITE_BENCH_ROUNDS='many': --bench-rounds needs a whole number of at least 5"),
    ("--hypothesis-profile nightly", {}, 4, "nightly"),
    ("--drift-json /nonexistent/dir/d.json", {}, 4,
     "--drift-json /nonexistent/dir/d.json: folder /nonexistent/dir does not exist"),
    ("--drift-json tests", {}, 4, "--drift-json tests: is a folder; give a file name inside it"),
    ("--summary-md /nonexistent/s.md", {}, 4, "--summary-md /nonexistent/s.md: folder"),
    ("(no option)", {"HYPOTHESIS_PROFILE": "nosuch"}, 4,
     "unknown Hypothesis profile 'nosuch' (from HYPOTHESIS_PROFILE)"),
    ("(no option)", {"GRADSUITE_DEVICE": "tpu"}, 4,
     "GRADSUITE_DEVICE='tpu': unknown device 'tpu'"),
    ("(no option)", {"GRADSUITE_DTYPE": "int8"}, 4, "GRADSUITE_DTYPE='int8': unknown dtype"),
    ("(no option)", {"GRADSUITE_TORCH_THREADS": "-1"}, 4,
     "GRADSUITE_TORCH_THREADS='-1': --torch-threads needs a positive integer"),
    ("(no option)", {"GRADSUITE_DRIFT_JSON": "/nonexistent/d.json"}, 4,
     "--drift-json /nonexistent/d.json: folder /nonexistent does not exist"),
    ("--backend tpu", {}, 4, "unknown backend 'tpu'; use eager, inductor, aot_eager"),
    ("--backend ,", {}, 4, "unknown backend ','"),
    ("(no option)", {"GRADSUITE_BACKEND": "jit"}, 4,
     "GRADSUITE_BACKEND='jit': unknown backend 'jit'"),
    ("--poison-memory maybe", {}, 4, "--poison-memory 'maybe': use on, off or auto"),
    ("(no option)", {"GRADSUITE_POISON_MEMORY": "yes"}, 4,
     "GRADSUITE_POISON_MEMORY='yes': --poison-memory 'yes': use on, off or auto"),
]
if not devices.cuda_available():
    BAD_INPUTS.append(("--device cuda", {}, 4, "--device cuda: no CUDA here"))


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """pytest in this process (no torch import: ~50 ms a run) in an empty folder holding one
    passing test, with the environment cleared of gradsuite's variables plus ``env``."""
    for key in [k for k in os.environ if k.startswith("GRADSUITE_")] + ["HYPOTHESIS_PROFILE",
                                                                       "GITHUB_STEP_SUMMARY"]:
        monkeypatch.delenv(key, raising=False)
    pytester.makepyfile(test_one="def test_one():\n    pass\n")

    def invoke(*args: str, env: dict[str, str] | None = None) -> pytest.RunResult:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        return pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)

    return invoke


@pytest.mark.parametrize(("typed", "env", "code", "says"), BAD_INPUTS,
                         ids=[f"{t} {' '.join(f'{k}={v}' for k, v in e.items())}".strip()
                              for t, e, _, _ in BAD_INPUTS])
def test_bad_input_is_one_line_and_a_usage_error(run, typed: str, env: dict[str, str], code: int,
                                                 says: str) -> None:
    args = [] if typed.startswith("(") else typed.split(" ", 1)
    if "tests" in args:  # a folder that exists, as the row means it
        args = [a.replace("tests", str(REPO / "tests")) for a in args]
        says = says.replace("--drift-json tests", f"--drift-json {REPO / 'tests'}")
    result = run(*args, env=env)
    assert result.ret == code, (result.ret, result.outlines[-10:], result.errlines)
    error_lines = [line for line in result.errlines if "error" in line.lower()]
    assert any(says in line for line in error_lines), result.errlines
    text = "\n".join(result.outlines + result.errlines)
    assert "Traceback" not in text and "passed" not in text, text[-2000:]


def test_docs_table_lists_every_bad_input() -> None:
    """docs/bad-inputs.md shows each row above (input, exit code, message)."""
    text = DOCS.read_text(encoding="utf-8")
    missing = [f"{typed} {env}" for typed, env, code, says in BAD_INPUTS
               if f"`{says}" not in text or f"| {code} |" not in text]
    assert not missing, f"rows of BAD_INPUTS absent from {DOCS}: {missing}"


def test_help_lists_every_option_with_its_environment_variable(run) -> None:
    result = run("--help")
    assert result.ret == 0, result.errlines
    flat = " ".join(" ".join(result.outlines).split())
    assert "gradsuite: checking torch against NumPy references" in flat
    for option in opts.OPTIONS:
        assert option.flag in flat and f"Environment: {option.env}." in flat, option.flag


def test_help_works_even_with_a_bad_environment(run) -> None:
    """--help shows what to set; a bad variable must not hide the help that fixes it."""
    result = run("-h", env={"GRADSUITE_DEVICE": "cuda:9"})
    assert result.ret == 0, result.errlines


def test_an_unwritable_drift_path_fails_before_any_test_runs(run) -> None:
    start = time.monotonic()
    result = run("--drift-json", "/nonexistent/dir/d.json")
    assert result.ret == 4
    assert time.monotonic() - start < 10
    assert not any("collected" in line or "passed" in line for line in result.outlines)


def test_environment_variables_set_the_options(run, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "drift.json"
    result = run(env={"GRADSUITE_DEVICE": "cpu", "GRADSUITE_DRIFT_JSON": str(out)})
    assert result.ret == 0, result.outlines[-20:]
    assert out.exists()
    assert any(line.startswith("gradsuite: devices cpu: ") for line in result.outlines)


def test_summary_is_written_and_appended_to_the_step_summary(pytester: pytest.Pytester,
                                                             run, tmp_path: pathlib.Path) -> None:
    pytester.makepyfile(test_records="""
import pytest
from suite import catalog
@pytest.mark.parametrize("spec", [catalog.by_name("gelu")], ids=catalog.spec_id)
def test_record(spec, dtype):
    pass
""")
    own, github = tmp_path / "summary.md", tmp_path / "step.md"
    github.write_text("earlier step\n")
    result = run("--summary-md", str(own), env={"GITHUB_STEP_SUMMARY": str(github)})
    assert result.ret == 0, result.outlines[-20:]
    text = own.read_text()
    assert "| record | dtype | device | passed | failed | xfailed | skipped |" in text
    assert "| gelu | float32 | - | 1 |" in text  # the record a test checks, not only its file
    assert github.read_text() == "earlier step\n" + text


_SLOW_TESTS = '''
import pathlib, time
from hypothesis import given, strategies as st

def test_plain():
    pathlib.Path("{started}").touch()
    time.sleep(60)

@given(st.integers())
def test_hypothesis(x):
    pathlib.Path("{started}").touch()
    time.sleep(60)
'''


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("test", ["test_plain", "test_hypothesis"])
def test_ctrl_c_is_an_interruption_not_a_failure(tmp_path: pathlib.Path, test: str) -> None:
    """SIGINT mid-test: pytest's interruption (exit 2), no test reported failed, and no drift
    record or summary written (a partial file would read as a complete run)."""
    started = tmp_path / "started"
    (tmp_path / "test_slow.py").write_text(_SLOW_TESTS.format(started=started))
    drift_path, summary_path = tmp_path / "drift.json", tmp_path / "summary.md"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"test_slow.py::{test}",
         "--drift-json", str(drift_path), "--summary-md", str(summary_path)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # A shell that starts this run in the background (`cmd &`) hands SIGINT down ignored,
        # and a Python started with SIGINT ignored never raises KeyboardInterrupt: the child
        # gets the default disposition back, as a terminal's Ctrl-C would find it.
        preexec_fn=_default_sigint)
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the slow test never started"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out[-2000:]
    assert "KeyboardInterrupt" in out
    assert " failed" not in out and "FAILED" not in out, out[-2000:]
    assert "the run was interrupted; not written" in out
    assert not drift_path.exists() and not summary_path.exists()


@pytest.mark.parametrize(("args", "on"), [
    ((), False), (("--hypothesis-profile=ci",), True),
    (("--hypothesis-profile=ci", "--poison-memory=off"), False), (("--poison-memory=on",), True)])
def test_poisoned_memory_is_on_under_the_ci_profile_and_handed_back(
        run, args: tuple[str, ...], on: bool) -> None:
    """--poison-memory auto (the default) poisons under the ci profile only; on and off win;
    the session hands the deterministic-algorithm flags back when it ends."""
    import torch

    from suite import poison

    if poison.missing() is not None:
        pytest.skip(str(poison.missing()))  # torch < 2.1: nothing to poison with
    with poison.suspended():  # this process may be poisoned itself (the ci profile)
        before = (torch.are_deterministic_algorithms_enabled(), poison.active())
        result = run(*args)
        after = (torch.are_deterministic_algorithms_enabled(), poison.active())
    assert result.ret == 0, result.outlines[-5:]
    assert any(f"poisoned memory {'on' if on else 'off'}" in line for line in result.outlines)
    assert after == before


@pytest.mark.parametrize(("markexpr", "selects"), [
    ("bench", True), ("bench and not cuda", True), ("bench or hard", True),
    ("not bench", False), ("hard", False), ("", False), ("bench and", False)])
def test_which_marker_expressions_select_benchmarks(markexpr: str, selects: bool) -> None:
    assert plugin.selects_marker(markexpr, "bench") is selects


def test_a_benchmark_run_turns_parallel_workers_off(pytester: pytest.Pytester,
                                                    tmp_path: pathlib.Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With `-n 2` (the project's addopts say `-n auto`), `-m bench` still writes its JSON:
    pytest-benchmark switches itself off under pytest-xdist, so the plugin turns xdist off."""
    for key in [k for k in os.environ if k.startswith("PYTEST_XDIST_")]:
        monkeypatch.delenv(key)  # this test's own xdist worker: pytest-benchmark would read it
    pytester.makepyfile(test_timed="""
import pytest
@pytest.mark.bench
def test_timed(benchmark):
    benchmark(sum, range(10))
""")
    out = tmp_path / "bench.json"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "-m", "bench",
                                           f"--benchmark-json={out}")
    assert result.ret == 0, result.outlines[-20:]
    assert [b["name"] for b in json.loads(out.read_text())["benchmarks"]] == ["test_timed"]


_COUNTED = '''
import pytest
from hypothesis import given, settings, strategies as st

@pytest.mark.{tier}
@settings(max_examples=12, database=None)
@given(st.integers(0, 10**12))
def test_counted(x):
    with open({log!r}, "a") as f:
        f.write("example\\n")
'''


@pytest.mark.parametrize("tier", ["hard", "vmap"])
def test_a_plain_run_samples_the_hard_and_vmap_tiers(run, pytester: pytest.Pytester,
                                                     tmp_path: pathlib.Path, tier: str) -> None:
    """A plain `pytest` runs a sampled tier's test on a few examples; `-m TIER` and a `-k`
    that names the tier on all of its own."""
    log = tmp_path / "examples.log"
    pytester.makepyfile(test_counted=_COUNTED.format(tier=tier, log=str(log)))
    dev = ["--hypothesis-profile", "dev"]  # an earlier in-process run may have loaded another
    for args, most, least in (([*dev, "test_counted.py"], plugin.SAMPLED_MIN, 1),
                              ([*dev, "test_counted.py", "-m", tier], 12, 6),
                              ([*dev, "test_counted.py", "-k", f"{tier} or counted"], 12, 6)):
        log.unlink(missing_ok=True)
        result = run(*args)
        assert result.ret == 0, result.outlines[-20:]
        drawn = len(log.read_text().splitlines())
        assert least <= drawn <= most, (args, drawn)


_ALWAYS_FAILS = '''
import pytest
from hypothesis import given, settings, strategies as st

@pytest.mark.xfail({xfail}, strict=True, reason="a recorded defect")
@settings(max_examples=20, database=None)
@given(st.lists(st.integers(0, 10**6), min_size=5, max_size=5))
def test_always_fails(xs):
    with open({log!r}, "a") as f:
        f.write("example\\n")
    assert False
'''


@pytest.mark.parametrize(("xfail", "outcome"), [(True, "xfailed"), (False, "failed")],
                         ids=["strict-xfail", "plain-failure"])
def test_a_strict_expected_failure_is_not_shrunk(run, pytester: pytest.Pytester,
                                                 tmp_path: pathlib.Path, xfail: bool,
                                                 outcome: str) -> None:
    """A strict xfail stops at its first failing example (and Hypothesis's replay of it): the
    shrinking nobody reads is skipped. A failure that is not expected is still shrunk, so its
    report shows the smallest example."""
    log = tmp_path / "examples.log"
    pytester.makepyfile(test_fails=_ALWAYS_FAILS.format(xfail=xfail, log=str(log)))
    result = run("--hypothesis-profile", "dev", "test_fails.py")
    result.assert_outcomes(**{outcome: 1})
    calls = len(log.read_text().splitlines())
    if xfail:
        assert calls <= 2, calls  # the failing example, and Hypothesis's final replay of it
    else:
        assert calls > 5, calls  # shrinking five drawn integers towards 0 takes many calls
        assert any("xs=[0, 0, 0, 0, 0]" in line for line in result.outlines), result.outlines[-30:]
