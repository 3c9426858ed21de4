"""Activation records, alphabetical: every activation class of torch.nn, and clamp.

Each record names its reference pair by its own name (``references.activations.<name>`` and
``<name>_vjp``). ``exact_points`` gives, as a function of the options, the inputs where the op is
not differentiable: the same rule keeps Hypothesis's draws away from them (finite differences
never straddle a kink) and names the points tests/test_activations.py evaluates exactly.

Options that place a kink (bounds, lambd, threshold) are drawn as float32-representable numbers
(``width=32``), so a kink is exactly representable in every dtype under test and the exact-point
check compares torch and the reference at the same point.

``module`` names each op's ``torch.nn`` class (checked against the functional form in
tests/test_ops.py); ``ModuleForm.factory`` and ``ModuleForm.params`` build it where the class's
constructor does not take the functional options as they are (nn.PReLU, nn.RReLU).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import nn

from references import activations as ref
from suite import conditioning, versions
from suite import inputs as hi
from suite import strategies as hs
from suite.specs import Case, ModuleForm, OpSpec
from suite.tolerances import Kind, Tolerance

_DOCS = "https://pytorch.org/docs/stable/generated/torch.nn.{}.html"
Options = Mapping[str, Any]


def _f32(lo: float, hi_: float) -> st.SearchStrategy[float]:
    """Floats in about [lo, hi_] that float32 represents exactly (so float64 does too)."""
    return st.floats(float(np.float32(lo)), float(np.float32(hi_)), width=32,
                     allow_subnormal=False)


def _record(name: str, torch_fn: Callable[..., torch.Tensor], docs_class: str,
            inputs: hi.Elementwise | None = None, *,
            exact_points: Callable[[Options], tuple[float, ...]] | None = None,
            **fields: Any) -> OpSpec:
    """The record ``name``: references ``ref.<name>``/``ref.<name>_vjp``; kinks from the points."""
    inputs = inputs or hi.Elementwise(min_dims=0)
    if exact_points is not None:
        inputs = dataclasses.replace(inputs, kinks=exact_points)
    docs = docs_class if docs_class.startswith("https://") else _DOCS.format(docs_class)
    # Computed to a few ulp of each result unless the record names the terms its torch formula
    # cancels (suite/conditioning.py): the hard tier judges activations relatively.
    fields.setdefault("terms", conditioning.ELEMENTWISE)
    # Activations are elementwise (or softmax-like along one dim) and smooth between their
    # kinks: second order (torch.func.jvp, double backward) is checked for all, and half
    # precision for all whose kinks are not placed by an option (the records' defaults; the
    # exceptions below say why).
    return OpSpec(name=name, family="activation", torch_fn=torch_fn, ref=getattr(ref, name),
                  ref_vjp=getattr(ref, f"{name}_vjp"), inputs=inputs, docs=docs,
                  exact_points=exact_points, **fields)


def _prelu_module(case: Case) -> nn.Module:
    # nn.PReLU's constructor takes the weight's size (num_parameters), not the weight: its
    # values come from the case (ModuleForm.params).
    return nn.PReLU(num_parameters=case.arrays["weight"].size)


def _rrelu_module(case: Case) -> nn.Module:
    # nn.RReLU draws random slopes in training mode (the default for a module); the record's
    # functional form is F.rrelu(training=False), so the module is checked in eval mode.
    return nn.RReLU(**case.options).eval()


def _gelu_tanh_gradient_overflows(case: Case, dtype: torch.dtype) -> str | None:
    """torch's tanh-approximation gelu backward forms x * (1 - t^2) * (1 + 3 kappa x^2): for
    |x| past ~sqrt(max) of its accumulation type the last factor is inf and 1 - t^2 is 0, so the
    gradient is NaN where it is 1 or 0 (KNOWN_DIFFERENCES.md, measured from 2.0e19 in float32
    and bfloat16, 1.6e154 in float64; tests/test_hard.py keeps it as a strict xfail)."""
    acc = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    limit = float(torch.finfo(acc).max) ** 0.5 / 2
    x = case.arrays["input"]
    if case.options.get("approximate") == "tanh" and np.any(np.abs(x[np.isfinite(x)]) > limit):
        return "gelu (tanh approximation) gradient NaN for |x| > ~sqrt(max)"
    return None


def _gelu_defects(case: Case, dtype: torch.dtype) -> str | None:
    """The tanh approximation's gradient overflow, and float32 gelu's NaN at +inf where torch
    hands an input of more than one element to oneDNN's AVX512 kernel
    (``versions.GELU_FLOAT32_INF_IS_NAN``; KNOWN_DIFFERENCES.md; measured on torch 2.13.0: one
    element, or ``ONEDNN_MAX_CPU_ISA=AVX2``, gives inf; a strict xfail in
    tests/test_activations.py shows it)."""
    x = case.arrays["input"]
    if versions.GELU_FLOAT32_INF_IS_NAN and dtype == torch.float32 and x.size > 1 \
            and case.options.get("approximate", "none") == "none" and np.any(x == np.inf):
        return "float32 gelu NaN at +inf (oneDNN's AVX512 kernel)"
    return _gelu_tanh_gradient_overflows(case, dtype)


def _elu_terms(name: str) -> conditioning.Formula:
    """The sum |terms| of elu's, celu's or selu's torch formula: expm1 for x < 0 (no
    cancellation: judged relatively) since 2.13; before (2.2.2 measured) exp(x) - 1, which
    cancels for small |x| (KNOWN_DIFFERENCES.md, "Older torch: the hard tier on 2.2.2"; a strict
    xfail in tests/test_hard.py shows it, down to a result of 0 below |x| = eps / 2)."""
    if not versions.ELU_EXP_MINUS_ONE:
        return conditioning.ELEMENTWISE
    return conditioning.EXP_MINUS_ONE[name]


def _hardswish_vector_at_3(case: Case, dtype: torch.dtype) -> str | None:
    """torch before 2.8 (2.0.1 to 2.7.1 measured): the vectorised body's gradient at exactly +3
    is 1, the scalar tail's 3/2 (KNOWN_DIFFERENCES.md, "hardswish's gradient at +3 depends on
    the kernel path"; a strict xfail in tests/test_hard.py)."""
    if versions.HARDSWISH_VECTOR_AT_3 and np.any(case.arrays["input"] == 3.0):
        return "hardswish gradient at +3: 1 in the vector body, 3/2 in the tail (torch < 2.8)"
    return None


