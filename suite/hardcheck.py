"""The hard tier's checks: torch on ill-conditioned inputs (``suite.hard``), judged by their
conditioning (suite/tolerances.py, "The hard tier"; suite/conditioning.py).

* ``check_hard``: forward and every gradient on a hard case, each element within the allowance
  derived from the case, which the failure message states.
* ``check_argument_layout``: every array argument (weights, targets, indices, masks, not only
  the input) through a transposed, step-sliced or expanded view.
* ``check_special_positions``: NaN or an infinity at every position of inputs whose sizes
  straddle the vector width (vector body, scalar tail, 0-d), for elementwise records.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import assume

from suite import compare, conditioning, hard, layouts, nondeterminism, versions
from suite import gradcheck as gc
from suite import tolerances as tols
from suite.devices import dtype_name
from suite.specs import Array, Case, OpSpec, round_to


@dataclasses.dataclass(frozen=True)
class Allowance:
    """The hard tier's allowance for one compared result: the pair and the per-element slack."""

    tol: tols.Tolerance
    slack: Array | None
    reason: str


def allowance(spec: OpSpec, kind: tols.Kind, dtype: torch.dtype, case: Case,
              terms: Array | None, accumulated: Array | None, g: Array | None,
              shape: tuple[int, ...], shaken: Callable[[], Array] | None = None,
              gates: Array | None = None) -> Allowance:
    """rtol |expected| + SUMMATION M + hard_summation(dtype, n) M_acc + hard_floor where the
    record derives the result's sum |terms|; where it does not, the record's typical absolute
    row and HARD_SENSITIVITY times the result's measured change under HARD_SHAKE_ULPS input
    perturbations (``shaken()``) instead (suite/tolerances.py, "The hard tier"). ``gates``: the
    record's bound on what gate derivatives formed from rounded activations move the result by
    (``OpSpec.gates``, suite/conditioning.py RecurrentGates), added to either."""
    if getattr(spec.terms, "exact", False) and accumulated is not None:
        return _exact_copies(spec, kind, dtype, case, accumulated, shape)
    n = conditioning.length(spec, case)
    big = conditioning.magnitude(case, g)
    row = spec.tolerance(kind, dtype)
    atol = tols.hard_floor(dtype, n, big)
    slack: Array | None = None
    per_term, per_acc = tols.summation(dtype), tols.hard_summation(dtype, n)
    # Half precision: results and intermediates rounded to the half type carry SUMMATION of
    # the larger of the two sums of terms (torch may round a centred value to half).
    halves = accumulated if accumulated is not None else terms
    if halves is not None and per_term:
        slack = per_term * np.broadcast_to(halves, shape)
    if accumulated is not None:
        extra = per_acc * np.broadcast_to(accumulated, shape)
        slack = extra if slack is None else slack + extra
        reason = (f"the case's conditioning, (n + {tols.HARD_EXTRA_ROUNDINGS}) u_acc "
                  f"sum|terms| with n = {n}")
        slack, reason = _with_gates(slack, reason, gates, shape)
        return Allowance(tols.Tolerance(row.rtol, atol), slack, reason)
    atol = max(atol, row.atol)
    reason = (f"no derived sum|terms|: the typical row's atol {row.atol:.3g} and "
              f"{tols.HARD_SENSITIVITY:g} x the change {tols.HARD_SHAKE_ULPS:g}-ulp input "
              f"perturbations make")
    if shaken is not None:
        extra = tols.HARD_SENSITIVITY * np.broadcast_to(shaken(), shape)
        slack = extra if slack is None else slack + extra
    slack, reason = _with_gates(slack, reason, gates, shape)
    return Allowance(tols.Tolerance(row.rtol, atol), slack, reason)


