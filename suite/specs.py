"""The record types: one record per building block drives tests, benchmarks and reports.

A record says everything the harness needs to know about one block: how to call torch, which
reference computes the same thing, how to draw its inputs, and any visible exception to the
default tolerances. A test body never branches on a record's name; a check that needs to know
something about an op reads a field here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from hypothesis import strategies as st
from numpy.typing import NDArray

from suite import tolerances as tols

Array = NDArray[Any]


@dataclass(frozen=True)
class Case:
    """One concrete input of an op: the arrays, which of them are differentiated, the options.

    Arrays are float64 (or int64 for class indices) NumPy arrays keyed by torch's argument names,
    so ``torch_fn(**tensors, **options)`` and ``ref(**arrays, **options)`` both work. ``seed``
    seeds every further random draw of a check (cotangents, finite-difference directions), so a
    case alone reproduces a check.
    """

    arrays: Mapping[str, Array]
    differentiable: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    label: str = ""
    """What kind of input this is, where it was drawn on purpose (a hard-tier scenario,
    ``suite.hard``): shown in failure messages."""

    def rounded_to(self, dtype: torch.dtype) -> Case:
        """The same case with floating arrays rounded to ``dtype`` and widened back to float64.

        torch receives ``dtype`` values; the reference must see exactly those values, or the
        comparison would count input rounding as torch's error.
        """
        arrays = {k: round_to(a, dtype) if a.dtype.kind == "f" else a
                  for k, a in self.arrays.items()}
        return Case(arrays, self.differentiable, self.options, self.seed, self.label)

    def scaled(self, factor: float) -> Case:
        """The same case with every differentiable array multiplied by ``factor``."""
        arrays = {k: a * factor if k in self.differentiable else a for k, a in self.arrays.items()}
        return Case(arrays, self.differentiable, self.options, self.seed, self.label)

    def __repr__(self) -> str:
        # Hypothesis prints each draw's repr on failure: summarise, never dump the arrays.
        shapes = ", ".join(f"{k}{tuple(a.shape)}" for k, a in self.arrays.items())
        return f"Case({shapes}, options={dict(self.options)!r}, seed={self.seed})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # Hypothesis's pretty-printer hook
        p.text(repr(self))

    def describe(self) -> str:
        """One line per array (shape, dtype, range; never the values) and one for the options."""
        lines = []
        for name, a in self.arrays.items():
            rng = f" in [{a.min():.5g}, {a.max():.5g}]" if a.size else " (empty)"
            grad = "" if name in self.differentiable else ", no grad"
            lines.append(f"{name}: shape {a.shape} {a.dtype}{rng}{grad}")
        lines.append(f"options: {dict(self.options)!r}; values seed {self.seed}")
        if self.label:
            lines.append(f"drawn on purpose: {self.label}")
        return "\n".join("  " + line for line in lines)


# float64 and float32: NumPy's cast rounds to nearest even exactly as torch's does, ~10x cheaper
# for the small arrays the checks draw. Half precision goes through torch: torch casts float64 to
# float16 through float32 (a double rounding that differs from NumPy's direct cast in rare
# ties), and NumPy has no bfloat16.
_NUMPY_FLOATS = {torch.float64: np.float64, torch.float32: np.float32}


def round_to(a: Array, dtype: torch.dtype) -> Array:
    """``a`` rounded to ``dtype`` and widened back to float64 (a new array)."""
    if dtype == torch.float64:  # nothing to round: one copy, not two
        return np.array(a, dtype=np.float64)
    if dtype in _NUMPY_FLOATS:
        with np.errstate(over="ignore"):  # beyond the dtype's range is inf, as in torch
            return np.asarray(a).astype(_NUMPY_FLOATS[dtype]).astype(np.float64)
    return torch.tensor(a).to(dtype).to(torch.float64).numpy()


_STRATEGIES: dict[tuple[int, Any], tuple[object, Any]] = {}


def cached_strategy(owner: object, key: Any, build: Callable[[], Any]) -> Any:
    """``build()``, once per (``owner``, ``key``) for as long as ``owner`` lives (keyed by
    identity: input makers hold dicts and are not hashable)."""
    entry = _STRATEGIES.get((id(owner), key))
    if entry is None or entry[0] is not owner:
        entry = (owner, build())
        _STRATEGIES[(id(owner), key)] = entry
    return entry[1]


class Inputs(Protocol):
    """How a record's inputs are made: drawn by Hypothesis for tests, sized for benchmarks."""

    def strategy(self) -> st.SearchStrategy[Case]:
        """Cases for property tests: shapes, values inside the op's domain, and options."""
        ...

    def sized(self, n: int, seed: int = 0) -> Case:
        """A deterministic case whose cost grows with ``n`` (for benchmarks and extremes)."""
        ...


