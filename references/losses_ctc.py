r"""Connectionist temporal classification loss and its VJP, NumPy float64.

The alpha/beta recursions of Graves et al. (2006) in log space, per sequence, with torch's
reductions ("mean" divides each sequence's loss by its target length, then averages). The
forward/VJP convention is that of ``references._loss_common``.

Follows ``torch.nn.functional.ctc_loss`` / ``torch.nn.CTCLoss``
(https://pytorch.org/docs/stable/generated/torch.nn.CTCLoss.html).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from references._loss_common import (
    Array,
    _check_reduction,
)


def _ctc_sequences(
    log_probs: Array, targets: NDArray[np.int64], input_lengths: NDArray[np.int64],
    target_lengths: NDArray[np.int64],
) -> tuple[Array, list[NDArray[np.int64]], NDArray[np.int64], bool]:
    r"""Validate CTC arguments; return (x of shape (T, N, C), each sequence's labels, each
    sequence's input length, whether the input was unbatched)."""
    x = np.asarray(log_probs, dtype=np.float64)
    if x.ndim not in (2, 3):
        raise ValueError(f"log_probs must be (T, C) or (T, N, C); got shape {x.shape}")
    unbatched = x.ndim == 2
    if unbatched:
        x = x[:, None, :]
    n = x.shape[1]
    t_len = np.asarray(input_lengths, dtype=np.int64).reshape(n)
    s_len = np.asarray(target_lengths, dtype=np.int64).reshape(n)
    y = np.asarray(targets, dtype=np.int64)
    if np.any(t_len < 0) or np.any(t_len > x.shape[0]) or np.any(s_len < 0):
        raise ValueError("input_lengths must lie in [0, T] and target_lengths be >= 0")
    if y.ndim == 2 and not unbatched:  # padded (N, S)
        labels = [y[b, : s_len[b]] for b in range(n)]
    else:  # concatenated (sum(target_lengths),), or the (S,) of an unbatched input
        ends = np.cumsum(s_len)
        if not unbatched and y.size != int(s_len.sum()):
            raise ValueError(f"concatenated targets must hold sum(target_lengths) = {s_len.sum()} "
                             f"labels; got {y.size}")
        labels = [y.reshape(-1)[end - k: end] for end, k in zip(ends, s_len, strict=True)]
    return x, labels, t_len, unbatched


def _ctc_log_sum_exp(a: Array, axis: int) -> Array:
    r"""log sum_i exp(a_i) along ``axis``, shifted by the finite maximum; all -inf gives -inf."""
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m, axis)


def _ctc_shift(v: Array, k: int) -> Array:
    r"""v shifted by k positions along its last axis (v_{s-k}), -inf (log 0) where none."""
    out = np.full_like(v, -np.inf)
    if k > 0:
        out[..., k:] = v[..., : v.shape[-1] - k]
    else:
        out[..., : v.shape[-1] + k] = v[..., -k:]
    return out


def _ctc_alpha_beta(
    lp: Array, labels: NDArray[np.int64], blank: int
) -> tuple[float, Array, Array, NDArray[np.int64]]:
    r"""One sequence, lp of shape (T_b, C): (-log p(labels | lp), log alpha, log beta, l').

    l' = (blank, l_1, blank, l_2, ..., l_S, blank) has 2S + 1 entries; a path may skip from
    l'_{s-2} to l'_s when l'_s is a label different from l'_{s-2} (not a blank, not a repeat).
        alpha_0(0) = y_0(blank), alpha_0(1) = y_0(l_1),
        alpha_t(s) = (alpha_{t-1}(s) + alpha_{t-1}(s-1) + [skip] alpha_{t-1}(s-2)) y_t(l'_s),
        beta_{T-1}(2S) = y(blank), beta_{T-1}(2S-1) = y(l_S),
        beta_t(s) = (beta_{t+1}(s) + beta_{t+1}(s+1) + [skip] beta_{t+1}(s+2)) y_t(l'_s),
        p = alpha_{T-1}(2S) + alpha_{T-1}(2S-1),
    all in log space (y_t(k) = exp(lp[t, k]), sums by log-sum-exp).
    """
    ext = np.full(2 * len(labels) + 1, blank, dtype=np.int64)
    ext[1::2] = labels
    n_ext, t_b = len(ext), lp.shape[0]
    skip = np.zeros(n_ext, dtype=bool)
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    log_alpha = np.full((t_b, n_ext), -np.inf)
    log_beta = np.full((t_b, n_ext), -np.inf)
    if t_b == 0:  # no frames: only the empty labelling has probability (1)
        return (0.0 if len(labels) == 0 else np.inf), log_alpha, log_beta, ext
    y = lp[:, ext]  # log y_t(l'_s)
    log_alpha[0, :2] = y[0, :2]
    for t in range(1, t_b):
        a = log_alpha[t - 1]
        paths = np.stack([a, _ctc_shift(a, 1), np.where(skip, _ctc_shift(a, 2), -np.inf)])
        log_alpha[t] = _ctc_log_sum_exp(paths, 0) + y[t]
    log_beta[t_b - 1, -2:] = y[t_b - 1, -2:]
    skip_from = np.zeros(n_ext, dtype=bool)
    skip_from[:-2] = skip[2:]
    for t in range(t_b - 2, -1, -1):
        b = log_beta[t + 1]
        paths = np.stack([b, _ctc_shift(b, -1), np.where(skip_from, _ctc_shift(b, -2), -np.inf)])
        log_beta[t] = _ctc_log_sum_exp(paths, 0) + y[t]
    return -float(_ctc_log_sum_exp(log_alpha[t_b - 1, -2:], 0)), log_alpha, log_beta, ext


