r"""Padding, NumPy float64: constant (and zero), reflection, replication and circular padding of
the last 1, 2 or 3 dimensions, negative padding (cropping) included.

Every mode is a gather along each padded dimension: output position j of a side of length L
padded by (left, right) reads the input at a source s(j), or (constant mode) a fill value when
s(j) is outside the input. With p = j - left, the position relative to the input:

* constant:    s = p, the fill ``value`` (default 0) where p < 0 or p >= L;
* reflect:     s = -p for p < 0, 2 (L - 1) - p for p > L - 1 (the edge itself not repeated);
* replicate:   s = clamp(p, 0, L - 1);
* circular:    the ends with negative padding are removed first (torch's CircularPad docs:
  "If negative padding is applied then the ends of the tensor get removed"), leaving
  L' = L - crops elements from c = max(-left, 0), then s = c + (j - max(left, 0)) mod L'.

A negative padding in the other modes crops relative to the original input (positions p
outside the output are simply not read), as torch does: reflect (-4, 3) of [0 1 2 3 4 5] is
[4 5 4 3 2]. The gather along one dimension is a 0/1 matrix, held by its one tap per row
(``references._separable``: ``np.take`` along the dimension), so the forward is exact and the
VJP is the scatter-add of g to the sources (dL/dx[s] = sum of g over the outputs reading s),
the gathers of the transposed matrix. Constant padding's gather is two slices: the fill
everywhere, the kept input copied into its window; its VJP reads g back from the window (the
fill positions send nothing back).

``pad`` is torch's tuple: (left, right) of the last dimension first, then of the one before,
and so on. Follows https://pytorch.org/docs/stable/generated/torch.nn.functional.pad.html and
the module pages (https://pytorch.org/docs/stable/generated/torch.nn.ConstantPad2d.html,
ZeroPad2d, ReflectionPad2d, ReplicationPad2d, CircularPad2d, and their 1-d and 3-d pages).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from references import _separable

Array = NDArray[np.float64]
Index = NDArray[np.int64]


def _sources(mode: str, size: int, left: int, right: int) -> Index:
    """s(j) for every output position j of one padded dimension (reflect, replicate and
    circular; constant padding is the slices of :func:`_windows`)."""
    j = np.arange(size + left + right)
    p = j - left
    if mode == "reflect":
        return np.where(p < 0, -p, np.where(p > size - 1, 2 * (size - 1) - p, p))
    if mode == "replicate":
        return np.clip(p, 0, size - 1)
    assert mode == "circular", f"unknown padding mode {mode!r}"
    start = max(-left, 0)
    kept = size - start - max(-right, 0)
    return start + np.mod(j - max(left, 0), kept)


def _padded(shape: Sequence[int], pad: Sequence[int]) -> list[tuple[int, int, int]]:
    """(L, left, right) of every padded dimension, in the input's dimension order (``pad``
    names the last dimension first)."""
    d = len(pad) // 2
    pairs = [(pad[2 * i], pad[2 * i + 1]) for i in range(d)][::-1]
    return [(n, lo, hi) for n, (lo, hi) in zip(shape[len(shape) - d:], pairs, strict=True)]


def _maps(shape: Sequence[int], pad: Sequence[int], mode: str) -> list[_separable.Taps]:
    """One gather per padded dimension, in the input's dimension order."""
    return [_separable.gather(_sources(mode, n, lo, hi), n) for n, lo, hi in _padded(shape, pad)]


Window = tuple[slice, ...]


def _windows(shape: Sequence[int], pad: Sequence[int]) -> tuple[tuple[int, ...], Window,
                                                                  Window]:
    """Constant padding's gather as slices: the output's shape, the window of the output that
    holds the kept input, and that input (the leading dimensions whole). Along a padded side L
    with (left, right), L - c - max(-right, 0) elements from c = max(-left, 0) are kept, and
    land from max(left, 0)."""
    lead = len(shape) - len(pad) // 2
    out, window, kept = list(shape[:lead]), [slice(None)] * lead, [slice(None)] * lead
    for n, lo, hi in _padded(shape, pad):
        start, length = max(-lo, 0), max(n - max(-lo, 0) - max(-hi, 0), 0)
        out.append(n + lo + hi)
        window.append(slice(max(lo, 0), max(lo, 0) + length))
        kept.append(slice(start, start + length))
    return tuple(out), tuple(window), tuple(kept)


