"""torch.compile(optimizer.step) (suite.optimcheck with a compiled ``backend``): the check
fails on a planted compile-only bug and on a step that compiled nothing; the plugin collects no
compile-only test without ``--backend``, and skips inductor's CPU tests with a one-line reason
where the C++ toolchain is missing.

The planted-bug tests compile (aot_eager, a few seconds each) and are marked ``compile``: they
run under ``-m compile`` or ``--backend``, not in the default run. The plugin tests only
collect or skip, and run by default.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from suite import catalog, compiled, versions
from suite import optimcheck as oc
from suite.catalog.attention import scaled_dot_product_attention_math
from suite.catalog.optimizers import accepted
from suite.specs import Case, OptimizerRun


def _require_inductor() -> None:
    """Skip, in one line, where inductor cannot compile on the CPU here."""
    if problem := compiled.toolchain_problem() or compiled.dynamo_refusal():
        pytest.skip(f"inductor cannot run here: {problem}")


SGD = catalog.by_name("sgd")
RUN = OptimizerRun(params=[np.linspace(-1, 1, 6).reshape(2, 3)],
                   grads=[[np.full((2, 3), s)] for s in (0.5, -0.25, 1.0)],
                   hyper={"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": False,
                          "weight_decay": 0.0, "maximize": False}, seed=0)


class SGDWrongWhenCompiled(torch.optim.SGD):
    """SGD whose compiled step scales every gradient by 1.01 (eager steps are right): a planted
    compiler bug, visible only to a check that runs the compiled step."""

    def step(self, closure=None):  # type: ignore[override]
        if torch.compiler.is_compiling():  # torch >= 2.3: the compiled-step tests skip on 2.2
            for group in self.param_groups:
                for p in group["params"]:
                    p.grad.mul_(1.01)
        return super().step(closure)


class SGDNeverCompiled(torch.optim.SGD):
    """SGD whose step dynamo is told to skip: "compiled", it runs eagerly (a check of it would
    check eager code)."""

    @torch.compiler.disable  # type: ignore[misc]
    def step(self, closure=None):  # type: ignore[override]
        return super().step(closure)


# torch 2.2 compiles no graph of most optimizer steps on the CPU (versions.
# COMPILED_OPTIMIZER_STEP_TORCH_2_2): the compiled-step checks have nothing compiled to check.
_COMPILED_STEPS = pytest.mark.skipif(
    versions.COMPILED_OPTIMIZER_STEP_TORCH_2_2,
    reason=f"torch {torch.__version__}: torch.compile(optimizer.step) on the CPU compiles no "
           f"graph for most records or fails (KNOWN_DIFFERENCES.md); the optimizer records "
           f"refuse the compiled backends there")


@pytest.mark.compile
@_COMPILED_STEPS
def test_compiled_step_control_passes() -> None:
    oc.check_run(SGD, RUN, "for-loop", torch.float64, "cpu", "aot_eager")


@pytest.mark.compile
@_COMPILED_STEPS
@pytest.mark.parametrize("implementation", oc.COMPILED_VARIANTS)
def test_compiled_step_check_fails_on_a_compile_only_bug(implementation: str) -> None:
    bad = dataclasses.replace(SGD, torch_cls=SGDWrongWhenCompiled)
    oc.check_run(bad, RUN, implementation, torch.float64, "cpu")  # eager: the bug is hidden
    with pytest.raises(AssertionError) as info:
        oc.check_run(bad, RUN, implementation, torch.float64, "cpu", "aot_eager")
    message = str(info.value)
    assert message.startswith("sgd: param 0 after step 1 is not close to the reference"), message
    assert "torch.compile(step, backend='aot_eager')" in message


@pytest.mark.compile
def test_compiled_step_that_compiles_nothing_is_a_compile_error() -> None:
    bad = dataclasses.replace(SGD, torch_cls=SGDNeverCompiled)
    with pytest.raises(compiled.CompileError, match="compiled no graph"):
        oc.check_run(bad, RUN, "for-loop", torch.float64, "cpu", "aot_eager")


# One step on a lone 0-d float64 parameter, with hyper-parameters float32 represents exactly
# (so the float32-rounded hyper-parameters of COMPILED_FLOAT64_FINDINGS cannot be what fails).
_EXACT = {"lr": 2.0**-10, "weight_decay": 0.0, "maximize": False}
_BETAS = {"betas": (0.5, 0.75), "eps": 2.0**-30}
@pytest.mark.compile
@_COMPILED_STEPS
def test_many_compiled_optimizers_do_not_fill_the_recompile_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each optimizer's compiled step adds a cache entry to torch.optim's shared frames; more
    optimizers than RECOMPILE_LIMIT (lowered to 4 here) in one run must not be a "recompile
    limit exceeded" CompileError (compiled.forget_optimizer_frames), and are one without it."""
    monkeypatch.setattr(compiled, "RECOMPILE_LIMIT", 4)
    adam = catalog.by_name("adam")
    run = OptimizerRun(params=[np.linspace(-1, 1, 6).reshape(2, 3)],
                       grads=[[np.full((2, 3), 0.5)]],
                       hyper={"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-8,
                              "weight_decay": 0.0, "amsgrad": False, "maximize": False}, seed=0)
    for _ in range(6):
        oc.check_run(adam, run, "for-loop", torch.float32, "cpu", "aot_eager")
    monkeypatch.setattr(compiled, "forget_optimizer_frames", lambda: None)  # the planted bug
    with pytest.raises(compiled.CompileError, match="recompile limit"):
        for _ in range(6):
            oc.check_run(adam, run, "for-loop", torch.float32, "cpu", "aot_eager")


