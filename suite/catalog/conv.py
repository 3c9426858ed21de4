"""Convolution, sliding-window pooling, fold and unfold records, alphabetical (adaptive, LP,
fractional pooling and unpooling are in ``suite.catalog.pooling``).

Each has its ``torch.nn`` module form (checked against the functional form in
tests/test_ops.py): the pooling, fold and unfold modules take the functional options as they
are; the convolutions are built from the weight's shape, with the case's parameters in place of
their own (``ModuleForm.params``).

Max pooling's exact points are ties (:func:`ties`): an input made of a few repeated values ties
inside most windows, and torch's CPU kernels give each window's gradient to its first maximum
in row-major window order (they keep a value only if it is greater, ``val > maxval``); the
references do the same (tests/test_pooling.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from references import conv as ref
from suite import conditioning
from suite.inputs import layers as hi
from suite.inputs import spatial
from suite.specs import Case, ModuleForm, OpSpec

_DOCS = "https://pytorch.org/docs/stable/generated/torch.nn.{}.html"


def ties(options: Mapping[str, Any]) -> tuple[float, ...]:
    """The values a max pooling's tie test builds its input from (any options)."""
    return (-1.0, 0.0, 1.0)


def unbatched_channels_last_view(case: Case, dtype: Any = None) -> str | None:
    """torch 2.13.0 and 2.14.1: max_pool3d (and lp_pool3d with p = +-inf, which calls it)
    raises "Unsupported memory format" for an unbatched (C, D, H, W) input whose strides read as
    2-d channels_last, as the hard tier's transposed view of a 4-d input with sides of 1 can
    (KNOWN_DIFFERENCES.md, "max_pool3d refuses an unbatched input with 2-d channels-last
    strides"; a strict xfail in tests/test_pooling.py)."""
    x = case.arrays["input"]
    if case.label != "layout: transposed input" or x.ndim != 4:
        return None
    view = torch.empty(tuple(reversed(x.shape))).permute(3, 2, 1, 0)  # the hard tier's view
    if reads_as_unbatched_channels_last(view):
        return "max_pool3d of an unbatched input with channels_last strides raises"
    return None


def reads_as_unbatched_channels_last(view: torch.Tensor) -> bool:
    """A 4-d (unbatched 3-d) tensor whose strides torch reads as 2-d channels_last."""
    return view.ndim == 4 and view.is_contiguous(memory_format=torch.channels_last) \
        and not view.is_contiguous()


def _conv_module(cls: type[nn.Module]) -> Callable[[Case], nn.Module]:
    """Builds ``cls`` (nn.Conv1d/2d/3d) from the weight's shape (out, in / groups, *kernel) and
    the functional options (stride, padding, dilation, groups: same names)."""

    def build(case: Case) -> nn.Module:
        n_out, per_group, *kernel = case.arrays["weight"].shape
        groups = case.options.get("groups", 1)
        return cls(per_group * groups, n_out, tuple(kernel), bias="bias" in case.arrays,
                   **case.options)

    return build


def _conv_transpose_module(cls: type[nn.Module]) -> Callable[[Case], nn.Module]:
    """Builds ``cls`` (nn.ConvTranspose1d/2d/3d) from the weight's shape (in, out / groups,
    *kernel) and the functional options (stride, padding, output_padding, groups, dilation:
    same names)."""

    def build(case: Case) -> nn.Module:
        n_in, per_group, *kernel = case.arrays["weight"].shape
        groups = case.options.get("groups", 1)
        return cls(n_in, per_group * groups, tuple(kernel), bias="bias" in case.arrays,
                   **case.options)

    return build


