"""The three checks of every differentiable record, and who is wrong when they disagree.

1. ``check_forward``: torch's output against the reference forward.
2. ``check_gradient``: torch autograd's VJP against the reference VJP, for one cotangent ``g``.
3. ``check_reference_vjp``: the reference VJP against a central finite difference of the
   reference forward along one random direction (JAX's ``check_vjp`` idea). It never touches
   torch, so a wrong reference cannot hide a wrong torch.

When (2) fails, (3) runs on the same case and the message says which side is wrong.
Directions and cotangents are drawn from ``case.seed``: a case reproduces its whole check.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from suite import baselines, compare, nondeterminism, reproduce
from suite import tolerances as tols
from suite.devices import dtype_name
from suite.specs import Array, Case, OpSpec, round_to


def to_tensors(case: Case, dtype: torch.dtype, device: str) -> dict[str, torch.Tensor]:
    """The case's arrays as torch tensors: floats in ``dtype``, differentiable ones with grad."""
    tensors = {}
    for name, a in case.arrays.items():
        if a.dtype.kind == "f":
            t = torch.tensor(a, dtype=dtype, device=device)
            t.requires_grad_(name in case.differentiable)
        else:
            t = torch.tensor(a, device=device)
        tensors[name] = t
    return tensors


def cotangent(case: Case, shape: tuple[int, ...]) -> Array:
    """The cotangent g used for VJPs of ``case``: standard normal, seeded by the case.

    Read-only: the same draw is kept for the next call with this seed and shape (the forward,
    gradient and finite-difference checks of one case each ask for it; a million normal draws
    cost about as much as a million-element forward)."""
    return _cotangent(int(case.seed), tuple(int(n) for n in shape))


def forget_cotangents() -> None:
    """Drop the kept cotangents, so the next :func:`cotangent` draws afresh: a benchmark that
    checks one case round after round times each round as a fresh case's checks."""
    _cotangent.cache_clear()


@functools.lru_cache(maxsize=2)
def _cotangent(seed: int, shape: tuple[int, ...]) -> Array:
    g = np.random.default_rng([seed, 1]).standard_normal(shape)
    g.setflags(write=False)
    return g


def _context(spec: OpSpec, case: Case, dtype: torch.dtype, device: str) -> str:
    shapes = ", ".join(f"{k}={tuple(a.shape)}" for k, a in case.arrays.items())
    return f"{dtype_name(dtype)}, {shapes}, device={device}"


def _per_term(spec: OpSpec, dtype: torch.dtype) -> float:
    """The allowance per unit of sum |terms| for ``spec`` in ``dtype``: the conditioning of
    sums of signed terms (``suite.tolerances.SUMMATION``), for records that declare ``terms``;
    0 otherwise."""
    return tols.summation(dtype) if spec.terms is not None else 0.0


def check_forward(spec: OpSpec, case: Case, dtype: torch.dtype, device: str) -> None:
    """torch's ``spec.torch_fn`` output equals the reference forward within FORWARD tolerance
    (or, for a record with a ``baseline`` in this dtype, within k times torch's own error)."""
    __tracebackhide__ = True
    case = case.rounded_to(dtype)
    nondeterminism.refuse_known(spec, "forward", case, dtype, device)

    def run(fn: Callable[..., torch.Tensor] = spec.torch_fn) -> list[Array]:
        with torch.no_grad():
            return [compare.to_numpy(fn(**to_tensors(case, dtype, device), **case.options))]

    actual = run()
    expected = spec.reference(case)
    what, context = f"{spec.name}: forward", _context(spec, case, dtype, device)
    if baselines.applies(spec, dtype):
        assert spec.baseline is not None and spec.baseline.torch_fn is not None
        baselines.assert_within(actual[0], run(spec.baseline.torch_fn)[0], expected,
                                k=spec.baseline.forward, dtype=dtype, what=what,
                                context=context, case=case)
        return
    tol = spec.tolerance(tols.Kind.FORWARD, dtype)
    per_term = _per_term(spec, dtype)
    terms = spec.terms
    slack = (lambda: per_term * terms.forward(spec, case)) if per_term and terms else None
    compare.assert_close(
        actual[0], expected, tol=tol, what=what, context=context, inputs=case.arrays,
        case=case, slack=slack,
        verdict=lambda: nondeterminism.verdict(spec, "forward", case, dtype, device, actual, run))


