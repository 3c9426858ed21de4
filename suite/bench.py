"""Benchmark targets built from the records: the callables pytest-benchmark times.

Each target does one whole unit of work and, on CUDA, waits for the device before returning
(pytest-benchmark's timer does not synchronise, so an unsynchronised CUDA call would time only
the kernel launch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from suite import gradcheck as gc
from suite import optimcheck as oc
from suite.devices import device_name, dtype_name, synchronize
from suite.specs import Case, OpSpec, OptimizerSpec

PASSES = ("forward", "forward+backward")
IMPLS = ("torch", "numpy")
# Sizes n of sized cases: n x n activations and losses, an (n, n) @ (n, n) linear layer.
BENCH_SIZES = (64, 512)


def op_target(spec: OpSpec, case: Case, impl: str, pass_: str, dtype: torch.dtype,
              device: str) -> Callable[[], Any]:
    """One forward (or forward and backward) of ``spec`` on ``case`` by torch or the reference."""
    if impl == "numpy":
        arrays, options = dict(case.arrays), dict(case.options)
        if pass_ == "forward":
            return lambda: spec.ref(**arrays, **options)
        g_np = gc.cotangent(case, np.shape(spec.ref(**arrays, **options)))
        return lambda: (spec.ref(**arrays, **options), spec.ref_vjp(g_np, **arrays, **options))

    tensors = gc.to_tensors(case, dtype, device)
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
    """One optimizer step on two parameters (n x n and n) by torch (``impl`` names the
    implementation: for-loop, foreach, fused) or by the reference (``numpy``)."""
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((n, n)), rng.standard_normal(n)]
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
    opt = spec.torch_cls(tensors, **hyper, **oc.IMPLEMENTATIONS[impl])
    opt.step()

    def step() -> None:
        opt.step()
        synchronize(device)

    return step


def extra_info(*, op: str, pass_: str, impl: str, device: str, dtype: torch.dtype,
               shape: str) -> dict[str, Any]:
    """What a saved run must carry to be compared honestly with another."""
    from threadpoolctl import threadpool_info

    blas = [p.get("num_threads") for p in threadpool_info() if p.get("user_api") == "blas"]
    return {"op": op, "pass": pass_, "impl": impl, "device": device,
            "device_name": device_name(device), "dtype": dtype_name(dtype), "shape": shape,
            "torch": torch.__version__, "numpy": np.__version__,
            "torch_threads": torch.get_num_threads(), "blas_threads": blas}