def _ctc_denominators(t_len: NDArray[np.int64], s_len: NDArray[np.int64],
                      reduction: str) -> Array:
    r"""What each sequence's loss is divided by under ``reduction``: N max(S_b, 1) for "mean"."""
    _check_reduction(reduction)
    if reduction != "mean":
        return np.ones(len(t_len))
    return len(t_len) * np.maximum(np.asarray(s_len, dtype=np.float64).reshape(-1), 1.0)


def ctc_loss(
    log_probs: Array, targets: NDArray[np.int64], input_lengths: NDArray[np.int64],
    target_lengths: NDArray[np.int64], blank: int = 0, reduction: str = "mean",
    zero_infinity: bool = False,
) -> Array:
    r"""Connectionist temporal classification: l_b = -log p(target_b | log_probs[:T_b, b]).

    p(l | x) sums, over every alignment pi of length T_b (a label or blank per frame) that
    collapses to l (merge repeats, then drop blanks), prod_t exp(x[t, pi_t]). It is computed by
    the forward (alpha) recursion over l' = (blank, l_1, blank, ..., l_S, blank) of Graves et
    al. (2006), eq. 6-8 (``_ctc_alpha_beta``). log_probs is (T, N, C) or unbatched (T, C);
    targets padded (N, S) or concatenated (sum_b S_b,); T_b = input_lengths[b] frames and
    S_b = target_lengths[b] labels are used. An impossible alignment (T_b too short for the
    labels and the blanks between repeats) has p = 0, l_b = inf; ``zero_infinity`` replaces
    such losses by 0. Reduction: "none" -> l (shape (N,), () unbatched), "sum" -> sum_b l_b,
    "mean" -> (1/N) sum_b l_b / max(S_b, 1) (torch's per-target-length mean).

    Derivative (``ctc_loss_vjp``): dl_b/dx[t, b, k] = -sum_{s: l'_s = k} alpha_t(s) beta_t(s)
    / (y_t(k) p) for t < T_b (eq. 14-16 in log space), 0 for t >= T_b.

    Numerics: alpha and beta are kept as logs and every sum is a log-sum-exp shifted by its
    finite maximum: the probabilities underflow float64 after a few hundred frames otherwise.
    log_probs need not be normalised: the recursion is a function of arbitrary reals (torch's
    forward reads the values as they are, too).
    Follows ``torch.nn.functional.ctc_loss`` / ``torch.nn.CTCLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.CTCLoss.html).
    """
    x, labels, t_len, unbatched = _ctc_sequences(log_probs, targets, input_lengths,
                                                 target_lengths)
    loss = np.array([_ctc_alpha_beta(x[: t_len[b], b], labels[b], blank)[0]
                     for b in range(x.shape[1])])
    if zero_infinity:
        loss = np.where(np.isinf(loss), 0.0, loss)
    loss = loss / _ctc_denominators(t_len, np.asarray(target_lengths), reduction)
    if reduction == "none":
        return loss[0] if unbatched else loss
    return np.asarray(np.sum(loss), dtype=np.float64)


def ctc_loss_vjp(
    g: Array, log_probs: Array, targets: NDArray[np.int64], input_lengths: NDArray[np.int64],
    target_lengths: NDArray[np.int64], blank: int = 0, reduction: str = "mean",
    zero_infinity: bool = False, gradient: str = "derivative",
) -> dict[str, Array]:
    r"""VJP of CTC w.r.t. log_probs (Graves et al. 2006, eq. 16, in log space).

    With gbar_b = dL/dl_b (g_b for "none", g for "sum", g / (N max(S_b, 1)) for "mean"), for
    t < T_b:  dL/dx[t, b, k] = -gbar_b sum_{s: l'_s = k} exp(log alpha_t(s) + log beta_t(s)
    - x[t, b, k] + l_b)  (alpha and beta both include y_t(l'_s), hence the division by it), and
    0 for t >= T_b. A sequence with l_b = inf contributes 0 with ``zero_infinity`` and nan
    without it (the derivative does not exist there; torch also gives nan).

    ``gradient="torch"`` gives torch's gradient instead of the derivative: torch's CTC backward
    returns dL/dx + gbar_b exp(x[t, b, k]) for t < T_b (the gradient w.r.t. the logits of a
    log_softmax in front, whose backward removes the extra term when log_probs are normalised);
    KNOWN_DIFFERENCES.md, "CTCLoss's gradient is not the derivative of its forward".
    """
    if gradient not in ("derivative", "torch"):
        raise ValueError(f"gradient must be 'derivative' or 'torch'; got {gradient!r}")
    x, labels, t_len, unbatched = _ctc_sequences(log_probs, targets, input_lengths,
                                                 target_lengths)
    n = x.shape[1]
    gbar = np.broadcast_to(np.asarray(g, dtype=np.float64).reshape(-1), (n,)) \
        / _ctc_denominators(t_len, np.asarray(target_lengths), reduction)
    grad = np.zeros_like(x)
    for b in range(n):
        t_b = t_len[b]
        nll, log_alpha, log_beta, ext = _ctc_alpha_beta(x[:t_b, b], labels[b], blank)
        if np.isinf(nll):
            grad[:t_b, b] = 0.0 if zero_infinity else np.nan
            continue
        occupancy = np.exp(log_alpha + log_beta - x[:t_b, b][:, ext] + nll)  # (T_b, 2S + 1)
        for s, k in enumerate(ext):
            grad[:t_b, b, k] -= gbar[b] * occupancy[:, s]
        if gradient == "torch":
            grad[:t_b, b] += gbar[b] * np.exp(x[:t_b, b])
    return {"log_probs": grad[:, 0] if unbatched else grad}
