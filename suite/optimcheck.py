"""The optimizer check: torch.optim and the reference update, step by step, in lockstep.

Before every step the reference starts from torch's current parameters and state (widened to
float64), takes one step with the same gradient, and the parameters and every state entry are
compared. Starting each step from torch's state keeps float32 rounding from compounding across
steps, so each comparison measures one step's error against the one-step tolerance; whole
trajectories are checked separately by the training tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from suite import compare
from suite import tolerances as tols
from suite.devices import dtype_name
from suite.specs import OptimizerRun, OptimizerSpec

# torch.optim's implementations of one algorithm, and the constructor flags that select them.
IMPLEMENTATIONS: dict[str, dict[str, bool]] = {
    "for-loop": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
}


def unavailable(spec: OptimizerSpec, implementation: str, dtype: torch.dtype,
                device: str) -> str | None:
    """Why torch cannot run ``implementation`` of ``spec`` here, or None when it can."""
    if implementation not in spec.implementations:
        return f"torch.optim has no {implementation} implementation of {spec.name}"
    param = torch.zeros(2, dtype=dtype, device=device, requires_grad=True)
    try:
        opt = spec.torch_cls([param], **dict(spec.bench_hyper), **IMPLEMENTATIONS[implementation])
        param.grad = torch.ones_like(param)
        opt.step()
    except (RuntimeError, ValueError, TypeError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return (f"torch {torch.__version__} cannot run the {implementation} {spec.name} on "
                f"{device} in {dtype_name(dtype)}: {first_line}")
    return None


def _state_as_numpy(state: dict[str, Any], spec: OptimizerSpec) -> Any:
    """torch's per-parameter state as the reference NamedTuple; keys torch lacks become None.

    (torch stores nothing at all for SGD without momentum, and no ``max_exp_avg_sq`` for Adam
    without amsgrad.)
    """
    values = {}
    for key in spec.state_type._fields:  # type: ignore[attr-defined]
        v = state.get(key)
        values[key] = compare.to_numpy(v) if isinstance(v, torch.Tensor) else v
    return spec.state_type(**values)


def check_run(spec: OptimizerSpec, run: OptimizerRun, implementation: str, dtype: torch.dtype,
              device: str) -> None:
    """Step torch and the reference through ``run`` and compare after every step."""
    __tracebackhide__ = True
    np_dtype = torch.empty((), dtype=dtype).numpy().dtype
    params = [torch.tensor(p, dtype=dtype, device=device, requires_grad=True)
              for p in run.params]
    opt = spec.torch_cls(params, **run.hyper, **IMPLEMENTATIONS[implementation])
    tol = tols.resolve(dtype, tols.Kind.OPTIMIZER, spec.tol.get((tols.Kind.OPTIMIZER, dtype)))
    context = f"{dtype_name(dtype)}, device={device}, {implementation}"
    case = (f"  hyper-parameters: {run.hyper}\n  parameter shapes: "
            f"{[p.shape for p in run.params]}; {len(run.grads)} steps; values seed {run.seed}")
    for step, grads in enumerate(run.grads, start=1):
        expected = []
        for p, g in zip(params, grads, strict=True):
            g_rounded = g.astype(np_dtype).astype(np.float64)
            before = compare.to_numpy(p)
            # An empty state before a step means "first step": the reference's None.
            state = _state_as_numpy(opt.state[p], spec) if opt.state[p] else None
            expected.append(spec.ref_step(before, g_rounded, state, **run.hyper))
            p.grad = torch.tensor(g_rounded, dtype=dtype, device=device)
        opt.step()
        for i, (p, (ref_param, ref_state)) in enumerate(zip(params, expected, strict=True)):
            where = f"{spec.name}: param {i} after step {step}"
            compare.assert_close(compare.to_numpy(p), ref_param, tol=tol, what=where,
                                 context=context, case=case)
            torch_state = _state_as_numpy(opt.state[p], spec)
            for key in spec.state_type._fields:  # type: ignore[attr-defined]
                _compare_state(getattr(torch_state, key), getattr(ref_state, key), tol=tol,
                               what=f"{spec.name}: state[{key!r}] of param {i} after step {step}",
                               context=context, case=case)


def _compare_state(actual: Any, expected: Any, *, tol: tols.Tolerance, what: str,
                   context: str, case: str) -> None:
    __tracebackhide__ = True
    if actual is None or expected is None:
        if actual is not expected:
            raise AssertionError(f"{what}: torch has {type(actual).__name__}, the reference "
                                 f"{type(expected).__name__}  [{context}]\nCase:\n{case}")
        return
    compare.assert_close(np.asarray(actual, dtype=np.float64),
                         np.asarray(expected, dtype=np.float64), tol=tol, what=what,
                         context=context, case=case)