def _softshrink_nan(case: Case, dtype: torch.dtype) -> str | None:
    """torch before 2.6 (2.0.1 to 2.5.1 measured): softshrink(NaN) = 0 (KNOWN_DIFFERENCES.md,
    "Older torch: the hard tier on 2.2.2"; a strict xfail in tests/test_hard.py)."""
    if versions.SOFTSHRINK_NAN_IS_ZERO and np.any(np.isnan(case.arrays["input"])):
        return "softshrink of NaN is 0 (torch before 2.6)"
    return None


def _log_softmax_half_overflows(case: Case, dtype: torch.dtype) -> str | None:
    """torch before 2.13 (2.2.2 measured): float16/bfloat16 log_softmax along a dimension that
    is not the last gives -inf or inf at some positions (where the result is 0 along a
    dimension of size 1, -2.1 along one of size 2) once elements of the input differ by more
    than ~89, float32's exp range: it exponentiates differences across positions
    (KNOWN_DIFFERENCES.md, "Older torch: the hard tier on 2.2.2"; a strict xfail in
    tests/test_hard.py). Set aside from a spread of 80."""
    if not versions.LOG_SOFTMAX_HALF_INNER_OVERFLOWS or dtype not in (torch.float16,
                                                                       torch.bfloat16):
        return None
    x = case.arrays["input"]
    if x.ndim < 2:
        return None
    dim = case.options.get("dim", -1) % x.ndim
    finite = x[np.isfinite(x)]
    if dim != x.ndim - 1 and finite.size and np.ptp(finite) > 80:
        return "half log_softmax along a non-last dimension overflows (torch before 2.13)"
    return None


