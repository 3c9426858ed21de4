"""gradsuite's pytest plugin: options, markers, Hypothesis profiles, report header. Hooks only.

Installed as a pytest plugin (the ``pytest11`` entry point ``gradsuite``), so it is active in
any repository where gradsuite is installed. Every option lives in the ``gradsuite`` group and
has an environment-variable fallback (``suite.options``); every input is checked in
``pytest_configure``, before any test runs or any file is written.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from typing import Any

import hypothesis
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, settings

from suite import battery, bench, compiled, devices, drift, optimcheck, poison, reproduce, summary
from suite import options as opts

_COMMON: dict[str, Any] = {
    # torch's first call on a new shape can take tens of milliseconds; a deadline would flake.
    "deadline": None,
    # Cases are a few draws and a seed; slow examples are torch's cost, not Hypothesis's.
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
# quick: a smoke run (and what gradsuite's own tests of the harness use for the runs they
# start); dev: the default; ci: derandomized, what CI runs; thorough: before a release.
settings.register_profile("quick", max_examples=5, **_COMMON)
settings.register_profile("dev", max_examples=20, **_COMMON)
settings.register_profile("ci", max_examples=100, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("thorough", max_examples=1000, **_COMMON)
# An unknown $HYPOTHESIS_PROFILE is refused in pytest_configure with the fix; loading it here
# would crash while the plugin is imported.
if os.environ.get(opts.PROFILE_ENV, opts.DEFAULT_PROFILE) in opts.PROFILES:
    settings.load_profile(os.environ.get(opts.PROFILE_ENV, opts.DEFAULT_PROFILE))

# numpy's BLAS pool and torch's OpenMP pool stall each other when calls alternate (8.0 ms vs
# 0.71 ms per check on 2 cores): the references run single-threaded BLAS.
try:
    from threadpoolctl import threadpool_limits

    _BLAS_LIMIT: Any = threadpool_limits(1, user_api="blas")
except ImportError:  # pragma: no cover - threadpoolctl is a declared dependency
    _BLAS_LIMIT = None

# Markers of tiers too slow for a plain `pytest` (README: the default run and its cost): run by
# `-m` or any `-k` (the distributed tier's tests are named ddp/zero/2proc/3proc).
SLOW_TIERS = ("distributed",)
# Tiers a plain `pytest` runs sampled, a few examples a test (``sampled_examples``), so every run
# draws every record's hard inputs and batching rules within the speed budget; `-m hard` or a
# `-k` that names the tier (`-k hard`, `-k "vmap and relu"`) runs it in full.
SAMPLED_TIERS = ("hard", "vmap")
SAMPLED_MIN = 2
"""Examples a sampled test draws at least: Hypothesis's first example is its simplest (the
all-zero choice sequence), the second the first random one."""
_SETTINGS = pytest.StashKey[dict[str, Any]]()
_DRIFT_PARTS = pytest.StashKey[list[dict[str, Any]]]()
_DRIFT_RECORDER = pytest.StashKey[drift.Recorder]()
_SUMMARY = pytest.StashKey[summary.Summary]()
_OUTER = pytest.StashKey[tuple[Any, Any, Any, Any]]()
#: Why inductor's CPU tests are skipped here (no C++ toolchain), or None.
_NO_INDUCTOR = pytest.StashKey[str | None]()
#: The deterministic-algorithm flags to restore when this session poisoned memory.
_UNPOISON = pytest.StashKey[tuple[bool, bool, bool]]()
#: The tiers this run samples (``markers_sampled``).
_SAMPLED = pytest.StashKey[set[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradsuite", "gradsuite: checking torch against NumPy references")
    opts.add_to(group)


def chosen(config: pytest.Config, option: opts.Option) -> Any:
    """The validated value of one of the plugin's options (after ``pytest_configure``)."""
    return config.stash[_SETTINGS][option.dest]


# First, so that a bad profile is refused here, with the fix, before Hypothesis's own plugin
# tries to load it and fails with a traceback.
@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """A run that selects benchmarks (``-m bench``) runs in one process: pytest-benchmark
    switches itself off under pytest-xdist (parallel workers would time each other), so the
    project's ``-n auto`` would otherwise leave ``--benchmark-json`` unwritten."""
    if selects_marker(config.option.markexpr, "bench") and getattr(config.option, "dist", "no") \
            != "no":
        config.option.dist = "no"
        config.option.numprocesses = 0
        config.option.tx = []


