r"""Activation functions and their vector-Jacobian products, NumPy float64.

Each forward ``f(input, **options)`` is paired with ``f_vjp(g, input, **options)``, returning
``{"input": g * f'(input)}`` for elementwise functions (the Jacobian is diagonal) and the
full contraction ``J^T g`` for softmax-like functions. All forms are numerically stable for
``|x|`` up to at least 1e4: no ``exp`` of a large positive number is ever taken.

The torch documentation followed is named in each docstring (https://pytorch.org/docs/stable/nn.html).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import special

Array = NDArray[np.float64]


def sigmoid(input: Array) -> Array:
    r"""sigmoid(x) = 1 / (1 + exp(-x)).

    Derivative: sigmoid'(x) = sigmoid(x) (1 - sigmoid(x)).

    Evaluated as written, 1 / (1 + exp(-x)), within 2 ulp where the value is a normal number
    (1.85 ulp at most over 6e4 points against mpmath; ``scipy.special.expit`` 1.89): for x < 0
    exp(-x) is large and the quotient keeps full relative precision (no 1 - small
    cancellation); below x = -709.78 exp(-x) overflows to inf and the result is 0 where the
    value is below 2.3e-308 (a subnormal, which torch's float64 sigmoid also gives as 0). In
    place, with NumPy's vectorised exp: ``scipy.special.expit`` computes the same quotient one
    element at a time, 2.2x slower at 10^6 elements.
    Follows ``torch.sigmoid`` / ``torch.nn.Sigmoid``.
    """
    with np.errstate(over="ignore"):  # exp(-x) = inf below x = -709.78: the quotient is 0
        e = np.asarray(np.exp(-np.asarray(input, dtype=np.float64)))
    e += 1.0
    return np.reciprocal(e, out=e)


def sigmoid_vjp(g: Array, input: Array) -> dict[str, Array]:
    r"""d sigmoid/dx = sigmoid(x) (1 - sigmoid(x));  VJP: g * s (1 - s)."""
    s = sigmoid(input)
    return {"input": g * s * (1.0 - s)}


def tanh(input: Array) -> Array:
    r"""tanh(x) = (exp(x) - exp(-x)) / (exp(x) + exp(-x)).

    Derivative: tanh'(x) = 1 - tanh(x)^2.

    ``np.tanh`` saturates to +-1 without overflow. Follows ``torch.tanh`` / ``torch.nn.Tanh``.
    """
    return np.tanh(np.asarray(input, dtype=np.float64))


def tanh_vjp(g: Array, input: Array) -> dict[str, Array]:
    r"""d tanh/dx = 1 - tanh(x)^2;  VJP: g * (1 - tanh(x)^2)."""
    t = tanh(input)
    return {"input": g * (1.0 - t * t)}


def relu(input: Array) -> Array:
    r"""relu(x) = max(0, x).

    Derivative: 1 for x > 0, 0 for x < 0. At the kink x = 0 torch's autograd uses the
    subgradient 0 (the backward is ``g * (x > 0)``); the reference does the same.
    Follows ``torch.nn.functional.relu`` / ``torch.nn.ReLU``.
    """
    x = np.asarray(input, dtype=np.float64)
    return np.maximum(x, 0.0)


def relu_vjp(g: Array, input: Array) -> dict[str, Array]:
    r"""d relu/dx = [x > 0]  (0 at x = 0, torch's convention);  VJP: 0 where x <= 0, else g.

    Written with torch's ``threshold_backward`` test (``x <= 0 ? 0 : g``), as g times the
    indicator [not x <= 0], so a NaN input passes the cotangent through, as torch does
    (docs/conventions.md). (For a finite cotangent, as every check draws, the product and
    torch's select agree exactly.)
    """
    return {"input": g * ~(np.asarray(input) <= 0)}


def leaky_relu(input: Array, negative_slope: float = 0.01) -> Array:
    r"""leaky_relu(x) = x for x >= 0, negative_slope * x for x < 0.

    Derivative: 1 for x > 0, negative_slope for x < 0. At x = 0 torch's backward takes the
    x > 0 branch's complement, i.e. negative_slope (``self > 0 ? grad : grad * slope``).
    Written max(x, 0) + negative_slope min(x, 0): each element is one of the two terms exactly
    (the other is 0), NaN propagates, and -inf gives -inf (NaN for slope 0: -inf * 0, as torch).
    Follows ``torch.nn.functional.leaky_relu`` / ``torch.nn.LeakyReLU``.
    """
    x = np.asarray(input, dtype=np.float64)
    return np.maximum(x, 0.0) + negative_slope * np.minimum(x, 0.0)


def leaky_relu_vjp(g: Array, input: Array, negative_slope: float = 0.01) -> dict[str, Array]:
    r"""d leaky_relu/dx = [x > 0] + negative_slope [not x > 0] (the slope at 0 and at NaN);
    VJP: g times that, one of the two terms exactly."""
    positive = np.asarray(input) > 0
    return {"input": g * positive + negative_slope * (g * ~positive)}


def softmax(input: Array, dim: int = -1) -> Array:
    r"""softmax(x)_i = exp(x_i) / sum_j exp(x_j), along ``dim``.

    Jacobian: d s_i / d x_j = s_i (delta_ij - s_j), so the VJP is  s * (g - sum_j g_j s_j).

    Stable form: subtract m = max_j x_j first (softmax is shift invariant), so every exp
    argument is <= 0 (the max of an empty dim is taken as -inf, so 0-size inputs work).
    Follows ``torch.nn.functional.softmax`` / ``torch.nn.Softmax``.
    """
    x = np.asarray(input, dtype=np.float64)
    e = x - np.max(x, axis=dim, keepdims=True, initial=-np.inf)
    np.exp(e, out=e)  # exp(x - m), in the shifted array's place
    e /= np.sum(e, axis=dim, keepdims=True)
    return e


def softmax_vjp(g: Array, input: Array, dim: int = -1) -> dict[str, Array]:
    r"""VJP of softmax: s * (g - <g, s>) with the inner product taken along ``dim``."""
    s = softmax(input, dim=dim)
    return {"input": s * (g - np.sum(g * s, axis=dim, keepdims=True))}


def log_softmax(input: Array, dim: int = -1) -> Array:
    r"""log_softmax(x)_i = x_i - log sum_j exp(x_j), along ``dim``.

    Jacobian: d y_i / d x_j = delta_ij - softmax(x)_j, so the VJP is  g - softmax(x) * sum_j g_j.

    Stable form: x - m - log sum_j exp(x_j - m) with m = max_j x_j, so every exp argument is
    <= 0 and the sum is >= 1 (its log is finite). Follows ``torch.nn.functional.log_softmax``.
    """
    x = np.asarray(input, dtype=np.float64)
    shifted = x - np.max(x, axis=dim, keepdims=True, initial=-np.inf)
    return shifted - np.log(np.sum(np.exp(shifted), axis=dim, keepdims=True))


def log_softmax_vjp(g: Array, input: Array, dim: int = -1) -> dict[str, Array]:
    r"""VJP of log_softmax: g - softmax(x) * sum_j g_j along ``dim``."""
    return {"input": g - softmax(input, dim=dim) * np.sum(g, axis=dim, keepdims=True)}


def identity(input: Array) -> Array:
    r"""identity(x) = x; derivative 1. The "no activation" layer of a network."""
    return np.asarray(input, dtype=np.float64)


def identity_vjp(g: Array, input: Array) -> dict[str, Array]:
    r"""VJP of the identity: g."""
    return {"input": np.asarray(g, dtype=np.float64)}


# --- torch.nn activations beyond the classics --------------------------------------------------
#
# Conventions shared by the functions below (docs/conventions.md has the table):
# * at a non-differentiable point the VJP gives what torch 2.13's backward formula gives there
#   (tools/autograd/derivatives.yaml and the ATen kernels), and each docstring states it;
# * masks are written with the same comparison torch's backward uses (``x <= 0 ? 0 : g`` and
#   ``x > 0 ? g : 0`` differ at NaN: the first passes the cotangent through, the second drops
#   it), so NaN inputs give torch's gradients;
# * infinities follow IEEE arithmetic through the form torch evaluates (``-inf * 0`` is NaN):
#   where that differs from the mathematical limit, docs/conventions.md and
#   KNOWN_DIFFERENCES.md say so.

_SELU_ALPHA = 1.6732632423543772848170429916717  # Klambauer et al. 2017, torch.nn.SELU docs
_SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_2_OVER_PI = np.sqrt(2.0 / np.pi)
_GELU_KAPPA = 0.044715  # the tanh approximation's cubic coefficient (torch.nn.GELU docs)
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def _expm1_negative_part(x: Array) -> Array:
    """exp(min(x, 0)) - 1: the ELU family's negative branch, never overflowing for large x."""
    return np.expm1(np.minimum(x, 0.0))


def celu(input: Array, alpha: float = 1.0) -> Array:
    r"""celu(x) = max(0, x) + min(0, alpha (exp(x / alpha) - 1)).

    Derivative: 1 for x > 0, exp(x / alpha) for x <= 0 (continuous at 0, where both are 1).
    torch computes CELU as ELU with input scale 1/alpha; its backward takes the exp branch for
    x <= 0, so NaN passes g through.
    Stable form: expm1 of min(x, 0) / alpha, so no exp of a large positive number is taken.
    Follows ``torch.nn.CELU`` (Barron 2017).
    """
    x = np.asarray(input, dtype=np.float64)
    return np.where(x > 0, x, alpha * _expm1_negative_part(x / alpha))


def celu_vjp(g: Array, input: Array, alpha: float = 1.0) -> dict[str, Array]:
    r"""VJP: g exp(x / alpha) where x <= 0, else g."""
    x = np.asarray(input, dtype=np.float64)
    return {"input": np.where(x <= 0, g * np.exp(np.minimum(x, 0.0) / alpha), g)}


def elu(input: Array, alpha: float = 1.0) -> Array:
    r"""elu(x) = x for x > 0, alpha (exp(x) - 1) for x <= 0.

    Derivative: 1 for x > 0, alpha exp(x) for x < 0. At x = 0 (a kink unless alpha = 1) torch's
    ``elu_backward`` takes the x <= 0 branch: the derivative there is alpha. NaN takes the
    x > 0 branch (g passes through).
    Stable form: expm1(min(x, 0)): exact near 0 and never exp of a large positive number.
    Follows ``torch.nn.ELU`` (Clevert et al. 2015).
    """
    x = np.asarray(input, dtype=np.float64)
    return np.where(x > 0, x, alpha * _expm1_negative_part(x))


def elu_vjp(g: Array, input: Array, alpha: float = 1.0) -> dict[str, Array]:
    r"""VJP: g alpha exp(x) where x <= 0 (alpha at x = 0, torch's convention), else g."""
    x = np.asarray(input, dtype=np.float64)
    return {"input": np.where(x <= 0, g * alpha * np.exp(np.minimum(x, 0.0)), g)}


def selu(input: Array) -> Array:
    r"""selu(x) = scale (max(0, x) + min(0, alpha (exp(x) - 1))), alpha = 1.6733, scale = 1.0507.

    Derivative: scale for x > 0, scale alpha exp(x) for x < 0. At x = 0 torch's backward takes
    the x <= 0 branch: scale alpha. Stable form as ``elu``.
    Follows ``torch.nn.SELU`` (Klambauer et al. 2017; the constants are the docs').
    """
    return _SELU_SCALE * elu(input, alpha=_SELU_ALPHA)


def selu_vjp(g: Array, input: Array) -> dict[str, Array]:
    r"""VJP: g scale alpha exp(x) where x <= 0 (scale alpha at x = 0), else g scale."""
    return {"input": _SELU_SCALE * elu_vjp(g, input, alpha=_SELU_ALPHA)["input"]}


def gelu(input: Array, approximate: str = "none") -> Array:
    r"""gelu(x) = x Phi(x), Phi the standard normal CDF; or, with ``approximate="tanh"``,
    0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).

    Derivative: Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi); for the tanh form, with
    u = sqrt(2 / pi) (x + 0.044715 x^3) and t = tanh(u):
    0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2 / pi) (1 + 3 * 0.044715 x^2).

    Phi is ``scipy.special.ndtr``, which evaluates erfc(-x / sqrt 2) / 2 for x < -1/sqrt 2 and so
    keeps relative precision in the left tail (torch's 1 + erf(x / sqrt 2) rounds to 0 there;
    the difference is far below the absolute tolerance).
    Likewise 0.5 (1 + tanh(u)) = sigmoid(2 u) and 1 - tanh(u)^2 = 4 s (1 - s), s = sigmoid(2 u),
    with the stable ``sigmoid``: 1 + tanh(u) cancels for u << 0.
    At -inf both forms evaluate -inf * 0 = NaN, as torch does (the limit would be 0).
    Follows ``torch.nn.GELU`` (Hendrycks and Gimpel 2016).
    """
    x = np.asarray(input, dtype=np.float64)
    if _gelu_form(approximate) == "tanh":
        return x * sigmoid(2.0 * _SQRT_2_OVER_PI * (x + _GELU_KAPPA * x**3))
    return x * special.ndtr(x)


def _gelu_form(approximate: str) -> str:
    """``approximate``, validated: "none" or "tanh", as torch accepts."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return approximate


def gelu_vjp(g: Array, input: Array, approximate: str = "none") -> dict[str, Array]:
    r"""VJP: g (Phi(x) + x phi(x)), or g times the tanh form's derivative (see ``gelu``).

    At +-inf both evaluate inf * 0 = NaN, as torch's ``gelu_backward`` does.
    """
    x = np.asarray(input, dtype=np.float64)
    if _gelu_form(approximate) == "tanh":
        s = sigmoid(2.0 * _SQRT_2_OVER_PI * (x + _GELU_KAPPA * x**3))  # 0.5 (1 + tanh(u))
        du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_KAPPA * x * x)
        return {"input": g * (s + 2.0 * x * s * (1.0 - s) * du)}  # 0.5 x (1 - t^2) = 2x s (1-s)
    pdf = np.exp(-0.5 * x * x) * _INV_SQRT_2PI  # phi(x)
    return {"input": g * (special.ndtr(x) + x * pdf)}


def silu(input: Array) -> Array:
    r"""silu(x) = x sigmoid(x).

    Derivative: s (1 + x (1 - s)), s = sigmoid(x). The stable ``sigmoid`` is used; at -inf the
    product -inf * 0 is NaN, as torch's ``x * sigmoid(x)`` (the limit would be 0).
    Follows ``torch.nn.SiLU`` (Elfwing et al. 2017).
    """
    x = np.asarray(input, dtype=np.float64)
    return x * sigmoid(x)


def silu_vjp(g: Array, input: Array) -> dict[str, Array]:
    r"""VJP: g s (1 + x (1 - s)); NaN at +-inf (inf * 0), as torch's ``silu_backward``."""
    x = np.asarray(input, dtype=np.float64)
    s = sigmoid(x)
    return {"input": g * s * (1.0 + x * (1.0 - s))}


def _softplus_stable(z: Array) -> Array:
    """log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)): exp of a non-positive number only."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def mish(input: Array) -> Array:
    r"""mish(x) = x tanh(softplus(x)), softplus(x) = log(1 + exp(x)).

    Derivative: t + x sigmoid(x) (1 - t^2), t = tanh(softplus(x)).
    softplus in the stable form max(x, 0) + log1p(exp(-|x|)) (torch's ``log1p(exp(x))``
    overflows to inf for large x, where tanh still gives 1). At -inf: -inf * 0 = NaN, as torch.
    Follows ``torch.nn.Mish`` (Misra 2019).
    """
    x = np.asarray(input, dtype=np.float64)
    return x * np.tanh(_softplus_stable(x))


def mish_vjp(g: Array, input: Array) -> dict[str, Array]:
    r"""VJP: g (t + x sigmoid(x) (1 - t^2)); NaN at +-inf (inf * 0), as ``mish_backward``."""
    x = np.asarray(input, dtype=np.float64)
    t = np.tanh(_softplus_stable(x))
    return {"input": g * (t + x * sigmoid(x) * (1.0 - t * t))}


def softplus(input: Array, beta: float = 1.0, threshold: float = 20.0) -> Array:
    r"""softplus(x) = log(1 + exp(beta x)) / beta, and x where beta x > threshold.

    torch documents the reversion to the linear function above ``threshold`` "for numerical
    stability"; it makes softplus discontinuous at x = threshold / beta (by
    log1p(exp(-threshold)) / beta, 2e-9 at the default 20). At that point beta x > threshold is
    false: the log form is used.
    Derivative: sigmoid(beta x) where beta x <= threshold, else 1.
    Stable form of the log branch: max(z, 0) + log1p(exp(-|z|)), z = beta x.
    Follows ``torch.nn.Softplus``.
    """
    x = np.asarray(input, dtype=np.float64)
    z = beta * x
    return np.where(z > threshold, x, _softplus_stable(z) / beta)


def softplus_vjp(g: Array, input: Array, beta: float = 1.0,
                 threshold: float = 20.0) -> dict[str, Array]:
    r"""VJP: g where beta x > threshold, else g sigmoid(beta x) (NaN stays NaN)."""
    z = beta * np.asarray(input, dtype=np.float64)
    return {"input": np.where(z > threshold, g, g * sigmoid(z))}


def softsign(input: Array) -> Array:
    r"""softsign(x) = x / (1 + |x|).

    Derivative: 1 / (1 + |x|)^2. torch evaluates the quotient as written, so at +-inf it gives
    inf / inf = NaN (the limit is +-1): the reference does the same (KNOWN_DIFFERENCES.md).
    Follows ``torch.nn.Softsign``.
    """
    x = np.asarray(input, dtype=np.float64)
    return x / (1.0 + np.abs(x))


def softsign_vjp(g: Array, input: Array) -> dict[str, Array]:
    r"""VJP: g / (1 + |x|) - g x sign(x) / (1 + |x|)^2, which is g / (1 + |x|)^2.

    Written as autograd differentiates torch's ``input / (input.abs() + 1)`` (quotient rule,
    d|x|/dx = sign(x)), so at +-inf it is 0 - inf / inf = NaN, as torch's.
    """
    x = np.asarray(input, dtype=np.float64)
    d = 1.0 + np.abs(x)
    return {"input": g / d - g * x * np.sign(x) / (d * d)}


def softshrink(input: Array, lambd: float = 0.5) -> Array:
    r"""softshrink(x) = x - lambd for x > lambd, x + lambd for x < -lambd, 0 otherwise.

    Derivative: 1 for |x| > lambd, 0 for |x| < lambd. At x = +-lambd torch's backward uses the
    closed band (``-lambd <= x <= lambd ? 0 : g``): 0; NaN passes g through.
    Written x - clamp(x, -lambd, lambd): the same three pieces (x - lambd, x + lambd, and
    x - x = 0 in the band), and NaN propagates.
    Follows ``torch.nn.Softshrink``.
    """
    x = np.asarray(input, dtype=np.float64)
    return x - np.clip(x, -lambd, lambd)


def _outside_band(x: Array, lambd: float) -> NDArray[np.bool_]:
    """[not -lambd <= x <= lambd]: torch's shrink backwards' test, true at NaN."""
    return ~((x >= -lambd) & (x <= lambd))


def softshrink_vjp(g: Array, input: Array, lambd: float = 0.5) -> dict[str, Array]:
    r"""VJP: 0 where -lambd <= x <= lambd (so 0 at +-lambd), else g: g times the indicator of
    the band's complement (NaN passes g)."""
    return {"input": g * _outside_band(np.asarray(input, dtype=np.float64), lambd)}


def hardshrink(input: Array, lambd: float = 0.5) -> Array:
    r"""hardshrink(x) = x for |x| > lambd, 0 otherwise (0 at x = +-lambd).

    Derivative: 1 for |x| > lambd, 0 for |x| < lambd; torch gives 0 at +-lambd (closed band,
    as softshrink) and passes g through at NaN. Written x times the indicator of the band's
    complement (x exactly outside it, 0 inside, NaN kept). Follows ``torch.nn.Hardshrink``.
    """
    x = np.asarray(input, dtype=np.float64)
    return x * _outside_band(x, lambd)


def hardshrink_vjp(g: Array, input: Array, lambd: float = 0.5) -> dict[str, Array]:
    r"""VJP: 0 where -lambd <= x <= lambd, else g (g times the band's complement)."""
    return {"input": g * _outside_band(np.asarray(input, dtype=np.float64), lambd)}


def tanhshrink(input: Array) -> Array:
    r"""tanhshrink(x) = x - tanh(x).

    Derivative: 1 - (1 - tanh(x)^2) = tanh(x)^2; the VJP uses tanh^2 directly (no cancellation
    for small x). Follows ``torch.nn.Tanhshrink``.
    """
    x = np.asarray(input, dtype=np.float64)
    return x - np.tanh(x)


def tanhshrink_vjp(g: Array, input: Array) -> dict[str, Array]:
    r"""VJP: g tanh(x)^2."""
    t = np.tanh(np.asarray(input, dtype=np.float64))
    return {"input": g * t * t}


def hardtanh(input: Array, min_val: float = -1.0, max_val: float = 1.0) -> Array:
    r"""hardtanh(x) = min(max(x, min_val), max_val).

    Derivative: 1 for min_val < x < max_val, 0 outside. At the bounds torch's
    ``hardtanh_backward`` gives 0 (``x <= min_val || x >= max_val ? 0 : g``, an open band),
    unlike ``clamp`` (closed band); NaN passes g through.
    Follows ``torch.nn.Hardtanh``.
    """
    x = np.asarray(input, dtype=np.float64)
    return np.clip(x, min_val, max_val)  # NaN propagates


def hardtanh_vjp(g: Array, input: Array, min_val: float = -1.0,
                 max_val: float = 1.0) -> dict[str, Array]:
    r"""VJP: 0 where x <= min_val or x >= max_val (0 at both bounds), else g: g times the
    indicator [not (x <= min_val or x >= max_val)], true at NaN."""
    x = np.asarray(input, dtype=np.float64)
    return {"input": g * ~((x <= min_val) | (x >= max_val))}


def relu6(input: Array) -> Array:
    r"""relu6(x) = min(max(x, 0), 6) = hardtanh(x, 0, 6).

    Derivative: 1 for 0 < x < 6, 0 outside; torch computes relu6 as hardtanh, so the gradient
    at 0 and at 6 is 0 and NaN passes g through. Follows ``torch.nn.ReLU6``.
    """
    return hardtanh(input, 0.0, 6.0)


def relu6_vjp(g: Array, input: Array) -> dict[str, Array]:
    r"""VJP: 0 where x <= 0 or x >= 6, else g."""
    return hardtanh_vjp(g, input, 0.0, 6.0)


def clamp(input: Array, min: float | None = None, max: float | None = None) -> Array:
    r"""clamp(x) = min(max(x, min), max); an absent bound is no bound.

    Derivative: 1 for min < x < max, 0 outside. At the bounds torch's ``clamp_backward`` gives
    1 (``x >= min && x <= max ? g : 0``, a closed band), unlike ``hardtanh``; NaN gives 0.
    Follows ``torch.clamp`` (clamp is not a torch.nn activation; it is checked beside hardtanh,
    whose convention differs).
    """
    x = np.asarray(input, dtype=np.float64)
    if min is not None:
        x = np.maximum(x, min)  # np.maximum propagates NaN, as torch.clamp does
    if max is not None:
        x = np.minimum(x, max)
    return x


def clamp_vjp(g: Array, input: Array, min: float | None = None,
              max: float | None = None, *, clamp_closed: bool = True) -> dict[str, Array]:
    r"""VJP: g where min <= x <= max (1 at both bounds), else 0 (0 at NaN).

    ``clamp_closed=False`` is torch 2.14's convention: g only where min < x < max, 0 at both
    bounds (docs/conventions.md).
    """
    x = np.asarray(input, dtype=np.float64)
    keep = np.ones(x.shape, dtype=bool)
    if min is not None:
        keep &= (x >= min) if clamp_closed else (x > min)
    if max is not None:
        keep &= (x <= max) if clamp_closed else (x < max)
    return {"input": g * keep}


def hardsigmoid(input: Array) -> Array:
    r"""hardsigmoid(x) = min(max(x + 3, 0), 6) / 6: 0 for x <= -3, 1 for x >= 3, x/6 + 1/2 between.

    Derivative: 1/6 for -3 < x < 3, 0 outside. torch's ``hardsigmoid_backward`` uses the open
    band (``x > -3 && x < 3 ? g / 6 : 0``): 0 at +-3, and 0 at NaN.
    Follows ``torch.nn.Hardsigmoid``.
    """
    x = np.asarray(input, dtype=np.float64)
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0


def hardsigmoid_vjp(g: Array, input: Array) -> dict[str, Array]:
    r"""VJP: g / 6 where -3 < x < 3, else 0 (g / 6 times the indicator; false at NaN)."""
    x = np.asarray(input, dtype=np.float64)
    return {"input": g * ((x > -3.0) & (x < 3.0)) / 6.0}


def hardswish(input: Array) -> Array:
    r"""hardswish(x) = x min(max(x + 3, 0), 6) / 6: 0 for x <= -3, x for x >= 3.

    Derivative: 0 for x < -3, x/3 + 1/2 for -3 < x < 3, 1 for x > 3. Since torch 2.8
    (pytorch/pytorch#148049) ``hardswish_backward`` is ``x <= -3 ? 0 : x < 3 ? g (x/3 + 1/2) :
    g``: 0 at -3, 1 at +3 (before: -1/2 and 3/2), and g at NaN. The forward evaluates the
    product as written, so at -inf it is -inf * 0 = NaN (KNOWN_DIFFERENCES.md).
    Follows ``torch.nn.Hardswish`` (Howard et al. 2019).
    """
    x = np.asarray(input, dtype=np.float64)
    return x * np.clip(x + 3.0, 0.0, 6.0) / 6.0


def hardswish_vjp(g: Array, input: Array, *, closed_band: bool = False) -> dict[str, Array]:
    r"""VJP: 0 where x <= -3, g (x/3 + 1/2) where x < 3, else g (torch >= 2.8).

    ``closed_band=True`` is the convention of torch 2.6 and older, which used the middle
    formula on the closed band -3 <= x <= 3: -g/2 at -3 and 3g/2 at +3 (docs/conventions.md).
    """
    x = np.asarray(input, dtype=np.float64)
    if closed_band:
        return {"input": np.where(x < -3.0, 0.0, np.where(x <= 3.0, g * (x / 3.0 + 0.5), g))}
    return {"input": np.where(x <= -3.0, 0.0, np.where(x < 3.0, g * (x / 3.0 + 0.5), g))}


def logsigmoid(input: Array) -> Array:
    r"""logsigmoid(x) = log(1 / (1 + exp(-x))) = -softplus(-x).

    Derivative: 1 - sigmoid(x) = sigmoid(-x).
    Stable form: min(x, 0) - log1p(exp(-|x|)): exp of a non-positive number only (the textbook
    log(sigmoid(x)) underflows to log(0) = -inf below x ~ -745).
    Follows ``torch.nn.LogSigmoid``.
    """
    x = np.asarray(input, dtype=np.float64)
    return np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x)))


