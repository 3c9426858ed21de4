"""Which devices and dtypes exist, how to name them, and how to wait for a device."""

from __future__ import annotations

import torch

DEVICES: tuple[str, ...] = ("cpu", "cuda")
DTYPES: dict[str, torch.dtype] = {"float64": torch.float64, "float32": torch.float32}


def cuda_available() -> bool:
    """True when this torch build has CUDA and a device is visible."""
    return bool(torch.cuda.is_available())


def cuda_missing_reason() -> str:
    """Why CUDA checks are skipped here, in words a user can act on."""
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build"
    return "torch.cuda.is_available() is False (no visible GPU)"


def device_name(device: str) -> str:
    """A human name for ``device``: the GPU model for CUDA, the CPU model otherwise."""
    if device == "cuda" and cuda_available():
        return str(torch.cuda.get_device_name(0))
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
    if device == "cuda":
        torch.cuda.synchronize()


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"``: the spelling used in test ids and options."""
    return str(dtype).removeprefix("torch.")
