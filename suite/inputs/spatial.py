"""Input makers for the spatial layers: transposed convolution, adaptive, LP and fractional
pooling, max unpooling, fold and unfold.

Every maker draws an input (N, C, *spatial) or unbatched (C, *spatial) with ``dims`` spatial
dimensions, the options over their documented ranges (each spelled as an int or a tuple where
torch accepts both), and values from a seed (``suite.strategies``). Sides stay small (tens of
elements, fewer in 3-d): the checks test the index arithmetic, which small sides exercise as
well as large ones, and every test runs dozens of examples.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hypothesis import assume
from hypothesis import strategies as st

from references import conv as ref_conv
from references import pooling as ref_pooling
from suite import covering, hard, versions
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


# --- the hard tier of the moving makers (padding, shuffles, fold and unfold, unpooling) and
# of the transposed convolutions ----------------------------------------------------------


def _hard_last_side(draw: st.DrawFn, scenario: str) -> int | None:
    """The last (vectorised) side a hard case fixes: a ``suite.hard.SIMD_SIZES`` size for
    ``simd``, ``suite.hard.long_terms()`` for ``long``, None (drawn as usual) otherwise. None of
    these ops takes a 0-d input."""
    return hard.size_for(draw, scenario) if scenario in hard.SIZE_SCENARIOS else None


def _hard_maker(maker: Any, scenario: str) -> Any:
    """The maker a hard case is drawn from: for ``long``, its other sides at their smallest
    (``max_side=1``), so a case of 10^4 positions along its last side stays small."""
    return dataclasses.replace(maker, max_side=1) if scenario == "long" else maker


def _hardened(draw: st.DrawFn, case: Case, scenario: str, dtype: torch.dtype,
              names: tuple[str, ...] = ("input",), power: int = 1,
              settle: Callable[[Array], Array] | None = None) -> Case:
    """``case`` with the float arrays ``names`` rewritten for ``scenario`` (suite.hard): values of
    a value scenario, or (simd, long) extremes placed along the last dimension of the first of
    them; ``settle`` maps the first array's new values to ones the case stays valid with."""
    rng, drawn = hard.rng_for(case.seed), draw(st.integers(0, 2**16), label="position")
    arrays, label = {}, ""
    for name in names:
        if name not in case.arrays:
            continue
        a = case.arrays[name]
        if scenario in hard.VALUE_SCENARIOS:
            arrays[name], label = hard.values(rng, a.shape, scenario, dtype, power=power)
        elif name == names[0]:
            arrays[name], label = hard.place(rng, a, dtype, drawn, power=power)
    if settle is not None:
        arrays[names[0]] = settle(arrays[names[0]])
    return hard.rewrite(case, arrays, f"{scenario}: {label}")


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

    def draw_case(self, draw: st.DrawFn, last: int | None = None) -> Case:
        """One case, every choice through ``draw`` (suite.covering steers it); ``last`` fixes
        the last input side (the hard tier's)."""
        d = self.dims
        groups = draw(st.integers(1, 2), label="groups")
        c_in = groups * draw(st.integers(1, 3), label="in per group")
        c_out = groups * draw(st.integers(1, 3), label="out per group")
        kernel = _per_dim(draw, st.integers(1, 3), d, "kernel")
        stride = _per_dim(draw, st.integers(1, 3), d, "stride")
        dilation = _per_dim(draw, st.integers(1, 2), d, "dilation")
        sides = _per_dim(draw, st.integers(1, self.max_side), d, "side")
        if last is not None:
            sides[-1] = last
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

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``; modelled on ``suite.inputs.layers.hard_convolution``):
        input and weight of a drawn scenario (power 2: products), every option drawn as usual;
        ``simd``: the last input side of each ``suite.hard.SIMD_SIZES`` size with extremes in
        its vector body and tail; ``long``: ``suite.hard.long_terms()`` input positions along
        the last side (the others 1), which the weight gradient sums over. No scenario breaks
        ties: the op has none."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            last = _hard_last_side(draw, scenario)
            case = _hard_maker(self, scenario).draw_case(draw, last)
            return _hardened(draw, case, scenario, dtype, ("input", "weight"), power=2)

        return cases()

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


# --- the hard tier of adaptive, LP and fractional pooling -----------------------------------

Windows = Callable[[tuple[int, ...]], list[tuple[Array, Array]]]
"""A pooling's windows in one plane (the input's leading indices): per spatial dimension the
windows' starts and lengths, every window the product of one range per dimension."""


