"""Layer behaviour the generic record checks cannot express: batch_norm's running statistics,
dropout with torch's own mask, embedding's gradient conventions, attention's mask spellings.

Every comparison goes through ``suite.compare`` with the tolerances of ``suite.tolerances``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from references import layers as ref_layers
from references import norms as ref_norms
from suite import catalog, compare, versions
from suite import gradcheck as gc
from suite import tolerances as tols
from suite.devices import dtype_name
from suite.specs import Array, Case, OpSpec
from suite.strategies import SEEDS

ATTENTION = catalog.by_name("scaled_dot_product_attention")


def _np_dtype(dtype: torch.dtype) -> np.dtype:
    return torch.empty((), dtype=dtype).numpy().dtype


def _rounded(a: Array, dtype: torch.dtype) -> Array:
    return a.astype(_np_dtype(dtype)).astype(np.float64)


def _close(actual: torch.Tensor | Array, expected: Array, kind: tols.Kind, dtype: torch.dtype,
           what: str, case: str) -> None:
    __tracebackhide__ = True
    a = compare.to_numpy(actual) if isinstance(actual, torch.Tensor) else actual
    compare.assert_close(a, expected, tol=tols.resolve(dtype, kind), what=what,
                         context=f"{dtype_name(dtype)}, shape={tuple(expected.shape)}",
                         case=case)


# --- batch_norm running statistics ---------------------------------------------------------


@given(shape=st.sampled_from([(4, 3), (2, 3, 5), (3, 2, 4, 4), (2, 1)]),
       momentum=st.floats(0.0, 1.0), steps=st.integers(1, 4), seed=SEEDS)
def test_batch_norm_running_stats_follow_the_documented_update(
        shape: tuple[int, ...], momentum: float, steps: int, seed: int, dtype: torch.dtype,
        device: str) -> None:
    """After each training-mode call running_mean/var equal (1 - m) old + m batch statistic
    (unbiased variance); then an eval-mode call normalizes with those running statistics."""
    rng = np.random.default_rng(seed)
    c = shape[1]
    mean, var = _rounded(rng.standard_normal(c), dtype), _rounded(rng.uniform(0.5, 2, c), dtype)
    t_mean = torch.tensor(mean, dtype=dtype, device=device)
    t_var = torch.tensor(var, dtype=dtype, device=device)
    case = f"  input shape {shape}, momentum {momentum}, {steps} steps, seed {seed}"
    for step in range(steps):
        x = _rounded(rng.standard_normal(shape) * 2 + 1, dtype)
        F.batch_norm(torch.tensor(x, dtype=dtype, device=device), t_mean, t_var,
                     training=True, momentum=momentum)
        mean, var = ref_norms.batch_norm_running_stats(x, mean, var, momentum)
        for name, actual, expected in (("running_mean", t_mean, mean), ("running_var", t_var,
                                                                        var)):
            _close(actual, expected, tols.Kind.FORWARD, dtype,
                   f"batch_norm: {name} after training step {step + 1}", case)
        # the next step starts from torch's buffers, so errors do not compound
        mean, var = compare.to_numpy(t_mean), compare.to_numpy(t_var)
    x = _rounded(rng.standard_normal(shape), dtype)
    out = F.batch_norm(torch.tensor(x, dtype=dtype, device=device), t_mean, t_var,
                       training=False)
    _close(out, ref_norms.batch_norm(x, mean, var, training=False), tols.Kind.FORWARD, dtype,
           "batch_norm: eval-mode output with the running statistics", case)


@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
def test_batch_norm_of_an_empty_unbatched_input(training: bool, dtype: torch.dtype,
                                                device: str) -> None:
    """F.batch_norm accepts an empty 1-D input (no channel dimension: the statistics hold 0
    elements; no weight or bias, which torch then fails to index) and returns an empty result
    and gradient. The record's input maker cannot draw it: the module form nn.BatchNorm1d
    rejects 1-D inputs."""
    spec = catalog.by_name("batch_norm")
    assert isinstance(spec, OpSpec)
    arrays = {"input": np.zeros(0), "running_mean": np.zeros(0), "running_var": np.ones(0)}
    case = Case(arrays, ("input",), {"training": training, "momentum": 0.1, "eps": 1e-5}, 0)
    gc.check_forward(spec, case, dtype, device)
    gc.check_gradient(spec, case, dtype, device)
    gc.check_reference_vjp(spec, case)


# --- dropout with torch's mask -------------------------------------------------------------


@given(shape=st.sampled_from([(64,), (8, 16), (2, 3, 17)]),
       p=st.one_of(st.sampled_from([0.0, 0.5]), st.floats(0.05, 0.95)), seed=SEEDS)
def test_dropout_scales_the_kept_elements(shape: tuple[int, ...], p: float, seed: int,
                                          dtype: torch.dtype, device: str) -> None:
    """F.dropout's mask cannot be replayed, so it is recovered: x has no zeros, hence
    mask = (out != 0). Checked given that mask: out = x * mask / (1 - p) and
    dL/dx = g * mask / (1 - p) (references.layers.dropout). What this does not check: that the
    mask is Bernoulli(1 - p) (a statistical question, not an arithmetic one)."""
    rng = np.random.default_rng(seed)
    x = _rounded(np.abs(rng.standard_normal(shape)) + 0.1, dtype) * rng.choice([-1, 1], shape)
    g = _rounded(rng.standard_normal(shape), dtype)
    t = torch.tensor(x, dtype=dtype, device=device, requires_grad=True)
    torch.manual_seed(seed)
    out = F.dropout(t, p, training=True)
    out.backward(torch.tensor(g, dtype=dtype, device=device))
    mask = (compare.to_numpy(out) != 0).astype(np.float64)
    case = f"  input shape {shape}, p={p}, seed {seed}, {int(mask.sum())} of {mask.size} kept"
    _close(out, ref_layers.dropout(x, mask, p), tols.Kind.FORWARD, dtype,
           "dropout: output given torch's mask", case)
    _close(t.grad, ref_layers.dropout_vjp(g, x, mask, p)["input"], tols.Kind.GRADIENT, dtype,
           "dropout: VJP w.r.t. input given torch's mask", case)


def test_dropout_edge_probabilities(dtype: torch.dtype, device: str) -> None:
    """p = 1 drops everything (zeros, not 0/0); p = 0 and training=False are the identity."""
    x = torch.linspace(-2, 2, 12, dtype=dtype, device=device).reshape(3, 4)
    ones = np.ones((3, 4))
    xs = compare.to_numpy(x)
    _close(F.dropout(x, 1.0), ref_layers.dropout(xs, 0 * ones, 1.0), tols.Kind.FORWARD, dtype,
           "dropout: p = 1", "  linspace(-2, 2, 12)")
    _close(F.dropout(x, 0.0), ref_layers.dropout(xs, ones, 0.0), tols.Kind.FORWARD, dtype,
           "dropout: p = 0", "  linspace(-2, 2, 12)")
    _close(F.dropout(x, 0.7, training=False), xs, tols.Kind.FORWARD, dtype,
           "dropout: training=False", "  linspace(-2, 2, 12)")


# --- embedding gradient conventions --------------------------------------------------------


@given(num=st.integers(2, 10), dim=st.integers(1, 5), positions=st.integers(1, 30),
       padding=st.integers(-10, 9), scale_grad_by_freq=st.booleans(), seed=SEEDS)
def test_embedding_padding_idx_and_scale_grad_by_freq(
        num: int, dim: int, positions: int, padding: int, scale_grad_by_freq: bool, seed: int,
        dtype: torch.dtype, device: str) -> None:
    """The forward reads the padding row like any other; its gradient row is exactly 0 (a
    negative padding_idx counts from the end); with scale_grad_by_freq each row's gradient is
    divided by the row's count in the input. Indices repeat and hit the padding row."""
    padding_idx = padding % num if padding >= num or padding < -num else padding
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, num, positions)
    idx[0] = padding_idx % num  # the padding row is always looked up
    weight = _rounded(rng.standard_normal((num, dim)), dtype)
    w = torch.tensor(weight, dtype=dtype, device=device, requires_grad=True)
    options = {"padding_idx": padding_idx, "scale_grad_by_freq": scale_grad_by_freq}
    out = F.embedding(torch.tensor(idx, device=device), w, **options)
    g = _rounded(rng.standard_normal((positions, dim)), dtype)
    out.backward(torch.tensor(g, dtype=dtype, device=device))
    case = f"  weight ({num}, {dim}), {positions} indices, options {options}, seed {seed}"
    _close(out, ref_layers.embedding(idx, weight, **options), tols.Kind.FORWARD, dtype,
           "embedding: forward with padding_idx", case)
    expected = ref_layers.embedding_vjp(g, idx, weight, **options)["weight"]
    _close(w.grad, expected, tols.Kind.GRADIENT, dtype, "embedding: VJP w.r.t. weight", case)
    assert w.grad is not None and not w.grad[padding_idx].any(), \
        f"embedding: gradient row padding_idx={padding_idx} is not exactly 0\nCase:\n{case}"


