"""Every check of a record, by name: what ``gradsuite.battery``'s tests run, and what a standalone
reproducer script runs again with the same arguments (``suite.reproduce``).

A check is ``run(name, record, case, **params)``: it returns on success and raises
AssertionError with a message that explains itself. Checks of op records take a ``Case``;
checks of optimizer records an ``OptimizerRun`` (or an L-BFGS objective draw). A record without
a reference (``ref=None``) runs the reference-free forms (``suite.selfref``): every message of
one says what a reference-free check cannot tell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from suite import (
    closurecheck,
    compiled,
    higher,
    layouts,
    nondeterminism,
    optimcheck,
    selfref,
    vmapcheck,
)
from suite import gradcheck as gc
from suite.specs import Case, ClosureOptimizerSpec, OpSpec, OptimizerRun, OptimizerSpec
from suite.trainloops import TrainingLoop

# Magnitudes that overflow naive forms: exp(1e4) is inf in float64, exp(89) in float32.
LARGE = (1e4, -1e4)


def _reference_is_finite(spec: OpSpec, case: Case, *, factor: float) -> None:
    __tracebackhide__ = True
    case = case.scaled(factor)
    value = spec.reference(case)
    g = gc.cotangent(case, np.shape(value))
    grads = spec.reference_vjp(g, case)
    gc.check_vjp_shapes(spec, case, grads)
    bad = [name for name, a in {"forward": value, **grads}.items() if not np.isfinite(a).all()]
    assert not bad, f"{spec.name}: reference is not finite at |x| ~ {abs(factor):g} in: {bad}\n" \
                    f"Case:\n{case.describe()}"


def _large_input(spec: OpSpec, case: Case, *, factor: float, dtype: torch.dtype,
                 device: str) -> None:
    gc.check_forward(spec, case.scaled(factor), dtype, device)


def _forward_and_gradient(spec: OpSpec, case: Case, *, dtype: torch.dtype, device: str) -> None:
    gc.check_forward(spec, case, dtype, device)
    gc.check_gradient(spec, case, dtype, device)


def _broadcast(spec: OpSpec, case: Case, *, dtype: torch.dtype, device: str) -> None:
    import warnings

    with warnings.catch_warnings():
        # torch warns that a target size different from the input size "will likely lead to
        # incorrect results due to broadcasting": that broadcasting is what is checked here.
        warnings.simplefilter("ignore", UserWarning)
        gc.check_forward(spec, case, dtype, device)
        gc.check_gradient(spec, case, dtype, device, broadcast=True)
    gc.check_reference_vjp(spec, case)


def _opcheck(spec: OpSpec, case: Case, *, device: str) -> None:
    """torch.library.opcheck on the custom op behind ``torch_fn``: schema, fake tensor,
    autograd registration and AOT dispatch, as torch's own utility tests them."""
    __tracebackhide__ = True
    tensors = gc.to_tensors(case.rounded_to(torch.float64), torch.float64, device)
    try:
        torch.library.opcheck(spec.torch_fn, (), {**tensors, **case.options})  # type: ignore[arg-type]
    except Exception as error:  # opcheck raises OpCheckError, itself an AssertionError-like
        first = str(error).strip().splitlines()
        raise AssertionError(f"{spec.name}: torch.library.opcheck failed (a registration "
                             f"problem of the custom op, not a numerical mismatch): "
                             f"{type(error).__name__}: {' '.join(first[:3])}\n"
                             f"Case:\n{case.describe()}") from error


def _hard(spec: OpSpec, case: Case, *, dtype: torch.dtype, device: str) -> None:
    """The hard tier's forward and gradients (``suite.hardcheck``); in half precision a kernel
    torch lacks skips with torch's own message, as on the ladder, and so does a derivative the
    installed torch lacks for a record of versions.NO_DERIVATIVE (the forward was compared
    first)."""
    from suite import hardcheck, versions

    try:
        hardcheck.check_hard(spec, case, dtype, device)
    except RuntimeError as error:
        missing = higher.missing_derivative(error)
        if not higher._unsupported(error, dtype) and (missing is None
                                                      or missing not in versions.NO_DERIVATIVE):
            raise
        import pytest

        pytest.skip(f"torch {torch.__version__} on {device}: {higher._first_line(error)}")


def _argument_layout(spec: OpSpec, case: Case, *, name: str, layout: str, dtype: torch.dtype,
                     device: str) -> None:
    from suite import hardcheck, versions

    try:
        hardcheck.check_argument_layout(spec, case, name, layout, dtype, device)
    except RuntimeError as error:
        # An op the installed torch has no derivative for (versions.NO_DERIVATIVE, measured):
        # the forward was compared before the backward raised; skip with torch's own words.
        # Any other op's missing derivative is a failure.
        if higher.missing_derivative(error) not in versions.NO_DERIVATIVE:
            raise
        import pytest

        pytest.skip(f"torch {torch.__version__} on {device}: {higher._first_line(error)} "
                    f"(the forward was compared; suite/versions.py, NO_DERIVATIVE)")


def _special_positions(spec: OpSpec, case: None, *, value: str, dtype: torch.dtype,
                       device: str) -> None:
    from suite import hardcheck

    hardcheck.check_special_positions(spec, value, dtype, device)


def _forward(spec: OpSpec, case: Case, *, dtype: torch.dtype, device: str,
             backend: str = compiled.EAGER) -> None:
    if backend == compiled.EAGER:
        gc.check_forward(spec, case, dtype, device)
    else:
        compiled.check_forward(spec, case, dtype, device, backend)


