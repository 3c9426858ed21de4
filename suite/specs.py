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

    def rounded_to(self, dtype: torch.dtype) -> Case:
        """The same case with floating arrays rounded to ``dtype`` and widened back to float64.

        torch receives ``dtype`` values; the reference must see exactly those values, or the
        comparison would count input rounding as torch's error.
        """
        arrays = {k: round_to(a, dtype) if a.dtype.kind == "f" else a
                  for k, a in self.arrays.items()}
        return Case(arrays, self.differentiable, self.options, self.seed)

    def scaled(self, factor: float) -> Case:
        """The same case with every differentiable array multiplied by ``factor``."""
        arrays = {k: a * factor if k in self.differentiable else a for k, a in self.arrays.items()}
        return Case(arrays, self.differentiable, self.options, self.seed)

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
        return "\n".join("  " + line for line in lines)


def round_to(a: Array, dtype: torch.dtype) -> Array:
    """``a`` rounded to ``dtype`` and widened back to float64, through torch (NumPy has no
    bfloat16)."""
    return torch.tensor(a).to(dtype).to(torch.float64).numpy()


class Inputs(Protocol):
    """How a record's inputs are made: drawn by Hypothesis for tests, sized for benchmarks."""

    def strategy(self) -> st.SearchStrategy[Case]:
        """Cases for property tests: shapes, values inside the op's domain, and options."""
        ...

    def sized(self, n: int, seed: int = 0) -> Case:
        """A deterministic case whose cost grows with ``n`` (for benchmarks and extremes)."""
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


@dataclass(frozen=True, kw_only=True)
class OpSpec:
    """A differentiable op (layer, activation or loss) and its NumPy reference."""

    name: str
    """pytest id, benchmark group and reference name: ``references.<module>.<name>``."""
    family: str
    """``"activation"``, ``"layer"`` or ``"loss"``: groups reports and benchmarks."""
    torch_fn: Callable[..., torch.Tensor]
    """The torch callable under test, called as ``torch_fn(**tensors, **options)``."""
    ref: Callable[..., Array]
    """The NumPy forward, called as ``ref(**arrays, **options)``."""
    ref_vjp: Callable[..., dict[str, Array]]
    """The NumPy VJP, ``ref_vjp(g, **arrays, **options) -> {argument name: gradient}``."""
    inputs: Inputs
    """How inputs are drawn (domain, shapes, options, kink-avoidance rule)."""
    docs: str
    """The torch documentation the reference follows."""
    tol: ToleranceOverride = field(default_factory=dict)
    """Visible widenings of ``suite.tolerances``; merged by max; each needs a reason."""
    fd_step: float = tols.FD_STEP
    """Finite-difference step for the reference self-check."""
    module: Callable[..., torch.nn.Module] | None = None
    """The ``torch.nn`` module form of ``torch_fn`` (e.g. ``nn.MSELoss``), if there is one: it is
    built as ``module(**ctor_arrays, **options)`` and called with the other arrays in order
    (positionally: module forwards may rename arguments, e.g. PoissonNLLLoss's ``log_input``),
    and must agree with ``torch_fn``."""
    ctor_arrays: tuple[str, ...] = ()
    """Names of ``Case.arrays`` passed to ``module``'s constructor rather than to its call."""
    module_factory: Callable[[Case], torch.nn.Module] | None = None
    """Builds the module form from the case where ``module(**ctor_arrays, **options)`` does not
    fit: constructor arguments named or shaped unlike the functional options (nn.Linear's
    sizes, read from the arrays' shapes), or a mode to set (``nn.RReLU(...).eval()``, whose
    functional form is ``F.rrelu(training=False)``). It reads values only from the options;
    parameter values come from ``module_params``. ``module`` still names the class."""
    module_params: tuple[str, ...] = ()
    """Names of ``Case.arrays`` that are the module's parameters or buffers of the same name
    (nn.PReLU's ``weight``, nn.BatchNorm2d's ``running_mean``): the module is called through
    ``torch.func.functional_call`` with the case's tensors in their place (their shapes must
    match the module's own), so gradients and in-place updates land on the same tensors as
    in the functional form, and their values after the call are compared too. An optional
    array the case lacks keeps the module's own tensor (the factory decides whether it
    exists, e.g. ``bias=False``)."""

    def __repr__(self) -> str:
        return f"OpSpec({self.name!r})"

    def reference(self, case: Case) -> Array:
        """The reference forward on ``case``: ``ref(**arrays, **options)``."""
        return self.ref(**case.arrays, **case.options)

    def reference_vjp(self, g: Array, case: Case) -> dict[str, Array]:
        """The reference VJP on ``case`` for the cotangent ``g``, in the installed torch's
        convention: ``ref_vjp(g, **arrays, **options, **ref_options)``."""
        return self.ref_vjp(g, **case.arrays, **case.options, **self.ref_options)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # Hypothesis's pretty-printer hook
        p.text(repr(self))

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
    where its derivative is not, when ``order`` is 2 (softsign at 0), as a function of the
    case's options; torch's forward and gradient are compared with the
    reference exactly there (the reference VJP states torch's convention). None: no such point."""
    order: int = 1
    """The highest derivative order checked against the reference. 1: values and VJPs only;
    2: also torch.func.jvp (forward mode) and double backward (a Hessian-vector product), both
    checked through the reference VJP and finite differences (``suite.higher``,
    tests/test_higher_order.py)."""
    low_precision: bool | str = False
    """True: also checked in float16 and bfloat16 (tests/test_precision.py) with the
    eps-derived rows of ``suite.tolerances``, which hold where torch evaluates the op
    elementwise (in float32 internally) and rounds each output once or a few times; sums of
    signed terms add their conditioning through ``terms``. A string: off the ladder, and why
    (tests/test_catalog.py requires one or the other)."""
    broadcasts: tuple[str, ...] = ()
    """Arrays torch broadcasts against the others (a loss's target, margin_ranking's inputs):
    tests/test_ops.py also checks cases where one of them has some dimensions cut to size 1,
    the forward broadcasting it and its gradient summed back over the copies."""
    broadcasts_last_dim: bool = True
    """Whether ``broadcasts`` may cut the last dimension too. False for records that reduce over
    it (cosine_embedding, triplet_margin: a feature dimension of size 1 makes a scale-invariant
    function whose gradient is a pure cancellation, and torch's cosine of it exceeds 1;
    KNOWN_DIFFERENCES.md)."""
    terms: SumTerms | None = None
    """How to compute M = sum |terms| behind each output and gradient element, for records whose
    results are sums of signed terms (a matmul, a weight gradient summed over the batch, a
    difference such as glu's sigmoid - sigmoid**2): half-precision comparisons allow
    ``suite.tolerances.SUMMATION[dtype] * M`` on top of the row (suite/conditioning.py)."""


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
    constructor_only: tuple[str, ...] = ()
    """Hyper-parameters torch reads from the constructor for every group, ignoring a group's
    own value (never varied between groups; each is in KNOWN_DIFFERENCES.md)."""

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