class HardInputs(Inputs, Protocol):
    """An input maker with a hard tier (``suite.hard``): every maker of the catalogue is one; a
    maker without ``hard`` gets no hard-tier checks, and the battery says so.

    ``hard(dtype)`` draws ill-conditioned but valid cases for ``dtype`` (values made in float64
    from numbers ``dtype`` holds): the value scenarios of ``suite.hard.values`` on the maker's
    usual shapes, and the size scenarios (``simd``: the vectorised dimension of each size in
    ``suite.hard.SIMD_SIZES`` with extreme values in the vector body and the scalar tail;
    ``long``: reductions over ``suite.hard.long_terms()`` terms). Each case's ``label`` names its
    scenario. Most makers draw a typical case and replace the values of some arrays
    (``suite.hard.rewrite``)."""

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """Hard cases for ``dtype``."""
        ...


# Tolerance widenings a record may carry, keyed by (kind, dtype), each with a reason comment
# where the record is declared.
ToleranceOverride = Mapping[tuple[tols.Kind, torch.dtype], tols.Tolerance]


class SumTerms(Protocol):
    """M = sum |terms| of the sums behind a record's forward and VJP, element by element, on the
    case's values (suite/conditioning.py): the scale of their rounding error."""

    def forward(self, spec: OpSpec, case: Case) -> Array:
        """M for each element of the forward's output."""
        ...

    def vjp(self, spec: OpSpec, g: Array, case: Case) -> Mapping[str, Array]:
        """M for each element of each differentiable argument's gradient, for cotangent ``g``."""
        ...


class GateRounding(Protocol):
    """What a correct kernel's gradients may be off by where it forms a gate's derivative from
    the gate's rounded activation (sigma' = s (1 - s), tanh' = 1 - t^2), element by element
    (suite/conditioning.py, :class:`~suite.conditioning.RecurrentGates`): the hard tier's
    allowance adds it."""

    def vjp(self, spec: OpSpec, g: Array, case: Case, dtype: torch.dtype) -> Mapping[str, Array]:
        """The bound for each element of each differentiable argument's gradient, for cotangent
        ``g``, when torch computes in ``dtype``."""
        ...

    # Optional: ``forward(spec, case)``, sum |terms| of each output element (or None), which
    # the finite-difference check's rounding floor then uses in place of |f| (RecurrentGates
    # gives it for the cells, whose gate combinations cancel).


