"""Input makers for the spatial layers: transposed convolution, adaptive, LP and fractional
pooling, max unpooling, fold and unfold.

Every maker draws an input (N, C, *spatial) or unbatched (C, *spatial) with ``dims`` spatial
dimensions, the options over their documented ranges (each spelled as an int or a tuple where
torch accepts both), and values from a seed (``suite.strategies``). Sides stay small (tens of
elements, fewer in 3-d): the checks test the index arithmetic, which small sides exercise as
well as large ones, and every test runs dozens of examples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hypothesis import assume
from hypothesis import strategies as st

from references import conv as ref_conv
from references import pooling as ref_pooling
from suite import covering
from suite.inputs.layers import (
    VALUE_SCALES,
    _normal,
    _per_dim,
    _spelled,
    convolution_arrays,
    distinct_values,
    per_dim_factors,
    spatial_side,
)
from suite.specs import Array, Case, round_to
from suite.strategies import SEEDS, Shape

BATCHES = st.sampled_from([(), (1,), (2,)])
"""Batch shapes: unbatched, one sample, two samples."""


def _input_shape(draw: st.DrawFn, sides: list[int], max_channels: int = 3) -> Shape:
    batch = draw(BATCHES, label="batch")
    channels = draw(st.integers(1, max_channels), label="channels")
    return (*batch, channels, *sides)


# --- transposed convolution ----------------------------------------------------------------


@dataclass(frozen=True)
class TransposedConvolution:
    """conv_transpose{dims}d: ``input`` (N, C_in, *L) or (C_in, *L), ``weight``
    (C_in, C_out / groups, *k), optional ``bias`` (C_out,); options stride (1-3), padding,
    output_padding (below stride or dilation, as torch requires), groups (1-2), dilation (1-2).
    Padding is capped so every output side is at least 1. The weight is scaled by
    1 / sqrt(C_in / groups * prod(k)), the order of torch's default initialisation."""

    dims: int
    max_side: int = 6

    def strategy(self) -> st.SearchStrategy[Case]:
        return st.composite(lambda draw: self.draw_case(draw))()

    def draw_case(self, draw: st.DrawFn) -> Case:
        """One case, every choice through ``draw`` (suite.covering steers it)."""
        d = self.dims
        groups = draw(st.integers(1, 2), label="groups")
        c_in = groups * draw(st.integers(1, 3), label="in per group")
        c_out = groups * draw(st.integers(1, 3), label="out per group")
        kernel = _per_dim(draw, st.integers(1, 3), d, "kernel")
        stride = _per_dim(draw, st.integers(1, 3), d, "stride")
        dilation = _per_dim(draw, st.integers(1, 2), d, "dilation")
        sides = _per_dim(draw, st.integers(1, self.max_side), d, "side")
        extra, pads = [], []
        for i in range(d):
            extra.append(draw(st.integers(0, max(stride[i], dilation[i]) - 1),
                              label=f"output_padding[{i}]"))
            full = (sides[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + extra[i]
            pads.append(min(draw(st.integers(0, 2), label=f"padding[{i}]"), full // 2))
        batch = draw(BATCHES, label="batch")
        arrays, seed = convolution_arrays(draw, (*batch, c_in, *sides),
                                          (c_in, c_out // groups, *kernel),
                                          c_in // groups * math.prod(kernel), c_out)
        options = {"stride": _spelled(draw, stride, "stride"),
                   "padding": _spelled(draw, pads, "padding"),
                   "output_padding": _spelled(draw, extra, "output_padding"),
                   "groups": groups, "dilation": _spelled(draw, dilation, "dilation")}
        return Case(arrays, tuple(arrays), options, seed)


    def covering(self) -> covering.Factors:
        """Every pair of stride, dilation, output_padding, padding and kernel size per
        dimension, groups and bias (suite.covering). torch requires output_padding below the
        stride or the dilation."""
        d = self.dims
        values: dict[str, tuple[Any, ...]] = {
            "groups": (1, 2), **per_dim_factors("stride", (1, 2, 3), d),
            **per_dim_factors("dilation", (1, 2), d),
            **per_dim_factors("output_padding", (0, 1), d),
            **per_dim_factors("padding", (0, 1), d), **per_dim_factors("kernel", (1, 3), d),
            "bias": (False, True)}

        def allowed(row: Mapping[str, Any]) -> bool:
            return all(row.get(f"output_padding[{i}]", 0)
                       < max(row.get(f"stride[{i}]", 3), row.get(f"dilation[{i}]", 2))
                       for i in range(d))

        return covering.Factors(values, allowed)

    def sized(self, n: int, seed: int = 0) -> Case:
        rng = np.random.default_rng(seed)
        side = (spatial_side(n, self.dims) // 2,) * self.dims
        arrays = {"input": _normal(rng, (4, 8, *side)),
                  "weight": _normal(rng, (8, 8, *(3,) * self.dims)) / math.sqrt(8 * 3**self.dims),
                  "bias": _normal(rng, (8,))}
        return Case(arrays, tuple(arrays), {"stride": 2, "padding": 1, "output_padding": 1},
                    seed)


# --- adaptive pooling ----------------------------------------------------------------------


def _pool_input(rng: np.random.Generator, kind: str, shape: Shape, scale: float) -> Array:
    """Distinct values for a max (a unique argmax, far from ties), normal values for a mean."""
    return distinct_values(rng, shape, scale) if kind == "max" else _normal(rng, shape, scale)


@dataclass(frozen=True)
class AdaptivePooling:
    """adaptive_{kind}_pool{dims}d (``kind`` "max" or "avg"): sides 1 to ``max_side``, each
    output side 1 to the input side + 2 (windows of one element repeated are allowed), spelled
    as an int, a tuple, or (in 2-d and 3-d) a tuple with None for a side kept as it is."""

    kind: str
    dims: int
    max_side: int = 9

    def strategy(self) -> st.SearchStrategy[Case]:
        d = self.dims

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            sides = _per_dim(draw, st.integers(1, self.max_side), d, "side")
            out: list[int | None] = [draw(st.integers(1, n + 2), label=f"output_size[{i}]")
                                     for i, n in enumerate(sides)]
            if d > 1:
                out = [None if draw(st.integers(0, 4), label=f"keep side {i}") == 0 else o
                       for i, o in enumerate(out)]
            output_size: Any = out[0] if len(set(out)) == 1 and out[0] is not None and draw(
                st.booleans(), label="output_size as int") else tuple(out)
            shape = _input_shape(draw, sides)
            scale = draw(VALUE_SCALES, label="scale")
            seed = draw(SEEDS, label="seed")
            x = _pool_input(np.random.default_rng(seed), self.kind, shape, scale)
            return Case({"input": x}, ("input",), {"output_size": output_size}, seed)

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        side = spatial_side(n, self.dims)
        x = _pool_input(np.random.default_rng(seed), self.kind, (4, 8, *(side,) * self.dims),
                        1.0)
        return Case({"input": x}, ("input",), {"output_size": max(1, side // 3)}, seed)


# --- LP pooling ----------------------------------------------------------------------------

NORM_TYPES = (1, 2, 3, 1.5, 2.0, math.inf, -math.inf)
"""LP pooling's p: sum pooling, the 2-norm, odd and non-integer powers, and max (min) pooling
of |x| (p = inf, -inf)."""


@dataclass(frozen=True)
class LpPooling:
    """lp_pool{dims}d: ``norm_type`` from NORM_TYPES; kernel 1-3 (an int in 1-d: F.lp_pool1d
    multiplies by it), stride None or 1-3, ceil_mode. Values: signed normal for p = 1 and 2;
    distinct magnitudes (at least scale / size apart) with random signs for p = +-inf, so the
    argmax of |x| is unique; positive values in [0.2, 2.2] x scale for other p (x^p is NaN
    for negative x and non-integer p, and an odd power's negative window sum has no real root).
    With ceil_mode the sides are chosen so that no window overhangs the input: torch scales an
    overhanging window's sum (KNOWN_DIFFERENCES.md; tests/test_pooling.py shows it)."""

    dims: int
    max_side: int = 9

    def strategy(self) -> st.SearchStrategy[Case]:
        d = self.dims

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            p = draw(st.sampled_from(NORM_TYPES), label="norm_type")
            kernel = _per_dim(draw, st.integers(1, 3), d, "kernel")
            stride = _per_dim(draw, st.integers(1, 3), d, "stride") \
                if draw(st.booleans(), label="stride given") else None
            ceil_mode = draw(st.booleans(), label="ceil_mode")
            sides = []
            for i in range(d):
                n = draw(st.integers(kernel[i], max(kernel[i], self.max_side)),
                         label=f"side[{i}]")
                s = kernel[i] if stride is None else stride[i]
                sides.append(n - (n - kernel[i]) % s if ceil_mode else n)
            shape = _input_shape(draw, sides)
            scale = draw(VALUE_SCALES, label="scale")
            seed = draw(SEEDS, label="seed")
            x = _lp_input(np.random.default_rng(seed), p, shape, scale)
            options: dict[str, Any] = {"norm_type": p,
                                       "kernel_size": kernel[0] if d == 1
                                       else _spelled(draw, kernel, "kernel_size")}
            if stride is not None:
                options["stride"] = _spelled(draw, stride, "stride")
            options["ceil_mode"] = ceil_mode
            if p == 1:
                # p = 1 pools the window's signed sum S, whose derivative is 1 everywhere; torch
                # gives 0 where S is exactly 0 (KNOWN_DIFFERENCES.md, "lp_pool with norm_type
                # 1", a strict xfail in tests/test_pooling.py). Rounding to half precision can
                # make a window's values cancel exactly ([0.8193, -0.8193] in float16): drawn
                # around, in every dtype the checks round to.
                for dtype in (torch.float32, torch.float16, torch.bfloat16):
                    pool = getattr(ref_pooling, f"lp_pool{d}d")
                    sums = pool(round_to(x, dtype), 1, kernel[0] if d == 1 else tuple(kernel),
                                None if stride is None else tuple(stride), ceil_mode)
                    assume(np.all(sums != 0))
            return Case({"input": x}, ("input",), options, seed)

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        side = spatial_side(n, self.dims)
        x = _lp_input(np.random.default_rng(seed), 2.0, (4, 8, *(side,) * self.dims), 1.0)
        return Case({"input": x}, ("input",), {"norm_type": 2.0, "kernel_size": 3, "stride": 2},
                    seed)


def _lp_input(rng: np.random.Generator, p: float, shape: Shape, scale: float) -> Array:
    if p in (1, 2):
        return _normal(rng, shape, scale)
    if math.isinf(p):
        magnitudes = np.abs(distinct_values(rng, shape, scale)) + scale / 4
        return magnitudes * rng.choice([-1.0, 1.0], shape)
    return rng.uniform(0.2, 2.2, shape) * scale


# --- fractional max pooling ----------------------------------------------------------------

# Fractional pooling's window starts are floor((i + u) alpha) - floor(u alpha), computed by torch
# in the input's dtype: a product within rounding of an integer could floor either way. The
# samples are drawn so that every such product is at least this far from an integer (float32
# rounds products of magnitude <= 20 by < 2e-6).
FRACTIONAL_MARGIN = 1e-3


def _fractional_products(u: float, size: int, out: int, kernel: int) -> Array:
    """The products torch floors for one sample: (i + u) alpha, i = 0 .. out - 2."""
    if out <= 1:
        return np.zeros(0)
    alpha = (size - kernel) / (out - 1)
    return (np.arange(out - 1) + u) * alpha


def _fractional_sample(rng: np.random.Generator, size: int, out: int, kernel: int) -> float:
    """A sample u in [0, 1) whose products all keep FRACTIONAL_MARGIN from an integer."""
    while True:
        u = float(rng.random())
        t = _fractional_products(u, size, out, kernel)
        if not t.size or np.min(np.abs(t - np.round(t))) > FRACTIONAL_MARGIN:
            return u


@dataclass(frozen=True)
class FractionalPooling:
    """fractional_max_pool{dims}d: distinct values; kernel 1-3; output sides with
    out + kernel - 1 <= side in 2-d, < side in 3-d (torch's requirements), given as
    ``output_size`` or as ``output_ratio`` (a ratio r with int(side * r) = out);
    ``_random_samples`` (N, C, dims) in [0, 1) (N = 1 unbatched), away from the products'
    rounding boundaries."""

    dims: int
    max_side: int = 9

    def strategy(self) -> st.SearchStrategy[Case]:
        d = self.dims

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            kernel = _per_dim(draw, st.integers(1, 3), d, "kernel")
            # torch 2.13's 3-d kernel refuses out + kernel - 1 = side, which the 2-d kernel
            # accepts (KNOWN_DIFFERENCES.md, a strict xfail in tests/test_pooling.py)
            room = 1 if d == 2 else 0
            sides = [draw(st.integers(k + 1 - room, max(k + 1 - room, self.max_side)),
                          label=f"side[{i}]") for i, k in enumerate(kernel)]
            out = [draw(st.integers(1, n - k + room), label=f"output[{i}]")
                   for i, (n, k) in enumerate(zip(sides, kernel, strict=True))]
            shape = _input_shape(draw, sides)
            scale = draw(VALUE_SCALES, label="scale")
            seed = draw(SEEDS, label="seed")
            rng = np.random.default_rng(seed)
            x = distinct_values(rng, shape, scale)
            planes = (1 if len(shape) == d + 1 else shape[0], shape[-d - 1])
            # the sample that places dimension i (references.pooling: 2-d reads (1, 0))
            order = (1, 0) if d == 2 else tuple(range(d))
            samples = np.zeros((*planes, d))
            for i in range(d):
                for plane in np.ndindex(*planes):
                    samples[(*plane, order[i])] = _fractional_sample(rng, sides[i], out[i],
                                                                     kernel[i])
            options: dict[str, Any] = {"kernel_size": _spelled(draw, kernel, "kernel_size")}
            ratios = [(o + 0.5) / n for o, n in zip(out, sides, strict=True)]
            if max(ratios) < 1 and draw(st.booleans(), label="as output_ratio"):
                options["output_ratio"] = tuple(ratios)
            else:
                options["output_size"] = _spelled(draw, out, "output_size")
            return Case({"input": x, "_random_samples": samples}, ("input",), options, seed)

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        side = spatial_side(n, self.dims)
        rng = np.random.default_rng(seed)
        x = distinct_values(rng, (4, 8, *(side,) * self.dims), 1.0)
        out = max(1, side // 2)
        samples = np.array([[[_fractional_sample(rng, side, out, 2) for _ in range(self.dims)]
                             for _ in range(8)] for _ in range(4)])
        return Case({"input": x, "_random_samples": samples}, ("input",),
                    {"kernel_size": 2, "output_size": out}, seed)


# --- max unpooling -------------------------------------------------------------------------


@dataclass(frozen=True)
class Unpooling:
    """max_unpool{dims}d: the output of a max pooling (kernel 1-3, stride None or 1-3, padding
    <= kernel / 2) of distinct values, as ``input``, and its argmax ``indices``
    (``references.conv.max_pool_indices``; overlapping windows may share one). ``output_size``
    is the pooled input's size, given (as spatial sides or with N and C in front) or left to
    the default (L - 1) s - 2 p + k, in which case the sides are chosen to make that the same
    size (otherwise the flat indices would refer to a plane of another shape)."""

    dims: int
    max_side: int = 9

    def _case(self, x: Array, kernel: list[int], stride: list[int] | None, pads: list[int],
              spelled: dict[str, Any], output_size: Any, seed: int) -> Case:
        d = self.dims
        options = {"kernel_size": spelled["kernel_size"], "stride": spelled.get("stride"),
                   "padding": spelled["padding"]}
        values = ref_conv._max_pool(x, d, kernel, stride, pads, 1, False)
        indices = ref_conv.max_pool_indices(x, kernel, stride, pads, dims=d)
        if output_size is not None:
            options["output_size"] = output_size
        return Case({"input": values, "indices": indices}, ("input",), options, seed)

    def strategy(self) -> st.SearchStrategy[Case]:
        d = self.dims

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            kernel = _per_dim(draw, st.integers(1, 3), d, "kernel")
            stride = _per_dim(draw, st.integers(1, 3), d, "stride") \
                if draw(st.booleans(), label="stride given") else None
            pads = [draw(st.integers(0, k // 2), label=f"padding[{i}]")
                    for i, k in enumerate(kernel)]
            size_given = draw(st.sampled_from(["default", "spatial", "full"]),
                              label="output_size")
            sides = []
            for i, k in enumerate(kernel):
                n = draw(st.integers(k, max(k, self.max_side)), label=f"side[{i}]")
                s = k if stride is None else stride[i]
                if size_given == "default":
                    # the default output size is the input's only if (n + 2p - k) is a
                    # multiple of s: round n down to one (up, if that leaves no element)
                    n -= (n + 2 * pads[i] - k) % s
                    n += s if n < 1 else 0
                sides.append(n)
            shape = _input_shape(draw, sides)
            scale = draw(VALUE_SCALES, label="scale")
            seed = draw(SEEDS, label="seed")
            x = distinct_values(np.random.default_rng(seed), shape, scale)
            spelled: dict[str, Any] = {"kernel_size": _spelled(draw, kernel, "kernel_size"),
                                       "padding": _spelled(draw, pads, "padding")}
            if stride is not None:
                spelled["stride"] = _spelled(draw, stride, "stride")
            # "full": with N and C in front (torch drops them), batched inputs only
            output_size = {"default": None, "spatial": tuple(sides),
                           "full": tuple(shape) if len(shape) == d + 2 else tuple(sides)
                           }[size_given]
            return self._case(x, kernel, stride, pads, spelled, output_size, seed)

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        side = spatial_side(n, self.dims)
        side -= side % 2
        x = distinct_values(np.random.default_rng(seed), (4, 8, *(side,) * self.dims), 1.0)
        k = [2] * self.dims
        return self._case(x, k, None, [0] * self.dims, {"kernel_size": 2, "padding": 0}, None,
                          seed)


# --- fold and unfold -----------------------------------------------------------------------


@dataclass(frozen=True)
class Blocks:
    """unfold (``kind="unfold"``: ``input`` (N, C, H, W) or (C, H, W)) or fold (``kind="fold"``:
    ``input`` (N, C kH kW, L) or (C kH kW, L) with L the number of blocks that fit
    ``output_size``): kernel 1-3, dilation 1-2, padding 0-2, stride 1-3, each side at least the
    dilated kernel minus twice the padding (at least one block)."""

    kind: str
    max_side: int = 9

    def _case(self, sides: list[int], channels: int, batch: Shape, kernel: list[int],
              dilation: list[int], pads: list[int], stride: list[int], scale: float, seed: int,
              spell: Any = None) -> Case:
        rng = np.random.default_rng(seed)
        spelled = spell or (lambda values, label: tuple(values))
        options: dict[str, Any] = {"kernel_size": spelled(kernel, "kernel_size"),
                                   "dilation": spelled(dilation, "dilation"),
                                   "padding": spelled(pads, "padding"),
                                   "stride": spelled(stride, "stride")}
        if self.kind == "unfold":
            return Case({"input": _normal(rng, (*batch, channels, *sides), scale)}, ("input",),
                        options, seed)
        blocks = math.prod((n + 2 * p - dl * (k - 1) - 1) // s + 1
                           for n, k, dl, p, s in zip(sides, kernel, dilation, pads, stride,
                                                     strict=True))
        x = _normal(rng, (*batch, channels * math.prod(kernel), blocks), scale)
        return Case({"input": x}, ("input",),
                    {"output_size": spelled(sides, "output_size"), **options}, seed)

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            kernel = _per_dim(draw, st.integers(1, 3), 2, "kernel")
            dilation = _per_dim(draw, st.integers(1, 2), 2, "dilation")
            pads = _per_dim(draw, st.integers(0, 2), 2, "padding")
            stride = _per_dim(draw, st.integers(1, 3), 2, "stride")
            sides = []
            for i in range(2):
                lowest = max(1, dilation[i] * (kernel[i] - 1) + 1 - 2 * pads[i])
                sides.append(draw(st.integers(lowest, max(lowest, self.max_side)),
                                  label=f"side[{i}]"))
            batch = draw(BATCHES, label="batch")
            channels = draw(st.integers(1, 3), label="channels")
            scale = draw(VALUE_SCALES, label="scale")
            seed = draw(SEEDS, label="seed")

            def spell(values: list[int], label: str) -> Any:
                return _spelled(draw, values, label)

            return self._case(sides, channels, batch, kernel, dilation, pads, stride, scale,
                              seed, spell)

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        side = spatial_side(n, 2)
        return self._case([side, side], 8, (4,), [3, 3], [1, 1], [1, 1], [1, 1], 1.0, seed)


# --- padding -------------------------------------------------------------------------------

PAD_MODES = ("constant", "zero", "reflect", "replicate", "circular")


@dataclass(frozen=True)
class Padding:
    """F.pad of the last ``dims`` dimensions in ``mode`` ("zero" is constant padding without a
    value): ``input`` with ``dims`` padded sides of 1 to ``max_side`` and 1-2 leading
    dimensions ((C, *) or (N, C, *), what the modules accept; constant and zero padding also
    take none or a third). Each side's (left, right) padding is drawn from -3 to 3, negative
    entries cropping at most side - 1 elements in all; positive reflect padding is below the
    side, circular at most the side left after cropping (torch's rules: it removes the
    negatively padded ends before wrapping; KNOWN_DIFFERENCES.md). Constant padding draws a
    fill ``value``."""

    mode: str
    dims: int
    max_side: int = 6

    def _pads(self, draw: st.DrawFn, sides: list[int]) -> tuple[int, ...]:
        pad: list[int] = []
        for i, n in reversed(list(enumerate(sides))):  # torch's order: last dimension first
            left = draw(st.integers(-min(3, n - 1), 3), label=f"left[{i}]")
            cropped = max(-left, 0)
            right = draw(st.integers(-min(3, n - 1 - cropped), 3), label=f"right[{i}]")
            kept = n - cropped - max(-right, 0)
            if self.mode == "reflect":
                left, right = min(left, n - 1), min(right, n - 1)
            elif self.mode == "circular":
                left, right = min(left, kept), min(right, kept)
            pad += [left, right]
        return tuple(pad)

    def strategy(self) -> st.SearchStrategy[Case]:
        d = self.dims

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            sides = _per_dim(draw, st.integers(1, self.max_side), d, "side")
            pad = self._pads(draw, sides)
            lowest, highest = (0, 3) if self.mode in ("constant", "zero") else (1, 2)
            lead = draw(st.lists(st.integers(1, 3), min_size=lowest, max_size=highest),
                        label="leading dims")
            scale = draw(VALUE_SCALES, label="scale")
            seed = draw(SEEDS, label="seed")
            x = _normal(np.random.default_rng(seed), (*lead, *sides), scale)
            return Case({"input": x}, ("input",), self._options(draw, pad), seed)

        return cases()

    def _options(self, draw: st.DrawFn | None, pad: tuple[int, ...]) -> dict[str, Any]:
        if self.mode == "zero":
            return {"pad": pad}
        options: dict[str, Any] = {"pad": pad, "mode": self.mode}
        if self.mode == "constant":
            options["value"] = 0.5 if draw is None else draw(
                st.sampled_from([0.0, 1.5, -2.25, 0.1]), label="value")
        return options

    def sized(self, n: int, seed: int = 0) -> Case:
        side = spatial_side(n, self.dims)
        x = _normal(np.random.default_rng(seed), (4, 8, *(side,) * self.dims))
        return Case({"input": x}, ("input",), self._options(None, (2, 1) * self.dims), seed)


# --- shuffles ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shuffling:
    """pixel_shuffle (``kind="pixel"``: (*, C r^2, H, W), 0-2 batch dimensions, r 1-3),
    pixel_unshuffle (``kind="unpixel"``: (*, C, H r, W r)) or channel_shuffle
    (``kind="channel"``: (N, C, *) with 1-3 further dimensions, C = groups x channels per
    group)."""

    kind: str

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scale = draw(VALUE_SCALES, label="scale")
            if self.kind == "channel":
                groups = draw(st.integers(1, 4), label="groups")
                per_group = draw(st.integers(1, 3), label="channels per group")
                n = draw(st.integers(1, 2), label="N")
                rest = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3), label="rest")
                shape: Shape = (n, groups * per_group, *rest)
                options = {"groups": groups}
            else:
                r = draw(st.integers(1, 3), label="factor")
                batch = draw(st.lists(st.integers(1, 2), max_size=2), label="batch")
                c = draw(st.integers(1, 3), label="C")
                h, w = draw(st.integers(1, 4), label="H"), draw(st.integers(1, 4), label="W")
                if self.kind == "pixel":
                    shape, options = (*batch, c * r * r, h, w), {"upscale_factor": r}
                else:
                    shape, options = (*batch, c, h * r, w * r), {"downscale_factor": r}
            seed = draw(SEEDS, label="seed")
            x = _normal(np.random.default_rng(seed), shape, scale)
            return Case({"input": x}, ("input",), options, seed)

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        side = spatial_side(n, 2)
        side -= side % 2
        shape, options = {"pixel": ((4, 16, side, side), {"upscale_factor": 2}),
                          "unpixel": ((4, 4, side, side), {"downscale_factor": 2}),
                          "channel": ((4, 16, side, side), {"groups": 4})}[self.kind]
        return Case({"input": _normal(np.random.default_rng(seed), shape)}, ("input",), options,
                    seed)


# --- interpolation -------------------------------------------------------------------------

SCALE_FACTORS = st.one_of(st.sampled_from([0.5, 0.75, 1.5, 2.0, 2.5, 3.0, 0.6, 1.7, 0.8, 1.25]),
                          st.floats(0.3, 3.2).map(lambda s: round(s, 3)))
"""Scale factors: round ones (exact and inexact in binary) and arbitrary ones."""


def _torch_nearest_source(j: Array, n: int, o: int, s: float | None, exact: bool) -> Array:
    """The source index torch's CPU kernel computes for nearest (``exact``: nearest-exact):
    the scale as a float32 (1 / s, or n / o), and the coordinate in float32 (nearest) or
    rounded to float32 from a double product (nearest-exact). Used only to keep draws away from
    coordinates whose float32 and float64 roundings pick different neighbours."""
    scale = np.float32(1.0 / s) if s is not None and s > 0 else np.float32(n) / np.float32(o)
    if exact:
        src = np.floor(((j + 0.5) * np.float64(scale)).astype(np.float32))
    else:
        src = np.floor(j.astype(np.float32) * scale)
    return np.minimum(src.astype(np.int64), n - 1)


@dataclass(frozen=True)
class Resize:
    """F.interpolate in ``mode`` (torch's name) over ``dims`` spatial dimensions (one drawn):
    ``input`` (N, C, *spatial), sides 1 to ``max_side``; the output given as ``size`` (sides 1
    to 2n + 3, an int or a tuple) or as ``scale_factor`` (SCALE_FACTORS, a float or a tuple,
    with recompute_scale_factor None, False or True); align_corners None, False or True where
    the mode takes it (``align_corners``); ``antialias=True`` for the antialiased records.

    Draws where torch 2.13 departs from its documented semantics are left out, each checked by
    a strict xfail in tests/test_interpolation.py (KNOWN_DIFFERENCES.md):
    ``avoid_kept_side``: a given scale factor (not recomputed) whose output side equals the
    input side (torch then copies that dimension, or its backward does);
    ``avoid_doubled_side``: the same for an output side twice the input (nearest);
    ``avoid_single_width``: an antialiased output of width 1 whose height changes;
    ``avoid_all_kept``: given scale factors that keep every side (bicubic's backward copies).
    With align_corners=True a kept side's scale is 1 whatever the factor: nothing to avoid.
    For the nearest modes, coordinates whose index torch's float32 arithmetic and the
    reference's float64 would floor differently (an exact integer coordinate with an inexact
    scale) are also left out: that is a rounding convention, not the formula.
    """

    mode: str
    dims: tuple[int, ...]
    align_corners: bool = False
    antialias: bool = False
    avoid_kept_side: bool = False
    avoid_doubled_side: bool = False
    avoid_single_width: bool = False
    avoid_all_kept: bool = False
    max_side: int = 7

    def _valid(self, sides: list[int], out: list[int], scales: list[float | None],
               corners: bool) -> bool:
        given = [s is not None and not corners for s in scales]
        if self.avoid_all_kept and all(given) and out == sides and any(
                s != 1.0 for s in scales):
            return False
        for n, o, s, scaled in zip(sides, out, scales, given, strict=True):
            if scaled and self.avoid_kept_side and o == n and s != 1.0:
                return False
            if scaled and self.avoid_doubled_side and o == 2 * n and s != 2.0:
                return False
            if self.mode in ("nearest", "nearest-exact"):
                j = np.arange(o)
                offset = 0.5 if self.mode == "nearest-exact" else 0.0
                scale = 1.0 / s if s is not None else n / o
                exact = np.minimum(np.floor((j + offset) * scale), n - 1)
                if not np.array_equal(exact, _torch_nearest_source(j, n, o, s,
                                                                   offset > 0)):
                    return False
        return not (self.avoid_single_width and out[-1] == 1 and len(out) > 1
                    and out[-2] != sides[-2] and sides[-2] > 1)

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            d = draw(st.sampled_from(self.dims), label="spatial dims")
            top = self.max_side if d < 3 else min(self.max_side, 4)
            sides = _per_dim(draw, st.integers(1, top), d, "side")
            options: dict[str, Any] = {"mode": self.mode}
            if draw(st.booleans(), label="size given"):
                out = [draw(st.integers(1, 2 * n + 3), label=f"size[{i}]")
                       for i, n in enumerate(sides)]
                options["size"] = _spelled(draw, out, "size")
                scales: list[float | None] = [None] * d
            else:
                factors = [draw(SCALE_FACTORS, label=f"scale_factor[{i}]") for i in range(d)]
                factors = [s if math.floor(n * s) >= 1 else 1.0 / n + 0.25
                           for n, s in zip(sides, factors, strict=True)]
                if len(set(factors)) == 1 and draw(st.booleans(), label="scale as float"):
                    options["scale_factor"] = factors[0]
                else:
                    options["scale_factor"] = tuple(factors)
                out = [math.floor(n * s) for n, s in zip(sides, factors, strict=True)]
                recompute = draw(st.sampled_from([None, False, True]),
                                 label="recompute_scale_factor")
                if recompute is not None:
                    options["recompute_scale_factor"] = recompute
                scales = [None] * d if recompute or self.mode == "area" else list(factors)
            corners = None
            if self.align_corners:
                corners = draw(st.sampled_from([None, False, True]), label="align_corners")
                if corners is not None:
                    options["align_corners"] = corners
            assume(self._valid(sides, out, scales, bool(corners)))
            if self.antialias:
                options["antialias"] = True
            batch = (draw(st.integers(1, 2), label="N"), draw(st.integers(1, 3), label="C"))
            scale = draw(VALUE_SCALES, label="scale")
            seed = draw(SEEDS, label="seed")
            x = _normal(np.random.default_rng(seed), (*batch, *sides), scale)
            return Case({"input": x}, ("input",), options, seed)

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        d = self.dims[-1]
        side = spatial_side(n, d)
        x = _normal(np.random.default_rng(seed), (4, 8, *(side,) * d))
        options: dict[str, Any] = {"mode": self.mode, "size": (2 * side - 1,) * d}
        if self.antialias:
            options = {**options, "size": (side // 2 + 1,) * d, "antialias": True}
        return Case({"input": x}, ("input",), options, seed)
