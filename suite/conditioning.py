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
  are sums of g xhat and of g over the batch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import numpy as np

from references import distance, norms
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


def _layer_norm_layout(case: Case) -> tuple[Array, Axes, tuple[int, ...], Axes]:
    x = case.arrays["input"]
    k = len(case.options["normalized_shape"])
    return (x, tuple(range(x.ndim - k, x.ndim)), x.shape[x.ndim - k:],
            tuple(range(x.ndim - k)))


def _group_norm_layout(case: Case) -> tuple[Array, Axes, tuple[int, ...], Axes]:
    x = case.arrays["input"]
    groups = case.options["num_groups"]
    grouped = x.reshape(x.shape[0], groups, x.shape[1] // groups, -1)
    return grouped, (2, 3), (1, groups, x.shape[1] // groups, 1), (0, 3)


def _batch_norm_layout(case: Case) -> tuple[Array, Axes, tuple[int, ...], Axes]:
    x = case.arrays["input"]
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    return flat, (0, 2), (1, x.shape[1], 1), (0, 2)


class _BatchNorm(_Normalization):
    """batch_norm: centred over the batch in training; in evaluation mode the running
    statistics are constants, nothing is centred, and the input gradient g w inv_std is one
    product (M = its magnitude)."""

    def _centred(self, case: Case) -> bool:
        return bool(case.options.get("training", False))

    def forward(self, spec: OpSpec, case: Case) -> Array:
        if self._centred(case):
            return super().forward(spec, case)
        return np.abs(spec.reference(case))

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        if self._centred(case):
            return super().vjp(spec, g, case)
        x, _, param_shape, param_axes = self.layout(case)
        xhat = (x - np.reshape(case.arrays["running_mean"], param_shape)) / np.sqrt(
            np.reshape(case.arrays["running_var"], param_shape) + case.options.get("eps", 1e-5))
        return {"input": np.abs(spec.reference_vjp(g, case)["input"]),
                **_parameter_terms(case, np.reshape(g, x.shape), xhat, param_axes)}


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
    """

    def forward(self, spec: OpSpec, case: Case) -> Array:
        """sum_c |dl/dz_c| u_c: per sample for "none", summed for a reduced loss."""
        z, u, class_dim = _linear_logits(case)
        value = spec.reference(case)
        per_sample = np.sum(np.abs(_logit_gradient(np.ones(np.shape(value)), case, z)) * u,
                            axis=class_dim)
        return per_sample if np.ndim(value) else np.asarray(np.sum(per_sample))

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        """(|G| + E) through the Linear layer's VJP; the probability target's log p term."""
        from references import layers
        from references.activations import softmax

        z, u, class_dim = _linear_logits(case)
        a, w, b = (case.arrays["input"], case.arrays["linear_weight"],
                   case.arrays.get("linear_bias"))
        p = softmax(z, dim=class_dim)
        spread = u + np.sum(p * u, axis=class_dim, keepdims=True)
        scale, mass = _scale_and_mass(case, g, z, class_dim)
        effective = np.abs(_logit_gradient(g, case, z)) + scale * mass * p * spread
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
            terms["target"] = scale * (1.0 - smoothing) * per_class * spread
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
        return {"x1": distance._sum_to_shape(m_a, case.arrays["x1"].shape),
                "x2": distance._sum_to_shape(m_b, case.arrays["x2"].shape)}


MULTILINEAR = Multilinear()
PRELU = Prelu()
GLU = Glu()
LINEAR_CROSS_ENTROPY = LinearCrossEntropy()
LAYER_NORM = _Normalization(_layer_norm_layout)
RMS_NORM = _Normalization(_layer_norm_layout, centred=False)
GROUP_NORM = _Normalization(_group_norm_layout)
BATCH_NORM = _BatchNorm(_batch_norm_layout)
INSTANCE_NORM = _InstanceNorm(_instance_norm_layout)
LOCAL_RESPONSE_NORM = LocalResponseNorm()
COSINE_SIMILARITY = CosineSimilarity()


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