def _gradient(spec: OpSpec, case: Case, *, dtype: torch.dtype, device: str,
              backend: str = compiled.EAGER) -> None:
    if backend == compiled.EAGER:
        gc.check_gradient(spec, case, dtype, device)
    else:
        compiled.check_gradient(spec, case, dtype, device, backend)


def _low_precision(spec: OpSpec, case: Case, *, dtype: torch.dtype, device: str,
                   backend: str = compiled.EAGER) -> None:
    if backend == compiled.EAGER:
        higher.check_low_precision(spec, case, dtype, device)
    else:
        compiled.check_low_precision(spec, case, dtype, device, backend)


# ``backend`` (forward, gradient, low_precision): "eager" calls torch_fn; a torch.compile
# backend ("inductor", "aot_eager") checks the compiled op against the same reference.
OP_CHECKS: dict[str, Callable[..., None]] = {
    "forward": _forward,
    "gradient": _gradient,
    "finite_differences": lambda spec, case: gc.check_reference_vjp(spec, case),
    "reference_is_finite": _reference_is_finite,
    "large_input": _large_input,
    "module": lambda spec, case, *, dtype, device: gc.check_module_form(spec, case, dtype,
                                                                        device),
    "broadcast": _broadcast,
    "exact_points": lambda spec, case, *, dtype, device: layouts.check_exact_points(
        spec, case, dtype, device),
    "special_value": lambda spec, case, *, value, dtype, device: layouts.check_special_value(
        spec, case, value, dtype, device),
    "layout": lambda spec, case, *, layout, dtype, device: layouts.check_layout(
        spec, case, layout, dtype, device),
    "empty": _forward_and_gradient,
    "low_precision": _low_precision,
    "own_float64": _forward_and_gradient,
    "jvp": lambda spec, case, *, device: higher.check_jvp(spec, case, device),
    "double_backward": lambda spec, case, *, device: higher.check_double_backward(spec, case,
                                                                                  device),
    "func_vjp": lambda spec, case, *, dtype, device: higher.check_func_vjp(spec, case, dtype,
                                                                           device),
    "opcheck": _opcheck,
    "hard": _hard,
    "argument_layout": _argument_layout,
    "special_positions": _special_positions,
    "vmap": lambda spec, case, *, device: vmapcheck.check_vmap(spec, case, device),
    "repeat": lambda spec, case, *, dtype, device: nondeterminism.check_repeatable(
        spec, case, dtype, device),
}
# Checks that compare with a reference, run on torch's own float64 results for a record
# without one (the battery only generates the meaningful ones: see suite.battery).
NEEDS_REFERENCE = {"forward", "gradient", "finite_differences", "reference_is_finite",
                   "large_input", "broadcast", "exact_points", "special_value", "layout",
                   "empty", "low_precision", "own_float64", "jvp", "double_backward", "hard",
                   "argument_layout", "special_positions"}


def _steps(spec: OptimizerSpec, run: OptimizerRun, *, implementation: str, dtype: torch.dtype,
           device: str, backend: str = compiled.EAGER, hard: bool = False) -> None:
    optimcheck.check_run(spec, run, implementation, dtype, device, backend, hard=hard)


def _round_trip(spec: OptimizerSpec, run: OptimizerRun, *, implementation: str,
                dtype: torch.dtype, device: str, split: int) -> None:
    optimcheck.check_state_dict_round_trip(spec, run, implementation, dtype, device, split)


def _closure(spec: ClosureOptimizerSpec, run: dict[str, Any], *, device: str) -> None:
    closurecheck.check_steps(spec, **run, device=device)


def _training(loop: TrainingLoop, run: dict[str, Any], *, dtype: torch.dtype,
              device: str, backend: str = compiled.EAGER, **options: Any) -> None:
    # A compiled backend (and the loop's own options, e.g. the MLP's compile_step) only where
    # one is asked for: a loop of your own need not take them.
    on = {} if backend == compiled.EAGER else {"backend": backend}
    loop.check(run, dtype=dtype, device=device, **on, **options)


OPTIMIZER_CHECKS: dict[str, Callable[..., None]] = {
    "optimizer_steps": _steps,
    "state_dict_round_trip": _round_trip,
    "closure_steps": _closure,
    "training_trajectory": _training,
}

_SELF_REFERENCED: dict[int, tuple[OpSpec, OpSpec]] = {}


def prepared(spec: OpSpec, check: str) -> OpSpec:
    """The record a check runs on: a reference-free record stands torch's own float64 results
    in for its reference (once per record)."""
    if spec.ref is not None or check not in NEEDS_REFERENCE:
        return spec
    kept = _SELF_REFERENCED.get(id(spec))
    if kept is None or kept[0] is not spec:
        kept = (spec, selfref.self_referenced(spec))
        _SELF_REFERENCED[id(spec)] = kept
    return kept[1]


def run(check: str, record: Any, case: Any, **params: Any) -> None:
    """Run the check called ``check`` on ``record`` and ``case`` with its parameters."""
    __tracebackhide__ = True
    if check in OPTIMIZER_CHECKS:
        OPTIMIZER_CHECKS[check](record, case, **params)
        return
    if check not in OP_CHECKS:
        known = ", ".join(sorted({*OP_CHECKS, *OPTIMIZER_CHECKS}))
        raise KeyError(f"no check called {check!r}; known: {known}")
    spec = prepared(record, check)
    if spec is record:
        OP_CHECKS[check](spec, case, **params)
        return
    try:
        OP_CHECKS[check](spec, case, **params)
    except AssertionError as error:
        raise AssertionError(f"{error}\nNote: {selfref.CAVEAT}.") from None
