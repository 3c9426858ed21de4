"""Optimizer records: hyper-parameters over their documented ranges, alphabetical.

``EXCLUDED`` lists the torch.optim classes with no record, each with the reason; a test fails
for any class torch offers that is in neither.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

from references import (
    optim_adafactor,
    optim_adagrad,
    optim_adam,
    optim_lbfgs,
    optim_muon,
    optim_sgd,
)
from references._optim_common import _gradient
from suite import missing, versions
from suite import tolerances as tols
from suite.specs import ClosureOptimizerSpec, OptimizerSpec

_DOCS = "https://pytorch.org/docs/stable/generated/torch.optim.{}.html"

LR = st.floats(1e-4, 1.0)
WEIGHT_DECAY = st.one_of(st.just(0.0), st.floats(1e-4, 0.1))
BETAS = st.tuples(st.floats(0.0, 0.99), st.floats(0.9, 0.9999))
EPS = st.sampled_from([1e-8, 1e-6, 1e-10])
ALL = ("for-loop", "foreach", "fused")
NOT_FUSED = ("for-loop", "foreach")

# torch keeps some scalar state (ASGD's eta and mu, NAdam's mu_product) as float32 0-dim tensors
# whatever the parameters' dtype (torch.optim.optimizer._get_scalar_dtype: float32 unless the
# default dtype is float64), so in a float64 run those entries carry float32 rounding: one
# rounding of a value computed in float64 is 2**-24 ~ 6e-8 relative; 2.4e-7 (4 ulp) allows the
# few float32 operations in between.
_FLOAT32_SCALAR = tols.Tolerance(rtol=2.4e-7, atol=0.0)
# load_state_dict casts that float32 scalar state to the parameters' dtype (float64), so a
# resumed float64 run goes on with unrounded scalars where the uninterrupted run keeps rounding
# them: up to 2**-24 ~ 6e-8 of each update, accumulated over <= 20 steps (~1.2e-6 of an update
# of at most ~0.3); measured 1.1e-9 absolute. KNOWN_DIFFERENCES.md, "load_state_dict casts".
_RELOADED_FLOAT32_SCALARS = {torch.float64: tols.Tolerance(rtol=1.2e-6, atol=4e-7)}
# Adam's and AdamW's differentiable path keeps the step count as the float32 tensor and computes
# 1 - beta^t from it in float32: beta2 = 0.9999 rounds by up to 6e-8, which is up to 6e-4 of
# 1 - beta2 (1e-4), so 3e-4 of sqrt(1 - beta2^t); with updates of at most ~lr * 3 <= 0.3
# that is 1e-4 absolute (measured: 1.1e-4 of the update at beta2 = 0.9999). Both dtypes.
_FLOAT32_STEP = {("differentiable", torch.float64): tols.Tolerance(rtol=0.0, atol=1e-4),
                 ("differentiable", torch.float32): tols.Tolerance(rtol=0.0, atol=1e-4)}



def _float32_bias_corrections(ref_step: Callable[..., Any]) -> Callable[..., dict[str, float]]:
    """The step allowance of Adam's and AdamW's differentiable path (``_FLOAT32_STEP`` above)
    scaled to the update instead of assuming updates <= 0.3 (the hard tier's lr 1e3): beta
    rounded to float32 (u = 2**-24) moves beta^t by t u beta^t, the power and 1 - beta^t add
    two roundings, so 1 - beta^t is off by d(beta) = (t + 2) u beta^t / (1 - beta^t) + 2 u
    relative; the update lr / (1 - beta1^t) m / (sqrt(v) / sqrt(1 - beta2^t) + eps) by at most
    d(beta1) + d(beta2) / 2 + 2 u (the square root and the division). Allowed: twice that
    times the update's largest magnitude, on the parameter."""

    def allowance(param: np.ndarray, grad: np.ndarray, state: Any, dtype: torch.dtype,
                  **hyper: Any) -> dict[str, float]:
        u = 2.0**-24
        t = 1.0 if state is None else float(state.step) + 1
        new, _ = ref_step(param, grad, state, **hyper)

        def d(beta: float) -> float:
            power = beta**t
            return (t + 2) * u * power / (1 - power) + 2 * u if power < 1 else math.inf

        beta1, beta2 = hyper.get("betas", (0.9, 0.999))
        update = float(np.max(np.abs(np.asarray(new) - np.asarray(param)), initial=0.0))
        return {"param": 2 * (d(beta1) + d(beta2) / 2 + 2 * u) * update}

    return allowance

@st.composite
def _sgd_hyper(draw: st.DrawFn) -> dict[str, Any]:
    momentum = draw(st.one_of(st.just(0.0), st.floats(0.0, 0.99)), label="momentum")
    # torch rejects nesterov without momentum or with dampening (SGD's documented constraint).
    nesterov = momentum > 0 and draw(st.booleans(), label="nesterov")
    dampening = 0.0 if nesterov else draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0)),
                                         label="dampening")
    return {"lr": draw(LR, label="lr"), "momentum": momentum, "dampening": dampening,
            "nesterov": nesterov, "weight_decay": draw(WEIGHT_DECAY, label="weight_decay"),
            "maximize": draw(st.booleans(), label="maximize")}


