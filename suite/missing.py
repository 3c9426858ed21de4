"""Stand-ins for what this torch build lacks (an op newer than the torch under test).

A record whose torch function this build lacks keeps its place in the catalogue, so its
reference is still checked against finite differences, and every check of torch skips, saying
why. The stand-in carries its reason in ``MISSING`` so a harness that would compile or wrap the
function (``suite.compiled``) skips before tracing it: dynamo cannot trace ``pytest.skip``
("skip function Skipped"), which would read as a compiler failure of an op that is not there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

#: The attribute of a stand-in that holds why it stands in.
MISSING = "gradsuite_missing"


def stand_in(what: str, name: str, since: str | None = None) -> Callable[..., Any]:
    """A function named ``name`` whose every call skips: torch has no ``what`` (added in torch
    ``since``, where known)."""
    reason = f"torch {torch.__version__} has no {what}"
    if since is not None:
        reason += f" (added in torch {since})"

    def unavailable(*_: object, **__: object) -> Any:
        pytest.skip(reason)

    unavailable.__name__ = unavailable.__qualname__ = name
    setattr(unavailable, MISSING, reason)
    return unavailable


def missing(fn: object) -> str | None:
    """Why ``fn`` is a stand-in (``stand_in``), or None for a real function."""
    reason = getattr(fn, MISSING, None)
    return reason if isinstance(reason, str) else None


def functional(name: str, since: str | None = None) -> Callable[..., Any]:
    """``torch.nn.functional.<name>``, or where this torch lacks it a stand-in (``stand_in``)."""
    found = getattr(torch.nn.functional, name, None)
    if found is not None:
        return found
    return stand_in(f"torch.nn.functional.{name}", f"{name} (missing)", since)
