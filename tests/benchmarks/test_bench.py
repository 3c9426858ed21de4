"""Benchmarks driven by the records: torch beside the NumPy reference, over a size sweep.

Not part of the default run; ``pytest -m bench`` runs them (see the README). Every op record
is timed forward and forward+backward, every optimizer record for one step per implementation,
at each size of ``suite.bench.sizes(spec)``. Groups are ``"<op> <pass> n=<n>"``, so torch and
NumPy at one size sit side by side in pytest-benchmark's table.
"""

from __future__ import annotations

import pytest
import torch

from suite import bench, catalog
from suite import optimcheck as oc

pytestmark = pytest.mark.bench

NUMPY_ONCE = "the NumPy reference runs once, on the CPU in float64"


def _not_swept(spec, n: int) -> None:
    if n not in bench.sizes(spec):
        pytest.skip(f"n={n} is outside {spec.name}'s sweep {bench.sizes(spec)}")


@pytest.mark.parametrize("n", bench.all_sizes(catalog.OPS), ids=lambda n: f"n{n}")
@pytest.mark.parametrize("impl", bench.IMPLS)
@pytest.mark.parametrize("pass_", bench.PASSES)
@pytest.mark.parametrize("spec", catalog.OPS, ids=catalog.spec_id)
def test_op(benchmark, spec, pass_: str, impl: str, n: int, dtype: torch.dtype,
            device: str) -> None:
    if impl == "numpy" and (device != "cpu" or dtype != torch.float64):
        pytest.skip(NUMPY_ONCE)
    _not_swept(spec, n)
    case = spec.inputs.sized(n)
    target = bench.op_target(spec, case, impl, pass_, dtype, device)
    shape = ", ".join(f"{k}{tuple(a.shape)}" for k, a in case.arrays.items())
    benchmark.group = f"{spec.name} {pass_} n={n}"
    benchmark.extra_info.update(bench.extra_info(op=spec.name, pass_=pass_, impl=impl,
                                                 device=device, dtype=dtype, shape=shape, n=n))
    bench.run(benchmark, target, device)


@pytest.mark.parametrize("n", bench.all_sizes(catalog.OPTIMIZERS), ids=lambda n: f"n{n}")
@pytest.mark.parametrize("impl", [*oc.IMPLEMENTATIONS, "numpy"])
@pytest.mark.parametrize("spec", catalog.OPTIMIZERS, ids=catalog.spec_id)
def test_optimizer_step(benchmark, spec, impl: str, n: int, dtype: torch.dtype,
                        device: str) -> None:
    if impl == "numpy":
        if device != "cpu" or dtype != torch.float64:
            pytest.skip(NUMPY_ONCE)
    elif reason := oc.unavailable(spec, impl, dtype, device):
        pytest.skip(reason)
    _not_swept(spec, n)
    benchmark.group = f"{spec.name} step n={n}"
    benchmark.extra_info.update(bench.extra_info(op=spec.name, pass_="step", impl=impl,
                                                 device=device, dtype=dtype,
                                                 shape=f"({n}, {n}) + ({n},)", n=n))
    bench.run(benchmark, bench.optimizer_target(spec, n, impl, dtype, device), device)
