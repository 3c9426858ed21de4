"""The benchmark harness computes what it says: the check-cost ratio (suite/checkcost.py), the
benchmark settings (suite/bench.py, suite/inputs/variants.py), the timer-agreement table
(suite/accuracy.py) and the GPU script's skip path (.ci/gpu).

No test here depends on this machine's timings: clocks are fake where a figure is asserted,
and runs on the real clock assert only what ran and what was recorded.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from suite import accuracy, catalog, checkcost, gate, report
from suite import gradcheck as gc
from suite.specs import Case


class FakeClock:
    """A clock that only moves when told to."""

    __name__ = "fake_clock"

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def taking(self, seconds: float, calls: list[str] | None = None,
               label: str = "") -> Any:
        def call() -> tuple[str, ...]:
            self.now += seconds
            if calls is not None:
                calls.append(label)
            return ()
        return call


class FakeBenchmark:
    """What suite.checkcost uses of pytest-benchmark's fixture, with pedantic's order: each
    round calls ``setup`` (untimed), then the target between two readings of ``_timer``."""

    def __init__(self) -> None:
        self.extra_info: dict[str, Any] = {}
        self._timer: Any = None
        self.stats: Any = None

    def pedantic(self, target, setup=None, rounds=1, iterations=1, warmup_rounds=0) -> None:
        assert not (setup and iterations > 1)  # pytest-benchmark refuses it too
        self.target = target
        for _ in range(warmup_rounds):
            target()
        data = []
        for _ in range(rounds):
            if setup is not None:
                setup()
            t0 = self._timer()
            for _ in range(iterations):
                target()
            data.append((self._timer() - t0) / iterations)
        self.stats = SimpleNamespace(stats=SimpleNamespace(data=data))


class SkippedError(Exception):
    pass


def _skip(reason: str) -> None:
    raise SkippedError(reason)


@pytest.fixture(autouse=True)
def _fresh_measurements():
    """Each test starts without the sizes earlier tests measured (suite.checkcost remembers
    them per process to predict larger sizes)."""
    checkcost._SEEN.clear()
    yield
    checkcost._SEEN.clear()


def _record(name: str):
    return next(s for s in catalog.OPS if s.name == name)


# --- check cost: the ratio ----------------------------------------------------------------


def test_check_cost_ratio_is_ours_over_gradcheck_on_one_clock() -> None:
    clock, calls = FakeClock(), []
    bench = FakeBenchmark()
    info = checkcost.run(bench, _record("tanh"), 10**4, clock=clock, skip=_skip,
                         make_ours=lambda s, c: clock.taking(3e-3, calls, "ours"),
                         make_theirs=lambda s, c: clock.taking(2e-3, calls, "theirs"))
    assert info["ratio"] == pytest.approx(1.5)
    assert info["ours_median"] == pytest.approx(3e-3)
    assert info["gradcheck_median"] == pytest.approx(2e-3)
    assert info["gradcheck"] == "ran" and info["kind"] == checkcost.KIND
    assert info["elements"] == 10**4 and info["n"] == 100 and info["target_elements"] == 10**4
    # Alternating rounds: a gradcheck call before each timed call of ours.
    rounds = info["rounds"]
    assert len(info["gradcheck_rounds"]) == rounds == len(bench.stats.stats.data)
    timed = calls[-2 * rounds:]
    assert timed == ["theirs", "ours"] * rounds
    assert checkcost.rounds(3e-3) == rounds  # scheduled on the dearer side's warm call


def test_check_cost_records_why_gradcheck_did_not_run() -> None:
    clock = FakeClock()
    info = checkcost.run(FakeBenchmark(), _record("ctc_loss"), 10**3, clock=clock, skip=_skip,
                         make_ours=lambda s, c: clock.taking(1e-3))
    assert info["ratio"] is None and info["gradcheck_rounds"] == []
    assert "torch_vjp_options" in info["gradcheck"]


def test_a_size_measured_over_the_ceiling_is_skipped_with_its_time() -> None:
    clock = FakeClock()
    with pytest.raises(SkippedError, match=r"took 100\.0 s, over the ceiling"):
        checkcost.run(FakeBenchmark(), _record("tanh"), 10**2, clock=clock, skip=_skip,
                      make_ours=lambda s, c: clock.taking(100.0),
                      make_theirs=lambda s, c: clock.taking(1.0))


def test_a_size_predicted_over_the_ceiling_is_not_run() -> None:
    """1 s at 1e3 after 0.1 s at 1e2 grows like n^1: 10 s at 1e4 is under the ceiling, 100 s
    at 1e5 is not — and that size is skipped before any call of it."""
    clock, calls = FakeClock(), []
    spec = _record("tanh")
    checkcost._SEEN.update({(spec.name, 10**2): 0.1, (spec.name, 10**3): 1.0})
    assert checkcost.predict(checkcost.seen(spec), 10**4) == pytest.approx(10.0)
    checkcost._SEEN[(spec.name, 10**4)] = 10.0
    with pytest.raises(SkippedError, match="predicted to take 100 s"):
        checkcost.run(FakeBenchmark(), spec, 10**5, clock=clock, skip=_skip,
                      make_ours=lambda s, c: clock.taking(1.0, calls, "ours"),
                      make_theirs=lambda s, c: clock.taking(1.0, calls, "theirs"))
    assert calls == []


def test_prediction_uses_the_growth_between_the_two_sizes_below() -> None:
    quadratic = {100: 1e-3, 1000: 1e-1}
    assert checkcost.predict(quadratic, 10**4) == pytest.approx(10.0)
    assert checkcost.predict({100: 1.0, 1000: 1.0}, 10**4) == pytest.approx(10.0)  # k >= 1
    assert checkcost.predict({}, 10**4) is None


def test_smaller_sizes_are_probed_when_a_large_one_runs_alone() -> None:
    clock, calls = FakeClock(), []
    checkcost.run(FakeBenchmark(), _record("tanh"), 10**4, clock=clock, skip=_skip,
                  make_ours=lambda s, c: clock.taking(1e-3, calls, f"ours {largest(c)}"),
                  make_theirs=lambda s, c: clock.taking(1e-3))
    assert calls[:2] == ["ours 100", "ours 1024"]  # one probe call each, smallest first


def largest(case: Case) -> int:
    return checkcost.largest(case)


@pytest.mark.parametrize(("name", "target", "n"), [
    ("tanh", 10**4, 100), ("tanh", 10**6, 1000), ("linear", 10**4, 100),
    ("conv1d", 10**3, 31), ("embedding", 10**4, 625)])
def test_sizes_are_chosen_by_elements_of_the_largest_array(name, target, n) -> None:
    sized = checkcost.sized_for(_record(name), target)
    assert sized.n == n and sized.skip is None
    assert sized.elements == checkcost.largest(_record(name).inputs.sized(n))
    assert abs(math.log(sized.elements / target)) < math.log(1.1)


def test_a_size_no_case_reaches_is_skipped_naming_the_nearest() -> None:
    sized = checkcost.sized_for(_record("conv2d"), 10**2)
    assert sized.skip is not None and "holds 800" in sized.skip and "input(4, 8, 5, 5)" in \
        sized.skip


# --- check cost: both sides really run ----------------------------------------------------


def _counting(spec, counts: dict[str, int]):
    def wrap(name: str, fn):
        def counted(*args, **kwargs):
            counts[name] = counts.get(name, 0) + 1
            return fn(*args, **kwargs)
        return counted
    return dataclasses.replace(spec, torch_fn=wrap("torch", spec.torch_fn),
                               ref=wrap("ref", spec.ref), ref_vjp=wrap("ref_vjp", spec.ref_vjp))


def test_ours_runs_the_three_checks_and_gradcheck_runs_fast_mode() -> None:
    """One call of each side on tanh (one differentiable input): ours calls torch twice
    (forward, gradient), the reference forward 3 times (forward check; finite differences:
    f(x + hv), f(x - hv), never f(x)) and its VJP twice; gradcheck's fast mode calls torch 3
    times (f(x) and f(x +- eps u): not once per element, which would be slow mode)."""
    counts: dict[str, int] = {}
    spec = _counting(_record("tanh"), counts)
    case = spec.inputs.sized(10)
    assert checkcost.three_way(spec, case)() == ()
    assert counts == {"torch": 2, "ref": 3, "ref_vjp": 2}
    counts.clear()
    assert checkcost.gradcheck_call(spec, case)() is True
    assert counts == {"torch": 3}


def test_the_finite_difference_check_calls_the_vjp_once_for_every_argument() -> None:
    """layer_norm (input, weight, bias differentiable): two forward evaluations per argument,
    one VJP for all three (it returns every gradient)."""
    counts: dict[str, int] = {}
    spec = _counting(_record("layer_norm"), counts)
    case = spec.inputs.sized(10)
    assert len(case.differentiable) == 3
    gc.check_reference_vjp(spec, case)
    assert counts == {"ref": 6, "ref_vjp": 1}


def test_each_round_of_ours_draws_its_cotangent_once() -> None:
    """The three checks of a case share one draw of g, and no round reuses an earlier round's
    draw (a fresh case would pay for it)."""
    spec = _record("tanh")
    ours = checkcost.three_way(spec, spec.inputs.sized(10))
    for _ in range(2):  # each round starts by forgetting (which also resets the counts)
        ours()
        info = gc._cotangent.cache_info()
        assert (info.misses, info.hits) == (1, 1)


def test_the_benchmark_times_both_sides_every_round() -> None:
    counts: dict[str, int] = {}
    spec = _counting(_record("tanh"), counts)
    bench = FakeBenchmark()
    info = checkcost.run(bench, spec, 10**2, skip=_skip)
    ours_calls = counts["ref_vjp"] // 2
    gradcheck_calls = (counts["torch"] - 2 * ours_calls) // 3
    assert counts["ref"] == 3 * ours_calls
    # the warm-up calls (two each: the first is cheap), then one of each per round
    assert ours_calls == info["rounds"] + 2 and gradcheck_calls == info["rounds"] + 2
    assert info["ratio"] == pytest.approx(np.median(bench.stats.stats.data)
                                          / np.median(info["gradcheck_rounds"]))
    assert info["check_failures"] == [] and info["gradcheck"] == "ran"


class _WrongBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.tanh(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * g * (1 - torch.tanh(x) ** 2)


def test_a_gradcheck_failure_is_recorded_without_its_slow_mode() -> None:
    calls: list[int] = []

    def counted(input):
        calls.append(1)
        return _WrongBackward.apply(input)

    spec = dataclasses.replace(_record("tanh"), torch_fn=counted)
    _, reason = checkcost.first_gradcheck(
        checkcost.gradcheck_call(spec, spec.inputs.sized(10)), time.perf_counter)
    assert reason is not None and "fast mode" in reason
    assert len(calls) == 3, "slow mode would evaluate the op twice per element (200 calls)"
    info = checkcost.run(FakeBenchmark(), spec, 10**2, skip=_skip)
    assert info["ratio"] is None and "fast mode" in info["gradcheck"]
    assert info["check_failures"] and info["check_failures"][0].startswith("gradient")


# --- check cost: reading a run --------------------------------------------------------------


def _cell_run(path: Path, ratios: dict[tuple[str, int], float | None]) -> Path:
    benchmarks = []
    for (op, target), r in ratios.items():
        name = f"test_checkcost[{op}-{target}]"
        benchmarks.append({
            "name": name, "fullname": f"tests/benchmarks/test_check_cost.py::{name}",
            "group": "check cost", "stats": {"data": [1e-3] * 5},
            "extra_info": {"kind": checkcost.KIND, "op": op, "target_elements": target,
                           "elements": target, "ratio": r, "ours_median": 1e-3,
                           "gradcheck_median": None if r is None else 1e-3 / r,
                           "gradcheck": "ran" if r is not None else "it cannot"}})
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": benchmarks}))
    return path


RATIOS: dict[tuple[str, int], float | None] = {
    ("tanh", 10**4): 0.8, ("tanh", 10**6): 1.3, ("gelu", 10**4): 2.0, ("gelu", 10**6): 7.5,
    ("relu", 10**4): 1.0, ("relu", 10**6): 0.9, ("ctc_loss", 10**4): None}


def test_records_above_one_are_named_per_judged_size(tmp_path: Path, capsys) -> None:
    run = gate.load_run(_cell_run(tmp_path / "run.json", RATIOS))
    found = checkcost.cells(list(run.benchmarks.values()))
    dear = checkcost.above(found)
    assert [c.op for c in dear[10**4]] == ["gelu"]  # 1.0 is not above 1
    assert [c.op for c in dear[10**6]] == ["gelu", "tanh"]  # dearest first
    assert checkcost.main([str(tmp_path / "run.json")]) == 0
    out = capsys.readouterr().out
    assert "Above 1 at 1e4 elements (1 of 3 records measured): gelu (2.00)" in out
    assert "Above 1 at 1e6 elements (2 of 3 records measured): gelu (7.50), tanh (1.30)" in out
    assert "gradcheck: it cannot" in out


def test_report_lists_and_plots_the_check_cost(tmp_path: Path) -> None:
    run = gate.load_run(_cell_run(tmp_path / "run.json", RATIOS))
    plots = True
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        plots = False
    written = report.render(run, out=str(tmp_path / "r"), plots=plots)
    summary = Path(written[0]).read_text()
    assert "## Check cost against gradcheck's fast mode" in summary
    assert "| gelu |  | **2.00** | **7.50** |" not in summary  # only the measured sizes
    assert "| gelu | **2.00** | **7.50** |  |" in summary
    assert "gelu (7.50), tanh (1.30)" in summary
    if plots:
        assert (tmp_path / "r" / "checkcost.png").read_bytes().startswith(b"\x89PNG")


def test_checkcost_command_refuses_a_run_without_check_costs(tmp_path: Path, capsys) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"benchmarks": [
        {"name": "t", "fullname": "t.py::t", "stats": {"data": [1e-3] * 3}}]}))
    assert checkcost.main([str(path)]) == 2
    assert "no check-cost benchmarks" in capsys.readouterr().err


# --- benchmarks in more settings: half precision and the input makers' variants -------------


def _param_ids(records) -> list[str]:
    from suite import battery

    mark = battery._benchmark_cases(list(records)).mark
    return [p.id for p in mark.args[1]]


def test_default_benchmark_ids_are_unchanged_and_complete() -> None:
    """The default setting keeps the ids saved baselines were made with (record, pass,
    implementation, size), over the record's whole sweep, NumPy beside torch."""
    ids = _param_ids([_record("gelu"), _record("ctc_loss")])
    default = [i for i in ids if i.startswith("gelu-forward") or i.startswith("gelu-forward+")]
    assert default == [f"gelu-{p}-{impl}-n{n}" for p in ("forward", "forward+backward")
                       for impl in ("torch", "numpy") for n in (16, 64, 256, 1024)]
    assert "ctc_loss-forward-numpy-n256" in ids and "ctc_loss-forward-torch-n1024" not in ids


