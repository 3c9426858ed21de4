"""Reproducing a failure: the pytest command, and a standalone script.

``command()`` is the pytest command line of the running test (pytest sets
``PYTEST_CURRENT_TEST``; the plugin records the options that shaped the run), which replays the
failing example from Hypothesis's database.

``on_failure`` goes further: when a check fails, it writes a self-contained Python script
holding the exact arrays of the (shrunk) failing case, inline where small and in a ``.npz``
beside the script where large, the record, and the check. It runs with plain ``python`` — no
pytest, no Hypothesis, no example database; torch, numpy and gradsuite installed — prints the
mismatch and exits 1, and exits 0 once the check passes (say, after torch is fixed): short
enough to paste into a bug report. The plugin adds ``Standalone reproducer: python <path>`` as
the last line of the failure. Under Hypothesis the script is written on the final replay of
the shrunk example only.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

_run_options: list[str] = []
# Where scripts go (the plugin sets it from --repro-dir) and the pytest rootdir.
_settings: dict[str, Path | None] = {"dir": None, "rootdir": None, "script": None}
# node id -> the script written for its latest failure (read by the plugin's report hook)
WRITTEN: dict[str, Path] = {}
# Arrays up to this many elements are written inline; larger ones go to the .npz.
INLINE_ELEMENTS = 64


def set_run_options(options: list[str]) -> None:
    """Remember the command-line options a reproducer must repeat (called by the plugin)."""
    _run_options[:] = options


def set_directory(directory: Path | None, rootdir: Path | None) -> None:
    """Where standalone scripts are written (None: not written), and pytest's rootdir."""
    _settings["dir"], _settings["rootdir"] = directory, rootdir


def node_id() -> str:
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    return current.rsplit(" (", 1)[0] if current else ""


def command() -> str:
    """``pytest "<node id>" <options>`` for the running test; in a standalone reproducer,
    ``python <script>``."""
    if _settings.get("script") is not None:
        return f"python {shlex.quote(str(_settings['script']))}"
    return " ".join(["pytest", shlex.quote(node_id() or "<test node id>"), *_run_options])


def saved() -> tuple[dict[str, Path | None], list[str]]:
    """The settings, to hand back with :func:`restore` (a session inside another)."""
    return dict(_settings), list(_run_options)


def restore(state: tuple[dict[str, Path | None], list[str]]) -> None:
    _settings.update(state[0])
    _run_options[:] = state[1]


def set_script(path: Path | None) -> None:
    """Inside a standalone reproducer: messages name the script, not a pytest node."""
    _settings["script"] = path


def _final_run() -> bool:
    """True outside Hypothesis, and on Hypothesis's final replay of the shrunk example."""
    try:
        from hypothesis.control import current_build_context

        return bool(current_build_context().is_final)
    except Exception:  # no build context: not inside a Hypothesis test
        return True


@contextlib.contextmanager
def on_failure(record: Any, check: str, case: Any, **params: Any) -> Iterator[None]:
    """Write a standalone script when the block raises AssertionError (then re-raise)."""
    try:
        yield
    except AssertionError as error:
        directory, test = _settings["dir"], node_id()
        if directory is not None and test and _final_run():
            path = write(directory, test, record, check, case, params, str(error))
            if path is not None:
                WRITTEN[test] = path
        raise


# --- rendering values as Python source ------------------------------------------------------