def _torch_gradients(spec: OpSpec, case: Case, dtype: torch.dtype, device: str,
                     g: Array | None = None,
                     fn: Callable[..., torch.Tensor] | None = None) -> tuple[list[Array], Array]:
    """torch autograd's gradient of <g, f(x)> for each differentiable array (zeros where torch
    gives None), and the cotangent g (drawn from the case and rounded to ``dtype`` when not
    given)."""
    tensors = to_tensors(case, dtype, device)
    out = (fn or spec.torch_fn)(**tensors, **case.options)
    if g is None:
        g = round_to(cotangent(case, tuple(out.shape)), dtype)
    out.backward(torch.tensor(g, dtype=dtype, device=device))
    grads = []
    for name in case.differentiable:
        grad = tensors[name].grad
        grads.append(np.zeros(case.arrays[name].shape) if grad is None
                     else compare.to_numpy(grad))
    return grads, g


def check_gradient(spec: OpSpec, case: Case, dtype: torch.dtype, device: str, *,
                   broadcast: bool = False) -> None:
    """torch autograd's gradient of <g, f(x)> equals the reference VJP for every argument.

    ``broadcast``: an argument of ``spec.broadcasts`` may be smaller than the shape it is
    broadcast to; its gradient is then a sum over the copies, allowed what that sum's rounding
    makes unavoidable (:func:`copies_slack`)."""
    __tracebackhide__ = True
    case = case.rounded_to(dtype)
    nondeterminism.refuse_known(spec, "gradient", case, dtype, device)
    actual, g = _torch_gradients(spec, case, dtype, device)
    try:
        # as_torch: torch's gradient where it is knowingly not the derivative (torch_vjp_options)
        expected = spec.reference_vjp(g, case, as_torch=True)
    except Exception:
        _require_output_shape(spec, case, np.shape(g), dtype, device)
        raise
    check_vjp_shapes(spec, case, expected)
    context = _context(spec, case, dtype, device)
    if baselines.applies(spec, dtype):
        assert spec.baseline is not None and spec.baseline.torch_fn is not None
        theirs, _ = _torch_gradients(spec, case, dtype, device, g, spec.baseline.torch_fn)
        for name, a, b in zip(case.differentiable, actual, theirs, strict=True):
            baselines.assert_within(a, b, expected[name], k=spec.baseline.gradient, dtype=dtype,
                                    what=f"{spec.name}: VJP w.r.t. {name}", context=context,
                                    case=case)
        return
    tol = spec.tolerance(tols.Kind.GRADIENT, dtype)
    per_term = _per_term(spec, dtype)

    @functools.cache
    def allowances() -> dict[str, Array]:
        """Per argument, what the conditioning allows beyond ``tol``: computed on the first
        comparison that fails without it."""
        terms = dict(spec.terms.vjp(spec, g, case)) if per_term and spec.terms else {}
        out = {k: per_term * v for k, v in terms.items()}
        if broadcast:
            for name, extra in copies_slack(spec, case, g, tol, dtype).items():
                out[name] = out[name] + extra if name in out else extra
        return out

    def again() -> list[Array]:
        return _torch_gradients(spec, case, dtype, device, g)[0]

    for name, grad in zip(case.differentiable, actual, strict=True):
        def verdict(name: str = name) -> str:
            repeat = nondeterminism.verdict(spec, "gradient", case, dtype, device, actual, again)
            return repeat or _who_is_wrong(spec, case, name)

        compare.assert_close(
            grad, expected[name], tol=tol, what=f"{spec.name}: VJP w.r.t. {name}",
            context=context, inputs=case.arrays, case=case, verdict=verdict,
            slack=functools.partial(_allowance_of, allowances, name))


def _require_output_shape(spec: OpSpec, case: Case, shape: tuple[int, ...], dtype: torch.dtype,
                          device: str) -> None:
    """Where the reference VJP could not take the cotangent, which has torch's output shape:
    fail, as a mismatch, if that shape is not the reference output's (a compiled
    multi_margin_loss of one sample returned (1,) where eager and the reference give ()); a
    VJP that fails on the right shape is the reference's own error and propagates."""
    __tracebackhide__ = True
    want = np.shape(spec.reference(case))
    if tuple(shape) != tuple(want):
        compare.fail(f"{spec.name}: torch's output has shape {tuple(shape)} but the reference's "
                     f"has shape {tuple(want)}, so no VJP can be compared  "
                     f"[{_context(spec, case, dtype, device)}]\nCase:\n{case.describe()}\n"
                     f"Reproduce: {reproduce.command()}")


