"""Normalization layer records, alphabetical."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from references import norms as ref
from suite.inputs import layers as hi
from suite.specs import OpSpec

_DOCS = "https://pytorch.org/docs/stable/generated/torch.nn.{}.html"


def _missing(name: str, since: str) -> Callable[..., torch.Tensor]:
    """A stand-in for a torch function this build lacks: every check of it skips, saying why."""

    def unavailable(**_: object) -> torch.Tensor:
        pytest.skip(f"torch {torch.__version__} has no torch.nn.functional.{name} "
                    f"(added in torch {since})")

    unavailable.__name__ = f"{name} (missing)"
    return unavailable


# batch_norm and layer_norm stay at order 1: torch 2.13's double backward of both raises with a
# bias and no weight (KNOWN_DIFFERENCES.md, tests/test_higher_order.py). No norm is checked in
# half precision: the VJP's terms are |g| / sigma, so its rounding grows as the drawn groups'
# spread shrinks (bfloat16 batch_norm of two values: 0.064 absolute) and needs a derivation.
RECORDS = (
    OpSpec(name="batch_norm", family="layer", torch_fn=F.batch_norm, ref=ref.batch_norm,
           ref_vjp=ref.batch_norm_vjp, inputs=hi.BatchNormalized(),
           docs=_DOCS.format("BatchNorm2d")),
    OpSpec(name="group_norm", family="layer", torch_fn=F.group_norm, ref=ref.group_norm,
           order=2,
           ref_vjp=ref.group_norm_vjp, inputs=hi.GroupNormalized(),
           docs=_DOCS.format("GroupNorm")),
    OpSpec(name="layer_norm", family="layer", torch_fn=F.layer_norm, ref=ref.layer_norm,
           ref_vjp=ref.layer_norm_vjp, inputs=hi.Normalized("layer"),
           docs=_DOCS.format("LayerNorm")),
    # F.rms_norm exists since torch 2.4; on an older torch every check of it skips with that
    # reason (the record stays, so its reference is still checked against finite differences).
    OpSpec(name="rms_norm", family="layer",
           order=2,
           torch_fn=getattr(F, "rms_norm", None) or _missing("rms_norm", "2.4"),
           ref=ref.rms_norm, ref_vjp=ref.rms_norm_vjp, inputs=hi.Normalized("rms"),
           docs=_DOCS.format("RMSNorm")),
)
