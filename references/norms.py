r"""Normalization layers, NumPy float64: layer, batch, group, instance and RMS normalization,
and local response normalization (at the end, a different formula).

All five normalize x over a set of axes R and then apply a per-feature affine map:

    mu = mean_R(x),  var = mean_R((x - mu)^2)   (biased: divided by |R|, as torch normalizes)
    xhat = (x - mu) / sqrt(var + eps),   y = xhat * w + b

and share one backward. With dxhat = g * w and n = |R|, differentiating xhat through mu and
var gives the standard formula (Ioffe & Szegedy 2015, Sec. 3; written compactly)

    dL/dx = (1 / sqrt(var + eps)) * (dxhat - mean_R(dxhat) - xhat * mean_R(dxhat * xhat))

and dL/dw = sum over the non-feature axes of g * xhat, dL/db = the same sum of g. Written in
terms of xhat the formula never subtracts two large numbers: xhat is O(1) whatever the scale of
x, so it stays accurate at |x| ~ 1e4. The variance is computed two-pass (mean first, then the
mean of squared deviations), not as E[x^2] - E[x]^2, which cancels catastrophically when the
mean is large compared with the spread.

Follows https://pytorch.org/docs/stable/generated/torch.nn.LayerNorm.html,
https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html,
https://pytorch.org/docs/stable/generated/torch.nn.InstanceNorm2d.html,
https://pytorch.org/docs/stable/generated/torch.nn.GroupNorm.html,
https://pytorch.org/docs/stable/generated/torch.nn.RMSNorm.html.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
Axes = tuple[int, ...]


def _standardize(x: Array, axes: Axes, eps: float) -> tuple[Array, Array]:
    """xhat = (x - mean) / sqrt(var + eps) over ``axes`` (biased var), and 1 / sqrt(var + eps).

    The mean is taken of the data shifted by one of the group's own values, x0 + mean(x - x0)
    (shifted data, as in Chan, Golub and LeVeque's variance algorithms): the mean of equal
    values is then exactly that value, so a constant group normalises to exactly 0, as the
    mathematics says (np.mean of ten copies of 0.3 is off by an ulp, 1.8e-14 after the
    division by sqrt(eps)). An empty input (an empty batch) has nothing to normalize: xhat is
    empty, inv_std 1.
    """
    if x.size == 0:
        return np.zeros(x.shape), np.ones([1 if a in axes else n for a, n in enumerate(x.shape)])
    first = tuple(slice(0, 1) if i in {a % x.ndim for a in axes} else slice(None)
                  for i in range(x.ndim))
    centred = x - x[first]
    centred -= np.mean(centred, axis=axes, keepdims=True)  # x - (x0 + mean(x - x0))
    var = np.mean(np.square(centred), axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    centred *= inv_std  # in place: xhat
    return centred, inv_std


def _standardize_vjp(dxhat: Array, xhat: Array, inv_std: Array, axes: Axes) -> Array:
    """dL/dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) over ``axes``
    (empty for an empty input)."""
    if dxhat.size == 0:
        return np.zeros(dxhat.shape)
    mean_dxhat = np.mean(dxhat, axis=axes, keepdims=True)
    mean_dxhat_xhat = np.mean(dxhat * xhat, axis=axes, keepdims=True)
    out = xhat * mean_dxhat_xhat  # then in place: (dxhat - (that + mean_dxhat)) * inv_std
    out += mean_dxhat
    np.subtract(dxhat, out, out=out)
    out *= inv_std
    return out


def _affine_vjp(g: Array, xhat: Array, weight: Array | None, bias: Array | None,
                shape: tuple[int, ...], axes: Axes) -> dict[str, Array]:
    """dL/dw = sum over ``axes`` of g * xhat and dL/db = sum of g, in the parameter's shape."""
    grads = {}
    if weight is not None:
        grads["weight"] = np.sum(g * xhat, axis=axes).reshape(np.shape(weight))
    if bias is not None:
        grads["bias"] = np.sum(g, axis=axes).reshape(np.shape(bias))
    return grads


# --- layer_norm ----------------------------------------------------------------------------