def _allowance_of(allowances: Callable[[], dict[str, Array]], name: str) -> Array | None:
    return allowances().get(name)


def copies_slack(spec: OpSpec, case: Case, g: Array, tol: tols.Tolerance,
                 dtype: torch.dtype) -> dict[str, Array]:
    """What the gradient of a broadcast argument may add beyond ``tol``, per argument of
    ``spec.broadcasts`` that the case holds smaller than the shape it broadcasts to.

    That gradient is the sum of its k copies' gradients e_i (the reference VJP of the case with
    the argument expanded), each within rtol |e_i| + atol of the exact one and summed in
    ``dtype`` within (k - 1) u sum |e_i| (Higham, Accuracy and Stability, eq. (4.4)):
    rtol sum |e_i| + (k - 1) (atol + u sum |e_i|) in all. kl_div's target gradient
    exp(t) (t - x + 1) over two copies of t = 8.6 is two terms of ~1e5 that cancel to 67.5:
    float32 was off by 9.6e-4 there with torch right (the reference agreed with finite
    differences), 0.2 u of sum |e_i|."""
    u = float(torch.finfo(dtype).eps) / 2
    out: dict[str, Array] = {}
    for name in spec.broadcasts:
        if name not in case.differentiable:
            continue
        arr = case.arrays[name]
        peers = [a.shape for a in case.arrays.values() if a.ndim == arr.ndim]
        try:
            full = np.broadcast_shapes(*peers)
        except ValueError:
            continue
        if full == arr.shape:
            continue
        expanded = dataclasses.replace(
            case, arrays={**case.arrays, name: np.ascontiguousarray(np.broadcast_to(arr, full))})
        per_copy = np.abs(spec.reference_vjp(g, expanded, as_torch=True)[name])
        axes = tuple(i for i, (a, b) in enumerate(zip(arr.shape, full, strict=True)) if a != b)
        total = per_copy.sum(axis=axes, keepdims=True)
        k = int(np.prod([full[i] for i in axes]))
        out[name] = tol.rtol * total + (k - 1) * (tol.atol + u * total)
    return out


def check_vjp_shapes(spec: OpSpec, case: Case, vjp: Mapping[str, Array]) -> None:
    """Every gradient of the reference VJP has exactly its argument's shape: an unreduced
    gradient of a broadcast argument would otherwise pass the finite-difference check, whose
    <J^T g, v> broadcasts v."""
    __tracebackhide__ = True
    assert spec.ref_vjp is not None
    for name in case.differentiable:
        if name not in vjp:
            raise AssertionError(f"{spec.name}: the reference VJP "
                                 f"{spec.ref_vjp.__module__}.{spec.ref_vjp.__name__} returns no "
                                 f"gradient for {name!r} (it returns {sorted(vjp)})")
        got, want = np.shape(vjp[name]), case.arrays[name].shape
        if got != want:
            raise AssertionError(f"{spec.name}: the reference VJP "
                                 f"{spec.ref_vjp.__module__}.{spec.ref_vjp.__name__} returns a "
                                 f"gradient of shape {got} for {name!r}, whose shape is {want}: "
                                 f"a gradient must have exactly its argument's shape (sum over "
                                 f"broadcast copies)")


def _reference_vjp(spec: OpSpec) -> Callable[..., Mapping[str, Array]]:
    """The record's reference VJP in the installed torch's convention (``ref_options``)."""
    assert spec.ref_vjp is not None
    return functools.partial(spec.ref_vjp, **spec.ref_options)


def _subject(spec: OpSpec) -> str:
    """What the finite-difference check judges: the reference VJP, or for a reference-free
    record torch's own autograd (``suite.selfref``)."""
    assert spec.ref_vjp is not None
    return getattr(spec.ref_vjp, "subject",
                   f"the reference {spec.ref_vjp.__module__}.{spec.ref_vjp.__name__}")


