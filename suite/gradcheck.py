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

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from suite import compare, reproduce
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
    """The cotangent g used for VJPs of ``case``: standard normal, seeded by the case."""
    return np.random.default_rng([case.seed, 1]).standard_normal(shape)


def _context(spec: OpSpec, case: Case, dtype: torch.dtype, device: str) -> str:
    shapes = ", ".join(f"{k}={tuple(a.shape)}" for k, a in case.arrays.items())
    return f"{dtype_name(dtype)}, {shapes}, device={device}"


def _per_term(spec: OpSpec, dtype: torch.dtype) -> float:
    """The allowance per unit of sum |terms| for ``spec`` in ``dtype``: the conditioning of
    sums of signed terms (``suite.tolerances.SUMMATION``), for records that declare ``terms``
    and in half precision only; 0 otherwise."""
    return tols.summation(dtype) if spec.terms is not None else 0.0


def check_forward(spec: OpSpec, case: Case, dtype: torch.dtype, device: str) -> None:
    """torch's ``spec.torch_fn`` output equals the reference forward within FORWARD tolerance."""
    __tracebackhide__ = True
    case = case.rounded_to(dtype)
    with torch.no_grad():
        actual = spec.torch_fn(**to_tensors(case, dtype, device), **case.options)
    expected = spec.reference(case)
    tol = tols.resolve(dtype, tols.Kind.FORWARD, spec.tol.get((tols.Kind.FORWARD, dtype)))
    per_term = _per_term(spec, dtype)
    slack = per_term * spec.terms.forward(spec, case) if per_term and spec.terms else None
    compare.assert_close(compare.to_numpy(actual), expected, tol=tol, what=f"{spec.name}: forward",
                         context=_context(spec, case, dtype, device), inputs=case.arrays,
                         case=case.describe(), slack=slack)


def check_gradient(spec: OpSpec, case: Case, dtype: torch.dtype, device: str) -> None:
    """torch autograd's gradient of <g, f(x)> equals the reference VJP for every argument."""
    __tracebackhide__ = True
    case = case.rounded_to(dtype)
    tensors = to_tensors(case, dtype, device)
    out = spec.torch_fn(**tensors, **case.options)
    g = cotangent(case, tuple(out.shape))
    g = round_to(g, dtype)
    out.backward(torch.tensor(g, dtype=dtype, device=device))
    # torch_vjp_options: torch's gradient where it is knowingly not the derivative
    expected = spec.ref_vjp(g, **case.arrays, **case.options, **spec.ref_options,
                            **spec.torch_vjp_options)
    require_vjp_shapes(expected, case.arrays, case.differentiable, spec.ref_vjp)
    tol = tols.resolve(dtype, tols.Kind.GRADIENT, spec.tol.get((tols.Kind.GRADIENT, dtype)))
    per_term = _per_term(spec, dtype)
    terms = spec.terms.vjp(spec, g, case) if per_term and spec.terms else {}
    for name in case.differentiable:
        grad = tensors[name].grad
        actual = np.zeros(case.arrays[name].shape) if grad is None else compare.to_numpy(grad)
        compare.assert_close(
            actual, expected[name], tol=tol, what=f"{spec.name}: VJP w.r.t. {name}",
            context=_context(spec, case, dtype, device), inputs=case.arrays,
            case=case.describe(), verdict=lambda name=name: _who_is_wrong(spec, case, name),
            slack=per_term * terms[name] if name in terms else None)


def _qualified_name(f: Callable[..., Any]) -> str:
    """``module.name`` of a function (of the function inside a ``functools.partial``)."""
    f = getattr(f, "func", f)
    return f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', _callable_name(f))}"


def require_vjp_shapes(grads: Mapping[str, Array], arrays: Mapping[str, Array],
                       names: Sequence[str], ref_vjp: Callable[..., Any]) -> None:
    """Every gradient in ``grads`` for ``names`` has exactly its argument's shape.

    Inner products such as <J^T g, v> broadcast, so a VJP returned unreduced over broadcast
    dimensions (a (4, 4, 3, 8) gradient for a (4, 3, 8) argument) would pass them unseen: every
    check that uses a reference VJP requires the shape first.

    Raises:
        AssertionError: one line naming the reference, the argument and both shapes.
    """
    __tracebackhide__ = True
    for name in names:
        shape = np.shape(grads[name]) if name in grads else None
        if shape != np.shape(arrays[name]):
            raise AssertionError(
                f"{_qualified_name(ref_vjp)} returned the gradient w.r.t. {name} with shape "
                f"{shape}, but {name} has shape {np.shape(arrays[name])}: a VJP must have "
                f"exactly its argument's shape")


def _reference_vjp(spec: OpSpec) -> Callable[..., Mapping[str, Array]]:
    """The record's reference VJP in the installed torch's convention (``ref_options``)."""
    return functools.partial(spec.ref_vjp, **spec.ref_options)


def _who_is_wrong(spec: OpSpec, case: Case, name: str) -> str:
    """Run the torch-free finite-difference check to decide whether torch or the reference errs."""
    result = reference_vjp_error(spec.ref, _reference_vjp(spec), case, name,
                                 step=spec.fd_step)
    if result.ok:
        return (f"the reference VJP agrees with finite differences ({result.summary()}), "
                f"so the error is torch's")
    return (f"the reference VJP disagrees with finite differences ({result.summary()}), "
            f"so the reference {spec.ref_vjp.__module__}.{spec.ref_vjp.__name__} is wrong")