def test_settings_follow_the_ladder_and_the_input_makers_variants() -> None:
    from suite import bench

    def names(name: str) -> list[str]:
        return [s.id for s in bench.settings(_record(name))]

    assert names("gelu") == ["", "float16", "bfloat16"]  # on the ladder, no variants
    assert names("clamp") == [""]  # off the ladder (low_precision is a reason)
    assert names("binary_cross_entropy_with_logits") == ["", "reduction_none", "reduction_sum"]
    conv2d = names("conv2d")
    for variant in ("stride2", "dilation2", "groups2", "depthwise", "channels_last"):
        assert {variant, f"{variant}-float16", f"{variant}-bfloat16"} <= set(conv2d)
    assert "channels_last" not in names("conv1d")  # 3-d tensors have no channels-last format
    assert "dilation2" in names("max_pool2d") and "dilation2" not in names("avg_pool2d")
    assert names("kl_div")[1:] == ["reduction_none", "reduction_mean", "reduction_sum"]


def test_other_settings_time_torch_only_at_the_largest_size() -> None:
    ids = _param_ids([_record("conv2d")])
    dilated = [i for i in ids if "-dilation2-bfloat16-" in i]
    assert dilated == ["conv2d-dilation2-bfloat16-forward-torch-n1024",
                       "conv2d-dilation2-bfloat16-forward+backward-torch-n1024"]
    assert not [i for i in ids if "numpy" in i and ("-float16" in i or "dilation" in i)]