def _exact_copies(spec: OpSpec, kind: tols.Kind, dtype: torch.dtype, case: Case,
                  accumulated: Array, shape: tuple[int, ...]) -> Allowance:
    """Results that are copies, or sums of k copies (``conditioning.Copies``; k per element):
    gamma_(k-1) of the copies' magnitudes in the dtype's own unit (torch's CPU padding and fold
    backward add into a gradient of the input's type, so a half type's sums round in it) and
    one rounding to the dtype where k > 1, and in the forward one rounding of a constant option
    (a pad value the kernel rounds to the dtype, ``Copies.constants``), and the float64
    reference's own gamma_(k-1) in u64 where k > 1; nothing else: a copy
    (k = 1) must be exact."""
    terms = spec.terms
    assert isinstance(terms, conditioning.Copies)
    u = float(torch.finfo(dtype).eps) / 2
    forward = kind == tols.Kind.FORWARD
    k = np.broadcast_to(np.rint(terms.counts(spec, case, forward)), shape)
    summed = np.maximum(k - 1, 0.0)
    # The float64 reference sums the same k copies in its own order: its (k - 1) u64 sum|copies|
    # counts too (as large as torch's own in float64; a 2-ulp difference of a 3-copy sum at
    # circular_pad2d's hard case, seed 8301, exceeded the bound without it).
    u64 = float(np.finfo(np.float64).eps) / 2
    slack = ((u + u64) * summed * np.broadcast_to(accumulated, shape)
             + u * np.where(k > 1, np.broadcast_to(np.abs(accumulated), shape), 0.0))
    reason = (f"exact copies: where a result sums k > 1 copies (here up to "
              f"{int(np.max(k, initial=1))}), (k - 1) u sum|copies| for torch's sum and (k - 1) "
              f"u64 sum|copies| for the float64 reference's, and one rounding to the dtype; a "
              f"single copy exact")
    if forward:
        held = np.abs(terms.constants(spec, case))
        if np.any(held):
            slack = slack + u * np.broadcast_to(held, shape)
            reason += "; u |constant| where a constant option is placed"
    return Allowance(tols.Tolerance(0.0, 0.0), slack, reason)


def _with_gates(slack: Array | None, reason: str, gates: Array | None,
                shape: tuple[int, ...]) -> tuple[Array | None, str]:
    """``slack`` plus the gate-derivative bound, and the reason saying so."""
    if gates is None:
        return slack, reason
    # Where the first-order bound itself leaves float64's range (inputs near 1e153 square to
    # inf, and inf times a saturated gate's 0 derivative is NaN), it bounds nothing: those
    # elements get no gate allowance (the rest of the allowance still applies) rather than a
    # NaN that would fail every comparison or an inf that would pass any.
    extra = np.broadcast_to(np.where(np.isfinite(gates), gates, 0.0), shape)
    return (extra if slack is None else slack + extra,
            f"{reason} + the gates' derivatives formed from rounded activations (first-order "
            f"bound, greatest {float(np.max(extra, initial=0.0)):.3g}; suite/conditioning.py, "
            f"RecurrentGates)")


def _describe(allow: Allowance, dtype: torch.dtype) -> str:
    acc = dtype_name(tols.accumulation_dtype(dtype))
    return (f"hard tier: allowed rtol {allow.tol.rtol:.3g} |expected| + {allow.reason} "
            f"(accumulated in {acc}) + an absolute floor {allow.tol.atol:.3g}; "
            f"suite/tolerances.py, 'The hard tier'")


def _finite_inputs(case: Case) -> bool:
    return all(bool(np.all(np.isfinite(a))) for a in case.arrays.values() if a.dtype.kind == "f")


def representable(values: Array, dtype: torch.dtype, finite_inputs: bool = True) -> bool:
    """Whether every exact value lies in ``dtype``'s range: a case whose exact result overflows
    the dtype has no right answer in it (not a test of torch). With finite inputs an infinite
    exact value is such an overflow too."""
    a = np.asarray(values, dtype=np.float64)
    if finite_inputs and not np.all(np.isfinite(a[~np.isnan(a)])):
        return False
    finite = a[np.isfinite(a)]
    return not np.any(np.abs(finite) > float(torch.finfo(dtype).max))


def _sums_representable(spec: OpSpec, case: Case, dtype: torch.dtype,
                        accumulated: Array | None) -> bool:
    """Whether the sums behind the results stay in the accumulation type's range: n M_acc (the
    sum of the magnitudes of the terms, for a mean the sum before the division) below its
    largest number, and for a reduced loss the sum of its pointwise losses. A mean whose sum
    overflows has no computable answer in that type (torch's float32 mse_loss of 10^4 terms of
    4.7e35 is inf)."""
    top_of_range = float(torch.finfo(tols.accumulation_dtype(dtype)).max)
    # torch stores a reduction's sum in the result's dtype before a mean divides it (kl_div's
    # batchmean and cross_entropy's mean overflow float16 so: KNOWN_DIFFERENCES.md).
    own_range = float(torch.finfo(dtype).max)
    if case.options.get("reduction", "none") != "none" and spec.ref is not None:
        try:
            pointwise = spec.ref(**case.arrays, **{**case.options, "reduction": "none"})
        except (TypeError, ValueError):
            pointwise = None
        if pointwise is not None and float(np.sum(np.abs(np.nan_to_num(
                np.asarray(pointwise, dtype=np.float64), posinf=np.inf)))) > own_range:
            return False
    if accumulated is None or not np.size(accumulated):
        return True
    n = conditioning.length(spec, case)
    top = float(np.max(np.abs(np.asarray(accumulated, dtype=np.float64)), initial=0.0))
    return n * top <= top_of_range


