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
import torch
from torch import nn

from references import pooling as ref
from suite import conditioning, versions
from suite import tolerances as tols
from suite.catalog.conv import ties, unbatched_channels_last_view
from suite.inputs import spatial
from suite.missing import functional
from suite.specs import Case, ModuleForm, OpSpec

_DOCS = "https://pytorch.org/docs/stable/generated/torch.nn.{}.html"


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


def _adaptive_avg3d_half_sum(case: Case, dtype: torch.dtype) -> str | None:
    """torch's CPU adaptive_avg_pool3d in float16 and bfloat16 sums each window in the half
    type (adaptive_avg_pool1d/2d sum in float32 and round once): a window of n elements carries
    up to gamma_(n-1) sum|x| = (n - 1) u / (1 - (n - 1) u) sum|x| of rounding (Higham, eq.
    (4.4); the order of torch's sum is not row-major, so no tighter order-bound applies), and a
    partial sum can overflow to +-inf once sum|x| passes the type's largest number (22 x 22 x
    20 float16 window with +-8188 at every row's ends: [-inf, inf] where [-1.865, -1.821]).
    KNOWN_DIFFERENCES.md, "adaptive_avg_pool3d in half precision sums in the half type"; a
    strict xfail in tests/test_hard.py. The hard tier allows rtol |mean| + SUMMATION M for a
    half type (M = mean |x|; suite/hardcheck.py ``allowance``), and torch's error is at most
    gamma_(n-1) M + u |mean| (the sum, then the division's rounding): set aside exactly the
    windows where that bound exceeds the allowance or sum |x| exceeds the largest number; a
    case with neither cannot fail the check for this reason."""
    if dtype not in (torch.float16, torch.bfloat16):
        return None
    x = np.asarray(case.arrays["input"], dtype=np.float64)
    mean = np.abs(ref.adaptive_avg_pool3d(x, case.options["output_size"]))
    m = ref.adaptive_avg_pool3d(np.abs(x), case.options["output_size"])
    sides = x.shape[-3:]
    lengths = [ref._adaptive_bounds(n, o)[1]
               for n, o in zip(sides, ref._adaptive_sizes(case.options["output_size"], sides),
                               strict=True)]
    n = np.einsum("i,j,k->ijk", *lengths).astype(np.float64)
    u = float(torch.finfo(dtype).eps) / 2
    j = (n - 1) * u
    gamma = np.where(j < 1, j / np.maximum(1 - j, 1e-300), np.inf)
    allowed = (tols.resolve(dtype, tols.Kind.FORWARD).rtol * mean + tols.summation(dtype) * m)
    if np.any(m * n > float(torch.finfo(dtype).max)):
        return f"adaptive_avg_pool3d in {dtype}: a window's sum |x| passes the largest number"
    if np.any(gamma * m + u * mean > allowed):
        return (f"adaptive_avg_pool3d in {dtype}: a window's sum in the half type may round "
                f"beyond the allowance (up to {int(n.max())} elements)")
    return None


def _adaptive_max_half_index(d: int) -> Callable[[Case, torch.dtype], str | None]:
    """torch before 2.13 (2.2.2 measured): adaptive_max_pool1d/2d in a half type round the argmax
    index (within a plane of the last ``d`` sides) to that type, so a plane of more elements
    than it holds integers exactly sends the gradient elsewhere (KNOWN_DIFFERENCES.md, "Older
    torch: the hard tier on 2.2.2"; a strict xfail)."""

    def rounded(case: Case, dtype: torch.dtype) -> str | None:
        exact = {torch.float16: 2048, torch.bfloat16: 256}.get(dtype)
        plane = math.prod(np.shape(case.arrays["input"])[-d:])
        if versions.ADAPTIVE_MAX_POOL_HALF_INDEX_ROUNDED and exact is not None and plane > exact:
            return ("adaptive max pooling rounds its argmax index to the half type (torch "
                    "before 2.13)")
        return None

    return rounded


def _adaptive(kind: str, d: int) -> OpSpec:
    name = f"adaptive_{kind}_pool{d}d"
    cls = f"Adaptive{kind.capitalize()}Pool{d}d"
    fields: dict[str, Any] = ({"terms": conditioning.MULTILINEAR} if kind == "avg"
                              else {"exact_points": ties})
    if kind == "avg" and d == 3:
        fields["known_defects"] = _adaptive_avg3d_half_sum
    if kind == "max" and d < 3:
        fields["known_defects"] = _adaptive_max_half_index(d)
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


def _lp_log_sums(d: int, case: Case) -> tuple[np.ndarray, float]:
    """ln |S| for each window's S = sum x^p (the signed sum for p = 1), from the reference's
    z = S^(1/p) as p ln |z| (no power formed: S itself may leave float64's range; -inf where
    S = 0), and the divisor k of torch's avg_pool (with the input maker's ceil_mode sides no
    window overhangs)."""
    p = case.options["norm_type"]
    kernel = case.options["kernel_size"]
    sides = tuple(kernel) if isinstance(kernel, tuple | list) else (kernel,)
    k = math.prod(sides * d if len(sides) == 1 else sides)
    z = np.abs(np.asarray(getattr(ref, f"lp_pool{d}d")(**case.arrays, **case.options)))
    with np.errstate(divide="ignore"):
        return p * np.log(z), float(k)


