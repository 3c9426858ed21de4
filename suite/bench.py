"""Benchmark targets built from the records, and how pytest-benchmark times them.

Every op record is timed forward and forward+backward, every optimizer record for one step, by
torch (on each selected device and dtype) and by the NumPy reference (CPU, float64), over a
size sweep: ``sizes(spec)`` gives the sizes ``n`` passed to ``spec.inputs.sized(n)`` (n x n
activations and losses, an (n, n) @ (n, n) linear layer, n x n + n optimizer parameters).
An input maker may declare its own sweep as a ``bench_sizes`` attribute; otherwise
``DEFAULT_SIZES`` applies, and a size whose single call exceeds ``MAX_CALL_S`` is skipped with
the measured time (so quadratic and cubic ops stop where they get expensive, without a
per-op table).

Each target does one whole unit of work and, on CUDA, waits for the device before returning
(pytest-benchmark's timer does not synchronise, so an unsynchronised CUDA call would time only
the kernel launch). ``run`` warms the target up (first calls allocate, pick kernels, fill
caches), then times a bounded number of rounds with ``benchmark.pedantic``: every round's time
is kept in the JSON (``stats.data``), which the regression gate (``suite.gate``) tests.

Besides its default setting, an op record is timed (torch only, at the largest size of its
sweep, once per device: :func:`slot_dtype`) in the settings where kernel speed regresses
between torch releases (:func:`settings`): float16 and bfloat16 where the record is on the
precision ladder (``OpSpec.low_precision is True``), and each of its input maker's
``bench_variants`` (``suite.inputs.variants``: stride, dilation, groups and channels-last
tensors of convolutions and pooling, each reduction of a loss), in float32 and, on the ladder,
in half precision too.

For the gate study only (``python -m suite gate-study``), ``GRADSUITE_BENCH_PLANTED_SLOWDOWN=F``
makes every target take F times as long (:func:`planted`), and says so in ``extra_info``.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from suite import gradcheck as gc
from suite import optimcheck as oc
from suite import sampling
from suite.devices import cpu_model, cuda_available, device_name, dtype_name, synchronize
from suite.inputs.variants import BenchVariant
from suite.specs import Case, OpSpec, OptimizerSpec

PASSES = ("forward", "forward+backward")
IMPLS = ("torch", "numpy")
# Sizes n of sized cases, small (call overhead) to large (the asymptotic cost shows).
DEFAULT_SIZES = (16, 64, 256, 1024)
# A size whose one call takes longer than this is skipped: it would dominate the run.
MAX_CALL_S = 1.0
# Warm-up: at least this many calls and this long before timing.
WARMUP_CALLS = 3
WARMUP_S = 0.05
# Each round repeats the target until it lasts about ROUND_S (timer overhead and scheduler
# ticks are then small against it); rounds are then added up to BUDGET_S, between MIN_ROUNDS
# (enough for the gate's rank test to reach significance) and MAX_ROUNDS (bounded JSON).
ROUND_S = 0.005
BUDGET_S = 0.4
MIN_ROUNDS = 10
MAX_ROUNDS = 40
# ``--bench-rounds N`` (the plugin sets it): exactly N rounds a benchmark instead, for runs that
# sample many processes, where the process rather than the round is the unit (suite.sampling).
FIXED_ROUNDS: int | None = None

# Back-compatibility name: the sweep of records that declare none.
BENCH_SIZES = DEFAULT_SIZES
# Half-precision dtypes timed where a record is on the precision ladder.
HALF_DTYPES = (torch.float16, torch.bfloat16)
# Settings besides the default are timed at this many of the largest sizes of the sweep,
# once per device: in the float32 slot of the run's dtypes (see slot_dtype).
SETTING_SIZES = 1


def sizes(spec: OpSpec | OptimizerSpec) -> tuple[int, ...]:
    """The size sweep of a record: its input maker's ``bench_sizes``, or ``DEFAULT_SIZES``."""
    inputs = getattr(spec, "inputs", None)
    declared = getattr(inputs, "bench_sizes", None)
    return tuple(declared) if declared else DEFAULT_SIZES


def all_sizes(records: tuple[OpSpec, ...] | tuple[OptimizerSpec, ...]) -> tuple[int, ...]:
    """Every size any of ``records`` sweeps (the benchmark parametrization)."""
    return tuple(sorted({n for spec in records for n in sizes(spec)}))


