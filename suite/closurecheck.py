"""The closure-driven optimizer check (LBFGS): torch and the reference on the same objective.

An :class:`Objective` is written once as functions of an array module ``xp`` (``numpy`` or
``torch``), so the reference's closure and torch's closure evaluate the same expression. torch's
closure sets each parameter's ``.grad`` from the objective's gradient formula rather than
calling ``backward``: the check is of the optimizer, and the same formula on both sides keeps
the two evaluations equal up to summation order.

Before every ``step(closure)`` the reference starts from torch's current flat parameters and
state (as in :mod:`suite.optimcheck`), so each comparison measures one step's error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from suite import compare
from suite import tolerances as tols
from suite.specs import Array, ClosureOptimizerSpec

# The L-BFGS tolerance: the float64 TRAINING row plus the reference's own measured sensitivity
# (suite/tolerances.py, LBFGS_PERTURB_ULPS and LBFGS_SENSITIVITY, derives both).
TOL = tols.resolve(torch.float64, tols.Kind.TRAINING)
PERTURB = tols.LBFGS_PERTURB_ULPS * float(torch.finfo(torch.float64).eps)


@dataclass(frozen=True)
class Objective:
    """f(x) and grad f(x) of a flat vector, as functions ``(x, data, xp)``."""

    name: str
    value: Callable[[Any, Mapping[str, Any], Any], Any]
    grad: Callable[[Any, Mapping[str, Any], Any], Any]
    data: Mapping[str, Array]
    fixed_steps_converge: bool = True
    """False where L-BFGS's fixed steps (no line search) can diverge: such a run only measures
    how chaos amplifies rounding, so checks give it a line search."""

    def numpy(self, x: Array) -> tuple[float, Array]:
        """(f(x), grad f(x)) in float64 NumPy: the reference's closure."""
        return float(self.value(x, self.data, np)), np.asarray(self.grad(x, self.data, np))

    def torch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f(x), grad f(x)) as tensors of x's dtype and device."""
        data = {k: torch.asarray(v, dtype=x.dtype, device=x.device) for k, v in self.data.items()}
        return self.value(x, data, torch), self.grad(x, data, torch)

    def __repr__(self) -> str:
        shapes = {k: v.shape for k, v in self.data.items()}
        return f"Objective({self.name!r}, {shapes})"


def _quadratic_value(x: Any, d: Mapping[str, Any], xp: Any) -> Any:
    return 0.5 * (x @ (d["A"] @ x)) - d["b"] @ x


def _quadratic_grad(x: Any, d: Mapping[str, Any], xp: Any) -> Any:
    return d["A"] @ x - d["b"]


def _logistic_value(x: Any, d: Mapping[str, Any], xp: Any) -> Any:
    z = d["X"] @ x
    # log(1 + e^z) - y z, with log(1 + e^z) = logaddexp(0, z) (no overflow for large z).
    return xp.mean(xp.logaddexp(0 * z, z) - d["y"] * z) + 0.5 * d["lam"] * (x @ x)


def _logistic_grad(x: Any, d: Mapping[str, Any], xp: Any) -> Any:
    z = d["X"] @ x
    # sigmoid(z) = (1 + tanh(z / 2)) / 2: no overflow of e^-z for large negative z.
    return d["X"].T @ (0.5 * (1 + xp.tanh(z / 2)) - d["y"]) / z.shape[0] + d["lam"] * x


def _rosenbrock_value(x: Any, d: Mapping[str, Any], xp: Any) -> Any:
    r = x[1:] - x[:-1] ** 2
    return d["scale"] * xp.sum(100 * r**2 + (1 - x[:-1]) ** 2)


def _rosenbrock_grad(x: Any, d: Mapping[str, Any], xp: Any) -> Any:
    r = x[1:] - x[:-1] ** 2
    zero = 0 * x[:1]
    head = -400 * x[:-1] * r - 2 * (1 - x[:-1])
    return d["scale"] * (xp.concatenate([head, zero]) + xp.concatenate([zero, 200 * r]))


def _wave_value(x: Any, d: Mapping[str, Any], xp: Any) -> Any:
    return xp.sum(xp.sin(d["k"] * x)) + 0.5 * d["lam"] * (x @ x)


def _wave_grad(x: Any, d: Mapping[str, Any], xp: Any) -> Any:
    return d["k"] * xp.cos(d["k"] * x) + d["lam"] * x


