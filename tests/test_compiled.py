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

import numpy as np
import pytest
import torch

from suite import catalog, compiled
from suite import optimcheck as oc
from suite.specs import OptimizerRun

SGD = catalog.by_name("sgd")
RUN = OptimizerRun(params=[np.linspace(-1, 1, 6).reshape(2, 3)],
                   grads=[[np.full((2, 3), s)] for s in (0.5, -0.25, 1.0)],
                   hyper={"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": False,
                          "weight_decay": 0.0, "maximize": False}, seed=0)


class SGDWrongWhenCompiled(torch.optim.SGD):
    """SGD whose compiled step scales every gradient by 1.01 (eager steps are right): a planted
    compiler bug, visible only to a check that runs the compiled step."""

    def step(self, closure=None):  # type: ignore[override]
        if torch.compiler.is_compiling():
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


@pytest.mark.compile
def test_compiled_step_control_passes() -> None:
    oc.check_run(SGD, RUN, "for-loop", torch.float64, "cpu", "aot_eager")


@pytest.mark.compile
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


ZERO_DIM = OptimizerRun(params=[np.array(0.5)], grads=[[np.array(-0.25)]],
                        hyper={"lr": 0.01, "momentum": 0.0, "dampening": 0.0, "nesterov": False,
                               "weight_decay": 0.0, "maximize": False}, seed=0)


@pytest.mark.compile
@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="torch 2.13.0: torch.compile(optimizer.step) (aot_eager and inductor; "
                          "dynamo's eager backend is right) of a for-loop implementation leaves "
                          "a 0-d float64 parameter unchanged: the whole update is lost "
                          "(KNOWN_DIFFERENCES.md)")
def test_compiled_for_loop_step_moves_a_zero_dim_float64_parameter() -> None:
    oc.check_run(SGD, ZERO_DIM, "for-loop", torch.float64, "cpu")  # eager: right
    oc.check_run(SGD, ZERO_DIM, "foreach", torch.float64, "cpu", "aot_eager")  # foreach: right
    oc.check_run(SGD, ZERO_DIM, "for-loop", torch.float32, "cpu", "aot_eager")  # float32: right
    oc.check_run(SGD, ZERO_DIM, "for-loop", torch.float64, "cpu", "aot_eager")


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


# --- the plugin --------------------------------------------------------------------------------

_BATTERY = """
import gradsuite as gs
from suite import catalog

TestSGD = gs.battery(catalog.by_name("sgd"), only=("test_optimizer_steps_match_reference",
                     "test_compiled_optimizer_steps_match_reference"))
"""


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
    def step(self, closure=None):
        if torch.compiler.is_compiling():
            for group in self.param_groups:
                for p in group["params"]:
                    p.grad.mul_(1.01)
        return super().step(closure)


TestSGD = gs.battery(dataclasses.replace(catalog.by_name("sgd"), torch_cls=SGDWrongWhenCompiled),
                     only=("test_optimizer_steps_match_reference",
                           "test_compiled_optimizer_steps_match_reference"))
"""


@pytest.mark.compile
def test_battery_compiled_step_check_fails_on_a_compile_only_bug(
        run, pytester: pytest.Pytester) -> None:
    """Through the battery and ``--backend``: the eager step check passes the planted optimizer
    (its bug is compile-only), the compiled one fails it."""
    pytester.makepyfile(test_sgd=_PLANTED_BATTERY)
    result = run("--backend", "eager,aot_eager", "-k", "for-loop", "--dtype", "float32")
    result.assert_outcomes(passed=1, failed=1)
    failed = [line for line in result.outlines if line.startswith("FAILED")]
    assert len(failed) == 1 and ("test_compiled_optimizer_steps_match_reference[aot_eager-cpu-"
                                 "float32-sgd-for-loop]") in failed[0], "\n".join(result.outlines)
    assert any("torch.compile(step, backend='aot_eager')" in line for line in result.outlines)


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
