r"""Convolution and pooling, NumPy float64, written with explicit sliding windows.

Every op here reads its input through windows: for kernel offset ``k`` (one index per spatial
dimension) and output position ``o``, the window element is ``x_pad[o * stride + k * dilation]``
of the padded input. :func:`_windows` gathers them into an array of shape
``(..., *kernel, *out)`` (im2col); the VJP of that gather, :func:`_windows_vjp`, scatter-adds a
gradient of the same shape back onto the padded input (col2im). Convolution is then one einsum
over (channel, kernel offset); pooling a max or a mean over the kernel axes.

Follows ``torch.nn.functional.conv1d`` / ``conv2d`` / ``max_pool2d`` / ``avg_pool2d``
(https://pytorch.org/docs/stable/generated/torch.nn.Conv2d.html,
https://pytorch.org/docs/stable/generated/torch.nn.MaxPool2d.html,
https://pytorch.org/docs/stable/generated/torch.nn.AvgPool2d.html).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
IntOrTuple = int | Sequence[int]

_KERNEL_LETTERS = "ijk"
_OUT_LETTERS = "xyz"


def _tuple(value: IntOrTuple, d: int) -> tuple[int, ...]:
    """A size, stride, padding or dilation as ``d`` ints: torch accepts an int or a sequence of
    one (both meaning the same value in every dimension) or of ``d`` values."""
    values = (value,) if isinstance(value, int | np.integer) else tuple(value)
    if len(values) not in (1, d):
        raise ValueError(f"expected an int, or a sequence of 1 or {d} ints; got {value!r}")
    return tuple(int(v) for v in values) * (d if len(values) == 1 else 1)


def _slices(offset: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
            out: Sequence[int]) -> tuple[slice, ...]:
    """The input positions o * stride + offset * dilation, o = 0 .. out - 1, per dimension."""
    return tuple(slice(k * dl, k * dl + s * (o - 1) + 1, s)
                 for k, s, dl, o in zip(offset, stride, dilation, out, strict=True))


def _windows(xp: Array, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
             out: Sequence[int]) -> Array:
    """im2col: ``w[..., k, o] = xp[..., o * stride + k * dilation]``, shape (..., *kernel, *out)."""
    d = len(kernel)
    w = np.empty(xp.shape[:-d] + tuple(kernel) + tuple(out), dtype=xp.dtype)
    for k in np.ndindex(*kernel):
        window: tuple[Any, ...] = (..., *k, *[slice(None)] * d)
        source: tuple[Any, ...] = (..., *_slices(k, stride, dilation, out))
        w[window] = xp[source]
    return w


def _windows_vjp(gw: Array, padded_shape: Sequence[int], kernel: Sequence[int],
                 stride: Sequence[int], dilation: Sequence[int]) -> Array:
    """col2im, the VJP of :func:`_windows`: each window element's gradient is added back to
    the input position it was read from (overlapping windows accumulate)."""
    d = len(kernel)
    out = gw.shape[-d:]
    gx = np.zeros(padded_shape)
    for k in np.ndindex(*kernel):
        window: tuple[Any, ...] = (..., *k, *[slice(None)] * d)
        source: tuple[Any, ...] = (..., *_slices(k, stride, dilation, out))
        gx[source] += gw[window]
    return gx


def _crop(xp: Array, pads: Sequence[tuple[int, int]], shape: Sequence[int]) -> Array:
    """The unpadded part of ``xp``: undoes the padding of the last len(pads) dimensions."""
    inner: tuple[Any, ...] = (..., *(slice(lo, lo + n) for (lo, _), n in zip(pads, shape,
                                                                             strict=True)))
    return xp[inner]


# --- convolution ---------------------------------------------------------------------------


def _conv_pads(padding: IntOrTuple | str, kernel: Sequence[int],
               dilation: Sequence[int]) -> list[tuple[int, int]]:
    """(low, high) zero padding per dimension. ``"valid"`` is none; ``"same"`` pads a total of
    dilation * (kernel - 1) per dimension, the smaller half before (torch puts the odd one
    after)."""
    d = len(kernel)
    if padding == "valid":
        return [(0, 0)] * d
    if padding == "same":
        totals = [dl * (k - 1) for k, dl in zip(kernel, dilation, strict=True)]
        return [(t // 2, t - t // 2) for t in totals]
    assert not isinstance(padding, str), f"unknown padding {padding!r}"
    return [(p, p) for p in _tuple(padding, d)]


def _conv_setup(input: Array, weight: Array, stride: IntOrTuple, padding: IntOrTuple | str,
                dilation: IntOrTuple, d: int) -> tuple[Array, bool, list[tuple[int, int]],
                                                     tuple[int, ...], tuple[int, ...],
                                                     tuple[int, ...]]:
    x = np.asarray(input, dtype=np.float64)
    unbatched = x.ndim == d + 1
    if unbatched:
        x = x[None]
    kernel = tuple(np.shape(weight)[2:])
    s, dl = _tuple(stride, d), _tuple(dilation, d)
    pads = _conv_pads(padding, kernel, dl)
    xp = np.pad(x, [(0, 0), (0, 0), *pads])
    out = tuple((n - dli * (k - 1) - 1) // si + 1
                for n, k, si, dli in zip(xp.shape[2:], kernel, s, dl, strict=True))
    return xp, unbatched, pads, s, dl, out


def _conv(input: Array, weight: Array, bias: Array | None, stride: IntOrTuple,
          padding: IntOrTuple | str, dilation: IntOrTuple, groups: int, d: int) -> Array:
    xp, unbatched, _, s, dl, out = _conv_setup(input, weight, stride, padding, dilation, d)
    n = xp.shape[0]
    o, cg = np.shape(weight)[:2]
    kernel = tuple(np.shape(weight)[2:])
    cols = _windows(xp, kernel, s, dl, out).reshape(n, groups, cg, *kernel, *out)
    w = np.reshape(weight, (groups, o // groups, cg, *kernel))
    ks, os_ = _KERNEL_LETTERS[:d], _OUT_LETTERS[:d]
    # z[n, g, o, out] = sum over c, k of cols[n, g, c, k, out] * w[g, o, c, k]
    z = np.einsum(f"ngc{ks}{os_},goc{ks}->ngo{os_}", cols, w).reshape(n, o, *out)
    if bias is not None:
        z = z + np.reshape(bias, (o,) + (1,) * d)
    return z[0] if unbatched else z


def _conv_vjp(g: Array, input: Array, weight: Array, bias: Array | None, stride: IntOrTuple,
              padding: IntOrTuple | str, dilation: IntOrTuple, groups: int,
              d: int) -> dict[str, Array]:
    xp, unbatched, pads, s, dl, out = _conv_setup(input, weight, stride, padding, dilation, d)
    n, c = xp.shape[:2]
    o, cg = np.shape(weight)[:2]
    kernel = tuple(np.shape(weight)[2:])
    gz = np.reshape(g, (n, groups, o // groups, *out))
    cols = _windows(xp, kernel, s, dl, out).reshape(n, groups, cg, *kernel, *out)
    w = np.reshape(weight, (groups, o // groups, cg, *kernel))
    ks, os_ = _KERNEL_LETTERS[:d], _OUT_LETTERS[:d]
    gw = np.einsum(f"ngo{os_},ngc{ks}{os_}->goc{ks}", gz, cols).reshape(np.shape(weight))
    gcols = np.einsum(f"ngo{os_},goc{ks}->ngc{ks}{os_}", gz, w).reshape(n, c, *kernel, *out)
    gx = _crop(_windows_vjp(gcols, xp.shape, kernel, s, dl), pads, np.shape(input)[-d:])
    grads = {"input": gx[0] if unbatched else gx, "weight": gw}
    if bias is not None:
        grads["bias"] = np.sum(gz, axis=(0, *range(3, 3 + d))).reshape(o)
    return grads


def conv1d(input: Array, weight: Array, bias: Array | None = None, stride: IntOrTuple = 1,
           padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1, groups: int = 1) -> Array:
    r"""1-d cross-correlation:

        z[n, o, t] = b[o] + sum_{c in group(o), k} w[o, c, k] x_pad[n, c, t s + k d]

    Shapes: ``input`` (N, C, L) or (C, L); ``weight`` (O, C / groups, K); ``bias`` (O,).
    Output length floor((L + 2 p - d (K - 1) - 1) / s) + 1. Channels are split into ``groups``
    blocks; output block g sees only input block g. ``padding`` is an int, ``"valid"`` (none)
    or ``"same"`` (output length L, stride 1). Computed as an im2col gather and an einsum; see
    :func:`conv2d` for the VJP, which is the same with one spatial dimension.
    """
    return _conv(input, weight, bias, stride, padding, dilation, groups, 1)


def conv1d_vjp(g: Array, input: Array, weight: Array, bias: Array | None = None,
               stride: IntOrTuple = 1, padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1,
               groups: int = 1) -> dict[str, Array]:
    r"""VJP of :func:`conv1d`; the formulas of :func:`conv2d_vjp` with one spatial dimension."""
    return _conv_vjp(g, input, weight, bias, stride, padding, dilation, groups, 1)


def conv2d(input: Array, weight: Array, bias: Array | None = None, stride: IntOrTuple = 1,
           padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1, groups: int = 1) -> Array:
    r"""2-d cross-correlation (torch's "convolution" does not flip the kernel):

        z[n, o, y, x] = b[o] + sum_{c in group(o)} sum_{i, j} w[o, c, i, j]
                                 x_pad[n, c, y s_h + i d_h, x s_w + j d_w]

    Shapes: ``input`` (N, C, H, W) or (C, H, W); ``weight`` (O, C / groups, kH, kW); ``bias``
    (O,). Output side floor((H + 2 p - d (k - 1) - 1) / s) + 1 per dimension. ``stride``,
    ``padding``, ``dilation`` are ints or pairs; ``padding`` may be ``"valid"`` or ``"same"``
    (total d (k - 1), the odd element after, as torch pads). Computed as an explicit im2col
    gather (:func:`_windows`) and one einsum per group; no FFT, no reordering tricks, so the
    sum is exactly the formula's.
    """
    return _conv(input, weight, bias, stride, padding, dilation, groups, 2)


def conv2d_vjp(g: Array, input: Array, weight: Array, bias: Array | None = None,
               stride: IntOrTuple = 1, padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1,
               groups: int = 1) -> dict[str, Array]:
    r"""VJP of :func:`conv2d` for a cotangent g of the output's shape:

        dL/dw[o, c, i, j] = sum_{n, y, x} g[n, o, y, x] x_pad[n, c, y s_h + i d_h, x s_w + j d_w]
        dL/db[o]          = sum_{n, y, x} g[n, o, y, x]
        dL/dx_pad[n, c, y s_h + i d_h, x s_w + j d_w]
            += sum_{o in group(c)} g[n, o, y, x] w[o, c, i, j]

    i.e. the weight gradient correlates the input with g, and the input gradient scatters
    g * w back through the same windows (col2im, :func:`_windows_vjp`), then drops the padding.
    """
    return _conv_vjp(g, input, weight, bias, stride, padding, dilation, groups, 2)


# --- pooling -------------------------------------------------------------------------------


def _pool_out(size: int, k: int, s: int, p: int, dl: int, ceil_mode: bool) -> int:
    """Output side: floor (or ceil) of (size + 2 p - dl (k - 1) - 1) / s, plus one; with
    ``ceil_mode`` the last window must start inside the input or the left padding (the torch
    docs' rule), otherwise it is dropped."""
    span = size + 2 * p - dl * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _pool_setup(input: Array, kernel_size: IntOrTuple, stride: IntOrTuple | None,
                padding: IntOrTuple, dilation: IntOrTuple, ceil_mode: bool,
                fill: float) -> tuple[Array, bool, list[tuple[int, int]], tuple[int, ...],
                                      tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """The input (batched), padded with ``fill`` by ``padding`` before and after, and after
    that by whatever the ceil-mode windows reach past the right padding."""
    x = np.asarray(input, dtype=np.float64)
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    k = _tuple(kernel_size, 2)
    s = k if stride is None or stride == [] or stride == () else _tuple(stride, 2)
    p, dl = _tuple(padding, 2), _tuple(dilation, 2)
    out = tuple(_pool_out(n, ki, si, pi, dli, ceil_mode)
                for n, ki, si, pi, dli in zip(x.shape[2:], k, s, p, dl, strict=True))
    pads = [(pi, max(pi, (o - 1) * si + dli * (ki - 1) + 1 - n - pi))
            for n, ki, si, pi, dli, o in zip(x.shape[2:], k, s, p, dl, out, strict=True)]
    xp = np.pad(x, [(0, 0), (0, 0), *pads], constant_values=fill)
    return xp, unbatched, pads, k, s, dl, out


def max_pool2d(input: Array, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, dilation: IntOrTuple = 1,
               ceil_mode: bool = False) -> Array:
    r"""z[n, c, y, x] = max_{i, j} x_pad[n, c, y s_h + i d_h, x s_w + j d_w].

    Shapes: ``input`` (N, C, H, W) or (C, H, W). Padding is with -inf (torch's MaxPool2d docs:
    "implicit negative infinity padding"), so a padded element never wins; ``stride`` defaults
    to ``kernel_size``; output sides as in :func:`_pool_out`.
    """
    xp, unbatched, _, k, s, dl, out = _pool_setup(input, kernel_size, stride, padding, dilation,
                                                  ceil_mode, -np.inf)
    z = _windows(xp, k, s, dl, out).max(axis=(2, 3))
    return z[0] if unbatched else z


def max_pool2d_vjp(g: Array, input: Array, kernel_size: IntOrTuple,
                   stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                   dilation: IntOrTuple = 1, ceil_mode: bool = False) -> dict[str, Array]:
    r"""VJP of :func:`max_pool2d`: each window's g goes to its argmax, the rest get nothing;

        dL/dx[n, c, p] = sum over windows (y, x) whose argmax is p of g[n, c, y, x].

    Ties: the first maximum in row-major window order wins, as torch's CPU kernel scans
    (``val > maxval``); ``np.argmax`` picks the first too. The inputs drawn for tests have
    distinct values, so this choice is never exercised by the generic checks.
    """
    xp, unbatched, pads, k, s, dl, out = _pool_setup(input, kernel_size, stride, padding,
                                                     dilation, ceil_mode, -np.inf)
    w = _windows(xp, k, s, dl, out)
    flat = w.reshape(*w.shape[:2], k[0] * k[1], *out)
    onehot = np.arange(k[0] * k[1])[:, None, None] == np.argmax(flat, axis=2)[:, :, None]
    gz = np.reshape(g, (*w.shape[:2], 1, *out))
    gw = (onehot * gz).reshape(w.shape)
    gx = _crop(_windows_vjp(gw, xp.shape, k, s, dl), pads, np.shape(input)[-2:])
    return {"input": gx[0] if unbatched else gx}


def _avg_divisor(shape: Sequence[int], pads: Sequence[tuple[int, int]], padding: Sequence[int],
                 k: Sequence[int], s: Sequence[int], out: Sequence[int], count_include_pad: bool,
                 divisor_override: int | None) -> Array:
    """What each window's sum is divided by: ``divisor_override``; or the number of window
    elements inside the input plus its declared padding (``count_include_pad``, the ceil-mode
    overhang past the right padding excluded); or the number inside the input alone."""
    if divisor_override is not None:
        return np.full(tuple(out), float(divisor_override))
    inside = np.pad(np.ones(tuple(shape)), list(pads))
    if count_include_pad:
        inside = np.zeros(inside.shape)  # 1 on the input and its declared padding, 0 beyond
        inside[tuple(slice(0, n + 2 * p) for n, p in zip(shape, padding, strict=True))] = 1.0
    return _windows(inside, k, s, (1, 1), out).sum(axis=(0, 1))


def avg_pool2d(input: Array, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Array:
    r"""z[n, c, y, x] = (1 / D[y, x]) sum_{i, j} x_pad[n, c, y s_h + i, x s_w + j], zero padding.

    The divisor D (torch's AvgPool2d docs and CPU kernel): ``divisor_override`` if given; else
    with ``count_include_pad`` the number of window elements inside the input or its declared
    padding (kH kW except where a ceil-mode window overhangs the right padding); else the
    number inside the input only. Shapes and output sides as :func:`max_pool2d` (no dilation).
    """
    xp, unbatched, pads, k, s, dl, out = _pool_setup(input, kernel_size, stride, padding, 1,
                                                     ceil_mode, 0.0)
    divisor = _avg_divisor(np.shape(input)[-2:], pads, _tuple(padding, 2), k, s, out,
                           count_include_pad, divisor_override)
    z = _windows(xp, k, s, dl, out).sum(axis=(2, 3)) / divisor
    return z[0] if unbatched else z


def avg_pool2d_vjp(g: Array, input: Array, kernel_size: IntOrTuple,
                   stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                   ceil_mode: bool = False, count_include_pad: bool = True,
                   divisor_override: int | None = None) -> dict[str, Array]:
    r"""VJP of :func:`avg_pool2d`: every element of window (y, x) receives g[y, x] / D[y, x];

        dL/dx[n, c, p] = sum over windows (y, x) containing p of g[n, c, y, x] / D[y, x]

    (col2im of the broadcast g / D, then the padding dropped).
    """
    xp, unbatched, pads, k, s, dl, out = _pool_setup(input, kernel_size, stride, padding, 1,
                                                     ceil_mode, 0.0)
    divisor = _avg_divisor(np.shape(input)[-2:], pads, _tuple(padding, 2), k, s, out,
                           count_include_pad, divisor_override)
    gz = np.reshape(g, (xp.shape[0], xp.shape[1], 1, 1, *out)) / divisor
    gw = np.broadcast_to(gz, (*xp.shape[:2], *k, *out))
    gx = _crop(_windows_vjp(gw, xp.shape, k, s, dl), pads, np.shape(input)[-2:])
    return {"input": gx[0] if unbatched else gx}
