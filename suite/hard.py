r"""The hard tier's inputs: ill-conditioned but valid values drawn on purpose.

The typical tier draws well-behaved values: moderate magnitudes, a small offset at most, rows
with spread, a few dozen elements. Kernels break elsewhere: a one-pass variance when the mean
dwarfs the spread, a normalisation of a constant row, the scalar tail of a vectorised loop,
overflow and underflow branches, subnormals, reductions over 10^4 terms. Every input maker has
a ``hard(dtype)`` strategy (``suite.specs.HardInputs``) drawing such cases for the dtype under
test; ``suite.hardcheck`` judges them by their conditioning (suite/tolerances.py, "The hard
tier").

Scenarios (``Case.label`` names the one drawn):

* value scenarios, on the maker's usual shapes (:func:`values`): ``offset`` (offset / spread
  up to 1e4, :func:`ratios`), ``constant`` and ``nearly constant`` groups (a few ulp of
  spread), ``ties`` (values from a small set, kinks included), ``huge`` and ``tiny``
  (magnitudes near the dtype's overflow and underflow thresholds for the op's ``power``: 1
  for an op that only scales its input, 2 for one that squares or multiplies two inputs, so
  that its intermediates are what approaches the threshold), ``subnormal``, ``signed zeros``,
  ``exp edge`` (|x| around log of the dtype's largest and smallest numbers, where exp
  overflows and underflows);
* size scenarios: ``simd`` (the vectorised dimension of each size in :data:`SIMD_SIZES`, with
  extreme finite values at a vector-body position, at the scalar tail's last position and at
  a drawn one, or a 0-d tensor) and ``long`` (a reduction over :func:`long_terms` terms: 10^4,
  or 10^5 under the ``thorough`` profile).

A maker adds a hard tier by defining ``hard(dtype)``; :func:`rewrite` turns a typical case into
a hard one by replacing the values of chosen arrays, which most makers need and nothing more
(README, "Adding an op"). Values are made in float64 and rounded to the dtype under test when
the check runs (``Case.rounded_to``), so each scenario is built from numbers the dtype holds.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

from suite import tolerances as tols
from suite.specs import Array, Case

# Sizes straddling the vector widths of torch's CPU kernels (8 float32 or 4 float64 lanes with
# AVX2, twice that with AVX512, loops unrolled by 2 vectors): one element, one lane short of,
# at and one past each multiple, so that every size has a scalar tail or none.
SIMD_SIZES = (1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65)

VALUE_SCENARIOS = ("offset", "constant", "nearly constant", "ties", "huge", "tiny",
                   "subnormal", "signed zeros", "exp edge")
SIZE_SCENARIOS = ("simd", "long")
SCENARIOS = VALUE_SCENARIOS + SIZE_SCENARIOS

# Long reductions: 10^4 terms in the default and ci profiles, 10^5 under ``thorough``.
LONG_TERMS = 10**4
LONG_TERMS_THOROUGH = 10**5

NO_HARD_TIER = ("its input maker {} has no hard(dtype) strategy (suite.specs.HardInputs; "
                "README, 'Adding an op')")


def long_terms() -> int:
    """The length of a long reduction under the Hypothesis profile in force."""
    from hypothesis import settings

    name = getattr(settings, "get_current_profile_name", lambda: "")()
    return LONG_TERMS_THOROUGH if name == "thorough" else LONG_TERMS


def ratios(dtype: torch.dtype) -> tuple[float, ...]:
    """offset / spread of the ``offset`` scenario: up to 1e4 where the dtype resolves a spread
    of 1 on top of the offset (float32 keeps 10 of its 24 bits at 1e4), 100 in half precision
    (float16 keeps 4 of 11 bits there; bfloat16 1 of 8)."""
    if dtype in (torch.float16, torch.bfloat16):
        return (10.0, 100.0)
    return (1e2, 1e3, 1e4)


@dataclasses.dataclass(frozen=True)
class Limits:
    """The magnitudes of one dtype's hard scenarios, for an op of a given ``power``."""

    huge: float  # the largest magnitude drawn: max ** (1 / power) / 8
    tiny: float  # the smallest normal magnitude drawn: smallest_normal ** (1 / power)
    subnormal: float  # the smallest positive (subnormal) number
    exp_high: float  # log(max): exp overflows above it
    exp_low: float  # log(smallest subnormal): exp underflows to 0 below it


