"""Pooling behaviour the generic record checks cannot express: the tie rule at the exact points
of every max, the indices ``return_indices=True`` returns, and the places where torch 2.13
differs from its documentation or from the derivative (KNOWN_DIFFERENCES.md), each kept as a
strict xfail so that a fix in torch shows up.

Every comparison goes through ``suite.compare`` with the tolerances of ``suite.tolerances``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import event, given, settings
from hypothesis import strategies as st

from references import conv as ref_conv
from references import pooling as ref_pooling
from suite import catalog, compare, versions
from suite import gradcheck as gc
from suite import tolerances as tols
from suite.devices import dtype_name
from suite.specs import Array, Case, OpSpec

WITH_TIES = [s for s in catalog.OPS if s.family == "layer" and s.exact_points is not None]


def _tied(case: Case, points: tuple[float, ...]) -> Case:
    """The case with its ``input`` redrawn from ``points`` only: in windows of more than a
    few elements most values repeat, so most windows have a tied maximum."""
    x = case.arrays["input"]
    rng = np.random.default_rng([case.seed, 7])
    tied = rng.choice(np.asarray(points, dtype=np.float64), size=x.shape)
    return Case({**case.arrays, "input": tied}, case.differentiable, case.options, case.seed)


@pytest.mark.parametrize("spec", WITH_TIES, ids=catalog.spec_id)
@settings(max_examples=20)  # the tie rule is one convention; 20 geometries per record cover it
@given(data=st.data())
def test_forward_and_gradient_at_ties(spec: OpSpec, dtype: torch.dtype, device: str,
                                      data: st.DataObject) -> None:
    """Max pooling is not differentiable where a window's maximum is tied: torch's CPU kernels
    give the window's gradient to its first maximum in row-major window order, and the
    references state that rule (``np.argmax`` returns the first)."""
    case = data.draw(spec.cases(), label="case")
    assert spec.exact_points is not None
    points = spec.exact_points(case.options)
    if not points:  # LP pooling with a finite p is smooth: nothing tied to check
        event("no exact points for these options")
        return
    tied = _tied(case, points)
    gc.check_forward(spec, tied, dtype, device)
    gc.check_gradient(spec, tied, dtype, device)


def test_every_max_record_has_ties_as_exact_points() -> None:
    """Every record whose reference picks an argmax declares the tie check (a max record
    without it would leave the convention unchecked)."""
    names = {s.name for s in WITH_TIES}
    for d in (1, 2, 3):
        assert {f"max_pool{d}d", f"adaptive_max_pool{d}d", f"lp_pool{d}d"} <= names
    assert {"fractional_max_pool2d", "fractional_max_pool3d"} <= names


# --- return_indices ------------------------------------------------------------------------


def _indices_case(dims: int, data: st.DataObject) -> tuple[Array, dict]:
    spec = catalog.by_name(f"max_pool{dims}d")
    case = data.draw(spec.cases(), label="case")  # type: ignore[union-attr]
    return case.arrays["input"], dict(case.options)


@pytest.mark.parametrize("dims", [1, 2, 3])
@settings(max_examples=20)
@given(data=st.data())
def test_max_pool_return_indices(dims: int, dtype: torch.dtype, device: str,
                                 data: st.DataObject) -> None:
    """``max_pool{d}d(..., return_indices=True)`` returns, for each window, the flat index of
    its (first) maximum in the unpadded input plane: references.conv.max_pool_indices."""
    x, options = _indices_case(dims, data)
    t = torch.tensor(x, dtype=dtype, device=device)
    _, indices = getattr(F, f"max_pool{dims}d")(t, return_indices=True, **options)
    expected = ref_conv.max_pool_indices(x.astype(np.float64), dims=dims, **options)
    assert np.array_equal(compare.to_numpy(indices), expected), (
        f"max_pool{dims}d: return_indices differ from the reference's argmax positions "
        f"[{dtype_name(dtype)}, input {x.shape}, options {options}]\n"
        f"  torch: {compare.to_numpy(indices).ravel()[:12]}\n  expected: {expected.ravel()[:12]}")


@pytest.mark.parametrize("dims", [1, 2, 3])
@settings(max_examples=20)
@given(data=st.data())
def test_adaptive_max_pool_return_indices(dims: int, dtype: torch.dtype, device: str,
                                          data: st.DataObject) -> None:
    """``adaptive_max_pool{d}d(..., return_indices=True)``: the flat index of each adaptive
    window's first maximum (references.pooling.adaptive_max_pool_indices)."""
    spec = catalog.by_name(f"adaptive_max_pool{dims}d")
    case = data.draw(spec.cases(), label="case")  # type: ignore[union-attr]
    x, output_size = case.arrays["input"], case.options["output_size"]
    t = torch.tensor(x, dtype=dtype, device=device)
    _, indices = getattr(F, f"adaptive_max_pool{dims}d")(t, output_size, return_indices=True)
    expected = ref_pooling.adaptive_max_pool_indices(x, output_size, dims)
    assert np.array_equal(compare.to_numpy(indices), expected), (
        f"adaptive_max_pool{dims}d: return_indices differ from the reference's "
        f"[{dtype_name(dtype)}, input {x.shape}, output_size {output_size}]")


