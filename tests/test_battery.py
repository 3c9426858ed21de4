"""The public API (``import gradsuite as gs``) the way a user's repository uses it: ``like``,
``battery``, reference-free records, baseline-relative tolerances, custom ops, reproducers, and
the one-line errors for records the battery cannot check.

Test files are written with pytester and run in this process; reproducer scripts run with plain
``python`` in a subprocess, as a user runs them. Every checker is shown failing on a planted bug
next to its correct control.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch._inductor.test_operators
import torch.nn.functional as F

import gradsuite as gs
from suite import optimcheck

# The import above registers torch's "_inductor_test" operator library in this process before
# any in-process pytest run: pytester restores sys.modules after each run, and a run that
# imported that module for the first time would have it imported (and registered) again by the
# next one, which torch refuses ("Only a single TORCH_LIBRARY can be used ...").
REPO = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """pytest in this process on the test files pytester made, CPU only, reproducers into the
    pytester folder, the environment cleared of gradsuite's variables."""
    for key in [k for k in os.environ if k.startswith("GRADSUITE_")] + ["HYPOTHESIS_PROFILE",
                                                                       "GITHUB_STEP_SUMMARY"]:
        monkeypatch.delenv(key, raising=False)

    def invoke(*args: str, subprocess: bool = False) -> pytest.RunResult:
        # A session in a subprocess where torch's operator registry must start afresh (a
        # nested in-process run re-imports modules that register operators once only).
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest_inprocess
        # The quick profile: these runs exercise gradsuite's own path (a planted bug fails on
        # its first example), not torch.
        return runner("-p", "no:cacheprovider", "--device", "cpu", "--repro-dir", "repro",
                      "--hypothesis-profile=quick", *args)

    return invoke


def _copy_example(pytester: pytest.Pytester, name: str) -> None:
    pytester.makepyfile(**{name: (EXAMPLES / f"{name}.py").read_text()})


def _script(result: pytest.RunResult, folder: pathlib.Path) -> pathlib.Path:
    """The script a failure names, as a path from ``folder`` (where pytest ran)."""
    lines = [line for line in result.outlines if line.startswith("Standalone reproducer: ")]
    assert lines, "\n".join(result.outlines[-40:])
    return (folder / lines[-1].split("python ", 1)[1]).resolve()


def _python(script: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, cwd=script.parent)


# --- like ---------------------------------------------------------------------------------


def test_like_names_the_close_records_of_an_unknown_one() -> None:
    with pytest.raises(gs.BatteryError, match=r"no record named 'gleu'; did you mean .*\bgelu\b"):
        gs.like("gleu", torch_fn=F.gelu)


def test_like_names_the_close_fields_of_an_unknown_one() -> None:
    with pytest.raises(gs.BatteryError, match=r"has no field 'torch_func' \(did you mean torch_fn"):
        gs.like("gelu", torch_func=F.gelu)


def test_like_keeps_the_mathematics_and_drops_what_was_torchs() -> None:
    ctc = gs.like("ctc_loss", torch_fn=F.ctc_loss)
    original = gs.record("ctc_loss")
    assert isinstance(ctc, gs.OpSpec) and isinstance(original, gs.OpSpec)
    assert ctc.ref is original.ref and ctc.inputs is original.inputs and ctc.tol == original.tol
    # torch's CTC gradient is knowingly not the derivative: another kernel is held to it
    assert original.torch_vjp_options and not ctc.torch_vjp_options
    assert original.module is not None and ctc.module is None


def test_like_with_a_baseline_compares_with_the_builtin_torch_op() -> None:
    spec = gs.like("softplus", torch_fn=lambda input, beta=1.0, threshold=20.0: input,
                   baseline=True)
    assert isinstance(spec, gs.OpSpec) and spec.baseline is not None
    assert spec.baseline.torch_fn is F.softplus
    assert (spec.baseline.forward, spec.baseline.gradient) == (2.0, 3.0)


def test_like_drops_the_implementations_a_custom_optimizer_cannot_select() -> None:
    class PlainSGD(torch.optim.SGD):
        def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                     nesterov=False, *, maximize=False):
            super().__init__(params, lr, momentum, dampening, weight_decay, nesterov,
                             maximize=maximize, foreach=False)

    spec = gs.like("sgd", torch_cls=PlainSGD)
    assert isinstance(spec, gs.OptimizerSpec) and spec.implementations == ("for-loop",)
    assert optimcheck.flags_for(spec, "for-loop") == {}


# --- the user's path: a test file of a few lines -------------------------------------------