ZERO_DIM_HYPER = {
    "adadelta": {**_EXACT, "rho": 0.5, "eps": 2.0**-20},
    "adagrad": {**_EXACT, "lr_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 2.0**-30},
    "adam": {**_EXACT, **_BETAS, "amsgrad": False},
    "adamax": {**_EXACT, **_BETAS},
    "adamw": {**_EXACT, **_BETAS, "amsgrad": False},
    "asgd": {**_EXACT, "lambd": 2.0**-10, "alpha": 0.5, "t0": 1e6},
    "nadam": {**_EXACT, **_BETAS, "momentum_decay": 2.0**-8, "decoupled_weight_decay": False},
    "radam": {**_EXACT, **_BETAS, "decoupled_weight_decay": False},
    "rmsprop": {**_EXACT, "alpha": 0.5, "eps": 2.0**-30, "momentum": 0.0, "centered": False},
    "rprop": {"lr": 2.0**-10, "etas": (0.5, 1.25), "step_sizes": (2.0**-20, 50.0),
              "maximize": False},
    "sgd": {**_EXACT, "momentum": 0.0, "dampening": 0.0, "nesterov": False},
}


def _accepted(name: str, hyper: dict[str, Any]) -> dict[str, Any]:
    """The options the record's constructor takes (the catalogue's own filter)."""
    return accepted(catalog.by_name(name).torch_cls, hyper)


def _one_step(name: str, shape: tuple[int, ...]) -> OptimizerRun:
    return OptimizerRun(params=[np.full(shape, 0.5)], grads=[[np.full(shape, -0.25)]],
                        hyper=_accepted(name, ZERO_DIM_HYPER[name]), seed=0)


@pytest.mark.compile
@_COMPILED_STEPS
@pytest.mark.xfail(versions.COMPILED_STEP_LOSES_ZERO_DIM_FLOAT64, strict=True,
                   raises=AssertionError,
                   reason="torch 2.13.0: torch.compile(optimizer.step) (aot_eager and inductor; "
                          "dynamo's eager backend is right) of these records and "
                          "implementations leaves a lone 0-d float64 parameter unchanged: the "
                          "whole update is lost (KNOWN_DIFFERENCES.md)")
@pytest.mark.parametrize("name,implementation", sorted(oc.COMPILED_FLOAT64_ZERO_DIM))
def test_compiled_step_moves_a_zero_dim_float64_parameter(name: str, implementation: str) -> None:
    spec = catalog.by_name(name)
    # Controls (pytest.fail is not an AssertionError: a control that fails fails the test).
    for control in ((_one_step(name, ()), torch.float64, compiled.EAGER),  # eager: right
                    (_one_step(name, (1,)), torch.float64, "aot_eager"),  # shape (1,): right
                    (_one_step(name, ()), torch.float32, "aot_eager")):  # float32: right
        try:
            oc.check_run(spec, control[0], implementation, control[1], "cpu", control[2])
        except AssertionError as error:
            pytest.fail(f"control failed: {error}")
    oc.check_run(spec, _one_step(name, ()), implementation, torch.float64, "cpu", "aot_eager")


@pytest.mark.compile
@pytest.mark.xfail(versions.COMPILED_OPTIMIZER_STEP_TORCH_2_2, strict=True, raises=AssertionError,
                   reason=f"torch {torch.__version__}: the compiled Rprop step counts "
                          f"state['step'] 3 times a call (KNOWN_DIFFERENCES.md)")
def test_compiled_rprop_counts_one_step_per_call() -> None:
    """One call of torch.compile(Rprop.step) (aot_eager, for-loop) on a 0-d float32 parameter
    advances state['step'] by one, as eager's does."""
    param = torch.tensor(0.5, requires_grad=True)
    param.grad = torch.tensor(-0.25)
    optimizer = torch.optim.Rprop([param], lr=2.0**-10, foreach=False)
    step = compiled.compiled_step(optimizer, "rprop.step for-loop float32 cpu aot_eager",
                                  "aot_eager")
    step()
    assert float(optimizer.state[param]["step"]) == 1.0, \
        f"state['step'] {float(optimizer.state[param]['step'])} after one compiled step"


# Fixed float64 runs whose compiled step is float32-level (optimcheck.
# COMPILED_FLOAT64_UNCHARACTERISED): float32-exact hyper-parameters, so no rounding of them is
# what differs. Adamax: one step on a (4, 2) parameter; RAdam (foreach): from step 3.
_FLOAT64_RUNS = {
    "adamax": OptimizerRun(params=[np.linspace(-1, 1, 8).reshape(4, 2)],
                           grads=[[np.linspace(0.75, -0.5, 8).reshape(4, 2)]],
                           hyper={"lr": 0.0390625, "betas": (0.5, 0.75), "eps": 2.0**-20,
                                  "weight_decay": 0.0, "maximize": False}, seed=0),
    "radam": OptimizerRun(params=[np.linspace(-1, 1, 8).reshape(4, 2)],
                          grads=[[np.linspace(0.75, -0.5, 8).reshape(4, 2) * k]
                                 for k in (1.0, -0.5, 0.25, 1.5)],
                          hyper={"lr": 0.0390625, "betas": (0.5, 0.75), "eps": 2.0**-20,
                                 "weight_decay": 0.0, "decoupled_weight_decay": False,
                                 "maximize": False}, seed=0),
}


@pytest.mark.compile
@_COMPILED_STEPS
@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="torch 2.13.0: torch.compile(optimizer.step) (aot_eager) of Adamax "
                          "(5.8e-10 after one step) and RAdam's foreach step (1e-10 after step "
                          "3) is float32-level in float64 (KNOWN_DIFFERENCES.md)")
@pytest.mark.parametrize("name,implementation", [("adamax", "for-loop"), ("adamax", "foreach"),
                                                 ("radam", "foreach")])
def test_compiled_step_is_float64_exact(name: str, implementation: str) -> None:
    spec = catalog.by_name(name)
    run = _FLOAT64_RUNS[name]._replace(hyper=_accepted(name, _FLOAT64_RUNS[name].hyper))
    try:
        oc.check_run(spec, run, implementation, torch.float64, "cpu")  # eager: right
    except AssertionError as error:
        pytest.fail(f"control failed: {error}")
    oc.check_run(spec, run, implementation, torch.float64, "cpu", "aot_eager")


ASGD = catalog.by_name("asgd")
ASGD_RUN = OptimizerRun(params=[np.linspace(-1, 1, 5)],
                        grads=[[np.full(5, 0.3 * k - 0.7)] for k in range(1, 6)],
                        hyper={"lr": 0.02, "lambd": 1e-4, "alpha": 0.75, "t0": 1e6,
                               "weight_decay": 0.0, "maximize": False}, seed=0)


@pytest.mark.compile
@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="torch 2.13.0: torch.compile(ASGD.step) (aot_eager) in float64 differs "
                          "from the reference (and from eager) by ~1.3e-7 after 5 steps, a "
                          "float32-level error (KNOWN_DIFFERENCES.md)")
def test_compiled_asgd_step_is_float64_exact() -> None:
    oc.check_run(ASGD, ASGD_RUN, "for-loop", torch.float64, "cpu")  # eager: right
    oc.check_run(ASGD, ASGD_RUN, "for-loop", torch.float64, "cpu", "aot_eager")


# Three steps of SGD with momentum and weight decay on a complex (3, 2) parameter, given as
# (real, imaginary) pairs, and a real one (the control).
_SGD_HYPER = {"lr": 2.0**-4, "momentum": 0.5, "dampening": 0.0, "nesterov": False,
              "weight_decay": 2.0**-3, "maximize": False}


def _sgd_run(complex_params: bool) -> OptimizerRun:
    shape = (3, 2, 2) if complex_params else (3, 2)
    params = [np.linspace(-1, 1, int(np.prod(shape))).reshape(shape)]
    grads = [[np.linspace(0.75, -0.5, params[0].size).reshape(shape) * k] for k in (1, -2, 3)]
    return OptimizerRun(params=params, grads=grads, hyper=_SGD_HYPER, seed=0,
                        complex_params=complex_params)


@pytest.mark.compile
@pytest.mark.xfail(strict=True, raises=compiled.CompileError,
                   reason=oc.compiled_complex_failure("sgd", "foreach", "inductor"))
