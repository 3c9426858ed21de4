"""Layer records: one line each, alphabetical."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from references import layers as ref
from suite import inputs as hi
from suite.specs import OpSpec
from suite.tolerances import Kind, Tolerance

RECORDS = (
    OpSpec(name="linear", family="layer", torch_fn=F.linear, ref=ref.linear,
           ref_vjp=ref.linear_vjp, inputs=hi.Affine(),
           # dL/dW and dL/db sum products over up to 512 batch rows. The float32 rounding of
           # such a sum grows like eps * sqrt(n) * ||terms|| ~ 1.2e-7 * 512 ~ 6e-5 for O(1)
           # terms (2e-5 seen at n = 256); 3e-4 keeps a 5x margin and is still 1000x below a
           # wrong factor or sign.
           tol={(Kind.GRADIENT, torch.float32): Tolerance(rtol=3e-4, atol=3e-4)},
           docs="https://pytorch.org/docs/stable/generated/torch.nn.Linear.html"),
)
