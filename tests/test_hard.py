"""The hard tier (suite/hard.py, suite/hardcheck.py) for every record of the catalogue."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis.errors import HypothesisDeprecationWarning
from torch import nn

import gradsuite as gs
from suite import catalog, compare, gradcheck, hard, hardcheck, higher, versions
from suite import tolerances as tols
from suite.catalog import recurrent as recurrent_records

HARD_CHECKS = ("test_hard_inputs_match_reference", "test_hard_inputs_low_precision",
               "test_hard_layouts_of_every_argument",
               "test_hard_special_values_at_every_position")

TestHard = gs.battery(*catalog.OPS, only=HARD_CHECKS)

# The optimizer hard tier (suite.hard.optimizer_runs): every optimizer record and implementation.
HARD_OPTIMIZER_CHECKS = ("test_hard_optimizer_steps_match_reference",)
TestHardOptimizers = gs.battery(*catalog.OPTIMIZERS, only=HARD_OPTIMIZER_CHECKS)


def _torch_passes_and_the_plant_fails(spec: Any, bad: Any, case: Any,
                                      dtype: torch.dtype) -> None:
    """The hard check passes torch on ``case`` and fails the planted record ``bad`` there
    (hardcheck's assume() runs outside a Hypothesis test: its deprecation warning is muted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HypothesisDeprecationWarning)
        hardcheck.check_hard(spec, case, dtype, "cpu")
        with pytest.raises(AssertionError, match="on a hard input"):
            hardcheck.check_hard(bad, case, dtype, "cpu")


@pytest.mark.parametrize(("markexpr", "keyword", "how"), [
    ("", "", "sampled"),  # a plain `pytest`: a few examples a test
    ("", "relu", "sampled"),  # a -k that picks records samples their hard tier
    ("", "hard", "full"), ("", "hard and relu", "full"), ("", "test_hard_inputs", "full"),
    ("hard", "", "full"), ("hard and not bench", "relu", "full"),
    ("not hard", "", "full"),  # -m decides which: none of the hard tests is selected
])
def test_the_hard_tier_runs_sampled_unless_selected(markexpr: str, keyword: str,
                                                     how: str) -> None:
    from suite import plugin

    assert "hard" not in plugin.markers_left_out(markexpr, keyword)
    sampled = "hard" in plugin.markers_sampled(markexpr, keyword)
    assert ("sampled" if sampled else "full") == how


def test_every_input_maker_of_the_catalogue_has_a_hard_tier() -> None:
    """Issue: "a hard tier for every input maker". A maker without ``hard`` silently drops its
    records from test_hard_inputs_* (the battery lists them only under pytest -v)."""
    missing = sorted({f"{type(s.inputs).__name__} ({s.name})" for s in catalog.OPS
                      if s.ref is not None and hard.hard_strategy(s.inputs, torch.float32)
                      is None})
    assert not missing, f"input makers without a hard(dtype) strategy: {', '.join(missing)}"


def test_every_hard_tier_test_is_marked_hard() -> None:
    for battery, names in ((TestHard, HARD_CHECKS), (TestHardOptimizers, HARD_OPTIMIZER_CHECKS)):
        for name in names:
            marks = getattr(getattr(battery, name), "pytestmark", [])
            assert any(m.name == "hard" for m in marks), name


# --- torch defects the hard tier found (KNOWN_DIFFERENCES.md, "The hard tier"); the records'
# known_defects set these cases aside, and each test below shows one, strict: it must fail on
# the installed torch, and an XPASS says the defect is gone.

_TORCH_2_13 = "torch 2.13.0 CPU (KNOWN_DIFFERENCES.md, 'The hard tier')"


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_TORCH_2_13}: batch_norm's backward of a transposed 4-d input "
                          "with batch 1 takes elements from the wrong positions")
@pytest.mark.parametrize("precision", [torch.float32, torch.float64])
def test_batch_norm_backward_of_transposed_input(precision: torch.dtype) -> None:
    """In evaluation mode the input gradient is g / sqrt(running_var + eps) element by element,
    whatever the input's strides."""
    g = torch.tensor([0.5, -1.0, 2.0, 0.25], dtype=precision).reshape(1, 2, 1, 2)
    running_mean = torch.tensor([-0.5, 0.36], dtype=precision)
    running_var = torch.tensor([2.5, 2.98], dtype=precision)
    base = torch.tensor([0.3, -1.1, 0.7, 2.0], dtype=precision).reshape(2, 1, 2, 1)
    base.requires_grad_(True)
    x = base.permute(3, 2, 1, 0)  # shape (1, 2, 1, 2), not contiguous
    F.batch_norm(x, running_mean, running_var, training=False).backward(g)
    assert base.grad is not None
    expected = g.numpy() / np.sqrt(running_var.numpy().reshape(1, 2, 1, 1) + 1e-5)
    compare.assert_close(base.grad.permute(3, 2, 1, 0).numpy(), expected,
                         tol=tols.resolve(precision, tols.Kind.GRADIENT),
                         what="batch_norm (evaluation) input gradient of a transposed input",
                         context=str(precision))


@pytest.mark.xfail(strict=True, raises=RuntimeError,
                   reason=f"{_TORCH_2_13}: max_unpool2d/3d backward with transposed (non-"
                          "contiguous) indices raises 'view size is not compatible with input "
                          "tensor's size and stride'")
@pytest.mark.parametrize("d", [2, 3])
def test_max_unpool_backward_with_transposed_indices(d: int) -> None:
    """Each output position receives the input value its index names; the input gradient
    gathers g there (here: ones)."""
    shape = (1, 2, 2) if d == 2 else (1, 1, 2, 2)
    indices = torch.tensor([0, 3, 1, 2]).reshape(shape)
    order = tuple(reversed(range(len(shape))))
    viewed = indices.permute(order).contiguous().permute(order)  # same values, not contiguous
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    kernel = (2, 1) if d == 2 else (1, 2, 1)
    unpool = F.max_unpool2d if d == 2 else F.max_unpool3d
    unpool(x, viewed, kernel).sum().backward()
    assert x.grad is not None
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(shape))


@pytest.mark.xfail(strict=True, raises=RuntimeError,
                   reason=f"{_TORCH_2_13}: F.local_response_norm of a transposed (non-"
                          "contiguous) 5-d input raises 'view size is not compatible with input "
                          "tensor's size and stride'")
def test_local_response_norm_of_transposed_5d_input() -> None:
    """A transposed 5-d input gives the contiguous input's result."""
    x = torch.randn(1, 1, 1, 2, 2, dtype=torch.float32)
    viewed = x.permute(4, 3, 2, 1, 0).contiguous().permute(4, 3, 2, 1, 0)
    np.testing.assert_array_equal(F.local_response_norm(viewed, 1).numpy(),
                                  F.local_response_norm(x, 1).numpy())


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_TORCH_2_13}: float32 group_norm, float16 layer_norm and float64 "
                   "group_norm with a weight of a constant group are not exactly 0 (-2.6e-6, "
                   "2.0e-6, 2.6e-11)")
@pytest.mark.parametrize("op", ["group_norm-float32", "layer_norm-float16", "group_norm-float64"])
def test_constant_group_normalises_to_exactly_zero(op: str) -> None:
    """x - mean(x) is exactly 0 for equal values, so a constant group normalises to exactly
    0 (here without bias: the output is 0)."""
    # torch releases without this half-precision CPU kernel skip, with torch's words.
    precision = {"float16": torch.float16, "float32": torch.float32,
                 "float64": torch.float64}[op.split("-")[1]]
    with higher.skip_if_unsupported(precision, "cpu"):
        if op == "group_norm-float32":
            x = torch.tensor([[0.3, 0.3]], dtype=torch.float32)
            weight = torch.tensor([0.93395, 1.0629], dtype=torch.float32)
            out = F.group_norm(x, 1, weight)
        elif op == "group_norm-float64":
            x = torch.tensor([[1000.0, 1000.0]], dtype=torch.float64)
            weight = torch.tensor([0.97331, 1.994], dtype=torch.float64)
            out = F.group_norm(x, 1, weight)
        else:
            x = torch.tensor([0.30004883, 0.30004883], dtype=torch.float16)
            out = F.layer_norm(x, (2,))
        np.testing.assert_array_equal(out.float().numpy(), np.zeros(tuple(x.shape)))


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_TORCH_2_13}: float16 binary_cross_entropy's backward clamps "
                          "x (1 - x) at 1e-12, which is 0 in float16: NaN at an input of 0 or 1 "
                          "with weight 0")
def test_bce_half_gradient_with_zero_weight_at_the_ends() -> None:
    """A weight of 0 removes the element from the loss: its input gradient is 0 (float32 and
    bfloat16 give 0)."""
    # torch releases without this half-precision CPU kernel skip, with torch's words.
    with higher.skip_if_unsupported(torch.float16, "cpu"):
        x = torch.tensor([0.0, 1.0, 0.3], dtype=torch.float16, requires_grad=True)
        y = torch.tensor([0.4248, 0.4248, 0.4248], dtype=torch.float16)
        F.binary_cross_entropy(x, y, weight=torch.zeros(3, dtype=torch.float16)).backward()
        assert x.grad is not None
        np.testing.assert_array_equal(x.grad.float().numpy(), np.zeros(3))


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_TORCH_2_13}: the p-norm (p > 1) sums |d|^p unscaled, so float32 "
                          "triplet_margin_loss with p = 3 and differences of ~1e-16 computes both "
                          "distances as 0 and the anchor gradient as 0 (reference up to 0.40)")
