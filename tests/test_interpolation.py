"""Interpolation behaviour beyond the generic record checks: the deprecated upsampling modules,
and the places where torch 2.13 departs from F.interpolate's documented semantics
(KNOWN_DIFFERENCES.md), each a strict xfail so that a fix in torch shows up.

F.interpolate's docs: with ``recompute_scale_factor`` False or None, "size or scale_factor will
be used directly for interpolation". torch's CPU kernels instead treat a dimension whose output
side equals its input side (or, for nearest, twice it) as a copy (or a halving) in some places
and not in others, so a forward and its backward can disagree. The input makers leave those
draws out (``suite.inputs.spatial.Resize``); the tests here keep them in view.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from references import interpolation as ref
from suite import catalog, compare, versions
from suite import gradcheck as gc
from suite import tolerances as tols
from suite.devices import dtype_name
from suite.specs import Array, Case


def _close(actual: torch.Tensor, expected: Array, kind: tols.Kind, what: str) -> None:
    __tracebackhide__ = True
    compare.assert_close(compare.to_numpy(actual), expected,
                         tol=tols.resolve(actual.dtype, kind), what=what,
                         context=f"{dtype_name(actual.dtype)}, shape={tuple(expected.shape)}")


def _input(dims: int, side: int = 5) -> Array:
    """(1, 2, 3, .., 3, side): the last dimension is the one resampled by the scale factor."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((1, 2, *(3,) * (dims - 1), side))


def _scale(dims: int, last: float) -> tuple[float, ...]:
    """Scale factors: 1.5 on every dimension but the last."""
    return (*(1.5,) * (dims - 1), last)


def _forward_and_gradient(x: Array, **options: object) -> tuple[torch.Tensor, torch.Tensor,
                                                                 Array]:
    t = torch.tensor(x, requires_grad=True)
    out = F.interpolate(t, **options)  # type: ignore[arg-type]
    g = np.random.default_rng(1).standard_normal(tuple(out.shape))
    out.backward(torch.tensor(g))
    assert t.grad is not None
    return out, t.grad, g


# --- a scale factor that keeps (or doubles) a side -----------------------------------------

KEPT, DOUBLED = 1.1, 2.1  # on a side of 5: floor(5.5) = 5 and floor(10.5) = 10


@pytest.mark.xfail(strict=True, reason="torch 2.13.0: 1-d and 3-d nearest interpolation with a "
                                       "scale factor that keeps or doubles a side read the given "
                                       "scale forward but the size ratio backward: the gradient "
                                       "is not the derivative of the forward "
                                       "(KNOWN_DIFFERENCES.md)")
@pytest.mark.parametrize("factor", [KEPT, DOUBLED], ids=["kept", "doubled"])
@pytest.mark.parametrize("dims", [1, 3])
def test_nearest_gradient_is_the_derivative_of_its_forward(dims: int, factor: float) -> None:
    x = _input(dims)
    options = {"scale_factor": _scale(dims, factor), "mode": "nearest"}
    out, grad, g = _forward_and_gradient(x, **options)
    _close(out, ref.interpolate_nearest(x, **options), tols.Kind.FORWARD,  # type: ignore[arg-type]
           f"{dims}-d nearest forward, scale factor {factor} on a side of 5")
    _close(grad, ref.interpolate_nearest_vjp(g, x, **options)["input"],  # type: ignore[arg-type]
           tols.Kind.GRADIENT, f"{dims}-d nearest gradient, scale factor {factor}")


@pytest.mark.xfail(strict=True, reason="torch 2.13.0: 2-d nearest interpolation ignores a given "
                                       "scale factor on a side it keeps or doubles (copies or "
                                       "halves the index) (KNOWN_DIFFERENCES.md)")
@pytest.mark.parametrize("factor", [KEPT, DOUBLED], ids=["kept", "doubled"])
def test_nearest_2d_uses_the_given_scale_factor(factor: float) -> None:
    x = _input(2)
    options = {"scale_factor": _scale(2, factor), "mode": "nearest"}
    out = F.interpolate(torch.tensor(x), **options)  # type: ignore[arg-type]
    _close(out, ref.interpolate_nearest(x, **options), tols.Kind.FORWARD,  # type: ignore[arg-type]
           f"2-d nearest forward, scale factor {factor} on a side of 5")


@pytest.mark.xfail(strict=True, reason="torch 2.13.0: linear, bilinear and trilinear "
                                       "interpolation copy a side a given scale factor keeps, "
                                       "ignoring the factor (KNOWN_DIFFERENCES.md)")