def test_compiled_sgd_foreach_step_on_complex_parameters() -> None:
    """inductor must compile SGD's foreach step on complex parameters. Controls: the same run
    eager and under aot_eager, and a real parameter under inductor, are right."""
    _require_inductor()
    if not versions.torch_at_least("2.3"):
        pytest.skip(f"torch {torch.__version__} does not compile SGD's foreach step: dynamo "
                    "runs _multi_tensor_sgd eagerly (\"call torch._dynamo.disable() wrapped "
                    "function\"; measured on 2.2.2)")
    for run, backend in ((_sgd_run(True), compiled.EAGER), (_sgd_run(True), "aot_eager"),
                         (_sgd_run(False), "inductor")):
        try:
            oc.check_run(SGD, run, "foreach", torch.float32, "cpu", backend)
        except (AssertionError, compiled.CompileError) as error:
            pytest.fail(f"control ({backend}) failed: {error}")
    oc.check_run(SGD, _sgd_run(True), "foreach", torch.float32, "cpu", "inductor")


def _celu_errors(backend: str) -> list[float]:
    """Greatest forward and gradient errors of compiled CELU against eager (torch's eager CELU
    passes the record's checks) over calls whose alpha changes: 1.5, then 1.0 and 0.25."""
    torch._dynamo.reset()
    op = compiled.counted(torch.nn.functional.celu, f"celu float32 cpu {backend}", backend)
    errors = []
    for alpha in (1.5, 1.0, 0.25):
        x = torch.tensor([0.12573, -0.13210486, -1.5], requires_grad=True)
        got, want = op(x, alpha), torch.nn.functional.celu(x, alpha)
        (grad,), (want_grad,) = (torch.autograd.grad(y.sum(), x) for y in (got, want))
        errors += [(got - want).abs().max().item(), (grad - want_grad).abs().max().item()]
    return errors


@pytest.mark.compile
@pytest.mark.xfail(versions.INDUCTOR_CELU_STALE_ALPHA, strict=True, raises=AssertionError,
                   reason="torch 2.13.0 to 2.15.0: inductor's compiled CELU (dynamic=True, an "
                          "input that requires grad) keeps the alpha of its first call "
                          "(KNOWN_DIFFERENCES.md)")
def test_inductor_celu_follows_alpha() -> None:
    _require_inductor()
    control = _celu_errors("aot_eager")  # AOTAutograd's graphs without inductor: right
    if max(control) > 1e-6:
        pytest.fail(f"control (aot_eager) off by {max(control):.3g}")
    errors = _celu_errors("inductor")
    assert max(errors) <= 1e-6, (f"compiled CELU after alpha changed: forward and gradient "
                                 f"errors {[f'{e:.3g}' for e in errors]} (alpha 1.5, 1.0, 0.25)")