# --- known differences (KNOWN_DIFFERENCES.md) ----------------------------------------------


def _close(actual: torch.Tensor, expected: Array, kind: tols.Kind, what: str) -> None:
    __tracebackhide__ = True
    compare.assert_close(compare.to_numpy(actual), expected,
                         tol=tols.resolve(actual.dtype, kind), what=what,
                         context=f"{dtype_name(actual.dtype)}, shape={tuple(expected.shape)}")


@pytest.mark.xfail(strict=True, reason="torch 2.13.0: lp_pool with ceil_mode multiplies an "
                                       "overhanging window's sum by kernel / (elements inside) "
                                       "instead of summing the elements inside "
                                       "(KNOWN_DIFFERENCES.md)")
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_lp_pool_ceil_mode_sums_an_overhanging_window(dims: int) -> None:
    """LPPool's documented f(X) = (sum_{x in X} x^p)^(1/p) over a last window that overhangs
    the input: side 5, kernel 2, ceil_mode, so the last window holds one element."""
    x = np.arange(1.0, 1.0 + 5**dims).reshape(1, 1, *(5,) * dims) / 5**dims
    out = getattr(F, f"lp_pool{dims}d")(torch.tensor(x), 2, 2, ceil_mode=True)
    expected = getattr(ref_pooling, f"lp_pool{dims}d")(x, 2, 2, ceil_mode=True)
    _close(out, expected, tols.Kind.FORWARD, f"lp_pool{dims}d(p=2, kernel 2, ceil_mode)")


@pytest.mark.xfail(strict=True, raises=RuntimeError,
                   reason="torch 2.13.0: avg_pool3d raises 'input image ... smaller than kernel "
                          "size' for a side shorter than the kernel even when the padding makes "
                          "every window hold an element (avg_pool1d/2d and max_pool3d accept it; "
                          "KNOWN_DIFFERENCES.md)")
def test_avg_pool3d_side_shorter_than_the_kernel_with_padding() -> None:
    x = np.arange(1.0, 9.0).reshape(1, 1, 2, 2, 2)
    options = {"kernel_size": 3, "padding": 1, "stride": 1}
    out = F.avg_pool3d(torch.tensor(x), **options)
    _close(out, ref_conv.avg_pool3d(x, **options), tols.Kind.FORWARD,
           "avg_pool3d, sides 2 < kernel 3, padding 1")


def test_avg_pool2d_side_shorter_than_the_kernel_with_padding() -> None:
    """The 2-d kernel accepts what the 3-d one refuses (above), and computes the reference."""
    x = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    options = {"kernel_size": 3, "padding": 1, "stride": 1}
    _close(F.avg_pool2d(torch.tensor(x), **options), ref_conv.avg_pool2d(x, **options),
           tols.Kind.FORWARD, "avg_pool2d, sides 2 < kernel 3, padding 1")