def limits(dtype: torch.dtype, power: int = 1) -> Limits:
    """``dtype``'s thresholds. ``power`` 2 takes the square roots: an op that squares or
    multiplies its inputs (a variance, a matmul, a squared error) reaches the threshold in its
    intermediates. The largest magnitude keeps a factor 8 below the threshold, room for the small
    constants an op multiplies by (hardswish's 6: KNOWN_DIFFERENCES.md shows it overflowing
    above max / 6)."""
    info = torch.finfo(dtype)
    smallest = float(info.smallest_normal) * 2.0 ** -_mantissa_bits(dtype)
    return Limits(huge=float(info.max) ** (1 / power) / 8,
                  tiny=float(info.smallest_normal) ** (1 / power),
                  subnormal=smallest, exp_high=math.log(float(info.max)),
                  exp_low=math.log(smallest))


def _mantissa_bits(dtype: torch.dtype) -> int:
    return {torch.float64: 52, torch.float32: 23, torch.float16: 10, torch.bfloat16: 7}[dtype]


def _groups(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> tuple[int, ...]:
    """The axes a group spans (all of them when ``axes`` is None)."""
    return tuple(range(len(shape))) if axes is None else tuple(a % max(1, len(shape))
                                                               for a in axes)


def _per_group(rng: np.random.Generator, shape: tuple[int, ...], axes: tuple[int, ...],
               choices: Iterable[float]) -> Array:
    """One value from ``choices`` per group (constant along ``axes``), broadcast to ``shape``."""
    kept = tuple(1 if i in axes else s for i, s in enumerate(shape))
    return np.broadcast_to(rng.choice(np.asarray(list(choices), dtype=np.float64), kept),
                           shape).copy()


def _unit_spread(rng: np.random.Generator, shape: tuple[int, ...],
                 axes: tuple[int, ...]) -> Array:
    """Normal values of mean 0 and standard deviation exactly 1 within each group (groups of
    one element are 0)."""
    z = rng.standard_normal(shape)
    if not z.size or not shape:
        return np.zeros(shape)
    z = z - z.mean(axis=axes, keepdims=True)
    sd = z.std(axis=axes, keepdims=True)
    return np.divide(z, sd, out=np.zeros_like(z), where=sd > 0)


def values(rng: np.random.Generator, shape: tuple[int, ...], scenario: str,
           dtype: torch.dtype, *, power: int = 1, axes: tuple[int, ...] | None = None,
           kinks: Iterable[float] = (), scale: float = 1.0) -> tuple[Array, str]:
    """Values of one value scenario (module docstring) and a label saying which knobs were drawn.

    ``axes`` are the dimensions a group spans (a normalised row, a softmax's dim): offsets,
    constants and near-constants are per group. ``kinks`` join the ``ties`` scenario's values.
    ``scale`` is the magnitude of ordinary values (``offset``'s spread, ``ties``' levels).
    """
    group = _groups(shape, axes)
    lim = limits(dtype, power)
    eps = float(torch.finfo(dtype).eps)
    signs = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    if scenario == "offset":
        ratio = float(rng.choice(ratios(dtype)))
        offsets = _per_group(rng, shape, group, (ratio, -ratio))
        return scale * (offsets + _unit_spread(rng, shape, group)), f"offset/spread {ratio:g}"
    if scenario == "constant":
        level = float(rng.choice((1.0, -3.7, 0.1, 1e3, 0.0)))
        return _per_group(rng, shape, group, (level, -level * 0.5, level * 3)) * scale, \
            f"constant groups around {level * scale:g}"
    if scenario == "nearly constant":
        level = float(rng.choice((1.0, -3.7, 1e3)))
        ulps = float(rng.choice((1.0, 4.0, 64.0)))
        base = _per_group(rng, shape, group, (level, -2 * level))
        return scale * base * (1 + ulps * eps * rng.standard_normal(shape)), \
            f"groups at {level * scale:g} with a spread of {ulps:g} ulp"
    if scenario == "ties":
        levels = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0]) * scale
        levels = np.concatenate([levels, np.asarray(list(kinks), dtype=np.float64)])
        return rng.choice(levels, shape), f"ties among {len(levels)} values (kinks included)"
    if scenario == "huge":
        return signs * lim.huge * 2.0 ** -rng.uniform(0, 10, shape), \
            f"|x| up to {lim.huge:.3g} (power {power})"
    if scenario == "tiny":
        return signs * lim.tiny * 2.0 ** rng.uniform(0, 12, shape), \
            f"|x| from {lim.tiny:.3g} (power {power})"
    if scenario == "subnormal":
        kind = rng.random(shape)
        sub = lim.subnormal * 2.0 ** rng.integers(0, _mantissa_bits(dtype), shape)
        normal = rng.standard_normal(shape) * scale
        return signs * np.where(kind < 0.5, sub, np.where(kind < 0.75, 0.0, normal)), \
            "subnormals, zeros and ordinary values"
    if scenario == "signed zeros":
        return np.where(rng.random(shape) < 0.6, signs * 0.0,
                        rng.standard_normal(shape) * scale), "+0, -0 and ordinary values"
    if scenario == "exp edge":
        high = rng.random(shape) < 0.5
        mags = np.where(high, lim.exp_high * rng.uniform(0.8, 1.25, shape),
                        -lim.exp_low * rng.uniform(0.8, 1.1, shape))
        return signs * mags, (f"|x| around log(max) = {lim.exp_high:.4g} and -log(smallest) = "
                              f"{-lim.exp_low:.4g}")
    raise ValueError(f"unknown value scenario {scenario!r}; known: {VALUE_SCENARIOS}")


