"""The installed torch's version, for records whose reference must follow a convention that
torch changed between releases (listed in docs/versions.md).

References never import torch, so they take the convention as an argument; the catalogue picks
it here, once, when the records are built.
"""

from __future__ import annotations

import re

import torch


def parse(version: str) -> tuple[int, int, int]:
    """``"2.13.0+cpu"`` -> ``(2, 13, 0)``; pre-release and local suffixes are ignored.

    Raises:
        ValueError: naming the string, when it does not start with MAJOR.MINOR.
    """
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if not match:
        raise ValueError(f"cannot read a torch version from {version!r}; "
                         f"expected MAJOR.MINOR[.PATCH]")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


TORCH = parse(torch.__version__)


def torch_at_least(version: str) -> bool:
    """True when the installed torch is ``version`` or newer (``"2.4"``, ``"2.4.1"``)."""
    return TORCH >= parse(version)
