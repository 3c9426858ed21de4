"""Convolution and pooling records, alphabetical.

Each has its ``torch.nn`` module form (checked against the functional form in
tests/test_ops.py): the pooling modules take the functional options as they are; the
convolutions are built from the weight's shape, with the case's parameters in place of their
own (``module_params``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from references import conv as ref
from suite import conditioning
from suite.inputs import layers as hi
from suite.specs import Case, OpSpec
from suite.tolerances import Kind, Tolerance

_DOCS = "https://pytorch.org/docs/stable/generated/torch.nn.{}.html"


def _conv_module(cls: type[nn.Module]) -> Callable[[Case], nn.Module]:
    """Builds ``cls`` (nn.Conv1d or nn.Conv2d) from the weight's shape (out, in / groups,
    *kernel) and the functional options (stride, padding, dilation, groups: same names)."""

    def build(case: Case) -> nn.Module:
        n_out, per_group, *kernel = case.arrays["weight"].shape
        groups = case.options.get("groups", 1)
        return cls(per_group * groups, n_out, tuple(kernel), bias="bias" in case.arrays,
                   **case.options)

    return build


# float32 weight gradients sum g x over every output position: up to 3 x 12 x 12 = 432 for
# conv2d, of terms |g x| ~ 5 at value scale 5 (up to ~80), so M = sum |terms| reaches ~2e3 and
# a correct float32 kernel is off by up to ~2 eps32 M ~ 5e-4 where the sum cancels (measured,
# torch 2.13.0 CPU, 400 draws each: error <= 1.35 eps32 M, 4.6e-5 absolute for conv2d and
# 8.8e-6 for conv1d, against the table's atol 1e-5). 3e-4, as linear's, is still 1000x below a
# wrong factor or sign of an O(1) gradient.
_CONV_FLOAT32_GRADIENT = {(Kind.GRADIENT, torch.float32): Tolerance(rtol=3e-4, atol=3e-4)}

RECORDS = (
    OpSpec(name="avg_pool2d", family="layer", torch_fn=F.avg_pool2d, ref=ref.avg_pool2d,
           low_precision=True, terms=conditioning.MULTILINEAR,
           order=2,
           ref_vjp=ref.avg_pool2d_vjp, inputs=hi.Pooling("avg"), docs=_DOCS.format("AvgPool2d"),
           module=nn.AvgPool2d),
    OpSpec(name="conv1d", family="layer", torch_fn=F.conv1d, ref=ref.conv1d,
           low_precision=True, terms=conditioning.MULTILINEAR,
           order=2,
           ref_vjp=ref.conv1d_vjp, inputs=hi.Convolution(1), docs=_DOCS.format("Conv1d"),
           module=nn.Conv1d, module_factory=_conv_module(nn.Conv1d),
           module_params=("weight", "bias"), tol=_CONV_FLOAT32_GRADIENT),
    OpSpec(name="conv2d", family="layer", torch_fn=F.conv2d, ref=ref.conv2d,
           low_precision=True, terms=conditioning.MULTILINEAR,
           order=2,
           ref_vjp=ref.conv2d_vjp, inputs=hi.Convolution(2), docs=_DOCS.format("Conv2d"),
           module=nn.Conv2d, module_factory=_conv_module(nn.Conv2d),
           module_params=("weight", "bias"), tol=_CONV_FLOAT32_GRADIENT),
    OpSpec(name="max_pool2d", family="layer", torch_fn=F.max_pool2d, ref=ref.max_pool2d,
           low_precision=True,
           order=2,
           ref_vjp=ref.max_pool2d_vjp, inputs=hi.Pooling("max"), docs=_DOCS.format("MaxPool2d"),
           module=nn.MaxPool2d),
)
