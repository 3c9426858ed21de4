"""Tests of the harness itself: every checker must fail, readably, on a planted bug.

Each test plants one bug (a torch op with a wrong forward or backward, a reference VJP off by
a factor, an optimizer with a wrong update) into an otherwise correct record and asserts both
that the check fails and what its message says.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from references import activations, optim_sgd
from suite import catalog, compare, higher
from suite import gradcheck as gc
from suite import optimcheck as oc
from suite import tolerances as tols
from suite.specs import Case, OpSpec, OptimizerRun

TANH = catalog.by_name("tanh")
LINEAR = catalog.by_name("linear")
CASE = TANH.inputs.sized(6, seed=3)  # type: ignore[union-attr]


class TanhWithDoubledBackward(torch.autograd.Function):
    """tanh whose backward is off by a factor of 2: a planted torch bug."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return 2 * g * (1 - y * y)


def _fails(check, *args) -> str:
    with pytest.raises(AssertionError) as info:
        check(*args)
    return str(info.value)


def test_forward_check_fails_on_a_value_off_by_more_than_tolerance(dtype) -> None:
    bad = dataclasses.replace(TANH, torch_fn=lambda input: torch.tanh(input) * (1 + 1e-3))
    message = _fails(gc.check_forward, bad, CASE, dtype, "cpu")
    assert message.startswith("tanh: forward is not close to the reference")
    assert "Mismatched elements:" in message
    assert "Greatest absolute difference:" in message and "at index (" in message
    assert "Greatest relative difference: 0.001 at index" in message
    assert "input[" in message and "Reproduce: pytest" in message


def test_forward_check_passes_on_the_correct_op() -> None:
    gc.check_forward(TANH, CASE, torch.float64, "cpu")  # the control for the planted bugs


def test_gradient_check_blames_torch_for_a_wrong_backward() -> None:
    bad = dataclasses.replace(TANH, torch_fn=lambda input: TanhWithDoubledBackward.apply(input))
    message = _fails(gc.check_gradient, bad, CASE, torch.float64, "cpu")
    assert message.startswith("tanh: VJP w.r.t. input is not close to the reference")
    assert "Verdict: the reference VJP agrees with finite differences" in message
    assert "so the error is torch's" in message


@pytest.mark.parametrize("factor", [2.0, -1.0], ids=["doubled", "sign-flipped"])
def test_gradient_check_blames_the_reference_for_a_wrong_vjp(factor: float) -> None:
    def wrong_vjp(g, input):
        return {"input": factor * activations.tanh_vjp(g, input)["input"]}

    bad = dataclasses.replace(TANH, ref_vjp=wrong_vjp)
    message = _fails(gc.check_gradient, bad, CASE, torch.float64, "cpu")
    assert "Verdict: the reference VJP disagrees with finite differences" in message
    assert "wrong_vjp is wrong" in message


@pytest.mark.parametrize("factor", [2.0, -1.0, 1.001], ids=["doubled", "sign-flipped", "0.1%"])
def test_finite_difference_check_fails_on_a_wrong_reference_vjp(factor: float) -> None:
    def wrong_vjp(g, input, weight, bias=None):
        grads = LINEAR.ref_vjp(g, input, weight, bias)  # type: ignore[union-attr]
        return {**grads, "weight": factor * grads["weight"]}

    bad = dataclasses.replace(LINEAR, ref_vjp=wrong_vjp)
    case = LINEAR.inputs.sized(5, seed=1)  # type: ignore[union-attr]
    message = _fails(gc.check_reference_vjp, bad, case)
    assert message.startswith("linear: reference VJP w.r.t. weight disagrees with central "
                               "finite differences")
    assert "<g, J v> by finite differences" in message and "allowed" in message


def test_finite_difference_check_passes_on_the_correct_reference() -> None:
    gc.check_reference_vjp(LINEAR, LINEAR.inputs.sized(5, seed=1))  # type: ignore[union-attr]


