"""gradsuite: check an op, module or optimizer against the mathematics.

The public API. Everything else (``suite``, ``references``) is gradsuite's own machinery and may
change between releases.

::

    import gradsuite as gs

    # A built-in record's mathematics, your kernel: the reference, inputs, exact points and
    # tolerances of gelu, checked on my_gelu.
    TestMyGelu = gs.battery(gs.like("gelu", torch_fn=my_gelu))

    # Your own op with your own NumPy reference, or none (reference-free checks).
    TestMyOp = gs.battery(gs.OpSpec(name="my_op", torch_fn=my_op, ref=my_op_ref,
                                    ref_vjp=my_op_ref_vjp, inputs=gs.inputs.Elementwise()))

    # A custom optimizer, in lockstep with a built-in update rule.
    TestMyAdam = gs.battery(gs.like("adam", torch_cls=MyAdam))

Records: :class:`OpSpec` (with :class:`ModuleForm` and :class:`Baseline`),
:class:`OptimizerSpec`; :class:`Case` and :class:`OptimizerRun` are what checks run on.
Input makers: ``gs.inputs``. Building: :func:`like`, :func:`record`. Running: :func:`battery`
(a pytest test class), :func:`check` (one check on one case), :func:`reproduce` (what a
standalone reproducer script calls). Tolerances: :class:`Tolerance`, :class:`Kind`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from suite import catalog as _catalog
from suite import checks as _checks
from suite import inputs
from suite.battery import BatteryError, battery
from suite.specs import (
    Baseline,
    Case,
    ClosureOptimizerSpec,
    ModuleForm,
    OpSpec,
    OptimizerRun,
    OptimizerSpec,
)
from suite.tolerances import Kind, Tolerance
from suite.trainloops import TrainingLoop as TrainingLoop  # the type gs.record may return

__version__ = "0.1.0"
__all__ = [
    "Baseline",
    "BatteryError",
    "Case",
    "ClosureOptimizerSpec",
    "Kind",
    "ModuleForm",
    "OpSpec",
    "OptimizerRun",
    "OptimizerSpec",
    "Tolerance",
    "battery",
    "check",
    "inputs",
    "like",
    "load_record",
    "record",
    "records",
    "reproduce",
]

Record = OpSpec | OptimizerSpec | ClosureOptimizerSpec
"""A record a battery checks."""


def records() -> tuple[str, ...]:
    """The names of the built-in records ``like`` and ``record`` accept."""
    everything: tuple[Record, ...] = (*_catalog.OPS, *_catalog.OPTIMIZERS,
                                      *_catalog.optimizers.CLOSURE_RECORDS)
    return tuple(s.name for s in everything)


def record(name: str) -> Record | TrainingLoop:
    """The built-in record called ``name`` (``python -m suite list`` lists them), or one of
    the training loops checked end to end (``"linear_regression"``, ``"mlp_classifier"``:
    ``gs.check("training_trajectory", loop, run, dtype=..., device=...)``).

    Raises:
        BatteryError: naming the closest known records, when there is none.
    """
    try:
        return _catalog.record(name)
    except KeyError as error:
        raise BatteryError(str(error.args[0])) from None


def like(name: str, **changes: Any) -> Record:
    """A built-in record with some fields replaced: the torch callable (``torch_fn``), the
    module form, the optimizer class (``torch_cls``), the name, the tolerances...

    The reference, the input makers, the exact points and the tolerances of the built-in record
    are kept. Replacing ``torch_fn`` drops the built-in module form (torch's ``nn`` class is
    not your op's; give ``module=`` to check yours) and the record's ``torch_vjp_options``
    (where torch's own gradient is knowingly not the derivative, yours is held to the
    derivative), and what the built-in record says torch.compile backends and torch.func.vmap
    cannot do with torch's op (``backends``, ``vmap``). ``baseline=True`` judges half
    precision and float32 relative to the built-in torch op's own error (:class:`Baseline`'s
    factors); a :class:`Baseline` without a ``torch_fn`` gets the built-in one. For an
    optimizer, the implementations your class's constructor cannot select (no ``foreach`` or
    ``fused`` argument) are dropped.

    Raises:
        BatteryError: an unknown record name (with the close matches) or field.

    .. code-block:: pycon

        >>> gs.like("gelu", torch_fn=my_gelu, baseline=True)  # doctest: +SKIP
        OpSpec('gelu')
    """
    base = record(name)
    if isinstance(base, TrainingLoop):
        raise BatteryError(f"gs.like({name!r}): {name} is a training loop, not a record a "
                           f"battery checks; give gs.like an op, optimizer or L-BFGS record")
    fields = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(changes) - fields)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(fields), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise BatteryError(f"gs.like({name!r}): {type(base).__name__} has no field "
                           f"{unknown[0]!r}{hint}; its fields: {', '.join(sorted(fields))}")
    if isinstance(base, OpSpec):
        if "torch_fn" in changes:
            changes.setdefault("module", None)
            changes.setdefault("torch_vjp_options", {})
            # What torch.compile and torch.func.vmap cannot do with torch's op says nothing
            # about yours: every backend and vmap run, until your record says why not.
            changes.setdefault("backends", {})
            changes.setdefault("vmap", True)
        baseline = changes.get("baseline")
        if baseline is True:
            changes["baseline"] = Baseline(torch_fn=base.torch_fn)
        elif isinstance(baseline, Baseline) and baseline.torch_fn is None:
            changes["baseline"] = dataclasses.replace(baseline, torch_fn=base.torch_fn)
    elif isinstance(base, OptimizerSpec) and "torch_cls" in changes \
            and "implementations" not in changes:
        try:
            accepted = inspect.signature(changes["torch_cls"]).parameters
        except (TypeError, ValueError):
            accepted = {}  # type: ignore[assignment]
        changes["implementations"] = tuple(
            i for i in base.implementations
            if i == "for-loop" or {"foreach": "foreach", "fused": "fused"}[i] in accepted)
    return dataclasses.replace(base, **changes)


def check(name: str, record: Record, case: Any, **params: Any) -> None:
    """Run the check called ``name`` (``"forward"``, ``"gradient"``, ``"finite_differences"``,
    ``"module"``, ``"layout"``, ``"low_precision"``, ``"jvp"``, ``"double_backward"``,
    ``"optimizer_steps"``, ...) of ``record`` on one case; raises AssertionError with the
    usual message when it fails.

    .. code-block:: pycon

        >>> case = gs.record("tanh").inputs.sized(8)
        >>> gs.check("gradient", gs.record("tanh"), case, dtype=torch.float32, device="cpu")
    """
    __tracebackhide__ = True
    _checks.run(name, record, case, **params)


def reproduce(record: Record, name: str, case: Any, **params: Any) -> int:
    """Run one check as a standalone reproducer does: print the outcome, return the exit
    status (0: the check passes, 1: it fails, the mismatch printed)."""
    from suite import reproduce as _reproduce

    _reproduce.set_script(Path(sys.argv[0]) if sys.argv and sys.argv[0] else None)
    try:
        _checks.run(name, record, case, **params)
    except AssertionError as error:
        print(f"FAILED: {record.name} {name}\n{error}")
        return 1
    print(f"passed: {record.name} {name} ({', '.join(f'{k}={v}' for k, v in params.items())})")
    return 0


def load_record(path: str, battery_class: str, name: str) -> Record:
    """The record called ``name`` of the battery class ``battery_class`` in the test file at
    ``path`` (what a reproducer of a battery outside the catalogue rebuilds its record with).

    The file's folder and the working folder are put on ``sys.path``, as pytest would.
    """
    file = Path(path)
    for folder in (str(file.parent), str(Path.cwd())):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"_gradsuite_repro_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise BatteryError(f"{path}: cannot import it as a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls = getattr(module, battery_class, None)
    found = [r for r in getattr(cls, "records", ()) if r.name == name]
    if not found:
        raise BatteryError(f"{path}: no battery class {battery_class!r} with a record {name!r}")
    return found[0]
