"""Distance function records, alphabetical: torch.nn's CosineSimilarity and PairwiseDistance.

Both modules take the functional options as they are (``module(**options)``) and are checked
against the functional form in tests/test_ops.py. Their arguments broadcast against each other:
pairwise_distance's through ``broadcasts`` (tests/test_ops.py cuts dimensions of either to
size 1). cosine_similarity reduces a drawn ``dim``, and where that dimension is cut to 1 the
cosine is scale-invariant in the cut argument: its derivative is exactly 0, which central
differences resolve only to their rounding (2.5e-11 against an allowance of 1.2e-11 seen).
tests/test_layers.py::test_cosine_similarity_broadcast therefore cuts the other dimensions
with every check, and the reduced one with torch's checks only.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from references import distance as ref
from suite import conditioning
from suite.catalog.losses import p_norm_underflows
from suite.inputs import layers as hi
from suite.specs import Array, Case, ModuleForm, OpSpec

_DOCS = "https://pytorch.org/docs/stable/generated/torch.nn.{}.html"


def _cosine_pair(case: Case) -> tuple[Array, Array, int, float] | None:
    """cosine_similarity's x1 and x2 broadcast together in float64, its dim (non-negative) and
    eps; None for an empty or non-finite pair (no defect predicate applies there)."""
    a, b = np.broadcast_arrays(np.asarray(case.arrays["x1"], dtype=np.float64),
                               np.asarray(case.arrays["x2"], dtype=np.float64))
    if a.size == 0 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return None
    return a, b, case.options.get("dim", 1) % a.ndim, float(case.options.get("eps", 1e-8))


def _cosine_defects(case: Case, dtype: torch.dtype) -> str | None:
    return _cosine_straight_through_visible(case, dtype) or _cosine_half_defects(case, dtype)


def _cosine_straight_through_visible(case: Case, dtype: torch.dtype) -> str | None:
    """The recorded "eps clamp is invisible to autograd" (KNOWN_DIFFERENCES.md, strict xfail
    tests/test_layers.py::test_cosine_similarity_gradient_below_eps_is_the_derivative): where
    a norm is in (0, eps) torch's gradient keeps the unclamped norm's term. Set aside where
    that term moves the gradient by more than the hard tier's allowance for it (float32 2.5e-5
    relative seen for norms of 4e-16 against eps 1e-8, `tiny`). torch_vjp_options would
    compare torch's form instead, but would also refuse the record's gradcheck."""
    from suite import tolerances as tols
    from suite.gradcheck import cotangent

    pair = _cosine_pair(case)
    if pair is None:
        return None
    a, b, dim, eps = pair
    norms = np.concatenate([np.linalg.norm(v, axis=dim).ravel() for v in (a, b)])
    # torch sums the squares unscaled in the accumulation type: below its smallest normal
    # number the norm it clamps is 0 (or off), and no unclamped term is kept
    tiny = float(torch.finfo(tols.accumulation_dtype(dtype)).smallest_normal)
    if not np.any((norms > 0) & (norms < eps) & (norms**2 >= tiny)):
        return None
    g = cotangent(case, np.shape(ref.cosine_similarity(a, b, dim)))
    options = {"dim": case.options.get("dim", 1), "eps": eps}
    derivative = ref.cosine_similarity_vjp(g, case.arrays["x1"], case.arrays["x2"], **options)
    torch_form = ref.cosine_similarity_vjp(g, case.arrays["x1"], case.arrays["x2"], **options,
                                           straight_through=True)
    # beyond the hard tier's allowance (suite/hardcheck.py allowance): the row's rtol, the
    # derived sum |terms| M per unit (SUMMATION and (n + extra) u_acc) and the absolute floor
    n = max(int(a.size), int(b.size))
    rtol = tols.resolve(dtype, tols.Kind.GRADIENT).rtol
    per_m = tols.summation(dtype) + tols.hard_summation(dtype, n)
    floor = tols.hard_floor(dtype, n, conditioning.magnitude(case, g))
    m = conditioning.COSINE_SIMILARITY.vjp(None, g, case)  # type: ignore[arg-type]
    with np.errstate(all="ignore"):
        if any(np.any(np.abs(torch_form[k] - derivative[k])
                      > rtol * np.abs(derivative[k]) + per_m * m[k] + floor)
               for k in derivative):
            return "cosine_similarity's straight-through clamp below eps is visible"
    return None


def _cosine_half_defects(case: Case, dtype: torch.dtype) -> str | None:
    """Two float16 cosine_similarity cases (KNOWN_DIFFERENCES.md, strict xfails in
    tests/test_hard.py), judged on each side a of the broadcast pair (a, b) with n = ||a||,
    c = max(n, eps):

    - eps rounds to 0 in the dtype (1e-8 in float16) and n < eps: torch's clamp then does
      nothing and divides 0 by 0 (NaN where the documented formula gives 0).
    - torch's backward forms g (b / c_b) / c_a and g cos / c_a (the derivative of a / c_a)
      before they cancel: where one passes the dtype's largest value it is inf and the
      gradient inf / NaN, although the gradient is representable (float16, ||x2|| = 8.1e-6:
      inf for 28096). Where c or an element of b / c_b is subnormal in the dtype and 1 / c_a
      (c_a < 1) then magnifies its rounding, the gradient loses relative precision (bfloat16,
      x1 = 0, x2 = [1.3, 1.84e-40], eps 1e-6: 1.84e-34 for 1.42e-34; float16 norms of ~2e-5).
      g is the hard tier's cotangent of the case (suite/gradcheck.py)."""
    from suite.gradcheck import cotangent

    if dtype not in (torch.float16, torch.bfloat16):
        return None
    pair = _cosine_pair(case)
    if pair is None:
        return None
    a, b, dim, eps = pair
    g = np.expand_dims(np.abs(cotangent(case, np.shape(ref.cosine_similarity(a, b, dim)))), dim)
    n_a, n_b = (np.linalg.norm(v, axis=dim, keepdims=True) for v in (a, b))
    if float(torch.tensor(eps, dtype=dtype)) == 0 and np.any(np.minimum(n_a, n_b) < eps):
        return f"cosine_similarity's eps {eps:g} is 0 in {dtype}: 0 / 0"
    c_a, c_b = np.maximum(n_a, eps), np.maximum(n_b, eps)
    top, normal = float(torch.finfo(dtype).max), float(torch.finfo(dtype).smallest_normal)
    with np.errstate(all="ignore"):
        for c_u, c_v, v in ((c_a, c_b, b), (c_b, c_a, a)):
            part = g * np.max(np.abs(v), axis=dim, keepdims=True) / c_v / c_u
            if np.any(part > top) or np.any(g / c_u > top):
                return f"cosine_similarity's {dtype} backward overflows g / ||x||"
            unit = np.abs(v) / c_v
            if np.any(c_v < normal) or np.any((unit > 0) & (unit < normal) & (c_u < 1)):
                return f"cosine_similarity's {dtype} norm or x / ||x|| is subnormal"
    return None


