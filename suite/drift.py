"""Numerics drift: the largest error each correctness test saw, relative to its tolerance.

Every comparison (``suite.compare.find_mismatch``, hence every ``assert_close``) reports its
*error ratio* while a recorder is active::

    ratio = max over elements of |actual - expected| / (atol + rtol * |expected|)

(0 where the two are identical, NaN matching NaN, or infinities of the same sign; inf where a
difference is not finite). A comparison passes exactly when ratio <= 1, so the ratio says how
much of the tolerance torch used. The recorder keeps, per pytest node id, the greatest ratio
over all the test's comparisons and examples, and which comparison produced it.

``pytest --drift-json PATH`` (the plugin) records a whole run; under pytest-xdist each worker
sends its part to the controller, which merges them (greatest ratio per test) and writes PATH
atomically. ``python -m suite report --drift OLD NEW`` then lists the tests whose error grew,
e.g. between two torch versions. Run both with the same Hypothesis profile (``ci`` is
derandomized, so both runs draw the same examples and the ratios are comparable one for one).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from suite.tolerances import Tolerance

FORMAT = "gradsuite-drift/1"
Entry = dict[str, Any]  # {"ratio": float, "what": str, "context": str, "comparisons": int}


class DriftError(Exception):
    """A drift record that cannot be read: the message is one line naming the fix."""


class Recorder:
    """Collects the greatest error ratio per test while the suite runs."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.entries: dict[str, Entry] = {}

    def observe(self, what: str, context: str, ratio: float) -> None:
        """Record one comparison of the running test (ignored outside a test)."""
        if self.current is None:
            return
        entry = self.entries.get(self.current)
        if entry is None:
            self.entries[self.current] = {"ratio": ratio, "what": what, "context": context,
                                          "comparisons": 1}
            return
        entry["comparisons"] += 1
        if ratio > entry["ratio"]:
            entry.update(ratio=ratio, what=what, context=context)


RECORDER: Recorder | None = None


def start() -> Recorder:
    """Start recording (the plugin calls this for ``--drift-json``)."""
    global RECORDER
    RECORDER = Recorder()
    return RECORDER


def stop() -> None:
    """Stop recording; comparisons are no longer observed."""
    global RECORDER
    RECORDER = None


@contextlib.contextmanager
def recording() -> Iterator[Recorder]:
    """A fresh recorder for the block, then whatever recorded before again: tests of the
    recorder run inside a session that may itself be recording (``--drift-json``)."""
    global RECORDER
    previous, RECORDER = RECORDER, Recorder()
    try:
        yield RECORDER
    finally:
        RECORDER = previous


def error_ratio(diff: Any, expected: Any, same: Any, tol: Tolerance, slack: Any = 0.0) -> float:
    """max |a - e| / (atol + slack + rtol |e|) over the elements that are not identical (see
    above); ``slack`` is the per-element conditioning allowance, where there is one."""
    if diff.size == 0:
        return 0.0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ratio = diff / (tol.atol + slack + tol.rtol * np.abs(expected))
    ratio = np.where(same, 0.0, np.where(np.isnan(ratio), np.inf, ratio))
    return float(np.max(ratio))


def observe(what: str, context: str, diff: Any, expected: Any, same: Any,
            tol: Tolerance, slack: Any = 0.0) -> None:
    """Called by ``suite.compare`` for every comparison; a no-op unless recording."""
    if RECORDER is not None and RECORDER.current is not None:
        RECORDER.observe(what, context, error_ratio(diff, expected, same, tol, slack))


def merge(parts: Iterable[Mapping[str, Entry]]) -> dict[str, Entry]:
    """Merge recorders' entries (e.g. from xdist workers): greatest ratio per test wins,
    comparison counts add up."""
    merged: dict[str, Entry] = {}
    for part in parts:
        for test, entry in part.items():
            old = merged.get(test)
            if old is None:
                merged[test] = dict(entry)
                continue
            count = old["comparisons"] + entry["comparisons"]
            if entry["ratio"] > old["ratio"]:
                merged[test] = dict(entry)
            merged[test]["comparisons"] = count
    return dict(sorted(merged.items()))