# torch warns that kl_div's 'mean' is not the KL divergence's mean: the variant is torch's own
@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss:UserWarning")
@pytest.mark.parametrize("name", [s.name for s in catalog.OPS
                                  if getattr(s.inputs, "bench_variants", None)])
def test_every_variant_is_a_valid_case_torch_and_the_reference_agree_on(name) -> None:
    """Each variant's case is one torch accepts and the reference computes alike (a variant
    whose options and arrays disagree — a grouped weight left ungrouped — fails here), with its
    options in effect and its layout applied."""
    from suite import bench
    from suite import gradcheck as gc
    from suite.inputs.variants import MEMORY_FORMATS

    spec = _record(name)
    base = spec.inputs.sized(16)
    for variant_name, variant in bench.variants(spec).items():
        case = variant.case(base)
        assert {**base.options, **variant.options} == dict(case.options), variant_name
        gc.check_forward(spec, case, torch.float64, "cpu")
        tensors = variant.layout(gc.to_tensors(case, torch.float64, "cpu"))
        if variant.memory_format is not None:
            ndim, memory_format = MEMORY_FORMATS[variant.memory_format]
            laid_out = [t for t in tensors.values() if t.dim() == ndim]
            assert laid_out and all(t.is_contiguous(memory_format=memory_format)
                                    and not t.is_contiguous() for t in laid_out), variant_name
        for k in case.differentiable:
            assert tensors[k].requires_grad and tensors[k].is_leaf, (variant_name, k)


