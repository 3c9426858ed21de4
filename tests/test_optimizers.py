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
from suite.battery import check_names
from suite.catalog import optimizers as optimizer_records

# Every optimizer record and L-BFGS through the battery: lockstep steps for every
# implementation torch offers, the state_dict round trip, L-BFGS's step(closure), and the step
# benchmarks (pytest -m bench). The hard tier of the same records runs in tests/test_hard.py.
TestOptimizers = gs.battery(*catalog.OPTIMIZERS, *optimizer_records.CLOSURE_RECORDS,
                            only=[name for name in check_names()
                                  if name != "test_hard_optimizer_steps_match_reference"])


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


@pytest.mark.parametrize("name", sorted(versions.FOREACH_MAXIMIZE_COMPLEX_CLASSES))
@pytest.mark.xfail(versions.FOREACH_MAXIMIZE_COMPLEX_RAISES, strict=True, raises=TypeError,
                   reason=f"torch {torch.__version__} bug (KNOWN_DIFFERENCES.md): foreach "
                          "optimizers with maximize=True write the complex parameters' real "
                          "views into the tuple of negated gradients")
def test_foreach_maximize_with_a_complex_parameter_steps(name: str) -> None:
    """torch documents a complex parameter as stepped like its real view (docs: "Complex
    Numbers", optimizers): the foreach step that maximizes a complex parameter equals the
    for-loop step of its view_as_real, to rounding."""
    cls = getattr(torch.optim, name)
    start = torch.tensor([0.5 - 0.25j, -1.5 + 2.0j], dtype=torch.complex128)
    grad = torch.tensor([0.75 + 0.5j, -0.125 - 1.0j], dtype=torch.complex128)
    as_complex = start.clone().requires_grad_(True)
    as_real = torch.view_as_real(start).clone().requires_grad_(True)
    for param, g, foreach in ((as_complex, grad, True), (as_real, torch.view_as_real(grad), False)):
        opt = cls([param], lr=0.0625, maximize=True, foreach=foreach)
        for _ in range(2):
            param.grad = g.clone()
            opt.step()
    torch.testing.assert_close(torch.view_as_real(as_complex.detach()), as_real.detach(),
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("foreach", [
    pytest.param(False, id="for-loop"),
    pytest.param(True, id="foreach", marks=pytest.mark.xfail(
        versions.ASGD_FOREACH_ETA_POWER_MISPLACED, strict=True, raises=AssertionError,
        reason=f"torch {torch.__version__} bug (KNOWN_DIFFERENCES.md): foreach ASGD raises the "
               "step count, not 1 + lambd lr t, to the power alpha"))])
def test_foreach_asgd_eta_follows_the_documented_schedule(foreach: bool) -> None:
    """ASGD's eta after step t is lr / (1 + lambd lr t)^alpha (torch's docs and the for-loop;
    Bottou 2012), held in float32: after two steps at lr 0.0625, lambd 0.1, alpha 0.5 that is
    0.0621130..., where lr / (1 + lambd lr t^alpha) would be 0.0619524... (2.6e-3 apart)."""
    lr, lambd, alpha = 0.0625, 0.1, 0.5
    param = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.ASGD([param], lr=lr, lambd=lambd, alpha=alpha, foreach=foreach)
    for _ in range(2):
        param.grad = torch.ones_like(param)
        opt.step()
    eta = float(opt.state[param]["eta"])
    expected = lr / (1 + lambd * lr * 2) ** alpha
    assert abs(eta - expected) <= 2.4e-7 * expected, (eta, expected)  # float32's half ulp


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


# --- Adafactor and Muon: torch's known differences, kept visible --------------------------------

_NO_ADAFACTOR = not hasattr(torch.optim, "Adafactor")
_NO_MUON = not hasattr(torch.optim, "Muon")


@pytest.mark.skipif(_NO_ADAFACTOR, reason=f"torch {torch.__version__} has no optim.Adafactor")
@pytest.mark.xfail(strict=True, reason="torch 2.13.0 (KNOWN_DIFFERENCES.md): Adafactor clamps "
                   "V at eps1 * eps1 in the parameters' dtype, which underflows to 0 in float32 "
                   "for eps1 < ~2.6e-23, so a zero gradient gives 0 * inf = NaN where the "
                   "documented G / max(sqrt(V), eps1) is 0")
def test_adafactor_with_a_tiny_eps1_in_float32() -> None:
    from references import optim_adafactor

    p = torch.ones(3, requires_grad=True)
    opt = torch.optim.Adafactor([p], eps=(1e-30, 1e-3))
    grad = np.array([0.0, 1.0, 2.0])
    p.grad = torch.tensor(grad, dtype=torch.float32)
    opt.step()
    expected, _ = optim_adafactor.adafactor(np.ones(3), grad, None, eps=(1e-30, 1e-3))
    np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-6)