def _pad(input: Array, pad: Sequence[int], mode: str, value: float | None) -> Array:
    x = np.asarray(input, dtype=np.float64)
    if mode != "constant":
        return _separable.apply(x, _maps(x.shape, pad, mode))
    # the fill everywhere, the kept input in its window
    out, window, kept = _windows(x.shape, pad)
    z = np.full(out, float(value or 0.0))
    z[window] = x[kept]
    return z


def _pad_vjp(g: Array, input: Array, pad: Sequence[int], mode: str) -> dict[str, Array]:
    shape = np.shape(input)
    if mode != "constant":
        return {"input": _separable.apply_vjp(g, _maps(shape, pad, mode))}
    # g read back from the window (the fill is a constant; cropped inputs get 0)
    gx = np.zeros(shape)
    _, window, kept = _windows(shape, pad)
    gx[kept] = np.asarray(g)[window]
    return {"input": gx}


# --- constant and zero padding -------------------------------------------------------------


def constant_pad1d(input: Array, pad: Sequence[int], mode: str = "constant",
                   value: float | None = None) -> Array:
    r"""z[..., j] = x[..., j - left] where 0 <= j - left < L, else ``value`` (0 if None):
    the last dimension padded by pad = (left, right); negative entries crop. Shapes: ``input``
    (*, L), the result (*, L + left + right)
    (https://pytorch.org/docs/stable/generated/torch.nn.ConstantPad1d.html)."""
    return _pad(input, pad, "constant", value)


def constant_pad1d_vjp(g: Array, input: Array, pad: Sequence[int], mode: str = "constant",
                       value: float | None = None) -> dict[str, Array]:
    r"""VJP of :func:`constant_pad1d`: dL/dx[..., p] = g[..., p + left] for the kept inputs
    (cropped inputs get 0; the fill value is a constant)."""
    return _pad_vjp(g, input, pad, "constant")


def constant_pad2d(input: Array, pad: Sequence[int], mode: str = "constant",
                   value: float | None = None) -> Array:
    r"""z[..., i, j] = x[..., i - top, j - left] inside the input, else ``value``: the last two
    dimensions padded by pad = (left, right, top, bottom). Shapes: ``input`` (*, H, W)
    (https://pytorch.org/docs/stable/generated/torch.nn.ConstantPad2d.html)."""
    return _pad(input, pad, "constant", value)


def constant_pad2d_vjp(g: Array, input: Array, pad: Sequence[int], mode: str = "constant",
                       value: float | None = None) -> dict[str, Array]:
    r"""VJP of :func:`constant_pad2d`: g cropped back to the input's window (0 where cropped)."""
    return _pad_vjp(g, input, pad, "constant")


def constant_pad3d(input: Array, pad: Sequence[int], mode: str = "constant",
                   value: float | None = None) -> Array:
    r""":func:`constant_pad2d` over the last three dimensions, pad = (left, right, top, bottom,
    front, back) (https://pytorch.org/docs/stable/generated/torch.nn.ConstantPad3d.html)."""
    return _pad(input, pad, "constant", value)


def constant_pad3d_vjp(g: Array, input: Array, pad: Sequence[int], mode: str = "constant",
                       value: float | None = None) -> dict[str, Array]:
    r"""VJP of :func:`constant_pad3d`: g cropped back to the input's window."""
    return _pad_vjp(g, input, pad, "constant")


def zero_pad1d(input: Array, pad: Sequence[int]) -> Array:
    r""":func:`constant_pad1d` with value 0: ``F.pad(input, pad)`` with the default mode and
    value (https://pytorch.org/docs/stable/generated/torch.nn.ZeroPad1d.html)."""
    return _pad(input, pad, "constant", None)


def zero_pad1d_vjp(g: Array, input: Array, pad: Sequence[int]) -> dict[str, Array]:
    r"""VJP of :func:`zero_pad1d`: g cropped back to the input's window."""
    return _pad_vjp(g, input, pad, "constant")


