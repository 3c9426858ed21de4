"""The optimizer check: torch.optim and the reference update, step by step, in lockstep.

Before every step the reference starts from torch's current parameters and state (widened to
float64), takes one step with the same gradient, and the parameters and every state entry are
compared. Starting each step from torch's state keeps float32 rounding from compounding across
steps, so each comparison measures one step's error against the one-step tolerance; whole
trajectories are checked separately by the training tests.

What a run may hold, and how each is mapped:

* parameter groups: each parameter is stepped by the reference with its group's
  hyper-parameters (the run's defaults updated by the group's overrides);
* a gradient of ``None``: torch skips the parameter, so parameter and state must be unchanged;
* complex parameters: torch updates them as pairs of reals (``view_as_real``), so the
  reference sees the (..., 2) real view of the parameter, gradient and every state tensor;
* ``lr`` as a tensor: torch receives ``torch.tensor(lr)``, the reference the float;
* sparse gradients (records with ``sparse_grad``): torch receives a COO tensor holding a drawn
  subset of rows, the reference a ``numpy.ma`` array with the absent rows masked.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from suite import compare, compiled
from suite import optimsupport as support
from suite import tolerances as tols
from suite.devices import dtype_name
from suite.specs import Array, OptimizerRun, OptimizerSpec

# What torch can run (implementations, complex parameters, lr as a tensor) is probed in
# suite.optimsupport; its names are re-exported here for the callers of the step check.
IMPLEMENTATIONS = support.IMPLEMENTATIONS
VARIANTS = support.VARIANTS
flags_for = support.flags_for
unavailable = support.unavailable
complex_refusal = support.complex_refusal
tensor_lr_refusal = support.tensor_lr_refusal


def _as_numpy(t: torch.Tensor) -> Array:
    """A float64 NumPy copy; complex tensors as their (..., 2) real view."""
    t = t.detach()
    return compare.to_numpy(torch.view_as_real(t) if t.is_complex() else t)


def _state_as_numpy(state: dict[str, Any], spec: OptimizerSpec) -> Any:
    """torch's per-parameter state as the reference NamedTuple; keys torch lacks become None.

    (torch stores nothing at all for SGD without momentum, and no ``max_exp_avg_sq`` for Adam
    without amsgrad.)
    """
    values = {}
    for key in spec.state_type._fields:  # type: ignore[attr-defined]
        v = state.get(key)
        values[key] = _as_numpy(v) if isinstance(v, torch.Tensor) else v
    return spec.state_type(**values)


def group_hyper(run: OptimizerRun) -> list[dict[str, Any]]:
    """The hyper-parameters each parameter is stepped with (its group's)."""
    per_param = [dict(run.hyper) for _ in run.params]
    for members, overrides in run.groups:
        for i in members:
            per_param[i] = {**run.hyper, **overrides}
    return per_param


def _torch_params(run: OptimizerRun, dtype: torch.dtype, device: str,
                  differentiable: bool) -> list[torch.Tensor]:
    params = []
    for p in run.params:
        t = torch.tensor(p, dtype=dtype, device=device)
        if run.complex_params:
            t = torch.view_as_complex(t).clone()
        t.requires_grad_(True)
        # The differentiable path needs non-leaf parameters (autograd records the update).
        params.append(t.clone() if differentiable else t)
    return params


def lr_as_tensor(spec: OptimizerSpec, run: OptimizerRun, implementation: str) -> tuple[bool, str]:
    """Whether torch gets ``lr`` as a tensor in this run, and a note saying how it was given."""
    if not run.tensor_lr:
        return False, ""
    if refusal := tensor_lr_refusal(spec, implementation):
        return False, f"; lr given as a float: torch refuses a tensor ({refusal})"
    return True, "; lr given as a 0-d tensor of the parameters' dtype"


def reference_hyper(spec: OptimizerSpec, run: OptimizerRun, implementation: str,
                    dtype: torch.dtype) -> list[dict[str, Any]]:
    """The hyper-parameters the reference steps each parameter with: its group's, with ``lr``
    rounded to ``dtype`` when torch gets it as a tensor of that dtype.

    (A float32 tensor lr in a float64 run makes torch compute the step size in float32:
    KNOWN_DIFFERENCES.md, "A float32 tensor lr".)
    """
    as_tensor, _ = lr_as_tensor(spec, run, implementation)
    per_param = group_hyper(run)
    if as_tensor:
        per_param = [{**h, "lr": float(torch.tensor(h["lr"], dtype=dtype))} for h in per_param]
    if spec.dtype_eps is not None:  # the update depends on the dtype (OptimizerSpec.dtype_eps)
        per_param = [{**h, spec.dtype_eps: float(torch.finfo(dtype).eps)} for h in per_param]
    return per_param


def make_optimizer(spec: OptimizerSpec, run: OptimizerRun, params: list[torch.Tensor],
                   implementation: str, dtype: torch.dtype) -> tuple[torch.optim.Optimizer, str]:
    """torch's optimizer for ``run`` over ``params``, and a note on how lr was given."""
    as_tensor, lr_note = lr_as_tensor(spec, run, implementation)

    def hyper(h: dict[str, Any]) -> dict[str, Any]:
        if as_tensor and "lr" in h:
            return {**h, "lr": torch.tensor(h["lr"], dtype=dtype)}
        return dict(h)

    flags = flags_for(spec, implementation)
    if run.groups:
        groups = [{"params": [params[i] for i in members], **hyper(overrides)}
                  for members, overrides in run.groups]
        return spec.torch_cls(groups, **hyper(run.hyper), **flags), lr_note
    return spec.torch_cls(params, **hyper(run.hyper), **flags), lr_note


def _grad_pair(g: Array, spec: OptimizerSpec, run: OptimizerRun, step: int, index: int,
               dtype: torch.dtype, device: str) -> tuple[torch.Tensor, Any]:
    """torch's gradient and the reference's for one parameter at one step."""
    if not spec.sparse_grad:
        t = torch.tensor(g, dtype=dtype, device=device)
        return (torch.view_as_complex(t) if run.complex_params else t), g
    # A drawn subset of rows (of the first dimension) is present, as nn.Embedding(sparse=True)
    # produces; a 0-d parameter is present or not as a whole.
    rng = np.random.default_rng([run.seed, step, index])
    rows = rng.random(g.shape[0] if g.ndim else 1) < 0.6
    dense = torch.tensor(g, dtype=dtype, device=device)
    if g.ndim == 0:
        mask = np.full(g.shape, not rows[0])
        nnz = int(rows[0])  # an explicit entry even when its value is 0, as torch keeps it
        t = torch.sparse_coo_tensor(torch.zeros((0, nnz), dtype=torch.int64, device=device),
                                    dense.reshape(1)[:nnz], ())
        return t, np.ma.array(g, mask=mask)
    idx = torch.tensor(np.flatnonzero(rows), dtype=torch.int64, device=device)
    t = torch.sparse_coo_tensor(idx[None], dense[idx], dense.shape)
    mask = np.broadcast_to(~rows.reshape((-1,) + (1,) * (g.ndim - 1)), g.shape)
    return t, np.ma.array(g, mask=mask)


def _tol(spec: OptimizerSpec, dtype: torch.dtype, implementation: str,
         hard: bool = False) -> tols.Tolerance:
    """The OPTIMIZER row joined with the record's visible widenings. ``hard``: the row's fixed
    absolute part gives way to the hard tier's underflow floor (suite/tolerances.py, "The
    optimizer hard tier"); the record's widenings, derived on the record, stay."""
    row = tols.resolve(dtype, tols.Kind.OPTIMIZER)
    if hard:
        row = tols.Tolerance(row.rtol, tols.hard_floor(dtype, 1, 1024.0))
    tol = tols.join(row, spec.tol.get((tols.Kind.OPTIMIZER, dtype)))
    return tols.join(tol, spec.implementation_tol.get((implementation, dtype)))


#: The implementations torch.compile(optimizer.step) is checked with: torch's own compiled-
#: optimizer tests (test/inductor/test_compiled_optimizers.py) compile the for-loop and foreach
#: implementations and leave out fused and differentiable ("dynamo does not support
#: differentiable optimizers"); capturable is for CUDA graphs.
COMPILED_VARIANTS = ("for-loop", "foreach")


# torch.compile(optimizer.step) in float64: torch findings (torch 2.13.0, aot_eager and inductor;
# KNOWN_DIFFERENCES.md, "Compiled optimizer steps are not float64-exact"), measured 2026-12-01.
# The battery runs float64 compiled steps and handles exactly these cases (suite/battery.py).
#
# (1) A lone 0-d float64 parameter is left unchanged (the whole update lost) by the compiled
# step of these records and implementations; shapes (1,) and larger are stepped.
# tests/test_compiled.py::test_compiled_step_moves_a_zero_dim_float64_parameter is a strict
# xfail for each pair, on a fixed one-step run. A 0-d parameter among others loses its update
# in more cases (Rprop's foreach step with shapes [(), (182,), (1, 6)]: 0.031 after 2 steps), so
# the battery draws no 0-d parameter for any float64 compiled step (a test id cannot be a
# strict xfail for a draw that may hold none).
COMPILED_FLOAT64_ZERO_DIM: frozenset[tuple[str, str]] = frozenset(
    {(name, "for-loop") for name in ("adadelta", "adagrad", "adam", "adamax", "adamw", "asgd",
                                     "nadam", "radam", "rmsprop", "rprop", "sgd")}
    | {(name, "foreach") for name in ("adam", "adamax", "adamw", "nadam", "radam")})
_FLOAT32_HYPER = ("torch 2.13.0: torch.compile({}.step) in float64 computes with the "
                  "hyper-parameters rounded to float32 ({}): the float64 step is float32-accurate "
                  "on every shape (KNOWN_DIFFERENCES.md, \"Compiled optimizer steps are not "
                  "float64-exact\")")
#: (2) Float64 compiled steps that are float32-accurate on every shape: strict expected failures
#: of the battery's float64 compiled step test for these (record, implementation) pairs. Each
#: fails on the first example Hypothesis generates (its simplest draw: lr = 1e-4, which float32
#: does not represent; one step), so the expectation is strict.
COMPILED_FLOAT64_FINDINGS: dict[tuple[str, str], str] = {
    **{("adagrad", impl): _FLOAT32_HYPER.format(
        "Adagrad", "lr = 1e-4: 2.5e-12 absolute, 2.5e-8 of the update, after one step; with "
                   "float32-exact hyper-parameters the step is right") for impl in
       ("for-loop", "foreach")},
    **{(name, impl): _FLOAT32_HYPER.format(
        cls, "lr = 1e-4: 4.1e-12 (for-loop) and 6.2e-12 (foreach) absolute after one step; "
             "with float32-exact lr, betas and eps still 1.7e-11 from step 2: the bias "
             "corrections too") for name, cls in (("adam", "Adam"), ("adamw", "AdamW"))
       for impl in ("for-loop", "foreach")},
    ("asgd", "for-loop"): _FLOAT32_HYPER.format(
        "ASGD", "1e-8 relative after one step at lr = 1e-4, 1.3e-7 absolute after 5 steps at lr "
                "0.02; with float32-exact lr and lambd the step is right"),
}


#: (3) Float64 compiled steps with errors that only some draws show: skipped in
#: float64 (a strict xfail needs every run to fail), each shown by a strict xfail on a fixed
#: run in tests/test_compiled.py::test_compiled_step_is_float64_exact where one is found.
COMPILED_FLOAT64_UNCHARACTERISED: dict[tuple[str, str], str] = {
    **{("adamax", impl): "torch 2.13.0: torch.compile(Adamax.step) in float64 is float32-level "
                         "(5.8e-10 absolute after one step at lr 0.0390625, 1.5e-8 of lr, on "
                         "any shape; 2.6e-9 to 5e-9 in drawn runs) but right at lr 1e-4 with "
                         "beta1 0: the battery's draws would pass or fail by chance; shown by "
                         "tests/test_compiled.py::test_compiled_step_is_float64_exact"
                         "[adamax-" + impl + "] (KNOWN_DIFFERENCES.md)"
       for impl in ("for-loop", "foreach")},
    ("radam", "foreach"): "torch 2.13.0: torch.compile(RAdam.step) (foreach) in float64 is "
                          "float32-level from step 2 or 3 (1.5e-8 relative; 1e-10 absolute on "
                          "a fixed run), right on a one-step run "
                          "(the battery's simplest draw); shown by tests/test_compiled.py::"
                          "test_compiled_step_is_float64_exact[radam-foreach] "
                          "(KNOWN_DIFFERENCES.md)",
    ("radam", "for-loop"): "torch 2.13.0: torch.compile(RAdam.step) (for-loop) in float64 was "
                           "1.5e-11 relative off (~7e4 ulp; row 2**12 ulp) on one drawn run "
                           "(complex parameters, decoupled weight decay, 17 steps) and right on "
                           "fixed runs: not characterised yet (KNOWN_DIFFERENCES.md)",
    ("nadam", "for-loop"): "torch 2.13.0: torch.compile(NAdam.step) (for-loop) in float64 was "
                           "4.7e-7 absolute (4.7e-4 relative) off after one step on a drawn run "
                           "(complex parameters [(40, 4, 2), (8, 2), (1, 2)], decoupled weight "
                           "decay, maximize, lr 0.003) against the row's 1e-7 (its float32 "
                           "mu_product allowance): not characterised yet (KNOWN_DIFFERENCES.md)",
}


#: (4) Compiles that fail: inductor cannot compile SGD's foreach step on complex parameters
#: (torch 2.13.0, 2.14.1, 2.15.0: "InductorError: AssertionError: <built-in function getitem>
#: is not an OpOverload"; pytorch/pytorch#197094). SGD's foreach path calls
#: ``_foreach_add_`` on the complex tensors themselves (the other optimizers view them as
#: real); inductor has no complex code generation, and its fallback for an in-place foreach
#: op returns nothing that the functionalised graph's ``getitem`` can index. The battery draws
#: no complex parameters for these (record, implementation, backend) triples;
#: tests/test_compiled.py::test_compiled_sgd_foreach_step_on_complex_parameters is a strict
#: xfail that fails while torch does.
COMPILED_COMPLEX_FAILS: dict[tuple[str, str, str], str] = {
    ("sgd", "foreach", "inductor"): (
        "torch 2.13.0 to 2.15.0: inductor cannot compile SGD's foreach step on complex "
        "parameters (InductorError: getitem is not an OpOverload; pytorch/pytorch#197094; "
        "KNOWN_DIFFERENCES.md)"),
}


def compiled_complex_failure(name: str, implementation: str, backend: str) -> str | None:
    """The finding that keeps complex parameters out of this compiled step, or None."""
    return COMPILED_COMPLEX_FAILS.get((name, implementation, backend))


def compiled_float64_finding(spec: OptimizerSpec, implementation: str, dtype: torch.dtype,
                             backend: str) -> str | None:
    """Why the battery's compiled step test of this case is a strict expected failure (a torch
    finding, ``COMPILED_FLOAT64_FINDINGS``: torch's own optimizer classes only, not a class of
    your own under a record's name), or None."""
    if dtype != torch.float64 or backend == compiled.EAGER \
            or not getattr(spec.torch_cls, "__module__", "").startswith("torch.optim"):
        return None
    return COMPILED_FLOAT64_FINDINGS.get((spec.name, implementation))


def check_run(spec: OptimizerSpec, run: OptimizerRun, implementation: str, dtype: torch.dtype,
              device: str, backend: str = compiled.EAGER, hard: bool = False) -> None:
    """Step torch and the reference through ``run`` and compare after every step; under a
    compiled ``backend``, torch steps with ``torch.compile(optimizer.step)``. ``hard``: a
    hard-tier run (``suite.hard.optimizer_runs``), judged element by element (``_LazySlack``;
    suite/tolerances.py, "The optimizer hard tier") and followed while the reference stays in
    range."""
    __tracebackhide__ = True
    np_dtype = torch.empty((), dtype=dtype).numpy().dtype
    flags = VARIANTS[implementation]
    real_dtype = dtype
    params = _torch_params(run, real_dtype, device, bool(flags.get("differentiable")))
    opt, lr_note = make_optimizer(spec, run, params, implementation, real_dtype)
    tol = _tol(spec, real_dtype, implementation, hard)
    hyper = reference_hyper(spec, run, implementation, real_dtype)
    context = f"{dtype_name(real_dtype)}, device={device}, {implementation}"
    take_step: Callable[[], Any] = opt.step
    if backend != compiled.EAGER:
        label = f"{spec.name}.step {implementation} {dtype_name(real_dtype)} {device} {backend}"
        take_step = compiled.compiled_step(opt, label, backend)
        context += f", torch.compile(step, backend={backend!r})"
    groups = f"\n  groups (param indices, overrides): {run.groups}" if run.groups else ""
    case = (f"  hyper-parameters: {run.hyper}{groups}\n  parameter shapes: "
            f"{[p.shape for p in run.params]}{' (complex, as real pairs)' * run.complex_params}"
            f"; {len(run.grads)} steps; values seed {run.seed}{lr_note}")
    for step, grads in enumerate(run.grads, start=1):
        expected: list[tuple[Array, Any]] = []
        inputs: dict[int, tuple[Array, Any, Any]] = {}
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            before = _as_numpy(p)
            state = _state_as_numpy(opt.state[p], spec) if opt.state[p] else None
            if g is None:
                p.grad = None
                # torch skips a parameter without a gradient: nothing may change.
                expected.append((before, state))
                continue
            g_rounded = g.astype(np_dtype).astype(np.float64)
            p.grad, ref_grad = _grad_pair(g_rounded, spec, run, step, i, real_dtype, device)
            # An empty state before a step means "first step": the reference's None.
            expected.append(spec.ref_step(before, ref_grad, state, **hyper[i]))
            inputs[i] = (before, ref_grad, state)
        if hard and _beyond_hard_range(expected, real_dtype):
            # The rest of the run is outside the hard tier's range (suite/tolerances.py, "The
            # optimizer hard tier").
            break
        take_step()
        slack = _LazySlack(spec, run, step, real_dtype, hyper, expected, inputs,
                           hard=hard, implementation=implementation)
        for i, (p, (ref_param, ref_state)) in enumerate(zip(params, expected, strict=True)):
            where = f"{spec.name}: param {i} after step {step}"
            slack.assert_close(i, "param", _as_numpy(p), ref_param, tol, what=where,
                               context=context, case=case)
            # An empty torch state (SGD without momentum; a parameter never stepped) reads as
            # every key absent, as does the reference's None.
            torch_state = _state_as_numpy(opt.state[p], spec)
            if ref_state is None:
                ref_state = _state_as_numpy({}, spec)
            for key in spec.state_type._fields:  # type: ignore[attr-defined]
                slack.assert_close(
                    i, key, getattr(torch_state, key), getattr(ref_state, key),
                    tols.join(tol, spec.state_tol.get(key)),
                    what=f"{spec.name}: state[{key!r}] of param {i} after step {step}",
                    context=context, case=case)
    compiled.require_graphs(take_step, f"{spec.name}: torch.compile(optimizer.step)")


def _beyond_hard_range(expected: list[tuple[Array, Any]], dtype: torch.dtype) -> bool:
    """Whether a reference parameter of this step is beyond ``suite.hard.limits(dtype,
    power=2).huge`` (updates may square it), or a state entry beyond ``limits(dtype).huge``, or
    either is non-finite (suite/tolerances.py, "The optimizer hard tier")."""
    from suite import hard

    squared, top = hard.limits(dtype, 2).huge, hard.limits(dtype).huge
    for param, state in expected:
        values = [(param, squared)] + ([] if state is None else
                                       [(v, top) for v in state if v is not None])
        for v, bound in values:
            a = np.asarray(np.ma.getdata(v), dtype=np.float64)
            if a.size and (not np.all(np.isfinite(a)) or float(np.max(np.abs(a))) > bound):
                return True
    return False


class _LazySlack:
    """The conditioning allowance of one step (see below), measured only for a parameter whose
    entries do not already pass at the row's tolerance: the allowance only ever loosens, and
    its perturbation is seeded by (run seed, step, parameter), so the verdicts are those of
    measuring it always, at a fraction of the cost (re-running the reference per step).

    ``hard`` (the hard tier, suite/tolerances.py "The optimizer hard tier"): the allowance is
    per element, not one number per entry (gradients span 200 decades across the elements of
    one parameter), the greatest of tols.HARD_SHAKES shakes that also move the
    hyper-parameters (:func:`_shaken_hyper`), and the parameter gets
    tols.HARD_PARAM_TERMS rtol |theta_{t-1}| for the cancellation in theta_{t-1} - update."""

    def __init__(self, spec: OptimizerSpec, run: OptimizerRun, step: int, dtype: torch.dtype,
                 hyper: list[dict[str, Any]], expected: list[tuple[Array, Any]],
                 inputs: dict[int, tuple[Array, Any, Any]], *, hard: bool = False,
                 implementation: str = "") -> None:
        self.spec, self.run, self.step, self.dtype = spec, run, step, dtype
        self.hyper, self.expected, self.inputs = hyper, expected, inputs
        self.hard, self.implementation = hard, implementation
        self.measured: dict[int, dict[str, Any]] = {}

    def _of(self, i: int) -> dict[str, Any]:
        if i not in self.inputs:  # no gradient at this step: nothing moved, nothing to allow
            return {}
        if i not in self.measured:
            rng = np.random.default_rng([self.run.seed, self.step, i])
            if not self.hard:
                shaken = _shaken(rng, self.dtype, self.inputs[i])
                self.measured[i] = _sensitivity(self.expected[i],
                                                self.spec.ref_step(*shaken, **self.hyper[i]))
            else:
                most: dict[str, Any] = {}
                for _ in range(tols.HARD_SHAKES):
                    shaken = _shaken(rng, self.dtype, self.inputs[i])
                    moved = _sensitivity(self.expected[i], self.spec.ref_step(
                        *shaken, **_shaken_hyper(rng, self.dtype, self.hyper[i])),
                        per_element=True)
                    most = {k: np.maximum(most.get(k, 0.0), v) for k, v in moved.items()}
                self.measured[i] = most
        return self.measured[i]

    def _allowed(self, i: int) -> Mapping[str, float]:
        """The record's step allowances for parameter i (``OptimizerSpec.step_allowance``, and
        ``OptimizerSpec.implementation_allowance`` of this implementation), summed."""
        if i not in self.inputs:
            return {}
        found = [f for f in (self.spec.step_allowance,
                             self.spec.implementation_allowance.get(self.implementation))
                 if f is not None]
        total: dict[str, float] = {}
        for f in found:
            for key, value in f(*self.inputs[i], self.dtype, **self.hyper[i]).items():
                total[key] = total.get(key, 0.0) + value
        return total

    def assert_close(self, i: int, key: str, actual: Any, expected: Any, tol: tols.Tolerance,
                     **message: Any) -> None:
        __tracebackhide__ = True
        if actual is not None and expected is not None and compare.find_mismatch(
                np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                tol=tol, what=message["what"], context=message["context"]) is None:
            return
        if self.hard:
            if actual is None or expected is None:  # absent on one side: fails, naming both
                compare.assert_state_close(actual, expected, tol=tol, **message)
                return
            compare.assert_close(np.asarray(actual, dtype=np.float64),
                                 np.asarray(expected, dtype=np.float64), tol=tol,
                                 slack=self._hard_slack(i, key, tol),
                                 slack_reason=HARD_SLACK_REASON, **message)
            return
        compare.assert_state_close(actual, expected, tol=_loosened(tol, self._of(i), key,
                                                                  self._allowed(i)),
                                   **message)

    def _hard_slack(self, i: int, key: str, tol: tols.Tolerance) -> Any:
        """The hard tier's per-element allowance beyond ``tol`` (class docstring)."""
        slack = tols.OPTIMIZER_SENSITIVITY * self._of(i).get(key, 0.0) + \
            self._allowed(i).get(key, 0.0)
        if key == "param" and i in self.inputs:
            before = np.abs(np.asarray(self.inputs[i][0], dtype=np.float64))
            slack = slack + tols.HARD_PARAM_TERMS * tol.rtol * before
        return slack


HARD_SLACK_REASON = ("16x the reference's change under 4-ulp shakes of the inputs and "
                     "hyper-parameters, the record's step allowance, and on the parameter "
                     "2 rtol |theta_(t-1)|")


# Conditioning: each step also runs the reference on its inputs perturbed by
# tols.OPTIMIZER_SHAKE_ULPS ulp and adds tols.OPTIMIZER_SENSITIVITY times the change this causes
# in each compared entry to that entry's atol (suite/tolerances.py derives both).


def _shaken(rng: np.random.Generator, dtype: torch.dtype, tree: Any) -> Any:
    """``tree`` with every float array scaled by (1 + u OPTIMIZER_SHAKE_ULPS eps), u uniform in
    [-1, 1]."""
    eps = float(torch.finfo(dtype).eps)
    if isinstance(tree, np.ndarray) and tree.dtype.kind == "f":
        return tree * (1 + tols.OPTIMIZER_SHAKE_ULPS * eps * rng.uniform(-1, 1, tree.shape))
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(_shaken(rng, dtype, v) for v in tree))
    if isinstance(tree, (tuple, list)):
        return type(tree)(_shaken(rng, dtype, v) for v in tree)
    return tree


