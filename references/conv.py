r"""Convolution, transposed convolution, sliding-window pooling and fold/unfold, NumPy float64,
written with explicit sliding windows.

Every op here reads its input through windows: for kernel offset ``k`` (one index per spatial
dimension) and output position ``o``, the window element is ``x_pad[o * stride + k * dilation]``
of the padded input. :func:`_windows` gathers them into an array of shape
``(..., *kernel, *out)`` (im2col); the VJP of that gather, :func:`_windows_vjp`, scatter-adds a
gradient of the same shape back onto the padded input (col2im). Convolution is then one einsum
over (channel, kernel offset); transposed convolution the same einsum followed by col2im (it is
the adjoint of convolution with respect to its input); pooling a max or a mean over the kernel
axes; unfold is im2col itself and fold is col2im.

Follows ``torch.nn.functional.conv1d/2d/3d``, ``conv_transpose1d/2d/3d``,
``max_pool1d/2d/3d``, ``avg_pool1d/2d/3d``, ``fold`` and ``unfold``
(https://pytorch.org/docs/stable/generated/torch.nn.Conv2d.html,
https://pytorch.org/docs/stable/generated/torch.nn.ConvTranspose2d.html,
https://pytorch.org/docs/stable/generated/torch.nn.MaxPool2d.html,
https://pytorch.org/docs/stable/generated/torch.nn.AvgPool2d.html,
https://pytorch.org/docs/stable/generated/torch.nn.Fold.html,
https://pytorch.org/docs/stable/generated/torch.nn.Unfold.html; the 1-d and 3-d pages are the
same with one and three spatial dimensions).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

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



def conv3d(input: Array, weight: Array, bias: Array | None = None, stride: IntOrTuple = 1,
           padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1, groups: int = 1) -> Array:
    r"""3-d cross-correlation, :func:`conv2d` with three spatial dimensions:

        z[n, o, t, y, x] = b[o] + sum_{c in group(o)} sum_{h, i, j} w[o, c, h, i, j]
                             x_pad[n, c, t s_t + h d_t, y s_h + i d_h, x s_w + j d_w]

    Shapes: ``input`` (N, C, D, H, W) or (C, D, H, W); ``weight`` (O, C / groups, kD, kH, kW);
    ``bias`` (O,). Output sides and options as :func:`conv2d`
    (https://pytorch.org/docs/stable/generated/torch.nn.Conv3d.html).
    """
    return _conv(input, weight, bias, stride, padding, dilation, groups, 3)


def conv3d_vjp(g: Array, input: Array, weight: Array, bias: Array | None = None,
               stride: IntOrTuple = 1, padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1,
               groups: int = 1) -> dict[str, Array]:
    r"""VJP of :func:`conv3d`; the formulas of :func:`conv2d_vjp` with three spatial
    dimensions (weight gradient: input windows correlated with g; input gradient: g * w
    scattered back through the windows, padding dropped)."""
    return _conv_vjp(g, input, weight, bias, stride, padding, dilation, groups, 3)


# --- transposed convolution ----------------------------------------------------------------


def _transpose_setup(input: Array, weight: Array, stride: IntOrTuple, padding: IntOrTuple,
                     output_padding: IntOrTuple, dilation: IntOrTuple, groups: int,
                     d: int) -> tuple[Array, bool, Array, tuple[int, ...], tuple[int, ...],
                                      tuple[int, ...], tuple[int, ...], tuple[int, ...],
                                      tuple[int, ...]]:
    """The batched input (N, G, C / G, *L), whether it was unbatched, the weight as
    (G, C / G, O / G, *k), and kernel, stride, dilation, padding, output sides and the side of
    the uncropped output (long enough for the output padding)."""
    x = np.asarray(input, dtype=np.float64)
    unbatched = x.ndim == d + 1
    if unbatched:
        x = x[None]
    c_in, og, *kernel = np.shape(weight)
    s, p, op, dl = (_tuple(v, d) for v in (stride, padding, output_padding, dilation))
    sides = x.shape[2:]
    out = tuple((n - 1) * si - 2 * pi + dli * (k - 1) + opi + 1
                for n, k, si, pi, opi, dli in zip(sides, kernel, s, p, op, dl, strict=True))
    full = tuple(max((n - 1) * si + dli * (k - 1) + 1, pi + o)
                 for n, k, si, pi, dli, o in zip(sides, kernel, s, p, dl, out, strict=True))
    xg = x.reshape(x.shape[0], groups, c_in // groups, *sides)
    w = np.reshape(weight, (groups, c_in // groups, og, *kernel))
    return xg, unbatched, w, tuple(kernel), s, dl, p, out, full


def _conv_transpose(input: Array, weight: Array, bias: Array | None, stride: IntOrTuple,
                    padding: IntOrTuple, output_padding: IntOrTuple, groups: int,
                    dilation: IntOrTuple, d: int) -> Array:
    xg, unbatched, w, kernel, s, dl, p, out, full = _transpose_setup(
        input, weight, stride, padding, output_padding, dilation, groups, d)
    n, sides = xg.shape[0], xg.shape[3:]
    ks, os_ = _KERNEL_LETTERS[:d], _OUT_LETTERS[:d]
    # cols[n, g, o, k, t] = sum over c of x[n, g, c, t] w[g, c, o, k]: what input position t
    # sends through kernel offset k; col2im adds it at output position t s + k d.
    cols = np.einsum(f"ngc{os_},gco{ks}->ngo{ks}{os_}", xg, w)
    cols = cols.reshape(n, -1, *kernel, *sides)
    z_full = _windows_vjp(cols, (n, cols.shape[1], *full), kernel, s, dl)
    inner: tuple[Any, ...] = (..., *(slice(pi, pi + o) for pi, o in zip(p, out, strict=True)))
    z = z_full[inner]
    if bias is not None:
        z = z + np.reshape(bias, (-1,) + (1,) * d)
    return z[0] if unbatched else z


def _conv_transpose_vjp(g: Array, input: Array, weight: Array, bias: Array | None,
                        stride: IntOrTuple, padding: IntOrTuple, output_padding: IntOrTuple,
                        groups: int, dilation: IntOrTuple, d: int) -> dict[str, Array]:
    xg, unbatched, w, kernel, s, dl, p, out, full = _transpose_setup(
        input, weight, stride, padding, output_padding, dilation, groups, d)
    n, sides = xg.shape[0], xg.shape[3:]
    gz = np.reshape(g, (n, -1, *out))
    gz_full = np.zeros((n, gz.shape[1], *full))
    inner: tuple[Any, ...] = (..., *(slice(pi, pi + o) for pi, o in zip(p, out, strict=True)))
    gz_full[inner] = gz
    # the adjoint of col2im is im2col: the cotangent read through the same windows
    gcols = _windows(gz_full, kernel, s, dl, sides).reshape(n, groups, -1, *kernel, *sides)
    ks, os_ = _KERNEL_LETTERS[:d], _OUT_LETTERS[:d]
    gx = np.einsum(f"ngo{ks}{os_},gco{ks}->ngc{os_}", gcols, w).reshape(n, -1, *sides)
    gw = np.einsum(f"ngc{os_},ngo{ks}{os_}->gco{ks}", xg, gcols).reshape(np.shape(weight))
    grads = {"input": gx[0] if unbatched else gx, "weight": gw}
    if bias is not None:
        grads["bias"] = np.sum(gz, axis=(0, *range(2, 2 + d)))
    return grads


def conv_transpose1d(input: Array, weight: Array, bias: Array | None = None,
                     stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                     output_padding: IntOrTuple = 0, groups: int = 1,
                     dilation: IntOrTuple = 1) -> Array:
    r"""1-d transposed convolution, the adjoint of :func:`conv1d` w.r.t. its input, plus a bias:

        z_full[n, o, t s + k d] += sum_{c in group(o)} x[n, c, t] w[c, o, k]
        z[n, o, u] = b[o] + z_full[n, o, u + p],   u = 0 .. L_out - 1

    Shapes: ``input`` (N, C_in, L) or (C_in, L); ``weight`` (C_in, C_out / groups, K) (note:
    input channels first, unlike conv1d); ``bias`` (C_out,). L_out = (L - 1) s - 2 p +
    d (K - 1) + output_padding + 1: ``padding`` crops p from both ends of the full output,
    ``output_padding`` (< stride or dilation) extends the high end (by zeros past the full
    output, plus the bias). Computed as an einsum and col2im (:func:`_windows_vjp`). See
    :func:`conv_transpose2d_vjp` for the VJP
    (https://pytorch.org/docs/stable/generated/torch.nn.ConvTranspose1d.html).
    """
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups,
                           dilation, 1)


def conv_transpose1d_vjp(g: Array, input: Array, weight: Array, bias: Array | None = None,
                         stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                         output_padding: IntOrTuple = 0, groups: int = 1,
                         dilation: IntOrTuple = 1) -> dict[str, Array]:
    r"""VJP of :func:`conv_transpose1d`; :func:`conv_transpose2d_vjp` with one spatial
    dimension."""
    return _conv_transpose_vjp(g, input, weight, bias, stride, padding, output_padding, groups,
                               dilation, 1)


def conv_transpose2d(input: Array, weight: Array, bias: Array | None = None,
                     stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                     output_padding: IntOrTuple = 0, groups: int = 1,
                     dilation: IntOrTuple = 1) -> Array:
    r"""2-d transposed convolution ("deconvolution"), the adjoint of :func:`conv2d` w.r.t. its
    input, plus a bias:

        z_full[n, o, y s_h + i d_h, x s_w + j d_w] += sum_{c in group(o)} x[n, c, y, x]
                                                                        w[c, o, i, j]
        z[n, o, u, v] = b[o] + z_full[n, o, u + p_h, v + p_w]

    Shapes: ``input`` (N, C_in, H, W) or (C_in, H, W); ``weight`` (C_in, C_out / groups, kH, kW);
    ``bias`` (C_out,). Each side is (n - 1) s - 2 p + d (k - 1) + output_padding + 1: the full
    scatter is (n - 1) s + d (k - 1) + 1 long, ``padding`` crops p at both ends and
    ``output_padding`` adds that many positions at the high end (past the full scatter they
    hold only the bias). Every input element spreads its kernel-weighted copy at stride s; the
    overlapping contributions add up
    (https://pytorch.org/docs/stable/generated/torch.nn.ConvTranspose2d.html).
    """
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups,
                           dilation, 2)


def conv_transpose2d_vjp(g: Array, input: Array, weight: Array, bias: Array | None = None,
                         stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                         output_padding: IntOrTuple = 0, groups: int = 1,
                         dilation: IntOrTuple = 1) -> dict[str, Array]:
    r"""VJP of :func:`conv_transpose2d`, with g_full the cotangent placed back at offset p in a
    zero array of the full scatter's shape:

        dL/dx[n, c, y, x] = sum_{o in group(c), i, j} w[c, o, i, j]
                              g_full[n, o, y s_h + i d_h, x s_w + j d_w]
        dL/dw[c, o, i, j] = sum_{n, y, x} x[n, c, y, x] g_full[n, o, y s_h + i d_h, x s_w + j d_w]
        dL/db[o]          = sum_{n, u, v} g[n, o, u, v]

    i.e. the input gradient is the ordinary convolution of g with the same weight (im2col of
    g_full and an einsum): transposing twice gives the convolution back.
    """
    return _conv_transpose_vjp(g, input, weight, bias, stride, padding, output_padding, groups,
                               dilation, 2)


def conv_transpose3d(input: Array, weight: Array, bias: Array | None = None,
                     stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                     output_padding: IntOrTuple = 0, groups: int = 1,
                     dilation: IntOrTuple = 1) -> Array:
    r"""3-d transposed convolution: :func:`conv_transpose2d` with three spatial dimensions,

        z_full[n, o, t s + h d, ...] += sum_{c in group(o)} x[n, c, t, y, x] w[c, o, h, i, j]

    cropped by ``padding`` and extended by ``output_padding`` per dimension; ``weight``
    (C_in, C_out / groups, kD, kH, kW)
    (https://pytorch.org/docs/stable/generated/torch.nn.ConvTranspose3d.html).
    """
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups,
                           dilation, 3)


def conv_transpose3d_vjp(g: Array, input: Array, weight: Array, bias: Array | None = None,
                         stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                         output_padding: IntOrTuple = 0, groups: int = 1,
                         dilation: IntOrTuple = 1) -> dict[str, Array]:
    r"""VJP of :func:`conv_transpose3d`; :func:`conv_transpose2d_vjp` with three spatial
    dimensions."""
    return _conv_transpose_vjp(g, input, weight, bias, stride, padding, output_padding, groups,
                               dilation, 3)


# --- sliding-window pooling ----------------------------------------------------------------


def _pool_out(size: int, k: int, s: int, p: int, dl: int, ceil_mode: bool) -> int:
    """Output side: floor (or ceil) of (size + 2 p - dl (k - 1) - 1) / s, plus one; with
    ``ceil_mode`` the last window must start inside the input or the left padding (the torch
    docs' rule), otherwise it is dropped."""
    span = size + 2 * p - dl * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


class _Pool(NamedTuple):
    """A pooling's geometry: the padded batched input and what it took to make it."""

    xp: Array  # (N, C, *padded sides)
    unbatched: bool
    pads: list[tuple[int, int]]  # (low, high) per dimension, high including ceil overhang
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    out: tuple[int, ...]


def _pool_setup(input: Array, d: int, kernel_size: IntOrTuple, stride: IntOrTuple | None,
                padding: IntOrTuple, dilation: IntOrTuple, ceil_mode: bool,
                fill: float) -> _Pool:
    """The input (batched), padded with ``fill`` by ``padding`` before and after, and after
    that by whatever the ceil-mode windows reach past the right padding."""
    x = np.asarray(input, dtype=np.float64)
    unbatched = x.ndim == d + 1
    if unbatched:
        x = x[None]
    k = _tuple(kernel_size, d)
    s = k if stride is None or stride == [] or stride == () else _tuple(stride, d)
    p, dl = _tuple(padding, d), _tuple(dilation, d)
    out = tuple(_pool_out(n, ki, si, pi, dli, ceil_mode)
                for n, ki, si, pi, dli in zip(x.shape[2:], k, s, p, dl, strict=True))
    pads = [(pi, max(pi, (o - 1) * si + dli * (ki - 1) + 1 - n - pi))
            for n, ki, si, pi, dli, o in zip(x.shape[2:], k, s, p, dl, out, strict=True)]
    xp = np.pad(x, [(0, 0), (0, 0), *pads], constant_values=fill)
    return _Pool(xp, unbatched, pads, k, s, dl, out)


def _unbatch(z: Array, pool: _Pool) -> Array:
    return z[0] if pool.unbatched else z


def _window_offsets(pool: _Pool) -> Iterator[tuple[int, tuple[Any, ...], Array]]:
    """Each window offset k: its row-major number, the index of the padded input's elements
    it reads in every window (``xp[..., o * stride + k * dilation]``) and those elements
    (shape (N, C, *out)). A window reduction taken one offset at a time never builds the
    (N, C, *kernel, *out) windows."""
    for i, k in enumerate(np.ndindex(*pool.kernel)):
        source: tuple[Any, ...] = (..., *_slices(k, pool.stride, pool.dilation, pool.out))
        yield i, source, pool.xp[source]


def _window_max(pool: _Pool) -> Array:
    """Each window's maximum (a NaN in a window is its maximum: ``np.maximum`` propagates it,
    as torch's CPU kernels do)."""
    offsets = _window_offsets(pool)
    z = next(offsets)[2].copy()  # a kernel has at least one offset
    for _, _, v in offsets:
        np.maximum(z, v, out=z)
    return z


def _first_argmax(pool: _Pool) -> NDArray[np.intp]:
    """Each window's first maximum in row-major window order, as the offset's number: torch's
    CPU kernels scan so and keep a value only if it is greater (``val > maxval``), and a NaN
    is the maximum (its first, as ``np.argmax`` of the window would give)."""
    has_nan = bool(np.isnan(pool.xp).any())
    offsets = _window_offsets(pool)
    best = next(offsets)[2].copy()  # offset 0 until a later one wins
    arg = np.zeros(best.shape, dtype=np.intp)
    for i, _, v in offsets:
        wins = v > best
        if has_nan:  # a NaN wins over a number, and a later NaN over none
            wins |= np.isnan(v) & ~np.isnan(best)
        np.copyto(best, v, where=wins)
        np.copyto(arg, i, where=wins)
    return arg


def _argmax_positions(pool: _Pool, arg: NDArray[np.intp]) -> list[NDArray[np.intp]]:
    """Per spatial dimension, where in the padded input each window's maximum (offset number
    ``arg``) sits: o * stride + k * dilation."""
    offsets = np.unravel_index(arg, pool.kernel)
    d = len(pool.kernel)
    return [np.arange(pool.out[i]).reshape([-1 if j == i else 1 for j in range(d)])
            * pool.stride[i] + offsets[i] * pool.dilation[i] for i in range(d)]


def _scatter_to(g: Array, indices: NDArray[np.integer[Any]], shape: tuple[int, ...]) -> Array:
    """dL/dx of a gather by flat plane indices: each g added at its index (repeats add up),
    a bincount over the indices in the whole array."""
    n, c = shape[:2]
    plane = math.prod(shape[2:])
    at = np.reshape(indices, (n * c, -1)) + plane * np.arange(n * c)[:, None]
    sums = np.bincount(at.ravel(), weights=np.ravel(g), minlength=n * c * plane)
    return sums.astype(np.float64, copy=False).reshape(shape)  # float64 already (weighted)


def _max_pool(input: Array, d: int, kernel_size: IntOrTuple, stride: IntOrTuple | None,
              padding: IntOrTuple, dilation: IntOrTuple, ceil_mode: bool) -> Array:
    pool = _pool_setup(input, d, kernel_size, stride, padding, dilation, ceil_mode, -np.inf)
    return _unbatch(_window_max(pool), pool)


def _max_pool_vjp(g: Array, input: Array, d: int, kernel_size: IntOrTuple,
                  stride: IntOrTuple | None, padding: IntOrTuple, dilation: IntOrTuple,
                  ceil_mode: bool) -> dict[str, Array]:
    """Each window's g added at its first maximum's place in the padded input, then cropped."""
    pool = _pool_setup(input, d, kernel_size, stride, padding, dilation, ceil_mode, -np.inf)
    at = np.ravel_multi_index(tuple(_argmax_positions(pool, _first_argmax(pool))),
                              pool.xp.shape[2:])
    gxp = _scatter_to(np.reshape(g, at.shape), at, pool.xp.shape)
    return {"input": _unbatch(_crop(gxp, pool.pads, np.shape(input)[-d:]), pool)}


def max_pool_indices(input: Array, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
                     padding: IntOrTuple = 0, dilation: IntOrTuple = 1,
                     ceil_mode: bool = False, dims: int = 2) -> Array:
    r"""What ``max_pool{dims}d(..., return_indices=True)`` returns beside the values: for each
    window, the position of its maximum in the unpadded input, flattened over the spatial
    dimensions of its (n, c) plane (row-major), as int64:

        idx[n, c, o] = ravel(o * s + k* d - p),   k* = the window's first argmax

    These are the indices ``max_unpool{dims}d`` scatters to. Not differentiable, so not an op
    of its own: tests/test_pooling.py compares torch's indices with these, and the max_unpool
    input makers draw their indices with it.
    """
    pool = _pool_setup(input, dims, kernel_size, stride, padding, dilation, ceil_mode, -np.inf)
    positions = [p - pool.pads[i][0]
                 for i, p in enumerate(_argmax_positions(pool, _first_argmax(pool)))]
    sides = np.shape(input)[-dims:]
    return _unbatch(np.ravel_multi_index(tuple(positions), sides).astype(np.int64), pool)


def max_pool1d(input: Array, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, dilation: IntOrTuple = 1,
               ceil_mode: bool = False) -> Array:
    r"""z[n, c, t] = max_k x_pad[n, c, t s + k d]: :func:`max_pool2d` with one spatial
    dimension. Shapes: ``input`` (N, C, L) or (C, L)
    (https://pytorch.org/docs/stable/generated/torch.nn.MaxPool1d.html)."""
    return _max_pool(input, 1, kernel_size, stride, padding, dilation, ceil_mode)


def max_pool1d_vjp(g: Array, input: Array, kernel_size: IntOrTuple,
                   stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                   dilation: IntOrTuple = 1, ceil_mode: bool = False) -> dict[str, Array]:
    r"""VJP of :func:`max_pool1d`: each window's g goes to its (first) argmax, as in
    :func:`max_pool2d_vjp`."""
    return _max_pool_vjp(g, input, 1, kernel_size, stride, padding, dilation, ceil_mode)


def max_pool2d(input: Array, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, dilation: IntOrTuple = 1,
               ceil_mode: bool = False) -> Array:
    r"""z[n, c, y, x] = max_{i, j} x_pad[n, c, y s_h + i d_h, x s_w + j d_w].

    Shapes: ``input`` (N, C, H, W) or (C, H, W). Padding is with -inf (torch's MaxPool2d docs:
    "implicit negative infinity padding"), so a padded element never wins; ``stride`` defaults
    to ``kernel_size``; output sides as in :func:`_pool_out`.
    """
    return _max_pool(input, 2, kernel_size, stride, padding, dilation, ceil_mode)


def max_pool2d_vjp(g: Array, input: Array, kernel_size: IntOrTuple,
                   stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                   dilation: IntOrTuple = 1, ceil_mode: bool = False) -> dict[str, Array]:
    r"""VJP of :func:`max_pool2d`: each window's g goes to its argmax, the rest get nothing;

        dL/dx[n, c, p] = sum over windows (y, x) whose argmax is p of g[n, c, y, x].

    Ties: the first maximum in row-major window order wins, as torch's CPU kernel scans
    (``val > maxval``); ``np.argmax`` picks the first too. The inputs drawn for the generic
    checks have distinct values; tests/test_pooling.py checks the tie rule on purpose.
    """
    return _max_pool_vjp(g, input, 2, kernel_size, stride, padding, dilation, ceil_mode)


def max_pool3d(input: Array, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, dilation: IntOrTuple = 1,
               ceil_mode: bool = False) -> Array:
    r"""z[n, c, t, y, x] = max_{h, i, j} x_pad[n, c, t s_t + h d_t, y s_h + i d_h, x s_w + j d_w]:
    :func:`max_pool2d` with three spatial dimensions. Shapes: ``input`` (N, C, D, H, W) or
    (C, D, H, W) (https://pytorch.org/docs/stable/generated/torch.nn.MaxPool3d.html)."""
    return _max_pool(input, 3, kernel_size, stride, padding, dilation, ceil_mode)


def max_pool3d_vjp(g: Array, input: Array, kernel_size: IntOrTuple,
                   stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                   dilation: IntOrTuple = 1, ceil_mode: bool = False) -> dict[str, Array]:
    r"""VJP of :func:`max_pool3d`: each window's g goes to its (first) argmax, as in
    :func:`max_pool2d_vjp`."""
    return _max_pool_vjp(g, input, 3, kernel_size, stride, padding, dilation, ceil_mode)


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
    d = len(k)
    return _windows(inside, k, s, (1,) * d, out).sum(axis=tuple(range(d)))


def _avg_parts(input: Array, d: int, kernel_size: IntOrTuple, stride: IntOrTuple | None,
               padding: IntOrTuple, ceil_mode: bool, count_include_pad: bool,
               divisor_override: int | None) -> tuple[_Pool, Array]:
    pool = _pool_setup(input, d, kernel_size, stride, padding, 1, ceil_mode, 0.0)
    divisor = _avg_divisor(np.shape(input)[-d:], pool.pads, _tuple(padding, d), pool.kernel,
                           pool.stride, pool.out, count_include_pad, divisor_override)
    return pool, divisor


def _avg_pool(input: Array, d: int, kernel_size: IntOrTuple, stride: IntOrTuple | None,
              padding: IntOrTuple, ceil_mode: bool, count_include_pad: bool,
              divisor_override: int | None) -> Array:
    pool, divisor = _avg_parts(input, d, kernel_size, stride, padding, ceil_mode,
                               count_include_pad, divisor_override)
    w = _windows(pool.xp, pool.kernel, pool.stride, pool.dilation, pool.out)
    return _unbatch(w.sum(axis=tuple(range(2, 2 + d))) / divisor, pool)


def _avg_pool_vjp(g: Array, input: Array, d: int, kernel_size: IntOrTuple,
                  stride: IntOrTuple | None, padding: IntOrTuple, ceil_mode: bool,
                  count_include_pad: bool, divisor_override: int | None) -> dict[str, Array]:
    pool, divisor = _avg_parts(input, d, kernel_size, stride, padding, ceil_mode,
                               count_include_pad, divisor_override)
    gz = np.reshape(g, (*pool.xp.shape[:2], *(1,) * d, *pool.out)) / divisor
    gw = np.broadcast_to(gz, (*pool.xp.shape[:2], *pool.kernel, *pool.out))
    gx = _crop(_windows_vjp(gw, pool.xp.shape, pool.kernel, pool.stride, pool.dilation),
               pool.pads, np.shape(input)[-d:])
    return {"input": _unbatch(gx, pool)}


def avg_pool1d(input: Array, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Array:
    r"""z[n, c, t] = (1 / D[t]) sum_k x_pad[n, c, t s + k], zero padding: :func:`avg_pool2d`
    with one spatial dimension and no ``divisor_override`` (F.avg_pool1d has none). Shapes:
    ``input`` (N, C, L) or (C, L)
    (https://pytorch.org/docs/stable/generated/torch.nn.AvgPool1d.html)."""
    return _avg_pool(input, 1, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool1d_vjp(g: Array, input: Array, kernel_size: IntOrTuple,
                   stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                   ceil_mode: bool = False, count_include_pad: bool = True) -> dict[str, Array]:
    r"""VJP of :func:`avg_pool1d`: each element of window t receives g[t] / D[t]
    (:func:`avg_pool2d_vjp` with one spatial dimension)."""
    return _avg_pool_vjp(g, input, 1, kernel_size, stride, padding, ceil_mode,
                         count_include_pad, None)


def avg_pool2d(input: Array, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Array:
    r"""z[n, c, y, x] = (1 / D[y, x]) sum_{i, j} x_pad[n, c, y s_h + i, x s_w + j], zero padding.

    The divisor D (torch's AvgPool2d docs and CPU kernel): ``divisor_override`` if given; else
    with ``count_include_pad`` the number of window elements inside the input or its declared
    padding (kH kW except where a ceil-mode window overhangs the right padding); else the
    number inside the input only. Shapes and output sides as :func:`max_pool2d` (no dilation).
    """
    return _avg_pool(input, 2, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def avg_pool2d_vjp(g: Array, input: Array, kernel_size: IntOrTuple,
                   stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                   ceil_mode: bool = False, count_include_pad: bool = True,
                   divisor_override: int | None = None) -> dict[str, Array]:
    r"""VJP of :func:`avg_pool2d`: every element of window (y, x) receives g[y, x] / D[y, x];

        dL/dx[n, c, p] = sum over windows (y, x) containing p of g[n, c, y, x] / D[y, x]

    (col2im of the broadcast g / D, then the padding dropped).
    """
    return _avg_pool_vjp(g, input, 2, kernel_size, stride, padding, ceil_mode,
                         count_include_pad, divisor_override)


def avg_pool3d(input: Array, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Array:
    r"""z[n, c, t, y, x] = (1 / D[t, y, x]) sum_{h, i, j} x_pad[n, c, t s_t + h, y s_h + i,
    x s_w + j]: :func:`avg_pool2d` with three spatial dimensions, the same divisor rule.
    Shapes: ``input`` (N, C, D, H, W) or (C, D, H, W)
    (https://pytorch.org/docs/stable/generated/torch.nn.AvgPool3d.html)."""
    return _avg_pool(input, 3, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def avg_pool3d_vjp(g: Array, input: Array, kernel_size: IntOrTuple,
                   stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                   ceil_mode: bool = False, count_include_pad: bool = True,
                   divisor_override: int | None = None) -> dict[str, Array]:
    r"""VJP of :func:`avg_pool3d`: each element of a window receives that window's g / D
    (:func:`avg_pool2d_vjp` with three spatial dimensions)."""
    return _avg_pool_vjp(g, input, 3, kernel_size, stride, padding, ceil_mode,
                         count_include_pad, divisor_override)


# --- fold and unfold -----------------------------------------------------------------------


def unfold(input: Array, kernel_size: IntOrTuple, dilation: IntOrTuple = 1,
           padding: IntOrTuple = 0, stride: IntOrTuple = 1) -> Array:
    r"""im2col: the sliding (kH, kW) blocks of the zero-padded input as columns,

        z[n, c kH kW + i kW + j, y oW + x] = x_pad[n, c, y s_h + i d_h, x s_w + j d_w]

    Shapes: ``input`` (N, C, H, W) or (C, H, W); the result (N, C kH kW, L) or (C kH kW, L)
    with L = oH oW blocks, each side floor((n + 2 p - d (k - 1) - 1) / s) + 1
    (https://pytorch.org/docs/stable/generated/torch.nn.Unfold.html).
    """
    x = np.asarray(input, dtype=np.float64)
    unbatched = x.ndim == 3
    xb = x[None] if unbatched else x
    k, dl, p, s = (_tuple(v, 2) for v in (kernel_size, dilation, padding, stride))
    xp = np.pad(xb, [(0, 0), (0, 0), *((pi, pi) for pi in p)])
    out = tuple((n - dli * (ki - 1) - 1) // si + 1
                for n, ki, si, dli in zip(xp.shape[2:], k, s, dl, strict=True))
    cols = _windows(xp, k, s, dl, out).reshape(xb.shape[0], -1, math.prod(out))
    return cols[0] if unbatched else cols


def unfold_vjp(g: Array, input: Array, kernel_size: IntOrTuple, dilation: IntOrTuple = 1,
               padding: IntOrTuple = 0, stride: IntOrTuple = 1) -> dict[str, Array]:
    r"""VJP of :func:`unfold`: col2im, each column entry's gradient added back to the input
    position it was read from (overlapping blocks accumulate), then the padding dropped; that
    is, dL/dx = fold(g) with the same geometry (:func:`fold`)."""
    sides = np.shape(input)[-2:]
    gx = fold(g, sides, kernel_size, dilation, padding, stride)
    return {"input": gx}


def fold(input: Array, output_size: IntOrTuple, kernel_size: IntOrTuple,
         dilation: IntOrTuple = 1, padding: IntOrTuple = 0, stride: IntOrTuple = 1) -> Array:
    r"""col2im, the adjoint of :func:`unfold`: the columns summed back into an image,

        z_pad[n, c, y s_h + i d_h, x s_w + j d_w] += x[n, c kH kW + i kW + j, y oW + x]
        z = z_pad without its padding p

    Shapes: ``input`` (N, C kH kW, L) or (C kH kW, L), with L = oH oW the number of blocks
    that fit ``output_size`` (H, W) padded by p; the result (N, C, H, W) or (C, H, W). Where
    blocks overlap their entries add up, so fold(unfold(x)) is x times the number of blocks
    covering each position (https://pytorch.org/docs/stable/generated/torch.nn.Fold.html).
    """
    x = np.asarray(input, dtype=np.float64)
    unbatched = x.ndim == 2
    xb = x[None] if unbatched else x
    size, k, dl, p, s = (_tuple(v, 2) for v in (output_size, kernel_size, dilation, padding,
                                                 stride))
    padded = tuple(n + 2 * pi for n, pi in zip(size, p, strict=True))
    out = tuple((n - dli * (ki - 1) - 1) // si + 1
                for n, ki, si, dli in zip(padded, k, s, dl, strict=True))
    cols = xb.reshape(xb.shape[0], -1, *k, *out)
    z = _crop(_windows_vjp(cols, (*cols.shape[:2], *padded), k, s, dl),
              [(pi, pi) for pi in p], size)
    return z[0] if unbatched else z


def fold_vjp(g: Array, input: Array, output_size: IntOrTuple, kernel_size: IntOrTuple,
             dilation: IntOrTuple = 1, padding: IntOrTuple = 0,
             stride: IntOrTuple = 1) -> dict[str, Array]:
    r"""VJP of :func:`fold`: im2col of the zero-padded cotangent, dL/dx = unfold(g) with the
    same geometry (each column entry reads g where fold added it)."""
    return {"input": unfold(g, kernel_size, dilation, padding, stride)}