RECORDS = (
    OpSpec(name="avg_pool1d", family="layer", torch_fn=F.avg_pool1d, ref=ref.avg_pool1d,
           terms=conditioning.MULTILINEAR,
           ref_vjp=ref.avg_pool1d_vjp, inputs=hi.Pooling("avg", dims=1),
           docs=_DOCS.format("AvgPool1d"), module=ModuleForm(nn.AvgPool1d)),
    OpSpec(name="avg_pool2d", family="layer", torch_fn=F.avg_pool2d, ref=ref.avg_pool2d,
           terms=conditioning.MULTILINEAR,
           ref_vjp=ref.avg_pool2d_vjp, inputs=hi.Pooling("avg"), docs=_DOCS.format("AvgPool2d"),
           module=ModuleForm(nn.AvgPool2d)),
    OpSpec(name="avg_pool3d", family="layer", torch_fn=F.avg_pool3d, ref=ref.avg_pool3d,
           terms=conditioning.MULTILINEAR,
           ref_vjp=ref.avg_pool3d_vjp, inputs=hi.Pooling("avg", dims=3, max_side=6),
           docs=_DOCS.format("AvgPool3d"), module=ModuleForm(nn.AvgPool3d)),
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
    OpSpec(name="conv3d", family="layer", torch_fn=F.conv3d, ref=ref.conv3d,
           terms=conditioning.MULTILINEAR,
           ref_vjp=ref.conv3d_vjp, inputs=hi.Convolution(3, max_side=6),
           docs=_DOCS.format("Conv3d"),
           module=ModuleForm(nn.Conv3d, factory=_conv_module(nn.Conv3d),
                             params=("weight", "bias"))),
    # The transposed convolutions: one record per rank, alike but for the sizes drawn.
    *(OpSpec(name=f"conv_transpose{d}d", family="layer",
             torch_fn=getattr(F, f"conv_transpose{d}d"),
             ref=getattr(ref, f"conv_transpose{d}d"),
             ref_vjp=getattr(ref, f"conv_transpose{d}d_vjp"),
             terms=conditioning.MULTILINEAR,
             inputs=spatial.TransposedConvolution(d, max_side=max_side),
             docs=_DOCS.format(f"ConvTranspose{d}d"),
             module=ModuleForm(getattr(nn, f"ConvTranspose{d}d"),
                               factory=_conv_transpose_module(getattr(nn, f"ConvTranspose{d}d")),
                               params=("weight", "bias")))
      for d, max_side in ((1, 12), (2, 8), (3, 4))),
    OpSpec(name="fold", family="layer", torch_fn=F.fold, ref=ref.fold, ref_vjp=ref.fold_vjp,
           # sums of overlapping blocks' copies; its VJP copies (conditioning.Copies)
           terms=conditioning.COPIES,
           inputs=spatial.Blocks("fold"), docs=_DOCS.format("Fold"), module=ModuleForm(nn.Fold)),
    OpSpec(name="max_pool1d", family="layer", torch_fn=F.max_pool1d, ref=ref.max_pool1d,
           exact_points=ties,
           ref_vjp=ref.max_pool1d_vjp, inputs=hi.Pooling("max", dims=1),
           docs=_DOCS.format("MaxPool1d"), module=ModuleForm(nn.MaxPool1d)),
    OpSpec(name="max_pool2d", family="layer", torch_fn=F.max_pool2d, ref=ref.max_pool2d,
           exact_points=ties,
           ref_vjp=ref.max_pool2d_vjp, inputs=hi.Pooling("max"), docs=_DOCS.format("MaxPool2d"),
           module=ModuleForm(nn.MaxPool2d)),
    OpSpec(name="max_pool3d", family="layer", torch_fn=F.max_pool3d, ref=ref.max_pool3d,
           exact_points=ties,
           ref_vjp=ref.max_pool3d_vjp, inputs=hi.Pooling("max", dims=3, max_side=6),
           known_defects=unbatched_channels_last_view,
           docs=_DOCS.format("MaxPool3d"), module=ModuleForm(nn.MaxPool3d)),
    OpSpec(name="unfold", family="layer", torch_fn=F.unfold, ref=ref.unfold,
           # copies; its VJP sums overlapping blocks' copies (conditioning.Copies)
           ref_vjp=ref.unfold_vjp, terms=conditioning.COPIES,
           inputs=spatial.Blocks("unfold"), docs=_DOCS.format("Unfold"),
           module=ModuleForm(nn.Unfold)),
)