OBJECTIVES = ("quadratic", "logistic", "rosenbrock", "wave")


def make_objective(kind: str, n: int, seed: int) -> Objective:
    """A random objective of ``n`` variables, one of :data:`OBJECTIVES`.

    quadratic: 0.5 x^T A x - b^T x with A = M M^T / n + I (eigenvalues in [1, ~5]);
    logistic: mean log(1 + e^{X x}) - y X x + 0.1 |x|^2 / 2 over 12 samples (labels 0 / 1);
    rosenbrock: 0.01 sum 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2 (non-convex, a curved valley:
    it drives the line search through extrapolation and zoom);
    wave: sum sin(k_i x_i) + 0.1 |x|^2 / 2 with k_i in [1, 4] (many local minima along a line:
    cubic models miss, which drives the zoom's boundary safeguard).
    """
    rng = np.random.default_rng(seed)
    if kind == "quadratic":
        m = rng.standard_normal((n, n))
        return Objective(kind, _quadratic_value, _quadratic_grad,
                         {"A": m @ m.T / n + np.eye(n), "b": rng.standard_normal(n)})
    if kind == "logistic":
        return Objective(kind, _logistic_value, _logistic_grad,
                         {"X": rng.standard_normal((12, n)),
                          "y": rng.integers(0, 2, 12).astype(np.float64),
                          "lam": np.asarray(0.1)})
    if kind == "rosenbrock":
        # Fixed steps of lr ~ 1 along quasi-Newton directions leave the valley and diverge
        # (parameters reached 1e46 within 3 steps in a probe).
        return Objective(kind, _rosenbrock_value, _rosenbrock_grad, {"scale": np.asarray(0.01)},
                         fixed_steps_converge=False)
    if kind == "wave":
        return Objective(kind, _wave_value, _wave_grad,
                         {"k": rng.uniform(1.0, 4.0, n), "lam": np.asarray(0.1)})
    raise KeyError(f"unknown objective {kind!r}; known: {', '.join(OBJECTIVES)}")


def _perturbed(closure: Callable[[Array], tuple[float, Array]],
               seed: int) -> Callable[[Array], tuple[float, Array]]:
    """``closure`` evaluated at x (1 + PERTURB u), its value and gradient multiplied by
    1 + PERTURB u', u and u' uniform in [-1, 1] (the rounding of the parameters, and of the
    objective's evaluation)."""
    rng = np.random.default_rng(seed)

    def noisy(x: Array) -> tuple[float, Array]:
        f, g = closure(x * (1 + PERTURB * rng.uniform(-1, 1, x.shape)))
        return (f * (1 + PERTURB * rng.uniform(-1, 1)),
                g * (1 + PERTURB * rng.uniform(-1, 1, g.shape)))

    return noisy


def _perturbed_state(state: Any, seed: int) -> Any:
    """``state`` with every float and array entry multiplied by 1 + PERTURB u, u in [-1, 1]:
    the two-loop recursion mixes curvature pairs whose 1 / y^T s spans many orders of
    magnitude, and a backward-stable reading of its rounding is such a perturbation of its
    inputs."""
    if state is None:
        return None
    rng = np.random.default_rng(seed)

    def shake(v: Any) -> Any:
        if isinstance(v, tuple):
            return tuple(shake(e) for e in v)
        if isinstance(v, np.ndarray):
            return v * (1 + PERTURB * rng.uniform(-1, 1, v.shape))
        if isinstance(v, float):
            return v * (1 + PERTURB * rng.uniform(-1, 1))
        return v  # the counts, and None

    return type(state)(*(shake(v) for v in state))


def _entries(x: Array, loss: float, state: Any) -> dict[str, Any]:
    """What is compared after a step: parameters, returned loss and state entries, by name."""
    out: dict[str, Any] = {"parameters (flat)": x, "returned loss": loss}
    for key in state._fields:
        v = getattr(state, key)
        if isinstance(v, tuple):
            v = np.stack([np.asarray(e, dtype=np.float64) for e in v]) if v else None
        out[f"state[{key!r}]"] = v
    return out


