"""Adaptive, LP and fractional pooling and max unpooling records, alphabetical.

Each has its ``torch.nn`` module form (checked against the functional form in
tests/test_ops.py). Every max here has ties as exact points (``suite.catalog.conv.ties``: the
first maximum in row-major window order takes the gradient); LP pooling only for p = +-inf,
where it is max (min) pooling of |x|.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from references import pooling as ref
from suite import conditioning, versions
from suite.catalog.conv import ties, unbatched_channels_last_view
from suite.inputs import spatial
from suite.specs import Case, ModuleForm, OpSpec

_DOCS = "https://pytorch.org/docs/stable/generated/torch.nn.{}.html"


def functional(name: str) -> Callable[..., torch.Tensor]:
    """``torch.nn.functional.<name>``, or where this torch lacks it (lp_pool3d is newer than
    torch 2.0, for one) a stand-in whose every check skips, saying so: the record stays, so its
    reference is still checked against finite differences."""
    found = getattr(F, name, None)
    if found is not None:
        return found

    def unavailable(*_: object, **__: object) -> torch.Tensor:
        pytest.skip(f"torch {torch.__version__} has no torch.nn.functional.{name}")

    unavailable.__name__ = f"{name} (missing)"
    return unavailable


def _lp_ties(options: Mapping[str, Any]) -> tuple[float, ...]:
    """Ties of |x| matter only where LP pooling is a max (p = +-inf); elsewhere it is smooth
    (and x^p of the tie values -1 and 0 is not differentiable for every p)."""
    return ties(options) if math.isinf(options["norm_type"]) else ()


class _UnpoolWithSize(nn.Module):
    """nn.MaxUnpool{1,2,3}d called with the case's ``output_size``, which the module takes in
    its forward, not its constructor."""

    def __init__(self, inner: nn.Module, output_size: Any) -> None:
        super().__init__()
        self.inner = inner
        self.output_size = output_size

    def forward(self, input: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return self.inner(input, indices, output_size=self.output_size)


def _unpool_module(cls: type[nn.Module]) -> Callable[[Case], nn.Module]:
    def build(case: Case) -> nn.Module:
        options = dict(case.options)
        output_size = options.pop("output_size", None)
        return _UnpoolWithSize(cls(**options), output_size)

    return build


def _adaptive(kind: str, d: int) -> OpSpec:
    name = f"adaptive_{kind}_pool{d}d"
    cls = f"Adaptive{kind.capitalize()}Pool{d}d"
    fields: dict[str, Any] = ({"terms": conditioning.MULTILINEAR} if kind == "avg"
                              else {"exact_points": ties})
    return OpSpec(name=name, family="layer", torch_fn=functional(name), ref=getattr(ref, name),
                  ref_vjp=getattr(ref, f"{name}_vjp"),
                  inputs=spatial.AdaptivePooling(kind, d, max_side=6 if d == 3 else 9),
                  docs=_DOCS.format(cls), module=ModuleForm.optional(getattr(nn, cls, None)),
                  **fields)


def _lp_inf_is_one(case: Case, dtype: torch.dtype) -> str | None:
    """torch before 2.13 (2.2.2 measured): lp_pool with norm_type inf gives 1, sum(x^inf)^0,
    not the window's max |x| (KNOWN_DIFFERENCES.md, "Older torch: the hard tier on 2.2.2"; a strict
    xfail)."""
    if versions.LP_POOL_INF_IS_ONE and math.isinf(case.options["norm_type"]):
        return "lp_pool with norm_type inf gives 1 (torch before 2.13)"
    return None


def _lp_half_power_underflows(d: int, case: Case, dtype: torch.dtype) -> str | None:
    """torch's lp_pool is ``avg_pool(x.pow(p)) * k`` then ``.pow(1 / p)``, each step stored in
    the input's dtype. Where a window's mean of x^p falls below the half type's smallest normal
    number (float16: 6.1e-5, so |x| < 7.8e-3 at p = 2), the stored mean is subnormal, spaced
    smallest_normal * eps apart, so its rounding alone exceeds eps relative, and the gradient,
    which divides by it, follows (float16 x = -4.45e-4, kernel 1: 5 % off; x = -1.5e-4: x^2 is
    stored as 0, the output 0 and the gradient 0 where it is -1; KNOWN_DIFFERENCES.md, "lp_pool
    in float16 stores x^p"). Set aside there; a strict xfail in tests/test_pooling.py shows
    it."""
    p = case.options["norm_type"]
    if dtype not in (torch.float16, torch.bfloat16) or p == 1 or math.isinf(p):
        return None
    kernel = case.options["kernel_size"]
    sides = tuple(kernel) if isinstance(kernel, tuple | list) else (kernel,)
    # Each window's divisor k (with the input maker's ceil_mode sides no window overhangs).
    k = math.prod(sides * d if len(sides) == 1 else sides)
    means = np.abs(getattr(ref, f"lp_pool{d}d")(**case.arrays, **case.options)) ** p / k
    if np.any(means < float(torch.finfo(dtype).smallest_normal)):
        return "lp_pool in half precision with a window's mean of x^p below the smallest normal"
    return None


def _lp_defects(d: int) -> Callable[[Case, torch.dtype], str | None]:
    def defects(case: Case, dtype: torch.dtype) -> str | None:
        max_pool3d = d == 3 and math.isinf(case.options["norm_type"])  # which calls it
        return (_lp_inf_is_one(case, dtype) or _lp_half_power_underflows(d, case, dtype)
                or (unbatched_channels_last_view(case) if max_pool3d else None))
    return defects


def _lp(d: int) -> OpSpec:
    name = f"lp_pool{d}d"
    return OpSpec(name=name, family="layer", torch_fn=functional(name), ref=getattr(ref, name),
                  ref_vjp=getattr(ref, f"{name}_vjp"),
                  # For p = 1 the window sum of signed x cancels; the sums of |x|^p on the
                  # case's absolute values bound it (conditioning.MULTILINEAR evaluates the
                  # reference there: sum |x| for p = 1, and for other p, whose terms x^p are
                  # all positive, the result itself) and the VJP's sum over overlapping
                  # windows of g x^(p-1) z^(1-p) likewise.
                  terms=conditioning.MULTILINEAR, exact_points=_lp_ties,
                  inputs=spatial.LpPooling(d, max_side=6 if d == 3 else 9),
                  docs=_DOCS.format(f"LPPool{d}d"), known_defects=_lp_defects(d),
                  module=ModuleForm.optional(getattr(nn, f"LPPool{d}d", None)))


_FRACTIONAL_NOT_HALF = (
    "torch places the windows with floor((i + u) alpha) computed in the input's dtype: in "
    "float16 and bfloat16 that rounding moves window starts, so the same _random_samples pick "
    "other windows than in float32 (KNOWN_DIFFERENCES.md); float32 and float64 are checked with "
    "samples kept away from the rounding boundaries")


def _fractional(d: int) -> OpSpec:
    name = f"fractional_max_pool{d}d"
    return OpSpec(name=name, family="layer", torch_fn=functional(name), ref=getattr(ref, name),
                  ref_vjp=getattr(ref, f"{name}_vjp"), low_precision=_FRACTIONAL_NOT_HALF,
                  exact_points=ties,
                  inputs=spatial.FractionalPooling(d, max_side=6 if d == 3 else 9),
                  docs=_DOCS.format(f"FractionalMaxPool{d}d"),
                  module=ModuleForm(getattr(nn, f"FractionalMaxPool{d}d"),
                                    ctor_arrays=("_random_samples",)))


def _unpool_strided_indices(case: Case, dtype: torch.dtype) -> str | None:
    """torch 2.13.0's max_unpool2d/3d backward views non-contiguous indices (a transposed view)
    as if contiguous and raises "view size is not compatible with input tensor's size and
    stride" (KNOWN_DIFFERENCES.md; a strict xfail in tests/test_hard.py)."""
    if case.label == "layout: transposed indices" and case.arrays["indices"].ndim >= 3:
        return "max_unpool backward with transposed indices raises a view error"
    return None


def _unpool(d: int) -> OpSpec:
    name = f"max_unpool{d}d"
    cls = getattr(nn, f"MaxUnpool{d}d")
    return OpSpec(name=name, family="layer", torch_fn=functional(name), ref=getattr(ref, name),
                  ref_vjp=getattr(ref, f"{name}_vjp"),
                  inputs=spatial.Unpooling(d, max_side=6 if d == 3 else 9),
                  docs=_DOCS.format(f"MaxUnpool{d}d"),
                  known_defects=_unpool_strided_indices if d > 1 else None,
                  module=ModuleForm(cls, factory=_unpool_module(cls)),
                  # torch's backward gathers g for every copy of a repeated index, the forward
                  # keeps one: not the derivative (KNOWN_DIFFERENCES.md)
                  torch_vjp_options={"gradient": "torch"})


RECORDS = (
    *(_adaptive("avg", d) for d in (1, 2, 3)),
    *(_adaptive("max", d) for d in (1, 2, 3)),
    *(_fractional(d) for d in (2, 3)),
    *(_lp(d) for d in (1, 2, 3)),
    *(_unpool(d) for d in (1, 2, 3)),
)