def _at_0(options: Options) -> tuple[float, ...]:
    return (0.0,)


def _at_pm3(options: Options) -> tuple[float, ...]:
    return (-3.0, 3.0)


def _relu6_bounds(options: Options) -> tuple[float, ...]:
    return (0.0, 6.0)


def _hardtanh_bounds(options: Options) -> tuple[float, ...]:
    return (options.get("min_val", -1.0), options.get("max_val", 1.0))


def _clamp_bounds(options: Options) -> tuple[float, ...]:
    return tuple(b for b in (options.get("min"), options.get("max")) if b is not None)


def _pm_lambd(options: Options) -> tuple[float, ...]:
    lambd = options.get("lambd", 0.5)
    return (-lambd, lambd)


def _at_threshold(options: Options) -> tuple[float, ...]:
    return (options["threshold"],)


def _softplus_switch(options: Options) -> tuple[float, ...]:
    # Where beta x = threshold: the switch to the linear form (exact: beta is a power of two).
    return (options.get("threshold", 20.0) / options.get("beta", 1.0),)


# Bounds, lambd and threshold are float32 numbers that float16/bfloat16 do not represent:
# torch moves the kink to the rounded option while the reference keeps it, and the drawn
# values' kink margin (tolerances.KINK_MARGIN, 1e-3) is below a bfloat16 ulp, so inputs land
# between the two kinks (an O(1) difference that is the harness's, not torch's). Not checked in
# half precision.
_KINK_OPTION_NOT_HALF = ("a kink placed by a float32 option that half precision does not "
                         "represent: torch moves the kink to the rounded option")

# torch's own words (2.13.0) for an op without a double backward.
_NO_DOUBLE_BACKWARD = "torch: 'derivative for aten::{} is not implemented' (no double backward)"

_ALONG_DIM = hi.Elementwise(options={"dim": hs.any_dim}, defaults={"dim": -1})
# Hardtanh and clamp bounds: min in [-3, 0.5], max in [0.625, 3], so min < max always (torch
# rejects min_val > max_val for hardtanh) and the defaults -1, 1 lie inside.
_LOWER, _UPPER = _f32(-3.0, 0.5), _f32(0.625, 3.0)
_LAMBD = _f32(0.0, 2.0)  # torch requires lambd >= 0 for softshrink