def _grad(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.linspace(-1, 1, int(np.prod(shape)), dtype=dtype).reshape(shape).requires_grad_()


def _unit(*shape: int) -> torch.Tensor:
    """Values in (0, 1) (probabilities), requiring grad."""
    return torch.linspace(0.1, 0.9, int(np.prod(shape))).reshape(shape).requires_grad_(True)


# Fixed cases that torch.compile(dynamic=True) failed to compile (KNOWN_DIFFERENCES.md,
# "Compiled ops"): (op, arguments by keyword, whether the installed torch is measured wrong,
# backend). The inputs require grad, as in the record's checks (one training graph).
_DYNAMIC_CASES = {
    "conv2d": (torch.conv2d, lambda: {"input": _grad(1, 1, 2), "weight": _grad(1, 1, 1, 1),
                                      "stride": (1, 2), "padding": "valid",
                                      "dilation": (1, 2), "groups": 1},
               versions.INDUCTOR_CONV_DYNAMIC_STRIDE, "inductor"),
    "conv_transpose2d": (torch.nn.functional.conv_transpose2d,
                         lambda: {"input": _grad(1, 1, 2), "weight": _grad(1, 1, 1, 1),
                                  "stride": (1, 1), "padding": (0, 1), "output_padding": (0, 1),
                                  "groups": 1, "dilation": (1, 2)},
                         versions.INDUCTOR_CONV_DYNAMIC_STRIDE, "inductor"),
    "adaptive_avg_pool2d": (torch.nn.functional.adaptive_avg_pool2d,
                            lambda: {"input": _grad(1, 1, 3), "output_size": (None, None)},
                            versions.INDUCTOR_ADAPTIVE_POOL_UNBATCHED, "inductor"),
    "lp_pool1d": (torch.nn.functional.lp_pool1d,
                  lambda: {"input": _grad(1, 1), "norm_type": 1, "kernel_size": 1,
                           "ceil_mode": False},
                  versions.LP_POOL_SYMINT_NORM, "aot_eager"),
    "interpolate_bicubic_antialias": (torch.nn.functional.interpolate,
                                      lambda: {"input": _grad(1, 1, 1, 1), "mode": "bicubic",
                                               "size": (1, 2), "antialias": True},
                                      versions.AA_BICUBIC_BACKWARD_SYMINT_SIZES, "aot_eager"),
    "interpolate_area": (torch.nn.functional.interpolate,
                         lambda: {"input": _grad(1, 1, 3, 1), "mode": "area", "size": (2, 1)},
                         versions.INDUCTOR_ADAPTIVE_POOL_UNBATCHED, "inductor"),
    # These two compile their forward and fail in the backward (run below).
    "conv3d": (torch.conv3d, lambda: {"input": _grad(2, 1, 1, 3, 2),
                                      "weight": _grad(1, 1, 1, 1, 1), "stride": (1, 2, 1),
                                      "padding": (0, 0, 1), "dilation": (1, 1, 2), "groups": 1},
               versions.INDUCTOR_CONV3D_BACKWARD_DYNAMIC, "inductor"),
    "max_unpool2d": (torch.nn.functional.max_unpool2d,
                     lambda: {"input": _grad(2, 2, 4, 2),
                              # distinct positions of each 8 x 4 output plane
                              "indices": torch.arange(16).reshape(2, 4, 2).expand(2, 2, 4, 2)
                              .contiguous(), "kernel_size": (2, 3), "padding": (0, 1)},
                     versions.INDUCTOR_MAX_UNPOOL_BACKWARD_DYNAMIC, "inductor"),
    # torch 2.2's failures (versions.INDUCTOR_DYNAMIC_TORCH_2_2), each on a case of its own.
    **{name: (fn, arguments, versions.INDUCTOR_DYNAMIC_TORCH_2_2, "inductor")
       for name, (fn, arguments) in {
           "binary_cross_entropy": (F.binary_cross_entropy, lambda: {
               "input": _unit(3), "target": _unit(3), "weight": _unit(3).detach(),
               "reduction": "mean"}),
           "cross_entropy": (F.cross_entropy, lambda: {
               "input": _grad(2), "target": _unit(2), "weight": _unit(2).detach(),
               "reduction": "mean", "label_smoothing": 0.0}),
           "conv1d": (F.conv1d, lambda: {"input": _grad(1, 1, 3), "weight": _grad(1, 1, 1),
                                         "stride": (2,)}),
           "conv_transpose1d": (F.conv_transpose1d, lambda: {
               "input": _grad(1, 1, 3), "weight": _grad(1, 1, 2), "dilation": (2,)}),
           "embedding_bag": (F.embedding_bag, lambda: {
               "input": torch.tensor([0, 2, 1, 3]), "weight": _grad(5, 3),
               "offsets": torch.tensor([0, 2]), "mode": "mean"}),
           # float64: float32's gradient differs by reordered sums beyond the 1e-6 compared
           "group_norm": (F.group_norm, lambda: {"input": _grad(2, 4, 3, dtype=torch.float64),
                                                 "num_groups": 2,
                                                 "weight": _grad(4, dtype=torch.float64),
                                                 "bias": _grad(4, dtype=torch.float64)}),
           "interpolate_bilinear_antialias": (F.interpolate, lambda: {
               "input": _grad(1, 1, 2, 2), "size": (1, 1), "mode": "bilinear",
               "antialias": True}),
           "lp_pool1d_inf": (F.lp_pool1d, lambda: {"input": _grad(1, 1, 4),
                                                   "norm_type": float("inf"),
                                                   "kernel_size": 2}),
           "pixel_shuffle": (F.pixel_shuffle, lambda: {"input": _grad(1, 4, 1, 2),
                                                       "upscale_factor": 2}),
           "pixel_unshuffle": (F.pixel_unshuffle, lambda: {"input": _grad(1, 1, 3),
                                                           "downscale_factor": 1}),
           "fractional_max_pool2d": (F.fractional_max_pool2d, lambda: {
               "input": _grad(1, 3, 1), "kernel_size": (1, 1), "output_size": (2, 1),
               "_random_samples": torch.tensor([[[0.3, 0.6]]])}),
           "fractional_max_pool3d": (F.fractional_max_pool3d, lambda: {
               "input": _grad(1, 2, 3, 4), "kernel_size": (1, 1, 2), "output_size": (1, 2, 1),
               "_random_samples": torch.tensor([[[0.3, 0.6, 0.2]]])}),
           "channel_shuffle": (F.channel_shuffle, lambda: {"input": _grad(1, 4, 2),
                                                           "groups": 2}),
           "scaled_dot_product_attention": (scaled_dot_product_attention_math, lambda: {
               "query": _grad(2, 3, 4), "key": _grad(2, 5, 4), "value": _grad(2, 5, 4)}),
       }.items()},
}


@pytest.mark.compile
@pytest.mark.parametrize("name", [pytest.param(
    name, marks=pytest.mark.xfail(wrong, strict=True, raises=compiled.CompileError,
                                  reason=f"torch {torch.__version__}: torch.compile({name}, "
                                         f"backend={backend!r}, dynamic=True) fails on this "
                                         f"case (KNOWN_DIFFERENCES.md, \"Compiled ops\")"))
    for name, (_, _, wrong, backend) in _DYNAMIC_CASES.items()])
def test_compiles_dynamic_shapes(name: str) -> None:
    """The op compiles under dynamic=True on the case, forward and backward (AOTAutograd
    compiles the backward when it first runs), and matches eager there."""
    fn, arguments, _, backend = _DYNAMIC_CASES[name]
    if backend == "inductor":
        _require_inductor()
    torch._dynamo.reset()
    mine, theirs = arguments(), arguments()
    got = compiled.counted(fn, f"{name} float32 cpu {backend}", backend)(**mine)
    want = fn(**theirs)
    assert got.shape == want.shape and torch.allclose(got, want, rtol=1e-6, atol=1e-6), \
        f"compiled {name} differs from eager by {(got - want).abs().max().item():.3g}"
    with compiled.compiler_failures(f"{name} [{backend}] backward"):
        got.sum().backward()
    want.sum().backward()
    for key, tensor in mine.items():
        if isinstance(tensor, torch.Tensor) and tensor.requires_grad:
            assert torch.allclose(tensor.grad, theirs[key].grad, rtol=1e-6, atol=1e-6), \
                f"compiled {name}'s gradient w.r.t. {key} differs from eager's"


@pytest.mark.compile
@pytest.mark.parametrize("mode, shape, size", [
    pytest.param("bilinear", (1, 1, 1, 2), (2, 1),
                 marks=pytest.mark.xfail(
                     versions.INDUCTOR_INTERPOLATION_WRONG_TORCH_2_2, strict=True,
                     raises=AssertionError,
                     reason=f"torch {torch.__version__}: inductor's bilinear interpolation is "
                            f"wrong on this case (KNOWN_DIFFERENCES.md)"), id="bilinear"),
    pytest.param("bicubic", (1, 1, 2, 2), (3, 2), marks=pytest.mark.xfail(
        versions.INDUCTOR_INTERPOLATION_WRONG_TORCH_2_2, strict=True, raises=AssertionError,
        reason=f"torch {torch.__version__}: inductor's float64 bicubic interpolation is only "
               f"float32-accurate (KNOWN_DIFFERENCES.md)"), id="bicubic"),
])
def test_inductor_interpolation_matches_eager_in_float64(mode: str, shape: tuple[int, ...],
                                                         size: tuple[int, int]) -> None:
    """Compiled float64 interpolation, forward and gradient, against eager's to float64's
    precision: a few roundings of values of order 1 (1e-12 leaves room for a reordered sum and
    catches float32 arithmetic, whose rounding is ~6e-8)."""
    _require_inductor()
    torch._dynamo.reset()
    x = torch.linspace(-1, 1, int(np.prod(shape)), dtype=torch.float64).reshape(shape)
    mine, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    op = compiled.counted(F.interpolate, f"interpolate_{mode} float64 cpu inductor", "inductor")
    got, want = op(mine, size=size, mode=mode), F.interpolate(theirs, size=size, mode=mode)
    cotangent = torch.linspace(0.5, 1.5, want.numel(), dtype=torch.float64).reshape(want.shape)
    with compiled.compiler_failures(f"interpolate_{mode} [inductor] backward"):
        got.backward(cotangent)
    want.backward(cotangent)
    forward, gradient = ((got - want).abs().max().item(),
                         (mine.grad - theirs.grad).abs().max().item())
    assert forward <= 1e-12 and gradient <= 1e-12, \
        f"compiled {mode} interpolation differs from eager's by {forward:.3g} (forward) and " \
        f"{gradient:.3g} (gradient) on input {shape} to size {size}"


@pytest.mark.compile
@pytest.mark.xfail(versions.INDUCTOR_UPSAMPLE_SIDE_ONE or versions.INDUCTOR_DYNAMIC_TORCH_2_2,
                   strict=True, raises=compiled.CompileError,
                   reason=f"torch {torch.__version__}: inductor cannot compile float64 linear "
                          f"upsampling of a side of length 1 on two threads (2.13) or at all "
                          f"(2.2) (KNOWN_DIFFERENCES.md)")
@pytest.mark.parametrize("shape, size", [((1, 1, 1), (3,)), ((1, 1, 1, 1, 1), (1, 1, 3))],
                         ids=["linear", "trilinear"])
def test_inductor_upsamples_a_side_of_length_1_on_two_threads(shape: tuple[int, ...],
                                                              size: tuple[int, ...]) -> None:
    """The suite runs torch on one thread, where torch 2.13's inductor compiles this; on two
    its C++ codegen's vectorised store asserts. Compiled on two threads, then compared with
    eager (every output element is the one input element)."""
    _require_inductor()
    mode = "linear" if len(shape) == 3 else "trilinear"
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch._dynamo.reset()
        x = torch.full(shape, 0.25, dtype=torch.float64, requires_grad=True)
        op = compiled.counted(F.interpolate, f"interpolate_{mode} float64 cpu inductor",
                              "inductor")
        got = op(x, size=size, mode=mode)
        with compiled.compiler_failures(f"interpolate_{mode} [inductor] backward"):
            got.sum().backward()
    finally:
        torch.set_num_threads(threads)
        torch._dynamo.reset()  # nothing compiled on two threads is reused on one
    assert torch.equal(got.detach(), torch.full(got.shape, 0.25, dtype=torch.float64))
    assert x.grad is not None and x.grad.item() == 3.0, f"gradient {x.grad} where 3"


@pytest.mark.compile
@pytest.mark.parametrize("dims", [pytest.param(dims, marks=pytest.mark.xfail(
    wrong, strict=True, raises=AssertionError,
    reason=f"torch {torch.__version__}: inductor's avg_pool{dims}d backward divides an "
           f"overhanging ceil_mode window's gradient by the whole kernel (KNOWN_DIFFERENCES.md)"))
    for dims, wrong in versions.INDUCTOR_AVG_POOL_CEIL_OVERHANG_GRADIENT.items()])
def test_inductor_avg_pool_gradient_of_an_overhanging_window(dims: int) -> None:
    """Input [0.1, 0.2, 0.64] along the last side, kernel 2, stride 2, ceil_mode: the second
    window [2, 4) overhangs the (unpadded) input, so with count_include_pad it averages over
    its part inside the padded input, x[2] / 1 (torch's documented divisor, what eager and
    the reference compute). The gradient of z = ((x0 + x1) / 2, x2 / 1) under a cotangent of
    ones is [0.5, 0.5, 1]; the compiled forward must give (0.15, 0.64) as control."""
    _require_inductor()
    pool = getattr(torch.nn.functional, f"avg_pool{dims}d")
    kernel = (1,) * (dims - 1) + (2,)
    x = torch.tensor([0.1, 0.2, 0.64], dtype=torch.float64).reshape((1, 1) + (1,) * (dims - 1)
                                                                   + (3,)).requires_grad_()
    torch._dynamo.reset()
    op = compiled.counted(pool, f"avg_pool{dims}d float64 cpu inductor", "inductor")
    out = op(x, kernel_size=kernel, ceil_mode=True, count_include_pad=True)
    if not torch.allclose(out.flatten(), torch.tensor([0.15, 0.64], dtype=torch.float64)):
        pytest.fail(f"control (compiled forward) {out.flatten().tolist()} where [0.15, 0.64]")
    out.sum().backward()
    got = x.grad.flatten().tolist()
    assert np.allclose(got, [0.5, 0.5, 1.0], rtol=0, atol=1e-15), \
        f"compiled avg_pool{dims}d gradient {got} where [0.5, 0.5, 1.0]"


@pytest.mark.compile
@pytest.mark.xfail(versions.INDUCTOR_FRACTIONAL_MAX_POOL3D_SAMPLE_ORDER
                   or versions.INDUCTOR_DYNAMIC_TORCH_2_2, strict=True,
                   raises=(AssertionError, compiled.CompileError),
                   reason="torch 2.13.0 to 2.15.0: inductor's fractional_max_pool3d reads "
                          "_random_samples in another order than eager; torch 2.2 cannot "
                          "compile it with dynamic=True (KNOWN_DIFFERENCES.md)")
def test_inductor_fractional_max_pool3d_reads_samples_in_depth_height_width_order() -> None:
    """Input (1, 2, 3, 4) (unbatched: depth 2, height 3, width 4), kernel (1, 2, 1), output
    (1, 1, 3), samples (0.4, 0.9, 0.2) for (depth, height, width). Depth and height have one
    window, the last (start side - kernel); the width's windows start at
    floor((i + u) a) - floor(u a) with a = (4 - 1) / (3 - 1) = 1.5 and u = 0.2: 0, 1, then the
    last, 3. The reference computes the same (references/pooling.py); the depth's sample would
    give 0, 2, 3."""
    from references.pooling import fractional_max_pool3d as reference

    _require_inductor()
    rows = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8], [0.9, 1.0, 1.1, 1.2]])
    x = np.stack([rows, rows + 2])[None]
    samples = np.array([[[0.4, 0.9, 0.2]]])
    options = {"kernel_size": (1, 2, 1), "output_size": (1, 1, 3)}
    want = reference(x, _random_samples=samples, **options).flatten()
    torch._dynamo.reset()
    op = compiled.counted(torch.nn.functional.fractional_max_pool3d,
                          "fractional_max_pool3d float64 cpu inductor", "inductor")
    got = op(torch.tensor(x, requires_grad=True), _random_samples=torch.tensor(samples),
             **options).detach().flatten().numpy()
    assert np.array_equal(got, want), f"compiled fractional_max_pool3d {got} where {want}"