def selects_marker(markexpr: str, marker: str) -> bool:
    """Whether ``-m markexpr`` selects tests marked ``marker`` (``-m compile``, ``-m "compile
    and ..."``; not ``-m "not compile"``); a malformed expression selects nothing here (pytest
    reports it itself)."""
    if marker not in markexpr:
        return False
    from _pytest.mark.expression import Expression

    def marked(name: str, /, **_: str | int | bool | None) -> bool:
        return name == marker

    try:
        return bool(Expression.compile(markexpr).evaluate(marked))
    except Exception:  # pytest reports a malformed -m itself, later
        return False


# tryfirst: the profile is refused here, in one line, before Hypothesis's own plugin loads it
# (which would fail with an internal error); pluggy otherwise calls plugins in reverse order of
# registration, which an unrelated hook added to this module has been seen to change.
@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bench: a benchmark; deselected by default, run with "
                                       "`pytest -m bench`")
    config.addinivalue_line("markers", "distributed: starts gloo process groups (2 and 3 CPU "
                                       "processes on 127.0.0.1); not in a plain `pytest`: "
                                       "`pytest -m distributed` or `-k ddp`")
    config.addinivalue_line("markers", "vmap: torch.func.vmap's batching rules against the "
                                       "per-example loop (suite/vmapcheck.py); not in a plain "
                                       "`pytest`: `pytest -m vmap` or `-k vmap`")
    config.addinivalue_line("markers", "hard: the hard tier: ill-conditioned inputs "
                                       "drawn on purpose (offsets, constant groups, ties, "
                                       "extremes, subnormals, vector-width sizes, long "
                                       "reductions, argument layouts, NaN/inf at every "
                                       "position); not in a plain `pytest`: `pytest -m hard` or "
                                       "a `-k` that names it (`-k hard`)")
    config.addinivalue_line("markers", "compile: runs torch.compile (a backend other than eager, "
                                       "`--backend`); `pytest -m compile` runs only those, under "
                                       "inductor and aot_eager unless --backend says otherwise")
    values = {o.dest: opts.value(config, o) for o in opts.OPTIONS}
    if _compile_wanted(config) and not _backend_given(config):
        values[opts.BACKEND.dest] = compiled.COMPILED_BACKENDS
    config.stash[_SETTINGS] = values
    config.stash[_SAMPLED] = markers_sampled(config.option.markexpr or "",
                                             config.option.keyword or "")
    # A session run inside another (pytester) must hand back what it replaces.
    config.stash[_OUTER] = (drift.RECORDER, reproduce.saved(), _ACTIVE_SUMMARY[0],
                            bench.FIXED_ROUNDS)
    if config.option.help:
        return  # `pytest --help` shows the options; it must not fail on the machine's devices
    opts.check_profile(config)
    _check_devices(values[opts.DEVICE.dest])
    config.stash[_NO_INDUCTOR] = _check_backends(values[opts.BACKEND.dest],
                                                 values[opts.DEVICE.dest])
    for option in (opts.DRIFT, opts.SUMMARY):
        if values[option.dest] is not None:
            values[option.dest] = opts.writable_file(option.flag, values[option.dest])
    values[opts.REPRO_DIR.dest] = opts.writable_dir(opts.REPRO_DIR.flag,
                                                    values[opts.REPRO_DIR.dest], config.rootpath)
    reproduce.set_directory(values[opts.REPRO_DIR.dest], config.rootpath)
    torch.set_num_threads(values[opts.THREADS.dest])
    bench.FIXED_ROUNDS = values[opts.BENCH_ROUNDS.dest]
    try:
        poisoned = poison.wanted(values[opts.POISON.dest], opts.profile(config))
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    if poisoned:
        config.stash[_UNPOISON] = poison.enable()
    run_options = [f"--hypothesis-profile={opts.profile(config)}"]
    if poisoned != poison.wanted("auto", opts.profile(config)):
        run_options.append(f"{opts.POISON.flag}={'on' if poisoned else 'off'}")
    for option in (opts.DEVICE, opts.DTYPE):
        if values[option.dest] != option.parse("all"):
            run_options.append(f"{option.flag}={','.join(values[option.dest])}")
    if values[opts.BACKEND.dest] != (compiled.EAGER,):
        run_options.append(f"{opts.BACKEND.flag}={','.join(values[opts.BACKEND.dest])}")
    reproduce.set_run_options(run_options)
    if values[opts.DRIFT.dest] or values[opts.SUMMARY.dest] or _github_summary():
        # The recorder feeds both the drift record and the summary's error ratios.
        config.stash[_DRIFT_PARTS] = []
        config.stash[_DRIFT_RECORDER] = drift.start()
        config.stash[_SUMMARY] = summary.Summary()
    # Keep every round's time in saved runs too (--benchmark-json always does): the
    # regression gate (python -m suite compare) tests the rounds, not one summary number.
    if hasattr(config.option, "benchmark_save_data"):
        config.option.benchmark_save_data = True


