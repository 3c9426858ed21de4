"""Loss records, alphabetical: every loss in torch.nn, functional and module forms.

``tests/test_losses.py`` checks that every public ``torch.nn`` loss class has a record here (or
a written reason why not), that each record's module form agrees with its functional form, and
the exact edge cases (kinks, ignored targets, probabilities at 0 and 1, extreme logits).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import strategies as st

from references import losses_classification as classification
from references import losses_ctc as ctc
from references import losses_margin as margin
from references import losses_probabilistic as probabilistic
from references import losses_regression as regression
from suite import conditioning, versions
from suite.devices import dtype_name
from suite.inputs import losses as li
from suite.missing import functional
from suite.specs import Case, ModuleForm, OpSpec
from suite.tolerances import Kind, Tolerance

_DOCS = "https://pytorch.org/docs/stable/generated/torch.nn.{}.html"
_R = li.REDUCTIONS
_PAIR = ("input", "target")

# Off the half-precision ladder (tests/test_precision.py), each with what was seen (torch
# 2.13.0, CPU): forms that cancel large rounded intermediates, whose sum |terms| is not derived
# yet (suite/conditioning.py), or kernels torch lacks.
_NO_CPU_HALF_KERNEL = ("torch 2.13 has no float16/bfloat16 kernel for it on the CPU (\"not "
                       "implemented for 'Half'\"); on CUDA the half-precision error is not derived")
_BCE_LOGITS_NOT_HALF = ("torch's half-precision form (1 - t) x + log(1 + exp(-x)) cancels two "
                        "terms of size |x|: 0.004 absolute at x = -5.2 in float16 (16 ulp of "
                        "the result); its sum |terms| is not derived")
_KL_NOT_HALF = ("a float16 sum of the pointwise terms overflows 65504 before batchmean divides "
                "(inf where the exact loss is 5.2e4); bfloat16 passes")
_COSINE_NOT_HALF = ("1 - cos(x1, x2) cancels for nearly parallel inputs, computed from rounded "
                    "norms and dot products (0.08 absolute in float16 for 15-element vectors)")
_GAUSSIAN_NOT_HALF = ("the var gradient (1/var - (x - t)^2 / var^2) / 2 is a difference of two "
                      "rounded terms (0.23 absolute in bfloat16); its sum |terms| is not derived")
_MARGIN_OPTION_NOT_HALF = ("a kink placed by a float32 margin that half precision does not "
                           "represent: torch moves the kink to the rounded option")
_SMOOTH_L1_NOT_HALF = ("a beta below the half type's range rounds to 0 in torch's kernel, which "
                       "then gives -g at input == target, a tie rounding makes common "
                       "(KNOWN_DIFFERENCES.md: smooth_l1_loss with a beta that underflows)")
_POISSON_NOT_HALF = ("exp(input) overflows float16 for input > 11.09, inside the drawn range, "
                     "where the exact loss is finite")
_SOFT_MARGIN_NOT_HALF = ("the known overflow of log(1 + exp(-y x)) (KNOWN_DIFFERENCES.md) "
                         "starts at -y x = 11.09 in float16, inside the drawn range")
_TRIPLET_NOT_HALF = ("d(a, p) - d(a, n) + margin cancels two distances computed from rounded "
                     "differences (0.057 absolute in bfloat16); its sum |terms| is not derived")


# torch's own words (2.13.0) for an op without a double backward.
_NO_DOUBLE_BACKWARD = "torch: 'derivative for aten::{} is not implemented' (no double backward)"


def _bce_half_clamp_underflows(case: Case, dtype: torch.dtype) -> str | None:
    """torch 2.13.0's float16 binary_cross_entropy backward divides by max(x (1 - x), 1e-12)
    in float16, where 1e-12 is 0: at an input of exactly 0 or 1 whose weight is 0 the input
    gradient is NaN (0 / 0 times 0) where float32 and bfloat16 give 0 (KNOWN_DIFFERENCES.md;
    a strict xfail in tests/test_hard.py)."""
    if dtype != torch.float16:
        return None
    x = case.arrays["input"]
    w = case.arrays.get("weight")
    if w is None:
        return None
    x, w = np.broadcast_arrays(x, w)
    if np.any(((x == 0) | (x == 1)) & (w == 0)):
        return "float16 binary_cross_entropy gradient NaN at an input of 0 or 1 with weight 0"
    return None


def p_norm_underflows(d: np.ndarray, p: float, dtype: torch.dtype) -> bool:
    """Whether torch's p-norm of some row of ``d`` (over the last dimension), p > 1, sums
    |d_i|^p in ``dtype`` below its smallest normal number: torch 2.13.0 sums the powers unscaled,
    so the norm loses relative accuracy there (subnormal) and is 0 once they underflow (float32,
    p = 3: a norm of 1.6e-16 computed as 0, its gradient 0 where O(1) is right;
    KNOWN_DIFFERENCES.md, "p-norms of tiny vectors underflow"). The sum is judged in logs, as
    p log max|d| + log sum (|d_i| / max|d|)^p, so float64 itself does not underflow judging."""
    if p <= 1 or d.size == 0:
        return False
    a = np.abs(np.asarray(d, dtype=np.float64))
    top = np.max(a, axis=-1, keepdims=True)
    nonzero = top[..., 0] > 0
    if not np.any(nonzero):
        return False
    top = np.where(top > 0, top, 1.0)
    with np.errstate(divide="ignore"):
        log_sum = p * np.log(top[..., 0]) + np.log(np.sum((a / top) ** p, axis=-1))
    return bool(np.any(nonzero & (log_sum < np.log(torch.finfo(dtype).tiny))))


def _triplet_norm_underflows(case: Case, dtype: torch.dtype) -> str | None:
    """A distance ||u - v + eps||_p of the triplet loss whose p-th powers sum below ``dtype``'s
    smallest normal number (``p_norm_underflows``; a strict xfail in tests/test_hard.py)."""
    p, eps = float(case.options.get("p", 2.0)), float(case.options.get("eps", 1e-6))
    a, pos, neg = (case.arrays[k] for k in ("anchor", "positive", "negative"))
    pairs = [(a, pos), (a, neg)] + ([(pos, neg)] if case.options.get("swap") else [])
    if any(p_norm_underflows(np.subtract(u, v) + eps, p, dtype) for u, v in pairs):
        return f"the p = {p} norm of a triplet distance underflows in {dtype}"
    return None


def _cross_entropy_smoothing_sum_overflows(case: Case, dtype: torch.dtype) -> str | None:
    """torch 2.13.0's float16 cross_entropy with label_smoothing > 0 sums the smoothing term
    -sum_c w_c log p_c in float16 before dividing, over the classes (then by C) and, with a
    reduction, over the targets: inf (or NaN) once either sum passes 65504, although the result
    is ~3 (10^4 rows of 4 classes at scale 3: inf for a mean of 3.345; 10^4 classes: inf for a
    row's loss of 11.4; KNOWN_DIFFERENCES.md, a strict xfail in tests/test_hard.py)."""
    if dtype != torch.float16 or not case.options.get("label_smoothing"):
        return None
    from suite.conditioning import _log_softmax_along

    x = np.asarray(case.arrays["input"], dtype=np.float64)
    dim = 0 if x.ndim == 1 else 1
    logp, _ = _log_softmax_along(x, dim)
    w = np.asarray(case.arrays.get("weight", np.ones(x.shape[dim])), dtype=np.float64)
    shape = [1] * x.ndim
    shape[dim] = x.shape[dim]
    per_row = np.sum(np.abs(w.reshape(shape) * logp), axis=dim)
    total = float(np.sum(per_row)) if case.options.get("reduction", "mean") != "none" else 0.0
    largest = max(total, float(np.max(per_row, initial=0.0)))
    if not np.isfinite(largest) or largest > float(torch.finfo(torch.float16).max):
        return "float16 cross_entropy's label-smoothing sum overflows float16"
    return None


def _linear_cross_entropy_smoothing_sum_overflows(case: Case, dtype: torch.dtype) -> str | None:
    """cross_entropy's recorded float16 label-smoothing defect
    (``_cross_entropy_smoothing_sum_overflows``) on the logits a W^T + b, which
    F.linear_cross_entropy passes to cross_entropy (10^4 classes, label_smoothing 0.84: inf
    where the loss is 9.23). The chunked path refuses label smoothing, so only this record."""
    if dtype != torch.float16 or not case.options.get("label_smoothing"):
        return None
    z, _, _ = classification._linear_logits(case.arrays["input"], case.arrays["linear_weight"],
                                            case.arrays.get("linear_bias"))
    arrays = {"input": z, "target": case.arrays["target"]}
    if "weight" in case.arrays:
        arrays["weight"] = case.arrays["weight"]
    return _cross_entropy_smoothing_sum_overflows(Case(arrays, (), case.options, case.seed), dtype)


def _multilabel_soft_margin_row_overflows(case: Case, dtype: torch.dtype) -> str | None:
    """torch composes multilabel_soft_margin_loss as ``loss.sum(dim=-1) / C``: a sample's sum
    over its classes, sum_c w_c l_c, is rounded to the half type before the division, so it is
    inf once that sum passes the type's largest value although the loss, C times smaller, is
    representable (float16 inf for 18070: a row of 8 classes at x = 3000, target 0, weights up
    to 12; KNOWN_DIFFERENCES.md, a strict xfail in tests/test_hard.py)."""
    if dtype not in (torch.float16, torch.bfloat16):
        return None
    x = np.asarray(case.arrays["input"], dtype=np.float64)
    y = np.broadcast_to(np.asarray(case.arrays["target"], dtype=np.float64), x.shape)
    w = np.asarray(case.arrays.get("weight", 1.0), dtype=np.float64)
    terms = w * (y * np.logaddexp(0.0, -x) + (1.0 - y) * np.logaddexp(0.0, x))
    row = np.abs(np.sum(terms, axis=-1)) if x.size else np.zeros(0)
    if np.any(~np.isfinite(row) | (row > float(torch.finfo(dtype).max))):
        return f"{dtype_name(dtype)} multilabel_soft_margin_loss's class sum overflows"
    return None


def _soft_margin_overflows(case: Case, dtype: torch.dtype) -> str | None:
    """torch evaluates log1p(exp(-y x)) as written: inf (and a NaN gradient) once -y x passes
    log(max) of the dtype (KNOWN_DIFFERENCES.md, "SoftMarginLoss overflows for large
    margins")."""
    z = -case.arrays["target"] * case.arrays["input"]
    limit = float(np.log(float(torch.finfo(dtype).max)))
    return "soft_margin_loss overflow" if np.any(z[np.isfinite(z)] > limit) else None


def _ctc_expanded_targets_crash(case: Case, dtype: torch.dtype) -> str | None:
    """torch 2.13.0's CPU ctc_loss reads concatenated (1-D) targets as if contiguous: a
    step-sliced view gives a wrong loss (1.118 for 0.669), an expanded one (stride 0) reads past
    the storage and crashes the process with a segmentation fault (KNOWN_DIFFERENCES.md;
    tests/test_hard.py::test_ctc_loss_of_step_sliced_concatenated_targets shows the wrong
    loss, a strict xfail; the crash is not run)."""
    if case.label in ("layout: expanded targets", "layout: strided targets") and \
            case.arrays["targets"].ndim == 1:
        return "ctc_loss with non-contiguous 1-D targets (wrong loss; stride 0 segfaults)"
    # torch before 2.13 (2.2.2 measured): a zero-length input gets a wrong loss
    # (versions.CTC_EMPTY_INPUT_WRONG; tests/test_hard.py::test_ctc_loss_of_an_empty_input).
    if versions.CTC_EMPTY_INPUT_WRONG and np.any(case.arrays["input_lengths"] == 0):
        return "ctc_loss of a zero-length input (torch before 2.13: a wrong loss)"
    return None


def _nll_loss_2d_transposed(case: Case, dtype: torch.dtype) -> str | None:
    """torch 2.13.0's nll_loss over an (N, C, H, W) input that is a transposed
    (non-contiguous) view raises "grad_input must be contiguous" in the backward
    (KNOWN_DIFFERENCES.md; tests/test_hard.py keeps it as a strict xfail)."""
    if case.label == "layout: transposed input" and case.arrays["input"].ndim == 4:
        return "nll_loss2d backward refuses a non-contiguous input"
    return None


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    """A float option (margin, delta, beta) that float32 holds exactly: torch computes with the
    option in the input's dtype (float32 for half inputs too), so a margin of 1.1e-122 is 0
    there and moves the kink onto a tie (torch 2.14.1's hard tier: margin_ranking_loss's ties
    at x1 = x2 took the float32 kink at 0, gradient 0 where the float64 margin gives -g / n)."""
    return st.floats(lo, hi, allow_subnormal=False).map(lambda v: float(np.float32(v)))


def linear_cross_entropy_chunked(input: torch.Tensor, linear_weight: torch.Tensor,
                                 target: torch.Tensor, *, options: Mapping[str, Any],
                                 **kwargs: Any) -> torch.Tensor:
    """F.linear_cross_entropy on its chunked path: ``options`` holds the fields of
    nn.LinearCrossEntropyOptions as plain values (so a case prints and reproduces as literals).
    torch's warning that it ignores ``options`` and falls back to the reference path is an
    error here: the record checks the chunked path, never the fallback."""
    if not hasattr(F, "linear_cross_entropy"):
        return functional("linear_cross_entropy", "2.13")()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r"linear_cross_entropy: ``options`` ignored")
        return F.linear_cross_entropy(input, linear_weight, target,
                                      options=nn.LinearCrossEntropyOptions(**options), **kwargs)


