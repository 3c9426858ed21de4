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
from hypothesis import given, settings
from hypothesis import strategies as st

from references import activations, optim_sgd, recurrent
from suite import catalog, compare, higher
from suite import gradcheck as gc
from suite import optimcheck as oc
from suite import strategies as hs
from suite import tolerances as tols
from suite.inputs import layers as hi
from suite.specs import Case, ModuleForm, OpSpec, OptimizerRun

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
    assert "so the error is torch_fn's (tests.test_harness." in message


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
    first = message.splitlines()[0]
    assert "_unreduced_mse_vjp" in first, first  # the reference is named...
    assert "returns a gradient of shape (3, 4) for 'target', whose shape is (1, 4): a " \
           "gradient must have exactly its argument's shape" in first, first  # ...and the shapes


def _one_sample_as_a_vector(input: torch.Tensor, target: torch.Tensor,
                            **options: object) -> torch.Tensor:
    """multi_margin_loss with a 0-d result returned as shape (1,): what compiled
    multi_margin_loss did with reduction='none' (KNOWN_DIFFERENCES.md, "Compiled ops")."""
    return F.multi_margin_loss(input, target, **options).reshape(-1)  # type: ignore[arg-type]


def test_the_gradient_check_names_an_output_of_the_wrong_shape() -> None:
    """torch's output shape is the cotangent's; a reference VJP that cannot take it is reported
    as the shape mismatch it is, not as the reference's own crash."""
    spec = catalog.by_name("multi_margin_loss")
    assert isinstance(spec, OpSpec)
    case = Case({"input": np.array(0.3), "target": np.array(0)}, ("input",),
                {"reduction": "none", "p": 1, "margin": 1.0}, 0)
    gc.check_gradient(spec, case, torch.float64, "cpu")  # the control
    message = _fails(gc.check_gradient,
                     dataclasses.replace(spec, torch_fn=_one_sample_as_a_vector), case,
                     torch.float64, "cpu")
    assert "torch's output has shape (1,) but the reference's has shape ()" in message, message


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


@pytest.mark.parametrize("half", [torch.float32, torch.float16, torch.bfloat16],
                         ids=["float32", "float16", "bfloat16"])
def test_summation_allowance_does_not_hide_a_wrong_weight_gradient(half: torch.dtype) -> None:
    """...and a weight gradient summed over all but the first batch row (float32 has the
    allowance too)."""
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


@pytest.mark.parametrize("rung", [torch.float64, torch.float32, torch.float16, torch.bfloat16],
                         ids=["float64", "float32", "float16", "bfloat16"])
def test_summation_allowance_is_two_ulp_per_unit_of_terms(rung: torch.dtype) -> None:
    """Every dtype's conditioning term is 2 eps per unit of sum |terms| (tolerances.py)."""
    assert tols.summation(rung) == 2 * torch.finfo(rung).eps



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


class _PlantedBackward(torch.autograd.Function):
    """``forward(fn, backward, *tensors)``: fn's values, and ``backward(g, *tensors)`` as its
    gradients (a planted wrong backward for the half-precision allowance tests below)."""

    @staticmethod
    def forward(ctx, fn, backward, *tensors):  # type: ignore[override]
        ctx.backward_fn = backward
        ctx.save_for_backward(*tensors)
        return fn(*tensors)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        return (None, None, *ctx.backward_fn(g, *ctx.saved_tensors))