def zero_pad2d(input: Array, pad: Sequence[int]) -> Array:
    r""":func:`constant_pad2d` with value 0
    (https://pytorch.org/docs/stable/generated/torch.nn.ZeroPad2d.html)."""
    return _pad(input, pad, "constant", None)


def zero_pad2d_vjp(g: Array, input: Array, pad: Sequence[int]) -> dict[str, Array]:
    r"""VJP of :func:`zero_pad2d`: g cropped back to the input's window."""
    return _pad_vjp(g, input, pad, "constant")


def zero_pad3d(input: Array, pad: Sequence[int]) -> Array:
    r""":func:`constant_pad3d` with value 0
    (https://pytorch.org/docs/stable/generated/torch.nn.ZeroPad3d.html)."""
    return _pad(input, pad, "constant", None)


def zero_pad3d_vjp(g: Array, input: Array, pad: Sequence[int]) -> dict[str, Array]:
    r"""VJP of :func:`zero_pad3d`: g cropped back to the input's window."""
    return _pad_vjp(g, input, pad, "constant")


# --- reflection ----------------------------------------------------------------------------


def reflection_pad1d(input: Array, pad: Sequence[int], mode: str = "reflect") -> Array:
    r"""z[..., j] = x[..., s(j - left)] with the reflection s(p) = |p| for p < L and
    2 (L - 1) - p beyond (the edge element is the mirror, not repeated): [a b c d] padded by
    (2, 1) is [c b a b c d c]. torch requires each padding < L. Shapes: ``input`` (C, L) or
    (N, C, L) (https://pytorch.org/docs/stable/generated/torch.nn.ReflectionPad1d.html)."""
    return _pad(input, pad, "reflect", None)


def reflection_pad1d_vjp(g: Array, input: Array, pad: Sequence[int],
                         mode: str = "reflect") -> dict[str, Array]:
    r"""VJP of :func:`reflection_pad1d`: dL/dx[p] = sum of g over the outputs that read p
    (p itself and its mirror images near the edges)."""
    return _pad_vjp(g, input, pad, "reflect")


def reflection_pad2d(input: Array, pad: Sequence[int], mode: str = "reflect") -> Array:
    r""":func:`reflection_pad1d` along each of the last two dimensions (the corners are
    reflections of reflections): z[..., i, j] = x[..., s_H(i - top), s_W(j - left)]. Shapes:
    ``input`` (C, H, W) or (N, C, H, W)
    (https://pytorch.org/docs/stable/generated/torch.nn.ReflectionPad2d.html)."""
    return _pad(input, pad, "reflect", None)


def reflection_pad2d_vjp(g: Array, input: Array, pad: Sequence[int],
                         mode: str = "reflect") -> dict[str, Array]:
    r"""VJP of :func:`reflection_pad2d`: the scatter-add of g to the reflected sources."""
    return _pad_vjp(g, input, pad, "reflect")


def reflection_pad3d(input: Array, pad: Sequence[int], mode: str = "reflect") -> Array:
    r""":func:`reflection_pad1d` along each of the last three dimensions. Shapes: ``input``
    (C, D, H, W) or (N, C, D, H, W)
    (https://pytorch.org/docs/stable/generated/torch.nn.ReflectionPad3d.html)."""
    return _pad(input, pad, "reflect", None)


def reflection_pad3d_vjp(g: Array, input: Array, pad: Sequence[int],
                         mode: str = "reflect") -> dict[str, Array]:
    r"""VJP of :func:`reflection_pad3d`: the scatter-add of g to the reflected sources."""
    return _pad_vjp(g, input, pad, "reflect")


# --- replication ---------------------------------------------------------------------------


def replication_pad1d(input: Array, pad: Sequence[int], mode: str = "replicate") -> Array:
    r"""z[..., j] = x[..., clamp(j - left, 0, L - 1)]: the edge values repeated ([a b c]
    padded by (2, 1) is [a a a b c c]). Shapes: ``input`` (C, L) or (N, C, L)
    (https://pytorch.org/docs/stable/generated/torch.nn.ReplicationPad1d.html)."""
    return _pad(input, pad, "replicate", None)