def test_a_grouped_weight_has_in_channels_over_groups_inputs() -> None:
    from suite import bench

    spec = _record("conv2d")
    case = bench.setting_case(spec, 64, bench.Setting(variant="depthwise"))
    assert case.arrays["weight"].shape == (8, 1, 3, 3) and case.options["groups"] == 8
    case = bench.setting_case(spec, 64, bench.Setting(variant="groups2"))
    assert case.arrays["weight"].shape == (8, 4, 3, 3)


def test_the_timed_target_gets_the_variants_layout(monkeypatch) -> None:
    """op_target hands torch the variant's layout: what torch_fn receives is channels-last."""
    from suite import bench

    seen: list[bool] = []
    spec = _record("conv2d")

    def conv(input, weight, bias, **options):
        seen.append(input.is_contiguous(memory_format=torch.channels_last)
                    and weight.is_contiguous(memory_format=torch.channels_last))
        return torch.nn.functional.conv2d(input, weight, bias, **options)

    spec = dataclasses.replace(spec, torch_fn=conv)
    variant = bench.variants(spec)["channels_last"]
    case = variant.case(spec.inputs.sized(64))
    for pass_ in bench.PASSES:
        bench.op_target(spec, case, "torch", pass_, torch.float32, "cpu", variant)()
    assert seen and all(seen)