MSE = catalog.by_name("mse_loss")
# mse_loss with a target of one row, broadcast against three (OpSpec.broadcasts).
MSE_BROADCAST = Case({"input": np.linspace(-1.0, 1.0, 12).reshape(3, 4),
                      "target": np.array([[0.3, -0.2, 0.5, 0.1]])},
                     ("input", "target"), {"reduction": "sum"}, seed=4)


def _unreduced_mse_vjp(g, input, target, reduction="mean"):
    """mse_loss's VJP with the target's gradient left in the broadcast shape (3, 4) instead of
    summed back to (1, 4): a planted reference bug that <J^T g, v> cannot see, since v of shape
    (1, 4) broadcasts against it and the inner product comes out right."""
    d = 2.0 * np.asarray(g) * (np.asarray(input) - np.asarray(target))
    return {"input": d, "target": -d}


def test_inner_product_alone_cannot_see_an_unreduced_broadcast_vjp() -> None:
    """Why the shape is required: the planted VJP's <J^T g, v> equals the correct one's."""
    v = np.random.default_rng(0).standard_normal((1, 4))
    g = np.ones(())
    bad = _unreduced_mse_vjp(g, **MSE_BROADCAST.arrays)["target"]
    good = MSE.ref_vjp(g, **MSE_BROADCAST.arrays, reduction="sum")["target"]
    assert bad.shape == (3, 4) and good.shape == (1, 4)
    assert np.isclose(np.sum(bad * v), np.sum(good * v))


@pytest.mark.filterwarnings("ignore:Using a target size:UserWarning")  # the broadcast is meant
@pytest.mark.parametrize("check", ["finite differences", "gradient", "jvp"])
def test_checks_require_each_vjp_to_have_its_arguments_shape(check: str) -> None:
    bad = dataclasses.replace(MSE, ref_vjp=_unreduced_mse_vjp)
    if check == "finite differences":
        message = _fails(gc.check_reference_vjp, bad, MSE_BROADCAST)
    elif check == "gradient":
        message = _fails(gc.check_gradient, bad, MSE_BROADCAST, torch.float64, "cpu")
    else:
        message = _fails(higher.check_jvp, bad, MSE_BROADCAST)
    assert message.splitlines()[0] == (
        "tests.test_harness._unreduced_mse_vjp returned the gradient w.r.t. target with shape "
        "(3, 4), but target has shape (1, 4): a VJP must have exactly its argument's shape")


@pytest.mark.filterwarnings("ignore:Using a target size:UserWarning")
def test_checks_pass_the_correct_broadcast_vjp() -> None:
    gc.check_reference_vjp(MSE, MSE_BROADCAST)  # the control for the planted unreduced VJP
    gc.check_gradient(MSE, MSE_BROADCAST, torch.float64, "cpu")
    higher.check_jvp(MSE, MSE_BROADCAST)


SGD = catalog.by_name("sgd")
RUN = OptimizerRun(params=[np.linspace(-1, 1, 6).reshape(2, 3)],
                   grads=[[np.full((2, 3), s)] for s in (0.5, -0.25, 1.0)],
                   hyper={"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": False,
                          "weight_decay": 0.0, "maximize": False}, seed=0)


class SGDWithWrongLearningRate(torch.optim.SGD):
    """An optimizer whose update is 1% too large from the second step on: a planted bug."""

    def step(self, closure=None):  # type: ignore[override]
        steps = getattr(self, "_steps", 0) + 1
        self._steps = steps
        for group in self.param_groups:
            group["lr"] = RUN.hyper["lr"] * (1.01 if steps > 1 else 1.0)
        return super().step(closure)


def test_optimizer_check_fails_on_a_wrong_torch_update() -> None:
    bad = dataclasses.replace(SGD, torch_cls=SGDWithWrongLearningRate)
    message = _fails(oc.check_run, bad, RUN, "for-loop", torch.float64, "cpu")
    assert message.startswith("sgd: param 0 after step 2 is not close to the reference")


