"""Loss records, alphabetical."""

from __future__ import annotations

import torch.nn.functional as F

from references import losses as ref
from suite import inputs as hi
from suite.specs import OpSpec

_DOCS = "https://pytorch.org/docs/stable/generated/torch.nn.{}.html"

RECORDS = (
    OpSpec(name="cross_entropy", family="loss", torch_fn=F.cross_entropy, ref=ref.cross_entropy,
           ref_vjp=ref.cross_entropy_vjp, inputs=hi.Classification(), overflow_prone=True,
           docs=_DOCS.format("CrossEntropyLoss")),
    OpSpec(name="mse_loss", family="loss", torch_fn=F.mse_loss, ref=ref.mse_loss,
           ref_vjp=ref.mse_loss_vjp, inputs=hi.Regression(), docs=_DOCS.format("MSELoss")),
)
