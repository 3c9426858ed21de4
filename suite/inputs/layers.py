"""Input makers for layers."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

from suite import covering, hard, versions
from suite.inputs.variants import BenchVariant, grouped
from suite.specs import Array, Case
from suite.strategies import SEEDS, Shape, shapes


@dataclass(frozen=True)
class Affine:
    """``input`` (*batch, in), ``weight`` (out, in) and optionally ``bias`` (out,): linear layers.

    Weights are scaled by 1/sqrt(in), as torch's default initialisation does, so outputs stay
    of order one whatever the width.
    """

    max_features: int = 256

    def _case(self, batch: Shape, n_in: int, n_out: int, bias: bool, seed: int) -> Case:
        rng = np.random.default_rng(seed)
        arrays = {
            "input": rng.standard_normal((*batch, n_in)),
            "weight": rng.standard_normal((n_out, n_in)) / math.sqrt(n_in),
        }
        if bias:
            arrays["bias"] = rng.standard_normal(n_out) / math.sqrt(n_in)
        return Case(arrays, tuple(arrays), {}, seed)

    def strategy(self) -> st.SearchStrategy[Case]:
        features = st.one_of(st.integers(1, 8), st.integers(1, self.max_features))

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            batch = draw(shapes(min_dims=0, max_dims=2, max_size=512), label="batch")
            n_in, n_out = draw(features, label="in"), draw(features, label="out")
            bias = draw(st.booleans(), label="bias")
            return self._case(batch, n_in, n_out, bias, draw(SEEDS, label="seed"))

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        return self._case((n,), n, n, True, seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): input, weight and bias of a drawn scenario (power 2:
        products), groups along the features; in_features of each ``suite.hard.SIMD_SIZES``
        size with extremes in the vector body and tail; long reductions: dot products over
        ``suite.hard.long_terms()`` features, or weight gradients summed over as many rows."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            bias = draw(st.booleans(), label="bias")
            seed = draw(SEEDS, label="seed")
            if scenario == "simd":
                batch: Shape = draw(st.sampled_from([(), (2,), (3,)]), label="batch")
                n_in, n_out = hard.simd_size(draw, zero_dim=False) or 1, 3
            elif scenario == "long":
                length = hard.long_terms()
                batch, n_in = draw(st.sampled_from([((2,), length), ((length,), 8)]),
                                   label="batch, in")
                n_out = 3
            else:
                batch = draw(shapes(min_dims=0, max_dims=2, max_size=64), label="batch")
                n_in = draw(st.integers(1, 32), label="in")
                n_out = draw(st.integers(1, 8), label="out")
            case = self._case(batch, n_in, n_out, bias, seed)
            rng, drawn = hard.rng_for(seed), draw(st.integers(0, 2**16), label="position")
            arrays, label = {}, ""
            for name, a in case.arrays.items():
                if scenario in hard.VALUE_SCENARIOS:
                    arrays[name], label = hard.values(rng, a.shape, scenario, dtype, power=2,
                                                      axes=(-1,))
                elif name != "bias":
                    arrays[name], label = hard.place(rng, a, dtype, drawn, power=2)
            return hard.rewrite(case, arrays, f"{scenario}: {label}")

        return cases()


# --- shared pieces -------------------------------------------------------------------------

VALUE_SCALES = st.sampled_from((1.0, 0.1, 5.0))
EPS = st.sampled_from((1e-5, 1e-3, 0.1))


def _per_dim(draw: st.DrawFn, values: st.SearchStrategy[int], d: int, label: str) -> list[int]:
    return [draw(values, label=f"{label}[{i}]") for i in range(d)]


def convolution_arrays(draw: st.DrawFn, input_shape: Shape, weight_shape: Shape, fan_in: int,
                       c_out: int) -> tuple[dict[str, Array], int]:
    """A convolution's ``input`` at a drawn scale, its ``weight`` scaled by 1 / sqrt(fan_in)
    (the order of torch's default initialisation) and an optional ``bias``; with the seed."""
    scale = draw(VALUE_SCALES, label="scale")
    seed = draw(SEEDS, label="seed")
    rng = np.random.default_rng(seed)
    arrays = {"input": _normal(rng, input_shape, scale),
              "weight": _normal(rng, weight_shape) / math.sqrt(fan_in)}
    if draw(st.booleans(), label="bias"):
        arrays["bias"] = _normal(rng, (c_out,))
    return arrays, seed


def per_dim_factors(label: str, values: tuple[Any, ...], d: int) -> dict[str, tuple[Any, ...]]:
    """Covering factors (suite.covering) for the per-dimension draws of :func:`_per_dim`."""
    return {f"{label}[{i}]": values for i in range(d)}


def _spelled(draw: st.DrawFn, values: list[int], label: str, *,
             one_tuple: bool = False) -> int | tuple[int, ...]:
    """The spellings torch accepts for stride, padding, dilation and kernel sizes: when every
    dimension agrees, an int or a tuple per dimension, and with ``one_tuple`` a tuple of one
    value too (convolutions and max/avg pooling read it as that value in every dimension; lp
    pooling, fractional and adaptive pooling and the other spatial ops refuse it); else the
    tuple per dimension."""
    if len(set(values)) == 1:
        if not one_tuple:
            return values[0] if draw(st.booleans(), label=f"{label} as int") else tuple(values)
        spelling = draw(st.sampled_from(["int", "one-tuple", "tuple"]), label=f"{label} as")
        if spelling == "int":
            return values[0]
        if spelling == "one-tuple":
            return (values[0],)
    return tuple(values)


def distinct_values(rng: np.random.Generator, shape: Shape, scale: float) -> Array:
    """Values in [-2 scale, 2 scale], pairwise at least scale / size apart: a shuffled even
    grid with a jitter of a quarter step. Max pooling's argmax is then unique with a margin far
    above a finite-difference step (1e-6) and float32 rounding (relative 6e-8) for any size a
    test draws, so neither check straddles a tie (ties are a torch convention of their own)."""
    size = math.prod(shape)
    step = 4.0 * scale / max(size, 1)
    grid = (rng.permutation(size) - (size - 1) / 2) * step
    return (grid + rng.uniform(-step / 4, step / 4, size)).reshape(shape)


def _normal(rng: np.random.Generator, shape: Shape, scale: float = 1.0) -> Array:
    return rng.standard_normal(shape) * scale


def _spread(rng: np.random.Generator, shape: Shape, axes: tuple[int, ...], scale: float,
            offset: float) -> Array:
    """offset + scale * z with z of mean 0 and standard deviation exactly 1 over ``axes``.

    A normalization divides by the spread sigma of each group, and float32 can only centre
    x - mu to eps32 |mu| / sigma relative (mu itself is rounded), an error then multiplied by
    1 / sigma in the gradient. Random groups of a few values are sometimes nearly constant
    (sigma -> 0), where float32 results are rounding noise whatever the algorithm. Drawing each
    group with sigma = scale keeps |mu| / sigma <= |offset| / scale: the checks test the
    formula, not the luck of the draw. Every group must hold at least two values.
    """
    z = rng.standard_normal(shape)
    z = z - z.mean(axis=axes, keepdims=True)
    return offset * scale + scale * z / z.std(axis=axes, keepdims=True)


# --- bilinear ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bilinear:
    """``input1`` (*, in1), ``input2`` (*, in2), ``weight`` (out, in1, in2), optional ``bias``.

    The weight is scaled by 1 / sqrt(in1 in2) so outputs stay of order one.
    """

    def _case(self, batch: Shape, n1: int, n2: int, n_out: int, bias: bool, scale: float,
              seed: int) -> Case:
        rng = np.random.default_rng(seed)
        arrays = {"input1": _normal(rng, (*batch, n1), scale),
                  "input2": _normal(rng, (*batch, n2), scale),
                  "weight": _normal(rng, (n_out, n1, n2)) / math.sqrt(n1 * n2)}
        if bias:
            arrays["bias"] = _normal(rng, (n_out,))
        return Case(arrays, tuple(arrays), {}, seed)

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            batch = draw(shapes(min_dims=0, max_dims=2, max_size=64), label="batch")
            n1, n2, n_out = (draw(st.integers(1, 8), label=k) for k in ("in1", "in2", "out"))
            return self._case(batch, n1, n2, n_out, draw(st.booleans(), label="bias"),
                              draw(VALUE_SCALES, label="scale"), draw(SEEDS, label="seed"))

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        width = max(2, n // 16)
        return self._case((n,), width, width, width, True, 1.0, seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): every array of a drawn scenario (power 3: products of
        three factors); in1 of each ``suite.hard.SIMD_SIZES`` size; long: weight gradients
        summed over ``suite.hard.long_terms()`` rows."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            seed = draw(SEEDS, label="seed")
            n1, n2, n_out = (draw(st.integers(1, 6), label=k) for k in ("in1", "in2", "out"))
            batch: Shape = draw(shapes(min_dims=0, max_dims=2, max_size=32), label="batch")
            if scenario == "simd":
                n1 = hard.simd_size(draw, zero_dim=False) or 1
            elif scenario == "long":
                batch = (hard.long_terms(),)
            case = self._case(batch, n1, n2, n_out, draw(st.booleans(), label="bias"), 1.0,
                              seed)
            rng, drawn = hard.rng_for(seed), draw(st.integers(0, 2**16), label="position")
            arrays, label = {}, ""
            for name, a in case.arrays.items():
                if scenario in hard.VALUE_SCENARIOS:
                    arrays[name], label = hard.values(rng, a.shape, scenario, dtype, power=3)
                elif name == "input1":
                    arrays[name], label = hard.place(rng, a, dtype, drawn, power=3)
            return hard.rewrite(case, arrays, f"{scenario}: {label}")

        return cases()


# --- convolution and pooling ---------------------------------------------------------------


@dataclass(frozen=True)
class Convolution:
    """``input`` (N, C, *spatial) or unbatched (C, *spatial), ``weight`` (O, C / groups, *k),
    optional ``bias``; options stride, padding (ints, tuples, ``"valid"``, ``"same"`` with
    stride 1), dilation, groups. Spatial sides <= ``max_side``, channels <= 8; each side is at
    least the dilated kernel minus the padding, so the output is never empty. Weights are
    scaled by 1 / sqrt(fan_in), torch's default initialisation's order.
    """

    dims: int
    max_side: int = 12

    def strategy(self) -> st.SearchStrategy[Case]:
        return st.composite(lambda draw: self.draw_case(draw))()

    def draw_case(self, draw: st.DrawFn) -> Case:
        """One case, every choice through ``draw`` (suite.covering steers it)."""
        d = self.dims
        groups = draw(st.integers(1, 2), label="groups")
        c_in = groups * draw(st.integers(1, 4 // groups * 2), label="in per group")
        c_out = groups * draw(st.integers(1, 4 // groups * 2), label="out per group")
        kernel = _per_dim(draw, st.integers(1, 3), d, "kernel")
        dilation = _per_dim(draw, st.integers(1, 2), d, "dilation")
        how = draw(st.sampled_from(["ints", "valid", "same"]), label="padding kind")
        stride = [1] * d if how == "same" else _per_dim(draw, st.integers(1, 3), d, "stride")
        pads = _per_dim(draw, st.integers(0, 2), d, "padding") if how == "ints" else [0] * d
        sides = []
        for i in range(d):
            reach = dilation[i] * (kernel[i] - 1) + 1
            lowest = 1 if how == "same" else max(1, reach - 2 * pads[i])
            sides.append(draw(st.integers(lowest, max(lowest, self.max_side)),
                              label=f"side[{i}]"))
        batch = draw(st.sampled_from([(), (1,), (2,), (3,)]), label="batch")
        arrays, seed = convolution_arrays(draw, (*batch, c_in, *sides),
                                          (c_out, c_in // groups, *kernel),
                                          c_in // groups * math.prod(kernel), c_out)
        options = {"stride": _spelled(draw, stride, "stride", one_tuple=True),
                   "padding": how if how != "ints" else _spelled(draw, pads, "padding",
                                                                 one_tuple=True),
                   "dilation": _spelled(draw, dilation, "dilation", one_tuple=True),
                   "groups": groups}
        return Case(arrays, tuple(arrays), options, seed)

    def covering(self) -> covering.Factors:
        """Every pair of stride, dilation, padding and kernel size per dimension, groups, bias
        and batching (suite.covering): the values that select other kernel paths. torch refuses
        ``padding="same"`` with a stride above 1, and a padding is given only as ints."""
        d = self.dims
        values: dict[str, tuple[Any, ...]] = {
            "groups": (1, 2), "padding kind": ("ints", "valid", "same"),
            **per_dim_factors("stride", (1, 2, 3), d), **per_dim_factors("dilation", (1, 2), d),
            **per_dim_factors("padding", (0, 1), d), **per_dim_factors("kernel", (1, 3), d),
            "batch": ((), (2,)), "bias": (False, True)}

        def allowed(row: Mapping[str, Any]) -> bool:
            kind = row.get("padding kind", "ints")
            return not any((k.startswith("stride[") and kind == "same" and v != 1)
                           or (k.startswith("padding[") and kind != "ints" and v != 0)
                           for k, v in row.items())

        return covering.Factors(values, allowed)

    @property
    def bench_variants(self) -> dict[str, BenchVariant]:
        """Settings that select other kernels (suite.inputs.variants): stride 2, dilation 2,
        2 groups, depthwise (8 groups of one channel), and for 2-d convolutions channels-last
        tensors."""
        variants = {"stride2": BenchVariant(options={"stride": 2}),
                    "dilation2": BenchVariant(options={"dilation": 2}),
                    "groups2": BenchVariant(options={"groups": 2}, transform=grouped(2)),
                    "depthwise": BenchVariant(options={"groups": 8}, transform=grouped(8))}
        if self.dims == 2:
            variants["channels_last"] = BenchVariant(memory_format="channels_last")
        return variants

    def sized(self, n: int, seed: int = 0) -> Case:
        rng = np.random.default_rng(seed)
        # at least 5 per side (the sizes these benchmarks have always had in 1-d and 2-d)
        side = (max(5, spatial_side(n, self.dims)),) * self.dims
        arrays = {"input": _normal(rng, (4, 8, *side)),
                  "weight": _normal(rng, (8, 8, *(3,) * self.dims)) / math.sqrt(8 * 3**self.dims),
                  "bias": _normal(rng, (8,))}
        return Case(arrays, tuple(arrays), {"padding": 1}, seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): input and weight of a drawn scenario (power 2), every
        option combination drawn as usual; the last spatial side of each
        ``suite.hard.SIMD_SIZES`` size with extremes in the vector body and tail; long: a
        convolution over ``suite.hard.long_terms()`` positions (conv1d; conv2d over a square of
        that many), whose weight gradient sums over all of them."""
        return hard_convolution(self, dtype)


def spatial_side(n: int, dims: int) -> int:
    """The side of a benchmark case's ``dims``-d spatial input for size ``n``: n, n / 8 or
    n / 32 (at least 4), so the number of positions grows roughly like n^1, n^2 / 64 and
    n^3 / 32768: a 1024-sized 3-d case stays near a million elements."""
    return max(4, n // {1: 1, 2: 8, 3: 32}[dims])


@dataclass(frozen=True)
class Pooling:
    """``input`` (N, C, *spatial) or (C, *spatial) with ``dims`` spatial dimensions for
    max_pool{dims}d (``kind="max"``: distinct values, options kernel_size, stride, padding <=
    kernel / 2 as torch requires, dilation, ceil_mode) or avg_pool{dims}d (``kind="avg"``:
    normal values, no dilation, count_include_pad, and divisor_override except in 1-d, where
    F.avg_pool1d has none)."""

    kind: str
    dims: int = 2
    max_side: int = 12

    def _input(self, rng: np.random.Generator, shape: Shape, scale: float) -> Array:
        return distinct_values(rng, shape, scale) if self.kind == "max" else _normal(rng, shape,
                                                                                     scale)

    def strategy(self) -> st.SearchStrategy[Case]:
        return st.composite(lambda draw: self.draw_case(draw))()

    def draw_case(self, draw: st.DrawFn) -> Case:
        """One case, every choice through ``draw`` (suite.covering steers it)."""
        d = self.dims
        kernel = _per_dim(draw, st.integers(1, 3), d, "kernel")
        dilation = _per_dim(draw, st.integers(1, 2), d, "dilation") \
            if self.kind == "max" else [1] * d
        pads = [draw(st.integers(0, k // 2), label=f"padding[{i}]")
                for i, k in enumerate(kernel)]
        sides = []
        for i in range(d):
            # Every window must hold an input element: side >= dilation ensures it for the
            # windows starting in the padding (their first real element is < dilation).
            lowest = max(1, dilation[i] * (kernel[i] - 1) + 1 - 2 * pads[i], dilation[i])
            if self.kind == "avg" and d == 3:
                # torch 2.13's avg_pool3d refuses a side shorter than the kernel even where
                # the padding makes room (1-d, 2-d and max_pool3d accept it:
                # KNOWN_DIFFERENCES.md, a strict xfail in tests/test_pooling.py)
                lowest = max(lowest, kernel[i])
            sides.append(draw(st.integers(lowest, max(lowest, self.max_side)),
                              label=f"side[{i}]"))
        batch = draw(st.sampled_from([(), (1,), (2,)]), label="batch")
        channels = draw(st.integers(1, 4), label="channels")
        options: dict[str, Any] = {"kernel_size": _spelled(draw, kernel, "kernel_size",
                                                           one_tuple=True)}
        stride = draw(st.sampled_from(["default", "given", "empty"]), label="stride")
        if stride == "given":
            options["stride"] = _spelled(draw, _per_dim(draw, st.integers(1, 3), d,
                                                        "stride"), "stride",
                                         one_tuple=True)
        elif stride == "empty":
            options["stride"] = ()  # torch reads an empty stride as kernel_size, as None
        options["padding"] = _spelled(draw, pads, "padding", one_tuple=True)
        options["ceil_mode"] = draw(st.booleans(), label="ceil_mode")
        if self.kind == "max":
            options["dilation"] = _spelled(draw, dilation, "dilation", one_tuple=True)
        else:
            options["count_include_pad"] = draw(st.booleans(), label="count_include_pad")
            if d > 1:
                options["divisor_override"] = draw(st.one_of(st.none(), st.integers(1, 9)),
                                                   label="divisor_override")
        scale = draw(VALUE_SCALES, label="scale")
        seed = draw(SEEDS, label="seed")
        x = self._input(np.random.default_rng(seed), (*batch, channels, *sides), scale)
        return Case({"input": x}, ("input",), options, seed)


    def covering(self) -> covering.Factors:
        """Every pair of kernel size, padding, stride (torch's default, given per dimension,
        or empty), ceil_mode, dilation (max) or count_include_pad and divisor_override (avg),
        and batching (suite.covering). torch requires padding <= kernel / 2; a stride value
        applies only where one is given."""
        d = self.dims
        values: dict[str, tuple[Any, ...]] = {
            **per_dim_factors("kernel", (1, 2, 3), d), **per_dim_factors("padding", (0, 1), d),
            "stride": ("default", "given", "empty"), **per_dim_factors("stride", (1, 2, 3), d),
            "ceil_mode": (False, True), "batch": ((), (2,))}
        if self.kind == "max":
            values.update(per_dim_factors("dilation", (1, 2), d))
        else:
            values["count_include_pad"] = (False, True)
            if d > 1:
                values["divisor_override"] = (None, 3)

        def allowed(row: Mapping[str, Any]) -> bool:
            for i in range(d):
                if row.get(f"padding[{i}]", 0) > row.get(f"kernel[{i}]", 3) // 2:
                    return False
                if row.get(f"stride[{i}]", 1) != 1 and row.get("stride", "given") != "given":
                    return False
            return True

        return covering.Factors(values, allowed)

    @property
    def bench_variants(self) -> dict[str, BenchVariant]:
        """Settings that select other kernels (suite.inputs.variants): stride 1 (overlapping
        windows), dilation 2 (max pooling), channels-last tensors (2-d and 3-d pooling: torch has
        no channels-last format of 3-d tensors)."""
        variants = {"stride1": BenchVariant(options={"stride": 1})}
        if self.kind == "max":
            variants["dilation2"] = BenchVariant(options={"dilation": 2})
        if self.dims == 2:
            variants["channels_last"] = BenchVariant(memory_format="channels_last")
        elif self.dims == 3:
            variants["channels_last_3d"] = BenchVariant(memory_format="channels_last_3d")
        return variants

    def sized(self, n: int, seed: int = 0) -> Case:
        side = spatial_side(n, self.dims)
        x = self._input(np.random.default_rng(seed), (4, 8, *(side,) * self.dims), 1.0)
        options = {"kernel_size": 3, "stride": 2, "padding": 1}
        return Case({"input": x}, ("input",), options, seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): inputs of a drawn scenario (``ties``: values from a
        small set, so that windows hold several maxima and torch's first-maximum convention
        decides; power 2), every option drawn as usual; the width of each
        ``suite.hard.SIMD_SIZES`` size with extremes in the vector body and tail."""
        return hard_convolution(self, dtype)


# --- normalization -------------------------------------------------------------------------


def _affine_params(draw: st.DrawFn, rng: np.random.Generator, shape: Shape,
                   names: tuple[str, ...] = ("weight", "bias")) -> dict[str, Array]:
    """Per-feature weight (around 1) and bias, each present or not."""
    arrays = {}
    for name in names:
        if draw(st.booleans(), label=name):
            arrays[name] = (1.0 if name == "weight" else 0.0) + 0.5 * _normal(rng, shape)
    return arrays


@dataclass(frozen=True)
class Normalized:
    """layer_norm (``kind="layer"``) or rms_norm (``kind="rms"``): ``input`` (*batch,
    *normalized_shape) with 1-2 normalized dimensions of at least two elements, optional
    ``weight`` (and ``bias`` for layer_norm) of ``normalized_shape``, ``eps``. layer_norm's
    samples have a drawn offset (so the centring is exercised) and the drawn spread
    (:func:`_spread`); rms_norm's are plain normal values (it does not centre: its
    1 / rms is bounded by sqrt(n) / |x|, well conditioned)."""

    kind: str

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            normalized = draw(shapes(min_dims=1, max_dims=2, max_side=16, max_size=64).filter(
                lambda s: math.prod(s) >= 2), label="normalized_shape")
            batch = draw(shapes(min_dims=0, max_dims=2, max_side=8, max_size=16), label="batch")
            scale = draw(VALUE_SCALES, label="scale")
            offset = draw(st.sampled_from((0.0, 3.0)), label="offset")
            seed = draw(SEEDS, label="seed")
            rng = np.random.default_rng(seed)
            shape = (*batch, *normalized)
            axes = tuple(range(len(batch), len(shape)))
            arrays = {"input": _spread(rng, shape, axes, scale, offset) if self.kind == "layer"
                      else _normal(rng, shape, scale)}
            names = ("weight", "bias") if self.kind == "layer" else ("weight",)
            arrays |= _affine_params(draw, rng, normalized, names)
            options = {"normalized_shape": normalized, "eps": draw(EPS, label="eps")}
            return Case(arrays, tuple(arrays), options, seed)

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        rng = np.random.default_rng(seed)
        arrays = {"input": _normal(rng, (n, n)), "weight": 1 + 0.5 * _normal(rng, (n,))}
        if self.kind == "layer":
            arrays["bias"] = _normal(rng, (n,))
        return Case(arrays, tuple(arrays), {"normalized_shape": (n,), "eps": 1e-5}, seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): rows (the normalized dims) of a drawn scenario:
        offsets up to 1e4 times the spread, constant rows (layer_norm must give exactly the
        bias), nearly constant ones, magnitudes whose squares approach overflow and underflow;
        a normalized dim of each ``suite.hard.SIMD_SIZES`` size with extremes in the vector
        body and tail; rows of ``suite.hard.long_terms()`` elements."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            if scenario in hard.SIZE_SCENARIOS:
                size = hard.size_for(draw, scenario)
                normalized: Shape = (size,)
                batch: Shape = draw(st.sampled_from([(), (2,), (3,)]), label="batch")
            else:
                normalized = draw(shapes(min_dims=1, max_dims=2, max_side=16, max_size=64),
                                  label="normalized_shape")
                batch = draw(shapes(min_dims=0, max_dims=2, max_side=8, max_size=16),
                             label="batch")
            seed = draw(SEEDS, label="seed")
            rng = np.random.default_rng(seed)
            shape = (*batch, *normalized)
            axes = tuple(range(len(batch), len(shape)))
            hard_rng, drawn = hard.rng_for(seed), draw(st.integers(0, 2**16), label="position")
            if scenario in hard.VALUE_SCENARIOS:
                x, label = hard.values(hard_rng, shape, scenario, dtype, power=2, axes=axes)
            else:
                x, label = hard.place(hard_rng, _normal(rng, shape), dtype, drawn, power=2)
            names = ("weight", "bias") if self.kind == "layer" else ("weight",)
            arrays = {"input": x, **_affine_params(draw, rng, normalized, names)}
            options = {"normalized_shape": normalized, "eps": draw(EPS, label="eps")}
            return Case(arrays, tuple(arrays), options, seed, f"{scenario}: {label}")

        return cases()


@dataclass(frozen=True)
class GroupNormalized:
    """group_norm: ``input`` (N, C, *spatial) with 0-2 spatial dimensions, C = num_groups x
    channels per group, N = 0 to 3 (an empty batch one time in eight), optional per-channel
    ``weight`` and ``bias``, ``eps``. Every group holds at least two values, with a drawn offset
    and spread (:func:`_spread`)."""

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            groups = draw(st.integers(1, 4), label="num_groups")
            per_group = draw(st.integers(1, 3), label="channels per group")
            channels = groups * per_group
            spatial = draw(shapes(min_dims=0, max_dims=2, max_side=6, max_size=24),
                           label="spatial")
            if per_group * math.prod(spatial) == 1:  # a group needs two values (_spread)
                spatial = (2,)
            # An empty batch now and then: torch accepts it (an empty output, zero parameter
            # gradients).
            empty = draw(st.integers(0, 7), label="empty batch if 0") == 0
            n = 0 if empty else draw(st.integers(1, 3), label="N")
            scale = draw(VALUE_SCALES, label="scale")
            offset = draw(st.sampled_from((0.0, 3.0)), label="offset")
            seed = draw(SEEDS, label="seed")
            rng = np.random.default_rng(seed)
            grouped = _spread(rng, (n, groups, per_group * math.prod(spatial)), (2,), scale,
                              offset)
            arrays = {"input": grouped.reshape(n, channels, *spatial)}
            arrays |= _affine_params(draw, rng, (channels,))
            if ("bias" in arrays and "weight" not in arrays
                    and versions.GROUP_NORM_BIAS_WITHOUT_WEIGHT_RAISES):
                # torch 2.13's group_norm backward fails on a bias without a weight
                # (KNOWN_DIFFERENCES.md; tests/test_layers.py keeps a strict xfail on it).
                arrays["weight"] = 1.0 + 0.5 * _normal(rng, (channels,))
            options = {"num_groups": groups, "eps": draw(EPS, label="eps")}
            return Case(arrays, tuple(arrays), options, seed)

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        rng = np.random.default_rng(seed)
        arrays = {"input": _normal(rng, (max(2, n // 8), 8, max(2, n // 8))),
                  "weight": 1 + 0.5 * _normal(rng, (8,)), "bias": _normal(rng, (8,))}
        return Case(arrays, tuple(arrays), {"num_groups": 4, "eps": 1e-5}, seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): groups of a drawn scenario (offsets, constant and
        nearly constant groups, extremes; power 2); spatial sizes of each
        ``suite.hard.SIMD_SIZES`` size with extremes in the vector body and tail, or groups of
        ``suite.hard.long_terms()`` elements."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            groups = draw(st.integers(1, 3), label="num_groups")
            per_group = draw(st.integers(1, 2), label="channels per group")
            if scenario == "simd":
                spatial: Shape = (hard.simd_size(draw, zero_dim=False) or 1,)
            elif scenario == "long":
                spatial = (hard.long_terms() // per_group,)
            else:
                spatial = draw(shapes(min_dims=0, max_dims=2, max_side=6, max_size=24),
                               label="spatial")
            if per_group * math.prod(spatial) == 1:  # a group needs two values (torch)
                per_group = 2
            n = draw(st.integers(1, 2), label="N")
            channels = groups * per_group
            seed = draw(SEEDS, label="seed")
            rng = np.random.default_rng(seed)
            grouped_shape = (n, groups, per_group * math.prod(spatial))
            hard_rng, drawn = hard.rng_for(seed), draw(st.integers(0, 2**16), label="position")
            if scenario in hard.VALUE_SCENARIOS:
                x, label = hard.values(hard_rng, grouped_shape, scenario, dtype, power=2,
                                       axes=(2,))
            else:
                x, label = hard.place(hard_rng, _normal(rng, grouped_shape), dtype, drawn,
                                      power=2)
            arrays = {"input": x.reshape(n, channels, *spatial)}
            arrays |= _affine_params(draw, rng, (channels,))
            if ("bias" in arrays and "weight" not in arrays
                    and versions.GROUP_NORM_BIAS_WITHOUT_WEIGHT_RAISES):
                arrays["weight"] = 1.0 + 0.5 * _normal(rng, (channels,))
            options = {"num_groups": groups, "eps": draw(EPS, label="eps")}
            return Case(arrays, tuple(arrays), options, seed, f"{scenario}: {label}")

        return cases()


@dataclass(frozen=True)
class BatchNormalized:
    """batch_norm: ``input`` (N, C, *spatial) with 0-2 spatial dimensions, running statistics
    (buffers, not differentiated; the variance positive), optional ``weight``, ``bias``;
    options ``training``, ``momentum``, ``eps``. Each channel has at least two values (torch
    refuses one in training), with a drawn offset and spread (:func:`_spread`). An empty 1-D
    input, which F.batch_norm accepts (no channel dimension, empty statistics), is not drawn:
    the module form (nn.BatchNorm1d) rejects 1-D inputs; tests/test_layers.py checks it."""

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            training = draw(st.booleans(), label="training")
            channels = draw(st.integers(1, 6), label="C")
            # 0-3 spatial dims: (N, C) to (N, C, D, H, W), every rank nn.BatchNorm1d/2d/3d takes
            spatial = draw(shapes(min_dims=0, max_dims=3, max_side=6, max_size=24),
                           label="spatial")
            n = draw(st.integers(2 if math.prod(spatial) == 1 else 1, 4), label="N")
            scale = draw(VALUE_SCALES, label="scale")
            offset = draw(st.sampled_from((0.0, 3.0)), label="offset")
            seed = draw(SEEDS, label="seed")
            rng = np.random.default_rng(seed)
            shape = (n, channels, *spatial)
            arrays = {"input": _spread(rng, shape, (0, *range(2, len(shape))), scale, offset),
                      "running_mean": _normal(rng, (channels,)),
                      "running_var": rng.uniform(0.25, 4.0, channels)}
            arrays |= _affine_params(draw, rng, (channels,))
            options = {"training": training, "momentum": draw(st.floats(0.0, 1.0),
                                                              label="momentum"),
                       "eps": draw(EPS, label="eps")}
            differentiable = tuple(k for k in arrays if k not in ("running_mean", "running_var"))
            return Case(arrays, differentiable, options, seed)

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        rng = np.random.default_rng(seed)
        arrays = {"input": _normal(rng, (n, n)), "running_mean": np.zeros(n),
                  "running_var": np.ones(n), "weight": 1 + 0.5 * _normal(rng, (n,)),
                  "bias": _normal(rng, (n,))}
        return Case(arrays, ("input", "weight", "bias"),
                    {"training": True, "momentum": 0.1, "eps": 1e-5}, seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): channels of a drawn scenario over the batch and
        spatial dims (offsets, constant and nearly constant channels, extremes; power 2),
        training and evaluation; spatial sizes of each ``suite.hard.SIMD_SIZES`` size, or
        channels of ``suite.hard.long_terms()`` elements."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            training = draw(st.booleans(), label="training")
            channels = draw(st.integers(1, 3), label="C")
            if scenario == "simd":
                spatial: Shape = (hard.simd_size(draw, zero_dim=False) or 1,)
            elif scenario == "long":
                spatial = (hard.long_terms() // 4,)
            else:
                spatial = draw(shapes(min_dims=0, max_dims=2, max_side=6, max_size=24),
                               label="spatial")
            n = draw(st.integers(2 if math.prod(spatial) == 1 else 1, 4), label="N")
            if scenario == "long":
                n = 4
            seed = draw(SEEDS, label="seed")
            rng = np.random.default_rng(seed)
            shape = (n, channels, *spatial)
            axes = (0, *range(2, len(shape)))
            hard_rng, drawn = hard.rng_for(seed), draw(st.integers(0, 2**16), label="position")
            if scenario in hard.VALUE_SCENARIOS:
                x, label = hard.values(hard_rng, shape, scenario, dtype, power=2, axes=axes)
            else:
                x, label = hard.place(hard_rng, _normal(rng, shape), dtype, drawn, power=2)
            arrays = {"input": x, "running_mean": _normal(rng, (channels,)),
                      "running_var": rng.uniform(0.25, 4.0, channels)}
            arrays |= _affine_params(draw, rng, (channels,))
            options = {"training": training, "momentum": draw(st.floats(0.0, 1.0),
                                                              label="momentum"),
                       "eps": draw(EPS, label="eps")}
            differentiable = tuple(k for k in arrays if k not in ("running_mean", "running_var"))
            return Case(arrays, differentiable, options, seed, f"{scenario}: {label}")

        return cases()


# --- embedding and attention ---------------------------------------------------------------


@dataclass(frozen=True)
class Lookup:
    """embedding: int64 indices ``input`` of 0-2 dimensions drawn with repeats (up to 4x more
    positions than rows), a table ``weight`` (num_embeddings, dim), the only differentiable
    argument. padding_idx and scale_grad_by_freq change the gradient away from the
    derivative, so they are checked in tests/test_layers.py, not drawn here."""

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            num = draw(st.integers(1, 12), label="num_embeddings")
            dim = draw(st.integers(1, 8), label="embedding_dim")
            positions = draw(shapes(min_dims=0, max_dims=2, max_side=4 * num, max_size=48),
                             label="input shape")
            scale = draw(VALUE_SCALES, label="scale")
            seed = draw(SEEDS, label="seed")
            rng = np.random.default_rng(seed)
            arrays = {"input": rng.integers(0, num, positions).astype(np.int64),
                      "weight": _normal(rng, (num, dim), scale)}
            return Case(arrays, ("weight",), {}, seed)

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        rng = np.random.default_rng(seed)
        arrays = {"input": rng.integers(0, n, (n,)).astype(np.int64),
                  "weight": _normal(rng, (n, 16))}
        return Case(arrays, ("weight",), {}, seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): table values of a drawn scenario; ``ties`` looks every
        position up in one row (its gradient sums them all); embedding dims of each
        ``suite.hard.SIMD_SIZES`` size with extremes in the vector body and tail; long:
        ``suite.hard.long_terms()`` indices (a 2-d index tensor) into 4 rows."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            num = draw(st.integers(1, 12), label="num_embeddings")
            dim = draw(st.integers(1, 8), label="embedding_dim")
            positions: Shape = draw(shapes(min_dims=0, max_dims=2, max_side=48, max_size=48),
                                    label="input shape")
            if scenario == "simd":
                dim = hard.simd_size(draw, zero_dim=False) or 1
            elif scenario == "long":
                num, positions = 4, (hard.long_terms() // 8, 8)
            seed = draw(SEEDS, label="seed")
            rng = np.random.default_rng(seed)
            index = rng.integers(0, num, positions).astype(np.int64)
            hard_rng, drawn = hard.rng_for(seed), draw(st.integers(0, 2**16), label="position")
            if scenario in hard.VALUE_SCENARIOS:
                weight, label = hard.values(hard_rng, (num, dim), scenario, dtype, axes=(1,))
                if scenario == "ties":
                    index = np.full(positions, int(rng.integers(0, num)), dtype=np.int64)
            else:
                weight, label = hard.place(hard_rng, _normal(rng, (num, dim)), dtype, drawn)
            return Case({"input": index, "weight": weight}, ("weight",), {}, seed,
                        f"{scenario}: {label}")

        return cases()


MASKS = ("none", "bool", "float", "causal")


def _broadcast_batch(draw: st.DrawFn, batch: Shape, name: str) -> Shape:
    """``batch``, or a batch shape torch broadcasts up to it: some leading dimensions dropped,
    or some dimensions cut to 1 (the gradient must then be summed back over the copies)."""
    how = draw(st.sampled_from(["full", "dropped", "cut"]) if batch else st.just("full"),
               label=f"{name} batch")
    if how == "dropped":
        return batch[draw(st.integers(1, len(batch)), label=f"{name} dims dropped"):]
    if how == "cut":
        cut = draw(st.sets(st.integers(0, len(batch) - 1), min_size=1), label=f"{name} cut")
        return tuple(1 if i in cut else n for i, n in enumerate(batch))
    return batch


@dataclass(frozen=True)
class Attention:
    """scaled_dot_product_attention: ``query`` (*, L, E), ``key`` (*, S, E), ``value``
    (*, S, Ev), 0-2 batch dimensions, sides <= 8; each of query, key and value has the full
    batch shape or one torch broadcasts against it (leading dimensions dropped, or some cut to
    1: :func:`_broadcast_batch`); a mask drawn from ``MASKS``: none, boolean (True takes part;
    every query keeps at least one key), additive float (differentiable), or ``is_causal``;
    broadcast masks (L, S) or ones of the scores' full shape; ``scale`` None or drawn."""

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            batch = draw(shapes(min_dims=0, max_dims=2, max_side=3, max_size=6), label="batch")
            q_batch, k_batch, v_batch = (_broadcast_batch(draw, batch, name)
                                         for name in ("query", "key", "value"))
            lq, sk, e, ev = (draw(st.integers(1, 8), label=k) for k in ("L", "S", "E", "Ev"))
            mask = draw(st.sampled_from(MASKS), label="mask")
            scale = draw(VALUE_SCALES, label="value scale")
            seed = draw(SEEDS, label="seed")
            rng = np.random.default_rng(seed)
            arrays = {"query": _normal(rng, (*q_batch, lq, e), scale),
                      "key": _normal(rng, (*k_batch, sk, e), scale),
                      "value": _normal(rng, (*v_batch, sk, ev))}
            options: dict[str, Any] = {}
            # torch adds the mask to the scores in place: it may broadcast up to their batch
            # shape (query's and key's, broadcast), never beyond it.
            scores_batch = np.broadcast_shapes(q_batch, k_batch)
            mask_shape = (*scores_batch, lq, sk) if draw(st.booleans(), label="full mask") \
                else (lq, sk)
            if mask == "bool":
                allowed = rng.random(mask_shape) < 0.6
                keep = rng.integers(0, sk, mask_shape[:-1])  # one key each query keeps
                np.put_along_axis(allowed, keep[..., None], True, axis=-1)
                arrays["attn_mask"] = allowed
            elif mask == "float":
                arrays["attn_mask"] = _normal(rng, mask_shape)
            elif mask == "causal":
                options["is_causal"] = True
            if versions.SDPA_SCALE:  # the argument exists since torch 2.1
                options["scale"] = draw(st.one_of(st.none(), st.floats(0.1, 2.0)),
                                        label="scale")
            differentiable = tuple(k for k, a in arrays.items() if a.dtype.kind == "f")
            return Case(arrays, differentiable, options, seed)

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        rng = np.random.default_rng(seed)
        length = max(2, n // 8)
        arrays = {k: _normal(rng, (2, 4, length, 16)) for k in ("query", "key", "value")}
        return Case(arrays, tuple(arrays), {}, seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): query, key and value of a drawn scenario (power 2:
        scores are products; constant keys give uniform attention, offsets shift every score
        of a row alike), masks and scales drawn as usual; E and S of each
        ``suite.hard.SIMD_SIZES`` size with extremes in the vector body and tail; long: a
        softmax over ``suite.hard.long_terms()`` keys."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            case = draw(self.strategy(), label="typical case")
            rng, drawn = hard.rng_for(case.seed), draw(st.integers(0, 2**16), label="position")
            arrays = dict(case.arrays)
            if scenario in hard.SIZE_SCENARIOS:
                q, k, v = arrays["query"], arrays["key"], arrays["value"]
                size = hard.size_for(draw, scenario)
                e = size if scenario == "simd" else q.shape[-1]
                s_keys = size if scenario == "long" or draw(st.booleans(), label="S") \
                    else k.shape[-2]
                arrays["query"] = rng.standard_normal((*q.shape[:-1], e))
                arrays["key"] = rng.standard_normal((*k.shape[:-2], s_keys, e))
                arrays["value"] = rng.standard_normal((*v.shape[:-2], s_keys, v.shape[-1]))
                mask = arrays.pop("attn_mask", None)
                if mask is not None and mask.shape[-1] != s_keys:
                    if mask.dtype == bool:
                        mask = np.ones((*mask.shape[:-1], s_keys), dtype=bool)
                    else:
                        mask = rng.standard_normal((*mask.shape[:-1], s_keys))
                if mask is not None:
                    arrays["attn_mask"] = mask
                label = ""
                for name in ("query", "key"):
                    arrays[name], label = hard.place(rng, arrays[name], dtype, drawn, power=2)
            else:
                label = ""
                for name in ("query", "key", "value"):
                    arrays[name], label = hard.values(rng, arrays[name].shape, scenario, dtype,
                                                      power=2, axes=(-1,))
            differentiable = tuple(k for k, a in arrays.items() if a.dtype.kind == "f")
            return Case(arrays, differentiable, case.options, case.seed, f"{scenario}: {label}")

        return cases()


# --- the hard tier ---------------------------------------------------------------------------


def _wide(maker: Convolution | Pooling, side: int, simd: bool) -> st.SearchStrategy[Case]:
    """The maker's typical cases with sides up to ``side`` (only last sides in
    ``suite.hard.SIMD_SIZES`` with ``simd``), built once per maker."""
    from suite.specs import cached_strategy

    def build() -> st.SearchStrategy[Case]:
        strategy = dataclasses.replace(maker, max_side=side).strategy()
        if simd:
            return strategy.filter(lambda c: c.arrays["input"].shape[-1] in hard.SIMD_SIZES)
        return strategy

    return cached_strategy(maker, ("hard", side, simd), build)


def hard_convolution(maker: Convolution | Pooling, dtype: torch.dtype
                     ) -> st.SearchStrategy[Case]:
    """Convolution's and pooling's hard tier (their ``hard`` docstrings)."""

    @st.composite
    def cases(draw: st.DrawFn) -> Case:
        scenario = hard.scenario(draw)
        if scenario == "simd":
            case = draw(_wide(maker, 65, True), label="case")
        elif scenario == "long":
            dims = maker.dims if isinstance(maker, Convolution) else 2
            side = hard.long_terms() if dims == 1 else math.isqrt(hard.long_terms())
            case = draw(_wide(maker, side, False), label="case")
        else:
            case = draw(maker.strategy(), label="case")
        rng, drawn = hard.rng_for(case.seed), draw(st.integers(0, 2**16), label="position")
        arrays, label = {}, ""
        for name in ("input", "weight"):
            if name not in case.arrays:
                continue
            a = case.arrays[name]
            if scenario in hard.VALUE_SCENARIOS:
                arrays[name], label = hard.values(rng, a.shape, scenario, dtype, power=2)
            elif name == "input":
                arrays[name], label = hard.place(rng, a, dtype, drawn, power=2)
        return hard.rewrite(case, arrays, f"{scenario}: {label}")

    return cases()


def _untie_bag_maxima(arrays: Mapping[str, Array], options: Mapping[str, Any],
                      dtype: torch.dtype) -> Array:
    """embedding_bag's ``input`` with every tie between different rows at a bag's maximum
    (in a column, the table rounded to ``dtype``) removed by redirecting the bag's lookups of
    the other tied rows to the first of them (padding positions are left alone): each bag's
    maximum in each column is then held by one row, looked up once or several times."""
    from references.layers import _bag_terms
    from suite.specs import round_to

    table = round_to(arrays["weight"], dtype)
    index = np.array(arrays["input"], dtype=np.int64)
    flat = index.reshape(-1)
    _, bag, keep, _, _, n_bags = _bag_terms(arrays["input"], table, arrays.get("offsets"),
                                            None, options["include_last_offset"],
                                            options["padding_idx"])
    for b in range(n_bags):
        where = np.flatnonzero((bag == b) & (keep > 0))
        while where.size:
            rows = flat[where]
            values = table[rows]
            tied = values == values.max(axis=0)
            shared = [np.unique(rows[tied[:, j]]) for j in range(table.shape[1])]
            column = next((t for t in shared if t.size > 1), None)
            if column is None:
                break
            flat[where[np.isin(rows, column[1:])]] = column[0]
    return index


@dataclass(frozen=True)
class Bags:
    """embedding_bag: int64 indices ``input``, 2-D (B, N: a bag per row) or 1-D with
    ``offsets`` (bags of 0-4 indices, empty bags included; B + 1 offsets with
    include_last_offset), a table ``weight`` (num_embeddings, D), and for mode "sum"
    optionally ``per_sample_weights`` (the input's shape). Options mode, include_last_offset,
    padding_idx (None or any row, negative spellings included; the padding row is looked up
    often). Max mode's table has distinct values (:func:`distinct_values`): no two rows tie
    in a column, so its argmax (and gradient) is unique far beyond rounding and
    finite-difference steps."""

    def _case(self, *, num: int, dim: int, layout: str, sizes: list[int], width: int,
              mode: str, weighted: bool, padding_idx: int | None, scale: float,
              seed: int) -> Case:
        rng = np.random.default_rng(seed)
        table = distinct_values(rng, (num, dim), scale) if mode == "max" \
            else _normal(rng, (num, dim), scale)
        if layout == "2-D":
            idx = rng.integers(0, num, (len(sizes), width))
        else:
            idx = rng.integers(0, num, sum(sizes))
        if padding_idx is not None and idx.size:  # the padding row is looked up
            flat = idx.reshape(-1)
            flat[rng.random(flat.size) < 0.3] = padding_idx % num
        arrays: dict[str, Array] = {"input": idx.astype(np.int64), "weight": table}
        include_last = layout == "offsets, include_last_offset"
        if layout != "2-D":
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
            arrays["offsets"] = np.append(starts, idx.size) if include_last else starts
        if weighted:
            arrays["per_sample_weights"] = _normal(rng, idx.shape)
        options = {"mode": mode, "include_last_offset": include_last,
                   "padding_idx": padding_idx}
        differentiable = tuple(k for k in ("weight", "per_sample_weights") if k in arrays)
        return Case(arrays, differentiable, options, seed)

    def _draw_arguments(self, draw: st.DrawFn) -> dict[str, Any]:
        """The keyword arguments of :meth:`_case`, every choice through ``draw``."""
        num = draw(st.integers(1, 10), label="num_embeddings")
        layout = draw(st.sampled_from(["2-D", "offsets", "offsets, include_last_offset"]),
                      label="layout")
        bags = draw(st.integers(1, 5), label="bags")
        sizes = [draw(st.integers(0, 4), label=f"bag size {i}") for i in range(bags)]
        if layout != "2-D" and sum(sizes) == 0:
            sizes[-1] = 1  # at least one index
        mode = draw(st.sampled_from(["sum", "mean", "max"]), label="mode")
        padding = draw(st.one_of(st.none(), st.integers(-num, num - 1)), label="padding_idx")
        return {"num": num, "dim": draw(st.integers(1, 6), label="embedding_dim"),
                "layout": layout, "sizes": sizes,
                "width": draw(st.integers(1, 4), label="bag width (2-D)"), "mode": mode,
                "weighted": mode == "sum" and draw(st.booleans(), label="per_sample_weights"),
                "padding_idx": padding, "scale": draw(VALUE_SCALES, label="scale"),
                "seed": draw(SEEDS, label="seed")}

    def strategy(self) -> st.SearchStrategy[Case]:
        return st.composite(lambda draw: self._case(**self._draw_arguments(draw)))()

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): every mode, layout and option drawn as usual; the
        table of a drawn scenario, groups along the rows (what a bag reduces over: ``constant``
        gives every row the same value in a column, ``offset`` a column offset far above the
        rows' spread), and per_sample_weights of the same scenario (power 2 with them: sum
        mode multiplies the two; else power 1); ``simd``: embedding dims of each
        ``suite.hard.SIMD_SIZES`` size with extremes in the vector body and tail of the
        table's rows; ``long``: one bag of ``suite.hard.long_terms()`` indices (its sum, mean
        or max, and each row's gradient summed over its thousands of lookups), values as
        usual (extremes summed over thousands of lookups would only overflow).

        Max mode: torch documents no rule for which of several rows tied at a bag's maximum
        receives the gradient (its CPU kernel keeps the first), so ties are drawn only where
        the choice does not matter: wherever two different rows of a bag tie at its maximum
        in a column (in the dtype under test: ``ties``, ``constant``, ``signed zeros``, zeros
        among ``subnormal``, values that round together), the bag's lookups of the other rows
        are redirected to one of them, so tied maxima are repeated lookups of one row (the
        output and each row's gradient are the same whichever copy wins)."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            arguments = self._draw_arguments(draw)
            if scenario == "simd":
                arguments["dim"] = hard.simd_size(draw, zero_dim=False) or 1
            elif scenario == "long":
                arguments["sizes"] = [hard.long_terms()]
                arguments["width"] = hard.long_terms()
            case = self._case(**arguments)
            power = 2 if arguments["weighted"] else 1
            rng, drawn = hard.rng_for(case.seed), draw(st.integers(0, 2**16), label="position")
            arrays, label = dict(case.arrays), "values as usual"
            if scenario in hard.VALUE_SCENARIOS:
                arrays["weight"], label = hard.values(rng, arrays["weight"].shape, scenario,
                                                      dtype, power=power, axes=(0,))
                if "per_sample_weights" in arrays:
                    arrays["per_sample_weights"], _ = hard.values(
                        rng, arrays["per_sample_weights"].shape, scenario, dtype, power=power)
            elif scenario == "simd":
                arrays["weight"], label = hard.place(rng, arrays["weight"], dtype, drawn,
                                                     power=power)
            if arguments["mode"] == "max":
                arrays["input"] = _untie_bag_maxima(arrays, case.options, dtype)
            return hard.rewrite(case, arrays, f"{scenario}: {label}")

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        return self._case(num=n, dim=16, layout="offsets", sizes=[4] * n, width=4,
                          mode="sum", weighted=True, padding_idx=None, scale=1.0, seed=seed)


@dataclass(frozen=True)
class InstanceNormalized:
    """instance_norm: ``input`` (N, C, *spatial) with 1-3 spatial dimensions of at least two
    elements in all, each (n, c) with a drawn offset and spread (:func:`_spread`); running
    statistics (buffers, the variance positive) always when ``use_input_stats`` is False,
    drawn otherwise (then updated in place); optional per-channel ``weight``, ``bias``;
    options ``use_input_stats``, ``momentum``, ``eps``."""

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            d = draw(st.integers(1, 3), label="spatial dims")
            spatial = draw(shapes(min_dims=d, max_dims=d, max_side=5, max_size=24).filter(
                lambda s: math.prod(s) >= 2), label="spatial")
            return self._case(draw, spatial)

        return cases()

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): instances ((n, c) pairs, over the spatial dims) of a
        drawn scenario (power 2: a variance): offsets up to 1e4 times the spread, constant
        instances (with input statistics they must normalise to exactly 0 before the affine:
        x - mean is 0 exactly), nearly constant ones (a spread of a few ulp, far below
        sqrt(eps)), magnitudes whose squares approach overflow and underflow; running
        statistics, weight, bias and options drawn as usual (with running statistics only,
        nothing is centred); ``simd``: a last spatial side of each ``suite.hard.SIMD_SIZES``
        size with extremes in its vector body and tail; ``long``: instances of
        ``suite.hard.long_terms()`` elements (one spatial side, or two of its square root)."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            if scenario == "simd":
                size = hard.simd_size(draw, zero_dim=False) or 1
                lead: Shape = draw(st.sampled_from([(), (2,), (3,), (2, 1)]), label="sides")
                spatial: Shape = (*lead, size) if size > 1 or lead else (2, size)
            elif scenario == "long":
                length = hard.long_terms()
                spatial = draw(st.sampled_from([(length,), (math.isqrt(length),) * 2]),
                               label="spatial")
            else:
                d = draw(st.integers(1, 3), label="spatial dims")
                spatial = draw(shapes(min_dims=d, max_dims=d, max_side=5, max_size=24).filter(
                    lambda s: math.prod(s) >= 2), label="spatial")
            case = self._case(draw, spatial, small=scenario in hard.SIZE_SCENARIOS)
            x = case.arrays["input"]
            rng, drawn = hard.rng_for(case.seed), draw(st.integers(0, 2**16), label="position")
            if scenario in hard.VALUE_SCENARIOS:
                x, label = hard.values(rng, x.shape, scenario, dtype, power=2,
                                       axes=tuple(range(2, x.ndim)))
            elif scenario == "simd":
                x, label = hard.place(rng, x, dtype, drawn, power=2)
            else:
                label = f"instances of {math.prod(spatial)} elements"
            return hard.rewrite(case, {"input": x}, f"{scenario}: {label}")

        return cases()

    def _case(self, draw: st.DrawFn, spatial: Shape, small: bool = False) -> Case:
        """The case for ``spatial`` sides, every other choice through ``draw`` (``small``: N
        and C of at most 2)."""
        d = len(spatial)
        n = draw(st.integers(1, 2 if small else 3), label="N")
        channels = draw(st.integers(1, 2 if small else 4), label="C")
        use_input_stats = draw(st.booleans(), label="use_input_stats")
        running = not use_input_stats or draw(st.booleans(), label="running stats")
        scale = draw(VALUE_SCALES, label="scale")
        offset = draw(st.sampled_from((0.0, 3.0)), label="offset")
        seed = draw(SEEDS, label="seed")
        rng = np.random.default_rng(seed)
        shape = (n, channels, *spatial)
        arrays = {"input": _spread(rng, shape, tuple(range(2, 2 + d)), scale, offset)}
        if running:
            arrays["running_mean"] = _normal(rng, (channels,))
            arrays["running_var"] = rng.uniform(0.25, 4.0, channels)
        arrays |= _affine_params(draw, rng, (channels,))
        options = {"use_input_stats": use_input_stats,
                   "momentum": draw(st.floats(0.0, 1.0), label="momentum"),
                   "eps": draw(EPS, label="eps")}
        differentiable = tuple(k for k in arrays if not k.startswith("running_"))
        return Case(arrays, differentiable, options, seed)

    def sized(self, n: int, seed: int = 0) -> Case:
        rng = np.random.default_rng(seed)
        arrays = {"input": _normal(rng, (4, 8, max(2, n), max(2, n // 8))),
                  "running_mean": np.zeros(8), "running_var": np.ones(8),
                  "weight": 1 + 0.5 * _normal(rng, (8,)), "bias": _normal(rng, (8,))}
        return Case(arrays, ("input", "weight", "bias"),
                    {"use_input_stats": True, "momentum": 0.1, "eps": 1e-5}, seed)


@dataclass(frozen=True)
class ResponseNormalized:
    """local_response_norm: ``input`` (N, C, *spatial) with 1-3 spatial dimensions (torch
    wants at least one), C <= 8, ``size`` from 1 to C + 2 (windows wider than the channels
    included); alpha, beta, k > 0 from a few decades."""

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            spatial = draw(shapes(min_dims=1, max_dims=3, max_side=4, max_size=16),
                           label="spatial")
            channels = draw(st.integers(1, 8), label="C")
            n = draw(st.integers(1, 3), label="N")
            return self._case(draw, (n, channels, *spatial))

        return cases()

    def _case(self, draw: st.DrawFn, shape: Shape, sizes: st.SearchStrategy[int] | None = None
              ) -> Case:
        """The case of an input of ``shape`` (N, C, *spatial), its values and options through
        ``draw`` (``sizes``: the window sizes, 1 to C + 2 unless given)."""
        seed = draw(SEEDS, label="seed")
        x = _normal(np.random.default_rng(seed), shape, draw(VALUE_SCALES, label="scale"))
        options = {"size": draw(st.integers(1, shape[1] + 2) if sizes is None else sizes,
                                 label="size"),
                   "alpha": draw(st.sampled_from((1e-4, 0.01, 0.5, 2.0)), label="alpha"),
                   "beta": draw(st.sampled_from((0.75, 0.5, 1.0, 2.0)), label="beta"),
                   "k": draw(st.sampled_from((1.0, 0.5, 2.0)), label="k")}
        return Case({"input": x}, ("input",), options, seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): inputs of a drawn scenario, groups along the channels
        (the windows' dimension: ``constant`` gives every window equal squares), every option
        drawn as usual; power 2 beta for beta > 1, else 2: the window sums x^2 and torch raises
        it to beta, so huge inputs stop where s^beta nears overflow and tiny ones where x^2
        nears underflow; ``simd``: a last spatial side of each ``suite.hard.SIMD_SIZES`` size
        with extremes in its vector body and tail; ``long``: ``suite.hard.long_terms()``
        channels (every window position along them) with windows of 5, 100 or 101 channels
        (a window as wide as 10^4 channels costs 10^8 additions, 0.5 s in torch alone).
        In float16 and bfloat16 inputs are (N, C, L): torch has no half-precision kernel for
        4-d and 5-d ones (KNOWN_DIFFERENCES.md), which would only skip the test."""
        most = 1 if dtype in (torch.float16, torch.bfloat16) else 3

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            sizes = None
            if scenario == "simd":
                lead: Shape = draw(st.sampled_from([(), (2,)][:most]), label="sides")
                shape: Shape = (draw(st.integers(1, 2), label="N"),
                                draw(st.integers(1, 4), label="C"), *lead,
                                hard.simd_size(draw, zero_dim=False) or 1)
            elif scenario == "long":
                shape = (1, hard.long_terms(), 1)
                sizes = st.sampled_from((5, 100, 101))
            else:
                spatial = draw(shapes(min_dims=1, max_dims=most, max_side=4, max_size=16),
                               label="spatial")
                shape = (draw(st.integers(1, 3), label="N"),
                         draw(st.integers(1, 8), label="C"), *spatial)
            case = self._case(draw, shape, sizes)
            power = 2 * max(1.0, case.options["beta"])
            rng, drawn = hard.rng_for(case.seed), draw(st.integers(0, 2**16), label="position")
            x = case.arrays["input"]
            if scenario in hard.VALUE_SCENARIOS:
                x, label = hard.values(rng, shape, scenario, dtype, power=power, axes=(1,))
            elif scenario == "simd":
                x, label = hard.place(rng, x, dtype, drawn, power=power)
            else:
                label = f"{shape[1]} channels, windows of {case.options['size']}"
            return hard.rewrite(case, {"input": x}, f"{scenario}: {label}")

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        x = _normal(np.random.default_rng(seed), (4, 16, max(2, n // 4), max(2, n // 4)))
        return Case({"input": x}, ("input",),
                    {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0}, seed)


# --- distances -----------------------------------------------------------------------------


def _off_rounding_kinks(arrays: Mapping[str, Array], typical: Mapping[str, Array],
                        options: Mapping[str, Any], dtype: torch.dtype) -> dict[str, Array]:
    """pairwise_distance's hard x1 and x2 with the rows (along the last dim) whose derivative
    rounding decides replaced by the typical case's rows: where d = x1 - x2 + eps formed in
    ``dtype`` (as torch forms it) and in float64 (the reference) has another set of components
    attaining max |d| (p = inf) or min |d| (p = -inf), or, for p <= 1, another sign pattern
    (an exact 0 on one side only): there the derivative jumps, and which side of the jump
    torch lands on is the rounding of d, not a rule to check. Exact ties and zeros on both
    sides (``ties``, ``constant``, ``signed zeros``) stay."""
    from suite.specs import round_to

    p, eps = options["p"], options["eps"]
    if not (math.isinf(p) or p <= 1):
        return dict(arrays)
    a, b = round_to(arrays["x1"], dtype), round_to(arrays["x2"], dtype)
    exact = a - b + eps
    formed = round_to(round_to(a - b, dtype) + float(round_to(np.array(eps), dtype)), dtype)

    def pattern(d: Array) -> Array:
        if math.isinf(p):
            m = np.abs(d)
            return m == (np.max if p > 0 else np.min)(m, axis=-1, keepdims=True)
        return np.sign(d)

    moved = np.any(pattern(exact) != pattern(formed), axis=-1, keepdims=True)
    return {k: np.where(moved, typical[k], arrays[k]) for k in ("x1", "x2")}




@dataclass(frozen=True)
class Pair:
    """cosine_similarity (``kind="cosine"``) or pairwise_distance (``kind="pairwise"``):
    ``x1``, ``x2`` of one shape with 1-3 dimensions (tests/test_ops.py's broadcast check cuts
    dimensions of either to 1).

    cosine: ``dim`` any axis, negative spellings included; eps 1e-8 or 1e-6, far below the
    drawn norms (the clamp below eps has its own test in tests/test_layers.py). Entries are
    s (0.5 + |z|), random signs, scale s 1 or 5: the cosine is scale-invariant, so its
    gradient is O(1 / |x|) and cancels to 0 for parallel vectors (always, for one element or
    a broadcast one), leaving float32 rounding of eps32 / |x|: entries away from 0 keep that
    below 1e-6 (scale 0.1 or entries near 0 would only test the rounding).
    pairwise: the difference d = x1 - x2 + eps is drawn first: every |d_i| >= 1e-3 (p <= 1
    has a kink at 0), and for p = +-inf the |d_i| of a row are distinct by >= 2e-3 x scale
    (the max or min switches component there); p from 2, 1, 3, 1.5, 0.5, +-inf, -1 (p = 0, a
    count without a gradient, has its own test); eps 1e-6, 0 or 1e-3; keepdim.
    """

    kind: str

    def _case(self, shape: Shape, options: dict[str, Any], scale: float, seed: int) -> Case:
        rng = np.random.default_rng(seed)
        x2 = _normal(rng, shape, scale)
        if self.kind == "cosine":
            x1, x2 = (scale * (0.5 + np.abs(rng.standard_normal(shape)))
                      * rng.choice([-1.0, 1.0], shape) for _ in range(2))
        else:
            p = options["p"]
            if math.isinf(p):
                rows, d = math.prod(shape[:-1]), shape[-1]
                ranks = np.argsort(rng.random((rows, d)), axis=-1)
                magnitude = scale * (0.1 + (ranks + rng.uniform(0.0, 0.5, (rows, d))) / d)
            else:
                magnitude = np.abs(_normal(rng, shape, scale)) + 1e-3
            diff = np.reshape(magnitude, shape) * rng.choice([-1.0, 1.0], shape)
            x1 = x2 - options["eps"] + diff
        return Case({"x1": x1, "x2": x2}, ("x1", "x2"), options, seed)

    def _options(self, draw: st.DrawFn, shape: Shape) -> dict[str, Any]:
        if self.kind == "cosine":
            return {"dim": draw(st.integers(-len(shape), len(shape) - 1), label="dim"),
                    "eps": draw(st.sampled_from((1e-8, 1e-6)), label="eps")}
        return {"p": draw(st.sampled_from((2.0, 1.0, 3.0, 1.5, 0.5, math.inf, -math.inf, -1.0)),
                          label="p"),
                "eps": draw(st.sampled_from((1e-6, 0.0, 1e-3)), label="eps"),
                "keepdim": draw(st.booleans(), label="keepdim")}

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            shape = draw(shapes(min_dims=1, max_dims=3, max_side=8, max_size=48), label="shape")
            options = self._options(draw, shape)
            scales = st.sampled_from((1.0, 5.0)) if self.kind == "cosine" else VALUE_SCALES
            return self._case(shape, options, draw(scales, label="scale"),
                              draw(SEEDS, label="seed"))

        return cases()

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): x1 and x2 of a drawn scenario, groups along the
        reduced dimension (cosine's ``dim``, pairwise's last), every option drawn as usual.
        cosine: power 2 (dot products and squared norms); ``constant`` gives parallel or
        antiparallel vectors (cos = +-1, the gradient cancels to 0), ``nearly constant`` nearly
        parallel ones, ``tiny``, ``subnormal`` and ``signed zeros`` norms at or below eps (the
        clamp). pairwise: power 2, or p for finite p > 2 (|d_i|^p is summed); the difference
        x1 - x2 + eps cancels in ``constant`` and ``nearly constant`` groups and is exactly 0
        where both are zeros (eps 0): the kink torch and the reference give 0 at;
        ``ties``: equal |d_i| (x1 and x2 from one small set), where p = +-inf shares the
        gradient between the tied components. ``simd``: the reduced dimension of each
        ``suite.hard.SIMD_SIZES`` size with extremes in the vector body and tail of both;
        ``long``: a reduction over ``suite.hard.long_terms()`` elements, values as usual."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            if scenario in hard.SIZE_SCENARIOS:
                size = hard.size_for(draw, scenario)
                lead: Shape = draw(st.sampled_from([(), (2,), (3,)]), label="batch")
                shape: Shape = (*lead, size)
            else:
                shape = draw(shapes(min_dims=1, max_dims=3, max_side=8, max_size=48),
                             label="shape")
            options = self._options(draw, shape)
            if scenario in hard.SIZE_SCENARIOS and self.kind == "cosine":
                options["dim"] = draw(st.sampled_from([-1, len(shape) - 1]), label="dim")
            case = self._case(shape, options, 1.0, draw(SEEDS, label="seed"))
            p = options.get("p", 2.0)
            power = p if self.kind == "pairwise" and math.isfinite(p) and p > 2 else 2
            axis = options.get("dim", -1)
            rng, drawn = hard.rng_for(case.seed), draw(st.integers(0, 2**16), label="position")
            arrays, label = {}, f"a reduction over {shape[axis]} elements"
            for name in ("x1", "x2"):
                if scenario in hard.VALUE_SCENARIOS:
                    arrays[name], label = hard.values(rng, shape, scenario, dtype, power=power,
                                                      axes=(axis,))
                elif scenario == "simd":
                    arrays[name], label = hard.place(rng, case.arrays[name], dtype, drawn,
                                                     power=power, axis=axis)
            if self.kind == "pairwise" and arrays:
                arrays = _off_rounding_kinks(arrays, case.arrays, options, dtype)
            return hard.rewrite(case, arrays, f"{scenario}: {label}")

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        options: dict[str, Any] = {"dim": 1, "eps": 1e-8} if self.kind == "cosine" \
            else {"p": 2.0, "eps": 1e-6, "keepdim": False}
        return self._case((n, n), options, 1.0, seed)


# --- flatten and unflatten -----------------------------------------------------------------


@dataclass(frozen=True)
class Reshaped:
    """flatten (``kind="flatten"``): ``input`` of 0-4 dimensions, now and then with a side of 0,
    start_dim <= end_dim, each spelled positive or negative. unflatten: ``input`` of 1-3
    dimensions, ``dim`` (either spelling) split into 1-3 factors of its size, one of them
    sometimes -1 (inferred)."""

    kind: str

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            low = 0 if self.kind == "flatten" else 1
            shape = list(draw(shapes(min_dims=low, max_dims=4 if low == 0 else 3, max_side=12,
                                     max_size=64), label="shape"))
            ndim = len(shape)
            if self.kind == "flatten" and ndim and draw(st.booleans(), label="a side of 0"):
                shape[draw(st.integers(0, ndim - 1), label="empty side")] = 0
            return self._case(draw, tuple(shape))

        return cases()

    def _case(self, draw: st.DrawFn, shape: Shape, dim: int | None = None) -> Case:
        """The case of an input of ``shape``, its values and options through ``draw``
        (unflatten's ``dim``: drawn unless given)."""
        ndim = len(shape)
        seed = draw(SEEDS, label="seed")
        x = _normal(np.random.default_rng(seed), shape, draw(VALUE_SCALES, label="scale"))

        def spelled(d: int, label: str) -> int:
            return d - max(ndim, 1) if draw(st.booleans(), label=f"{label} negative") else d

        if self.kind == "flatten":
            start = draw(st.integers(0, max(ndim - 1, 0)), label="start")
            end = draw(st.integers(start, max(ndim - 1, 0)), label="end")
            options: dict[str, Any] = {"start_dim": spelled(start, "start_dim"),
                                       "end_dim": spelled(end, "end_dim")}
        else:
            if dim is None:
                dim = draw(st.integers(0, ndim - 1), label="dim")
            n, sizes = shape[dim], []
            for i in range(draw(st.integers(0, 2), label="splits")):
                divisors = [k for k in range(1, n + 1) if n % k == 0]
                k = draw(st.sampled_from(divisors), label=f"factor {i}")
                sizes.append(k)
                n //= k
            sizes.append(n)
            sizes = draw(st.permutations(sizes), label="order")
            if draw(st.booleans(), label="infer one size"):
                sizes[draw(st.integers(0, len(sizes) - 1), label="inferred")] = -1
            options = {"dim": spelled(dim, "dim"), "sizes": tuple(sizes)}
        return Case({"input": x}, ("input",), options, seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): every output element is one input element, so any
        value must come through bit for bit: inputs of each value scenario (power 1, the whole
        input one group), options drawn as usual; ``simd``: a last dimension (the copy's
        vectorised one; 0-d too for flatten) of each ``suite.hard.SIMD_SIZES`` size with
        extremes in its vector body and tail; ``long``: a last dimension of
        ``suite.hard.long_terms()`` elements (nothing is reduced; unflatten splits it)."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            dim = None
            if scenario in hard.SIZE_SCENARIOS:
                size = hard.simd_size(draw, zero_dim=self.kind == "flatten") \
                    if scenario == "simd" else hard.long_terms()
                lead: Shape = draw(st.sampled_from([(), (2,), (2, 3)]), label="lead")
                shape: Shape = () if size is None else (*lead, size)
                if self.kind == "unflatten":
                    dim = len(shape) - 1  # the long or vectorised dim is the one split
            else:
                low = 0 if self.kind == "flatten" else 1
                shape = draw(shapes(min_dims=low, max_dims=4 if low == 0 else 3, max_side=12,
                                    max_size=64), label="shape")
            case = self._case(draw, shape, dim)
            rng, drawn = hard.rng_for(case.seed), draw(st.integers(0, 2**16), label="position")
            x = case.arrays["input"]
            if scenario in hard.VALUE_SCENARIOS:
                x, label = hard.values(rng, shape, scenario, dtype)
            elif scenario == "simd":
                x, label = hard.place(rng, x, dtype, drawn)
            else:
                label = f"a last dimension of {shape[-1]} elements"
            return hard.rewrite(case, {"input": x}, f"{scenario}: {label}")

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        x = _normal(np.random.default_rng(seed), (n, 4, n))
        options: dict[str, Any] = {"start_dim": 1, "end_dim": -1} if self.kind == "flatten" \
            else {"dim": 1, "sizes": (2, 2)}
        return Case({"input": x}, ("input",), options, seed)