def _check_devices(chosen_devices: tuple[str, ...]) -> None:
    """A device named on purpose must be there; ``all`` skips CUDA with the reason instead."""
    everything = devices.everything()
    for device in chosen_devices:
        if device in everything and device == "cuda":
            continue  # "cuda" alone is checked below: it may come from "all"
        reason = devices.unavailable(device)
        if reason:
            raise pytest.UsageError(f"--device {device}: not available here ({reason}); run "
                                    f"with --device cpu, or --device all to skip what is missing")
    if chosen_devices == ("cuda",) and devices.unavailable("cuda"):
        raise pytest.UsageError(f"--device cuda: no CUDA here ({devices.cuda_missing_reason()}); "
                                f"run with --device cpu, or --device all to skip CUDA checks")


def _compile_wanted(config: pytest.Config) -> bool:
    """Whether ``-m`` selects tests marked ``compile`` (``-m compile``, ``-m "compile and
    ..."``; not ``-m "not compile"``)."""
    return selects_marker(getattr(config.option, "markexpr", "") or "", "compile")


def _backend_given(config: pytest.Config) -> bool:
    return config.getoption(opts.BACKEND.dest, None) is not None \
        or opts.BACKEND.env in os.environ


def _check_backends(backends: tuple[str, ...], chosen_devices: tuple[str, ...]) -> str | None:
    """A compiled backend this torch cannot run is refused with torch's reason. inductor on the
    CPU needs a C++ toolchain, checked now, not in the first compiled test: where it is missing
    the result is the one-line reason its CPU tests are skipped with (the other backends
    still run), else None."""
    wanted = [b for b in backends if b != compiled.EAGER]
    if not wanted:
        return None
    reason = compiled.dynamo_refusal()
    if reason:
        raise pytest.UsageError(f"--backend {','.join(wanted)}: torch.compile cannot run here "
                                f"({reason}); run with --backend eager")
    if "inductor" in wanted and "cpu" in chosen_devices:
        problem = compiled.toolchain_problem()
        if problem:
            return f"inductor on the CPU needs a C++ toolchain: {problem}"
    return None