_RELU_BENCH = """
import gradsuite as gs

TestRelu = gs.battery(gs.like("relu"), gs.like("l1_loss"), only=["test_benchmark"])
"""
# (l1_loss, not mse_loss: torch 2.2.2 has no bfloat16 mse_loss on the CPU, which skips.)


def test_other_settings_run_once_per_device_in_the_float32_slot(pytester, monkeypatch) -> None:
    """Half precision and the variants run in the float32 slot and skip, saying so, in the
    float64 one; what runs records its dtype and variant."""
    from suite import bench

    monkeypatch.delenv("GRADSUITE_BENCH_PLANTED_SLOWDOWN", raising=False)
    # pytest-benchmark turns itself off inside an xdist worker (it reads this variable), and
    # this test may run in one: the in-process run below is not parallel.
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    # A few short rounds: what is checked is which benchmarks run, not their times.
    for name, value in (("WARMUP_S", 0.0), ("ROUND_S", 1e-4), ("BUDGET_S", 0.0),
                        ("MIN_ROUNDS", 2)):
        monkeypatch.setattr(bench, name, value)
    pytester.makepyfile(test_relu=_RELU_BENCH)
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--device", "cpu", "-m", "bench", "-rs",
        "-k", "n1024 and (relu-bfloat16 or l1_loss-bfloat16 or l1_loss-reduction_sum-forward "
              "or l1_loss-reduction_sum-bfloat16)",
        "--benchmark-json", "out.json")
    # relu-bfloat16, l1_loss-bfloat16, l1_loss-reduction_sum, l1_loss-reduction_sum-bfloat16:
    # 4 settings x 2 passes, each run in the float32 slot and skipped in the float64 one
    result.assert_outcomes(passed=8, skipped=8)
    result.stdout.fnmatch_lines(["*timed once per device, in the float32 slot of --dtype*"])
    data = json.loads((pytester.path / "out.json").read_text())
    got = sorted((b["extra_info"]["op"], b["extra_info"]["dtype"],
                  b["extra_info"].get("variant") or "", b["extra_info"]["pass"])
                 for b in data["benchmarks"])
    want = sorted((op, dtype, variant, p) for op, dtype, variant in (
        ("relu", "bfloat16", ""), ("l1_loss", "bfloat16", ""),
        ("l1_loss", "float32", "reduction_sum"), ("l1_loss", "bfloat16", "reduction_sum"))
        for p in ("forward", "forward+backward"))
    assert got == want
    sums = [b for b in data["benchmarks"] if b["extra_info"].get("variant") == "reduction_sum"]
    assert all(b["extra_info"]["options"]["reduction"] == "sum" for b in sums)
    assert all(b["group"].endswith("reduction_sum") for b in sums)


