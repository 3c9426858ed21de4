"""Checks beyond first-order autograd: forward mode, double backward, torch.func, torch.compile.

No new references are needed; everything is checked against the record's reference forward
and VJP (float64, NumPy):

* ``check_jvp``: torch.func.jvp's J v, through the exact identity <u, J v> = <J^T u, v> with
  the reference VJP for several random u, and element by element against a central finite
  difference of the reference forward along v.
* ``check_double_backward``: for L(x) = <g, f(x)> with a fixed cotangent g, torch's grad of
  <v, dL/dx> (create_graph=True) is the Hessian-vector product H v; the reference side is the
  central difference of the reference VJP along v, (J^T g (x + h v) - J^T g (x - h v)) / 2h,
  which is H v too. Compared element by element ("VJP of VJP").
* ``check_func_vjp``: torch.func.vjp's gradients against autograd's.
* ``check_compiled``: torch.compile's forward and gradients against the reference.
* ``check_low_precision``: the forward and VJP in float16/bfloat16 (the ladder's lower rungs);
  a kernel torch lacks in that dtype skips with torch's own error message.

Directions and cotangents are seeded by ``case.seed`` (streams 1 and 2 are gradcheck's).
Higher-order checks run in float64: a finite difference of float32 values has a rounding floor
~eps32 / h, far above what the check must resolve.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pytest
import torch
from hypothesis import assume

from suite import compare
from suite import gradcheck as gc
from suite import tolerances as tols
from suite.compiled import CompileError  # noqa: F401  (re-exported: higher.CompileError)
from suite.devices import dtype_name
from suite.specs import Array, Case, OpSpec, round_to
from suite.tolerances import Tolerance

N_PROBES = 3  # random u per JVP identity check: a wrong J v is caught by any one of them
_EPS64 = float(np.finfo(np.float64).eps)


def _direction(case: Case, name: str, stream: int) -> Array:
    index = list(case.arrays).index(name)
    return np.random.default_rng([case.seed, stream, index]).standard_normal(
        case.arrays[name].shape)


def _context(case: Case, dtype: torch.dtype, device: str) -> str:
    shapes = ", ".join(f"{k}={tuple(a.shape)}" for k, a in case.arrays.items())
    return f"{dtype_name(dtype)}, {shapes}, device={device}"


def _ref(spec: OpSpec, case: Case, **replace: Array) -> Array:
    """The reference forward with some arrays replaced (finite-difference evaluations)."""
    return np.asarray(spec.reference(Case({**case.arrays, **replace}, case.differentiable,
                                          case.options, case.seed)))


def _ref_vjp(spec: OpSpec, g: Array, case: Case, **replace: Array) -> dict[str, Array]:
    """The reference VJP, each gradient required to have its argument's shape."""
    at = Case({**case.arrays, **replace}, case.differentiable, case.options, case.seed)
    grads = spec.reference_vjp(g, at)
    gc.check_vjp_shapes(spec, at, grads)
    return grads


def _as_function(spec: OpSpec, case: Case, tensors: dict[str, torch.Tensor]
                 ) -> Callable[..., torch.Tensor]:
    """``f(*differentiable tensors)``: torch_fn with the other arrays and options closed over."""
    names = case.differentiable

    def f(*diff: torch.Tensor) -> torch.Tensor:
        return spec.torch_fn(**{**tensors, **dict(zip(names, diff, strict=True))},
                             **case.options)

    return f


