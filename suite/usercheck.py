"""``python -m suite check MODULE:ATTR --like NAME``: the battery on a callable, no test file.

The callable (a torch function, a ``torch.library`` custom op, or an optimizer class) is loaded
from the working folder, a built-in record's mathematics is taken with ``gradsuite.like``
(optionally with a NumPy reference pair given as ``--reference MODULE:ATTR``: ``ATTR`` and
``ATTR_vjp``), and pytest runs the battery on it; the exit status and the summary are pytest's.

The generated test file is kept under ``.gradsuite/check/`` (so the standalone reproducer of a
failure, which rebuilds the record from it, keeps working).
"""

from __future__ import annotations

import difflib
import importlib
import re
import sys
from pathlib import Path
from typing import Any

_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class CheckError(Exception):
    """Bad input to ``check``: one line naming the fix."""


def load(target: str, what: str = "MODULE:ATTR") -> Any:
    """The object ``target`` (``package.module:name``) names, importable from the working folder.

    Raises:
        CheckError: a malformed target, a module that does not import, a missing attribute.
    """
    if not _TARGET.match(target):
        raise CheckError(f"{target!r} is not {what} (e.g. examples.gelu:gelu)")
    module_name, attr = target.split(":")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise CheckError(f"cannot import {module_name!r} from the working folder: "
                         f"{type(error).__name__}: {error}") from None
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            names = [n for n in dir(value) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise CheckError(f"{module_name} has no attribute {attr!r}{hint}")
        value = getattr(value, part)
    return value


def test_file(target: str, like: str, reference: str | None) -> str:
    """The source of the test module that runs the battery on ``target``."""
    lines = ["import gradsuite as gs", "from suite.usercheck import load", "",
             "changes = {}"]
    lines.append(f"subject = load({target!r})")
    lines.append("if isinstance(subject, type):")
    lines.append("    changes['torch_cls'] = subject")
    lines.append("else:")
    lines.append("    changes['torch_fn'] = subject")
    if reference is not None:
        lines.append(f"changes['ref'] = load({reference!r}, 'MODULE:ATTR of a NumPy reference')")
        lines.append(f"changes['ref_vjp'] = load({reference + '_vjp'!r}, "
                     f"'MODULE:ATTR_vjp of its VJP')")
    name = re.sub(r"\W", "_", target.split(":")[1])
    lines += ["", f"TestCheck_{name} = gs.battery(gs.like({like!r}, **changes))", ""]
    return "\n".join(lines)


def run(target: str, like: str, reference: str | None, pytest_args: list[str]) -> int:
    """Validate the inputs (one line each), write the test file, run pytest on it."""
    import gradsuite as gs

    subject = load(target)
    try:
        base = gs.record(like)
    except gs.BatteryError as error:
        raise CheckError(str(error)) from None
    wants_class = isinstance(base, gs.OptimizerSpec | gs.ClosureOptimizerSpec)
    if wants_class and not isinstance(subject, type):
        raise CheckError(f"--like {like} is an optimizer record: {target} must be an optimizer "
                         f"class, not {type(subject).__name__}")
    if not wants_class and not callable(subject):
        raise CheckError(f"{target} is a {type(subject).__name__}, not callable: give a function "
                         f"or a torch.library custom op")
    if reference is not None:
        load(reference, "MODULE:ATTR of a NumPy reference")
        load(reference + "_vjp", "MODULE:ATTR_vjp of its VJP")
    folder = Path(".gradsuite") / "check"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"test_check_{re.sub(r'[^A-Za-z0-9_]', '_', target)}.py"
    path.write_text(test_file(target, like, reference))
    import pytest

    return int(pytest.main([str(path), "-p", "no:cacheprovider", "--rootdir", ".",
                            *pytest_args]))