def _tie_windows(rng: np.random.Generator, x: Array, d: int, windows: Windows,
                 pick: str) -> Array:
    """``x`` (*planes, *sides) with every window of two or more elements holding its extreme at
    least twice: ``pick`` "max" ties the maximum of x, "max|x|" and "min|x|" the maximum or
    minimum of |x| (with either sign). Where a window's extreme is unique, another of its
    elements, drawn, takes the extreme's value (the extreme's magnitude with a drawn sign);
    that moves values only towards the extreme, so repeating this until no window changes ends,
    and then every window ties (``ties`` of the max poolings: several equal maxima in a
    window, where torch's first-maximum convention decides the gradient)."""
    x = np.array(x, dtype=np.float64)
    planes = x.reshape(-1, *x.shape[x.ndim - d:])
    lead = x.shape[:x.ndim - d]
    for flat, plane in enumerate(planes):
        bounds = windows(tuple(int(i) for i in np.unravel_index(flat, lead)) if lead else ())
        changed = True
        while changed:
            changed = False
            for corner in np.ndindex(*(len(start) for start, _ in bounds)):
                box = tuple(slice(int(b[0][i]), int(b[0][i] + b[1][i]))
                            for i, b in zip(corner, bounds, strict=True))
                window = plane[box].reshape(-1)
                if window.size < 2:
                    continue
                key = window if pick == "max" else np.abs(window)
                extreme = key.min() if pick == "min|x|" else key.max()
                if np.count_nonzero(key == extreme) >= 2:
                    continue
                others = np.flatnonzero(key != extreme)
                j = int(rng.choice(others))
                value = extreme if pick == "max" else extreme * float(rng.choice((-1.0, 1.0)))
                view = plane[box]  # basic slicing: a view, written through
                view[np.unravel_index(j, view.shape)] = value
                changed = True
    return planes.reshape(x.shape)


def _hard_pooled(draw: st.DrawFn, case: Case, scenario: str, dtype: torch.dtype, d: int,
                 windows: Windows, ties: str | None, power: int = 1,
                 settle: Callable[[Array], Array] | None = None) -> Case:
    """``case`` with its input rewritten for ``scenario`` (suite.hard): values of a value
    scenario (power ``power``), or extremes placed along the last side (simd, long);
    ``settle`` maps the new values to ones the op takes (LP pooling's positive inputs), and in
    ``ties`` a max pooling's windows are made to tie (``ties``: :func:`_tie_windows`'s
    ``pick``)."""
    rng, drawn = hard.rng_for(case.seed), draw(st.integers(0, 2**16), label="position")
    x = case.arrays["input"]
    if scenario in hard.VALUE_SCENARIOS:
        values, label = hard.values(rng, x.shape, scenario, dtype, power=power)
    else:
        values, label = hard.place(rng, x, dtype, drawn, power=power)
    if settle is not None:
        values = settle(values)
    if scenario == "ties" and ties is not None:
        values = _tie_windows(rng, values, d, windows, ties)
        label += f", every window's {ties.replace('max', 'maximum').replace('min', 'minimum')} " \
                 "tied"
    return hard.rewrite(case, {"input": values}, f"{scenario}: {label}")