class _Source:
    """Renders values as source, moving large arrays into ``arrays`` (saved as .npz)."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def value(self, v: Any, key: str) -> str:
        if isinstance(v, np.ndarray):
            return self.array(v, key)
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k!r}: {self.value(x, f'{key}.{k}')}"
                                   for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(self.value(x, f"{key}.{i}") for i, x in enumerate(v)) + "]"
        if isinstance(v, tuple) and not hasattr(v, "_fields"):
            inner = ", ".join(self.value(x, f"{key}.{i}") for i, x in enumerate(v))
            return f"({inner},)" if len(v) == 1 else f"({inner})"
        return _literal(v)

    def array(self, a: np.ndarray, key: str) -> str:
        if a.size > INLINE_ELEMENTS or a.dtype.kind not in "fiub":
            self.arrays[key] = a
            return f"stored[{key!r}]"
        kind = {"f": "np.float64", "i": "np.int64", "u": "np.int64", "b": "bool"}[a.dtype.kind]
        flat = ", ".join(_literal(x) for x in a.ravel().tolist())
        return f"np.array([{flat}], dtype={kind}).reshape({tuple(a.shape)!r})"


def _literal(v: Any) -> str:
    if isinstance(v, float):
        if np.isnan(v):
            return "nan"
        if np.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if type(v).__module__ == "torch" and type(v).__name__ == "dtype":
        return str(v)  # torch.float32
    if isinstance(v, np.generic):
        return repr(v.item())
    return repr(v)


def _locate(record: Any, test: str) -> str:
    """The expression that rebuilds ``record`` in the script: the catalogue's record by name,
    or the record of the battery class the failing test belongs to."""
    from suite import catalog

    try:
        if catalog.record(record.name) is record:
            return f"gs.record({record.name!r})"
    except KeyError:
        pass
    parts = test.split("::")
    rootdir = _settings["rootdir"] or Path.cwd()
    if len(parts) >= 3:
        path = (rootdir / parts[0]).resolve()
        return f"gs.load_record({str(path)!r}, {parts[1]!r}, {record.name!r})"
    raise LookupError(f"{record.name} is neither a catalogue record nor the record of a "
                      f"gradsuite.battery class")


def _what(record: Any) -> list[str]:
    lines = []
    for label, attr in (("torch", "torch_fn"), ("torch", "torch_cls"), ("reference", "ref"),
                        ("reference", "ref_vjp"), ("reference", "ref_step")):
        fn = getattr(record, attr, None)
        if fn is not None:
            module, name = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
            where = f"{module}.{name}" if module and name else repr(fn)
            lines.append(f"# {label + ':':<11}{where}")
    return lines


def _case_source(case: Any, src: _Source) -> str:
    from suite.specs import Case, OptimizerRun

    if isinstance(case, Case):
        arrays = ",\n".join(f"        {k!r}: {src.array(a, k)}" for k, a in case.arrays.items())
        return (f"gs.Case(\n    arrays={{\n{arrays},\n    }},\n"
                f"    differentiable={tuple(case.differentiable)!r},\n"
                f"    options={src.value(dict(case.options), 'options')},\n"
                f"    seed={case.seed!r},\n)")
    if isinstance(case, OptimizerRun):
        fields = ",\n".join(f"    {f}={src.value(getattr(case, f), f)}" for f in case._fields)
        return f"gs.OptimizerRun(\n{fields},\n)"
    if isinstance(case, dict):  # a training loop's run: one entry a line
        entries = "".join(f"    {k!r}: {src.value(v, k)},\n" for k, v in case.items())
        return "{\n" + entries + "}"
    return src.value(case, "case")


def _safe_name(test: str) -> str:
    name = re.sub(r"[^\w.\-]+", "-", test.replace("::", ".").replace("/", "."))
    return name.strip("-.")[:180] or "reproducer"


def write(directory: Path, test: str, record: Any, check: str, case: Any,
          params: Mapping[str, Any], message: str) -> Path | None:
    """Write the script (and its .npz, if any) for a failing check; None where the record
    cannot be rebuilt from a script."""
    import platform

    import torch

    import suite
    from suite import drift

    try:
        rebuild = _locate(record, test)
    except LookupError:
        return None
    src = _Source()
    case_text = _case_source(case, src)
    param_text = "".join(f", {k}={src.value(v, k)}" for k, v in params.items())
    path = directory / f"{_safe_name(test)}.py"
    store = path.with_suffix(".npz")
    first = message.strip().splitlines()[0] if message.strip() else "a check failed"
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        '"""gradsuite standalone reproducer.',
        "",
        f"Failed: {first}",
        f"Test: {test}",
        f"Written {when} under torch {torch.__version__}, numpy {np.__version__}, gradsuite "
        f"{suite.__version__}, Python {platform.python_version()}.",
        "",
        "Run it with plain python: it prints the mismatch and exits 1 while the check fails,",
        "and exits 0 once it passes. It needs torch, numpy and gradsuite (not pytest).",
        '"""',
        "import sys",
        "",
        "import numpy as np",
        "import torch  # noqa: F401  (dtypes below)",
        "",
        "import gradsuite as gs",
        "",
        'nan, inf = float("nan"), float("inf")',
    ]
    if src.arrays:
        lines.append("stored = np.load(__file__[:-3] + '.npz')  # the arrays too large to inline")
    lines += ["", f"record = {rebuild}", *_what(record), f"case = {case_text}",
              f"sys.exit(gs.reproduce(record, {check!r}, case{param_text}))", ""]
    directory.mkdir(parents=True, exist_ok=True)
    if src.arrays:
        import io

        buffer = io.BytesIO()
        save: Any = np.savez  # numpy's stub reads **arrays as its keyword arguments
        save(buffer, **src.arrays)
        drift.write_bytes_atomic(store, buffer.getvalue())
    else:
        store.unlink(missing_ok=True)
    drift.write_bytes_atomic(path, "\n".join(lines).encode())
    return path


def shown(path: Path) -> str:
    """The path as the failure shows it: relative to the working folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