def extremes(dtype: torch.dtype, power: int = 1) -> tuple[float, ...]:
    """The finite extreme values placed at vector-body and tail positions (``simd``): the
    largest and smallest magnitudes of :func:`limits`, a subnormal, both zeros, and both exp
    thresholds. NaN and infinities at every position are a check of their own
    (``test_hard_special_values_at_every_position``)."""
    lim = limits(dtype, power)
    sub = lim.subnormal * 3
    return (lim.huge, -lim.huge, lim.tiny, -lim.tiny, sub, -sub, 0.0, -0.0,
            lim.exp_high * 1.01, -lim.exp_high * 1.01, lim.exp_low * 0.99)


def positions(size: int, drawn: int) -> tuple[int, ...]:
    """Where ``simd`` places extremes along a dimension of ``size``: the first element (a vector
    body, for sizes past one vector), the last (the scalar tail, for sizes not a multiple of the
    vector width) and a drawn one."""
    return tuple(sorted({0, size - 1, drawn % size})) if size else ()


def place(rng: np.random.Generator, x: Array, dtype: torch.dtype, drawn: int, *,
          power: int = 1, axis: int = -1) -> tuple[Array, str]:
    """``x`` with extreme values (:func:`extremes`) at :func:`positions` along ``axis`` of every
    row (a 0-d ``x`` becomes one extreme)."""
    choices = np.asarray(extremes(dtype, power))
    x = np.array(x, dtype=np.float64)
    if x.ndim == 0:
        value = float(rng.choice(choices))
        return np.array(value), f"0-d: {value:.3g}"
    axis = axis % x.ndim
    size = x.shape[axis]
    where = positions(size, drawn)
    moved = np.moveaxis(x, axis, -1)
    for p in where:
        moved[..., p] = rng.choice(choices, moved.shape[:-1])
    return np.moveaxis(moved, -1, axis), f"size {size} with extremes at {list(where)}"


def rewrite(case: Case, arrays: Mapping[str, Array], label: str) -> Case:
    """``case`` with some arrays' values replaced (same names; shapes may change with the
    options they imply only if the caller changed both), labelled with its scenario."""
    return dataclasses.replace(case, arrays={**case.arrays, **arrays}, label=label)