def _adam_hyper(weight_decay: st.SearchStrategy[float]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        "lr": st.floats(1e-4, 0.1),
        "betas": BETAS,
        "eps": EPS,
        "weight_decay": weight_decay,
        "amsgrad": st.booleans(),
        "maximize": st.booleans(),
    })


_ADAMAX = st.fixed_dictionaries({"lr": st.floats(1e-4, 0.1), "betas": BETAS, "eps": EPS,
                                 "weight_decay": WEIGHT_DECAY, "maximize": st.booleans()})
_ADAGRAD = st.fixed_dictionaries({
    "lr": st.floats(1e-4, 0.5), "lr_decay": st.one_of(st.just(0.0), st.floats(0.0, 0.1)),
    "weight_decay": WEIGHT_DECAY,
    "initial_accumulator_value": st.one_of(st.just(0.0), st.floats(0.0, 1.0)),
    "eps": st.sampled_from([1e-10, 1e-8]), "maximize": st.booleans()})
_ADADELTA = st.fixed_dictionaries({"lr": st.floats(1e-3, 1.0), "rho": st.floats(0.0, 0.99),
                                   "eps": st.sampled_from([1e-6, 1e-8]),
                                   "weight_decay": WEIGHT_DECAY, "maximize": st.booleans()})
_RMSPROP = st.fixed_dictionaries({
    # alpha >= 0.5: centered's variance v - g_ave^2 cancels catastrophically as alpha -> 0
    # (at alpha = 0 it is g^2 - g^2, rounding to +-1 ulp of g^2: NaN or ~|g| / 1e-8 updates).
    "lr": st.floats(1e-4, 0.1), "alpha": st.floats(0.5, 0.999), "eps": EPS,
    "weight_decay": WEIGHT_DECAY, "momentum": st.one_of(st.just(0.0), st.floats(0.0, 0.99)),
    # centered: v - g_ave^2 >= 0 holds mathematically; eps keeps sqrt(0) + eps > 0.
    "centered": st.booleans(), "maximize": st.booleans()})