def _fd_tolerance(values: Sequence[Array], result: Array) -> Tolerance:
    """A central difference's tolerance: ``FD_RTOL`` relative to the largest |result|, plus its
    rounding floor ``FD_ROUNDING_ULPS * eps * 2 size / 2h`` (suite/tolerances.py derives both
    for the first-order check), ``size`` the largest magnitude among ``values``: the evaluated
    function at x +- h v, and for a VJP also the cotangent, since a VJP's intermediates are
    g times derivatives of magnitude ~1 and may cancel to a much smaller result (group_norm of
    two values: |J^T g| ~ 1e-5 from terms ~|g|), keeping their rounding of eps |g|."""
    size = max((float(np.max(np.abs(a))) for a in values if np.size(a)), default=0.0)
    peak = float(np.max(np.abs(result))) if np.size(result) else 0.0
    floor = tols.FD_ROUNDING_ULPS * _EPS64 * 2 * size / (2 * tols.FD_STEP)
    return Tolerance(rtol=tols.FD_RTOL, atol=tols.FD_RTOL * peak + floor)


def _torch_side(spec: OpSpec) -> Tolerance:
    """What torch's own float64 J v or H v may be off by: the GRADIENT row its VJP is held to
    (a derivative torch computes from cancelling terms of size ~1, e.g. gelu's tanh form far in
    its tail, is accurate to that row's absolute error, not relative to its tiny value). The
    finite difference it is compared with is uncertain by ``_fd_tolerance``; a comparison
    allows the larger of the two."""
    return spec.tolerance(tols.Kind.GRADIENT, torch.float64)


def check_jvp(spec: OpSpec, case: Case, device: str = "cpu") -> None:
    """torch.func.jvp's J v against the reference VJP (identity) and finite differences."""
    __tracebackhide__ = True
    dtype = torch.float64
    tensors = gc.to_tensors(case, dtype, device)
    primals = tuple(tensors[n].detach() for n in case.differentiable)
    v = {n: _direction(case, n, 3) for n in case.differentiable}
    tangents = tuple(torch.tensor(v[n], dtype=dtype, device=device) for n in case.differentiable)
    jv_t = torch.func.jvp(_as_function(spec, case, tensors), primals, tangents)[1]
    jv = compare.to_numpy(jv_t)
    context = _context(case, dtype, device)
    # <u, J v> = <J^T u, v>: exact, so only rounding separates the two sides. Each inner
    # product is judged against the sum of |terms| of both sides (cancellation), at the float64
    # GRADIENT rtol.
    rtol = spec.tolerance(tols.Kind.GRADIENT, dtype).rtol
    rng = np.random.default_rng([case.seed, 4])
    by_jvp, by_vjp, scale = [], [], 0.0
    for _ in range(N_PROBES):
        u = rng.standard_normal(jv.shape)
        vjp = _ref_vjp(spec, u, case)
        by_jvp.append(float(np.sum(u * jv)))
        by_vjp.append(float(sum(np.sum(vjp[n] * v[n]) for n in case.differentiable)))
        # Normalisations cancel inside J itself (group_norm over two values: terms of size
        # |u| |v| / sigma cancel to ~1e-8), which the final terms do not show: the scale is at
        # least what a Jacobian of unit size would give, sum |u| * max |v|.
        unit = float(np.sum(np.abs(u))) * max(float(np.max(np.abs(v[n]), initial=0.0))
                                               for n in case.differentiable)
        scale = max(scale, unit, float(np.sum(np.abs(u * jv)))
                    + float(sum(np.sum(np.abs(vjp[n] * v[n])) for n in case.differentiable)))
    compare.assert_close(
        np.array(by_jvp), np.array(by_vjp), tol=Tolerance(rtol=rtol, atol=rtol * scale),
        what=f"{spec.name}: <u, J v> by torch.func.jvp against <J^T u, v> by the reference VJP "
             f"(one element per random u)", context=context, case=case)
    # J v element by element against a central difference of the reference forward.
    h = tols.FD_STEP

    def at(t: float) -> tuple[Array, Array]:
        return (_ref(spec, case, **{n: case.arrays[n] + t * v[n] for n in case.differentiable}),
                _ref(spec, case, **{n: case.arrays[n] - t * v[n] for n in case.differentiable}))

    sizes = gc.forward_terms(spec, case)

    def terms(t: float) -> tuple[Array, ...] | None:
        """The forward's sum |terms| at x +- t v (suite/tolerances.py, FD_ROUNDING_ULPS), for
        a record that declares them or a recurrent record's gates (gradcheck.forward_terms)."""
        if sizes is None:
            return None
        found = tuple(sizes({**case.arrays, **{n: case.arrays[n] + sign * t * v[n]
                                               for n in case.differentiable}})
                      for sign in (1.0, -1.0))
        return None if any(m is None for m in found) else tuple(
            m for m in found if m is not None)

    def fd_2h() -> Array:
        far_plus, far_minus = at(2 * h)
        return (far_plus - far_minus) / (4 * h)

    plus, minus = at(h)
    fd = (plus - minus) / (2 * h)
    _assert_matches_differences(
        spec, jv, fd, (plus, minus), lambda: terms(h), fd_2h,
        what=f"{spec.name}: J v by torch.func.jvp against central differences of the reference "
             f"forward (step {h:g})", context=context, case=case)