@dataclass(frozen=True)
class Setting:
    """A setting an op record is timed in: a variant of its input maker's ``bench_variants``
    (None: the default options and layout) and a half-precision dtype (None: the run's
    dtypes)."""

    variant: str | None = None
    dtype: torch.dtype | None = None

    @property
    def default(self) -> bool:
        return self.variant is None and self.dtype is None

    @property
    def id(self) -> str:
        """``""`` for the default, else ``dilation2``, ``bfloat16``, ``dilation2-bfloat16``."""
        parts = [self.variant] if self.variant else []
        if self.dtype is not None:
            parts.append(dtype_name(self.dtype))
        return "-".join(parts)


def variants(spec: OpSpec) -> Mapping[str, BenchVariant]:
    """The record's kernel-selecting settings: its input maker's ``bench_variants`` ({} when
    it has none)."""
    return dict(getattr(spec.inputs, "bench_variants", None) or {})


def settings(spec: OpSpec) -> tuple[Setting, ...]:
    """Every setting ``spec`` is timed in: the default; float16 and bfloat16 where the record
    is on the precision ladder (``low_precision is True``); each variant, in the slot's dtype
    (:func:`slot_dtype`) and (on the ladder) in half precision."""
    halves = HALF_DTYPES if spec.low_precision is True else ()
    out = [Setting(), *(Setting(dtype=h) for h in halves)]
    for name in variants(spec):
        out += [Setting(variant=name), *(Setting(variant=name, dtype=h) for h in halves)]
    return tuple(out)


def setting_sizes(spec: OpSpec, setting: Setting) -> tuple[int, ...]:
    """The sizes ``spec`` is timed at in ``setting``: its whole sweep by default, the
    ``SETTING_SIZES`` largest otherwise (where kernels differ most; a bounded run)."""
    sweep = sizes(spec)
    return sweep if setting.default else tuple(sorted(sweep)[-SETTING_SIZES:])


def slot_dtype(selected: tuple[str, ...] | list[str]) -> str:
    """The run's dtype (of ``--dtype``'s ``selected``) whose benchmarks also time the settings
    besides the default: float32 when selected (half precision and the variants belong with
    the lower precision), else the first. A variant without its own dtype is timed in it."""
    return "float32" if "float32" in selected else selected[0]


def setting_case(spec: OpSpec, n: int, setting: Setting) -> Case:
    """``spec.inputs.sized(n)`` in ``setting``'s variant."""
    case = spec.inputs.sized(n)
    return variants(spec)[setting.variant].case(case) if setting.variant else case


def op_target(spec: OpSpec, case: Case, impl: str, pass_: str, dtype: torch.dtype,
              device: str, variant: BenchVariant | None = None) -> Callable[[], Any]:
    """One forward (or forward and backward) of ``spec`` on ``case`` by torch or the reference;
    ``variant`` lays torch's tensors out in its memory format (its options are the case's)."""
    if impl == "numpy":
        if pass_ == "forward":
            return lambda: spec.reference(case)
        g_np = gc.cotangent(case, np.shape(spec.reference(case)))
        return lambda: (spec.reference(case), spec.reference_vjp(g_np, case))

    tensors = gc.to_tensors(case, dtype, device)
    if variant is not None:
        tensors = variant.layout(tensors)
    options = dict(case.options)
    if pass_ == "forward":
        def forward() -> torch.Tensor:
            with torch.no_grad():
                out = spec.torch_fn(**tensors, **options)
            synchronize(device)
            return out

        return forward
    out_shape = tuple(spec.torch_fn(**tensors, **options).shape)
    g = torch.tensor(gc.cotangent(case, out_shape), dtype=dtype, device=device)
    differentiable = [tensors[name] for name in case.differentiable]

    def forward_backward() -> None:
        grads = torch.autograd.grad(spec.torch_fn(**tensors, **options), differentiable, g)
        synchronize(device)
        del grads

    return forward_backward