def layer_norm(input: Array, normalized_shape: Sequence[int], weight: Array | None = None,
               bias: Array | None = None, eps: float = 1e-5) -> Array:
    r"""y = (x - E[x]) / sqrt(Var[x] + eps) * w + b, statistics over the last
    len(normalized_shape) dimensions of each sample (biased variance); ``weight`` and ``bias``
    have shape ``normalized_shape``. Backward: the module docstring's formula with R = those
    dimensions, dL/dw and dL/db summed over the leading (batch) dimensions.
    """
    x = np.asarray(input, dtype=np.float64)
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    xhat, _ = _standardize(x, axes, eps)
    y = xhat if weight is None else xhat * weight
    return y if bias is None else y + bias


def layer_norm_vjp(g: Array, input: Array, normalized_shape: Sequence[int],
                   weight: Array | None = None, bias: Array | None = None,
                   eps: float = 1e-5) -> dict[str, Array]:
    r"""VJP of :func:`layer_norm`:

        dL/dx = (1 / sqrt(var + eps)) (dxhat - mean_R(dxhat) - xhat mean_R(dxhat xhat)),
        dxhat = g * w (g where there is no weight);
        dL/dw = sum_batch g * xhat,  dL/db = sum_batch g.
    """
    x = np.asarray(input, dtype=np.float64)
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    batch = tuple(range(x.ndim - len(normalized_shape)))
    xhat, inv_std = _standardize(x, axes, eps)
    dxhat = g if weight is None else g * weight
    return {"input": _standardize_vjp(dxhat, xhat, inv_std, axes),
            **_affine_vjp(g, xhat, weight, bias, x.shape, batch)}


# --- batch_norm ----------------------------------------------------------------------------


def _channel_shape(x: Array) -> tuple[int, ...]:
    """(1, C, 1, ...): per-channel arrays broadcast against (N, C, *)."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _batch_norm_input(input: Array) -> Array:
    """x as (N, C, *). torch's F.batch_norm reads a 1-D input (N,) as having no channel
    dimension: it accepts one only when it is empty (statistics of 0 elements, no weight or
    bias), and so does this view of it as (N, 0); a non-empty one raises, as in torch."""
    x = np.asarray(input, dtype=np.float64)
    if x.ndim == 1 and x.size:
        raise ValueError(f"batch_norm of a 1-D input (no channel dimension) needs it empty, "
                         f"as torch does; got shape {x.shape}")
    return x.reshape(0, 0) if x.ndim == 1 else x


def batch_norm(input: Array, running_mean: Array, running_var: Array,
               weight: Array | None = None, bias: Array | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Array:
    r"""Per channel c of x (N, C, *):

        training:  y = (x - mean_B(x)) / sqrt(var_B(x) + eps) * w + b,
                   B = every axis but the channel axis, biased var_B (divided by |B|);
        eval:      y = (x - running_mean) / sqrt(running_var + eps) * w + b.

    In training torch also updates the running statistics in place; that update is
    :func:`batch_norm_running_stats` (here the forward value only). ``momentum`` only affects
    that update.
    """
    x = _batch_norm_input(input)
    axes = (0, *range(2, x.ndim))
    cs = _channel_shape(x)
    if training:
        xhat, _ = _standardize(x, axes, eps)
    else:
        xhat = (x - np.reshape(running_mean, cs)) / np.sqrt(np.reshape(running_var, cs) + eps)
    y = xhat if weight is None else xhat * np.reshape(weight, cs)
    y = y if bias is None else y + np.reshape(bias, cs)
    return y.reshape(np.shape(input))


def batch_norm_vjp(g: Array, input: Array, running_mean: Array, running_var: Array,
                   weight: Array | None = None, bias: Array | None = None,
                   training: bool = False, momentum: float = 0.1,
                   eps: float = 1e-5) -> dict[str, Array]:
    r"""VJP of :func:`batch_norm` with respect to input, weight and bias (the running
    statistics are buffers, not differentiated):

        training:  dL/dx = (1 / sqrt(var_B + eps)) (dxhat - mean_B(dxhat) - xhat mean_B(dxhat xhat))
        eval:      dL/dx = dxhat / sqrt(running_var + eps)   (the statistics are constants)

    with dxhat = g * w; dL/dw = sum_B g * xhat, dL/db = sum_B g in both modes.
    """
    x = _batch_norm_input(input)
    g = np.reshape(g, x.shape)
    axes = (0, *range(2, x.ndim))
    cs = _channel_shape(x)
    dxhat = g if weight is None else g * np.reshape(weight, cs)
    if training:
        xhat, inv_std = _standardize(x, axes, eps)
        gx = _standardize_vjp(dxhat, xhat, inv_std, axes)
    else:
        inv_std = 1.0 / np.sqrt(np.reshape(running_var, cs) + eps)
        xhat = (x - np.reshape(running_mean, cs)) * inv_std
        gx = dxhat * inv_std
    return {"input": gx.reshape(np.shape(input)),
            **_affine_vjp(g, xhat, weight, bias, x.shape, axes)}


class RunningStats(NamedTuple):
    """BatchNorm's buffers after a training-mode call."""

    running_mean: Array
    running_var: Array


