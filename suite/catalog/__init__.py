"""The catalogue: every record gradsuite checks, one module per family.

``OPS`` holds the differentiable ops (activations, layers, losses), ``OPTIMIZERS`` the
optimizers; both sorted by name. Tests, benchmarks and reports iterate these tuples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from suite.catalog import (
    activations,
    attention,
    compiling,
    conv,
    distance,
    layers,
    losses,
    norms,
    optimizers,
    pooling,
    recurrent,
    resampling,
    schedulers,
    transformer,
)
from suite.specs import ClosureOptimizerSpec, OpSpec, OptimizerSpec, SchedulerSpec

if TYPE_CHECKING:
    from suite.trainloops import TrainingLoop

# Each record with the backends it is not compiled under, and why (suite/catalog/compiling.py).
OPS: tuple[OpSpec, ...] = tuple(compiling.apply(
    sorted(activations.RECORDS + attention.RECORDS + conv.RECORDS + distance.RECORDS
           + layers.RECORDS + losses.RECORDS + norms.RECORDS + pooling.RECORDS
           + recurrent.RECORDS + resampling.RECORDS + transformer.RECORDS,
           key=lambda s: s.name)))
OPTIMIZERS: tuple[OptimizerSpec, ...] = tuple(sorted(optimizers.RECORDS, key=lambda s: s.name))
SCHEDULERS: tuple[SchedulerSpec, ...] = tuple(sorted(schedulers.RECORDS, key=lambda s: s.name))


def by_name(name: str) -> OpSpec | OptimizerSpec:
    """The op or optimizer record called ``name``.

    Raises:
        KeyError: naming the known records, when there is none.
    """
    records: tuple[OpSpec | OptimizerSpec, ...] = (*OPS, *OPTIMIZERS)
    for spec in records:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in records)
    raise KeyError(f"no record named {name!r}; known records: {known}")


def record(name: str) -> OpSpec | OptimizerSpec | ClosureOptimizerSpec | TrainingLoop:
    """Any record of the catalogue called ``name``: ops, optimizers, L-BFGS and the training
    loops (``suite.trainloops``).

    Raises:
        KeyError: naming the closest known records, when there is none.
    """
    import difflib

    from suite.trainloops import LOOPS

    records: tuple[OpSpec | OptimizerSpec | ClosureOptimizerSpec | TrainingLoop, ...] = (
        *OPS, *OPTIMIZERS, *optimizers.CLOSURE_RECORDS, *LOOPS)
    everything = {s.name: s for s in records}
    if name in everything:
        return everything[name]
    close = difflib.get_close_matches(name, list(everything), n=4, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise KeyError(f"no record named {name!r}; {hint}`python -m suite list` lists them all")


def spec_id(spec: OpSpec | OptimizerSpec | SchedulerSpec | ClosureOptimizerSpec) -> str:
    """The pytest id of a record: its name, so ``pytest -k gelu`` selects every check of gelu."""
    return spec.name