@dataclass(frozen=True)
class FDResult:
    """<g, J v> by central differences against <J^T g, v> from the VJP, for one argument."""

    by_fd: float
    by_vjp: float
    scale: float  # sum of |terms| of both inner products: the size cancellation is judged by
    rtol: float
    rounding: float  # what rounding alone can make the difference quotient wrong by

    @property
    def error(self) -> float:
        return abs(self.by_fd - self.by_vjp)

    @property
    def allowed(self) -> float:
        return self.rtol * self.scale + self.rounding

    @property
    def ok(self) -> bool:
        return self.error <= self.allowed

    def summary(self) -> str:
        return (f"<g, J v> by finite differences {self.by_fd:.10g}, <J^T g, v> by the VJP "
                f"{self.by_vjp:.10g}, difference {self.error:.3g}, allowed {self.allowed:.3g}")


def reference_vjp_error(ref: Callable[..., Array], ref_vjp: Callable[..., Mapping[str, Array]],
                        case: Case, name: str, *, step: float = tols.FD_STEP,
                        rtol: float = tols.FD_RTOL) -> FDResult:
    """Compare ``ref_vjp`` with a central difference of ``ref`` along one random direction.

    For a cotangent g and a direction v (both standard normal, seeded by the case) of argument
    ``name``:  <g, (f(x + h v) - f(x - h v)) / 2h>  must equal  <J^T g, v>.  The error is judged
    relative to the sum of the absolute values of both inner products' terms, so a result that
    is small through cancellation is not held to an impossible standard, plus the rounding floor
    of the difference quotient (``suite.tolerances.FD_ROUNDING_ULPS``).
    """
    arrays = dict(case.arrays)
    options: dict[str, Any] = dict(case.options)
    y = np.asarray(ref(**arrays, **options))
    g = cotangent(case, y.shape)
    index = list(case.arrays).index(name)
    v = np.random.default_rng([case.seed, 2, index]).standard_normal(arrays[name].shape)
    x = arrays[name]
    plus = np.asarray(ref(**{**arrays, name: x + step * v}, **options))
    minus = np.asarray(ref(**{**arrays, name: x - step * v}, **options))
    jv = (plus - minus) / (2 * step)
    grads = ref_vjp(g, **arrays, **options)
    require_vjp_shapes(grads, arrays, [name], ref_vjp)
    vjp = np.asarray(grads[name])
    by_fd, by_vjp = float(np.sum(g * jv)), float(np.sum(vjp * v))
    scale = float(np.sum(np.abs(g * jv)) + np.sum(np.abs(vjp * v)))
    eps = float(np.finfo(np.float64).eps)
    rounding = tols.FD_ROUNDING_ULPS * eps * float(
        np.sum(np.abs(g) * (np.abs(plus) + np.abs(minus)))) / (2 * step)
    return FDResult(by_fd, by_vjp, scale, rtol, rounding)


def check_reference_vjp(spec: OpSpec, case: Case) -> None:
    """The reference VJP agrees with finite differences of the reference forward (torch-free)."""
    __tracebackhide__ = True
    for name in case.differentiable:
        result = reference_vjp_error(spec.ref, _reference_vjp(spec), case, name,
                                 step=spec.fd_step)
        if not result.ok:
            raise AssertionError(
                f"{spec.name}: reference VJP w.r.t. {name} disagrees with central finite "
                f"differences of the reference forward (step {spec.fd_step:g})\n"
                f"  {result.summary()}\n"
                f"  so {spec.ref_vjp.__module__}.{spec.ref_vjp.__name__} (or the forward) is "
                f"wrong\nCase:\n{case.describe()}\nReproduce: {reproduce.command()}")


def _callable_name(f: Callable[..., Any]) -> str:
    """A class's or function's name; an instance's class name (nn.Softmax2d())."""
    return str(getattr(f, "__name__", type(f).__name__))


def _module_output(spec: OpSpec, case: Case, tensors: dict[str, torch.Tensor], dtype: torch.dtype,
                   device: str) -> torch.Tensor:
    """The module form's output on ``tensors``: built by ``module_factory(case)`` or
    ``module(**ctor_arrays, **options)``, the ``module_params`` tensors in place of its own
    (shapes checked), the other arrays passed positionally (module forwards rename arguments:
    PoissonNLLLoss's ``log_input``)."""
    assert spec.module is not None
    ctor = {k: tensors.pop(k) for k in spec.ctor_arrays if k in tensors}
    params = {k: tensors.pop(k) for k in spec.module_params if k in tensors}
    built = (spec.module_factory(case) if spec.module_factory is not None
             else spec.module(**ctor, **case.options))
    module = built.to(device=device, dtype=dtype)
    own = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    for name, t in params.items():
        if name not in own or own[name].shape != t.shape:
            have = tuple(own[name].shape) if name in own else "none"
            raise AssertionError(
                f"{spec.name}: the module form {type(module).__name__} has no parameter or "
                f"buffer {name!r} shaped like the case's {tuple(t.shape)} (it has {have}): "
                f"the record's module_factory builds the wrong module\nCase:\n{case.describe()}")
    return torch.func.functional_call(module, params, tuple(tensors.values()))


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
        grads = torch.autograd.grad(out, [tensors[n] for n in case.differentiable], g)
        results.append([out.detach(), *grads, *(tensors[n].detach() for n in updated)])
    names = ["output", *(f"gradient w.r.t. {n}" for n in case.differentiable),
             *(f"{n} after the call" for n in updated)]
    functional = _callable_name(spec.torch_fn)
    for name, a, b in zip(names, *results, strict=True):
        kind = tols.Kind.GRADIENT if name.startswith("gradient") else tols.Kind.FORWARD
        compare.assert_close(
            compare.to_numpy(a), compare.to_numpy(b), tol=tols.resolve(dtype, kind),
            what=f"{spec.name}: {_callable_name(spec.module)} (module form) {name} against "
                 f"{functional} (functional form, as the reference)",
            context=_context(spec, case, dtype, device), case=case.describe())