def batch_norm_running_stats(input: Array, running_mean: Array, running_var: Array,
                             momentum: float = 0.1) -> RunningStats:
    r"""The in-place update of a training-mode batch_norm call (BatchNorm docs):

        running_mean <- (1 - momentum) running_mean + momentum mean_B(x)
        running_var  <- (1 - momentum) running_var  + momentum var_B(x) |B| / (|B| - 1)

    The running variance uses the unbiased estimator (divided by |B| - 1), although the
    normalization itself uses the biased one; "momentum" is the weight of the new observation,
    not the usual optimizer meaning.
    """
    x = np.asarray(input, dtype=np.float64)
    axes = (0, *range(2, x.ndim))
    n = x.size // x.shape[1]
    mean = np.mean(x, axis=axes)
    unbiased = np.sum((x - np.reshape(mean, _channel_shape(x))) ** 2, axis=axes) / (n - 1)
    return RunningStats((1 - momentum) * running_mean + momentum * mean,
                        (1 - momentum) * running_var + momentum * unbiased)


# --- group_norm ----------------------------------------------------------------------------


def _grouped(x: Array, num_groups: int) -> Array:
    """x (N, C, *) viewed as (N, G, C / G * prod(*)): one row per sample and group (the sizes
    spelled out, so an empty batch reshapes too)."""
    return x.reshape(x.shape[0], num_groups, x.shape[1] // num_groups * math.prod(x.shape[2:]))


def group_norm(input: Array, num_groups: int, weight: Array | None = None,
               bias: Array | None = None, eps: float = 1e-5) -> Array:
    r"""x (N, C, *) viewed as (N, G, C / G, *); per sample n and group g

        y = (x - mean_{C/G, *}(x)) / sqrt(var_{C/G, *}(x) + eps) * w[c] + b[c]

    (biased variance; ``weight``, ``bias`` per channel, shape (C,)). Backward: the module
    docstring's formula with R = the group's channels and spatial positions.
    """
    x = np.asarray(input, dtype=np.float64)
    grouped = _grouped(x, num_groups)
    xhat = _standardize(grouped, (2,), eps)[0].reshape(x.shape)
    cs = _channel_shape(x)
    y = xhat if weight is None else xhat * np.reshape(weight, cs)
    return y if bias is None else y + np.reshape(bias, cs)


def group_norm_vjp(g: Array, input: Array, num_groups: int, weight: Array | None = None,
                   bias: Array | None = None, eps: float = 1e-5) -> dict[str, Array]:
    r"""VJP of :func:`group_norm`: per (n, group), with dxhat = g * w[c],

        dL/dx = (1 / sqrt(var + eps)) (dxhat - mean(dxhat) - xhat mean(dxhat xhat));
        dL/dw[c] = sum_{n, *} g * xhat,  dL/db[c] = sum_{n, *} g.
    """
    x = np.asarray(input, dtype=np.float64)
    grouped = _grouped(x, num_groups)
    xhat_g, inv_std = _standardize(grouped, (2,), eps)
    xhat = xhat_g.reshape(x.shape)
    dxhat = g if weight is None else g * np.reshape(weight, _channel_shape(x))
    gx = _standardize_vjp(np.reshape(dxhat, grouped.shape), xhat_g, inv_std, (2,))
    axes = (0, *range(2, x.ndim))
    return {"input": gx.reshape(x.shape), **_affine_vjp(g, xhat, weight, bias, x.shape, axes)}


# --- rms_norm ------------------------------------------------------------------------------


def rms_norm(input: Array, normalized_shape: Sequence[int], weight: Array | None = None,
             eps: float = 1e-6) -> Array:
    r"""y = x / sqrt(mean_R(x^2) + eps) * w, R = the last len(normalized_shape) dimensions
    (Zhang & Sennrich 2019; torch's RMSNorm docs). No centring, no bias.

    ``eps`` must be given: torch's default ``None`` means finfo(input dtype).eps, which a
    float64 reference cannot know; the records always pass one.
    """
    x = np.asarray(input, dtype=np.float64)
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    y = x / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + eps)
    return y if weight is None else y * weight