def test_triplet_gradient_with_tiny_p3_distances() -> None:
    """||d||_p is homogeneous of degree 1, so its gradient sign(d) |d|^(p-1) / ||d||^(p-1) does
    not depend on d's scale: differences of 1e-16 have an O(1) gradient, in float32 too."""
    from references import losses_margin as margin

    rng = np.random.default_rng(0)
    a, p, n = (rng.standard_normal((2, 4)).astype(np.float32) * np.float32(1e-16)
               for _ in range(3))
    anchor = torch.tensor(a, requires_grad=True)
    F.triplet_margin_loss(anchor, torch.tensor(p), torch.tensor(n), p=3.0, eps=0.0).backward()
    assert anchor.grad is not None
    expected = margin.triplet_margin_loss_vjp(1.0, a, p, n, p=3.0, eps=0.0)["anchor"]
    compare.assert_close(anchor.grad.numpy(), expected,
                         tol=tols.resolve(torch.float32, tols.Kind.GRADIENT),
                         what="float32 triplet_margin_loss anchor gradient, p = 3, |d| ~ 1e-16",
                         context="torch.float32")


_LP_MEASURED = "measured on torch 2.2.2, 2.13.0, 2.14.1 and 2.15.0, CPU"


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_LP_MEASURED} (KNOWN_DIFFERENCES.md, 'bfloat16 lp_pool rounds the "
                          "exponent 1/p to bfloat16'): x = 3.99e9, p = 3 gives 4.16e9 (4.2 %)")
def test_bfloat16_lp_pool_with_p_3_is_the_window_norm() -> None:
    """With kernel 1 the p-norm of a window is |x|: bfloat16 x = 3.99e9 (x^3 = 6.4e28, inside
    bfloat16's range) must give x within bfloat16's relative tolerance."""
    x = torch.tensor([[3.9929774e9]], dtype=torch.bfloat16)
    out = F.lp_pool1d(x, 3, 1).double().item()
    exact = x.double().item()
    assert abs(out - exact) <= tols.resolve(torch.bfloat16, tols.Kind.FORWARD).rtol * exact, \
        (out, exact)


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_LP_MEASURED} (KNOWN_DIFFERENCES.md, 'lp_pool in float16 stores "
                          "x^p'): float16 p = 2 of [200, 200] is inf, gradient 0")
def test_float16_lp_pool_whose_sum_of_squares_passes_65504() -> None:
    """The 2-norm of [200, 200] is 282.8, a float16 number; its gradient is 1/sqrt(2) each (2.2.2
    has no float16 avg_pool kernel and skips, with torch's words)."""
    with higher.skip_if_unsupported(torch.float16, "cpu"):
        x = torch.tensor([[200.0, 200.0]], dtype=torch.float16, requires_grad=True)
        out = F.lp_pool1d(x, 2, 2)
        out.sum().backward()
        assert x.grad is not None
        compare.assert_close(out.detach().double().numpy(), np.array([[200 * math.sqrt(2)]]),
                             tol=tols.resolve(torch.float16, tols.Kind.FORWARD),
                             what="float16 lp_pool1d, p = 2, [200, 200]", context="float16")
        compare.assert_close(x.grad.double().numpy(), np.full((1, 2), math.sqrt(0.5)),
                             tol=tols.resolve(torch.float16, tols.Kind.GRADIENT),
                             what="float16 lp_pool1d gradient", context="float16")


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_LP_MEASURED} (KNOWN_DIFFERENCES.md, 'lp_pool in float16 stores "
                          "x^p'): float32 p = 2 of [1e-30, 1e-30] and float64 of "
                          "[1e-170, 1e-170] give output 0 and gradient 0")
@pytest.mark.parametrize(("precision", "tiny"), [(torch.float32, 1e-30), (torch.float64, 1e-170)])
def test_lp_pool_of_tiny_inputs_keeps_its_gradient(precision: torch.dtype, tiny: float) -> None:
    """The p-norm is homogeneous of degree 1, so its gradient x^(p-1) z^(1-p) does not depend
    on the scale: 1/sqrt(2) each for p = 2 on [t, t], whatever t (references/pooling.py, scaled
    by max |x|, gives it)."""
    from references import pooling as ref_pooling

    values = np.array([[tiny, tiny]])
    x = torch.tensor(values, dtype=precision, requires_grad=True)
    F.lp_pool1d(x, 2, 2).sum().backward()
    assert x.grad is not None
    expected = ref_pooling.lp_pool1d_vjp(np.ones((1, 1)), x.detach().double().numpy(), 2, 2)
    compare.assert_close(x.grad.double().numpy(), expected["input"],
                         tol=tols.resolve(precision, tols.Kind.GRADIENT),
                         what=f"lp_pool1d gradient, p = 2, [{tiny}, {tiny}]",
                         context=str(precision))


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_LP_MEASURED} (KNOWN_DIFFERENCES.md, 'adaptive_avg_pool3d in half "
                          "precision sums in the half type'): float16 means +-818.8 of 4840 "
                          "values come out +-inf (a partial sum passes 65504)")
def test_float16_adaptive_avg_pool3d_of_a_long_window_is_its_mean() -> None:
    """A (22, 22, 20) float16 input, 8188 at the start and -8188 at the end of every row, 0
    elsewhere, pooled to (1, 1, 2): each window's mean, +-8188 * 484 / 4840 = +-818.8, is a
    float16 number (adaptive_avg_pool2d of the same values, summed in float32, gives it)."""
    y = np.zeros((22, 22, 20))
    y[..., 0], y[..., 19] = 8188.0, -8188.0
    x = torch.tensor(y, dtype=torch.float16).reshape(1, 1, 22, 22, 20)
    expected = np.array([y[..., :10].mean(), y[..., 10:].mean()])
    compare.assert_close(F.adaptive_avg_pool3d(x, (1, 1, 2)).double().numpy().reshape(2),
                         expected, tol=tols.resolve(torch.float16, tols.Kind.FORWARD),
                         what="float16 adaptive_avg_pool3d of 22 x 22 x 10 windows",
                         context="float16")


@pytest.mark.parametrize("p", [1.5, 2.0, 3.0])
@pytest.mark.parametrize("scale", [1e-3, 1e-10, 1e-16, 1e-20, 1e-23, 1e-30])
def test_p_norm_underflow_is_set_aside_wherever_torch_loses_the_norm(p: float,
                                                                      scale: float) -> None:
    """Where the predicate that sets triplet cases aside (suite.catalog.losses.p_norm_underflows)
    says the float32 norm does not underflow, torch's norm is right to float32 rounding;
    where torch's norm is off, the predicate must have said so."""
    from suite.catalog.losses import p_norm_underflows

    d = np.full((1, 4), scale)
    exact = 4 ** (1 / p) * scale
    got = torch.linalg.vector_norm(torch.tensor(d, dtype=torch.float32), p, dim=-1).item()
    if not p_norm_underflows(d, p, torch.float32):
        assert abs(got - exact) <= 1e-5 * exact, (p, scale, got, exact)
    if abs(got - exact) > 1e-5 * exact:
        assert p_norm_underflows(d, p, torch.float32), (p, scale, got, exact)


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_TORCH_2_13}: gelu(approximate='tanh') backward forms "
                          "x (1 - t^2) (1 + 3 kappa x^2): NaN past ~sqrt(max) of the "
                          "accumulation type (3e19 in float32, 1e155 in float64)")
@pytest.mark.parametrize(("precision", "big"), [(torch.float32, 3e19), (torch.float64, 1e155)])
def test_gelu_tanh_gradient_far_in_the_tails(precision: torch.dtype, big: float) -> None:
    """gelu_tanh(x) = x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2 is x for x >> 1 and 0
    for x << -1 (tanh is +-1 to the last bit there): its derivative is 1 and 0."""
    x = torch.tensor([big, -big], dtype=precision, requires_grad=True)
    F.gelu(x, approximate="tanh").sum().backward()
    assert x.grad is not None
    np.testing.assert_array_equal(x.grad.numpy(), np.array([1.0, 0.0]))


@pytest.mark.xfail(strict=True, raises=RuntimeError,
                   reason=f"{_TORCH_2_13}: nll_loss of a transposed (non-contiguous) "
                          "(N, C, H, W) input raises 'grad_input must be contiguous' in the "
                          "backward")