def metadata(**extra: Any) -> dict[str, Any]:
    """The builds a drift record was measured with."""
    import hypothesis
    import torch

    return {"torch_version": torch.__version__, "numpy_version": np.__version__,
            "hypothesis_version": hypothesis.__version__,
            "python_version": platform.python_version(), **extra}


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename, so a reader
    never sees a half-written file."""
    write_bytes_atomic(path, (json.dumps(data, indent=1, sort_keys=False) + "\n").encode())


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would surprise whoever reads the file
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(path: str | os.PathLike[str], entries: Mapping[str, Entry],
         meta: Mapping[str, Any]) -> None:
    """Write a drift record (format ``FORMAT``) atomically."""
    write_json_atomic(path, {"format": FORMAT, "metadata": dict(meta), "tests": dict(entries)})


@dataclass(frozen=True)
class DriftRecord:
    path: str
    metadata: dict[str, Any]
    tests: dict[str, Entry]


def read_json(path: str | os.PathLike[str], error: type[Exception], remedy: str) -> Any:
    """The parsed JSON file at ``path``, or ``error`` with one line that ends in ``remedy``
    (how to write the file again). Shared by every command that reads a result file."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise error(f"{path}: no such file ({remedy})") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a file ({remedy})") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a text file, so not JSON ({remedy})") from None
    except OSError as err:
        raise error(f"{path}: cannot read it ({err.strerror or err}); check that it is a "
                    f"readable file") from None
    except json.JSONDecodeError as err:
        raise error(f"{path}: not valid JSON (line {err.lineno}: {err.msg}); the run that "
                    f"wrote it may have been interrupted ({remedy})") from None


def load(path: str | os.PathLike[str]) -> DriftRecord:
    """Read a drift record, or raise DriftError with a one-line reason."""
    data = read_json(path, DriftError, f"write one with `pytest --drift-json {path}`")
    if not isinstance(data, dict) or data.get("format") != FORMAT \
            or not isinstance(data.get("tests"), dict):
        raise DriftError(f"{path}: not a gradsuite drift record (expected format {FORMAT!r}, "
                         f"written by `pytest --drift-json`)")
    for test, entry in data["tests"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("ratio"), int | float):
            raise DriftError(f"{path}: test {test!r} has no numeric 'ratio'")
    return DriftRecord(str(path), dict(data.get("metadata") or {}), data["tests"])


@dataclass(frozen=True)
class Growth:
    """One test whose error ratio grew from ``old`` to ``new``."""

    test: str
    what: str
    old: float
    new: float

    @property
    def factor(self) -> float:
        return math.inf if self.old == 0 else self.new / self.old


def grown(old: DriftRecord, new: DriftRecord, *, factor: float = 2.0,
          floor: float = 0.01) -> list[Growth]:
    """Tests in both records whose ratio grew by more than ``factor`` and now exceeds ``floor``
    (errors below 1% of the tolerance are rounding noise, not drift), worst growth first."""
    rows = []
    for test, entry in new.tests.items():
        before = old.tests.get(test)
        if before is None:
            continue
        r_old, r_new = float(before["ratio"]), float(entry["ratio"])
        if r_new > floor and r_new > factor * r_old:
            rows.append(Growth(test, str(entry.get("what", "")), r_old, r_new))
    return sorted(rows, key=lambda g: (-g.factor, -g.new))


def metadata_differences(old: DriftRecord, new: DriftRecord) -> list[str]:
    """One line per metadata field that differs (e.g. the torch versions being compared)."""
    keys = sorted(set(old.metadata) | set(new.metadata))
    return [f"{k}: {old.metadata.get(k)!r} -> {new.metadata.get(k)!r}" for k in keys
            if old.metadata.get(k) != new.metadata.get(k)]
