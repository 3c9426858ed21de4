"""Training-level identities in one process: gradient accumulation, activation checkpointing,
gradient clipping and AMP's GradScaler, each against the un-transformed torch run and the NumPy
statement in ``references/training.py``; and the planted bugs each check must catch.

Test names carry the identity (``pytest -k accumulation``, ``-k checkpoint``, ``-k clip``,
``-k gradscaler``). The multi-process identities (DDP, ZeRO) are in tests/test_distributed.py.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch.utils.checkpoint import checkpoint

from references import training as ref
from suite import catalog, compare
from suite import identities as ids
from suite import strategies as hs
from suite.devices import dtype_name

SIZES = st.tuples(st.integers(1, 6), st.integers(1, 12), st.integers(1, 12), st.integers(2, 5))


# --- gradient accumulation ----------------------------------------------------------------

@st.composite
def _splits(draw: st.DrawFn, n: int) -> list[tuple[int, int]]:
    """k = 2..min(n, 5) micro-batches: as equal as possible, or cut at drawn places."""
    k = draw(st.integers(2, min(n, 5)), label="k")
    if draw(st.booleans(), label="equal micro-batches"):
        return ids.split_bounds(n, k)
    cuts = draw(st.lists(st.integers(1, n - 1), min_size=k - 1, max_size=k - 1, unique=True),
                label="cuts")
    return ids.split_bounds(n, k, cuts)


@pytest.mark.parametrize("batched", ids.ACCUMULATION, ids=lambda b: b.name)
@given(data=st.data())
def test_accumulation_of_a_record_matches_one_batch(batched, dtype, device, data) -> None:
    """A record's gradients accumulated over k micro-batches (loss j times D_j / D for "mean",
    1 for "sum" and for non-loss records) equal one backward on the batch and the reference."""
    spec = catalog.by_name(batched.name)
    case = data.draw(spec.cases(), label="case")
    assume(batched.usable(case))
    n = case.arrays["input"].shape[0]
    bounds = data.draw(_splits(n), label="micro-batches")
    ids.check_record_accumulation(spec, batched, case, bounds, dtype, device)


@given(seed=hs.SEEDS, sizes=SIZES, n=st.integers(2, 40), reduction=st.sampled_from(["mean", "sum"]),
       data=st.data())
def test_accumulation_of_mlp_matches_one_batch(dtype, device, seed, sizes, n, reduction,
                                               data) -> None:
    bounds = data.draw(_splits(n), label="micro-batches")
    ids.check_mlp_accumulation(seed=seed, sizes=sizes, activations=("tanh", "tanh"), n=n,
                               bounds=bounds, reduction=reduction, dtype=dtype, device=device)


def test_accumulation_scales_are_one_over_k_for_equal_means() -> None:
    """The documented recipe, divide each of k equal micro-batch losses by k, is the mean
    case of the reference's rule; unequal sizes need D_j / D, "sum" needs 1."""
    np.testing.assert_array_equal(ref.micro_batch_scales([8.0] * 4, "mean"), [0.25] * 4)
    np.testing.assert_array_equal(ref.micro_batch_scales([6.0, 2.0], "mean"), [0.75, 0.25])
    np.testing.assert_array_equal(ref.micro_batch_scales([6.0, 2.0], "sum"), [1.0, 1.0])


@given(seed=hs.SEEDS, n=st.integers(2, 30), c=st.integers(2, 5), data=st.data())
def test_accumulation_reference_scales_reproduce_the_batch_gradient(seed, n, c, data) -> None:
    """Torch-free: the reference's c_j = D_j / D (weighted cross entropy, some targets
    ignored) applied to the reference VJPs of the micro-batches gives the batch's VJP."""
    from references.losses_classification import cross_entropy_vjp

    rng = np.random.default_rng(seed)
    x, weight = rng.standard_normal((n, c)), rng.uniform(0.1, 2.0, c)
    target = np.where(rng.random(n) < 0.3, -100, rng.integers(0, c, n))
    target[0] = 0
    bounds = data.draw(_splits(n), label="micro-batches")
    one = np.ones(())
    whole = cross_entropy_vjp(one, x, target, weight)["input"]
    denominators = [ref.class_weight_total(target[a:b], weight) for a, b in bounds]
    scales = ref.micro_batch_scales(denominators, "mean")
    parts = [np.zeros_like(x) for _ in bounds]
    for part, (a, b), s in zip(parts, bounds, scales, strict=True):
        if s:
            part[a:b] = cross_entropy_vjp(one, x[a:b], target[a:b], weight)["input"]
    np.testing.assert_allclose(ref.accumulate(parts, scales), whole, rtol=1e-12, atol=1e-15)