def test_nll_loss_2d_backward_of_transposed_input() -> None:
    """The input gradient of the mean loss is -1 / (N H W) at each target class, 0 elsewhere,
    whatever the input's strides."""
    base = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)  # (W, H, C, N)
    x = base.permute(3, 2, 1, 0)  # (N, C, H, W) = (2, 2, 3, 2), not contiguous
    target = torch.tensor([[[0, 1], [1, 0], [1, 1]], [[0, 0], [1, 0], [0, 1]]])
    F.nll_loss(x, target).backward()
    assert base.grad is not None
    expected = -F.one_hot(target, 2).permute(0, 3, 1, 2).double() / target.numel()
    np.testing.assert_array_equal(base.grad.permute(3, 2, 1, 0).numpy(), expected.numpy())


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_TORCH_2_13}: ctc_loss reads concatenated (1-d) targets as if "
                          "contiguous: a step-sliced view gives a wrong loss for the second "
                          "sequence (an expanded view, stride 0, segfaults and is not run)")
def test_ctc_loss_of_step_sliced_concatenated_targets() -> None:
    """A view of the targets holds the same labels as its contiguous copy: the same losses."""
    log_probs = torch.randn(6, 2, 4, dtype=torch.float64,
                            generator=torch.Generator().manual_seed(0)).log_softmax(-1)
    viewed = torch.tensor([1, 9, 2, 9, 3, 9, 1, 9])[::2]  # labels [1, 2, 3, 1], stride 2
    lengths = (torch.tensor([6, 6]), torch.tensor([2, 2]))
    got = F.ctc_loss(log_probs, viewed, *lengths, reduction="none")
    expected = F.ctc_loss(log_probs, viewed.contiguous(), *lengths, reduction="none")
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


# The layers group's hard tier (embedding_bag, instance_norm, local_response_norm, the distances,
# linear_cross_entropy): each defect was measured with its repro on these four releases, not
# assumed between them; every one shows on all four where the op and kernel exist.
_LAYERS_MEASURED = "measured on torch 2.2.2, 2.13.0, 2.14.1 and 2.15.0, CPU"


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_LAYERS_MEASURED} (KNOWN_DIFFERENCES.md, 'embedding and "
                          "embedding_bag sum a row's half-precision gradient in the half "
                          "type'): 10^4 lookups of one row give 32 (bfloat16) / 256 (float16) "
                          "for 1030.27")
@pytest.mark.parametrize("op", ["embedding_bag", "embedding"])
@pytest.mark.parametrize("precision", [torch.float16, torch.bfloat16])
def test_half_gradient_of_a_row_looked_up_10000_times(op: str, precision: torch.dtype) -> None:
    """The table gradient of a row is the sum of the cotangents of its lookups: 10^4 lookups of
    g = 0.10302734 (a float16 and bfloat16 number) sum to 1030.27, representable in both."""
    index = torch.zeros(1, 10_000, dtype=torch.long)
    table = torch.tensor([[0.12597656]], dtype=precision, requires_grad=True)
    g = torch.tensor([[0.10302734]], dtype=precision)
    if op == "embedding_bag":
        F.embedding_bag(index, table, mode="sum").backward(g)
    else:
        F.embedding(index, table).sum(dim=1).backward(g)
    assert table.grad is not None
    compare.assert_close(table.grad.double().numpy(), np.array([[10_000 * float(g)]]),
                         tol=tols.resolve(precision, tols.Kind.GRADIENT),
                         what=f"{op} table gradient, one row looked up 10^4 times",
                         context=str(precision))


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_LAYERS_MEASURED} (KNOWN_DIFFERENCES.md, 'local_response_norm's "
                          "input gradient loses accuracy for large inputs'): float32 x = 5.19e8, "
                          "beta 2 is 56 % off, x = 2.31e18, beta 0.75 1.3 %; float64 x = "
                          "-7.67e150 has the wrong sign")
@pytest.mark.parametrize(("precision", "x", "beta"), [
    (torch.float32, 5.19e8, 2.0), (torch.float32, 2.3058429e18, 0.75),
    (torch.float64, -7.6715122e150, 0.75)])
def test_local_response_norm_gradient_of_large_inputs(precision: torch.dtype, x: float,
                                                      beta: float) -> None:
    """With size 1 the window is x alone: y = x s^-beta, s = k + alpha x^2, and dy/dx =
    s^-beta (1 - 2 alpha beta x^2 / s), a normal number (float32 -4.13e-27, -1.43e-25;
    float64 -2.35e-224)."""
    value = float(torch.tensor(x, dtype=precision))
    xt = torch.tensor([[[value]]], dtype=precision, requires_grad=True)
    F.local_response_norm(xt, 1, alpha=1e-4, beta=beta, k=1.0).backward(torch.ones_like(xt))
    assert xt.grad is not None
    s = 1.0 + 1e-4 * value * value
    exact = s**-beta * (1 - 2e-4 * beta * value * value / s)
    got = xt.grad.double().item()  # relative: the absolute row dwarfs a gradient of 1e-25
    assert abs(got - exact) <= tols.resolve(precision, tols.Kind.GRADIENT).rtol * abs(exact), \
        (got, exact)


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_LAYERS_MEASURED} (KNOWN_DIFFERENCES.md, 'local_response_norm in "
                          "float16 overflows and underflows its intermediates'): x = 300 gives "
                          "0 for 53.35 (2.2.2 has no float16 kernel and skips)")
def test_float16_local_response_norm_whose_square_passes_65504() -> None:
    """size 1, alpha 1e-4, beta 0.75, k 1: x = 300 gives 300 (1 + 9)^-0.75 = 53.35, a float16
    number, though x^2 = 9e4 is not."""
    with higher.skip_if_unsupported(torch.float16, "cpu"):
        x = torch.tensor([[[300.0]]], dtype=torch.float16)
        out = F.local_response_norm(x, 1, alpha=1e-4, beta=0.75, k=1.0)
    compare.assert_close(out.double().numpy().ravel(), np.array([300 * 10**-0.75]),
                         tol=tols.resolve(torch.float16, tols.Kind.FORWARD),
                         what="float16 local_response_norm of 300", context="float16")


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_LAYERS_MEASURED} (KNOWN_DIFFERENCES.md, 'Half-precision "
                          "cosine_similarity's backward leaves the normal range for small "
                          "norms'): float16 d/dx2 is [inf, inf, nan] for [28096, -16247, 2962]; "
                          "bfloat16 1.84e-34 for 1.42e-34")
@pytest.mark.parametrize("precision", [torch.float16, torch.bfloat16])
def test_half_cosine_similarity_gradient_of_a_small_vector(precision: torch.dtype) -> None:
    """float16: ||x2|| = 8.1e-6 is above eps = 1e-8, so the cosine is differentiable there;
    bfloat16: x1 = 0 is clamped to eps = 1e-6 and x2 holds a subnormal. The gradient (float64
    reference on the same half values, relative: it is 1e-34 in bfloat16) is representable."""
    from references import distance as ref_distance

    if precision == torch.float16:
        x1 = np.array([-5.9604644775e-08, -3.2324218750e-01, 8.4082031250e-01])
        x2 = np.array([-1.9073486328e-06, -1.9073486328e-06, 7.6293945312e-06])
        eps, wrt = 1e-8, "x2"
    else:
        x1, x2 = np.zeros(2), np.array([1.3, 1.8367099e-40])
        eps, wrt = 1e-6, "x1"
    a, b = (torch.tensor(v, dtype=precision).requires_grad_(True) for v in (x1, x2))
    F.cosine_similarity(a, b, dim=0, eps=eps).backward(torch.tensor(1.0, dtype=precision))
    expected = ref_distance.cosine_similarity_vjp(
        np.array(1.0), a.detach().double().numpy(), b.detach().double().numpy(), dim=0,
        eps=eps)[wrt]
    grad = (a if wrt == "x1" else b).grad
    assert grad is not None
    got = grad.double().numpy()
    rtol = tols.resolve(precision, tols.Kind.GRADIENT).rtol
    assert np.all(np.abs(got - expected) <= rtol * np.abs(expected)), (got, expected)


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_LAYERS_MEASURED} (KNOWN_DIFFERENCES.md, 'float16 "
                          "cosine_similarity with the default eps: 0 / 0 for a zero vector'): "
                          "NaN where the documented formula gives 0")
def test_float16_cosine_similarity_of_a_zero_vector_with_the_default_eps() -> None:
    """x1 . x2 / (max(||x1||, eps) max(||x2||, eps)) is 0 for x1 = 0 (eps = 1e-8 > 0)."""
    out = F.cosine_similarity(torch.tensor([[0.0], [-1.0]], dtype=torch.float16),
                              torch.tensor([[2.0], [0.5]], dtype=torch.float16), dim=-1)
    np.testing.assert_array_equal(out.float().numpy(), np.array([0.0, -1.0]))


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_LAYERS_MEASURED} (KNOWN_DIFFERENCES.md, batch_norm's training-"
                          "mode constant channel, reached through instance_norm): float32 "
                          "1.3e-3 for [-2000] * 3, float64 4.6e-13, float16 0.027 (weight 1.3)")
