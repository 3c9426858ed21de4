"""The command that reproduces the current check, for failure messages.

pytest sets ``PYTEST_CURRENT_TEST`` to the running node id; the plugin records the options that
shaped the run (profile, device, dtype) with :func:`set_run_options`. Hypothesis keeps every
failing example in its database (``.hypothesis/``), so re-running the node id replays it; the
case description printed beside the command reproduces it without the database.
"""

from __future__ import annotations

import os
import shlex

_run_options: list[str] = []


def set_run_options(options: list[str]) -> None:
    """Remember the command-line options a reproducer must repeat (called by the plugin)."""
    _run_options[:] = options


def command() -> str:
    """``pytest "<node id>" <options>`` for the running test, or a placeholder outside pytest."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    node_id = current.rsplit(" (", 1)[0] if current else "<test node id>"
    return " ".join(["pytest", shlex.quote(node_id), *_run_options])
