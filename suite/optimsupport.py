"""What an optimizer class can run here: its implementations, complex parameters, ``lr`` as a
tensor. One probe, used by the step check, the benchmarks and the battery.

torch.optim offers one algorithm through several implementations selected by constructor flags
(for-loop, foreach, fused; the differentiable and capturable variants). Whether a flag exists
is read from the constructor's signature. Whether torch then runs it is asked of torch itself:
a tiny step is attempted, and only a refusal in torch's own words ("must be on supported
devices", "not supported", ...) makes the variant unavailable, with torch's message as the
reason. Any other exception is a crash, and propagates: a bug fails, it never skips. (One
exception: a tensor ``lr`` where the class's own docstring documents ``lr`` as a float alone,
outside torch's contract, is that limitation in the documentation's words, and those runs give
torch the float; see ``tensor_lr_refusal``.)

Probes are cached per optimizer class (not per record name: ``gradsuite.like("sgd",
torch_cls=MySGD)`` shares its name with torch's SGD).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import torch

from suite import versions
from suite.devices import dtype_name
from suite.specs import OptimizerSpec

# torch.optim's implementations of one algorithm, and the constructor flags that select them.
IMPLEMENTATIONS: dict[str, dict[str, bool]] = {
    "for-loop": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
}
# Further variants of the same algorithm that torch offers through flags: the differentiable
# path (the step is recorded by autograd) and the capturable path (CUDA-graph safe, state on
# the device; torch accepts it on some devices only).
VARIANTS: dict[str, dict[str, bool]] = {
    **IMPLEMENTATIONS,
    "differentiable": {"foreach": False, "differentiable": True},
    "capturable": {"capturable": True},
}
# torch's own words when it declines a configuration (torch 2.13.0: capturable off CUDA,
# fused with complex parameters, lr as a tensor with foreach; torch 2.2.2 words capturable off
# CUDA "If capturable=True, params and state_steps must be CUDA or XLA tensors.").
REFUSALS = ("must be on supported devices", "not supported", "requires all the params to be "
            "floating point", "not implemented", "must be CUDA or XLA tensors")

_CACHE: dict[tuple[Any, ...], str | None] = {}


def flags_for(spec: OptimizerSpec, implementation: str) -> dict[str, bool]:
    """The constructor flags selecting ``implementation`` of ``spec``.

    An optimizer whose constructor takes no ``foreach`` (SparseAdam, a user's class) has only
    the for-loop, selected by passing no flag at all.
    """
    flags = VARIANTS[implementation]
    if implementation == "for-loop" and "foreach" not in _parameters(spec):
        return {}
    return flags


def _parameters(spec: OptimizerSpec) -> set[str]:
    try:
        return set(inspect.signature(spec.torch_cls).parameters)
    except (TypeError, ValueError):
        return set()


def _refused(error: Exception) -> str | None:
    """torch's message when ``error`` is a refusal in its own words, else None."""
    text = str(error).strip()
    if any(phrase in text for phrase in REFUSALS):
        return text.splitlines()[0]
    return None


def _probe(key: tuple[Any, ...], attempt: Callable[[], None],
           outside_contract: str | None = None) -> str | None:
    """Run ``attempt`` once per key: None when it works, torch's refusal when it is one.

    ``outside_contract``: torch's documentation does not offer what ``attempt`` tries, so any
    exception it raises is that limitation (this string), not a crash."""
    if key not in _CACHE:
        try:
            attempt()
            _CACHE[key] = None
        # torch states some refusals with a bare assert (capturable off CUDA, torch 2.13.0)
        except (RuntimeError, ValueError, TypeError, NotImplementedError,
                AssertionError) as error:
            reason = _refused(error) or outside_contract
            if reason is None:
                raise
            _CACHE[key] = reason
    return _CACHE[key]


def _probe_param(spec: OptimizerSpec, **kwargs: Any) -> torch.Tensor:
    """A zero parameter for a probe step, of the fewest dimensions the record draws (a vector,
    or a 2 x 2 matrix for Muon, which takes matrices only: ``OptimizerSpec.param_dims``)."""
    return torch.zeros((2,) * max(1, spec.param_dims[0]), **kwargs)


def _step(spec: OptimizerSpec, param: torch.Tensor, flags: dict[str, bool],
          **hyper: Any) -> None:
    opt = spec.torch_cls([param], **{**dict(spec.bench_hyper), **hyper}, **flags)
    param.grad = torch.ones_like(param).to_sparse() if spec.sparse_grad else \
        torch.ones_like(param)
    opt.step()


def unavailable(spec: OptimizerSpec, implementation: str, dtype: torch.dtype,
                device: str, *, sparse_grads: bool = False) -> str | None:
    """Why ``implementation`` of ``spec`` cannot run here, or None when it can.

    ``sparse_grads`` says whether the caller can give sparse gradients; a record that needs them
    (SparseAdam) is unavailable to callers with dense ones (the benchmarks).
    """
    if spec.sparse_grad and not sparse_grads:
        return f"{spec.name} needs sparse gradients; this check gives dense ones"
    if implementation not in VARIANTS:
        raise KeyError(f"unknown implementation {implementation!r}; known: {list(VARIANTS)}")
    if implementation in IMPLEMENTATIONS and implementation not in spec.implementations:
        return f"{_class_name(spec)} has no {implementation} implementation"
    flags = flags_for(spec, implementation)
    missing = sorted(set(flags) - _parameters(spec))
    if missing:
        return f"{_class_name(spec)}'s constructor takes no {missing[0]!r} argument"

    def attempt() -> None:
        leaf = _probe_param(spec, dtype=dtype, device=device, requires_grad=True)
        # The differentiable path updates a non-leaf parameter (as autograd needs it to).
        _step(spec, leaf.clone() if flags.get("differentiable") else leaf, flags)

    reason = _probe((spec.torch_cls, implementation, dtype, device, "run"), attempt)
    return None if reason is None else (
        f"torch {torch.__version__} declines the {implementation} {spec.name} on {device} in "
        f"{dtype_name(dtype)}: {reason}")


def complex_refusal(spec: OptimizerSpec, implementation: str, dtype: torch.dtype) -> str | None:
    """torch's reason for refusing complex parameters in ``implementation``, or None.

    (torch 2.13: fused implementations take real floating-point parameters only.)
    """
    if not spec.complex_params:
        return f"{spec.name} takes real parameters only"
    flags = flags_for(spec, implementation)

    def attempt() -> None:
        complex_dtype = torch.complex64 if dtype == torch.float32 else torch.complex128
        leaf = torch.zeros(2, dtype=dtype).view(complex_dtype).requires_grad_(True)
        _step(spec, leaf.clone() if flags.get("differentiable") else leaf, flags)

    return _probe((spec.torch_cls, implementation, dtype, "complex"), attempt)


def tensor_lr_refusal(spec: OptimizerSpec, implementation: str) -> str | None:
    """torch's reason for refusing ``lr`` as a tensor in ``implementation``, or None.

    (torch 2.13: "lr as a Tensor is not supported for capturable=False and foreach=True" for
    Adam and AdamW; a documented limitation, so such runs give torch the float. torch 2.2.2
    documents ``lr (float, optional)`` for all but Adam and AdamW, and foreach Adamax and NAdam
    then fail inside ``_foreach_addcdiv_``: outside the documented contract, so a refusal too,
    in the documentation's words. Where the documentation offers a tensor, a crash fails.)
    """
    flags = flags_for(spec, implementation)

    def attempt() -> None:
        leaf = _probe_param(spec, requires_grad=True)
        _step(spec, leaf.clone() if flags.get("differentiable") else leaf, flags,
              lr=torch.tensor(1e-3))

    return _probe((spec.torch_cls, implementation, "tensor lr"), attempt,
                  outside_contract=_lr_documented_as_float(spec))


def _lr_documented_as_float(spec: OptimizerSpec) -> str | None:
    """The class docstring's ``lr (...)`` line when it names no Tensor type, or None (a tensor
    is documented, or the class documents no ``lr`` line: a class of your own)."""
    found = re.search(r"^\s*lr \(([^)]*)\)", getattr(spec.torch_cls, "__doc__", None) or "",
                      re.MULTILINE)
    if found is None or "Tensor" in found.group(1):
        return None
    return (f"torch {torch.__version__} documents {_class_name(spec)}'s lr as "
            f"({found.group(1)}): a tensor lr is outside its contract")


def implementation_defect(spec: OptimizerSpec, implementation: str) -> str | None:
    """A recorded defect of the installed torch that every run of ``implementation`` of a
    torch optimizer meets (suite/versions.py; KNOWN_DIFFERENCES.md), or None."""
    if versions.ASGD_FOREACH_ETA_POWER_MISPLACED and implementation == "foreach" and \
            spec.torch_cls is torch.optim.ASGD:
        return (f"torch {torch.__version__}: foreach ASGD updates eta = lr / (1 + lambd lr "
                f"t^alpha), not lr / (1 + lambd lr t)^alpha (KNOWN_DIFFERENCES.md; "
                f"tests/test_optimizers.py::test_foreach_asgd_eta_follows_the_documented_schedule)")
    return None


def complex_defect(spec: OptimizerSpec, implementation: str) -> str | None:
    """A recorded defect of the installed torch that complex parameters meet in
    ``implementation`` (suite/versions.py; KNOWN_DIFFERENCES.md), or None: the lockstep checks
    then draw real parameters only."""
    if versions.FOREACH_MAXIMIZE_COMPLEX_RAISES and implementation == "foreach" and \
            getattr(spec.torch_cls, "__module__", "").startswith("torch.optim") and \
            getattr(spec.torch_cls, "__name__", "") in versions.FOREACH_MAXIMIZE_COMPLEX_CLASSES:
        return (f"torch {torch.__version__}: foreach {_class_name(spec)} with maximize=True "
                f"and a complex parameter raises TypeError (KNOWN_DIFFERENCES.md; "
                f"tests/test_optimizers.py::"
                f"test_foreach_maximize_with_a_complex_parameter_steps)")
    return None


def _class_name(spec: OptimizerSpec) -> str:
    return str(getattr(spec.torch_cls, "__name__", spec.name))
