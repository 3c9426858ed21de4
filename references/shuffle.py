r"""Pixel shuffle, pixel unshuffle and channel shuffle, NumPy float64: permutations of a tensor's
elements, written as reshapes and transposes.

A permutation z = P x has the inverse permutation as its VJP, dL/dx = P^T g = P^{-1} g: pixel
shuffle and unshuffle are each other's VJP, and channel shuffle's VJP shuffles with the group
count and the group size exchanged.

Follows https://pytorch.org/docs/stable/generated/torch.nn.PixelShuffle.html,
https://pytorch.org/docs/stable/generated/torch.nn.PixelUnshuffle.html and
https://pytorch.org/docs/stable/generated/torch.nn.ChannelShuffle.html.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def pixel_shuffle(input: Array, upscale_factor: int) -> Array:
    r"""Depth to space: (*, C r^2, H, W) -> (*, C, H r, W r) with

        z[..., c, h r + i, w r + j] = x[..., c r^2 + i r + j, h, w]

    (each group of r^2 channels becomes an r x r block of pixels), r = ``upscale_factor``.
    """
    x = np.asarray(input, dtype=np.float64)
    r = int(upscale_factor)
    *batch, channels, h, w = x.shape
    c = channels // (r * r)
    blocks = x.reshape(*batch, c, r, r, h, w)  # (..., c, i, j, h, w)
    k = len(batch)
    order = (*range(k), k, k + 3, k + 1, k + 4, k + 2)  # (..., c, h, i, w, j)
    return blocks.transpose(order).reshape(*batch, c, h * r, w * r)


def pixel_shuffle_vjp(g: Array, input: Array, upscale_factor: int) -> dict[str, Array]:
    r"""VJP of :func:`pixel_shuffle`, a permutation: its inverse, dL/dx = pixel_unshuffle(g, r)."""
    return {"input": pixel_unshuffle(g, upscale_factor)}


def pixel_unshuffle(input: Array, downscale_factor: int) -> Array:
    r"""Space to depth, the inverse of :func:`pixel_shuffle`: (*, C, H r, W r) -> (*, C r^2, H, W)
    with

        z[..., c r^2 + i r + j, h, w] = x[..., c, h r + i, w r + j],   r = ``downscale_factor``.
    """
    x = np.asarray(input, dtype=np.float64)
    r = int(downscale_factor)
    *batch, c, hr, wr = x.shape
    h, w = hr // r, wr // r
    blocks = x.reshape(*batch, c, h, r, w, r)  # (..., c, h, i, w, j)
    k = len(batch)
    order = (*range(k), k, k + 2, k + 4, k + 1, k + 3)  # (..., c, i, j, h, w)
    return blocks.transpose(order).reshape(*batch, c * r * r, h, w)


def pixel_unshuffle_vjp(g: Array, input: Array, downscale_factor: int) -> dict[str, Array]:
    r"""VJP of :func:`pixel_unshuffle`: its inverse, dL/dx = pixel_shuffle(g, r)."""
    return {"input": pixel_shuffle(g, downscale_factor)}


def channel_shuffle(input: Array, groups: int) -> Array:
    r"""(N, C, *) with C = g k channels in g groups of k: the channels are read as a g x k
    matrix and written transposed,

        z[n, j g + i, ...] = x[n, i k + j, ...],   i < g (group), j < k (position in group)

    so each consecutive run of g output channels takes one channel from every group
    (ShuffleNet's channel shuffle).
    """
    x = np.asarray(input, dtype=np.float64)
    n, c, *rest = x.shape
    return x.reshape(n, groups, c // groups, *rest).swapaxes(1, 2).reshape(x.shape)


def channel_shuffle_vjp(g: Array, input: Array, groups: int) -> dict[str, Array]:
    r"""VJP of :func:`channel_shuffle`, a permutation: its inverse, which is the shuffle with
    the roles of g and k exchanged, dL/dx = channel_shuffle(g, C / groups)."""
    c = np.shape(input)[1]
    return {"input": channel_shuffle(g, c // groups)}