# --- timer agreement (suite/accuracy.py) ----------------------------------------------------


def test_timer_agreement_times_the_benchmarked_callable_itself() -> None:
    seen: list[Any] = []

    def timers(fn, clock, device):
        seen.append(fn)
        return {"timer_blocked": 1.0, "timer_adaptive": 2.0, "timer_blocked_same_clock": 3.0}

    bench_ = FakeBenchmark()
    target = accuracy.Target("tanh", "forward", "torch", 16, "float32")
    info = accuracy.run(bench_, target, "cpu", timers=timers)
    assert seen == [bench_.target], "Timer must time the very callable the benchmark timed"
    assert info["bench_median"] == pytest.approx(float(np.median(bench_.stats.stats.data)))
    assert info["kind"] == accuracy.KIND and info["target"] == target.id
    assert info["torch_threads"] == torch.get_num_threads()
    assert (info["timer_blocked"], info["timer_adaptive"]) == (1.0, 2.0)


def test_cuda_events_time_each_call_between_two_events() -> None:
    """event_median on a fake GPU clock: an event notes the fake clock when recorded; a call
    of 3 ms between two events reads 3 ms, whatever the host did around it."""
    clock = FakeClock()

    class Event:
        def record(self) -> None:
            self.at = clock()

        def synchronize(self) -> None:
            clock.now += 0.5  # the host waits: not GPU time

        def elapsed_time(self, other) -> float:
            return (other.at - self.at) * 1e3  # milliseconds, as torch's

    calls: list[str] = []
    median = accuracy.event_median(clock.taking(3e-3, calls), "cuda", events=Event,
                                   min_run_s=0.0, min_calls=7)
    assert median == pytest.approx(3e-3) and len(calls) == 8  # one untimed call first


def test_every_accuracy_target_builds() -> None:
    assert len(accuracy.TARGETS) >= 12 and set(accuracy.QUICK) <= {t.id for t in accuracy.TARGETS}
    families = set()
    for target in accuracy.TARGETS:
        small = dataclasses.replace(target, n=16)  # the same construction, quicker
        assert callable(accuracy.callable_for(small, "cpu"))
        record = catalog.record(target.record)
        families.add(getattr(record, "family", "optimizer"))
    assert {"activation", "layer", "loss", "optimizer"} <= families


def _accuracy_run(path: Path, medians: dict[str, tuple[float, float, float, float]]) -> Path:
    benchmarks = []
    for target, (ours, blocked, adaptive, same) in medians.items():
        benchmarks.append({
            "name": f"test_accuracy[{target}]", "fullname": f"t.py::test_accuracy[{target}]",
            "group": "timer agreement", "stats": {"data": [ours] * 5},
            "extra_info": {"kind": accuracy.KIND, "target": target, "device": "cpu",
                           "torch_threads": 1, "timer": "thread_time", "bench_median": ours,
                           "timer_blocked": blocked, "timer_adaptive": adaptive,
                           "timer_blocked_same_clock": same}})
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": benchmarks}))
    return path


def test_agreement_table_reports_percent_differences(tmp_path: Path, capsys) -> None:
    path = _accuracy_run(tmp_path / "acc.json", {
        "a": (1e-3, 1.04e-3, 0.9e-3, 1.0e-3), "b": (2e-6, 2.2e-6, 2.0e-6, 2.02e-6)})
    assert accuracy.main(["--from", str(path)]) == 0
    out = capsys.readouterr().out
    assert "+4.0%" in out and "-10.0% *" in out and "+10.0% *" in out and "+1.0%" in out
    assert "Timer.blocked_autorange: 1 of 2 targets within ±5%" in out
    assert "Timer.adaptive_autorange: 1 of 2 targets within ±5%" in out
    assert "blocked, bench's clock: 2 of 2 targets within ±5%" in out
    assert accuracy.difference(2.0, 3.0) == pytest.approx(0.5)  # Timer 50% slower
    assert accuracy.difference(None, 3.0) is None