def _sensitivity(expected: tuple[Array, Any], shaken: tuple[Array, Any], *,
                 per_element: bool = False) -> dict[str, Any]:
    """Per compared entry ("param" and each state key), the greatest change the shake caused;
    ``per_element``: the change of each element (non-finite changes count 0)."""
    (param, state), (param2, state2) = expected, shaken
    pairs = [("param", param, param2)]
    if state is not None and state2 is not None:
        pairs += [(k, getattr(state, k), getattr(state2, k)) for k in state._fields]
    out: dict[str, Any] = {}
    for key, a, b in pairs:
        if isinstance(a, np.ndarray | float | int) and isinstance(b, np.ndarray | float | int):
            diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
            if per_element:
                out[key] = np.where(np.isfinite(diff), diff, 0.0)
            else:
                out[key] = float(np.nanmax(diff)) if diff.size and np.isfinite(diff).any() \
                    else 0.0
    return out


#: Averaging coefficients c in [0, 1] that torch may round as c or as its complement 1 - c
#: (a lerp weight): :func:`_shaken_hyper` moves both.
AVERAGING_HYPER = ("betas", "momentum", "dampening", "rho", "alpha")


def _shaken_hyper(rng: np.random.Generator, dtype: torch.dtype,
                  hyper: dict[str, Any]) -> dict[str, Any]:
    """``hyper`` with every float scaled by (1 + d), d uniform in +-OPTIMIZER_SHAKE_ULPS eps,
    and each averaging coefficient c (:data:`AVERAGING_HYPER`) also moved as 1 - (1 - c)(1 + d):
    a kernel receives its coefficients rounded to its dtype, and lerp(m, g, 1 - beta) rounds
    the weight 1 - beta, which moves a beta near 0 by up to eps absolutely (2.2e-16 becomes 0
    in float32)."""
    eps = tols.OPTIMIZER_SHAKE_ULPS * float(torch.finfo(dtype).eps)

    def move(value: Any, averaging: bool) -> Any:
        if isinstance(value, tuple):
            return tuple(move(v, averaging) for v in value)
        if type(value) is not float:
            return value
        value *= 1 + eps * rng.uniform(-1, 1)
        if averaging and 0.0 < value < 1.0:  # 0 and 1 (switched off, kept) are exact
            # Reflected at 0: a coefficient in use stays in use (SGD's nesterov needs
            # momentum > 0), and a beta below eps still moves by ~eps.
            moved = abs(1 - (1 - value) * (1 + eps * rng.uniform(-1, 1)))
            value = moved if moved > 0.0 else value
        return value

    return {k: move(v, k in AVERAGING_HYPER) for k, v in hyper.items()}