def rms_norm_vjp(g: Array, input: Array, normalized_shape: Sequence[int],
                 weight: Array | None = None, eps: float = 1e-6) -> dict[str, Array]:
    r"""VJP of :func:`rms_norm`. With r = 1 / sqrt(mean_R(x^2) + eps), xhat = x r and
    dxhat = g * w, using d r / d x_j = -r^3 x_j / n:

        dL/dx = r (dxhat - xhat mean_R(dxhat xhat)),   dL/dw = sum_batch g * xhat.

    Written with xhat = x r (O(1)) rather than r^3, so nothing overflows at large |x|.
    """
    x = np.asarray(input, dtype=np.float64)
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    r = 1.0 / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + eps)
    xhat = x * r
    dxhat = g if weight is None else g * weight
    grads = {"input": r * (dxhat - xhat * np.mean(dxhat * xhat, axis=axes, keepdims=True))}
    if weight is not None:
        grads["weight"] = np.sum(g * xhat, axis=tuple(range(x.ndim - len(normalized_shape))))
    return grads


# --- instance_norm -------------------------------------------------------------------------


def _instance_stats(x: Array, running_mean: Array | None, running_var: Array | None,
                    use_input_stats: bool, eps: float) -> tuple[Array, Array]:
    """(xhat, 1 / sqrt(var + eps)): per sample and channel over the spatial axes, or from the
    running statistics (per channel) when ``use_input_stats`` is False."""
    if use_input_stats:
        return _standardize(x, tuple(range(2, x.ndim)), eps)
    assert running_mean is not None and running_var is not None, \
        "use_input_stats=False needs the running statistics"
    cs = _channel_shape(x)
    inv_std = 1.0 / np.sqrt(np.reshape(running_var, cs) + eps)
    return (x - np.reshape(running_mean, cs)) * inv_std, inv_std


def instance_norm(input: Array, running_mean: Array | None = None,
                  running_var: Array | None = None, weight: Array | None = None,
                  bias: Array | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Array:
    r"""Per sample n and channel c of x (N, C, *spatial), 1 to 3 spatial dimensions:

        use_input_stats:  y = (x - mean_S(x)) / sqrt(var_S(x) + eps) * w + b,
                          S = the spatial axes of that (n, c), biased var_S;
        otherwise:        y = (x - running_mean) / sqrt(running_var + eps) * w + b.

    ``weight``, ``bias`` per channel. In the first mode torch also updates the running
    statistics, if given (:func:`instance_norm_running_stats`); ``momentum`` only affects that.
    Backward: the module docstring's formula with R = S (use_input_stats), or
    dL/dx = g w / sqrt(running_var + eps) (constant statistics).
    """
    x = np.asarray(input, dtype=np.float64)
    xhat, _ = _instance_stats(x, running_mean, running_var, use_input_stats, eps)
    cs = _channel_shape(x)
    y = xhat if weight is None else xhat * np.reshape(weight, cs)
    return y if bias is None else y + np.reshape(bias, cs)


def instance_norm_vjp(g: Array, input: Array, running_mean: Array | None = None,
                      running_var: Array | None = None, weight: Array | None = None,
                      bias: Array | None = None, use_input_stats: bool = True,
                      momentum: float = 0.1, eps: float = 1e-5) -> dict[str, Array]:
    r"""VJP of :func:`instance_norm` w.r.t. input, weight and bias, with dxhat = g * w:

        use_input_stats:  dL/dx = (1 / sqrt(var_S + eps)) (dxhat - mean_S(dxhat)
                                                           - xhat mean_S(dxhat xhat))
        otherwise:        dL/dx = dxhat / sqrt(running_var + eps)

    dL/dw = sum over N and S of g * xhat, dL/db = the same sum of g.
    """
    x = np.asarray(input, dtype=np.float64)
    xhat, inv_std = _instance_stats(x, running_mean, running_var, use_input_stats, eps)
    dxhat = g if weight is None else g * np.reshape(weight, _channel_shape(x))
    spatial = tuple(range(2, x.ndim))
    gx = _standardize_vjp(dxhat, xhat, inv_std, spatial) if use_input_stats \
        else dxhat * inv_std
    return {"input": gx, **_affine_vjp(g, xhat, weight, bias, x.shape, (0, *spatial))}


def instance_norm_running_stats(input: Array, running_mean: Array, running_var: Array,
                                momentum: float = 0.1) -> RunningStats:
    r"""The in-place update of an instance_norm call with use_input_stats and running
    statistics (torch computes it as a batch norm over (1, N C, *spatial) and averages the
    N copies of each channel's updated statistic):

        running_mean <- (1 - momentum) running_mean + momentum mean_N(mean_S(x))
        running_var  <- (1 - momentum) running_var  + momentum mean_N(var_S(x) |S| / (|S| - 1))

    (the unbiased variance of each instance, averaged over the batch).
    """
    x = np.asarray(input, dtype=np.float64)
    spatial = tuple(range(2, x.ndim))
    mean = np.mean(x, axis=spatial)
    unbiased = np.var(x, axis=spatial, ddof=1)
    return RunningStats((1 - momentum) * running_mean + momentum * mean.mean(axis=0),
                        (1 - momentum) * running_var + momentum * unbiased.mean(axis=0))


# --- local_response_norm -------------------------------------------------------------------


def _channel_window_sum(a: Array, before: int, after: int) -> Array:
    """sum_{c' = c - before}^{c + after} a[:, c'] for every channel c (axis 1), the channels
    outside [0, C) counting as 0."""
    pad = [(0, 0)] * a.ndim
    pad[1] = (before, after)
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(a, pad), before + after + 1,
                                                       axis=1)
    return np.sum(windows, axis=-1)