@HALF
def test_local_response_norm_allowance_does_not_hide_a_missing_cross_term(
        half: torch.dtype) -> None:
    """local_response_norm's allowance (sum |terms| of its two-term gradient) still catches a
    backward that keeps only g s^(-beta), dropping the window's cross term."""
    spec = catalog.by_name("local_response_norm")
    options = {"size": 3, "alpha": 1.0, "beta": 0.75, "k": 1.0}
    case = Case({"input": np.random.default_rng(5).standard_normal((2, 6, 5))}, ("input",),
                options, 5)

    def wrong(input, size, alpha, beta, k):
        def scale_only(g, x):
            s = F.avg_pool2d(F.pad((x * x).unsqueeze(1), (0, 0, size // 2, (size - 1) // 2)),
                             (size, 1), stride=1).squeeze(1) * alpha + k
            return (g * s ** -beta,)
        return _PlantedBackward.apply(
            lambda x: F.local_response_norm(x, size, alpha, beta, k), scale_only, input)

    _control(gc.check_gradient, spec, case, half)
    message = _fails(gc.check_gradient, dataclasses.replace(spec, torch_fn=wrong), case, half,
                     "cpu")
    assert "local_response_norm: VJP w.r.t. input is not close to the reference" in message


@HALF
def test_cosine_similarity_allowance_does_not_hide_a_missing_term(half: torch.dtype) -> None:
    """cosine_similarity's allowance still catches a gradient without - cos a / |a|^2."""
    spec = catalog.by_name("cosine_similarity")
    case = spec.inputs.sized(16, seed=5)  # type: ignore[union-attr]

    def wrong(x1, x2, dim=1, eps=1e-8):
        def first_terms(g, a, b):
            na, nb = a.norm(dim=dim, keepdim=True), b.norm(dim=dim, keepdim=True)
            gk = g.unsqueeze(dim)
            return gk * b / (na * nb), gk * a / (na * nb)
        return _PlantedBackward.apply(lambda a, b: F.cosine_similarity(a, b, dim, eps),
                                      first_terms, x1, x2)

    _control(gc.check_gradient, spec, case, half)
    message = _fails(gc.check_gradient, dataclasses.replace(spec, torch_fn=wrong), case, half,
                     "cpu")
    assert "cosine_similarity: VJP w.r.t. x1 is not close to the reference" in message


@HALF
def test_embedding_bag_max_allowance_does_not_hide_a_gradient_to_every_row(
        half: torch.dtype) -> None:
    """embedding_bag's max-mode allowance (sum |g| onto the argmax rows) still catches a
    backward that sends each bag's gradient to all of its rows, as sum mode would."""
    spec = catalog.by_name("embedding_bag")
    case = hi.Bags()._case(num=8, dim=4, layout="offsets", sizes=[3, 3, 2], width=1,
                           mode="max", weighted=False, padding_idx=None, scale=1.0, seed=5)

    def wrong(input, weight, offsets=None, mode="mean", include_last_offset=False,
              padding_idx=None):
        def to_every_row(g, w):
            grad = torch.zeros_like(w)
            bags = torch.bucketize(torch.arange(len(input)), offsets, right=True) - 1
            return (grad.index_add(0, input, g[bags]),)
        return _PlantedBackward.apply(
            lambda w: F.embedding_bag(input, w, offsets, mode=mode), to_every_row, weight)

    _control(gc.check_gradient, spec, case, half)
    message = _fails(gc.check_gradient, dataclasses.replace(spec, torch_fn=wrong), case, half,
                     "cpu")
    assert "embedding_bag: VJP w.r.t. weight is not close to the reference" in message


@HALF
def test_instance_norm_allowance_does_not_hide_a_missing_mean(half: torch.dtype) -> None:
    """instance_norm's allowance (the centred gradient's sum |terms|) still catches a backward
    that forgets to subtract mean(dxhat)."""
    spec = catalog.by_name("instance_norm")
    rng = np.random.default_rng(5)
    case = Case({"input": rng.standard_normal((2, 3, 16))}, ("input",),
                {"use_input_stats": True, "momentum": 0.1, "eps": 1e-5}, 5)

    def wrong(input, running_mean=None, running_var=None, weight=None, bias=None,
              use_input_stats=True, momentum=0.1, eps=1e-5):
        def no_mean_term(g, x):
            mu = x.mean(-1, keepdim=True)
            inv_std = torch.rsqrt(((x - mu) ** 2).mean(-1, keepdim=True) + eps)
            xhat = (x - mu) * inv_std
            return (inv_std * (g - xhat * (g * xhat).mean(-1, keepdim=True)),)
        return _PlantedBackward.apply(lambda x: F.instance_norm(x, eps=eps), no_mean_term,
                                      input)

    _control(gc.check_gradient, spec, case, half)
    message = _fails(gc.check_gradient, dataclasses.replace(spec, torch_fn=wrong), case, half,
                     "cpu")
    assert "instance_norm: VJP w.r.t. input is not close to the reference" in message


# --- the module check must fail on a planted bug ------------------------------------------------


class _TanhModuleWithDoubledBackward(torch.nn.Module):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return TanhWithDoubledBackward.apply(input)


def _record(name: str) -> OpSpec:
    spec = catalog.by_name(name)
    assert isinstance(spec, OpSpec)
    return spec


def _with_factory(spec: OpSpec, factory) -> OpSpec:
    """``spec`` whose module form is built by ``factory`` (a planted bug)."""
    assert spec.module is not None
    return dataclasses.replace(spec, module=dataclasses.replace(spec.module, factory=factory))


def _module_check_fails(spec: OpSpec, case) -> str:
    with pytest.raises(AssertionError) as info:
        gc.check_module_form(spec, case, torch.float64, "cpu")
    return str(info.value)


def test_module_check_fails_on_a_module_built_with_a_wrong_option() -> None:
    softplus = _record("softplus")
    bad = _with_factory(softplus, lambda case: torch.nn.Softplus(
        beta=2 * case.options.get("beta", 1.0), threshold=case.options.get("threshold", 20.0)))
    message = _module_check_fails(bad, softplus.inputs.sized(6, seed=3))
    assert message.startswith("softplus: Softplus (module form) output against softplus "
                              "(functional form, as the reference) is not close")
    assert "Greatest absolute difference:" in message and "Reproduce: pytest" in message


def test_module_check_fails_on_a_module_with_a_wrong_backward() -> None:
    tanh = _record("tanh")
    bad = dataclasses.replace(tanh, module=ModuleForm(_TanhModuleWithDoubledBackward))
    message = _module_check_fails(bad, tanh.inputs.sized(6, seed=3))
    assert message.startswith("tanh: _TanhModuleWithDoubledBackward (module form) gradient "
                              "w.r.t. input against tanh")


def test_module_check_fails_on_a_factory_that_builds_the_wrong_parameters() -> None:
    prelu = _record("prelu")  # sized cases have one weight per channel; nn.PReLU() has one
    bad = _with_factory(prelu, lambda case: torch.nn.PReLU())
    message = _module_check_fails(bad, prelu.inputs.sized(6, seed=3))
    assert message.startswith("prelu: the module form PReLU has no parameter or buffer 'weight' "
                              "shaped like the case's (6,) (it has (1,))")


@pytest.mark.parametrize("name", ["softplus", "tanh", "prelu", "rrelu", "batch_norm"])
def test_module_check_passes_on_the_correct_module(name: str) -> None:
    spec = _record(name)  # the control for the planted bugs
    gc.check_module_form(spec, spec.inputs.sized(6, seed=3), torch.float64, "cpu")


def test_module_check_fails_on_a_module_left_in_training_mode() -> None:
    rrelu = _record("rrelu")  # nn.RReLU in training mode draws random slopes
    bad = _with_factory(rrelu, lambda case: torch.nn.RReLU(**case.options))
    message = _module_check_fails(bad, rrelu.inputs.sized(6, seed=3))
    assert message.startswith("rrelu: RReLU (module form) output against rrelu")


def test_module_check_fails_on_a_module_with_a_wrong_running_statistics_update() -> None:
    batch_norm = _record("batch_norm")  # sized: training, momentum 0.1

    def wrong_momentum(case):
        assert batch_norm.module is not None and batch_norm.module.factory is not None
        module = batch_norm.module.factory(case)
        module.momentum = 0.2
        return module

    bad = _with_factory(batch_norm, wrong_momentum)
    message = _module_check_fails(bad, batch_norm.inputs.sized(6, seed=3))
    assert message.startswith("batch_norm: BatchNorm2d (module form) running_mean after the "
                              "call against batch_norm")


# --- backpropagation through time: a dropped recurrent term is caught ----------------------------


RNN_TANH = _record("rnn_tanh")
LSTM = _record("lstm")


def _one_layer_case(spec: OpSpec, steps: int = 4) -> Case:
    """A 1-layer, 1-direction case of ``spec`` (T = ``steps``, B = 2, in 3, hidden 3, bias,
    h_0 (and c_0) given)."""
    case = spec.inputs.sized(3, seed=4)  # type: ignore[union-attr]
    rng = np.random.default_rng(4)
    arrays = {**case.arrays, "input": rng.standard_normal((steps, 2, 3))}
    arrays |= {k: a[:, :2] for k, a in arrays.items() if k in ("h_0", "c_0")}
    return Case(arrays, case.differentiable, case.options, case.seed)


def _truncated_rnn(input, h_0=None, lengths=None, **options):
    """nn.RNN(tanh) unrolled with nn.RNNCell, the hidden state entering step 2 detached: the
    forward is exact, but BPTT drops that step's recurrent term (a planted torch bug)."""
    params = {k.removesuffix("_l0"): v for k, v in options.items() if k.endswith("_l0")}
    cell = torch.nn.RNNCell(input.shape[-1], h_0.shape[-1], device="meta", dtype=input.dtype)
    h, outs = h_0[0], []
    for t in range(input.shape[0]):
        h = torch.func.functional_call(cell, params, (input[t], h.detach() if t == 2 else h))
        outs.append(h)
    return torch.cat([torch.stack(outs).reshape(-1), h.reshape(-1)])


def test_bptt_check_blames_torch_for_an_rnn_dropping_a_recurrent_term() -> None:
    case = _one_layer_case(RNN_TANH)
    bad = dataclasses.replace(RNN_TANH, torch_fn=_truncated_rnn)
    gc.check_forward(bad, case, torch.float64, "cpu")  # the forward is exact: only BPTT is wrong
    gc.check_gradient(RNN_TANH, case, torch.float64, "cpu")  # the control
    message = _fails(gc.check_gradient, bad, case, torch.float64, "cpu")
    assert message.startswith("rnn_tanh: VJP w.r.t. ")
    assert "Verdict: the reference VJP agrees with finite differences" in message
    assert "so the error is torch_fn's (" in message


def test_bptt_check_blames_the_reference_for_an_lstm_dropping_a_cell_state_term(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A reference BPTT that loses the LSTM's cell-state cotangent (dc_{t-1} = dc_t f_t) at one
    step fails against finite differences, and the gradient check blames the reference."""
    case = _one_layer_case(LSTM)
    steps = case.arrays["input"].shape[0]
    step_vjp = recurrent._step_vjp
    calls = [0]

    def loses_dc(kind, d_new, cache, p, nonlinearity):
        dx, d_state, grads = step_vjp(kind, d_new, cache, p, nonlinearity)
        calls[0] += 1
        if calls[0] % steps == 2:  # the third step from the end (one layer, one direction)
            d_state = (d_state[0], np.zeros_like(d_state[1]))
        return dx, d_state, grads

    gc.check_reference_vjp(LSTM, case)  # the control
    monkeypatch.setattr(recurrent, "_step_vjp", loses_dc)
    message = _fails(gc.check_reference_vjp, LSTM, case)
    assert message.startswith("lstm: reference VJP w.r.t. ")
    message = _fails(gc.check_gradient, LSTM, case, torch.float64, "cpu")
    assert "Verdict: the reference VJP disagrees with finite differences" in message
    assert "references.recurrent.lstm_vjp is wrong" in message


# --- the fused linear + cross entropy: its half-precision allowance and its module form ---------

LINEAR_CE = catalog.by_name("linear_cross_entropy")
LINEAR_CE_CASE = Case({"input": np.random.default_rng(7).standard_normal((12, 6)),
                       "linear_weight": np.random.default_rng(8).standard_normal((9, 6)) * 0.6,
                       "target": np.arange(12, dtype=np.int64) % 9,
                       "linear_bias": np.random.default_rng(9).standard_normal(9)},
                      ("input", "linear_weight", "linear_bias"), {"reduction": "sum"}, seed=4)


@pytest.mark.skipif(not hasattr(F, "linear_cross_entropy"),
                    reason=f"torch {torch.__version__} has no F.linear_cross_entropy (new in 2.13)")
@HALF
def test_linear_cross_entropy_allowance_does_not_hide_a_missing_bias(half: torch.dtype) -> None:
    """The fused loss's half-precision allowance (its logits' rounding, through the softmax and
    the Linear layer's VJP) still catches a kernel that drops the bias of one class."""
    def drops_a_bias(input, linear_weight, target, *, linear_bias=None, **options):
        bias = torch.cat([linear_bias[:-1], torch.zeros_like(linear_bias[-1:])])
        return F.linear_cross_entropy(input, linear_weight, target, linear_bias=bias, **options)

    _control(gc.check_gradient, LINEAR_CE, LINEAR_CE_CASE, half)
    bad = dataclasses.replace(LINEAR_CE, torch_fn=drops_a_bias)
    message = _fails(gc.check_gradient, bad, LINEAR_CE_CASE, half, "cpu")
    # Every logit gradient moves (the input's gradient, in float16, fails first; in bfloat16
    # the bias's own gradient does, 0 where 0.12 is due).
    assert message.startswith("linear_cross_entropy: VJP w.r.t. "), message
    assert "is not close to the reference" in message and "for sum |terms| there" in message


@pytest.mark.skipif(not hasattr(torch.nn, "LinearCrossEntropyLoss"),
                    reason=f"torch {torch.__version__} has no nn.LinearCrossEntropyLoss (2.13)")
def test_module_check_fails_on_a_renamed_parameter_of_the_wrong_size() -> None:
    """ModuleForm.param_names reshapes the case's linear_weight to the module's flat
    linear.weight only when the element counts agree: a module with one class too many fails
    as a wrong factory, naming both names."""
    def one_class_too_many(case: Case) -> torch.nn.Module:
        c, features = case.arrays["linear_weight"].shape
        return torch.nn.LinearCrossEntropyLoss(features, c + 1, bias=True, reduction="sum")

    message = _module_check_fails(_with_factory(LINEAR_CE, one_class_too_many), LINEAR_CE_CASE)
    assert message.startswith("linear_cross_entropy: the module form LinearCrossEntropyLoss has "
                              "no parameter or buffer 'linear.weight' shaped like the case's "
                              "'linear_weight' (9, 6) (it has (10, 6))")


@pytest.mark.skipif(not hasattr(torch.nn, "LinearCrossEntropyLoss"),
                    reason=f"torch {torch.__version__} has no nn.LinearCrossEntropyLoss (2.13)")
def test_module_check_passes_on_the_fused_loss_with_a_k_dimensional_weight() -> None:
    """The control: a K-dimensional weight (C, d1, in) reaches the module's flat linear.weight
    (C * d1, in) and its gradient comes back in the case's shape."""
    rng = np.random.default_rng(2)
    case = Case({"input": rng.standard_normal((5, 4)),
                 "linear_weight": rng.standard_normal((3, 2, 4)),
                 "target": rng.integers(0, 3, (5, 2)).astype(np.int64),
                 "linear_bias": rng.standard_normal((3, 2))},
                ("input", "linear_weight", "linear_bias"), {"reduction": "mean"}, seed=1)
    gc.check_module_form(LINEAR_CE, case, torch.float64, "cpu")
    gc.check_forward(LINEAR_CE, case, torch.float64, "cpu")


def test_optimizer_step_allowance_widens_only_the_entry_it_names() -> None:
    """OptimizerSpec.step_allowance adds its atol to the named entry: a 1% wrong update fails
    with an allowance far below the error (and with one for a state key only) and passes with
    one that covers it, so the allowance is applied and nothing else is loosened."""
    # The planted error: lr 1% too large at step 2, 0.001 lr |update| ~ 1e-4 on the parameter.
    bad = dataclasses.replace(SGD, torch_cls=SGDWithWrongLearningRate)
    for allowance in ({"param": 1e-7}, {"momentum_buffer": 1.0}):
        spec = dataclasses.replace(bad, step_allowance=lambda *_, a=allowance, **__: a)
        message = _fails(oc.check_run, spec, RUN, "for-loop", torch.float64, "cpu")
        assert message.startswith("sgd: param 0 after step 2 is not close to the reference")
    covering = dataclasses.replace(bad, step_allowance=lambda *_, **__: {"param": 1e-2})
    oc.check_run(covering, RUN, "for-loop", torch.float64, "cpu")


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_optimizer_runs_keep_to_the_parameter_dimensions(data: st.DataObject) -> None:
    """optimizer_runs(param_dims=...) draws parameters of those dimensions only (Muon takes
    matrices, Adafactor up to 3-D)."""
    low, high = data.draw(st.sampled_from([(2, 2), (0, 3), (0, 2)]))
    run = data.draw(hs.optimizer_runs(st.just({"lr": 0.1}), min_steps=1, max_steps=2,
                                      param_dims=(low, high)))
    assert all(low <= np.ndim(p) <= high for p in run.params), [np.shape(p) for p in run.params]


def test_optimizer_check_passes_the_dtype_epsilon_to_the_reference() -> None:
    """Adafactor's eps1=None is finfo(dtype).eps: with 1e-8 gradients (V below eps1^2 in
    float32) a reference left at float64's epsilon (dtype_eps dropped: a planted bug) fails the
    float32 run, and the record as written passes it."""
    adafactor = catalog.by_name("adafactor")
    run = OptimizerRun(params=[np.linspace(-1, 1, 3)],
                       grads=[[np.array([1e-8, -2e-8, 3e-8])] for _ in range(2)],
                       hyper={"lr": 0.1, "beta2_decay": -0.8, "eps": (None, 1e-3), "d": 1.0,
                              "weight_decay": 0.0, "maximize": False}, seed=0)
    bad = dataclasses.replace(adafactor, dtype_eps=None)
    message = _fails(oc.check_run, bad, run, "for-loop", torch.float32, "cpu")
    assert message.startswith("adafactor: param 0 after step 1 is not close to the reference")
    oc.check_run(adafactor, run, "for-loop", torch.float32, "cpu")


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"),
                    reason=f"torch {torch.__version__} has no optim.Muon")
def test_muon_check_fails_on_a_wrong_update_despite_the_tie_allowance() -> None:
    """Muon's step allowance (bfloat16 ties, tols.MUON_TIE_UNITS) leaves a 1% larger step
    visible: a planted bug in the learning rate fails the lockstep check."""
    muon = catalog.by_name("muon")
    rng = np.random.default_rng(5)
    run = OptimizerRun(params=[rng.standard_normal((4, 6))],
                       grads=[[rng.standard_normal((4, 6))] for _ in range(2)],
                       hyper={"lr": 0.02, "weight_decay": 0.0, "momentum": 0.9,
                              "nesterov": True}, seed=0)

    class MuonWithWrongLearningRate(torch.optim.Muon):  # type: ignore[name-defined,misc]
        def step(self, closure=None):  # type: ignore[override]
            for group in self.param_groups:
                group["lr"] = run.hyper["lr"] * 1.01
            return super().step(closure)

    bad = dataclasses.replace(muon, torch_cls=MuonWithWrongLearningRate)
    message = _fails(oc.check_run, bad, run, "for-loop", torch.float64, "cpu")
    assert message.startswith("muon: param 0 after step 1 is not close to the reference")
    oc.check_run(muon, run, "for-loop", torch.float64, "cpu")


class _TargetGradientOff(torch.autograd.Function):
    """kl_div (log_target) whose target gradient is 0.1% too large: a planted bug."""

    @staticmethod
    def forward(ctx, input, target):  # type: ignore[no-untyped-def]
        ctx.save_for_backward(input, target)
        return F.kl_div(input, target, reduction="none", log_target=True)

    @staticmethod
    def backward(ctx, g):  # type: ignore[no-untyped-def]
        input, target = ctx.saved_tensors
        with torch.enable_grad():
            i, t = input.detach().requires_grad_(), target.detach().requires_grad_()
            gi, gt = torch.autograd.grad(F.kl_div(i, t, reduction="none", log_target=True),
                                         (i, t), g)
        return gi, gt * 1.001


def test_broadcast_allowance_over_copies_still_catches_a_wrong_gradient(dtype) -> None:
    """The broadcast check allows a broadcast argument's gradient the rounding of its sum over
    the copies (gc.copies_slack), and no more: a target gradient 0.1% too large fails, on the
    case where the copies cancel (kl_div, log_target, t = 8.6 over x of both signs) and on a
    tame one; the correct op passes both."""
    spec = catalog.record("kl_div")
    planted = dataclasses.replace(spec, torch_fn=lambda input, target, **o: _TargetGradientOff
                                  .apply(input, target))
    rng = np.random.default_rng(3)
    for scale in (1.0, 8.6):
        case = Case({"input": rng.uniform(-13, 13, (2, 2, 6)),
                     "target": scale + rng.uniform(-0.5, 0.5, (1, 2, 6))},
                    ("input", "target"), {"reduction": "none", "log_target": True}, 0)
        gc.check_gradient(spec, case, dtype, "cpu", broadcast=True)
        with pytest.raises(AssertionError, match=r"VJP w\.r\.t\. target"):
            gc.check_gradient(planted, case, dtype, "cpu", broadcast=True)
