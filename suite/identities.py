r"""Training-level identities in one process: two torch computations that must agree, each also
checked against the NumPy statement of ``references.training``.

* gradient accumulation (:func:`check_record_accumulation`, :func:`check_mlp_accumulation`):
  k micro-batches, each loss scaled by c_j, accumulate the one-batch gradient;
* activation checkpointing (:func:`run_checkpoint`, :func:`check_checkpoint`): gradients equal
  the un-checkpointed run's, dropout included;
* ``clip_grad_norm_`` and ``clip_grad_value_`` (:func:`check_clip_grad_norm`,
  :func:`check_clip_grad_value`);
* ``torch.amp.GradScaler`` (:func:`check_grad_scaler`, :func:`check_autocast_gradients`).

Each check takes the piece under test as an argument (the scaling rule, the checkpoint
function, the clipping function, the scaler), so that tests of the harness can plant a bug there
and show it is caught. The MLP (:class:`MLP`) is shared with ``suite.distributed``.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from references import network
from references import training as ref
from references.layers import linear, linear_vjp
from references.losses_classification import cross_entropy_vjp
from references.losses_regression import mse_loss_vjp
from suite import compare
from suite import tolerances as tols
from suite.compare import to_numpy
from suite.devices import dtype_name
from suite.specs import Array, Case, OpSpec, round_to
from suite.tolerances import Kind, Tolerance

Grads = Mapping[str, "Array | None"]

# --- the MLP ------------------------------------------------------------------------------

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh, "relu": torch.relu, "identity": lambda x: x}


class MLP(nn.Module):
    r"""Linear layers with the named activations of ``references.activations``, and one or
    more alternative output layers ("heads", no activation).

    ``sizes`` = (in, hidden_1, ..., hidden_m, out); ``activations`` names the m hidden
    layers' activations. ``forward(x, head)`` runs the hidden layers and then ``heads[head]``,
    so a model with two heads has parameters a rank may leave unused (DDP's
    ``find_unused_parameters``). Parameter names: ``hidden.<i>.weight``, ``heads.<h>.bias``, ...
    """

    def __init__(self, sizes: Sequence[int], activations: Sequence[str], heads: int = 1) -> None:
        super().__init__()
        if len(activations) != len(sizes) - 2:
            raise ValueError(f"{len(activations)} activations for {len(sizes) - 2} hidden layers")
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes[:-1]))
        self.heads = nn.ModuleList(nn.Linear(sizes[-2], sizes[-1]) for _ in range(heads))
        self.activations = tuple(activations)

    def forward(self, x: torch.Tensor, head: int = 0) -> torch.Tensor:
        for layer, name in zip(self.hidden, self.activations, strict=True):
            x = ACTIVATIONS[name](layer(x))
        return self.heads[head](x)

    def layer_names(self, head: int = 0) -> list[str]:
        """The module names of the layers ``forward(x, head)`` runs, in order."""
        return [f"hidden.{i}" for i in range(len(self.hidden))] + [f"heads.{head}"]

    def reference_layers(self, head: int = 0) -> list[network.Layer]:
        """The same network for ``references.network``, in float64."""
        layers = [*self.hidden, self.heads[head]]
        acts = [*self.activations, "identity"]
        return [network.Layer(to_numpy(m.weight), to_numpy(m.bias), a)
                for m, a in zip(layers, acts, strict=True)]


def make_mlp(sizes: Sequence[int], activations: Sequence[str], *, seed: int, heads: int = 1,
             dtype: torch.dtype = torch.float64, device: str = "cpu") -> MLP:
    """An :class:`MLP` with torch's default initialisation drawn from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLP(sizes, activations, heads)
    return model.to(device=device, dtype=dtype)


def named_reference_grads(names: Sequence[str],
                          grads: Sequence[Mapping[str, Array]]) -> dict[str, Array]:
    """``references.network`` per-layer gradients keyed like torch's named parameters."""
    return {f"{n}.{k}": v for n, g in zip(names, grads, strict=True) for k, v in g.items()}


def torch_grads(module: nn.Module) -> dict[str, Array | None]:
    """Every parameter's ``.grad`` as float64 NumPy (None where there is none)."""
    return {n: None if p.grad is None else to_numpy(p.grad) for n, p in module.named_parameters()}


def torch_params(module: nn.Module) -> dict[str, Array]:
    """Every parameter's value as float64 NumPy."""
    return {n: to_numpy(p) for n, p in module.named_parameters()}