_GELU_TEST = """
import gradsuite as gs
from gelu import {fn}

TestMyGelu = gs.battery(gs.like("gelu", torch_fn={fn}))
"""


def test_a_correct_custom_gelu_passes(pytester: pytest.Pytester, run) -> None:
    _copy_example(pytester, "gelu")
    pytester.makepyfile(test_mine=_GELU_TEST.format(fn="gelu"))
    result = run("-k", "test_gradient_matches_reference or jvp or double_backward or func_vjp")
    result.assert_outcomes(passed=6)  # gradient x 2 dtypes, jvp, double backward, func x 2


def test_a_planted_backward_bug_fails_with_a_reproducer_that_runs_alone(
        pytester: pytest.Pytester, run) -> None:
    """The planted bug fails with the usual message and verdict; the reproducer script exits 1
    with the mismatch under plain python, and 0 once the op is fixed."""
    _copy_example(pytester, "gelu")
    pytester.makepyfile(test_mine=_GELU_TEST.format(fn="bad_gelu"))
    result = run("-k", "test_gradient_matches_reference and float64")
    result.assert_outcomes(failed=1)
    text = "\n".join(result.outlines)
    assert "gelu: VJP w.r.t. input is not close to the reference  [float64" in text
    assert "so the error is torch_fn's (gelu.bad_gelu)" in text
    script = _script(result, pytester.path)
    failing = _python(script)
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "FAILED: gelu gradient" in failing.stdout
    assert "Greatest absolute difference" in failing.stdout
    # "torch is fixed": the same script, the op's module corrected
    module = pytester.path / "gelu.py"
    module.write_text(module.read_text().replace(
        "return g * _cdf(x)  # planted bug", "return g * (_cdf(x) + x * _pdf(x))  # fixed"))
    fixed = _python(script)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "passed: gelu gradient" in fixed.stdout


def test_a_catalogue_failure_reproducer_names_the_record_alone(tmp_path: pathlib.Path) -> None:
    """A torch bug found by gradsuite's own records needs no test file: the script rebuilds
    the record with gs.record(name)."""
    from suite import reproduce

    spec = gs.record("tanh")
    case = spec.inputs.sized(3, seed=1)  # type: ignore[union-attr]
    path = reproduce.write(tmp_path, "tests/test_ops.py::TestOps::test_forward[cpu-tanh]", spec,
                           "forward", case, {"dtype": torch.float64, "device": "cpu"}, "boom")
    assert path is not None and "record = gs.record('tanh')" in path.read_text()
    passing = _python(path)  # torch's tanh is right: the check passes
    assert passing.returncode == 0, passing.stdout + passing.stderr


def test_large_arrays_go_to_an_npz_beside_the_script(tmp_path: pathlib.Path) -> None:
    from suite import reproduce

    spec = gs.record("tanh")
    case = spec.inputs.sized(16, seed=1)  # type: ignore[union-attr]  # 256 elements
    path = reproduce.write(tmp_path, "tests/x.py::T::test[cpu]", spec, "gradient", case,
                           {"dtype": torch.float32, "device": "cpu"}, "boom")
    assert path is not None and path.with_suffix(".npz").exists()
    assert "stored['input']" in path.read_text()
    assert _python(path).returncode == 0


def test_an_optimizer_bug_gets_a_reproducer_too(pytester: pytest.Pytester, run) -> None:
    pytester.makepyfile(my_sgd="""
import torch

class BadSGD(torch.optim.SGD):
    '''Plain SGD whose learning rate is 1% too large from the second step on.'''
    def step(self, closure=None):
        for group in self.param_groups:
            group.setdefault("steps", 0)
            group["steps"] += 1
            scale = 1.01 if group["steps"] > 1 else 1.0
            with torch.no_grad():
                for p in group["params"]:
                    if p.grad is not None:
                        p.add_(p.grad, alpha=-float(group["lr"]) * scale)
""")
    pytester.makepyfile(test_mine="""
from hypothesis import strategies as st
import gradsuite as gs
from my_sgd import BadSGD

TestBadSGD = gs.battery(gs.like("sgd", torch_cls=BadSGD,
                                hyper=st.fixed_dictionaries({"lr": st.floats(0.01, 1.0)})))
""")
    result = run("-k", "test_optimizer_steps_match_reference and for-loop and float64",
                 subprocess=True)
    result.assert_outcomes(failed=1)
    assert any("sgd: param" in line and "after step 2" in line for line in result.outlines)
    script = _script(result, pytester.path)
    assert "gs.OptimizerRun(" in script.read_text()
    failing = _python(script)
    assert failing.returncode == 1 and "FAILED: sgd optimizer_steps" in failing.stdout


