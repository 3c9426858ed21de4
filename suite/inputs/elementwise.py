"""Input makers for elementwise ops and ops along one dim (activations)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

from suite.specs import Case
from suite.strategies import REALS, SEEDS, Domain, OptionStrategy, draw_options, shapes


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
            options = draw_options(draw, self.options, shape)
            scale = draw(st.sampled_from(self.domain.scales), label="scale")
            seed = draw(SEEDS, label="seed")
            x = self.domain.sample(np.random.default_rng(seed), shape, scale)
            return Case({"input": x}, ("input",), options, seed)

        return cases()

    def sized(self, n: int, seed: int = 0) -> Case:
        x = self.domain.sample(np.random.default_rng(seed), (n, n), 1.0)
        return Case({"input": x}, ("input",), dict(self.defaults), seed)