def shake(spec: OpSpec, case: Case, dtype: torch.dtype, g: Array) -> tuple[Array, dict[str, Array]]:
    """How much the reference's forward and VJP move (the largest change over HARD_SHAKES
    draws) when every float array and the cotangent are scaled by 1 + d, d uniform in
    +-HARD_SHAKE_ULPS u_acc element by element: the case's conditioning with respect to
    rounding of the accumulation type (a backward-stable kernel's result is the exact result of
    inputs that close)."""
    u = float(torch.finfo(tols.accumulation_dtype(dtype)).eps) / 2
    rng = np.random.default_rng([case.seed, 11])

    def jiggle(a: Array) -> Array:
        return a * (1 + tols.HARD_SHAKE_ULPS * u * rng.uniform(-1, 1, a.shape))

    y0, vjp0 = spec.reference(case), spec.reference_vjp(g, case, as_torch=True)
    forward = np.zeros(np.shape(y0))
    grads = {k: np.zeros(np.shape(v)) for k, v in vjp0.items()}
    for _ in range(tols.HARD_SHAKES):
        moved = dataclasses.replace(case, arrays={k: jiggle(a) if a.dtype.kind == "f" else a
                                                  for k, a in case.arrays.items()})
        forward = np.maximum(forward, np.nan_to_num(np.abs(spec.reference(moved) - y0)))
        vjp1 = spec.reference_vjp(jiggle(g), moved, as_torch=True)
        for k in grads:
            grads[k] = np.maximum(grads[k], np.nan_to_num(np.abs(vjp1[k] - vjp0[k])))
    return forward, grads


def check_hard(spec: OpSpec, case: Case, dtype: torch.dtype, device: str) -> None:
    """torch's forward and every gradient on a hard case against the reference, within the
    allowance the case's conditioning gives."""
    __tracebackhide__ = True
    case = case.rounded_to(dtype)
    assume(spec.known_defect(case, dtype) is None)  # shown by a strict xfail instead
    with np.errstate(all="ignore"):  # references at the extremes overflow on the way
        _check_hard(spec, case, dtype, device)


def _check_hard(spec: OpSpec, case: Case, dtype: torch.dtype, device: str) -> None:
    __tracebackhide__ = True
    finite = _finite_inputs(case)
    expected = spec.reference(case)
    assume(representable(expected, dtype, finite))
    accumulated = conditioning.accumulated_forward(spec, case)
    assume(_sums_representable(spec, case, dtype, conditioning.sums_forward(spec, case)))
    nondeterminism.refuse_known(spec, "hard", case, dtype, device)

    def run() -> list[Array]:
        with torch.no_grad():
            out = spec.torch_fn(**gc.to_tensors(case, dtype, device), **case.options)
        return [compare.to_numpy(out)]

    actual = run()
    g = round_to(gc.cotangent(case, np.shape(expected)), dtype)
    wanted = spec.reference_vjp(g, case, as_torch=True)
    for name in case.differentiable:
        assume(representable(wanted[name], dtype, finite))
    moves: list[tuple[Array, dict[str, Array]]] = []

    def moved() -> tuple[Array, dict[str, Array]]:
        if not moves:
            moves.append(shake(spec, case, dtype, g))
        return moves[0]

    m = spec.terms.forward(spec, case) if spec.terms is not None else None
    context = f"{dtype_name(dtype)}, hard: {case.label or 'drawn on purpose'}, device={device}"
    _compare(actual[0], expected, spec, tols.Kind.FORWARD, dtype, case, m, accumulated, None,
             lambda: moved()[0], what=f"{spec.name}: forward on a hard input",
             context=context, verdict=lambda a: _verdict(spec, case, dtype, device, actual,
                                                         run, a))
    grads, _ = gc._torch_gradients(spec, case, dtype, device, g)
    terms = spec.terms.vjp(spec, g, case) if spec.terms is not None else {}
    summed = conditioning.accumulated_vjp(spec, g, case)
    gates = spec.gates.vjp(spec, g, case, dtype) if spec.gates is not None else {}

    def again() -> list[Array]:
        return gc._torch_gradients(spec, case, dtype, device, g)[0]

    def moved_gradient(name: str) -> Array:
        return moved()[1][name]

    for name, grad in zip(case.differentiable, grads, strict=True):
        _compare(grad, wanted[name], spec, tols.Kind.GRADIENT, dtype, case, terms.get(name),
                 summed.get(name), g, functools.partial(moved_gradient, name),
                 gates=gates.get(name),
                 what=f"{spec.name}: VJP w.r.t. {name} on a hard input", context=context,
                 verdict=lambda a: _verdict(spec, case, dtype, device, grads, again, a))