# --- records the battery cannot check: one line, at collection ----------------------------

_BAD_RECORDS = {
    "not a record": ("TestX = gs.battery(F.gelu)", "gradsuite.battery takes records"),
    "twice the same name": ("TestX = gs.battery(gs.record('tanh'), gs.record('tanh'))",
                            "two records are called 'tanh'"),
    "a signature without the record's argument names": (
        "TestX = gs.battery(gs.like('gelu', torch_fn=lambda x: x))",
        "cannot be called with the record's arguments (input): missing a required argument"),
    "a reference of the wrong shape": (
        "TestX = gs.battery(gs.like('tanh', ref=lambda input: input.sum()))",
        "its reference returns shape () where torch_fn returns (4, 4)"),
    "a VJP of the wrong shape": (
        "TestX = gs.battery(gs.like('tanh', ref_vjp=lambda g, input: {'input': g[:1]}))",
        "its reference VJP returns shape (1, 4) for 'input', whose shape is (4, 4)"),
    "a reference without its VJP": (
        "TestX = gs.battery(gs.OpSpec(name='t', torch_fn=torch.tanh, ref=np.tanh, "
        "inputs=gs.inputs.Elementwise()))",
        "give both ref and ref_vjp"),
    "an unknown check": ("TestX = gs.battery(gs.record('tanh'), only=['test_speed'])",
                         "no check called 'test_speed'"),
}


@pytest.mark.parametrize("what", list(_BAD_RECORDS))
def test_a_record_the_battery_cannot_check_is_one_line_at_collection(
        pytester: pytest.Pytester, run, what: str) -> None:
    line, says = _BAD_RECORDS[what]
    pytester.makepyfile(test_bad=("import numpy as np\nimport torch\nimport torch.nn.functional "
                                  "as F\nimport gradsuite as gs\n" + line + "\n"))
    result = run("--collect-only")
    text = "\n".join(result.outlines + result.errlines)
    assert result.ret != 0
    assert says in text, text[-3000:]
    assert "Traceback" not in text and "suite/battery.py" not in text, text[-3000:]