def _github_summary() -> str | None:
    return os.environ.get("GITHUB_STEP_SUMMARY") or None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Attribute the comparisons made while a test runs to its node id (``--drift-json``)."""
    recorder = drift.RECORDER
    if recorder is not None:
        recorder.current = item.nodeid
    compiled.LEDGER.current = item.nodeid
    try:
        with _call_settings(item):
            yield
    finally:
        if recorder is not None:
            recorder.current = None
        compiled.LEDGER.current = None


@contextlib.contextmanager
def _call_settings(item: pytest.Item) -> Iterator[None]:
    """The Hypothesis settings of this call: at most ``_examples_cap(item)`` examples, and no
    shrinking in a strict expected failure (a recorded defect fails on its first failing
    example; shrinking it, which nobody reads, cost up to 9 s a test). The test function is
    shared by every parametrization, so its settings (which Hypothesis reads when the test is
    called, from the attribute its own pytest plugin reads too) are changed for the call and
    restored after it."""
    test = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
    current = getattr(test, "_hypothesis_internal_use_settings", None)
    if current is None:
        yield
        return
    changes: dict[str, Any] = {}
    cap = _examples_cap(item)
    if cap is not None and current.max_examples > cap:
        changes["max_examples"] = cap
    if _strictly_expected_to_fail(item) and Phase.shrink in current.phases:
        changes["phases"] = tuple(p for p in current.phases if p is not Phase.shrink)
    if not changes:
        yield
        return
    test._hypothesis_internal_use_settings = settings(current, **changes)  # type: ignore[union-attr]
    try:
        yield
    finally:
        test._hypothesis_internal_use_settings = current  # type: ignore[union-attr]


def _strictly_expected_to_fail(item: pytest.Item) -> bool:
    """A strict xfail marker that applies (its condition, where it has one, is true)."""
    for mark in item.iter_markers("xfail"):
        condition = mark.args[0] if mark.args else mark.kwargs.get("condition", True)
        strict = mark.kwargs.get("strict", item.config.getini("xfail_strict"))
        if strict and mark.kwargs.get("run", True) and condition is True:
            return True
    return False


def _examples_cap(item: pytest.Item) -> int | None:
    """The fewest examples ``item`` may draw, or None: ``compiled.COMPILED_EXAMPLES`` under a
    compiled backend (each example costs a compile of seconds, where an eager one costs
    milliseconds); ``sampled_examples()`` in a tier this run samples (``markers_sampled``)."""
    caps = []
    params = getattr(getattr(item, "callspec", None), "params", {})
    if params.get("backend", compiled.EAGER) != compiled.EAGER:
        caps.append(compiled.COMPILED_EXAMPLES)
    no_tiers: set[str] = set()
    sampled = item.config.stash.get(_SAMPLED, no_tiers)
    if sampled and any(item.get_closest_marker(tier) for tier in sampled):
        caps.append(sampled_examples())
    return min(caps) if caps else None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Label the test with the record, dtype and device it checks (for the summary; JUnit XML
    keeps them as properties)."""
    if _SUMMARY in item.config.stash:
        params = getattr(getattr(item, "callspec", None), "params", {})
        item.user_properties += list(summary.labels(params, item.nodeid.split("::")[0]).items())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    recorder = item.config.stash.get(_DRIFT_RECORDER, None)
    if call.when == "call" and recorder is not None and item.nodeid in recorder.entries:
        ratio = float(recorder.entries[item.nodeid]["ratio"])
        _add_property(item, report, summary.RATIO, ratio)
    if call.when == "call":
        _report_compiles(item, call, report)
    script = reproduce.WRITTEN.pop(item.nodeid, None)
    if script is not None and report.failed:
        # The failure's last line: a script that reproduces it without pytest.
        report.sections.append(("gradsuite",
                                f"Standalone reproducer: python {reproduce.shown(script)}"))


def _add_property(item: pytest.Item, report: Any, name: str, value: object) -> None:
    """A property of the call's report (what the summary reads) and of the item, whose
    teardown report is the one JUnit XML writes its properties from."""
    report.user_properties.append((name, value))
    item.user_properties.append((name, value))


def _report_compiles(item: pytest.Item, call: pytest.CallInfo[None], report: Any) -> None:
    """The test's compiles in its report (a section, and a property the summary counts); a
    compile failure's report is its one paragraph and Hypothesis's falsifying example, not
    dynamo's trace."""
    compiles = compiled.LEDGER.pop(item.nodeid)
    if compiles is not None:
        report.sections.append(("gradsuite compile", compiles.describe()))
        _add_property(item, report, summary.RECOMPILES, compiles.recompiles)
        if compiles.causes:
            _add_property(item, report, summary.RECOMPILE_CAUSES, compiles.why())
    if report.failed and call.excinfo is not None \
            and call.excinfo.errisinstance(compiled.CompileError):
        error = call.excinfo.value
        notes = [n for n in getattr(error, "__notes__", []) if n.strip()]
        report.longrepr = "\n".join([f"CompileError: {error}", *notes])


