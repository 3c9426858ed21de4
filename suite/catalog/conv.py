"""Convolution and pooling records, alphabetical."""

from __future__ import annotations

import torch.nn.functional as F

from references import conv as ref
from suite.inputs import layers as hi
from suite.specs import OpSpec

_DOCS = "https://pytorch.org/docs/stable/generated/torch.nn.{}.html"

RECORDS = (
    OpSpec(name="avg_pool2d", family="layer", torch_fn=F.avg_pool2d, ref=ref.avg_pool2d,
           order=2,
           ref_vjp=ref.avg_pool2d_vjp, inputs=hi.Pooling("avg"), docs=_DOCS.format("AvgPool2d")),
    OpSpec(name="conv1d", family="layer", torch_fn=F.conv1d, ref=ref.conv1d,
           order=2,
           ref_vjp=ref.conv1d_vjp, inputs=hi.Convolution(1), docs=_DOCS.format("Conv1d")),
    OpSpec(name="conv2d", family="layer", torch_fn=F.conv2d, ref=ref.conv2d,
           order=2,
           ref_vjp=ref.conv2d_vjp, inputs=hi.Convolution(2), docs=_DOCS.format("Conv2d")),
    OpSpec(name="max_pool2d", family="layer", torch_fn=F.max_pool2d, ref=ref.max_pool2d,
           order=2,
           ref_vjp=ref.max_pool2d_vjp, inputs=hi.Pooling("max"), docs=_DOCS.format("MaxPool2d")),
)