# --- activation checkpointing -------------------------------------------------------------

VARIANTS = {"reentrant": True, "non-reentrant": False}


@pytest.mark.parametrize("variant", VARIANTS)
@given(seed=hs.SEEDS, sizes=SIZES, n=st.integers(1, 16),
       p=st.sampled_from([0.0, 0.2, 0.5, 0.9]), preserve=st.booleans())
def test_checkpoint_gradients_match_the_plain_run(variant, dtype, device, seed, sizes, n, p,
                                                  preserve) -> None:
    """With dropout the RNG state must be preserved (the default); without dropout either
    setting gives the plain gradients."""
    assume(preserve or p == 0.0)
    fn = functools.partial(checkpoint, use_reentrant=VARIANTS[variant],
                           preserve_rng_state=preserve)
    ids.check_checkpoint(fn, sizes=sizes, n=n, p=p, seed=seed, dtype=dtype, device=device,
                         label=f"checkpoint({variant}, preserve_rng_state={preserve})")


@pytest.mark.parametrize("variant", VARIANTS)
@given(seed=hs.SEEDS, sizes=st.tuples(st.integers(1, 6), st.integers(8, 12), st.integers(1, 12),
                                      st.integers(2, 5)),
       n=st.integers(8, 16), p=st.sampled_from([0.3, 0.5, 0.7]))
def test_checkpoint_without_rng_preservation_redraws_dropout(variant, dtype, device, seed, sizes,
                                                             n, p) -> None:
    """torch documents ``preserve_rng_state=False`` as "omit stashing and restoring the RNG
    state": the recomputation then draws another dropout mask, and the gradient is the mixed
    one of references.training.dropout_mlp_gradients (forward mask downstream, the new mask
    through the segment), not the plain one. With >= 64 entries the two masks coincide with
    probability <= max(p, 1 - p)**64 < 1e-9."""
    fn = functools.partial(checkpoint, use_reentrant=VARIANTS[variant], preserve_rng_state=False)
    model, x, target, xt, tt = ids.checkpoint_case(sizes, n, p, seed, dtype, device)
    plain = ids.run_checkpoint(model, xt, tt, rng_seed=seed, checkpoint_fn=None)
    run = ids.run_checkpoint(model, xt, tt, rng_seed=seed, checkpoint_fn=fn)
    assert len(run.masks) == 2, f"expected a forward and a recomputation, saw {len(run.masks)}"
    forward_mask, recompute_mask = run.masks
    np.testing.assert_array_equal(forward_mask, plain.masks[0],
                                  err_msg="the checkpointed forward drew another mask")
    assert not np.array_equal(forward_mask, recompute_mask), \
        "preserve_rng_state=False recomputed the same dropout mask"
    tol = ids._grad_tol(dtype)
    differs = compare.find_mismatch(run.grads["segment.0.weight"], plain.grads["segment.0.weight"],
                                    tol=tol, what="", context="")
    assert differs is not None, "the segment's gradient did not change with the redrawn mask"
    expected = model.reference_gradients(x, target, forward_mask, recompute_mask)
    ids.assert_named_close(run.grads, expected, tol=tol,
                           what=f"checkpoint({variant}, preserve_rng_state=False): gradient vs "
                                "the reference with the recomputed mask",
                           context=f"{dtype_name(dtype)}, device={device}",
                           case=f"  sizes {sizes}, N={n}, p={p}, seed {seed}")