def assert_named_close(actual: Grads, expected: Grads, *, tol: Tolerance, what: str,
                       context: str, case: str = "", only: Sequence[str] | None = None) -> None:
    """:func:`suite.compare.assert_close` for every name; a name must be None (no gradient)
    on both sides or on neither. ``only`` restricts the names compared (default: all of
    ``expected``'s, which must all be in ``actual``)."""
    __tracebackhide__ = True
    names = list(expected) if only is None else list(only)
    missing = [n for n in names if n not in actual]
    if missing:
        raise AssertionError(f"{what}: torch has no {missing}  [{context}]\nCase:\n{case}")
    for name in names:
        a, e = actual[name], expected[name]
        if a is None or e is None:
            if a is not e:
                have = "no gradient" if a is None else "a gradient"
                want = "none" if e is None else "one"
                raise AssertionError(f"{what}: {name} has {have}, the expected side has {want}"
                                     f"  [{context}]\nCase:\n{case}")
            continue
        compare.assert_close(a, e, tol=tol, what=f"{what}: {name}", context=context, case=case)


def _grad_tol(dtype: torch.dtype, spec: OpSpec | None = None) -> Tolerance:
    return tols.resolve(dtype, Kind.GRADIENT) if spec is None else \
        spec.tolerance(Kind.GRADIENT, dtype)


# --- gradient accumulation ----------------------------------------------------------------

ScaleRule = Callable[[Sequence[float], str], Array]
"""How micro-batch losses are scaled: ``references.training.micro_batch_scales`` (the
harness tests plant a rule that forgets the 1/k)."""


def _elements(case: Case) -> float:
    return ref.element_count(case.arrays["input"].shape)


def _class_denominator(case: Case) -> float:
    target = case.arrays["target"]
    if target.dtype.kind == "f":  # class probabilities: "mean" divides by the sample count
        x = case.arrays["input"]
        return ref.element_count((*x.shape[:1], *x.shape[2:]))
    return ref.class_weight_total(target, case.arrays.get("weight"),
                                  case.options.get("ignore_index", -100))


@dataclass(frozen=True)
class Batched:
    """How a record's case splits into micro-batches: which arrays carry the batch in
    dimension 0, the fewest dimensions ``input`` needs for that (an unbatched (C,) cross
    entropy input has none), and the loss's "mean" denominator D (None: the record is not a
    loss; its objective is <g, f(...)> for a drawn cotangent g, a sum over the batch)."""

    name: str
    batched: tuple[str, ...]
    min_ndim: int
    denominator: Callable[[Case], float] | None

    def usable(self, case: Case) -> bool:
        """Whether ``case`` has a batch of at least 2 to split, and a mean/sum reduction."""
        arrays = case.arrays
        if arrays["input"].ndim < self.min_ndim:
            return False
        sizes = {arrays[k].shape[0] if arrays[k].ndim else 0 for k in self.batched}
        if len(sizes) != 1 or sizes.pop() < 2:
            return False
        if self.denominator is None:
            return True
        return case.options.get("reduction", "mean") in ("mean", "sum") and (
            case.options.get("reduction", "mean") == "sum" or self.denominator(case) > 0)


# Records with a batch dimension whose reduction is a mean or a sum (or that are not losses).
ACCUMULATION: tuple[Batched, ...] = (
    Batched("cross_entropy", ("input", "target"), 2, _class_denominator),
    Batched("linear", ("input",), 2, None),
    Batched("mse_loss", ("input", "target"), 1, _elements),
    Batched("nll_loss", ("input", "target"), 2, _class_denominator),
)


def split_bounds(n: int, k: int, cuts: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """k micro-batches of a batch of n: [start, stop) bounds, as equal as ``np.array_split``
    makes them, or cut at the given ``cuts`` (k - 1 sorted distinct positions in 1..n-1)."""
    if cuts is None:
        edges = np.cumsum([0] + [len(c) for c in np.array_split(np.arange(n), k)])
    else:
        edges = np.array([0, *sorted(cuts), n])
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def _slice_case(case: Case, batched: Sequence[str], bounds: tuple[int, int]) -> Case:
    a, b = bounds
    arrays = {k: v[a:b] if k in batched else v for k, v in case.arrays.items()}
    return Case(arrays, case.differentiable, case.options, case.seed)


def _tensors(case: Case, dtype: torch.dtype, device: str) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(a, dtype=dtype if a.dtype.kind == "f" else None, device=device,
                            requires_grad=k in case.differentiable)
            for k, a in case.arrays.items()}