def test_optimizer_check_fails_on_a_wrong_reference_state() -> None:
    def sgd_without_dampening_memory(param, grad, state, **hyper):
        new_param, new_state = optim_sgd.sgd(param, grad, state, **hyper)
        return new_param, new_state._replace(momentum_buffer=new_state.momentum_buffer * 0.5)

    bad = dataclasses.replace(SGD, ref_step=sgd_without_dampening_memory)
    message = _fails(oc.check_run, bad, RUN, "foreach", torch.float64, "cpu")
    assert message.startswith("sgd: state['momentum_buffer'] of param 0 after step 1")


def test_optimizer_check_passes_on_the_correct_update() -> None:
    oc.check_run(SGD, RUN, "for-loop", torch.float64, "cpu")


def test_compare_treats_nan_as_equal_only_to_nan() -> None:
    tol = tols.Tolerance(1e-7, 1e-7)
    assert compare.find_mismatch(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]), tol=tol,
                                 what="x", context="") is None
    m = compare.find_mismatch(np.array([np.nan, 1.0]), np.array([0.5, 1.0]), tol=tol,
                              what="x", context="")
    assert m is not None and m.n_mismatch == 1 and m.idx_abs == (0,)
    for actual, expected in ((np.inf, -np.inf), (1.0, np.inf), (np.inf, 1.0)):
        m = compare.find_mismatch(np.array([actual]), np.array([expected]), tol=tol, what="x",
                                  context="")
        assert m is not None and m.max_abs == np.inf, (actual, expected)
    assert compare.find_mismatch(np.array([-np.inf]), np.array([-np.inf]), tol=tol, what="x",
                                 context="") is None


def test_compare_reports_the_greatest_errors_over_mismatches_only() -> None:
    expected = np.zeros((3, 4))
    actual = expected.copy()
    actual[1, 2], actual[2, 3] = 5e-3, 2e-3
    m = compare.find_mismatch(actual, expected, tol=tols.Tolerance(1e-6, 1e-5), what="x",
                              context="")
    assert m is not None
    assert (m.n_mismatch, m.n_total, m.idx_abs, m.max_abs) == (2, 12, (1, 2), 5e-3)
    assert "Mismatched elements: 2 / 12 (16.7%)" in m.message()


def test_compare_rejects_a_shape_mismatch() -> None:
    m = compare.find_mismatch(np.zeros(3), np.zeros((3, 1)), tol=tols.Tolerance(1, 1),
                              what="x", context="")
    assert m is not None and "shape (3,) but the reference has shape (3, 1)" in m.message()


def test_tolerance_overrides_only_loosen() -> None:
    base = tols.resolve(torch.float32, tols.Kind.FORWARD)
    tighter = tols.resolve(torch.float32, tols.Kind.FORWARD, tols.Tolerance(0.0, 0.0))
    looser = tols.resolve(torch.float32, tols.Kind.FORWARD, tols.Tolerance(1.0, 0.0))
    assert tighter == base
    assert looser == tols.Tolerance(1.0, base.atol)


def test_tolerance_lookup_names_the_fix_for_a_missing_row() -> None:
    with pytest.raises(KeyError, match=r"add a row to suite/tolerances\.py"):
        tols.resolve(torch.float16, tols.Kind.OPTIMIZER)  # FORWARD has half rows now


@pytest.mark.parametrize("kinks", [(0.0,), (-5e-4, 5e-4), (-1.0, 1.0, 1.0 + 1e-6)])
def test_domain_keeps_draws_off_every_kink(kinks: tuple[float, ...]) -> None:
    from suite.strategies import Domain

    domain = Domain("test", kinks=kinks)
    x = domain.sample(np.random.default_rng(0), (20000,), 1e-3)
    gaps = np.diff(sorted(set(kinks)))
    margin = min(domain.kink_margin, gaps.min() / 4) if gaps.size else domain.kink_margin
    distance = np.min(np.abs(x[:, None] - np.array(kinks)[None, :]), axis=1)
    assert distance.min() >= margin * (1 - 1e-9), (distance.min(), margin)


