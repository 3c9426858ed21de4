"""Which devices and dtypes exist, how to name them, and how to wait for a device.

A device is any string ``torch.device`` accepts: ``cpu``, ``cuda``, ``cuda:1``, ``mps``,
``xpu``, or the name of a PrivateUse1 backend. ``all`` means the CPU, CUDA (whose checks skip
with the reason where no GPU is visible, so that a run says what it did not check) and every
other accelerator this torch build can reach.
"""

from __future__ import annotations

import functools

import torch

DEVICES: tuple[str, ...] = ("cpu", "cuda")
"""The devices ``all`` always names (CUDA's checks skip, with the reason, where it is absent)."""
DTYPES: dict[str, torch.dtype] = {"float64": torch.float64, "float32": torch.float32}
# Accelerators besides CUDA that ``all`` includes when this torch build can reach them.
_OTHER_ACCELERATORS = ("mps", "xpu")


def device_type(device: str) -> str:
    """``"cuda:1"`` -> ``"cuda"``: the backend a device string names."""
    return torch.device(device).type


def parse(device: str) -> str:
    """The canonical spelling of a device string, checked for syntax only (never availability).

    Raises:
        ValueError: naming the string and the spellings torch accepts.
    """
    try:
        torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"unknown device {device!r}; use cpu, cuda, cuda:N, mps, xpu, a "
                         f"PrivateUse1 backend's name, a comma-separated list of them, "
                         f"or all") from None
    return device


@functools.cache
def unavailable(device: str) -> str | None:
    """Why ``device`` cannot run here, in words a user can act on; None when it can."""
    kind = device_type(device)
    if kind == "cpu":
        return None
    if kind == "cuda":
        if torch.version.cuda is None and not torch.cuda.is_available():
            return f"torch {torch.__version__} is a CPU-only build"
        if not torch.cuda.is_available():
            return "torch.cuda.is_available() is False (no visible GPU)"
        index = torch.device(device).index
        if index is not None and index >= torch.cuda.device_count():
            return (f"{device} does not exist: {torch.cuda.device_count()} CUDA device(s) "
                    f"visible (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
        return None
    try:
        torch.empty(1, device=device)
    except Exception as error:  # each backend raises its own type
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"torch {torch.__version__} cannot allocate on {device}: {text}"
    return None


def everything() -> tuple[str, ...]:
    """What ``all`` means here: the CPU, CUDA (present or not) and every reachable accelerator."""
    others = tuple(d for d in _OTHER_ACCELERATORS if unavailable(d) is None)
    return (*DEVICES, *others)


def cuda_available() -> bool:
    """True when this torch build has CUDA and a device is visible."""
    return bool(torch.cuda.is_available())


def cuda_missing_reason() -> str:
    """Why CUDA checks are skipped here, in words a user can act on."""
    return unavailable("cuda") or "CUDA is available"


def device_name(device: str) -> str:
    """A human name for ``device``: the GPU model for CUDA, the CPU model otherwise."""
    if device_type(device) == "cuda" and unavailable(device) is None:
        return str(torch.cuda.get_device_name(torch.device(device)))
    if device_type(device) != "cpu":
        return device
    return cpu_model()


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo, or the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def synchronize(device: str) -> None:
    """Wait until all queued work on ``device`` is done (a no-op on the CPU)."""
    kind = device_type(device)
    if kind == "cpu":
        return
    backend = getattr(torch, kind, None)
    if backend is not None and hasattr(backend, "synchronize"):
        backend.synchronize(torch.device(device)) if kind == "cuda" else backend.synchronize()


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"``: the spelling used in test ids and options."""
    return str(dtype).removeprefix("torch.")