@dataclass(frozen=True)
class ModuleForm:
    """The ``torch.nn`` module form of an op (``nn.MSELoss`` beside ``F.mse_loss``), checked to
    agree with the functional form: output, gradients, and buffers the call updates.

    By default the module is built as ``cls(**ctor_arrays, **options)`` and called with the
    case's other arrays in order (positionally: module forwards may rename arguments, e.g.
    PoissonNLLLoss's ``log_input``).
    """

    cls: Callable[..., torch.nn.Module]
    """The class (its name labels the check)."""
    factory: Callable[[Case], torch.nn.Module] | None = None
    """Builds the module from the case where ``cls(**ctor_arrays, **options)`` does not fit:
    constructor arguments named or shaped unlike the functional options (nn.Linear's sizes,
    read from the arrays' shapes), or a mode to set (``nn.RReLU(...).eval()``, whose functional
    form is ``F.rrelu(training=False)``). It reads values only from the options; parameter
    values come from ``params``."""
    ctor_arrays: tuple[str, ...] = ()
    """Names of ``Case.arrays`` passed to the constructor rather than to the call (a loss's
    class ``weight``)."""
    params: tuple[str, ...] = ()
    """Names of ``Case.arrays`` that are the module's parameters or buffers of the same name
    (nn.PReLU's ``weight``, nn.BatchNorm2d's ``running_mean``): the module is called through
    ``torch.func.functional_call`` with the case's tensors in their place (their shapes must
    match the module's own), so gradients and in-place updates land on the same tensors as in
    the functional form, and their values after the call are compared too. An optional array the
    case lacks keeps the module's own tensor (the factory decides whether it exists, e.g.
    ``bias=False``)."""
    param_names: Mapping[str, str] = field(default_factory=dict)
    """The module's name for a ``params`` array named otherwise in the functional form, where
    the module also stores it flattened or reshaped (nn.LinearCrossEntropyLoss keeps
    F.linear_cross_entropy's ``linear_weight`` as ``linear.weight`` of shape
    (C * prod(out_features), in_features), which its forward reshapes back): the case's tensor
    is reshaped to the module's own shape (the same elements in the same order; a different
    count fails as a wrong factory)."""

    @property
    def name(self) -> str:
        return str(getattr(self.cls, "__name__", type(self.cls).__name__))

    @classmethod
    def optional(cls, module: Callable[..., torch.nn.Module] | None,
                 **fields: Any) -> ModuleForm | None:
        """The module form, or None where the installed torch lacks the class (an older
        release: ``getattr(nn, "RMSNorm", None)``)."""
        return None if module is None else cls(module, **fields)


@dataclass(frozen=True)
class Baseline:
    """Judge a kernel by the standard it replaces: in ``dtypes``, its error against the float64
    reference may be at most ``forward`` (outputs) or ``gradient`` (gradients) times the error
    of ``torch_fn`` (torch eager's op, which the kernel replaces) on the same rounded inputs.

    FlashAttention's tests use 2 for outputs and 3 for gradients: a fused kernel may round in
    another order than torch, but not much worse. Where torch's own error is below a correctly
    rounded result's (half an ulp of the largest reference value), that floor is used instead,
    so an exact torch does not demand an exact kernel.
    """

    torch_fn: Callable[..., torch.Tensor] | None = None
    """torch's own op; ``gradsuite.like`` fills in the built-in record's ``torch_fn``."""
    forward: float = 2.0
    gradient: float = 3.0
    dtypes: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16, torch.float32)