def _loosened(tol: tols.Tolerance, slack: dict[str, float], key: str,
              allowed: Mapping[str, float] | None = None) -> tols.Tolerance:
    """``tol`` with OPTIMIZER_SENSITIVITY times the entry's measured sensitivity added to atol,
    and the record's step allowance for the entry (``OptimizerSpec.step_allowance``)."""
    extra = tols.OPTIMIZER_SENSITIVITY * slack.get(key, 0.0) + (allowed or {}).get(key, 0.0)
    return tol if extra == 0 else tols.Tolerance(tol.rtol, tol.atol + extra)


def _snapshot(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> list[list[Array]]:
    """Each parameter and each tensor or number in its state, as arrays, in a fixed order."""
    out = []
    for p in params:
        entries = [_as_numpy(p)]
        for key in sorted(opt.state[p]):
            v = opt.state[p][key]
            entries.append(_as_numpy(v) if isinstance(v, torch.Tensor)
                           else np.asarray(v, dtype=np.float64))
        out.append(entries)
    return out


def _detached(tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.detach().clone()
    if isinstance(tree, dict):
        return {k: _detached(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_detached(v) for v in tree)
    return copy.deepcopy(tree)


def check_state_dict_round_trip(spec: OptimizerSpec, run: OptimizerRun, implementation: str,
                                dtype: torch.dtype, device: str, split: int) -> None:
    """Save after ``split`` steps, load into a fresh optimizer over copies of the parameters,
    go on: parameters and state must equal the uninterrupted run's exactly (or within the
    record's ``round_trip_tol``, where loading changes a state entry's dtype)."""
    __tracebackhide__ = True
    flags = VARIANTS[implementation]
    params = _torch_params(run, dtype, device, bool(flags.get("differentiable")))
    opt, _ = make_optimizer(spec, run, params, implementation, dtype)
    resumed: tuple[torch.optim.Optimizer, list[torch.Tensor]] | None = None
    context = f"{dtype_name(dtype)}, device={device}, {implementation}, loaded after step {split}"
    tol = spec.round_trip_tol.get(dtype, tols.Tolerance(0.0, 0.0))
    case = f"  {run.hyper}; groups {run.groups}; values seed {run.seed}"
    for step, grads in enumerate(run.grads, start=1):
        runs = [(opt, params)] + ([resumed] if resumed else [])
        for o, ps in runs:
            for i, (p, g) in enumerate(zip(ps, grads, strict=True)):
                if g is None:
                    p.grad = None
                else:
                    p.grad = _grad_pair(g, spec, run, step, i, dtype, device)[0]
            o.step()
        if resumed:
            for i, (a, b) in enumerate(zip(_snapshot(*resumed), _snapshot(opt, params),
                                           strict=True)):
                for k, (x, y) in enumerate(zip(a, b, strict=True)):
                    what = (f"{spec.name}: {'param' if k == 0 else f'state entry {k}'} of param "
                            f"{i} after step {step}, resumed run vs uninterrupted run")
                    compare.assert_close(x, y, tol=tol, what=what, context=context, case=case)
        if step == split:
            # Detached copies: a differentiable run's state tensors carry autograd history,
            # which neither deepcopy nor torch.save accept.
            saved = _detached(opt.state_dict())
            copies = [p.detach().clone().requires_grad_(True) for p in params]
            if flags.get("differentiable"):
                copies = [c.clone() for c in copies]
            fresh, _ = make_optimizer(spec, run, copies, implementation, dtype)
            fresh.load_state_dict(saved)
            resumed = (fresh, copies)