HALF = pytest.mark.parametrize("half", [torch.float16, torch.bfloat16],
                               ids=["float16", "bfloat16"])
LINEAR_CASE = LINEAR.inputs.sized(16, seed=5)  # type: ignore[union-attr]


def _control(check, spec, case, half: torch.dtype) -> None:
    """Run the unplanted check first; skip, with torch's message, where torch has no kernel in
    ``half`` on the CPU (torch 2.0.1: "addmm_impl_cpu_" not implemented for 'Half')."""
    try:
        check(spec, case, half, "cpu")
    except RuntimeError as error:
        if "not implemented for" not in str(error):
            raise
        pytest.skip(f"torch {torch.__version__}: {str(error).splitlines()[0]}")


@HALF
def test_summation_allowance_does_not_hide_a_missing_term(half: torch.dtype) -> None:
    """The half-precision allowance for sums (SUMMATION * sum |terms|) still catches a matmul
    that drops one of its terms (the last input feature): off by one term, ~M / n."""
    def drops_a_term(input, weight, bias=None):
        return F.linear(input[..., :-1], weight[:, :-1], bias)

    _control(gc.check_forward, LINEAR, LINEAR_CASE, half)
    bad = dataclasses.replace(LINEAR, torch_fn=drops_a_term)
    message = _fails(gc.check_forward, bad, LINEAR_CASE, half, "cpu")
    assert "linear: forward is not close to the reference" in message
    assert "for sum |terms| there" in message  # the allowance is shown where it was exceeded


@HALF
def test_summation_allowance_does_not_hide_a_wrong_weight_gradient(half: torch.dtype) -> None:
    """...and a weight gradient summed over all but the first batch row."""
    class SkipsARow(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, b):  # type: ignore[override]
            ctx.save_for_backward(x, w)
            return F.linear(x, w, b)

        @staticmethod
        def backward(ctx, g):  # type: ignore[override]
            x, w = ctx.saved_tensors
            return g @ w, g[1:].T @ x[1:], g.sum(0)

    _control(gc.check_gradient, LINEAR, LINEAR_CASE, half)
    bad = dataclasses.replace(LINEAR, torch_fn=lambda input, weight, bias=None:
                              SkipsARow.apply(input, weight, bias))
    message = _fails(gc.check_gradient, bad, LINEAR_CASE, half, "cpu")
    assert "linear: VJP w.r.t. weight is not close to the reference" in message


def test_summation_allowance_is_zero_in_float32_and_float64() -> None:
    """Only the half rungs get the conditioning term (float32/64 atol already covers it)."""
    assert tols.summation(torch.float32) == tols.summation(torch.float64) == 0.0
    assert tols.summation(torch.float16) == 2 * torch.finfo(torch.float16).eps


