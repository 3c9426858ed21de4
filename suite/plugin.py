"""gradsuite's pytest plugin: options, markers, Hypothesis profiles, report header. Hooks only.

Loaded by the repository's ``conftest.py``. Every option lives in the ``gradsuite`` group.
"""

from __future__ import annotations

import argparse
import os
import platform
from typing import Any

import hypothesis
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

from suite import devices, drift, reproduce

DEVICE_OPTION = "--device"
DTYPE_OPTION = "--dtype"
THREADS_OPTION = "--torch-threads"
DRIFT_OPTION = "--drift-json"
PROFILES = ("dev", "ci", "thorough")
DEFAULT_PROFILE = "dev"

_COMMON: dict[str, Any] = {
    # torch's first call on a new shape can take tens of milliseconds; a deadline would flake.
    "deadline": None,
    # Cases are a few draws and a seed; slow examples are torch's cost, not Hypothesis's.
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("dev", max_examples=20, **_COMMON)
settings.register_profile("ci", max_examples=100, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("thorough", max_examples=1000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", DEFAULT_PROFILE))

# numpy's BLAS pool and torch's OpenMP pool stall each other when calls alternate (8.0 ms vs
# 0.71 ms per check on 2 cores, DESIGN.md): the references run single-threaded BLAS.
try:
    from threadpoolctl import threadpool_limits

    _BLAS_LIMIT: Any = threadpool_limits(1, user_api="blas")
except ImportError:  # pragma: no cover - threadpoolctl is a declared dependency
    _BLAS_LIMIT = None


def parse_device(value: str) -> tuple[str, ...]:
    """``cpu``, ``cuda`` or ``all`` -> the devices to run on."""
    if value == "all":
        return devices.DEVICES
    if value in devices.DEVICES:
        return (value,)
    raise argparse.ArgumentTypeError(
        f"unknown device {value!r}; use one of: {', '.join((*devices.DEVICES, 'all'))}")


def parse_dtype(value: str) -> tuple[str, ...]:
    """``float32``, ``float64``, a comma-separated list of them, or ``all``."""
    if value == "all":
        return tuple(devices.DTYPES)
    names = tuple(v.strip() for v in value.split(","))
    unknown = [n for n in names if n not in devices.DTYPES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown dtype {', '.join(map(repr, unknown))}; use {', '.join(devices.DTYPES)}, "
            f"a comma-separated list of them, or all")
    return names


def parse_threads(value: str) -> int:
    """A positive thread count for torch's intra-op pool."""
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"--torch-threads needs a positive integer, got {value!r}")
    return n


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradsuite", "gradsuite: checking torch against NumPy references")
    group.addoption(DEVICE_OPTION, metavar="DEVICE", type=parse_device, default="all",
                    help="Devices to check: cpu, cuda or all (CUDA checks skip with a reason "
                         "when no GPU is visible; asking for cuda alone is then an error). "
                         "Default: %(default)r")
    group.addoption(DTYPE_OPTION, metavar="DTYPE", type=parse_dtype, default="all",
                    help="Floating dtypes to check: float32, float64, a comma-separated list, "
                         "or all. Default: %(default)r")
    # The checks run many small ops: a second thread only adds synchronisation, and with
    # another busy process (or pytest-xdist workers) OpenMP's spinning made one MLP training
    # step take 86 ms instead of 0.5 ms on the 2-core machine.
    group.addoption(THREADS_OPTION, metavar="N", type=parse_threads, default="1",
                    help="Threads for torch's intra-op pool (torch.set_num_threads); recorded "
                         "with every benchmark. Default: %(default)r")
    group.addoption(DRIFT_OPTION, metavar="PATH", default=None,
                    help="Write each test's largest error relative to its tolerance to PATH "
                         "(JSON; merged across pytest-xdist workers), for `python -m suite "
                         "report --drift OLD NEW`. Default: %(default)r")


def _selected(config: pytest.Config, option: str, parse: Any) -> tuple[str, ...]:
    value = config.getoption(option)
    return parse(value) if isinstance(value, str) else tuple(value)


def _profile(config: pytest.Config) -> str:
    return str(config.getoption("hypothesis_profile", None)
               or os.environ.get("HYPOTHESIS_PROFILE", DEFAULT_PROFILE))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bench: a benchmark; deselected by default, run with "
                                       "`pytest -m bench`")
    config.addinivalue_line("markers", "distributed: starts gloo process groups (2 and 3 CPU "
                                       "processes on 127.0.0.1); `pytest -m distributed`")
    chosen = _selected(config, DEVICE_OPTION.lstrip("-"), parse_device)
    if chosen == ("cuda",) and not devices.cuda_available():
        raise pytest.UsageError(f"--device cuda: no CUDA here ({devices.cuda_missing_reason()}); "
                                f"run with --device cpu, or --device all to skip CUDA checks")
    torch.set_num_threads(config.getoption(THREADS_OPTION.lstrip("-").replace("-", "_")))
    if _profile(config) not in PROFILES:
        raise pytest.UsageError(f"unknown Hypothesis profile {_profile(config)!r}; use one of: "
                                f"{', '.join(PROFILES)}")
    options = [f"--hypothesis-profile={_profile(config)}"]
    for option, parse in ((DEVICE_OPTION, parse_device), (DTYPE_OPTION, parse_dtype)):
        value = _selected(config, option.lstrip("-"), parse)
        if value != parse("all"):
            options.append(f"{option}={','.join(value)}")
    reproduce.set_run_options(options)
    if config.getoption(DRIFT_OPTION.lstrip("-").replace("-", "_"), None):
        config.stash[_DRIFT_PARTS] = []
        config.stash[_DRIFT_RECORDER] = drift.start()
    # Keep every round's time in saved runs too (--benchmark-json always does): the
    # regression gate (python -m suite compare) tests the rounds, not one summary number.
    if hasattr(config.option, "benchmark_save_data"):
        config.option.benchmark_save_data = True


_DRIFT_PARTS = pytest.StashKey[list[dict[str, Any]]]()
_DRIFT_RECORDER = pytest.StashKey[drift.Recorder]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Attribute the comparisons made while a test runs to its node id (``--drift-json``)."""
    recorder = drift.RECORDER
    if recorder is not None:
        recorder.current = item.nodeid
    try:
        yield
    finally:
        if recorder is not None:
            recorder.current = None


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the drift record: an xdist worker hands its part to the controller, which (or a
    run without xdist) merges the parts and writes the file atomically."""
    config = session.config
    path = config.getoption(DRIFT_OPTION.lstrip("-").replace("-", "_"), None)
    # The recorder this session started (not the module global, which a test may swap).
    recorder = config.stash.get(_DRIFT_RECORDER, None)
    if not path or recorder is None:
        return
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["gradsuite_drift"] = recorder.entries
        return
    parts = [*config.stash.get(_DRIFT_PARTS, []), recorder.entries]
    drift.save(path, drift.merge(parts), drift.metadata(
        hypothesis_profile=_profile(config),
        devices=list(_selected(config, "device", parse_device)),
        dtypes=list(_selected(config, "dtype", parse_dtype))))


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
    from suite import bench

    machine_info["gradsuite"] = bench.machine_info()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test taking ``device`` or ``dtype`` over the selected ones."""
    config = metafunc.config
    if "device" in metafunc.fixturenames:
        params = []
        for device in _selected(config, DEVICE_OPTION.lstrip("-"), parse_device):
            marks = []
            if device == "cuda" and not devices.cuda_available():
                marks.append(pytest.mark.skip(
                    reason=f"CUDA checks skipped: {devices.cuda_missing_reason()}"))
            params.append(pytest.param(device, marks=marks, id=device))
        metafunc.parametrize("device", params)
    if "dtype" in metafunc.fixturenames:
        names = _selected(config, DTYPE_OPTION.lstrip("-"), parse_dtype)
        metafunc.parametrize("dtype", [devices.DTYPES[n] for n in names], ids=list(names))


def pytest_report_header(config: pytest.Config) -> list[str]:
    cuda = devices.device_name("cuda") if devices.cuda_available() else "none visible"
    blas = "1 thread (threadpoolctl)" if _BLAS_LIMIT is not None else "library default"
    return [
        f"gradsuite: torch {torch.__version__}, numpy {np.__version__}, hypothesis "
        f"{hypothesis.__version__}, python {platform.python_version()}",
        f"gradsuite: devices {','.join(_selected(config, 'device', parse_device))} "
        f"(CPU: {devices.cpu_model()}; CUDA: {cuda}); dtypes "
        f"{','.join(_selected(config, 'dtype', parse_dtype))}",
        f"gradsuite: Hypothesis profile {_profile(config)}; torch threads "
        f"{torch.get_num_threads()}; NumPy BLAS {blas}",
    ]
