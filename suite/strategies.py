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

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from suite.specs import Array, OptimizerRun

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


def draw_options(draw: st.DrawFn, options: Mapping[str, OptionStrategy], shape: Shape) -> dict:
    return {
        name: draw(s if isinstance(s, st.SearchStrategy) else s(shape), label=name)
        for name, s in options.items()
    }


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