@HALF
def test_centred_gradient_allowance_does_not_hide_a_missing_mean(half: torch.dtype) -> None:
    """The norms' allowance (sum |terms| of the centred gradient) still catches a layer_norm
    backward that forgets to subtract mean(dxhat)."""
    layer_norm = catalog.by_name("layer_norm")
    case = layer_norm.inputs.sized(16, seed=5)  # type: ignore[union-attr]

    class NoMeanTerm(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, shape, w, b, eps):  # type: ignore[override]
            ctx.save_for_backward(x, w)
            ctx.eps = eps
            return F.layer_norm(x, shape, w, b, eps)

        @staticmethod
        def backward(ctx, g):  # type: ignore[override]
            x, w = ctx.saved_tensors
            mu = x.mean(-1, keepdim=True)
            inv_std = torch.rsqrt(((x - mu) ** 2).mean(-1, keepdim=True) + ctx.eps)
            xhat, dxhat = (x - mu) * inv_std, g * w
            dx = inv_std * (dxhat - xhat * (dxhat * xhat).mean(-1, keepdim=True))
            return dx, None, (g * xhat).sum(0), g.sum(0), None

    def wrong(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        return NoMeanTerm.apply(input, normalized_shape, weight, bias, eps)

    _control(gc.check_gradient, layer_norm, case, half)
    bad = dataclasses.replace(layer_norm, torch_fn=wrong)
    message = _fails(gc.check_gradient, bad, case, half, "cpu")
    assert "layer_norm: VJP w.r.t. input is not close to the reference" in message


# --- the module check must fail on a planted bug ------------------------------------------------


class _TanhModuleWithDoubledBackward(torch.nn.Module):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return TanhWithDoubledBackward.apply(input)


def _record(name: str) -> OpSpec:
    spec = catalog.by_name(name)
    assert isinstance(spec, OpSpec)
    return spec


def _module_check_fails(spec: OpSpec, case) -> str:
    with pytest.raises(AssertionError) as info:
        gc.check_module_form(spec, case, torch.float64, "cpu")
    return str(info.value)


def test_module_check_fails_on_a_module_built_with_a_wrong_option() -> None:
    softplus = _record("softplus")
    bad = dataclasses.replace(softplus, module_factory=lambda case: torch.nn.Softplus(
        beta=2 * case.options.get("beta", 1.0), threshold=case.options.get("threshold", 20.0)))
    message = _module_check_fails(bad, softplus.inputs.sized(6, seed=3))
    assert message.startswith("softplus: Softplus (module form) output against softplus "
                              "(functional form, as the reference) is not close")
    assert "Greatest absolute difference:" in message and "Reproduce: pytest" in message


def test_module_check_fails_on_a_module_with_a_wrong_backward() -> None:
    tanh = _record("tanh")
    bad = dataclasses.replace(tanh, module=_TanhModuleWithDoubledBackward)
    message = _module_check_fails(bad, tanh.inputs.sized(6, seed=3))
    assert message.startswith("tanh: _TanhModuleWithDoubledBackward (module form) gradient "
                              "w.r.t. input against tanh")


def test_module_check_fails_on_a_factory_that_builds_the_wrong_parameters() -> None:
    prelu = _record("prelu")  # sized cases have one weight per channel; nn.PReLU() has one
    bad = dataclasses.replace(prelu, module_factory=lambda case: torch.nn.PReLU())
    message = _module_check_fails(bad, prelu.inputs.sized(6, seed=3))
    assert message.startswith("prelu: the module form PReLU has no parameter or buffer 'weight' "
                              "shaped like the case's (6,) (it has (1,))")


@pytest.mark.parametrize("name", ["softplus", "tanh", "prelu", "rrelu", "batch_norm"])
def test_module_check_passes_on_the_correct_module(name: str) -> None:
    spec = _record(name)  # the control for the planted bugs
    gc.check_module_form(spec, spec.inputs.sized(6, seed=3), torch.float64, "cpu")


def test_module_check_fails_on_a_module_left_in_training_mode() -> None:
    rrelu = _record("rrelu")  # nn.RReLU in training mode draws random slopes
    bad = dataclasses.replace(rrelu, module_factory=lambda case: torch.nn.RReLU(**case.options))
    message = _module_check_fails(bad, rrelu.inputs.sized(6, seed=3))
    assert message.startswith("rrelu: RReLU (module form) output against rrelu")


def test_module_check_fails_on_a_module_with_a_wrong_running_statistics_update() -> None:
    batch_norm = _record("batch_norm")  # sized: training, momentum 0.1

    def wrong_momentum(case):
        module = batch_norm.module_factory(case)  # type: ignore[misc]
        module.momentum = 0.2
        return module

    bad = dataclasses.replace(batch_norm, module_factory=wrong_momentum)
    message = _module_check_fails(bad, batch_norm.inputs.sized(6, seed=3))
    assert message.startswith("batch_norm: BatchNorm2d (module form) running_mean after the "
                              "call against batch_norm")
