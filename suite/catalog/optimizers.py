"""Optimizer records: hyper-parameters over their documented ranges, alphabetical."""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st

from references import optimizers as ref
from suite.specs import OptimizerSpec

_DOCS = "https://pytorch.org/docs/stable/generated/torch.optim.{}.html"

LR = st.floats(1e-4, 1.0)
WEIGHT_DECAY = st.one_of(st.just(0.0), st.floats(1e-4, 0.1))


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
        "betas": st.tuples(st.floats(0.0, 0.99), st.floats(0.9, 0.9999)),
        "eps": st.sampled_from([1e-8, 1e-6, 1e-10]),
        "weight_decay": weight_decay,
        "amsgrad": st.booleans(),
        "maximize": st.booleans(),
    })


RECORDS = (
    OptimizerSpec(name="adam", torch_cls=torch.optim.Adam, ref_step=ref.adam,
                  state_type=ref.AdamState, hyper=_adam_hyper(WEIGHT_DECAY),
                  bench_hyper={"lr": 1e-3}, implementations=("for-loop", "foreach", "fused"),
                  docs=_DOCS.format("Adam")),
    OptimizerSpec(name="adamw", torch_cls=torch.optim.AdamW, ref_step=ref.adamw,
                  state_type=ref.AdamState, hyper=_adam_hyper(st.floats(0.0, 0.1)),
                  bench_hyper={"lr": 1e-3}, implementations=("for-loop", "foreach", "fused"),
                  docs=_DOCS.format("AdamW")),
    OptimizerSpec(name="sgd", torch_cls=torch.optim.SGD, ref_step=ref.sgd,
                  state_type=ref.SGDState, hyper=_sgd_hyper(),
                  bench_hyper={"lr": 0.01, "momentum": 0.9},
                  implementations=("for-loop", "foreach", "fused"), docs=_DOCS.format("SGD")),
)
