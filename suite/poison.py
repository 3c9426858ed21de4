"""Poisoned memory: a kernel that returns memory it never wrote is caught by design, not luck.

A fresh process hands out zeroed pages and a test run hands out whatever the last test freed,
so a kernel that leaves some output (or gradient) elements unwritten gives the right answer
when the garbage happens to be right (a zero gradient left as zeroed memory) and a wild one
when it is not (bfloat16 ``conv1d``'s weight gradient -1.84e32 where it must be 0, issue 13).
torch offers the remedy: under ``torch.use_deterministic_algorithms(True)``,
``torch.utils.deterministic.fill_uninitialized_memory`` fills every new tensor of
``torch.empty``, ``empty_like``, ``empty_strided`` and ``resize_`` with NaN (integers with
their largest value) before the kernel writes it (torch 2.1 onward; the documentation of
``torch.use_deterministic_algorithms``). A comparison with the reference then fails at every
element never written, whatever the allocator held.

``--poison-memory`` (``GRADSUITE_POISON_MEMORY``): ``on``, ``off``, or ``auto`` (the default:
on under the ``ci`` profile where the installed torch has the flag). It turns deterministic
algorithms on with ``warn_only=True``: an op without a deterministic implementation warns and
runs as before, so nothing is skipped for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

CHOICES = ("auto", "on", "off")

_STATE: list[bool] = [False]  # whether this process poisons (set by the plugin)


def missing() -> str | None:
    """Why this torch cannot poison memory, or None."""
    module = getattr(torch.utils, "deterministic", None)
    if module is None or not hasattr(module, "fill_uninitialized_memory"):
        return (f"torch {torch.__version__} has no "
                f"torch.utils.deterministic.fill_uninitialized_memory (torch 2.1 onward)")
    return None


def wanted(choice: str, profile: str) -> bool:
    """Whether to poison under ``--poison-memory=choice`` and the Hypothesis ``profile``.

    Raises:
        ValueError: ``on`` where this torch cannot (the message names the fix).
    """
    if choice == "on":
        reason = missing()
        if reason:
            raise ValueError(f"--poison-memory on: {reason}; upgrade torch or use "
                             f"--poison-memory off")
        return True
    return choice == "auto" and profile == "ci" and missing() is None


def active() -> bool:
    """Whether new tensors are filled with NaN in this process now."""
    return _STATE[0]


def _flags() -> tuple[bool, bool, bool]:
    return (torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            bool(torch.utils.deterministic.fill_uninitialized_memory))  # type: ignore[attr-defined]


def _set(flags: tuple[bool, bool, bool]) -> None:
    deterministic, warn_only, fill = flags
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.utils.deterministic.fill_uninitialized_memory = fill  # type: ignore[attr-defined]


def enable() -> tuple[bool, bool, bool]:
    """Poison from now on; returns the flags to hand to :func:`restore`."""
    previous = _flags()
    _set((True, True, True))
    _STATE[0] = True
    return previous


def restore(previous: tuple[bool, bool, bool]) -> None:
    """Hand back the flags :func:`enable` replaced (an enclosing session's, when nested)."""
    _set(previous)
    _STATE[0] = previous[0] and previous[2]


@contextlib.contextmanager
def _flags_within(flags: tuple[bool, bool, bool]) -> Iterator[None]:
    """Deterministic algorithms, warn_only and the NaN fill set to ``flags`` within the block,
    and handed back after (with whether this process counts as poisoned)."""
    if missing() is not None:
        yield
        return
    previous, state = _flags(), _STATE[0]
    _set(flags)
    _STATE[0] = flags[0] and flags[2]
    try:
        yield
    finally:
        _set(previous)
        _STATE[0] = state


def poisoned(on: bool = True) -> contextlib.AbstractContextManager[None]:
    """Within the block, new tensors are NaN until written (``on``), or are not (``on=False``:
    the allocator's garbage, whatever the session's setting); deterministic algorithms stay on
    in both, so the same kernels run."""
    return _flags_within((True, True, on))


def suspended() -> contextlib.AbstractContextManager[None]:
    """Within the block, torch's defaults: no deterministic algorithms, nothing poisoned (an
    enclosing session's setting is handed back after)."""
    return _flags_within((False, False, False))


def litter(values: float = 1.0e30, sizes: tuple[int, ...] = (1, 7, 64, 1024, 65536)) -> None:
    """Leave freed memory holding ``values``: allocate buffers of ``sizes`` elements in every
    floating dtype, fill them and free them, so that a later allocation of a similar size is
    likely to start out holding a finite value far from any result (glibc's malloc hands a
    freed chunk back first) rather than the zeros of a fresh page."""
    buffers = [torch.full((n,), min(values, torch.finfo(dtype).max / 2), dtype=dtype)
               for n in sizes for dtype in (torch.float64, torch.float32, torch.float16,
                                            torch.bfloat16)]
    del buffers


HINT = ("poisoned memory is on (--poison-memory): new tensors start as NaN, so NaN where the "
        "reference is finite is an element torch's kernel never wrote")
