"""torch.func.vmap: an op's batching rule against the per-example loop and the reference.

``torch.func.vmap`` runs an op on a batch by its *batching rule*, a separate implementation
per op (moving the batch dimension, calling a batched kernel, or falling back to a loop) that
no other check exercises. For one drawn case, the check builds a small batch of examples and
runs, under vmap, the forward f = torch_fn and the per-example VJP

    h(*arrays, g) = J^T g                         (torch.func.vjp of f, for a cotangent g)

so each configuration checks the forward's batching rule and the backward's (per-example
gradients, vmap of a VJP: what per-sample-gradient code runs). Configurations, every one per
case:

* **each argument in turn**: that array batched (its batch dimension at a drawn position,
  ``in_dims``), every other array shared by the examples (``in_dims=None``);
* **several**: every batchable array batched together;
* **out_dims**: the forward output's batch dimension at a drawn position;
* **nested once**: ``vmap(vmap(h))`` over two added dimensions, every batchable array batched
  on both.

Each result is compared, example by example, with torch's own per-example loop (the op and
autograd called on one example at a time: eager, unbatched) and with the reference forward
and VJP on the same example. Against the loop the table's float64 rows apply (a batched kernel
may sum in another order, nothing more); against the reference the record's own tolerance.

Examples: example 0 is the drawn case; example k rolls each batched array by k places along its
last axis (``np.roll``). A roll keeps every value, and every row along the last axis keeps its
values, so what the input maker guaranteed per element or per row (a domain, distance from a
kink, distinct values in a pooling window, a row of a mask that is not all masked, a normalised
row) still holds. Arrays the op updates in place (running statistics) are batched whenever
anything is: torch.func refuses an in-place update of an unbatched tensor with batched values
(its documented "Mutation: in-place PyTorch Operations" limitation), found by running the op
once. The record's ``vmap`` field leaves arrays out with the reason (a mapping), or the whole
check (a string: torch's own message where vmap cannot batch the op). Where a torch defect
breaks one path of a batching rule, the check steps around that path only while the defect
holds (``suite.versions``) and tests/test_vmap.py keeps it as a strict xfail: ``DIM_0_ONLY``
arrays (and ``DIM_0_ONLY_AT_RANK``'s, for an input of that rank) are batched at dimension
0, and ``spelled_out`` writes a convolution's one-element stride tuple per dimension.

Cost: torch's per-example loop and the reference are the check's largest part on big records
(a transformer stack builds its module per call). Example k of every configuration that
batches the same arrays is the same example, and example 0 is the drawn case in all of them,
so each (example, part) is run through the loop and the reference once per case.

float64 only: a batching rule rearranges dimensions and calls kernels; it does not change the
arithmetic, so the sharpest comparison is the one to make.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from suite import compare, higher, versions
from suite import gradcheck as gc
from suite import tolerances as tols
from suite.specs import Array, Case, OpSpec

DTYPE = torch.float64
BATCH = 3  # examples per added dimension (nested: NESTED x NESTED)
NESTED = 2


@dataclass(frozen=True)
class Config:
    """One vmap configuration: which arrays are batched and where their batch dimension is."""

    label: str
    in_dims: Mapping[str, int]  # array name -> batch dimension position (absent: shared)
    out_dim: int  # position of the batch dimension in the forward output
    nested: bool = False

    def describe(self) -> str:
        dims = ", ".join(f"{k}={v}" for k, v in self.in_dims.items()) or "none"
        shape = "vmap(vmap(.))" if self.nested else "vmap"
        return f"{shape} {self.label}: in_dims {{{dims}}}, out_dims {self.out_dim}"


#: torch's own words for an autograd.Function with neither a ``vmap`` staticmethod nor
#: ``generate_vmap_rule=True`` (your own op may not declare one): the check skips with them.
NO_BATCHING_RULE = "but it does not have vmap support"
#: torch's own words for an aten op with no batching rule and no fallback (torch 2.2.2:
#: "Batching rule not implemented for aten::_scaled_dot_product_flash_attention. We could not
#: generate a fallback."): the check skips with them too.
NO_FALLBACK = "We could not generate a fallback"


def excluded(spec: OpSpec) -> Mapping[str, str]:
    """Arrays the record leaves out of batching, with the reason (``OpSpec.vmap`` mapping)."""
    return dict(spec.vmap) if isinstance(spec.vmap, Mapping) else {}


#: Arrays batched at dimension 0 only, per record, while a torch defect holds (the reason).
DIM_0_ONLY: dict[str, dict[str, str]] = {
    f"max_unpool{d}d": {"indices": "torch 2.13.0 bug (KNOWN_DIFFERENCES.md): max_unpool's "
                                   "backward raises 'view size is not compatible' for "
                                   "non-contiguous indices, which a batch dimension other than "
                                   "0 hands it"}
    for d in (2, 3)} if versions.MAX_UNPOOL_BACKWARD_NEEDS_CONTIGUOUS_INDICES else {}
_MHA_BIAS = ("torch 2.13.0 bug (KNOWN_DIFFERENCES.md): F.multi_head_attention_forward with a "
             "separate key (cross-attention) and in_proj_bias batched at a dimension other than "
             "0 raises 'view size is not compatible' under vmap")
if versions.VMAP_MHA_CROSS_BIAS_VIEW_RAISES:
    DIM_0_ONLY |= {"multi_head_attention": {"in_proj_bias": _MHA_BIAS},
                   "transformer_decoder_layer": {"multihead_attn_in_proj_bias": _MHA_BIAS},
                   "transformer_decoder": {"multihead_attn_in_proj_bias": _MHA_BIAS},
                   "transformer": {"decoder_multihead_attn_in_proj_bias": _MHA_BIAS}}


#: Arrays batched at dimension 0 only where the case's input has a given rank (record ->
#: rank, arrays and reasons): F.local_response_norm of a 5-d input views its last two
#: dimensions as one, which a batch dimension between them makes impossible (torch 2.13.0 and
#: 2.14.1; the record's own known defect for a transposed 5-d input is the same view).
DIM_0_ONLY_AT_RANK: dict[str, tuple[int, dict[str, str]]] = {
    "local_response_norm": (5, {"input": "torch 2.13.0 and 2.14.1 bug (KNOWN_DIFFERENCES.md): "
                                         "local_response_norm of a 5-d input calls .view, which "
                                         "raises 'view size is not compatible' for a batch "
                                         "dimension inside its last two dimensions"})}


def dim_0_only(spec: OpSpec, case: Case) -> dict[str, str]:
    """The arrays of ``case`` batched at dimension 0 only, with the reason (``DIM_0_ONLY``,
    ``DIM_0_ONLY_AT_RANK``)."""
    pinned = dict(DIM_0_ONLY.get(spec.name, {}))
    rank, arrays = DIM_0_ONLY_AT_RANK.get(spec.name, (-1, {}))
    if "input" in case.arrays and np.ndim(case.arrays["input"]) == rank:
        pinned |= arrays
    return pinned


def spelled_out(spec: OpSpec, case: Case) -> Case:
    """``case`` with a one-element ``stride`` tuple of a convolution written per dimension
    (the same stride: torch reads ``(s,)`` as ``s`` in every dimension) while torch 2.13.0's
    convolution batching rule mishandles the short tuple (``VMAP_CONV_ONE_TUPLE_STRIDE_WRONG``,
    KNOWN_DIFFERENCES.md; tests/test_vmap.py keeps it as a strict xfail). Other cases as they
    are."""
    stride = case.options.get("stride")
    if not (versions.VMAP_CONV_ONE_TUPLE_STRIDE_WRONG and spec.name.startswith("conv")
            and isinstance(stride, tuple) and len(stride) == 1 and "weight" in case.arrays):
        return case
    d = case.arrays["weight"].ndim - 2
    return Case(case.arrays, case.differentiable, {**case.options, "stride": stride * d},
                case.seed)


def _example(case: Case, shift: int, batched: Sequence[str]) -> Case:
    """Example ``shift``: the case with each array in ``batched`` rolled ``shift`` places along
    its last axis."""
    arrays = {k: np.roll(a, shift, axis=-1) if k in batched and a.ndim and shift else a
              for k, a in case.arrays.items()}
    return Case(arrays, case.differentiable, case.options, case.seed)


def _tensor(a: Array, device: str, requires_grad: bool = False) -> torch.Tensor:
    if a.dtype.kind == "f":
        return torch.tensor(a, dtype=DTYPE, device=device).requires_grad_(requires_grad)
    return torch.tensor(a, device=device)


def _forward_fn(spec: OpSpec, case: Case) -> Callable[..., torch.Tensor]:
    """f(*arrays) = torch_fn(**arrays, **options): the forward vmap runs."""
    names = list(case.arrays)

    def f(*args: torch.Tensor) -> torch.Tensor:
        return spec.torch_fn(**dict(zip(names, args, strict=True)), **case.options)

    return f


def _per_example(spec: OpSpec, case: Case) -> Callable[..., tuple[torch.Tensor, ...]]:
    """h(*arrays, g) = J^T g for each differentiable array (torch.func.vjp): the VJP vmap runs
    (per-example gradients)."""
    names, diff = list(case.arrays), case.differentiable

    def h(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        kw, g = dict(zip(names, args[:-1], strict=True)), args[-1]

        def f(*d: torch.Tensor) -> torch.Tensor:
            return spec.torch_fn(**{**kw, **dict(zip(diff, d, strict=True))}, **case.options)

        return tuple(torch.func.vjp(f, *(kw[n] for n in diff))[1](g))

    return h


def _loop(spec: OpSpec, case: Case, g: Array | None, mutated: Sequence[str],
          device: str) -> tuple[Array, list[Array], list[Array]]:
    """torch on one example, eagerly: output, autograd's VJP for ``g`` (none without ``g``),
    in-place updated arrays after the call."""
    grad = g is not None
    tensors = {k: _tensor(a, device, grad and k in case.differentiable)
               for k, a in case.arrays.items()}
    out = spec.torch_fn(**tensors, **case.options)
    if g is None:
        return compare.to_numpy(out), [], [compare.to_numpy(tensors[n]) for n in mutated]
    grads = torch.autograd.grad(out, [tensors[n] for n in case.differentiable],
                                torch.tensor(g, dtype=DTYPE, device=device), allow_unused=True)
    return (compare.to_numpy(out),
            [np.zeros(case.arrays[n].shape) if d is None else compare.to_numpy(d)
             for n, d in zip(case.differentiable, grads, strict=True)],
            [compare.to_numpy(tensors[n]) for n in mutated])


def _mutated(spec: OpSpec, case: Case, device: str) -> list[str]:
    """Arrays the op may write in place: those whose tensor's version counter a call moves,
    and the buffers of its module form (``ModuleForm.params`` that are not differentiated:
    running statistics, which torch's batch_norm batching rule wants batched whenever the
    input is, even in a call that leaves them unchanged, e.g. momentum 0)."""
    tensors = {k: _tensor(a, device) for k, a in case.arrays.items()}
    before = {k: t._version for k, t in tensors.items()}
    with torch.no_grad():
        spec.torch_fn(**tensors, **case.options)
    buffers = set(spec.module.params) - set(case.differentiable) if spec.module else set()
    return [k for k, t in tensors.items() if t._version != before[k] or k in buffers]


def configurations(case: Case, batchable: Sequence[str], mutated: Sequence[str],
                   out_ndim: int, dim_0_only: Sequence[str] = ()) -> list[Config]:
    """Each batchable array in turn, all of them together, and nested once; batch dimensions
    and the output's at positions drawn from the case's seed (``dim_0_only``: at 0)."""
    rng = np.random.default_rng([case.seed, 9])

    def dims(names: Sequence[str]) -> dict[str, int]:
        chosen = list(dict.fromkeys([*names, *(m for m in mutated if names)]))
        # An array updated in place is batched at dimension 0: torch 2.13.0's batch_norm
        # computes but silently drops the update of running statistics batched at another
        # dimension (KNOWN_DIFFERENCES.md; tests/test_vmap.py keeps it as a strict xfail).
        # So are the arrays of ``dim_0_only`` (torch defects, each with its reason).
        return {n: 0 if (n in mutated and versions.VMAP_INPLACE_UPDATE_NEEDS_DIM_0)
                or n in dim_0_only else int(rng.integers(0, case.arrays[n].ndim + 1))
                for n in chosen}

    configs = [Config(f"batching {n}", dims([n]), int(rng.integers(0, out_ndim + 1)))
               for n in batchable if n not in mutated or len(batchable) == len(mutated)]
    if len(batchable) > 1:
        configs.append(Config("batching every array", dims(batchable),
                              int(rng.integers(0, out_ndim + 1))))
    if batchable:
        configs.append(Config("batching every array", {n: 0 for n in batchable}, 0,
                              nested=True))
    return configs


def check_vmap(spec: OpSpec, case: Case, device: str = "cpu") -> None:
    """Every configuration of ``configurations`` for ``case``: the vmapped forward and
    per-example VJPs against the per-example loop and the reference. An op torch.func cannot
    differentiate (a torch.library custom op's autograd, torch 2.13.0) has its forward checked
    in every configuration, then skips the VJP with torch's own message."""
    __tracebackhide__ = True
    case = spelled_out(spec, case)
    skip = excluded(spec)
    mutated = _mutated(spec, case, device)
    batchable = [n for n in case.arrays if n not in skip]
    out_shape = np.shape(spec.reference(case))
    configs = configurations(case, batchable, mutated, len(out_shape),
                             list(dim_0_only(spec, case)))
    memo: dict[tuple[object, ...], object] = {}
    with warnings.catch_warnings():
        # vmap's "There is a performance drop because we have not yet implemented the batching
        # rule for ...": the op then runs through vmap's per-example fallback, checked the same
        # way; the warning says nothing about the numbers.
        warnings.filterwarnings("ignore", message="There is a performance drop")
        try:
            for config in configs:
                _check_config(spec, case, config, mutated, out_shape, device, "forward", memo)
        except RuntimeError as error:
            if NO_BATCHING_RULE not in str(error) and NO_FALLBACK not in str(error):
                raise
            pytest.skip(f"torch {torch.__version__}: vmap cannot batch this op, which has "
                        f"no batching rule: {str(error).splitlines()[0]}")
        if not case.differentiable:
            return
        try:
            for config in configs:
                _check_config(spec, case, config, mutated, out_shape, device, "vjp", memo)
        except RuntimeError as error:
            if higher.NOT_TRANSFORMABLE not in str(error):
                raise
            pytest.skip(f"torch {torch.__version__}: the forward under vmap passed every "
                        f"configuration; the VJP under vmap is not checked, torch.func cannot "
                        f"differentiate this op: {str(error).splitlines()[0]}")


def _batched(case: Case, config: Config, examples: Sequence[Case], device: str,
             arrays: Sequence[str]) -> list[torch.Tensor]:
    """The arguments: each batched array's examples stacked at its batch dimension (nested:
    outer then inner dimension, both at position 0); the others as they are."""
    args = []
    for n in arrays:
        if n not in config.in_dims:
            args.append(_tensor(case.arrays[n], device))
            continue
        stacked = np.stack([e.arrays[n] for e in examples])
        if config.nested:
            stacked = stacked.reshape(NESTED, NESTED, *stacked.shape[1:])
        else:
            stacked = np.moveaxis(stacked, 0, config.in_dims[n])
        args.append(_tensor(np.ascontiguousarray(stacked), device))
    return args


def _vmapped(fn: Callable[..., object], config: Config, in_dims: tuple[int | None, ...],
             out_dims: int) -> Callable[..., object]:
    # randomness="same": a torch_fn may draw random numbers that do not reach its result (the
    # recurrent records build their module per call, and functional_call replaces its randomly
    # initialised weights); torch's default, "error", refuses any draw under vmap.
    if config.nested:
        inner = torch.func.vmap(fn, in_dims=in_dims, randomness="same")
        return torch.func.vmap(inner, in_dims=in_dims, randomness="same")
    return torch.func.vmap(fn, in_dims=in_dims, out_dims=out_dims, randomness="same")


def _vmapped_forward(fn: Callable[..., torch.Tensor], config: Config,
                     in_dims: tuple[int | None, ...],
                     args: Sequence[torch.Tensor]) -> tuple[torch.Tensor, int]:
    """The forward under vmap and where its output's batch dimension is: ``config.out_dim``;
    or 0 for an output that is not batched (it depends on no mapped input) while torch
    misplaces such an output at any other ``out_dims`` (``VMAP_UNBATCHED_OUTPUT_MISPLACED``:
    wrong values or a RuntimeError, KNOWN_DIFFERENCES.md; a strict xfail in
    tests/test_vmap.py). Every other output is still placed at ``config.out_dim``."""
    __tracebackhide__ = True
    out_dim = config.out_dim
    if config.nested or not out_dim or not versions.VMAP_UNBATCHED_OUTPUT_MISPLACED:
        out = _vmapped(fn, config, in_dims, out_dim)(*args)
        assert isinstance(out, torch.Tensor)
        return out, out_dim
    unbatched: list[bool] = []

    def noting(*a: torch.Tensor) -> torch.Tensor:
        result = fn(*a)
        unbatched.append(not torch._C._functorch.is_batchedtensor(result))
        return result

    try:
        out = _vmapped(noting, config, in_dims, out_dim)(*args)
    except RuntimeError:
        if not unbatched or not unbatched[0]:
            raise
    if unbatched and unbatched[0]:  # the defect's case: ask for the batch dimension at 0
        out, out_dim = _vmapped(fn, config, in_dims, 0)(*args), 0
    assert isinstance(out, torch.Tensor)
    return out, out_dim


def _unbatched(t: torch.Tensor, config: Config, dim: int, count: int) -> Array:
    """A vmapped result with its batch dimension(s) first, merged: (examples, ...)."""
    a = compare.to_numpy(t)
    if config.nested:
        return a.reshape(count, *a.shape[2:])
    return np.moveaxis(a, dim, 0)


def _check_config(spec: OpSpec, case: Case, config: Config, mutated: Sequence[str],
                  out_shape: tuple[int, ...], device: str, part: str,
                  memo: dict[tuple[object, ...], object] | None = None) -> None:
    __tracebackhide__ = True
    names = list(case.arrays)
    count = NESTED * NESTED if config.nested else BATCH
    examples = [_example(case, k, list(config.in_dims)) for k in range(count)]
    cotangents = [np.random.default_rng([case.seed, 8, k]).standard_normal(out_shape)
                  for k in range(count)]
    args = _batched(case, config, examples, device, names)
    in_dims = tuple(config.in_dims.get(n) for n in names)
    if part == "forward":
        out, out_dim = _vmapped_forward(_forward_fn(spec, case), config, in_dims, args)
        outs = [_unbatched(out, config, out_dim, count)]
        after = [_unbatched(args[names.index(m)], config, config.in_dims[m], count)
                 for m in mutated]
    else:
        g = np.stack(cotangents)
        g = g.reshape(NESTED, NESTED, *out_shape) if config.nested else g
        grads = _vmapped(_per_example(spec, case), config, (*in_dims, 0), 0)(
            *args, torch.tensor(g, dtype=DTYPE, device=device))
        assert isinstance(grads, tuple)
        outs, after = [_unbatched(d, config, 0, count) for d in grads], []
    for k, (example, gk) in enumerate(zip(examples, cotangents, strict=True)):
        # Example k of two configurations batching the same arrays is the same example (and
        # example 0 is the drawn case in every one): its loop and reference are computed once.
        key = (k, frozenset(config.in_dims) if k else None)
        _compare_example(spec, example, gk, k, config, part, [o[k] for o in outs],
                         [a[k] for a in after], mutated, device,
                         {} if memo is None else memo, key)


def _compare_example(spec: OpSpec, example: Case, g: Array, k: int, config: Config, part: str,
                     got: list[Array], updated: list[Array], mutated: Sequence[str],
                     device: str, memo: dict[tuple[object, ...], object],
                     key: tuple[object, ...]) -> None:
    __tracebackhide__ = True
    if part == "vjp":
        mutated = ()  # compared after the forward-only call

    def once(what: str, compute: Callable[[], object]) -> Any:
        if (what, *key) not in memo:
            memo[(what, *key)] = compute()
        return memo[(what, *key)]

    loop_out, loop_grads, loop_updated = once(f"loop {part}", lambda: _loop(
        spec, example, g if part == "vjp" else None, mutated, device))
    where = f"{config.describe()}; example {k}"
    context = f"float64, {', '.join(f'{n}={tuple(a.shape)}' for n, a in example.arrays.items())}"
    pairs: list[tuple[str, Array, Array, Array, tols.Kind]]
    if part == "forward":
        pairs = [("forward", got[0], loop_out, once("reference", lambda: spec.reference(example)),
                  tols.Kind.FORWARD)]
    else:
        ref_grads = once("reference vjp", lambda: spec.reference_vjp(g, example, as_torch=True))
        gc.check_vjp_shapes(spec, example, ref_grads)
        pairs = [(f"VJP w.r.t. {n}", a, b, ref_grads[n], tols.Kind.GRADIENT)
                 for n, a, b in zip(example.differentiable, got, loop_grads, strict=True)]
    for what, actual, loop, ref, kind in pairs:
        compare.assert_close(
            actual, loop, tol=tols.resolve(DTYPE, kind),
            what=f"{spec.name}: {what} under {where} (the reference here: torch's "
                 f"per-example loop, eager, one example at a time)", context=context,
            case=example)
        compare.assert_close(
            actual, ref, tol=spec.tolerance(kind, DTYPE),
            what=f"{spec.name}: {what} under {where}, against the reference",
            context=context, case=example)
    for name, actual, loop in zip(mutated, updated, loop_updated, strict=True):
        compare.assert_close(
            actual, loop, tol=tols.resolve(DTYPE, tols.Kind.FORWARD),
            what=f"{spec.name}: {name} updated in place under {where} (the reference here: "
                 f"torch's per-example loop)", context=context, case=example)
