"""The pytest plugin's options: one table, each with its environment variable and parser.

Every option can also be set through its environment variable (a CI job sets
``GRADSUITE_DEVICE=cpu`` once instead of editing every command); the command line wins. A value
that cannot be used is refused before any test runs, with one line naming the fix: through
argparse's usage error where it came from the command line, through ``pytest.UsageError``
(exit 4) where it came from the environment or cannot be judged before torch is up (a device
that is not there, a file that cannot be written).

``Option.parse`` functions raise ``argparse.ArgumentTypeError`` naming the bad value; they never
touch torch devices or the file system, so ``pytest --help`` stays fast and never fails.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from suite import devices

PROFILES = ("quick", "dev", "ci", "thorough")
DEFAULT_PROFILE = "dev"
PROFILE_ENV = "HYPOTHESIS_PROFILE"


def parse_device(value: str) -> tuple[str, ...]:
    """``cpu``, ``cuda``, ``cuda:1``, ``mps``, ... a comma-separated list of them, or ``all``."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError("empty device list; use cpu, cuda, all, ...")
    chosen: list[str] = []
    for name in names:
        try:
            expanded = devices.everything() if name == "all" else (devices.parse(name),)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        chosen += [d for d in expanded if d not in chosen]
    return tuple(chosen)


def parse_dtype(value: str) -> tuple[str, ...]:
    """``float32``, ``float64``, a comma-separated list of them, or ``all``."""
    if value == "all":
        return tuple(devices.DTYPES)
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [n for n in names if n not in devices.DTYPES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown dtype {', '.join(map(repr, unknown or [value]))}; use "
            f"{', '.join(devices.DTYPES)}, a comma-separated list of them, or all (half "
            f"precision runs in the precision-ladder tests of every record that declares it)")
    return names


def parse_backend(value: str) -> tuple[str, ...]:
    """``eager``, ``inductor``, ``aot_eager``, a comma-separated list of them, or ``all``."""
    from suite import compiled

    if value.strip() == "all":
        return compiled.BACKENDS
    names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [n for n in names if n not in compiled.BACKENDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown backend {', '.join(map(repr, unknown or [value]))}; use "
            f"{', '.join(compiled.BACKENDS)}, a comma-separated list of them, or all (eager: "
            f"no torch.compile)")
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


def parse_rounds(value: str) -> int:
    """A round count of at least the gate's minimum (suite.gate.MIN_ROUNDS)."""
    from suite import gate

    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < gate.MIN_ROUNDS:
        raise argparse.ArgumentTypeError(f"--bench-rounds needs a whole number of at least "
                                         f"{gate.MIN_ROUNDS} (the gate's rank test), got "
                                         f"{value!r}")
    return n


def parse_poison(value: str) -> str:
    """``on``, ``off`` or ``auto``."""
    from suite import poison

    choice = value.strip().lower()
    if choice not in poison.CHOICES:
        raise argparse.ArgumentTypeError(f"--poison-memory {value!r}: use on, off or auto")
    return choice


def parse_path(value: str) -> str:
    """A file to write: syntax only here; ``writable_file`` checks the folder at start-up."""
    if not value.strip():
        raise argparse.ArgumentTypeError("empty file name")
    return value


@dataclass(frozen=True)
class Option:
    """One command-line option of the plugin and its environment-variable fallback."""

    flag: str  # "--device"
    env: str  # "GRADSUITE_DEVICE"
    parse: Callable[[str], Any]
    default: str | None
    metavar: str
    help: str

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


DEVICE = Option(
    "--device", "GRADSUITE_DEVICE", parse_device, "all", "DEVICE",
    "Devices to check: cpu, cuda, cuda:N, mps, xpu, a PrivateUse1 backend, a comma-separated "
    "list of them, or all (CUDA checks skip with the reason when no GPU is visible; naming a "
    "device that is not there is an error).")
DTYPE = Option(
    "--dtype", "GRADSUITE_DTYPE", parse_dtype, "all", "DTYPE",
    "Floating dtypes to check: float32, float64, a comma-separated list, or all.")
BACKEND = Option(
    "--backend", "GRADSUITE_BACKEND", parse_backend, "eager", "BACKEND",
    "Where the forward, gradient and precision-ladder checks run (and the optimizer and "
    "training-loop checks that have compiled variants): eager (torch_fn itself), inductor, "
    "aot_eager (torch.compile with that backend), a comma-separated list, or all. Compiled "
    "tests are marked `compile`; `-m compile` alone selects inductor and aot_eager. inductor on "
    "the CPU needs a C++ compiler and Python's headers, checked before any test runs: where "
    "they are missing, inductor's CPU tests are skipped with a one-line reason.")
# The checks run many small ops: a second thread only adds synchronisation, and with another
# busy process (or pytest-xdist workers) OpenMP's spinning made one MLP training step take
# 86 ms instead of 0.5 ms on the 2-core machine.
THREADS = Option(
    "--torch-threads", "GRADSUITE_TORCH_THREADS", parse_threads, "1", "N",
    "Threads for torch's intra-op pool (torch.set_num_threads); recorded with every benchmark.")