@pytest.mark.xfail(strict=True, raises=RuntimeError,
                   reason="torch 2.13.0: fractional_max_pool3d requires output + kernel - 1 < "
                          "input side ('pool time 1 too large relative to input time 3'), "
                          "fractional_max_pool2d accepts equality (KNOWN_DIFFERENCES.md)")
def test_fractional_max_pool3d_output_plus_kernel_fills_the_side() -> None:
    x = np.arange(27.0).reshape(1, 1, 3, 3, 3)
    samples = np.full((1, 1, 3), 0.5)
    out = F.fractional_max_pool3d(torch.tensor(x), 1, output_size=3,
                                  _random_samples=torch.tensor(samples))
    _close(out, ref_pooling.fractional_max_pool3d(x, 1, output_size=3, _random_samples=samples),
           tols.Kind.FORWARD, "fractional_max_pool3d, kernel 1, output 3 of 3")


def test_fractional_max_pool2d_output_plus_kernel_fills_the_side() -> None:
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    samples = np.full((1, 1, 2), 0.5)
    out = F.fractional_max_pool2d(torch.tensor(x), 1, output_size=3,
                                  _random_samples=torch.tensor(samples))
    _close(out, ref_pooling.fractional_max_pool2d(x, 1, output_size=3, _random_samples=samples),
           tols.Kind.FORWARD, "fractional_max_pool2d, kernel 1, output 3 of 3")


@pytest.mark.xfail(strict=True, reason="torch 2.13.0: fractional max pooling computes its "
                                       "window starts in the input's dtype; in bfloat16 the "
                                       "same samples give other windows (KNOWN_DIFFERENCES.md)")
def test_fractional_max_pool2d_bfloat16_places_windows_like_float32() -> None:
    """Sample u = 0.62109375 (exact in bfloat16), side 9, kernel 1, output 4: the starts are
    floor((i + u) 8/3) - floor(u 8/3) = 0, 3, 5 and 8; input values are their column index."""
    x = torch.arange(9.0).reshape(1, 1, 1, 9).expand(1, 1, 2, 9)
    samples = torch.tensor([[[0.62109375, 0.5]]])
    expected = ref_pooling.fractional_max_pool2d(
        compare.to_numpy(x), (1, 1), output_size=(2, 4), _random_samples=samples.numpy())
    out = F.fractional_max_pool2d(x.to(torch.bfloat16), (1, 1), output_size=(2, 4),
                                  _random_samples=samples.to(torch.bfloat16))
    _close(out.to(torch.float64), expected, tols.Kind.FORWARD,
           "fractional_max_pool2d in bfloat16: the columns its windows start at")


@pytest.mark.xfail(strict=True, reason="torch 2.13.0: max_unpool's backward gathers the "
                                       "gradient for every copy of a repeated index while the "
                                       "forward keeps one, so d/dx max_unpool(max_pool(x)) counts "
                                       "a maximum shared by k windows k times "
                                       "(KNOWN_DIFFERENCES.md)")
def test_max_unpool_of_max_pool_has_the_derivative_of_its_forward() -> None:
    """x = [0, 3, 1, 2], windows of 2 at stride 1: 3 is the maximum of two windows, so
    max_unpool(max_pool(x)) = [0, 3, 0, 2] = x masked; its derivative is [0, 1, 0, 1] g."""
    x = torch.tensor([[[0.0, 3.0, 1.0, 2.0]]], dtype=torch.float64, requires_grad=True)
    pooled, indices = F.max_pool1d(x, 2, stride=1, return_indices=True)
    out = F.max_unpool1d(pooled, indices, 2, stride=1, output_size=(4,))
    out.backward(torch.ones_like(out))
    assert x.grad is not None
    _close(x.grad, np.array([[[0.0, 1.0, 0.0, 1.0]]]), tols.Kind.GRADIENT,
           "gradient of max_unpool1d(max_pool1d(x)) (a mask of the maxima)")