def optimizer_target(spec: OptimizerSpec, n: int, impl: str, dtype: torch.dtype,
                     device: str) -> Callable[[], Any]:
    """One optimizer step on two parameters (n x n and n; the matrix alone for a record that
    takes no vectors, ``OptimizerSpec.param_dims``) by torch (``impl`` names the
    implementation: for-loop, foreach, fused) or by the reference (``numpy``)."""
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((n, n)), rng.standard_normal(n)][
        :2 if spec.param_dims[0] <= 1 else 1]
    grads = [rng.standard_normal(p.shape) for p in params]
    hyper = dict(spec.bench_hyper)
    if impl == "numpy":
        # Start from the state after one step, so the timed step is a steady-state step.
        states = [spec.ref_step(p, g, None, **hyper)[1] for p, g in zip(params, grads,
                                                                         strict=True)]
        return lambda: [spec.ref_step(p, g, s, **hyper)
                        for p, g, s in zip(params, grads, states, strict=True)]
    tensors = [torch.tensor(p, dtype=dtype, device=device, requires_grad=True) for p in params]
    for t, g in zip(tensors, grads, strict=True):
        t.grad = torch.tensor(g, dtype=dtype, device=device)
    opt = spec.torch_cls(tensors, **hyper, **oc.flags_for(spec, impl))  # Muon: no foreach flag
    opt.step()

    def step() -> None:
        opt.step()
        synchronize(device)

    return step