@dataclass(frozen=True, kw_only=True)
class OpSpec:
    """A differentiable op (layer, activation or loss) and its NumPy reference.

    Only ``name``, ``torch_fn`` and ``inputs`` are required. Every other field's default keeps
    a check on where one can run: a record without a reference (``ref=None``) gets the
    reference-free checks instead, and ``gradsuite.battery`` lists once, per record, the checks
    that do not apply and why.
    """

    name: str
    """pytest id, benchmark group and reference name: ``references.<module>.<name>``."""
    torch_fn: Callable[..., torch.Tensor]
    """The torch callable under test, called as ``torch_fn(**tensors, **options)``."""
    inputs: Inputs
    """How inputs are drawn (domain, shapes, options, kink-avoidance rule)."""
    ref: Callable[..., Array] | None = None
    """The NumPy forward, called as ``ref(**arrays, **options)``; None: reference-free (the op
    is checked against finite differences and its own float64 results)."""
    ref_vjp: Callable[..., dict[str, Array]] | None = None
    """The NumPy VJP, ``ref_vjp(g, **arrays, **options) -> {argument name: gradient}``, each
    gradient of exactly its argument's shape; required with ``ref``. ``g`` may be read-only
    (``gradcheck.cotangent`` keeps one draw per case): a VJP builds new arrays."""
    family: str = "op"
    """``"activation"``, ``"layer"``, ``"loss"`` (the catalogue's), or anything: groups reports
    and benchmarks."""
    docs: str = ""
    """The documentation the reference follows."""
    tol: ToleranceOverride = field(default_factory=dict)
    """Visible widenings of ``suite.tolerances``; merged by max; each needs a reason."""
    baseline: Baseline | None = None
    """Judge low-precision results relative to torch's own error instead of by the eps rows."""
    module: ModuleForm | None = None
    """The ``torch.nn`` module form, checked against ``torch_fn``."""
    overflow_prone: bool = False
    """The textbook formula overflows for large inputs (an ``exp`` of the input): torch is
    also compared with the reference at |x| = 1e4, where only a stable form stays finite."""
    ref_options: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments for the reference VJP only, never for torch or the forward: the
    gradient convention of the installed torch at non-differentiable points, where torch changed
    one between releases, chosen with ``suite.versions`` when the catalogue is built
    (docs/conventions.md lists the changes)."""
    torch_vjp_options: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments for ``ref_vjp`` only when it is compared with torch's autograd (never in
    the finite-difference check): where torch's gradient is knowingly not the derivative of its
    forward, the reference states torch's gradient under these options, and the difference is
    an entry of KNOWN_DIFFERENCES.md (e.g. CTC's ``{"gradient": "torch"}``)."""
    exact_points: Callable[[Mapping[str, Any]], tuple[float, ...]] | None = None
    """The ``input`` values where the op is not differentiable (kinks, jumps, branch points), or
    where its derivative is not (softsign at 0), as a function of the case's options; torch's
    forward and gradient are compared with the reference exactly there (the reference VJP states
    torch's convention). None: no such point."""
    second_order: bool | str = True
    """True: torch.func.jvp (forward mode) and double backward (a Hessian-vector product) are
    checked too, through the reference VJP and finite differences (``suite.higher``). A string:
    not checked, and why (e.g. torch implements no double backward for the op)."""
    low_precision: bool | str = True
    """True: also checked in float16 and bfloat16 with the eps-derived rows of
    ``suite.tolerances``, which hold where torch evaluates the op elementwise (in float32
    internally) and rounds each output once or a few times; sums of signed terms add their
    conditioning through ``terms``. A string: off the ladder, and why."""
    backends: Mapping[str, str] = field(default_factory=dict)
    """The ``torch.compile`` backends (``--backend``: ``inductor``, ``aot_eager``) this record
    does not run under, each with the reason (torch's own words where torch refuses; chosen
    with ``suite.versions`` where only some releases refuse). Every other backend runs the
    record's forward, gradient and precision-ladder checks compiled (``suite.compiled``);
    ``eager`` (no compile) always runs. A key ``"<backend> backward"`` leaves out only the
    checks that differentiate (gradient and ladder), where the forward compiles; the forward
    check then compiles the inference graph, which traces no backward."""
    vmap: bool | str | Mapping[str, str] = True
    """True: ``torch.func.vmap`` over an added batch dimension is checked against the
    per-example loop and the reference (``suite.vmapcheck``), every array batched in turn and
    together. A string: not checked, and why (torch's own message, e.g. no batching rule). A
    mapping: checked, but the arrays it names are never batched, each with the reason (e.g.
    data-dependent control flow on that argument, which vmap refuses)."""
    broadcasts: tuple[str, ...] = ()
    """Arrays torch broadcasts against the others (a loss's target, margin_ranking's inputs):
    cases where one of them has some dimensions cut to size 1 are checked too, the forward
    broadcasting it and its gradient summed back over the copies."""
    broadcasts_last_dim: bool = True
    """Whether ``broadcasts`` may cut the last dimension too. False for records that reduce over
    it (cosine_embedding, triplet_margin: a feature dimension of size 1 makes a scale-invariant
    function whose gradient is a pure cancellation, and torch's cosine of it exceeds 1;
    KNOWN_DIFFERENCES.md)."""
    terms: SumTerms | None = None
    """How to compute M = sum |terms| behind each output and gradient element, for records whose
    results are sums of signed terms (a matmul, a weight gradient summed over the batch, a
    difference such as glu's sigmoid - sigmoid**2): comparisons allow
    ``suite.tolerances.SUMMATION[dtype] * M`` on top of the row (suite/conditioning.py)."""

    gates: GateRounding | None = None
    """For records whose VJP multiplies by gate derivatives formed from rounded activations (the
    recurrent cells and layers): the hard tier adds this bound on what that rounding moves each
    gradient by (suite/conditioning.py, RecurrentGates); None: no such gates."""

    known_defects: Callable[[Case, torch.dtype], str | None] | None = None
    """Recorded torch defects: for a case (rounded to the dtype) and a dtype, the
    KNOWN_DIFFERENCES.md entry the case would run into on the installed torch, else None. The
    hard tier and the precision ladder set such cases aside (Hypothesis draws others), and a
    strict expected failure shows each defect; None: no recorded defect."""

    def __post_init__(self) -> None:
        if (self.ref is None) != (self.ref_vjp is None):
            raise ValueError(f"record {self.name!r}: give both ref and ref_vjp (a reference "
                             f"forward and its VJP), or neither for a reference-free record")

    def __repr__(self) -> str:
        return f"OpSpec({self.name!r})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # Hypothesis's pretty-printer hook
        p.text(repr(self))

    @property
    def has_reference(self) -> bool:
        return self.ref is not None

    def cases(self) -> st.SearchStrategy[Case]:
        """``inputs.strategy()``, built once per input maker: building a strategy costs
        milliseconds (Hypothesis reads the source of every composite it makes), more than
        drawing from it, so it must not be rebuilt for every example."""
        return cached_strategy(self.inputs, "cases", self.inputs.strategy)

    def hard_cases(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """``inputs.hard(dtype)``, built once per input maker and dtype (as ``cases``).

        Raises:
            TypeError: the input maker has no hard tier (the battery never asks then).
        """
        def build() -> st.SearchStrategy[Case]:
            from suite import hard

            strategy = hard.hard_strategy(self.inputs, dtype)
            if strategy is None:
                raise TypeError(hard.NO_HARD_TIER.format(type(self.inputs).__name__))
            return strategy

        return cached_strategy(self.inputs, ("hard", dtype), build)

    def known_defect(self, case: Case, dtype: torch.dtype) -> str | None:
        """The recorded defect ``case`` runs into in ``dtype`` (``known_defects``), or None."""
        return None if self.known_defects is None else self.known_defects(case, dtype)

    def tolerance(self, kind: tols.Kind, dtype: torch.dtype) -> tols.Tolerance:
        """The tolerance for comparing ``kind`` in ``dtype``: the table's row, loosened by this
        record's visible widening (``tol``) where it has one."""
        return tols.resolve(dtype, kind, self.tol.get((kind, dtype)))

    def reference(self, case: Case) -> Array:
        """The reference forward on ``case``: ``ref(**arrays, **options)``."""
        assert self.ref is not None, f"{self.name} has no reference"
        return np.asarray(self.ref(**case.arrays, **case.options))

    def reference_vjp(self, g: Array, case: Case, *, as_torch: bool = False) -> dict[str, Array]:
        """The reference VJP on ``case`` for the cotangent ``g``, in the installed torch's
        convention: ``ref_vjp(g, **arrays, **options, **ref_options)``; with ``as_torch``, also
        ``torch_vjp_options`` (torch's gradient where it is knowingly not the derivative)."""
        assert self.ref_vjp is not None, f"{self.name} has no reference"
        extra = {**self.ref_options, **(self.torch_vjp_options if as_torch else {})}
        return self.ref_vjp(g, **case.arrays, **case.options, **extra)


class OptimizerRun(NamedTuple):
    """A drawn optimizer scenario: initial parameters, one gradient per parameter per step."""

    params: list[Array]
    grads: list[list[Array | None]]  # grads[step][param]; None: no gradient at that step
    hyper: dict[str, Any]
    seed: int
    groups: tuple[tuple[tuple[int, ...], dict[str, Any]], ...] = ()
    """Parameter groups as (parameter indices, hyper-parameter overrides); () is one group."""
    complex_params: bool = False
    """Parameters are complex: each array holds (real, imaginary) pairs in a last axis of 2."""
    tensor_lr: bool = False
    """torch receives ``lr`` as a 0-dim tensor (where the implementation accepts one)."""


@dataclass(frozen=True, kw_only=True)
class OptimizerSpec:
    """A torch.optim algorithm and its pure NumPy update rule."""

    name: str
    """pytest id and reference name: ``references.optim_*.<name>``."""
    torch_cls: Callable[..., torch.optim.Optimizer]
    """The optimizer class, called as ``torch_cls(params, **hyper, **implementation)``."""
    ref_step: Callable[..., tuple[Array, Any]]
    """``ref_step(param, grad, state | None, **hyper) -> (new_param, new_state)``."""
    state_type: type
    """The reference state NamedTuple; its field names are torch's state keys."""
    hyper: st.SearchStrategy[dict[str, Any]]
    """Hyper-parameters over their documented ranges."""
    bench_hyper: Mapping[str, Any]
    """Hyper-parameters for benchmarks."""
    implementations: tuple[str, ...]
    """Which of ``suite.optimizers.IMPLEMENTATIONS`` torch offers for this algorithm."""
    docs: str
    tol: ToleranceOverride = field(default_factory=dict)
    state_tol: Mapping[str, tols.Tolerance] = field(default_factory=dict)
    """Widenings for single state entries torch keeps in reduced precision by design (a float32
    scalar tensor in a float64 run), keyed by state key; each needs a reason."""
    implementation_tol: Mapping[tuple[str, torch.dtype], tols.Tolerance] = field(
        default_factory=dict)
    """Widenings for one implementation variant (e.g. ``("differentiable", torch.float64)``)
    that computes in reduced precision by design; each needs a reason."""
    complex_params: bool = False
    """torch supports complex parameters (updated as pairs of reals)."""
    sparse_grad: bool = False
    """torch requires sparse COO gradients (SparseAdam)."""
    round_trip_tol: Mapping[torch.dtype, tols.Tolerance] = field(default_factory=dict)
    """How far a run resumed from ``state_dict()`` may drift from the uninterrupted run (exact
    when absent): ``load_state_dict`` casts float32 scalar state to the parameters' dtype."""
    late_first_grad_fails: tuple[str, ...] = ()
    """Implementations that fail when a parameter's first gradient comes after the first step
    (a torch bug, in KNOWN_DIFFERENCES.md): their runs give every parameter a gradient at step
    1 and may drop gradients only afterwards."""
    tensor_lr_fails: tuple[str, ...] = ()
    """Implementations that crash on some runs with ``lr`` as a tensor (a torch bug, in
    KNOWN_DIFFERENCES.md): their runs give ``lr`` as a float."""
    constructor_only: tuple[str, ...] = ()
    """Hyper-parameters torch reads from the constructor for every group, ignoring a group's
    own value (never varied between groups; each is in KNOWN_DIFFERENCES.md)."""
    param_dims: tuple[int, int] = (0, 2)
    """The least and the most dimensions of the drawn parameters: (2, 2) for Muon, which takes
    matrices only; (0, 3) for Adafactor, which factors the last two dimensions of any parameter
    of two or more."""
    dtype_eps: str | None = None
    """The ``ref_step`` keyword that receives ``torch.finfo(dtype).eps`` of the run's
    parameters, where torch's update depends on the dtype (Adafactor's eps1=None is that
    epsilon); None: the reference takes nothing of the dtype."""
    step_allowance: Callable[..., Mapping[str, float]] | None = None
    """``step_allowance(param, grad, state, dtype, **hyper) -> {entry: atol}``: what one step
    may add to the atol of ``"param"`` or of a state key, where torch's rounding is
    undetermined by design (Muon rounds its Newton-Schulz iteration to bfloat16, and a value
    within torch's float32 accumulation error of a bfloat16 tie may round either way); {} where
    it is determined. Each needs its derivation where the record is declared."""
    implementation_allowance: Mapping[str, Callable[..., Mapping[str, float]]] = field(
        default_factory=dict)
    """Per implementation, a ``step_allowance`` of that implementation only (Adam's
    differentiable path computes its bias corrections in float32); each needs its derivation
    where the record is declared."""
    backends: Mapping[str, str] = field(default_factory=dict)
    """The ``torch.compile`` backends ``torch.compile(optimizer.step)`` is not checked under,
    each with the reason (as ``OpSpec.backends``)."""

    def __repr__(self) -> str:
        return f"OptimizerSpec({self.name!r})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # Hypothesis's pretty-printer hook
        p.text(repr(self))


@dataclass(frozen=True, kw_only=True)
class SchedulerSpec:
    """A torch.optim.lr_scheduler class and the reference of its learning-rate sequence."""

    name: str
    """pytest id and reference name: ``references.schedulers.<name>``."""
    torch_cls: type
    """The scheduler class."""
    ref: Callable[..., Array]
    """``ref(epochs, lr=<group lr>, **ref_options) -> lr after construction and each step``;
    for a metric-driven scheduler ``ref(metrics, lr=..., **ref_options)``."""
    options: st.SearchStrategy[dict[str, Any]]
    """Constructor options over their documented ranges (torch's argument names)."""
    docs: str
    build: Callable[[torch.optim.Optimizer, dict[str, Any]], Any] | None = None
    """How to construct torch's scheduler from the drawn options, when not
    ``torch_cls(optimizer, **options)`` (schedulers made of other schedulers)."""
    ref_options: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    """The reference's options for the drawn options, when they differ."""
    max_epochs: Callable[[dict[str, Any]], int] | None = None
    """The most steps torch allows for these options (OneCycleLR's total_steps)."""
    metric_driven: bool = False
    """``step(metric)`` instead of ``step()`` (ReduceLROnPlateau)."""

    def __repr__(self) -> str:
        return f"SchedulerSpec({self.name!r})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # Hypothesis's pretty-printer hook
        p.text(repr(self))


@dataclass(frozen=True)
class ClosureOptimizerSpec:
    """A closure-driven torch.optim algorithm (LBFGS) and its pure NumPy reference.

    Unlike :class:`OptimizerSpec` the step takes no gradient but a closure re-evaluating the
    objective, and the state is global over the flat vector of all parameters.
    """

    name: str
    """pytest id and reference name: ``references.optim_*.<name>``."""
    torch_cls: Callable[..., torch.optim.Optimizer]
    """The optimizer class, called as ``torch_cls(params, **hyper)``."""
    ref_step: Callable[..., tuple[Array, float, Any]]
    """``ref_step(flat_params, closure, state | None, **hyper) -> (params, loss, state)`` with
    ``closure(x) -> (loss, flat gradient)``."""
    state_type: type
    """The reference state NamedTuple; its field names are torch's state keys."""
    hyper: st.SearchStrategy[dict[str, Any]]
    """Hyper-parameters over their documented ranges."""
    docs: str
    ref_options: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments for ``ref_step`` only: the installed torch's version of the algorithm
    where torch changed it between releases (``suite.versions``; docs/conventions.md)."""

    def __repr__(self) -> str:
        return f"ClosureOptimizerSpec({self.name!r})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # Hypothesis's pretty-printer hook
        p.text(repr(self))