def accepted(cls: Callable[..., Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``options`` ``cls``'s constructor takes: an option newer than the installed torch
    (RAdam's and NAdam's ``decoupled_weight_decay``, absent in 2.0 and 2.1; their ``maximize``,
    absent in 2.2) is left out, and the reference then uses its default, as torch does."""
    params = inspect.signature(cls).parameters
    return {key: value for key, value in options.items() if key in params}


def _accepted(cls: type, strategies: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The strategies of the options ``cls`` takes (``accepted``): the others are not drawn."""
    return st.fixed_dictionaries(accepted(cls, strategies))


_NADAM = _accepted(torch.optim.NAdam, {
    "lr": st.floats(1e-4, 0.1), "betas": BETAS, "eps": EPS, "weight_decay": WEIGHT_DECAY,
    "momentum_decay": st.sampled_from([4e-3, 0.0, 0.1]),
    "decoupled_weight_decay": st.booleans(), "maximize": st.booleans()})
_RADAM = _accepted(torch.optim.RAdam, {
    # beta2 as low as 0.5 makes rho_t cross 5 (the end of the warm-up) within the first steps.
    "lr": st.floats(1e-4, 0.1), "betas": st.tuples(st.floats(0.0, 0.99),
                                                   st.sampled_from([0.5, 0.9, 0.99, 0.999])),
    "eps": EPS, "weight_decay": WEIGHT_DECAY, "decoupled_weight_decay": st.booleans(),
    "maximize": st.booleans()})
_RPROP = st.fixed_dictionaries({
    "lr": st.floats(1e-4, 0.1), "etas": st.tuples(st.floats(0.1, 0.9), st.floats(1.1, 2.0)),
    "step_sizes": st.tuples(st.sampled_from([1e-6, 1e-3]), st.sampled_from([50.0, 0.05])),
    "maximize": st.booleans()})
_ASGD = st.fixed_dictionaries({
    # torch stores eta_0 = lr in a float32 tensor (KNOWN_DIFFERENCES.md, "ASGD keeps eta and mu
    # in float32"): lr is drawn float32-representable so the first step is exact in float64.
    "lr": st.floats(1e-4, 0.1).map(lambda x: float(np.float32(x))),
    "lambd": st.sampled_from([1e-4, 0.0, 0.1]),
    "alpha": st.floats(0.5, 1.0),
    # A small t0 starts the averaging (mu < 1) within the drawn steps; 1e6 is torch's default.
    "t0": st.sampled_from([1e6, 0.0, 3.0]), "weight_decay": WEIGHT_DECAY,
    "maximize": st.booleans()})
_SPARSE_ADAM = st.fixed_dictionaries({"lr": st.floats(1e-4, 0.1), "betas": BETAS, "eps": EPS,
                                      "maximize": st.booleans()})
_ADAFACTOR = st.fixed_dictionaries({
    # lr caps the relative step rho_t = min(lr, 1 / sqrt(t)): above 1 / sqrt(20) ~ 0.22 the cap
    # gives way within the drawn steps.
    "lr": st.one_of(st.floats(1e-4, 0.1), st.floats(0.1, 1.0)),
    # 1 - beta2_t = t^tau: 0 keeps no memory, -1 the fastest-growing one.
    "beta2_decay": st.one_of(st.sampled_from([-0.8, -0.5, -1.0, 0.0]), st.floats(-1.0, 0.0)),
    # eps1 None is the dtype's epsilon; 1e-3 is comparable with the 1e-3-scale gradients' rows
    # (the clamps of V and of mean(R) act there); eps2 floors RMS(theta) in alpha_t. eps1 stays
    # >= 1e-15: torch clamps V at eps1^2 in the parameters' dtype, which underflows to 0 in
    # float32 for eps1 < ~2.6e-23 and turns a zero gradient into NaN (KNOWN_DIFFERENCES.md;
    # tests/test_optimizers.py::test_adafactor_with_a_tiny_eps1_in_float32, a strict xfail).
    "eps": st.tuples(st.one_of(st.none(), st.sampled_from([1e-15, 1e-8, 1e-3])),
                     st.sampled_from([1e-3, 0.0, 1e-2, 1.0])),
    # d = 1 clips most updates (RMS(U) ~ 1), 5 almost none.
    "d": st.one_of(st.just(1.0), st.floats(1.0, 5.0)),
    "weight_decay": WEIGHT_DECAY, "maximize": st.booleans()})
_MUON = st.fixed_dictionaries({
    "lr": st.floats(1e-4, 0.1), "weight_decay": st.one_of(st.just(0.0), st.floats(0.0, 0.2)),
    "momentum": st.one_of(st.just(0.0), st.floats(0.0, 0.99)), "nesterov": st.booleans(),
    # Jordan's quintic (the default), the classic quintic Newton-Schulz and the cubic one.
    "ns_coefficients": st.sampled_from([optim_muon.NS_COEFFICIENTS, (1.875, -1.25, 0.375),
                                        (1.5, -0.5, 0.0)]),
    # 1e-3 exceeds the norm of some 1e-3-scale updates (the clamp then sets the scale).
    "eps": st.sampled_from([1e-7, 1e-3]), "ns_steps": st.integers(0, 6),
    "adjust_lr_fn": st.sampled_from([None, "original", "match_rms_adamw"])})


def _optimizer(name: str, since: str) -> Callable[..., torch.optim.Optimizer]:
    """torch.optim's class ``name``, or, where this torch lacks it, a stand-in of that name
    that skips every check of the record, saying why."""
    cls = getattr(torch.optim, name, None)
    if cls is not None:
        return cls
    return missing.stand_in(f"torch.optim.{name}", name, since)


def _muon_ties(param: np.ndarray, grad: np.ndarray, state: Any, dtype: torch.dtype,
               **hyper: Any) -> dict[str, float]:
    """Muon's step allowance (tols.MUON_TIE_UNITS): none where the reference's bfloat16
    Newton-Schulz has no rounding within torch's accumulation error of a tie; else
    MUON_TIE_UNITS * 2**-8 * max|O| times the adjusted lr on the parameter. torch forms the
    iteration's input with two lerps in the parameters' dtype, each within ~3 ulp of
    |g| + |buffers|: 8 ulp of that bounds how far torch's input may be from the reference's."""
    defaults = {"momentum": 0.95, "nesterov": True, "ns_coefficients": optim_muon.NS_COEFFICIENTS,
                "eps": 1e-7, "ns_steps": 5, "adjust_lr_fn": None, "lr": 1e-3}
    h = {**defaults, **hyper}
    previous = np.zeros_like(grad) if state is None else state.momentum_buffer
    buf, update = optim_muon._momentum(grad, state, h["momentum"], h["nesterov"])
    input_error = 8 * float(torch.finfo(dtype).eps) * (np.abs(grad) + np.abs(previous)
                                                       + np.abs(buf))
    ortho, ties = optim_muon._newton_schulz(update, h["ns_coefficients"], h["ns_steps"],
                                            h["eps"], input_error)
    if not ties:
        return {}
    lr = optim_muon._adjusted_lr(h["lr"], h["adjust_lr_fn"], np.shape(param))
    return {"param": tols.MUON_TIE_UNITS * 2.0**-8 * float(np.max(np.abs(ortho))) * lr}

def _nadam_mu_product(param: np.ndarray, grad: np.ndarray, state: Any, dtype: torch.dtype,
                      **hyper: Any) -> dict[str, float]:
    """NAdam's step allowance for torch's float32 mu_product P_t (whatever the parameters'
    dtype): the reference starts from torch's P_{t-1} and forms P_t = P_{t-1} mu_t in float64,
    torch rounds it to float32, a relative change delta <= 2**-24. The update's two terms
    t1 = lr (1 - mu) / (1 - P_t) g / d and t2 = lr mu' / (1 - P_t mu') m / d then move by
    P / (1 - P) delta |t1| and P mu' / (1 - P mu') delta |t2|; allowed: 4 times that (the
    record's four float32 roundings), on the parameter. It scales with the update (lr up to
    1e3 in the hard tier), where the record's fixed float64 widening assumes updates <= 0.3."""
    h = {"lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
         "momentum_decay": 4e-3, "decoupled_weight_decay": False, "maximize": False, **hyper}
    beta1 = h["betas"][0]
    _, new = optim_adam.nadam(param, grad, state, **h)
    _, g = _gradient(param, grad, maximize=h["maximize"],
                     weight_decay=h["weight_decay"], lr=h["lr"],
                     decoupled=h["decoupled_weight_decay"])
    t = float(new.step)
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * h["momentum_decay"]))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * h["momentum_decay"]))
    p = float(new.mu_product)
    d = np.sqrt(new.exp_avg_sq / (1 - h["betas"][1] ** t)) + h["eps"]
    t1 = np.abs(h["lr"] * (1 - mu) / (1 - p) * g / d)
    t2 = np.abs(h["lr"] * mu_next / (1 - p * mu_next) * new.exp_avg / d)
    delta = 2.0**-24
    moved = delta * (p / (1 - p) * t1 + p * mu_next / (1 - p * mu_next) * t2)
    return {"param": 4 * float(np.max(moved, initial=0.0))}