@pytest.mark.xfail(versions.INDUCTOR_FRACTIONAL_MAX_POOL3D_SAMPLE_ORDER, strict=True,
                   reason="torch 2.13.0: torch.compile's fractional_max_pool3d "
                                       "lowering reads _random_samples in reverse order "
                                       "(width from sample 2 in eager, from sample 0 compiled; "
                                       "KNOWN_DIFFERENCES.md)")
def test_compiled_fractional_max_pool3d_reads_the_samples_like_eager() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 9, 11, 10))
    samples = np.array([[[0.1, 0.5, 0.9], [0.3, 0.7, 0.2]]])

    def pool(t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return F.fractional_max_pool3d(t, 2, output_size=(4, 5, 6), _random_samples=u)

    out = torch.compile(pool)(torch.tensor(x), torch.tensor(samples))
    expected = ref_pooling.fractional_max_pool3d(x, 2, output_size=(4, 5, 6),
                                                 _random_samples=samples)
    _close(out, expected, tols.Kind.FORWARD, "torch.compile(fractional_max_pool3d)")


@pytest.mark.xfail(strict=True, raises=RuntimeError,
                   reason="torch 2.13.0: max_pool3d raises 'Unsupported memory format. Supports "
                          "only ChannelsLast3d, Contiguous' for an unbatched (C, D, H, W) input "
                          "whose strides match 2-d channels_last (KNOWN_DIFFERENCES.md)")
def test_max_pool3d_unbatched_input_with_channels_last_strides() -> None:
    x = np.arange(120.0).reshape(2, 3, 4, 5)
    t = torch.tensor(x).contiguous(memory_format=torch.channels_last)  # a valid strided view
    _close(F.max_pool3d(t, 2), ref_conv.max_pool3d(x, 2), tols.Kind.FORWARD,
           "max_pool3d of an unbatched input with channels_last strides")


# --- the tie check must fail on a planted bug ----------------------------------------------


def _even_split_vjp(g: Array, input: Array, kernel_size: int, stride: int | None = None,
                    padding: int = 0, dilation: int = 1, ceil_mode: bool = False
                    ) -> dict[str, Array]:
    """A planted wrong convention: tied maxima share the window's gradient equally."""
    pool = ref_conv._pool_setup(input, 2, kernel_size, stride, padding, dilation, ceil_mode,
                                -np.inf)
    w = ref_conv._windows(pool.xp, pool.kernel, pool.stride, pool.dilation, pool.out)
    flat = w.reshape(*w.shape[:2], -1, *pool.out)
    top = flat == flat.max(axis=2, keepdims=True)
    share = top / top.sum(axis=2, keepdims=True) * np.asarray(g)[:, :, None]
    gx = ref_conv._windows_vjp(share.reshape(*flat.shape[:2], *pool.kernel, *pool.out),
                               pool.xp.shape, pool.kernel, pool.stride, pool.dilation)
    return {"input": ref_conv._crop(gx, pool.pads, np.shape(input)[-2:])}


TIED = Case({"input": np.zeros((1, 2, 4, 4))}, ("input",), {"kernel_size": 2, "stride": 2}, 3)


def test_tie_check_fails_on_a_wrong_tie_convention() -> None:
    """An all-zero input ties every window: a reference that splits the gradient among the
    tied maxima disagrees with torch's first-maximum rule, and the check says so."""
    spec = catalog.by_name("max_pool2d")
    planted = OpSpec(**{**spec.__dict__, "ref_vjp": _even_split_vjp})  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match=r"VJP w\.r\.t\. input"):
        gc.check_gradient(planted, TIED, torch.float64, "cpu")


def test_tie_check_passes_with_the_first_maximum_rule() -> None:
    spec = catalog.by_name("max_pool2d")  # the control for the planted convention
    gc.check_gradient(spec, TIED, torch.float64, "cpu")  # type: ignore[arg-type]


