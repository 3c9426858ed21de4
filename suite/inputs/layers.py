"""Input makers for layers."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

from suite import hard, versions
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


def _spelled(draw: st.DrawFn, values: list[int], label: str) -> int | tuple[int, ...]:
    """An int when every dimension agrees and a coin says so, else a tuple: both spellings
    torch accepts for stride, padding, dilation and kernel sizes."""
    if len(set(values)) == 1 and draw(st.booleans(), label=f"{label} as int"):
        return values[0]
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
        d = self.dims

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
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
            scale = draw(VALUE_SCALES, label="scale")
            seed = draw(SEEDS, label="seed")
            rng = np.random.default_rng(seed)
            fan_in = c_in // groups * math.prod(kernel)
            arrays = {"input": _normal(rng, (*batch, c_in, *sides), scale),
                      "weight": _normal(rng, (c_out, c_in // groups, *kernel)) / math.sqrt(fan_in)}
            if draw(st.booleans(), label="bias"):
                arrays["bias"] = _normal(rng, (c_out,))
            options = {"stride": _spelled(draw, stride, "stride"),
                       "padding": how if how != "ints" else _spelled(draw, pads, "padding"),
                       "dilation": _spelled(draw, dilation, "dilation"), "groups": groups}
            return Case(arrays, tuple(arrays), options, seed)

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        rng = np.random.default_rng(seed)
        side = (max(5, n // 8),) * self.dims if self.dims == 2 else (max(5, n),)
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


@dataclass(frozen=True)
class Pooling:
    """``input`` (N, C, H, W) or (C, H, W) for max_pool2d (``kind="max"``: distinct values,
    options kernel_size, stride, padding <= kernel / 2 as torch requires, dilation, ceil_mode)
    or avg_pool2d (``kind="avg"``: normal values, no dilation, count_include_pad,
    divisor_override)."""

    kind: str
    max_side: int = 12

    def _input(self, rng: np.random.Generator, shape: Shape, scale: float) -> Array:
        return distinct_values(rng, shape, scale) if self.kind == "max" else _normal(rng, shape,
                                                                                     scale)

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            kernel = _per_dim(draw, st.integers(1, 3), 2, "kernel")
            dilation = _per_dim(draw, st.integers(1, 2), 2, "dilation") \
                if self.kind == "max" else [1, 1]
            pads = [draw(st.integers(0, k // 2), label=f"padding[{i}]")
                    for i, k in enumerate(kernel)]
            sides = []
            for i in range(2):
                # Every window must hold an input element: side >= dilation ensures it for the
                # windows starting in the padding (their first real element is < dilation).
                lowest = max(1, dilation[i] * (kernel[i] - 1) + 1 - 2 * pads[i], dilation[i])
                sides.append(draw(st.integers(lowest, max(lowest, self.max_side)),
                                  label=f"side[{i}]"))
            batch = draw(st.sampled_from([(), (1,), (2,)]), label="batch")
            channels = draw(st.integers(1, 4), label="channels")
            options: dict[str, Any] = {"kernel_size": _spelled(draw, kernel, "kernel_size")}
            if draw(st.booleans(), label="stride given"):
                options["stride"] = _spelled(draw, _per_dim(draw, st.integers(1, 3), 2,
                                                            "stride"), "stride")
            options["padding"] = _spelled(draw, pads, "padding")
            options["ceil_mode"] = draw(st.booleans(), label="ceil_mode")
            if self.kind == "max":
                options["dilation"] = _spelled(draw, dilation, "dilation")
            else:
                options["count_include_pad"] = draw(st.booleans(), label="count_include_pad")
                options["divisor_override"] = draw(st.one_of(st.none(), st.integers(1, 9)),
                                                   label="divisor_override")
            scale = draw(VALUE_SCALES, label="scale")
            seed = draw(SEEDS, label="seed")
            x = self._input(np.random.default_rng(seed), (*batch, channels, *sides), scale)
            return Case({"input": x}, ("input",), options, seed)

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        side = max(4, n // 8)
        x = self._input(np.random.default_rng(seed), (4, 8, side, side), 1.0)
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
                size = hard.simd_size(draw, zero_dim=False) or 1 if scenario == "simd" \
                    else hard.long_terms()
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
    channels per group, optional per-channel ``weight`` and ``bias``, ``eps``. Every group
    holds at least two values, with a drawn offset and spread (:func:`_spread`)."""

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
            n = draw(st.integers(1, 3), label="N")
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
    refuses one in training), with a drawn offset and spread (:func:`_spread`)."""

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            training = draw(st.booleans(), label="training")
            channels = draw(st.integers(1, 6), label="C")
            spatial = draw(shapes(min_dims=0, max_dims=2, max_side=6, max_size=24),
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


@dataclass(frozen=True)
class Attention:
    """scaled_dot_product_attention: ``query`` (*, L, E), ``key`` (*, S, E), ``value``
    (*, S, Ev), 0-2 batch dimensions, sides <= 8; a mask drawn from ``MASKS``: none, boolean
    (True takes part; every query keeps at least one key), additive float (differentiable),
    or ``is_causal``; broadcast masks (L, S) or full-shape ones; ``scale`` None or drawn."""

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            batch = draw(shapes(min_dims=0, max_dims=2, max_side=3, max_size=6), label="batch")
            lq, sk, e, ev = (draw(st.integers(1, 8), label=k) for k in ("L", "S", "E", "Ev"))
            mask = draw(st.sampled_from(MASKS), label="mask")
            scale = draw(VALUE_SCALES, label="value scale")
            seed = draw(SEEDS, label="seed")
            rng = np.random.default_rng(seed)
            arrays = {"query": _normal(rng, (*batch, lq, e), scale),
                      "key": _normal(rng, (*batch, sk, e), scale),
                      "value": _normal(rng, (*batch, sk, ev))}
            options: dict[str, Any] = {}
            mask_shape = (*batch, lq, sk) if draw(st.booleans(), label="full mask") \
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
                size = hard.simd_size(draw, zero_dim=False) or 1 if scenario == "simd" \
                    else hard.long_terms()
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