def logsigmoid_vjp(g: Array, input: Array) -> dict[str, Array]:
    r"""VJP: g sigmoid(-x)."""
    return {"input": g * sigmoid(-np.asarray(input, dtype=np.float64))}


def rrelu(input: Array, lower: float = 1.0 / 8, upper: float = 1.0 / 3,
          training: bool = False) -> Array:
    r"""rrelu in evaluation mode: leaky_relu with slope (lower + upper) / 2.

    In training mode torch draws a random slope per element (not a function of the input);
    only evaluation mode, torch's default for ``F.rrelu``, is a reference.
    Derivative and conventions as ``leaky_relu``: the slope at x = 0 and at NaN.
    Follows ``torch.nn.RReLU`` (Xu et al. 2015).
    """
    if training:
        raise ValueError("rrelu in training mode draws random slopes; use training=False")
    return leaky_relu(input, (lower + upper) / 2)


def rrelu_vjp(g: Array, input: Array, lower: float = 1.0 / 8, upper: float = 1.0 / 3,
              training: bool = False) -> dict[str, Array]:
    r"""VJP: g where x > 0, else g (lower + upper) / 2."""
    rrelu(np.zeros(()), lower, upper, training)  # validates ``training``
    return leaky_relu_vjp(g, input, (lower + upper) / 2)


