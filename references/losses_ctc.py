r"""Connectionist temporal classification loss and its VJP, NumPy float64.

The alpha/beta recursions of Graves et al. (2006) in log space, with torch's reductions
("mean" divides each sequence's loss by its target length, then averages). The recursions loop
over the frames only: each step is vectorised over the sequences of the batch and the positions
of their (padded) extended labellings. The forward/VJP convention is that of
``references._loss_common``.

Follows ``torch.nn.functional.ctc_loss`` / ``torch.nn.CTCLoss``
(https://pytorch.org/docs/stable/generated/torch.nn.CTCLoss.html).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from references._loss_common import (
    Array,
    _check_reduction,
)


def _ctc_sequences(
    log_probs: Array, targets: NDArray[np.int64], input_lengths: NDArray[np.int64],
    target_lengths: NDArray[np.int64],
) -> tuple[Array, NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], bool]:
    r"""Validate CTC arguments; return (x of shape (T, N, C), the labels as (N, max_b S_b)
    (row b holds sequence b's S_b labels first, then padding), each input length T_b, each
    target length S_b, whether the input was unbatched)."""
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
    s_max = int(s_len.max(initial=0))
    if y.ndim == 2 and not unbatched:  # padded (N, S)
        labels = y[:, :s_max]
    else:  # concatenated (sum(target_lengths),), or the (S,) of an unbatched input
        flat = y.reshape(-1)
        if not unbatched and flat.size != int(s_len.sum()):
            raise ValueError(f"concatenated targets must hold sum(target_lengths) = {s_len.sum()} "
                             f"labels; got {flat.size}")
        first = np.cumsum(s_len) - s_len  # where each sequence's labels start
        position = np.minimum(first[:, None] + np.arange(s_max), max(flat.size - 1, 0))
        labels = flat[position] if flat.size else np.zeros((n, s_max), dtype=np.int64)
    return x, labels, t_len, s_len, unbatched


class _Lattice(NamedTuple):
    r"""Every sequence's extended labelling l' = (blank, l_1, blank, ..., l_S, blank), padded to
    L = 2 max_b S_b + 1 positions, and what the recursions need of it, all (N, L)."""

    ext: NDArray[np.int64]  # l'_s
    valid: NDArray[np.bool_]  # s < 2 S_b + 1
    skip: NDArray[np.bool_]  # a path may come to s from s - 2: l'_s a label, l'_s != l'_{s-2}
    ends: NDArray[np.bool_]  # s in {2 S_b - 1, 2 S_b}: where a complete path ends


def _lattice(labels: NDArray[np.int64], s_len: NDArray[np.int64], blank: int) -> _Lattice:
    n, s_max = labels.shape
    ext = np.full((n, 2 * s_max + 1), blank, dtype=np.int64)
    ext[:, 1::2] = labels
    s = np.arange(ext.shape[1])
    valid = s < 2 * s_len[:, None] + 1
    skip = (s >= 2) & (ext != blank) & (ext != np.concatenate([ext[:, :2], ext[:, :-2]], axis=1))
    ends = valid & (s >= 2 * s_len[:, None] - 1)
    return _Lattice(ext, valid, skip & valid, ends)


def _paths_into(v: Array, skip: NDArray[np.bool_], step: int) -> Array:
    r"""log(v(s) + v(s - step) + [skip(s)] v(s - 2 step)) per position s along the last axis
    (step 1: the paths into s from the previous frame; step -1: into s from the next frame,
    read backwards), each missing neighbour log 0 = -inf. Sums of two are ``np.logaddexp``
    (max(a, b) + log1p(exp(-|a - b|)), exact for -inf)."""
    paths = v.copy()
    if step > 0:
        np.logaddexp(v[:, 1:], v[:, :-1], out=paths[:, 1:])
        np.logaddexp(paths[:, 2:], v[:, :-2], out=paths[:, 2:], where=skip[:, 2:])
    else:
        np.logaddexp(v[:, :-1], v[:, 1:], out=paths[:, :-1])
        np.logaddexp(paths[:, :-2], v[:, 2:], out=paths[:, :-2], where=skip[:, :-2])
    return paths


def _ctc_alpha_beta(
    y: Array, lattice: _Lattice, t_len: NDArray[np.int64], with_beta: bool
) -> tuple[Array, Array | None]:
    r"""log alpha and (``with_beta``) log beta, (T, N, L), for y[t, b, s] = log y_t(l'_s) of
    sequence b (Graves et al. 2006, eq. 6-11, in log space):

        alpha_0(0) = y_0(blank), alpha_0(1) = y_0(l_1),
        alpha_t(s) = (alpha_{t-1}(s) + alpha_{t-1}(s-1) + [skip(s)] alpha_{t-1}(s-2)) y_t(l'_s),
        beta_{T_b-1}(s) = y_{T_b-1}(l'_s) for s in {2S - 1, 2S},
        beta_t(s) = (beta_{t+1}(s) + beta_{t+1}(s+1) + [skip(s+2)] beta_{t+1}(s+2)) y_t(l'_s),

    0 (-inf in logs) outside each sequence's positions s < 2 S_b + 1 and frames t < T_b (there
    y is taken as log 0). The loop runs over the frames t only; each step is vectorised over
    the sequences and positions.
    """
    frames = y.shape[0]
    alive = lattice.valid[None] & (np.arange(frames)[:, None] < t_len)[..., None]  # (T, N, L)
    y = np.where(alive, y, -np.inf)
    log_alpha = np.full(y.shape, -np.inf)
    if frames:
        log_alpha[0, :, :2] = y[0, :, :2]
    for t in range(1, frames):
        log_alpha[t] = _paths_into(log_alpha[t - 1], lattice.skip, 1) + y[t]
    if not with_beta:
        return log_alpha, None
    skip_from = np.zeros_like(lattice.skip)  # skip_from[s] = skip(s + 2)
    skip_from[:, :-2] = lattice.skip[:, 2:]
    ends = np.where(lattice.ends, 0.0, -np.inf)  # log 1 where the paths end, else log 0
    log_beta = np.full(y.shape, -np.inf)
    for t in range(frames - 1, -1, -1):
        into = _paths_into(log_beta[t + 1], skip_from, -1) if t + 1 < frames else ends
        last = np.equal(t_len - 1, t)[:, None]  # frame T_b - 1: sequence b's paths end here
        log_beta[t] = np.where(last, ends, into) + y[t]
    return log_alpha, log_beta


def _ctc_nll(log_alpha: Array, lattice: _Lattice, t_len: NDArray[np.int64],
             s_len: NDArray[np.int64]) -> Array:
    r"""-log p(l_b | x) = -log(alpha_{T_b-1}(2S_b) + alpha_{T_b-1}(2S_b - 1)) per sequence; with
    no frames (T_b = 0) only the empty labelling has probability (1)."""
    n = len(t_len)
    last = log_alpha[np.maximum(t_len - 1, 0), np.arange(n)] if len(log_alpha) else \
        np.full(lattice.ext.shape, -np.inf)
    with np.errstate(divide="ignore"):
        nll = -np.logaddexp.reduce(np.where(lattice.ends, last, -np.inf), axis=1)
    no_frames = np.where(s_len == 0, 0.0, np.inf)
    return np.where(t_len == 0, no_frames, nll)


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

    Numerics: alpha and beta are kept as logs and every sum of two is ``np.logaddexp``
    (max(a, b) + log1p(exp(-|a - b|)), exact for log 0 = -inf): the probabilities underflow
    float64 after a few hundred frames otherwise.
    log_probs need not be normalised: the recursion is a function of arbitrary reals (torch's
    forward reads the values as they are, too).
    Follows ``torch.nn.functional.ctc_loss`` / ``torch.nn.CTCLoss``
    (https://pytorch.org/docs/stable/generated/torch.nn.CTCLoss.html).
    """
    x, labels, t_len, s_len, unbatched = _ctc_sequences(log_probs, targets, input_lengths,
                                                        target_lengths)
    lattice = _lattice(labels, s_len, blank)
    y = x[:, np.arange(x.shape[1])[:, None], lattice.ext]  # y[t, b, s] = x[t, b, l'_s]
    loss = _ctc_nll(_ctc_alpha_beta(y, lattice, t_len, with_beta=False)[0], lattice, t_len, s_len)
    if zero_infinity:
        loss = np.where(np.isinf(loss), 0.0, loss)
    loss = loss / _ctc_denominators(t_len, s_len, reduction)
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
    x, labels, t_len, s_len, unbatched = _ctc_sequences(log_probs, targets, input_lengths,
                                                        target_lengths)
    n, classes = x.shape[1:]
    gbar = np.broadcast_to(np.asarray(g, dtype=np.float64).reshape(-1), (n,)) \
        / _ctc_denominators(t_len, s_len, reduction)
    lattice = _lattice(labels, s_len, blank)
    y = x[:, np.arange(n)[:, None], lattice.ext]  # y[t, b, s] = x[t, b, l'_s]
    log_alpha, log_beta = _ctc_alpha_beta(y, lattice, t_len, with_beta=True)
    assert log_beta is not None
    nll = _ctc_nll(log_alpha, lattice, t_len, s_len)
    frames = (np.arange(x.shape[0])[:, None] < t_len)[..., None]  # (T, N, 1): t < T_b
    with np.errstate(invalid="ignore"):
        occupancy = np.where(frames, np.exp(log_alpha + log_beta - y + nll[:, None]), 0.0)
    # sum over the positions s holding class k: a product with the one-hot (N, L, C) of l'
    onehot = (lattice.ext[:, :, None] == np.arange(classes)) & lattice.valid[:, :, None]
    summed = np.matmul(occupancy.transpose(1, 0, 2), onehot.astype(np.float64))  # (N, T, C)
    grad = -gbar[None, :, None] * summed.transpose(1, 0, 2)
    if gradient == "torch":
        grad = grad + np.where(frames, gbar[None, :, None] * np.exp(x), 0.0)
    impossible = np.isinf(nll)[None, :, None] & frames  # no alignment: no derivative
    grad = np.where(impossible, 0.0 if zero_infinity else np.nan, grad)
    return {"log_probs": grad[:, 0] if unbatched else grad}