def _replaced(case: Case, arrays: dict[str, Array]) -> Case:
    return Case({**case.arrays, **arrays}, case.differentiable, case.options, case.seed)


def _within(actual: Array, expected: Array, tol: Tolerance) -> bool:
    """Whether ``actual`` is close to ``expected`` (compare's rule, without recording drift)."""
    a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - e)
        close = (a == e) | (np.isnan(a) & np.isnan(e)) | (
            np.isfinite(diff) & (diff <= tol.atol + tol.rtol * np.abs(e)))
    return bool(np.all(close))


def _assert_matches_differences(spec: OpSpec, actual: Array, fd: Array,
                                sizes: tuple[Array, ...],
                                terms: Callable[[], tuple[Array, ...] | None],
                                fd_2h: Callable[[], Array], *, what: str, context: str,
                                case: Case, inputs: dict[str, Array] | None = None) -> None:
    """``actual`` (torch's J v or H v) against the central difference ``fd``: within
    ``_fd_tolerance`` of the evaluated ``sizes`` joined with torch's own row; where that fails,
    again with the sum |terms| at x +- h v in place of the sizes (``terms()``, for a record that
    declares them) and Richardson's estimate of the difference's truncation error
    (``fd_2h()``, the difference at step 2h; suite/tolerances.py, FD_TRUNCATION_SAFETY)."""
    __tracebackhide__ = True
    tol = tols.join(_fd_tolerance(sizes, fd), _torch_side(spec))
    if _within(actual, fd, tol):
        return
    better = terms()
    if better is not None:
        tol = tols.join(_fd_tolerance((*better, *sizes[len(better):]), fd), _torch_side(spec))
    slack = tols.FD_TRUNCATION_SAFETY * np.abs(fd_2h() - fd) / 3
    compare.assert_close(actual, fd, tol=tol, what=what, context=context, inputs=inputs,
                         case=case, slack=slack,
                         slack_reason=f"{tols.FD_TRUNCATION_SAFETY:g} x the difference's "
                                      f"truncation error (Richardson)")