RECORDS = (
    _record("celu", F.celu, "CELU", hi.Elementwise(min_dims=0, options={"alpha": _f32(0.1, 3.0)}),
            exact_points=_at_0, overflow_prone=True, terms=_elu_terms("celu"),
            module=ModuleForm(nn.CELU)),
    # module=None: torch.nn has no Clamp module (nn.Hardtanh is clamp with both bounds, and
    # has its own record).
    _record("clamp", torch.clamp, "https://pytorch.org/docs/stable/generated/torch.clamp.html",
            # torch.clamp needs at least one bound: min may be absent, max always is given.
            hi.Elementwise(min_dims=0, options={"min": st.none() | _LOWER, "max": _UPPER},
                           defaults={"min": -1.0, "max": 1.0}),
            exact_points=_clamp_bounds, low_precision=_KINK_OPTION_NOT_HALF,
            ref_options=versions.CLAMP),
    _record("elu", F.elu, "ELU", hi.Elementwise(min_dims=0, options={"alpha": _f32(0.0, 3.0)}),
            exact_points=_at_0, overflow_prone=True, terms=_elu_terms("elu"),
            module=ModuleForm(nn.ELU)),
    # torch's documented 0.5 x (1 + erf(x / sqrt 2)) cancels in the left tail: accurate to
    # eps |x| there, not relative to the tiny result (KNOWN_DIFFERENCES.md); its terms say so.
    _record("gelu", F.gelu, "GELU",
            hi.Elementwise(min_dims=0, options={"approximate": st.sampled_from(["none", "tanh"])}),
            terms=conditioning.GELU, known_defects=_gelu_defects,
            module=ModuleForm(nn.GELU)),
    # glu's input gradient g a sigmoid(b) (1 - sigmoid(b)) takes 1 - sigmoid(b) from the
    # rounded saved sigmoid and scales it by |g a| up to ~70 (0.009 absolute seen in float16
    # against the row's 0.008): a difference of two terms, whose M suite/conditioning.py gives.
    _record("glu", F.glu, "GLU", dataclasses.replace(_ALONG_DIM, halved="dim"),
            overflow_prone=True, terms=conditioning.GLU, module=ModuleForm(nn.GLU)),
    _record("hardshrink", F.hardshrink, "Hardshrink",
            hi.Elementwise(min_dims=0, options={"lambd": _LAMBD}), exact_points=_pm_lambd,
            low_precision=_KINK_OPTION_NOT_HALF, module=ModuleForm(nn.Hardshrink)),
    _record("hardsigmoid", F.hardsigmoid, "Hardsigmoid", exact_points=_at_pm3,
            terms=conditioning.HARDSIGMOID,  # x / 6 + 1 / 2 cancels near -3
            second_order=_NO_DOUBLE_BACKWARD.format("hardsigmoid_backward"),
            # torch 2.13's hardsigmoid_backward multiplies by 1.0f / 6.0f, a float32 constant,
            # in every dtype: float64 gradients are off by float32(1/6) * 6 - 1 = 2.98e-8
            # relative (KNOWN_DIFFERENCES.md). 6e-8 keeps a 2x margin; a wrong branch or factor
            # is still off by O(1). tests/test_activations.py keeps the table's tolerance in a
            # strict xfail, so this widening must go when torch is fixed.
            tol={(Kind.GRADIENT, torch.float64): Tolerance(rtol=6e-8, atol=6e-8)},
            module=ModuleForm(nn.Hardsigmoid)),
    _record("hardswish", F.hardswish, "Hardswish", exact_points=_at_pm3,
            terms=conditioning.HARDSWISH,  # x (x + 3) / 6 and (2 x + 3) / 6 cancel inside
            # torch 2.8 moved the gradient at +-3 from the closed band's -1/2, 3/2 to 0, 1.
            ref_options=versions.HARDSWISH, known_defects=_hardswish_vector_at_3,
            module=ModuleForm(nn.Hardswish)),
    _record("hardtanh", F.hardtanh, "Hardtanh",
            hi.Elementwise(min_dims=0, options={"min_val": _LOWER, "max_val": _UPPER}),
            exact_points=_hardtanh_bounds, low_precision=_KINK_OPTION_NOT_HALF,
            module=ModuleForm(nn.Hardtanh)),
    _record("leaky_relu", F.leaky_relu, "LeakyReLU",
            hi.Elementwise(options={"negative_slope": st.floats(0.0, 1.0, allow_subnormal=False)}),
            exact_points=_at_0, module=ModuleForm(nn.LeakyReLU)),
    # The softmax family's VJPs are differences of sums along dim (suite/conditioning.py).
    _record("log_softmax", F.log_softmax, "LogSoftmax", _ALONG_DIM, overflow_prone=True,
            terms=conditioning.LOG_SOFTMAX, known_defects=_log_softmax_half_overflows,
            module=ModuleForm(nn.LogSoftmax)),
    _record("logsigmoid", F.logsigmoid, "LogSigmoid", overflow_prone=True,
            module=ModuleForm(nn.LogSigmoid)),
    _record("mish", F.mish, "Mish", overflow_prone=True, terms=conditioning.MISH,
            module=ModuleForm(nn.Mish)),
    # The weight's gradient is a signed sum over the input (sum of g x over x < 0), whose
    # half-precision error is relative to sum |terms| (suite/conditioning.py).
    _record("prelu", F.prelu, "PReLU", hi.Elementwise(min_dims=0, channel_weight=True),
            exact_points=_at_0, terms=conditioning.PRELU,
            module=ModuleForm(nn.PReLU, factory=_prelu_module, params=("weight",))),
    _record("relu", F.relu, "ReLU", exact_points=_at_0, module=ModuleForm(nn.ReLU)),
    _record("relu6", F.relu6, "ReLU6", exact_points=_relu6_bounds, module=ModuleForm(nn.ReLU6)),
    # Evaluation mode (F.rrelu's default training=False): leaky_relu with the mean slope.
    _record("rrelu", F.rrelu, "RReLU",
            hi.Elementwise(min_dims=0, options={"lower": _f32(0.0, 0.5),
                                                "upper": _f32(0.5, 1.0)}),
            exact_points=_at_0, module=ModuleForm(nn.RReLU, factory=_rrelu_module),
            # torch 2.13.0's own words: F.rrelu calls rrelu_with_noise even when not training
            vmap="torch.func.vmap: 'we do not yet support aten::rrelu_with_noise'"),
    _record("selu", F.selu, "SELU", exact_points=_at_0, overflow_prone=True,
            terms=_elu_terms("selu"), module=ModuleForm(nn.SELU)),
    # Backward from the saved rounded output: g (y - y^2) (suite/conditioning.py).
    _record("sigmoid", torch.sigmoid, "Sigmoid", overflow_prone=True, terms=conditioning.SIGMOID,
            module=ModuleForm(nn.Sigmoid)),
    _record("silu", F.silu, "SiLU", overflow_prone=True, terms=conditioning.SILU,
            module=ModuleForm(nn.SiLU)),
    _record("softmax", F.softmax, "Softmax", _ALONG_DIM, overflow_prone=True,
            terms=conditioning.SOFTMAX, module=ModuleForm(nn.Softmax)),
    _record("softmax2d", torch.nn.Softmax2d(), "Softmax2d",
            hi.Elementwise(min_dims=3, max_dims=4), overflow_prone=True,
            terms=conditioning.SOFTMAX2D, module=ModuleForm(nn.Softmax2d)),
    _record("softmin", F.softmin, "Softmin", _ALONG_DIM, overflow_prone=True,
            terms=conditioning.SOFTMIN, module=ModuleForm(nn.Softmin)),
    # beta: powers of two, so threshold / beta (the switch to the linear form) is exact in
    # float32 and float64 alike; threshold over [1, 30] around the default 20.
    _record("softplus", F.softplus, "Softplus",
            hi.Elementwise(min_dims=0, options={
                "beta": st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0]),
                "threshold": _f32(1.0, 30.0)}),
            exact_points=_softplus_switch, overflow_prone=True, module=ModuleForm(nn.Softplus)),
    _record("softshrink", F.softshrink, "Softshrink",
            hi.Elementwise(min_dims=0, options={"lambd": _LAMBD}), exact_points=_pm_lambd,
            low_precision=_KINK_OPTION_NOT_HALF, known_defects=_softshrink_nan,
            module=ModuleForm(nn.Softshrink)),
    # softsign's derivative 1/(1 + |x|)^2 has a kink at 0: not a point of the first-order
    # check, but the second-order one (order 2) must keep its finite differences off it.
    _record("softsign", F.softsign, "Softsign", exact_points=_at_0, terms=conditioning.SOFTSIGN,
            module=ModuleForm(nn.Softsign)),
    _record("tanh", torch.tanh, "Tanh", overflow_prone=True, terms=conditioning.TANH,
            module=ModuleForm(nn.Tanh)),
    # x - tanh(x) cancels for small x: its rounding is eps |x|, not eps |f| (the finite
    # differences' floor and the hard tier use M = |x| + |tanh x|; suite/conditioning.py).
    _record("tanhshrink", F.tanhshrink, "Tanhshrink", terms=conditioning.TANHSHRINK,
            module=ModuleForm(nn.Tanhshrink)),
    _record("threshold", F.threshold, "Threshold",
            hi.Elementwise(min_dims=0, options={"threshold": _f32(-3.0, 3.0),
                                                "value": st.floats(-5.0, 5.0)},
                           defaults={"threshold": 0.5, "value": -1.0}),
            exact_points=_at_threshold, low_precision=_KINK_OPTION_NOT_HALF,
            module=ModuleForm(nn.Threshold)),
)