@pytest.mark.parametrize("precision", [torch.float16, torch.float32, torch.float64])
def test_instance_norm_of_a_constant_instance_is_zero(precision: torch.dtype) -> None:
    """x - mean(x) is exactly 0 for equal values: a constant instance normalises to 0 (times
    the weight)."""
    x = torch.full((1, 1, 3), -2000.0, dtype=precision)
    weight = torch.tensor([1.3], dtype=precision)
    out = F.instance_norm(x, weight=weight, eps=1e-3)
    np.testing.assert_array_equal(out.float().numpy(), np.zeros((1, 1, 3)))


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_LAYERS_MEASURED} (KNOWN_DIFFERENCES.md, 'p-norms of tiny vectors "
                          "underflow', through pairwise_distance): float64 p = 3 gives a NaN "
                          "gradient, p = -1 a norm of 0 and a NaN gradient")
@pytest.mark.parametrize(("p", "x1", "expected"), [
    (3.0, [-8.289046e-316], [-1.0]), (-1.0, [8.0947715e-320, 0.5], [1.0, 0.0])])
def test_pairwise_distance_gradient_of_subnormal_differences(p: float, x1: list[float],
                                                             expected: list[float]) -> None:
    """||d||_p is homogeneous of degree 1: its gradient sign(d_i) (|d_i| / ||d||_p)^(p - 1) is
    O(1) at any scale (x2 = 0, eps = 0: d = x1; 2.2.2 also loses p = 3's norm)."""
    a = torch.tensor([x1], dtype=torch.float64, requires_grad=True)
    F.pairwise_distance(a, torch.zeros_like(a), p=p, eps=0.0).backward(torch.ones(1,
                                                                                  dtype=a.dtype))
    assert a.grad is not None
    compare.assert_close(a.grad.numpy().ravel(), np.array(expected),
                         tol=tols.resolve(torch.float64, tols.Kind.GRADIENT),
                         what=f"float64 pairwise_distance gradient, p = {p}, subnormal d",
                         context="float64")


# --- planted bugs (issue 13 item 3): kernels wrong only on hard inputs pass the typical checks
# and fail the hard tier's, within the allowance derived from the case's conditioning.

def _record(name: str) -> gs.OpSpec:
    return next(s for s in catalog.OPS if s.name == name)


def _one_pass_layer_norm(input: torch.Tensor, normalized_shape: tuple[int, ...],
                         weight: torch.Tensor, bias: torch.Tensor,
                         eps: float = 1e-5) -> torch.Tensor:
    """layer_norm with the one-pass variance E[x^2] - E[x]^2 (off by ~eps (mean / spread)^2)."""
    mean = input.mean(-1, keepdim=True)
    var = ((input * input).mean(-1, keepdim=True) - mean * mean).clamp_min(0)
    return (input - mean) / torch.sqrt(var + eps) * weight + bias


def _naive_logsigmoid(input: torch.Tensor) -> torch.Tensor:
    """-log(1 + exp(-x)): exp overflows for x below -log(max) (-88.7 in float32)."""
    return -torch.log(1 + torch.exp(-input))


def _relu_with_a_different_tail(input: torch.Tensor) -> torch.Tensor:
    """relu whose 'scalar tail' (the last numel mod 8 elements) maps NaN to 0, as a max(x, 0)
    with the operands swapped would: the vector body propagates NaN."""
    out = torch.relu(input).reshape(-1)
    tail = torch.arange(out.numel()) >= out.numel() - out.numel() % 8
    return torch.where(tail & torch.isnan(out), torch.zeros_like(out), out).reshape(input.shape)


def _offset_case(spec: gs.OpSpec, ratio: str) -> gs.Case:
    """The typical sized case with its input replaced by the hard tier's offset scenario at
    mean / spread = ``ratio`` (the first generator seed that draws it)."""
    typical = spec.inputs.sized(16)
    shape = typical.arrays["input"].shape
    for seed in range(100):
        x, label = hard.values(np.random.default_rng(seed), shape, "offset", torch.float32,
                               axes=(-1,))
        if label == f"offset/spread {ratio}":
            return hard.rewrite(typical, {"input": x}, label)
    raise AssertionError(f"no seed below 100 draws offset/spread {ratio}")


@pytest.mark.parametrize("planted", ["one-pass variance", "naive exp"])
def test_a_bug_visible_only_on_hard_inputs_fails_the_hard_tier(planted: str) -> None:
    name, bad_fn = {"one-pass variance": ("layer_norm", _one_pass_layer_norm),
                    "naive exp": ("logsigmoid", _naive_logsigmoid)}[planted]
    spec = _record(name)
    bad = dataclasses.replace(spec, torch_fn=bad_fn)
    typical = spec.inputs.sized(16)
    gradcheck.check_forward(bad, typical, torch.float32, "cpu")  # the typical tier passes
    gradcheck.check_gradient(bad, typical, torch.float32, "cpu")
    if planted == "one-pass variance":
        case = _offset_case(spec, "10000")
    else:
        x, label = hard.values(np.random.default_rng(0), typical.arrays["input"].shape, "huge",
                               torch.float32)
        case = hard.rewrite(typical, {"input": x}, label)
    _torch_passes_and_the_plant_fails(spec, bad, case, torch.float32)


def _flushing(fn: Any) -> Any:
    """``fn`` with results below the smallest normal number flushed to 0 (a flush-to-zero
    copy)."""
    def flushed(*args: Any, **kwargs: Any) -> torch.Tensor:
        y = fn(*args, **kwargs)
        return torch.where(y.abs() < torch.finfo(y.dtype).smallest_normal, 0.0 * y, y)
    return flushed


def _one_ulp_off(fn: Any) -> Any:
    """``fn`` with every result moved by one ulp (a copy through a lossy path)."""
    def moved(*args: Any, **kwargs: Any) -> torch.Tensor:
        y = fn(*args, **kwargs)
        return torch.nextafter(y, torch.full_like(y, math.inf))
    return moved


# fold's typical case overlaps its blocks at every output (each a sum of copies, allowed
# (k - 1) u sum|copies| plus a rounding: about an ulp), so only its flush is planted.
_COPY_PLANTS = [(name, planted) for name in ("constant_pad2d", "replication_pad1d",
                                             "pixel_shuffle", "fold", "unfold", "max_unpool2d",
                                             "flatten")
                for planted in ("flush to zero", "one ulp") if (name, planted) != ("fold",
                                                                                   "one ulp")]


@pytest.mark.parametrize(("name", "planted"), _COPY_PLANTS)
@pytest.mark.parametrize("precision", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_a_copy_that_is_not_exact_fails_the_hard_tier(name: str, planted: str,
                                                      precision: torch.dtype) -> None:
    """Ops that only move values (conditioning.Copies) must copy exactly: a subnormal flushed
    to 0, or a copy one ulp off, fails the hard tier, where the typical tier's relative row
    and absolute floor (1e-5 in float32) let both pass; torch passes the same case."""
    spec = _record(name)
    typical = spec.inputs.sized(16)
    scenario = "subnormal" if planted == "flush to zero" else "offset"
    x, label = hard.values(np.random.default_rng(0), typical.arrays["input"].shape, scenario,
                           precision)
    case = hard.rewrite(typical, {"input": x}, label)
    bad = dataclasses.replace(spec, torch_fn=(_flushing if planted == "flush to zero"
                                              else _one_ulp_off)(spec.torch_fn))
    _torch_passes_and_the_plant_fails(spec, bad, case, precision)


def test_a_scalar_tail_unlike_the_vector_body_fails_the_hard_tier() -> None:
    spec = _record("relu")
    bad = dataclasses.replace(spec, torch_fn=_relu_with_a_different_tail)
    typical = spec.inputs.sized(16)
    gradcheck.check_forward(bad, typical, torch.float32, "cpu")
    gradcheck.check_gradient(bad, typical, torch.float32, "cpu")
    hardcheck.check_special_positions(spec, "nan", torch.float32, "cpu")
    with pytest.raises(AssertionError):
        hardcheck.check_special_positions(bad, "nan", torch.float32, "cpu")


def test_gaussian_nll_allowance_does_not_hide_a_variance_off_by_a_thousandth() -> None:
    """The derived conditioning of gaussian_nll_loss (suite.conditioning.GAUSSIAN_NLL) allows
    what the cancellations in log v + (x - t)^2 / v and its var gradient cost a correct float32
    kernel, not a variance read 0.1 % too large."""
    spec = _record("gaussian_nll_loss")

    def off(input: torch.Tensor, target: torch.Tensor, var: torch.Tensor,
            **options: object) -> torch.Tensor:
        return F.gaussian_nll_loss(input, target, var * 1.001, **options)  # type: ignore[arg-type]

    case = spec.inputs.sized(64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HypothesisDeprecationWarning)
        hardcheck.check_hard(spec, case, torch.float32, "cpu")
        with pytest.raises(AssertionError, match="on a hard input"):
            hardcheck.check_hard(dataclasses.replace(spec, torch_fn=off), case, torch.float32,
                                 "cpu")


@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16])
def test_cross_entropy_allowance_does_not_hide_logits_off_by_five_percent(
        half: torch.dtype) -> None:
    """cross_entropy's allowances (suite.conditioning.CROSS_ENTROPY: the input gradient carries
    the rounding of the log-probabilities torch keeps in the half type, u M(log p) relative on
    each p) do not hide a softmax of logits 5 % too large."""
    # torch releases without this half-precision CPU kernel skip, with torch's words.
    with higher.skip_if_unsupported(half, "cpu"):
        spec = _record("cross_entropy")

        def hot(input: torch.Tensor, target: torch.Tensor, **options: object) -> torch.Tensor:
            return F.cross_entropy(input * 1.05, target, **options)  # type: ignore[arg-type]

        case = spec.inputs.sized(64)
        _torch_passes_and_the_plant_fails(spec, dataclasses.replace(spec, torch_fn=hot), case,
                                          half)


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_TORCH_2_13}: float16 cross_entropy with label_smoothing > 0 sums "
                          "the smoothing term over the targets in float16 before dividing: inf "
                          "for a mean of 3.345 over 10^4 rows")
