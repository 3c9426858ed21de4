r"""M = sum |terms|: the conditioning of the sums inside a record, for half-precision checks.

A sum of signed terms s = sum_k t_k computed with a few roundings is accurate to a few eps of
M = sum_k |t_k|, not of |s| (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed.,
sec. 4.2). Where the terms cancel, M / |s| is large, and a half-precision result is only
accurate to eps * M: that is the op's conditioning, not a defect of torch. Each record whose
outputs or gradients are such sums names here how to compute M on the case's own values
(``OpSpec.terms``); the half-precision checks allow ``suite.tolerances.SUMMATION[dtype] * M``
on top of the row. Everything here is NumPy float64, evaluated on the rounded case torch saw.

* :data:`MULTILINEAR`: for an op that is linear in each array argument separately (a matmul,
  a convolution, a bilinear form, a weighted mean of picked log-probabilities), every term is a
  product of one entry from each argument, so evaluating the reference forward (and VJP, with
  cotangent ``|g|``) on the absolute values of every array gives M exactly.
* :data:`PRELU`: the weight's gradient sums g * x over the negative inputs of a channel.
* :data:`GLU`: the gradient w.r.t. the gate b is g a (sigmoid(b) - sigmoid(b)**2), a difference.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from suite.specs import Array, Case, OpSpec


def _absolute(case: Case) -> dict[str, Array]:
    """The case's arrays with every float array replaced by its absolute value (index arrays,
    such as class targets, unchanged)."""
    return {k: np.abs(a) if a.dtype.kind == "f" else a for k, a in case.arrays.items()}


class Multilinear:
    """M for ops linear in each float argument: the reference on absolute values."""

    def forward(self, spec: OpSpec, case: Case) -> Array:
        """sum |terms| of each output element: f(|x|, |W|, |b|, ...)."""
        return np.abs(spec.ref(**_absolute(case), **case.options))

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        """sum |terms| of each gradient element: the VJP of |g| at the absolute values."""
        grads = spec.ref_vjp(np.abs(g), **_absolute(case), **case.options, **spec.ref_options)
        return {k: np.abs(v) for k, v in grads.items()}


class Prelu:
    """prelu(x, a) = max(0, x) + a min(0, x): elementwise, but the weight's gradient is
    d a = sum over a channel of g min(0, x), a sum of signed terms with M = sum |g min(0, x)|;
    the input's gradient g (x > 0 ? 1 : a) is one product (M = its magnitude)."""

    def forward(self, spec: OpSpec, case: Case) -> Array:
        """One product per element: M = |prelu(x, a)|."""
        return np.abs(spec.reference(case))

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        """The weight's M: the VJP of |g| at x' = min(0, x) <= 0 is -sum |g| |min(0, x)|."""
        grads = spec.reference_vjp(g, case)
        negative = {**case.arrays, "input": np.minimum(case.arrays["input"], 0.0)}
        weight = spec.ref_vjp(np.abs(g), **negative, **case.options, **spec.ref_options)
        return {"input": np.abs(grads["input"]), "weight": np.abs(weight["weight"])}


class Glu:
    """glu(x) = a sigmoid(b), with (a, b) the halves of x along ``dim``. Its gradient w.r.t. b,
    g a sigmoid(b) (1 - sigmoid(b)) = g a (s - s**2), is a difference: torch forms 1 - s from
    the rounded s, so M = |g a| (s + s**2) there; the gradient w.r.t. a, g s, is one product."""

    def forward(self, spec: OpSpec, case: Case) -> Array:
        """One product per element: M = |glu(x)|."""
        return np.abs(spec.reference(case))

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        """|g s| for the first half, |g a| (s + s**2) for the gate half."""
        x, dim = case.arrays["input"], case.options.get("dim", -1)
        a, b = np.split(x, 2, axis=dim)
        s = 0.5 * (1.0 + np.tanh(0.5 * b))  # sigmoid(b), without overflow for large |b|
        return {"input": np.concatenate([np.abs(g * s), np.abs(g * a) * (s + s * s)], axis=dim)}


MULTILINEAR = Multilinear()
PRELU = Prelu()
GLU = Glu()