def test_a_stale_known_failure_is_an_error(pytester: pytest.Pytester, run) -> None:
    pytester.makepyfile(test_stale="""
import gradsuite as gs
TestX = gs.battery(gs.record("tanh"), only=["test_forward_matches_reference"],
                   known_failures={"test_forward_matches_reference[*-tanh-nope]": "why"})
""")
    result = run("--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any("matches no test of its battery" in line for line in result.errlines)


def test_a_known_failure_of_a_dtype_the_run_leaves_out_is_not_stale(
        pytester: pytest.Pytester, run) -> None:
    """`--dtype float64` collects no float32 test, so a float32 known failure matches nothing
    and is not stale (`pytest --dtype float64` over the suite failed at collection on gelu's
    float32 known failure); a pattern naming a dtype the run keeps still must match."""
    pytester.makepyfile(test_dtype="""
import gradsuite as gs
TestX = gs.battery(gs.record("tanh"), only=["test_forward_matches_reference"],
                   known_failures={"test_forward_matches_reference[*-float32-tanh]": "why"})
""")
    result = run("--collect-only", "--dtype", "float64")
    assert result.ret == pytest.ExitCode.OK, "\n".join(result.errlines)
    result = run("--collect-only", "--dtype", "float32")  # it matches: a strict xfail
    assert result.ret == pytest.ExitCode.OK, "\n".join(result.errlines)
    pytester.makepyfile(test_dtype="""
import gradsuite as gs
TestX = gs.battery(gs.record("tanh"), only=["test_forward_matches_reference"],
                   known_failures={"test_forward_matches_reference[*-float64-nope]": "why"})
""")
    result = run("--collect-only", "--dtype", "float64")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any("matches no test of its battery" in line for line in result.errlines)


def test_one_test_of_a_battery_with_known_failures_runs_by_its_node_id(
        pytester: pytest.Pytester, run) -> None:
    """A reproducer line names one parametrization; the battery's known failures for the others
    are not stale then (the run found seed 6106's vmap failure could not be rerun that way)."""
    pytester.makepyfile(test_one="""
import gradsuite as gs
TestX = gs.battery(gs.record("tanh"), gs.record("sigmoid"),
                   only=["test_forward_matches_reference"],
                   known_failures={"test_forward_matches_reference[*-float32-sigmoid]": "why"})
""")
    result = run("test_one.py::TestX::test_forward_matches_reference[cpu-float64-tanh]")
    result.assert_outcomes(passed=1)


def test_a_known_failure_is_a_strict_expected_failure(pytester: pytest.Pytester, run) -> None:
    _copy_example(pytester, "gelu")
    pytester.makepyfile(test_known="""
import gradsuite as gs
from gelu import bad_gelu
TestX = gs.battery(gs.like("gelu", torch_fn=bad_gelu), only=["test_gradient_matches_reference"],
                   known_failures={"test_gradient_matches_reference[*-float64-gelu]": "planted"})
""")
    result = run()
    result.assert_outcomes(xfailed=1, failed=1)  # float64 expected to fail; float32 not listed


def test_the_checks_a_record_does_not_get_are_listed_once(pytester: pytest.Pytester,
                                                         run) -> None:
    pytester.makepyfile(test_listed="""
import gradsuite as gs
TestX = gs.battery(gs.like("tanh", torch_fn=lambda input: input.tanh()))
""")
    result = run("--collect-only", "-q")
    listed = [line for line in result.outlines if line.startswith("gradsuite: tanh: no ")]
    assert "gradsuite: tanh: no test_module_agrees_with_functional (the record has no module " \
           "form (module=None))" in listed
    assert len(listed) == len(set(listed))
    assert not any("test_gradient_matches_finite_differences" in line for line in listed)


# --- reference-free, baseline, custom ops, nondeterminism ----------------------------------

_SQUAREPLUS = """
import torch
from hypothesis import strategies as st
import gradsuite as gs

class Squareplus(torch.autograd.Function):
    @staticmethod
    def forward(x):
        return 0.5 * (x + torch.sqrt(x * x + 4.0))

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 0.5 * (1 + {factor} * x / torch.sqrt(x * x + 4.0))

def squareplus(input):
    return Squareplus.apply(input)

TestSquareplus = gs.battery(gs.OpSpec(name="squareplus", torch_fn=squareplus,
                                      inputs=gs.inputs.Elementwise()),
                            only=["test_gradient_matches_finite_differences"])
"""


@pytest.mark.parametrize(("factor", "outcome"), [(1.0, "passed"), (0.5, "failed")],
                         ids=["correct", "planted"])
def test_reference_free_gradient_against_finite_differences(pytester: pytest.Pytester, run,
                                                            factor: float, outcome: str) -> None:
    pytester.makepyfile(test_free=_SQUAREPLUS.format(factor=factor))
    result = run()
    result.assert_outcomes(**{outcome: 1})
    if outcome == "failed":
        text = "\n".join(result.outlines)
        assert "squareplus: torch's autograd VJP w.r.t. input disagrees with central finite " \
               "differences of the op's own float64 forward" in text
        assert "Note: reference-free: against torch's own float64 results, so the values " \
               "themselves are not checked" in text


_HALF_SOFTPLUS = """
import torch
import gradsuite as gs

def softplus(input, beta=1.0, threshold=20.0):
    x = input.float()
    scaled = x * beta
    # not clamp(max=threshold): its gradient at the bound is 0 from torch 2.14 (1 before), which
    # at scaled == threshold would lose this branch's derivative (found by seed 6204 on 2.14.1)
    e = torch.exp(torch.where(scaled > threshold, threshold, scaled))
    # {naive}: log(1 + e) in the input's dtype, where 1 + e rounds to 1 for e below its eps
    soft = torch.log(1 + e.to(input.dtype)).float() if {naive} else torch.log1p(e)
    return torch.where(scaled > threshold, x, soft / beta).to(input.dtype)

TestSoftplus = gs.battery(gs.like("softplus", torch_fn=softplus, baseline=True),
                          only=["test_low_precision_matches_reference"])
"""


@pytest.mark.parametrize(("naive", "outcome"), [(False, "passed"), (True, "failed")],
                         ids=["log1p", "log-of-one-plus"])
def test_baseline_relative_tolerance(pytester: pytest.Pytester, run, naive: bool,
                                     outcome: str) -> None:
    """A kernel that rounds once (float32 inside) is within 2x of torch's float16 error; one
    that forms 1 + exp(x) in float16 (losing exp(x) below eps) is not, and the message shows
    both errors."""
    pytester.makepyfile(test_half=_HALF_SOFTPLUS.format(naive=naive))
    # A fixed seed: the naive form's loss shows only on draws with exp(x) below float16's eps,
    # which the quick profile's few random examples missed once (2.14.1, outer seed 8303).
    result = run("-k", "float16 and not bfloat16", "--hypothesis-seed=0")
    result.assert_outcomes(**{outcome: 1})
    if naive:
        # The forward or, on draws where the gradient is compared first, the gradient (the
        # naive forward's rounding reaches both) fails.
        text = "\n".join(result.outlines)
        assert ("softplus: forward is not within 2x torch's own error" in text
                or "softplus: VJP w.r.t. input is not within 3x torch's own error" in text), text
        assert "torch eager's float16 op on the same inputs:" in text


_CUSTOM_OP = """
import torch
import gradsuite as gs

@torch.library.custom_op("gradsuite_test::tanh_{tag}", mutates_args=())
def my_tanh(input: torch.Tensor) -> torch.Tensor:
    return torch.tanh(input)

@my_tanh.register_fake
def _(input):
    return {fake}

my_tanh.register_autograd(lambda ctx, g: g * (1 - ctx.y * ctx.y),
                          setup_context=lambda ctx, inputs, output: setattr(ctx, "y", output))

TestCustom = gs.battery(gs.like("tanh", torch_fn=my_tanh),
                        only=["test_custom_op_passes_opcheck"])
"""


@pytest.mark.skipif(not hasattr(torch.library, "opcheck"),
                    reason=f"torch {torch.__version__} has no torch.library.opcheck")
@pytest.mark.parametrize(("fake", "outcome"), [("torch.empty_like(input)", "passed"),
                                                ("input.new_empty(input.shape[:-1])", "failed")],
                         ids=["right-fake", "wrong-fake-shape"])
def test_custom_op_registration_is_checked_by_opcheck(pytester: pytest.Pytester, run,
                                                      fake: str, outcome: str) -> None:
    tag = "good" if outcome == "passed" else "bad"
    pytester.makepyfile(test_op=_CUSTOM_OP.format(tag=tag, fake=fake))
    result = run(subprocess=True)
    result.assert_outcomes(**{outcome: 1})
    if outcome == "failed":
        assert any("torch.library.opcheck failed (a registration problem of the custom op, not "
                   "a numerical mismatch)" in line for line in result.outlines)


def test_nondeterministic_output_is_named_and_keeps_failing(pytester: pytest.Pytester,
                                                            run) -> None:
    """An op whose output changes between two calls on the same tensors (a planted race):
    the failure says so, and Hypothesis's replay fails the same way (no "Flaky")."""
    pytester.makepyfile(test_racy="""
import itertools
import torch
import gradsuite as gs

_calls = itertools.count()

def racy_tanh(input):
    out = torch.tanh(input)
    return out + 1e-3 * (next(_calls) % 2)  # every other call is off

TestRacy = gs.battery(gs.like("tanh", torch_fn=racy_tanh),
                      only=["test_forward_matches_reference"])
""")
    result = run("-k", "float64")
    result.assert_outcomes(failed=1)
    text = "\n".join(result.outlines)
    assert "torch's output is not deterministic for this input: run 1 gave" in text
    assert "Flaky" not in text


def test_a_racy_copy_of_a_record_does_not_poison_the_record_itself() -> None:
    """An input seen nondeterministic for a gs.like copy (same record name, another torch_fn)
    is not refused for the built-in record: a CI run once failed torch's own tanh on the case
    a planted racy tanh had been seen on, in the same process."""
    from suite import nondeterminism

    tanh = gs.record("tanh")
    racy = gs.like("tanh", torch_fn=lambda input: torch.tanh(input) + 0)
    case = tanh.inputs.sized(4, seed=0)
    first = [np.zeros(3)]
    message = nondeterminism.verdict(racy, "forward", case, torch.float64, "cpu", first,
                                     lambda: [np.ones(3)])
    assert message.startswith("torch's output is not deterministic")
    with pytest.raises(AssertionError, match="not deterministic"):
        nondeterminism.refuse_known(racy, "forward", case, torch.float64, "cpu")
    nondeterminism.refuse_known(tanh, "forward", case, torch.float64, "cpu")  # no raise


def test_examples_folder_holds_what_the_readme_promises() -> None:
    names = {p.name for p in EXAMPLES.glob("*.py")}
    assert {"gelu.py", "test_gelu.py", "test_bad_gelu.py", "custom_op.py", "test_custom_op.py",
            "custom_loss.py", "test_custom_loss.py", "reference_free.py",
            "test_reference_free.py", "custom_optimizer.py",
            "test_custom_optimizer.py"} <= names