@pytest.mark.compile
@pytest.mark.xfail(versions.COMPILED_MULTILABEL_MARGIN_IGNORES_END, strict=True,
                   raises=AssertionError,
                   reason="torch 2.2.2 and 2.13.0: compiled multilabel_margin_loss ignores the "
                          "-1 that ends a target row's classes (KNOWN_DIFFERENCES.md)")
def test_compiled_multilabel_margin_loss_stops_at_minus_one() -> None:
    """Target [2, -1, 0]: only class 2 is a target (the -1 ends the list), so the loss is
    sum over j != 2 of max(0, 1 - (x[2] - x[j])) / 3 = (0.06 + 1.2) / 3 = 0.42, as the
    reference computes it (not torch)."""
    from references.losses_margin import multilabel_margin_loss as reference

    x = np.array([-0.84, 0.3, 0.1])
    target = np.array([2, -1, 0])
    want = float(reference(x, target, reduction="mean"))
    eager = torch.nn.functional.multilabel_margin_loss(torch.tensor(x), torch.tensor(target))
    if abs(eager.item() - want) > 1e-12:  # pytest.fail: not the AssertionError expected
        pytest.fail(f"control (eager) {eager.item()} differs from the reference {want}")
    torch._dynamo.reset()
    loss = compiled.counted(torch.nn.functional.multilabel_margin_loss,
                            "multilabel_margin_loss float64 cpu aot_eager", "aot_eager")
    got = loss(torch.tensor(x, requires_grad=True), torch.tensor(target)).item()
    assert abs(got - want) <= 1e-12, f"compiled multilabel_margin_loss {got} where {want}"


@pytest.mark.compile
@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.xfail(
    wrong, strict=True, raises=AssertionError,
    reason=f"torch {torch.__version__}: compiled {name} with reduction='none' returns shape (1,) "
           f"for a 0-d input (KNOWN_DIFFERENCES.md)"))
    for name, wrong in (("multi_margin_loss", versions.COMPILED_MULTI_MARGIN_ZERO_DIM_SHAPE),
                        ("multilabel_margin_loss",
                         versions.COMPILED_MULTILABEL_MARGIN_ZERO_DIM_SHAPE))])
