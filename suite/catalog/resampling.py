"""Padding, shuffle and interpolation records, alphabetical.

Each has its ``torch.nn`` module form (checked against the functional form in
tests/test_ops.py): the padding modules are built from the functional ``pad`` tuple (and
``value``), the shuffles and nn.Upsample take the functional options as they are. These ops
move or mix values with fixed weights: linear, so their second derivatives vanish (``order``
2 checks that), and on the half-precision ladder: the shuffles are exact permutations, padding's
VJP sums g over an element's copies (``terms``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from references import interpolation as ref_interpolation
from references import padding as ref_padding
from references import shuffle as ref_shuffle
from suite import conditioning
from suite.inputs import spatial
from suite.missing import functional, stand_in
from suite.specs import Case, ModuleForm, OpSpec, SumTerms

_DOCS = "https://pytorch.org/docs/stable/generated/torch.nn.{}.html"

# (record name prefix, torch.nn class prefix, input maker mode)
_PAD_FAMILIES = (("constant_pad", "ConstantPad", "constant"), ("zero_pad", "ZeroPad", "zero"),
                 ("reflection_pad", "ReflectionPad", "reflect"),
                 ("replication_pad", "ReplicationPad", "replicate"),
                 ("circular_pad", "CircularPad", "circular"))


def _pad_module(cls: type[nn.Module]) -> Callable[[Case], nn.Module]:
    """Builds nn.<Mode>Pad{d}d from the functional ``pad`` tuple (the modules take the same
    (left, right, top, ...) order) and, for constant padding, ``value``."""

    def build(case: Case) -> nn.Module:
        value = case.options.get("value")
        return cls(case.options["pad"]) if value is None else cls(case.options["pad"], value)

    return build


def _pad(prefix: str, cls_prefix: str, mode: str, d: int) -> OpSpec:
    name = f"{prefix}{d}d"
    # nn.CircularPad* and nn.ZeroPad1d/3d are newer than torch 2.0: no module form there
    cls = getattr(nn, f"{cls_prefix}{d}d", None)
    return OpSpec(name=name, family="layer", torch_fn=F.pad, ref=getattr(ref_padding, name),
                  ref_vjp=getattr(ref_padding, f"{name}_vjp"),
                  # copies; the VJP adds g over an element's copies (replicated edges, mirror
                  # images, periodic copies): exact but for those sums (conditioning.Copies)
                  terms=conditioning.COPIES,
                  inputs=spatial.Padding(mode, d, max_side=8 if d < 3 else 5),
                  docs=_DOCS.format(f"{cls_prefix}{d}d"),
                  module=None if cls is None else ModuleForm(cls, factory=_pad_module(cls)))


def _has_lanczos() -> bool:
    """Whether F.interpolate has mode "lanczos" (new in torch 2.13's docs; an older torch
    raises that the mode is unknown)."""
    try:
        F.interpolate(torch.zeros(1, 1, 2, 2), size=(1, 1), mode="lanczos", antialias=True)
    except (NotImplementedError, ValueError, RuntimeError):
        return False
    return True


_WITHOUT_LANCZOS = stand_in("mode 'lanczos' in F.interpolate", "interpolate (no lanczos)", "2.13")


def _terms(mode: str, antialias: bool) -> SumTerms:
    """The record's sum |terms|: the antialiased filters' moved weights, the linear and cubic
    weights' moved by their rounded coordinates, the sums alone for nearest and area (whose
    weights are 1, or 1 / window: no coordinate moves them)."""
    if antialias:
        return conditioning.ANTIALIASED_RESAMPLING
    if mode in ("linear", "bilinear", "trilinear", "bicubic"):
        return conditioning.COORDINATE_ROUNDING
    return conditioning.MULTILINEAR


def _interpolation(name: str, mode: str, dims: tuple[int, ...], **inputs: Any) -> OpSpec:
    """A record of F.interpolate in ``mode``; nn.Upsample (which has no antialias) is its
    module form except for the antialiased records."""
    antialias = inputs.get("antialias", False)
    torch_fn = F.interpolate if mode != "lanczos" or _has_lanczos() else _WITHOUT_LANCZOS
    return OpSpec(name=name, family="layer", torch_fn=torch_fn,
                  ref=getattr(ref_interpolation, name),
                  ref_vjp=getattr(ref_interpolation, f"{name}_vjp"),
                  # each output is a weighted sum of a few inputs and each input gradient a sum
                  # over the outputs reading it: sums of signed terms (conditioning); the
                  # filters' weights come from rounded source coordinates, which move them
                  # (antialiased filters; linear and cubic weights of coordinates up to the
                  # side's length: conditioning.CoordinateRounding)
                  terms=_terms(mode, antialias),
                  inputs=spatial.Resize(mode, dims, **inputs),
                  docs="https://pytorch.org/docs/stable/generated/"
                       "torch.nn.functional.interpolate.html",
                  module=None if antialias else ModuleForm(nn.Upsample))


# Where torch departs from its documented semantics (KNOWN_DIFFERENCES.md), the input makers
# leave the case out and tests/test_interpolation.py keeps a strict xfail: a scale factor
# ignored on a side kept (or doubled, nearest; on every side kept, bicubic's backward) and
# antialiasing to width 1.
_KEPT = {"avoid_kept_side": True}
_ANTIALIAS = {"antialias": True, "avoid_kept_side": True, "avoid_single_width": True}

RECORDS = (
    *(_pad(prefix, cls, mode, d) for prefix, cls, mode in _PAD_FAMILIES for d in (1, 2, 3)),
    _interpolation("interpolate_area", "area", (1, 2, 3)),
    _interpolation("interpolate_bicubic", "bicubic", (2,), align_corners=True,
                   avoid_all_kept=True),
    _interpolation("interpolate_bicubic_antialias", "bicubic", (2,), align_corners=True,
                   **_ANTIALIAS),
    _interpolation("interpolate_bilinear", "bilinear", (2,), align_corners=True, **_KEPT),
    _interpolation("interpolate_bilinear_antialias", "bilinear", (2,), align_corners=True,
                   **_ANTIALIAS),
    _interpolation("interpolate_lanczos", "lanczos", (2,), **_ANTIALIAS),
    _interpolation("interpolate_linear", "linear", (1,), align_corners=True, **_KEPT),
    _interpolation("interpolate_nearest", "nearest", (1, 2, 3), avoid_doubled_side=True,
                   **_KEPT),
    _interpolation("interpolate_nearest_exact", "nearest-exact", (1, 2, 3)),
    _interpolation("interpolate_trilinear", "trilinear", (3,), align_corners=True, max_side=4,
                   **_KEPT),
    OpSpec(name="channel_shuffle", family="layer", torch_fn=functional("channel_shuffle"),
           ref=ref_shuffle.channel_shuffle, ref_vjp=ref_shuffle.channel_shuffle_vjp,
           terms=conditioning.COPIES,  # a permutation: exact
           inputs=spatial.Shuffling("channel"),
           docs=_DOCS.format("ChannelShuffle"),
           module=ModuleForm.optional(getattr(nn, "ChannelShuffle", None))),
    OpSpec(name="pixel_shuffle", family="layer", torch_fn=F.pixel_shuffle,
           ref=ref_shuffle.pixel_shuffle, ref_vjp=ref_shuffle.pixel_shuffle_vjp,
           terms=conditioning.COPIES,  # a permutation: exact
           inputs=spatial.Shuffling("pixel"),
           docs=_DOCS.format("PixelShuffle"), module=ModuleForm(nn.PixelShuffle)),
    OpSpec(name="pixel_unshuffle", family="layer", torch_fn=F.pixel_unshuffle,
           ref=ref_shuffle.pixel_unshuffle, ref_vjp=ref_shuffle.pixel_unshuffle_vjp,
           terms=conditioning.COPIES,  # a permutation: exact
           inputs=spatial.Shuffling("unpixel"),
           docs=_DOCS.format("PixelUnshuffle"), module=ModuleForm(nn.PixelUnshuffle)),
)