def check_record_accumulation(spec: OpSpec, batched: Batched, case: Case,
                              bounds: Sequence[tuple[int, int]], dtype: torch.dtype,
                              device: str, scale_rule: ScaleRule = ref.micro_batch_scales) -> None:
    """Gradients accumulated over the micro-batches ``bounds`` (loss j scaled by c_j from
    ``scale_rule``) against one backward on the whole batch, and against the reference VJP of
    the whole batch. Arrays not in ``batched`` (weights) are shared: their gradient is the
    accumulated sum; batched arrays get each micro-batch's rows."""
    case = case.rounded_to(dtype)
    reduction = case.options.get("reduction", "sum") if batched.denominator else "sum"
    # A non-loss record's objective is <g, f>: g drawn once for the whole batch, then sliced.
    g = (np.ones(()) if batched.denominator else
         np.random.default_rng(case.seed).standard_normal(spec.reference(case).shape))
    g = round_to(g, dtype)
    g_t = torch.tensor(g, dtype=dtype, device=device)

    def objective(tensors: Mapping[str, torch.Tensor], rows: slice) -> torch.Tensor:
        out = spec.torch_fn(**tensors, **case.options)
        return out if batched.denominator else (out * g_t[rows]).sum()

    leaves = _tensors(case, dtype, device)
    objective(leaves, slice(None)).backward()
    whole = {k: to_numpy(t.grad) for k, t in leaves.items() if t.grad is not None}

    leaves = _tensors(case, dtype, device)
    parts = [_slice_case(case, batched.batched, b) for b in bounds]
    denominators = [batched.denominator(p) if batched.denominator else 1.0 for p in parts]
    scales = scale_rule(denominators, reduction)
    for (a, b), c in zip(bounds, scales, strict=True):
        if c == 0:  # no kept target in this micro-batch: left out (references.training)
            continue
        sliced = {k: t[a:b] if k in batched.batched else t for k, t in leaves.items()}
        (float(c) * objective(sliced, slice(a, b))).backward()
    accumulated = {k: to_numpy(t.grad) for k, t in leaves.items() if t.grad is not None}

    expected = spec.reference_vjp(g, case)
    tol = _grad_tol(dtype, spec)
    context = f"{dtype_name(dtype)}, device={device}"
    text = (f"{case.describe()}\n  micro-batches {list(bounds)} of dimension 0 of "
            f"{', '.join(batched.batched)}; scales c_j = {np.round(scales, 6).tolist()} "
            f"(reduction {reduction!r}, denominators {denominators})")
    what = f"{spec.name}: gradient accumulated over {len(bounds)} micro-batches"
    assert_named_close(accumulated, whole, tol=tol, what=f"{what} vs one batch",
                       context=context, case=text, only=list(case.differentiable))
    assert_named_close(accumulated, expected, tol=tol, what=f"{what} vs the reference",
                       context=context, case=text, only=list(case.differentiable))