def _pairwise_norm_out_of_range(case: Case, dtype: torch.dtype) -> str | None:
    """The recorded "p-norms of tiny vectors underflow" (KNOWN_DIFFERENCES.md), reached through
    F.pairwise_distance = vector_norm(x1 - x2 + eps, p) and its backward: for p > 1 where the
    powers |d_i|^p sum below the dtype's smallest normal number (``p_norm_underflows``: float64
    p = 3, d = -8.3e-316 gives the norm but a NaN gradient); for p < 1 (p != 0) where the
    backward's |d_i|^(p - 1), or for p < 0 the sum of |d_i|^p, passes the dtype's largest value
    (float64 p = -1, d = [8.1e-320, 0.5]: norm 0 and a NaN gradient for 8.1e-320 and 1)."""
    p, eps = float(case.options.get("p", 2.0)), float(case.options.get("eps", 1e-6))
    d = np.subtract(*np.broadcast_arrays(np.asarray(case.arrays["x1"], dtype=np.float64),
                                         np.asarray(case.arrays["x2"], dtype=np.float64))) + eps
    if d.size == 0 or p == 0 or math.isinf(p) or not np.all(np.isfinite(d)):
        return None
    if p > 1:
        if p_norm_underflows(d, p, dtype):
            return f"the p = {p} norm's powers underflow {dtype}"
        return None
    a = np.abs(d)
    log_top = math.log(float(torch.finfo(dtype).max))
    with np.errstate(divide="ignore"):
        logs = np.where(a > 0, np.log(np.where(a > 0, a, 1.0)), 0.0)
        if np.any((a > 0) & ((p - 1) * logs > log_top)):
            return f"|d|^(p - 1) overflows {dtype} (p = {p})"
        if p < 0 and np.all(a > 0, axis=-1).any():
            low = np.min(np.where(a > 0, a, np.inf), axis=-1, keepdims=True)
            log_sum = p * np.log(low[..., 0]) + np.log(np.sum((a / low) ** p, axis=-1))
            if np.any(np.all(a > 0, axis=-1) & (log_sum > log_top)):
                return f"sum |d|^p overflows {dtype} (p = {p})"
    return None

RECORDS = (
    OpSpec(name="cosine_similarity", family="layer", torch_fn=F.cosine_similarity,
           ref=ref.cosine_similarity, ref_vjp=ref.cosine_similarity_vjp,
           inputs=hi.Pair("cosine"), docs=_DOCS.format("CosineSimilarity"),
           module=ModuleForm(nn.CosineSimilarity), known_defects=_cosine_defects,
           terms=conditioning.COSINE_SIMILARITY),
    OpSpec(name="pairwise_distance", family="layer", torch_fn=F.pairwise_distance,
           ref=ref.pairwise_distance, ref_vjp=ref.pairwise_distance_vjp,
           inputs=hi.Pair("pairwise"), docs=_DOCS.format("PairwiseDistance"),
           module=ModuleForm(nn.PairwiseDistance), broadcasts=("x1", "x2"),
           terms=conditioning.PAIRWISE_DISTANCE, known_defects=_pairwise_norm_out_of_range,
           low_precision="d = x1 - x2 + eps cancels for close inputs, and the norm's "
                         "derivative divides d's rounding by ||d||_p (by |d_i|^(1 - p) for "
                         "p < 1): a conditioning not derived yet (as the triplet losses')"),
)