BENCH_ROUNDS = Option(
    "--bench-rounds", "GRADSUITE_BENCH_ROUNDS", parse_rounds, None, "N",
    "Time each benchmark for exactly N rounds (at least 5) instead of as many as fit 0.4 s "
    "(10 to 40): a cheaper run for sampling many processes (python -m suite measure), where "
    "the process is the unit; recorded in machine_info, and compare warns when runs differ.")
DRIFT = Option(
    "--drift-json", "GRADSUITE_DRIFT_JSON", parse_path, None, "PATH",
    "Write each test's largest error relative to its tolerance to PATH (JSON; merged across "
    "pytest-xdist workers), for `python -m suite report --drift OLD NEW`. PATH's folder must "
    "exist.")
SUMMARY = Option(
    "--summary-md", "GRADSUITE_SUMMARY_MD", parse_path, None, "PATH",
    "Write a markdown summary of the run (record x dtype x device: passed, failed, skipped with "
    "the reason, largest error relative to tolerance) to PATH; it is also appended to "
    "$GITHUB_STEP_SUMMARY when that is set. PATH's folder must exist.")

POISON = Option(
    "--poison-memory", "GRADSUITE_POISON_MEMORY", parse_poison, "auto", "on|off|auto",
    "Fill every new tensor with NaN until a kernel writes it (torch.utils.deterministic."
    "fill_uninitialized_memory under torch.use_deterministic_algorithms(True, warn_only=True); "
    "torch 2.1 onward), so an element a kernel never writes fails its comparison whatever the "
    "allocator held. auto: on under the ci Hypothesis profile where torch has it.")
REPRO_DIR = Option(
    "--repro-dir", "GRADSUITE_REPRO_DIR", parse_path, ".gradsuite/reproducers", "DIR",
    "Where a failing check writes its standalone reproducer script (relative to the rootdir; "
    "'none' writes none).")

OPTIONS: tuple[Option, ...] = (DEVICE, DTYPE, BACKEND, THREADS, BENCH_ROUNDS, POISON, DRIFT,
                               SUMMARY, REPRO_DIR)


def add_to(group: Any) -> None:
    """Register every option in the plugin's pytest option group, each with its variable."""
    for option in OPTIONS:
        default = f"Default: {option.default!r}" if option.default is not None else \
            "Default: not written"
        group.addoption(option.flag, metavar=option.metavar, type=option.parse, default=None,
                        dest=option.dest,
                        help=f"{option.help} Environment: {option.env}. {default}.")


def value(config: pytest.Config, option: Option) -> Any:
    """The option's parsed value: the command line's, else the environment's, else the default.

    Raises:
        pytest.UsageError: naming the variable, when the environment's value is bad.
    """
    given = config.getoption(option.dest, None)
    if given is not None:
        return given
    raw = os.environ.get(option.env)
    if raw is not None:
        try:
            return option.parse(raw)
        except argparse.ArgumentTypeError as error:
            raise pytest.UsageError(f"{option.env}={raw!r}: {error} (unset it, or set "
                                    f"{option.flag} on the command line)") from None
    return None if option.default is None else option.parse(option.default)


def profile(config: pytest.Config) -> str:
    """The Hypothesis profile in force: ``--hypothesis-profile``, else $HYPOTHESIS_PROFILE."""
    return str(config.getoption("hypothesis_profile", None)
               or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE)


def check_profile(config: pytest.Config) -> None:
    """A profile that is not one of ours is refused, whichever way it was given."""
    chosen = profile(config)
    if chosen not in PROFILES:
        source = "--hypothesis-profile" if config.getoption("hypothesis_profile", None) \
            else PROFILE_ENV
        raise pytest.UsageError(f"unknown Hypothesis profile {chosen!r} (from {source}); use one "
                                f"of: {', '.join(PROFILES)}")


def writable_dir(flag: str, path: str, rootdir: Path) -> Path | None:
    """The folder ``path`` (relative to ``rootdir``), or None for ``none``. It need not exist
    yet, but the nearest existing folder on the way must take new files.

    Raises:
        pytest.UsageError: one line naming the fix.
    """
    if path.strip().lower() == "none":
        return None
    target = (rootdir / Path(path).expanduser()).resolve()
    if target.exists() and not target.is_dir():
        raise pytest.UsageError(f"{flag} {path}: is a file; give a folder")
    existing = target
    while not existing.exists():
        existing = existing.parent
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".gradsuite.", suffix=".probe"):
            pass
    except OSError as error:
        raise pytest.UsageError(f"{flag} {path}: cannot write in {existing} "
                                f"({error.strerror}); choose a writable folder, or 'none'") \
            from None
    return target


def writable_file(flag: str, path: str) -> Path:
    """``path`` resolved, once its folder is shown to exist and to take a new file.

    The folder is not created: a typo in a path should fail now, not create a tree elsewhere.

    Raises:
        pytest.UsageError: one line naming the fix.
    """
    target = Path(path).expanduser().resolve()
    folder = target.parent
    if target.is_dir():
        raise pytest.UsageError(f"{flag} {path}: is a folder; give a file name inside it")
    if not folder.is_dir():
        raise pytest.UsageError(f"{flag} {path}: folder {folder} does not exist; create it "
                                f"(mkdir -p {folder}) or choose another path")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{target.name}.", suffix=".probe"):
            pass
    except OSError as error:
        raise pytest.UsageError(f"{flag} {path}: cannot write in {folder} ({error.strerror}); "
                                f"choose a writable folder") from None
    return target
