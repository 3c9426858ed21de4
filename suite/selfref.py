"""Reference-free records: what can be checked without a NumPy reference, and how.

A record with ``ref=None`` still gets every check that compares two computations of torch's
that must agree, by standing torch's own float64 CPU results in for the reference:

* autograd's VJP against central differences of the op's own float64 forward along random
  directions (what ``torch.autograd.gradcheck``'s fast mode does, on generated inputs);
* forward mode (torch.func.jvp) against reverse mode through <u, J v> = <J^T u, v>, and J v
  against central differences of the forward;
* double backward against central differences of the backward;
* views and the module form against the contiguous functional result;
* float32, float16 and bfloat16 against the op's own float64 result.

What this cannot check is whether the values themselves are right: an op that computes the
wrong function consistently passes. Every message of a reference-free check says so.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from suite import compare
from suite.specs import Array, OpSpec

CAVEAT = ("reference-free: against torch's own float64 results, so the values themselves are "
          "not checked")


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Array], dict[str, Any]]:
    # A 0-d array scaled by NumPy comes back a NumPy scalar: an array all the same.
    arrays = {k: np.asarray(v) for k, v in kwargs.items()
              if isinstance(v, np.ndarray | np.generic)}
    return arrays, {k: v for k, v in kwargs.items() if k not in arrays}


def _tensors(arrays: dict[str, Array], grad: set[str]) -> dict[str, torch.Tensor]:
    out = {}
    for name, a in arrays.items():
        if a.dtype.kind == "f":
            out[name] = torch.tensor(a, dtype=torch.float64).requires_grad_(name in grad)
        else:
            out[name] = torch.tensor(a)
    return out


def self_referenced(spec: OpSpec) -> OpSpec:
    """``spec`` with torch's own float64 CPU forward and autograd VJP as its reference.

    The differentiable arrays are those the record's input maker marks differentiable.
    """
    assert spec.ref is None, f"{spec.name} has a reference"
    differentiable = set(spec.inputs.sized(4, seed=0).differentiable)

    def ref(**kwargs: Any) -> Array:
        arrays, options = _split(kwargs)
        with torch.no_grad():
            return compare.to_numpy(spec.torch_fn(**_tensors(arrays, set()), **options))

    def ref_vjp(g: Array, **kwargs: Any) -> dict[str, Array]:
        arrays, options = _split(kwargs)
        tensors = _tensors(arrays, differentiable & set(arrays))
        out = spec.torch_fn(**tensors, **options)
        names = [n for n in arrays if tensors[n].requires_grad]
        grads = torch.autograd.grad(out, [tensors[n] for n in names],
                                    torch.tensor(g, dtype=torch.float64), allow_unused=True)
        return {n: np.zeros(arrays[n].shape) if d is None else compare.to_numpy(d)
                for n, d in zip(names, grads, strict=True)}

    ref.__name__, ref_vjp.__name__ = spec.name, f"{spec.name}_vjp"
    ref_vjp.subject = f"torch's float64 autograd of {spec.name} ({CAVEAT})"  # type: ignore[attr-defined]
    return dataclasses.replace(spec, ref=ref, ref_vjp=ref_vjp)