def test_float16_cross_entropy_with_label_smoothing_over_many_rows() -> None:
    """The mean loss of 10^4 rows of 4 classes at scale 3 is about 3.35 and float16 holds it;
    float32 and bfloat16 give 3.345 and 3.375."""
    # torch releases without this half-precision CPU kernel skip, with torch's words.
    with higher.skip_if_unsupported(torch.float16, "cpu"):
        rng = torch.Generator().manual_seed(0)
        x = torch.randn(10000, 4, generator=rng) * 3
        t = torch.randint(0, 4, (10000,), generator=rng)
        reference = float(F.cross_entropy(x.double(), t, label_smoothing=0.1))
        got = float(F.cross_entropy(x.half(), t, label_smoothing=0.1))
        assert abs(got - reference) <= 1e-2 * abs(reference), (got, reference)


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_TORCH_2_13}: multilabel_soft_margin_loss rounds each sample's sum "
                          "over its classes to float16 before dividing by C: inf for a loss of "
                          "36000 (the hard tier found 18070)")
def test_float16_multilabel_soft_margin_loss_of_large_margins() -> None:
    """A sample of 8 classes at x = 3000 with target 0 and weight 12 loses 12 * 3000 = 36000 per
    class, and the loss, their mean, is 36000: float16 holds it (max 65504); the class sum
    288000 does not. float32 gives 36000."""
    with higher.skip_if_unsupported(torch.float16, "cpu"):
        x, t, w = torch.full((1, 8), 3000.0), torch.zeros(1, 8), torch.full((8,), 12.0)
        reference = float(F.multilabel_soft_margin_loss(x.double(), t.double(), w.double()))
        got = float(F.multilabel_soft_margin_loss(x.half(), t.half(), w.half()))
        assert abs(got - reference) <= 1e-3 * abs(reference), (got, reference)


@pytest.mark.parametrize("log_input", [True, False])
def test_poisson_nll_allowance_does_not_hide_a_rate_off_by_a_percent(log_input: bool) -> None:
    """poisson_nll_loss's derived conditioning (suite.conditioning.POISSON_NLL) allows the
    cancellation of a rate near its count, not a rate read 1 % too large (0.1 % passes the
    log_input=False case of 64 x 64: the hard allowance's (n + 8) u_acc with n = 4096 terms is
    2.5e-4 of M on every element)."""
    spec = _record("poisson_nll_loss")

    def off(input: torch.Tensor, target: torch.Tensor, **options: object) -> torch.Tensor:
        rate = input + math.log(1.01) if options.get("log_input", True) else input * 1.01
        return F.poisson_nll_loss(rate, target, **options)  # type: ignore[arg-type]

    typical = spec.inputs.sized(64)
    case = dataclasses.replace(typical, options={**typical.options, "log_input": log_input},
                               arrays={**typical.arrays, "input": np.abs(typical.arrays["input"])
                                       + 0.5})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HypothesisDeprecationWarning)
        hardcheck.check_hard(spec, case, torch.float32, "cpu")
        with pytest.raises(AssertionError, match="on a hard input"):
            hardcheck.check_hard(dataclasses.replace(spec, torch_fn=off), case, torch.float32,
                                 "cpu")


# --- recurrent gates: derivatives formed from rounded activations (suite/conditioning.py,
# RecurrentGates). A GRU cell step whose update gate sits at pre-activation 0.145 * 88.25 = 12.8
# (1 - z = 2.8e-6: z's float32 rounding moves z (1 - z) by up to u / (1 - z) = 2 % relative)
# and whose h - n is ~89, so that dW_iz = dh' (h - n) z (1 - z) x carries that error times
# 89 * 88.25: torch 2.13.0's correct float32 kernel was off by 2.4e-5 there (2026-12-01), past
# the rest of the allowance (1e-5 + 6e-7), and so is the reference's own BPTT on correctly
# rounded float32 activations.

def _saturated_gru_step() -> gs.Case:
    return gs.Case({"input": np.array([[88.25]]),
                    "weight_ih": np.array([[-0.01], [0.145], [0.005]]),
                    "weight_hh": np.array([[0.003], [0.0], [0.007]]),
                    "h_0": np.array([[90.0]])},
                   ("input", "weight_ih", "weight_hh", "h_0"), {}, 0,
                   "exp edge: an update gate at pre-activation 12.8")


