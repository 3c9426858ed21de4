r"""Pooling over windows that are not one fixed sliding kernel, NumPy float64: adaptive max and
average pooling, power-average (LP) pooling, fractional max pooling, and max unpooling.

* Adaptive pooling (1/2/3-d) splits each input side L into ``out`` windows
  [floor(i L / out), ceil((i + 1) L / out)), which may overlap and differ in length by one.
  The average is separable (a matrix per dimension, held by its few nonzeros per row:
  ``references._separable``); the maximum too, one dimension at a time (a gather of every
  window, padded to the longest with -inf, and an argmax).
* LP pooling is (sum over a sliding window of x^p)^(1/p) (``references.conv``'s windows).
* Fractional max pooling (Graham, "Fractional Max-Pooling", arXiv:1412.6071) places windows of
  a fixed size at pseudo-random steps of 1 or 2 drawn from one sample u in [0, 1) per plane and
  dimension; torch takes the samples as ``_random_samples``, so the reference uses the same.
* Max unpooling scatters values to the flat indices max pooling returned.

Every max here gives each window's gradient to its first maximum in row-major window order
(torch's CPU kernels keep a value only if it is greater, ``val > maxval``).

Follows https://pytorch.org/docs/stable/generated/torch.nn.AdaptiveMaxPool2d.html,
https://pytorch.org/docs/stable/generated/torch.nn.AdaptiveAvgPool2d.html,
https://pytorch.org/docs/stable/generated/torch.nn.LPPool2d.html,
https://pytorch.org/docs/stable/generated/torch.nn.FractionalMaxPool2d.html,
https://pytorch.org/docs/stable/generated/torch.nn.MaxUnpool2d.html (and their 1-d and 3-d
pages).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from references import _separable
from references.conv import (
    _crop,
    _Pool,
    _pool_setup,
    _scatter_to,
    _tuple,
    _window_offsets,
    _windows,
    _windows_vjp,
)

Array = NDArray[np.float64]
Index = NDArray[np.int64]
IntOrTuple = int | Sequence[int]
OutputSize = int | None | Sequence[int | None]


def _batched(input: Array, d: int) -> tuple[Array, bool]:
    x = np.asarray(input, dtype=np.float64)
    return (x[None], True) if x.ndim == d + 1 else (x, False)


# --- the maximum over boxes of any start and length ------------------------------------------


def _gather(a: Any, pos: Index, axis: int) -> Any:
    """``a`` (N, C, ...) (or (1, 1, ...), the same in every plane) at positions ``pos`` along
    ``axis``: (out,), the same in every plane, or (N, C, out), per plane."""
    if pos.ndim == 1:
        return np.take(a, pos, axis=axis)
    n, c, out = pos.shape
    a = np.broadcast_to(a, (n, c, *a.shape[2:]))
    pre, side, post = math.prod(a.shape[2:axis]), a.shape[axis], math.prod(a.shape[axis + 1:])
    planes = np.arange(n * c)[:, None]
    rows = np.reshape(a, (n * c, pre, side, post))[planes, :, pos.reshape(n * c, out)]
    # the plane's and the position's indices come first, (N C, out, pre, post): put out back
    return np.moveaxis(rows, 1, 2).reshape(*a.shape[:axis], out, *a.shape[axis + 1:])


def _max_along(values: Array, flat: Index | None, axis: int, starts: Index, lengths: Index
               ) -> tuple[Array, Index | None]:
    """Along ``axis`` of (N, C, ...): each window [start_o, start_o + length_o)'s maximum and
    ``flat`` (the same shape, or (1, 1, ...)) at its first maximum (None: the maximum alone).
    ``starts`` (out,) or, for windows placed per plane, (N, C, out).

    The running maximum over the windows' k-th positions, k = 0, 1, ..: a position replaces the
    maximum only if it is greater, or NaN where the maximum is not (so the first maximum, the
    first NaN, is kept: ``np.argmax``'s rule, torch's ``val > maxval``). A window shorter than
    k reads its last position again, which replaces nothing."""
    z, index = values, flat
    for k in range(int(np.max(lengths, initial=1))):
        pos = np.asarray(starts) + np.minimum(k, np.asarray(lengths) - 1)  # (out,), (N, C, out)
        v = _gather(values, pos, axis)
        if k == 0:
            z, index = v, None if flat is None else _gather(flat, pos, axis)
            continue
        bigger = np.maximum(z, v)  # NaN if either is
        if flat is not None:
            replaced = (bigger != z) & (z == z)  # v > z, or v NaN and z not
            index = np.asarray(np.where(replaced, _gather(flat, pos, axis), index), np.int64)
        z = bigger
    return z, index


def _box_max(x: Array, starts: Sequence[Index], lengths: Sequence[Index], indices: bool
             ) -> tuple[Array, Index | None]:
    """The maximum of ``x`` (N, C, *sides) over every box (the product of window o_i along each
    spatial dimension i, :func:`_max_along`'s starts and lengths), and (if ``indices``) the
    flat index in its (n, c) plane of the box's first maximum in row-major order.

    Separable: the box maximum is the maximum over the last dimension's windows, then over
    the one before, and so on; and the first maximum in row-major order is, among the rows
    (the earlier coordinates) holding the maximum, the first one's first maximum along the
    last dimension, so carrying each partial maximum's flat index through the reductions
    finds it.
    """
    sides = x.shape[2:]
    z: Array = x
    # the same in every plane: (1, 1, *sides) until a reduction picks per plane
    flat = np.arange(math.prod(sides)).reshape(1, 1, *sides) if indices else None
    for i in reversed(range(len(sides))):
        z, flat = _max_along(z, flat, 2 + i, starts[i], lengths[i])
    return z, None if flat is None else np.ascontiguousarray(np.broadcast_to(flat, z.shape))


# --- adaptive pooling ----------------------------------------------------------------------


def _adaptive_sizes(output_size: OutputSize, sides: Sequence[int]) -> tuple[int, ...]:
    """``output_size`` per dimension; None keeps the input's side (torch's docs)."""
    d = len(sides)
    sizes = [output_size] * d if output_size is None or isinstance(output_size, int) \
        else list(output_size)
    return tuple(int(n) if o is None else int(o) for o, n in zip(sizes, sides, strict=True))


def _adaptive_bounds(size: int, out: int) -> tuple[Index, Index]:
    """Window i of an adaptive pooling: [floor(i L / out), ceil((i + 1) L / out))."""
    i = np.arange(out)
    start = (i * size) // out
    end = -((-(i + 1) * size) // out)
    return start.astype(np.int64), (end - start).astype(np.int64)


def _adaptive_avg_taps(size: int, out: int) -> _separable.Taps:
    """A[i, j] = 1 / |window i| for j in window i: the mean over each adaptive window, as the
    taps start_i + k, k < |window i| (``references._separable``)."""
    start, length = _adaptive_bounds(size, out)
    k = np.arange(int(length.max(initial=1)))
    inside = k[None, :] < length[:, None]
    return _separable.taps(start[:, None] + k, inside / length[:, None], size)


def _adaptive_avg(input: Array, output_size: OutputSize, d: int) -> Array:
    x = np.asarray(input, dtype=np.float64)
    out = _adaptive_sizes(output_size, x.shape[-d:])
    return _separable.apply(x, [_adaptive_avg_taps(n, o)
                                for n, o in zip(x.shape[-d:], out, strict=True)])


def _adaptive_avg_vjp(g: Array, input: Array, output_size: OutputSize,
                      d: int) -> dict[str, Array]:
    sides = np.shape(input)[-d:]
    out = _adaptive_sizes(output_size, sides)
    return {"input": _separable.apply_vjp(g, [_adaptive_avg_taps(n, o)
                                              for n, o in zip(sides, out, strict=True)])}


def adaptive_avg_pool1d(input: Array, output_size: OutputSize) -> Array:
    r"""z[n, c, i] = mean of x[n, c, j] over j in [floor(i L / O), ceil((i + 1) L / O)).

    Shapes: ``input`` (N, C, L) or (C, L); the result's last side is ``output_size`` O.
    Windows overlap by at most one element when O does not divide L, and differ in length by at
    most one; each is averaged over its own length. Linear: z = A x along the last dimension
    with A[i, j] = 1 / |window i| on the window (see :func:`adaptive_avg_pool2d_vjp`)
    (https://pytorch.org/docs/stable/generated/torch.nn.AdaptiveAvgPool1d.html).
    """
    return _adaptive_avg(input, output_size, 1)


def adaptive_avg_pool1d_vjp(g: Array, input: Array, output_size: OutputSize
                            ) -> dict[str, Array]:
    r"""VJP of :func:`adaptive_avg_pool1d`: dL/dx = A^T g, every element of window i receiving
    g[i] / |window i|."""
    return _adaptive_avg_vjp(g, input, output_size, 1)


def adaptive_avg_pool2d(input: Array, output_size: OutputSize) -> Array:
    r"""z[n, c, i, j] = mean of x[n, c] over the box H-window i x W-window j, each window as in
    :func:`adaptive_avg_pool1d` along its dimension.

    Shapes: ``input`` (N, C, H, W) or (C, H, W); ``output_size`` an int, a pair, or a pair with
    None for a side kept as it is. The mean over a box is the product of the per-dimension
    means, so z = A_H x A_W^T (``references._separable``)
    (https://pytorch.org/docs/stable/generated/torch.nn.AdaptiveAvgPool2d.html).
    """
    return _adaptive_avg(input, output_size, 2)


def adaptive_avg_pool2d_vjp(g: Array, input: Array, output_size: OutputSize
                            ) -> dict[str, Array]:
    r"""VJP of :func:`adaptive_avg_pool2d`: dL/dx = A_H^T g A_W, i.e.

        dL/dx[n, c, p, q] = sum over boxes (i, j) containing (p, q) of g[n, c, i, j] / |box|
    """
    return _adaptive_avg_vjp(g, input, output_size, 2)


def adaptive_avg_pool3d(input: Array, output_size: OutputSize) -> Array:
    r"""The mean over adaptive boxes in three spatial dimensions: :func:`adaptive_avg_pool2d`
    with ``input`` (N, C, D, H, W) or (C, D, H, W)
    (https://pytorch.org/docs/stable/generated/torch.nn.AdaptiveAvgPool3d.html)."""
    return _adaptive_avg(input, output_size, 3)


def adaptive_avg_pool3d_vjp(g: Array, input: Array, output_size: OutputSize
                            ) -> dict[str, Array]:
    r"""VJP of :func:`adaptive_avg_pool3d`: each element of a box receives g / |box|."""
    return _adaptive_avg_vjp(g, input, output_size, 3)


def _adaptive_max_parts(input: Array, output_size: OutputSize, d: int, indices: bool = True
                        ) -> tuple[Array, Index | None, bool]:
    x, unbatched = _batched(input, d)
    out = _adaptive_sizes(output_size, x.shape[2:])
    bounds = [_adaptive_bounds(n, o) for n, o in zip(x.shape[2:], out, strict=True)]
    z, flat = _box_max(x, [b[0] for b in bounds], [b[1] for b in bounds], indices)
    return z, flat, unbatched


def _adaptive_max(input: Array, output_size: OutputSize, d: int) -> Array:
    z, _, unbatched = _adaptive_max_parts(input, output_size, d, indices=False)
    return z[0] if unbatched else z


def _adaptive_max_vjp(g: Array, input: Array, output_size: OutputSize,
                      d: int) -> dict[str, Array]:
    _, indices, unbatched = _adaptive_max_parts(input, output_size, d)
    assert indices is not None
    x, _ = _batched(input, d)
    gx = _scatter_to(np.reshape(g, indices.shape), indices, x.shape)
    return {"input": gx[0] if unbatched else gx}


def adaptive_max_pool1d(input: Array, output_size: OutputSize) -> Array:
    r"""z[n, c, i] = max of x[n, c, j] over j in [floor(i L / O), ceil((i + 1) L / O)) (the
    windows of :func:`adaptive_avg_pool1d`). Shapes: ``input`` (N, C, L) or (C, L)
    (https://pytorch.org/docs/stable/generated/torch.nn.AdaptiveMaxPool1d.html)."""
    return _adaptive_max(input, output_size, 1)


def adaptive_max_pool1d_vjp(g: Array, input: Array, output_size: OutputSize
                            ) -> dict[str, Array]:
    r"""VJP of :func:`adaptive_max_pool1d`: each window's g goes to its first argmax; an element
    that is the argmax of two overlapping windows receives both."""
    return _adaptive_max_vjp(g, input, output_size, 1)


def adaptive_max_pool2d(input: Array, output_size: OutputSize) -> Array:
    r"""z[n, c, i, j] = max of x[n, c] over the box H-window i x W-window j (the windows of
    :func:`adaptive_avg_pool2d`). Shapes: ``input`` (N, C, H, W) or (C, H, W); ``output_size``
    an int, a pair, or a pair with None for a side kept as it is
    (https://pytorch.org/docs/stable/generated/torch.nn.AdaptiveMaxPool2d.html)."""
    return _adaptive_max(input, output_size, 2)


def adaptive_max_pool2d_vjp(g: Array, input: Array, output_size: OutputSize
                            ) -> dict[str, Array]:
    r"""VJP of :func:`adaptive_max_pool2d`:

        dL/dx[n, c, p] = sum over boxes whose (first, row-major) argmax is p of g[n, c, box]
    """
    return _adaptive_max_vjp(g, input, output_size, 2)


def adaptive_max_pool3d(input: Array, output_size: OutputSize) -> Array:
    r"""The maximum over adaptive boxes in three spatial dimensions: :func:`adaptive_max_pool2d`
    with ``input`` (N, C, D, H, W) or (C, D, H, W)
    (https://pytorch.org/docs/stable/generated/torch.nn.AdaptiveMaxPool3d.html)."""
    return _adaptive_max(input, output_size, 3)


def adaptive_max_pool3d_vjp(g: Array, input: Array, output_size: OutputSize
                            ) -> dict[str, Array]:
    r"""VJP of :func:`adaptive_max_pool3d`: each box's g goes to its first argmax."""
    return _adaptive_max_vjp(g, input, output_size, 3)


def adaptive_max_pool_indices(input: Array, output_size: OutputSize, dims: int) -> Index:
    r"""What ``adaptive_max_pool{dims}d(..., return_indices=True)`` returns beside the values:
    the flat index (row-major over the spatial dimensions of its plane) of each window's first
    argmax. Not differentiable: tests/test_pooling.py compares torch's indices with these."""
    _, indices, unbatched = _adaptive_max_parts(input, output_size, dims)
    assert indices is not None
    return indices[0] if unbatched else indices


# --- LP pooling ----------------------------------------------------------------------------


def _lp_setup(input: Array, d: int, kernel_size: IntOrTuple, stride: IntOrTuple | None,
              ceil_mode: bool) -> _Pool:
    """LP pooling's geometry: no padding but the ceil-mode overhang, filled with 0 (x^p = 0
    there adds nothing to a window's sum)."""
    return _pool_setup(input, d, kernel_size, stride, 0, 1, ceil_mode, 0.0)


def _lp_windows(pool: _Pool) -> Array:
    return _windows(pool.xp, pool.kernel, pool.stride, pool.dilation, pool.out)


def _in_range(s: Array) -> NDArray[np.bool_]:
    """Where a window's S = sum x^p is a normal float64 number: there the unscaled forms of
    :func:`_lp_norm` hold."""
    return np.isfinite(s) & (np.abs(s) >= np.finfo(np.float64).tiny)


def _lp_pool(input: Array, d: int, norm_type: float, kernel_size: IntOrTuple,
             stride: IntOrTuple | None, ceil_mode: bool) -> Array:
    p = float(norm_type)
    pool = _lp_setup(input, d, kernel_size, stride, ceil_mode)
    s = _lp_plain(pool, p)
    if s is not None:
        z = s ** (1.0 / p)
        return z[0] if pool.unbatched else z
    w = _lp_windows(pool)
    axes = tuple(range(2, 2 + d))
    if math.isinf(p):
        z = np.max(np.abs(w), axis=axes) if p > 0 else np.min(
            np.where(_inside(pool, d), np.abs(w), np.inf), axis=axes)
    else:
        z = np.squeeze(_lp_norm(w, p, axes, derivative=False)[0], axis=axes)
    return z[0] if pool.unbatched else z


def _lp_plain(pool: _Pool, p: float) -> Array | None:
    """For a finite p, each window's S = sum x^p (shape (N, C, *out)), summed one window
    offset at a time (:func:`_window_offsets`, no windows built), where every S is a normal
    float64 number (:func:`_in_range`). None where p is infinite or some S under- or
    overflows (the windowed forms then)."""
    if math.isinf(p):
        return None
    offsets = _window_offsets(pool)
    s = next(offsets)[2] ** p
    for _, _, v in offsets:
        s += v**p
    return s if _in_range(s).all() else None


def _lp_norm(w: Array, p: float, axes: tuple[int, ...],
             derivative: bool = True) -> tuple[Array, Array | None]:
    r"""Each window's z = S^(1/p) (keepdims) and (if ``derivative``) dz/dw = w^(p-1) z^(1-p),
    for finite p > 0: unscaled where S = sum w^p is a normal float64 number (or the window is
    all zeros), so an element of the window far below the others keeps its own w^(p-1)
    exactly; scaled by a power of two (:func:`_lp_scaled`: z = m T^(1/p), dz/dw = (w / m)^(p-1)
    T^(1/p - 1), the derivative homogeneous of degree 0) where S under- or overflows float64.
    (Where every window's S is in range, :func:`_lp_plain` gives S without the windows.)"""
    s = np.sum(np.power(w, p), axis=axes, keepdims=True)
    m, t = _lp_scaled(w, p, axes)
    zeros = np.max(np.abs(w), axis=axes, keepdims=True) == 0
    plain = zeros | _in_range(s)
    z = np.where(plain, np.power(s, 1.0 / p), m * np.power(t, 1.0 / p))
    if not derivative:
        return z, None
    dz = np.where(plain, np.power(w, p - 1.0) * np.power(z, 1.0 - p),
                  np.power(w / m, p - 1.0) * np.power(t, 1.0 / p - 1.0))
    return z, dz


def _lp_scaled(w: Array, p: float, axes: tuple[int, ...]) -> tuple[Array, Array]:
    r"""Each window's scale m, the power of two with max |w| in [m / 2, m) (1 for a window of
    zeros), and scaled sum T = sum (w / m)^p, with keepdims: S = sum w^p = m^p T, and
    z = S^(1/p) = m T^(1/p).

    The terms (w / m)^p have |.| < 1 and the largest is at least 2^-p, so T lies in [2^-p, k]
    for even or nonnegative terms (k the window's size) and neither T nor m T^(1/p) under- or
    overflows where the p-norm itself is a float64 number; summing w^p unscaled loses S (0 or
    inf) for |w| beyond ~1e-154 or ~1e154 at p = 2 (LAPACK's nrm2 scales so). Dividing by a
    power of two is exact, so where the unscaled sum is in range T is it times m^-p, and a
    p = 1 window summing to exactly 0 still gives exactly 0. The signs are those of w^p: w / m
    has w's sign, so p = 1 sums signed values and a non-integer p of a negative w is NaN, as
    unscaled. A window of zeros keeps S = 0: T = 0, z = 0."""
    _, e = np.frexp(np.max(np.abs(w), axis=axes, keepdims=True))
    m = np.ldexp(1.0, e)
    return m, np.sum(np.power(w / m, p), axis=axes, keepdims=True)


def _inside(pool: _Pool, d: int) -> Array:
    """True for window elements inside the input (not the ceil-mode overhang)."""
    inside = np.zeros((1, 1, *pool.xp.shape[2:]), dtype=bool)
    box: tuple[Any, ...] = (..., *(slice(lo, n - hi) for (lo, hi), n in
                                   zip(pool.pads, pool.xp.shape[2:], strict=True)))
    inside[box] = True
    return _windows(inside, pool.kernel, pool.stride, pool.dilation, pool.out)


def _lp_pool_vjp(g: Array, input: Array, d: int, norm_type: float, kernel_size: IntOrTuple,
                 stride: IntOrTuple | None, ceil_mode: bool) -> dict[str, Array]:
    p = float(norm_type)
    pool = _lp_setup(input, d, kernel_size, stride, ceil_mode)
    s = _lp_plain(pool, p)
    if s is not None:  # dL/dx += g dz/dx = g x^(p-1) z^(1-p), one window offset at a time
        z_1p = (s ** (1.0 / p)) ** (1.0 - p)
        g_z = np.reshape(g, s.shape)
        gxp = np.zeros(pool.xp.shape)
        for _, source, v in _window_offsets(pool):
            gxp[source] += g_z * (v ** (p - 1.0) * z_1p)
        gx = _crop(gxp, pool.pads, np.shape(input)[-d:])
        return {"input": gx[0] if pool.unbatched else gx}
    w = _lp_windows(pool)
    axes = tuple(range(2, 2 + d))
    gz = np.reshape(g, (*w.shape[:2], *(1,) * d, *pool.out))
    if math.isinf(p):
        a = np.abs(w) if p > 0 else -np.where(_inside(pool, d), np.abs(w), np.inf)
        flat = a.reshape(*w.shape[:2], -1, *pool.out)
        onehot = (np.arange(flat.shape[2]).reshape(-1, *(1,) * d)
                  == np.argmax(flat, axis=2)[:, :, None]).reshape(w.shape)
        gw = gz * onehot * np.sign(w)
    else:
        dz = _lp_norm(w, p, axes)[1]
        assert dz is not None
        gw = gz * dz
    gx = _crop(_windows_vjp(gw, pool.xp.shape, pool.kernel, pool.stride, pool.dilation),
               pool.pads, np.shape(input)[-d:])
    return {"input": gx[0] if pool.unbatched else gx}


def lp_pool1d(input: Array, norm_type: float, kernel_size: int,
              stride: IntOrTuple | None = None, ceil_mode: bool = False) -> Array:
    r"""z[n, c, t] = (sum_k x[n, c, t s + k]^p)^(1/p) over each window (no padding; stride
    defaults to the kernel): :func:`lp_pool2d` with one spatial dimension. Shapes: ``input``
    (N, C, L) or (C, L) (https://pytorch.org/docs/stable/generated/torch.nn.LPPool1d.html)."""
    return _lp_pool(input, 1, norm_type, kernel_size, stride, ceil_mode)


def lp_pool1d_vjp(g: Array, input: Array, norm_type: float, kernel_size: int,
                  stride: IntOrTuple | None = None, ceil_mode: bool = False
                  ) -> dict[str, Array]:
    r"""VJP of :func:`lp_pool1d`; the formula of :func:`lp_pool2d_vjp`."""
    return _lp_pool_vjp(g, input, 1, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input: Array, norm_type: float, kernel_size: IntOrTuple,
              stride: IntOrTuple | None = None, ceil_mode: bool = False) -> Array:
    r"""Power-average pooling, the p-norm of each window:

        z[n, c, y, x] = (sum_{i, j} x[n, c, y s_h + i, x s_w + j]^p)^(1/p)

    (torch's LPPool2d docs: f(X) = (sum_{x in X} x^p)^(1/p); p = 1 is sum pooling, p = inf max
    pooling of |x|, which torch computes as max_pool2d(|x|); p = -inf, which F.lp_pool2d also
    accepts, the minimum of |x|). No padding; ``stride`` defaults to ``kernel_size``; with
    ``ceil_mode`` a last window that overhangs the input sums the elements inside it (torch
    differs there: it scales such a window's sum by kH kW / inside, KNOWN_DIFFERENCES.md; the
    input makers draw no such windows and tests/test_pooling.py shows the difference). Shapes:
    ``input`` (N, C, H, W) or (C, H, W). For a non-integer p (or p = 3) x^p needs x >= 0
    (torch gives NaN otherwise), so negative inputs are only meaningful for p in {1, 2}.
    """
    return _lp_pool(input, 2, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d_vjp(g: Array, input: Array, norm_type: float, kernel_size: IntOrTuple,
                  stride: IntOrTuple | None = None, ceil_mode: bool = False
                  ) -> dict[str, Array]:
    r"""VJP of :func:`lp_pool2d`: with S = sum over the window of x^p and z = S^(1/p),

        dz/dx = (1/p) S^(1/p - 1) p x^(p - 1) = x^(p - 1) z^(1 - p)

    so dL/dx sums g z^(1 - p) x^(p - 1) over the windows containing x (col2im). For p = inf
    the gradient is g sign(x) at each window's first argmax of |x| (for p = -inf its first
    argmin). Differentiable where S > 0 (the drawn inputs keep every window's S away from 0).

    Forward and VJP are evaluated scaled by a power of two m ~ max |x| per window (p > 0):
    with T = sum (x / m)^p, z = m T^(1/p) and x^(p - 1) z^(1 - p) = (x / m)^(p - 1)
    T^(1/p - 1), so S = m^p T is never formed and a representable p-norm of subnormal or
    huge inputs keeps its value and its O(1) derivative in float64 (``_lp_scaled``).
    """
    return _lp_pool_vjp(g, input, 2, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input: Array, norm_type: float, kernel_size: IntOrTuple,
              stride: IntOrTuple | None = None, ceil_mode: bool = False) -> Array:
    r"""The p-norm of each window in three spatial dimensions: :func:`lp_pool2d` with
    ``input`` (N, C, D, H, W) or (C, D, H, W)
    (https://pytorch.org/docs/stable/generated/torch.nn.LPPool3d.html)."""
    return _lp_pool(input, 3, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d_vjp(g: Array, input: Array, norm_type: float, kernel_size: IntOrTuple,
                  stride: IntOrTuple | None = None, ceil_mode: bool = False
                  ) -> dict[str, Array]:
    r"""VJP of :func:`lp_pool3d`; the formula of :func:`lp_pool2d_vjp`."""
    return _lp_pool_vjp(g, input, 3, norm_type, kernel_size, stride, ceil_mode)


# --- fractional max pooling ----------------------------------------------------------------


def _fractional_starts(sample: Array, size: int, out: int, kernel: int) -> Index:
    r"""Where the ``out`` windows of fractional max pooling start along a side of ``size``
    for samples u (any shape; the starts get a last axis of ``out``):

        alpha = (size - kernel) / (out - 1)
        start[i] = floor((i + u) alpha) - floor(u alpha),   i = 0 .. out - 2
        start[out - 1] = size - kernel

    so consecutive starts differ by floor(alpha) or floor(alpha) + 1, the first window starts
    at 0 and the last ends at the input's end (Graham's pseudo-random overlapping sequence, as
    torch's kernel generates it from ``_random_samples``).
    """
    u = np.asarray(sample, dtype=np.float64)[..., None]
    i = np.arange(out - 1)
    alpha = (size - kernel) / (out - 1) if out > 1 else 0.0
    inner = np.floor((i + u) * alpha) - np.floor(u * alpha)
    last = np.full((*u.shape[:-1], 1), size - kernel)
    return np.concatenate([inner, last], axis=-1).astype(np.int64)


def _fractional_parts(input: Array, d: int, kernel_size: IntOrTuple,
                      output_size: IntOrTuple | None, output_ratio: float | Sequence[float] | None,
                      samples: Array, indices: bool = True
                      ) -> tuple[Array, Index | None, bool]:
    x, unbatched = _batched(input, d)
    sides = x.shape[2:]
    k = _tuple(kernel_size, d)
    if output_size is not None:
        out = _tuple(output_size, d)
    else:
        assert output_ratio is not None, "fractional max pooling needs output_size or _ratio"
        ratios = (output_ratio,) * d if isinstance(output_ratio, float | int) \
            else tuple(output_ratio)
        out = tuple(int(n * r) for n, r in zip(sides, ratios, strict=True))
    u = np.reshape(samples, (x.shape[0], x.shape[1], d))
    # which sample places which dimension: 2-d (height, width) read samples (1, 0), 3-d
    # (depth, height, width) read (0, 1, 2) -- torch's CPU kernels, measured on 2.13.0
    order = (1, 0) if d == 2 else tuple(range(d))
    starts = [_fractional_starts(u[:, :, order[i]], sides[i], out[i], k[i]) for i in range(d)]
    lengths = [np.full(o, ki, dtype=np.int64) for o, ki in zip(out, k, strict=True)]
    z, flat = _box_max(x, starts, lengths, indices)
    return z, flat, unbatched


def _fractional(input: Array, d: int, kernel_size: IntOrTuple, output_size: IntOrTuple | None,
                output_ratio: float | Sequence[float] | None, samples: Array) -> Array:
    z, _, unbatched = _fractional_parts(input, d, kernel_size, output_size, output_ratio,
                                        samples, indices=False)
    return z[0] if unbatched else z


def _fractional_vjp(g: Array, input: Array, d: int, kernel_size: IntOrTuple,
                    output_size: IntOrTuple | None, output_ratio: float | Sequence[float] | None,
                    samples: Array) -> dict[str, Array]:
    _, indices, unbatched = _fractional_parts(input, d, kernel_size, output_size, output_ratio,
                                              samples)
    assert indices is not None
    x, _ = _batched(input, d)
    gx = _scatter_to(np.reshape(g, indices.shape), indices, x.shape)
    return {"input": gx[0] if unbatched else gx}


def fractional_max_pool2d(input: Array, kernel_size: IntOrTuple,
                          output_size: IntOrTuple | None = None,
                          output_ratio: float | Sequence[float] | None = None,
                          _random_samples: Array | None = None) -> Array:
    r"""z[n, c, i, j] = max of x[n, c] over the kH x kW box starting at
    (start_H[n, c, i], start_W[n, c, j]), the starts from :func:`fractional_starts` with
    u = ``_random_samples[n, c, 1]`` for the height and ``_random_samples[n, c, 0]`` for the
    width (torch's kernel reads them in that order: the last spatial dimension first).

    Shapes: ``input`` (N, C, H, W) or (C, H, W); ``_random_samples`` (N, C, 2) in [0, 1) (N = 1
    for an unbatched input); output sides ``output_size``, or int(side * ``output_ratio``)
    (https://pytorch.org/docs/stable/generated/torch.nn.FractionalMaxPool2d.html).
    """
    assert _random_samples is not None, "the reference needs torch's _random_samples"
    return _fractional(input, 2, kernel_size, output_size, output_ratio, _random_samples)


def fractional_max_pool2d_vjp(g: Array, input: Array, kernel_size: IntOrTuple,
                              output_size: IntOrTuple | None = None,
                              output_ratio: float | Sequence[float] | None = None,
                              _random_samples: Array | None = None) -> dict[str, Array]:
    r"""VJP of :func:`fractional_max_pool2d` w.r.t. ``input`` (the samples only place the
    windows: their gradient is zero almost everywhere, and torch gives none): each box's g goes
    to its first argmax; boxes overlap, so an element may receive several."""
    assert _random_samples is not None, "the reference needs torch's _random_samples"
    return _fractional_vjp(g, input, 2, kernel_size, output_size, output_ratio,
                           _random_samples)


def fractional_max_pool3d(input: Array, kernel_size: IntOrTuple,
                          output_size: IntOrTuple | None = None,
                          output_ratio: float | Sequence[float] | None = None,
                          _random_samples: Array | None = None) -> Array:
    r"""Fractional max pooling in three spatial dimensions: :func:`fractional_max_pool2d` with
    ``input`` (N, C, D, H, W) or (C, D, H, W) and ``_random_samples`` (N, C, 3), the depth
    reading sample 0, the height sample 1 and the width sample 2 (in order, unlike the 2-d
    kernel; torch.compile's lowering reads them reversed, KNOWN_DIFFERENCES.md)
    (https://pytorch.org/docs/stable/generated/torch.nn.FractionalMaxPool3d.html)."""
    assert _random_samples is not None, "the reference needs torch's _random_samples"
    return _fractional(input, 3, kernel_size, output_size, output_ratio, _random_samples)


def fractional_max_pool3d_vjp(g: Array, input: Array, kernel_size: IntOrTuple,
                              output_size: IntOrTuple | None = None,
                              output_ratio: float | Sequence[float] | None = None,
                              _random_samples: Array | None = None) -> dict[str, Array]:
    r"""VJP of :func:`fractional_max_pool3d` w.r.t. ``input``: each box's g goes to its first
    argmax."""
    assert _random_samples is not None, "the reference needs torch's _random_samples"
    return _fractional_vjp(g, input, 3, kernel_size, output_size, output_ratio,
                           _random_samples)


# --- max unpooling -------------------------------------------------------------------------


def _unpool_sides(input: Array, d: int, kernel_size: IntOrTuple, stride: IntOrTuple | None,
                  padding: IntOrTuple, output_size: Sequence[int] | None) -> tuple[int, ...]:
    """The output's spatial sides: ``output_size`` (its last d entries), or by default
    (L - 1) s - 2 p + k per dimension, the input size a max pooling with these options maps to
    L."""
    if output_size is not None:
        return tuple(int(n) for n in list(output_size)[-d:])
    k = _tuple(kernel_size, d)
    s = k if stride is None else _tuple(stride, d)
    p = _tuple(padding, d)
    return tuple((n - 1) * si - 2 * pi + ki
                 for n, ki, si, pi in zip(np.shape(input)[-d:], k, s, p, strict=True))


def _keys(indices: Index, n: int, c: int, plane: int) -> Index:
    """Each index of (N, C, m) ``indices`` as a position in the flattened (N, C, plane) output:
    its plane's offset plus the index in the plane."""
    return (np.reshape(indices, (n * c, -1)) + plane * np.arange(n * c)[:, None]).ravel()


def _max_unpool(input: Array, indices: Index, d: int, kernel_size: IntOrTuple,
                stride: IntOrTuple | None, padding: IntOrTuple,
                output_size: Sequence[int] | None) -> Array:
    x, unbatched = _batched(input, d)
    sides = _unpool_sides(input, d, kernel_size, stride, padding, output_size)
    n, c = x.shape[:2]
    z = np.zeros(n * c * math.prod(sides))
    # a sequential scatter: where an index repeats, the last value written stays (NumPy's
    # assignment through repeated indices writes in order, as np.put_along_axis did here
    # before; max_unpool's repeated-index test in tests/test_pooling.py compares with torch)
    z[_keys(indices, n, c, math.prod(sides))] = x.ravel()
    z = z.reshape(n, c, *sides)
    return z[0] if unbatched else z


def _last_writes(keys: Index) -> NDArray[np.bool_]:
    """True where a key is the last occurrence of its value (the one whose value a sequential
    scatter leaves in the output): the largest position writing each key, ``np.maximum.at``."""
    position = np.arange(keys.size)
    last = np.full(int(keys.max(initial=0)) + 1, -1)
    np.maximum.at(last, keys, position)
    return last[keys] == position


def _max_unpool_vjp(g: Array, input: Array, indices: Index, d: int, kernel_size: IntOrTuple,
                    stride: IntOrTuple | None, padding: IntOrTuple,
                    output_size: Sequence[int] | None, gradient: str) -> dict[str, Array]:
    x, _ = _batched(input, d)
    n, c = x.shape[:2]
    keys = _keys(indices, n, c, math.prod(np.shape(g)[-d:]))
    gx = np.ravel(g)[keys]
    if gradient == "derivative":
        gx = np.where(_last_writes(keys), gx, 0.0)
    else:
        assert gradient == "torch", f"unknown gradient convention {gradient!r}"
    return {"input": gx.reshape(np.shape(input))}


def max_unpool1d(input: Array, indices: Index, kernel_size: IntOrTuple,
                 stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                 output_size: Sequence[int] | None = None) -> Array:
    r"""The partial inverse of max pooling: zeros, with each value written at its index,

        z[n, c, indices[n, c, t]] = x[n, c, t],   every other z = 0

    Shapes: ``input`` and ``indices`` (N, C, L) or (C, L) (what ``max_pool1d(...,
    return_indices=True)`` returns); the output side is ``output_size`` or (L - 1) s - 2 p + k.
    An index repeated (overlapping pooling windows with the same argmax) carries the same
    value twice (https://pytorch.org/docs/stable/generated/torch.nn.MaxUnpool1d.html).
    """
    return _max_unpool(input, indices, 1, kernel_size, stride, padding, output_size)


def max_unpool1d_vjp(g: Array, input: Array, indices: Index, kernel_size: IntOrTuple,
                     stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                     output_size: Sequence[int] | None = None,
                     gradient: str = "derivative") -> dict[str, Array]:
    r"""VJP of :func:`max_unpool1d` w.r.t. ``input``: the adjoint of a scatter is a gather,

        dL/dx[n, c, t] = g[n, c, indices[n, c, t]]

    for an index that occurs once. Where an index repeats (overlapping pooling windows sharing
    their maximum) the forward keeps one value, the last written in row-major order, so the
    derivative (``gradient="derivative"``) gives g there only to that last copy and 0 to the
    others. torch's backward gathers g for every copy (``gradient="torch"``), which is not the
    derivative of its forward: the gradient of max_unpool(max_pool(x)) counts a maximum shared
    by k windows k times (KNOWN_DIFFERENCES.md).
    """
    return _max_unpool_vjp(g, input, indices, 1, kernel_size, stride, padding, output_size,
                           gradient)


def max_unpool2d(input: Array, indices: Index, kernel_size: IntOrTuple,
                 stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                 output_size: Sequence[int] | None = None) -> Array:
    r"""z[n, c, flat index indices[n, c, y, x] of the (H_out, W_out) plane] = x[n, c, y, x],
    zeros elsewhere: :func:`max_unpool1d` with flat indices over two spatial dimensions,
    H_out, W_out = ``output_size`` or (H - 1) s - 2 p + k each
    (https://pytorch.org/docs/stable/generated/torch.nn.MaxUnpool2d.html)."""
    return _max_unpool(input, indices, 2, kernel_size, stride, padding, output_size)


def max_unpool2d_vjp(g: Array, input: Array, indices: Index, kernel_size: IntOrTuple,
                     stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                     output_size: Sequence[int] | None = None,
                     gradient: str = "derivative") -> dict[str, Array]:
    r"""VJP of :func:`max_unpool2d`: dL/dx[n, c, y, x] = g[n, c, at flat index
    indices[n, c, y, x]], repeated indices as in :func:`max_unpool1d_vjp`."""
    return _max_unpool_vjp(g, input, indices, 2, kernel_size, stride, padding, output_size,
                           gradient)


def max_unpool3d(input: Array, indices: Index, kernel_size: IntOrTuple,
                 stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                 output_size: Sequence[int] | None = None) -> Array:
    r""":func:`max_unpool2d` with three spatial dimensions (flat indices over the
    (D_out, H_out, W_out) plane)
    (https://pytorch.org/docs/stable/generated/torch.nn.MaxUnpool3d.html)."""
    return _max_unpool(input, indices, 3, kernel_size, stride, padding, output_size)


def max_unpool3d_vjp(g: Array, input: Array, indices: Index, kernel_size: IntOrTuple,
                     stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                     output_size: Sequence[int] | None = None,
                     gradient: str = "derivative") -> dict[str, Array]:
    r"""VJP of :func:`max_unpool3d`: the gather of g at the indices, repeated indices as in
    :func:`max_unpool1d_vjp`."""
    return _max_unpool_vjp(g, input, indices, 3, kernel_size, stride, padding, output_size,
                           gradient)