@pytest.mark.parametrize(("mode", "dims"), [("linear", 1), ("bilinear", 2), ("trilinear", 3)])
def test_linear_modes_use_the_given_scale_factor_on_a_kept_side(mode: str, dims: int) -> None:
    x = _input(dims)
    options = {"scale_factor": _scale(dims, KEPT), "mode": mode, "align_corners": False}
    out = F.interpolate(torch.tensor(x), **options)  # type: ignore[arg-type]
    expected = getattr(ref, f"interpolate_{mode}")(x, **options)
    _close(out, expected, tols.Kind.FORWARD, f"{mode} forward, scale factor {KEPT}")


@pytest.mark.xfail(strict=True, reason="torch 2.13.0: bicubic interpolation with scale factors "
                                       "that keep every side uses them forward but copies "
                                       "backward: the gradient is not the derivative of the "
                                       "forward (KNOWN_DIFFERENCES.md)")
def test_bicubic_gradient_is_the_derivative_when_every_side_is_kept() -> None:
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 5))  # floor(4.8) = 4, floor(5.5) = 5
    options = {"scale_factor": (1.2, KEPT), "mode": "bicubic", "align_corners": False}
    out, grad, g = _forward_and_gradient(x, **options)
    _close(out, ref.interpolate_bicubic(x, **options), tols.Kind.FORWARD,  # type: ignore[arg-type]
           "bicubic forward, scale factors (1.2, 1.1) on sides (4, 5)")
    _close(grad, ref.interpolate_bicubic_vjp(g, x, **options)["input"],  # type: ignore[arg-type]
           tols.Kind.GRADIENT, "bicubic gradient, scale factors (1.2, 1.1) on sides (4, 5)")


def test_bicubic_uses_the_given_scale_factor_on_one_kept_side() -> None:
    """With another side resized, the same kept side is interpolated with the given factor in
    both directions (the xfail above needs every side kept)."""
    x = _input(2)
    options = {"scale_factor": (1.5, KEPT), "mode": "bicubic", "align_corners": False}
    out, grad, g = _forward_and_gradient(x, **options)
    _close(out, ref.interpolate_bicubic(x, **options), tols.Kind.FORWARD,  # type: ignore[arg-type]
           "bicubic forward, scale factors (1.5, 1.1)")
    _close(grad, ref.interpolate_bicubic_vjp(g, x, **options)["input"],  # type: ignore[arg-type]
           tols.Kind.GRADIENT, "bicubic gradient, scale factors (1.5, 1.1)")


ANTIALIASED = [("bilinear", "interpolate_bilinear_antialias"),
               ("bicubic", "interpolate_bicubic_antialias"), ("lanczos", "interpolate_lanczos")]


def _skip_without(mode: str) -> None:
    spec = catalog.by_name(dict(ANTIALIASED)[mode])
    if spec.torch_fn is not F.interpolate:  # type: ignore[union-attr]
        pytest.skip(f"torch {torch.__version__} has no mode {mode!r}")


@pytest.mark.xfail(strict=True, reason="torch 2.13.0: antialiased interpolation skips a side a "
                                       "given scale factor keeps in the forward but not in the "
                                       "backward: the gradient is not the derivative of the "
                                       "forward (KNOWN_DIFFERENCES.md)")
@pytest.mark.parametrize(("mode", "name"), ANTIALIASED, ids=[m for m, _ in ANTIALIASED])
def test_antialias_forward_uses_the_given_scale_factor_on_a_kept_side(mode: str,
                                                                      name: str) -> None:
    _skip_without(mode)
    x = _input(2)
    options = {"scale_factor": _scale(2, KEPT), "mode": mode, "antialias": True}
    out = F.interpolate(torch.tensor(x), **options)  # type: ignore[arg-type]
    _close(out, getattr(ref, name)(x, **options), tols.Kind.FORWARD,
           f"antialiased {mode} forward, scale factor {KEPT}")


@pytest.mark.parametrize(("mode", "name"), ANTIALIASED, ids=[m for m, _ in ANTIALIASED])
def test_antialias_backward_uses_the_given_scale_factor_on_a_kept_side(mode: str,
                                                                       name: str) -> None:
    """The backward of the case above follows the documented semantics (the forward does not:
    the xfail above), so the two disagree."""
    _skip_without(mode)
    x = _input(2)
    options = {"scale_factor": _scale(2, KEPT), "mode": mode, "antialias": True}
    _, grad, g = _forward_and_gradient(x, **options)
    _close(grad, getattr(ref, f"{name}_vjp")(g, x, **options)["input"], tols.Kind.GRADIENT,
           f"antialiased {mode} gradient, scale factor {KEPT}")