def test_a_functional_torch_lacks_skips_saying_so() -> None:
    """Records of functions an older torch lacks (lp_pool3d, channel_shuffle) skip every check
    there with the reason, rather than failing the catalogue's import."""
    from suite.catalog.pooling import functional

    assert functional("max_pool2d") is F.max_pool2d
    with pytest.raises(pytest.skip.Exception, match=r"has no torch\.nn\.functional\.no_such_op"):
        functional("no_such_op")(torch.zeros(1))


@pytest.mark.xfail(strict=True, reason="torch 2.13.0 and 2.14.1 (KNOWN_DIFFERENCES.md, lp_pool "
                   "with norm_type 1): the gradient is 0 where a window's sum is exactly 0, "
                   "though p = 1 pools the signed sum, whose derivative is 1")
def test_lp_pool_p1_gradient_where_a_window_sums_to_zero() -> None:
    x = torch.tensor([[[0.5, -0.5, 0.25, 0.75]]], dtype=torch.float64, requires_grad=True)
    torch.nn.functional.lp_pool1d(x, 1, 2).sum().backward()
    # both windows: z = x_0 + x_1 (sum 0 for the first), dz/dx = 1 for every element
    assert x.grad is not None
    torch.testing.assert_close(x.grad, torch.ones_like(x), rtol=0, atol=0)


@pytest.mark.xfail(strict=True, reason="torch 2.13.0-2.15.0 (KNOWN_DIFFERENCES.md, lp_pool in "
                   "float16 stores x^p): x^2 of |x| < 7.8e-3 is subnormal in float16, and 0 "
                   "below 1.7e-4, so the gradient, which divides by it, is 5 % off or 0")
def test_lp_pool_float16_gradient_where_x_squared_is_subnormal() -> None:
    # Kernel 1, p = 2: z = |x| and dz/dx = sign(x). Both inputs are normal float16 numbers
    # (>= 6.1e-5), and so are their outputs.
    x = torch.tensor([[[-4.4537e-4, -1.5e-4]]], dtype=torch.float16, requires_grad=True)
    F.lp_pool1d(x, 2, 1).sum().backward()
    assert x.grad is not None
    allowed = catalog.by_name("lp_pool1d").tolerance(tols.Kind.GRADIENT, torch.float16)
    torch.testing.assert_close(x.grad, -torch.ones_like(x), rtol=allowed.rtol, atol=allowed.atol)


def test_lp_pool_reference_scales_only_the_windows_that_leave_float64s_range() -> None:
    """The reference sums x^p one window offset at a time while every window's sum is a
    normal float64 number, and takes the windowed, power-of-two-scaled forms once one is not:
    [3, 4] is 5 with gradient [0.6, 0.8] either way, and [t, t] at t = 1e-170 (t^2 underflows)
    is sqrt(2) t with gradient 1/sqrt(2) each (the norm is homogeneous of degree 1), alone or
    beside [3, 4] in one input."""
    plain, tiny = np.array([[[3.0, 4.0]]]), np.array([[[1e-170, 1e-170]]])
    both = np.concatenate([plain, tiny], axis=1)  # two channels: one window in range, one not
    g = np.ones((1, 2, 1))
    z = ref_pooling.lp_pool1d(both, 2.0, 2)
    grad = ref_pooling.lp_pool1d_vjp(g, both, 2.0, 2)["input"]
    np.testing.assert_allclose(z[:, :, 0], [[5.0, np.sqrt(2) * 1e-170]], rtol=1e-15)
    np.testing.assert_allclose(grad, [[[0.6, 0.8], [2**-0.5, 2**-0.5]]], rtol=1e-15)
    for alone, channel in ((plain, 0), (tiny, 1)):  # each window alone gives the same
        np.testing.assert_array_equal(ref_pooling.lp_pool1d(alone, 2.0, 2)[0, 0], z[0, channel])
        np.testing.assert_allclose(ref_pooling.lp_pool1d_vjp(g[:, :1], alone, 2.0, 2)["input"][0],
                                   grad[0, channel:channel + 1], rtol=1e-15)