# torch.compile(optimizer.step) is checked for the optimizers torch itself compiles and tests
# (test/inductor/test_compiled_optimizers.py, KERNEL_COUNTS "tracks currently supported
# optimizers": every record here but SparseAdam).
# Measured 2026-12-01, torch 2.13.0 (aot_eager): checks that cannot hold these two to the
# reference compiled yet.
_ADAFACTOR_NOT_COMPILED = ("torch.compile(Adafactor.step) compiles no graph on torch 2.13.0 "
                           "(dynamo runs every call eagerly), so a compiled check would check "
                           "eager code")
_MUON_NOT_COMPILED = ("torch.compile(Muon.step) differs from the reference by 1.2e-4 in float32 "
                      "(allowed 1.2e-5, the bfloat16-tie allowance derived for eager): the "
                      "allowance for compiled bfloat16 Newton-Schulz is not derived yet")
_NOT_COMPILABLE = ("torch does not list SparseAdam among its compilable optimizers (its "
                   "compiled-optimizer tests, test/inductor/test_compiled_optimizers.py, leave "
                   "it out: sparse gradients)")

RECORDS: tuple[OptimizerSpec, ...] = (
    OptimizerSpec(name="adafactor", torch_cls=_optimizer("Adafactor", "2.5"),
                  ref_step=optim_adafactor.adafactor, state_type=optim_adafactor.AdafactorState,
                  hyper=_ADAFACTOR, bench_hyper={"lr": 1e-2}, implementations=NOT_FUSED,
                  # eps1=None is torch.finfo(dtype).eps; parameters up to 3-D (factored over the
                  # last two dimensions from 2-D on).
                  dtype_eps="param_eps", param_dims=(0, 3),
                  # torch 2.13's foreach Adafactor raises TypeError with a tensor lr when a
                  # group's parameters have different step counts and lr caps the relative step
                  # of some only (KNOWN_DIFFERENCES.md; tests/test_optimizers.py::
                  # test_foreach_adafactor_with_a_tensor_lr keeps the bug visible).
                  tensor_lr_fails=("foreach",), docs=_DOCS.format("Adafactor"),
                  backends={b: _ADAFACTOR_NOT_COMPILED for b in ("inductor", "aot_eager")}),
    OptimizerSpec(name="adadelta", torch_cls=torch.optim.Adadelta, ref_step=optim_adagrad.adadelta,
                  state_type=optim_adagrad.AdadeltaState, hyper=_ADADELTA, bench_hyper={"lr": 1.0},
                  implementations=NOT_FUSED, complex_params=True, docs=_DOCS.format("Adadelta")),
    OptimizerSpec(name="adagrad", torch_cls=torch.optim.Adagrad, ref_step=optim_adagrad.adagrad,
                  state_type=optim_adagrad.AdagradState, hyper=_ADAGRAD, bench_hyper={"lr": 1e-2},
                  implementations=ALL, complex_params=True,
                  # torch fills every group's "sum" from the constructor's value in __init__
                  # (KNOWN_DIFFERENCES.md, "Adagrad ignores a group's initial_accumulator_value").
                  constructor_only=("initial_accumulator_value",),
                  docs=_DOCS.format("Adagrad")),
    OptimizerSpec(name="adam", torch_cls=torch.optim.Adam, ref_step=optim_adam.adam,
                  state_type=optim_adam.AdamState, hyper=_adam_hyper(WEIGHT_DECAY),
                  bench_hyper={"lr": 1e-3}, implementations=ALL, complex_params=True,
                  implementation_tol=_FLOAT32_STEP,
                  implementation_allowance={"differentiable": _float32_bias_corrections(
                      optim_adam.adam)},
                  docs=_DOCS.format("Adam")),
    OptimizerSpec(name="adamax", torch_cls=torch.optim.Adamax, ref_step=optim_adam.adamax,
                  state_type=optim_adam.AdamaxState, hyper=_ADAMAX, bench_hyper={"lr": 2e-3},
                  implementations=NOT_FUSED, complex_params=True, docs=_DOCS.format("Adamax")),
    OptimizerSpec(name="adamw", torch_cls=torch.optim.AdamW, ref_step=optim_adam.adamw,
                  state_type=optim_adam.AdamState, hyper=_adam_hyper(st.floats(0.0, 0.1)),
                  bench_hyper={"lr": 1e-3}, implementations=ALL, complex_params=True,
                  implementation_tol=_FLOAT32_STEP,
                  implementation_allowance={"differentiable": _float32_bias_corrections(
                      optim_adam.adamw)},
                  docs=_DOCS.format("AdamW")),
    OptimizerSpec(name="asgd", torch_cls=torch.optim.ASGD, ref_step=optim_sgd.asgd,
                  state_type=optim_sgd.ASGDState, hyper=_ASGD, bench_hyper={"lr": 1e-2},
                  implementations=NOT_FUSED, complex_params=True,
                  state_tol={"eta": _FLOAT32_SCALAR, "mu": _FLOAT32_SCALAR},
                  round_trip_tol=_RELOADED_FLOAT32_SCALARS,
                  docs=_DOCS.format("ASGD")),
    OptimizerSpec(name="muon", torch_cls=_optimizer("Muon", "2.9"), ref_step=optim_muon.muon,
                  state_type=optim_muon.MuonState, hyper=_MUON, bench_hyper={"lr": 0.02},
                  # matrices only; no foreach or fused path (torch 2.13 raises "Foreach is not
                  # supported for Muon yet"; the constructor takes no flag).
                  implementations=("for-loop",), param_dims=(2, 2), step_allowance=_muon_ties,
                  docs=_DOCS.format("Muon"),
                  backends={b: _MUON_NOT_COMPILED for b in ("inductor", "aot_eager")}),
    OptimizerSpec(name="nadam", torch_cls=torch.optim.NAdam, ref_step=optim_adam.nadam,
                  state_type=optim_adam.NAdamState, hyper=_NADAM, bench_hyper={"lr": 2e-3},
                  implementations=NOT_FUSED, complex_params=True,
                  state_tol={"mu_product": _FLOAT32_SCALAR},
                  round_trip_tol=_RELOADED_FLOAT32_SCALARS,
                  # The step coefficients lr (1 - mu) / (1 - P_t) and lr mu' / (1 - P_t mu')
                  # use torch's float32 mu_product P_t: its rounding (~1.2e-7 relative, up to
                  # 4 float32 roundings over one step) times P / (1 - P) <= 1 (P <= beta1 / 2
                  # from the first step on) is the update's relative error; updates are at
                  # most ~lr * 3 <= 0.3, so 1e-7 absolute and 5e-7 relative in float64.
                  tol={(tols.Kind.OPTIMIZER, torch.float64): tols.Tolerance(5e-7, 1e-7)},
                  step_allowance=_nadam_mu_product, docs=_DOCS.format("NAdam")),
    OptimizerSpec(name="radam", torch_cls=torch.optim.RAdam, ref_step=optim_adam.radam,
                  state_type=optim_adam.RAdamState, hyper=_RADAM, bench_hyper={"lr": 1e-3},
                  implementations=NOT_FUSED, complex_params=True, docs=_DOCS.format("RAdam")),
    OptimizerSpec(name="rmsprop", torch_cls=torch.optim.RMSprop, ref_step=optim_adagrad.rmsprop,
                  state_type=optim_adagrad.RMSpropState, hyper=_RMSPROP, bench_hyper={"lr": 1e-2},
                  implementations=NOT_FUSED, complex_params=True, docs=_DOCS.format("RMSprop")),
    OptimizerSpec(name="rprop", torch_cls=torch.optim.Rprop, ref_step=optim_sgd.rprop,
                  state_type=optim_sgd.RpropState, hyper=_RPROP, bench_hyper={"lr": 1e-2},
                  implementations=NOT_FUSED, complex_params=True, docs=_DOCS.format("Rprop")),
    OptimizerSpec(name="sgd", torch_cls=torch.optim.SGD, ref_step=optim_sgd.sgd,
                  state_type=optim_sgd.SGDState, hyper=_sgd_hyper(),
                  bench_hyper={"lr": 0.01, "momentum": 0.9},
                  implementations=ALL, complex_params=True,
                  # torch 2.13's fused SGD with momentum raises TypeError when a parameter gets
                  # its first gradient after the group's first step (KNOWN_DIFFERENCES.md;
                  # test_fused_sgd_with_a_late_first_gradient keeps the bug visible).
                  late_first_grad_fails=("fused",), docs=_DOCS.format("SGD")),
    OptimizerSpec(name="sparse_adam", torch_cls=torch.optim.SparseAdam,
                  ref_step=optim_adam.sparse_adam, state_type=optim_adam.SparseAdamState,
                  hyper=_SPARSE_ADAM,
                  bench_hyper={"lr": 1e-3}, implementations=("for-loop",), sparse_grad=True,
                  docs=_DOCS.format("SparseAdam"),
                  backends={b: _NOT_COMPILABLE for b in ("inductor", "aot_eager")}),
)
if versions.COMPILED_OPTIMIZER_STEP_TORCH_2_2:
    _STEP_TORCH_2_2 = (f"torch {torch.__version__}: torch.compile(optimizer.step) on the CPU "
                       "compiles no graph for most records (every call runs eagerly), fails on "
                       "SGD's for-loop float64 step (\"InternalTorchDynamoError: list index out "
                       "of range\") and counts Rprop's step 3 times a call: measured on 2.2.2, "
                       "right on 2.13.0 (KNOWN_DIFFERENCES.md)")
    RECORDS = tuple(dataclasses.replace(spec, backends={
        **dict.fromkeys(("inductor", "aot_eager"), _STEP_TORCH_2_2), **spec.backends})
        for spec in RECORDS)