@given(seed=hs.SEEDS, sizes=SIZES, n=st.integers(1, 16))
def test_checkpoint_reentrant_without_input_grad_leaves_the_segment_without_gradients(
        device, seed, sizes, n) -> None:
    """Documented for use_reentrant=True: "At least one input and output must have
    requires_grad=True"; otherwise torch warns "None of the inputs have requires_grad=True.
    Gradients will be None" and the segment's parameters get none. The non-reentrant variant
    has no such requirement and gives the plain gradients."""
    dtype, p = torch.float64, 0.5
    model, _, _, xt, tt = ids.checkpoint_case(sizes, n, p, seed, dtype, device,
                                              input_requires_grad=False)
    plain = ids.run_checkpoint(model, xt, tt, rng_seed=seed, checkpoint_fn=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = ids.run_checkpoint(model, xt, tt, rng_seed=seed,
                                 checkpoint_fn=functools.partial(checkpoint, use_reentrant=True))
    assert any("None of the inputs have requires_grad=True" in str(w.message) for w in caught), \
        [str(w.message) for w in caught]
    assert run.grads["segment.0.weight"] is None and run.grads["segment.0.bias"] is None
    tol = ids._grad_tol(dtype)
    rest = [k for k in plain.grads if k.startswith("rest.")]
    ids.assert_named_close(run.grads, plain.grads, tol=tol, only=rest, context="float64",
                           what="checkpoint(reentrant), input without grad: rest of the model")
    fn = functools.partial(checkpoint, use_reentrant=False)
    ids.check_checkpoint(fn, sizes=sizes, n=n, p=p, seed=seed, dtype=dtype, device=device,
                         label="checkpoint(non-reentrant)")


@given(seed=hs.SEEDS, sizes=SIZES, n=st.integers(1, 6), p=st.sampled_from([0.2, 0.5]))
def test_checkpoint_reference_gradient_is_the_derivative(seed, sizes, n, p) -> None:
    """Torch-free: with the same mask in the forward and the recomputation, the reference's
    gradients are the derivative of its own loss (central differences, float64)."""
    from references import network
    from references.layers import dropout
    from references.losses_classification import cross_entropy

    rng = np.random.default_rng(seed)
    n_in, h1, h2, c = sizes
    shapes = [(h1, n_in), (h2, h1), (c, h2)]
    weights = [rng.standard_normal(s) / np.sqrt(s[1]) for s in shapes]
    biases = [rng.standard_normal(s[0]) * 0.1 for s in shapes]
    x, target = rng.standard_normal((n, n_in)), rng.integers(0, c, n)
    mask = (rng.random((n, h1)) > p).astype(np.float64)
    acts = ["sigmoid", "tanh", "identity"]

    def layers(ws, bs):
        return [network.Layer(w, b, a) for w, b, a in zip(ws, bs, acts, strict=True)]

    def loss(ws, bs):
        ls = layers(ws, bs)
        a, _ = network.mlp_forward(ls[:1], x)
        u, _ = network.mlp_forward(ls[1:2], dropout(a, mask, p))
        return float(cross_entropy(network.mlp_forward(ls[2:], u)[0], target))

    ls = layers(weights, biases)
    grads = ref.dropout_mlp_gradients(ls[:1], ls[1:2], ls[2:], x, target, p=p,
                                      forward_mask=mask, recompute_mask=mask)
    h = 1e-6
    for i, g in enumerate(grads):
        v = rng.standard_normal(weights[i].shape)
        plus = [w + h * v if j == i else w for j, w in enumerate(weights)]
        minus = [w - h * v if j == i else w for j, w in enumerate(weights)]
        fd = (loss(plus, biases) - loss(minus, biases)) / (2 * h)
        assert abs(fd - np.sum(g["weight"] * v)) <= 1e-6 * (1 + abs(fd)), (i, fd)


# --- gradient clipping --------------------------------------------------------------------

NORM_TYPES = st.one_of(st.sampled_from([1.0, 2.0, math.inf, -math.inf, 0.5, 3.0]),
                       st.floats(0.25, 8.0))


@st.composite
def _gradients(draw: st.DrawFn, dtype: torch.dtype, *, nonfinite: bool = False):
    """1-4 gradients of drawn shapes, some parameters without one (not all), sometimes of
    mixed dtypes (float32 beside float64), a drawn scale; optionally an inf or NaN."""
    count = draw(st.integers(1, 4), label="parameters")
    rng = np.random.default_rng(draw(hs.SEEDS, label="seed"))
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0]), label="scale")
    grads, dtypes = [], []
    for i in range(count):
        shape = draw(hs.shapes(min_dims=0, max_dims=2, max_size=256), label=f"shape {i}")
        none = i > 0 and draw(st.booleans(), label=f"no gradient {i}")
        g = rng.standard_normal(shape) * scale
        g = np.where(rng.random(shape) < 0.1, 0.0, g)  # exact zeros (the 0- and -inf-"norms")
        grads.append(None if none else g)
        mixed = draw(st.booleans(), label=f"float32 {i}") if dtype == torch.float64 else False
        dtypes.append(torch.float32 if mixed else dtype)
    if nonfinite:
        value = draw(st.sampled_from([math.inf, -math.inf, math.nan]), label="non-finite")
        first = grads[0]
        assert first is not None
        flat = first.reshape(-1)
        if flat.size:
            flat[draw(st.integers(0, flat.size - 1), label="where")] = value
        else:
            grads[0] = np.array(value)
    return grads, dtypes