@pytest.mark.skipif(_NO_ADAFACTOR, reason=f"torch {torch.__version__} has no optim.Adafactor")
@pytest.mark.xfail(strict=True, raises=TypeError,
                   reason="torch 2.13.0 bug (KNOWN_DIFFERENCES.md): foreach Adafactor with a "
                          "tensor lr mixes floats and tensors in its list of step sizes when a "
                          "group's parameters have different step counts and lr caps the "
                          "relative step min(lr, 1 / sqrt(t)) of some of them only")
def test_foreach_adafactor_with_a_tensor_lr() -> None:
    a = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adafactor([a, b], lr=torch.tensor(1.0, dtype=torch.float64), foreach=True)
    a.grad = torch.ones(2, dtype=torch.float64)
    opt.step()  # a: t = 1; b has no gradient yet
    b.grad = torch.ones(2, dtype=torch.float64)
    opt.step()  # rho(a) = min(lr, 1/sqrt(2)) is a float, rho(b) = min(lr, 1) the tensor lr
    assert opt.state[b]["step"] == 1


@pytest.mark.skipif(_NO_ADAFACTOR, reason=f"torch {torch.__version__} has no optim.Adafactor")
@pytest.mark.xfail(strict=True, reason="torch 2.13.0 documentation (KNOWN_DIFFERENCES.md): "
                   "Adafactor's argument list gives weight_decay's default as 1e-2, the "
                   "signature (and so the behaviour) has 0.0")
def test_adafactor_documents_its_weight_decay_default() -> None:
    import re

    documented = re.search(r"weight_decay \(float, optional\): weight decay coefficient "
                           r"\(default: ([^)]*)\)", torch.optim.Adafactor.__doc__ or "")
    assert documented is not None, "the documentation no longer states the default"
    default = inspect.signature(torch.optim.Adafactor).parameters["weight_decay"].default
    assert float(documented.group(1)) == default


@pytest.mark.skipif(_NO_MUON, reason=f"torch {torch.__version__} has no optim.Muon")
@pytest.mark.xfail(strict=True, reason="torch 2.13.0 documentation (KNOWN_DIFFERENCES.md): Muon "
                   "documents B_t = mu B_{t-1} + g_t but keeps the moving average "
                   "mu B_{t-1} + (1 - mu) g_t (lerp), (1 - mu) times the documented buffer; "
                   "the update agrees, as Newton-Schulz divides by the norm first")
def test_muon_momentum_buffer_is_the_documented_one() -> None:
    rng = np.random.default_rng(0)
    p = torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Muon([p], momentum=0.9)
    documented = np.zeros((3, 4))
    for _ in range(3):
        g = rng.standard_normal((3, 4))
        p.grad = torch.tensor(g)
        opt.step()
        documented = 0.9 * documented + g
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"].numpy(), documented, rtol=1e-12)