def _lrn_scale(x: Array, size: int, alpha: float, k: float) -> Array:
    """s_c = k + alpha / size * sum of x_{c'}^2 over c' = c - size // 2 .. c + (size - 1) // 2."""
    return k + alpha / size * _channel_window_sum(x * x, size // 2, (size - 1) // 2)


def local_response_norm(input: Array, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> Array:
    r"""b_c = a_c / s_c^beta,  s_c = k + (alpha / n) sum_{c'} a_{c'}^2,  n = ``size``,

    the sum over the channels c' = c - floor(n / 2) .. c + floor((n - 1) / 2) that exist
    (channels are axis 1 of (N, C, *), at least one further axis; the division is by n
    however many channels the window holds, as torch's zero-padded average does). Follows
    ``torch.nn.functional.local_response_norm`` / ``torch.nn.LocalResponseNorm``
    (https://pytorch.org/docs/stable/generated/torch.nn.LocalResponseNorm.html; Krizhevsky et
    al. 2012, sec. 3.3). Smooth for k > 0 (s >= k); no cancellation in the forward.
    """
    x = np.asarray(input, dtype=np.float64)
    return x * _lrn_scale(x, size, alpha, k) ** -beta


def local_response_norm_vjp(g: Array, input: Array, size: int, alpha: float = 1e-4,
                            beta: float = 0.75, k: float = 1.0) -> dict[str, Array]:
    r"""VJP of :func:`local_response_norm`. With ds_c / da_j = 2 (alpha / n) a_j for every
    channel c whose window holds j (c = j - floor((n - 1) / 2) .. j + floor(n / 2), the
    window transposed):

        dL/da_j = g_j s_j^(-beta) - (2 alpha beta / n) a_j sum_{c} g_c a_c s_c^(-beta - 1).

    Evaluated as 2 beta (a_j / t) sum_c g_c s_c^(-beta) ((alpha / n) a_c t / s_c), t a power of
    two near max |a| (exact scaling): each term of that sum is of the result's size, whereas
    s_c^(-beta - 1) alone (~|a|^(-2 beta - 2)) underflows float64 for |a| ~ 1e153 although
    the gradient is a normal number.
    """
    x = np.asarray(input, dtype=np.float64)
    s = _lrn_scale(x, size, alpha, k)
    finite = np.abs(x[np.isfinite(x)])
    top = float(np.max(finite, initial=0.0))
    t = math.ldexp(1.0, math.frexp(top)[1]) if top > 0 else 1.0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        r = g * s**-beta * (alpha / size * x / s * t)
    back = _channel_window_sum(r, (size - 1) // 2, size // 2)
    return {"input": g * s**-beta - 2.0 * beta * (x / t) * back}