@given(data=st.data(), norm_type=NORM_TYPES, foreach=st.sampled_from([None, False, True]),
       max_norm=st.sampled_from([1e-2, 0.5, 1.0, 10.0, 1e4]))
def test_clip_grad_norm_matches_reference(dtype, device, data, norm_type, foreach,
                                          max_norm) -> None:
    grads, dtypes = data.draw(_gradients(dtype), label="gradients")
    ids.check_clip_grad_norm(grads, dtypes, max_norm=max_norm, norm_type=norm_type,
                             foreach=foreach, device=device)


@given(seed=hs.SEEDS, norm_type=st.sampled_from([1.0, 2.0, 3.0, math.inf, -math.inf, 0.0]))
def test_clip_reference_total_norm_is_numpys_norm_of_the_concatenation(seed, norm_type) -> None:
    """Torch-free: the reference's total norm is numpy.linalg.norm of the concatenated
    gradients, for every ord NumPy shares with torch."""
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal(s) * (rng.random(s) > 0.2) for s in [(3, 2), (4,), ()]]
    flat = np.concatenate([g.reshape(-1) for g in grads])
    np.testing.assert_allclose(ref.total_norm(grads, norm_type), np.linalg.norm(flat, norm_type),
                               rtol=1e-13)


def test_clip_grad_norm_with_no_gradients_returns_zero(device) -> None:
    p = torch.zeros(3, device=device, requires_grad=True)
    assert torch.nn.utils.clip_grad_norm_([p], 1.0).item() == ref.total_norm([]) == 0.0
    assert p.grad is None


# Finding (torch 2.13.0, and every version with the norm-of-norms composition): the docs say
# the total norm is that "of the gradients (viewed as a single vector)", computed "as if the
# norms of the individual gradients were concatenated into a single vector". For p != 0 the two
# agree: (sum_t ||g_t||_p^p)^(1/p) = ||concat(g)||_p. For norm_type=0 they do not:
# vector_norm(ord=0) counts non-zeros, so the norm of norms counts the *tensors* with a non-zero
# gradient, not the non-zero entries. KNOWN_DIFFERENCES.md, "clip_grad_norm_ with norm_type=0".
@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="torch: norm_type=0 counts gradients with a non-zero entry, not "
                          "non-zero entries (KNOWN_DIFFERENCES.md)")
@pytest.mark.parametrize("foreach", [False, True])
def test_clip_grad_norm_zero_norm_counts_entries_of_the_single_vector(device, foreach) -> None:
    grads = [np.array([1.0, 0.0, 2.0]), np.array([3.0, 4.0, 0.5])]
    ids.check_clip_grad_norm(grads, [torch.float64] * 2, max_norm=100.0, norm_type=0.0,
                             foreach=foreach, device=device)


@given(data=st.data(), norm_type=st.sampled_from([1.0, 2.0, math.inf, 3.0]),
       foreach=st.sampled_from([None, False, True]))
def test_clip_grad_norm_nonfinite(dtype, device, data, norm_type, foreach) -> None:
    """error_if_nonfinite=True raises torch's documented error and leaves the gradients; False
    applies the formula anyway (coef = 0 for an infinite norm, NaN for a NaN norm)."""
    grads, dtypes = data.draw(_gradients(dtype, nonfinite=True), label="gradients")
    rounded = [None if g is None else ids.round_to(g, dt)
               for g, dt in zip(grads, dtypes, strict=True)]
    params = ids._clip_params(rounded, dtypes, device)
    with pytest.raises(RuntimeError, match="is non-finite, so it cannot be clipped"):
        torch.nn.utils.clip_grad_norm_(params, 1.0, norm_type=norm_type,
                                       error_if_nonfinite=True, foreach=foreach)
    for p, g in zip(params, rounded, strict=True):
        if g is not None:
            np.testing.assert_array_equal(compare.to_numpy(p.grad), g,
                                          err_msg="gradients changed by a clip that raised")
    ids.check_clip_grad_norm(grads, dtypes, max_norm=1.0, norm_type=norm_type, foreach=foreach,
                             device=device)


@given(data=st.data(), clip_value=st.sampled_from([1e-3, 0.5, 1.0, 100.0]),
       foreach=st.sampled_from([None, False, True]))