def test_compiled_margin_loss_of_one_sample_is_0_d(name: str) -> None:
    """A 0-d input is one sample of one class; reduction='none' gives its loss, 0-d (torch's
    documented output shape is the target's), as the reference and eager give."""
    import references.losses_margin as references

    want = np.asarray(getattr(references, name)(np.array(0.3), np.array(0), reduction="none"))
    fn = getattr(torch.nn.functional, name)
    eager = fn(torch.tensor(0.3, dtype=torch.float64), torch.tensor(0), reduction="none")
    if want.shape != () or eager.shape != ():  # pytest.fail: not the AssertionError expected
        pytest.fail(f"control: eager shape {tuple(eager.shape)}, reference {want.shape}")
    torch._dynamo.reset()
    loss = compiled.counted(fn, f"{name} float64 cpu aot_eager", "aot_eager")
    got = loss(torch.tensor(0.3, dtype=torch.float64, requires_grad=True), torch.tensor(0),
               reduction="none")
    assert tuple(got.shape) == (), f"compiled {name} has shape {tuple(got.shape)}"
    assert abs(got.item() - float(want)) <= 1e-12


# check_low_precision's assume() outside a Hypothesis test (it passes: the cases are representable).
_ASSUME_OUTSIDE_GIVEN = pytest.mark.filterwarnings(
    "ignore::hypothesis.errors.HypothesisDeprecationWarning")


def _pool3d_case() -> Case:
    return Case({"input": np.linspace(-1.0, 1.0, 16).reshape(1, 2, 2, 2, 2)}, ("input",),
                {"kernel_size": 2})


@pytest.mark.compile
@_ASSUME_OUTSIDE_GIVEN
def test_a_compiled_ladder_check_skips_where_eager_has_no_half_kernel_either() -> None:
    """avg_pool3d has no CPU float16 kernel in eager torch (torch 2.13.0: "avg_pool3d_out_frame"
    not implemented for 'Half'); aot_eager runs eager's kernels, so the compiled ladder check
    skips with torch's words, as the eager ladder does, instead of calling it a compiler
    failure."""
    spec = catalog.by_name("avg_pool3d")
    eager = torch.nn.functional.avg_pool3d
    try:  # the control: this torch's eager kernel is missing
        eager(torch.zeros(1, 2, 2, 2, 2, dtype=torch.float16), 2)
        pytest.skip(f"torch {torch.__version__} has a CPU float16 avg_pool3d: nothing to skip")
    except RuntimeError as error:  # NotImplementedError from torch 2.3 on, RuntimeError before
        if "not implemented for 'Half'" not in str(error):
            raise
    with pytest.raises(pytest.skip.Exception, match="not implemented for 'Half'"):
        compiled.check_low_precision(spec, _pool3d_case(), torch.float16, "cpu", "aot_eager")


@_ASSUME_OUTSIDE_GIVEN
@pytest.mark.parametrize("cause", [
    NotImplementedError('"gelu_kernel" not implemented for \'Half\''),
    RuntimeError("an unrelated compiler failure")], ids=["missing-kernel", "other"])