def _compare(actual: Array, expected: Array, spec: OpSpec, kind: tols.Kind, dtype: torch.dtype,
             case: Case, terms: Array | None, accumulated: Array | None, g: Array | None,
             shaken: Callable[[], Array], *, what: str, context: str,
             verdict: Callable[[Allowance], str], gates: Array | None = None) -> None:
    """One result against the reference within its allowance; the shake (two more reference
    evaluations) only where the comparison would fail without it."""
    __tracebackhide__ = True
    shape = np.shape(expected)
    allow = allowance(spec, kind, dtype, case, terms, accumulated, g, shape, gates=gates)
    if accumulated is None and compare.find_mismatch(
            actual, expected, tol=allow.tol, what=what, context=context, slack=allow.slack,
            record=False) is not None:
        allow = allowance(spec, kind, dtype, case, terms, accumulated, g, shape, shaken, gates)
    compare.assert_close(actual, expected, tol=allow.tol, slack=allow.slack,
                         slack_reason=allow.reason, what=what, context=context,
                         inputs=case.arrays, case=case, verdict=lambda: verdict(allow))


def _verdict(spec: OpSpec, case: Case, dtype: torch.dtype, device: str, first: list[Array],
             run: Callable[[], list[Array]], allow: Allowance) -> str:
    repeat = nondeterminism.verdict(spec, "hard", case, dtype, device, first, run)
    return repeat or _describe(allow, dtype)


# --- every argument through a view ---------------------------------------------------------


def layout_names(spec: OpSpec, case: Case, layout: str) -> tuple[str, ...]:
    """The arrays of ``case`` that ``layout`` can view (enough dimensions; for ``expanded``, a
    first dimension of more than one element)."""
    need = layouts.LAYOUTS[layout][1]
    names = []
    for name, a in case.arrays.items():
        if a.ndim < need or a.size == 0:
            continue
        if layout == "expanded" and a.shape[0] < 2:
            continue
        names.append(name)
    return tuple(names)