def _activations_rounded_to_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the reference's BPTT form every gate derivative from its activation rounded to
    float32, as a correct float32 kernel does (the forward's values stay exact)."""
    from references import recurrent

    step = recurrent._step
    saved = ("r", "z", "n", "i", "f", "g", "o", "tc", "h_new")

    def rounded(*args: object, **kwargs: object) -> tuple[object, dict[str, np.ndarray]]:
        new, cache = step(*args, **kwargs)  # type: ignore[arg-type]
        return new, {k: v.astype(np.float32).astype(np.float64) if k in saved else v
                     for k, v in cache.items()}

    monkeypatch.setattr(recurrent, "_step", rounded)


@pytest.mark.parametrize("spec", [*(s for s in catalog.OPS if s.gates is not None),
                                  *recurrent_records.PACKED], ids=catalog.spec_id)
def test_gate_bound_covers_derivatives_formed_from_float32_activations(
        spec: gs.OpSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    """RecurrentGates bounds what rounding every saved activation to float32 moves each
    gradient by (torch-free: the reference's own BPTT on rounded activations), on exp-edge
    inputs of each recurrent record (packed sequences too); and for the saturated GRU step that
    movement exceeds what the hard tier allows without the bound."""
    name = spec.name
    typical = spec.inputs.sized(3)
    x, label = hard.values(np.random.default_rng(1), typical.arrays["input"].shape, "exp edge",
                           torch.float32, power=2)
    cases = [hard.rewrite(typical, {"input": x}, label)]
    if name == "gru_cell":
        cases.append(_saturated_gru_step())
    for case in cases:
        case = case.rounded_to(torch.float32)
        g = gradcheck.cotangent(case, np.shape(spec.reference(case)))
        exact = spec.reference_vjp(g, case, as_torch=True)
        assert spec.gates is not None
        bound = spec.gates.vjp(spec, g, case, torch.float32)
        with monkeypatch.context() as m:
            _activations_rounded_to_float32(m)
            moved = spec.reference_vjp(g, case, as_torch=True)
        for arg in case.differentiable:
            off = np.abs(moved[arg] - exact[arg])
            assert np.all(off <= bound[arg] + 1e-30), (name, arg, float(np.max(off - bound[arg])))
    if name == "gru_cell":  # the last case: the saturated step
        row = spec.tolerance(tols.Kind.GRADIENT, torch.float32)
        off = np.abs(moved["weight_ih"] - exact["weight_ih"])
        assert np.any(off > row.rtol * np.abs(exact["weight_ih"]) + row.atol), np.max(off)


def _sigmoid_backward_from(kind: str) -> type[torch.autograd.Function]:
    """sigmoid whose backward forms sigma' from the saved output rounded to float16, or with
    the wrong sign."""

    class Sigmoid(torch.autograd.Function):
        @staticmethod
        def forward(ctx: torch.autograd.function.FunctionCtx, a: torch.Tensor) -> torch.Tensor:
            s = torch.sigmoid(a)
            ctx.save_for_backward(s)  # type: ignore[attr-defined]
            return s

        @staticmethod
        def backward(ctx: torch.autograd.function.FunctionCtx,
                     g: torch.Tensor) -> torch.Tensor:
            (s,) = ctx.saved_tensors  # type: ignore[attr-defined]
            if kind == "float16 sigma":
                s = s.to(torch.float16).to(g.dtype)
            slope = s * (1 - s)
            return -g * slope if kind == "wrong sign" else g * slope

    return Sigmoid


def _gru_cell_with(kind: str) -> object:
    """torch's CPU GRU cell (h' = n + z (h - n)) from composite ops, its gates' sigmoid
    :func:`_sigmoid_backward_from` ``kind`` ("none": correct)."""
    sigmoid = _sigmoid_backward_from(kind).apply

    def cell(input: torch.Tensor, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
             bias_ih: torch.Tensor | None = None, bias_hh: torch.Tensor | None = None,
             h_0: torch.Tensor | None = None, c_0: torch.Tensor | None = None) -> torch.Tensor:
        h = torch.zeros(input.shape[0], weight_hh.shape[1], dtype=input.dtype) \
            if h_0 is None else h_0
        ir, iz, i_n = F.linear(input, weight_ih, bias_ih).chunk(3, -1)
        hr, hz, h_n = F.linear(h, weight_hh, bias_hh).chunk(3, -1)
        r, z = sigmoid(ir + hr), sigmoid(iz + hz)
        n = torch.tanh(i_n + r * h_n)
        return (n + z * (h - n)).reshape(-1)

    return cell


@pytest.mark.parametrize("planted", ["none", "float16 sigma", "wrong sign"])
def test_a_wrong_gate_derivative_fails_the_hard_tier(planted: str) -> None:
    """The gate term allows what a float32 kernel's rounded activations cost (torch passes the
    saturated GRU step, and so does the planted cell without a bug), not sigma' formed from a
    float16 activation (2^-11 / (1 - z): 18 % of z (1 - z) here, 200x the bound's rho / (1 - z))
    nor a gate derivative of the wrong sign."""
    spec = _record("gru_cell")
    case = _saturated_gru_step()
    planted_spec = dataclasses.replace(spec, torch_fn=_gru_cell_with(planted))
    with warnings.catch_warnings():  # hardcheck's assume() outside a Hypothesis test
        warnings.simplefilter("ignore", HypothesisDeprecationWarning)
        hardcheck.check_hard(spec, case, torch.float32, "cpu")
        if planted == "none":
            hardcheck.check_hard(planted_spec, case, torch.float32, "cpu")
            return
        with pytest.raises(AssertionError, match=r"VJP w\.r\.t\. weight_ih on a hard input"):
            hardcheck.check_hard(planted_spec, case, torch.float32, "cpu")


def _mse_summed_in_float16(input: torch.Tensor, target: torch.Tensor,
                           reduction: str = "mean") -> torch.Tensor:
    """mse_loss whose reduction accumulates term by term in the input's dtype (torch
    accumulates half precision in float32): in float16 a running sum past 2048 stops taking
    terms below its half ulp."""
    squares = ((input - target) ** 2).detach().cpu().numpy().ravel()
    total = np.add.accumulate(squares, dtype=squares.dtype)[-1] if squares.size else 0.0
    out = torch.tensor(total, dtype=input.dtype) + 0 * (input - target).sum()  # keeps a graph
    return out / squares.size if reduction == "mean" else out


def test_a_reduction_accumulated_in_float16_fails_the_long_reduction() -> None:
    # torch releases without this half-precision CPU kernel skip, with torch's words.
    with higher.skip_if_unsupported(torch.float16, "cpu"):
        spec = _record("mse_loss")
        bad = dataclasses.replace(spec, torch_fn=_mse_summed_in_float16)
        rng = np.random.default_rng(0)
        typical = gs.Case({"input": rng.standard_normal((4, 4)),
                           "target": rng.standard_normal((4, 4))},
                          ("input", "target"), {"reduction": "sum"}, 0)
        # 16 terms: float16 holds the sum
        gradcheck.check_forward(bad, typical, torch.float16, "cpu")
        n = hard.long_terms()
        long = gs.Case({"input": rng.standard_normal(n), "target": rng.standard_normal(n)},
                       ("input", "target"), {"reduction": "sum"}, 0)
        # torch accumulates in float32: it passes; the float16 accumulation fails
        _torch_passes_and_the_plant_fails(spec, bad, long, torch.float16)


# --- torch 2.2.2's defects that 2.13.0 has not (KNOWN_DIFFERENCES.md, "Older torch: the hard
# tier on 2.2.2"; suite/versions.py names each flag and the releases measured). Each test
# states the right behaviour: on a torch where the flag is off it must pass, and where it is on
# it is a strict xfail, so a release that fixes the defect (or one the flag gets wrong) shows up
# as an unexpected pass.

_OLDER = "torch before 2.13 (2.2.2 measured; KNOWN_DIFFERENCES.md, 'Older torch: the hard tier')"


@pytest.mark.xfail(versions.ELU_EXP_MINUS_ONE, strict=True, raises=AssertionError,
                   reason=f"{_OLDER}: elu, celu, selu form exp(x) - 1 for x < 0: 0 for "
                          "x = -7.5e-36, 1.3e-5 relative at x = -0.0022 (float32)")
@pytest.mark.parametrize("op", ["elu", "celu", "selu"])
@pytest.mark.parametrize("precision", [torch.float32, torch.float64])
def test_elu_family_small_negative_inputs_keep_relative_precision(
        op: str, precision: torch.dtype) -> None:
    """alpha expm1(x) has no cancellation: a few ulp relative even for tiny |x|."""
    from references import activations as ref_act

    tiny = -7.5419686e-36 if precision == torch.float32 else -1e-300
    x = np.array([tiny, -0.002208076, -1e-3, -0.3, -2.0])
    x = torch.tensor(x, dtype=precision).double().numpy()  # the values the dtype holds
    got = getattr(F, op)(torch.tensor(x, dtype=precision)).double().numpy()
    expected = getattr(ref_act, op)(x)
    eps = torch.finfo(precision).eps
    rel = np.abs(got - expected) / np.abs(expected)
    assert np.all(rel <= 4 * eps), (op, str(precision), x, got, expected, rel)


@pytest.mark.xfail(versions.HARDSWISH_VECTOR_AT_3, strict=True, raises=AssertionError,
                   reason="torch before 2.8 (2.0.1 to 2.7.1 measured; KNOWN_DIFFERENCES.md): "
                          "hardswish's gradient at exactly +3 is 1 in the vector body and 3/2 "
                          "in the scalar tail")
@pytest.mark.parametrize("precision", [torch.float64, torch.float32, torch.bfloat16])
def test_hardswish_gradient_at_3_is_the_same_in_body_and_tail(precision: torch.dtype) -> None:
    """Whatever the convention at the kink (docs/conventions.md), every element at +3 gets the
    same gradient: 64 elements (vector body) and 1 element (scalar tail) alike."""
    grads = []
    for n in (64, 1):
        x = torch.full((n,), 3.0, dtype=precision, requires_grad=True)
        F.hardswish(x).sum().backward()
        assert x.grad is not None
        grads.append(x.grad.double().numpy())
    body, tail = grads
    np.testing.assert_array_equal(body, np.full(64, tail[0]))


@pytest.mark.xfail(versions.SOFTSHRINK_NAN_IS_ZERO, strict=True, raises=AssertionError,
                   reason="torch before 2.6 (2.0.1 to 2.5.1 measured; KNOWN_DIFFERENCES.md): "
                          "softshrink of NaN is 0")
@pytest.mark.parametrize("precision", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [1, 64])
def test_softshrink_of_nan_is_nan(precision: torch.dtype, n: int) -> None:
    x = torch.full((n,), float("nan"), dtype=precision)
    assert torch.isnan(F.softshrink(x)).all(), F.softshrink(x)


@pytest.mark.xfail(versions.LOG_SOFTMAX_HALF_INNER_OVERFLOWS, strict=True,
                   raises=AssertionError,
                   reason=f"{_OLDER}: float16/bfloat16 log_softmax along a dimension that is "
                          "not the last: -inf and inf where elements differ by more than ~89")
@pytest.mark.parametrize("precision", [torch.float16, torch.bfloat16])
def test_half_log_softmax_over_a_single_element_dimension_is_zero(
        precision: torch.dtype) -> None:
    """log_softmax over a dimension of size 1 is x - x = 0 whatever x. 64 positions: the
    vectorised body of the AVX2 and the AVX512 kernels (the hard tier's (1, 29) case of seed 22
    reached AVX2's only, and passed on an AVX512 machine)."""
    row = [-100.0, 100.0, 100.0, -100.0, -100.0, -100.0, -100.0, 100.0, 100.0, -100.0, -100.0,
           -100.0, -100.0, -100.0, 100.0, -100.0, 100.0, 100.0, -100.0, -100.0, 100.0, 100.0,
           -100.0, -100.0, 100.0, 100.0, 100.0, -100.0, -100.0]
    x = torch.tensor([(row * 3)[:64]], dtype=precision)  # (1, 64), dim 0
    np.testing.assert_array_equal(F.log_softmax(x, 0).float().numpy(), np.zeros((1, 64)))


@pytest.mark.xfail(versions.CTC_EMPTY_INPUT_WRONG, strict=True, raises=AssertionError,
                   reason=f"{_OLDER}: ctc_loss of a zero-length input is inf for an empty "
                          "target and finite for a non-empty one")
def test_ctc_loss_of_an_empty_input() -> None:
    """No frames: the empty target has the one (empty) alignment, loss -log 1 = 0; a target of
    one label has none, loss inf (torch's docs: zero_infinity=False keeps inf)."""
    log_probs = torch.log_softmax(torch.tensor([[[0.5, -1.0, 0.25], [1.0, 0.0, -0.5]]],
                                               dtype=torch.float64), -1)  # (T=1, N=2, C=3)
    targets = torch.tensor([[1], [2]])
    # (input lengths, target lengths, the sequence without frames, its loss)
    for inputs, labels, empty, expected in (([0, 1], [0, 1], 0, 0.0), ([1, 0], [1, 0], 1, 0.0),
                                            ([0, 1], [1, 1], 0, float("inf"))):
        loss = F.ctc_loss(log_probs, targets, torch.tensor(inputs), torch.tensor(labels),
                          reduction="none")
        assert float(loss[empty]) == expected, (inputs, labels, loss.tolist())


@pytest.mark.xfail(versions.LP_POOL_INF_IS_ONE, strict=True, raises=AssertionError,
                   reason=f"{_OLDER}: lp_pool with norm_type inf gives 1, not max |x|")
def test_lp_pool_with_infinite_norm_is_the_window_max() -> None:
    """(sum |x|^p)^(1/p) tends to max |x| as p -> inf; torch's docs: at p = inf, max pooling."""
    x = torch.tensor([[0.25, 0.5, 3.0, 0.75]], dtype=torch.float64)
    np.testing.assert_array_equal(F.lp_pool1d(x, float("inf"), 2).numpy(), [[0.5, 3.0]])


@pytest.mark.xfail(versions.ADAPTIVE_MAX_POOL_HALF_INDEX_ROUNDED, strict=True,
                   raises=AssertionError,
                   reason=f"{_OLDER}: adaptive_max_pool1d/2d in bfloat16 round the argmax index "
                          "to bfloat16 (9999 -> 9984)")
@pytest.mark.parametrize("d", [1, 2])
def test_half_adaptive_max_pool_returns_the_argmax_index(d: int) -> None:
    """The index of a plane of 10^4 elements whose maximum is the last: 9999, exactly (an
    int64), and the gradient there. The index stays inside the plane (299 -> 300 past a plane
    of 300 corrupted 2.2.2's heap), so the test cannot crash."""
    x = torch.zeros(10000, dtype=torch.bfloat16)
    x[-1] = 1.0  # the one maximum
    x = x.reshape(1, *((10000,) if d == 1 else (100, 100))).requires_grad_()
    pool = F.adaptive_max_pool1d if d == 1 else F.adaptive_max_pool2d
    y, index = pool(x, 1, return_indices=True)
    y.sum().backward()
    assert index.flatten().tolist() == [9999]
    assert torch.nonzero(x.grad.flatten()).flatten().tolist() == [9999]


@pytest.mark.xfail(versions.INSTANCE_NORM_WRITES_UNUSED_STATS, strict=True,
                   raises=RuntimeError,
                   reason=f"{_OLDER}: instance_norm with use_input_stats=False raises 'more "
                          "than one element of the written-to tensor refers to a single memory "
                          "location' for an expanded running statistic it does not update")
def test_instance_norm_reads_expanded_running_statistics() -> None:
    x = torch.tensor([[[1.0, -1.0], [2.0, 0.5]]], dtype=torch.float64)  # (1, 2, 2)
    mean = torch.tensor([0.25], dtype=torch.float64).expand(2)  # stride 0
    var = torch.tensor([2.0], dtype=torch.float64).expand(2)
    out = F.instance_norm(x, mean, var, use_input_stats=False, momentum=0.0)
    expected = (x.numpy() - 0.25) / np.sqrt(2.0 + 1e-5)
    compare.assert_close(out.numpy(), expected, tol=tols.resolve(torch.float64, tols.Kind.FORWARD),
                         what="instance_norm with expanded running statistics", context="float64")


@pytest.mark.xfail(versions.TRANSFORMER_NO_BIAS_FAST_PATH_RAISES, strict=True,
                   raises=AttributeError,
                   reason=f"{_OLDER}: TransformerEncoderLayer(bias=False) in evaluation with "
                          "batch_first and an even nhead reads .device of its None biases")
def test_bias_free_encoder_layer_runs_in_evaluation() -> None:
    """Evaluation without gradients (torch may take its fast path) gives what the same layer
    gives with gradients (the ordinary path)."""
    if not versions.TRANSFORMER_BIAS_ARGUMENT:
        pytest.skip(f"torch {torch.__version__}: TransformerEncoderLayer has no bias argument")
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(4, 2, dim_feedforward=8, dropout=0.0, batch_first=True,
                                       bias=False, dtype=torch.float64).eval()
    src = torch.randn(1, 3, 4, dtype=torch.float64)
    with torch.no_grad():
        fast = layer(src)
    ordinary = layer(src.clone().requires_grad_(True)).detach()
    compare.assert_close(fast.numpy(), ordinary.numpy(),
                         tol=tols.resolve(torch.float64, tols.Kind.FORWARD),
                         what="bias-free encoder layer, no_grad against grad", context="float64")


@pytest.mark.xfail(bool(versions.NO_DERIVATIVE), strict=True, raises=RuntimeError,
                   reason=f"{_OLDER}: 'derivative for channel_shuffle is not implemented'")
def test_channel_shuffle_has_a_derivative() -> None:
    """channel_shuffle permutes channels: the gradient of sum(w * out) is w permuted back."""
    x = torch.randn(1, 4, 2, dtype=torch.float64, requires_grad=True)
    w = torch.arange(8, dtype=torch.float64).reshape(1, 4, 2)
    (F.channel_shuffle(x, 2) * w).sum().backward()
    assert x.grad is not None
    np.testing.assert_array_equal(x.grad.numpy(), w[:, [0, 2, 1, 3]].numpy())


def test_the_layout_check_skips_only_a_missing_derivative_it_was_told_of(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """suite/checks.py skips the layout check with torch's own words only for an op in
    versions.NO_DERIVATIVE; a missing derivative of any other op, or another error, fails."""
    from suite import checks

    spec = _record("relu")
    case = spec.inputs.sized(4)

    def raising(message: str) -> None:
        def check(*args: object) -> None:
            raise RuntimeError(message)
        monkeypatch.setattr(hardcheck, "check_argument_layout", check)

    def run() -> None:
        checks._argument_layout(spec, case, name="input", layout="transposed",
                                dtype=torch.float64, device="cpu")

    monkeypatch.setattr(versions, "NO_DERIVATIVE", frozenset({"planted_op"}))
    raising("derivative for planted_op is not implemented")
    with pytest.raises(pytest.skip.Exception, match="planted_op is not implemented"):
        run()
    raising("derivative for aten::planted_op is not implemented")
    with pytest.raises(pytest.skip.Exception):
        run()
    raising("derivative for other_op is not implemented")
    with pytest.raises(RuntimeError, match="other_op"):
        run()
    raising("planted_op: view size is not compatible with input tensor's size and stride")
    with pytest.raises(RuntimeError, match="view size"):
        run()


def test_special_positions_set_aside_only_recorded_defects() -> None:
    """check_special_positions leaves out the cases a record's known_defects names (and skips,
    naming the defect, when that is every case); a wrong result it was not told of fails."""
    spec = _record("softshrink")

    def nan_to_zero(input: torch.Tensor, lambd: float = 0.5) -> torch.Tensor:
        out = F.softshrink(input, lambd)
        return torch.where(torch.isnan(out), torch.zeros_like(out), out)

    bad = dataclasses.replace(spec, torch_fn=nan_to_zero, known_defects=None)
    with pytest.raises(AssertionError):
        hardcheck.check_special_positions(bad, "nan", torch.float32, "cpu")

    def planted_defect(case: gs.Case, dtype: torch.dtype) -> str | None:
        return "planted: NaN to 0" if np.any(np.isnan(case.arrays["input"])) else None

    recorded = dataclasses.replace(bad, known_defects=planted_defect)
    with pytest.raises(pytest.skip.Exception, match="planted: NaN to 0"):
        hardcheck.check_special_positions(recorded, "nan", torch.float32, "cpu")
    hardcheck.check_special_positions(recorded, "inf", torch.float32, "cpu")  # others still run


@pytest.mark.parametrize("op", ["elu", "celu", "selu"])
def test_exp_minus_one_allowance_does_not_hide_a_result_off_by_a_thousandth(op: str) -> None:
    """The sum |terms| that elu, celu and selu have on torch before 2.13 (alpha (exp(x) + 1),
    suite.conditioning.EXP_MINUS_ONE) allows that formula's cancellation, not a result 0.1 %
    off: the record with those terms passes the installed torch and fails a planted one."""
    from suite import conditioning

    spec = dataclasses.replace(_record(op), terms=conditioning.EXP_MINUS_ONE[op])
    torch_fn = spec.torch_fn

    def off(input: torch.Tensor, **options: object) -> torch.Tensor:
        return torch_fn(input, **options) * 1.001

    typical = spec.inputs.sized(64)
    x = np.linspace(-3.0, 3.0, 64)
    case = dataclasses.replace(typical, arrays={**typical.arrays, "input": x})
    with warnings.catch_warnings():  # hardcheck's assume() outside a Hypothesis test
        warnings.simplefilter("ignore", HypothesisDeprecationWarning)
        hardcheck.check_hard(spec, case, torch.float32, "cpu")
        with pytest.raises(AssertionError, match="on a hard input"):
            hardcheck.check_hard(dataclasses.replace(spec, torch_fn=off), case, torch.float32,
                                 "cpu")


# --- the optimizer hard tier (suite.hard.optimizer_runs) ------------------------------------


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_TORCH_2_13}: Rprop decides a sign change from g_(t-1) * g_t "
                          "formed in float32, which underflows to 0 for gradients of ~1e-30")
@pytest.mark.parametrize("implementation", ["for-loop", "foreach", "differentiable"])
def test_rprop_sign_of_tiny_gradients(implementation: str) -> None:
    """Documented: the step size grows by etaplus where g_(t-1) g_t > 0. Two gradients of
    1e-30 agree in sign, so with etaplus 2 the step size doubles (float64 gives that, and so
    does float32 for gradients of 1e-20)."""
    flags: dict[str, Any] = {"for-loop": {"foreach": False}, "foreach": {"foreach": True},
                             "differentiable": {"differentiable": True}}[implementation]
    leaf = torch.tensor([0.0], requires_grad=True)
    p = leaf.clone() if implementation == "differentiable" else leaf
    opt = torch.optim.Rprop([p], lr=0.0625, etas=(0.5, 2.0), **flags)
    for _ in range(2):
        p.grad = torch.tensor([1e-30])
        opt.step()
    np.testing.assert_array_equal(opt.state[p]["step_size"].numpy(), [0.125])



@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_TORCH_2_13}: SparseAdam forms m + (g - m)(1 - beta1), which in "
                          "float32 loses a gradient far smaller than m: m_t = 0 for g_t = 1.03e5 "
                          "after m = -1.4e13 with beta1 = 0")