def mlp_data(seed: int, n: int, n_in: int, n_classes: int) -> tuple[Array, Array]:
    """Inputs (n, n_in), standard normal, and class indices (n,) from ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_in)), rng.integers(0, n_classes, size=n)


def check_mlp_accumulation(*, seed: int, sizes: Sequence[int], activations: Sequence[str], n: int,
                           bounds: Sequence[tuple[int, int]], reduction: str,
                           dtype: torch.dtype, device: str,
                           scale_rule: ScaleRule = ref.micro_batch_scales) -> None:
    """The MLP's cross-entropy gradients accumulated over micro-batches (each loss times c_j)
    against one batch and against ``references.network`` on the whole batch."""
    model = make_mlp(sizes, activations, seed=seed, dtype=dtype, device=device)
    x, target = mlp_data(seed, n, sizes[0], sizes[-1])
    x = round_to(x, dtype)
    xt = torch.tensor(x, dtype=dtype, device=device)
    tt = torch.tensor(target, device=device)

    F.cross_entropy(model(xt), tt, reduction=reduction).backward()
    whole = torch_grads(model)
    model.zero_grad(set_to_none=True)
    scales = scale_rule([float(b - a) for a, b in bounds], reduction)
    for (a, b), c in zip(bounds, scales, strict=True):
        (float(c) * F.cross_entropy(model(xt[a:b]), tt[a:b], reduction=reduction)).backward()
    accumulated = torch_grads(model)

    layers = model.reference_layers()
    logits, cache = network.mlp_forward(layers, x)
    g = cross_entropy_vjp(np.ones(()), logits, target, reduction=reduction)["input"]
    expected = named_reference_grads(model.layer_names(), network.mlp_backward(layers, cache, g))
    context = f"{dtype_name(dtype)}, device={device}"
    text = (f"  MLP {tuple(sizes)} ({', '.join(activations)}), N={n}, cross entropy "
            f"{reduction!r}, micro-batches {list(bounds)}, scales {np.round(scales, 6).tolist()}"
            f", seed {seed}")
    what = f"MLP: gradient accumulated over {len(bounds)} micro-batches"
    tol = _grad_tol(dtype)
    assert_named_close(accumulated, whole, tol=tol, what=f"{what} vs one batch", context=context,
                       case=text)
    assert_named_close(accumulated, expected, tol=tol, what=f"{what} vs the reference",
                       context=context, case=text)


# --- activation checkpointing -------------------------------------------------------------

CheckpointFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]


@dataclass
class CheckpointRun:
    """Gradients of one run, and every dropout mask drawn during it in order: with a
    checkpoint, the forward's then the recomputation's."""

    grads: dict[str, Array | None]
    masks: list[Array]


@dataclass
class CheckpointModel:
    """segment = Linear -> sigmoid -> Dropout(p) -> Linear -> tanh (the part checkpointed),
    rest = Linear, with mean cross entropy; names ``segment.0.weight``, ``rest.0.bias``, ...

    Smooth activations: no kink for float32 rounding to cross. sigmoid's output is never 0, so
    the dropout's mask is recovered exactly from its output (tanh's can be: a float32
    pre-activation cancelling to exactly 0 made a kept entry look dropped). The layers after
    the dropout inside the segment make the recomputation run past the dropout: non-reentrant
    checkpoint stops recomputing once it has every saved tensor (``early_stop``), which with
    the dropout last would be inside it, before its forward hook records the mask.
    """

    segment: nn.Sequential
    rest: nn.Sequential
    p: float

    @classmethod
    def make(cls, sizes: Sequence[int], p: float, *, seed: int, dtype: torch.dtype,
             device: str) -> CheckpointModel:
        n_in, h1, h2, n_classes = sizes
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            segment = nn.Sequential(nn.Linear(n_in, h1), nn.Sigmoid(), nn.Dropout(p),
                                    nn.Linear(h1, h2), nn.Tanh())
            rest = nn.Sequential(nn.Linear(h2, n_classes))
        return cls(segment.to(device, dtype), rest.to(device, dtype), p)

    def grads(self) -> dict[str, Array | None]:
        return {**{f"segment.{k}": v for k, v in torch_grads(self.segment).items()},
                **{f"rest.{k}": v for k, v in torch_grads(self.rest).items()}}

    def reference_gradients(self, x: Array, target: Array, forward_mask: Array,
                            recompute_mask: Array) -> dict[str, Array]:
        def layer(m: Any, activation: str) -> network.Layer:
            return network.Layer(to_numpy(m.weight), to_numpy(m.bias), activation)

        grads = ref.dropout_mlp_gradients(
            [layer(self.segment[0], "sigmoid")], [layer(self.segment[3], "tanh")],
            [layer(self.rest[0], "identity")], x, target, p=self.p, forward_mask=forward_mask,
            recompute_mask=recompute_mask)
        return named_reference_grads(["segment.0", "segment.3", "rest.0"], grads)


def run_checkpoint(model: CheckpointModel, x: torch.Tensor, target: torch.Tensor, *,
                   rng_seed: int, checkpoint_fn: CheckpointFn | None) -> CheckpointRun:
    """One forward and backward from the generator state ``rng_seed`` (the dropout masks),
    the segment through ``checkpoint_fn`` (None: not checkpointed). Masks are recovered from
    the dropout's output (:class:`CheckpointModel` says why that is exact)."""
    masks: list[Array] = []

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        masks.append((to_numpy(out) != 0).astype(np.float64))

    handle = model.segment[2].register_forward_hook(record)
    try:
        model.segment.zero_grad(set_to_none=True)
        model.rest.zero_grad(set_to_none=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(rng_seed)
            h = model.segment(x) if checkpoint_fn is None else checkpoint_fn(model.segment, x)
            F.cross_entropy(model.rest(h), target).backward()
    finally:
        handle.remove()
    return CheckpointRun(model.grads(), masks)


def checkpoint_case(sizes: Sequence[int], n: int, p: float, seed: int, dtype: torch.dtype,
                    device: str, input_requires_grad: bool = True
                    ) -> tuple[CheckpointModel, Array, Array, torch.Tensor, torch.Tensor]:
    """The model, the data as NumPy (x rounded to ``dtype``) and as tensors."""
    model = CheckpointModel.make(sizes, p, seed=seed, dtype=dtype, device=device)
    x, target = mlp_data(seed, n, sizes[0], sizes[-1])
    x = round_to(x, dtype)
    xt = torch.tensor(x, dtype=dtype, device=device, requires_grad=input_requires_grad)
    return model, x, target, xt, torch.tensor(target, device=device)


def check_checkpoint(checkpoint_fn: CheckpointFn, *, sizes: Sequence[int], n: int, p: float,
                     seed: int, dtype: torch.dtype, device: str, label: str) -> None:
    """A checkpointed segment must give the un-checkpointed run's gradients (same generator
    state, so the same forward mask), and the reference's for the mask the forward drew:
    the recomputation must reproduce that mask."""
    model, x, target, xt, tt = checkpoint_case(sizes, n, p, seed, dtype, device)
    plain = run_checkpoint(model, xt, tt, rng_seed=seed, checkpoint_fn=None)
    checked = run_checkpoint(model, xt, tt, rng_seed=seed, checkpoint_fn=checkpoint_fn)
    forward_mask = checked.masks[0]
    expected = model.reference_gradients(x, target, forward_mask, forward_mask)
    context = f"{dtype_name(dtype)}, device={device}"
    kept = int(forward_mask.sum())
    text = (f"  {label}; sizes {tuple(sizes)}, N={n}, dropout p={p} ({kept} of "
            f"{forward_mask.size} kept in the forward), seed {seed}; masks drawn: "
            f"{len(checked.masks)}, recomputed mask equal to the forward's: "
            f"{[bool(np.array_equal(m, forward_mask)) for m in checked.masks[1:]]}")
    tol = _grad_tol(dtype)
    assert_named_close(checked.grads, plain.grads, tol=tol, context=context, case=text,
                       what=f"{label}: gradient vs the un-checkpointed run")
    assert_named_close(checked.grads, expected, tol=tol, context=context, case=text,
                       what=f"{label}: gradient vs the reference (the forward's mask)")


class RedrawingCheckpoint(torch.autograd.Function):
    """A checkpoint that recomputes the segment in backward without restoring the generator:
    the recomputation draws another dropout mask. A planted bug for the harness tests."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, segment: nn.Module) -> torch.Tensor:
        ctx.segment = segment
        ctx.save_for_backward(x)
        with torch.no_grad():
            return segment(x)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        (x,) = ctx.saved_tensors
        x = x.detach().requires_grad_(x.requires_grad)
        with torch.enable_grad():
            out = ctx.segment(x)
        torch.autograd.backward(out, g)
        return x.grad, None


def redrawing_checkpoint(segment: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """:class:`RedrawingCheckpoint` as a checkpoint function."""
    return RedrawingCheckpoint.apply(x, segment)


# --- gradient clipping --------------------------------------------------------------------

ClipNorm = Callable[..., torch.Tensor]


def _clip_params(grads: Sequence[Array | None], dtypes: Sequence[torch.dtype],
                 device: str) -> list[torch.Tensor]:
    params = []
    for g, dt in zip(grads, dtypes, strict=True):
        shape = (1,) if g is None else g.shape
        p = torch.zeros(shape, dtype=dt, device=device, requires_grad=True)
        if g is not None:
            p.grad = torch.tensor(g, dtype=dt, device=device)
        params.append(p)
    return params


def _clip_text(grads: Sequence[Array | None], dtypes: Sequence[torch.dtype], options: str) -> str:
    parts = ", ".join("no grad" if g is None else f"{tuple(g.shape)} {dtype_name(dt)}"
                      for g, dt in zip(grads, dtypes, strict=True))
    return f"  parameters: {parts}; {options}"


def check_clip_grad_norm(grads: Sequence[Array | None], dtypes: Sequence[torch.dtype], *,
                         max_norm: float, norm_type: float, foreach: bool | None, device: str,
                         clip: ClipNorm = torch.nn.utils.clip_grad_norm_) -> None:
    """``clip(params, max_norm, norm_type, foreach=...)`` on parameters holding ``grads``
    (None: no gradient; each in its dtype) against ``references.training.clip_grad_norm``: the
    returned total norm and every clipped gradient; parameters without one keep none."""
    rounded = [None if g is None else round_to(g, dt) for g, dt in zip(grads, dtypes, strict=True)]
    params = _clip_params(rounded, dtypes, device)
    total = clip(params, max_norm, norm_type=norm_type, foreach=foreach)
    present = [g for g in rounded if g is not None]
    expected, expected_total = ref.clip_grad_norm(present, max_norm, norm_type)
    text = _clip_text(rounded, dtypes, f"max_norm={max_norm}, norm_type={norm_type}, "
                                       f"foreach={foreach}")
    lowest = max(dtypes, key=lambda d: torch.finfo(d).eps)
    compare.assert_close(to_numpy(total), np.asarray(expected_total), tol=_grad_tol(lowest),
                         what="clip_grad_norm_: total norm", case=text,
                         context=f"{dtype_name(lowest)} (least precise), device={device}")
    it = iter(expected)
    for i, (p, g) in enumerate(zip(params, rounded, strict=True)):
        if g is None:
            assert p.grad is None, f"clip_grad_norm_ gave parameter {i} a gradient\n{text}"
            continue
        assert p.grad is not None, f"clip_grad_norm_ removed parameter {i}'s gradient\n{text}"
        # The one coefficient max_norm / (N + 1e-6) is only as precise as N, whose least
        # precise part is the norm of the least precise gradients (a float32 norm beside
        # float64 gradients makes the float64 gradients' clipping float32-accurate).
        compare.assert_close(to_numpy(p.grad), next(it), tol=_grad_tol(lowest),
                             what=f"clip_grad_norm_: clipped gradient of parameter {i}",
                             context=f"{dtype_name(p.dtype)} (coefficient from "
                                     f"{dtype_name(lowest)}), device={device}", case=text)


def check_clip_grad_value(grads: Sequence[Array | None], dtypes: Sequence[torch.dtype], *,
                          clip_value: float, foreach: bool | None, device: str) -> None:
    """``clip_grad_value_`` against ``references.training.clip_grad_value``."""
    rounded = [None if g is None else round_to(g, dt) for g, dt in zip(grads, dtypes, strict=True)]
    params = _clip_params(rounded, dtypes, device)
    torch.nn.utils.clip_grad_value_(params, clip_value, foreach=foreach)
    expected = iter(ref.clip_grad_value([g for g in rounded if g is not None], clip_value))
    text = _clip_text(rounded, dtypes, f"clip_value={clip_value}, foreach={foreach}")
    for i, (p, g) in enumerate(zip(params, rounded, strict=True)):
        if g is None:
            assert p.grad is None, f"clip_grad_value_ gave parameter {i} a gradient\n{text}"
            continue
        assert p.grad is not None, f"clip_grad_value_ removed parameter {i}'s gradient\n{text}"
        compare.assert_close(to_numpy(p.grad), next(expected), tol=_grad_tol(p.dtype),
                             what=f"clip_grad_value_: gradient of parameter {i}",
                             context=f"{dtype_name(p.dtype)}, device={device}", case=text)


# --- AMP: GradScaler ----------------------------------------------------------------------

class Scaler(Protocol):
    """What the AMP loop uses of ``torch.amp.GradScaler``."""

    def scale(self, outputs: torch.Tensor) -> torch.Tensor: ...
    def unscale_(self, optimizer: torch.optim.Optimizer) -> None: ...
    def step(self, optimizer: torch.optim.Optimizer) -> Any: ...
    def update(self) -> None: ...
    def get_scale(self) -> float: ...
    def state_dict(self) -> dict[str, Any]: ...


def grad_scaler_missing() -> str | None:
    """Why this torch has no device-generic ``torch.amp.GradScaler`` (added in torch 2.3;
    before, only ``torch.cuda.amp.GradScaler``), or None."""
    if hasattr(torch.amp, "GradScaler"):
        return None
    return f"torch {torch.__version__} has no torch.amp.GradScaler (added in torch 2.3)"


def torch_grad_scaler(device: str, **options: Any) -> Scaler:
    """``torch.amp.GradScaler(device, **options)``."""
    return torch.amp.GradScaler(device, **options)


class NoSkipScaler:
    """A scaler that unscales but never skips a step on inf/NaN: a planted bug."""

    def __init__(self, device: str, **options: Any) -> None:
        self.inner = torch.amp.GradScaler(device, **options)
        self.unscaled = False

    def scale(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.inner.scale(outputs)

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        self.inner.unscale_(optimizer)
        self.unscaled = True

    def step(self, optimizer: torch.optim.Optimizer) -> Any:
        if not self.unscaled:
            self.unscale_(optimizer)
        return optimizer.step()  # the bug: no check of the inf/NaN found

    def update(self) -> None:
        self.inner.update()
        self.unscaled = False

    def get_scale(self) -> float:
        return self.inner.get_scale()

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()


def check_grad_scaler(params: Sequence[Array], grads: Sequence[Sequence[Array]], *,
                      dtype: torch.dtype, device: str, lr: float, init_scale: float,
                      growth_factor: float, backoff_factor: float, growth_interval: int,
                      unscale_first: Sequence[bool],
                      scaler_factory: Callable[..., Scaler] = torch_grad_scaler) -> None:
    """The AMP loop (``scaler.scale(loss).backward()``, optionally ``scaler.unscale_``,
    ``scaler.step``, ``scaler.update``) with SGD on the objective sum_i <theta_i, c_{t,i}>,
    whose gradient at step t is exactly c_t = ``grads[t]`` (inf/NaN entries planted there by
    the caller), against ``references.training.grad_scaler_sgd``: after every iteration the
    parameters, the scale and the growth tracker, and (where ``unscale_first[t]``) the
    gradients ``unscale_`` leaves."""
    scaler = scaler_factory(device, init_scale=init_scale, growth_factor=growth_factor,
                            backoff_factor=backoff_factor, growth_interval=growth_interval)
    rounded_params = [round_to(p, dtype) for p in params]
    thetas = [torch.tensor(p, dtype=dtype, device=device, requires_grad=True)
              for p in rounded_params]
    rounded = [[round_to(c, dtype) for c in step] for step in grads]
    opt = torch.optim.SGD(thetas, lr=lr)
    expected = ref.grad_scaler_sgd(rounded_params, rounded, lr=lr, init_scale=init_scale,
                                   growth_factor=growth_factor, backoff_factor=backoff_factor,
                                   growth_interval=growth_interval,
                                   max_finite=float(torch.finfo(dtype).max))
    context = f"{dtype_name(dtype)}, device={device}, index = parameter entry"
    header = (f"  GradScaler(init_scale={init_scale}, growth_factor={growth_factor}, "
              f"backoff_factor={backoff_factor}, growth_interval={growth_interval}), SGD "
              f"lr={lr}; steps with inf/NaN: "
              f"{[t for t, e in enumerate(expected) if e.skipped]}")
    for t, (step, want) in enumerate(zip(rounded, expected, strict=True)):
        opt.zero_grad(set_to_none=True)
        cs = [torch.tensor(c, dtype=dtype, device=device) for c in step]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # inf * 0 in the loss's value: only its grad is used
            loss = torch.stack([(th * c).sum() for th, c in zip(thetas, cs, strict=True)]).sum()
        scaler.scale(loss).backward()
        text = f"{header}\n  iteration {t}: expected skipped={want.skipped}, state {want.state}"
        if unscale_first[t]:
            scaler.unscale_(opt)
            for i, th in enumerate(thetas):
                assert th.grad is not None
                compare.assert_close(to_numpy(th.grad), want.unscaled_grads[i],
                                     tol=_grad_tol(dtype), context=context, case=text,
                                     what=f"GradScaler: unscaled gradient {i}, iteration {t}")
        scaler.step(opt)
        scaler.update()
        for i, th in enumerate(thetas):
            compare.assert_close(to_numpy(th), want.params[i],
                                 tol=tols.resolve(dtype, Kind.TRAINING), context=context,
                                 case=text,
                                 what=f"GradScaler: parameter {i} after iteration {t}")
        compare.assert_close(np.asarray(scaler.get_scale()), np.asarray(want.state.scale),
                             tol=tols.resolve(dtype, Kind.SCALER), context=context, case=text,
                             what=f"GradScaler: scale after iteration {t}")
        tracker = int(scaler.state_dict()["_growth_tracker"])
        assert tracker == want.state.growth_tracker, (
            f"GradScaler: growth tracker after iteration {t} is {tracker}, the reference's "
            f"{want.state.growth_tracker}\n{text}")


@dataclass
class AutocastRun:
    """Gradients (weight, bias) of one autocast backward, the scale the scaler ended with (1.0
    without one), and the half-precision output's dtype."""

    weight: Array
    bias: Array
    scale_after: float
    output_dtype: torch.dtype
    warnings: list[str]


def run_autocast(x: Array, y: Array, weight: Array, bias: Array, *, half: torch.dtype,
                 device: str, init_scale: float | None,
                 scaler_factory: Callable[..., Scaler] = torch_grad_scaler) -> AutocastRun:
    """nn.Linear (float32 parameters) and MSE under ``torch.autocast(device, half)``: one
    backward, with ``scaler.scale(loss)`` and ``scaler.unscale_`` when ``init_scale`` is given,
    then ``scaler.step`` (SGD, lr 0: the parameters stay) and ``scaler.update``."""
    layer = nn.Linear(weight.shape[1], weight.shape[0]).to(device=device, dtype=torch.float32)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias))
    xt = torch.tensor(x, dtype=torch.float32, device=device)
    yt = torch.tensor(y, dtype=torch.float32, device=device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.autocast(device_type=device, dtype=half):
            z = layer(xt)
            loss = F.mse_loss(z.float(), yt)
    scale_after = 1.0
    if init_scale is None:
        loss.backward()
    else:
        opt = torch.optim.SGD(layer.parameters(), lr=0.0)
        scaler = scaler_factory(device, init_scale=init_scale)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        scaler.step(opt)  # lr 0: the step leaves parameters and gradients as they are
        scaler.update()
        scale_after = scaler.get_scale()
    assert layer.weight.grad is not None and layer.bias.grad is not None
    return AutocastRun(to_numpy(layer.weight.grad), to_numpy(layer.bias.grad), scale_after,
                       z.dtype, [str(w.message) for w in caught])


def autocast_reference(x: Array, y: Array, weight: Array, bias: Array, half: torch.dtype
                       ) -> tuple[dict[str, Array], dict[str, Array]]:
    """The float64 reference gradients (weight, bias) on the half-rounded x, W, b (autocast
    casts them to ``half``), and the per-element allowance of ``suite.tolerances``'
    AUTOCAST_TERMS derivation: AUTOCAST_TERMS * sum_n (|dz_n| + (2/n) |z_n|) |x_n|."""
    xh, wh, bh = (round_to(a, half) for a in (x, weight, bias))
    z = linear(xh, wh, bh)
    dz = mse_loss_vjp(np.ones(()), z, y)["input"]
    grads = linear_vjp(dz, xh, wh, bh)
    m = np.abs(dz) + (2.0 / z.size) * np.abs(z)
    terms = tols.AUTOCAST_TERMS[half]
    slack = {"weight": terms * (m.T @ np.abs(xh)), "bias": terms * m.sum(axis=0)}
    return {"weight": grads["weight"], "bias": grads["bias"]}, slack


def check_autocast_gradients(x: Array, y: Array, weight: Array, bias: Array, *,
                             half: torch.dtype, device: str, init_scale: float,
                             scaler_factory: Callable[..., Scaler] = torch_grad_scaler) -> None:
    """Under autocast, the gradients after ``scaler.unscale_`` equal the scaler-free run's
    (power-of-two scale: identical roundings but for float16 subnormals) and the float64
    reference's within the derived half-precision allowance; no inf is found, so the scale
    is unchanged after ``update`` (growth interval 2000)."""
    scaled = run_autocast(x, y, weight, bias, half=half, device=device, init_scale=init_scale,
                          scaler_factory=scaler_factory)
    plain = run_autocast(x, y, weight, bias, half=half, device=device, init_scale=None)
    expected, slack = autocast_reference(x, y, weight, bias, half)
    context = f"autocast {dtype_name(half)}, float32 parameters, device={device}"
    text = (f"  nn.Linear({weight.shape[1]}, {weight.shape[0]}), N={x.shape[0]}, MSE; "
            f"GradScaler(init_scale={init_scale}); |x| <= {np.abs(x).max():.3g}")
    assert scaled.scale_after == init_scale, (
        f"GradScaler: the scale went from {init_scale} to {scaled.scale_after} on a step whose "
        f"scaled gradients should be finite\n{text}")
    xh = round_to(x, half)
    under = tols.AUTOCAST_SUBNORMAL[half]
    identity_slack = {"weight": under * np.broadcast_to(np.abs(xh).sum(axis=0),
                                                        weight.shape),
                      "bias": np.full(bias.shape, under * x.shape[0])}
    tol = Tolerance(rtol=tols.AUTOCAST_RTOL[half], atol=0.0)
    for name in ("weight", "bias"):
        compare.assert_close(getattr(scaled, name), getattr(plain, name), tol=tol,
                             slack=identity_slack[name], context=context, case=text,
                             what=f"GradScaler: unscaled {name} gradient vs the scaler-free run")
        compare.assert_close(getattr(scaled, name), expected[name], tol=tol, slack=slack[name],
                             context=context, case=text,
                             what=f"GradScaler: unscaled {name} gradient vs the reference")


def autocast_unsupported(half: torch.dtype, device: str) -> str | None:
    """torch's own words when ``torch.autocast(device, half)`` does not run in ``half`` here
    (older torch warns "... not supported ... Disabling autocast" and runs in float32), or
    None."""
    x = torch.ones(2, 2, device=device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.autocast(device_type=device, dtype=half):
            out = torch.mm(x, x)
    if out.dtype == half:
        return None
    said = "; ".join(str(w.message) for w in caught) or "(no warning)"
    return f"torch {torch.__version__}: autocast({device!r}, {half}) ran in {out.dtype}: {said}"

