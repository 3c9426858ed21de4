"""The hard tier of interpolation on a long side (suite.inputs.spatial.Resize.hard, ``long``).

Source coordinates there reach 10^4, and a correct float32 kernel forms them with a rounding
of ~u |c| each: the weights move by that much (suite.conditioning.CoordinateRounding derives
the bound). The allowance must pass torch there, and must not hide a kernel whose coordinates
are off by a thousandth of a position: a planted one fails, in the style of tests/test_hard.py's
planted bugs.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from hypothesis.errors import HypothesisDeprecationWarning

import gradsuite as gs
from suite import catalog, conditioning, hard, hardcheck, higher, versions

_LINEAR_MODES = [("interpolate_linear", 1), ("interpolate_bilinear", 2),
                 ("interpolate_trilinear", 3), ("interpolate_bicubic", 2)]


def _record(name: str) -> gs.OpSpec:
    return next(s for s in catalog.OPS if s.name == name)


def _long_case(spec: gs.OpSpec, dtype: torch.dtype, dims: int, up: bool = True) -> gs.Case:
    """The maker's long side for ``dtype`` (``Resize._long_outputs``): N = C = 1, the other
    sides 2, the last resized up (first output side) or down (second), given as a size."""
    n, outputs = spec.inputs._long_outputs(dtype)  # type: ignore[attr-defined]
    out = outputs[0] if up or len(outputs) == 1 else outputs[1]
    x = np.random.default_rng(0).standard_normal((1, 1, *(2,) * (dims - 1), n))
    mode = spec.inputs.mode  # type: ignore[attr-defined]
    return gs.Case({"input": x}, ("input",), {"mode": mode, "size": (*(3,) * (dims - 1), out)},
                   0, f"long: {n} -> {out}")


def _check_hard(spec: gs.OpSpec, case: gs.Case, dtype: torch.dtype) -> None:
    with warnings.catch_warnings():  # hardcheck's assume() outside a Hypothesis test
        warnings.simplefilter("ignore", HypothesisDeprecationWarning)
        hardcheck.check_hard(spec, case, dtype, "cpu")


def _coordinate_off(input: torch.Tensor, size: tuple[int, ...], mode: str = "linear",
                    align_corners: bool | None = None, **_: object) -> torch.Tensor:
    """Planted: linear interpolation (align_corners=False) whose source coordinate reads 1e-3
    of a position too far, c = max((j + 0.5) n / o - 0.5, 0) + 1e-3, the weights otherwise
    exact (formed in float64, then rounded to the input's type once)."""
    n, o = input.shape[-1], size[-1]
    j = torch.arange(o, dtype=torch.float64)
    c = ((j + 0.5) * n / o - 0.5).clamp_min(0.0) + 1e-3
    i0 = c.floor().long().clamp(max=n - 1)
    lam = (c - i0).clamp(0.0, 1.0)
    i1 = (i0 + 1).clamp(max=n - 1)
    return (input[..., i0] * (1 - lam).to(input.dtype)
            + input[..., i1] * lam.to(input.dtype))


@pytest.mark.parametrize("float_type", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_a_coordinate_off_by_a_thousandth_fails_the_hard_long_side(
        float_type: torch.dtype) -> None:
    """torch passes the long side; a kernel whose coordinates are 1e-3 of a position off fails
    it, forward (off by 1e-3 |x_1 - x_0|) and VJP, within the derived allowance (float32's
    coordinate rounding at c ~ 10^4 is ~6e-4 of a position at most, but the planted shift is
    the same at c ~ 0, where rounding moves it by ~1e-7)."""
    dtype = float_type
    spec = _record("interpolate_linear")
    case = _long_case(spec, dtype, 1)
    assert case.arrays["input"].shape[-1] == (
        4000 if dtype == torch.float64 and versions.INTERPOLATE_SOURCE_INDEX_FLOORED_IN_FLOAT
        else hard.long_terms())
    _check_hard(spec, case, dtype)  # the correct torch passes
    bad = dataclasses.replace(spec, torch_fn=_coordinate_off)
    with pytest.raises(AssertionError, match="on a hard input"):
        _check_hard(bad, case, dtype)


def test_the_sums_alone_do_not_allow_a_correct_float32_long_side() -> None:
    """Without the coordinates' rounding (conditioning.MULTILINEAR: the sums' M, its length the
    largest array's 19999) torch's correct float32 long side fails: the term is needed, not
    only allowed (torch 2.13.0: 3.6e-3 off at inputs ~1, 42x what the sums allow)."""
    spec = _record("interpolate_linear")
    case = _long_case(spec, torch.float32, 1)
    _check_hard(spec, case, torch.float32)
    with pytest.raises(AssertionError, match="on a hard input"):
        _check_hard(dataclasses.replace(spec, terms=conditioning.MULTILINEAR), case,
                    torch.float32)


@pytest.mark.parametrize("up", [True, False], ids=["up", "down"])
@pytest.mark.parametrize("float_type",
                         [torch.float32, torch.float16, torch.bfloat16, torch.float64],
                         ids=["float32", "float16", "bfloat16", "float64"])
@pytest.mark.parametrize(("name", "dims"), _LINEAR_MODES, ids=[n for n, _ in _LINEAR_MODES])
def test_a_correct_long_side_passes_the_hard_tier(name: str, dims: int,
                                                  float_type: torch.dtype, up: bool) -> None:
    """torch's linear, bilinear, trilinear and bicubic kernels on the maker's long side pass
    within CoordinateRounding's allowance in every dtype CPU has kernels for (float64: the
    4000-position side the recorded float-floor bug leaves right)."""
    spec = _record(name)
    with higher.skip_if_unsupported(float_type, "cpu"):  # torch 2.2.2: no float16 kernel
        _check_hard(spec, _long_case(spec, float_type, dims, up), float_type)


@pytest.mark.parametrize("float_type", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_the_long_side_of_the_float_floored_modes(float_type: torch.dtype) -> None:
    """The maker keeps float64 long sides of the six modes torch floors through float below
    2^13 positions where that bug holds (versions.INTERPOLATE_SOURCE_INDEX_FLOORED_IN_FLOAT),
    and draws 10^4 otherwise (and always for the modes it does not touch)."""
    floored = float_type == torch.float64 and versions.INTERPOLATE_SOURCE_INDEX_FLOORED_IN_FLOAT
    for name in ("interpolate_linear", "interpolate_bilinear", "interpolate_trilinear",
                 "interpolate_bicubic", "interpolate_nearest", "interpolate_nearest_exact"):
        n, _ = _record(name).inputs._long_outputs(float_type)  # type: ignore[attr-defined]
        assert n < 2**13 if floored else n == hard.long_terms(), name
    for name in ("interpolate_area", "interpolate_bilinear_antialias", "interpolate_lanczos"):
        n, _ = _record(name).inputs._long_outputs(float_type)  # type: ignore[attr-defined]
        assert n == hard.long_terms(), name


@pytest.mark.parametrize("name", ["interpolate_bilinear", "interpolate_bicubic_antialias"])
def test_extremes_near_float64s_largest_number_are_checked_or_set_aside(name: str) -> None:
    """Inputs of +-2.2e305 get a finite allowance and pass; at +-2.2e307 (the simd scenario's
    extremes) the bound D |x|, per unit of u, leaves float64's range and the case is set aside
    (hypothesis.assume), where the maps' partial products used to turn inf x 0 into a NaN
    allowance that failed any result (seed 3 of the quick profile, float64 bilinear, 1.1e-16
    off against a NaN allowance)."""
    from hypothesis.errors import UnsatisfiedAssumption

    spec = _record(name)
    options = {"mode": spec.inputs.mode, "size": (3, 9),  # type: ignore[attr-defined]
               **({"antialias": True} if "antialias" in name else {})}
    for extreme in (2.2471e305, 2.2471e307):
        x = np.random.default_rng(0).standard_normal((1, 3, 5, 7))
        x[..., 0], x[..., -1] = extreme, -extreme
        case = gs.Case({"input": x}, ("input",), options, 0)
        if extreme < 1e306:
            _check_hard(spec, case, torch.float64)
        else:
            with pytest.raises(UnsatisfiedAssumption):
                _check_hard(spec, case, torch.float64)