def test_a_compiled_ladder_check_fails_where_only_the_compiled_op_lacks_a_kernel(
        cause: Exception, monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted: the compiled gelu raises torch's "not implemented for 'Half'" (or any other
    error) where eager gelu has a CPU float16 kernel: a failure, never a skip."""
    def compiled_forward(*args: object) -> None:
        raise compiled.CompileError("gelu [aot_eager] forward failed") from cause

    monkeypatch.setattr(compiled, "check_forward", compiled_forward)
    case = Case({"input": np.linspace(-2.0, 2.0, 9)}, ("input",), {"approximate": "none"})
    with pytest.raises(compiled.CompileError, match="gelu"):
        compiled.check_low_precision(catalog.by_name("gelu"), case, torch.float16, "cpu",
                                     "aot_eager")


@pytest.mark.compile
@pytest.mark.xfail(versions.AOT_EAGER_FRACTIONAL_MAX_POOL3D_BACKWARD, strict=True,
                   raises=compiled.CompileError,
                   reason="torch 2.13.0 to 2.15.0: aot_eager fails on fractional_max_pool3d's "
                          "backward (2.2.2 already on its forward; KNOWN_DIFFERENCES.md)")
def test_aot_eager_compiles_fractional_max_pool3d_backward() -> None:
    """The compiled forward and backward on one fixed case match eager's (inductor compiles
    both on torch 2.13.0 to 2.15.0). The input is a tensor of its own, as the record's checks
    pass it: a view input (``_grad``'s reshape) takes another path through AOTAutograd, which
    compiles."""
    def arguments() -> dict[str, object]:
        return {"input": _grad(1, 2, 3, 3).detach().clone().requires_grad_(True),
                "kernel_size": (1, 1, 2),
                "output_size": (1, 2, 1),
                "_random_samples": torch.tensor([[[0.25, 0.5, 0.75]]])}

    fn = torch.nn.functional.fractional_max_pool3d
    torch._dynamo.reset()
    got, want = arguments(), arguments()
    with compiled.compiler_failures("fractional_max_pool3d [aot_eager] backward"):
        out = compiled.counted(fn, "fractional_max_pool3d float32 cpu aot_eager",
                               "aot_eager")(**got)
        out.backward(torch.ones_like(out))
    fn(**want).backward(torch.ones_like(out))
    assert torch.equal(got["input"].grad, want["input"].grad)  # type: ignore[union-attr]


# --- the plugin --------------------------------------------------------------------------------

_BATTERY = """
import gradsuite as gs
from suite import catalog

TestSGD = gs.battery(catalog.by_name("sgd"), only=("test_optimizer_steps_match_reference",
                     "test_compiled_optimizer_steps_match_reference"))
"""


@pytest.fixture(scope="module")
def compiler_loaded() -> None:
    """torch's compiler modules imported in this process before an in-process pytester run
    (which drops the modules first imported inside it: importing them again re-registers
    inductor's cache artifacts, an AssertionError)."""
    torch.compile(lambda x: x + 1, backend="aot_eager")(torch.ones(2))


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """pytest in this process on a battery of the sgd record's step checks, CPU and float64
    only, the environment cleared of gradsuite's variables."""
    for key in [k for k in os.environ if k.startswith("GRADSUITE_")] + ["HYPOTHESIS_PROFILE",
                                                                       "GITHUB_STEP_SUMMARY"]:
        monkeypatch.delenv(key, raising=False)
    pytester.makepyfile(test_sgd=_BATTERY)

    def invoke(*args: str) -> pytest.RunResult:
        return pytester.runpytest_inprocess("-p", "no:cacheprovider", "--device", "cpu",
                                            "--dtype", "float64", *args)

    return invoke


_BACKWARD_REFUSED = """
import dataclasses

import gradsuite as gs
from suite import catalog

TestTanh = gs.battery(
    dataclasses.replace(catalog.by_name("tanh"), backends={"aot_eager backward": "no backward"}),
    only=("test_forward_matches_reference", "test_gradient_matches_reference"))
"""


def test_a_backward_refusal_leaves_the_compiled_forward_check(pytester: pytest.Pytester) -> None:
    """``backends={"aot_eager backward": why}``: under aot_eager the forward check is collected,
    the gradient check is not, and -v says why; eager collects both."""
    pytester.makepyfile(test_tanh=_BACKWARD_REFUSED)

    def collected(*args: str) -> list[str]:
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--co", "--device",
                                              "cpu", "--dtype", "float64", *args)
        return result.outlines

    ids = [line for line in collected("-q", "--backend", "aot_eager") if "::" in line]
    assert any("test_forward_matches_reference[aot_eager-" in i for i in ids), ids
    assert not any("test_gradient_matches_reference[aot_eager-" in i for i in ids), ids
    listed = collected("-v", "--backend", "aot_eager")
    assert "gradsuite: tanh: no aot_eager backend (for the checks that differentiate: no " \
           "backward)" in listed, listed
    eager = [line for line in collected("-q") if "::" in line]
    assert any("test_gradient_matches_reference[" in i for i in eager), eager


@pytest.mark.compile
def test_a_backward_refused_record_checks_its_compiled_forward_without_the_backward() -> None:
    """fractional_max_pool3d's compiled forward under aot_eager, whose backward that backend
    cannot compile (``"aot_eager backward"``): the forward check compiles the inference graph,
    which traces no backward, and passes; the training graph, which the other records' forward
    checks share with their gradient checks, would fail on the backward."""
    spec = catalog.by_name("fractional_max_pool3d")
    if compiled.refusal(spec, "aot_eager", backward=True) is None:
        pytest.skip(f"torch {torch.__version__}: aot_eager compiles fractional_max_pool3d's "
                    f"backward, so its forward shares the training graph")
    case = spec.inputs.sized(4)
    torch._dynamo.reset()
    compiled.check_forward(spec, case, torch.float64, "cpu", "aot_eager")
    with pytest.raises(compiled.CompileError, match="fractional_max_pool3d_backward"):
        with compiled.compiler_failures("fractional_max_pool3d [aot_eager] forward"):
            from suite import gradcheck as gc

            gc.check_forward(compiled.compiled_spec(spec, torch.float64, "cpu", "aot_eager"),
                             case, torch.float64, "cpu")


def test_default_run_collects_no_compiled_step_test(run) -> None:
    eager = run("--collect-only", "-q")
    names = [line for line in eager.outlines if "::" in line]
    assert names and not any("compiled" in line for line in names), "\n".join(eager.outlines)
    chosen = run("--collect-only", "-q", "--backend", "eager,aot_eager", "-k", "compiled")
    compiled_names = [line for line in chosen.outlines if "::" in line]
    assert compiled_names == [
        f"test_sgd.py::TestSGD::test_compiled_optimizer_steps_match_reference"
        f"[aot_eager-cpu-float64-sgd-{implementation}]"
        for implementation in oc.COMPILED_VARIANTS], "\n".join(chosen.outlines)


_PLANTED_BATTERY = """
import dataclasses

import torch

import gradsuite as gs
from suite import catalog


class SGDWrongWhenCompiled(torch.optim.SGD):
    # Moves each parameter by 1% of itself when compiled: far above any tolerance on every draw
    # (1% of the gradient was not: at lr 1e-4 and gradients of 1e-3 it hid below float32's
    # rtol, and one CI run drew only such runs).
    def step(self, closure=None):
        if torch.compiler.is_compiling():
            for group in self.param_groups:
                for p in group["params"]:
                    p.data.mul_(1.01)
        return super().step(closure)


TestSGD = gs.battery(dataclasses.replace(catalog.by_name("sgd"), torch_cls=SGDWrongWhenCompiled),
                     only=("test_optimizer_steps_match_reference",
                           "test_compiled_optimizer_steps_match_reference"))
"""


@pytest.mark.compile
@_COMPILED_STEPS
def test_battery_compiled_step_check_fails_on_a_compile_only_bug(
        compiler_loaded: None, run, pytester: pytest.Pytester) -> None:
    """Through the battery and ``--backend``: the eager step check passes the planted optimizer
    (its bug is compile-only), the compiled one fails it."""
    pytester.makepyfile(test_sgd=_PLANTED_BATTERY)
    result = run("--backend", "eager,aot_eager", "-k", "for-loop", "--dtype", "float32")
    result.assert_outcomes(passed=1, failed=1)
    failed = [line for line in result.outlines if line.startswith("FAILED")]
    assert len(failed) == 1 and ("test_compiled_optimizer_steps_match_reference[aot_eager-cpu-"
                                 "float32-sgd-for-loop]") in failed[0], "\n".join(result.outlines)
    assert any("torch.compile(step, backend='aot_eager')" in line and "is not close to the "
               "reference" in line for line in result.outlines), "\n".join(result.outlines)


def test_inductor_without_a_cxx_compiler_is_skipped_in_one_line(
        run, monkeypatch: pytest.MonkeyPatch) -> None:
    from torch._inductor import config as inductor_config

    monkeypatch.setattr(inductor_config.cpp, "cxx", (None, "gradsuite-no-such-c++"))
    result = run("-rs", "--backend", "inductor", "-k", "compiled and for-loop")
    result.assert_outcomes(skipped=1)
    reason = ("inductor on the CPU needs a C++ toolchain: no C++ compiler: inductor looks for "
              "gradsuite-no-such-c++ ($CXX) and none is on PATH")
    skipped = [line for line in result.outlines if line.startswith("SKIPPED")]
    assert len(skipped) == 1 and reason in skipped[0], "\n".join(result.outlines)
    assert any(line.startswith("gradsuite: inductor's CPU tests skipped: ") and reason in line
               for line in result.outlines), "\n".join(result.outlines)


# --- op records: a compile-only bug, and a test that recompiles every example -----------------

_PLANTED_OP_BATTERY = """
import torch
import torch.nn.functional as F

import gradsuite as gs

# torch 2.2 has only torch._dynamo's name, and dynamo 2.2 cannot trace the lookup itself
is_compiling = getattr(torch.compiler, "is_compiling", None) or torch._dynamo.is_compiling


def gelu_wrong_when_compiled(input, approximate="none"):
    out = F.gelu(input, approximate=approximate)
    if is_compiling():
        out = out * 1.01
    return out


TestGelu = gs.battery(gs.like("gelu", torch_fn=gelu_wrong_when_compiled),
                      only=("test_forward_matches_reference",
                            "test_gradient_matches_reference"))
"""


@pytest.mark.compile
def test_battery_compiled_op_check_fails_on_a_compile_only_bug(
        compiler_loaded: None, run, pytester: pytest.Pytester) -> None:
    """An op whose compiled forward (hence backward) is 1 % off and whose eager calls are
    right: the eager checks pass it, ``--backend aot_eager``'s fail it, naming the backend."""
    pytester.makepyfile(test_gelu=_PLANTED_OP_BATTERY)
    result = run("test_gelu.py", "--backend", "eager,aot_eager", "--hypothesis-profile", "quick")
    result.assert_outcomes(passed=2, failed=2)
    failed = sorted(line.split(" ")[1] for line in result.outlines if line.startswith("FAILED"))
    assert failed == [f"test_gelu.py::TestGelu::test_{check}_matches_reference"
                      f"[aot_eager-cpu-float64-gelu]" for check in ("forward", "gradient")], \
        "\n".join(result.outlines)
    assert any("gelu [aot_eager]" in line for line in result.outlines), "\n".join(result.outlines)


def _planted_recompiles(input: torch.Tensor, weight: torch.Tensor | None = None,
                        mode: str = "a") -> torch.Tensor:
    out = input * 2
    if weight is not None:
        out = out * weight
    if mode == "b":
        out = out + 1
    return out


@pytest.mark.compile
def test_each_recompile_is_attributed_to_the_guard_that_failed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One compiled callable fed, in turn, a new size (no recompile: dynamic shapes), a new
    rank, a new string option, a weight where there was none, and a dimension of size 1: the
    ledger counts four recompiles, one of each cause, read from dynamo's own reasons."""
    import collections

    monkeypatch.setattr(compiled, "LEDGER", compiled.Ledger(current="planted"))
    op = compiled.counted(_planted_recompiles, "planted float64 cpu aot_eager", "aot_eager")
    x = torch.ones
    op(x(3, 4, dtype=torch.float64), mode="a")
    op(x(5, 4, dtype=torch.float64), mode="a")           # a new size: the same graph
    op(x(5, dtype=torch.float64), mode="a")              # rank
    op(x(5, dtype=torch.float64), mode="b")              # option
    op(x(5, dtype=torch.float64), x(5, dtype=torch.float64), mode="b")  # argument
    op(x(1, dtype=torch.float64), x(1, dtype=torch.float64), mode="b")  # size (0/1)
    entry = compiled.LEDGER.pop("planted")
    assert entry is not None and (entry.graphs, entry.recompiles) == (5, 4), entry
    assert entry.causes == collections.Counter(rank=1, option=1, argument=1, size=1), entry
    assert "4 recompiles: " in entry.describe(), entry.describe()


@pytest.mark.parametrize("reason, cause", [
    ("0/0: tensor 'kwargs['input']' rank mismatch. expected 0, actual 2", "rank"),
    ("0/1: tensor 'input' size mismatch at index 0. expected 1, actual 5", "size"),
    ("0/0: 2 <= input.size()[0]  # (0/1 specialization in the framework)", "size"),
    ("0/2: kwargs['approximate'] == 'none'  # return fn(*args, **kwargs)", "option"),
    ("1/0: kwargs['eps'] == 0.1  # return fn(*args, **kwargs)", "number"),
    ("1/1: len(kwargs) == 5  # return fn(*args, **kwargs)", "argument"),
    ("0/3: weight is None  # <string>:5 in f", "argument"),
    ("0/1: not kwargs  # return fn(*args, **kwargs)", "argument"),
    ("0/0: tensor 'x' dtype mismatch. expected Float, actual Double", "dtype"),
    ("0/0: tensor 'x' stride mismatch at index 0. expected 4, actual 1", "layout"),
    ("0/0: ___some_guard_of_a_new_kind(x)", "other"),
    # torch 2.2's wording: no frame id, the source line after "#"
    ("L['kwargs']['mode'] == 'a'      # if mode == \"b\":  # tests/x.py:886 in f", "option"),
    ("tensor 'L['args'][0]' rank mismatch. expected 2, actual 1", "rank"),
])
def test_recompile_cause_reads_dynamos_reason(reason: str, cause: str) -> None:
    """Each kind of guard dynamo logs (wording of torch 2.13.0's recompile reasons) is read as
    its cause; a guard of an unknown kind is "other", never dropped."""
    assert compiled.recompile_cause(reason) == cause


_RECOMPILING_OP_BATTERY = """
import torch.nn.functional as F

import gradsuite as gs

CALLS = [0]


def gelu_recompiling(input, approximate="none"):
    # dynamo guards on the value it reads here, which changes on every call: a new graph each
    # time, as a guard that fails on every example would give.
    CALLS[0] += 1
    return F.gelu(input, approximate=approximate) * (1.0 + 0.0 * CALLS[0])


TestGelu = gs.battery(gs.like("gelu", torch_fn=gelu_recompiling),
                      only=("test_forward_matches_reference",))
"""


@pytest.mark.compile
def test_a_test_that_recompiles_every_example_is_reported(
        compiler_loaded: None, run, pytester: pytest.Pytester,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call compiles a new graph: the test's report counts the recompiles, a
    RecompileWarning names the test once past the threshold, and the summary lists it (the
    threshold lowered to 2 so that the compiled profile's 5 examples cross it)."""
    from suite import summary

    monkeypatch.setattr(compiled, "MANY_RECOMPILES", 2)
    monkeypatch.setattr(summary, "MANY_RECOMPILES", 2)
    # A module name of its own: dynamo's guards on CALLS name the module they read it from.
    pytester.makepyfile(test_recompiling=_RECOMPILING_OP_BATTERY)
    summary_md, junit = pytester.path / "summary.md", pytester.path / "junit.xml"
    result = run("test_recompiling.py", "--backend", "aot_eager", "--hypothesis-profile",
                 "quick", "-rP", "--summary-md", str(summary_md), "--junitxml", str(junit))
    # Only the RecompileWarning counts: an in-process run may also warn that gradsuite's
    # modules were imported before pytest could rewrite their asserts (an editable install).
    result.assert_outcomes(passed=1)
    text = "\n".join(result.outlines)
    assert sum("RecompileWarning:" in line for line in result.outlines) == 1, text
    counted = [line for line in result.outlines if "graphs compiled" in line]
    assert len(counted) == 1, text
    graphs, recompiles = (int(counted[0].split(" graphs compiled, ")[0]),
                          int(counted[0].split(" graphs compiled, ")[1].split(" ")[0]))
    # Every call a new graph: all but the first are recompiles (the first too when an earlier
    # test in this process compiled a record of the same name, dtype, device and backend).
    assert graphs >= 5 and recompiles >= graphs - 1, text
    assert "RecompileWarning" in text and "recompiled" in text, text
    listed = summary_md.read_text(encoding="utf-8")
    assert "Recompiled more than 2 times (1)" in listed, listed
    assert (f"`test_recompiling.py::TestGelu::test_forward_matches_reference[aot_eager-cpu-"
            f"float64-gelu]`: {recompiles}") in listed, listed
    # JUnit XML (what the version matrix reads) keeps the count as a property.
    assert f'<property name="gradsuite_recompiles" value="{recompiles}" />' \
        in junit.read_text(encoding="utf-8")
    # Each recompile has a cause (the guard that failed against the graph compiled last: here
    # the value of CALLS[0], or a new rank or size that Hypothesis drew first), and the causes
    # add up to the recompiles in the report, the summary and JUnit XML alike.
    why = counted[0].split(" recompiles: ")[1].split(" (")[0]
    assert sum(int(part.rsplit(" ", 1)[1]) for part in why.split(", ")) == recompiles, text
    assert (f"Recompiles per compiled test: median {recompiles}, maximum {recompiles} over 1 "
            f"tests; by the guard that failed: {why}") in listed, listed
    assert f'<property name="gradsuite_recompile_causes" value="{why}" />' \
        in junit.read_text(encoding="utf-8")