def _exact_newton_schulz(g: np.ndarray, steps: int = 5) -> np.ndarray:
    """The documented iteration in float64 arithmetic (no bfloat16 rounding)."""
    from references import optim_muon

    a, b, c = optim_muon.NS_COEFFICIENTS
    x = g.T if g.shape[0] > g.shape[1] else g
    x = x / max(np.linalg.norm(x), 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if g.shape[0] > g.shape[1] else x


@pytest.mark.skipif(_NO_MUON, reason=f"torch {torch.__version__} has no optim.Muon")
@pytest.mark.xfail(strict=True, reason="torch 2.13.0 (KNOWN_DIFFERENCES.md): Muon runs its "
                   "Newton-Schulz iteration in bfloat16 whatever the parameters' dtype (as "
                   "Jordan's implementation), so a float64 update is only bfloat16-accurate: "
                   "0.0083 absolute here, 0.046 the worst of 300 random matrices; the lockstep "
                   "check compares with the reference's emulated bfloat16 iteration instead")
def test_muon_float64_update_is_float64_accurate() -> None:
    rng = np.random.default_rng(1)
    g = rng.standard_normal((12, 20))
    p = torch.zeros(12, 20, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Muon([p], lr=1.0, weight_decay=0.0, momentum=0.0, nesterov=False)
    p.grad = torch.tensor(g)
    opt.step()
    np.testing.assert_allclose(-p.detach().numpy(), _exact_newton_schulz(g), atol=1e-9)


@pytest.mark.skipif(_NO_MUON, reason=f"torch {torch.__version__} has no optim.Muon")
def test_muon_reference_emulates_torchs_bfloat16_iteration_bit_for_bit() -> None:
    """Where no rounding of the reference's iteration lies within torch's float32 accumulation
    error of a bfloat16 tie, torch's orthogonalised update equals the reference's exactly (the
    premise of Muon's step allowance, suite/tolerances.py MUON_TIE_UNITS)."""
    from references import optim_muon

    rng = np.random.default_rng(2)
    checked = 0
    for _ in range(40):
        rows, cols = (int(k) for k in rng.integers(1, 13, 2))
        g = rng.standard_normal((rows, cols))
        p = torch.zeros(rows, cols, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Muon([p], lr=1.0, weight_decay=0.0, momentum=0.0, nesterov=False)
        p.grad = torch.tensor(g)
        opt.step()
        ortho, ties = optim_muon._newton_schulz(g, optim_muon.NS_COEFFICIENTS, 5, 1e-7)
        if ties:
            continue
        checked += 1
        adjusted = optim_muon._adjusted_lr(1.0, None, (rows, cols))  # torch's sqrt(max(1, A/B))
        np.testing.assert_array_equal(p.detach().numpy(), -(adjusted * ortho))
    assert checked >= 10, f"only {checked} of 40 draws were free of ties"


def _optimizer_documenting_lr(lr_types: str) -> type:
    """An SGD whose docstring documents ``lr (<lr_types>)`` and whose step, like torch 2.2.2's
    foreach Adamax, fails with a TypeError on a tensor lr."""

    class Documented(torch.optim.SGD):
        __doc__ = f"""Plain SGD.

        Args:
            lr ({lr_types}): learning rate
        """

        def step(self, closure=None):  # type: ignore[no-untyped-def]
            if any(isinstance(g["lr"], torch.Tensor) for g in self.param_groups):
                raise TypeError("_foreach_addcdiv_() received an invalid combination of "
                                "arguments")
            return super().step(closure)

    return Documented


@pytest.mark.parametrize(("lr_types", "refused"), [("float, optional", True),
                                                    ("float, Tensor, optional", False)],
                         ids=["documented-float", "documented-tensor"])
def test_a_tensor_lr_crash_is_a_refusal_only_outside_the_documented_contract(
        lr_types: str, refused: bool) -> None:
    """Where the class documents lr as a float, a tensor lr that crashes is a limitation, named
    in the documentation's words (the runs give torch the float); where it documents a tensor,
    the same crash propagates: a bug fails, it never skips."""
    from suite import optimsupport

    spec = gs.like("sgd", torch_cls=_optimizer_documenting_lr(lr_types))
    if refused:
        reason = optimsupport.tensor_lr_refusal(spec, "for-loop")
        assert reason is not None and f"lr as ({lr_types})" in reason, reason
    else:
        with pytest.raises(TypeError, match="_foreach_addcdiv_"):
            optimsupport.tensor_lr_refusal(spec, "for-loop")