def _channel_weight(weight: Array, ndim: int) -> Array:
    """PReLU's weight shaped to broadcast along the channel dim (dim 1; no channels below 2-d)."""
    w = np.asarray(weight, dtype=np.float64)
    if ndim >= 2:
        return w.reshape((1, w.size) + (1,) * (ndim - 2))
    return w.reshape(()) if w.size == 1 else w


def prelu(input: Array, weight: Array) -> Array:
    r"""prelu(x) = x for x > 0, a x for x <= 0, with a learned slope a per channel.

    ``weight`` has 1 element (shared) or one per channel, the channel being dim 1 of the input
    (inputs of fewer than 2 dims have one channel).
    Derivatives: d/dx = 1 for x > 0, a for x < 0, and a at x = 0 and at NaN (torch's backward is
    ``x > 0 ? g : a g``); d/da = x where x <= 0, else 0, summed over every element of the channel.
    Written max(x, 0) + a min(x, 0), as ``leaky_relu``: one of the two terms exactly.
    Follows ``torch.nn.PReLU`` (He et al. 2015).
    """
    x = np.asarray(input, dtype=np.float64)
    return np.maximum(x, 0.0) + _channel_weight(weight, x.ndim) * np.minimum(x, 0.0)


def prelu_vjp(g: Array, input: Array, weight: Array) -> dict[str, Array]:
    r"""VJP: input g where x > 0 else a g; weight: sum over the channel of g x where x <= 0."""
    x = np.asarray(input, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    a = _channel_weight(w, x.ndim)
    positive = x > 0
    gx = np.broadcast_to(g * positive + a * (g * ~positive), x.shape)
    per_element = g * np.minimum(x, 0.0)  # g x where x <= 0 (NaN kept), else 0
    if x.ndim >= 2 and w.size > 1:
        gw = np.sum(per_element, axis=tuple(d for d in range(x.ndim) if d != 1))
    else:
        gw = np.sum(per_element)
    return {"input": gx, "weight": np.reshape(gw, w.shape)}


def threshold(input: Array, threshold: float, value: float) -> Array:
    r"""threshold(x) = x for x > threshold, value otherwise (value at x = threshold).

    Derivative: 1 for x > threshold, 0 below; a jump (not only a kink) at x = threshold, where
    torch's ``threshold_backward`` (``x <= threshold ? 0 : g``) gives 0. NaN is kept in the
    forward and passes g through in the backward.
    Follows ``torch.nn.Threshold``.
    """
    x = np.asarray(input, dtype=np.float64)
    return np.where(x <= threshold, value, x)


def threshold_vjp(g: Array, input: Array, threshold: float, value: float) -> dict[str, Array]:
    r"""VJP: 0 where x <= threshold, else g: g times [not x <= threshold], true at NaN."""
    x = np.asarray(input, dtype=np.float64)
    return {"input": g * ~(x <= threshold)}


def glu(input: Array, dim: int = -1) -> Array:
    r"""glu(x) = a sigmoid(b), where a, b are the first and second halves of x along ``dim``.

    VJP: d/da = g sigmoid(b), d/db = g a sigmoid(b) (1 - sigmoid(b)), concatenated along
    ``dim``. The size of ``dim`` must be even. Stable ``sigmoid``; IEEE products at infinities
    (inf * 0 = NaN), as torch. Follows ``torch.nn.GLU`` (Dauphin et al. 2017).
    """
    a, b = np.split(np.asarray(input, dtype=np.float64), 2, axis=dim)
    return a * sigmoid(b)


def glu_vjp(g: Array, input: Array, dim: int = -1) -> dict[str, Array]:
    r"""VJP: [g sigmoid(b), g a sigmoid(b) (1 - sigmoid(b))] along ``dim``."""
    a, b = np.split(np.asarray(input, dtype=np.float64), 2, axis=dim)
    s = sigmoid(b)
    return {"input": np.concatenate([g * s, g * a * s * (1.0 - s)], axis=dim)}


def softmin(input: Array, dim: int = -1) -> Array:
    r"""softmin(x) = softmax(-x) along ``dim``: exp(-x_i) / sum_j exp(-x_j).

    VJP: by the chain rule, -(VJP of softmax at -x) = -s (g - <g, s>), s = softmin(x).
    Stable form: softmax's max-shift, applied to -x. Follows ``torch.nn.Softmin``.
    """
    return softmax(-np.asarray(input, dtype=np.float64), dim=dim)


def softmin_vjp(g: Array, input: Array, dim: int = -1) -> dict[str, Array]:
    r"""VJP: -s (g - <g, s>) along ``dim``, s = softmin(x)."""
    return {"input": -softmax_vjp(g, -np.asarray(input, dtype=np.float64), dim=dim)["input"]}


def softmax2d(input: Array) -> Array:
    r"""softmax2d(x) = softmax over the channel dim, -3, of a (C, H, W) or (N, C, H, W) input.

    VJP and stable form as ``softmax``. Follows ``torch.nn.Softmax2d``.
    """
    return softmax(_softmax2d_input(input), dim=-3)


def _softmax2d_input(input: Array) -> Array:
    """``input`` as float64, refused unless (C, H, W) or (N, C, H, W), as torch refuses it."""
    x = np.asarray(input, dtype=np.float64)
    if x.ndim not in (3, 4):
        raise ValueError(f"softmax2d needs a 3-d or 4-d input, got {x.ndim}-d")
    return x


def softmax2d_vjp(g: Array, input: Array) -> dict[str, Array]:
    r"""VJP: s (g - <g, s>) along dim -3."""
    return softmax_vjp(g, _softmax2d_input(input), dim=-3)
