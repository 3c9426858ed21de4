r"""M = sum |terms|: the conditioning of the sums inside a record, for half-precision checks.

A sum of signed terms s = sum_k t_k computed with a few roundings is accurate to a few eps of
M = sum_k |t_k|, not of |s| (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed.,
sec. 4.2). Where the terms cancel, M / |s| is large, and a half-precision result is only
accurate to eps * M: that is the op's conditioning, not a defect of torch. Each record whose
outputs or gradients are such sums names here how to compute M on the case's own values
(``OpSpec.terms``); the checks allow ``suite.tolerances.SUMMATION[dtype] * M``
on top of the row. Everything here is NumPy float64, evaluated on the rounded case torch saw.

* :data:`MULTILINEAR`: for an op that is linear in each array argument separately (a matmul,
  a convolution, a bilinear form, a weighted mean of picked log-probabilities), every term is a
  product of one entry from each argument, so evaluating the reference forward (and VJP, with
  cotangent ``|g|``) on the absolute values of every array gives M exactly.
* :data:`LOCAL_RESPONSE_NORM`: the input gradient is a difference of two terms, one a sum.
* :data:`COSINE_SIMILARITY`: a dot product, and a gradient that subtracts cos a / |a|^2.
* :data:`PRELU`: the weight's gradient sums g * x over the negative inputs of a channel.
* :data:`GLU`: the gradient w.r.t. the gate b is g a (sigmoid(b) - sigmoid(b)**2), a difference.
* :data:`LINEAR_CROSS_ENTROPY`: cross entropy of rounded matmul logits; their rounding moves
  the loss and, through the softmax, the gradients that the Linear layer's VJP then sums.
* :data:`LAYER_NORM`, :data:`GROUP_NORM`, :data:`BATCH_NORM`, :data:`INSTANCE_NORM` (and
  :data:`RMS_NORM`, without
  the mean(dxhat) term; torch 2.4 and 2.5 compose it from bfloat16 ops): the centred input gradient
  inv_std (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) is a sum of three signed terms inside
  each Jacobian entry (for two values per group it cancels exactly), so
  M = inv_std (|dxhat| + mean|dxhat| + |xhat| mean|dxhat xhat|); the weight and bias gradients
  are sums of g xhat and of g over the batch. batch_norm in training normalises with its batch
  mean rounded to the input's type (torch saves its statistics in that type), so its xhat
  carries M_xhat = |xhat| + |mean| inv_std in place of |xhat|.

Not a sum |terms|: :class:`RecurrentGates` (``OpSpec.gates``, the hard tier only) bounds what
gate derivatives formed from rounded activations (sigma' = s (1 - s) near saturation) move a
recurrent record's gradients by.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from references import _separable, distance, norms, recurrent
from references import interpolation as interp
from references._broadcast import sum_to_shape
from suite import tolerances as tols
from suite.specs import Array, Case, OpSpec


def _absolute(case: Case) -> dict[str, Array]:
    """The case's arrays with every float array replaced by its absolute value (index arrays,
    such as class targets, unchanged)."""
    return {k: np.abs(a) if a.dtype.kind == "f" else a for k, a in case.arrays.items()}


class Multilinear:
    """M for ops linear in each float argument: the reference on absolute values."""

    def forward(self, spec: OpSpec, case: Case) -> Array:
        """sum |terms| of each output element: f(|x|, |W|, |b|, ...)."""
        assert spec.ref is not None
        return np.abs(spec.ref(**_absolute(case), **case.options))

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        """sum |terms| of each gradient element: the VJP of |g| at the absolute values."""
        assert spec.ref_vjp is not None
        grads = spec.ref_vjp(np.abs(g), **_absolute(case), **case.options, **spec.ref_options)
        return {k: np.abs(v) for k, v in grads.items()}


class Copies(Multilinear):
    """Ops that only move values (padding, shuffles, fold and unfold, flatten and unflatten,
    unpooling): each result is one input element, a constant, or a sum of a few copies (fold's
    overlapping blocks; a reflected, replicated or wrapped element's gradient). A copy is exact
    in every dtype; a sum of k copies is within gamma_(k-1) of the sum of their magnitudes in
    ANY order (Higham, sec. 4.2), in the dtype's own unit (torch's CPU backward kernels add into
    a gradient of the input's type), then rounded once; a constant option is rounded once to
    the dtype. ``suite.hardcheck`` requires exactly that (``exact``), with k the largest number
    of copies one result sums (``length``), no relative row and no absolute floor, so a kernel
    that flushes a subnormal or moves a copy by one ulp fails. M is the sum of the copies'
    magnitudes (``Multilinear``: the reference at absolute values)."""

    exact = True

    @staticmethod
    def _filled(case: Case, fill: float) -> dict[str, Array]:
        return {k: np.full_like(v, fill, dtype=np.float64) if k in case.differentiable else v
                for k, v in case.arrays.items()}

    def constants(self, spec: OpSpec, case: Case) -> Array:
        """f(0): what the forward places that is no input's copy (a constant pad's value)."""
        assert spec.ref is not None
        return np.asarray(spec.ref(**self._filled(case, 0.0), **case.options), dtype=np.float64)

    def counts(self, spec: OpSpec, case: Case, forward: bool) -> Array:
        """k per result element: how many copies it sums. The maps are affine in the values (a
        constant pad adds its value), so the forward's counts are f(1) - f(0) on the case's
        shapes, and the VJP's (linear in g) the VJP of ones (of the first differentiable
        argument: every Copies record has one)."""
        assert spec.ref is not None and spec.ref_vjp is not None
        ones = self._filled(case, 1.0)
        out = np.asarray(spec.ref(**ones, **case.options), dtype=np.float64)
        if forward:
            return np.abs(out - self.constants(spec, case))
        grads = spec.ref_vjp(np.ones_like(out), **ones, **case.options, **spec.ref_options)
        return np.abs(np.asarray(grads[case.differentiable[0]], dtype=np.float64))

    def length(self, spec: OpSpec, case: Case) -> int:
        """k: the most copies one result sums, forward or VJP."""
        most = [np.max(self.counts(spec, case, f), initial=0.0) for f in (True, False)]
        return max(1, *(round(float(m)) for m in most))


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
        assert spec.ref_vjp is not None
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


Axes = tuple[int, ...]


def _standardized(x: Array, axes: Axes, eps: float, centred: bool) -> tuple[Array, Array]:
    """xhat = (x - mean) / sqrt(var + eps) over ``axes`` (biased variance), and inv_std; without
    centring (rms_norm), xhat = x / sqrt(mean(x^2) + eps)."""
    if centred:
        x = x - np.mean(x, axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(np.mean(x**2, axis=axes, keepdims=True) + eps)
    return x * inv_std, inv_std


def _centred_terms(dxhat: Array, xhat: Array, inv_std: Array, axes: Axes,
                   centred: bool) -> Array:
    """M of inv_std (dxhat - mean(dxhat) - xhat mean(dxhat xhat)): each term's magnitude
    (rms_norm's gradient has no mean(dxhat) term)."""
    mean = functools.partial(np.mean, axis=axes, keepdims=True)
    mean_term = mean(np.abs(dxhat)) if centred else 0.0
    return inv_std * (np.abs(dxhat) + mean_term + np.abs(xhat) * mean(np.abs(dxhat * xhat)))


def _parameter_terms(case: Case, g: Array, xhat: Array, axes: Axes) -> dict[str, Array]:
    """M of the weight's and bias's gradients, sums over ``axes`` of g xhat and of g: sum |g xhat|
    and sum |g|, shaped like the case's parameter (for those it has)."""
    terms = {}
    for name, t in (("weight", np.abs(g * xhat)), ("bias", np.abs(g))):
        if name in case.arrays:
            terms[name] = np.reshape(np.sum(t, axis=axes), case.arrays[name].shape)
    return terms


class _Normalization:
    """M for y = xhat w + b with xhat standardized over groups; ``layout(case)`` gives the
    input reshaped so that groups lie along ``axes``, those axes, the shape weight and bias
    broadcast to (in the reshaped layout), and the axes their gradients sum over."""

    def __init__(self, layout: Callable[[Case], tuple[Array, Axes, tuple[int, ...], Axes]],
                 centred: bool = True):
        self.layout = layout
        self.centred = centred

    def _parts(self, case: Case) -> tuple[Array, Array, Array, Array, Array, Axes, Axes]:
        x, axes, param_shape, param_axes = self.layout(case)
        xhat, inv_std = _standardized(x, axes, case.options.get("eps", 1e-5), self.centred)
        w = case.arrays.get("weight")
        b = case.arrays.get("bias")
        w = np.ones(param_shape) if w is None else np.reshape(w, param_shape)
        b = np.zeros(param_shape) if b is None else np.reshape(b, param_shape)
        return x, xhat, inv_std, w, b, axes, param_axes

    def forward(self, spec: OpSpec, case: Case) -> Array:
        """M = |xhat w| + |b|, in the input's shape."""
        _, xhat, _, w, b, _, _ = self._parts(case)
        shape = case.arrays["input"].shape
        return np.reshape(np.abs(xhat * w) + np.abs(b), shape)

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        """The centred input gradient's M; sum |g xhat| and sum |g| for weight and bias."""
        x, xhat, inv_std, w, _, axes, param_axes = self._parts(case)
        g = np.reshape(g, x.shape)
        return {"input": np.reshape(_centred_terms(g * w, xhat, inv_std, axes, self.centred),
                                    case.arrays["input"].shape),
                **_parameter_terms(case, g, xhat, param_axes)}

    # The hard tier (suite/hardcheck.py): the centring x - mean cancels terms of size |x| and
    # |mean| (offsets >> spread), which torch forms in its accumulation type, so xhat carries
    # M_xhat = (|x| + mean(|x|)) inv_std (|x| inv_std without centring; mean(|x|) >= |mean|
    # bounds the rounding of the mean's own sum). In a constant group the
    # terms cancel exactly: a correct mean of equal values is that value (torch's Welford
    # moments give it; KNOWN_DIFFERENCES.md for batch_norm), so M_xhat = 0 there and the
    # forward must be exactly the bias.

    def _xhat_terms(self, case: Case, exact_constants: bool = True
                    ) -> tuple[Array, Array, Array, Array, Array, Axes, Axes]:
        x, _, inv_std, w, b, axes, param_axes = self._parts(case)
        if self.centred:
            # The mean is a sum of n terms divided by n: within n u mean(|x|) of the exact
            # one for any summation order (Higham eq. (4.4)), and mean(|x|) >> |mean| where
            # extremes of both signs cancel (+-1.7e153 around values ~1 in float64).
            mean_abs = np.mean(np.abs(x), axis=axes, keepdims=True)
            terms = (np.abs(x) + mean_abs) * inv_std
            if exact_constants:
                constant = np.max(x, axis=axes, keepdims=True) == np.min(x, axis=axes,
                                                                         keepdims=True)
                terms = np.where(constant, 0.0, terms)
        else:
            terms = np.abs(x) * inv_std
        return x, terms, inv_std, w, b, axes, param_axes

    def forward_accumulated(self, spec: OpSpec, case: Case) -> Array:
        """|w| M_xhat + |b|, in the input's shape."""
        _, terms, _, w, b, _, _ = self._xhat_terms(case)
        return np.reshape(np.abs(w) * terms + np.abs(b), case.arrays["input"].shape)

    def vjp_accumulated(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        """The centred input gradient's terms with M_xhat in place of |xhat|; sum |g| M_xhat
        and sum |g| for weight and bias. Constant groups keep their M_xhat here: torch's
        group_norm backward forms the centring again as c2 x + c3 (its rstd^3 (db mean - ds)
        x), which cancels terms of size |x| even where the forward's xhat is exactly 0."""
        x, terms, inv_std, w, _, axes, param_axes = self._xhat_terms(case, exact_constants=False)
        g = np.reshape(g, x.shape)
        return {"input": np.reshape(_centred_terms(g * w, terms, inv_std, axes, self.centred),
                                    case.arrays["input"].shape),
                **_parameter_terms(case, g, terms, param_axes)}


def _layer_norm_layout(case: Case) -> tuple[Array, Axes, tuple[int, ...], Axes]:
    x = case.arrays["input"]
    k = len(case.options["normalized_shape"])
    return (x, tuple(range(x.ndim - k, x.ndim)), x.shape[x.ndim - k:],
            tuple(range(x.ndim - k)))


def _group_norm_layout(case: Case) -> tuple[Array, Axes, tuple[int, ...], Axes]:
    x = case.arrays["input"]
    groups = case.options["num_groups"]
    grouped = x.reshape(x.shape[0], groups, x.shape[1] // groups, math.prod(x.shape[2:]))
    return grouped, (2, 3), (1, groups, x.shape[1] // groups, 1), (0, 3)


def _batch_norm_layout(case: Case) -> tuple[Array, Axes, tuple[int, ...], Axes]:
    x = norms._batch_norm_input(case.arrays["input"])  # an empty 1-D input as (0, 0)
    flat = x.reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]))
    return flat, (0, 2), (1, x.shape[1], 1), (0, 2)


class _BatchNorm(_Normalization):
    """batch_norm: centred over the batch in training; in evaluation mode the running
    statistics are constants, nothing is centred, and the input gradient g w inv_std is one
    product (M = its magnitude)."""

    def _centred(self, case: Case) -> bool:
        return bool(case.options.get("training", False))

    # Training: torch keeps the batch statistics in the parameters' dtype (native_batch_norm
    # returns save_mean and save_invstd in bfloat16 or float16 for parameters of that type,
    # torch 2.13.0 CPU) and normalises with the rounded mean, so xhat carries that rounding:
    # |d mean| <= u |mean| moves xhat by u |mean| inv_std, M_xhat = |xhat| + |mean| inv_std.
    # Seen in bfloat16: an output of 0.0188 given as 0.0366, the mean 0.29978 used as 0.29883,
    # at mean / std = 3 (tests/test_precision.py). Unlike layer_norm and group_norm, whose
    # half-precision kernels keep float32 statistics; the hard tier's M_xhat (the centring
    # formed from |x| and mean |x|) already covers it.
    def _training_xhat_terms(self, case: Case
                             ) -> tuple[Array, Array, Array, Array, Array, Axes, Axes]:
        x, xhat, inv_std, w, b, axes, param_axes = self._parts(case)
        mean = np.mean(x, axis=axes, keepdims=True)
        return x, np.abs(xhat) + np.abs(mean) * inv_std, inv_std, w, b, axes, param_axes

    def forward(self, spec: OpSpec, case: Case) -> Array:
        """Training: M = |w| (|xhat| + |mean| inv_std) + |b|; evaluation: one product."""
        if self._centred(case):
            _, terms, _, w, b, _, _ = self._training_xhat_terms(case)
            return np.reshape(np.abs(w) * terms + np.abs(b), case.arrays["input"].shape)
        return np.abs(spec.reference(case))

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        """Training: the centred input gradient's M and sum |g| M_xhat, sum |g| with the
        rounded mean's M_xhat in place of |xhat|; evaluation: one product."""
        if self._centred(case):
            x, terms, inv_std, w, _, axes, param_axes = self._training_xhat_terms(case)
            g = np.reshape(g, x.shape)
            return {"input": np.reshape(_centred_terms(g * w, terms, inv_std, axes, True),
                                        case.arrays["input"].shape),
                    **_parameter_terms(case, g, terms, param_axes)}
        x, _, param_shape, param_axes = self.layout(case)
        xhat = (x - np.reshape(case.arrays["running_mean"], param_shape)) / np.sqrt(
            np.reshape(case.arrays["running_var"], param_shape) + case.options.get("eps", 1e-5))
        return {"input": np.abs(spec.reference_vjp(g, case)["input"]),
                **_parameter_terms(case, np.reshape(g, x.shape), xhat, param_axes)}

    def _eval_terms(self, case: Case) -> tuple[Array, Array, tuple[int, ...], Axes]:
        """Evaluation mode: xhat = (x - running_mean) / sqrt(running_var + eps) cancels |x|
        and |running_mean|."""
        x, _, param_shape, param_axes = self.layout(case)
        scale = 1 / np.sqrt(np.reshape(case.arrays["running_var"], param_shape)
                            + case.options.get("eps", 1e-5))
        mean = np.reshape(case.arrays["running_mean"], param_shape)
        return x, (np.abs(x) + np.abs(mean)) * scale, param_shape, param_axes

    def forward_accumulated(self, spec: OpSpec, case: Case) -> Array:
        if self._centred(case):
            return super().forward_accumulated(spec, case)
        _, terms, param_shape, _ = self._eval_terms(case)
        w, b = case.arrays.get("weight"), case.arrays.get("bias")
        w = np.ones(param_shape) if w is None else np.reshape(w, param_shape)
        b = np.zeros(param_shape) if b is None else np.reshape(b, param_shape)
        return np.reshape(np.abs(w) * terms + np.abs(b), case.arrays["input"].shape)

    def vjp_accumulated(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        if self._centred(case):
            return super().vjp_accumulated(spec, g, case)
        x, terms, _, param_axes = self._eval_terms(case)
        return {"input": np.abs(spec.reference_vjp(g, case)["input"]),
                **_parameter_terms(case, np.reshape(g, x.shape), terms, param_axes)}


class LinearCrossEntropy:
    """L = cross_entropy(z, y) of the logits z = a W^T + b (F.linear_cross_entropy).

    In a half type the logits are a rounded matmul: |dz| <= eps/2 u with u = |a| |W|^T + |b|
    (their M). That moves the loss by sum_c |dL/dz_c| u_c, and the gradient G = dL/dz =
    s (p sum_c q_c - q) (s the reduction's scale, q the weighted, smoothed target) through p:
    |dG_c| <= |s| sum(q) p_c (u_c + sum_j p_j u_j) =: E_c (the softmax Jacobian
    p_c ([c = j] - p_j) against |dz_j| <= u_j). G and E then enter the Linear layer's VJP,
    dL/da = G W, dL/dW = G^T a, dL/db = sum_n G, as signed sums: M = (|G| + E) |W|, (|G| + E)^T |a|
    and sum_n (|G| + E). A probability target's gradient -s (1 - eps) w log p moves with
    log p by at most |s| (1 - eps) w (u + sum_j p_j u_j).

    On top of the logits' rounding, the cross entropy of z carries its own conditioning
    (:data:`CROSS_ENTROPY`'s terms on the logits, ``_cross_entropy_pointwise`` and
    ``_cross_entropy_vjp``): log p = z - max - log S is formed from terms of size |z - max| and
    log S (log S off by ~u absolutely however small it is: float64 gave 0 for a loss of
    1.7e-207, w log(1 + e^-475)), and G_c = s (p_c sum(q) - q_c) cancels terms of size
    |s| p_c sum|q| and |s q_c| (torch's chunked path forms the two parts separately: one class,
    where G = 0 exactly, gave an input gradient of 3.6e-20 at |W| ~ 4e-16 in bfloat16). Their M
    joins the loss's, and |G| in the Linear layer's VJP.
    """

    def _logits_case(self, case: Case, z: Array) -> Case:
        """The cross_entropy case of the logits (its layout: classes at dim 0 unbatched, 1
        batched)."""
        arrays = {"input": z, "target": case.arrays["target"]}
        if "weight" in case.arrays:
            arrays["weight"] = case.arrays["weight"]
        differentiable = ("input", "target") if "target" in case.differentiable else ("input",)
        return Case(arrays, differentiable, case.options, case.seed)

    def forward(self, spec: OpSpec, case: Case) -> Array:
        """sum_c |dl/dz_c| u_c: per sample for "none", summed for a reduced loss (the logits'
        rounding, in the dtype: the half ladder's M)."""
        return self._forward(spec, case, own=False)

    def forward_accumulated(self, spec: OpSpec, case: Case) -> Array:
        """M plus cross_entropy's own M of each sample's loss (summed over the mean's
        denominator for a reduced loss): its log-softmax is formed in the accumulation type, so
        the hard tier's M_acc, not the half ladder's M."""
        return self._forward(spec, case, own=True)

    def _forward(self, spec: OpSpec, case: Case, own: bool) -> Array:
        z, u, class_dim = _linear_logits(case)
        value = spec.reference(case)
        per_sample = np.sum(np.abs(_logit_gradient(np.ones(np.shape(value)), case, z)) * u,
                            axis=class_dim)
        if not own:
            return per_sample if np.ndim(value) else np.asarray(np.sum(per_sample))
        logits = self._logits_case(case, z)
        pointwise = _cross_entropy_pointwise(spec, logits)
        if np.ndim(value):
            return per_sample + pointwise
        if case.options.get("reduction", "mean") == "mean":
            denominator = float(_cross_entropy_parts(logits)[4])
            pointwise = pointwise / max(denominator, np.finfo(np.float64).tiny)
        return np.asarray(np.sum(per_sample) + np.sum(pointwise))

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        """(|G| + E) through the Linear layer's VJP; the probability target's log p term (the
        logits' rounding: the half ladder's M)."""
        return self._vjp(spec, g, case, own=False)

    def vjp_accumulated(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        """M plus cross_entropy's own M of the logit gradient, through the same VJP (formed in
        the accumulation type: the hard tier's M_acc)."""
        return self._vjp(spec, g, case, own=True)

    def _vjp(self, spec: OpSpec, g: Array, case: Case, own: bool) -> Mapping[str, Array]:
        from references import layers
        from references.activations import softmax

        z, u, class_dim = _linear_logits(case)
        a, w, b = (case.arrays["input"], case.arrays["linear_weight"],
                   case.arrays.get("linear_bias"))
        p = softmax(z, dim=class_dim)
        spread = u + np.sum(p * u, axis=class_dim, keepdims=True)
        scale, mass = _scale_and_mass(case, g, z, class_dim)
        ce_own = _cross_entropy_vjp(spec, g, self._logits_case(case, z)) if own else {}
        effective = np.abs(_logit_gradient(g, case, z)) + ce_own.get("input", 0.0) \
            + scale * mass * p * spread
        lin = layers.linear_vjp(effective.reshape((*a.shape[:-1], -1)), np.abs(a),
                                np.abs(w).reshape(-1, w.shape[-1]),
                                None if b is None else np.abs(b).reshape(-1))
        terms = {"input": lin["input"], "linear_weight": lin["weight"].reshape(w.shape)}
        if b is not None:
            terms["linear_bias"] = lin["bias"].reshape(b.shape)
        if case.arrays["target"].dtype.kind == "f":
            weight = case.arrays.get("weight")
            per_class = np.reshape(np.ones(z.shape[class_dim]) if weight is None else weight,
                                   (-1,) + (1,) * (z.ndim - class_dim - 1))
            smoothing = case.options.get("label_smoothing", 0.0)
            terms["target"] = scale * (1.0 - smoothing) * per_class * spread \
                + ce_own.get("target", 0.0)
        return terms


def _ignore_index(case: Case) -> int:
    ignore = case.options.get("ignore_index")
    return -100 if ignore is None else int(ignore)


def _linear_logits(case: Case) -> tuple[Array, Array, int]:
    """(z, u = |a| |W|^T + |b|, class dimension) of F.linear_cross_entropy's case."""
    from references import losses_classification as ce

    a, w, b = (case.arrays["input"], case.arrays["linear_weight"],
               case.arrays.get("linear_bias"))
    z, _, _ = ce._linear_logits(a, w, b)
    u, _, _ = ce._linear_logits(np.abs(a), np.abs(w), None if b is None else np.abs(b))
    return z, u, a.ndim - 1


def _logit_gradient(g: Array, case: Case, z: Array) -> Array:
    """G = dL/dz for the cotangent g (references.losses_classification.cross_entropy_vjp)."""
    from references import losses_classification as ce

    return ce.cross_entropy_vjp(g, z, case.arrays["target"], case.arrays.get("weight"),
                                _ignore_index(case), case.options.get("reduction", "mean"),
                                case.options.get("label_smoothing", 0.0))["input"]


def _scale_and_mass(case: Case, g: Array, z: Array, class_dim: int) -> tuple[Array, Array]:
    """|s_n| and sum_c q_{n,c} per sample (the class dimension kept, size 1): the reduction's
    scale (0 for an ignored target) and the weighted, smoothed target's total."""
    from references import _loss_common as common
    from references import losses_classification as ce

    target, weight = case.arrays["target"], case.arrays.get("weight")
    reduction = case.options.get("reduction", "mean")
    smoothing = case.options.get("label_smoothing", 0.0)
    if target.dtype.kind == "f":
        _, _, _, q, n_samples = ce._probability_terms(z, target, weight, smoothing)
        mass = np.sum(q, axis=class_dim)
        scale = common._reduce_vjp(np.abs(g), mass.shape, reduction, n_samples)
    else:
        _, _, y, valid, w = ce._class_targets(z, target, weight, _ignore_index(case), smoothing)
        mass = (1.0 - smoothing) * w[y] + smoothing / z.shape[class_dim] * np.sum(w)
        scale = np.where(valid, common._reduce_vjp(np.abs(g), valid.shape, reduction,
                                                   np.sum(w[y], where=valid)), 0.0)
    return (np.expand_dims(np.abs(scale), class_dim), np.expand_dims(mass, class_dim))


def _instance_norm_layout(case: Case) -> tuple[Array, Axes, tuple[int, ...], Axes]:
    x = case.arrays["input"]
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    return flat, (2,), (1, x.shape[1], 1), (0, 2)


class _InstanceNorm(_BatchNorm):
    """instance_norm: centred over each instance's spatial positions with use_input_stats; with
    the running statistics, nothing is centred (as batch_norm's evaluation mode)."""

    def _centred(self, case: Case) -> bool:
        return bool(case.options.get("use_input_stats", True))


class LocalResponseNorm:
    """local_response_norm: the forward x s^(-beta) is a product (s a sum of squares, no
    cancellation): M = |out|. The input gradient g_j s_j^(-beta) - (2 alpha beta / n) x_j
    sum_c g_c x_c s_c^(-beta - 1) is a difference of two terms, the second a sum of signed
    terms: M = |g_j| s_j^(-beta) + (2 alpha beta / n) |x_j| sum_c |g_c x_c| s_c^(-beta - 1),
    i.e. |g| s^(-beta) minus the VJP of |g| at |x| (s is even in x)."""

    def forward(self, spec: OpSpec, case: Case) -> Array:
        return np.abs(spec.reference(case))

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        o = case.options
        x = np.abs(case.arrays["input"])
        first = np.abs(g) * norms._lrn_scale(x, o["size"], o["alpha"], o["k"]) ** -o["beta"]
        assert spec.ref_vjp is not None
        at_abs = spec.ref_vjp(np.abs(g), x, **o)["input"]
        return {"input": first + (first - at_abs)}


class CosineSimilarity:
    """cosine_similarity: the forward (a . b) / (c_a c_b) sums signed products, M = the same on
    absolute values (the norms are sums of squares: no cancellation); the gradient
    g (b / (c_a c_b) - cos a / (c_a n_a)) is a difference of two terms, the second holding the
    signed sum cos: M = |g| (|b| / (c_a c_b) + cos(|a|, |b|) |a| / (c_a n_a)), summed back over
    broadcast copies like the gradient."""

    def forward(self, spec: OpSpec, case: Case) -> Array:
        return MULTILINEAR.forward(spec, case)

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        dim, eps = case.options.get("dim", 1), case.options.get("eps", 1e-8)
        a, b = np.broadcast_arrays(np.abs(case.arrays["x1"]), np.abs(case.arrays["x2"]))
        n_a = np.linalg.norm(a, axis=dim, keepdims=True)
        n_b = np.linalg.norm(b, axis=dim, keepdims=True)
        c_a, c_b = np.maximum(n_a, eps), np.maximum(n_b, eps)
        cos = np.sum(a * b, axis=dim, keepdims=True) / (c_a * c_b)
        gk = np.abs(np.expand_dims(g, dim))
        with np.errstate(divide="ignore", invalid="ignore"):
            m_a = gk * (b / (c_a * c_b) + np.where(n_a > 0, cos * a / (c_a * n_a), 0.0))
            m_b = gk * (a / (c_a * c_b) + np.where(n_b > 0, cos * b / (c_b * n_b), 0.0))
        return {"x1": sum_to_shape(m_a, case.arrays["x1"].shape),
                "x2": sum_to_shape(m_b, case.arrays["x2"].shape)}


MULTILINEAR = Multilinear()


class _MovedWeights(Multilinear):
    """Resampling whose kernel forms its weights from rounded coordinates: the sums of signed
    terms (``Multilinear``) plus D, per unit of u, the bound on what the rounding moves each
    weight by (``_maps``: per resampled dimension the exact |weights| and D), applied in each
    dimension in turn (the other dimensions' maps as |W|) to |x| for the forward and to |g| for
    the VJP."""

    def _maps(self, case: Case) -> tuple[list[_separable.Taps], list[_separable.Taps]]:
        raise NotImplementedError

    def _each_dimension_moved(self, apply: Callable[[Array, list[_separable.Taps]], Array],
                              a: Array, case: Case) -> Array:
        """D applied to ``a`` (>= 0), formed on ``a`` scaled to at most 1 by a power of two and
        scaled back: near float64's largest numbers (the hard tier's extremes) D |a| may pass
        it while the maps' partial products would turn inf x 0 into NaN. A bound that leaves
        float64's range bounds nothing: the case is set aside, as a sum that overflows its
        accumulation type is (suite/hardcheck.py, ``_sums_representable``)."""
        from hypothesis import assume

        exact, moved = self._maps(case)
        top = float(np.max(a, initial=0.0))
        scale = 2.0 ** math.frexp(top)[1] if top > 0 and math.isfinite(top) else 1.0
        with np.errstate(over="ignore"):
            bound = sum((apply(a / scale, [moved[k] if k == d else exact[k]
                                           for k in range(len(exact))])
                         for d in range(len(exact))), np.zeros(())) * scale
        assume(bool(np.all(np.isfinite(bound))))
        return bound

    def sums(self, spec: OpSpec, case: Case) -> Array:
        """The sums' M alone (``sums_forward``: D is a bound per unit of u, not a sum)."""
        return super().forward(spec, case)

    def forward(self, spec: OpSpec, case: Case) -> Array:
        """The sums' M plus the moved weights' D applied to |x|."""
        x = np.abs(case.arrays["input"])
        return super().forward(spec, case) + self._each_dimension_moved(_separable.apply, x,
                                                                        case)

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        """The sums' M plus the moved weights' D applied to |g| (the transposed maps)."""
        terms = dict(super().vjp(spec, g, case))
        terms["input"] = terms["input"] + self._each_dimension_moved(
            _separable.apply_vjp, np.abs(g), case)
        return terms


class AntialiasedResampling(_MovedWeights):
    r"""Antialiased interpolation (bilinear, bicubic, lanczos): the sums of signed terms
    (``Multilinear``), and the kernel's own filter weights. A kernel forms each weight
    w_i = f((i - c + 0.5) / stretch), normalised by the window's total, from a source centre
    c = scale (j + 0.5) computed in its working precision: the scale and the product round c
    by 2 u |c|, the subtraction and the division by the stretch the argument t by 2 u |t|, so t
    is off by u 2 (|c| / stretch + |t|), which moves w_i by |f'(t)| times that (steep on
    lanczos's lobes), and the normalisation passes every moved
    weight to the whole row: |d w_hat_i| <= (|d w_i| + |w_hat_i| sum_k |d w_k|) / |total|.
    Per unit of u that bound D takes, in each resampled dimension in turn, the place of |w_hat|
    in the map applied to |x| (the other dimensions' maps as |w_hat|), added to M; the VJP
    likewise with |g|. |f'| is the larger one-sided slope (the filters have kinks). Seen on
    float32 lanczos, torch 2.13.0 and 2.14.1 alike: 1.36e-5 off at an output of 0.82 (7 -> 13
    rows, inputs up to 11.5; seed 6106) where the sums alone allowed 2.5e-6; the first-order
    bound there is 5x the error, the allowance (2 eps per unit, as every row) 20x. In float16
    and bfloat16 this overstates: their kernels form the coordinates in float32, and the unit
    here is the half type's (CPU torch 2.13.0 has no half-precision antialiasing kernel, so the
    ladder skips these records there; a CUDA run would allow more than it needs)."""

    def _maps(self, case: Case) -> tuple[list[_separable.Taps], list[_separable.Taps]]:
        options = case.options
        sides = np.shape(case.arrays["input"])[2:]
        out, scales = interp._output_geometry(sides, options.get("size"),
                                              options.get("scale_factor"),
                                              options.get("recompute_scale_factor"))
        mode = options["mode"]
        f, _ = interp._FILTERS[mode]
        exact, moved = [], []
        for n, o, scale in zip(sides, out, scales, strict=True):
            i, t, inside, centre, stretch = interp._antialias_window(
                n, o, options.get("align_corners"), scale, mode)
            h = 1e-6
            slope = np.maximum(np.abs(f(t + h) - f(t)), np.abs(f(t) - f(t - h))) / h
            w = np.where(inside, f(t), 0.0)
            dw = np.where(inside, slope * 2 * (np.abs(centre)[:, None] / stretch + np.abs(t)),
                          0.0)
            total = np.abs(w.sum(axis=1, keepdims=True))
            safe = np.where(total == 0, 1.0, total)
            w_hat = np.where(total == 0, 0.0, np.abs(w) / safe)
            d = np.where(total == 0, 0.0, (dw + w_hat * dw.sum(axis=1, keepdims=True)) / safe)
            exact.append(_separable.taps(i, w_hat, n))
            moved.append(_separable.taps(i, d, n))
        return exact, moved

class CoordinateRounding(_MovedWeights):
    r"""Linear, bilinear, trilinear and bicubic interpolation (not antialiased): the sums of
    signed terms (``Multilinear``), and what a correct kernel's rounded source coordinates move
    the weights by. torch's CPU kernels (aten/src/ATen/native/UpSample.h,
    ``area_pixel_compute_scale``, ``area_pixel_compute_source_index``,
    ``guard_index_and_lambda``, ``get_cubic_upsample_coefficients``; cpu/UpSampleKernel.cpp
    ``HelperInterpLinear``/``HelperInterpCubic``, cpu/UpSampleMoreKernel.cpp and
    UpSampleBicubic2d.cpp for the backward) work in the op-math type (float32 for float16,
    bfloat16 and float32 inputs; float64 for float64), unit roundoff u:

    * the scale s~ = fl(n / o), fl(1 / scale_factor) or fl((n - 1) / (o - 1)): |s~ - s| <= u s;
    * the coordinate c~ = fl(fl(s~ (j + 0.5)) - 0.5) (j + 0.5 is exact): the product is off by
      2 u |c + 0.5| (the scale's and its own rounding), the subtraction by u |c|, so
      |c~ - c| <= u (3 |c| + 1) + O(u^2 |c|) <= u (3 |c| + 2); with align_corners c~ =
      fl(s~ j), within 2 u |c|;
    * t = c~ - floor(c~) is exact (both in [0, 2^24) on one binade's grid), so the weight
      argument carries the coordinate's error; a floor that lands on the other side of an
      integer moves the whole tap window, which the kernel's continuity makes the same first
      order error (linear's hat and Keys' cubic are continuous, the cubic's slope vanishes at
      its support's end |s| = 2);
    * linear: lambda1 = t is stored in the input's type (the generic channels-first forward),
      off by u_dtype t <= u_dtype, and lambda0 = 1 - lambda1 formed from it: a further shift of
      the coordinate by at most u_dtype, and a relative rounding of lambda0 (a weight rounding,
      in M);
    * bicubic: the four arguments t + 1, t, 1 - t, 2 - t are formed with up to 3 u more, and
      each coefficient by Horner's rule in 5 (|s| <= 1) or 6 (1 < |s| < 2) roundings, within
      gamma_k of the polynomial with absolute coefficients (Higham, sec. 5.1):
      H(s) = 6 (1.25 s^3 + 2.25 s^2 + 1) or 7 (0.75 s^3 + 3.75 s^2 + 6 s + 3), in u, absolute
      (a coefficient near 0 is not off relatively: M does not cover it).

    So every weight w_m(j) = K(c - m) of output j is off by at most
    |K'| (3 |c| + 3) u (+ 3 u for bicubic's arguments) + H(|c - m|) u, first order, where K is
    the hat (linear, support 1) or Keys' cubic with A = -0.75 (support 2) and |K'| is its
    largest slope within the coordinate's error of c - m (one-sided at the hat's kinks, plus
    max |K''| = 4.5 times the error for the cubic), over every input position m (clamped to
    the side, as torch clamps indices) within the support plus that error: the neighbour a
    shifted floor brings in. The error bound used for the window is float32's coordinate error
    plus bfloat16's lambda rounding, the largest of any dtype's. Per unit of u that bound D
    takes, in each resampled dimension in turn, the place of |W| in the map applied to |x| (the
    other dimensions' maps as |W|), added to M; the VJP likewise with |g| (the backward forms
    the same coordinates and weights in the op-math type and adds w g into an op-math buffer).
    As for AntialiasedResampling, the unit is the dtype's: float16 and bfloat16 form the
    coordinates in float32, so there D overstates all but the lambda rounding.

    A long side makes this the dominant term: float32 resampling 10^4 positions to 19999 is off
    by up to 3.6e-3 at inputs ~1 (torch 2.13.0: ~6e-4 of a position at c ~ 10^4 times
    |x_1 - x_0|), 42x what the sums alone allow even with n the largest array's 19999 terms;
    with D the error is 4 % of the allowance, and a kernel whose coordinates are 1e-3 of a
    position off is 224x over it (tests/test_hard_resampling.py). ``length`` is the longest sum
    torch forms: the taps of one output (2 or 4 per dimension) or the (output, tap) pairs one
    input receives in the VJP."""

    _SUPPORT: ClassVar[Mapping[str, int]] = {"linear": 1, "bilinear": 1, "trilinear": 1,
                                             "bicubic": 2}
    # The window's coordinate error, absolute: float32's u (3 |c| + 6) (the op-math type of
    # every dtype but float64, whose u is smaller) plus bfloat16's lambda rounding (2^-8).
    _WINDOW_U, _WINDOW_LAMBDA = 2.0**-24, 2.0**-8

    @staticmethod
    def _slope(s: Array, cubic: bool) -> Array:
        """|K'(s)| for s >= 0 (0 past the support)."""
        if not cubic:
            return np.where(s < 1.0, 1.0, 0.0)
        a = interp.KEYS_A
        near = np.abs((3 * (a + 2.0) * s - 2 * (a + 3.0)) * s)
        far = np.abs((3 * a * s - 10 * a) * s + 8 * a)
        return np.where(s <= 1.0, near, np.where(s < 2.0, far, 0.0))

    @staticmethod
    def _horner(s: Array) -> Array:
        """The coefficients' own rounding, in u (class docstring): gamma_k of the polynomial
        with absolute coefficients, k the roundings of Horner's rule plus one."""
        near = 6.0 * ((1.25 * s + 2.25) * s * s + 1.0)
        far = 7.0 * (((0.75 * s + 3.75) * s + 6.0) * s + 3.0)
        return np.where(s <= 1.0, near, np.where(s <= 2.0, far, 0.0))

    def _moved(self, n: int, o: int, align_corners: bool | None, scale: float | None,
               mode: str) -> _separable.Taps:
        """D of one dimension, per unit of u: the bound on each weight's error (o x taps)."""
        cubic = mode == "bicubic"
        radius = self._SUPPORT[mode]
        c = interp._source(n, o, align_corners, scale)
        units = 3.0 * np.abs(c) + (6.0 if cubic else 3.0)
        window = self._WINDOW_U * units + self._WINDOW_LAMBDA
        at = c if cubic else np.maximum(c, 0.0)  # linear clamps the coordinate at 0
        m = np.floor(at)[:, None] + np.arange(-radius, radius + 2)
        s = np.abs(at[:, None] - m)
        near = s < radius + window[:, None]
        lo = np.maximum(s - window[:, None], 0.0)
        if cubic:
            slope = self._slope(s, True) + 4.5 * window[:, None]
            moved = slope * units[:, None] + self._horner(np.minimum(s + window[:, None], 2.0))
        else:
            moved = self._slope(lo, False) * units[:, None]
        index = np.clip(m, 0, n - 1).astype(np.int64)
        return _separable.taps(index, np.where(near, moved, 0.0), n)

    def _geometry(self, case: Case) -> list[tuple[int, int, float | None]]:
        options = case.options
        sides = np.shape(case.arrays["input"])[2:]
        out, scales = interp._output_geometry(sides, options.get("size"),
                                              options.get("scale_factor"),
                                              options.get("recompute_scale_factor"))
        return list(zip(sides, out, scales, strict=True))

    def _maps(self, case: Case) -> tuple[list[_separable.Taps], list[_separable.Taps]]:
        options = case.options
        mode, corners = options["mode"], options.get("align_corners")
        exact = interp._maps(np.shape(case.arrays["input"])[2:], mode, options.get("size"),
                             options.get("scale_factor"), corners,
                             options.get("recompute_scale_factor"), False)
        exact = [w._replace(weight=np.abs(w.weight)) for w in exact]
        moved = [self._moved(n, o, corners, s, mode) for n, o, s in self._geometry(case)]
        return exact, moved

    def length(self, spec: OpSpec, case: Case) -> int:
        """The longest sum torch forms: an output's taps (the product over the resampled
        dimensions of 2 or 4), or the (output, tap) pairs that one input's gradient adds up (the
        product of each dimension's most, clamped edge taps counted each time)."""
        options = case.options
        maps = interp._maps(np.shape(case.arrays["input"])[2:], options["mode"],
                            options.get("size"), options.get("scale_factor"),
                            options.get("align_corners"),
                            options.get("recompute_scale_factor"), False)
        forward = math.prod(int(w.source.shape[1]) for w in maps)
        backward = math.prod(int(_separable.transpose(w).source.shape[1]) for w in maps)
        return max(forward, backward, 1)


COORDINATE_ROUNDING = CoordinateRounding()


ANTIALIASED_RESAMPLING = AntialiasedResampling()
COPIES = Copies()
PRELU = Prelu()
GLU = Glu()
LINEAR_CROSS_ENTROPY = LinearCrossEntropy()
LAYER_NORM = _Normalization(_layer_norm_layout)
RMS_NORM = _Normalization(_layer_norm_layout, centred=False)
GROUP_NORM = _Normalization(_group_norm_layout)
BATCH_NORM = _BatchNorm(_batch_norm_layout)


# --- the hard tier (suite/hardcheck.py) --------------------------------------------------------
#
# The hard tier judges every dtype by the case's conditioning (suite/tolerances.py, "The hard
# tier"): per element, rtol |expected| + hard_summation(dtype, n) M_acc + the underflow floor.
# M_acc is the sum |terms| of the sums torch forms in its accumulation type (``accumulated``:
# a record's ``terms.forward_accumulated`` where it has one, else ``terms.forward``), n the
# longest such sum (``length``: a record's ``terms.length``, else the largest array's size).


def accumulated_forward(spec: OpSpec, case: Case) -> Array | None:
    """M_acc of the forward, or None where the record declares no terms (rtol alone)."""
    terms = spec.terms
    if terms is None:
        return None
    forward = getattr(terms, "forward_accumulated", terms.forward)
    return np.asarray(forward(spec, case))


def sums_forward(spec: OpSpec, case: Case) -> Array | None:
    """The magnitudes of the sums the forward forms (whether they stay in the accumulation
    type's range): M_acc, except where the record's terms add a bound that is not a sum but a
    per-unit-of-u error of one (``terms.sums``: the resampling records' moved weights, whose
    D |x| grows with the source coordinate while the sum itself stays of |x|'s size)."""
    own = getattr(spec.terms, "sums", None)
    return np.asarray(own(spec, case)) if own is not None else accumulated_forward(spec, case)


def accumulated_vjp(spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
    """M_acc of each gradient (those the record's terms give)."""
    terms = spec.terms
    if terms is None:
        return {}
    vjp = getattr(terms, "vjp_accumulated", terms.vjp)
    return vjp(spec, g, case)


def length(spec: OpSpec, case: Case) -> int:
    """n, the number of terms of the longest sum behind a result of the case: the record's
    ``terms.length(spec, case)``, else the size of the case's largest array (every sum of these
    ops runs over at most one array's elements, or products of two arrays' elements along one
    of them)."""
    own = getattr(spec.terms, "length", None)
    if own is not None:
        return int(own(spec, case))
    return max((int(a.size) for a in case.arrays.values()), default=1)


def magnitude(case: Case, g: Array | None = None) -> float:
    """B = the largest finite |value| among the case's float arrays (and the cotangent), capped
    at 1024: the factor by which later operations may scale an intermediate that underflowed
    (silu's x sigmoid(x) at x = -89 in float32). Beyond |x| ~ 745 every exp-type intermediate
    is exactly 0 in float64 as well, so larger factors multiply exact zeros."""
    arrays = [a for a in case.arrays.values() if a.dtype.kind == "f" and a.size]
    if g is not None and np.size(g):
        arrays.append(np.asarray(g))
    finite = [np.abs(a[np.isfinite(a)]) for a in arrays]
    biggest = max((float(f.max()) for f in finite if f.size), default=0.0)
    return min(biggest, 1024.0)


Elementwise = Callable[..., Array]


class Formula:
    """M for an op applied element by element (or along ``dim``) whose torch formula adds terms
    that cancel: ``forward(x, **options)`` and ``vjp(g, x, **options)`` give their magnitudes at
    each element (None: the result's own magnitude, one product). ``length`` is 1, or the size
    along the op's dim for ops that sum along it (``along_dim``: the default dim)."""

    def __init__(self, forward: Elementwise | None = None, vjp: Elementwise | None = None,
                 along_dim: int | None = None) -> None:
        self._forward = forward
        self._vjp = vjp
        self.along_dim = along_dim

    def forward(self, spec: OpSpec, case: Case) -> Array:
        """M of each output element."""
        if self._forward is None:
            return np.abs(spec.reference(case))
        return np.abs(self._forward(case.arrays["input"], **case.options))

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        """M of each input-gradient element."""
        if self._vjp is None:
            return {"input": np.abs(spec.reference_vjp(g, case)["input"])}
        return {"input": np.abs(self._vjp(g, case.arrays["input"], **case.options))}

    def length(self, spec: OpSpec, case: Case) -> int:
        """1 for an elementwise formula; the size along ``dim`` for a softmax-like one."""
        x = case.arrays["input"]
        if self.along_dim is None or x.ndim == 0:
            return 1
        return int(x.shape[case.options.get("dim", self.along_dim) % x.ndim])


def _sigmoid(x: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def _softmax(x: Array, dim: int) -> Array:
    z = np.asarray(x, dtype=np.float64)
    z = z - np.max(z, axis=dim, keepdims=True, initial=-np.inf)  # -inf: an empty dim
    e = np.exp(z)
    return e / np.sum(e, axis=dim, keepdims=True)


def _softplus(x: Array) -> Array:
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _erf(x: Array) -> Array:
    from scipy.special import erf

    return np.asarray(erf(x), dtype=np.float64)


# torch's backward uses the saved rounded output y: sigmoid g (y - y^2), tanh g (1 - y^2).
SIGMOID = Formula(vjp=lambda g, x: np.abs(g) * (_sigmoid(x) + _sigmoid(x) ** 2))
TANH = Formula(vjp=lambda g, x: np.abs(g) * (1.0 + np.tanh(x) ** 2))
# x - tanh(x), and its composite derivative 1 - (1 - tanh^2 x).
TANHSHRINK = Formula(forward=lambda x: np.abs(x) + np.abs(np.tanh(x)),
                     vjp=lambda g, x: np.abs(g) * (2.0 - np.tanh(x) ** 2))
# x / (1 + |x|), differentiated as a quotient: 1 / (1 + |x|) - |x| / (1 + |x|)^2.
SOFTSIGN = Formula(vjp=lambda g, x: np.abs(g) * (1 / (1 + np.abs(x)) + np.abs(x)
                                                 / (1 + np.abs(x)) ** 2))


def _gelu_forward(x: Array, approximate: str = "none") -> Array:
    inner = np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)) if approximate == "tanh" \
        else _erf(x / np.sqrt(2.0))
    return 0.5 * np.abs(x) * (1.0 + np.abs(inner))


def _gelu_vjp(g: Array, x: Array, approximate: str = "none") -> Array:
    if approximate == "tanh":
        t = np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))
        du = np.sqrt(2 / np.pi) * (1.0 + 3 * 0.044715 * x * x)
        return np.abs(g) * (0.5 * (1.0 + np.abs(t)) + 0.5 * np.abs(x) * (1.0 + t * t) * du)
    pdf = np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
    return np.abs(g) * (0.5 * (1.0 + np.abs(_erf(x / np.sqrt(2.0)))) + np.abs(x) * pdf)


# torch's documented form 0.5 x (1 + erf(x / sqrt 2)) (or its tanh approximation) cancels in
# the left tail: KNOWN_DIFFERENCES.md, "gelu is accurate in absolute terms in its left tail".
GELU = Formula(forward=_gelu_forward, vjp=_gelu_vjp)
# silu' = s (1 + x (1 - s)), 1 - s formed from the rounded s; mish' = tanh(sp) + x s sech^2(sp).
SILU = Formula(vjp=lambda g, x: np.abs(g) * _sigmoid(x) * (1 + np.abs(x) * (1 + _sigmoid(x))))
MISH = Formula(vjp=lambda g, x: np.abs(g) * (np.abs(np.tanh(_softplus(x))) + np.abs(x)
                                             * _sigmoid(x) * (1 + np.tanh(_softplus(x)) ** 2)))
# elu, celu and selu for x < 0 as torch before 2.13 forms them, alpha (exp(x) - 1) (celu:
# exp(x / alpha); selu: scale alpha (exp(x) - 1)): the terms alpha exp(x) and alpha cancel for
# small |x| (suite/versions.py, ELU_EXP_MINUS_ONE). Since 2.13 torch uses expm1: ELEMENTWISE.
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _exp_minus_one_terms(x: Array, alpha: float, exponent: Array, scale: float = 1.0) -> Array:
    x = np.asarray(x, dtype=np.float64)
    negative = scale * alpha * (np.exp(np.minimum(exponent, 0.0)) + 1.0)
    return np.where(x < 0, negative, scale * np.abs(x))


EXP_MINUS_ONE = {
    "elu": Formula(forward=lambda x, alpha=1.0: _exp_minus_one_terms(x, alpha, x)),
    "celu": Formula(forward=lambda x, alpha=1.0: _exp_minus_one_terms(x, alpha, x / alpha)),
    "selu": Formula(forward=lambda x: _exp_minus_one_terms(x, _SELU_ALPHA, x, _SELU_SCALE)),
}
# hardswish x (x + 3) / 6 and its slope (2 x + 3) / 6 inside (-3, 3); hardsigmoid x / 6 + 1 / 2.
HARDSWISH = Formula(forward=lambda x: np.abs(x) * (np.abs(x) + 3) / 6,
                    vjp=lambda g, x: np.abs(g) * (2 * np.abs(x) + 3) / 6)
HARDSIGMOID = Formula(forward=lambda x: np.abs(x) / 6 + 0.5)


def _softmax_vjp_terms(g: Array, x: Array, dim: int = -1) -> Array:
    s = _softmax(x, dim)
    return s * (np.abs(g) + np.sum(s * np.abs(g), axis=dim, keepdims=True))


def _softmin_vjp_terms(g: Array, x: Array, dim: int = -1) -> Array:
    return _softmax_vjp_terms(g, -np.asarray(x, dtype=np.float64), dim)


def _log_softmax_terms(x: Array, dim: int = -1) -> Array:
    """x - max - log S with S = sum exp(x - max) >= 1: S is rounded relative to its own size, so
    log S is off by ~n u absolutely however small it is (torch takes log S, not log1p of the
    other terms: KNOWN_DIFFERENCES.md, "log_softmax and cross_entropy ..."): M = |x - max| +
    log S + 1."""
    z = np.asarray(x, dtype=np.float64)
    z = z - np.max(z, axis=dim, keepdims=True, initial=-np.inf)  # -inf: an empty dim
    return np.abs(z) + np.log(np.sum(np.exp(z), axis=dim, keepdims=True)) + 1.0


def _log_softmax_vjp_terms(g: Array, x: Array, dim: int = -1) -> Array:
    return np.abs(g) + _softmax(x, dim) * np.sum(np.abs(g), axis=dim, keepdims=True)


# softmax's VJP s (g - <g, s>) and log_softmax's g - s sum(g): differences of sums along dim.
SOFTMAX = Formula(vjp=_softmax_vjp_terms, along_dim=-1)
SOFTMIN = Formula(vjp=_softmin_vjp_terms, along_dim=-1)
LOG_SOFTMAX = Formula(forward=_log_softmax_terms, vjp=_log_softmax_vjp_terms, along_dim=-1)
SOFTMAX2D = Formula(vjp=lambda g, x: _softmax_vjp_terms(g, x, dim=-3), along_dim=-3)


class Reduced:
    """M for a loss with a ``reduction``: the reduced loss is the sum of the pointwise losses
    l_i (reduction "none") times 1 / d (d = 1 for "sum", the element count for "mean", the
    batch for "batchmean", the kept targets' weights for a weighted mean), so its M is
    sum |l_i| / d = sum |l_i| |L| / |sum l_i| (exact for any such d; d = 1 where sum l_i is 0
    to rounding). Each pointwise loss is taken as computed to a few ulp of itself, or, where
    torch's pointwise form cancels, ``pointwise(spec, case)`` gives its terms. The
    gradients are elementwise (g / d times a pointwise derivative); where that derivative is a
    difference its terms are ``vjp(spec, g, case)``, and where a record gives none they are
    not derived (the hard tier measures their conditioning: suite/hardcheck.py)."""

    def __init__(self, vjp: Callable[[OpSpec, Array, Case], Mapping[str, Array]] | None = None,
                 inner: object | None = None,
                 pointwise: Callable[[OpSpec, Case], Array] | None = None) -> None:
        self._vjp = vjp
        self._inner = inner
        self._pointwise = pointwise

    def forward(self, spec: OpSpec, case: Case) -> Array:
        """sum |l_i| / d, or |l_i| element by element for reduction "none"."""
        if self._inner is not None:
            return np.asarray(self._inner.forward(spec, case))  # type: ignore[attr-defined]
        reduced = spec.reference(case)
        if case.options.get("reduction", "mean") == "none":
            return np.abs(reduced) if self._pointwise is None else np.broadcast_to(
                self._pointwise(spec, case), np.shape(reduced))
        pointwise = np.asarray(spec.ref(**case.arrays,  # type: ignore[misc]
                                        **{**case.options, "reduction": "none"}))
        magnitudes = np.abs(pointwise) if self._pointwise is None else np.broadcast_to(
            self._pointwise(spec, case), pointwise.shape)
        total, size = float(np.sum(pointwise)), float(np.sum(magnitudes))
        if not np.isfinite(total) or abs(total) <= 1e-12 * size:
            return np.full(np.shape(reduced), size)
        return np.full(np.shape(reduced), size * abs(float(reduced)) / abs(total))

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        """Each gradient's magnitude, or the record's pointwise terms."""
        if self._vjp is not None:
            return self._vjp(spec, g, case)
        if self._inner is not None:
            return self._inner.vjp(spec, g, case)  # type: ignore[attr-defined]
        return {}  # not derived: the hard tier measures the gradients' conditioning instead


REDUCED = Reduced()
# Elementwise ops whose torch kernels compute each result to a few ulp of itself (no
# cancelling terms: relu and its relatives, elu's expm1, logsigmoid's and softplus's stable
# forms): judged relatively, down to the underflow floor.
ELEMENTWISE = Formula()


class Attention:
    """M for scaled_dot_product_attention: out = P v with P = softmax(s), s = scale q k^T
    (+ a float mask). Each score is a dot product, rounded to u sum|terms| with
    T = scale |q| |k|^T + |mask|; the softmax passes a score's error on as a relative change of
    P of R = T + sum_keys P T. So M(out) = P (1 + R) |v|; the VJP's dP = g v^T has M |g| |v|^T,
    dS = P (dP - sum P dP) has M_dS = P (M_dP + sum P M_dP) + P R |dP - sum P dP|, and
    dq = scale dS k, dk = scale dS^T q, dv = P^T g, d mask = dS carry M_dS |k| scale,
    M_dS^T |q| scale, (P (1 + R))^T |g| and M_dS. Ties among huge scores (|s| >> 1/u) make
    P one-hot or shared at rounding's whim: R is then large and so is the allowance, as it must
    be."""

    def _parts(self, case: Case) -> tuple[Array, Array, Array, Array, Array, float]:
        from references import attention as ref

        q, k, v = (np.asarray(case.arrays[n], dtype=np.float64) for n in ("query", "key",
                                                                          "value"))
        mask = case.arrays.get("attn_mask")
        p, scale = ref._probabilities(q, k, mask, case.options.get("is_causal", False),
                                      case.options.get("scale"))
        terms = np.abs(q) @ np.swapaxes(np.abs(k), -1, -2) * scale
        if mask is not None and mask.dtype != np.bool_:
            terms = terms + np.abs(mask)
        terms = np.where(p > 0, terms, 0.0)
        spread = terms + np.sum(p * terms, axis=-1, keepdims=True)
        return q, k, v, p, spread, float(scale)

    def forward(self, spec: OpSpec, case: Case) -> Array:
        """P (1 + R) |v|."""
        _, _, v, p, spread, _ = self._parts(case)
        return (p * (1.0 + spread)) @ np.abs(v)

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        """M of the query, key, value and float mask gradients."""
        q, k, v, p, spread, scale = self._parts(case)
        g = np.asarray(g, dtype=np.float64)
        dp = g @ np.swapaxes(v, -1, -2)
        m_dp = np.abs(g) @ np.swapaxes(np.abs(v), -1, -2)
        centred = np.abs(dp - np.sum(p * dp, axis=-1, keepdims=True))
        m_ds = p * (m_dp + np.sum(p * m_dp, axis=-1, keepdims=True)) + p * spread * centred
        # An argument broadcast over batch dimensions sums its gradient over them (the
        # reference's sum_to_shape): so do the magnitudes.
        grads = {"query": sum_to_shape(m_ds @ np.abs(k) * scale, q.shape),
                 "key": sum_to_shape(np.swapaxes(m_ds, -1, -2) @ np.abs(q) * scale, k.shape),
                 "value": sum_to_shape(np.swapaxes(p * (1.0 + spread), -1, -2) @ np.abs(g),
                                        v.shape)}
        mask = case.arrays.get("attn_mask")
        if mask is not None and mask.dtype != np.bool_:
            grads["attn_mask"] = sum_to_shape(m_ds, np.shape(mask))
        return grads


ATTENTION = Attention()


class MultiheadAttentionTerms:
    """M for multi_head_attention (F.multi_head_attention_forward): :class:`Attention`'s
    derivation per head, on projections that are themselves rounded sums. Batch-first, per
    head (references/transformer.py's layout):

    * projections q = x_q W_q^T + b_q (k, v alike; bias_k/bias_v rows appended, zero rows
      for add_zero_attn): each within u sum|terms| of exact, M_q = |x_q| |W_q|^T + |b_q|;
    * scores s = scale q k^T + mask: a score's error is scale (|dq| |k| + |q| |dk|) plus its
      own rounding, all within u T with T = scale M_q M_k^T + |float mask| (|q| <= M_q); the
      softmax passes it on as a relative change of P of R = T + sum_keys P T (Attention);
    * head = P v: M = P (1 + R) M_v; concat, out = concat W_o^T + b_o: M_out = M_concat
      |W_o|^T + |b_o|; the weights output: P (1 + R) (their mean over heads when averaged).

    The VJP with g exact: d concat = g W_o (M |g| |W_o|), dW_o = g^T concat (|g|^T M_concat),
    db_o = sum g; dv = P^T d head (M (P (1 + R))^T M_dhead), dP = d head v^T (M_dP = M_dhead
    M_v^T), dS = P (dP - sum P dP) with M_dS = P (M_dP + sum P M_dP) + P R |dP - sum P dP|
    (Attention), dq = scale dS k, dk = scale dS^T q (M_dS M_k scale, M_dS^T M_q scale), the
    masks' dS; then each projection's linear VJP with those M: d x = dq W (M_dq |W|),
    dW = dq^T x (M_dq^T |x|), db = sum dq; self-attention sums the three inputs' M.
    Torch's flash kernel breaks what no input perturbation breaks (P's rows summing to 1 with
    lse ~ |s| stored rounded; sum_keys dS = 0, whose rounding is then multiplied by keys of a
    large common offset), which these terms bound and the hard tier's shake cannot see."""

    def _parts(self, case: Case) -> dict[str, Any]:
        from references import transformer as ref

        a, o = case.arrays, case.options
        params = {k: a.get(k) for k in ref._PROJECTIONS}
        att, batched = ref._mha_call(a["query"], a.get("key"), a.get("value"),
                                     a.get("key_padding_mask"), a.get("attn_mask"), params,
                                     o["num_heads"], o.get("add_zero_attn", False),
                                     o.get("batch_first", False))
        h = att.heads
        n, _, e = att.q_in.shape
        s = att.k_in.shape[1]
        w_q, w_k, w_v = (np.abs(w) for w in att.p.weights())
        b_q, b_k, b_v = (0.0 if b is None else np.abs(b) for b in att.p.biases())
        m_q = np.abs(att.q_in) @ w_q.T + b_q
        m_k = np.abs(att.k_in) @ w_k.T + b_k
        m_v = np.abs(att.v_in) @ w_v.T + b_v
        if att.p.bias_k is not None and att.p.bias_v is not None:
            m_k = np.concatenate([m_k, np.broadcast_to(np.abs(np.reshape(att.p.bias_k,
                                                                         (1, 1, e))),
                                                       (n, 1, e))], 1)
            m_v = np.concatenate([m_v, np.broadcast_to(np.abs(np.reshape(att.p.bias_v,
                                                                         (1, 1, e))),
                                                       (n, 1, e))], 1)
        m_q4, m_k4, m_v4 = (ref._split_heads(m, h) for m in (m_q, m_k, m_v))
        if att.add_zero_attn:
            zeros = np.zeros((n, h, 1, e // h))
            m_k4, m_v4 = (np.concatenate([m, zeros], axis=2) for m in (m_k4, m_v4))
        scale = 1.0 / math.sqrt(e // h)
        p = att.softmax
        t = m_q4 @ np.swapaxes(m_k4, -1, -2) * scale
        if att.mask is not None:
            t = t + np.where(np.isfinite(att.mask), np.abs(att.mask), 0.0)
        t = np.where(p > 0, t, 0.0)
        spread = t + np.sum(p * t, axis=-1, keepdims=True)
        m_heads = (p * (1.0 + spread)) @ m_v4
        m_concat = ref._merge_heads(m_heads)
        b_o = att.p.out_proj_bias
        m_out = m_concat @ np.abs(att.p.out_proj_weight).T + (0.0 if b_o is None
                                                               else np.abs(b_o))
        return {"att": att, "batched": batched, "m_q4": m_q4, "m_k4": m_k4, "m_v4": m_v4,
                "p": p, "spread": spread, "m_concat": m_concat, "m_out": m_out,
                "scale": scale, "s": s, "w": (w_q, w_k, w_v)}

    def forward(self, spec: OpSpec, case: Case) -> Array:
        """M of attn_output (or of the weights), in the output's layout."""
        from references import transformer as ref

        parts, o = self._parts(case), case.options
        batched = parts["batched"]
        if o.get("output", "attn_output") == "attn_output":
            return ref._from_batch_first(parts["m_out"], batched, o.get("batch_first", False))
        m_w = parts["p"] * (1.0 + parts["spread"])
        m_w = m_w.mean(axis=1) if o.get("average_attn_weights", True) else m_w
        return m_w if batched else m_w[0]

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        """M of every gradient (the reference's names and layouts)."""
        from references import transformer as ref

        parts, o, a = self._parts(case), case.options, case.arrays
        att, batched, p, spread = parts["att"], parts["batched"], parts["p"], parts["spread"]
        m_q4, m_k4, m_v4, scale = parts["m_q4"], parts["m_k4"], parts["m_v4"], parts["scale"]
        h, s = att.heads, parts["s"]
        n, lq, _ = att.q_in.shape
        batch_first = o.get("batch_first", False)
        grads: dict[str, Array] = {}
        if o.get("output", "attn_output") == "attn_output":
            gb = np.abs(ref._batch_first(np.asarray(g, dtype=np.float64), batched,
                                         batch_first))
            grads["out_proj_weight"] = np.einsum("nle,nlf->ef", gb, parts["m_concat"])
            if att.p.out_proj_bias is not None:
                grads["out_proj_bias"] = gb.sum(axis=(0, 1))
            m_dheads = ref._split_heads(gb @ np.abs(att.p.out_proj_weight), h)
            # dP = d head v^T, exact value from the reference's own v (for |dP - sum P dP|)
            d_heads = ref._split_heads(ref._batch_first(np.asarray(g, dtype=np.float64),
                                                        batched, batch_first)
                                       @ att.p.out_proj_weight, h)
            dp = d_heads @ np.swapaxes(att.v4, -1, -2)
            m_dp = m_dheads @ np.swapaxes(m_v4, -1, -2)
            m_dv4 = np.swapaxes(p * (1.0 + spread), -1, -2) @ m_dheads
        else:
            g4 = np.asarray(g, dtype=np.float64) if batched else np.asarray(g)[None]
            if o.get("average_attn_weights", True):
                g4 = np.broadcast_to(g4[:, None] / h, p.shape)
            dp, m_dp = g4, np.abs(g4)
            m_dv4 = np.zeros(m_v4.shape)
        centred = np.abs(dp - np.sum(p * dp, axis=-1, keepdims=True))
        m_ds = p * (m_dp + np.sum(p * m_dp, axis=-1, keepdims=True)) + p * spread * centred
        m_dq4 = m_ds @ m_k4 * scale
        m_dk4 = np.swapaxes(m_ds, -1, -2) @ m_q4 * scale
        if att.add_zero_attn:
            m_dk4, m_dv4 = m_dk4[:, :, :-1], m_dv4[:, :, :-1]
        m_dq, m_dk, m_dv = (ref._merge_heads(m) for m in (m_dq4, m_dk4, m_dv4))
        if att.p.bias_k is not None and att.p.bias_v is not None:
            grads["bias_k"] = m_dk[:, s:].sum(axis=0).reshape(np.shape(att.p.bias_k))
            grads["bias_v"] = m_dv[:, s:].sum(axis=0).reshape(np.shape(att.p.bias_v))
            m_dk, m_dv = m_dk[:, :s], m_dv[:, :s]
        w_q, w_k, w_v = parts["w"]
        inputs = []
        weights = []
        biases = []
        for m_d, x, w in ((m_dq, att.q_in, w_q), (m_dk, att.k_in, w_k), (m_dv, att.v_in, w_v)):
            inputs.append(m_d @ w)
            weights.append(np.einsum("nte,ntf->ef", m_d, np.abs(x)))
            biases.append(m_d.sum(axis=(0, 1)))
        if att.p.in_proj_weight is not None:
            grads["in_proj_weight"] = np.concatenate(weights)
        else:
            grads["q_proj_weight"], grads["k_proj_weight"], grads["v_proj_weight"] = weights
        if att.p.in_proj_bias is not None:
            grads["in_proj_bias"] = np.concatenate(biases)
        dm = m_ds[..., :s]
        mask = a.get("attn_mask")
        if mask is not None and mask.dtype != np.bool_:
            grads["attn_mask"] = dm.sum(axis=(0, 1)) if mask.ndim == 2 \
                else dm.reshape(n * h, lq, s)
        kpm = a.get("key_padding_mask")
        if kpm is not None and kpm.dtype != np.bool_:
            m_kpm = dm.sum(axis=(1, 2))
            grads["key_padding_mask"] = m_kpm if batched else m_kpm[0]
        dq, dk, dv = (ref._from_batch_first(m, batched, batch_first) for m in inputs)
        if "key" not in a:
            grads["query"] = dq + dk + dv
        elif "value" not in a:
            grads["query"], grads["key"] = dq, dk + dv
        else:
            grads["query"], grads["key"], grads["value"] = dq, dk, dv
        return {k: v for k, v in grads.items() if k in case.differentiable}


MULTI_HEAD_ATTENTION = MultiheadAttentionTerms()


# --- the transformer layers: a running error bound through the reference's blocks ----------
#
# Each intermediate z of a layer carries E_z, a bound on torch's error in z divided by the
# allowance's (n + 8) u_acc: the first-order rounding bound of the chain (Higham, sec. 3.3 and
# 4.2), every operation adding its own sum |terms| (its local rounding) to what its absolute
# Jacobian carries of its inputs' E:
#   linear y = x W^T + b:  E_y = (|x| + E_x) |W|^T + |b|;
#   attention: MultiheadAttentionTerms with |x| + E_x for each input (scores' T, P's R, P v);
#   residual x + y: E_x + E_y + |x + y|;
#   layer norm: E_xhat = inv_std (E_x + mean E_x + |xhat| mean(|xhat| E_x)) (its Jacobian)
#     + (|x| + mean |x|) inv_std (the centring's terms, _Normalization); E_y = |w| (|xhat| +
#     E_xhat) + |b|;
#   gelu: E = G1(z) E_z + 0.5 |z| (1 + |erf|) (GELU's terms; G1 = its derivative's terms);
#     relu: [z > 0] (|z| + E_z).
# The VJP carries E_g back the same way, with |g| + E_g for the cotangent and |z| + E_z for every
# saved activation in each product: linear's dx = g W, dW = g^T x; attention's as
# MultiheadAttentionTerms.vjp; layer norm's inv_std (D + mean D + X mean(D X)) with D = (|g| +
# E_g) |w|, X = |xhat| + E_xhat, times 1 + mean(|xhat| E_xhat) (inv_std's own error);
# gelu's (|dact| + E_dact) G1(z) + |dact| |gelu''(z)| E_z.


def _lmean(a: Array) -> Array:
    return np.mean(a, axis=-1, keepdims=True)


def _attention_block_bounds(att: Any, e_q: Array | float, e_kv: Array | float,
                            gamma: float) -> dict[str, Any]:
    """A layer's attention block (packed projections, no bias_k, no zero attention) with
    input bounds e_q (query) and e_kv (key and value): the forward's parts and E_out. Every
    product of two carried quantities is bounded by |a| E_b + E_a |b| + gamma E_a E_b (the
    product's own rounding |a| |b| inside E_a, E_b; gamma = (n + 8) u_acc, E being errors
    over gamma)."""
    from references import transformer as ref

    h = att.heads
    e = att.q_in.shape[-1]
    w_q, w_k, w_v = (np.abs(w) for w in att.p.weights())
    b_q, b_k, b_v = (0.0 if b is None else np.abs(b) for b in att.p.biases())
    aq, akv = np.abs(att.q_in), np.abs(att.k_in)
    a_q4, a_k4, a_v4 = (ref._split_heads(m, h) for m in (aq @ w_q.T + b_q, akv @ w_k.T + b_k,
                                                           akv @ w_v.T + b_v))
    e_q4, e_k4, e_v4 = (ref._split_heads(m, h) for m in (
        (aq + e_q) @ w_q.T + b_q, (akv + e_kv) @ w_k.T + b_k, (akv + e_kv) @ w_v.T + b_v))
    scale = 1.0 / math.sqrt(e // h)
    p = att.softmax
    t = (a_q4 @ np.swapaxes(e_k4, -1, -2) + e_q4 @ np.swapaxes(a_k4, -1, -2)
         + gamma * e_q4 @ np.swapaxes(e_k4, -1, -2)) * scale
    if att.mask is not None:
        t = t + np.where(np.isfinite(att.mask), np.abs(att.mask), 0.0)
    t = np.where(p > 0, t, 0.0)
    spread = t + np.sum(p * t, axis=-1, keepdims=True)
    pr = np.where(p > 0, p * spread, 0.0)  # P R: P's error (0 where P is exactly 0)
    a_concat = ref._merge_heads(p @ a_v4)
    e_concat = ref._merge_heads(pr @ a_v4 + p @ e_v4 + gamma * pr @ e_v4)
    b_o = att.p.out_proj_bias
    e_out = (a_concat + e_concat) @ np.abs(att.p.out_proj_weight).T \
        + (0.0 if b_o is None else np.abs(b_o))
    return {"att": att, "aq": aq, "akv": akv, "e_q": e_q, "e_kv": e_kv, "a_q4": a_q4,
            "a_k4": a_k4, "a_v4": a_v4, "e_q4": e_q4, "e_k4": e_k4, "e_v4": e_v4, "p": p,
            "pr": pr, "scale": scale, "a_concat": a_concat, "e_concat": e_concat,
            "out": e_out, "w": (w_q, w_k, w_v), "gamma": gamma}


def _first_order(a: Array, e_a: Array, b: Array, e_b: Array, spec: str,
                 gamma: float) -> Array:
    """The bound of a product's error over gamma: |a| E_b + E_a |b| + gamma E_a E_b (einsum
    ``spec``)."""
    return np.einsum(spec, a, e_b) + np.einsum(spec, e_a, b) + gamma * np.einsum(spec, e_a, e_b)


def _attention_block_vjp_bounds(parts: dict[str, Any], g: Array, e_g: Array
                                ) -> tuple[Array, Array, dict[str, Array]]:
    """E of d query, of d key + d value, and the block's parameter and float-mask gradients
    (by _attend_vjp's names), for the cotangent g with bound e_g."""
    from references import transformer as ref

    att, p, pr, scale = parts["att"], parts["p"], parts["pr"], parts["scale"]
    gamma = parts["gamma"]
    h = att.heads
    n, lq, _ = att.q_in.shape
    s = att.k_in.shape[1]
    w_o = np.abs(att.p.out_proj_weight)
    ag = np.abs(g)
    grads: dict[str, Array] = {"out_proj_weight": _first_order(
        ag, e_g + ag, parts["a_concat"], parts["e_concat"] + parts["a_concat"], "nle,nlf->ef",
        gamma)}
    if att.p.out_proj_bias is not None:
        grads["out_proj_bias"] = (ag + e_g).sum(axis=(0, 1))
    d_heads = ref._split_heads(g @ att.p.out_proj_weight, h)
    a_dh = np.abs(d_heads)
    e_dh = ref._split_heads((ag + e_g) @ w_o, h)
    dp = d_heads @ np.swapaxes(att.v4, -1, -2)
    a_v4, e_v4 = parts["a_v4"], parts["e_v4"]
    e_dp = a_dh @ np.swapaxes(e_v4, -1, -2) + e_dh @ np.swapaxes(a_v4, -1, -2) \
        + gamma * e_dh @ np.swapaxes(e_v4, -1, -2)
    e_dv4 = np.swapaxes(pr, -1, -2) @ a_dh + np.swapaxes(p, -1, -2) @ e_dh \
        + gamma * np.swapaxes(pr, -1, -2) @ e_dh
    centred = dp - np.sum(p * dp, axis=-1, keepdims=True)
    ds = p * centred
    e_ds = p * (e_dp + np.sum(p * e_dp, axis=-1, keepdims=True)) \
        + pr * (np.abs(centred) + gamma * (e_dp + np.sum(p * e_dp, axis=-1, keepdims=True)))
    a_ds = np.abs(ds)
    q4, k4 = att.q4, att.k4
    e_dq4 = (e_ds @ np.abs(k4) + a_ds @ parts["e_k4"] + gamma * e_ds @ parts["e_k4"]) * scale
    e_dk4 = (np.swapaxes(e_ds, -1, -2) @ np.abs(q4) + np.swapaxes(a_ds, -1, -2) @ parts["e_q4"]
             + gamma * np.swapaxes(e_ds, -1, -2) @ parts["e_q4"]) * scale
    dq, dk, dv = (ref._merge_heads(x) for x in (ds @ k4 * scale,
                                                 np.swapaxes(ds, -1, -2) @ q4 * scale,
                                                 np.swapaxes(att.probs, -1, -2) @ d_heads))
    e_dq, e_dk, e_dv = (ref._merge_heads(x) for x in (e_dq4, e_dk4, e_dv4))
    w_q, w_k, w_v = parts["w"]
    e_x = {"q": (parts["aq"], parts["e_q"]), "kv": (parts["akv"], parts["e_kv"])}
    weights, biases = [], []
    for d, e_d, which in ((dq, e_dq, "q"), (dk, e_dk, "kv"), (dv, e_dv, "kv")):
        ax, ex = e_x[which]
        ex = np.broadcast_to(np.asarray(ex, dtype=np.float64), ax.shape)
        weights.append(_first_order(np.abs(d), e_d + np.abs(d), ax, ex + ax, "nte,ntf->ef",
                                    gamma))
        biases.append((np.abs(d) + e_d).sum(axis=(0, 1)))
    grads["in_proj_weight"] = np.concatenate(weights)
    if att.p.in_proj_bias is not None:
        grads["in_proj_bias"] = np.concatenate(biases)
    if att.attn_mask is not None and att.attn_mask.dtype != np.bool_:
        grads["attn_mask"] = e_ds.sum(axis=(0, 1)) if att.attn_mask.ndim == 2 \
            else e_ds.reshape(n * h, lq, s)
    if att.key_padding_mask is not None and att.key_padding_mask.dtype != np.bool_:
        grads["key_padding_mask"] = e_ds.sum(axis=(1, 2))
    return ((np.abs(dq) + e_dq) @ w_q, (np.abs(dk) + e_dk) @ w_k + (np.abs(dv) + e_dv) @ w_v,
            grads)


def _norm_bounds(x: Array, e_x: Array, w: Array | None, b: Array | None, eps: float,
                 gamma: float) -> dict[str, Any]:
    xc = x - _lmean(x)
    inv = 1.0 / np.sqrt(_lmean(xc**2) + eps)
    xhat = xc * inv
    e_xhat = inv * (e_x + _lmean(e_x) + np.abs(xhat) * _lmean(np.abs(xhat) * e_x)) \
        + (np.abs(x) + _lmean(np.abs(x))) * inv
    aw = np.ones(x.shape[-1]) if w is None else np.abs(w)
    out = aw * (np.abs(xhat) + e_xhat) + (0.0 if b is None else np.abs(b))
    return {"xhat": xhat, "inv": inv, "e_xhat": e_xhat, "aw": aw, "out": out, "gamma": gamma}


def _norm_vjp_bounds(parts: dict[str, Any], g: Array, e_g: Array
                     ) -> tuple[Array, Array, Array]:
    """E of d x, and the weight's and bias's (summed over all but the feature axis), to first
    order: the local terms inv_std (|d| + mean |d| + |xhat| mean |d xhat|) (d = g w), the
    cotangent's E_g through the same map, xhat's E_xhat in the products with it, and inv_std's
    own relative error mean(|xhat| E_xhat) times the local terms; gamma times the products
    of two errors (E_g's with E_xhat's)."""
    inv, xa, e_xhat, gamma = parts["inv"], np.abs(parts["xhat"]), parts["e_xhat"], \
        parts["gamma"]
    d = np.abs(g) * parts["aw"]
    e_d = e_g * parts["aw"]
    local = inv * (d + _lmean(d) + xa * _lmean(d * xa))
    carried = inv * (e_d + _lmean(e_d) + xa * _lmean(e_d * xa))
    from_xhat = inv * (e_xhat * _lmean(d * xa) + xa * _lmean(d * e_xhat))
    both = inv * (e_xhat * _lmean(e_d * xa) + xa * _lmean(e_d * e_xhat)
                  + e_xhat * _lmean((d + e_d) * e_xhat))
    e_dx = local + carried + from_xhat + gamma * both \
        + (local + carried) * _lmean(xa * e_xhat)
    lead = tuple(range(g.ndim - 1))
    ag = np.abs(g)
    m_w = np.sum(ag * xa + e_g * xa + ag * e_xhat + gamma * e_g * e_xhat, axis=lead)
    return e_dx, m_w, np.sum(ag + e_g, axis=lead)


def _gelu_second(z: Array) -> Array:
    return np.abs(np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi) * (2.0 - z * z))


def _gamma(case: Case) -> float:
    """(n + 8) u_acc of the case (n: ``length``, its largest array), for the bounds' products of
    two errors: u of float32 where every float array holds float32 values (the hard tier
    rounds a case to the dtype under test first), else of float64 (a float64 case held in
    float32 only gets the larger, safe, second-order term)."""
    floats = [a for a in case.arrays.values() if a.dtype.kind == "f"]
    single = all(np.array_equal(a.astype(np.float32).astype(np.float64), a, equal_nan=True)
                 for a in floats)
    n = max((int(a.size) for a in case.arrays.values()), default=1)
    return (n + 8) * (2.0**-24 if single else 2.0**-53)


def _in_range(bounds: Mapping[str, Array] | Array) -> None:
    """Set the case aside (hypothesis.assume) where a bound left float64's range (inf, or NaN
    from inf times an exact 0): the derivation bounds nothing there, as a sum that overflows
    its accumulation type has no computable answer (suite/hardcheck.py, _sums_representable)."""
    from hypothesis import assume

    values = bounds.values() if isinstance(bounds, Mapping) else (bounds,)
    assume(all(bool(np.all(np.isfinite(v))) for v in values))


class _LayerBounds:
    """The transformer terms' shared face: ``_run(case, g)`` carries the first-order bound
    through the layers (forward, and the VJP of ``g``); a bound that leaves float64's range sets
    the case aside (``_in_range``)."""

    def _run(self, case: Case, g: Array | None) -> tuple[Array, dict[str, Array]]:
        raise NotImplementedError

    def forward(self, spec: OpSpec, case: Case) -> Array:
        with np.errstate(all="ignore"):
            out = self._run(case, None)[0]
        _in_range(out)
        return out

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        with np.errstate(all="ignore"):
            grads = self._run(case, g)[1]
        _in_range(grads)
        return grads


class TransformerLayerTerms(_LayerBounds):
    """M (E_acc) for nn.TransformerEncoderLayer / nn.TransformerDecoderLayer records: the
    running error bound above, through the reference's own blocks and caches."""

    def __init__(self, name: str):
        self.name = name

    def _run(self, case: Case, g: Array | None) -> tuple[Array, dict[str, Array]]:
        from references import transformer as ref

        a, o = case.arrays, case.options
        decoder = self.name == "transformer_decoder_layer"
        first, blocks = ("tgt", ref._DECODER) if decoder else ("src", ref._ENCODER)
        layer, x, batched = ref._prepare(a[first], a.get("memory"), dict(a), o["nhead"],
                                         o.get("activation", "relu"),
                                         o.get("layer_norm_eps", 1e-5),
                                         o.get("batch_first", False), o.get("norm_first", False))
        _, e_out, states = _layer_forward_bounds(layer, blocks, x, np.zeros(x.shape), 0.0,
                                                 _gamma(case))
        if g is None:
            return ref._from_batch_first(e_out, batched, o.get("batch_first", False)), {}
        gv = ref._batch_first(np.asarray(g, dtype=np.float64), batched,
                              o.get("batch_first", False))
        _, e_dx, grads = _layer_vjp_bounds(layer, states, gv, np.zeros(gv.shape))
        grads[first] = ref._from_batch_first(e_dx, batched, o.get("batch_first", False))
        if "memory" in grads:
            grads["memory"] = ref._from_batch_first(grads["memory"], batched,
                                                    o.get("batch_first", False))
        for k in grads:
            if k.endswith("key_padding_mask") and not batched:
                grads[k] = grads[k][0]
        return e_out, {k: v for k, v in grads.items() if k in case.differentiable}



def _block_bounds(layer: Any, b: Any, cache: Any, e_in: Array, e_mem: Array | float,
                  gamma: float) -> dict[str, Any]:
    """E of a block's output (attention or feed-forward) for an input bound e_in (and the
    memory's, e_mem)."""
    if b.kind == "ff":
        w1, w2 = (np.abs(layer.required(f"linear{i}_weight")) for i in (1, 2))
        b1, b2 = (layer.get(f"linear{i}_bias") for i in (1, 2))
        e_z = (np.abs(cache.h) + e_in) @ w1.T + (0.0 if b1 is None else np.abs(b1))
        z = cache.z
        if layer.activation == "gelu":
            slope = _gelu_vjp(np.ones(z.shape), z)
            e_act = slope * e_z + _gelu_forward(z)
        else:
            slope = (z > 0).astype(np.float64)
            e_act = slope * (np.abs(z) + e_z)
        out = (np.abs(cache.act) + e_act) @ w2.T + (0.0 if b2 is None else np.abs(b2))
        return {"e_in": e_in, "e_z": e_z, "e_act": e_act, "slope": slope, "out": out,
                "gamma": gamma}
    e_kv = e_in if b.kind == "self_attn" else e_mem
    return _attention_block_bounds(cache, e_in, e_kv, gamma)


def _block_vjp_bounds(layer: Any, b: Any, cache: Any, parts: dict[str, Any], g: Array,
                      e_g: Array) -> tuple[Array, Array, dict[str, Array]]:
    """The exact d input (the reference's), its bound, and the bounds of the block's
    gradients by the layer's names."""
    from references import transformer as ref

    dh, _ = ref._block_vjp(layer, b, g, cache)
    gb = np.abs(g) + e_g
    if b.kind == "ff":
        w1, w2 = (layer.required(f"linear{i}_weight") for i in (1, 2))
        dact = g @ w2
        e_dact = gb @ np.abs(w2)
        ag, aact = np.abs(g), np.abs(cache.act)
        grads = {"linear2_weight": _first_order(ag, gb, aact, aact + parts["e_act"],
                                                "nti,ntj->ij", parts["gamma"]),
                 "linear2_bias": gb.reshape(-1, gb.shape[-1]).sum(axis=0)}
        e_dz = (np.abs(dact) + e_dact) * parts["slope"]
        if layer.activation == "gelu":
            e_dz = e_dz + (np.abs(dact) + parts["gamma"] * e_dact) * _gelu_second(cache.z) \
                * parts["e_z"]
        adz = np.abs(dact) * parts["slope"]  # |dz| <= |dact| slope
        dzb = adz + e_dz
        ah = np.abs(cache.h)
        grads["linear1_weight"] = _first_order(adz, dzb, ah, ah + parts["e_in"],
                                               "nti,ntj->ij", parts["gamma"])
        grads["linear1_bias"] = dzb.reshape(-1, dzb.shape[-1]).sum(axis=0)
        grads = {k: v for k, v in grads.items() if layer.get(k) is not None}
        return dh, dzb @ np.abs(w1), grads
    e_dq, e_dkv, inner = _attention_block_vjp_bounds(parts, g, e_g)
    grads = {}
    if b.kind == "self_attn":
        e_dh = e_dq + e_dkv
    else:
        e_dh = e_dq
        grads["memory"] = e_dkv
    for mask, name in (("attn_mask", b.attn_mask), ("key_padding_mask", b.key_padding_mask)):
        if mask in inner:
            grads[name] = inner.pop(mask)
    grads |= {f"{b.kind}_{k}": v for k, v in inner.items()}
    return dh, e_dh, grads


class TransformerStackTerms(_LayerBounds):
    """M (E_acc) for nn.TransformerEncoder / nn.TransformerDecoder / nn.Transformer records:
    :class:`TransformerLayerTerms`'s running bound through every layer in turn and the final
    layer norm; nn.Transformer's decoder reads the encoder's output with its bound, and the
    memory's gradient (exact, the reference's, and its bound) goes back into the encoder."""

    def __init__(self, name: str):
        self.name = name

    @staticmethod
    def _forward(st: Any, x: Array, e_x: Array, e_mem: Array | float, gamma: float
                 ) -> tuple[Array, Array, list[Any], Any]:
        layers = []
        for i in range(st.num_layers):
            layer = st.layer(i)
            x, e_x, states = _layer_forward_bounds(layer, st.blocks, x, e_x, e_mem, gamma)
            layers.append((layer, states))
        norm = None
        if st.final_norm:
            norm = (x, _norm_bounds(x, e_x, st.norm_weight, st.norm_bias, st.eps, gamma))
            e_x = norm[1]["out"]
            from references import norms as rnorms

            x = rnorms.layer_norm(x, (x.shape[-1],), st.norm_weight, st.norm_bias, st.eps)
        return x, e_x, layers, norm

    @staticmethod
    def _vjp(st: Any, layers: list[Any], norm: Any, gv: Array, e_g: Array
             ) -> tuple[Array, Array, dict[str, Array]]:
        from references import norms as rnorms

        grads: dict[str, Array] = {}
        if norm is not None:
            before, parts = norm
            d = rnorms.layer_norm_vjp(gv, before, (gv.shape[-1],), st.norm_weight,
                                      st.norm_bias, st.eps)
            e_g, m_w, m_b = _norm_vjp_bounds(parts, gv, e_g)
            gv = d["input"]
            grads["norm_weight"] = m_w
            if st.norm_bias is not None:
                grads["norm_bias"] = m_b
        per_layer: list[dict[str, Array]] = []
        for layer, states in reversed(layers):
            gv, e_g, lg = _layer_vjp_bounds(layer, states, gv, e_g)
            per_layer.insert(0, lg)
        for k in per_layer[0]:
            parts_k = [lg[k] for lg in per_layer]
            grads[k] = np.stack(parts_k) if k in st.params else np.sum(parts_k, axis=0)
        return gv, e_g, grads

    def _run(self, case: Case, g: Array | None) -> tuple[Array, dict[str, Array]]:
        from references import transformer as ref

        a, o = case.arrays, case.options
        bf = o.get("batch_first", False)
        common = (o["nhead"], o.get("activation", "relu"), o.get("layer_norm_eps", 1e-5))
        params = {k: v for k, v in a.items() if not k.startswith(("src", "tgt", "memory",
                                                                   "mask"))
                  and not k.startswith(("norm_", "encoder_norm_", "decoder_norm_"))}
        grads: dict[str, Array] = {}
        if self.name == "transformer":
            masks = {k: a.get(k) for k in ("src_mask", "tgt_mask", "memory_mask",
                                           "src_key_padding_mask", "tgt_key_padding_mask",
                                           "memory_key_padding_mask")}
            norm = {k: a.get(k) for k in ("encoder_norm_weight", "encoder_norm_bias",
                                          "decoder_norm_weight", "decoder_norm_bias")}
            enc, dec, x, y, batched = ref._transformer_stacks(
                a["src"], a["tgt"], masks, norm, params, *common, bf,
                o.get("norm_first", False))
            memory, e_mem, enc_layers, enc_norm = self._forward(enc, x, np.zeros(x.shape), 0.0,
                                                                _gamma(case))
            dec = ref._replace_memory(dec, memory)
            _, e_out, dec_layers, dec_norm = self._forward(dec, y, np.zeros(y.shape), e_mem,
                                                           _gamma(case))
            if g is None:
                return ref._from_batch_first(e_out, batched, bf), {}
            gv = ref._batch_first(np.asarray(g, dtype=np.float64), batched, bf)
            _, dec_caches = ref._stack_forward(dec, y)
            _, exact = ref._stack_vjp(dec, gv, dec_caches)
            _, e_dy, dgrads = self._vjp(dec, dec_layers, dec_norm, gv, np.zeros(gv.shape))
            e_mem_g = dgrads.pop("memory")
            _, e_dx, egrads = self._vjp(enc, enc_layers, enc_norm, exact["memory"], e_mem_g)
            grads = {("decoder_" + k if k in dec.params or k.startswith("norm_") else k): v
                     for k, v in dgrads.items()}
            grads |= {("encoder_" + k if k in enc.params or k.startswith("norm_") else k): v
                      for k, v in egrads.items()}
            grads["src"] = ref._from_batch_first(e_dx, batched, bf)
            grads["tgt"] = ref._from_batch_first(e_dy, batched, bf)
        else:
            decoder = self.name == "transformer_decoder"
            first = "tgt" if decoder else "src"
            blocks: tuple[Any, ...]
            if decoder:
                mask_names = {"tgt_mask": "tgt_mask", "memory_mask": "memory_mask",
                              "tgt_key_padding_mask": "tgt_key_padding_mask",
                              "memory_key_padding_mask": "memory_key_padding_mask"}
                blocks = ref._DECODER
            else:
                mask_names = {"src_mask": "mask", "src_key_padding_mask":
                              "src_key_padding_mask"}
                blocks = ref._ENCODER
            x, mem, masks, batched = ref._stack_layout(
                a[first], a.get("memory"), {k: a.get(v) for k, v in mask_names.items()}, bf)
            st = ref._Stack(blocks, masks, params, mem, *common, o.get("norm_first", False),
                            a.get("norm_weight"), a.get("norm_bias"), "norm_weight" in a)
            _, e_out, layers, norm_state = self._forward(st, x, np.zeros(x.shape), 0.0,
                                                         _gamma(case))
            if g is None:
                return ref._from_batch_first(e_out, batched, bf), {}
            gv = ref._batch_first(np.asarray(g, dtype=np.float64), batched, bf)
            _, e_dx, grads = self._vjp(st, layers, norm_state, gv, np.zeros(gv.shape))
            grads[first] = ref._from_batch_first(e_dx, batched, bf)
            if "memory" in grads:
                grads["memory"] = ref._from_batch_first(grads["memory"], batched, bf)
            if not decoder and "src_mask" in grads:
                grads["mask"] = grads.pop("src_mask")
        grads = {k: (v[0] if k.endswith("key_padding_mask") and not batched else v)
                 for k, v in grads.items()}
        return e_out, {k: v for k, v in grads.items() if k in case.differentiable}



def _layer_forward_bounds(layer: Any, blocks: Any, x: Array, e_x: Array,
                          e_mem: Array | float, gamma: float
                          ) -> tuple[Array, Array, list[Any]]:
    """A layer's output (batch-first), its bound for an input bound e_x (the memory's e_mem),
    and what the VJP bound reads."""
    from references import transformer as ref

    states = []
    for b in blocks:
        if layer.norm_first:
            norm = _norm_bounds(x, e_x, layer.get(f"{b.norm}_weight"),
                                layer.get(f"{b.norm}_bias"), layer.eps, gamma)
            y, cache = ref._block(layer, b, layer.layer_norm(b.norm, x))
            block = _block_bounds(layer, b, cache, norm["out"], e_mem, gamma)
            states.append((b, norm, block, cache, x))
            x = x + y
            e_x = e_x + block["out"] + np.abs(x)
        else:
            y, cache = ref._block(layer, b, x)
            block = _block_bounds(layer, b, cache, e_x, e_mem, gamma)
            u = x + y
            norm = _norm_bounds(u, e_x + block["out"] + np.abs(u),
                                layer.get(f"{b.norm}_weight"), layer.get(f"{b.norm}_bias"),
                                layer.eps, gamma)
            states.append((b, norm, block, cache, u))
            x = layer.layer_norm(b.norm, u)
            e_x = norm["out"]
    return x, e_x, states


def _layer_vjp_bounds(layer: Any, states: list[Any], gv: Array, e_g: Array
                      ) -> tuple[Array, Array, dict[str, Array]]:
    """The exact d input (batch-first), its bound, and the bounds of the layer's gradients
    (by the layer's names; the memory's summed over the blocks) for the cotangent gv with
    bound e_g."""
    grads: dict[str, Array] = {}

    def add(more: dict[str, Array]) -> None:
        for k, v in more.items():
            grads[k] = grads[k] + v if k in grads else v

    for b, norm, block, cache, inner in reversed(states):
        if layer.norm_first:
            dh, e_dh, bgrads = _block_vjp_bounds(layer, b, cache, block, gv, e_g)
            d_ln, _ = layer.layer_norm_vjp(b.norm, dh, inner)
            e_dx, m_w, m_b = _norm_vjp_bounds(norm, dh, e_dh)
            gv = gv + d_ln
            e_g = e_g + e_dx + np.abs(gv)
        else:
            du, _ = layer.layer_norm_vjp(b.norm, gv, inner)
            e_du, m_w, m_b = _norm_vjp_bounds(norm, gv, e_g)
            dxb, e_dxb, bgrads = _block_vjp_bounds(layer, b, cache, block, du, e_du)
            gv = du + dxb
            e_g = e_du + e_dxb + np.abs(gv)
        add(bgrads)
        add({k: v for k, v in ((f"{b.norm}_weight", m_w), (f"{b.norm}_bias", m_b))
             if layer.get(k) is not None})
    return gv, e_g, grads


def _bce_logits_parts(case: Case) -> tuple[Array, Array, Array, Array]:
    x = np.asarray(case.arrays["input"], dtype=np.float64)
    t = np.asarray(case.arrays["target"], dtype=np.float64)
    w = np.asarray(case.arrays.get("weight", 1.0), dtype=np.float64)
    p = np.asarray(case.arrays.get("pos_weight", 1.0), dtype=np.float64)
    return x, t, w, p


def _bce_logits_pointwise(spec: OpSpec, case: Case) -> Array:
    """torch's (1 - t) x + (1 + (p - 1) t) softplus(-x), weighted: the two terms cancel for
    x << 0 (leaving p t |x|), so M_i = |w| (|1 - t| |x| + (1 + |p - 1| t) softplus(-x))."""
    x, t, w, p = _bce_logits_parts(case)
    return np.abs(w) * (np.abs(1 - t) * np.abs(x) + (1 + np.abs(p - 1) * t) * _softplus(-x))


def _gbar(g: Array, case: Case, shape: tuple[int, ...]) -> Array:
    """|g| spread over the pointwise losses: itself for "none", divided by their count for
    "mean", broadcast for "sum"."""
    gbar = np.abs(np.asarray(g, dtype=np.float64))
    if case.options.get("reduction", "mean") == "mean":
        gbar = gbar / max(1, int(np.prod(shape)))
    return np.broadcast_to(gbar, shape)


def _bce_logits_vjp(spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
    """torch's input gradient gbar w ((1 + (p - 1) t) sigmoid(x) - p t) cancels terms of size
    p t (to 1 - t at sigmoid(x) = 1: 0 in float32 for p = 6e5); the target's
    gbar w ((p - 1) softplus(-x) - x) terms of size |x| and |p - 1| softplus(-x)."""
    x, t, w, p = _bce_logits_parts(case)
    shape = np.broadcast_shapes(x.shape, t.shape, w.shape, p.shape)
    gbar = _gbar(g, case, shape)
    s = _sigmoid(x)
    grads = {"input": gbar * np.abs(w) * ((1 + np.abs(p - 1) * t) * s + p * t),
             "target": gbar * np.abs(w) * (np.abs(x) + np.abs(p - 1) * _softplus(-x))}
    return {name: _sum_to(m, case.arrays[name].shape) for name, m in grads.items()
            if name in case.differentiable}


def _sum_to(a: Array, shape: tuple[int, ...]) -> Array:
    """``a`` summed over the dimensions it was broadcast along to reach its shape."""
    a = np.asarray(a, dtype=np.float64)
    while a.ndim > len(shape):
        a = a.sum(axis=0)
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and a.shape[i] != 1)
    return np.broadcast_to(np.sum(a, axis=axes, keepdims=True) if axes else a, shape)


BCE_WITH_LOGITS = Reduced(vjp=_bce_logits_vjp, pointwise=_bce_logits_pointwise)


def _kl_parts(g: Array, case: Case) -> tuple[Array, Array, Array, bool]:
    x = np.asarray(case.arrays["input"], dtype=np.float64)
    t = np.asarray(case.arrays["target"], dtype=np.float64)
    shape = np.broadcast_shapes(x.shape, t.shape)
    if case.options.get("reduction", "mean") == "batchmean":
        gbar = np.broadcast_to(np.abs(np.asarray(g, dtype=np.float64))
                               / (shape[0] if len(shape) else 1), shape)
    else:
        gbar = _gbar(g, case, shape)
    return x, t, gbar, bool(case.options.get("log_target", False))


def _kl_div_pointwise(spec: OpSpec, case: Case) -> Array:
    """kl_div's l = t (log t - x) or exp(t) (t - x): log t - x cancels terms |log t| and |x|
    (t - x of two rounded inputs is exact to one rounding: no cancellation term)."""
    x, t, _, log_target = _kl_parts(np.ones(()), case)
    if log_target:
        return np.abs(np.exp(t) * (t - x))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t > 0, t * (np.abs(np.log(np.where(t > 0, t, 1.0))) + np.abs(x)), 0.0)


def _kl_div_vjp(spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
    """The target gradient gbar (log t - x + 1), or gbar (exp(t) (t - x) + exp(t)) as autograd
    sums it for log_target: terms gbar (|log t - x| + 1) and gbar exp(t) (|t - x| + 1) (torch
    2.14.1 float32, log_target, t - x + 1 ~ -0.005 of exp(t) ~ 5000: 0.0019 off on -26.14 with
    the reference agreeing with finite differences); the input gradient -gbar t or
    -gbar exp(t) has none beyond its own rounding."""
    x, t, gbar, log_target = _kl_parts(g, case)
    if log_target:
        e = np.exp(t)
        grads = {"input": gbar * e, "target": gbar * e * (np.abs(t - x) + 1)}
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            logt = np.log(np.where(t > 0, t, 1.0))
        grads = {"input": gbar * np.abs(t), "target": gbar * (np.abs(logt - x) + 1)}
    return {name: _sum_to(m, case.arrays[name].shape) for name, m in grads.items()
            if name in case.differentiable}


KL_DIV = Reduced(vjp=_kl_div_vjp, pointwise=_kl_div_pointwise)


def _multilabel_soft_margin_vjp(spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
    """torch composes l_n = -(1 / C) sum_c w_c (y logsigmoid(x) + (1 - y) logsigmoid(-x))
    from autograd ops: the target's gradient is gbar w (logsigmoid(x) - logsigmoid(-x)) / C,
    a difference of terms of size |logsigmoid(x)| + |logsigmoid(-x)| (2 log 2 at x = 0, where
    the exact difference x vanishes); the input's gbar w (y sigmoid(-x) - (1 - y) sigmoid(x))
    / C, terms of size |y| sigmoid(-x) + |1 - y| sigmoid(x). gbar: |g| per sample (over N for
    "mean")."""
    x = np.asarray(case.arrays["input"], dtype=np.float64)
    y = np.broadcast_to(np.asarray(case.arrays["target"], dtype=np.float64), x.shape)
    w = np.abs(np.asarray(case.arrays.get("weight", np.ones(x.shape[-1:])), dtype=np.float64))
    gbar = np.abs(np.asarray(g, dtype=np.float64))
    reduction = case.options.get("reduction", "mean")
    if reduction == "mean" and x.ndim == 2:
        gbar = gbar / max(1, x.shape[0])
    if reduction == "none" and x.ndim == 2:
        gbar = gbar.reshape(-1, 1)
    factor = np.broadcast_to(gbar * w / max(1, x.shape[-1]), x.shape)
    grads = {"input": factor * (np.abs(y) * _sigmoid(-x) + np.abs(1 - y) * _sigmoid(x)),
             "target": factor * (_softplus(-x) + _softplus(x))}
    return {name: _sum_to(m, case.arrays[name].shape) for name, m in grads.items()
            if name in case.differentiable}


MULTILABEL_SOFT_MARGIN = Reduced(vjp=_multilabel_soft_margin_vjp)


class MultilabelMargin(Reduced):
    """multilabel_margin_loss: each active pair (j a target position, i a non-target class)
    adds +s/C to the input gradient at i and -s/C at y_j (s the sample's cotangent, over N for
    "mean"), so element c of the gradient is a sum of at most T + count_c C such signed terms
    (T the sample's target positions, count_c those holding c: a class repeated in the target
    counts once per position): M = |s| / C (T + count_c C), and the longest sum has T C terms.
    The forward sums positive hinges: :class:`Reduced`."""

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        from references.losses_margin import _margin_classes, _multilabel_multiplicity

        x, t, _ = _margin_classes(case.arrays["input"], case.arrays["target"], per_class=True)
        count = _multilabel_multiplicity(t)
        n, c = x.shape
        s = np.abs(np.asarray(g, dtype=np.float64))
        if case.options.get("reduction", "mean") == "mean":
            s = s / max(1, n)
        s = np.broadcast_to(np.reshape(s, (-1, 1)) if s.size == n else s, (n, 1))
        positions = np.sum(count, axis=1, keepdims=True)
        m = s / max(1, c) * (positions + count * c)
        return {"input": np.reshape(m, np.shape(case.arrays["input"]))}

    def length(self, spec: OpSpec, case: Case) -> int:
        """T C for the sample with the most target positions."""
        from references.losses_margin import _margin_classes, _multilabel_multiplicity

        x, t, _ = _margin_classes(case.arrays["input"], case.arrays["target"], per_class=True)
        if x.size == 0:
            return 1
        return max(1, int(np.max(np.sum(_multilabel_multiplicity(t), axis=1))) * x.shape[1])


MULTILABEL_MARGIN = MultilabelMargin()


class Ctc:
    """M for ctc_loss, whose forward and gradient are log-space recursions: each of the T steps
    of log alpha (and log beta) rounds a value of magnitude <= A = sum_t max_c |log p_t(c)|
    (a path's log-probability) and a log-sum-exp, so their exponents are off by <= (T + 2) u
    (A + 2), and the occupancy gamma = exp(log alpha + log beta - log p + nll) torch's gradient
    is built from by a relative 2 (T + 2) u (A + 2) (the record's float32 widening measured
    2.8 eps nll on the typical draws, inside that bound). As M_acc at length 1 (the allowance
    (1 + HARD_EXTRA_ROUNDINGS) u M_acc): forward |loss of the A's|, gradient |g gamma| times
    2 (T + 2) (A + 2) / 9, plus |g| p (the exp(log p) term, a few ulp)."""

    def length(self, spec: OpSpec, case: Case) -> int:
        return 1

    def _reach(self, case: Case) -> tuple[Array, int]:
        """A per sample and T."""
        lp = np.asarray(case.arrays["log_probs"], dtype=np.float64)
        batched = lp.ndim == 3
        lp3 = lp if batched else lp[:, None, :]
        lengths = np.atleast_1d(case.arrays["input_lengths"]).astype(int)
        t = lp3.shape[0]
        steps = np.arange(t)[:, None] < lengths[None, :]
        a = np.sum(np.where(steps, np.max(np.abs(lp3), axis=-1), 0.0), axis=0)
        return a, t

    def forward(self, spec: OpSpec, case: Case) -> Array:
        """The loss's reduction of 2 (T + 2) (A_b + 2) / 9 per sample."""
        a, t = self._reach(case)
        per = 2 * (t + 2) * (a + 2) / (1 + 8)
        reduction = case.options.get("reduction", "mean")
        if reduction == "none":
            return per.reshape(np.shape(spec.reference(case)))
        if reduction == "sum":
            return np.asarray(np.sum(per))
        lengths = np.maximum(np.atleast_1d(case.arrays["target_lengths"]).astype(float), 1.0)
        return np.asarray(np.mean(per / lengths))

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        """|g gamma| 2 (T + 2) (A + 2) / 9 + |g| p."""
        a, t = self._reach(case)
        derivative = np.abs(spec.reference_vjp(g, case)["log_probs"])  # |gbar gamma|
        torch_form = spec.reference_vjp(g, case, as_torch=True)["log_probs"]
        lp = np.asarray(case.arrays["log_probs"], dtype=np.float64)
        exp_term = np.abs(torch_form + derivative * np.sign(
            spec.reference_vjp(g, case)["log_probs"]) * -1.0)
        scale = 2 * (t + 2) * (a + 2) / (1 + 8)
        scale = scale if lp.ndim == 3 else scale[0]
        shaped = scale[None, :, None] if lp.ndim == 3 else scale
        return {"log_probs": derivative * shaped + np.abs(exp_term)}


CTC = Ctc()


def _log_softmax_along(x: Array, dim: int) -> tuple[Array, Array]:
    z = np.asarray(x, dtype=np.float64)
    z = z - np.max(z, axis=dim, keepdims=True, initial=-np.inf)  # -inf: an empty dim
    lse = np.log(np.sum(np.exp(z), axis=dim, keepdims=True))
    return z - lse, np.abs(z) + lse + 1.0  # log p, and M of log p (_log_softmax_terms)


def _cross_entropy_parts(case: Case) -> tuple[Array, Array, Array, Array, Array, int]:
    """log p, its M, the (smoothed) weighted target distribution w t' (zero at ignored
    targets), and the mean's denominator (the kept targets' weights, or the rows)."""
    x = np.asarray(case.arrays["input"], dtype=np.float64)
    dim = 0 if x.ndim == 1 else 1
    c = x.shape[dim]
    logp, m_logp = _log_softmax_along(x, dim)
    w = np.asarray(case.arrays.get("weight", np.ones(c)), dtype=np.float64)
    wshape = [1] * x.ndim
    wshape[dim] = c
    w = w.reshape(wshape)
    target = case.arrays["target"]
    smoothing = float(case.options.get("label_smoothing", 0.0))
    if target.dtype.kind == "f":
        t = (1 - smoothing) * np.asarray(target, dtype=np.float64) + smoothing / c
        kept = np.ones(np.delete(x.shape, dim)) if x.ndim > 1 else np.ones(())
        denominator = float(kept.size)
    else:
        ignore = case.options.get("ignore_index", -100)
        keep = target != ignore
        onehot = np.moveaxis(np.eye(c)[np.where(keep, target, 0)], -1, dim)
        t = ((1 - smoothing) * onehot + smoothing / c) * np.expand_dims(keep, dim)
        denominator = float(np.sum(np.where(keep, np.asarray(w).reshape(-1)[
            np.where(keep, target, 0)], 0.0)))
    return logp, m_logp, w * t, np.abs(w * t), np.asarray(denominator), dim


def _cross_entropy_gbar(g: Array, case: Case, rows: tuple[int, ...],
                        denominator: float) -> Array:
    gbar = np.abs(np.asarray(g, dtype=np.float64))
    if case.options.get("reduction", "mean") == "mean":
        gbar = gbar / max(denominator, np.finfo(np.float64).tiny)
    return np.broadcast_to(gbar, rows)


def _cross_entropy_pointwise(spec: OpSpec, case: Case) -> Array:
    """-sum_c w_c t'_c log p_c with log p = x - max - log S: M_i = sum_c |w_c t'_c| M(log p_c)."""
    _, m_logp, _, wt_abs, _, dim = _cross_entropy_parts(case)
    return np.sum(wt_abs * m_logp, axis=dim)


def _cross_entropy_vjp(spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
    """The input gradient (sum_k w_k t'_k) p_c - w_c t'_c cancels terms of size
    |w_c t'_c| (weights spanning 1e-6..1e6 leave rounding of the largest), and p_c is
    exp(log p_c) of the log-probability cross_entropy = nll_loss(log_softmax(x)) keeps in the
    dtype (log_softmax's backward exponentiates its saved output): log p_c's rounding,
    u M(log p_c) absolute, is a relative error of p_c as large (|log p_c| ~ 20 at p_c ~ 2.5e-9:
    5 % in bfloat16). M = gbar (p_c M(log p_c) sum_k |w_k t'_k| + |w_c t'_c|); a probability
    target's gradient -gbar w log p carries M(log p)."""
    logp, m_logp, _, wt_abs, denominator, dim = _cross_entropy_parts(case)
    rows = tuple(np.delete(logp.shape, dim)) if logp.ndim > 1 else ()
    gbar = np.expand_dims(_cross_entropy_gbar(g, case, rows, float(denominator)), dim) \
        if logp.ndim > 1 else _cross_entropy_gbar(g, case, rows, float(denominator))
    p = np.exp(logp)
    grads = {"input": gbar * (p * m_logp * np.sum(wt_abs, axis=dim, keepdims=True) + wt_abs)}
    if "target" in case.differentiable:
        c = logp.shape[dim]
        w = np.asarray(case.arrays.get("weight", np.ones(c)), dtype=np.float64)
        wshape = [1] * logp.ndim
        wshape[dim] = c
        smoothing = float(case.options.get("label_smoothing", 0.0))
        grads["target"] = gbar * np.abs(w.reshape(wshape)) * m_logp * (1 - smoothing)
    return grads


CROSS_ENTROPY = Reduced(vjp=_cross_entropy_vjp, pointwise=_cross_entropy_pointwise)


def _triplet_pointwise(spec: OpSpec, case: Case) -> Array:
    """margin + d(a, p) - d(a, n): each distance is a p-norm of differences u - v + eps, each
    rounded to u (|u| + |v| + eps), and a p-norm's derivative w.r.t. a component is at most 1:
    M_row = |margin| + sum over features of 2 |a| + |p| + |n| (and |p| + |n| with the swap),
    plus 3 eps per feature."""
    a, p, n = (np.abs(np.asarray(case.arrays[k], dtype=np.float64))
               for k in ("anchor", "positive", "negative"))
    a, p, n = np.broadcast_arrays(a, p, n)
    extra = (p + n) if case.options.get("swap", False) else 0.0
    eps = abs(float(case.options.get("eps", 1e-6)))
    return abs(float(case.options.get("margin", 1.0))) + np.sum(
        2 * a + p + n + extra + 3 * eps, axis=-1)


TRIPLET = Reduced(pointwise=_triplet_pointwise)


def _gaussian_nll_parts(case: Case) -> tuple[Array, Array, Array, tuple[int, ...]]:
    """(|x| + |t| broadcast, |x - t|, v = max(var, eps) broadcast, var's shape)."""
    from references.losses_probabilistic import _gaussian_var

    x = np.asarray(case.arrays["input"], dtype=np.float64)
    t = np.asarray(case.arrays["target"], dtype=np.float64)
    var = np.asarray(case.arrays["var"], dtype=np.float64)
    v = np.maximum(_gaussian_var(x, var), float(case.options.get("eps", 1e-6)))
    size, d, v = np.broadcast_arrays(np.abs(x) + np.abs(t), np.abs(x - t), v)
    return size, d, v, var.shape


def _gaussian_nll_pointwise(spec: OpSpec, case: Case) -> Array:
    """0.5 (log v + (x - t)^2 / v) (+ 0.5 log(2 pi)): log v and the square have opposite signs
    for v < 1 and cancel; the square of the rounded difference x - t (rounded to
    u (|x| + |t|)) moves by 2 u (|x| + |t|) |x - t| / v: M = 0.5 (|log v| + 2 (|x| + |t|)^2 / v)
    (+ 0.5 log(2 pi) with ``full``)."""
    size, _, v, _ = _gaussian_nll_parts(case)
    full = 0.5 * np.log(2 * np.pi) if case.options.get("full", False) else 0.0
    return 0.5 * (np.abs(np.log(v)) + 2 * size**2 / v) + full


def _gaussian_nll_vjp(spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
    """dl/dx = -dl/dt = s (x - t) / v: M = s (|x| + |t|) / v (the rounded difference);
    dl/dvar = 0.5 s (1 / v - (x - t)^2 / v^2) cancels where (x - t)^2 ~ v: M = 0.5 s (1 / v +
    2 (|x| + |t|)^2 / v^2). s = |g| per element (over the element count for "mean"); each
    summed to its argument's shape over the dimensions it was broadcast along."""
    size, _, v, var_shape = _gaussian_nll_parts(case)
    s = np.abs(np.asarray(g, dtype=np.float64))
    if case.options.get("reduction", "mean") == "mean":
        s = s / max(1, v.size)
    s = np.broadcast_to(s, v.shape)
    m_x = s * size / v
    m_var = 0.5 * s * (1.0 / v + 2 * size**2 / v**2)
    x_shape = np.shape(case.arrays["input"])
    if var_shape == x_shape[:-1] and var_shape != x_shape:
        m_var = np.sum(m_var, axis=-1)
    return {"input": sum_to_shape(m_x, x_shape),
            "target": sum_to_shape(m_x, np.shape(case.arrays["target"])),
            "var": np.reshape(sum_to_shape(m_var, var_shape), var_shape)}


GAUSSIAN_NLL = Reduced(vjp=_gaussian_nll_vjp, pointwise=_gaussian_nll_pointwise)


def _poisson_parts(case: Case) -> tuple[Array, Array, Array, bool]:
    """(x, y broadcast against each other, the y > 1 mask of Stirling's term, log_input)."""
    x = np.asarray(case.arrays["input"], dtype=np.float64)
    y = np.asarray(case.arrays["target"], dtype=np.float64)
    x, y = np.broadcast_arrays(x, y)
    return x, y, y > 1, bool(case.options.get("log_input", True))


def _poisson_nll_pointwise(spec: OpSpec, case: Case) -> Array:
    """exp(x) - y x (log_input) or x - y log(x + eps), plus with ``full`` Stirling's
    y log y - y + 0.5 log(2 pi y) where y > 1: the terms cancel (a rate near its count), so
    M = exp(x) + |y x| or |x| + |y log(x + eps)| + |y| (the rounding of x + eps, u (x + eps),
    moves y log(x + eps) by y u), plus |y log y| + |y| + 0.5 |log(2 pi y)| for Stirling's
    term."""
    x, y, big, log_input = _poisson_parts(case)
    eps = float(case.options.get("eps", 1e-8))
    with np.errstate(all="ignore"):
        if log_input:
            m = np.exp(x) + np.abs(y * x)
        else:
            m = np.abs(x) + np.abs(y * np.log(x + eps)) + np.abs(y)
        if case.options.get("full", False):
            ys = np.where(big, y, 2.0)
            m = m + np.where(big, np.abs(ys * np.log(ys)) + ys
                             + 0.5 * np.abs(np.log(2 * np.pi * ys)), 0.0)
    return m


def _poisson_nll_vjp(spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
    """dl/dx = exp(x) - y (log_input) or 1 - y / (x + eps): a difference of terms of
    M = s (exp(x) + |y|) or s (1 + |y| / (x + eps)), s = |g| per element (over the element
    count for "mean"), summed to the input's shape. The target's gradient is not derived."""
    x, y, _, log_input = _poisson_parts(case)
    eps = float(case.options.get("eps", 1e-8))
    s = np.abs(np.asarray(g, dtype=np.float64))
    if case.options.get("reduction", "mean") == "mean":
        s = s / max(1, x.size)
    s = np.broadcast_to(s, x.shape)
    with np.errstate(all="ignore"):
        m = s * (np.exp(x) + np.abs(y)) if log_input else s * (1 + np.abs(y) / np.abs(x + eps))
    return {"input": sum_to_shape(m, np.shape(case.arrays["input"]))}


POISSON_NLL = Reduced(vjp=_poisson_nll_vjp, pointwise=_poisson_nll_pointwise)


INSTANCE_NORM = _InstanceNorm(_instance_norm_layout)
LOCAL_RESPONSE_NORM = LocalResponseNorm()
COSINE_SIMILARITY = CosineSimilarity()


class PairwiseDistance:
    """pairwise_distance: dist = S^(1/p), S = sum_i |d_i|^p over the last dim, d = x1 - x2 + eps.
    S is a sum of n non-negative terms (finite p != 0; p < 0 too), so its rounding is relative
    to S itself, and dist's is 1/|p| of that: within (n - 1) u max(1, 1/|p|) dist (Higham eq.
    (4.4)). d is formed by two roundings, a relative error of at most
    2 u c_i, c_i = (|x1_i| + |x2_i| + |eps|) / |d_i| (large where x1 - x2 cancels), which moves
    dist by dist sum_i w_i 2 u c_i, w_i = |d_i|^p / S (each |d_i|^p moves by p times its
    relative error, dist by 1/p of S's). So M_acc = dist (max(1, 1/|p|) + sum_i w_i c_i) per
    unit of (n + 8) u; for p = +-inf (no sum) dist (1 + c_i) at the extreme component.
    The gradient g sign(d_i) (|d_i| / dist)^(p - 1) moves relatively by |p - 1| times
    (d_i's relative error + dist's): M_acc = |grad_i| (1 + |p - 1| (c_i + max(1, 1/|p|) +
    sum_j w_j c_j)), summed back over broadcast copies like the gradient; p = +-inf gives
    sign(d_i) over the tied count, exact (M = |grad|). Components with d_i = 0 contribute
    nothing (their gradient is 0 by convention, their term |0|^p is 0 for p > 0)."""

    def _parts(self, case: Case) -> tuple[Array, Array, Array, Array, float]:
        """(d, c, w, dist keeping the last dim, p) on the broadcast pair."""
        p, eps = case.options.get("p", 2.0), case.options.get("eps", 1e-6)
        a, b = np.broadcast_arrays(case.arrays["x1"], case.arrays["x2"])
        d = a - b + eps
        ad = np.abs(d)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            c = np.where(ad > 0, (np.abs(a) + np.abs(b) + abs(eps)) / np.where(ad > 0, ad, 1.0),
                         0.0)
            if math.isinf(p):
                extreme = ad == (np.max if p > 0 else np.min)(ad, axis=-1, keepdims=True)
                w = extreme / np.sum(extreme, axis=-1, keepdims=True)
                dist = np.max(np.where(extreme, ad, 0.0), axis=-1, keepdims=True)
            elif p == 0:
                w = np.zeros(d.shape)
                dist = np.sum(ad != 0, axis=-1, keepdims=True).astype(np.float64)
            else:
                powers = np.where(ad > 0, ad ** p, 0.0 if p > 0 else np.inf)
                s = np.sum(powers, axis=-1, keepdims=True)
                w = np.nan_to_num(np.where(ad > 0, powers / s, 0.0))
                dist = s ** (1.0 / p)
        return d, c, w, dist, p

    def _relative(self, w: Array, c: Array, p: float) -> Array:
        """dist's relative error per unit of (n + 8) u: the sum's and d's."""
        summed = 1.0 if math.isinf(p) or p == 0 else max(1.0, 1.0 / abs(p))
        return summed + np.sum(w * c, axis=-1, keepdims=True)

    def forward(self, spec: OpSpec, case: Case) -> Array:
        _, c, w, dist, p = self._parts(case)
        m = np.abs(dist) * self._relative(w, c, p)
        return m if case.options.get("keepdim", False) else m[..., 0]

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        _, c, w, _, p = self._parts(case)
        a, b = np.broadcast_arrays(case.arrays["x1"], case.arrays["x2"])
        with np.errstate(all="ignore"):
            # |grad| on the broadcast pair (before the sum over copies): x1's, without the sum
            full = np.abs(distance.pairwise_distance_vjp(g, a, b, **case.options)["x1"])
            scale = 1.0 if math.isinf(p) or p == 0 else abs(p - 1.0)
            m = np.nan_to_num(full * (1.0 + scale * (c + self._relative(w, c, p))))
        return {k: sum_to_shape(m, np.shape(case.arrays[k])) for k in ("x1", "x2")}


PAIRWISE_DISTANCE = PairwiseDistance()


class EmbeddingBag:
    """embedding_bag: sum and mean are linear in the table (and sum bilinear with the
    per-sample weights): :data:`MULTILINEAR`. In max mode each output element is one table
    entry (M = its magnitude), and each table gradient element sums the cotangents of the bags
    whose maximum it is, M = sum |g| over them: the VJP of |g| at the case's own values (the
    argmax does not move), not at their absolute values."""

    def forward(self, spec: OpSpec, case: Case) -> Array:
        if case.options.get("mode") == "max":
            return np.abs(spec.reference(case))
        return MULTILINEAR.forward(spec, case)

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        if case.options.get("mode") == "max":
            return {k: np.abs(v) for k, v in spec.reference_vjp(np.abs(g), case).items()}
        return MULTILINEAR.vjp(spec, g, case)


EMBEDDING_BAG = EmbeddingBag()


# --- Recurrent gates: derivatives formed from rounded activations ---------------------------


class RecurrentGates:
    r"""What a correct kernel's VJP of a recurrent cell or layer is off by because it forms each
    gate's derivative from the gate's ROUNDED activation, as torch's kernels do (autograd's
    sigmoid_backward g (1 - y) y and tanh_backward g (1 - y^2) read the saved output y; torch's
    CPU GRU cell forms h' = n + z (h - n), whose backward gives dn = dh' - dh' z).

    Derivation. A stored activation carries a relative error |delta| <= rho = (1 +
    HARD_EXTRA_ROUNDINGS) u_acc beyond what its rounded pre-activation explains (sigmoid =
    1 / (1 + exp(-a)) is an exp within an ulp, an add and a reciprocal; tanh within an ulp:
    a few ulp, and the pre-activation's own rounding is the backward-stable part the hard tier's
    shake already measures). The derivative factor formed from it then moves by

        sigma' = s (1 - s):   |d(s - s^2)/ds| |delta s| = |1 - 2 s| s rho
        tanh'  = 1 - t^2:     2 t^2 rho
        GRU's 1 - z:          z rho

    ABSOLUTE errors, where the factor itself may be e^-|a|: near saturation (s = 1 - 2.5e-6 at
    a = 12.9) the factor's relative error is rho / (1 - s), 2.4e-2 in float32, which no relative
    row covers and no perturbation of the inputs reproduces (suite/tolerances.py, "The hard
    tier": measured on torch 2.13.0's float32 gru, whose weight gradient was off by 1.8e-3
    relative, and equal to 6e-9 to the reference's BPTT with float32-rounded activations). Each
    such error is injected where its factor multiplies the cotangent (|cotangent| times the bound
    above), and carried back through the rest of BPTT to first order by the same linear maps
    with every entry replaced by its magnitude (|W|, |x|, |h|, each derivative factor, the
    dropout scale): a bound E >= 0 on every later cotangent's error, and on each gradient's.
    An activation that multiplies a cotangent directly (the LSTM's dc' f, dc' g, dm tanh(c');
    the GRU's dh' z, da_n r, and dh' (h - n), where n's rounding is not relative to h - n once
    they cancel) adds rho |cotangent activation| the same way. Second-order products of these
    errors (rho^2) are dropped. relu's derivative is exact.
    Nothing is fitted to torch: a gate whose derivative is formed from a float16 activation, or
    the wrong sign, moves the gradient by 2^-11 / (1 - s) or O(1) (tests/test_hard.py plants both).
    """

    def __init__(self, kind: str, nonlinearity: str = "tanh", cell: bool = False):
        self.kind = kind
        self.nonlinearity = nonlinearity
        self.cell = cell

    def forward(self, spec: OpSpec, case: Case) -> Array:
        """M of each output element, for the finite-difference check's rounding floor
        (suite/tolerances.py, FD_ROUNDING_ULPS): what a float64 evaluation of the reference
        can be off by, in ulps of M, where the output is far smaller than what it is formed
        from. Where the GRU's update gate saturates, h' = (1 - z) n + z h is tiny (-9.6e-9
        from n ~ -1 with the input at scale 9, the thorough profile's seed 1301) while z's own
        rounding moves it by ~eps |h - n|: the difference quotient of a correct reference was
        0.9 % off at h = 1e-6, beyond a floor of |h'|. A layer carries each step's M to the
        next step and layer (:func:`_network_sizes`): a one-step GRU layer whose output was
        -4.3e-8 failed the floor of |h'| by 1.6x under seed 2143."""
        if self.cell:
            a = {k: np.asarray(v, dtype=np.float64) for k, v in case.arrays.items()}
            _, cache, batched = recurrent._cell(
                self.kind, a["input"], a.get("h_0"), a.get("c_0"), a["weight_ih"],
                a["weight_hh"], a.get("bias_ih"), a.get("bias_hh"), self.nonlinearity)
            p = recurrent._Params(a["weight_ih"], a["weight_hh"], a.get("bias_ih"),
                                  a.get("bias_hh"))
            zero = np.zeros_like(cache["h"])
            state = (zero,) if self.kind != "lstm" else (zero, zero)
            return recurrent._cell_flat(
                _step_sizes(self.kind, cache, p, np.zeros_like(cache["x"]), state,
                            self.nonlinearity), batched)
        net, arrays, layers = self._network(case)
        return _network_sizes(self.kind, net, arrays, layers, self.nonlinearity)

    def _network(self, case: Case) -> tuple[Any, dict[str, Array], _Layers]:
        """The reference's forward (its caches) on the case, the weights by torch's names,
        and the layer options the bounds walk."""
        arrays = {k: np.asarray(v, dtype=np.float64) if v.dtype.kind == "f" else v
                  for k, v in case.arrays.items()}
        input, h_0, c_0 = arrays.pop("input"), arrays.pop("h_0", None), arrays.pop("c_0", None)
        lengths = arrays.pop("lengths", None)
        options = dict(case.options)
        training = bool(options.pop("training", True))
        dropout = float(options.pop("dropout", 0.0)) if training else 0.0
        layers = _Layers(int(options.get("num_layers", 1)),
                         bool(options.get("bidirectional", False)), dropout,
                         options.pop("dropout_mask", None))
        net = recurrent._forward(self.kind, input, h_0, c_0, lengths, arrays, layers.num_layers,
                                 layers.bidirectional, bool(options.get("batch_first", False)),
                                 dropout, layers.dropout_mask, self.nonlinearity)
        return net, arrays, layers

    def vjp(self, spec: OpSpec, g: Array, case: Case, dtype: torch.dtype) -> Mapping[str, Array]:
        """E for each differentiable argument's gradient (the class docstring)."""
        rho = (1 + tols.HARD_EXTRA_ROUNDINGS) * float(torch.finfo(
            tols.accumulation_dtype(dtype)).eps) / 2
        if self.cell:
            return self._cell(g, case, rho)
        net, arrays, layers = self._network(case)
        errors = _gate_errors_backward(self.kind, g, net, arrays, layers.num_layers,
                                       layers.bidirectional, layers.dropout,
                                       layers.dropout_mask, self.nonlinearity, rho)
        return {k: v for k, v in errors.items()
                if k in case.differentiable and (k not in ("h_0", "c_0") or k in case.arrays)}

    def _cell(self, g: Array, case: Case, rho: float) -> dict[str, Array]:
        """A cell is one step of a one-layer network: its input (B, in) or (in,) is that
        network's (1, B, in) or (1, in), its states likewise, its cotangent the output's (the
        new h) and c_n's (the LSTM's new c), h_n's 0."""
        a = {k: np.asarray(v, dtype=np.float64) for k, v in case.arrays.items()}
        x = a["input"]
        layer_g = np.asarray(g, dtype=np.float64).reshape(-1)
        parts = np.split(layer_g, 2) if self.kind == "lstm" else [layer_g]
        flat = [parts[0], np.zeros_like(parts[0]), *parts[1:]]
        weights = {f"{k}_l0": v for k, v in a.items() if k.startswith(("weight", "bias"))}
        h_0 = a["h_0"][None] if "h_0" in a else None
        c_0 = a["c_0"][None] if "c_0" in a else None
        net = recurrent._forward(self.kind, x[None], h_0, c_0, None, weights, 1, False, False,
                                 0.0, None, self.nonlinearity)
        errors = _gate_errors_backward(self.kind, np.concatenate(flat), net, weights, 1, False,
                                       0.0, None, self.nonlinearity, rho)
        out = {k.removesuffix("_l0"): v for k, v in errors.items()}
        return {k: out[k][0] if k in ("input", "h_0", "c_0") else out[k]
                for k in case.differentiable if k in out}


def _gate_step_errors(kind: str, d_new: recurrent.State, e_new: recurrent.State,
                      cache: Mapping[str, Array], p: Any, nonlinearity: str, rho: float
                      ) -> tuple[Array, recurrent.State, dict[str, Array]]:
    """One step of :class:`RecurrentGates`' bound: given the exact cotangent ``d_new`` of the
    new state and the bound ``e_new`` on its error, the bounds on the errors of dx, d state and
    the step's parameter gradients (``references.recurrent._step_vjp``'s equations with every
    factor's magnitude, plus each gate derivative's own error, |cotangent| times the bound of
    the class docstring, and rho |cotangent activation| where an activation multiplies a
    cotangent)."""
    x, h = np.abs(cache["x"]), np.abs(cache["h"])
    grads: dict[str, Array] = {}
    e_h = e_new[0]
    e_direct = np.zeros_like(h)
    e_rest: recurrent.State = ()
    if kind == "rnn":
        if nonlinearity == "tanh":
            t = cache["h_new"]
            e_in = e_hid = e_h * (1.0 - t**2) + np.abs(d_new[0]) * 2 * t**2 * rho
        else:
            e_in = e_hid = e_h * (cache["a"] > 0)
    elif kind == "lstm":
        dh_new, dc_new = d_new
        i, f, g, o, tc = (cache[k] for k in ("i", "f", "g", "o", "tc"))
        if p.weight_hr is not None:
            grads["weight_hr"] = e_h.T @ np.abs(cache["m"])
            dm, e_dm = dh_new @ p.weight_hr, e_h @ np.abs(p.weight_hr)
        else:
            dm, e_dm = dh_new, e_h
        do, e_do = dm * tc, (e_dm + np.abs(dm) * rho) * np.abs(tc)
        dc = dc_new + dm * o * (1.0 - tc**2)
        e_dc = e_new[1] + (e_dm + np.abs(dm) * rho) * o * (1.0 - tc**2) \
            + np.abs(dm) * o * 2 * tc**2 * rho
        di, df, dg = dc * g, dc * cache["c"], dc * i
        e_di, e_dg = (e_dc + np.abs(dc) * rho) * np.abs(g), (e_dc + np.abs(dc) * rho) * i
        e_df = e_dc * np.abs(cache["c"])
        e_in = e_hid = np.concatenate(
            [_sigmoid_error(e_di, di, i, rho), _sigmoid_error(e_df, df, f, rho),
             e_dg * (1.0 - g**2) + np.abs(dg) * 2 * g**2 * rho, _sigmoid_error(e_do, do, o, rho)],
            axis=-1)
        e_rest = ((e_dc + np.abs(dc) * rho) * f,)
    else:  # gru
        dh_new = d_new[0]
        r, z, n, ghn = (cache[k] for k in ("r", "z", "n", "ghn"))
        dn = dh_new * (1.0 - z)
        e_dn = e_h * (1.0 - z) + np.abs(dh_new) * z * rho
        dz = dh_new * (cache["h"] - n)
        e_dz = e_h * np.abs(cache["h"] - n) + np.abs(dh_new * n) * rho
        dan = dn * (1.0 - n**2)
        e_dan = e_dn * (1.0 - n**2) + np.abs(dn) * 2 * n**2 * rho
        e_dar = _sigmoid_error(e_dan * np.abs(ghn), dan * ghn, r, rho)
        e_daz = _sigmoid_error(e_dz, dz, z, rho)
        e_in = np.concatenate([e_dar, e_daz, e_dan], axis=-1)
        e_hid = np.concatenate([e_dar, e_daz, (e_dan + np.abs(dan) * rho) * r], axis=-1)
        e_direct = (e_h + np.abs(dh_new) * rho) * z
    grads["weight_ih"] = e_in.T @ x
    grads["weight_hh"] = e_hid.T @ h
    if p.bias_ih is not None:
        grads["bias_ih"] = e_in.sum(axis=0)
    if p.bias_hh is not None:
        grads["bias_hh"] = e_hid.sum(axis=0)
    return e_in @ np.abs(p.weight_ih), (e_hid @ np.abs(p.weight_hh) + e_direct, *e_rest), grads


def _sigmoid_error(e_up: Array, d_up: Array, s: Array, rho: float) -> Array:
    """The bound on the error of d_up s (1 - s): the upstream error through the exact factor,
    plus |d_up| |1 - 2 s| s rho, the factor formed from s (1 + delta), |delta| <= rho."""
    return e_up * s * (1.0 - s) + np.abs(d_up) * np.abs(1.0 - 2.0 * s) * s * rho


@dataclass(frozen=True)
class _Layers:
    """A recurrent layer's stacking options, as the bounds walk them (dropout already 0 in
    eval mode)."""

    num_layers: int
    bidirectional: bool
    dropout: float
    dropout_mask: Array | None


def _step_sizes(kind: str, cache: Mapping[str, Array], p: Any, m_x: Array,
                m_state: recurrent.State, nonlinearity: str) -> recurrent.State:
    """M of one step's new state as the reference evaluates it (``references.recurrent._step``'s
    equations, read top to bottom): the running error bound of each operation y = op(u, ...),
    M_y = sum |dy/du| M_u + |y| (the operands' M carried through the operation's derivatives
    in magnitude, plus the result's own rounding; an affine map's M is sum |W| (|x| + M_x) +
    |b|, its terms' sizes), so rounding anywhere before, in this step, an earlier step
    (``m_state``) or the layer below (``m_x``), bounds the new state's error to first order
    in ulps of M. The GRU's h' = (1 - z) n + z h gets |h - n| M_z from its update gate: near
    saturation (z = 1 - 4e-8, h' = -4e-8) that, not |h'|, is the size of its rounding."""
    x, h = np.abs(cache["x"]), np.abs(cache["h"])

    def affine(v: Array, m_v: Array, weight: Array, bias: Array | None) -> Array:
        m = (v + m_v) @ np.abs(weight).T
        return m if bias is None else m + np.abs(bias)

    def sigmoid(s: Array, m_a: Array) -> Array:
        return s * (1.0 - s) * m_a + s

    def tanh(t: Array, m_a: Array) -> Array:
        return (1.0 - t**2) * m_a + np.abs(t)

    m_gi = affine(x, m_x, p.weight_ih, p.bias_ih)
    m_gh = affine(h, m_state[0], p.weight_hh, p.bias_hh)
    m_a = m_gi + m_gh
    if kind == "rnn":
        if nonlinearity == "tanh":
            return (tanh(cache["h_new"], m_a),)
        return ((cache["a"] > 0) * m_a,)  # relu is exact: a's own M passes through
    if kind == "lstm":
        i, f, g, o, tc, c = (cache[k] for k in ("i", "f", "g", "o", "tc", "c"))
        m_ai, m_af, m_ag, m_ao = np.split(m_a, 4, axis=-1)
        m_i, m_f, m_g, m_o = sigmoid(i, m_ai), sigmoid(f, m_af), tanh(g, m_ag), sigmoid(o, m_ao)
        c_new = f * c + i * g
        m_c = np.abs(c) * m_f + f * m_state[1] + np.abs(g) * m_i + i * m_g \
            + np.abs(f * c) + np.abs(i * g) + np.abs(c_new)
        m_m = np.abs(tc) * m_o + o * tanh(tc, m_c) + np.abs(cache["m"])
        m_h = m_m if p.weight_hr is None else \
            (np.abs(cache["m"]) + m_m) @ np.abs(p.weight_hr).T
        return m_h, m_c
    # gru: n = tanh(gi_n + r gh_n), h' = (1 - z) n + z h
    r, z, n, ghn = (cache[k] for k in ("r", "z", "n", "ghn"))
    m_ar, m_az, _ = np.split(m_a, 3, axis=-1)
    m_r, m_z = sigmoid(r, m_ar), sigmoid(z, m_az)
    m_n = tanh(n, np.split(m_gi, 3, axis=-1)[2] + r * np.split(m_gh, 3, axis=-1)[2]
               + np.abs(ghn) * m_r)
    h_new = (1.0 - z) * n + z * cache["h"]
    return (np.abs(cache["h"] - n) * m_z + (1.0 - z) * m_n + z * m_state[0]
            + (1.0 - z) * (2 * np.abs(n)) + z * h + np.abs(h_new),)


def _network_sizes(kind: str, net: Any, weights: Mapping[str, Array], layers: _Layers,
                   nonlinearity: str) -> Array:
    """M of every output of a recurrent layer (``references.recurrent._flat``'s order: output,
    h_n, then c_n): :func:`_step_sizes` scanned over the sequence as the forward scans (an
    invalid step keeps the state, its output is an exact 0), each layer's input carrying the
    M of the layer below (times the dropout scale), the first layer's input and the initial
    states exact."""
    layout = net.layout
    dirs = 2 if layers.bidirectional else 1
    m_input = np.zeros_like(net.inputs[0])
    finals: list[recurrent.State] = []
    for layer in range(layers.num_layers):
        if layer > 0 and layers.dropout > 0.0:
            assert layers.dropout_mask is not None  # the forward refused to run without it
            scale = layout.to_time_major(layers.dropout_mask[layer - 1]) / \
                (1.0 - layers.dropout) if layers.dropout < 1.0 else 0.0
            m_input = m_input * np.abs(scale)
        outs = []
        for d in range(dirs):
            scan = net.scans[layer, d]
            p = recurrent._layer_params(weights, layer, d)
            m_state: recurrent.State = tuple(np.zeros_like(s) for s in scan.final)
            m_out = np.zeros_like(scan.out)
            for t in recurrent._order(m_input.shape[0], bool(d)):
                keep = net.valid[t][:, None]
                new = _step_sizes(kind, scan.caches[t], p, m_input[t], m_state, nonlinearity)
                m_state = tuple(np.where(keep, a, b) for a, b in zip(new, m_state, strict=True))
                m_out[t] = np.where(keep, new[0], 0.0)
            outs.append(m_out)
            finals.append(m_state)
        m_input = np.concatenate(outs, axis=-1)
    parts = [layout.from_time_major(m_input), layout.state_out(np.stack([s[0] for s in finals]))]
    if kind == "lstm":
        parts.append(layout.state_out(np.stack([s[1] for s in finals])))
    return np.concatenate([np.ravel(a) for a in parts])


def _gate_errors_backward(kind: str, g: Array, net: Any, weights: Mapping[str, Array],
                          num_layers: int, bidirectional: bool, dropout: float,
                          dropout_mask: Array | None, nonlinearity: str, rho: float
                          ) -> dict[str, Array]:
    """``references.recurrent._backward``'s BPTT, top layer to bottom and last step to first,
    carrying beside each exact cotangent the bound on its error (:func:`_gate_step_errors`);
    returns the bounds on the gradients, by torch's names."""
    layout = net.layout
    dirs = 2 if bidirectional else 1
    sizes = [net.output.size, net.h_n.size, 0 if net.c_n is None else net.c_n.size]
    g_out, g_h, g_c = np.split(np.asarray(g, dtype=np.float64), np.cumsum(sizes)[:2])
    d_layer_out = layout.to_time_major(g_out.reshape(net.output.shape))
    e_layer_out = np.zeros_like(d_layer_out)
    d_h = layout.state_in(g_h.reshape(net.h_n.shape))
    d_c = None if net.c_n is None else layout.state_in(g_c.reshape(net.c_n.shape))
    out_size = d_h.shape[-1]
    errors: dict[str, Array] = {}
    e_h0 = np.zeros_like(d_h)
    e_c0 = None if d_c is None else np.zeros_like(d_c)
    for layer in reversed(range(num_layers)):
        d_input = np.zeros_like(net.inputs[layer])
        e_input = np.zeros_like(d_input)
        for d in range(dirs):
            k = layer * dirs + d
            p = recurrent._layer_params(weights, layer, d)
            scan = net.scans[layer, d]
            cols = slice(d * out_size, (d + 1) * out_size)
            d_state: recurrent.State = (d_h[k],) if d_c is None else (d_h[k], d_c[k])
            e_state: recurrent.State = tuple(np.zeros_like(s) for s in d_state)
            steps = d_layer_out.shape[0]
            grads: dict[str, Array] = {}
            for t in reversed(recurrent._order(steps, bool(d))):
                keep = net.valid[t][:, None]
                d_new = (np.where(keep, d_state[0] + d_layer_out[t][:, cols], 0.0),
                         *(np.where(keep, s, 0.0) for s in d_state[1:]))
                e_new = (np.where(keep, e_state[0] + e_layer_out[t][:, cols], 0.0),
                         *(np.where(keep, s, 0.0) for s in e_state[1:]))
                dx, d_prev, _ = recurrent._step_vjp(kind, d_new, scan.caches[t], p,
                                                    nonlinearity)
                e_dx, e_prev, e_grads = _gate_step_errors(kind, d_new, e_new, scan.caches[t], p,
                                                          nonlinearity, rho)
                d_input[t] += dx
                e_input[t] += e_dx
                d_state = tuple(np.where(keep, a, b) for a, b in zip(d_prev, d_state, strict=True))
                e_state = tuple(np.where(keep, a, b) for a, b in zip(e_prev, e_state, strict=True))
                for name, e in e_grads.items():
                    grads[name] = grads[name] + e if name in grads else e
            e_h0[k] = e_state[0]
            if e_c0 is not None:
                e_c0[k] = e_state[1]
            errors |= {f"{name}_l{layer}{recurrent._suffix(d)}": e for name, e in grads.items()}
        if layer > 0 and dropout > 0.0:
            assert dropout_mask is not None  # the forward refused to run without it
            scale = layout.to_time_major(dropout_mask[layer - 1]) / (1.0 - dropout) \
                if dropout < 1.0 else 0.0
            d_input, e_input = d_input * scale, e_input * np.abs(scale)
        d_layer_out, e_layer_out = d_input, e_input
    errors["input"] = layout.from_time_major(e_layer_out)
    errors["h_0"] = layout.state_out(e_h0)
    if e_c0 is not None:
        errors["c_0"] = layout.state_out(e_c0)
    return errors