def scenario(draw: st.DrawFn, choices: tuple[str, ...] = SCENARIOS) -> str:
    """Draw a scenario name (Hypothesis shrinks towards the first)."""
    return draw(st.sampled_from(choices), label="hard scenario")


def simd_size(draw: st.DrawFn, zero_dim: bool = True) -> int | None:
    """A size from :data:`SIMD_SIZES`, or None for a 0-d tensor where ``zero_dim``."""
    sizes: tuple[int | None, ...] = SIMD_SIZES + ((None,) if zero_dim else ())
    return draw(st.sampled_from(sizes), label="simd size (None: 0-d)")


def size_for(draw: st.DrawFn, scenario: str) -> int:
    """The vectorised dimension's size in a size scenario: a :data:`SIMD_SIZES` size for
    ``simd`` (no 0-d), :func:`long_terms` for ``long``."""
    return simd_size(draw, zero_dim=False) or 1 if scenario == "simd" else long_terms()


def rng_for(seed: int, stream: int = 7) -> np.random.Generator:
    """The generator of a hard case's values: its own stream of the case's seed, so rewriting a
    typical case does not replay the typical values' draws."""
    return np.random.default_rng([seed, stream])


def hard_strategy(inputs: Any, dtype: torch.dtype) -> st.SearchStrategy[Case] | None:
    """``inputs.hard(dtype)``, or None where the maker has no hard tier."""
    hard = getattr(inputs, "hard", None)
    return None if hard is None else hard(dtype)


HardMaker = Callable[[np.random.Generator, tuple[int, ...], str, torch.dtype], Array]


# --- optimizers ------------------------------------------------------------------------------

OPTIMIZER_SCENARIOS = ("spanning gradients", "vanishing gradients", "tiny lr", "huge lr",
                       "tiny eps", "huge eps")


def _decades(dtype: torch.dtype) -> float:
    """How many decades each side of 1 gradients span: their squares (Adam's second moment)
    and sums of them over 20 steps stay inside the dtype's normal range, with room."""
    return 15.0 if dtype == torch.float32 else 100.0


def _hyper_value(value: float, current: Any, dtype: torch.dtype) -> Any:
    """``value`` for a hyper-parameter now ``current``, in a form the optimizer takes: a float
    the dtype holds (ASGD rounds its lr to float32), and for Adafactor's ``eps`` pair
    (eps1, eps2) the first, eps1, which clamps V at eps1^2 in the parameters' dtype: a tiny
    eps1 is kept at 2e-19 in float32, where eps1^2 is still a normal number (below ~2.6e-23
    it is 0, torch's known defect: KNOWN_DIFFERENCES.md,
    test_adafactor_with_a_tiny_eps1_in_float32)."""
    value = float(np.float32(value))
    if isinstance(current, tuple):
        if dtype == torch.float32:
            value = max(value, 2e-19)
        return (value, *current[1:])
    return value


