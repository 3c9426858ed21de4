"""Benchmarks driven by the records: torch beside the NumPy reference.

Not part of the default run; ``pytest -m bench`` runs them (see the README).
"""

from __future__ import annotations

import pytest
import torch

from suite import bench, catalog
from suite import optimcheck as oc

pytestmark = pytest.mark.bench


@pytest.mark.parametrize("n", bench.BENCH_SIZES, ids=lambda n: f"n{n}")
@pytest.mark.parametrize("impl", bench.IMPLS)
@pytest.mark.parametrize("pass_", bench.PASSES)
@pytest.mark.parametrize("spec", catalog.OPS, ids=catalog.spec_id)
def test_op(benchmark, spec, pass_: str, impl: str, n: int, dtype: torch.dtype,
            device: str) -> None:
    if impl == "numpy" and (device != "cpu" or dtype != torch.float64):
        pytest.skip("the NumPy reference runs once, on the CPU in float64")
    case = spec.inputs.sized(n)
    target = bench.op_target(spec, case, impl, pass_, dtype, device)
    shape = ", ".join(f"{k}{tuple(a.shape)}" for k, a in case.arrays.items())
    benchmark.group = f"{spec.name} {pass_} n={n}"
    benchmark.extra_info.update(bench.extra_info(op=spec.name, pass_=pass_, impl=impl,
                                                 device=device, dtype=dtype, shape=shape))
    benchmark(target)


@pytest.mark.parametrize("n", bench.BENCH_SIZES, ids=lambda n: f"n{n}")
@pytest.mark.parametrize("impl", [*oc.IMPLEMENTATIONS, "numpy"])
@pytest.mark.parametrize("spec", catalog.OPTIMIZERS, ids=catalog.spec_id)
def test_optimizer_step(benchmark, spec, impl: str, n: int, dtype: torch.dtype,
                        device: str) -> None:
    if impl == "numpy":
        if device != "cpu" or dtype != torch.float64:
            pytest.skip("the NumPy reference runs once, on the CPU in float64")
    elif reason := oc.unavailable(spec, impl, dtype, device):
        pytest.skip(reason)
    benchmark.group = f"{spec.name} step n={n}"
    benchmark.extra_info.update(bench.extra_info(op=spec.name, pass_="step", impl=impl,
                                                 device=device, dtype=dtype,
                                                 shape=f"({n}, {n}) + ({n},)"))
    benchmark(bench.optimizer_target(spec, n, impl, dtype, device))
