r"""Learning-rate schedules: the learning rate of one parameter group, epoch by epoch, NumPy.

Each function returns the learning rates eta_0, eta_1, ..., eta_E (``epochs + 1`` values) that
a ``torch.optim.lr_scheduler`` scheduler sets after its construction (eta_0) and after each of
``epochs`` calls of ``scheduler.step()``, for a group whose learning rate was ``lr`` when the
scheduler was built. Options carry torch's argument names and defaults.

The functions are the documented *closed forms* (the formulas in each scheduler's
documentation, https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate).
torch's ``step()`` mostly evaluates a *chainable* recursion instead, eta_e = eta_{e-1} *
ratio_e (so that several schedulers can be composed); the two agree mathematically (checked
by the tests to ~1e-10 relative) but not to the last bit, since the recursion accumulates one
rounding per epoch. Read for torch 2.13.0 (``torch/optim/lr_scheduler.py``).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def _sequence(epochs: int, f: Callable[[int], float]) -> Array:
    return np.array([f(e) for e in range(epochs + 1)], dtype=np.float64)


def lambda_lr(epochs: int, *, lr: float, lr_lambda: Callable[[int], float]) -> Array:
    r"""eta_e = eta_0 * lambda(e), with lambda = ``lr_lambda`` (torch: ``LambdaLR``).

    Divergences: none; torch evaluates exactly this (base_lr * lmbda(last_epoch)).
    """
    return _sequence(epochs, lambda e: lr * lr_lambda(e))


def multiplicative_lr(epochs: int, *, lr: float, lr_lambda: Callable[[int], float]) -> Array:
    r"""eta_0 = lr, eta_e = eta_{e-1} * lambda(e) (torch: ``MultiplicativeLR``), i.e.
    eta_e = lr * prod_{i=1..e} lambda(i).

    Divergences: none.
    """
    out = [lr]
    for e in range(1, epochs + 1):
        out.append(out[-1] * lr_lambda(e))
    return np.array(out, dtype=np.float64)


def step_lr(epochs: int, *, lr: float, step_size: int, gamma: float = 0.1) -> Array:
    r"""eta_e = lr * gamma^floor(e / step_size) (torch: ``StepLR``).

    Divergences: torch's step() multiplies the previous lr by gamma every step_size epochs
    (chainable form); equal up to rounding.
    """
    return _sequence(epochs, lambda e: lr * gamma ** (e // step_size))


def multi_step_lr(epochs: int, *, lr: float, milestones: Sequence[int],
                  gamma: float = 0.1) -> Array:
    r"""eta_e = lr * gamma^(number of milestones <= e) (torch: ``MultiStepLR``).

    A milestone listed twice counts twice (torch keeps a Counter).
    """
    ms = sorted(milestones)
    return _sequence(epochs, lambda e: lr * gamma ** bisect_right(ms, e))


def constant_lr(epochs: int, *, lr: float, factor: float = 1.0 / 3,
                total_iters: int = 5) -> Array:
    r"""eta_e = lr * factor for e < total_iters, lr afterwards (torch: ``ConstantLR``).

    Divergences: torch's chainable form divides by factor at e = total_iters (equal up to
    rounding).
    """
    return _sequence(epochs, lambda e: lr * (factor if e < total_iters else 1.0))


def linear_lr(epochs: int, *, lr: float, start_factor: float = 1.0 / 3,
              end_factor: float = 1.0, total_iters: int = 5) -> Array:
    r"""eta_e = lr * (s + (f - s) * min(e, T) / T), s = ``start_factor``, f = ``end_factor``,
    T = ``total_iters`` (torch: ``LinearLR``)."""
    return _sequence(epochs, lambda e: lr * (start_factor + (end_factor - start_factor)
                                             * min(total_iters, e) / total_iters))


def exponential_lr(epochs: int, *, lr: float, gamma: float) -> Array:
    r"""eta_e = lr * gamma^e (torch: ``ExponentialLR``)."""
    return _sequence(epochs, lambda e: lr * gamma**e)


def polynomial_lr(epochs: int, *, lr: float, total_iters: int = 5, power: float = 1.0) -> Array:
    r"""eta_e = lr * (1 - min(e, T) / T)^power, T = ``total_iters`` (torch: ``PolynomialLR``)."""
    return _sequence(epochs, lambda e: lr * (1.0 - min(total_iters, e) / total_iters) ** power)


def cosine_annealing_lr(epochs: int, *, lr: float, T_max: int,  # noqa: N803 (torch's name)
                        eta_min: float = 0.0) -> Array:
    r"""eta_e = eta_min + (lr - eta_min) (1 + cos(pi e / T_max)) / 2 (torch: ``CosineAnnealingLR``).

    The SGDR formula without restarts; past T_max it goes on along the cosine (rising again
    towards lr at 2 T_max), which is what torch's recursion does too.

    Divergences: torch's step() uses the recursion
    eta_e = eta_min + (eta_{e-1} - eta_min) (1 + cos(pi e / T)) / (1 + cos(pi (e - 1) / T)),
    with a special branch where the denominator vanishes (e - 1 = T_max mod 2 T_max); the
    documentation gives both. Equal up to rounding.
    """
    return _sequence(epochs, lambda e: eta_min + (lr - eta_min)
                     * (1 + math.cos(math.pi * e / T_max)) / 2)


def cosine_annealing_warm_restarts(epochs: int, *, lr: float,
                                   T_0: int, T_mult: int = 1,  # noqa: N803 (torch's names)
                                   eta_min: float = 0.0) -> Array:
    r"""SGDR (Loshchilov & Hutter, 2017): eta_e = eta_min + (lr - eta_min)(1 + cos(pi T_cur /
    T_i)) / 2, where T_cur counts epochs since the last restart and the i-th period lasts
    T_i = T_0 T_mult^i epochs (torch: ``CosineAnnealingWarmRestarts``).

    Divergences: none for integer epochs stepped one at a time.
    """
    out = []
    t_cur, t_i = 0, T_0
    for e in range(epochs + 1):
        if e > 0:
            t_cur += 1
            if t_cur >= t_i:
                t_cur -= t_i
                t_i *= T_mult
        out.append(eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2)
    return np.array(out, dtype=np.float64)


def cyclic_lr(epochs: int, *, lr: float, base_lr: float, max_lr: float,
              step_size_up: int = 2000, step_size_down: int | None = None,
              mode: str = "triangular", gamma: float = 1.0) -> Array:
    r"""The cyclical learning rate of Smith (2017) (torch: ``CyclicLR``).

    With S = step_size_up + step_size_down, r = step_size_up / S, cycle c = floor(1 + e / S),
    x = 1 + e / S - c (position within the cycle):

        h     = x / r if x <= r else (x - 1) / (r - 1)        (0 -> 1 -> 0 over a cycle)
        eta_e = base_lr + (max_lr - base_lr) h * scale
        scale = 1 (triangular), 1 / 2^(c - 1) (triangular2), gamma^e (exp_range)

    ``lr`` (the optimizer's) is unused: CyclicLR overwrites it with ``base_lr``.

    Divergences: none.
    """
    down = step_size_up if step_size_down is None else step_size_down
    total = float(step_size_up) + float(down)
    ratio = step_size_up / total

    def at(e: int) -> float:
        cycle = math.floor(1 + e / total)
        x = 1.0 + e / total - cycle
        height = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        scale = {"triangular": 1.0, "triangular2": 1 / (2.0 ** (cycle - 1)),
                 "exp_range": gamma**e}[mode]
        return base_lr + (max_lr - base_lr) * height * scale

    return _sequence(epochs, at)


def one_cycle_lr(epochs: int, *, lr: float, max_lr: float, total_steps: int,
                 pct_start: float = 0.3, anneal_strategy: str = "cos",
                 div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False) -> Array:
    r"""The 1cycle policy (Smith & Topin, 2018) (torch: ``OneCycleLR``).

    initial = max_lr / div_factor, min = initial / final_div_factor, N = total_steps,
    p = pct_start. Phases (start value -> end value, up to end step):

        two-phase:   initial -> max_lr up to p N - 1;  max_lr -> min up to N - 1
        three-phase: initial -> max_lr up to p N - 1;  max_lr -> initial up to 2 p N - 2;
                     initial -> min up to N - 1

    Within a phase from step a to step b, with t = (e - a) / (b - a), the value moves from
    start to end by cos annealing, end + (start - end)(1 + cos(pi t)) / 2, or linearly,
    start + (end - start) t. ``lr`` (the optimizer's) is unused. Valid for e <= N (torch
    raises ValueError beyond).

    Divergences: none (the phase ends are torch's; the paper describes the shape only).
    """
    initial = max_lr / div_factor
    minimum = initial / final_div_factor
    if three_phase:
        phases = [(float(pct_start * total_steps) - 1, initial, max_lr),
                  (float(2 * pct_start * total_steps) - 2, max_lr, initial),
                  (total_steps - 1, initial, minimum)]
    else:
        phases = [(float(pct_start * total_steps) - 1, initial, max_lr),
                  (total_steps - 1, max_lr, minimum)]

    def anneal(start: float, end: float, pct: float) -> float:
        if anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def at(e: int) -> float:
        start_step = 0.0
        for i, (end_step, start, end) in enumerate(phases):
            if e <= end_step or i == len(phases) - 1:
                return anneal(start, end, (e - start_step) / (end_step - start_step))
            start_step = end_step
        raise AssertionError("unreachable")

    return _sequence(epochs, at)


def sequential_lr(epochs: int, *, lr: float,
                  schedulers: Sequence[tuple[Callable[..., Array], dict[str, Any]]],
                  milestones: Sequence[int]) -> Array:
    r"""Schedule k runs from milestone m_{k-1} on, restarted at its own epoch 0 (torch:
    ``SequentialLR``): eta_e = schedule_k(e - m_{k-1}) with k = number of milestones <= e,
    m_{-1} = 0; every schedule starts from the group's initial ``lr``.

    ``schedulers`` are (reference function, options) pairs from this module.

    Divergences: none for schedulers whose restart value equals their closed form at 0 (torch
    calls the next scheduler's closed form at its epoch 0 on the milestone, then its
    chainable step).
    """
    runs = [fn(epochs, lr=lr, **options) for fn, options in schedulers]

    def at(e: int) -> float:
        k = bisect_right(list(milestones), e)
        start = 0 if k == 0 else milestones[k - 1]
        return float(runs[k][e - start])

    return _sequence(epochs, at)


def reduce_lr_on_plateau(metrics: Sequence[float], *, lr: float, mode: str = "min",
                         factor: float = 0.1, patience: int = 10, threshold: float = 1e-4,
                         threshold_mode: str = "rel", cooldown: int = 0, min_lr: float = 0.0,
                         eps: float = 1e-8) -> Array:
    r"""Reduce the learning rate when a metric stops improving (torch: ``ReduceLROnPlateau``).

    Driven by ``metrics`` (one value per ``step(metric)``), not by epochs; returns
    len(metrics) + 1 values. best starts at +inf (mode "min") or -inf ("max"). A metric a is
    better than best when

        min/rel: a < best (1 - threshold)    min/abs: a < best - threshold
        max/rel: a > best (1 + threshold)    max/abs: a > best + threshold

    Each step: if better, best = a and the bad-epoch count resets, else it grows by one;
    during cooldown (a counter set to ``cooldown`` after each reduction, counted down each
    step) bad epochs are ignored; when the count exceeds ``patience``,
    eta <- max(eta factor, min_lr), applied only if it lowers eta by more than ``eps``, then
    cooldown starts and the count resets.

    Divergences: none.
    """
    worse = math.inf if mode == "min" else -math.inf
    best, bad, cooling, eta = worse, 0, 0, lr

    def better(a: float, b: float) -> bool:
        if mode == "min":
            return a < b * (1.0 - threshold) if threshold_mode == "rel" else a < b - threshold
        return a > b * (threshold + 1.0) if threshold_mode == "rel" else a > b + threshold

    out = [eta]
    for a in metrics:
        a = float(a)
        if better(a, best):
            best, bad = a, 0
        else:
            bad += 1
        if cooling > 0:
            cooling -= 1
            bad = 0
        if bad > patience:
            new = max(eta * factor, min_lr)
            if eta - new > eps:
                eta = new
            cooling, bad = cooldown, 0
        out.append(eta)
    return np.array(out, dtype=np.float64)


def chained_scheduler(epochs: int, *, lr: float,
                      schedulers: Sequence[tuple[Callable[..., Array], dict[str, Any]]]) -> Array:
    r"""Several multiplicative schedules applied together (torch: ``ChainedScheduler``):
    eta_e = lr * prod_k (schedule_k(e) / lr).

    torch steps every scheduler in turn on the same group, each multiplying the current lr by
    its own ratio eta_k(e) / eta_k(e - 1); for schedules of the form lr * factor_k(e)
    (constant, linear, exponential, step, multi-step, polynomial, multiplicative, lambda) the
    result is the product of the factors. Only such schedules are meaningful here; a schedule
    with an additive floor (cosine's eta_min) does not compose as a product.

    Divergences: none for multiplicative schedules.
    """
    out = np.full(epochs + 1, float(lr))
    for fn, options in schedulers:
        out = out * (fn(epochs, lr=1.0, **options))
    return out
