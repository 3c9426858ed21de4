"""Convolution and pooling records, alphabetical.

Each has its ``torch.nn`` module form (checked against the functional form in
tests/test_ops.py): the pooling modules take the functional options as they are; the
convolutions are built from the weight's shape, with the case's parameters in place of their
own (``ModuleForm.params``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import nn

from references import conv as ref
from suite import conditioning
from suite.inputs import layers as hi
from suite.specs import Case, ModuleForm, OpSpec

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


RECORDS = (
    OpSpec(name="avg_pool2d", family="layer", torch_fn=F.avg_pool2d, ref=ref.avg_pool2d,
           terms=conditioning.MULTILINEAR,
           ref_vjp=ref.avg_pool2d_vjp, inputs=hi.Pooling("avg"), docs=_DOCS.format("AvgPool2d"),
           module=ModuleForm(nn.AvgPool2d)),
    OpSpec(name="conv1d", family="layer", torch_fn=F.conv1d, ref=ref.conv1d,
           terms=conditioning.MULTILINEAR,
           ref_vjp=ref.conv1d_vjp, inputs=hi.Convolution(1), docs=_DOCS.format("Conv1d"),
           module=ModuleForm(nn.Conv1d, factory=_conv_module(nn.Conv1d),
                             params=("weight", "bias"))),
    OpSpec(name="conv2d", family="layer", torch_fn=F.conv2d, ref=ref.conv2d,
           terms=conditioning.MULTILINEAR,
           ref_vjp=ref.conv2d_vjp, inputs=hi.Convolution(2), docs=_DOCS.format("Conv2d"),
           module=ModuleForm(nn.Conv2d, factory=_conv_module(nn.Conv2d),
                             params=("weight", "bias"))),
    OpSpec(name="max_pool2d", family="layer", torch_fn=F.max_pool2d, ref=ref.max_pool2d,
           ref_vjp=ref.max_pool2d_vjp, inputs=hi.Pooling("max"), docs=_DOCS.format("MaxPool2d"),
           module=ModuleForm(nn.MaxPool2d)),
)
