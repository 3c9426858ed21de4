"""Every optimizer record, every implementation torch offers, up to 20 steps in lockstep; the
state_dict round trip; LBFGS's step(closure) (suite.closurecheck); and a census of torch.optim
against the catalogue."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from suite import catalog, closurecheck, versions
from suite import optimcheck as oc
from suite import strategies as hs
from suite.catalog import optimizers as optimizer_records
from suite.specs import ClosureOptimizerSpec, OptimizerRun, OptimizerSpec

# 12 records x 5 variants x 2 dtypes: each example runs up to 20 steps over up to 3 tensors,
# torch and reference, ~10-30 ms; 50 examples per test keeps this file near 1.5 minutes on
# 2 cores under the ci profile (the budget for optimizers and schedulers together is 4).
STEP_EXAMPLES = 50


def _runs(spec: OptimizerSpec, implementation: str,
          dtype: torch.dtype) -> st.SearchStrategy[OptimizerRun]:
    # Complex parameters wherever torch takes them (not in fused implementations).
    complex_ok = oc.complex_refusal(spec, implementation, dtype) is None
    return hs.optimizer_runs(spec.hyper, min_steps=1, max_steps=20, groups=True,
                             none_grads=True, complex_params=complex_ok,
                             tensor_lr=True, constructor_only=spec.constructor_only,
                             first_step_complete=implementation in spec.late_first_grad_fails)


@pytest.mark.parametrize("implementation", list(oc.VARIANTS))
@pytest.mark.parametrize("spec", catalog.OPTIMIZERS, ids=catalog.spec_id)
@settings(max_examples=STEP_EXAMPLES)
@given(data=st.data())
def test_optimizer_steps_match_reference(spec: OptimizerSpec, implementation: str,
                                         dtype: torch.dtype, device: str, data) -> None:
    reason = oc.unavailable(spec, implementation, dtype, device, sparse_grads=True)
    if reason:
        pytest.skip(reason)
    run = data.draw(_runs(spec, implementation, dtype), label="run")
    oc.check_run(spec, run, implementation, dtype, device)


# Each example runs the optimizer twice over up to 20 steps; equality is exact, so a few
# examples per variant find a state entry that is not saved or not restored.
@pytest.mark.parametrize("implementation", list(oc.VARIANTS))
@pytest.mark.parametrize("spec", catalog.OPTIMIZERS, ids=catalog.spec_id)
@settings(max_examples=20)
@given(data=st.data())
def test_state_dict_round_trip_continues_identically(spec: OptimizerSpec, implementation: str,
                                                     dtype: torch.dtype, device: str,
                                                     data) -> None:
    reason = oc.unavailable(spec, implementation, dtype, device, sparse_grads=True)
    if reason:
        pytest.skip(reason)
    run = data.draw(_runs(spec, implementation, dtype), label="run")
    split = data.draw(st.integers(1, len(run.grads)), label="save after step")
    oc.check_state_dict_round_trip(spec, run, implementation, dtype, device, split)


# Each example runs up to 4 steps of up to 8 L-BFGS iterations (and up to 12 evaluations) on
# torch and the reference twice (once perturbed, for the tolerance): ~15 ms. 300 examples
# (~5 s) because some branches are rare: in a probe, a reference that dropped the zoom's
# insufficient-progress safeguard failed about 1 example in 600, a wrong curvature threshold
# 1 in 150.
@pytest.mark.parametrize("spec", optimizer_records.CLOSURE_RECORDS, ids=catalog.spec_id)
@settings(max_examples=300)
@given(data=st.data())
def test_closure_optimizer_steps_match_reference(spec: ClosureOptimizerSpec, device: str,
                                                 data: st.DataObject) -> None:
    # float64 only: L-BFGS decides branches (Wolfe conditions, y^T s > 1e-10, the stopping
    # tests) on computed values, so float32 rounding against the float64 reference flips them
    # and the runs then follow different paths; no tolerance bounds that difference.
    kind = data.draw(st.sampled_from(closurecheck.OBJECTIVES), label="objective")
    n = data.draw(st.integers(2, 8), label="variables")
    split = data.draw(st.integers(0, n - 1), label="split")
    # One parameter, or two (the second 2-D when it can be): torch flattens them in order.
    shapes: list[tuple[int, ...]] = [(n,)] if split == 0 else [(split,), (n - split,)]
    if split and (n - split) % 2 == 0:
        shapes[1] = (2, (n - split) // 2)
    seed = data.draw(hs.SEEDS, label="seed")
    objective = closurecheck.make_objective(kind, n, seed)
    x0 = np.random.default_rng(seed + 1).uniform(-1.5, 1.5, n)
    hyper = data.draw(spec.hyper, label="hyper")
    if not objective.fixed_steps_converge:
        hyper = {**hyper, "line_search_fn": "strong_wolfe"}
    steps = data.draw(st.integers(1, 4), label="steps")
    closurecheck.check_closure_run(spec, objective, x0, shapes, hyper, steps, device)


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
