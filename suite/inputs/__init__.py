"""Input makers: how each record's inputs are drawn (for tests) and sized (for benchmarks).

One module per family. Each maker implements ``suite.specs.Inputs``: ``strategy()`` returns a
Hypothesis strategy of ``Case``s, ``sized(n, seed)`` a deterministic case whose cost grows
with ``n``. The shared pieces (shapes, domains, seeds) are in ``suite.strategies``.
"""

from suite.inputs.elementwise import Elementwise
from suite.inputs.layers import Affine
from suite.inputs.losses import REDUCTIONS, Classification, Regression

__all__ = ["REDUCTIONS", "Affine", "Classification", "Elementwise", "Regression"]
