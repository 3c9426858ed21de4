"""Learning-rate scheduler records: options over their documented ranges, alphabetical.

``EXCLUDED`` lists torch.optim.lr_scheduler classes with no record, each with the reason; a
test fails for any scheduler class torch offers that is in neither.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from hypothesis import strategies as st

from references import schedulers as ref
from suite.specs import SchedulerSpec

_DOCS = "https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.{}.html"

GAMMA = st.floats(0.5, 1.0)
ITERS = st.integers(1, 12)


# Named module-level functions (readable in a failing example), for LambdaLR and
# MultiplicativeLR.
def decay_09(epoch: int) -> float:
    """0.9 ** epoch."""
    return 0.9**epoch


def inverse_time(epoch: int) -> float:
    """1 / (1 + 0.1 epoch)."""
    return 1.0 / (1.0 + 0.1 * epoch)


def warmup_5(epoch: int) -> float:
    """Linear warm-up over 5 epochs, then 1."""
    return min(1.0, (epoch + 1) / 5)


LAMBDAS = st.sampled_from([decay_09, inverse_time, warmup_5])

# Sub-schedulers SequentialLR and ChainedScheduler are built from: (torch class, reference,
# options). Multiplicative schedules only, so that ChainedScheduler's product is meaningful.
_PARTS: dict[str, tuple[type, Any, st.SearchStrategy[dict[str, Any]]]] = {
    "constant_lr": (torch.optim.lr_scheduler.ConstantLR, ref.constant_lr, st.fixed_dictionaries(
        {"factor": st.floats(0.1, 1.0), "total_iters": ITERS})),
    "exponential_lr": (torch.optim.lr_scheduler.ExponentialLR, ref.exponential_lr,
                       st.fixed_dictionaries({"gamma": GAMMA})),
    "linear_lr": (torch.optim.lr_scheduler.LinearLR, ref.linear_lr, st.fixed_dictionaries(
        {"start_factor": st.floats(0.1, 1.0), "end_factor": st.floats(0.1, 1.0),
         "total_iters": ITERS})),
    "step_lr": (torch.optim.lr_scheduler.StepLR, ref.step_lr, st.fixed_dictionaries(
        {"step_size": st.integers(1, 6), "gamma": GAMMA})),
}
_PART = st.tuples(st.sampled_from(sorted(_PARTS)),
                  st.sampled_from(sorted(_PARTS))).flatmap(
    lambda names: st.tuples(*(st.tuples(st.just(n), _PARTS[n][2]) for n in names)))


def _build_parts(optimizer: torch.optim.Optimizer, parts: Any) -> list[Any]:
    return [_PARTS[name][0](optimizer, **options) for name, options in parts]


def _ref_parts(parts: Any) -> list[tuple[Any, dict[str, Any]]]:
    return [(_PARTS[name][1], options) for name, options in parts]


@st.composite
def _sequential(draw: st.DrawFn) -> dict[str, Any]:
    parts = draw(_PART, label="schedulers")
    return {"schedulers": parts, "milestones": [draw(st.integers(1, 15), label="milestone")]}


@st.composite
def _cyclic(draw: st.DrawFn) -> dict[str, Any]:
    base = draw(st.floats(1e-4, 0.1), label="base_lr")
    return {"base_lr": base, "max_lr": base * draw(st.floats(1.0, 10.0), label="max/base"),
            "step_size_up": draw(st.integers(1, 10), label="step_size_up"),
            "step_size_down": draw(st.one_of(st.none(), st.integers(1, 10)),
                                   label="step_size_down"),
            "mode": draw(st.sampled_from(["triangular", "triangular2", "exp_range"]),
                         label="mode"),
            "gamma": draw(st.floats(0.9, 1.0), label="gamma")}


@st.composite
def _one_cycle(draw: st.DrawFn) -> dict[str, Any]:
    return {"max_lr": draw(st.floats(1e-3, 1.0), label="max_lr"),
            "total_steps": draw(st.integers(5, 60), label="total_steps"),
            # pct_start keeps every phase at least one step long (torch divides by its length).
            "pct_start": draw(st.floats(0.15, 0.45), label="pct_start"),
            "anneal_strategy": draw(st.sampled_from(["cos", "linear"]), label="anneal"),
            "div_factor": draw(st.floats(2.0, 100.0), label="div_factor"),
            "final_div_factor": draw(st.floats(10.0, 1e4), label="final_div_factor"),
            "three_phase": draw(st.booleans(), label="three_phase")}


_CHAINED_TAKES_OPTIMIZER = "optimizer" in inspect.signature(
    torch.optim.lr_scheduler.ChainedScheduler.__init__).parameters

RECORDS = (
    SchedulerSpec(
        name="chained_scheduler", torch_cls=torch.optim.lr_scheduler.ChainedScheduler,
        ref=ref.chained_scheduler, options=st.fixed_dictionaries({"schedulers": _PART}),
        build=lambda opt, o: torch.optim.lr_scheduler.ChainedScheduler(
            _build_parts(opt, o["schedulers"]),
            # the optimizer argument is newer (2.1.2 and 2.2.2 reject it; read from the
            # installed signature): it is only a consistency check
            **({"optimizer": opt} if _CHAINED_TAKES_OPTIMIZER else {})),
        ref_options=lambda o: {"schedulers": _ref_parts(o["schedulers"])},
        docs=_DOCS.format("ChainedScheduler")),
    SchedulerSpec(name="constant_lr", torch_cls=torch.optim.lr_scheduler.ConstantLR,
                  ref=ref.constant_lr, options=_PARTS["constant_lr"][2],
                  docs=_DOCS.format("ConstantLR")),
    SchedulerSpec(name="cosine_annealing_lr",
                  torch_cls=torch.optim.lr_scheduler.CosineAnnealingLR,
                  ref=ref.cosine_annealing_lr, options=st.fixed_dictionaries(
                      {"T_max": st.integers(1, 30),
                       "eta_min": st.one_of(st.just(0.0), st.floats(0.0, 1e-3))}),
                  docs=_DOCS.format("CosineAnnealingLR")),
    SchedulerSpec(name="cosine_annealing_warm_restarts",
                  torch_cls=torch.optim.lr_scheduler.CosineAnnealingWarmRestarts,
                  ref=ref.cosine_annealing_warm_restarts, options=st.fixed_dictionaries(
                      {"T_0": st.integers(1, 10), "T_mult": st.integers(1, 3),
                       "eta_min": st.one_of(st.just(0.0), st.floats(0.0, 1e-3))}),
                  docs=_DOCS.format("CosineAnnealingWarmRestarts")),
    SchedulerSpec(name="cyclic_lr", torch_cls=torch.optim.lr_scheduler.CyclicLR,
                  ref=ref.cyclic_lr, options=_cyclic(), docs=_DOCS.format("CyclicLR")),
    SchedulerSpec(name="exponential_lr", torch_cls=torch.optim.lr_scheduler.ExponentialLR,
                  ref=ref.exponential_lr, options=_PARTS["exponential_lr"][2],
                  docs=_DOCS.format("ExponentialLR")),
    SchedulerSpec(name="lambda_lr", torch_cls=torch.optim.lr_scheduler.LambdaLR,
                  ref=ref.lambda_lr, options=st.fixed_dictionaries({"lr_lambda": LAMBDAS}),
                  docs=_DOCS.format("LambdaLR")),
    SchedulerSpec(name="linear_lr", torch_cls=torch.optim.lr_scheduler.LinearLR,
                  ref=ref.linear_lr, options=_PARTS["linear_lr"][2],
                  docs=_DOCS.format("LinearLR")),
    SchedulerSpec(name="multi_step_lr", torch_cls=torch.optim.lr_scheduler.MultiStepLR,
                  ref=ref.multi_step_lr, options=st.fixed_dictionaries(
                      {"milestones": st.lists(st.integers(1, 40), max_size=4),
                       "gamma": GAMMA}),
                  docs=_DOCS.format("MultiStepLR")),
    SchedulerSpec(name="multiplicative_lr",
                  torch_cls=torch.optim.lr_scheduler.MultiplicativeLR,
                  ref=ref.multiplicative_lr,
                  options=st.fixed_dictionaries({"lr_lambda": LAMBDAS}),
                  docs=_DOCS.format("MultiplicativeLR")),
    SchedulerSpec(name="one_cycle_lr", torch_cls=torch.optim.lr_scheduler.OneCycleLR,
                  ref=ref.one_cycle_lr, options=_one_cycle(),
                  max_epochs=lambda o: int(o["total_steps"]) - 1,
                  docs=_DOCS.format("OneCycleLR")),
    SchedulerSpec(name="polynomial_lr", torch_cls=torch.optim.lr_scheduler.PolynomialLR,
                  ref=ref.polynomial_lr, options=st.fixed_dictionaries(
                      {"total_iters": ITERS, "power": st.floats(0.5, 3.0)}),
                  docs=_DOCS.format("PolynomialLR")),
    SchedulerSpec(name="reduce_lr_on_plateau",
                  torch_cls=torch.optim.lr_scheduler.ReduceLROnPlateau,
                  ref=ref.reduce_lr_on_plateau, options=st.fixed_dictionaries({
                      "mode": st.sampled_from(["min", "max"]), "factor": st.floats(0.1, 0.9),
                      "patience": st.integers(0, 4), "threshold": st.sampled_from([1e-4, 0.1]),
                      "threshold_mode": st.sampled_from(["rel", "abs"]),
                      "cooldown": st.integers(0, 3),
                      "min_lr": st.one_of(st.just(0.0), st.floats(1e-5, 1e-3))}),
                  metric_driven=True, docs=_DOCS.format("ReduceLROnPlateau")),
    SchedulerSpec(name="sequential_lr", torch_cls=torch.optim.lr_scheduler.SequentialLR,
                  ref=ref.sequential_lr, options=_sequential(),
                  build=lambda opt, o: torch.optim.lr_scheduler.SequentialLR(
                      opt, _build_parts(opt, o["schedulers"]), milestones=o["milestones"]),
                  ref_options=lambda o: {"schedulers": _ref_parts(o["schedulers"]),
                                         "milestones": o["milestones"]},
                  docs=_DOCS.format("SequentialLR")),
    SchedulerSpec(name="step_lr", torch_cls=torch.optim.lr_scheduler.StepLR,
                  ref=ref.step_lr, options=_PARTS["step_lr"][2], docs=_DOCS.format("StepLR")),
)

# torch.optim.lr_scheduler classes with no record, and why.
EXCLUDED: dict[str, str] = {
    "LRScheduler": "the abstract base class",
    "_LRScheduler": "a deprecated alias of the base class",
}