def test_clip_grad_value_matches_reference(dtype, device, data, clip_value, foreach) -> None:
    grads, dtypes = data.draw(_gradients(dtype), label="gradients")
    ids.check_clip_grad_value(grads, dtypes, clip_value=clip_value, foreach=foreach, device=device)


# --- AMP: GradScaler ----------------------------------------------------------------------

def _skip_without_grad_scaler() -> None:
    reason = ids.grad_scaler_missing()
    if reason:
        pytest.skip(reason)


def _run_scaler_check(check, *args, **kwargs) -> None:
    """``check(...)``, skipped with torch's own words where this torch has no kernel for the
    scaler's unscale or update on the device ("Could not run ... with arguments from the
    'CPU' backend"); any other error fails."""
    try:
        check(*args, **kwargs)
    except NotImplementedError as e:
        if "Could not run" in str(e) and "backend" in str(e):
            pytest.skip(f"torch {torch.__version__}: {str(e).splitlines()[0]}")
        raise


@st.composite
def _scaled_runs(draw: st.DrawFn):
    """Parameters, per-step gradients with inf/NaN planted at drawn steps, and settings."""
    rng = np.random.default_rng(draw(hs.SEEDS, label="seed"))
    shapes = draw(st.lists(hs.shapes(min_dims=0, max_dims=2, max_size=64), min_size=1,
                           max_size=3), label="shapes")
    steps = draw(st.integers(1, 16), label="steps")
    bad = draw(st.lists(st.sampled_from(["finite", "inf", "-inf", "nan"]), min_size=steps,
                        max_size=steps), label="kind of each step")
    params = [rng.standard_normal(s) for s in shapes]
    grads = []
    for kind in bad:
        step = [rng.standard_normal(s) * 10.0 ** rng.uniform(-3, 1) for s in shapes]
        sizes = [g.size for g in step]
        if kind != "finite" and sum(sizes):
            i = int(rng.choice(len(step), p=np.array(sizes) / sum(sizes)))
            step[i].reshape(-1)[rng.integers(step[i].size)] = {"inf": math.inf, "-inf": -math.inf,
                                                              "nan": math.nan}[kind]
        grads.append(step)
    settings = {
        "lr": draw(st.sampled_from([0.1, 1e-3]), label="lr"),
        # up to 2**126: growth and the scaled gradients reach float32's overflow
        "init_scale": draw(st.sampled_from([1.0, 2.0**16, 3.0, 2.0**100, 2.0**126]),
                           label="init_scale"),
        "growth_factor": draw(st.sampled_from([2.0, 1.1, 4.0, 1.5]), label="growth_factor"),
        "backoff_factor": draw(st.sampled_from([0.5, 0.25, 0.9, 0.3]), label="backoff_factor"),
        "growth_interval": draw(st.integers(1, 4), label="growth_interval"),
        "unscale_first": draw(st.lists(st.booleans(), min_size=steps, max_size=steps),
                              label="explicit unscale_"),
    }
    return params, grads, settings


@given(run=_scaled_runs())
def test_gradscaler_state_machine_matches_reference(dtype, device, run) -> None:
    """Steps with an inf/NaN gradient (planted, or from the scale's own overflow) are skipped
    and the scale backs off; growth_interval finite steps in a row grow it; unscale_ divides
    by the scale. Parameters, scale and growth tracker after every iteration."""
    _skip_without_grad_scaler()
    params, grads, settings = run
    _run_scaler_check(ids.check_grad_scaler, params, grads, dtype=dtype, device=device,
                      **settings)


HALVES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


@pytest.mark.parametrize("half", HALVES)
@given(seed=hs.SEEDS, n=st.integers(1, 32), n_in=st.integers(1, 16), n_out=st.integers(1, 8),
       init_scale=st.sampled_from([1.0, 2.0**4, 2.0**10]))
def test_gradscaler_autocast_unscaled_gradients(half, device, seed, n, n_in, n_out,
                                                init_scale) -> None:
    _skip_without_grad_scaler()
    reason = ids.autocast_unsupported(HALVES[half], device)
    if reason:
        pytest.skip(reason)
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((n, n_in)), rng.standard_normal((n, n_out))
    weight = rng.standard_normal((n_out, n_in)) / math.sqrt(n_in)
    bias = rng.standard_normal(n_out) / math.sqrt(n_in)
    x, y, weight, bias = (ids.round_to(a, torch.float32) for a in (x, y, weight, bias))
    _run_scaler_check(ids.check_autocast_gradients, x, y, weight, bias, half=HALVES[half],
                      device=device, init_scale=init_scale)