def replication_pad1d_vjp(g: Array, input: Array, pad: Sequence[int],
                          mode: str = "replicate") -> dict[str, Array]:
    r"""VJP of :func:`replication_pad1d`: each edge element receives the sum of g over its
    copies; inner elements their own g."""
    return _pad_vjp(g, input, pad, "replicate")


def replication_pad2d(input: Array, pad: Sequence[int], mode: str = "replicate") -> Array:
    r""":func:`replication_pad1d` along each of the last two dimensions (a corner repeats the
    corner element). Shapes: ``input`` (C, H, W) or (N, C, H, W)
    (https://pytorch.org/docs/stable/generated/torch.nn.ReplicationPad2d.html)."""
    return _pad(input, pad, "replicate", None)


def replication_pad2d_vjp(g: Array, input: Array, pad: Sequence[int],
                          mode: str = "replicate") -> dict[str, Array]:
    r"""VJP of :func:`replication_pad2d`: the scatter-add of g to the clamped sources."""
    return _pad_vjp(g, input, pad, "replicate")


def replication_pad3d(input: Array, pad: Sequence[int], mode: str = "replicate") -> Array:
    r""":func:`replication_pad1d` along each of the last three dimensions. Shapes: ``input``
    (C, D, H, W) or (N, C, D, H, W)
    (https://pytorch.org/docs/stable/generated/torch.nn.ReplicationPad3d.html)."""
    return _pad(input, pad, "replicate", None)


def replication_pad3d_vjp(g: Array, input: Array, pad: Sequence[int],
                          mode: str = "replicate") -> dict[str, Array]:
    r"""VJP of :func:`replication_pad3d`: the scatter-add of g to the clamped sources."""
    return _pad_vjp(g, input, pad, "replicate")


# --- circular ------------------------------------------------------------------------------


def circular_pad1d(input: Array, pad: Sequence[int], mode: str = "circular") -> Array:
    r"""Periodic padding: the input's beginning pads its end and its end pads its beginning,
    z[..., j] = x[..., c + (j - max(left, 0)) mod L'] ([a b c d] padded by (2, 1) is
    [c d a b c d a]), after negative paddings removed their ends (c = max(-left, 0),
    L' = L - c - max(-right, 0)); each positive padding is at most L'. Shapes: ``input``
    (C, L) or (N, C, L) (https://pytorch.org/docs/stable/generated/torch.nn.CircularPad1d.html).
    """
    return _pad(input, pad, "circular", None)


def circular_pad1d_vjp(g: Array, input: Array, pad: Sequence[int],
                       mode: str = "circular") -> dict[str, Array]:
    r"""VJP of :func:`circular_pad1d`: each kept element receives the sum of g over itself and
    its periodic copies; cropped elements 0."""
    return _pad_vjp(g, input, pad, "circular")


def circular_pad2d(input: Array, pad: Sequence[int], mode: str = "circular") -> Array:
    r""":func:`circular_pad1d` along each of the last two dimensions (a torus). Shapes:
    ``input`` (C, H, W) or (N, C, H, W)
    (https://pytorch.org/docs/stable/generated/torch.nn.CircularPad2d.html)."""
    return _pad(input, pad, "circular", None)


def circular_pad2d_vjp(g: Array, input: Array, pad: Sequence[int],
                       mode: str = "circular") -> dict[str, Array]:
    r"""VJP of :func:`circular_pad2d`: the scatter-add of g to the periodic sources."""
    return _pad_vjp(g, input, pad, "circular")


def circular_pad3d(input: Array, pad: Sequence[int], mode: str = "circular") -> Array:
    r""":func:`circular_pad1d` along each of the last three dimensions. Shapes: ``input``
    (C, D, H, W) or (N, C, D, H, W)
    (https://pytorch.org/docs/stable/generated/torch.nn.CircularPad3d.html)."""
    return _pad(input, pad, "circular", None)


def circular_pad3d_vjp(g: Array, input: Array, pad: Sequence[int],
                       mode: str = "circular") -> dict[str, Array]:
    r"""VJP of :func:`circular_pad3d`: the scatter-add of g to the periodic sources."""
    return _pad_vjp(g, input, pad, "circular")