def warm_up(target: Callable[[], Any], device: str) -> float:
    """Call ``target`` at least ``WARMUP_CALLS`` times and ``WARMUP_S`` long (or twice, when a
    call exceeds ``MAX_CALL_S``); return the median wall time of one call after the first."""
    synchronize(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < WARMUP_CALLS or time.perf_counter() - start < WARMUP_S:
        t0 = time.perf_counter()
        target()  # synchronises on CUDA before returning
        times.append(time.perf_counter() - t0)
        if len(times) >= 2 and times[-1] > MAX_CALL_S:  # the first call may be lazy set-up
            break
    synchronize(device)
    return float(np.median(times[1:]))


def schedule(call_s: float) -> tuple[int, int]:
    """``(rounds, iterations)`` for a target whose one call takes ``call_s`` seconds
    (``FIXED_ROUNDS`` rounds when set)."""
    iterations = max(1, math.ceil(ROUND_S / max(call_s, 1e-9)))
    round_s = iterations * max(call_s, 1e-9)
    rounds = min(MAX_ROUNDS, max(MIN_ROUNDS, round(BUDGET_S / round_s)))
    return (FIXED_ROUNDS or rounds), iterations


def timer(device: str) -> Callable[[], float]:
    """The clock a benchmark on ``device`` is timed with.

    On the CPU with every pool at one thread (the default: ``--torch-threads 1``, BLAS pinned
    to one thread), all the work runs on the calling thread, so its CPU time
    (``time.thread_time``) is the cost of the call without the time the scheduler gave to
    other processes: on a shared 2-core machine preemption by other processes is the largest
    source of run-to-run noise. CUDA work is not CPU time, and several threads' work is not
    one thread's, so otherwise the wall clock (``time.perf_counter``) is used. The choice is
    recorded in ``extra_info["timer"]`` and in the JSON's ``options.timer``.
    """
    if device == "cpu" and torch.get_num_threads() == 1 and all(
            n == 1 for n in blas_threads()):
        return time.thread_time
    return time.perf_counter


def _spin(n: int) -> None:
    """Busy work: n turns of an empty loop (over ``itertools.repeat``, whose turns all cost
    the same, unlike ``range``'s: integers above 256 are allocated, smaller ones cached)."""
    for _ in itertools.repeat(None, n):
        pass


def per_call(fn: Callable[[], Any], clock: Callable[[], float], *, batch_s: float = 0.002,
             samples: int = 5) -> float:
    """The median time of one call of ``fn`` on ``clock``, timed in batches of about
    ``batch_s`` (so that reading the clock costs nothing per call)."""
    start = clock()
    fn()
    calls = max(1, math.ceil(batch_s / max(clock() - start, 1e-9)))
    times = []
    for _ in range(samples):
        t0 = clock()
        for _ in range(calls):
            fn()
        times.append((clock() - t0) / calls)
    return float(np.median(times))


def planted(target: Callable[[], Any], factor: float, clock: Callable[[], float], *,
            spin: Callable[[int], None] = _spin) -> Callable[[], Any]:
    """``target`` made ``factor`` times as slow on ``clock``: each call is followed by busy
    work lasting (factor - 1) times the call's duration. The gate study's planted regression.

    The call's duration d and the cost of one turn of the busy loop are measured here, in this
    process (so the slowdown follows the speed mode the process landed in), in batches; the
    wrapper itself costs a little (a Python call), which is taken out of the busy work. No
    clock is read per call: reading a CPU-time clock costs about 1 us, which on a 4 us call
    would plant 1.7x instead of 1.5x."""
    duration = per_call(target, clock)
    turns = 10_000
    turn = per_call(lambda: spin(turns), clock) / turns

    def with_turns(fn: Callable[[], Any], n: int) -> Callable[[], Any]:
        def slowed() -> Any:
            out = fn()
            spin(n)
            return out

        return slowed

    def nothing() -> None:
        return None

    # The wrapper's own cost, measured around a call that does nothing (measured around the
    # target, it would drown in the target's own variation).
    overhead = max(0.0, per_call(with_turns(nothing, 0), clock) - per_call(nothing, clock))
    n = max(0, round(((factor - 1) * duration - overhead) / max(turn, 1e-12)))
    return with_turns(target, n)


def run(benchmark: Any, target: Callable[[], Any], device: str) -> None:
    """Warm ``target`` up, skip it if one call exceeds ``MAX_CALL_S``, then time it with
    ``benchmark.pedantic`` on ``timer(device)`` (rounds, iterations and the timer recorded
    in ``extra_info``). With ``GRADSUITE_BENCH_PLANTED_SLOWDOWN`` set, the target is
    :func:`planted` first."""
    import pytest

    clock = timer(device)
    factor = sampling.planted_slowdown(os.environ)
    if factor is not None:
        warm_up(target, device)  # calibrate the planted work on a warm target
        target = planted(target, factor, clock)
        benchmark.extra_info["planted_slowdown"] = factor
    call_s = warm_up(target, device)
    if call_s > MAX_CALL_S:
        pytest.skip(f"one call takes {call_s:.2f} s, over the sweep's ceiling "
                    f"suite.bench.MAX_CALL_S = {MAX_CALL_S} s")
    rounds, iterations = schedule(call_s)
    # pytest-benchmark has one --benchmark-timer per session; the clock is a per-device
    # choice, so it is set on this benchmark's fixture (``_timer``, the attribute its runner
    # reads in pytest-benchmark 3 to 5; tests/benchmarks would show a change).
    benchmark._timer = clock
    benchmark.extra_info.update({"rounds": rounds, "iterations": iterations,
                                 "timer": clock.__name__})
    benchmark.pedantic(target, rounds=rounds, iterations=iterations, warmup_rounds=1)


def blas_threads() -> list[int]:
    """NumPy's BLAS thread counts, one per loaded BLAS library."""
    from threadpoolctl import threadpool_info

    return [int(p["num_threads"]) for p in threadpool_info()
            if p.get("user_api") == "blas" and p.get("num_threads") is not None]


def extra_info(*, op: str, pass_: str, impl: str, device: str, dtype: torch.dtype,
               shape: str, n: int | None = None, variant: str | None = None,
               options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a saved run must carry to be compared honestly with another (``variant``: the
    input maker's setting timed, None for the default; ``options``: the op's options)."""
    info: dict[str, Any] = {
        "op": op, "pass": pass_, "impl": impl, "device": device,
        "device_name": device_name(device), "dtype": dtype_name(dtype), "shape": shape, "n": n,
        "torch": torch.__version__, "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(), "blas_threads": blas_threads()}
    if variant is not None:
        info["variant"] = variant
    if options is not None:
        info["options"] = {k: v if isinstance(v, bool | int | float | str | None) else repr(v)
                           for k, v in options.items()}
    return info


def machine_info() -> dict[str, Any]:
    """What gradsuite adds to pytest-benchmark's ``machine_info`` (the plugin's hook): the
    builds and settings that change timings. ``suite.gate`` warns when two runs differ here."""
    return {"torch_version": torch.__version__, "torch_cuda": torch.version.cuda,
            "numpy_version": np.__version__, "cpu_model": cpu_model(),
            "cuda_device": device_name("cuda") if cuda_available() else None,
            "torch_threads": torch.get_num_threads(), "blas_threads": blas_threads(),
            "bench_rounds": FIXED_ROUNDS}