def check_argument_layout(spec: OpSpec, case: Case, name: str, layout: str,
                          dtype: torch.dtype, device: str) -> None:
    """Argument ``name`` (any array: weight, target, index, mask) through a transposed,
    step-sliced or expanded view: torch's forward and gradients equal the reference's on the
    values the view holds (an expanded array repeats its first row, so the reference sees that
    too), at the typical tier's tolerance; the viewed tensor's gradient is pulled back through
    the view (zero between the steps, summed over the copies)."""
    __tracebackhide__ = True
    make = layouts.LAYOUTS[layout][0]
    case = case.rounded_to(dtype)
    source = case.arrays[name]
    floating = source.dtype.kind == "f"
    base, view_of, pull = make(source)
    base = np.asarray(base).astype(source.dtype)  # a step-sliced index array stays integral
    leaf = torch.tensor(base, dtype=dtype if floating else None, device=device)
    if floating and name in case.differentiable:
        leaf.requires_grad_(True)
    view = view_of(leaf)
    values = view.detach().cpu().numpy().astype(source.dtype)
    case = dataclasses.replace(case, arrays={**case.arrays, name: values},
                               label=f"layout: {layout} {name}")
    # A recorded torch defect (OpSpec.known_defects; a strict xfail shows it, in a subprocess
    # where it crashes).
    assume(spec.known_defect(case, dtype) is None)
    if layout == "expanded":
        # An expanded view repeats its first row, so it changes the values. Not valid inputs:
        # a running statistic torch updates in place (batch_norm in training, instance_norm with
        # input statistics: torch refuses to write through a stride-0 view), and a mask under
        # is_causal=True (torch's documentation: is_causal is a hint that the mask is the causal
        # mask, and an incorrect hint gives incorrect execution; a repeated row is not causal).
        updated = case.options.get("training", False) or case.options.get("use_input_stats",
                                                                           False)
        # torch before 2.13 (2.2.2 measured) writes instance_norm's running statistics even
        # when it does not use them (KNOWN_DIFFERENCES.md, "Older torch: the hard tier on 2.2.2"; a
        # strict xfail).
        updated = updated or (versions.INSTANCE_NORM_WRITES_UNUSED_STATS
                              and "use_input_stats" in case.options)
        assume(not (name in ("running_mean", "running_var") and updated))
        assume(not (name.endswith("mask") and _causal_hint(name, case.options)))
        # A key padding mask whose repeated row masks every key leaves a query no key: outside
        # the references' domain (references/transformer.py: a fully masked row is 0 / 0).
        if name.endswith("key_padding_mask") and values.dtype == np.bool_ and values.size:
            assume(not np.any(np.all(values, axis=-1)))
    try:
        expected_forward = spec.reference(case)
    except (ValueError, IndexError):
        # An expanded view repeats its first row: for some arrays (CTC's lengths, which must
        # add up to the targets' size) that is no longer a valid input.
        assume(False)
        raise
    others = {k: t for k, t in gc.to_tensors(case, dtype, device).items() if k != name}
    out = spec.torch_fn(**{**others, name: view}, **case.options)
    where = f"{spec.name}: {name} as a {layout} view"
    context = f"{dtype_name(dtype)}, {name}={values.shape} ({layout}), device={device}"
    # The view changes the values too (an expanded weight repeats its first row, an expanded
    # target one class at every position), so the forward is judged as the hard tier judges
    # one (``allowance``: the case's conditioning where the record derives its terms, else the
    # reference's measured change under input perturbations), and each gradient may be a long
    # sum: the hard tier's (n + 8) u_acc M_acc ("The hard tier", suite/tolerances.py). (The
    # forward had the typical row alone until a random seed drew a 3-layer float32 RNN whose
    # expanded weight_hh_l0 left 3.7e-5 at an output of 17.8, 2.1e-6 relative against 1.3e-6.)
    n = conditioning.length(spec, case)
    g = round_to(gc.cotangent(case, tuple(out.shape)), dtype)
    _compare(compare.to_numpy(out.detach()), expected_forward, spec, tols.Kind.FORWARD, dtype,
             case, spec.terms.forward(spec, case) if spec.terms is not None else None,
             conditioning.accumulated_forward(spec, case), None,
             lambda: shake(spec, case, dtype, g)[0], what=f"{where}: forward", context=context,
             verdict=lambda allow: _describe(allow, dtype))
    if not case.differentiable:
        return
    out.backward(torch.tensor(g, dtype=dtype, device=device))
    expected = spec.reference_vjp(g, case, as_torch=True)
    gtol = spec.tolerance(tols.Kind.GRADIENT, dtype)
    sums = {k: tols.hard_summation(dtype, n) * np.asarray(m, dtype=np.float64)
            for k, m in conditioning.accumulated_vjp(spec, g, case).items()}
    for arg in case.differentiable:
        if arg == name:
            grad = leaf.grad
            assert grad is not None, f"{where}: torch gave the viewed tensor no gradient"
            compare.assert_close(compare.to_numpy(grad), pull(expected[arg]), tol=gtol,
                                 what=f"{where}: VJP w.r.t. the viewed tensor",
                                 context=context, case=case,
                                 slack=_pulled_slack(layout, expected[arg], pull, gtol, dtype),
                                 slack_reason="the sum over the expanded view's copies")
            continue
        grad = others[arg].grad
        actual = np.zeros(case.arrays[arg].shape) if grad is None else compare.to_numpy(grad)
        compare.assert_close(actual, expected[arg], tol=gtol, what=f"{where}: VJP w.r.t. {arg}",
                             context=context, case=case, slack=sums.get(arg),
                             slack_reason=f"(n + 8) u_acc sum|terms| with n = {n}")


