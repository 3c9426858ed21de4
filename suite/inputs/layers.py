"""Input makers for layers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from suite.specs import Case
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