@st.composite
def _lbfgs_hyper(draw: st.DrawFn) -> dict[str, Any]:
    line_search_fn = draw(st.sampled_from([None, "strong_wolfe"]), label="line_search_fn")
    # Fixed steps: lr up to 2 overshoots on the curved objectives. With the line search lr is
    # only the first trial step: up to 100 drives the bracketing phase's extrapolation and the
    # zoom's boundary safeguard, which trial steps near 1 rarely reach.
    lr = draw(st.floats(0.05, 2.0) if line_search_fn is None
              else st.one_of(st.floats(0.05, 2.0), st.floats(2.0, 100.0)), label="lr")
    return {
        "lr": lr,
        "max_iter": draw(st.integers(1, 8), label="max_iter"),
        # max_eval >= 1: with 0, torch's line search gets max_ls = -1 and fails on an unbound
        # bracket (an invalid setting); None is torch's default, max_iter * 5 // 4.
        "max_eval": draw(st.one_of(st.none(), st.integers(1, 12)), label="max_eval"),
        "tolerance_grad": draw(st.sampled_from([1e-7, 1e-5, 1e-3]), label="tolerance_grad"),
        "tolerance_change": draw(st.sampled_from([1e-9, 1e-6, 1e-4]), label="tolerance_change"),
        "history_size": draw(st.integers(1, 6), label="history_size"),
        "line_search_fn": line_search_fn,
    }


# Closure-driven optimizers: checked by suite.closurecheck, not by the per-gradient lockstep.
CLOSURE_RECORDS = (
    ClosureOptimizerSpec(name="lbfgs", torch_cls=torch.optim.LBFGS, ref_step=optim_lbfgs.lbfgs,
                         state_type=optim_lbfgs.LBFGSState, hyper=_lbfgs_hyper(),
                         docs=_DOCS.format("LBFGS"), ref_options=versions.LBFGS),
)

# torch.optim classes with no OptimizerSpec, and why (none left in torch 2.13).
EXCLUDED: dict[str, str] = {}