def _causal_hint(mask: str, options: Mapping[str, Any]) -> bool:
    """Whether the is_causal hint that covers ``mask`` is set: ``tgt_mask`` and
    ``memory_mask`` have their own (``tgt_is_causal``, ``memory_is_causal``: the decoder's and
    nn.Transformer's), any other mask ``is_causal`` or nn.Transformer's ``src_is_causal``."""
    for prefix in ("tgt_", "memory_"):
        if mask.startswith(prefix):
            return bool(options.get(f"{prefix}is_causal", False))
    return bool(options.get("is_causal", False) or options.get("src_is_causal", False))


def _pulled_slack(layout: str, per_copy: Array, pull: Callable[[Array], Array],
                  gtol: tols.Tolerance, dtype: torch.dtype) -> Array | None:
    """What an expanded view's gradient may add beyond ``gtol``: it is the sum of the k copies'
    gradients e_i, each within rtol |e_i| + atol of the exact one, summed in ``dtype`` (within
    (k - 1) u sum |e_i|, Higham eq. (4.4)): rtol sum |e_i| + (k - 1) (atol + u sum |e_i|) in
    all, of which assert_close already allows rtol |sum e_i| + atol. A constant layer_norm
    row's input gradients +-237 sum to 0 exactly, and float32 gives 1.5e-5, an ulp of 237.
    None for the other layouts (each element of the leaf is one element of the view)."""
    if layout != "expanded":
        return None
    k = per_copy.shape[0] if per_copy.ndim else 1
    u = float(torch.finfo(dtype).eps) / 2
    total = pull(np.abs(per_copy))
    return gtol.rtol * total + (k - 1) * (gtol.atol + u * total)


# --- NaN and infinities at every position --------------------------------------------------


def check_special_positions(spec: OpSpec, value: str, dtype: torch.dtype,
                            device: str) -> None:
    """NaN or an infinity at each position in turn of inputs of every size in
    ``suite.hard.SIMD_SIZES`` (vector body, scalar tail) and of a 0-d input (where the record
    takes one): torch's forward and gradient against the reference, the gradient at the NaN
    input's own entries not compared (docs/conventions.md)."""
    __tracebackhide__ = True
    inputs = spec.inputs
    min_dims = getattr(inputs, "min_dims", 1)
    base = inputs.sized(4, seed=0)
    cases = []
    for size in hard.SIMD_SIZES:
        shape = (1,) * max(0, min_dims - 1) + (size,)
        x = np.random.default_rng([size, 5]).standard_normal(shape)
        for p in sorted({0, size // 2, size - 1}):
            y = x.copy()
            y.reshape(-1)[p] = layouts.SPECIAL[value]
            cases.append(_resized(spec, base, y, f"size {size}, {value} at {p}"))
    if min_dims == 0:
        cases.append(_resized(spec, base, np.array(layouts.SPECIAL[value]), f"0-d {value}"))
    # A recorded torch defect (OpSpec.known_defects) sets its case aside; a strict xfail shows it.
    defects = {spec.known_defect(case.rounded_to(dtype), dtype) for case in cases} - {None}
    cases = [case for case in cases if spec.known_defect(case.rounded_to(dtype), dtype) is None]
    if not cases:
        pytest.skip(f"torch {torch.__version__}: every case runs into a recorded defect: "
                    f"{'; '.join(sorted(str(d) for d in defects))} (KNOWN_DIFFERENCES.md)")
    for case in cases:
        layouts.check_special_value(spec, case, value, dtype, device, place=False)


def _resized(spec: OpSpec, base: Case, x: Array, label: str) -> Case:
    """``base`` with ``input`` replaced by ``x`` (and a per-channel weight cut to one element,
    a halved dim's input doubled)."""
    arrays: dict[str, Array] = {**base.arrays, "input": x}
    if "weight" in arrays and arrays["weight"].size > 1:
        arrays["weight"] = arrays["weight"][:1]
    options = dict(base.options)
    if getattr(spec.inputs, "halved", None) is not None:
        options[spec.inputs.halved] = -1  # type: ignore[attr-defined]
        arrays["input"] = np.concatenate([x, x[..., ::-1]], axis=-1) if x.ndim else x
    if "dim" in options and x.ndim:
        options["dim"] = -1
    return Case(arrays, base.differentiable, options, base.seed, label)

