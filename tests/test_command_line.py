"""Bad command-line input gets a one-line error that names the fix, and a non-zero exit."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from suite import devices

REPO = pathlib.Path(__file__).resolve().parent.parent


def _pytest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "tests/test_catalog.py", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize(("args", "says"), [
    (("--dtype", "float16"), "unknown dtype 'float16'; use float64, float32"),
    (("--device", "tpu"), "unknown device 'tpu'; use one of: cpu, cuda, all"),
    (("--torch-threads", "0"), "--torch-threads needs a positive integer, got '0'"),
    (("--hypothesis-profile", "nightly"), "nightly"),
])
def test_bad_option_is_a_usage_error(args: tuple[str, ...], says: str) -> None:
    result = _pytest(*args)
    assert result.returncode != 0
    assert says in result.stderr, result.stderr


@pytest.mark.skipif(devices.cuda_available(), reason="needs a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_names_the_fix() -> None:
    result = _pytest("--device", "cuda")
    assert result.returncode == 4
    assert "run with --device cpu" in result.stderr, result.stderr