def test_sparse_adam_first_moment_with_beta1_zero() -> None:
    """Documented: m_t = beta1 m_(t-1) + (1 - beta1) g_t, which is g_t for beta1 = 0 (float64
    gives it, and so does dense Adam's lerp_ in float32)."""
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SparseAdam([p], lr=0.0625, betas=(0.0, 0.9375))
    index = torch.tensor([[0]])
    for g in (-1.4024109158108416e13, 102696.48586900644):
        p.grad = torch.sparse_coo_tensor(index, torch.tensor([g]), (1,))
        opt.step()
    np.testing.assert_allclose(opt.state[p]["exp_avg"].numpy(), [102696.48586900644],
                               rtol=1e-6)


@pytest.mark.skipif(not hasattr(torch.optim, "Adafactor"),
                    reason=f"torch {torch.__version__} has no optim.Adafactor (new in 2.5)")
@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason=f"{_TORCH_2_13}: Adafactor forms its factored estimate as "
                          "(R @ C) / mean(R); the product of two means of g^2 overflows in "
                          "float32 for |g| > ~4e9, and the step is skipped (g / sqrt(inf) = 0)")
def test_adafactor_factored_estimate_with_large_gradients() -> None:
    """A 1 x 1 parameter: R = C = g^2 (beta2 irrelevant on the first step), the documented
    estimate R C / mean(R) = g^2 = 9.5e25 is representable, so the step is the same as for
    a gradient of 1 (the update is g / sqrt(g^2) = 1 before the clipping, which leaves it), as
    float64 gives."""
    moved = []
    for g in (1.0, 9.74311403e12):
        p = torch.tensor([[0.82161814]], requires_grad=True)
        opt = torch.optim.Adafactor([p], lr=0.0625)
        p.grad = torch.tensor([[g]])
        opt.step()
        moved.append(float(p.detach()[0, 0]))
    np.testing.assert_allclose(moved[1], moved[0], rtol=1e-6)

