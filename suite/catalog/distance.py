"""Distance function records, alphabetical: torch.nn's CosineSimilarity and PairwiseDistance.

Both modules take the functional options as they are (``module(**options)``) and are checked
against the functional form in tests/test_ops.py. Their arguments broadcast against each other:
pairwise_distance's through ``broadcasts`` (tests/test_ops.py cuts dimensions of either to
size 1). cosine_similarity reduces a drawn ``dim``, and where that dimension is cut to 1 the
cosine is scale-invariant in the cut argument: its derivative is exactly 0, which central
differences resolve only to their rounding (2.5e-11 against an allowance of 1.2e-11 seen).
tests/test_layers.py::test_cosine_similarity_broadcast therefore cuts the other dimensions
with every check, and the reduced one with torch's checks only.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from references import distance as ref
from suite import conditioning
from suite.inputs import layers as hi
from suite.specs import ModuleForm, OpSpec

_DOCS = "https://pytorch.org/docs/stable/generated/torch.nn.{}.html"

RECORDS = (
    OpSpec(name="cosine_similarity", family="layer", torch_fn=F.cosine_similarity,
           ref=ref.cosine_similarity, ref_vjp=ref.cosine_similarity_vjp,
           inputs=hi.Pair("cosine"), docs=_DOCS.format("CosineSimilarity"),
           module=ModuleForm(nn.CosineSimilarity),
           terms=conditioning.COSINE_SIMILARITY),
    OpSpec(name="pairwise_distance", family="layer", torch_fn=F.pairwise_distance,
           ref=ref.pairwise_distance, ref_vjp=ref.pairwise_distance_vjp,
           inputs=hi.Pair("pairwise"), docs=_DOCS.format("PairwiseDistance"),
           module=ModuleForm(nn.PairwiseDistance), broadcasts=("x1", "x2"),
           low_precision="d = x1 - x2 + eps cancels for close inputs, and the norm's "
                         "derivative divides d's rounding by ||d||_p (by |d_i|^(1 - p) for "
                         "p < 1): a conditioning not derived yet (as the triplet losses')"),
)