def _backend_refused(item: pytest.Item) -> bool:
    """A record that says it does not run under the item's backend (``OpSpec.backends``), or a
    compile-only test (marked ``compile``) collected for eager."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    backend = params.get("backend")
    if backend is None:
        return False
    if backend == compiled.EAGER:
        return item.get_closest_marker("compile") is not None
    item.add_marker(pytest.mark.compile)
    backward = getattr(item, "originalname", item.name) in compiled.BACKWARD_CHECKS
    return any(compiled.refusal(v, backend, backward) for v in params.values()
               if hasattr(v, "backends") and hasattr(v, "name"))


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Any:
    """A compile-only test (marked ``compile``, e.g. torch.compile(optimizer.step)) is not
    collected at all when ``--backend`` chose no compiled backend: the default run collects
    what it collected before the backend dimension existed. Nor is a test marked with a tier
    the run leaves out (``markers_left_out``)."""
    marks = getattr(obj, "pytestmark", ())
    if not callable(obj) or not marks:
        return None
    names = {getattr(m, "name", None) for m in (marks if isinstance(marks, list) else [marks])}
    config = collector.config
    if "compile" in names and set(chosen(config, opts.BACKEND)) <= {compiled.EAGER}:
        return []
    # Likewise a test function or class marked with a tier this run leaves out makes no items:
    # a plain `pytest` otherwise built every benchmark and hard-tier parametrization (15,000 of
    # 25,000 items, half of each worker's collection) only to deselect it. Tiers marked on a
    # module (`pytestmark`) are deselected after collection (pytest_collection_modifyitems).
    if names & markers_left_out(config.option.markexpr, config.option.keyword):
        return []
    return None


# Session-scoped: Hypothesis refuses function-scoped fixtures in @given tests.
@pytest.fixture(scope="session")
def backend() -> str:
    """The backend a backend-aware check runs under: ``eager`` unless ``--backend`` selects
    others, then a parameter with its own id (``[inductor-cpu-float32-gelu]``)."""
    return compiled.EAGER


@pytest.hookimpl(tryfirst=True)
def _left_out(config: pytest.Config) -> set[str]:
    """The dtypes, devices and backends (as test ids spell them) that this run's --dtype,
    --device and --backend leave out."""
    chosen = {*opts.value(config, opts.DTYPE), *opts.value(config, opts.DEVICE),
              *opts.value(config, opts.BACKEND)}
    every = {*devices.DTYPES, *devices.everything(), *compiled.BACKENDS, "cuda"}
    return every - chosen


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A battery's known failures become strict expected failures (a pattern that matches no
    parametrization of a collected test is an error); benchmarks are left out unless ``-m``
    asks for them (in any repository, not only where addopts says ``-m "not bench"``), and
    the slow tiers (``SLOW_TIERS``) unless ``-m`` or ``-k`` selects tests."""
    batteries: dict[type, set[str]] = {}
    for item in items:
        cls = getattr(item, "cls", None)
        patterns = getattr(cls, battery.KNOWN_FAILURES_ATTRIBUTE, None)
        if not patterns:
            continue
        matched = batteries.setdefault(cls, set())  # type: ignore[arg-type]
        for pattern, reason in patterns.items():
            if battery.matches(pattern, item.name):
                item.add_marker(pytest.mark.xfail(strict=True, reason=reason))
                matched.add(pattern)
    # A node id naming tests (``file::Class::test[id]``, as a failure's reproducer line gives)
    # collects only those: the other patterns of their battery are not stale then.
    # A pattern naming a dtype, device or backend the run leaves out (`--dtype float64` and a
    # float32 known failure) has nothing to match either.
    partial = any("::" in str(arg) for arg in config.args)
    left_out = _left_out(config)
    for cls, matched in ({} if partial else batteries).items():
        collected = {i.name.split("[")[0] for i in items if getattr(i, "cls", None) is cls}
        stale = [p for p in getattr(cls, battery.KNOWN_FAILURES_ATTRIBUTE)
                 if p not in matched and p.split("[")[0] in collected
                 and not left_out & set(p.partition("[")[2].rstrip("]").split("-"))]
        if stale:
            raise pytest.UsageError(f"known_failures pattern {stale[0]!r} matches no test of "
                                    f"its battery: fix the pattern or remove the entry")
    for item in items:
        # Float64 compiled optimizer steps that torch gets wrong on every shape: strict xfails
        # with the finding (suite/optimcheck.py, COMPILED_FLOAT64_FINDINGS).
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.name.startswith("test_compiled_optimizer_steps_match_reference[") \
                and hasattr(params.get("spec"), "torch_cls"):
            finding = optimcheck.compiled_float64_finding(
                params["spec"], params.get("implementation", ""),
                params.get("dtype", torch.float32), params.get("backend", compiled.EAGER))
            if finding:
                item.add_marker(pytest.mark.xfail(strict=True, raises=AssertionError,
                                                  reason=finding))
    no_inductor = config.stash.get(_NO_INDUCTOR, None)
    if no_inductor:
        for item in items:
            params = getattr(getattr(item, "callspec", None), "params", {})
            if params.get("backend") == "inductor" and str(params.get("device")) == "cpu":
                item.add_marker(pytest.mark.skip(reason=no_inductor))
    refused = [i for i in items if _backend_refused(i)]
    if refused:
        config.hook.pytest_deselected(items=refused)
        dropped_ids = {id(i) for i in refused}
        items[:] = [i for i in items if id(i) not in dropped_ids]
    # Benchmarks run only when -m asks for them; the slow tiers (multi-process groups, the hard
    # tier) only when -m or -k selects them (`pytest -k ddp`, `pytest -k hard`: the hard tier
    # only for a -k that names it), not in a plain `pytest`.
    left_out = markers_left_out(config.option.markexpr, config.option.keyword)
    if left_out:
        kept: list[pytest.Item] = []
        dropped: list[pytest.Item] = []
        for i in items:
            (dropped if any(i.get_closest_marker(m) for m in left_out) else kept).append(i)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept


