"""Input makers for elementwise ops and ops along one dim (activations)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

from suite import hard
from suite.specs import Array, Case
from suite.strategies import REALS, SEEDS, Domain, OptionStrategy, Shape, draw_options, shapes

# Points where an op is not differentiable, as a function of its options (hardtanh's bounds,
# softshrink's +-lambd, threshold's threshold): the same rule keeps drawn values off them and
# names the exact points the exact-point test evaluates (``OpSpec.exact_points``).
KinkRule = Callable[[Mapping[str, Any]], tuple[float, ...]]


@dataclass(frozen=True)
class Elementwise:
    """One array argument ``input`` of any shape, plus options: activations and the like.

    * ``domain``: the values of ``input``; ``kinks`` adds the points that depend on the drawn
      options (values are moved ``domain.kink_margin`` away from them, as from the domain's own);
    * ``min_dims``/``max_dims``: the dims the op accepts (softmax2d needs 3 or 4);
    * ``halved``: the name of the option holding a dim that is split in two halves (GLU): its
      drawn size is doubled, so it is always even;
    * ``channel_weight``: also draw a differentiable ``weight`` of 1 element or one per channel
      (dim 1 of ``input``; PReLU), of standard deviation 0.5 around 0.25 (torch's initial value);
    * ``defaults``: the options of sized (benchmark) cases.
    """

    domain: Domain = REALS
    options: Mapping[str, OptionStrategy] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    min_dims: int = 1
    max_dims: int = 3
    kinks: KinkRule | None = None
    halved: str | None = None
    channel_weight: bool = False

    def domain_for(self, options: Mapping[str, Any]) -> Domain:
        """The domain with the option-dependent kinks added."""
        if self.kinks is None:
            return self.domain
        return dataclasses.replace(self.domain, kinks=self.domain.kinks + self.kinks(options))

    def strategy(self) -> st.SearchStrategy[Case]:
        return self.cases(shapes(min_dims=self.min_dims, max_dims=self.max_dims))

    def cases(self, shape_strategy: st.SearchStrategy[Shape]) -> st.SearchStrategy[Case]:
        """Cases whose ``input`` has (before any ``halved`` doubling) a shape from the strategy.

        The layout tests use this to ask for 0-d and 0-size inputs.
        """

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            shape = draw(shape_strategy, label="shape")
            options = draw_options(draw, self.options, shape)
            scale = draw(st.sampled_from(self.domain.scales), label="scale")
            per_channel = self.channel_weight and len(shape) >= 2 and shape[1] > 0 and draw(
                st.booleans(), label="weight per channel")
            seed = draw(SEEDS, label="seed")
            return self._case(shape, options, scale, seed, per_channel)

        return cases()

    def _case(self, shape: Shape, options: Mapping[str, Any], scale: float, seed: int,
              per_channel: bool) -> Case:
        if self.halved is not None:
            dim = options[self.halved]
            shape = tuple(s * 2 if d == dim % len(shape) else s for d, s in enumerate(shape))
        rng = np.random.default_rng(seed)
        arrays: dict[str, Array] = {"input": self.domain_for(options).sample(rng, shape, scale)}
        if self.channel_weight:
            arrays["weight"] = 0.25 + 0.5 * rng.standard_normal(shape[1] if per_channel else 1)
        return Case(arrays, tuple(arrays), dict(options), seed)

    def sized(self, n: int, seed: int = 0) -> Case:
        shape = (2,) * max(0, self.min_dims - 2) + (n, n)
        return self._case(shape, self.defaults, 1.0, seed, self.channel_weight)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): every value scenario on the usual shapes (groups along
        ``dim`` for ops that take one; ``ties`` include the op's kinks), inputs of each size in
        ``suite.hard.SIMD_SIZES`` (and 0-d) with extremes in the vector body and the scalar
        tail, and a long input with extremes at three positions."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            lead = (1,) * max(0, self.min_dims - 1)
            if scenario == "simd":
                size = hard.simd_size(draw, zero_dim=self.min_dims == 0)
                shape: tuple[int, ...] = () if size is None else (*lead, size)
            elif scenario == "long":
                shape = (*lead, hard.long_terms())
            else:
                shape = draw(shapes(min_dims=self.min_dims, max_dims=self.max_dims,
                                    max_size=256), label="shape")
            options = draw_options(draw, self.options, shape)
            per_channel = self.channel_weight and len(shape) >= 2 and shape[1] > 0 and draw(
                st.booleans(), label="weight per channel")
            seed = draw(SEEDS, label="seed")
            case = self._case(shape, options, 1.0, seed, per_channel)
            x, rng = case.arrays["input"], hard.rng_for(seed)
            if scenario in hard.VALUE_SCENARIOS:
                axes = (options["dim"],) if "dim" in options and x.ndim else None
                values, label = hard.values(rng, x.shape, scenario, dtype, axes=axes,
                                            kinks=self.domain_for(options).kinks)
            else:
                values, label = hard.place(rng, x, dtype,
                                           draw(st.integers(0, 2**16), label="position"))
            return hard.rewrite(case, {"input": values}, f"{scenario}: {label}")

        return cases()