def _linear_cross_entropy_module(case: Case) -> nn.Module:
    """nn.LinearCrossEntropyLoss sized from the case's weight (C, d1, ..., in), with its options;
    the class weight is a buffer set from the case (a placeholder of its shape here)."""
    c, *extra, features = case.arrays["linear_weight"].shape
    options = dict(case.options)
    chunking = options.pop("options", None)
    return nn.LinearCrossEntropyLoss(
        features, c, out_features=tuple(extra), bias="linear_bias" in case.arrays,
        weight=torch.ones(c) if "weight" in case.arrays else None,
        options=None if chunking is None else nn.LinearCrossEntropyOptions(**chunking),
        **options)


def _linear_cross_entropy_form() -> ModuleForm | None:
    return ModuleForm.optional(
        getattr(nn, "LinearCrossEntropyLoss", None), factory=_linear_cross_entropy_module,
        params=("linear_weight", "linear_bias", "weight"),
        param_names={"linear_weight": "linear.weight", "linear_bias": "linear.bias"})


# The fused loss's logits are a matmul: in float32 each carries eps32 * sum_k |a_k W_ck| of
# rounding (in <= 8 terms, |z| <= ~15 at scale 5), moving a loss term by up to that and its
# gradients through p by as much relative; dL/dW and dL/db also sum over the batch (N <= 24)
# like linear's weight gradient. linear's float32 gradient widening (rtol 3e-4, atol 3e-4,
# derived there for sums over up to 512 rows) covers both with room; a wrong chain-rule factor,
# reshape or missing bias term is O(1).
_LINEAR_CE_TOL = {(Kind.GRADIENT, torch.float32): Tolerance(rtol=3e-4, atol=3e-4)}
_CHUNKED_NOT_SECOND_ORDER = (
    "the chunked path has no double backward and no forward-mode AD, as documented "
    "(F.linear_cross_entropy: 'Higher-order AD (create_graph=True, hessian) is unsupported', "
    "'Forward-mode AD (jvp, jacfwd) is unsupported'); the linear_cross_entropy record checks "
    "the reference path's")