@pytest.mark.xfail(strict=True, reason="torch 2.13.0: antialiased interpolation to an output of "
                                       "width 1 whose height changes repeats the first row in "
                                       "every row of the forward (KNOWN_DIFFERENCES.md)")
@pytest.mark.parametrize(("mode", "name"), ANTIALIASED, ids=[m for m, _ in ANTIALIASED])
@pytest.mark.parametrize("size", [(4, 1), (9, 1)], ids=["down", "up"])
def test_antialias_to_width_one(mode: str, name: str, size: tuple[int, int]) -> None:
    _skip_without(mode)
    x = np.arange(18.0).reshape(1, 1, 6, 3)
    out = F.interpolate(torch.tensor(x), size=size, mode=mode, antialias=True)
    _close(out, getattr(ref, name)(x, size=size), tols.Kind.FORWARD,
           f"antialiased {mode} from (6, 3) to {size}")


# --- the deprecated upsampling modules -----------------------------------------------------


@pytest.mark.filterwarnings("ignore:nn.Upsampling.* is deprecated:UserWarning")
@pytest.mark.parametrize(("module", "name"), [
    (torch.nn.UpsamplingNearest2d, "interpolate_nearest"),
    (torch.nn.UpsamplingBilinear2d, "interpolate_bilinear")], ids=["nearest", "bilinear"])
@settings(max_examples=20)  # two thin wrappers: the records test the arithmetic itself
@given(data=st.data())
def test_deprecated_upsampling_modules(module: type[torch.nn.Module], name: str,
                                       dtype: torch.dtype, device: str,
                                       data: st.DataObject) -> None:
    """nn.UpsamplingNearest2d is F.interpolate(mode="nearest") and nn.UpsamplingBilinear2d is
    mode="bilinear" with align_corners=True (their docs); both take a size or a scale factor.
    Checked against the references on the 2-d cases of those records."""
    spec = catalog.by_name(name)
    # 2-d cases whose scale factor is used as given: the modules have no recompute option
    case = data.draw(spec.cases().filter(  # type: ignore[union-attr]
        lambda c: c.arrays["input"].ndim == 4 and not c.options.get("recompute_scale_factor")),
        label="case")
    options = {k: v for k, v in case.options.items() if k in ("size", "scale_factor")}
    reference = {**options, "align_corners": True} if module is torch.nn.UpsamplingBilinear2d \
        else options
    case = Case(case.arrays, case.differentiable, reference, case.seed).rounded_to(dtype)
    x = torch.tensor(case.arrays["input"], dtype=dtype, device=device, requires_grad=True)
    out = module(**options)(x)
    g = gc.cotangent(case, tuple(out.shape))
    out.backward(torch.tensor(g, dtype=dtype, device=device))
    assert x.grad is not None
    compare.assert_close(compare.to_numpy(out), spec.ref(case.arrays["input"], **reference),
                         tol=tols.resolve(dtype, tols.Kind.FORWARD),
                         what=f"{module.__name__}: forward", context=dtype_name(dtype),
                         case=case.describe())
    compare.assert_close(compare.to_numpy(x.grad),
                         spec.ref_vjp(g, case.arrays["input"], **reference)["input"],
                         tol=tols.resolve(dtype, tols.Kind.GRADIENT),
                         what=f"{module.__name__}: VJP", context=dtype_name(dtype),
                         case=case.describe())


_LONG_SIDE = [("interpolate_linear", "linear", 1), ("interpolate_bilinear", "bilinear", 2),
              ("interpolate_trilinear", "trilinear", 3), ("interpolate_bicubic", "bicubic", 2)]


def _long_side_case(mode: str, dims: int, side: int) -> Case:
    """One channel, every side 2 but the last, ``side``, resized to 2 side - 1: output j reads
    source coordinate (j + 0.5) side / (2 side - 1) - 0.5, which passes within a float ulp
    below an integer past 2^13."""
    rng = np.random.default_rng(0)
    shape = (1, 1, *(2,) * (dims - 1), side)
    return Case({"input": rng.standard_normal(shape)}, ("input",),
                {"mode": mode, "size": (*(2,) * (dims - 1), 2 * side - 1)}, 0)


# nearest and nearest-exact: the forward only. Their backward computes its index in float32
# whatever the dtype (KNOWN_DIFFERENCES.md, "Nearest's source index is computed in float32": a
# rounding convention the input makers draw around, not checked), so on these sides it parts
# from the float64 reference at every length.
_NEAREST = [("interpolate_nearest", "nearest", 1),
            ("interpolate_nearest_exact", "nearest-exact", 1)]
