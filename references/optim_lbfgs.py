r"""L-BFGS with torch's optional strong-Wolfe line search, NumPy float64.

Unlike the per-parameter rules of the other ``references/optim_*.py`` modules, one ``lbfgs``
call is a whole ``step(closure)``: it works on the flat vector of all parameters and calls the
objective itself. Its state is torch's, kept once under the first parameter.

Follows ``torch.optim.LBFGS`` (https://pytorch.org/docs/stable/generated/torch.optim.LBFGS.html)
and its implementation ``torch/optim/lbfgs.py``, read for torch 2.13.0, operation for operation;
the line search is Nocedal & Wright's Algorithms 3.5 and 3.6 as torch ports them from minFunc.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from references._optim_common import Array


class LBFGSState(NamedTuple):
    r"""The state of :func:`lbfgs`; field names are torch's ``state`` keys.

    torch keeps L-BFGS's state once, under the first parameter, over the flat vector of all
    parameters. ``func_evals``, ``n_iter``: objective evaluations and iterations over all
    steps. ``d``: the last search direction; ``t``: the last step length; ``old_dirs``,
    ``old_stps``: the curvature pairs y_k = g_{k+1} - g_k and s_k = t_k d_k, oldest first (at
    most ``history_size``); ``ro``: 1 / (y_k^T s_k); ``H_diag``: gamma_k, the scale of the
    initial inverse Hessian; ``prev_flat_grad``, ``prev_loss``: the gradient and loss at the
    start of the last iteration. All but the two counts are ``None`` until an iteration runs.
    """

    func_evals: int
    n_iter: int
    d: Array | None = None
    t: float | None = None
    old_dirs: tuple[Array, ...] | None = None
    old_stps: tuple[Array, ...] | None = None
    ro: tuple[float, ...] | None = None
    H_diag: float | None = None
    prev_flat_grad: Array | None = None
    prev_loss: float | None = None


Objective = Callable[[Array], tuple[float, Array]]


def _cubic_interpolate(x1: float, f1: float, g1: float, x2: float, f2: float, g2: float,
                       bounds: tuple[float, float] | None = None) -> float:
    r"""The minimiser of the cubic through (x1, f1, f1' = g1) and (x2, f2, g2), clipped.

    Nocedal & Wright eq. (3.59): with d1 = g1 + g2 - 3 (f1 - f2) / (x1 - x2) and
    d2 = sqrt(d1^2 - g1 g2), the minimiser seen from the farther point x2 is
    x2 - (x2 - x1) (g2 + d2 - d1) / (g2 - g1 + 2 d2) (and symmetrically from x1). It is clipped
    to ``bounds`` (default: the interval between the points); when d1^2 < g1 g2 the cubic has no
    minimum and the middle of the bounds is returned (torch's ``_cubic_interpolate``, ported
    from minFunc's ``polyinterp``).
    """
    if bounds is not None:
        lo, hi = bounds
    else:
        lo, hi = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square < 0:
        return (lo + hi) / 2.0
    d2 = float(np.sqrt(d2_square))
    if x1 <= x2:
        min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(min_pos, lo), hi)


def _strong_wolfe(phi: Callable[[float], tuple[float, Array]], d: Array, t: float, f: float,
                  g: Array, gtd: float, *, c1: float = 1e-4, c2: float = 0.9,
                  tolerance_change: float = 1e-9,
                  max_ls: int = 25) -> tuple[float, Array, float, int]:
    r"""A step length t along ``d`` satisfying the strong Wolfe conditions.

    phi(t) = (f(x + t d), grad f(x + t d)); f, g, gtd are the loss, gradient and slope g^T d at
    t = 0. The strong Wolfe conditions (Nocedal & Wright eq. 3.7):

        f(x + t d) <= f + c1 t gtd                 (sufficient decrease, Armijo)
        |grad f(x + t d)^T d| <= c2 |gtd|          (curvature)

    Bracketing (N&W Algorithm 3.5): try t; stop with a bracket [t_prev, t] when Armijo fails or
    f stops decreasing (from the third trial on), or when the slope turns non-negative; accept t
    when the curvature condition holds; otherwise extrapolate by cubic interpolation of the last
    two trials clipped to [t + 0.01 (t - t_prev), 10 t]. Zoom (N&W Algorithm 3.6): interpolate a
    cubic over the bracket; a trial within 10% of the bracket's length from an end is moved to
    that 10% mark when the previous trial was also that close (or the trial lies on an end),
    the "insufficient progress" safeguard; the low end (least f) and high end are updated as in
    N&W. Returns (f, grad, t, evaluations) at the low end of the final bracket.

    Divergences from N&W: ``max_ls`` bounds all trials of both phases together (torch passes
    max_eval minus the evaluations already spent); when the bracketing phase runs out, the
    bracket is [0, t] and the lower of its two ends is returned, possibly t = 0; the zoom stops
    once the bracket's length times max|d| falls below ``tolerance_change``. This follows torch
    2.13's ``_strong_wolfe`` (torch/optim/lbfgs.py, ported from ``lswolfe.lua``).
    """
    d_norm = float(np.max(np.abs(d)))
    f_new, g_new = phi(t)
    evals = 1
    gtd_new = float(g_new @ d)
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done = False
    ls_iter = 0
    bracket: list[float] = []
    bracket_f: list[float] = []
    bracket_g: list[Array] = []
    bracket_gtd: list[float] = []
    # Bracketing phase.
    while ls_iter < max_ls:
        if f_new > f + c1 * t * gtd or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        # Extrapolate: a cubic through the last two trials, within [t + 0.01 (t - t_prev), 10 t].
        t_next = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                                    bounds=(t + 0.01 * (t - t_prev), t * 10))
        t_prev, f_prev, g_prev, gtd_prev = t, f_new, g_new, gtd_new
        t = t_next
        f_new, g_new = phi(t)
        evals += 1
        gtd_new = float(g_new @ d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0.0, t], [f, f_new], [g, g_new]
    # Zoom phase: shrink the bracket [low, high] until a trial satisfies both conditions.
    insuf_progress = False
    low, high = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                               bracket[1], bracket_f[1], bracket_gtd[1])
        # Safeguard: keep trials at least 10% of the bracket away from its ends.
        lo_b, hi_b = min(bracket), max(bracket)
        eps = 0.1 * (hi_b - lo_b)
        if min(hi_b - t, t - lo_b) < eps:
            if insuf_progress or t >= hi_b or t <= lo_b:
                t = hi_b - eps if abs(t - hi_b) < abs(t - lo_b) else lo_b + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = phi(t)
        evals += 1
        gtd_new = float(g_new @ d)
        ls_iter += 1
        if f_new > f + c1 * t * gtd or f_new >= bracket_f[low]:
            # No sufficient decrease, or not below the low end: t becomes the high end.
            bracket[high], bracket_f[high] = t, f_new
            bracket_g[high], bracket_gtd[high] = g_new, gtd_new
            low, high = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                # The slope points back past the low end: the old low becomes the high end.
                bracket[high], bracket_f[high] = bracket[low], bracket_f[low]
                bracket_g[high], bracket_gtd[high] = bracket_g[low], bracket_gtd[low]
            bracket[low], bracket_f[low] = t, f_new
            bracket_g[low], bracket_gtd[low] = g_new, gtd_new
    return bracket_f[low], bracket_g[low], bracket[low], evals


def lbfgs(
    params: Array,
    closure: Objective,
    state: LBFGSState | None,
    *,
    lr: float = 1.0,
    max_iter: int = 20,
    max_eval: int | None = None,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
    history_size: int = 100,
    line_search_fn: str | None = None,
    line_search_budget: bool = True,
) -> tuple[Array, float, LBFGSState]:
    r"""One ``step(closure)`` of torch's L-BFGS: up to ``max_iter`` quasi-Newton iterations.

    ``params`` is the flat float64 vector of all parameters (torch concatenates them, complex
    ones as real pairs); ``closure(x) -> (f(x), grad f(x))``. Returns (new params, the loss at
    the old params, new state). Each iteration k, with g_k = grad f(x_k):

        d_0 = -g_0,  gamma = 1                                      (first iteration ever)
        y = g_k - g_{k-1},  s = t_{k-1} d_{k-1}                     (later iterations)
        if y^T s > 1e-10: append (y, s, rho = 1 / y^T s), dropping the oldest past
                          history_size; gamma = y^T s / y^T y
        d_k = -H_k g_k by the two-loop recursion (N&W Algorithm 7.4) with H_0 = gamma I:
            q = -g_k;  for i newest..oldest: a_i = rho_i s_i^T q,  q -= a_i y_i
            r = gamma q;  for i oldest..newest: b_i = rho_i y_i^T r,  r += (a_i - b_i) s_i
        t_k = lr min(1, 1 / ||g_0||_1) on the first iteration ever, else lr
        stop if g_k^T d_k > -tolerance_change
        x_{k+1} = x_k + t_k d_k, with t_k from :func:`_strong_wolfe` when
                  line_search_fn == "strong_wolfe", else fixed (then f, g are re-evaluated
                  at x_{k+1} unless this is the step's last iteration)

    and the step stops after max_iter iterations, when the evaluations reach max_eval, when
    max|g| <= tolerance_grad (also checked before the first iteration, which then returns at
    once), when max|t_k d_k| <= tolerance_change, or when |f_{k+1} - f_k| < tolerance_change.

    torch argument mapping: ``torch.optim.LBFGS(params, lr, max_iter, max_eval,
    tolerance_grad, tolerance_change, history_size, line_search_fn)``, ``max_eval`` defaulting
    to ``max_iter * 5 // 4``; the state is torch's ``optimizer.state[first param]``. Follows
    torch/optim/lbfgs.py of torch 2.13.0 operation for operation (docs:
    https://pytorch.org/docs/stable/generated/torch.optim.LBFGS.html).

    Divergences from Nocedal & Wright: the curvature pairs are kept only when y^T s > 1e-10
    (an absolute threshold, not relative to |y||s|) — otherwise the history and gamma stay as
    they were; the history and directions persist across ``step`` calls, so a new step's first
    iteration continues with y = g - (gradient at the start of the previous iteration), which
    without a line search is *not* the gradient at the parameters the previous step ended on
    (the last fixed step is not re-evaluated); the initial trial step of the first iteration
    ever is scaled by 1 / ||g||_1; without a line search the step is the fixed lr, not a
    Wolfe step; the stopping tests use max-norms and absolute (not relative) tolerances.

    ``line_search_budget`` (not a torch argument: the installed torch's behaviour, chosen by
    ``suite.versions.LBFGS``): True, the strong-Wolfe search may spend at most the evaluations
    left under max_eval (torch 2.10 and newer; pytorch/pytorch#91581); False, it may always
    spend 25, so a step can exceed max_eval (torch 2.9 and older).
    """
    if max_eval is None:
        max_eval = max_iter * 5 // 4
    x = np.array(params, dtype=np.float64, copy=True)
    func_evals = 0 if state is None else state.func_evals
    total_iter = 0 if state is None else state.n_iter
    orig_loss, flat_grad = closure(x)
    loss = float(orig_loss)
    current_evals = 1
    func_evals += 1
    if np.max(np.abs(flat_grad)) <= tolerance_grad:
        if state is None:
            return x, orig_loss, LBFGSState(func_evals, total_iter)
        return x, orig_loss, state._replace(func_evals=func_evals)
    prev = state if state is not None else LBFGSState(func_evals, total_iter)
    d, t, h_diag = prev.d, prev.t, prev.H_diag
    old_dirs = list(prev.old_dirs or ())
    old_stps = list(prev.old_stps or ())
    ro = list(prev.ro or ())
    prev_flat_grad, prev_loss = prev.prev_flat_grad, prev.prev_loss
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        total_iter += 1
        # Search direction.
        if total_iter == 1:
            d = -flat_grad
            old_dirs, old_stps, ro = [], [], []
            h_diag = 1.0
        else:
            assert d is not None and t is not None and prev_flat_grad is not None
            y = flat_grad - prev_flat_grad
            s = d * t
            ys = float(y @ s)
            if ys > 1e-10:
                if len(old_dirs) == history_size:
                    old_dirs.pop(0)
                    old_stps.pop(0)
                    ro.pop(0)
                old_dirs.append(y)
                old_stps.append(s)
                ro.append(1.0 / ys)
                h_diag = ys / float(y @ y)
            assert h_diag is not None
            # Two-loop recursion: d = -H g.
            al = [0.0] * len(old_dirs)
            q = -flat_grad
            for i in range(len(old_dirs) - 1, -1, -1):
                al[i] = float(old_stps[i] @ q) * ro[i]
                q = q - al[i] * old_dirs[i]
            r = q * h_diag
            for i in range(len(old_dirs)):
                be_i = float(old_dirs[i] @ r) * ro[i]
                r = r + (al[i] - be_i) * old_stps[i]
            d = r
        prev_flat_grad = np.array(flat_grad, copy=True)
        prev_loss = loss
        # Step length.
        t = min(1.0, 1.0 / float(np.sum(np.abs(flat_grad)))) * lr if total_iter == 1 else lr
        gtd = float(flat_grad @ d)
        if gtd > -tolerance_change:
            break
        ls_func_evals = 0
        if line_search_fn is not None:
            if line_search_fn != "strong_wolfe":
                raise RuntimeError("only 'strong_wolfe' is supported")

            def phi(step: float, x0: Array = x, d0: Array = d) -> tuple[float, Array]:
                f_t, g_t = closure(x0 + step * d0)  # torch's _directional_evaluate
                return float(f_t), g_t

            loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                phi, d, t, loss, flat_grad, gtd,
                max_ls=max_eval - current_evals if line_search_budget else 25)
            x = x + t * d
            opt_cond = bool(np.max(np.abs(flat_grad)) <= tolerance_grad)
        else:
            x = x + t * d
            opt_cond = False
            if n_iter != max_iter:
                f_x, flat_grad = closure(x)
                loss = float(f_x)
                opt_cond = bool(np.max(np.abs(flat_grad)) <= tolerance_grad)
                ls_func_evals = 1
        current_evals += ls_func_evals
        func_evals += ls_func_evals
        # Stopping tests.
        if n_iter == max_iter or current_evals >= max_eval or opt_cond:
            break
        if np.max(np.abs(d * t)) <= tolerance_change:
            break
        if abs(loss - prev_loss) < tolerance_change:
            break
    new_state = LBFGSState(func_evals, total_iter, d, t, tuple(old_dirs), tuple(old_stps),
                           tuple(ro), h_diag, prev_flat_grad, prev_loss)
    return x, orig_loss, new_state