# --- attention masks -----------------------------------------------------------------------


@given(lq=st.integers(1, 6), sk=st.integers(1, 6), seed=SEEDS)
def test_attention_mask_spellings_agree(lq: int, sk: int, seed: int, dtype: torch.dtype,
                                        device: str) -> None:
    """is_causal equals the explicit boolean lower-triangular (upper-left aligned) mask, and a
    boolean mask equals the additive float mask with -inf where it is False: forward and
    gradients w.r.t. query, key and value, each against the reference."""
    rng = np.random.default_rng(seed)
    q, k, v = (_rounded(rng.standard_normal((2, n, 4)), dtype) for n in (lq, sk, sk))
    causal = np.tril(np.ones((lq, sk), dtype=bool))
    spellings = {"is_causal": ({}, {"is_causal": True}),
                 "boolean tril mask": ({"attn_mask": causal}, {}),
                 "additive -inf mask": ({"attn_mask": np.where(causal, 0.0, -np.inf)}, {})}
    g = _rounded(rng.standard_normal((2, lq, 4)), dtype)
    expected_out = ATTENTION.ref(q, k, v, is_causal=True)
    expected = ATTENTION.ref_vjp(g, q, k, v, is_causal=True)
    for label, (masks, options) in spellings.items():
        tensors = {name: torch.tensor(a, dtype=dtype, device=device, requires_grad=True)
                   for name, a in (("query", q), ("key", k), ("value", v))}
        extra = {name: torch.tensor(m, dtype=dtype if m.dtype.kind == "f" else torch.bool,
                                    device=device) for name, m in masks.items()}
        out = ATTENTION.torch_fn(**tensors, **extra, **options)
        out.backward(torch.tensor(g, dtype=dtype, device=device))
        case = f"  query (2, {lq}, 4), key/value (2, {sk}, 4), {label}, seed {seed}"
        tol = dict(ATTENTION.tol)
        compare.assert_close(compare.to_numpy(out), expected_out,
                             tol=tols.resolve(dtype, tols.Kind.FORWARD,
                                              tol.get((tols.Kind.FORWARD, dtype))),
                             what=f"attention with {label}: forward",
                             context=dtype_name(dtype), case=case)
        for name, t in tensors.items():
            assert t.grad is not None
            compare.assert_close(compare.to_numpy(t.grad), expected[name],
                                 tol=tols.resolve(dtype, tols.Kind.GRADIENT,
                                                  tol.get((tols.Kind.GRADIENT, dtype))),
                                 what=f"attention with {label}: VJP w.r.t. {name}",
                                 context=dtype_name(dtype), case=case)


# --- known torch bugs ----------------------------------------------------------------------


@pytest.mark.xfail(versions.GROUP_NORM_BIAS_WITHOUT_WEIGHT_RAISES, raises=RuntimeError,
                   strict=True,
                   reason="torch 2.13 and older: group_norm's backward with a bias but no weight "
                          "raises 'tensor does not have a device' (KNOWN_DIFFERENCES.md); fixed "
                          "in 2.14, where this test must pass")
def test_group_norm_backward_with_bias_and_no_weight(dtype: torch.dtype, device: str) -> None:
    spec = catalog.by_name("group_norm")
    rng = np.random.default_rng(0)
    arrays = {"input": rng.standard_normal((2, 4, 3)), "bias": rng.standard_normal(4)}
    case = Case(arrays, ("input", "bias"), {"num_groups": 2, "eps": 1e-5}, 0)
    gc.check_gradient(spec, case, dtype, device)  # type: ignore[arg-type]
