"""Kernel-selecting settings of a benchmark: an input maker's ``bench_variants``.

torch picks a kernel by dtype, options and memory layout: a strided, dilated or grouped
convolution, a channels-last tensor, a loss's reduction each take another path, and a path can
regress in one torch release while the others stay put. An input maker that has such settings
names them in a ``bench_variants`` attribute, ``{name: BenchVariant}``; ``suite.bench`` times
each one (torch only) beside the record's default setting. A maker without the attribute has
only its default setting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from suite.specs import Case

MEMORY_FORMATS: dict[str, tuple[int, torch.memory_format]] = {
    "channels_last": (4, torch.channels_last),
    "channels_last_3d": (5, torch.channels_last_3d),
}
"""Memory formats a variant may ask for: (dimensions of the tensors it applies to, format)."""

REDUCTIONS = ("none", "mean", "sum")


@dataclass(frozen=True)
class BenchVariant:
    """One setting of a benchmark besides the record's default: options merged into the sized
    case's, a reshaping of its arrays where those options need one, and a memory format for
    torch's tensors."""

    options: Mapping[str, Any] = field(default_factory=dict)
    """Merged into (and overriding) the sized case's options."""
    transform: Callable[[Case], Case] | None = None
    """Reshapes the sized case where the options need it (a grouped convolution's weight has
    in_channels / groups input channels); applied after the options are merged."""
    memory_format: str | None = None
    """A key of ``MEMORY_FORMATS``: torch receives every floating tensor of that many
    dimensions in that memory format (input and weight alike, as ``module.to(memory_format=
    ...)`` and a converted input do)."""

    def __post_init__(self) -> None:
        if self.memory_format is not None and self.memory_format not in MEMORY_FORMATS:
            raise ValueError(f"unknown memory format {self.memory_format!r}; one of "
                             f"{', '.join(MEMORY_FORMATS)}")

    def case(self, case: Case) -> Case:
        """The sized case in this setting."""
        out = dataclasses.replace(case, options={**case.options, **self.options})
        return self.transform(out) if self.transform is not None else out

    def layout(self, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """torch's tensors in this setting's memory format (leaves stay leaves, with their
        ``requires_grad``)."""
        if self.memory_format is None:
            return dict(tensors)
        ndim, fmt = MEMORY_FORMATS[self.memory_format]
        out = {}
        for name, t in tensors.items():
            if t.is_floating_point() and t.dim() == ndim:
                t = t.detach().contiguous(memory_format=fmt).requires_grad_(t.requires_grad)
            out[name] = t
        return out


def reductions(default: str) -> dict[str, BenchVariant]:
    """A loss's reductions other than its sized case's ``default``: ``reduction_none`` etc."""
    return {f"reduction_{r}": BenchVariant(options={"reduction": r})
            for r in REDUCTIONS if r != default}


def grouped(groups: int) -> Callable[[Case], Case]:
    """A convolution's sized case with ``groups`` groups: the weight keeps the first
    in_channels / groups input channels (each output channel sees one group)."""

    def transform(case: Case) -> Case:
        weight = case.arrays["weight"]
        per_group = case.arrays["input"].shape[-weight.ndim + 1] // groups
        arrays = {**case.arrays, "weight": weight[:, :per_group].copy()}
        return dataclasses.replace(case, arrays=arrays)

    return transform