# --- planted bugs: each check must catch its identity's typical bug -----------------------

def _fails(check, *args, **kwargs) -> str:
    with pytest.raises(AssertionError) as info:
        check(*args, **kwargs)
    return str(info.value)


def _forgets_one_over_k(denominators, reduction):
    """The bug: every micro-batch loss added unscaled, whatever the reduction."""
    return np.ones(len(denominators))


def test_accumulation_check_catches_a_missing_one_over_k() -> None:
    message = _fails(ids.check_mlp_accumulation, seed=3, sizes=(3, 5, 4, 3),
                     activations=("tanh", "tanh"), n=12, bounds=ids.split_bounds(12, 3),
                     reduction="mean", dtype=torch.float64, device="cpu",
                     scale_rule=_forgets_one_over_k)
    assert message.startswith("MLP: gradient accumulated over 3 micro-batches vs one batch")
    assert "scales [1.0, 1.0, 1.0]" in message and "Greatest relative difference: 2" in message
    # the control: the documented scaling passes
    ids.check_mlp_accumulation(seed=3, sizes=(3, 5, 4, 3), activations=("tanh", "tanh"), n=12,
                               bounds=ids.split_bounds(12, 3), reduction="mean",
                               dtype=torch.float64, device="cpu")


def test_accumulation_check_of_a_record_catches_a_missing_one_over_k() -> None:
    spec = catalog.by_name("mse_loss")
    batched = next(b for b in ids.ACCUMULATION if b.name == "mse_loss")
    case = spec.inputs.sized(8, seed=1)  # type: ignore[union-attr]
    bounds = ids.split_bounds(8, 4)
    message = _fails(ids.check_record_accumulation, spec, batched, case, bounds, torch.float64,
                     "cpu", scale_rule=_forgets_one_over_k)
    assert message.startswith("mse_loss: gradient accumulated over 4 micro-batches vs one batch")
    ids.check_record_accumulation(spec, batched, case, bounds, torch.float64, "cpu")


def test_checkpoint_check_catches_a_recomputation_that_redraws_dropout() -> None:
    message = _fails(ids.check_checkpoint, ids.redrawing_checkpoint, sizes=(3, 16, 6, 3), n=8,
                     p=0.5, seed=5, dtype=torch.float64, device="cpu", label="redrawing")
    assert message.startswith("redrawing: gradient vs the un-checkpointed run: segment.0.")
    assert "recomputed mask equal to the forward's: [False]" in message
    # the control: the same hand-written checkpoint without dropout passes
    ids.check_checkpoint(ids.redrawing_checkpoint, sizes=(3, 16, 6, 3), n=8, p=0.0, seed=5,
                         dtype=torch.float64, device="cpu", label="redrawing, no dropout")


def test_gradscaler_check_catches_a_scaler_that_does_not_skip_on_inf() -> None:
    _skip_without_grad_scaler()
    params = [np.array([1.0, -2.0])]
    grads = [[np.array([0.5, 0.25])], [np.array([math.inf, 1.0])], [np.array([0.5, 0.5])]]
    settings = {"lr": 0.1, "init_scale": 2.0**16, "growth_factor": 2.0, "backoff_factor": 0.5,
                "growth_interval": 2, "unscale_first": [False] * 3}
    message = _fails(ids.check_grad_scaler, params, grads, dtype=torch.float32, device="cpu",
                     scaler_factory=ids.NoSkipScaler, **settings)
    assert message.startswith("GradScaler: parameter 0 after iteration 1 is not close")
    assert "expected skipped=True" in message
    ids.check_grad_scaler(params, grads, dtype=torch.float32, device="cpu", **settings)


def test_clip_check_catches_a_clip_that_scales_gradients_up() -> None:
    def unclamped(params, max_norm, norm_type=2.0, foreach=None):
        grads = [p.grad for p in params if p.grad is not None]
        total = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g, norm_type) for g in grads]), norm_type)
        for g in grads:
            g.mul_(max_norm / (total + 1e-6))  # the bug: no clamp of the coefficient to 1
        return total

    grads = [np.array([0.1, -0.2]), np.array([0.05])]
    message = _fails(ids.check_clip_grad_norm, grads, [torch.float64] * 2, max_norm=10.0,
                     norm_type=2.0, foreach=None, device="cpu", clip=unclamped)
    assert message.startswith("clip_grad_norm_: clipped gradient of parameter 0")