def check_double_backward(spec: OpSpec, case: Case, device: str = "cpu") -> None:
    """torch's grad of <v, grad <g, f>> (double backward) against finite differences of the
    reference VJP along v: both are the Hessian-vector product of <g, f> ("VJP of VJP")."""
    __tracebackhide__ = True
    dtype = torch.float64
    tensors = gc.to_tensors(case, dtype, device)
    out = spec.torch_fn(**tensors, **case.options)
    g = gc.cotangent(case, tuple(out.shape))
    diff = [tensors[n] for n in case.differentiable]
    first = torch.autograd.grad(out, diff, torch.tensor(g, dtype=dtype, device=device),
                                create_graph=True, allow_unused=True)
    v = {n: _direction(case, n, 3) for n in case.differentiable}
    inner = sum((torch.sum(d * torch.tensor(v[n], dtype=dtype, device=device))
                 for n, d in zip(case.differentiable, first, strict=True)
                 if d is not None and d.requires_grad), torch.zeros((), dtype=dtype))
    assert isinstance(inner, torch.Tensor)
    second: Sequence[torch.Tensor | None] = (
        torch.autograd.grad(inner, diff, allow_unused=True) if inner.requires_grad
        else [None] * len(diff))  # every first derivative is piecewise constant: H v = 0
    h = tols.FD_STEP
    shifted = {t: _ref_vjp(spec, g, case, **{n: case.arrays[n] + t * v[n]
                                              for n in case.differentiable})
               for t in (h, -h)}
    plus, minus = shifted[h], shifted[-h]

    def fd_2h(name: str) -> Array:
        far = {t: _ref_vjp(spec, g, case, **{n: case.arrays[n] + t * v[n]
                                              for n in case.differentiable})[name]
               for t in (2 * h, -2 * h)}
        return (far[2 * h] - far[-2 * h]) / (4 * h)

    def terms(name: str) -> tuple[Array, ...] | None:
        """The VJP's sum |terms| at x +- h v for ``name``, where the record declares them."""
        if spec.terms is None:
            return None
        found = tuple(spec.terms.vjp(spec, g, _replaced(case, {
            n: case.arrays[n] + t * v[n] for n in case.differentiable})).get(name)
            for t in (h, -h))
        return None if found[0] is None or found[1] is None else \
            tuple(np.asarray(f) for f in found)

    for name, s in zip(case.differentiable, second, strict=True):
        actual = compare.to_numpy(s) if s is not None and not _is_zero(s) \
            else np.zeros(case.arrays[name].shape)
        fd = (plus[name] - minus[name]) / (2 * h)
        _assert_matches_differences(
            spec, actual, fd, (plus[name], minus[name], g),
            functools.partial(terms, name), functools.partial(fd_2h, name),
            what=f"{spec.name}: VJP of VJP (double backward, H v) w.r.t. {name} against "
                 f"central differences of the reference VJP (step {h:g})",
            context=_context(case, dtype, device), inputs=dict(case.arrays), case=case)


def _is_zero(t: torch.Tensor | None) -> bool:
    """None (unused) or torch's ZeroTensor (a known-zero derivative, which has no storage)."""
    return t is None or bool(t._is_zerotensor())


def _autograd_grads(f: Callable[..., torch.Tensor], primals: Sequence[torch.Tensor],
                    g: Array) -> list[Array]:
    leaves = [p.detach().requires_grad_(True) for p in primals]
    out = f(*leaves)
    grads = torch.autograd.grad(out, leaves, torch.tensor(g, dtype=out.dtype, device=out.device),
                                allow_unused=True)
    return [np.zeros(tuple(p.shape)) if d is None else compare.to_numpy(d)
                 for p, d in zip(primals, grads, strict=True)]


# torch's own words for an autograd.Function that torch.func cannot transform (a
# torch.library custom op's generated Function, torch 2.13.0): the check skips with them.
NOT_TRANSFORMABLE = "it must override the setup_context staticmethod"


def check_func_vjp(spec: OpSpec, case: Case, dtype: torch.dtype, device: str) -> None:
    """torch.func.vjp's gradients equal autograd's within the GRADIENT tolerance."""
    __tracebackhide__ = True
    case = case.rounded_to(dtype)
    tensors = gc.to_tensors(case, dtype, device)
    f = _as_function(spec, case, tensors)
    primals = [tensors[n].detach() for n in case.differentiable]
    g = _cotangent(case, f, primals, dtype)
    by_autograd = _autograd_grads(f, primals, g)
    try:
        vjp_fn = torch.func.vjp(f, *primals)[1]
    except RuntimeError as error:
        if NOT_TRANSFORMABLE not in str(error):
            raise
        pytest.skip(f"torch {torch.__version__}: torch.func cannot transform this op: "
                    f"{_first_line(error)}")
    by_func = vjp_fn(torch.tensor(g, dtype=dtype, device=device))
    tol = spec.tolerance(tols.Kind.GRADIENT, dtype)
    for name, a, e in zip(case.differentiable, by_func, by_autograd, strict=True):
        compare.assert_close(compare.to_numpy(a), e, tol=tol,
                             what=f"{spec.name}: torch.func.vjp w.r.t. {name} against autograd",
                             context=_context(case, dtype, device), case=case)


