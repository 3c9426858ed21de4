"""Every optimizer record, every implementation torch offers, up to 20 steps in lockstep; the
state_dict round trip; LBFGS's step(closure) (suite.closurecheck) — all through the battery —
and a census of torch.optim against the catalogue, and torch's known optimizer defects."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

import gradsuite as gs
from suite import catalog, versions
from suite.catalog import optimizers as optimizer_records

# Every optimizer record and L-BFGS through the battery: lockstep steps for every
# implementation torch offers, the state_dict round trip, L-BFGS's step(closure), and the step
# benchmarks (pytest -m bench).
TestOptimizers = gs.battery(*catalog.OPTIMIZERS, *optimizer_records.CLOSURE_RECORDS)


def _optimizer_classes() -> dict[str, type]:
    return {name: cls for name, cls in inspect.getmembers(torch.optim, inspect.isclass)
            if issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer}


def test_every_torch_optimizer_has_a_record_or_a_written_reason() -> None:
    recorded = {spec.torch_cls.__name__  # type: ignore[attr-defined]
                for spec in (*catalog.OPTIMIZERS, *optimizer_records.CLOSURE_RECORDS)}
    missing = set(_optimizer_classes()) - recorded - set(optimizer_records.EXCLUDED)
    assert not missing, (f"torch {torch.__version__} offers optimizers with no record in "
                         f"suite/catalog/optimizers.py and no reason in EXCLUDED: "
                         f"{sorted(missing)}")
    # The exclusions are written against torch 2.13; an older torch lacks some of the classes
    # they name (added later), which is not staleness.
    if versions.torch_at_least("2.13"):
        stale = set(optimizer_records.EXCLUDED) - set(_optimizer_classes())
        assert not stale, f"EXCLUDED names classes torch no longer has: {sorted(stale)}"


def _fused_sgd_runs_on_the_cpu() -> str:
    """'' when this torch has fused SGD on the CPU, else torch's own refusal (before 2.2 SGD
    takes no ``fused`` argument; 2.3.1 has no CPU kernel for it)."""
    p = torch.zeros(1, requires_grad=True)
    p.grad = torch.ones(1)
    try:
        torch.optim.SGD([p], lr=0.1, fused=True).step()
    except (TypeError, RuntimeError, NotImplementedError) as error:
        return f"torch {torch.__version__}: {str(error).splitlines()[0]}"
    return ""


@pytest.mark.skipif(bool(_fused_sgd_runs_on_the_cpu()), reason=_fused_sgd_runs_on_the_cpu()
                    or "fused SGD runs on the CPU")
@pytest.mark.xfail(strict=True, raises=TypeError,
                   reason="torch 2.13.0 bug (KNOWN_DIFFERENCES.md): fused SGD with momentum "
                          "passes a None momentum buffer to the fused kernel for a parameter "
                          "whose first gradient comes after the group's first step")
def test_fused_sgd_with_a_late_first_gradient() -> None:
    a = torch.zeros(2, requires_grad=True)
    b = torch.zeros(2, requires_grad=True)
    opt = torch.optim.SGD([a, b], lr=0.1, momentum=0.9, fused=True)
    a.grad = torch.ones(2)
    opt.step()
    b.grad = torch.ones(2)
    opt.step()  # for-loop and foreach create b's buffer here; fused raises TypeError
    assert torch.equal(b.detach(), torch.full((2,), -0.1))


def _rosenbrock(x: np.ndarray) -> tuple[float, np.ndarray]:
    f = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
    return f, np.array([-2 * (1 - x[0]) - 400 * x[0] * (x[1] - x[0] ** 2),
                        200 * (x[1] - x[0] ** 2)])


def test_lbfgs_line_search_budget_follows_the_installed_torch() -> None:
    """torch's strong-Wolfe search spends at most max_eval - evaluations spent since torch 2.10
    (up to 25 before; pytorch/pytorch#91581): on Rosenbrock from the origin with max_eval=1 the
    two conventions count 2 and 4 evaluations, and torch matches the one suite.versions picks."""
    from references import optim_lbfgs

    hyper = {"max_iter": 1, "max_eval": 1, "line_search_fn": "strong_wolfe"}
    counts = {budget: optim_lbfgs.lbfgs(np.zeros(2), _rosenbrock, None, **hyper,
                                        line_search_budget=budget)[2].func_evals
              for budget in (True, False)}
    assert counts == {True: 2, False: 4}
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([x], **hyper)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        loss.backward()
        return loss

    opt.step(closure)  # type: ignore[arg-type]
    expected = counts[versions.LBFGS["line_search_budget"]]
    assert opt.state[x]["func_evals"] == expected, (
        f"torch {torch.__version__} spent {opt.state[x]['func_evals']} evaluations, the "
        f"reference with line_search_budget={versions.LBFGS['line_search_budget']} {expected}: "
        f"move the version boundary in suite.versions.LBFGS")