def _lp_power_out_of_range(d: int, case: Case, dtype: torch.dtype) -> str | None:
    """torch's lp_pool is ``avg_pool(x.pow(p)) * k`` then ``.pow(1 / p)``, each step stored in
    the input's dtype, in every dtype. Where a window's mean S / k of x^p falls below the
    dtype's smallest normal number the stored mean is subnormal, spaced smallest_normal * eps
    apart, so its rounding alone exceeds eps relative, and the gradient, which divides by it,
    follows; below half the smallest subnormal it is 0, and so are the output and (torch's
    docstring: a zero sum gets gradient 0) the gradient, where the derivative is O(1) (float16
    x = -4.45e-4, kernel 1, p = 2: 5 % off; x = -1.5e-4: 0 where -1; float32 p = 2, x = 1e-30:
    0 where 0.71; float64 p = 2, x = 1e-170; float32 p = 1, [-1.4e-45, 0], kernel 2: 0 where
    1). Where |S| or one |x|^p exceeds the dtype's largest number, the stored x^p or the
    product by k is inf, and so is the output, with gradient 0 (float16 p = 3, x = 100: inf
    where 100). KNOWN_DIFFERENCES.md, "lp_pool in float16 stores x^p" (its later bullets);
    strict xfails in tests/test_pooling.py and tests/test_hard.py. Set aside exactly there,
    from the exact S of the case's values in ``dtype``; a p = 1 window whose sum is exactly 0
    is torch's documented zero-sum rule, which the input maker keeps off
    (``_lp_sum_vanishes``), not this."""
    p = case.options["norm_type"]
    if math.isinf(p):
        return None
    log_s, k = _lp_log_sums(d, case)
    if p == 1:
        log_s = log_s[np.isfinite(log_s)]
    info = torch.finfo(dtype)
    if np.any(log_s - math.log(k) < math.log(float(info.smallest_normal))):
        return (f"lp_pool in {dtype} with a window's mean of x^p below the smallest normal "
                f"(stored x^p underflows)")
    x = np.abs(np.asarray(case.arrays["input"], dtype=np.float64))
    with np.errstate(divide="ignore"):
        top = max(float(np.max(log_s, initial=-np.inf)),
                  p * float(np.log(np.max(x, initial=0.0))))
    if top > math.log(float(info.max)):
        return f"lp_pool in {dtype} with a window's sum of x^p above the largest number"
    return None


def _bfloat16_exponent(e: float) -> float:
    return float(torch.tensor(e, dtype=torch.bfloat16).item())


def _lp_bfloat16_exponent(d: int, case: Case, dtype: torch.dtype) -> str | None:
    """torch's bfloat16 ``Tensor.pow(e)`` with a Python float e rounds e to bfloat16, in the
    forward (e = 1/p) and in its backward's ``pow(e - 1)``: lp_pool's last step S^(1/p) is then
    S^(1/p + delta), off by the factor exp(delta ln S), and its gradient by exp(delta' ln S)
    (p = 3: delta = 6.5e-4, delta' = -1.3e-3; p = 1.5: 1.3e-3 and -6.5e-4; p = 1 and 2 have
    exact exponents). x = 3.99e9, p = 3: 4.2 % off, the gradient 8.2 %; x = 1e20, p = 1.5:
    9.2 %; bfloat16's rtol is 3.1 %. KNOWN_DIFFERENCES.md, "bfloat16 lp_pool rounds the
    exponent 1/p to bfloat16"; a strict xfail in tests/test_hard.py. Set aside where that
    factor alone, at the case's exact window sums S, moves the forward or the gradient by more
    than half the bfloat16 relative tolerance (4 eps: 2 eps = 1.6 %), the other half being the
    composite's own roundings (x^p, the mean, the product by k, the pow and the backward's
    products, one u = eps / 2 each); elsewhere the rounded exponent stays inside it."""
    p = case.options["norm_type"]
    if dtype != torch.bfloat16 or math.isinf(p):
        return None
    deltas = [abs(_bfloat16_exponent(e) - e) for e in (1 / p, 1 / p - 1)]
    if not any(deltas):
        return None
    log_s, _ = _lp_log_sums(d, case)
    log_s = log_s[np.isfinite(log_s)]
    moved = max(float(np.max(np.abs(log_s), initial=0.0)) * delta for delta in deltas)
    if math.expm1(moved) > tols.resolve(dtype, tols.Kind.FORWARD).rtol / 2:
        return (f"bfloat16 lp_pool with p = {p}: the exponent 1/p rounded to bfloat16 moves the "
                f"result by {math.expm1(moved):.2%}")
    return None


def _lp_defects(d: int) -> Callable[[Case, torch.dtype], str | None]:
    def defects(case: Case, dtype: torch.dtype) -> str | None:
        max_pool3d = d == 3 and math.isinf(case.options["norm_type"])  # which calls it
        return (_lp_inf_is_one(case, dtype) or _lp_power_out_of_range(d, case, dtype)
                or _lp_bfloat16_exponent(d, case, dtype)
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
                  terms=conditioning.COPIES,  # a scatter of copies, its VJP a gather: exact
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