def harden(run: Any, kind: str, dtype: torch.dtype) -> Any:
    """``run`` (a ``suite.specs.OptimizerRun``) turned into a hard run of scenario ``kind``
    (:data:`OPTIMIZER_SCENARIOS`), its values from the run's own seed (:func:`rng_for`):

    * ``spanning gradients``: every gradient element scaled by 10^u, u uniform in
      +-:func:`_decades` (10^+-15 in float32, 10^+-100 in float64);
    * ``vanishing gradients``: every parameter's gradients exactly 0, or 1e-30 of their size,
      for a drawn stretch of steps, then back;
    * ``tiny lr``, ``huge lr``: lr 1e-8 or 1e3; ``tiny eps``, ``huge eps``: eps 1e-30 or 1,
      where the optimizer has them (:func:`_hyper_value`), in the defaults and every group."""
    if kind not in OPTIMIZER_SCENARIOS:
        raise ValueError(f"unknown optimizer scenario {kind!r}; known: {OPTIMIZER_SCENARIOS}")
    rng = rng_for(run.seed, 8)
    grads = [list(step) for step in run.grads]
    hyper, groups = dict(run.hyper), run.groups
    if kind == "spanning gradients":
        k = _decades(dtype)
        grads = [[None if g is None else np.sign(g) * np.abs(g) * 10.0 ** rng.uniform(
            -k, k, g.shape) for g in step] for step in grads]
    elif kind == "vanishing gradients":
        start = int(rng.integers(0, len(grads)))
        stop = int(rng.integers(start, len(grads) + 1))
        factor = float(rng.choice((0.0, 1e-30)))
        grads = [[None if g is None else (g * factor if start <= i < stop else g)
                  for g in step] for i, step in enumerate(grads)]
    else:
        key, value = {"tiny lr": ("lr", 1e-8), "huge lr": ("lr", 1e3),
                      "tiny eps": ("eps", 1e-30), "huge eps": ("eps", 1.0)}[kind]
        if key in hyper:
            hyper[key] = _hyper_value(value, hyper[key], dtype)
            groups = tuple((members, {**o, key: _hyper_value(value, o[key], dtype)}
                            if key in o else o) for members, o in groups)
    return run._replace(grads=grads, hyper=hyper, groups=groups)


def optimizer_runs(base: st.SearchStrategy[Any], dtype: torch.dtype
                   ) -> st.SearchStrategy[Any]:
    """Hard optimizer runs: a typical run (``suite.strategies.optimizer_runs``) made hard by
    one of :data:`OPTIMIZER_SCENARIOS` (:func:`harden`)."""

    @st.composite
    def runs(draw: st.DrawFn) -> Any:
        run = draw(base, label="run")
        kind = draw(st.sampled_from(OPTIMIZER_SCENARIOS), label="hard scenario")
        return harden(run, kind, dtype)

    return runs()


def _rprop_product_underflows(spec: Any, run: Any, dtype: torch.dtype) -> bool:
    """Whether two consecutive gradients of some Rprop parameter entry, both nonzero, have a
    product that is 0 in ``dtype`` (torch decides the sign change from that product)."""
    np_dtype: Any = np.float32 if dtype == torch.float32 else np.float64
    for i in range(len(run.params)):
        present = [np.asarray(step[i]).astype(np_dtype) for step in run.grads
                   if step[i] is not None]
        for a, b in itertools.pairwise(present):
            with np.errstate(under="ignore"):
                if np.any((a * b == 0) & (a != 0) & (b != 0)):
                    return True
    return False


def _sparse_adam_loses_the_gradient(spec: Any, run: Any, dtype: torch.dtype) -> bool:
    """Whether SparseAdam's first moment, formed as torch forms it, m + (g - m)(1 - beta1) in
    ``dtype``, is off from the documented beta1 m + (1 - beta1) g (float64, from the same m) by
    more than half of what the check allows there (the OPTIMIZER row's rtol and the shake's
    64 u beta1 |m|) at some present element of some step."""
    from suite import optimcheck

    np_dtype: Any = np.float32 if dtype == torch.float32 else np.float64
    u = float(torch.finfo(dtype).eps) / 2
    rtol = tols.resolve(dtype, tols.Kind.OPTIMIZER).rtol
    for i, hyper in enumerate(optimcheck.group_hyper(run)):
        beta1 = float(hyper.get("betas", (0.9, 0.999))[0])
        m = np.zeros(np.shape(run.params[i]), dtype=np_dtype)
        for step, grads in enumerate(run.grads, start=1):
            if grads[i] is None:
                continue
            g = np.asarray(grads[i]).astype(np_dtype)
            _, masked = optimcheck._grad_pair(g.astype(np.float64), spec, run, step, i,
                                              dtype, "cpu")
            present = ~np.ma.getmaskarray(masked)
            with np.errstate(all="ignore"):
                naive = m + (g - m) * np_dtype(1 - beta1)
            exact = beta1 * m.astype(np.float64) + (1 - beta1) * g.astype(np.float64)
            allowed = rtol * np.abs(exact) + 32 * u * beta1 * np.abs(m.astype(np.float64))
            if np.any(present & (np.abs(naive.astype(np.float64) - exact) > allowed)):
                return True
            m = np.where(present, naive, m).astype(np_dtype)
    return False