_LONG_SIDE_CHECKS = [
    *(pytest.param(name, mode, dims, check, id=f"{mode}-{check}")
      for name, mode, dims in _LONG_SIDE for check in ("forward", "gradient")),
    *(pytest.param(name, mode, dims, "forward", id=f"{mode}-forward")
      for name, mode, dims in _NEAREST)]


@pytest.mark.xfail(versions.INTERPOLATE_SOURCE_INDEX_FLOORED_IN_FLOAT, strict=True,
                   raises=AssertionError,
                   reason="torch 2.2.2-2.15.0 bug (KNOWN_DIFFERENCES.md): linear, bilinear, "
                          "trilinear, bicubic, nearest and nearest-exact floor a float64 source "
                          "index through float, so past 2^13 positions a neighbour's weight is "
                          "lost (1e-3) or the next input is read")
@pytest.mark.parametrize(("name", "mode", "dims", "check"), _LONG_SIDE_CHECKS)
def test_a_long_side_is_resampled_from_the_float64_source_index(name: str, mode: str,
                                                                 dims: int, check: str) -> None:
    spec = catalog.by_name(name)
    case = _long_side_case(mode, dims, 20000)
    run = gc.check_forward if check == "forward" else gc.check_gradient
    run(spec, case, torch.float64, "cpu")  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "mode", "dims", "check"), _LONG_SIDE_CHECKS)
def test_a_side_of_4000_is_resampled_right(name: str, mode: str, dims: int, check: str) -> None:
    """Below 2^13 source positions (4000 -> 7999) float holds every coordinate's integer part:
    the same check passes, so the long-side failure is the side's length, not the check."""
    spec = catalog.by_name(name)
    case = _long_side_case(mode, dims, 4000)
    run = gc.check_forward if check == "forward" else gc.check_gradient
    run(spec, case, torch.float64, "cpu")  # type: ignore[arg-type]


# The float32 lanczos draw of seed 6106 (torch 2.13.0 and 2.14.1 alike), rounded to float32:
# 1.36e-5 off at an output of 0.82, which the kernel's float32 source coordinates explain.
_LANCZOS_FOUND = Case({"input": np.array([
    -2.222350597381592, -6.04364538192749, -8.086967468261719, -1.9727756977081299,
    1.7522045373916626, 0.15180416405200958, 1.5133564472198486, -7.629360198974609,
    6.3977556228637695, -2.4052469730377197, 5.319751739501953, -1.4208818674087524,
    -1.5854889154434204, -3.567014217376709, 11.516990661621094, 5.05311918258667,
    6.868574619293213, -6.62612247467041, 1.3511326313018799, -0.8683587908744812,
    4.982879161834717]).reshape(1, 1, 7, 3)}, ("input",),
    {"mode": "lanczos", "scale_factor": (1.875, 2.0), "antialias": True}, seed=420)


def _coordinates_off(input: torch.Tensor, scale_factor: tuple[float, float],
                     **options: object) -> torch.Tensor:
    """Planted: source coordinates 1e-4 off (the scale factors read 1e-4 too large; the output
    size is the same)."""
    return F.interpolate(input, scale_factor=tuple(s * (1 + 1e-4) for s in scale_factor),
                         **options)  # type: ignore[arg-type]


def _output_off(input: torch.Tensor, **options: object) -> torch.Tensor:
    """Planted: every output 0.1 % too large."""
    return F.interpolate(input, **options) * 1.001  # type: ignore[arg-type]


@pytest.mark.parametrize("planted", [_coordinates_off, _output_off],
                         ids=["coordinates-1e-4", "output-0.1%"])
def test_antialiased_allowance_is_the_kernels_float32_coordinates(planted: object) -> None:
    """suite/conditioning.py, ANTIALIASED_RESAMPLING: torch's float32 lanczos passes on the case
    it failed by 1.36e-5 (forward and gradient), and a kernel whose coordinates are 1e-4 off,
    or whose outputs are 0.1 % off, fails."""
    spec = catalog.by_name("interpolate_lanczos")
    if spec.torch_fn is not F.interpolate:
        pytest.skip(f"torch {torch.__version__} has no mode 'lanczos' in F.interpolate")
    gc.check_forward(spec, _LANCZOS_FOUND, torch.float32, "cpu")
    gc.check_gradient(spec, _LANCZOS_FOUND, torch.float32, "cpu")
    bad = dataclasses.replace(spec, torch_fn=planted)
    with pytest.raises(AssertionError, match="forward is not close"):
        gc.check_forward(bad, _LANCZOS_FOUND, torch.float32, "cpu")