class _FlushingAdagrad(torch.optim.Adagrad):
    """Adagrad whose kernel flushes gradients below 1e-20 in magnitude to 0 (a 'denormal'
    threshold set far too high): no typical gradient (normal values at scale 1e-3 to 10) is
    that small, while the hard tier's spanning gradients are, for about 40 % of the elements."""

    def step(self, closure: Any = None) -> Any:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad = torch.where(p.grad.abs() < 1e-20, torch.zeros_like(p.grad), p.grad)
        return super().step(closure)


def test_an_optimizer_bug_visible_only_on_hard_runs_fails_the_hard_tier() -> None:
    """Item 3 for optimizers: the flushing Adagrad passes the typical lockstep check and fails
    the hard one on the same run made hard (spanning gradients: its state['sum'] is 0 where every
    gradient an element had was flushed and the reference's is the sum of their squares,
    ~1e-40..1e-200, judged relatively by the hard tier; the typical row's atol would hide
    it); torch's Adagrad passes both."""
    from suite import optimcheck
    from suite.specs import OptimizerRun

    spec = next(s for s in catalog.OPTIMIZERS if s.name == "adagrad")
    bad = dataclasses.replace(spec, torch_cls=_FlushingAdagrad)
    rng = np.random.default_rng(3)
    # Two steps, so that some elements' whole history is below the threshold (each of 28
    # elements with probability 0.4^2); with more steps a large square dwarfs the lost ones.
    shapes = [(16,), (3, 4)]
    grads: list[list[Any]] = [[rng.standard_normal(s) * 1e-3 for s in shapes] for _ in range(2)]
    typical = OptimizerRun(params=[rng.standard_normal(s) for s in shapes], grads=grads,
                           hyper={"lr": 0.01, "lr_decay": 0.0, "weight_decay": 0.0,
                                  "initial_accumulator_value": 0.0, "eps": 1e-10,
                                  "maximize": False}, seed=3)
    hard_run = hard.harden(typical, "spanning gradients", torch.float64)
    for dtype in (torch.float32, torch.float64):
        optimcheck.check_run(bad, typical, "for-loop", dtype, "cpu")  # the typical tier passes
    optimcheck.check_run(spec, hard_run, "for-loop", torch.float64, "cpu", hard=True)
    with pytest.raises(AssertionError, match=r"state\[.sum.\]"):
        optimcheck.check_run(bad, hard_run, "for-loop", torch.float64, "cpu", hard=True)



def test_a_gate_bound_outside_float64s_range_adds_nothing() -> None:
    """Inputs near 1e153 square to inf and meet saturated gates' zero derivatives: NaN and inf
    elements of the bound add no allowance (a NaN failed every comparison: torch 2.14.1's lstm
    at |x| 1.7e153 was 2e-16 off relatively and failed)."""
    slack, _ = hardcheck._with_gates(np.ones(3), "rows", np.array([np.nan, np.inf, 2.0]), (3,))
    assert slack is not None and slack.tolist() == [1.0, 1.0, 3.0]


def _output_scaled(fn: Any, factor: float) -> Any:
    """``fn`` whose (first) output is ``factor`` times torch's."""
    def scaled(*args: Any, **kwargs: Any) -> Any:
        y = fn(*args, **kwargs)
        return (y[0] * factor, *y[1:]) if isinstance(y, tuple) else y * factor
    return scaled


@pytest.mark.parametrize("scenario", ["offset", "ties", "constant"])
@pytest.mark.parametrize("name", ["multi_head_attention", "transformer_encoder_layer",
                                  "transformer_decoder_layer"])
def test_attention_allowance_does_not_hide_an_output_off_by_a_thousandth(
        name: str, scenario: str) -> None:
    """The attention and transformer layers' derived bounds (conditioning,
    MultiheadAttentionTerms, TransformerLayerTerms: first order, loose where large offsets
    cancel) pass torch on a hard float32 input and still fail an output 0.1 % off."""
    spec = _record(name)
    typical = spec.inputs.sized(16)
    key = typical.differentiable[0]
    x, label = hard.values(np.random.default_rng(0), typical.arrays[key].shape, scenario,
                           torch.float32, power=2, axes=(-1,))
    case = hard.rewrite(typical, {key: x}, label)
    bad = dataclasses.replace(spec, torch_fn=_output_scaled(spec.torch_fn, 1 + 1e-3))
    _torch_passes_and_the_plant_fails(spec, bad, case, torch.float32)


def _reads_weight_as_contiguous(input: torch.Tensor, weight: torch.Tensor,
                                bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear that reads ``weight``'s storage as if the tensor were contiguous: the planted
    stride bug of a kernel that ignores a view's strides (right on a contiguous weight)."""
    rows, cols = weight.shape
    return F.linear(input, weight.as_strided((rows, cols), (cols, 1)), bias)


@pytest.mark.parametrize("planted", [False, True], ids=["torch", "planted"])
def test_the_layout_check_fails_a_kernel_that_ignores_a_views_strides(planted: bool) -> None:
    """The layout check passes torch's linear with a transposed weight and fails a linear that
    reads the transposed weight's storage in contiguous order, in its forward."""
    spec = _record("linear")
    case = spec.inputs.sized(6)
    assert case.arrays["weight"].ndim == 2 and min(case.arrays["weight"].shape) > 1
    if not planted:
        hardcheck.check_argument_layout(spec, case, "weight", "transposed", torch.float64, "cpu")
        return
    bad = dataclasses.replace(spec, torch_fn=_reads_weight_as_contiguous)
    with pytest.raises(AssertionError, match="weight as a transposed view: forward"):
        hardcheck.check_argument_layout(bad, case, "weight", "transposed", torch.float64, "cpu")