def test_agreement_command_refuses_a_run_without_its_benchmarks(tmp_path: Path, capsys) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"benchmarks": [
        {"name": "t", "fullname": "t.py::t", "stats": {"data": [1e-3] * 3}}]}))
    assert accuracy.main(["--from", str(path)]) == 2
    assert "no timer-agreement benchmarks" in capsys.readouterr().err


# --- the GPU script (.ci/gpu) ----------------------------------------------------------------

GPU_SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "gpu"


def test_gpu_script_is_valid_bash() -> None:
    done = subprocess.run(["bash", "-n", str(GPU_SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here: .ci/gpu would run for "
                                                      "minutes instead of skipping")
def test_gpu_script_without_cuda_says_why_in_one_line_and_exits_0(tmp_path: Path) -> None:
    from suite.devices import cuda_missing_reason

    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(GPU_SCRIPT), str(tmp_path / "out")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [f"gpu: skipped, no CUDA here: {cuda_missing_reason()}"]
    assert done.stderr == ""
    assert not (tmp_path / "out").exists(), "a skipped run writes nothing"


# --- which benchmarks run on request only (tests/benchmarks/conftest.py) ---------------------


@pytest.mark.parametrize(("keyword", "markexpr", "args", "checkcost", "accuracy"), [
    ("", "bench", ["tests"], False, False),  # pytest -m bench: the gate's run, neither
    ("checkcost and 1e4", "bench", ["tests"], True, False),
    ("accuracy", "bench", [], False, True),
    ("", "bench", ["tests/benchmarks/test_bench_accuracy.py"], False, True),
    ("", "bench", ["tests/benchmarks/test_check_cost.py::test_checkcost[tanh-1e2]"], True, False),
])
def test_check_cost_and_timer_agreement_run_only_when_named(keyword, markexpr, args, checkcost,
                                                            accuracy) -> None:
    from tests.benchmarks.conftest import requested

    config = SimpleNamespace(option=SimpleNamespace(keyword=keyword, markexpr=markexpr),
                             args=args)
    assert requested(config, "test_checkcost") is checkcost
    assert requested(config, "test_accuracy") is accuracy


def test_report_keeps_a_variant_apart_from_the_default(tmp_path: Path) -> None:
    """A variant's benchmark is its own series (the default's median is not overwritten), in
    the table; the time-against-size plot leaves it out (two sizes at most)."""
    def entry(name: str, variant: str | None, median: float, n: int) -> dict[str, Any]:
        info = {"op": "conv2d", "pass": "forward", "impl": "torch", "device": "cpu",
                "dtype": "float32", "n": n}
        if variant:
            info["variant"] = variant
        return {"name": name, "fullname": f"t.py::{name}", "group": "g",
                "extra_info": info, "stats": {"data": [median] * 5}}

    path = tmp_path / "run.json"
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": [
        entry("a", None, 1e-3, 256), entry("b", None, 4e-3, 1024),
        entry("c", "dilation2", 9e-3, 1024)]}))
    table = report.scaling(gate.load_run(path))
    series = table["conv2d"]["forward"]
    assert series["torch cpu float32"] == {256: 1e-3, 1024: 4e-3}
    assert series["torch cpu float32 [dilation2]"] == {1024: 9e-3}
    written = report.render(gate.load_run(path), out=str(tmp_path / "r"), plots=False)
    assert "| conv2d | forward | torch cpu float32 [dilation2] |" in Path(written[0]).read_text()


def test_bench_rounds_fix_every_benchmarks_round_count(monkeypatch) -> None:
    from suite import bench

    assert bench.schedule(1e-6)[0] == bench.MAX_ROUNDS  # cheap calls: as many as allowed
    assert bench.schedule(0.1)[0] == bench.MIN_ROUNDS
    monkeypatch.setattr(bench, "FIXED_ROUNDS", 7)
    assert [bench.schedule(s)[0] for s in (1e-6, 0.1)] == [7, 7]
    assert bench.schedule(1e-6)[1] == 5000  # the round's length is unchanged
    assert bench.machine_info()["bench_rounds"] == 7