def _who_is_wrong(spec: OpSpec, case: Case, name: str) -> str:
    """Run the torch-free finite-difference check to decide whether torch or the reference errs."""
    assert spec.ref is not None
    result = reference_vjp_error(spec.ref, _reference_vjp(spec), case, name,
                                 terms=forward_terms(spec, case))
    if result.ok:
        return (f"the reference VJP agrees with finite differences ({result.summary()}), "
                f"so the error is torch_fn's ({callable_path(spec.torch_fn)})")
    return (f"the reference VJP disagrees with finite differences ({result.summary()}), "
            f"so {_subject(spec)} is wrong")


@dataclass(frozen=True)
class FDResult:
    """<g, J v> by central differences against <J^T g, v> from the VJP, for one argument."""

    by_fd: float
    by_vjp: float
    scale: float  # sum of |terms| of both inner products: the size cancellation is judged by
    rtol: float
    rounding: float  # what rounding alone can make the difference quotient wrong by
    truncation: float = 0.0  # Richardson's estimate of the central difference's h^2 term

    @property
    def error(self) -> float:
        return abs(self.by_fd - self.by_vjp)

    @property
    def allowed(self) -> float:
        return self.rtol * self.scale + self.rounding + \
            tols.FD_TRUNCATION_SAFETY * self.truncation

    @property
    def ok(self) -> bool:
        return self.error <= self.allowed

    def summary(self) -> str:
        truncation = f" (with {tols.FD_TRUNCATION_SAFETY:g} x the difference's truncation " \
            f"{self.truncation:.3g})" if self.truncation else ""
        return (f"<g, J v> by finite differences {self.by_fd:.10g}, <J^T g, v> by the VJP "
                f"{self.by_vjp:.10g}, difference {self.error:.3g}, allowed "
                f"{self.allowed:.3g}{truncation}")


ForwardTerms = Callable[[Mapping[str, Array]], Array | None]


def forward_terms(spec: OpSpec, case: Case) -> ForwardTerms | None:
    """M = sum |terms| of the forward at given arrays (the case's options), for a record that
    declares ``terms``, or a recurrent record's gates (``gates``, RecurrentGates.forward);
    None otherwise (the rounding floor then uses |f|)."""
    # ``forward`` is optional on a GateRounding (the protocol asks only for ``vjp``), and may
    # give None: the floor then stays |f|. Evaluated only where the |f| floor fails.
    measure: Callable[[OpSpec, Case], Any] | None = \
        spec.terms.forward if spec.terms is not None else getattr(spec.gates, "forward", None)
    if measure is None:
        return None

    def sizes(arrays: Mapping[str, Array]) -> Array | None:
        found = measure(spec, Case(arrays, case.differentiable, case.options, case.seed))
        return None if found is None else np.asarray(found)

    return sizes


def reference_vjp_error(ref: Callable[..., Array], ref_vjp: Callable[..., Mapping[str, Array]],
                        case: Case, name: str, *, step: float = tols.FD_STEP,
                        rtol: float = tols.FD_RTOL,
                        terms: ForwardTerms | None = None) -> FDResult:
    """Compare ``ref_vjp`` with a central difference of ``ref`` along one random direction of
    argument ``name`` (:func:`reference_vjp_errors` for one argument)."""
    return reference_vjp_errors(ref, ref_vjp, case, (name,), step=step, rtol=rtol,
                                terms=terms)[name]


