"""Input makers for losses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from suite.specs import Array, Case
from suite.strategies import REALS, SEEDS, shapes

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