def markers_left_out(markexpr: str, keyword: str) -> set[str]:
    """The markers whose tests a run with ``-m markexpr -k keyword`` leaves out: benchmarks
    unless -m is given; the slow tiers unless -m or a -k is given."""
    if markexpr:
        return set()
    return {"bench"} | {t for t in SLOW_TIERS if not keyword}


def markers_sampled(markexpr: str, keyword: str) -> set[str]:
    """The tiers a run with ``-m markexpr -k keyword`` draws only ``sampled_examples`` a test
    of: the sampled tiers, unless -m is given or the -k names the tier."""
    if markexpr:
        return set()
    return {t for t in SAMPLED_TIERS if t not in keyword}


def sampled_examples() -> int:
    """Examples a test of a sampled tier draws in a run that samples it: a twentieth of the
    profile's (2 quick and dev, 5 ci, 50 thorough), at least ``SAMPLED_MIN``, never more than
    the test's own count."""
    current = settings.default
    return max(SAMPLED_MIN, (current.max_examples if current is not None else 20) // 20)


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """Once per battery: the checks some of its records do not get, and why."""
    seen: dict[type, None] = {}
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is not None and hasattr(cls, battery.NOT_RUN_ATTRIBUTE):
            seen.setdefault(cls, None)
    lines = []
    backends = chosen(config, opts.BACKEND)
    for cls in seen:
        not_run = [(r, c, why) for r, c, why in getattr(cls, battery.NOT_RUN_ATTRIBUTE)
                   if not battery.is_backend_entry(c) or battery.backend_of(c) in backends]
        if not not_run:
            continue
        records = len(getattr(cls, "records", ()))
        if config.option.verbose > 0 or records <= 5:
            for record, check, reason in not_run:
                lines.append(f"gradsuite: {record}: no {check} ({reason})")
        else:
            checks = len({c for _, c, _ in not_run})
            lines.append(f"gradsuite: {len(not_run)} record/check pairs of {records} records "
                         f"do not apply ({checks} checks); pytest -v lists them")
    return lines


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Every report reaches the controller (pytest-xdist sends the workers' here)."""
    collected = _ACTIVE_SUMMARY[0]
    if collected is not None:
        collected.add(report)


# pytest_runtest_logreport receives no config: the session's summary is kept here.
_ACTIVE_SUMMARY: list[summary.Summary | None] = [None]


def pytest_sessionstart(session: pytest.Session) -> None:
    _ACTIVE_SUMMARY[0] = session.config.stash.get(_SUMMARY, None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the drift record and the summary: an xdist worker hands its drift part to the
    controller, which (or a run without xdist) merges the parts and writes the files atomically.
    An interrupted run writes neither (a partial record would read as a complete one)."""
    config = session.config
    # The recorder this session started (not the module global, which a test may swap).
    recorder = config.stash.get(_DRIFT_RECORDER, None)
    if recorder is None:
        return
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["gradsuite_drift"] = recorder.entries
        return
    drift_path = chosen(config, opts.DRIFT)
    summary_path = chosen(config, opts.SUMMARY)
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        written = [str(p) for p in (drift_path, summary_path) if p]
        if written:
            print(f"\ngradsuite: the run was interrupted; not written: {', '.join(written)}")
        return
    if drift_path:
        parts = [*config.stash.get(_DRIFT_PARTS, []), recorder.entries]
        drift.save(drift_path, drift.merge(parts), drift.metadata(
            hypothesis_profile=opts.profile(config),
            devices=list(chosen(config, opts.DEVICE)), dtypes=list(chosen(config, opts.DTYPE))))
    collected = config.stash.get(_SUMMARY, None)
    if collected is not None:
        text = collected.markdown(header=[f"torch {torch.__version__}, Hypothesis profile "
                                          f"{opts.profile(config)}"])
        if summary_path:
            drift.write_bytes_atomic(summary_path, text.encode())
        if github := _github_summary():
            with open(github, "a", encoding="utf-8") as f:
                f.write(text)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Give back the recorder, reproducer settings and summary of an enclosing session."""
    unpoison = config.stash.get(_UNPOISON, None)
    if unpoison is not None:
        poison.restore(unpoison)
    outer = config.stash.get(_OUTER, None)
    if outer is not None:
        drift.RECORDER, saved, _ACTIVE_SUMMARY[0], bench.FIXED_ROUNDS = outer
        reproduce.restore(saved)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist: a worker finished; keep its drift part for the controller's merge."""
    part = getattr(node, "workeroutput", {}).get("gradsuite_drift")
    if part is not None:
        node.config.stash.setdefault(_DRIFT_PARTS, []).append(part)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config,
                                         machine_info: dict[str, Any]) -> None:
    """Saved benchmark runs carry the builds and settings that change timings."""
    machine_info["gradsuite"] = bench.machine_info()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test taking ``device`` or ``dtype`` over the selected ones."""
    config = metafunc.config
    backends = chosen(config, opts.BACKEND)
    if "backend" in metafunc.fixturenames and backends != (compiled.EAGER,):
        # Session scope: a function-scoped parameter of a fixture's name fails Hypothesis's
        # function_scoped_fixture health check (and grouping tests by backend is no loss).
        metafunc.parametrize("backend", list(backends), ids=list(backends), scope="session")
    if "device" in metafunc.fixturenames:
        params = []
        for device in chosen(config, opts.DEVICE):
            reason = devices.unavailable(device)
            marks = [pytest.mark.skip(reason=f"{device} checks skipped: {reason}")] if reason \
                else []
            params.append(pytest.param(device, marks=marks, id=device))
        metafunc.parametrize("device", params)
    if "dtype" in metafunc.fixturenames:
        names = chosen(config, opts.DTYPE)
        metafunc.parametrize("dtype", [devices.DTYPES[n] for n in names], ids=list(names))


def pytest_report_header(config: pytest.Config) -> list[str]:
    chosen_devices = chosen(config, opts.DEVICE)
    named = ", ".join(f"{d}: {devices.device_name(d) if not devices.unavailable(d) else 'none'}"
                      for d in chosen_devices)
    blas = "1 thread (threadpoolctl)" if _BLAS_LIMIT is not None else "library default"
    backends = chosen(config, opts.BACKEND)
    lines = [] if backends == (compiled.EAGER,) else [
        f"gradsuite: backends {','.join(backends)} (torch.compile dynamic=True, fullgraph=True; "
        f"compiled tests marked `compile`)"]
    no_tiers: set[str] = set()
    tiers = config.stash.get(_SAMPLED, no_tiers)
    sampled = sorted(tiers)
    if sampled:
        lines.append(
            f"gradsuite: tiers {', '.join(sampled)} sampled ({sampled_examples()} examples a "
            f"test; `-m {sampled[0]}` or `-k {sampled[0]}` runs one in full)")
    no_inductor = config.stash.get(_NO_INDUCTOR, None)
    if no_inductor:
        lines.append(f"gradsuite: inductor's CPU tests skipped: {no_inductor}")
    return [
        f"gradsuite: torch {torch.__version__}, numpy {np.__version__}, hypothesis "
        f"{hypothesis.__version__}, python {platform.python_version()}",
        f"gradsuite: devices {named}; dtypes {','.join(chosen(config, opts.DTYPE))}",
        f"gradsuite: Hypothesis profile {opts.profile(config)}; torch threads "
        f"{torch.get_num_threads()}; NumPy BLAS {blas}; poisoned memory "
        f"{'on' if poison.active() else 'off'}",
        *lines,
    ]