def reference_vjp_errors(ref: Callable[..., Array],
                         ref_vjp: Callable[..., Mapping[str, Array]], case: Case,
                         names: Sequence[str], *, step: float = tols.FD_STEP,
                         rtol: float = tols.FD_RTOL,
                         terms: ForwardTerms | None = None) -> dict[str, FDResult]:
    """Compare ``ref_vjp`` with a central difference of ``ref`` along one random direction,
    for each argument of ``names`` in turn.

    For a cotangent g and a direction v (both standard normal, seeded by the case) of argument
    ``name``:  <g, (f(x + h v) - f(x - h v)) / 2h>  must equal  <J^T g, v>.  The error is judged
    relative to the sum of the absolute values of both inner products' terms, so a result that
    is small through cancellation is not held to an impossible standard, plus the rounding floor
    of the difference quotient (``suite.tolerances.FD_ROUNDING_ULPS``; with ``terms``, the
    forward's sum |terms| in place of |f|) and, where that would not pass, the measured
    truncation error of the difference (``suite.tolerances.FD_TRUNCATION_SAFETY``).

    One VJP serves every argument (it returns them all), and f(x) itself is never evaluated:
    two evaluations of ``ref`` per argument, four where the truncation estimate is needed.
    """
    arrays = dict(case.arrays)
    options: dict[str, Any] = dict(case.options)
    eps = float(np.finfo(np.float64).eps)
    g: Array | None = None
    abs_g: Array | None = None
    vjps: Mapping[str, Array] | None = None
    results: dict[str, FDResult] = {}
    for name in names:
        index = list(case.arrays).index(name)
        v = np.random.default_rng([case.seed, 2, index]).standard_normal(arrays[name].shape)
        x = arrays[name]

        def at(t: float, x: Array = x, v: Array = v, name: str = name) -> Array:
            return np.asarray(ref(**{**arrays, name: x + t * v}, **options))

        plus, minus = at(step), at(-step)
        if g is None:  # f(x + h v) has f's shape: the cotangent needs no evaluation of f(x)
            g = cotangent(case, plus.shape)
            abs_g = np.abs(g)
            vjps = ref_vjp(g, **arrays, **options)
        assert abs_g is not None and vjps is not None
        jv = (plus - minus) / (2 * step)
        vjp = np.asarray(vjps[name])
        if vjp.shape != x.shape:
            raise AssertionError(f"the VJP {getattr(ref_vjp, '__name__', ref_vjp)} returns a "
                                 f"gradient of shape {vjp.shape} for {name!r}, whose shape is "
                                 f"{x.shape}: a gradient must have exactly its argument's shape")
        by_fd, by_vjp = _dot(g, jv), _dot(vjp, v)
        scale = _dot(abs_g, np.abs(jv)) + _dot(np.abs(vjp), np.abs(v))

        def floor(sizes: tuple[Array, Array], abs_g: Array = abs_g) -> float:
            return tols.FD_ROUNDING_ULPS * eps * _dot(abs_g, sizes[0] + sizes[1]) / (2 * step)

        result = FDResult(by_fd, by_vjp, scale, rtol, floor((np.abs(plus), np.abs(minus))))
        if not result.ok:
            # Only where that fails (both cost evaluations; sum |terms| >= |f|, so passing
            # stays passing): the forward's sum |terms| for the floor, and Richardson's
            # truncation estimate, D(2h) - D(h) = 3 c h^2 + O(h^4) (suite/tolerances.py,
            # FD_TRUNCATION_SAFETY).
            sizes = None if terms is None else (terms({**arrays, name: x + step * v}),
                                                terms({**arrays, name: x - step * v}))
            rounding = result.rounding if sizes is None or sizes[0] is None or \
                sizes[1] is None else floor((sizes[0], sizes[1]))
            by_fd_2h = _dot(g, (at(2 * step) - at(-2 * step)) / (4 * step))
            result = FDResult(by_fd, by_vjp, scale, rtol, rounding, abs(by_fd_2h - by_fd) / 3)
        results[name] = result
    return results