# terms=conditioning.REDUCED: the reduced loss sums pointwise losses that are each computed to a
# few ulp of themselves (squares and absolute values of a difference, the logs of BCE and the
# soft margins), so its conditioning is that of a sum of nonnegative terms
# (suite/conditioning.py); the hard tier judges those relatively. Losses whose pointwise form
# cancels (margins, lse - x_t, exp(x) - t x, ...) declare nothing yet: the hard tier measures
# their conditioning instead (suite/hardcheck.py).
RECORDS = (
    OpSpec(name="binary_cross_entropy", family="loss",
           terms=conditioning.REDUCED, torch_fn=F.binary_cross_entropy,
           ref=classification.binary_cross_entropy, ref_vjp=classification.binary_cross_entropy_vjp,
           known_defects=_bce_half_clamp_underflows,
           module=ModuleForm(nn.BCELoss, ctor_arrays=("weight",)), docs=_DOCS.format("BCELoss"),
           inputs=li.Pointwise(
               {"input": li.unit_interval, "target": li.unit_interval,
                "weight": li.elementwise_weight}, _PAIR, {"reduction": _R}, optional=("weight",),
               layouts={"weight_shape": st.sampled_from(["full", "last dim"])},
               # inputs are probabilities: scaled by 1e4 they leave [0, 1] (torch raises)
               sized_differentiable=("target",), sized_options={"reduction": "mean"})),
    OpSpec(name="binary_cross_entropy_with_logits", family="loss",
           low_precision=_BCE_LOGITS_NOT_HALF,
           torch_fn=F.binary_cross_entropy_with_logits,
           # (1 - t) x + (1 + (p - 1) t) softplus(-x) and its gradients cancel (p spans
           # 1e-6..1e6 in the hard tier): their terms, suite/conditioning.py.
           terms=conditioning.BCE_WITH_LOGITS,
           ref=classification.binary_cross_entropy_with_logits,
           ref_vjp=classification.binary_cross_entropy_with_logits_vjp, overflow_prone=True,
           module=ModuleForm(nn.BCEWithLogitsLoss, ctor_arrays=("weight", "pos_weight")),
           docs=_DOCS.format("BCEWithLogitsLoss"),
           inputs=li.Pointwise(
               {"input": li.normal, "target": li.unit_interval, "weight": li.elementwise_weight,
                "pos_weight": li.pos_weight}, _PAIR, {"reduction": _R},
               optional=("weight", "pos_weight"),
               layouts={"weight_shape": st.sampled_from(["full", "last dim"]),
                        "pos_weight_shape": st.sampled_from(["last dim", "full"])},
               sized_options={"reduction": "mean"})),
    OpSpec(name="cosine_embedding_loss", family="loss", torch_fn=F.cosine_embedding_loss,
           broadcasts=("input1", "input2"), broadcasts_last_dim=False,
           low_precision=_COSINE_NOT_HALF,
           ref_options=versions.CLAMP,
           ref=margin.cosine_embedding_loss, ref_vjp=margin.cosine_embedding_loss_vjp,
           module=ModuleForm(nn.CosineEmbeddingLoss), docs=_DOCS.format("CosineEmbeddingLoss"),
           inputs=li.Pointwise(
               {"input1": li.normal, "input2": li.normal, "target": li.row_target},
               ("input1", "input2"), {"reduction": _R, "margin": _floats(-1.0, 1.0)},
               kinks=li.cosine_kinks, kink_array="input1", min_dims=1, max_dims=2,
               min_last_side=2,  # in one dimension cos is +-1: the loss is constant
               sized_options={"reduction": "mean"})),
    OpSpec(name="cross_entropy", family="loss", torch_fn=F.cross_entropy,
           # lse - x_y and the gradient (sum w t') p - w t' cancel: suite/conditioning.py.
           terms=conditioning.CROSS_ENTROPY,
           known_defects=_cross_entropy_smoothing_sum_overflows,
           ref=classification.cross_entropy,
           ref_vjp=classification.cross_entropy_vjp, inputs=li.Classification(),
           overflow_prone=True,
           module=ModuleForm(nn.CrossEntropyLoss, ctor_arrays=("weight",)),
           docs=_DOCS.format("CrossEntropyLoss"),
           vmap={"target": "torch 2.13.0 bug (KNOWN_DIFFERENCES.md): with label_smoothing > 0, "
                           "a batched class-index target and an unbatched input raise 'vmap: "
                           "inplace arithmetic(self, *extra_args) is not possible'; "
                           "tests/test_vmap.py shows it"}
           if versions.CROSS_ENTROPY_VMAP_SMOOTHING_RAISES else True),
    OpSpec(name="ctc_loss", family="loss", torch_fn=F.ctc_loss, ref=ctc.ctc_loss,
           second_order=_NO_DOUBLE_BACKWARD.format("_ctc_loss_backward"),
           low_precision=_NO_CPU_HALF_KERNEL,
           ref_vjp=ctc.ctc_loss_vjp, inputs=li.Alignment(), module=ModuleForm(nn.CTCLoss),
           terms=conditioning.CTC,  # log-space recursions (suite/conditioning.py)
           known_defects=_ctc_expanded_targets_crash,
           docs=_DOCS.format("CTCLoss"),
           # torch's CTC backward returns the derivative plus g * exp(log_probs) (the gradient
           # w.r.t. logits behind a log_softmax): KNOWN_DIFFERENCES.md, "CTCLoss's gradient is
           # not the derivative of its forward". The gradient check compares torch with that;
           # the finite-difference check keeps the reference's derivative honest, and
           # tests/test_losses.py::test_torch_gradient_is_the_derivative is a strict xfail.
           torch_vjp_options={"gradient": "torch"},
           vmap={"targets": "torch 2.13.0 bug (KNOWN_DIFFERENCES.md): the CPU kernel reads "
                            "1-D targets as contiguous, so a strided view (targets batched at "
                            "dimension 1) gives another loss; tests/test_vmap.py shows it"}
           if versions.CTC_1D_TARGETS_IGNORE_STRIDES else True,
           # float32: the occupancy exp(log alpha + log beta - log y + nll) is formed from logs
           # of magnitude up to nll, each rounded to ~eps32 nll absolute, so it is off by a
           # relative ~3 eps32 nll (2.8 eps32 nll measured over 1500 draws); nll <= 150 on the
           # drawn ranges (T <= 20, logits scale <= 5) and |g| <= 4: 4 * 3 * 1.2e-7 * 150 = 2e-4.
           tol={(Kind.GRADIENT, torch.float32): Tolerance(rtol=1e-5, atol=2e-4)}),
    OpSpec(name="gaussian_nll_loss", family="loss", torch_fn=F.gaussian_nll_loss,
           terms=conditioning.GAUSSIAN_NLL,  # log v + (x - t)^2 / v and its var gradient cancel
           broadcasts=("target",),
           low_precision=_GAUSSIAN_NOT_HALF,
           ref=probabilistic.gaussian_nll_loss, ref_vjp=probabilistic.gaussian_nll_loss_vjp,
           module=ModuleForm(nn.GaussianNLLLoss), docs=_DOCS.format("GaussianNLLLoss"),
           # torch's own words (2.13.0) for F.gaussian_nll_loss's Python check of var:
           vmap={"var": "F.gaussian_nll_loss tests torch.any(var < 0) in Python, and vmap "
                        "refuses: \"we don't support data-dependent control flow in vmap "
                        "yet\""},
           inputs=li.Pointwise(
               {"input": li.normal, "target": li.normal, "var": li.gaussian_var},
               ("input", "target", "var"),
               {"reduction": _R, "full": st.booleans(),
                "eps": st.sampled_from([1e-6, 1e-3, 0.01])},
               layouts={"var_shape": st.sampled_from(["same", "no last dim", "one dim 1"])},
               # var is a variance: scaled by -1e4 it is negative (torch raises)
               sized_differentiable=_PAIR, sized_options={"reduction": "mean"})),
    OpSpec(name="hinge_embedding_loss", family="loss", torch_fn=F.hinge_embedding_loss,
           broadcasts=("target",),
           low_precision=_MARGIN_OPTION_NOT_HALF,
           ref_options=versions.CLAMP,
           ref=margin.hinge_embedding_loss, ref_vjp=margin.hinge_embedding_loss_vjp,
           module=ModuleForm(nn.HingeEmbeddingLoss), docs=_DOCS.format("HingeEmbeddingLoss"),
           inputs=li.Pointwise({"input": li.normal, "target": li.signs}, ("input",),
                               {"reduction": _R, "margin": _floats(-1.0, 2.0)},
                               kinks=li.hinge_kinks, sized_options={"reduction": "mean"})),
    OpSpec(name="huber_loss", family="loss",
           terms=conditioning.REDUCED, torch_fn=F.huber_loss, ref=regression.huber_loss,
           broadcasts=("target",),
           ref_vjp=regression.huber_loss_vjp,
           module=ModuleForm(nn.HuberLoss), docs=_DOCS.format("HuberLoss"),
           inputs=li.Pointwise(
               {"input": li.normal, "target": li.normal}, _PAIR,
               {"reduction": _R, "delta": _floats(0.01, 3.0)},
               kinks=li.difference_kinks(lambda o: (o["delta"], -o["delta"])),
               sized_options={"reduction": "mean", "delta": 1.0})),
    OpSpec(name="kl_div", family="loss", torch_fn=F.kl_div, ref=probabilistic.kl_div,
           broadcasts=("target",), terms=conditioning.KL_DIV,
           low_precision=_KL_NOT_HALF,
           ref_vjp=probabilistic.kl_div_vjp,
           module=ModuleForm(nn.KLDivLoss), docs=_DOCS.format("KLDivLoss"),
           inputs=li.Pointwise(
               {"input": li.normal, "target": li.kl_target}, _PAIR,
               {"reduction": li.KL_REDUCTIONS, "log_target": st.booleans()},
               # the target is a probability: scaled by -1e4 its log is undefined
               sized_differentiable=("input",),
               sized_options={"reduction": "batchmean", "log_target": False})),
    OpSpec(name="l1_loss", family="loss",
           terms=conditioning.REDUCED, torch_fn=F.l1_loss, ref=regression.l1_loss,
           broadcasts=("target",),
           ref_vjp=regression.l1_loss_vjp,
           module=ModuleForm(nn.L1Loss), docs=_DOCS.format("L1Loss"),
           inputs=li.Pointwise({"input": li.normal, "target": li.normal}, _PAIR,
                               {"reduction": _R}, kinks=li.difference_kinks(lambda o: (0.0,)),
                               sized_options={"reduction": "mean"})),
    OpSpec(name="linear_cross_entropy", family="loss",
           torch_fn=functional("linear_cross_entropy", "2.13"),
           ref=classification.linear_cross_entropy,
           ref_vjp=classification.linear_cross_entropy_vjp, inputs=li.LinearClassification(),
           overflow_prone=True, terms=conditioning.LINEAR_CROSS_ENTROPY,
           module=_linear_cross_entropy_form(), tol=_LINEAR_CE_TOL,
           known_defects=_linear_cross_entropy_smoothing_sum_overflows,
           # F.linear_cross_entropy runs cross_entropy's label smoothing: the same torch bug.
           vmap={"target": "torch 2.13.0 bug (KNOWN_DIFFERENCES.md, as cross_entropy's): with "
                           "label_smoothing > 0, a batched class-index target and an unbatched "
                           "input raise 'vmap: inplace arithmetic(self, *extra_args) is not "
                           "possible'"}
           if versions.CROSS_ENTROPY_VMAP_SMOOTHING_RAISES else True,
           docs=_DOCS.format("LinearCrossEntropyLoss")),
    OpSpec(name="linear_cross_entropy_chunked", family="loss",
           torch_fn=linear_cross_entropy_chunked,
           ref=classification.linear_cross_entropy_chunked,
           ref_vjp=classification.linear_cross_entropy_chunked_vjp,
           inputs=li.LinearClassification(chunked=True), overflow_prone=True,
           second_order=_CHUNKED_NOT_SECOND_ORDER, terms=conditioning.LINEAR_CROSS_ENTROPY,
           module=_linear_cross_entropy_form(), tol=_LINEAR_CE_TOL,
           docs=_DOCS.format("LinearCrossEntropyLoss")),
    OpSpec(name="margin_ranking_loss", family="loss", torch_fn=F.margin_ranking_loss,
           broadcasts=("input1", "input2", "target"),
           low_precision=_MARGIN_OPTION_NOT_HALF,
           ref_options=versions.CLAMP,
           ref=margin.margin_ranking_loss, ref_vjp=margin.margin_ranking_loss_vjp,
           module=ModuleForm(nn.MarginRankingLoss), docs=_DOCS.format("MarginRankingLoss"),
           inputs=li.Pointwise(
               {"input1": li.normal, "input2": li.normal, "target": li.signs},
               ("input1", "input2", "target"), {"reduction": _R, "margin": _floats(-1.0, 1.0)},
               kinks=li.ranking_kinks, kink_array="input1", max_dims=1,
               sized_options={"reduction": "mean"})),
    OpSpec(name="mse_loss", family="loss",
           terms=conditioning.REDUCED, torch_fn=F.mse_loss, ref=regression.mse_loss,
           broadcasts=("target",),
           ref_vjp=regression.mse_loss_vjp, inputs=li.Regression(), module=ModuleForm(nn.MSELoss),
           docs=_DOCS.format("MSELoss")),
    OpSpec(name="multi_margin_loss", family="loss", torch_fn=F.multi_margin_loss,
           second_order=_NO_DOUBLE_BACKWARD.format("multi_margin_loss_backward"),
           low_precision=_NO_CPU_HALF_KERNEL,
           ref=margin.multi_margin_loss, ref_vjp=margin.multi_margin_loss_vjp,
           module=ModuleForm(nn.MultiMarginLoss, ctor_arrays=("weight",)),
           docs=_DOCS.format("MultiMarginLoss"),
           inputs=li.Pointwise(
               {"input": li.normal, "target": li.class_index, "weight": li.class_weight},
               ("input",), {"reduction": _R, "p": st.sampled_from([1, 2]),
                            "margin": _floats(0.0, 2.0)},
               optional=("weight",), kinks=li.multi_margin_kinks, min_dims=0, max_dims=2,
               sized_options={"reduction": "mean"})),
    OpSpec(name="multilabel_margin_loss", family="loss", torch_fn=F.multilabel_margin_loss,
           second_order=_NO_DOUBLE_BACKWARD.format("multilabel_margin_loss_backward"),
           low_precision=_NO_CPU_HALF_KERNEL,
           ref=margin.multilabel_margin_loss, ref_vjp=margin.multilabel_margin_loss_vjp,
           terms=conditioning.MULTILABEL_MARGIN,
           module=ModuleForm(nn.MultiLabelMarginLoss), docs=_DOCS.format("MultiLabelMarginLoss"),
           inputs=li.Pointwise({"input": li.normal, "target": li.multilabel_target}, ("input",),
                               {"reduction": _R}, kinks=li.multilabel_margin_kinks, min_dims=0,
                               max_dims=2, max_size=256, sized_options={"reduction": "mean"})),
    OpSpec(name="multilabel_soft_margin_loss", family="loss",
           terms=conditioning.MULTILABEL_SOFT_MARGIN,
           broadcasts=("target",),
           torch_fn=F.multilabel_soft_margin_loss, ref=margin.multilabel_soft_margin_loss,
           ref_vjp=margin.multilabel_soft_margin_loss_vjp, overflow_prone=True,
           known_defects=_multilabel_soft_margin_row_overflows,
           module=ModuleForm(nn.MultiLabelSoftMarginLoss, ctor_arrays=("weight",)),
           docs=_DOCS.format("MultiLabelSoftMarginLoss"),
           inputs=li.Pointwise(
               {"input": li.normal, "target": li.bits, "weight": li.class_weight}, _PAIR,
               {"reduction": _R}, optional=("weight",), min_dims=1, max_dims=2,
               sized_options={"reduction": "mean"})),
    OpSpec(name="nll_loss", family="loss", torch_fn=F.nll_loss, ref=classification.nll_loss,
           known_defects=_nll_loss_2d_transposed,
           terms=conditioning.MULTILINEAR,
           ref_vjp=classification.nll_loss_vjp,
           module=ModuleForm(nn.NLLLoss, ctor_arrays=("weight",)),
           docs=_DOCS.format("NLLLoss"),
           inputs=li.Classification(probabilities=False, smoothing=False)),
    OpSpec(name="poisson_nll_loss", family="loss", torch_fn=F.poisson_nll_loss,
           terms=conditioning.POISSON_NLL,  # a rate near its count cancels: suite/conditioning
           broadcasts=("target",),
           low_precision=_POISSON_NOT_HALF,
           ref=probabilistic.poisson_nll_loss, ref_vjp=probabilistic.poisson_nll_loss_vjp,
           module=ModuleForm(nn.PoissonNLLLoss), docs=_DOCS.format("PoissonNLLLoss"),
           inputs=li.Pointwise(
               {"input": li.poisson_input, "target": li.positive}, _PAIR,
               {"reduction": _R, "log_input": st.booleans(), "full": st.booleans(),
                "eps": st.sampled_from([1e-8, 0.1])},
               kinks=li.stirling_kinks, kink_array="target",
               # the input is exponentiated (or a rate): exp(1e4) is inf, a rate -1e4 invalid
               sized_differentiable=("target",),
               sized_options={"reduction": "mean", "log_input": True, "full": False})),
    OpSpec(name="smooth_l1_loss", family="loss",
           terms=conditioning.REDUCED, torch_fn=F.smooth_l1_loss,
           broadcasts=("target",),
           low_precision=_SMOOTH_L1_NOT_HALF,
           ref=regression.smooth_l1_loss, ref_vjp=regression.smooth_l1_loss_vjp,
           module=ModuleForm(nn.SmoothL1Loss),
           docs=_DOCS.format("SmoothL1Loss"),
           inputs=li.Pointwise(
               {"input": li.normal, "target": li.normal}, _PAIR,
               {"reduction": _R, "beta": st.one_of(st.just(0.0), _floats(0.0, 3.0))},
               kinks=li.difference_kinks(lambda o: (0.0, o["beta"], -o["beta"])),
               sized_options={"reduction": "mean", "beta": 1.0})),
    OpSpec(name="soft_margin_loss", family="loss",
           terms=conditioning.REDUCED, torch_fn=F.soft_margin_loss,
           broadcasts=("target",),
           low_precision=_SOFT_MARGIN_NOT_HALF,
           ref=margin.soft_margin_loss, ref_vjp=margin.soft_margin_loss_vjp,
           known_defects=_soft_margin_overflows,
           module=ModuleForm(nn.SoftMarginLoss), docs=_DOCS.format("SoftMarginLoss"),
           # overflow_prone stays False: torch's kernel overflows at -y x > 709 (a known
           # difference, xfailed in tests/test_losses.py::test_torch_at_large_inputs).
           inputs=li.Pointwise({"input": li.normal, "target": li.signs}, ("input",),
                               {"reduction": _R}, sized_options={"reduction": "mean"})),
    OpSpec(name="triplet_margin_loss", family="loss", torch_fn=F.triplet_margin_loss,
           terms=conditioning.TRIPLET,  # two distances of rounded differences cancel
           known_defects=_triplet_norm_underflows,
           broadcasts=("anchor", "positive", "negative"), broadcasts_last_dim=False,
           low_precision=_TRIPLET_NOT_HALF,
           ref_options=versions.CLAMP,
           # The loss d(a, p) - d(a, n) + margin subtracts two p-norms of up to 64 differences
           # of magnitude up to ~30 (scale 5): each float32 norm carries ~eps32 d of rounding
           # (d up to ~4e3), which survives the cancelling subtraction as an absolute error:
           # 1.2e-7 * 8e3 ~ 1e-3 (2.9e-5 seen on a loss of 8.3). A wrong norm or sign is O(d).
           tol={(Kind.FORWARD, torch.float32): Tolerance(rtol=1.3e-6, atol=1e-3)},
           ref=margin.triplet_margin_loss, ref_vjp=margin.triplet_margin_loss_vjp,
           module=ModuleForm(nn.TripletMarginLoss), docs=_DOCS.format("TripletMarginLoss"),
           inputs=li.Pointwise(
               {"anchor": li.normal, "positive": li.normal, "negative": li.normal},
               ("anchor", "positive", "negative"),
               {"reduction": _R, "margin": _floats(0.01, 2.0),
                "p": st.sampled_from([1.0, 1.5, 2.0, 3.0]),
                "eps": st.sampled_from([1e-6, 0.0, 0.1]), "swap": st.booleans()},
               kinks=li.triplet_kinks, kink_array="anchor", min_dims=1, max_dims=2,
               sized_options={"reduction": "mean"})),
    OpSpec(name="triplet_margin_with_distance_loss", family="loss",
           # torch's default distance is pairwise_distance (p = 2, eps = 1e-6): the conditioning
           # and the p-norm's underflow are triplet_margin_loss's with those options.
           terms=conditioning.TRIPLET, known_defects=_triplet_norm_underflows,
           broadcasts=("anchor", "positive", "negative"), broadcasts_last_dim=False,
           low_precision=_TRIPLET_NOT_HALF,
           ref_options=versions.CLAMP,
           # The loss d(a, p) - d(a, n) + margin subtracts two p-norms of up to 64 differences
           # of magnitude up to ~30 (scale 5): each float32 norm carries ~eps32 d of rounding
           # (d up to ~4e3), which survives the cancelling subtraction as an absolute error:
           # 1.2e-7 * 8e3 ~ 1e-3 (2.9e-5 seen on a loss of 8.3). A wrong norm or sign is O(d).
           tol={(Kind.FORWARD, torch.float32): Tolerance(rtol=1.3e-6, atol=1e-3)},
           torch_fn=F.triplet_margin_with_distance_loss,
           ref=margin.triplet_margin_with_distance_loss,
           ref_vjp=margin.triplet_margin_with_distance_loss_vjp,
           module=ModuleForm(nn.TripletMarginWithDistanceLoss),
           docs=_DOCS.format("TripletMarginWithDistanceLoss"),
           inputs=li.Pointwise(
               {"anchor": li.normal, "positive": li.normal, "negative": li.normal},
               ("anchor", "positive", "negative"),
               {"reduction": _R, "margin": _floats(0.01, 2.0), "swap": st.booleans()},
               kinks=li.triplet_kinks, kink_array="anchor", min_dims=1, max_dims=2,
               sized_options={"reduction": "mean"})),
)