def _adafactor_estimate_overflows(spec: Any, run: Any, dtype: torch.dtype) -> bool:
    """Whether some parameter of two or more dimensions (which Adafactor factors) has a
    gradient g with g^4 beyond the dtype's largest number / 64: torch forms the factored
    estimate as (R @ C) / mean(R), the product of two running means of g^2 first."""
    top = (float(torch.finfo(dtype).max) / 64) ** 0.25
    for i, p in enumerate(run.params):
        shape = np.shape(p)[:-1] if run.complex_params else np.shape(p)
        if len(shape) < 2:
            continue
        for step in run.grads:
            g = step[i]
            if g is not None and np.size(g) and float(np.max(np.abs(g))) > top:
                return True
    return False


#: torch defects the optimizer hard tier finds, each shown by a strict xfail in
#: tests/test_hard.py and listed in KNOWN_DIFFERENCES.md ("The hard tier"): (record name,
#: whether a run triggers it, the reason). The tier sets such runs aside.
OPTIMIZER_KNOWN_DEFECTS: tuple[tuple[str, Callable[[Any, Any, torch.dtype], bool], str],
                               ...] = (
    ("rprop", _rprop_product_underflows,
     "torch 2.13.0 Rprop reads the sign change from g_{t-1} * g_t computed in the parameters' "
     "dtype, which underflows to 0 for tiny gradients (test_rprop_sign_of_tiny_gradients)"),
    ("adafactor", _adafactor_estimate_overflows,
     "torch 2.13.0 Adafactor forms its factored estimate as (R @ C) / mean(R), whose product "
     "of two means of g^2 overflows where the estimate (~g^2) does not "
     "(test_adafactor_factored_estimate_with_large_gradients)"),
    ("sparse_adam", _sparse_adam_loses_the_gradient,
     "torch 2.13.0 SparseAdam forms m + (g - m)(1 - beta1), which loses a gradient far smaller "
     "than m where beta1 is small (test_sparse_adam_first_moment_with_beta1_zero)"),
)


def _muon_norm_out_of_range(spec: Any, run: Any, dtype: torch.dtype) -> bool:
    """Whether some gradient, or the momentum buffer it can build (up to 1 / (1 - 0.99) = 100
    gradients), passes ``limits(torch.bfloat16, 2).huge``: Muon normalises by ||X||_F in
    bfloat16 whatever the parameters' dtype (KNOWN_DIFFERENCES.md, "Muon orthogonalises in
    bfloat16"), and a norm squares its input (power 2, as the op tier's range)."""
    top = limits(torch.bfloat16, 2).huge / 100
    return any(g is not None and np.size(g) and float(np.max(np.abs(g))) > top
               for step in run.grads for g in step)


#: Runs outside the hard tier's range for one record (suite/tolerances.py, "The optimizer hard
#: tier"): (record name, whether a run leaves it, the reason).
OPTIMIZER_OUT_OF_RANGE: tuple[tuple[str, Callable[[Any, Any, torch.dtype], bool], str],
                              ...] = (
    ("muon", _muon_norm_out_of_range,
     "Muon computes ||X||_F in bfloat16 (by design): gradients beyond sqrt(bfloat16 max) / 800 "
     "are outside the range a norm is drawn in"),
)


def optimizer_known_defect(spec: Any, run: Any, dtype: torch.dtype) -> str | None:
    """The reason a hard run meets a recorded torch defect (:data:`OPTIMIZER_KNOWN_DEFECTS`)
    or leaves the tier's range for its record (:data:`OPTIMIZER_OUT_OF_RANGE`), or None."""
    for name, triggered, reason in OPTIMIZER_KNOWN_DEFECTS + OPTIMIZER_OUT_OF_RANGE:
        if spec.name == name and triggered(spec, run, dtype):
            return reason
    return None