def _dot(a: Array, b: Array) -> float:
    """sum(a * b) over arrays of one shape (broadcast first where they differ), in one pass.

    ``einsum`` rather than ``np.dot``: the dot product goes to BLAS, whose threads (numpy's
    own, not torch's) spin against the other core's work; einsum's loop is one thread."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return float(np.einsum("i,i->", a.ravel(), b.ravel()))


def check_reference_vjp(spec: OpSpec, case: Case) -> None:
    """The reference VJP agrees with finite differences of the reference forward (torch-free;
    for a reference-free record, torch's float64 autograd against its own forward)."""
    __tracebackhide__ = True
    assert spec.ref is not None
    own = hasattr(spec.ref_vjp, "subject")  # a reference-free record (suite.selfref)
    label, source = ("torch's autograd VJP", "op's own float64") if own else \
        ("reference VJP", "reference")
    results = reference_vjp_errors(spec.ref, _reference_vjp(spec), case, case.differentiable,
                                   terms=forward_terms(spec, case))
    for name, result in results.items():
        if not result.ok:
            raise AssertionError(
                f"{spec.name}: {label} w.r.t. {name} disagrees with central finite differences "
                f"of the {source} forward (step {tols.FD_STEP:g})\n  {result.summary()}\n  so "
                f"{_subject(spec)} (or the forward) is wrong\nCase:\n{case.describe()}\n"
                f"Reproduce: {reproduce.command()}")


def callable_path(f: Callable[..., Any]) -> str:
    """``torch.nn.functional.gelu``, ``mypkg.ops.my_gelu``: where a callable lives."""
    module = getattr(f, "__module__", None) or type(f).__module__
    return f"{module}.{getattr(f, '__qualname__', _callable_name(f))}"


def _callable_name(f: Callable[..., Any]) -> str:
    """A class's or function's name; an instance's class name (nn.Softmax2d())."""
    return str(getattr(f, "__name__", type(f).__name__))


def _module_output(spec: OpSpec, case: Case, tensors: dict[str, torch.Tensor], dtype: torch.dtype,
                   device: str) -> torch.Tensor:
    """The module form's output on ``tensors``: built by its ``factory(case)`` or
    ``cls(**ctor_arrays, **options)``, its ``params`` tensors in place of its own (shapes
    checked), the other arrays passed positionally (module forwards rename arguments:
    PoissonNLLLoss's ``log_input``)."""
    form = spec.module
    assert form is not None
    ctor = {k: tensors.pop(k) for k in form.ctor_arrays if k in tensors}
    params = {k: tensors.pop(k) for k in form.params if k in tensors}
    built = form.factory(case) if form.factory is not None else form.cls(**ctor, **case.options)
    module = built.to(device=device, dtype=dtype)
    own = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    renamed = {}
    for name, t in params.items():
        key = form.param_names.get(name, name)
        if key != name and key in own and own[key].numel() == t.numel():
            t = t.reshape(own[key].shape)  # the module stores it flattened (ModuleForm doc)
        if key not in own or own[key].shape != t.shape:
            have = tuple(own[key].shape) if key in own else "none"
            theirs = f"{name!r} " if key != name else ""
            raise AssertionError(
                f"{spec.name}: the module form {type(module).__name__} has no parameter or "
                f"buffer {key!r} shaped like the case's {theirs}{tuple(t.shape)} (it has "
                f"{have}): the record's ModuleForm.factory builds the wrong module\n"
                f"Case:\n{case.describe()}")
        renamed[key] = t
    return torch.func.functional_call(module, renamed, tuple(tensors.values()))


def check_module_form(spec: OpSpec, case: Case, dtype: torch.dtype, device: str) -> None:
    """The ``torch.nn`` module form (``spec.module``) agrees with the functional form: the
    output, the gradient of every differentiable array for one cotangent, and the value after
    the call of every other floating array (running statistics the call updates in place).

    Both forms reach the same kernel, so the tolerance is the table's, never the record's
    widening (which covers torch against the reference): what can differ is how arrays,
    options and modes reach the kernel, and that shows as an O(1) difference.
    """
    __tracebackhide__ = True
    assert spec.module is not None
    case = case.rounded_to(dtype)
    # Float arrays that are not differentiable (running statistics): compared after the call.
    updated = [n for n, a in case.arrays.items()
               if a.dtype.kind == "f" and n not in case.differentiable]
    results = []
    for form in ("module", "functional"):
        tensors = to_tensors(case, dtype, device)
        if form == "module":
            out = _module_output(spec, case, dict(tensors), dtype, device)
        else:
            out = spec.torch_fn(**tensors, **case.options)
        g = torch.tensor(cotangent(case, tuple(out.shape)), dtype=dtype, device=device)
        grads = torch.autograd.grad(out, [tensors[n] for n in case.differentiable], g,
                                    allow_unused=True)
        grads = tuple(torch.zeros_like(tensors[n]) if d is None else d
                      for n, d in zip(case.differentiable, grads, strict=True))
        results.append([out.detach(), *grads, *(tensors[n].detach() for n in updated)])
    names = ["output", *(f"gradient w.r.t. {n}" for n in case.differentiable),
             *(f"{n} after the call" for n in updated)]
    functional = _callable_name(spec.torch_fn)
    for name, a, b in zip(names, *results, strict=True):
        kind = tols.Kind.GRADIENT if name.startswith("gradient") else tols.Kind.FORWARD
        compare.assert_close(
            compare.to_numpy(a), compare.to_numpy(b), tol=tols.resolve(dtype, kind),
            what=f"{spec.name}: {spec.module.name} (module form) {name} against "
                 f"{functional} (functional form, as the reference)",
            context=_context(spec, case, dtype, device), case=case)