def _flat(params: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


def _state_as_reference(state: Mapping[str, Any], spec: ClosureOptimizerSpec) -> Any:
    """torch's LBFGS state as the reference NamedTuple (tensors and lists of them as float64)."""
    if not state:
        return None

    def conv(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return compare.to_numpy(v.detach()) if v.dim() else float(v)
        if isinstance(v, list):
            return tuple(conv(e) for e in v)
        return v

    return spec.state_type(**{k: conv(state.get(k)) for k in spec.state_type._fields})  # type: ignore[attr-defined]


def check_closure_run(spec: ClosureOptimizerSpec, objective: Objective, x0: Array,
                      shapes: list[tuple[int, ...]], hyper: Mapping[str, Any], steps: int,
                      device: str) -> None:
    """``steps`` calls of ``step(closure)`` on torch and the reference, compared after each.

    ``x0`` is split into parameters of ``shapes`` (torch flattens them in order); float64.
    """
    __tracebackhide__ = True
    sizes = [int(np.prod(s)) for s in shapes]
    params, offset = [], 0
    for shape, size in zip(shapes, sizes, strict=True):
        params.append(torch.tensor(x0[offset:offset + size].reshape(shape), dtype=torch.float64,
                                   device=device, requires_grad=True))
        offset += size
    opt = spec.torch_cls(params, **hyper)

    def closure() -> torch.Tensor:
        value, grad = objective.torch(_flat(params))
        for p, g in zip(params, torch.split(grad, sizes), strict=True):
            p.grad = g.reshape(p.shape).clone()
        return value.detach()

    context = f"float64, device={device}"
    case = (f"  hyper-parameters: {dict(hyper)}\n  objective: {objective!r}, parameter shapes "
            f"{shapes}; {steps} steps")
    for step in range(1, steps + 1):
        before = compare.to_numpy(_flat(params))
        state = _state_as_reference(opt.state[params[0]], spec)
        ref_x, ref_loss, ref_state = spec.ref_step(before, objective.numpy, state, **hyper,
                                                   **spec.ref_options)
        p_x, p_loss, p_state = spec.ref_step(before, _perturbed(objective.numpy, step),
                                             _perturbed_state(state, step), **hyper,
                                             **spec.ref_options)
        loss = float(opt.step(closure))  # type: ignore[arg-type]
        where = f"{spec.name} after step {step}"
        if (p_state.n_iter, p_state.func_evals) != (ref_state.n_iter, ref_state.func_evals):
            # Rounding-sized noise changes the reference's own path (a Wolfe condition or
            # stopping test is decided within rounding): torch may take either path, so this
            # step's values say nothing. The next step starts again from torch's state.
            continue
        torch_state = _state_as_reference(opt.state[params[0]], spec)
        # The counts first: unequal counts mean the two took different branches (a stopping
        # test or a Wolfe condition decided differently), which explains any later mismatch.
        for key in ("n_iter", "func_evals"):
            a, e = getattr(torch_state, key), getattr(ref_state, key)
            if a != e:
                raise AssertionError(f"{where}: state[{key!r}] is {a} in torch, {e} in the "
                                     f"reference (a different path)  [{context}]\nCase:\n{case}")
        expected = _entries(ref_x, ref_loss, ref_state)
        shifted = _entries(p_x, p_loss, p_state)
        for name, actual in _entries(compare.to_numpy(_flat(params)), loss,
                                     torch_state).items():
            e, p = expected[name], shifted[name]
            spread = 0.0 if e is None or p is None or np.shape(e) != np.shape(p) else \
                float(np.max(np.abs(np.asarray(p, dtype=np.float64) - e), initial=0.0))
            tol = tols.Tolerance(TOL.rtol, TOL.atol + tols.LBFGS_SENSITIVITY * spread)
            # Histories arrive stacked (entries x n): unequal lengths show as a shape mismatch.
            compare.assert_state_close(actual, e, tol=tol, what=f"{where}: {name}",
                                       context=context, case=case)


def check_steps(spec: ClosureOptimizerSpec, *, objective: str, n: int, seed: int,
                shapes: list[tuple[int, ...]], hyper: Mapping[str, Any], steps: int,
                device: str) -> None:
    """:func:`check_closure_run` on the objective and starting point a drawn scenario names
    (what a standalone reproducer stores: a few numbers, not arrays)."""
    __tracebackhide__ = True
    problem = make_objective(objective, n, seed)
    x0 = np.random.default_rng(seed + 1).uniform(-1.5, 1.5, n)
    check_closure_run(spec, problem, x0, [tuple(s) for s in shapes], hyper, steps, device)
