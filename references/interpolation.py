r"""Interpolation (``F.interpolate`` / ``nn.Upsample``), NumPy float64: nearest, nearest-exact,
(bi/tri)linear, bicubic, area, and the antialiased bilinear, bicubic and Lanczos filters.

Every mode is separable: along each spatial dimension of input side n and output side o it is a
matrix W (o x n), and the output is W_1 x W_2 ... applied along the dimensions
(``references._separable``); the VJP applies the transposed matrices. What distinguishes the
modes is W, built from the source coordinate of output position j; row j has only a few
nonzeros (its taps: the input positions it reads and their weights), and W is held by them.

Output sides and scales (torch's docs for F.interpolate): ``size`` gives o directly;
``scale_factor`` s gives o = floor(n s). The scale mapping output to input coordinates is

    scale = (n - 1) / (o - 1)          with align_corners=True (0 when o = 1),
    scale = 1 / s                      when s is given and recompute_scale_factor is not True,
    scale = n / o                      otherwise (size given, or s recomputed from o)

so a given scale factor is used as it is, not as the ratio of the rounded sizes
("recompute_scale_factor ... If False, then size or scale_factor will be used directly for
interpolation"). The source coordinate of output j is

    align_corners=False:  src = (j + 0.5) scale - 0.5   (pixel centres: the corners of the
                                                        corner pixels are aligned)
    align_corners=True:   src = j scale                 (the centres of the corner pixels)

and each mode reads the input around src:

* nearest: i = min(floor(j scale), n - 1) (torch's legacy rule, OpenCV's INTER_NEAREST: not
  centred); nearest-exact: i = min(floor((j + 0.5) scale), n - 1) (the centred rule of
  Pillow and scikit-image). No align_corners.
* linear: src clamped below at 0 (align_corners=False), i0 = min(floor(src), n - 1),
  i1 = min(i0 + 1, n - 1), weights 1 - l and l with l = src - i0: the edge value is repeated
  beyond the last centre.
* bicubic: Keys' cubic convolution with A = -0.75 on the four neighbours i - 1 .. i + 2 of
  i = floor(src), t = src - i (src not clamped; neighbour indices clamped to [0, n - 1], so
  the border pixel is repeated):
      w(x) = (A + 2)|x|^3 - (A + 3)|x|^2 + 1           for |x| <= 1
      w(x) = A|x|^3 - 5A|x|^2 + 8A|x| - 4A             for 1 < |x| < 2
  with weights w(t + 1), w(t), w(1 - t), w(2 - t).
* area: the mean over each adaptive window [floor(j n / o), ceil((j + 1) n / o)) (it is
  adaptive average pooling; a scale factor only sets o).
* antialias (bilinear, bicubic, Lanczos; Pillow's resampling, which torch's docs say it
  matches for downsampling with align_corners=False): the filter is stretched by the scale
  when downsampling, so every input pixel under the output pixel contributes. With
  support = (taps / 2) max(scale, 1) and centre c = scale (j + 0.5),
      the window is i = xmin .. xmax - 1,  xmin = max(trunc(c - support + 0.5), 0),
                                             xmax = min(trunc(c + support + 0.5), n)
      weight_i = f((i - c + 0.5) / max(scale, 1)), normalised to sum 1 over the window
  with f the triangle max(0, 1 - |x|) (bilinear, 2 taps), Keys' cubic with A = -0.5 (bicubic,
  4 taps; Pillow's constant) or sinc(x) sinc(x / 3) for |x| < 3 (Lanczos-3, 6 taps). With
  align_corners=True torch uses the align-corners scale in the same formula.

Follows https://pytorch.org/docs/stable/generated/torch.nn.functional.interpolate.html and
https://pytorch.org/docs/stable/generated/torch.nn.Upsample.html.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from references import _separable
from references.pooling import _adaptive_avg_taps

Array = NDArray[np.float64]
Size = int | Sequence[int] | None
Scale = float | Sequence[float] | None

KEYS_A = -0.75
"""The cubic convolution parameter of bicubic interpolation (torch, like OpenCV)."""
PILLOW_A = -0.5
"""The cubic convolution parameter of antialiased bicubic resampling (Pillow's)."""


def _output_geometry(sides: Sequence[int], size: Size, scale_factor: Scale,
                    recompute_scale_factor: bool | None) -> tuple[list[int], list[float | None]]:
    """The output sides o and the scale factors used for the coordinates (None where the
    scale is n / o): ``size`` as given; or o = floor(n s), with s kept unless recomputed."""
    d = len(sides)
    if size is not None:
        out = [int(size)] * d if isinstance(size, int | np.integer) else [int(o) for o in size]
        return out, [None] * d
    assert scale_factor is not None, "interpolation needs size or scale_factor"
    s = [float(scale_factor)] * d if isinstance(scale_factor, float | int) \
        else [float(v) for v in scale_factor]
    out = [math.floor(n * si) for n, si in zip(sides, s, strict=True)]
    return out, [None] * d if recompute_scale_factor else list(s)


def _scale(n: int, o: int, align_corners: bool | None, s: float | None) -> float:
    if align_corners:
        return (n - 1) / (o - 1) if o > 1 else 0.0
    return 1.0 / s if s is not None and s > 0 else n / o


def _source(n: int, o: int, align_corners: bool | None, s: float | None) -> Array:
    """src(j) for j = 0 .. o - 1 (not clamped)."""
    scale = _scale(n, o, align_corners, s)
    j = np.arange(o, dtype=np.float64)
    return j * scale if align_corners else (j + 0.5) * scale - 0.5


def _nearest_taps(n: int, o: int, s: float | None, offset: float) -> _separable.Taps:
    scale = _scale(n, o, False, s)
    source = np.minimum(np.floor((np.arange(o) + offset) * scale), n - 1).astype(np.int64)
    return _separable.gather(source, n)


def _linear_taps(n: int, o: int, align_corners: bool | None, s: float | None
                 ) -> _separable.Taps:
    src = np.maximum(_source(n, o, align_corners, s), 0.0)
    i0 = np.minimum(np.floor(src), n - 1).astype(np.int64)
    lam = np.clip(src - i0, 0.0, 1.0)
    i1 = np.minimum(i0 + 1, n - 1)
    return _separable.taps(np.stack([i0, i1], axis=1), np.stack([1.0 - lam, lam], axis=1), n)


def _cubic(x: Array, a: float) -> Array:
    """Keys' cubic convolution kernel w(x) with parameter a (0 for |x| >= 2)."""
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    return np.where(x <= 1.0, near, np.where(x < 2.0, far, 0.0))


def _cubic_taps(n: int, o: int, align_corners: bool | None, s: float | None
                ) -> _separable.Taps:
    src = _source(n, o, align_corners, s)
    i = np.floor(src)
    t = src - i
    k = np.arange(-1, 3)  # the four neighbours, at distance |k - t| from src
    index = np.clip(i[:, None] + k, 0, n - 1).astype(np.int64)
    return _separable.taps(index, _cubic(k - t[:, None], KEYS_A), n)


def _triangle(x: Array) -> Array:
    return np.maximum(0.0, 1.0 - np.abs(x))


def _pillow_cubic(x: Array) -> Array:
    return _cubic(x, PILLOW_A)


def _lanczos3(x: Array) -> Array:
    return np.where(np.abs(x) < 3.0, np.sinc(x) * np.sinc(x / 3.0), 0.0)


# filter and number of taps of each antialiased mode
_FILTERS: dict[str, tuple[Callable[[Array], Array], int]] = {
    "bilinear": (_triangle, 2), "bicubic": (_pillow_cubic, 4), "lanczos": (_lanczos3, 6)}


def _antialias_window(n: int, o: int, align_corners: bool | None, s: float | None,
                      mode: str
                      ) -> tuple[NDArray[np.int64], Array, NDArray[np.bool_], Array, float]:
    """Output j's window: source indices i (o, K), the filter's arguments
    (i - c_j + 0.5) / stretch, which taps lie inside it, the centres c_j, and the stretch."""
    _, taps = _FILTERS[mode]
    scale = _scale(n, o, align_corners, s)
    stretch = max(scale, 1.0)
    support = taps / 2 * stretch
    centre: Array = scale * (np.arange(o, dtype=np.float64) + 0.5)
    xmin = np.maximum(np.trunc(centre - support + 0.5), 0).astype(np.int64)
    xmax = np.minimum(np.trunc(centre + support + 0.5), n).astype(np.int64)
    width = max(int(np.max(xmax - xmin, initial=0)), 1)
    i: NDArray[np.int64] = xmin[:, None] + np.arange(width, dtype=np.int64)  # the windows
    argument: Array = (i - centre[:, None] + 0.5) / stretch
    return i, argument, i < xmax[:, None], centre, stretch


def _antialias_taps(n: int, o: int, align_corners: bool | None, s: float | None,
                    mode: str) -> _separable.Taps:
    f, _ = _FILTERS[mode]
    i, argument, inside, _, _ = _antialias_window(n, o, align_corners, s, mode)
    w = np.where(inside, f(argument), 0.0)
    total = w.sum(axis=1, keepdims=True)
    return _separable.taps(i, np.divide(w, total, out=np.zeros_like(w), where=total != 0), n)


def _maps(sides: Sequence[int], mode: str, size: Size, scale_factor: Scale,
          align_corners: bool | None, recompute_scale_factor: bool | None,
          antialias: bool) -> list[_separable.Taps]:
    out, scales = _output_geometry(sides, size, scale_factor, recompute_scale_factor)
    maps = []
    for n, o, s in zip(sides, out, scales, strict=True):
        if antialias:
            maps.append(_antialias_taps(n, o, align_corners, s, mode))
        elif mode in ("nearest", "nearest-exact"):
            maps.append(_nearest_taps(n, o, s, 0.5 if mode == "nearest-exact" else 0.0))
        elif mode in ("linear", "bilinear", "trilinear"):
            maps.append(_linear_taps(n, o, align_corners, s))
        elif mode == "bicubic":
            maps.append(_cubic_taps(n, o, align_corners, s))
        else:
            assert mode == "area", f"unknown interpolation mode {mode!r}"
            maps.append(_adaptive_avg_taps(n, o))
    return maps


def _interpolate(input: Array, size: Size, scale_factor: Scale, mode: str,
                 align_corners: bool | None, recompute_scale_factor: bool | None,
                 antialias: bool) -> Array:
    x = np.asarray(input, dtype=np.float64)
    return _separable.apply(x, _maps(x.shape[2:], mode, size, scale_factor, align_corners,
                                     recompute_scale_factor, antialias))


def _interpolate_vjp(g: Array, input: Array, size: Size, scale_factor: Scale, mode: str,
                     align_corners: bool | None, recompute_scale_factor: bool | None,
                     antialias: bool) -> dict[str, Array]:
    maps = _maps(np.shape(input)[2:], mode, size, scale_factor, align_corners,
                 recompute_scale_factor, antialias)
    return {"input": _separable.apply_vjp(g, maps)}


def interpolate_nearest(input: Array, size: Size = None, scale_factor: Scale = None,
                        mode: str = "nearest", align_corners: bool | None = None,
                        recompute_scale_factor: bool | None = None,
                        antialias: bool = False) -> Array:
    r"""Nearest-neighbour resampling of the last 1-3 dimensions of (N, C, *spatial):

        z[..., j] = x[..., min(floor(j scale), n - 1)]   along each dimension

    with scale = 1 / s for a given scale factor, n / o otherwise (module docstring). The legacy
    rule: it is not centred (output pixel 0 reads input pixel 0 whatever the scale).
    """
    return _interpolate(input, size, scale_factor, "nearest", None, recompute_scale_factor,
                        False)


def interpolate_nearest_vjp(g: Array, input: Array, size: Size = None,
                            scale_factor: Scale = None, mode: str = "nearest",
                            align_corners: bool | None = None,
                            recompute_scale_factor: bool | None = None,
                            antialias: bool = False) -> dict[str, Array]:
    r"""VJP of :func:`interpolate_nearest`: the adjoint of the gather, each input pixel
    receiving the sum of g over the output pixels that copied it (0 for pixels skipped when
    downsampling)."""
    return _interpolate_vjp(g, input, size, scale_factor, "nearest", None,
                            recompute_scale_factor, False)


def interpolate_nearest_exact(input: Array, size: Size = None, scale_factor: Scale = None,
                              mode: str = "nearest-exact", align_corners: bool | None = None,
                              recompute_scale_factor: bool | None = None,
                              antialias: bool = False) -> Array:
    r"""Centred nearest-neighbour resampling (mode ``nearest-exact``):

        z[..., j] = x[..., min(floor((j + 0.5) scale), n - 1)]

    i.e. the input pixel whose centre is nearest output centre j (ties at half-pixel rounding
    up), which is what Pillow and scikit-image do.
    """
    return _interpolate(input, size, scale_factor, "nearest-exact", None,
                        recompute_scale_factor, False)


def interpolate_nearest_exact_vjp(g: Array, input: Array, size: Size = None,
                                  scale_factor: Scale = None, mode: str = "nearest-exact",
                                  align_corners: bool | None = None,
                                  recompute_scale_factor: bool | None = None,
                                  antialias: bool = False) -> dict[str, Array]:
    r"""VJP of :func:`interpolate_nearest_exact`: g summed back onto the copied pixels."""
    return _interpolate_vjp(g, input, size, scale_factor, "nearest-exact", None,
                            recompute_scale_factor, False)


def interpolate_linear(input: Array, size: Size = None, scale_factor: Scale = None,
                       mode: str = "linear", align_corners: bool | None = None,
                       recompute_scale_factor: bool | None = None,
                       antialias: bool = False) -> Array:
    r"""Linear interpolation of (N, C, W):

        z[..., j] = (1 - l) x[..., i0] + l x[..., i1],   l = src - i0

    with src = max((j + 0.5) scale - 0.5, 0) (align_corners=False) or j (n - 1) / (o - 1)
    (align_corners=True), i0 = min(floor(src), n - 1), i1 = min(i0 + 1, n - 1).
    """
    return _interpolate(input, size, scale_factor, "linear", align_corners,
                        recompute_scale_factor, False)


def interpolate_linear_vjp(g: Array, input: Array, size: Size = None,
                           scale_factor: Scale = None, mode: str = "linear",
                           align_corners: bool | None = None,
                           recompute_scale_factor: bool | None = None,
                           antialias: bool = False) -> dict[str, Array]:
    r"""VJP of :func:`interpolate_linear`: dL/dx[i] = sum over outputs j of g[j] W[j, i] (each
    output sends (1 - l) g to i0 and l g to i1)."""
    return _interpolate_vjp(g, input, size, scale_factor, "linear", align_corners,
                            recompute_scale_factor, False)


def interpolate_bilinear(input: Array, size: Size = None, scale_factor: Scale = None,
                         mode: str = "bilinear", align_corners: bool | None = None,
                         recompute_scale_factor: bool | None = None,
                         antialias: bool = False) -> Array:
    r"""Bilinear interpolation of (N, C, H, W): :func:`interpolate_linear` along H and along W,

        z[..., y, x] = sum_{a, b in {0, 1}} w_a(y) w_b(x) x[..., i_a(y), i_b(x)]

    (the product of the two one-dimensional weights: the four neighbours' bilinear weights).
    """
    return _interpolate(input, size, scale_factor, "bilinear", align_corners,
                        recompute_scale_factor, False)


def interpolate_bilinear_vjp(g: Array, input: Array, size: Size = None,
                             scale_factor: Scale = None, mode: str = "bilinear",
                             align_corners: bool | None = None,
                             recompute_scale_factor: bool | None = None,
                             antialias: bool = False) -> dict[str, Array]:
    r"""VJP of :func:`interpolate_bilinear`: dL/dx = W_H^T g W_W."""
    return _interpolate_vjp(g, input, size, scale_factor, "bilinear", align_corners,
                            recompute_scale_factor, False)


def interpolate_trilinear(input: Array, size: Size = None, scale_factor: Scale = None,
                          mode: str = "trilinear", align_corners: bool | None = None,
                          recompute_scale_factor: bool | None = None,
                          antialias: bool = False) -> Array:
    r"""Trilinear interpolation of (N, C, D, H, W): :func:`interpolate_linear` along each of the
    three dimensions (eight neighbours, weights the products of the one-dimensional ones)."""
    return _interpolate(input, size, scale_factor, "trilinear", align_corners,
                        recompute_scale_factor, False)


def interpolate_trilinear_vjp(g: Array, input: Array, size: Size = None,
                              scale_factor: Scale = None, mode: str = "trilinear",
                              align_corners: bool | None = None,
                              recompute_scale_factor: bool | None = None,
                              antialias: bool = False) -> dict[str, Array]:
    r"""VJP of :func:`interpolate_trilinear`: the transposed weights along each dimension."""
    return _interpolate_vjp(g, input, size, scale_factor, "trilinear", align_corners,
                            recompute_scale_factor, False)


def interpolate_bicubic(input: Array, size: Size = None, scale_factor: Scale = None,
                        mode: str = "bicubic", align_corners: bool | None = None,
                        recompute_scale_factor: bool | None = None,
                        antialias: bool = False) -> Array:
    r"""Bicubic interpolation of (N, C, H, W): along each of H and W,

        z[..., j] = sum_{k = -1..2} w(k - t) x[..., clamp(i + k, 0, n - 1)]

    i = floor(src), t = src - i, w Keys' cubic convolution with A = -0.75 (module docstring;
    src is not clamped, the neighbours are). It overshoots: z may leave [min x, max x].
    """
    return _interpolate(input, size, scale_factor, "bicubic", align_corners,
                        recompute_scale_factor, False)


def interpolate_bicubic_vjp(g: Array, input: Array, size: Size = None,
                            scale_factor: Scale = None, mode: str = "bicubic",
                            align_corners: bool | None = None,
                            recompute_scale_factor: bool | None = None,
                            antialias: bool = False) -> dict[str, Array]:
    r"""VJP of :func:`interpolate_bicubic`: each output sends w(k - t) g to its four (clamped)
    neighbours along each dimension; border pixels collect the weights of the clamped ones."""
    return _interpolate_vjp(g, input, size, scale_factor, "bicubic", align_corners,
                            recompute_scale_factor, False)


def interpolate_area(input: Array, size: Size = None, scale_factor: Scale = None,
                     mode: str = "area", align_corners: bool | None = None,
                     recompute_scale_factor: bool | None = None,
                     antialias: bool = False) -> Array:
    r"""Area interpolation: adaptive average pooling to the output sides,

        z[..., j] = mean of x[..., i] over i in [floor(j n / o), ceil((j + 1) n / o))

    along each dimension (a scale factor only sets o = floor(n s); torch recomputes it).
    """
    return _interpolate(input, size, scale_factor, "area", None, True, False)


def interpolate_area_vjp(g: Array, input: Array, size: Size = None, scale_factor: Scale = None,
                         mode: str = "area", align_corners: bool | None = None,
                         recompute_scale_factor: bool | None = None,
                         antialias: bool = False) -> dict[str, Array]:
    r"""VJP of :func:`interpolate_area`: each window's g spread evenly over the window."""
    return _interpolate_vjp(g, input, size, scale_factor, "area", None, True, False)


def interpolate_bilinear_antialias(input: Array, size: Size = None, scale_factor: Scale = None,
                                   mode: str = "bilinear", align_corners: bool | None = None,
                                   recompute_scale_factor: bool | None = None,
                                   antialias: bool = True) -> Array:
    r"""Antialiased bilinear resampling of (N, C, H, W) (``antialias=True``): along each
    dimension the triangle filter max(0, 1 - |x|), stretched by the scale when downsampling,
    over the window around centre scale (j + 0.5), weights normalised to sum 1 (module
    docstring). Upsampling: the plain triangle of radius 1, but the window stops at the border
    and is renormalised (unlike plain bilinear, which repeats the edge pixel)."""
    return _interpolate(input, size, scale_factor, "bilinear", align_corners,
                        recompute_scale_factor, True)


def interpolate_bilinear_antialias_vjp(g: Array, input: Array, size: Size = None,
                                       scale_factor: Scale = None, mode: str = "bilinear",
                                       align_corners: bool | None = None,
                                       recompute_scale_factor: bool | None = None,
                                       antialias: bool = True) -> dict[str, Array]:
    r"""VJP of :func:`interpolate_bilinear_antialias`: the transposed normalised weights."""
    return _interpolate_vjp(g, input, size, scale_factor, "bilinear", align_corners,
                            recompute_scale_factor, True)


def interpolate_bicubic_antialias(input: Array, size: Size = None, scale_factor: Scale = None,
                                  mode: str = "bicubic", align_corners: bool | None = None,
                                  recompute_scale_factor: bool | None = None,
                                  antialias: bool = True) -> Array:
    r"""Antialiased bicubic resampling of (N, C, H, W): the cubic filter with Pillow's
    A = -0.5 (not bicubic's -0.75), support 2 stretched by the scale when downsampling,
    weights normalised to sum 1 (module docstring)."""
    return _interpolate(input, size, scale_factor, "bicubic", align_corners,
                        recompute_scale_factor, True)


def interpolate_bicubic_antialias_vjp(g: Array, input: Array, size: Size = None,
                                      scale_factor: Scale = None, mode: str = "bicubic",
                                      align_corners: bool | None = None,
                                      recompute_scale_factor: bool | None = None,
                                      antialias: bool = True) -> dict[str, Array]:
    r"""VJP of :func:`interpolate_bicubic_antialias`: the transposed normalised weights."""
    return _interpolate_vjp(g, input, size, scale_factor, "bicubic", align_corners,
                            recompute_scale_factor, True)


def interpolate_lanczos(input: Array, size: Size = None, scale_factor: Scale = None,
                        mode: str = "lanczos", align_corners: bool | None = None,
                        recompute_scale_factor: bool | None = None,
                        antialias: bool = True) -> Array:
    r"""Lanczos-3 resampling of (N, C, H, W) (mode ``lanczos``, which torch requires with
    ``antialias=True`` and without align_corners): the windowed sinc
    f(x) = sinc(x) sinc(x / 3) for |x| < 3 (sinc(x) = sin(pi x) / (pi x)), 6 taps stretched by
    the scale when downsampling, weights normalised to sum 1 (module docstring; Pillow's
    LANCZOS filter)."""
    return _interpolate(input, size, scale_factor, "lanczos", align_corners,
                        recompute_scale_factor, True)


def interpolate_lanczos_vjp(g: Array, input: Array, size: Size = None,
                            scale_factor: Scale = None, mode: str = "lanczos",
                            align_corners: bool | None = None,
                            recompute_scale_factor: bool | None = None,
                            antialias: bool = True) -> dict[str, Array]:
    r"""VJP of :func:`interpolate_lanczos`: the transposed normalised weights."""
    return _interpolate_vjp(g, input, size, scale_factor, "lanczos", align_corners,
                            recompute_scale_factor, True)