@dataclass(frozen=True)
class AdaptivePooling:
    """adaptive_{kind}_pool{dims}d (``kind`` "max" or "avg"): sides 1 to ``max_side``, each
    output side 1 to the input side + 2 (windows of one element repeated are allowed), spelled
    as an int, a tuple, or (in 2-d and 3-d) a tuple with None for a side kept as it is."""

    kind: str
    dims: int
    max_side: int = 9

    def strategy(self) -> st.SearchStrategy[Case]:
        return st.composite(lambda draw: self._draw(draw))()

    def _draw(self, draw: st.DrawFn, last: int | None = None, reduce: bool = False) -> Case:
        """One case (the hard tier's with ``last``): ``last`` fixes the last input side; with
        ``reduce`` the input holds about ``last`` elements spread over every side instead
        (10^4 = 100 x 100 in 2-d, 22 x 22 x 20 in 3-d: the reference's cost grows with a
        side, not with the elements), pooled to one output along every side but the last and
        to 1 to 3 along it: windows of ~last / 3 elements or more."""
        d = self.dims
        sides = _per_dim(draw, st.integers(1, self.max_side), d, "side")
        if last is not None and reduce:
            per = round(last ** (1 / d))
            sides = [per] * (d - 1) + [last // per ** (d - 1)]
        elif last is not None:
            sides[-1] = last
        out: list[int | None] = [
            draw(st.integers(1, (3 if i == d - 1 else 1) if reduce else n + 2),
                 label=f"output_size[{i}]") for i, n in enumerate(sides)]
        if d > 1 and not reduce:
            out = [None if draw(st.integers(0, 4), label=f"keep side {i}") == 0 else o
                   for i, o in enumerate(out)]
        output_size: Any = out[0] if len(set(out)) == 1 and out[0] is not None and draw(
            st.booleans(), label="output_size as int") else tuple(out)
        shape = _input_shape(draw, sides)
        scale = draw(VALUE_SCALES, label="scale")
        seed = draw(SEEDS, label="seed")
        x = _pool_input(np.random.default_rng(seed), self.kind, shape, scale)
        return Case({"input": x}, ("input",), {"output_size": output_size}, seed)

    def _windows(self, case: Case) -> Windows:
        """Each dimension's adaptive windows (start, length), the same in every plane."""
        x, d = case.arrays["input"], self.dims
        out = ref_pooling._adaptive_sizes(case.options["output_size"], x.shape[-d:])
        bounds = [ref_pooling._adaptive_bounds(n, o)
                  for n, o in zip(x.shape[-d:], out, strict=True)]
        return lambda plane: bounds

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): the input of a drawn value scenario (power 1: a mean
        or a max of the input), output sizes drawn as usual; ``ties`` (max pooling) then makes
        every window of two or more elements hold its maximum at least twice
        (:func:`_tie_windows`), so torch's first-maximum convention decides every gradient;
        ``simd``: the last side of each ``suite.hard.SIMD_SIZES`` size with extremes in its
        vector body and tail; ``long``: ``suite.hard.long_terms()`` elements over every side,
        pooled to 1-3 outputs, a mean or max over ~10^4 / 3 elements or more (``_draw``)."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            last = _hard_last_side(draw, scenario)
            case = _hard_maker(self, scenario)._draw(draw, last, reduce=scenario == "long")
            return _hard_pooled(draw, case, scenario, dtype, self.dims, self._windows(case),
                                "max" if self.kind == "max" else None)

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
        return st.composite(lambda draw: self._draw(draw))()

    def _draw(self, draw: st.DrawFn, last: int | None = None) -> Case:
        """One case; ``last`` fixes the last input side (the hard tier's): the last kernel side
        is cut to it, and ceil_mode is left off where a window would overhang it."""
        d = self.dims
        p = draw(st.sampled_from(NORM_TYPES), label="norm_type")
        kernel = _per_dim(draw, st.integers(1, 3), d, "kernel")
        if last is not None:
            kernel[-1] = min(kernel[-1], last)
        stride = _per_dim(draw, st.integers(1, 3), d, "stride") \
            if draw(st.booleans(), label="stride given") else None
        ceil_mode = draw(st.booleans(), label="ceil_mode")
        if last is not None and (last - kernel[-1]) % (kernel if stride is None else stride)[-1]:
            ceil_mode = False
        sides = []
        for i in range(d):
            n = draw(st.integers(kernel[i], max(kernel[i], self.max_side)), label=f"side[{i}]")
            if last is not None and i == d - 1:
                n = last
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
        # Rounding to half precision can make a window's values cancel exactly ([0.8193,
        # -0.8193] in float16): drawn around, in every dtype the checks round to.
        assume(not _lp_sum_vanishes(x, options, d,
                                    (torch.float32, torch.float16, torch.bfloat16)))
        return Case({"input": x}, ("input",), options, seed)

    def _windows(self, case: Case) -> Windows:
        """Each dimension's windows (start, length): stride apart, the kernel long (no window
        overhangs: ceil_mode is drawn only with sides where none does)."""
        d, o = self.dims, case.options
        sides = case.arrays["input"].shape[-d:]
        kernel = _tuple_of(o["kernel_size"], d)
        stride = kernel if o.get("stride") is None else _tuple_of(o["stride"], d)
        bounds = [(np.arange((n - k) // st_ + 1) * st_, np.full((n - k) // st_ + 1, k))
                  for n, k, st_ in zip(sides, kernel, stride, strict=True)]
        return lambda plane: bounds

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): the input of a drawn value scenario, with the
        magnitudes of power ceil(p) (x^p is what approaches the dtype's thresholds; power 1
        for p = +-inf, a max of |x|), made nonnegative (-0 kept) for p other than 1, 2 and
        +-inf as the typical inputs are; every option drawn as usual. ``ties`` (p = +-inf)
        makes every window of two or more elements hold its maximum (minimum) of |x| at least
        twice, with either sign (:func:`_tie_windows`). ``simd``: the last side of each
        ``suite.hard.SIMD_SIZES`` size (the last kernel side cut to it, ceil_mode off where a
        window would overhang) with extremes in its vector body and tail; ``long``: a last side
        of ``suite.hard.long_terms()`` elements (the others at the kernel), the vectorised
        x^p of that many (the windows reduce at most 27).

        Two points are kept off: for finite p other than 1, a window of zeros only (S = 0,
        where the p-norm is not differentiable and the reference has no value; torch's
        docstring sets the gradient to 0 there) gets one element of magnitude 1
        (:func:`_off_zero_windows`); for p = 1, a window whose sum rounds to exactly 0 in the
        dtype is set aside as the typical tier sets it aside (:func:`_lp_sum_vanishes`;
        KNOWN_DIFFERENCES.md, "lp_pool with norm_type 1")."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            last = _hard_last_side(draw, scenario)
            case = _hard_maker(self, scenario)._draw(draw, last)
            d, p = self.dims, case.options["norm_type"]
            power = 1 if math.isinf(p) else math.ceil(p)
            signed = p in (1, 2) or math.isinf(p)
            ties = None if not math.isinf(p) else "max|x|" if p > 0 else "min|x|"
            windows = self._windows(case)
            case = _hard_pooled(draw, case, scenario, dtype, d, windows, ties, power,
                                None if signed else _nonnegative)
            if not math.isinf(p) and p != 1:
                x = _off_zero_windows(hard.rng_for(case.seed, 9), case.arrays["input"], d,
                                      windows, signed, dtype)
                case = hard.rewrite(case, {"input": x}, case.label)
            assume(not _lp_sum_vanishes(case.arrays["input"], case.options, d, (dtype,)))
            return case

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        side = spatial_side(n, self.dims)
        x = _lp_input(np.random.default_rng(seed), 2.0, (4, 8, *(side,) * self.dims), 1.0)
        return Case({"input": x}, ("input",), {"norm_type": 2.0, "kernel_size": 3, "stride": 2},
                    seed)


def _lp_sum_vanishes(x: Array, options: Mapping[str, Any], d: int,
                     dtypes: tuple[torch.dtype, ...]) -> bool:
    """For p = 1, whether some window's sum of ``x`` rounded to one of ``dtypes`` is exactly
    0. p = 1 pools the window's signed sum S, whose derivative is 1 everywhere; torch gives 0
    where S is exactly 0 (KNOWN_DIFFERENCES.md, "lp_pool with norm_type 1", a strict xfail in
    tests/test_pooling.py): such cases are set aside."""
    if options["norm_type"] != 1:
        return False
    pool = getattr(ref_pooling, f"lp_pool{d}d")
    return any(bool(np.any(pool(round_to(x, dtype), **options) == 0)) for dtype in dtypes)


def _tuple_of(value: Any, d: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (int(value),) * d


def _nonnegative(x: Array) -> Array:
    """|x|, keeping -0 (LP pooling's inputs for p other than 1, 2 and +-inf)."""
    return np.where(x < 0, -x, x)


def _off_zero_windows(rng: np.random.Generator, x: Array, d: int, windows: Windows,
                      signed: bool, dtype: torch.dtype) -> Array:
    """``x`` with one drawn element of every window that holds only zeros (in ``dtype``) set to
    1 (or -1, drawn, where ``signed``): S = sum x^p = 0 is where LP pooling with finite p other
    than 1 is not differentiable (the p-norm at the origin; the reference gives NaN there,
    torch's docstring 0). A changed element only makes other windows' S nonzero, so one pass
    leaves no such window."""
    x = np.array(x, dtype=np.float64)
    zero = round_to(x, dtype) == 0
    planes, zeros = x.reshape(-1, *x.shape[x.ndim - d:]), zero.reshape(-1, *x.shape[x.ndim - d:])
    bounds = windows(())
    for plane, flags in zip(planes, zeros, strict=True):
        for corner in np.ndindex(*(len(start) for start, _ in bounds)):
            box = tuple(slice(int(b[0][i]), int(b[0][i] + b[1][i]))
                        for i, b in zip(corner, bounds, strict=True))
            if np.all(flags[box]):
                view, where = plane[box], flags[box]
                j = np.unravel_index(int(rng.integers(0, view.size)), view.shape)
                view[j] = float(rng.choice((-1.0, 1.0))) if signed else 1.0
                where[j] = False
    return planes.reshape(x.shape)


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


def _fractional_sample(rng: np.random.Generator, size: int, out: int, kernel: int,
                       margin: float = FRACTIONAL_MARGIN) -> float:
    """A sample u in [0, 1) whose products all keep ``margin`` from an integer."""
    while True:
        u = float(rng.random())
        t = _fractional_products(u, size, out, kernel)
        if not t.size or np.min(np.abs(t - np.round(t))) > margin:
            return u


def _fractional_margin(dtype: torch.dtype, size: int) -> float:
    """How far from an integer the products (i + u) alpha of a side of ``size`` must keep for
    torch's placement in ``dtype`` to floor them as the float64 reference does: it forms
    fl(fl(i + u) fl(alpha)), each rounding within the unit roundoff u_r relative, so a product
    |t| < size is off by less than 3 u_r size (to first order), and floor(u alpha) is off by
    less than u_r alpha <= u_r size: 4 u_r size, at least FRACTIONAL_MARGIN (float32 at a side
    of 10^4: 2.4e-3; KNOWN_DIFFERENCES.md, "Fractional max pooling places its windows in the
    input's precision")."""
    return max(FRACTIONAL_MARGIN, 4 * float(torch.finfo(dtype).eps) / 2 * size)


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
        return st.composite(lambda draw: self._draw(draw))()

    def _draw(self, draw: st.DrawFn, last: int | None = None, alpha: int | None = None,
              margin: float = FRACTIONAL_MARGIN) -> Case:
        """One case (the hard tier's with ``last``): ``last`` fixes the last input side (the
        last kernel side cut to fit it), or with ``alpha`` makes it about ``last`` long with
        an output whose windows start every ``alpha`` (an integer alpha: every product
        (i + u) alpha then has the fractional part of u alpha, so one sample keeps all of them
        ``margin`` from an integer, which no sample does for 10^4 products of another alpha)."""
        d = self.dims
        kernel = _per_dim(draw, st.integers(1, 3), d, "kernel")
        # torch 2.13's 3-d kernel refuses out + kernel - 1 = side, which the 2-d kernel
        # accepts (KNOWN_DIFFERENCES.md, a strict xfail in tests/test_pooling.py)
        room = 1 if d == 2 else 0
        sides = [draw(st.integers(k + 1 - room, max(k + 1 - room, self.max_side)),
                      label=f"side[{i}]") for i, k in enumerate(kernel)]
        placed = None
        if last is not None and alpha is None:
            sides[-1], kernel[-1] = last, min(kernel[-1], last - 1 + room)
        elif last is not None and alpha is not None:
            placed = (last - kernel[-1]) // alpha + 1
            sides[-1] = (placed - 1) * alpha + kernel[-1]
        out = [draw(st.integers(1, n - k + room), label=f"output[{i}]")
               for i, (n, k) in enumerate(zip(sides, kernel, strict=True))]
        if placed is not None:
            out[-1] = placed
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
                                                                 kernel[i], margin)
        options: dict[str, Any] = {"kernel_size": _spelled(draw, kernel, "kernel_size")}
        ratios = [(o + 0.5) / n for o, n in zip(out, sides, strict=True)]
        if max(ratios) < 1 and draw(st.booleans(), label="as output_ratio"):
            options["output_ratio"] = tuple(ratios)
        else:
            options["output_size"] = _spelled(draw, out, "output_size")
        return Case({"input": x, "_random_samples": samples}, ("input",), options, seed)

    def _windows(self, case: Case) -> Windows:
        """Each plane's windows (start, length) per dimension, placed by its samples."""
        d, o, x = self.dims, case.options, case.arrays["input"]
        samples, sides = case.arrays["_random_samples"], x.shape[-d:]
        kernel = _tuple_of(o["kernel_size"], d)
        out = _tuple_of(o["output_size"], d) if "output_size" in o else tuple(
            int(n * r) for n, r in zip(sides, o["output_ratio"], strict=True))
        order = (1, 0) if d == 2 else tuple(range(d))

        def at(plane: tuple[int, ...]) -> list[tuple[Array, Array]]:
            n, c = (0, *plane) if len(plane) == 1 else plane
            return [(ref_pooling._fractional_starts(samples[n, c, order[i]], sides[i], out[i],
                                                    kernel[i]), np.full(out[i], kernel[i]))
                    for i in range(d)]

        return at

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): the input of a drawn value scenario (power 1: a max),
        windows and ``_random_samples`` drawn as usual (samples FRACTIONAL_MARGIN or more from a
        rounding boundary); ``ties`` then makes every window hold its maximum at least twice
        (:func:`_tie_windows`), so torch's first-maximum convention decides the gradient;
        ``simd``: the last side of each ``suite.hard.SIMD_SIZES`` size the op takes (3-d:
        above 1) with extremes in its vector body and tail; ``long``: a last side of about
        ``suite.hard.long_terms()`` (the others at their smallest) with windows every 1-3
        elements (an integer alpha) and samples :func:`_fractional_margin` from a rounding
        boundary. Fractional pooling is off the half-precision ladder (its ``low_precision``),
        so float16 and bfloat16 cases are not checked."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            d = self.dims
            maker = _hard_maker(self, scenario)
            if scenario == "simd" and d == 3:
                last = draw(st.sampled_from(tuple(n for n in hard.SIMD_SIZES if n > 1)),
                            label="simd size")
                case = maker._draw(draw, last)
            elif scenario == "long":
                alpha = draw(st.sampled_from((1, 2, 3) if d == 2 else (2, 3)), label="alpha")
                length = hard.long_terms()
                case = maker._draw(draw, length, alpha, _fractional_margin(dtype, length))
            else:
                case = maker._draw(draw, _hard_last_side(draw, scenario))
            return _hard_pooled(draw, case, scenario, dtype, d, self._windows(case), "max")

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
        return st.composite(lambda draw: self._draw(draw))()

    def _draw(self, draw: st.DrawFn, last: int | None = None) -> Case:
        """One case; ``last`` fixes the last side of the pooled (and unpooled) plane (the hard
        tier's; at least the kernel)."""
        d = self.dims
        kernel = _per_dim(draw, st.integers(1, 3), d, "kernel")
        stride = _per_dim(draw, st.integers(1, 3), d, "stride") \
            if draw(st.booleans(), label="stride given") else None
        pads = [draw(st.integers(0, k // 2), label=f"padding[{i}]")
                for i, k in enumerate(kernel)]
        size_given = draw(st.sampled_from(["default", "spatial", "full"]), label="output_size")
        sides = []
        for i, k in enumerate(kernel):
            n = draw(st.integers(k, max(k, self.max_side)), label=f"side[{i}]")
            if last is not None and i == d - 1:
                n = max(k, last)
            s = k if stride is None else stride[i]
            if size_given == "default" and (n + 2 * pads[i] - k) % s:
                if last is not None and i == d - 1:
                    size_given = "spatial"  # keep the fixed side: give the output size
                else:
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

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): the pooled values ``input`` of a drawn scenario
        (power 1: unpooling moves them), the ``indices`` the maker's max pooling gives (valid,
        overlapping windows sharing one), and every option drawn as usual. Positions sharing an
        index get the same hard value (the first of them): the op keeps one of them, so they
        must agree as a max pooling's do. ``ties``: values from a small set (the op breaks no
        ties: the indices are given); ``simd``: the unpooled plane's last side of each
        ``suite.hard.SIMD_SIZES`` size (at least the kernel), extremes at the pooled input's
        vector body and tail; ``long``: ``suite.hard.long_terms()`` along it, the other sides
        at the kernel's."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            last = _hard_last_side(draw, scenario)
            case = _hard_maker(self, scenario)._draw(draw, last)
            index = case.arrays["indices"]
            planes = index.reshape(-1, math.prod(index.shape[-self.dims:]))

            def settle(values: Array) -> Array:
                flat = values.reshape(planes.shape)
                agreed = np.empty_like(flat)
                for row, (idx, v) in enumerate(zip(planes, flat, strict=True)):
                    _, first, where = np.unique(idx, return_index=True, return_inverse=True)
                    agreed[row] = v[first][where.reshape(-1)]
                return agreed.reshape(values.shape)

            return _hardened(draw, case, scenario, dtype, settle=settle)

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
        return st.composite(lambda draw: self._draw(draw))()

    def _draw(self, draw: st.DrawFn, last: int | None = None) -> Case:
        """One case; ``last`` fixes the width W (unfold's input, fold's output; the hard
        tier's), at least the dilated kernel minus twice the padding."""
        kernel = _per_dim(draw, st.integers(1, 3), 2, "kernel")
        dilation = _per_dim(draw, st.integers(1, 2), 2, "dilation")
        pads = _per_dim(draw, st.integers(0, 2), 2, "padding")
        stride = _per_dim(draw, st.integers(1, 3), 2, "stride")
        sides = []
        for i in range(2):
            lowest = max(1, dilation[i] * (kernel[i] - 1) + 1 - 2 * pads[i])
            sides.append(draw(st.integers(lowest, max(lowest, self.max_side)),
                              label=f"side[{i}]"))
        if last is not None:
            sides[-1] = max(last, dilation[-1] * (kernel[-1] - 1) + 1 - 2 * pads[-1])
        batch = draw(BATCHES, label="batch")
        channels = draw(st.integers(1, 3), label="channels")
        scale = draw(VALUE_SCALES, label="scale")
        seed = draw(SEEDS, label="seed")

        def spell(values: list[int], label: str) -> Any:
            return _spelled(draw, values, label)

        return self._case(sides, channels, batch, kernel, dilation, pads, stride, scale, seed,
                          spell)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): ``input`` of a drawn scenario (power 1: unfold copies
        it, fold adds up to kH kW overlapping copies), every option drawn as usual; ``ties``:
        values from a small set (no ties to break); ``simd``: the width W of each
        ``suite.hard.SIMD_SIZES`` size (at least one block wide), extremes along the input's
        last dimension (unfold's W, fold's blocks) in the vector body and tail; ``long``:
        W = ``suite.hard.long_terms()`` with H at its smallest."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            last = _hard_last_side(draw, scenario)
            case = _hard_maker(self, scenario)._draw(draw, last)
            return _hardened(draw, case, scenario, dtype)

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
        return st.composite(lambda draw: self._draw(draw))()

    def _draw(self, draw: st.DrawFn, last: int | None = None) -> Case:
        """One case; ``last`` fixes the last padded side (the hard tier's)."""
        sides = _per_dim(draw, st.integers(1, self.max_side), self.dims, "side")
        if last is not None:
            sides[-1] = last
        pad = self._pads(draw, sides)
        lowest, highest = (0, 3) if self.mode in ("constant", "zero") else (1, 2)
        lead = draw(st.lists(st.integers(1, 3), min_size=lowest, max_size=highest),
                    label="leading dims")
        scale = draw(VALUE_SCALES, label="scale")
        seed = draw(SEEDS, label="seed")
        x = _normal(np.random.default_rng(seed), (*lead, *sides), scale)
        return Case({"input": x}, ("input",), self._options(draw, pad), seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): ``input`` of a drawn scenario (power 1: padding copies
        it; its VJP adds g over an element's copies), pads, fill value and leading dimensions
        drawn as usual; ``ties``: values from a small set (no ties to break); ``simd``: the last
        side of each ``suite.hard.SIMD_SIZES`` size with extremes in its vector body and tail;
        ``long``: a last side of ``suite.hard.long_terms()``, the other padded sides 1."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            last = _hard_last_side(draw, scenario)
            case = _hard_maker(self, scenario)._draw(draw, last)
            return _hardened(draw, case, scenario, dtype)

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
    max_side: int = 4

    def strategy(self) -> st.SearchStrategy[Case]:
        return st.composite(lambda draw: self._draw(draw))()

    def _draw(self, draw: st.DrawFn, last: int | None = None) -> Case:
        """One case, sides (H, W, channel_shuffle's further dimensions) 1 to ``max_side``;
        ``last`` fixes the last side (the hard tier's): W of pixel_shuffle's input and of
        pixel_unshuffle's output, channel_shuffle's last dimension."""
        side = st.integers(1, self.max_side)
        scale = draw(VALUE_SCALES, label="scale")
        if self.kind == "channel":
            groups = draw(st.integers(1, 4), label="groups")
            per_group = draw(st.integers(1, 3), label="channels per group")
            n = draw(st.integers(1, 2), label="N")
            rest = draw(st.lists(side, min_size=1, max_size=3), label="rest")
            if last is not None:
                rest[-1] = last
            shape: Shape = (n, groups * per_group, *rest)
            options = {"groups": groups}
        else:
            r = draw(st.integers(1, 3), label="factor")
            batch = draw(st.lists(st.integers(1, 2), max_size=2), label="batch")
            c = draw(st.integers(1, 3), label="C")
            h, w = draw(side, label="H"), draw(side, label="W")
            w = w if last is None else last
            if self.kind == "pixel":
                shape, options = (*batch, c * r * r, h, w), {"upscale_factor": r}
            else:
                shape, options = (*batch, c, h * r, w * r), {"downscale_factor": r}
        seed = draw(SEEDS, label="seed")
        x = _normal(np.random.default_rng(seed), shape, scale)
        return Case({"input": x}, ("input",), options, seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): ``input`` of a drawn scenario (power 1: a shuffle is a
        permutation), factors, groups and shapes drawn as usual; ``ties``: values from a small
        set (no ties to break); ``simd``: the last side (above) of each
        ``suite.hard.SIMD_SIZES`` size with extremes in its vector body and tail; ``long``: that
        side ``suite.hard.long_terms()`` long, the other sides 1."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            last = _hard_last_side(draw, scenario)
            case = _hard_maker(self, scenario)._draw(draw, last)
            return _hardened(draw, case, scenario, dtype)

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


# The modes whose float64 CPU kernels floor the source coordinate through float (a recorded torch
# bug: versions.INTERPOLATE_SOURCE_INDEX_FLOORED_IN_FLOAT).
FLOORED_IN_FLOAT_MODES = ("linear", "bilinear", "trilinear", "bicubic", "nearest",
                          "nearest-exact")


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
        return st.composite(lambda draw: self._draw(draw))()

    def _draw(self, draw: st.DrawFn, last: int | None = None,
              long_outputs: tuple[int, ...] | None = None) -> Case:
        """One case; ``last`` fixes the last input side (the hard tier's simd and long sizes).
        ``long_outputs``: a long side (the hard tier's): one sample and channel, the other sides
        1 or 2, the output given as a size, the last side resized to the first of
        ``long_outputs`` (in drawn order) that ``_valid`` keeps."""
        long = long_outputs is not None
        d = draw(st.sampled_from(self.dims), label="spatial dims")
        top = self.max_side if d < 3 else min(self.max_side, 4)
        sides = _per_dim(draw, st.integers(1, min(top, 2) if long else top), d, "side")
        if last is not None:
            sides[-1] = last
        options: dict[str, Any] = {"mode": self.mode}
        if long or draw(st.booleans(), label="size given"):
            out = [draw(st.integers(1, 2 * n + 3), label=f"size[{i}]")
                   for i, n in enumerate(sides[:-1] if long else sides)]
            if long_outputs is not None:
                out.append(self._long_output(draw, sides, out, long_outputs))
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
        batch = (1, 1) if long else (draw(st.integers(1, 2), label="N"),
                                     draw(st.integers(1, 3), label="C"))
        scale = draw(VALUE_SCALES, label="scale")
        seed = draw(SEEDS, label="seed")
        x = _normal(np.random.default_rng(seed), (*batch, *sides), scale)
        return Case({"input": x}, ("input",), options, seed)

    def _long_output(self, draw: st.DrawFn, sides: list[int], out: list[int],
                     outputs: tuple[int, ...]) -> int:
        """The long side's output: ``outputs`` tried from a drawn one on, the first that
        ``_valid`` keeps (nearest's float32 floors: 2n and n / 2 have exact scales)."""
        first = draw(st.integers(0, len(outputs) - 1), label="long output side")
        for o in outputs[first:] + outputs[:first]:
            if self._valid(sides, [*out, o], [None] * len(sides), False):
                return o
        assume(False)
        raise AssertionError("unreachable")

    def _long_outputs(self, dtype: torch.dtype) -> tuple[int, tuple[int, ...]]:
        """The long side and its output sides: ``suite.hard.long_terms()`` positions resized
        up (2n - 1, 2n) or down (n / 2 + 1, n / 2). In float64 torch's linear, bilinear,
        trilinear, bicubic, nearest and nearest-exact kernels floor the float64 source
        coordinate through float: past 2^13 positions a coordinate just below an integer floors
        to it, so a neighbour's weight is lost or the next input is read (a recorded torch bug:
        versions.INTERPOLATE_SOURCE_INDEX_FLOORED_IN_FLOAT, KNOWN_DIFFERENCES.md, the strict
        xfail test_a_long_side_is_resampled_from_the_float64_source_index). Where it holds,
        their float64 long side stays below 2^13: 4000 positions, which
        test_a_side_of_4000_is_resampled_right shows torch gets right."""
        floored = (dtype == torch.float64 and versions.INTERPOLATE_SOURCE_INDEX_FLOORED_IN_FLOAT
                   and not self.antialias and self.mode in FLOORED_IN_FLOAT_MODES)
        n = 4000 if floored else hard.long_terms()
        return n, (2 * n - 1, n // 2 + 1, 2 * n, n // 2)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): ``input`` of a drawn scenario (power 1: each output
        is a weighted sum of inputs, each input gradient one of g), on the typical sides,
        sizes, scale factors and align_corners, with every rule of ``_valid`` (the recorded
        torch departures it leaves out); ``ties``: values from a small set (interpolation
        breaks no ties); ``simd``: the last input side of each ``suite.hard.SIMD_SIZES`` size
        (the vectorised one), extremes in its vector body and tail, the output drawn as usual;
        ``long``: N = C = 1, the other sides 1 or 2 and the last of
        ``suite.hard.long_terms()`` positions resized up to 2n - 1 or 2n or down to n / 2 + 1
        or n / 2, given as a size (float64 in the modes torch floors through float: 4000
        positions, ``_long_outputs``), its values drawn as usual with extremes placed: the source
        coordinates reach 10^4, where their rounding moves the weights most
        (conditioning.CoordinateRounding)."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            last = _hard_last_side(draw, scenario)
            outputs = None
            if scenario == "long":
                last, outputs = self._long_outputs(dtype)
            case = self._draw(draw, last, outputs)
            return _hardened(draw, case, scenario, dtype)

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        d = self.dims[-1]
        side = spatial_side(n, d)
        x = _normal(np.random.default_rng(seed), (4, 8, *(side,) * d))
        options: dict[str, Any] = {"mode": self.mode, "size": (2 * side - 1,) * d}
        if self.antialias:
            options = {**options, "size": (side // 2 + 1,) * d, "antialias": True}
        return Case({"input": x}, ("input",), options, seed)
