"""Hypothesis strategies: shapes, value domains, options, optimizer runs.

The input makers records are built from (``Elementwise``, ``Affine``, ...) live in
``suite.inputs``, one module per family, and are made of the pieces here.

Values are not drawn element by element: Hypothesis draws the shape, the options, a value scale
and a 32-bit seed, and NumPy's generator fills the arrays from that seed. Drawing tens of
thousands of floats through Hypothesis costs most of a small example's time (DESIGN.md,
"Performance facts"); a seed costs nothing, keeps every case reproducible from its description,
and Hypothesis still shrinks shapes, options and scales.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from suite import tolerances as tols
from suite.specs import Array, OptimizerRun

Shape = tuple[int, ...]
# An option is either a strategy or a function of the drawn shape returning one (e.g. ``dim``).
OptionStrategy = st.SearchStrategy[Any] | Callable[[Shape], st.SearchStrategy[Any]]

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


@dataclass(frozen=True)
class Domain:
    """A named set of input values: a sampler and the magnitudes Hypothesis chooses between.

    ``kinks`` lists points where the op is not differentiable; drawn values closer than
    ``kink_margin`` (or a quarter of the gap between two kinks, if smaller) are pushed out to
    that distance, so finite differences never straddle a kink.
    (Exact kink points are a separate, deliberate check.)
    """

    name: str
    scales: tuple[float, ...] = (1.0, 0.1, 5.0)
    kinks: tuple[float, ...] = ()
    kink_margin: float = tols.KINK_MARGIN

    def sample(self, rng: np.random.Generator, shape: Shape, scale: float) -> Array:
        """Standard normal values times ``scale``, moved off the kinks."""
        x = rng.standard_normal(shape) * scale
        kinks = sorted(set(self.kinks))
        # Kinks closer than 4 margins (softshrink with a tiny lambd) shrink the margin to a
        # quarter of their gap: a value pushed off one kink then stays 3 margins from the next.
        # Finite differences step ~4e-6 at most, far inside any margin this leaves.
        gaps = np.diff(kinks)
        margin = min(self.kink_margin, float(gaps.min()) / 4) if gaps.size else self.kink_margin
        for k in kinks:
            near = np.abs(x - k) < margin
            x = np.where(near, k + np.copysign(margin, x - k), x)
        return x


REALS = Domain("reals")
REALS_WITH_KINK_AT_0 = Domain("reals, kink at 0", kinks=(0.0,))


# Memoised: input makers ask for shapes inside their composites on every draw, and building a
# composite strategy costs milliseconds (Hypothesis reads its source); strategies are immutable.
@functools.cache
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
            sides.append(draw(_side(room)))
        # The large sides, drawn first, may land in any position: one of the ndim! orders
        # (index 0, the drawn order, is where Hypothesis shrinks to).
        order = _orders(ndim)[draw(_order_index(ndim))] if ndim > 1 else tuple(range(ndim))
        return tuple(sides[i] for i in order)

    return draw_shape()


# Strategies reused across draws (building one per draw cost most of a shape's 4 ms).
@functools.cache
def _side(room: int) -> st.SearchStrategy[int]:
    """A side of at most ``room``: small (<= 8) half the time, anything up to room otherwise."""
    return st.one_of(st.integers(1, min(8, room)), st.integers(1, room))


@functools.cache
def _orders(ndim: int) -> tuple[tuple[int, ...], ...]:
    return tuple(itertools.permutations(range(ndim)))


@functools.cache
def _order_index(ndim: int) -> st.SearchStrategy[int]:
    return st.integers(0, math.factorial(ndim) - 1)


def any_dim(shape: Shape) -> st.SearchStrategy[int]:
    """A valid ``dim`` argument for ``shape``, negative spellings included."""
    return st.integers(-len(shape), len(shape) - 1)


def draw_options(draw: st.DrawFn, options: Mapping[str, OptionStrategy], shape: Shape) -> dict:
    return {
        name: draw(s if isinstance(s, st.SearchStrategy) else s(shape), label=name)
        for name, s in options.items()
    }


def optimizer_runs(hyper: st.SearchStrategy[dict[str, Any]], *, min_steps: int = 5,
                   max_steps: int = 8, groups: bool = False, none_grads: bool = False,
                   complex_params: bool = False, tensor_lr: bool = False,
                   constructor_only: tuple[str, ...] = (),
                   first_step_complete: bool = False,
                   param_dims: tuple[int, int] = (0, 2)) -> st.SearchStrategy[OptimizerRun]:
    """Several parameter tensors of different shapes and a gradient for each at every step.

    Gradients are normal values at a drawn scale; a drawn fraction of entries is exactly zero at
    each step, and signs change freely between steps (momentum and Adam's moments see both).
    Optionally (each drawn, so Hypothesis shrinks towards the plain run):

    * ``groups``: the parameters are split into up to 3 groups, each group but the first with
      its own hyper-parameters drawn from ``hyper`` (``constructor_only`` keys kept equal);
    * ``none_grads``: a parameter has no gradient (``None``) on some steps (not on the first
      with ``first_step_complete``);
    * ``complex_params``: complex parameters, each array a (..., 2) array of real pairs;
    * ``tensor_lr``: ``lr`` is given to torch as a tensor.

    ``param_dims`` bounds the parameters' dimensions (``OptimizerSpec.param_dims``).
    """

    # Built once, drawn from many times (building a strategy per draw cost more than drawing).
    shape_lists = st.lists(shapes(min_dims=param_dims[0], max_dims=param_dims[1], max_size=256),
                           min_size=1, max_size=3)
    step_counts = st.integers(min_steps, max_steps)
    scales = st.sampled_from((1.0, 1e-3, 10.0))
    fractions = st.sampled_from((0.0, 0.3))
    flags = st.booleans()
    group_labels = {n: st.lists(st.integers(0, 2), min_size=n, max_size=n) for n in (2, 3)}

    @st.composite
    def runs(draw: st.DrawFn) -> OptimizerRun:
        param_shapes = draw(shape_lists, label="param shapes")
        steps = draw(step_counts, label="steps")
        scale = draw(scales, label="grad scale")
        zero_fraction = draw(fractions, label="zero fraction")
        none_fraction = draw(fractions, label="none fraction") if none_grads else 0.0
        is_complex = complex_params and draw(flags, label="complex")
        if is_complex:
            param_shapes = [(*s, 2) for s in param_shapes]
        seed = draw(SEEDS, label="seed")
        rng = np.random.default_rng(seed)
        params = [rng.standard_normal(s) for s in param_shapes]

        def grad(s: Shape, step: int) -> Array | None:
            if none_fraction and rng.random() < none_fraction and \
                    not (first_step_complete and step == 0):
                return None
            g = rng.standard_normal(s) * scale
            return np.where(rng.random(s) < zero_fraction, 0.0, g)

        grads = [[grad(s, k) for s in param_shapes] for k in range(steps)]
        defaults = draw(hyper, label="hyper")
        split: tuple[tuple[tuple[int, ...], dict[str, Any]], ...] = ()
        if groups and len(params) > 1:
            labels = draw(group_labels[len(params)], label="group of each param")
            members = [tuple(i for i, g in enumerate(labels) if g == k) for k in range(3)]
            overrides: list[dict[str, Any]] = [{}]
            for _ in range(2):
                drawn = draw(hyper, label="group hyper")
                overrides.append({k: v for k, v in drawn.items() if k not in constructor_only})
            split = tuple((m, o) for m, o in zip(members, overrides, strict=True) if m)
        as_tensor = tensor_lr and draw(flags, label="lr as tensor")
        return OptimizerRun(params, grads, defaults, seed, split, is_complex, as_tensor)

    return runs()
