r"""Training-level identities, NumPy float64: what gradient accumulation, data parallelism,
gradient clipping, activation checkpointing and AMP's gradient scaler must compute.

Each function states, from torch's documentation, the number a training utility must produce
from the per-batch gradients the other references compute (``references.network``,
``references.losses_*``). None of them imports torch.

* Gradient accumulation: a "mean" loss over a batch split into micro-batches is the weighted
  sum of the micro-batches' means, weights D_j / D (:func:`micro_batch_scales`).
* Data parallelism (``DistributedDataParallel``, ``ZeroRedundancyOptimizer``): the gradient every
  replica holds after ``backward`` is the average of the replicas' local gradients
  (:func:`data_parallel_average`).
* ``clip_grad_norm_`` / ``clip_grad_value_`` (:func:`total_norm`, :func:`clip_grad_norm`,
  :func:`clip_grad_value`).
* ``torch.amp.GradScaler``'s state machine (:func:`grad_scaler_unscale`,
  :func:`grad_scaler_update`, :func:`grad_scaler_sgd`).
* ``torch.utils.checkpoint`` with dropout: the gradient when the recomputation draws the same or
  another mask (:func:`dropout_mlp_gradients`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from references.layers import dropout, dropout_vjp
from references.losses_classification import cross_entropy_vjp
from references.network import Layer, mlp_forward, mlp_vjp
from references.optim_sgd import SGDState, sgd

Array = NDArray[np.float64]


# --- gradient accumulation ------------------------------------------------------------------

def micro_batch_scales(denominators: Sequence[float], reduction: str) -> Array:
    r"""The factor c_j each micro-batch's loss is multiplied by before ``backward``, so that the
    gradients accumulated over k micro-batches equal the whole batch's.

    A reduced loss is L = sum_n l_n ("sum") or L = (sum_n l_n) / D ("mean"), D the loss's own
    denominator (the element count for MSE, sum of w_{y_n} over the kept targets for weighted
    cross entropy; ``references._loss_common``). Split the batch into micro-batches j with
    denominators D_j (D = sum_j D_j) and micro-batch losses L_j, reduced the same way:

        "sum":   L = sum_j L_j                       c_j = 1
        "mean":  L = sum_j (D_j / D) L_j             c_j = D_j / D

    and, the gradient being linear, dL/dtheta = sum_j c_j dL_j/dtheta: ``backward`` on
    c_j L_j for each j accumulates exactly the whole batch's gradient in ``.grad``. With k
    micro-batches of equal D_j, c_j = 1/k: the documented "divide the loss by the number of
    accumulation steps" (https://pytorch.org/docs/stable/notes/amp_examples.html#gradient-accumulation).
    A micro-batch with D_j = 0 (every target ignored) has an undefined mean (0/0) and
    contributes nothing: c_j = 0, and it is to be left out rather than multiplied by 0.
    """
    d = np.asarray(denominators, dtype=np.float64)
    if reduction == "sum":
        return np.ones_like(d)
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'sum' to accumulate; got {reduction!r}")
    total = d.sum()
    if total == 0:
        raise ValueError("every micro-batch has denominator 0: the batch's mean is undefined")
    return d / total


def accumulate(micro_grads: Sequence[Array], scales: Sequence[float]) -> Array:
    r"""sum_j c_j g_j: what ``.grad`` holds after ``backward`` on each c_j L_j in turn (autograd
    adds into ``.grad``), given the micro-batch gradients g_j = dL_j/dtheta and the scales c_j of
    :func:`micro_batch_scales` (terms with c_j = 0 are left out, never multiplied)."""
    terms = [c * np.asarray(g, dtype=np.float64)
             for g, c in zip(micro_grads, scales, strict=True) if c != 0]
    if not terms:
        raise ValueError("no micro-batch with a non-zero scale")
    return np.sum(terms, axis=0)


def element_count(shape: Sequence[int]) -> float:
    r"""D of an elementwise loss's "mean" (MSELoss, L1Loss, ...): the number of elements of the
    unreduced loss, prod(shape) (https://pytorch.org/docs/stable/generated/torch.nn.MSELoss.html)."""
    return float(np.prod(shape, dtype=np.float64))


def class_weight_total(target: NDArray[np.int64], weight: Array | None = None,
                       ignore_index: int = -100) -> float:
    r"""D of cross entropy's and NLL's "mean" with class-index targets: sum over the samples
    whose target is not ``ignore_index`` of w_{y_n} (the number of kept samples when there are
    no class weights) (https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html)."""
    y = np.asarray(target)
    kept = y != ignore_index
    if weight is None:
        return float(kept.sum())
    w = np.asarray(weight, dtype=np.float64)
    return float(np.sum(w[np.where(kept, y, 0)], where=kept))


# --- data parallelism ---------------------------------------------------------------------

def data_parallel_average(local_grads: Sequence[Mapping[str, Array | None]],
                          divisor: float) -> dict[str, Array | None]:
    r"""The gradient every replica holds after a synchronised ``backward`` in
    ``DistributedDataParallel``: the all-reduced sum of the local gradients over the ranks,
    divided by ``divisor``,

        g = (1 / divisor) sum_r g_r,

    where a parameter that rank r did not use contributes g_r = 0 (``find_unused_parameters``:
    DDP marks it ready with a zero gradient) and a parameter no rank used keeps no gradient
    (None). ``divisor`` is the world size W (the default, and with ``join`` when
    ``divide_by_initial_world_size=True``: ranks that ran out of inputs contribute 0 and the
    divisor stays W), or the number of ranks still holding inputs
    (``divide_by_initial_world_size=False``). With every rank's loss a mean over B samples and W
    equal shards, g is the gradient of the mean over the W B concatenated samples
    (https://pytorch.org/docs/stable/notes/ddp.html,
    https://pytorch.org/docs/stable/generated/torch.nn.parallel.DistributedDataParallel.html).
    Ranks absent from ``local_grads`` (joined ranks) are simply not summed.
    """
    names = sorted({name for grads in local_grads for name in grads})
    out: dict[str, Array | None] = {}
    for name in names:
        present = [np.asarray(g[name], dtype=np.float64) for g in local_grads
                   if g.get(name) is not None]
        out[name] = np.sum(present, axis=0) / divisor if present else None
    return out


# --- gradient clipping ----------------------------------------------------------------------

def total_norm(grads: Sequence[Array], norm_type: float = 2.0) -> float:
    r"""The p-norm of all gradients "viewed as a single vector" (``clip_grad_norm_``'s return
    value, https://pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_norm_.html), over
    the concatenation v of every gradient's entries:

        p = inf:   max_i |v_i|          p = -inf:  min_i |v_i|
        p = 0:     #{i : v_i != 0}      (the "0-norm", ``torch.linalg.vector_norm``'s ord=0)
        else:      (sum_i |v_i|^p)^(1/p)     (p < 0: |0|^p = inf, so a zero entry gives 0)

    No gradients at all: 0. A NaN entry makes it NaN, an infinite one inf (for p > 0).
    """
    v = np.concatenate([np.asarray(g, dtype=np.float64).reshape(-1) for g in grads]) \
        if grads else np.zeros(0)
    if v.size == 0:
        return 0.0
    a = np.abs(v)
    if norm_type == np.inf:
        return float(a.max())
    if norm_type == -np.inf:
        return float(a.min())
    if norm_type == 0:
        return float(np.count_nonzero(v))
    with np.errstate(divide="ignore", over="ignore"):
        return float(np.sum(a ** norm_type) ** (1.0 / norm_type))


CLIP_EPS = 1e-6
"""The constant ``clip_grad_norm_`` adds to the total norm before dividing (its docs' formula)."""


def clip_grad_norm(grads: Sequence[Array], max_norm: float,
                   norm_type: float = 2.0) -> tuple[list[Array], float]:
    r"""``torch.nn.utils.clip_grad_norm_``: every gradient multiplied by one coefficient,

        N    = total_norm(grads, p)                               (:func:`total_norm`)
        coef = min(max_norm / (N + 1e-6), 1)
        g    <- coef g

    (https://pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_norm_.html; the formula
    is the one in ``torch.nn.utils.clip_grads_with_norm_``'s docs). Parameters without a
    gradient are left out of N and untouched. Returns the clipped gradients and N. A non-finite
    N gives coef = 0 (N = inf: finite entries become 0, infinite ones NaN) or NaN (N = NaN),
    exactly what the formula gives; ``error_if_nonfinite=True`` raises instead.
    """
    n = total_norm(grads, norm_type)
    with np.errstate(invalid="ignore"):
        coef = np.minimum(max_norm / (n + CLIP_EPS), 1.0)
        return [np.asarray(g, dtype=np.float64) * coef for g in grads], n


def clip_grad_value(grads: Sequence[Array], clip_value: float) -> list[Array]:
    r"""``torch.nn.utils.clip_grad_value_``: every entry clamped to [-c, c],
    g <- min(max(g, -c), c); NaN stays NaN
    (https://pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_value_.html)."""
    return [np.clip(np.asarray(g, dtype=np.float64), -clip_value, clip_value) for g in grads]


# --- AMP gradient scaling -------------------------------------------------------------------

class ScalerState(NamedTuple):
    r"""``torch.amp.GradScaler``'s state: ``scale`` S and ``growth_tracker``, the number of
    consecutive steps without inf/NaN since the last change of S (its ``state_dict``'s
    ``"scale"`` and ``"_growth_tracker"``)."""

    scale: float
    growth_tracker: int


def grad_scaler_unscale(scaled_grads: Sequence[Array], scale: float) -> tuple[list[Array], bool]:
    r"""``GradScaler.unscale_``: every gradient of the optimizer multiplied by 1/S, and whether
    any entry is inf or NaN ("found_inf"),

        g <- g (1 / S),     found_inf = any_i not finite(g_i)

    (https://pytorch.org/docs/stable/amp.html#torch.amp.GradScaler.unscale_). torch forms 1/S
    in float64 and rounds it to float32 (``grad_scaler.py``); for a power-of-two S, the
    default, that is exact.
    """
    inv = float(np.float32(1.0 / scale))
    grads = [np.asarray(g, dtype=np.float64) * inv for g in scaled_grads]
    found_inf = not all(np.isfinite(g).all() for g in grads)
    return grads, found_inf


def grad_scaler_update(state: ScalerState, found_inf: bool, *, growth_factor: float = 2.0,
                       backoff_factor: float = 0.5, growth_interval: int = 2000) -> ScalerState:
    r"""``GradScaler.update``: the documented state machine
    (https://pytorch.org/docs/stable/amp.html#torch.amp.GradScaler):

        found_inf:                         S <- S backoff_factor,  tracker <- 0
        else, if tracker + 1 = interval:   S <- S growth_factor,   tracker <- 0
        else:                              tracker <- tracker + 1

    "If infs/NaNs are found, ``scaler.step(optimizer)`` skips the underlying
    ``optimizer.step()`` and ``update()`` multiplies the scale by ``backoff_factor``. If
    ``growth_interval`` unskipped iterations occur consecutively, ``update()`` multiplies the
    scale by ``growth_factor``." S is stored as a float32 tensor (``GradScaler``'s
    ``_lazy_init_scale_growth_tracker``): each product of the float32 S and the (float64)
    factor is rounded once to float32, and a growth whose product overflows float32 is not
    applied (the tracker is still reset; torch's ``_amp_update_scale_`` kernel). Both are
    reproduced here so that S compares exactly.
    """
    if found_inf:
        return ScalerState(float(np.float32(state.scale * backoff_factor)), 0)
    successful = state.growth_tracker + 1
    if successful == growth_interval:
        with np.errstate(over="ignore"):
            grown = np.float32(state.scale * growth_factor)
        return ScalerState(float(grown) if np.isfinite(grown) else state.scale, 0)
    return ScalerState(state.scale, successful)


class ScaledStep(NamedTuple):
    """One iteration of :func:`grad_scaler_sgd`: the parameters after ``scaler.step``, the
    unscaled gradients the optimizer saw, whether the step was skipped, and the scaler's state
    after ``scaler.update()``."""

    params: list[Array]
    unscaled_grads: list[Array]
    skipped: bool
    state: ScalerState


def grad_scaler_sgd(params: Sequence[Array], grads: Sequence[Sequence[Array]], *, lr: float,
                    init_scale: float, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                    growth_interval: int = 2000, max_finite: float = np.inf) -> list[ScaledStep]:
    r"""The documented AMP loop with plain SGD (momentum 0) over several parameters, for the
    gradients g_t of the *unscaled* loss at each iteration t (one array per parameter):

        scaler.scale(loss).backward()     .grad = S_t g_t   (inf where |S_t g_t| > max_finite)
        scaler.step(opt)                  unscale every .grad: g = (S_t g_t) (1 / S_t);
                                          found_inf = any entry of any parameter not finite;
                                          theta <- theta - lr g   unless found_inf (skipped)
        scaler.update()                   :func:`grad_scaler_update`

    S_0 = ``init_scale`` (stored in float32), tracker 0
    (https://pytorch.org/docs/stable/amp.html#gradient-scaling,
    https://pytorch.org/docs/stable/notes/amp_examples.html). ``max_finite`` is the largest
    finite value of the gradients' dtype: the scaled gradient is stored in that dtype, so a
    finite S_t g_t beyond it overflows to inf; that overflow, not g_t, is what the backoff is
    for ("float16 values can overflow if the scale factor is too large").
    """
    thetas = [np.asarray(p, dtype=np.float64) for p in params]
    sgd_states: list[SGDState | None] = [None] * len(thetas)
    state = ScalerState(float(np.float32(init_scale)), 0)
    out: list[ScaledStep] = []
    for step_grads in grads:
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = [state.scale * np.asarray(g, dtype=np.float64) for g in step_grads]
            scaled = [np.where(np.abs(s) > max_finite, np.copysign(np.inf, s), s)
                      for s in scaled]
            unscaled, found_inf = grad_scaler_unscale(scaled, state.scale)
        if not found_inf:
            for i, g in enumerate(unscaled):
                thetas[i], sgd_states[i] = sgd(thetas[i], g, sgd_states[i], lr=lr)
        state = grad_scaler_update(state, found_inf, growth_factor=growth_factor,
                                   backoff_factor=backoff_factor, growth_interval=growth_interval)
        out.append(ScaledStep(list(thetas), unscaled, found_inf, state))
    return out


# --- activation checkpointing ---------------------------------------------------------------

def dropout_mlp_gradients(before: Sequence[Layer], inside: Sequence[Layer], after: Sequence[Layer],
                          x: Array, target: NDArray[Any], *, p: float, forward_mask: Array,
                          recompute_mask: Array) -> list[dict[str, Array]]:
    r"""Gradients of mean cross entropy through  before -> dropout -> inside -> after  when the
    checkpointed segment (``before``, the dropout and ``inside``) is recomputed in ``backward``
    with a possibly different dropout mask.

    Forward, with the mask m drawn in the forward pass (``forward_mask``):

        a = mlp(before, x),  h = a m / (1 - p),  u = mlp(inside, h),  logits = mlp(after, u),
        L = CE(logits, y)

    Backward: ``after`` is differentiated at the forward's own values (its inputs were saved);
    the segment at its *recomputed* values, whose dropout draws m' (``recompute_mask``):

        dL/du from mlp_vjp(after, ...)                      (forward values)
        h' = a m' / (1 - p),  the ``inside`` gradients and dL/dh' from mlp_vjp(inside, ...) at h'
        dL/da = dL/dh' m' / (1 - p),  the ``before`` gradients from mlp_vjp(before, ...)

    With m' = m this is the plain gradient of L: what ``torch.utils.checkpoint`` must give when
    it restores the RNG state for the recomputation, the default ``preserve_rng_state=True``
    ("stash and restore the RNG state during each checkpoint";
    https://pytorch.org/docs/stable/checkpoint.html). With ``preserve_rng_state=False`` the
    recomputation draws m' afresh from the advanced generator, and the gradient is this mixed
    one: not the gradient of the L computed in the forward. Returns the layers' gradients,
    ``before``, ``inside``, then ``after``.
    """
    a, cache_before = mlp_forward(before, x)
    u, _ = mlp_forward(inside, dropout(a, forward_mask, p))
    logits, cache_after = mlp_forward(after, u)
    g_logits = cross_entropy_vjp(np.ones(()), logits, target)["input"]
    grads_after, g_u = mlp_vjp(after, cache_after, g_logits)
    _, cache_inside = mlp_forward(inside, dropout(a, recompute_mask, p))  # the recomputation
    grads_inside, g_h = mlp_vjp(inside, cache_inside, g_u)
    g_a = dropout_vjp(g_h, a, recompute_mask, p)["input"]
    grads_before, _ = mlp_vjp(before, cache_before, g_a)
    return [*grads_before, *grads_inside, *grads_after]
