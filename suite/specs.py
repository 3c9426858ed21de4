"""The record types: one record per building block drives tests, benchmarks and reports.

A record says everything the harness needs to know about one block: how to call torch, which
reference computes the same thing, how to draw its inputs, and any visible exception to the
default tolerances. A test body never branches on a record's name; a check that needs to know
something about an op reads a field here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from hypothesis import strategies as st
from numpy.typing import NDArray

from suite import tolerances as tols

Array = NDArray[Any]


@dataclass(frozen=True)
class Case:
    """One concrete input of an op: the arrays, which of them are differentiated, the options.

    Arrays are float64 (or int64 for class indices) NumPy arrays keyed by torch's argument names,
    so ``torch_fn(**tensors, **options)`` and ``ref(**arrays, **options)`` both work. ``seed``
    seeds every further random draw of a check (cotangents, finite-difference directions), so a
    case alone reproduces a check.
    """

    arrays: Mapping[str, Array]
    differentiable: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0

    def rounded_to(self, dtype: torch.dtype) -> Case:
        """The same case with floating arrays rounded to ``dtype`` and widened back to float64.

        torch receives ``dtype`` values; the reference must see exactly those values, or the
        comparison would count input rounding as torch's error.
        """
        np_dtype = torch.empty((), dtype=dtype).numpy().dtype
        arrays = {
            k: a.astype(np_dtype).astype(np.float64) if a.dtype.kind == "f" else a
            for k, a in self.arrays.items()
        }
        return Case(arrays, self.differentiable, self.options, self.seed)

    def scaled(self, factor: float) -> Case:
        """The same case with every differentiable array multiplied by ``factor``."""
        arrays = {k: a * factor if k in self.differentiable else a for k, a in self.arrays.items()}
        return Case(arrays, self.differentiable, self.options, self.seed)

    def __repr__(self) -> str:
        # Hypothesis prints each draw's repr on failure: summarise, never dump the arrays.
        shapes = ", ".join(f"{k}{tuple(a.shape)}" for k, a in self.arrays.items())
        return f"Case({shapes}, options={dict(self.options)!r}, seed={self.seed})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # Hypothesis's pretty-printer hook
        p.text(repr(self))

    def describe(self) -> str:
        """One line per array (shape, dtype, range; never the values) and one for the options."""
        lines = []
        for name, a in self.arrays.items():
            rng = f" in [{a.min():.5g}, {a.max():.5g}]" if a.size else " (empty)"
            grad = "" if name in self.differentiable else ", no grad"
            lines.append(f"{name}: shape {a.shape} {a.dtype}{rng}{grad}")
        lines.append(f"options: {dict(self.options)!r}; values seed {self.seed}")
        return "\n".join("  " + line for line in lines)


class Inputs(Protocol):
    """How a record's inputs are made: drawn by Hypothesis for tests, sized for benchmarks."""

    def strategy(self) -> st.SearchStrategy[Case]:
        """Cases for property tests: shapes, values inside the op's domain, and options."""
        ...

    def sized(self, n: int, seed: int = 0) -> Case:
        """A deterministic case whose cost grows with ``n`` (for benchmarks and extremes)."""
        ...


# Tolerance widenings a record may carry, keyed by (kind, dtype), each with a reason comment
# where the record is declared.
ToleranceOverride = Mapping[tuple[tols.Kind, torch.dtype], tols.Tolerance]


@dataclass(frozen=True, kw_only=True)
class OpSpec:
    """A differentiable op (layer, activation or loss) and its NumPy reference."""

    name: str
    """pytest id, benchmark group and reference name: ``references.<module>.<name>``."""
    family: str
    """``"activation"``, ``"layer"`` or ``"loss"``: groups reports and benchmarks."""
    torch_fn: Callable[..., torch.Tensor]
    """The torch callable under test, called as ``torch_fn(**tensors, **options)``."""
    ref: Callable[..., Array]
    """The NumPy forward, called as ``ref(**arrays, **options)``."""
    ref_vjp: Callable[..., dict[str, Array]]
    """The NumPy VJP, ``ref_vjp(g, **arrays, **options) -> {argument name: gradient}``."""
    inputs: Inputs
    """How inputs are drawn (domain, shapes, options, kink-avoidance rule)."""
    docs: str
    """The torch documentation the reference follows."""
    tol: ToleranceOverride = field(default_factory=dict)
    """Visible widenings of ``suite.tolerances``; merged by max; each needs a reason."""
    fd_step: float = tols.FD_STEP
    """Finite-difference step for the reference self-check."""
    def __repr__(self) -> str:
        return f"OpSpec({self.name!r})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # Hypothesis's pretty-printer hook
        p.text(repr(self))

    overflow_prone: bool = False
    """The textbook formula overflows for large inputs (an ``exp`` of the input): torch is
    also compared with the reference at |x| = 1e4, where only a stable form stays finite."""


class OptimizerRun(NamedTuple):
    """A drawn optimizer scenario: initial parameters, one gradient per parameter per step."""

    params: list[Array]
    grads: list[list[Array]]  # grads[step][param]
    hyper: dict[str, Any]
    seed: int


@dataclass(frozen=True, kw_only=True)
class OptimizerSpec:
    """A torch.optim algorithm and its pure NumPy update rule."""

    name: str
    """pytest id and reference name: ``references.optimizers.<name>``."""
    torch_cls: Callable[..., torch.optim.Optimizer]
    """The optimizer class, called as ``torch_cls(params, **hyper, **implementation)``."""
    ref_step: Callable[..., tuple[Array, Any]]
    """``ref_step(param, grad, state | None, **hyper) -> (new_param, new_state)``."""
    state_type: type
    """The reference state NamedTuple; its field names are torch's state keys."""
    hyper: st.SearchStrategy[dict[str, Any]]
    """Hyper-parameters over their documented ranges."""
    bench_hyper: Mapping[str, Any]
    """Hyper-parameters for benchmarks."""
    implementations: tuple[str, ...]
    """Which of ``suite.optimizers.IMPLEMENTATIONS`` torch offers for this algorithm."""
    docs: str
    tol: ToleranceOverride = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"OptimizerSpec({self.name!r})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # Hypothesis's pretty-printer hook
        p.text(repr(self))
