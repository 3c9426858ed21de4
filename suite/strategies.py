"""Hypothesis strategies: shapes, value domains, and the input makers records are built from.

Values are not drawn element by element: Hypothesis draws the shape, the options, a value scale
and a 32-bit seed, and NumPy's generator fills the arrays from that seed. Drawing tens of
thousands of floats through Hypothesis costs most of a small example's time (DESIGN.md,
"Performance facts"); a seed costs nothing, keeps every case reproducible from its description,
and Hypothesis still shrinks shapes, options and scales.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from suite.specs import Array, Case, OptimizerRun

Shape = tuple[int, ...]
# An option is either a strategy or a function of the drawn shape returning one (e.g. ``dim``).
OptionStrategy = st.SearchStrategy[Any] | Callable[[Shape], st.SearchStrategy[Any]]

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


@dataclass(frozen=True)
class Domain:
    """A named set of input values: a sampler and the magnitudes Hypothesis chooses between.

    ``kinks`` lists points where the op is not differentiable; drawn values closer than
    ``kink_margin`` are pushed out to that distance, so finite differences never straddle a kink.
    (Exact kink points are a separate, deliberate check.)
    """

    name: str
    scales: tuple[float, ...] = (1.0, 0.1, 5.0)
    kinks: tuple[float, ...] = ()
    kink_margin: float = 1e-3

    def sample(self, rng: np.random.Generator, shape: Shape, scale: float) -> Array:
        """Standard normal values times ``scale``, moved off the kinks."""
        x = rng.standard_normal(shape) * scale
        for k in self.kinks:
            near = np.abs(x - k) < self.kink_margin
            x = np.where(near, k + np.copysign(self.kink_margin, x - k), x)
        return x


REALS = Domain("reals")
REALS_WITH_KINK_AT_0 = Domain("reals, kink at 0", kinks=(0.0,))


def shapes(*, min_dims: int = 1, max_dims: int = 3, max_side: int = 256,
           max_size: int = 4096) -> st.SearchStrategy[Shape]:
    """Shapes with sides from 1 (a batch of one) to ``max_side`` and at most ``max_size`` elements.

    * ``min_dims``/``max_dims`` bound the number of dimensions (0 means a 0-d tensor);
    * each side is drawn from what is left of ``max_size``, so large sides stay possible in any
      position without ever producing an oversized array.

    .. code-block:: pycon

        >>> shapes(min_dims=2, max_dims=2).example()  # doctest: +SKIP
        (1, 213)
    """
    if not 0 <= min_dims <= max_dims:
        raise InvalidArgument(f"need 0 <= min_dims <= max_dims, got {min_dims=} {max_dims=}")

    @st.composite
    def draw_shape(draw: st.DrawFn) -> Shape:
        ndim = draw(st.integers(min_dims, max_dims), label="ndim")
        sides: list[int] = []
        for _ in range(ndim):
            room = max(1, min(max_side, max_size // max(1, math.prod(sides))))
            sides.append(draw(st.one_of(st.integers(1, min(8, room)), st.integers(1, room))))
        return tuple(draw(st.permutations(sides)))

    return draw_shape()


def any_dim(shape: Shape) -> st.SearchStrategy[int]:
    """A valid ``dim`` argument for ``shape``, negative spellings included."""
    return st.integers(-len(shape), len(shape) - 1)


def _draw_options(draw: st.DrawFn, options: Mapping[str, OptionStrategy], shape: Shape) -> dict:
    return {
        name: draw(s if isinstance(s, st.SearchStrategy) else s(shape), label=name)
        for name, s in options.items()
    }


@dataclass(frozen=True)
class Elementwise:
    """One array argument ``input`` of any shape, plus options: activations and the like.

    ``defaults`` are the options used by sized (benchmark) cases.
    """

    domain: Domain = REALS
    options: Mapping[str, OptionStrategy] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    min_dims: int = 1

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            shape = draw(shapes(min_dims=self.min_dims), label="shape")
            options = _draw_options(draw, self.options, shape)
            scale = draw(st.sampled_from(self.domain.scales), label="scale")
            seed = draw(SEEDS, label="seed")
            x = self.domain.sample(np.random.default_rng(seed), shape, scale)
            return Case({"input": x}, ("input",), options, seed)

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        x = self.domain.sample(np.random.default_rng(seed), (n, n), 1.0)
        return Case({"input": x}, ("input",), dict(self.defaults), seed)


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


REDUCTIONS = st.sampled_from(["mean", "sum", "none"])


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

    def sized(self, n: int, seed: int = 0) -> Case:
        rng = np.random.default_rng(seed)
        arrays = {"input": rng.standard_normal((n, n)), "target": rng.standard_normal((n, n))}
        return Case(arrays, ("input", "target"), {"reduction": "mean"}, seed)


@dataclass(frozen=True)
class Classification:
    """Logits ``input`` (N, C) or (C,), class-index ``target``, optional class ``weight``.

    Options: ``reduction``, ``ignore_index`` (torch's default -100 or a real class, hit by some
    targets), ``label_smoothing``. At least one target is never ignored, so a mean over the
    kept targets is defined (every-target-ignored is an edge case of its own).
    """

    max_batch: int = 128
    max_classes: int = 64

    def strategy(self) -> st.SearchStrategy[Case]:
        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            batched = draw(st.booleans(), label="batched")
            n = draw(st.one_of(st.integers(1, 4), st.integers(1, self.max_batch)), label="N")
            c = draw(st.one_of(st.integers(1, 4), st.integers(1, self.max_classes)), label="C")
            seed = draw(SEEDS, label="seed")
            rng = np.random.default_rng(seed)
            logits = rng.standard_normal((n, c) if batched else (c,))
            logits *= draw(st.sampled_from(REALS.scales), label="scale")
            target = rng.integers(0, c, size=(n,) if batched else ())
            options: dict[str, Any] = {
                "reduction": draw(REDUCTIONS, label="reduction"),
                "label_smoothing": draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0)),
                                        label="label_smoothing"),
            }
            ignore = draw(st.sampled_from(["none", "default", "class"]), label="ignore")
            if ignore != "none" and target.ndim == 1 and n > 1:
                # A real class to ignore needs a second class for the target that is kept.
                ignored = -100 if ignore == "default" or c == 1 else int(target[1])
                if target[0] == ignored:
                    target[0] = (ignored + 1) % c
                dropped = rng.random(n) < 0.3
                dropped[0] = False  # keep one target, so "mean" is defined
                target = np.where(dropped, ignored, target)
                options["ignore_index"] = ignored
            arrays: dict[str, Array] = {"input": logits, "target": target.astype(np.int64)}
            if draw(st.booleans(), label="class weights"):
                arrays["weight"] = rng.uniform(0.1, 2.0, size=c)
            return Case(arrays, ("input",), options, seed)

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        rng = np.random.default_rng(seed)
        arrays = {"input": rng.standard_normal((n, n)),
                  "target": rng.integers(0, n, size=n).astype(np.int64)}
        return Case(arrays, ("input",), {"reduction": "mean"}, seed)


def optimizer_runs(hyper: st.SearchStrategy[dict[str, Any]], *, min_steps: int = 5,
                   max_steps: int = 8) -> st.SearchStrategy[OptimizerRun]:
    """Several parameter tensors of different shapes and a gradient for each at every step.

    Gradients are normal values at a drawn scale; a drawn fraction of entries is exactly zero at
    each step, and signs change freely between steps (momentum and Adam's moments see both).
    """

    @st.composite
    def runs(draw: st.DrawFn) -> OptimizerRun:
        param_shapes = draw(st.lists(shapes(min_dims=0, max_dims=2, max_size=256), min_size=1,
                                     max_size=3), label="param shapes")
        steps = draw(st.integers(min_steps, max_steps), label="steps")
        scale = draw(st.sampled_from((1.0, 1e-3, 10.0)), label="grad scale")
        zero_fraction = draw(st.sampled_from((0.0, 0.3)), label="zero fraction")
        seed = draw(SEEDS, label="seed")
        rng = np.random.default_rng(seed)
        params = [rng.standard_normal(s) for s in param_shapes]

        def grad(s: Shape) -> Array:
            g = rng.standard_normal(s) * scale
            return np.where(rng.random(s) < zero_fraction, 0.0, g)

        grads = [[grad(s) for s in param_shapes] for _ in range(steps)]
        return OptimizerRun(params, grads, draw(hyper, label="hyper"), seed)

    return runs()
