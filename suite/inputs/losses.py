"""Input makers for losses.

``Pointwise`` covers every loss whose arguments are arrays of one drawn shape (or of shapes
derived from it: a target without the class dimension, a per-class weight, a variance without
the last dimension): each array has a maker ``(rng, shape, scale, ctx) -> array``, options are
Hypothesis strategies, and an optional kink rule moves draws away from the points where the
loss is not differentiable (hinges, absolute values, the max of a margin loss), so finite
differences never straddle one. Exact kink points are generated on purpose in
``tests/test_losses.py``.

``Classification`` draws cross entropy's and NLL's class-index and class-probability targets,
K-dimensional inputs, ignored targets and class weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from hypothesis import assume
from hypothesis import strategies as st

from suite import covering, hard, versions
from suite import tolerances as tols
from suite.inputs import variants
from suite.specs import Array, Case
from suite.strategies import REALS, SEEDS, OptionStrategy, Shape, draw_options, shapes

REDUCTIONS = st.sampled_from(["mean", "sum", "none"])
# KLDivLoss also has "batchmean" (the sum divided by the batch size).
KL_REDUCTIONS = st.sampled_from(["mean", "sum", "none", "batchmean"])

# How close a draw may come to a kink: 1e-3 is 1000x the finite-difference step (1e-6 times a
# direction of magnitude ~3), and far above float32 rounding of values of magnitude <= 25.
KINK_MARGIN = tols.KINK_MARGIN

Context = Mapping[str, Any]
ArrayMaker = Callable[[np.random.Generator, Shape, float, Context], Array]
KinkRule = Callable[[Mapping[str, Array], Context], Array]


def normal(rng: np.random.Generator, shape: Shape, scale: float, ctx: Context) -> Array:
    """Standard normal values times the drawn scale (logits, differences, embeddings)."""
    return rng.standard_normal(shape) * scale


def signs(rng: np.random.Generator, shape: Shape, scale: float, ctx: Context) -> Array:
    """+1 or -1 labels, as float64 (hinge, soft-margin and ranking targets)."""
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


def unit_interval(rng: np.random.Generator, shape: Shape, scale: float, ctx: Context) -> Array:
    """Probabilities in [0.01, 0.99]: BCE inputs, soft labels; log and logit stay moderate."""
    return rng.uniform(0.01, 0.99, shape)


def bits(rng: np.random.Generator, shape: Shape, scale: float, ctx: Context) -> Array:
    """0.0 or 1.0 (hard multi-label targets)."""
    return (rng.random(shape) < 0.5).astype(np.float64)


def positive(rng: np.random.Generator, shape: Shape, scale: float, ctx: Context) -> Array:
    """Values in [0.05, 4]: Poisson rates and counts, variances (well above the eps clamps)."""
    return rng.uniform(0.05, 4.0, shape)


def class_weight(rng: np.random.Generator, shape: Shape, scale: float, ctx: Context) -> Array:
    """One weight per class (the last dimension; one class for a 0-d input), in [0.1, 2]."""
    return rng.uniform(0.1, 2.0, shape[-1:] or (1,))


def class_index(rng: np.random.Generator, shape: Shape, scale: float, ctx: Context) -> Array:
    """One class index in [0, C) per row of an (..., C) input: shape[:-1], int64. An unbatched
    input ((C,), or 0-d: one class) takes a 0-d target or, half the time, one of shape (1,):
    torch accepts both."""
    classes = shape[-1] if shape else 1
    rows = shape[:-1]
    if len(shape) <= 1 and rng.random() < 0.5:
        rows = (1,)
    return rng.integers(0, classes, size=rows).astype(np.int64)


def row_target(rng: np.random.Generator, shape: Shape, scale: float, ctx: Context) -> Array:
    """+-1 per row of an (..., D) pair of embeddings (cosine embedding targets)."""
    return signs(rng, shape[:-1], scale, ctx)


def multilabel_target(rng: np.random.Generator, shape: Shape, scale: float,
                      ctx: Context) -> Array:
    """Per row of an (..., C) input (0-d: one row of one class): k target positions (k from 0
    to C), then a -1, then anything in [-1, C) (torch reads only up to the first -1). Half the
    rows list distinct classes, the other half draw them with repeats (a class listed twice
    counts twice in the loss)."""
    c = shape[-1] if shape else 1
    rows = np.full((math.prod(shape[:-1]), c), -1, dtype=np.int64)
    for row in rows:
        k = int(rng.integers(0, c + 1))
        distinct = rng.random() < 0.5
        row[:k] = rng.permutation(c)[:k] if distinct else rng.integers(0, c, k)
        if k + 1 < c:
            row[k + 1:] = rng.integers(-1, c, c - k - 1)  # ignored: after the first -1
    return rows.reshape(shape)


def _near(z: Array) -> Array:
    return np.abs(z) < KINK_MARGIN


def difference_kinks(points: Callable[[Context], tuple[float, ...]]) -> KinkRule:
    """Elements whose difference ``input - target`` is near one of ``points(options)``."""

    def rule(arrays: Mapping[str, Array], ctx: Context) -> Array:
        d = arrays["input"] - arrays["target"]
        return np.any([_near(d - k) for k in points(ctx)], axis=0)

    return rule


def hinge_kinks(arrays: Mapping[str, Array], ctx: Context) -> Array:
    """HingeEmbedding: x near the margin where the target is -1."""
    return (arrays["target"] == -1) & _near(ctx.get("margin", 1.0) - arrays["input"])


def ranking_kinks(arrays: Mapping[str, Array], ctx: Context) -> Array:
    """MarginRanking: -y (x1 - x2) + margin near 0."""
    y = arrays["target"]
    return _near(-y * (arrays["input1"] - arrays["input2"]) + ctx.get("margin", 0.0))


def stirling_kinks(arrays: Mapping[str, Array], ctx: Context) -> Array:
    """PoissonNLL with ``full``: the Stirling term jumps at target = 1."""
    return _near(arrays["target"] - 1.0) & bool(ctx.get("full", False))


def _rows(x: Array) -> Array:
    """An (..., C) input as (rows, C); a 0-d input is one row of one class."""
    return np.reshape(x, (-1, x.shape[-1] if x.ndim else 1))


def multi_margin_kinks(arrays: Mapping[str, Array], ctx: Context) -> Array:
    """MultiMargin: rows with some margin - x_y + x_i (i != y) near 0."""
    x = _rows(arrays["input"])
    t = np.reshape(arrays["target"], (-1, 1))
    x_y = np.take_along_axis(x, t, axis=-1)
    others = np.arange(x.shape[-1]) != t
    near = np.any(others & _near(ctx.get("margin", 1.0) - x_y + x), axis=-1)
    return near.reshape(arrays["input"].shape[:-1])


def multilabel_margin_kinks(arrays: Mapping[str, Array], ctx: Context) -> Array:
    """MultiLabelMargin: rows with some 1 - (x_j - x_i) near 0, j a target and i not."""
    rows, ts = _rows(arrays["input"]), _rows(arrays["target"])
    is_target = np.zeros(rows.shape, dtype=bool)
    for r, row in enumerate(ts):
        listed = row[: int(np.argmax(row == -1)) if (row == -1).any() else len(row)]
        is_target[r, listed] = True
    pairs = is_target[:, :, None] & ~is_target[:, None, :]
    near = pairs & _near(1.0 - (rows[:, :, None] - rows[:, None, :]))
    return np.any(near, axis=(1, 2)).reshape(arrays["input"].shape[:-1])


def _cosine(a: Array, b: Array) -> Array:
    return np.sum(a * b, axis=-1) / np.sqrt(np.sum(a * a, axis=-1) * np.sum(b * b, axis=-1))


def cosine_kinks(arrays: Mapping[str, Array], ctx: Context) -> Array:
    """CosineEmbedding: rows with target -1 and cos near the margin; also rows with nearly
    parallel vectors (|cos| > 1 - 1e-3), where 1 - cos is formed by cancellation and a central
    difference of the forward sees only rounding."""
    cos = _cosine(arrays["input1"], arrays["input2"])
    parallel = np.abs(cos) > 1.0 - KINK_MARGIN
    return parallel | ((arrays["target"] == -1) & _near(cos - ctx.get("margin", 0.0)))


def _distance(a: Array, b: Array, p: float, eps: float) -> tuple[Array, Array]:
    diff = a - b + eps
    return np.sum(np.abs(diff) ** p, axis=-1) ** (1.0 / p), diff


def triplet_kinks(arrays: Mapping[str, Array], ctx: Context) -> Array:
    """Triplet: rows near the hinge, near a tie of the swap's min, or (p < 2) with a component
    of a difference near 0, where |v|^p is not twice differentiable."""
    p, eps = ctx.get("p", 2.0), ctx.get("eps", 1e-6)
    a, pos, neg = arrays["anchor"], arrays["positive"], arrays["negative"]
    d_pos, v_pos = _distance(a, pos, p, eps)
    d_an, v_an = _distance(a, neg, p, eps)
    d_pn, v_pn = _distance(pos, neg, p, eps)
    d_neg = np.minimum(d_an, d_pn) if ctx.get("swap", False) else d_an
    near = _near(ctx.get("margin", 1.0) + d_pos - d_neg)
    if ctx.get("swap", False):
        near |= _near(d_an - d_pn)
    if p < 2:
        near |= np.any(_near(v_pos) | _near(v_an) | _near(v_pn), axis=-1)
    return near


@dataclass(frozen=True)
class Pointwise:
    """Arrays built from one drawn shape, options, and a rule to keep away from kinks.

    * ``arrays``: name -> maker; the first is the drawn shape's array (``input``, ``anchor``).
    * ``optional``: names among ``arrays`` drawn into only half the cases (class weights).
    * ``layouts``: extra draws handed to the makers in ``ctx`` but not to torch (the shape of
      a variance or a weight).
    * ``kinks``: ``(arrays, ctx) -> bool mask`` of elements (or rows: the mask covers the leading
      dimensions of ``kink_array``) too close to a kink; those are redrawn until none is.
    * ``sized_differentiable``: the arguments a sized (benchmark and large-input) case
      differentiates: those that live on the whole real line. Scaling a probability by 1e4, or
      the input of an exp, leaves the loss's domain or range, which says nothing about torch.
      ``sized_options`` and ``sized_layout`` fix the options and layouts of sized cases.
    * ``min_last_side``: the least size of the last dimension (an embedding's).
    """

    arrays: Mapping[str, ArrayMaker]
    differentiable: tuple[str, ...]
    options: Mapping[str, OptionStrategy] = field(default_factory=dict)
    optional: tuple[str, ...] = ()
    layouts: Mapping[str, st.SearchStrategy[Any]] = field(default_factory=dict)
    kinks: KinkRule | None = None
    kink_array: str = "input"
    min_dims: int = 0
    max_dims: int = 3
    max_size: int = 1024
    sized_options: Mapping[str, Any] = field(default_factory=dict)
    sized_differentiable: tuple[str, ...] | None = None
    sized_layout: Mapping[str, Any] = field(default_factory=dict)
    min_last_side: int = 1

    def near_kink(self, arrays: Mapping[str, Array], options: Mapping[str, Any]) -> bool:
        """Whether any element (or row) of ``arrays`` is too close to a kink by ``kinks``, the
        options standing in for the context (a derived case: one argument broadcast)."""
        return self.kinks is not None and bool(np.asarray(self.kinks(arrays, dict(options)),
                                                          dtype=bool).any())

    def _make(self, rng: np.random.Generator, shape: Shape, scale: float, ctx: Context,
              present: tuple[str, ...]) -> dict[str, Array] | None:
        arrays = {name: make(rng, shape, scale, ctx) for name, make in self.arrays.items()
                  if name in present}
        if self.kinks is None:
            return arrays
        for _ in range(50):
            near = np.asarray(self.kinks(arrays, ctx), dtype=bool)
            if not near.any():
                return arrays
            fresh = self.arrays[self.kink_array](rng, shape, scale, ctx)
            target = arrays[self.kink_array]
            mask = np.reshape(near, near.shape + (1,) * (target.ndim - near.ndim))
            arrays[self.kink_array] = np.where(mask, fresh, target)
        return None

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            shape = draw(shapes(min_dims=self.min_dims, max_dims=self.max_dims, max_side=64,
                                max_size=self.max_size), label="shape")
            if shape and shape[-1] < self.min_last_side:
                shape = (*shape[:-1], self.min_last_side)
            options = draw_options(draw, self.options, shape)
            layout = {k: draw(s, label=k) for k, s in self.layouts.items()}
            present = tuple(name for name in self.arrays if name not in self.optional
                            or draw(st.booleans(), label=f"with {name}"))
            scale = draw(st.sampled_from(REALS.scales), label="scale")
            seed = draw(SEEDS, label="seed")
            arrays = self._make(np.random.default_rng(seed), shape, scale,
                                {**options, **layout}, present)
            assume(arrays is not None)  # 50 redraws all near a kink: practically never
            assert arrays is not None
            return Case(arrays, tuple(d for d in self.differentiable if d in arrays), options,
                        seed)

        return cases()

    @property
    def bench_variants(self) -> dict[str, variants.BenchVariant]:
        """Each reduction besides the sized case's (suite.inputs.variants), where the loss
        has the option."""
        if "reduction" not in self.options:
            return {}
        return variants.reductions(self.sized_options.get("reduction", "mean"))

    def sized(self, n: int, seed: int = 0) -> Case:
        rng = np.random.default_rng(seed)
        shape = (n, n)
        ctx = {**self.sized_options, **self.sized_layout}
        required = tuple(name for name in self.arrays if name not in self.optional)
        # No kink avoidance: benchmarks and the finiteness of large inputs do not need it, and
        # at n = 512 some row of a margin loss is always near one.
        arrays = {name: self.arrays[name](rng, shape, 1.0, ctx) for name in required}
        differentiable = self.differentiable if self.sized_differentiable is None \
            else self.sized_differentiable
        return Case(arrays, differentiable, dict(self.sized_options), seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): each array's hard values (``HARD_MAKERS``) for a drawn
        scenario, every option and reduction drawn as usual; size scenarios give the vectorised
        last dimension each ``suite.hard.SIMD_SIZES`` size or a reduction over
        ``suite.hard.long_terms()`` terms. Draws near a kink are moved off it as usual, except
        in ``ties``, which puts inputs on them on purpose."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            shape = _hard_shape(draw, scenario, self.min_dims, self.max_dims, self.max_size)
            if shape and shape[-1] < self.min_last_side:
                shape = (*shape[:-1], self.min_last_side)
            options = draw_options(draw, self.options, shape)
            layout = {k: draw(s, label=k) for k, s in self.layouts.items()}
            present = tuple(name for name in self.arrays if name not in self.optional
                            or draw(st.booleans(), label=f"with {name}"))
            seed = draw(SEEDS, label="seed")
            drawn = draw(st.integers(0, 2**16), label="position")
            ctx = {**options, **layout}
            arrays = self._make(np.random.default_rng(seed), shape, 1.0, ctx, present)
            assume(arrays is not None)
            assert arrays is not None
            rng = hard.rng_for(seed)
            for name, a in list(arrays.items()):
                maker = HARD_MAKERS.get(self.arrays[name])
                if maker is not None:
                    arrays[name] = maker(rng, a, scenario, dtype, ctx, drawn)
                    if self.kinks is not None and self.arrays[name] is normal:
                        arrays[name] = np.clip(arrays[name], -_kink_reach(dtype),
                                               _kink_reach(dtype))
            if self.kinks is not None and scenario != "ties":
                near = np.asarray(self.kinks(arrays, ctx), dtype=bool)
                target = arrays[self.kink_array]
                mask = np.reshape(near, near.shape + (1,) * (target.ndim - near.ndim))
                fresh = self.arrays[self.kink_array](rng, target.shape, 1.0, ctx)
                arrays[self.kink_array] = np.where(mask, fresh, target)
                assume(not np.asarray(self.kinks(arrays, ctx), dtype=bool).any())
            differentiable = tuple(d for d in self.differentiable if d in arrays)
            return Case(arrays, differentiable, options, seed, f"{scenario}: shape {shape}")

        return cases()


@dataclass(frozen=True)
class Regression:
    """``input`` and ``target`` of the same shape, both differentiable, and a reduction."""

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            shape = draw(shapes(min_dims=0), label="shape")
            reduction = draw(REDUCTIONS, label="reduction")
            scale = draw(st.sampled_from(REALS.scales), label="scale")
            seed = draw(SEEDS, label="seed")
            rng = np.random.default_rng(seed)
            arrays = {"input": rng.standard_normal(shape) * scale,
                      "target": rng.standard_normal(shape) * scale}
            return Case(arrays, ("input", "target"), {"reduction": reduction}, seed)

        return cases()

    @property
    def bench_variants(self) -> dict[str, variants.BenchVariant]:
        """Each reduction besides the sized case's ``mean`` (suite.inputs.variants)."""
        return variants.reductions("mean")

    def sized(self, n: int, seed: int = 0) -> Case:
        rng = np.random.default_rng(seed)
        arrays = {"input": rng.standard_normal((n, n)), "target": rng.standard_normal((n, n))}
        return Case(arrays, ("input", "target"), {"reduction": "mean"}, seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): input and target of a drawn scenario (power 2: the
        losses square their difference), every reduction; size scenarios as ``Pointwise``'s."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            shape = _hard_shape(draw, scenario, 0, 3, 4096)
            reduction = draw(REDUCTIONS, label="reduction")
            seed = draw(SEEDS, label="seed")
            drawn = draw(st.integers(0, 2**16), label="position")
            rng, typical = hard.rng_for(seed), np.random.default_rng(seed)
            arrays = {k: _hard_reals(rng, typical.standard_normal(shape), scenario, dtype, {},
                                     drawn) for k in ("input", "target")}
            return Case(arrays, ("input", "target"), {"reduction": reduction}, seed,
                        f"{scenario}: shape {shape}")

        return cases()


@dataclass(frozen=True)
class Classification:
    """Scores ``input`` (C,), (N, C) or (N, C, d1, ...), a ``target``, optional class ``weight``.

    Targets are class indices (int64, the input's shape without C) or, when ``probabilities``,
    also class probabilities (float64, the input's shape; then differentiable too). Options:
    ``reduction``; for index targets ``ignore_index`` (torch's default -100 or a real class,
    hit by some targets; at least one target is kept, so a mean over the kept targets is
    defined: every-target-ignored is an edge case of its own); ``label_smoothing`` when
    ``smoothing``. K-dimensional inputs have one or two extra dimensions.
    """

    max_batch: int = 32
    max_classes: int = 16
    probabilities: bool = True
    smoothing: bool = True

    def strategy(self) -> st.SearchStrategy[Case]:
        return st.composite(lambda draw: self.draw_case(draw))()

    def draw_case(self, draw: st.DrawFn) -> Case:
        """One case, every choice through ``draw`` (suite.covering steers it)."""
        layout = draw(st.sampled_from(["unbatched", "batched", "k-dim"]), label="layout")
        n = draw(st.one_of(st.integers(1, 4), st.integers(1, self.max_batch)), label="N")
        c = draw(st.one_of(st.integers(1, 4), st.integers(1, self.max_classes)), label="C")
        extra: Shape = ()
        if layout == "k-dim":
            extra = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2),
                               label="d1..."))
        shape = (c,) if layout == "unbatched" else (n, c, *extra)
        seed = draw(SEEDS, label="seed")
        rng = np.random.default_rng(seed)
        logits = rng.standard_normal(shape) * draw(st.sampled_from(REALS.scales),
                                                   label="scale")
        return self._fill(draw, rng, logits, 0 if layout == "unbatched" else 1, seed)


    def covering(self) -> covering.Factors:
        """Every pair of layout (unbatched, batched, K-dimensional), reduction, class weights,
        ignore_index (none, torch's default -100, a real class), label smoothing and
        probability targets (suite.covering). ignore_index applies to class-index targets of
        more than one element only."""
        values: dict[str, tuple[Any, ...]] = {
            "layout": ("unbatched", "batched", "k-dim"), "reduction": ("mean", "sum", "none"),
            "class weights": (False, True), "ignore": ("none", "default", "class")}
        if self.smoothing:
            values["label_smoothing"] = (0.0, 0.3)
        if self.probabilities:
            values["probability target"] = (False, True)

        def allowed(row: Mapping[str, Any]) -> bool:
            ignored = row.get("ignore", "none") != "none"
            return not (ignored and (row.get("probability target", False)
                                     or row.get("layout") == "unbatched"))

        return covering.Factors(values, allowed)

    def _fill(self, draw: st.DrawFn, rng: np.random.Generator, logits: Array, class_dim: int,
              seed: int) -> Case:
        """The case for ``logits``: options, a target (indices, some ignored, or
        probabilities), class weights."""
        shape, c = logits.shape, logits.shape[class_dim]
        options: dict[str, Any] = {"reduction": draw(REDUCTIONS, label="reduction")}
        if self.smoothing:
            options["label_smoothing"] = draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0)),
                                              label="label_smoothing")
        arrays: dict[str, Array] = {"input": logits}
        differentiable: tuple[str, ...] = ("input",)
        if self.probabilities and draw(st.booleans(), label="probability target"):
            p = rng.dirichlet(np.ones(c), size=math.prod(shape) // c)
            probs = np.moveaxis(p.reshape(shape[:class_dim] + shape[class_dim + 1:] + (c,)),
                                -1, class_dim)
            arrays["target"] = np.ascontiguousarray(probs)
            differentiable = ("input", "target")
        else:
            target = rng.integers(0, c, size=shape[:class_dim] + shape[class_dim + 1:])
            ignore = draw(st.sampled_from(["none", "default", "class"]), label="ignore")
            if ignore != "none" and target.size > 1:
                flat = target.reshape(-1)
                # A real class to ignore needs a second class for the target that is kept.
                ignored = -100 if ignore == "default" or c == 1 else int(flat[-1])
                if flat[0] == ignored:
                    flat[0] = (ignored + 1) % c
                dropped = rng.random(flat.size) < 0.3
                dropped[0] = False  # keep one target, so "mean" is defined
                target = np.where(dropped, ignored, flat).reshape(target.shape)
                options["ignore_index"] = ignored
            arrays["target"] = target.astype(np.int64)
        if draw(st.booleans(), label="class weights"):
            arrays["weight"] = np.asarray(rng.uniform(0.1, 2.0, size=c))
        return Case(arrays, differentiable, options, seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): logits of a drawn scenario (groups along the class
        dim: constant rows give a uniform distribution), class weights spanning 1e-6 to 1e6,
        probability targets at 0 and 1 and the smallest normal number; sizes with the class
        dim of each ``suite.hard.SIMD_SIZES`` size, or a long reduction (10^4 rows of 4 classes,
        or 2 rows of 10^4 classes). Index targets of 1-3 dimensions (K-dimensional inputs) as
        usual."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            seed = draw(SEEDS, label="seed")
            drawn = draw(st.integers(0, 2**16), label="position")
            rng = hard.rng_for(seed)
            if scenario in hard.VALUE_SCENARIOS:
                case = draw(self.strategy(), label="typical case")
                logits = case.arrays["input"]
                class_dim = 0 if logits.ndim == 1 else 1
                values, label = hard.values(rng, logits.shape, scenario, dtype, power=2,
                                            axes=(class_dim,))
                case = self._fill(draw, rng, values, class_dim, seed)
            else:
                if scenario == "simd":
                    shape: Shape = (draw(st.integers(1, 4), label="N"), hard.simd_size(
                        draw, zero_dim=False) or 1)
                else:
                    length = hard.long_terms()
                    shape = draw(st.sampled_from([(length, 4), (2, length)]), label="shape")
                base = np.random.default_rng(seed).standard_normal(shape)
                values, label = hard.place(rng, base, dtype, drawn, power=2, axis=1)
                case = self._fill(draw, rng, values, 1, seed)
            arrays = dict(case.arrays)
            if "weight" in arrays:
                arrays["weight"] = _hard_class_weight(rng, arrays, scenario, dtype, case.options)
            if arrays["target"].dtype.kind == "f":
                arrays["target"] = _hard_target_distribution(rng, arrays["target"],
                                                             1 if values.ndim > 1 else 0)
            return hard.rewrite(case, arrays, f"{scenario}: {label}")

        return cases()

    @property
    def bench_variants(self) -> dict[str, variants.BenchVariant]:
        """Each reduction besides the sized case's ``mean`` (suite.inputs.variants)."""
        return variants.reductions("mean")

    def sized(self, n: int, seed: int = 0) -> Case:
        rng = np.random.default_rng(seed)
        arrays = {"input": rng.standard_normal((n, n)),
                  "target": rng.integers(0, n, size=n).astype(np.int64)}
        return Case(arrays, ("input",), {"reduction": "mean"}, seed)


def gaussian_var(rng: np.random.Generator, shape: Shape, scale: float, ctx: Context) -> Array:
    """Variances in [0.05, 4] of one of the shapes torch accepts (``ctx["var_shape"]``): the
    input's, the input's without its last dimension, or the input's with one dimension 1."""
    layout = ctx.get("var_shape", "same")
    if layout == "no last dim" and shape:
        return positive(rng, shape[:-1], scale, ctx)
    if layout == "one dim 1" and shape:
        # torch 2.1.2 accepts the 1 only in the last dimension (2.13.0 anywhere; measured); the
        # versions between are not measured, so they get only the form every version accepts.
        dim = (int(rng.integers(0, len(shape))) if versions.GAUSSIAN_VAR_ANY_UNIT_DIM
               else len(shape) - 1)
        return positive(rng, (*shape[:dim], 1, *shape[dim + 1:]), scale, ctx)
    return positive(rng, shape, scale, ctx)


def elementwise_weight(rng: np.random.Generator, shape: Shape, scale: float,
                       ctx: Context) -> Array:
    """A weight in [0, 2] (zeros included) broadcast to the input: its full shape, or its last
    dimension only (``ctx["weight_shape"]``)."""
    w = rng.uniform(0.0, 2.0, shape if ctx.get("weight_shape") == "full" else shape[-1:])
    return np.where(rng.random(w.shape) < 0.1, 0.0, w)


def pos_weight(rng: np.random.Generator, shape: Shape, scale: float, ctx: Context) -> Array:
    """BCEWithLogits' pos_weight in [0, 3]: per class (the last dimension), or the full shape
    (``ctx["pos_weight_shape"]``)."""
    return rng.uniform(0.0, 3.0, shape if ctx.get("pos_weight_shape") == "full" else shape[-1:])


def poisson_input(rng: np.random.Generator, shape: Shape, scale: float, ctx: Context) -> Array:
    """A log-rate (any real) with ``log_input``, else a rate in [0.05, 4]."""
    return normal(rng, shape, scale, ctx) if ctx.get("log_input", True) \
        else positive(rng, shape, scale, ctx)


def kl_target(rng: np.random.Generator, shape: Shape, scale: float, ctx: Context) -> Array:
    """A log-probability (any real) with ``log_target``, else a probability in [0.01, 0.99]."""
    return normal(rng, shape, scale, ctx) if ctx.get("log_target", False) \
        else unit_interval(rng, shape, scale, ctx)


# --- the hard tier (suite/hard.py): hard values for each kind of array --------------------------
# Each takes the typical array (its shape, and for variances the layout torch broadcasts) and
# returns hard values of the same shape: reals get the value scenarios (power 2: losses square,
# exponentiate or multiply their inputs) or extremes at vector-body and tail positions;
# probabilities their domain's edges (exactly 0 and 1, the smallest normal number, 1 - eps);
# rates, variances and weights magnitudes spanning many orders (class weights from 1e-6 to
# 1e6; zeros among weights). Integer arrays (class indices, labels) keep their values.

HardArrayMaker = Callable[[np.random.Generator, Array, str, Any, Context, int], Array]


def _hard_reals(rng: np.random.Generator, a: Array, scenario: str, dtype: Any, ctx: Context,
                drawn: int) -> Array:
    if scenario in hard.VALUE_SCENARIOS:
        return hard.values(rng, a.shape, scenario, dtype, power=2)[0]
    return hard.place(rng, a, dtype, drawn, power=2)[0]


def _edges(dtype: Any) -> Array:
    eps = float(torch.finfo(dtype).eps)
    tiny = hard.limits(dtype).tiny
    return np.array([0.0, 1.0, tiny, 4 * tiny, 1.0 - eps / 2, 1.0 - 4 * eps, eps, 0.5])


def _hard_probability(rng: np.random.Generator, a: Array, scenario: str, dtype: Any,
                      ctx: Context, drawn: int) -> Array:
    """Probabilities at their domain's edges, half the elements (all, for ``constant``)."""
    edges = _edges(dtype)
    if scenario == "constant":
        return np.full(a.shape, float(rng.choice(edges)))
    return np.where(rng.random(a.shape) < 0.5, rng.choice(edges, a.shape), a)


def _span(dtype: Any) -> float:
    """Decades each side of 1 a rate, variance or weight spans: 6 (1e-6 to 1e6) where the
    dtype's range holds their squares and products with room, 2 in half precision."""
    return 2.0 if dtype in (torch.float16, torch.bfloat16) else 6.0


def _hard_positive(rng: np.random.Generator, a: Array, scenario: str, dtype: Any,
                   ctx: Context, drawn: int) -> Array:
    """Positive values spanning many orders of magnitude."""
    k = _span(dtype)
    if scenario == "constant":
        return np.full(a.shape, 10.0 ** rng.uniform(-k, k))
    return 10.0 ** rng.uniform(-k, k, a.shape)


def _hard_weight(rng: np.random.Generator, a: Array, scenario: str, dtype: Any, ctx: Context,
                 drawn: int) -> Array:
    """Weights spanning many orders of magnitude, a tenth of them 0."""
    return np.where(rng.random(a.shape) < 0.1, 0.0,
                    _hard_positive(rng, a, scenario, dtype, ctx, drawn))


def _hard_poisson_input(rng: np.random.Generator, a: Array, scenario: str, dtype: Any,
                        ctx: Context, drawn: int) -> Array:
    maker = _hard_reals if ctx.get("log_input", True) else _hard_positive
    return maker(rng, a, scenario, dtype, ctx, drawn)


def _hard_kl_target(rng: np.random.Generator, a: Array, scenario: str, dtype: Any,
                    ctx: Context, drawn: int) -> Array:
    maker = _hard_reals if ctx.get("log_target", False) else _hard_probability
    return maker(rng, a, scenario, dtype, ctx, drawn)


def _hard_class_weight(rng: np.random.Generator, arrays: Mapping[str, Array], scenario: str,
                       dtype: torch.dtype, options: Mapping[str, Any]) -> Array:
    """The hard class weights of a class-index loss (``_hard_weight``), with every weight made
    positive where no kept target would otherwise weigh anything (a mean over weights summing
    to 0 is 0 / 0)."""
    weight = _hard_weight(rng, arrays["weight"], scenario, dtype, {}, 0)
    kept, target = options.get("ignore_index", -100), arrays["target"]
    if target.dtype.kind == "i" and not np.any(
            (target != kept) & (weight[np.clip(target, 0, None)] > 0)):
        weight = np.where(weight > 0, weight, 1.0)
    return weight


def _hard_target_distribution(rng: np.random.Generator, p: Array, class_dim: int) -> Array:
    """Class probabilities at the simplex's edges: half the rows one-hot (exact 0 and 1), the
    others with classes at the smallest normal magnitudes, renormalised."""
    moved = np.moveaxis(p, class_dim, -1).copy()
    flat = moved.reshape(-1, moved.shape[-1])
    for row in flat:
        if rng.random() < 0.5:
            row[:] = 0.0
            row[rng.integers(0, row.size)] = 1.0
        else:
            row *= np.where(rng.random(row.size) < 0.5, 1e-30, 1.0)
            row /= row.sum()
    return np.ascontiguousarray(np.moveaxis(flat.reshape(moved.shape), -1, class_dim))


HARD_MAKERS: dict[Any, HardArrayMaker] = {
    normal: _hard_reals, unit_interval: _hard_probability, positive: _hard_positive,
    class_weight: _hard_weight, elementwise_weight: _hard_weight, pos_weight: _hard_weight,
    poisson_input: _hard_poisson_input, kl_target: _hard_kl_target, gaussian_var: _hard_positive,
}
"""The hard variant of each array maker; makers not listed (labels, indices) keep their
values. A new array maker gets its hard variant here."""


def _kink_reach(dtype: Any) -> float:
    """The largest magnitude the hard tier gives an array a kink rule reads: beyond
    KINK_MARGIN / eps of the dtype, rounding alone moves a hinge's argument by more than the
    margin (1 - x_j + x_i is 0 in float32 for x_j = x_i = 2.3e18, where it is 1), so which side
    of the kink torch lands on is rounding's choice, not a rule to check."""
    return KINK_MARGIN / float(torch.finfo(dtype).eps)


def _hard_shape(draw: st.DrawFn, scenario: str, min_dims: int, max_dims: int,
                max_size: int, zero_dim: bool = True) -> Shape:
    """The shape of a hard case: a size scenario's (a vectorised last dimension of each
    ``suite.hard.SIMD_SIZES`` size, or a long reduction: (L,) or (L / 8, 8)), else the usual."""
    if scenario == "simd":
        size = hard.simd_size(draw, zero_dim=zero_dim and min_dims == 0)
        if size is None:
            return ()
        return (*(2,) * max(0, min_dims - 1), size)
    if scenario == "long":
        length = hard.long_terms()
        return (length // 8, 8) if max_dims >= 2 and min_dims <= 2 else (length,)
    return draw(shapes(min_dims=min_dims, max_dims=max_dims, max_side=64, max_size=max_size),
                label="shape")


@dataclass(frozen=True)
class Alignment:
    """CTC: ``log_probs`` (T, N, C) or unbatched (T, C), ``targets``, input and target lengths.

    log_probs are the log_softmax of drawn logits (valid log-probabilities, as torch expects).
    Targets are padded (N, S) or concatenated (sum S_b,) labels in [0, C) without the blank;
    target lengths include 0, and labels repeat (from a small alphabet), so alignments need
    blanks between repeats. Each input length lies between the frames its target needs (S_b
    plus one per adjacent repeat) and T, some below T: every alignment is possible (impossible
    ones, with and without ``zero_infinity``, are edge cases in ``tests/test_losses.py``).
    Options: ``blank`` (any class), ``reduction``, ``zero_infinity``.
    """

    max_frames: int = 20
    max_batch: int = 4
    max_classes: int = 8
    bench_sizes: tuple[int, ...] = (16, 64, 256)  # T frames, ~T/4 labels: cost ~ T^2

    @staticmethod
    def _labels(rng: np.random.Generator, frames: int, labels: Array) -> Array:
        """Up to 6 labels (repeats likely) whose alignment fits in ``frames`` frames."""
        alphabet = rng.choice(labels, size=min(len(labels), int(rng.integers(1, 4))),
                              replace=False)
        seq = rng.choice(alphabet, size=int(rng.integers(0, 7)))
        while len(seq) + int(np.sum(seq[1:] == seq[:-1])) > frames:
            seq = seq[:-1]
        return seq.astype(np.int64)

    def _case(self, rng: np.random.Generator, t: int, n: int, c: int, layout: str, scale: float,
              options: dict[str, Any], seed: int, target_length: int | None = None) -> Case:
        """``target_length``: sequences of about that many labels (else up to 6, drawn)."""
        blank = int(options["blank"])
        labels = np.array([k for k in range(c) if k != blank])
        if target_length is None:
            seqs = [self._labels(rng, t, labels) for _ in range(n)]
        else:  # any labels, repeats included: S + repeats <= 2 S <= T frames suffice
            seqs = [rng.choice(labels, size=max(target_length - b, 0)).astype(np.int64)
                    for b in range(n)]
        needed = [len(s) + int(np.sum(s[1:] == s[:-1])) for s in seqs]
        input_lengths = np.array([int(rng.integers(k, t + 1)) for k in needed],
                                 dtype=np.int64)
        target_lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        logits = rng.standard_normal((t, n, c)) * scale
        log_probs = logits - np.max(logits, axis=-1, keepdims=True)
        log_probs -= np.log(np.sum(np.exp(log_probs), axis=-1, keepdims=True))
        if layout == "padded":
            targets = rng.choice(labels, size=(n, max(1, *target_lengths))).astype(np.int64)
            for b, s in enumerate(seqs):
                targets[b, : len(s)] = s  # the rest is padding, which torch must ignore
        else:
            targets = np.concatenate([np.zeros(0, dtype=np.int64), *seqs])
        arrays: dict[str, Array] = {"log_probs": log_probs, "targets": targets,
                                    "input_lengths": input_lengths,
                                    "target_lengths": target_lengths}
        if layout == "unbatched":
            arrays = {"log_probs": log_probs[:, 0], "targets": targets,
                      "input_lengths": input_lengths.reshape(()),
                      "target_lengths": target_lengths.reshape(())}
        return Case(arrays, ("log_probs",), options, seed)

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            layout = draw(st.sampled_from(["padded", "concatenated", "unbatched"]),
                          label="layout")
            t = draw(st.integers(1, self.max_frames), label="T")
            n = 1 if layout == "unbatched" else draw(st.integers(1, self.max_batch), label="N")
            c = draw(st.integers(2, self.max_classes), label="C")
            options = {"blank": draw(st.integers(0, c - 1), label="blank"),
                       "reduction": draw(REDUCTIONS, label="reduction"),
                       "zero_infinity": draw(st.booleans(), label="zero_infinity")}
            scale = draw(st.sampled_from(REALS.scales), label="scale")
            seed = draw(SEEDS, label="seed")
            return self._case(np.random.default_rng(seed), t, n, c, layout, scale, options,
                              seed)

        return cases()

    @property
    def bench_variants(self) -> dict[str, variants.BenchVariant]:
        """Each reduction besides the sized case's ``mean`` (suite.inputs.variants)."""
        return variants.reductions("mean")

    def sized(self, n: int, seed: int = 0) -> Case:
        """T = n frames of 4 sequences over 8 classes, each of about n / 4 labels (a label every
        four frames, as in speech recognition): the recursions cost T (2 S + 1) ~ n^2 / 2 per
        sequence."""
        options = {"blank": 0, "reduction": "mean", "zero_infinity": False}
        return self._case(np.random.default_rng(seed), n, 4, 8, "padded", 1.0, options, seed,
                          target_length=n // 4)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): the log-probabilities are the log_softmax of logits of
        a drawn scenario (extreme and constant logits give probabilities of 1, 0 to the last
        bit, and uniform rows); size scenarios give T frames of each ``suite.hard.SIMD_SIZES``
        size, or a long recursion of ``suite.hard.long_terms() // 8`` frames (the reference's
        alpha-beta recursion is a Python loop over T)."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            layout = draw(st.sampled_from(["padded", "concatenated", "unbatched"]),
                          label="layout")
            if scenario == "simd":
                t = hard.simd_size(draw, zero_dim=False) or 1
            elif scenario == "long":
                t = hard.long_terms() // 8
            else:
                t = draw(st.integers(1, self.max_frames), label="T")
            n = 1 if layout == "unbatched" else draw(st.integers(1, self.max_batch), label="N")
            c = draw(st.integers(2, self.max_classes), label="C")
            options = {"blank": draw(st.integers(0, c - 1), label="blank"),
                       "reduction": draw(REDUCTIONS, label="reduction"),
                       "zero_infinity": draw(st.booleans(), label="zero_infinity")}
            seed = draw(SEEDS, label="seed")
            drawn = draw(st.integers(0, 2**16), label="position")
            case = self._case(np.random.default_rng(seed), t, n, c, layout, 1.0, options, seed)
            rng = hard.rng_for(seed)
            shape = case.arrays["log_probs"].shape
            if scenario in hard.VALUE_SCENARIOS:
                logits, label = hard.values(rng, shape, scenario, dtype, axes=(-1,))
            else:
                logits, label = hard.place(rng, rng.standard_normal(shape), dtype, drawn,
                                           axis=0)
            # CTC's log-space recursion rounds its exponents to ~T u |log p| (the record's
            # float32 widening): log-probabilities far below log(smallest) only make that the
            # whole answer. Logits within twice that keep probabilities from 1 down to 0 to
            # the last bit.
            reach = -2 * hard.limits(dtype).exp_low
            logits = np.clip(logits, -reach, reach)
            z = logits - np.max(logits, axis=-1, keepdims=True)
            with np.errstate(divide="ignore"):
                log_probs = z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
            assume(np.all(np.isfinite(log_probs)))
            return hard.rewrite(case, {"log_probs": log_probs}, f"{scenario}: {label}")

        return cases()


# LinearCrossEntropyOptions' chunking choices (torch 2.13): a chunk size, or a heuristic that
# picks one from the shapes ("aspect_ratio", "aspect_ratio:N"; "auto" resolves per device and
# dtype); how intermediates are accumulated; whether backward may run twice.
_CHUNKING_METHODS = st.sampled_from(["auto", "aspect_ratio", "aspect_ratio:2", "aspect_ratio:4"])


def _accepted_acc_policies() -> list[str]:
    """The accumulation policies the installed torch's LinearCrossEntropyOptions accepts:
    torch 2.13 has "auto", "accurate", "balanced" and "compact"; 2.14 dropped "balanced" (its
    constructor refuses it with "invalid acc_policy")."""
    options = getattr(torch.nn, "LinearCrossEntropyOptions", None)
    if options is None:  # a torch without the fused loss: its records are not run
        return ["auto"]
    accepted = []
    for policy in ("auto", "accurate", "balanced", "compact"):
        try:
            options(acc_policy=policy)
        except ValueError as error:
            if "invalid acc_policy" not in str(error):
                raise
            continue
        accepted.append(policy)
    return accepted


_ACC_POLICIES = st.sampled_from(_accepted_acc_policies())


def _logits_resolved(arrays: Mapping[str, Array], dtype: torch.dtype) -> bool:
    """Whether the logits z = linear(input, linear_weight, linear_bias), a tensor of ``dtype`` in
    F.linear_cross_entropy's documented equivalent, resolve one unit in a half type: their
    rounding, up to eps/2 (|a| |W|^T + |b|) (suite/conditioning.py, LinearCrossEntropy), stays
    within 1. Past it the documented loss is not determined by the inputs in that type (each
    p_c moves by a factor up to e^(eps (|a| |W| + |b|)): a class at p = 2e-24 came out at
    7e-13 in bfloat16 for logits ~4e4, which bfloat16 spaces 256 apart), beyond the first-order
    allowance, and logits past the type's largest number are inf. float32 and float64 resolve
    every logit the hard tier draws where the softmax is not already exactly 0 or 1."""
    if dtype not in (torch.float16, torch.bfloat16):
        return True
    from references import losses_classification as ce
    from suite.specs import round_to

    a, w = round_to(arrays["input"], dtype), round_to(arrays["linear_weight"], dtype)
    b = arrays.get("linear_bias")
    u, _, _ = ce._linear_logits(np.abs(a), np.abs(w), None if b is None
                                else np.abs(round_to(b, dtype)))
    return bool(float(torch.finfo(dtype).eps) / 2 * float(np.max(u, initial=0.0)) <= 1.0)


@dataclass(frozen=True)
class LinearClassification:
    """A Linear layer's ``input`` and ``linear_weight`` (and ``linear_bias``), a ``target`` and
    class ``weight``: the arguments of F.linear_cross_entropy.

    Layouts: an unbatched input (in,), a batch (N, in), and (unless ``chunked``) a K-dimensional
    loss, whose weight is (C, d1[, d2], in) and whose logits (N, C, d1[, d2]). Targets are class
    indices (with ``ignore_index`` absent, -100 or a real class, as for ``Classification``: one
    target is always kept) or, unless ``chunked``, class probabilities (then differentiable);
    ``label_smoothing`` unless ``chunked``.

    ``chunked`` draws the cases torch's chunked path takes (``options`` given: class indices, no
    smoothing, no K dimensions) and the ``options``: LinearCrossEntropyOptions' fields as a
    plain mapping (a chunk size or a chunking heuristic, the accumulation policy, and
    allow_retain_graph); ``acc_dtype`` stays None (torch's choice: the input's dtype, float32 for
    half-precision inputs), the only value valid for every dtype the checks run.
    """

    chunked: bool = False
    max_batch: int = 24
    max_classes: int = 16
    max_features: int = 8

    def strategy(self) -> st.SearchStrategy[Case]:
        return st.composite(lambda draw: self._draw_case(draw))()

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): input, linear_weight and linear_bias of a drawn
        scenario (power 2: the logits are a matmul), every layout, target and option drawn as
        usual; the input grouped along the features, the weight and bias along the classes
        (``constant``: every class has the same weight row and bias, so the logits of a sample
        tie exactly and the softmax is uniform; ``offset``: a common part far above the
        classes' spread, which the softmax must cancel), class weights spanning 1e-6 to 1e6
        with zeros among them, probability targets at the simplex's edges (as
        ``Classification``'s); ``simd``: in_features or C of each ``suite.hard.SIMD_SIZES``
        size, with extremes in the vector body and tail of input and weight along the
        features; ``long``: ``suite.hard.long_terms()`` features (each logit a dot product of
        that length) or classes (a softmax over them), values as usual."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            sizes = None
            if scenario in hard.SIZE_SCENARIOS:
                n = draw(st.integers(1, 3), label="N")
                size = hard.simd_size(draw, zero_dim=False) or 1 if scenario == "simd" \
                    else hard.long_terms()
                other = draw(st.integers(1, 4), label="the other of C, in_features")
                sizes = (n, size, other) if draw(st.booleans(), label="long C") \
                    else (n, other, size)
            case = self._draw_case(draw, sizes)
            rng = hard.rng_for(case.seed)
            drawn = draw(st.integers(0, 2**16), label="position")
            arrays = dict(case.arrays)
            label = f"C = {arrays['linear_weight'].shape[0]}, " \
                f"in_features = {arrays['input'].shape[-1]}"
            groups = {"input": (-1,), "linear_weight": (0,), "linear_bias": (0,)}
            for name, axes in groups.items():
                if name not in arrays:
                    continue
                if scenario in hard.VALUE_SCENARIOS:
                    arrays[name], label = hard.values(rng, arrays[name].shape, scenario, dtype,
                                                      power=2, axes=axes)
                elif scenario == "simd" and name != "linear_bias":
                    arrays[name], label = hard.place(rng, arrays[name], dtype, drawn, power=2)
            if "weight" in arrays:
                arrays["weight"] = _hard_class_weight(rng, arrays, scenario, dtype, case.options)
            if arrays["target"].dtype.kind == "f":
                class_dim = arrays["input"].ndim - 1
                arrays["target"] = _hard_target_distribution(rng, arrays["target"], class_dim)
            assume(_logits_resolved(arrays, dtype))
            return hard.rewrite(case, arrays, f"{scenario}: {label}")

        return cases()

    def _draw_case(self, draw: st.DrawFn, sizes: tuple[int, int, int] | None = None) -> Case:
        """One case, every choice through ``draw``; ``sizes``: (N, C, in_features) given."""
        layouts = ["unbatched", "batched"] + ([] if self.chunked else ["k-dim"])
        layout = draw(st.sampled_from(layouts), label="layout")
        if sizes is None:
            n = draw(st.one_of(st.integers(1, 4), st.integers(1, self.max_batch)), label="N")
            c = draw(st.one_of(st.integers(1, 4), st.integers(1, self.max_classes)), label="C")
            features = draw(st.integers(1, self.max_features), label="in_features")
        else:
            n, c, features = sizes
        extra: Shape = ()
        if layout == "k-dim":
            extra = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2),
                               label="d1..."))
        batch: Shape = () if layout == "unbatched" else (n,)
        scale = draw(st.sampled_from(REALS.scales), label="scale")
        seed = draw(SEEDS, label="seed")
        rng = np.random.default_rng(seed)
        # Logits z = W a + b of about the drawn scale: a ~ N(0, 1), W ~ N(0, scale^2 / in).
        arrays: dict[str, Array] = {
            "input": rng.standard_normal((*batch, features)),
            "linear_weight": rng.standard_normal((c, *extra, features))
            * scale / math.sqrt(features)}
        differentiable: list[str] = ["input", "linear_weight"]
        options: dict[str, Any] = {"reduction": draw(REDUCTIONS, label="reduction")}
        logits_shape = (*batch, c, *extra)
        class_dim = len(batch)
        if not self.chunked and draw(st.booleans(), label="probability target"):
            p = rng.dirichlet(np.ones(c), size=math.prod(logits_shape) // c)
            probs = np.moveaxis(p.reshape((*batch, *extra, c)), -1, class_dim)
            arrays["target"] = np.ascontiguousarray(probs)
            differentiable.append("target")
        else:
            target = rng.integers(0, c, size=(*batch, *extra))
            ignore = draw(st.sampled_from(["none", "default", "class"]), label="ignore")
            if ignore != "none":
                flat = target.reshape(-1)
                ignored = -100 if ignore == "default" or c == 1 else int(flat[-1])
                if target.size > 1:
                    if flat[0] == ignored:
                        flat[0] = (ignored + 1) % c
                    dropped = rng.random(flat.size) < 0.3
                    dropped[0] = False  # keep one target, so "mean" is defined
                    target = np.where(dropped, ignored, flat).reshape(target.shape)
                elif flat[0] == ignored:  # a single target stays kept
                    ignored = -100
                options["ignore_index"] = ignored
            arrays["target"] = target.astype(np.int64)
        if draw(st.booleans(), label="linear bias"):
            arrays["linear_bias"] = rng.standard_normal((c, *extra)) * scale
            differentiable.append("linear_bias")
        if draw(st.booleans(), label="class weights"):
            arrays["weight"] = rng.uniform(0.1, 2.0, size=c)
        if self.chunked:
            options["options"] = draw(_chunking_options(n if batch else 1),
                                      label="options")
        else:
            options["label_smoothing"] = draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0)),
                                              label="label_smoothing")
        return Case(arrays, tuple(differentiable), options, seed)

    def sized(self, n: int, seed: int = 0) -> Case:
        rng = np.random.default_rng(seed)
        arrays = {"input": rng.standard_normal((n, n)),
                  "linear_weight": rng.standard_normal((n, n)) / math.sqrt(n),
                  "target": rng.integers(0, n, size=n).astype(np.int64)}
        options: dict[str, Any] = {"reduction": "mean"}
        if self.chunked:
            options["options"] = {"batch_chunk_size": max(1, n // 4), "chunking_method": None,
                                  "acc_policy": "auto", "allow_retain_graph": False}
        return Case(arrays, ("input", "linear_weight"), options, seed)


def _chunking_options(rows: int) -> st.SearchStrategy[dict[str, Any]]:
    """LinearCrossEntropyOptions' fields: a chunk size (with the heuristic off, or "auto", which
    an explicit size turns off) or a heuristic with no size (torch raises when both are given and
    disagree)."""
    sizes = st.fixed_dictionaries({
        "batch_chunk_size": st.integers(1, max(1, rows + 1)),
        "chunking_method": st.sampled_from([None, "auto"])})
    methods = st.fixed_dictionaries({"batch_chunk_size": st.none(),
                                     "chunking_method": _CHUNKING_METHODS | st.none()})
    return st.tuples(sizes | methods, _ACC_POLICIES, st.booleans()).map(
        lambda t: {**t[0], "acc_policy": t[1], "allow_retain_graph": t[2]})