def _cotangent(case: Case, f: Callable[..., torch.Tensor], primals: Sequence[torch.Tensor],
               dtype: torch.dtype) -> Array:
    """gradcheck's cotangent for this case, rounded to ``dtype`` (torch receives that value)."""
    with torch.no_grad():
        shape = tuple(f(*primals).shape)
    return round_to(gc.cotangent(case, shape), dtype)


def compiled(spec: OpSpec, dtype: torch.dtype, device: str = "cpu",
             backend: str = "inductor") -> Callable[..., torch.Tensor]:
    """``torch.compile(spec.torch_fn, dynamic=True)``, once per record, dtype, device and
    backend (``suite.compiled.compiled_op``)."""
    from suite import compiled as compiled_checks

    return compiled_checks.compiled_op(spec, dtype, device, backend)


def check_compiled(spec: OpSpec, case: Case, dtype: torch.dtype, device: str,
                   backend: str = "inductor") -> None:
    """torch.compile's forward and gradients against the reference: the battery's forward and
    gradient checks under ``backend`` (``suite.compiled``). A compile error raises
    ``CompileError`` (never a pass, never a numerical mismatch)."""
    __tracebackhide__ = True
    from suite import compiled as compiled_checks

    compiled_checks.check_forward(spec, case, dtype, device, backend)
    compiled_checks.check_gradient(spec, case, dtype, device, backend)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else repr(error)


def missing_derivative(error: RuntimeError) -> str | None:
    """The op named by torch's "derivative for <op> is not implemented" (its own words for an op
    without an autograd formula; ``aten::`` dropped), or None for any other error."""
    match = re.match(r"derivative for (?:aten::)?([\w.]+) is not implemented", str(error).strip())
    return match.group(1) if match else None


def _unsupported(error: RuntimeError, dtype: torch.dtype) -> bool:
    """torch's 'kernel not implemented for this dtype' errors (e.g. "... not implemented for
    'Half'")."""
    name = {torch.float16: "Half", torch.bfloat16: "BFloat16"}.get(dtype, "")
    return bool(name) and f"not implemented for '{name}'" in str(error)


@contextlib.contextmanager
def skip_if_unsupported(dtype: torch.dtype, device: str) -> Iterator[None]:
    """Skip, with torch's own message, where torch has no kernel for ``dtype`` (half
    precision); any other error propagates."""
    try:
        yield
    except RuntimeError as error:
        if not _unsupported(error, dtype):
            raise
        pytest.skip(f"torch {torch.__version__} on {device}: {_first_line(error)}")


def assume_representable(spec: OpSpec, case: Case, dtype: torch.dtype) -> None:
    """Reject (Hypothesis ``assume``) a case whose exact result exceeds ``dtype``'s range (a
    sum-reduced loss over thousands of scale-5 terms passes float16's 65504): it has no
    representable answer, so it is not a test of torch."""
    exact = spec.reference(case.rounded_to(dtype))
    assume(not np.any(np.abs(exact[np.isfinite(exact)]) > torch.finfo(dtype).max))


def check_low_precision(spec: OpSpec, case: Case, dtype: torch.dtype, device: str) -> None:
    """Forward and VJP in a half-precision dtype against the float64 reference on the same
    rounded inputs; a kernel torch lacks in ``dtype`` skips with torch's message."""
    __tracebackhide__ = True
    assume_representable(spec, case, dtype)
    # A recorded torch defect (OpSpec.known_defects): a strict expected failure shows it.
    assume(spec.known_defect(case.rounded_to(dtype), dtype) is None)
    with skip_if_unsupported(dtype, device):
        gc.check_forward(spec, case, dtype, device)
        gc.check_gradient(spec, case, dtype, device)
