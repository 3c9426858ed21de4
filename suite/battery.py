"""``gradsuite.battery(*records)``: every check that applies to the records, as one test class.

::

    import gradsuite as gs
    TestMyGelu = gs.battery(gs.like("gelu", torch_fn=my_gelu))

pytest collects the class by the name it is bound to. Each check is one test method,
parametrized over the records it applies to (ids are the record names, so ``pytest -k gelu``
selects every check of gelu), over the devices and dtypes the plugin selects, and drawn by
Hypothesis. What a check needs is read from the record; a record that lacks it (no module form,
no reference, no exact points) does not get that check, and the plugin lists, once, which
checks each record does not get and why (``pytest -v`` for the whole list).

Records without a reference (``ref=None``) get the reference-free checks instead
(``suite.selfref``). Every failure of a check writes a standalone reproducer script
(``suite.reproduce``). Benchmarks of every record are methods too, marked ``bench``, so they
run only with ``pytest -m bench``.

``known_failures`` maps test-name patterns (``*`` and ``?`` as wildcards, e.g.
``"test_forward_and_gradient_with_special_values[*-float32-gelu-inf]"``) to the reason: such a
test is a strict expected failure (it must fail; once it passes, the entry must go), and a
pattern that matches no parametrization of a collected test is an error.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import Phase, assume, given, settings
from hypothesis import strategies as st

from suite import checks, compiled, layouts, optimcheck, optimsupport, reproduce, versions
from suite import strategies as hs
from suite.devices import dtype_name
from suite.inputs import Elementwise
from suite.specs import (
    ClosureOptimizerSpec,
    OpSpec,
    OptimizerRun,
    OptimizerSpec,
    cached_strategy,
)

Record = OpSpec | OptimizerSpec | ClosureOptimizerSpec
NOT_RUN_ATTRIBUTE = "gradsuite_not_run"
KNOWN_FAILURES_ATTRIBUTE = "gradsuite_known_failures"


def spec_id(record: Any) -> str:
    """The pytest id of a record: its name."""
    return str(record.name)


def _ids(values: Iterable[Any]) -> list[str]:
    return [str(v) for v in values]


def _run(record: Any, check: str, case: Any, **params: Any) -> None:
    """Run one check, writing a standalone reproducer when it fails."""
    __tracebackhide__ = True
    with reproduce.on_failure(record, check, case, **params):
        checks.run(check, record, case, **params)


def _draw(spec: OpSpec, data: st.DataObject) -> Any:
    return data.draw(spec.cases(), label="case")


def _on(backend: str) -> dict[str, str]:
    """The check's ``backend`` parameter: none for eager (reproducers stay as they were)."""
    return {} if backend == compiled.EAGER else {"backend": backend}


# --- which checks apply to an op record, and why not ------------------------------------------
# Each rule returns None where the check applies, or the reason it does not.


def _needs_reference(spec: OpSpec) -> str | None:
    return None if spec.ref is not None else "the record has no reference (ref=None)"


# A reason of "" means the check is replaced, not missing (a reference-free check of a record
# that has a reference): it is not listed among the checks a record does not get.
def _reference_free_only(spec: OpSpec) -> str | None:
    return None if spec.ref is None else ""


def _elementwise(spec: OpSpec) -> str | None:
    return None if isinstance(spec.inputs, Elementwise) else \
        "its inputs are not gradsuite.inputs.Elementwise (one `input` of any shape)"


def _all(*rules: Callable[[OpSpec], str | None]) -> Callable[[OpSpec], str | None]:
    def rule(spec: OpSpec) -> str | None:
        for r in rules:
            reason = r(spec)
            if reason:
                return reason
        return None
    return rule


def _field(name: str, why: str) -> Callable[[OpSpec], str | None]:
    def rule(spec: OpSpec) -> str | None:
        value = getattr(spec, name)
        if isinstance(value, str):
            return f"{name}: {value}"
        return None if value else why
    return rule


def is_custom_op(fn: Any) -> bool:
    """Whether ``fn`` is a ``torch.library`` custom op (or an operator overload)."""
    return type(fn).__name__ == "CustomOpDef" or isinstance(
        fn, torch._ops.OpOverload | torch._ops.OpOverloadPacket)


def _is_custom_op(spec: OpSpec) -> str | None:
    if not is_custom_op(spec.torch_fn):
        return "torch_fn is not a torch.library custom op"
    if not hasattr(torch.library, "opcheck"):
        return f"torch {torch.__version__} has no torch.library.opcheck (new in 2.4)"
    return None


def _vmappable(spec: OpSpec) -> str | None:
    """``OpSpec.vmap``: a string says why not; a mapping (arrays left unbatched) still runs."""
    if isinstance(spec.vmap, str):
        return f"vmap: {spec.vmap}"
    return "vmap is False" if spec.vmap is False else None


def _forward_mode(spec: OpSpec) -> str | None:
    if is_custom_op(spec.torch_fn):
        return ("torch.library custom ops have no forward-mode AD rule, and torch.func.jvp "
                "returns zero tangents for them without an error (torch 2.13.0; "
                "KNOWN_DIFFERENCES.md)")
    return None


# --- test factories: each makes one test method for the records a check applies to ----------


def _parametrize(records: list[Any]) -> Any:
    return pytest.mark.parametrize("spec", records, ids=spec_id)


def _forward(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    @given(data=st.data())
    def test_forward_matches_reference(self: Any, spec: OpSpec, dtype: torch.dtype, device: str,
                                       backend: str, data: st.DataObject) -> None:
        _run(spec, "forward", _draw(spec, data), dtype=dtype, device=device, **_on(backend))
    return test_forward_matches_reference


def _gradient(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    @given(data=st.data())
    def test_gradient_matches_reference(self: Any, spec: OpSpec, dtype: torch.dtype,
                                        device: str, backend: str, data: st.DataObject) -> None:
        _run(spec, "gradient", _draw(spec, data), dtype=dtype, device=device, **_on(backend))
    return test_gradient_matches_reference


def _reference_fd(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    @given(data=st.data())
    def test_reference_vjp_matches_finite_differences(self: Any, spec: OpSpec,
                                                      data: st.DataObject) -> None:
        _run(spec, "finite_differences", _draw(spec, data))
    return test_reference_vjp_matches_finite_differences


def _autograd_fd(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    @given(data=st.data())
    def test_gradient_matches_finite_differences(self: Any, spec: OpSpec,
                                                 data: st.DataObject) -> None:
        """Reference-free: torch's float64 autograd against central differences of its own
        forward along a random direction (gradcheck's fast mode, on generated inputs)."""
        _run(spec, "finite_differences", _draw(spec, data))
    return test_gradient_matches_finite_differences


def _own_float64(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    @given(data=st.data())
    def test_float32_matches_own_float64(self: Any, spec: OpSpec, device: str,
                                         data: st.DataObject) -> None:
        """Reference-free: float32 forward and gradient against the op's own float64 ones."""
        _run(spec, "own_float64", _draw(spec, data), dtype=torch.float32, device=device)
    return test_float32_matches_own_float64


def _finite_at_large(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    @pytest.mark.parametrize("factor", checks.LARGE, ids=["1e4", "-1e4"])
    def test_reference_is_finite_at_large_inputs(self: Any, spec: OpSpec, factor: float) -> None:
        _run(spec, "reference_is_finite", spec.inputs.sized(8, seed=0), factor=factor)
    return test_reference_is_finite_at_large_inputs


def _large(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    @pytest.mark.parametrize("factor", checks.LARGE, ids=["1e4", "-1e4"])
    def test_forward_matches_reference_at_large_inputs(self: Any, spec: OpSpec, factor: float,
                                                       dtype: torch.dtype, device: str) -> None:
        _run(spec, "large_input", spec.inputs.sized(8, seed=0), factor=factor, dtype=dtype,
             device=device)
    return test_forward_matches_reference_at_large_inputs


def _module(records: list[OpSpec]) -> Callable[..., None]:
    @pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss:UserWarning")
    @_parametrize(records)
    # The module calls the same kernel as the functional form: what can differ is how
    # arguments, options and modes reach it, which 25 draws of every option cover.
    @settings(max_examples=25)
    @given(data=st.data())
    def test_module_agrees_with_functional(self: Any, spec: OpSpec, dtype: torch.dtype,
                                           device: str, data: st.DataObject) -> None:
        _run(spec, "module", _draw(spec, data), dtype=dtype, device=device)
    return test_module_agrees_with_functional


def _broadcast(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    @settings(max_examples=25)  # the layouts vary little per draw
    @given(data=st.data())
    def test_broadcast_argument(self: Any, spec: OpSpec, dtype: torch.dtype, device: str,
                                data: st.DataObject) -> None:
        """An argument of smaller (broadcastable) shape: torch's forward and gradients against
        the reference, whose VJP sums the gradient back over the broadcast copies, itself
        checked against finite differences."""
        _run(spec, "broadcast", layouts.broadcast_case(spec, data), dtype=dtype, device=device)
    return test_broadcast_argument


def _exact(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    @settings(max_examples=20)  # a handful of points per op: 20 option draws cover them
    @given(data=st.data())
    def test_forward_and_gradient_at_exact_points(self: Any, spec: OpSpec, dtype: torch.dtype,
                                                  device: str, data: st.DataObject) -> None:
        """torch at the op's kinks equals the reference, whose VJP states torch's convention."""
        _run(spec, "exact_points", _draw(spec, data), dtype=dtype, device=device)
    return test_forward_and_gradient_at_exact_points


def _special(records: list[OpSpec]) -> Callable[..., None]:
    @pytest.mark.parametrize("value", list(layouts.SPECIAL), ids=list(layouts.SPECIAL))
    @_parametrize(records)
    def test_forward_and_gradient_with_special_values(self: Any, spec: OpSpec, value: str,
                                                      dtype: torch.dtype, device: str) -> None:
        """NaN or an infinity in the first and last element of a sized(4) input (16 elements or
        more: torch's vectorised kernels handle them, the path any realistic tensor takes)."""
        _run(spec, "special_value", spec.inputs.sized(4, seed=0), value=value, dtype=dtype,
             device=device)
    return test_forward_and_gradient_with_special_values


def _layouts(records: list[OpSpec]) -> Callable[..., None]:
    @pytest.mark.parametrize("layout", list(layouts.LAYOUTS))
    @_parametrize(records)
    @settings(max_examples=10)  # the layout is fixed; values and shapes only vary its extent
    @given(data=st.data())
    def test_non_contiguous_input(self: Any, spec: OpSpec, layout: str, dtype: torch.dtype,
                                  device: str, data: st.DataObject) -> None:
        """A transposed, step-sliced or expanded (stride-0) view of the input."""
        inputs = spec.inputs
        assert isinstance(inputs, Elementwise)
        min_dims = max(inputs.min_dims, layouts.LAYOUTS[layout][1])
        strategy = cached_strategy(inputs, ("layout", min_dims), lambda: inputs.cases(
            hs.shapes(min_dims=min_dims, max_dims=max(min_dims, inputs.max_dims),
                      max_size=256)))
        _run(spec, "layout", data.draw(strategy, label="case"), layout=layout, dtype=dtype,
             device=device)
    return test_non_contiguous_input


def _empty(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    @settings(max_examples=5)  # a few fixed shapes; their values hardly vary
    @given(data=st.data())
    def test_empty_and_zero_dim_inputs(self: Any, spec: OpSpec, dtype: torch.dtype,
                                       device: str, data: st.DataObject) -> None:
        """0-size dims (and 0-d tensors, where the record accepts them) forward and backward."""
        inputs = spec.inputs
        assert isinstance(inputs, Elementwise)
        strategy = cached_strategy(inputs, "empty", lambda: inputs.cases(
            st.sampled_from(layouts.odd_shapes(inputs.min_dims, inputs.max_dims))))
        _run(spec, "empty", data.draw(strategy, label="case"), dtype=dtype, device=device)
    return test_empty_and_zero_dim_inputs


HALF = pytest.mark.parametrize("half", [torch.float16, torch.bfloat16],
                               ids=["float16", "bfloat16"])


def _low_precision(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    @HALF
    # Half-precision kernels are slow on the CPU: 15 examples per record and dtype.
    @settings(max_examples=15)
    @given(data=st.data())
    def test_low_precision_matches_reference(self: Any, spec: OpSpec, half: torch.dtype,
                                             device: str, backend: str,
                                             data: st.DataObject) -> None:
        """float16 and bfloat16 against the float64 reference on the same rounded inputs; a
        kernel torch lacks in half precision on the device skips with torch's own message."""
        _run(spec, "low_precision", _draw(spec, data), dtype=half, device=device,
             **_on(backend))
    return test_low_precision_matches_reference


def _jvp(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    # Each example evaluates the reference 2-5 times more than a first-order check.
    @settings(max_examples=25)
    @given(data=st.data())
    def test_jvp_matches_reference(self: Any, spec: OpSpec, device: str,
                                   data: st.DataObject) -> None:
        """torch.func.jvp's J v through <u, J v> = <J^T u, v> and against finite differences
        (float64: a finite difference of float32 values cannot resolve the check)."""
        _run(spec, "jvp", _draw(spec, data), device=device)
    return test_jvp_matches_reference


def _double_backward(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    @settings(max_examples=25)  # as test_jvp_matches_reference
    @given(data=st.data())
    def test_double_backward_matches_reference(self: Any, spec: OpSpec, device: str,
                                               data: st.DataObject) -> None:
        """The Hessian-vector product of <g, f> against central differences of the reference
        VJP ("VJP of VJP")."""
        _run(spec, "double_backward", _draw(spec, data), device=device)
    return test_double_backward_matches_reference


def _func_vjp(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    # Each example runs the op three times (the cotangent's shape, autograd, torch.func).
    @settings(max_examples=20)
    @given(data=st.data())
    def test_func_vjp_matches_autograd(self: Any, spec: OpSpec, dtype: torch.dtype, device: str,
                                       data: st.DataObject) -> None:
        _run(spec, "func_vjp", _draw(spec, data), dtype=dtype, device=device)
    return test_func_vjp_matches_autograd


def _vmap(records: list[OpSpec]) -> Callable[..., None]:
    @pytest.mark.vmap
    @_parametrize(records)
    # Each example runs every configuration (each array batched in turn, all, nested) on 3-4
    # examples, torch's loop and the reference each: ~10-100 ms; 10 draw the shapes, ranks
    # and options that change a batching rule's path.
    @settings(max_examples=10)
    @given(data=st.data())
    def test_vmap_matches_loop_and_reference(self: Any, spec: OpSpec, device: str,
                                             data: st.DataObject) -> None:
        """torch.func.vmap over an added batch dimension (each argument in turn, several,
        out_dims, nested once): the forward and per-example VJPs against torch's per-example
        loop and the reference (suite.vmapcheck)."""
        _run(spec, "vmap", _draw(spec, data), device=device)
    return test_vmap_matches_loop_and_reference


def _opcheck(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    @settings(max_examples=5)  # opcheck traces the op several ways: a few cases find a gap
    @given(data=st.data())
    def test_custom_op_passes_opcheck(self: Any, spec: OpSpec, device: str,
                                      data: st.DataObject) -> None:
        """torch.library.opcheck: the custom op's schema, fake-tensor, autograd and AOT
        registrations (a registration problem, reported as such)."""
        _run(spec, "opcheck", _draw(spec, data), device=device)
    return test_custom_op_passes_opcheck


def _benchmark_cases(records: list[OpSpec]) -> Any:
    """The op benchmarks as one parametrization: each record in each of its settings
    (``suite.bench.settings``), pass, implementation (the NumPy reference in the default
    setting only) and size of the setting's sweep. Ids read ``gelu-forward-torch-n256`` for
    the default setting and ``conv2d-dilation2-bfloat16-forward-torch-n1024`` for another, so
    ``-k conv2d`` selects every setting of conv2d."""
    from suite import bench

    params = []
    for spec in records:
        for setting in bench.settings(spec):
            impls = bench.IMPLS if setting.default and spec.ref is not None else ("torch",)
            for pass_ in bench.PASSES:
                for impl in impls:
                    for n in bench.setting_sizes(spec, setting):
                        name = "-".join(filter(None, (spec.name, setting.id)))
                        params.append(pytest.param(spec, setting, pass_, impl, n,
                                                   id=f"{name}-{pass_}-{impl}-n{n}"))
    return pytest.mark.parametrize(("spec", "setting", "pass_", "impl", "n"), params)


def _benchmark(records: list[OpSpec]) -> Callable[..., None]:
    from suite import bench

    @pytest.mark.bench
    @_benchmark_cases(records)
    def test_benchmark(self: Any, benchmark: Any, spec: OpSpec, setting: Any, pass_: str,
                       impl: str, n: int, dtype: torch.dtype, device: str,
                       request: pytest.FixtureRequest) -> None:
        """torch (each device and dtype) beside the NumPy reference (CPU, float64), forward and
        forward+backward, over the record's size sweep; then torch alone in each other setting
        (half precision, the input maker's bench_variants) at the sweep's largest size, once
        per device (``suite.bench.slot_dtype``)."""
        if impl == "numpy" and (device != "cpu" or dtype != torch.float64):
            pytest.skip("the NumPy reference runs once, on the CPU in float64")
        if not setting.default:
            from suite import options, plugin

            slot = bench.slot_dtype(plugin.chosen(request.config, options.DTYPE))
            if dtype_name(dtype) != slot:
                pytest.skip(f"settings besides the default are timed once per device, in the "
                            f"{slot} slot of --dtype")
        case = bench.setting_case(spec, n, setting)
        variant = bench.variants(spec)[setting.variant] if setting.variant else None
        timed = setting.dtype or dtype
        target = bench.op_target(spec, case, impl, pass_, timed, device, variant)
        shape = ", ".join(f"{k}{tuple(a.shape)}" for k, a in case.arrays.items())
        benchmark.group = " ".join(filter(None, (spec.name, pass_, f"n={n}", setting.variant)))
        benchmark.extra_info.update(bench.extra_info(
            op=spec.name, pass_=pass_, impl=impl, device=device, dtype=timed, shape=shape, n=n,
            variant=setting.variant, options=case.options))
        from suite.higher import skip_if_unsupported

        # A half type torch has no kernel for here skips in torch's words (torch 2.2.2:
        # '"mse_cpu" not implemented for 'BFloat16''); any other error fails.
        with skip_if_unsupported(timed, device):
            bench.run(benchmark, target, device)
    return test_benchmark


# --- the hard tier (suite/hard.py, suite/hardcheck.py): its own slow tier, every test marked
# ``hard`` (suite.plugin.SAMPLED_TIERS): a plain `pytest` draws ``plugin.sampled_examples()`` a
# test of it; `pytest -m hard` or a `-k` that names it runs it in full (`-k hard` also selects
# the typical checks of hardtanh, hardshrink, hardsigmoid and hardswish; `-m hard` or
# `-k test_hard` the tier alone).


def hard_examples() -> int:
    """Examples per hard-tier test: a quarter of the profile's (5 dev, 25 ci, 250 thorough), at
    least 5; each example is one scenario of eleven, and the tier has thousands of tests."""
    current = settings.default
    return max(5, (current.max_examples if current is not None else 20) // 4)


def _has_hard(spec: OpSpec) -> str | None:
    from suite import hard

    if getattr(spec.inputs, "hard", None) is None:
        return hard.NO_HARD_TIER.format(type(spec.inputs).__name__)
    return None


def _draw_hard(spec: OpSpec, dtype: torch.dtype, data: st.DataObject) -> Any:
    return data.draw(spec.hard_cases(dtype), label="hard case")


def _hard(records: list[OpSpec]) -> Callable[..., None]:
    @pytest.mark.hard
    @_parametrize(records)
    @settings(max_examples=hard_examples())
    @given(data=st.data())
    def test_hard_inputs_match_reference(self: Any, spec: OpSpec, dtype: torch.dtype,
                                         device: str, data: st.DataObject) -> None:
        """Forward and gradients on ill-conditioned inputs drawn on purpose (offsets >> spread,
        constant rows, ties, extremes, subnormals, vector-width sizes, long reductions), each
        element within the allowance derived from the case's conditioning."""
        _run(spec, "hard", _draw_hard(spec, dtype, data), dtype=dtype, device=device)
    return test_hard_inputs_match_reference


def _hard_low_precision(records: list[OpSpec]) -> Callable[..., None]:
    @pytest.mark.hard
    @_parametrize(records)
    @HALF
    @settings(max_examples=hard_examples())
    @given(data=st.data())
    def test_hard_inputs_low_precision(self: Any, spec: OpSpec, half: torch.dtype, device: str,
                                       data: st.DataObject) -> None:
        """The hard tier in float16 and bfloat16 (records on the precision ladder); a kernel
        torch lacks in half precision skips with torch's own message."""
        _run(spec, "hard", _draw_hard(spec, half, data), dtype=half, device=device)
    return test_hard_inputs_low_precision


def _layout_applies(spec: OpSpec, layout: str) -> bool:
    """Whether some array of the record can take ``layout`` (a transposed view needs two
    dimensions; a maker's ``max_dims`` bounds them where it has one)."""
    most = getattr(spec.inputs, "max_dims", None)
    return most is None or most >= layouts.LAYOUTS[layout][1]


def _hard_layouts(records: list[OpSpec]) -> Callable[..., None]:
    pairs = [pytest.param(s, lay, id=f"{s.name}-{lay}") for s in records
             for lay in layouts.LAYOUTS if _layout_applies(s, lay)]

    @pytest.mark.hard
    @pytest.mark.parametrize(("spec", "layout"), pairs)
    @settings(max_examples=hard_examples())
    @given(data=st.data())
    def test_hard_layouts_of_every_argument(self: Any, spec: OpSpec, layout: str,
                                            dtype: torch.dtype, device: str,
                                            data: st.DataObject) -> None:
        """Any array argument (weight, target, index, mask; not only the input) as a
        transposed, step-sliced or expanded view: other kernel paths, same numbers."""
        from suite import hardcheck

        case = _draw(spec, data)
        names = hardcheck.layout_names(spec, case, layout)
        assume(names)
        name = data.draw(st.sampled_from(names), label="viewed argument")
        _run(spec, "argument_layout", case, name=name, layout=layout, dtype=dtype,
             device=device)
    return test_hard_layouts_of_every_argument


def _hard_special(records: list[OpSpec]) -> Callable[..., None]:
    @pytest.mark.hard
    @pytest.mark.parametrize("value", list(layouts.SPECIAL), ids=list(layouts.SPECIAL))
    @_parametrize(records)
    def test_hard_special_values_at_every_position(self: Any, spec: OpSpec, value: str,
                                                   dtype: torch.dtype, device: str) -> None:
        """NaN or an infinity at the first, middle and last position of inputs of every size in
        suite.hard.SIMD_SIZES (vector body and scalar tail) and in a 0-d input."""
        _run(spec, "special_positions", None, value=value, dtype=dtype, device=device)
    return test_hard_special_values_at_every_position



# --- option pairs covered on purpose (suite/covering.py) ----------------------------------------
# Each example draws one case per covering row (sizes, values and seeds drawn; the row's option
# values fixed), so that every pair of option values that selects a different kernel path is
# checked in every example, in every profile, not only when a random draw happens to hit it.


def _covers(spec: OpSpec) -> str | None:
    from suite import covering

    if not isinstance(spec.inputs, covering.CoveringInputs):
        return (f"{type(spec.inputs).__name__} declares no covering factors (suite.covering): "
                f"its options are drawn at random only")
    return None


def _row_cases(spec: OpSpec, data: st.DataObject,
               keep: Callable[[Any], bool] | None = None) -> Iterable[Any]:
    """One drawn case per covering row of ``spec``'s maker (``keep``: a filter)."""
    from suite import covering

    inputs = spec.inputs
    assert isinstance(inputs, covering.CoveringInputs)
    for i, row in enumerate(covering.rows_of(inputs)):
        strategy = covering.case_for(inputs, row)
        yield data.draw(strategy if keep is None else strategy.filter(keep),
                        label=f"row {i}: {covering.describe(row)}")


PAIR_EXAMPLES = 3  # each example checks every row (11-16 for a convolution)


def _option_pairs(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    @settings(max_examples=PAIR_EXAMPLES)
    @given(data=st.data())
    def test_every_option_pair_matches_reference(self: Any, spec: OpSpec, dtype: torch.dtype,
                                                 device: str, data: st.DataObject) -> None:
        """Forward and gradient on one case per row of the maker's covering array: every pair
        of kernel-selecting option values (stride x dilation x groups x padding, reduction x
        weight x ignore_index x label_smoothing, ...) in every example."""
        for case in _row_cases(spec, data):
            _run(spec, "forward", case, dtype=dtype, device=device)
            _run(spec, "gradient", case, dtype=dtype, device=device)
    return test_every_option_pair_matches_reference


def _option_pairs_low_precision(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    @HALF
    @settings(max_examples=PAIR_EXAMPLES)
    @given(data=st.data())
    def test_every_option_pair_in_low_precision(self: Any, spec: OpSpec, half: torch.dtype,
                                                device: str, data: st.DataObject) -> None:
        """The covering rows in float16 and bfloat16 (records on the precision ladder), judged
        as the ladder judges; a row's case that runs into a recorded defect, or whose exact
        result exceeds the dtype's range, is drawn again."""
        def keep(case: Any) -> bool:
            rounded = case.rounded_to(half)
            if spec.known_defect(rounded, half) is not None:
                return False
            exact = spec.reference(rounded)
            return not np.any(np.abs(exact[np.isfinite(exact)]) > torch.finfo(half).max)

        for case in _row_cases(spec, data, keep):
            _run(spec, "low_precision", case, dtype=half, device=device)
    return test_every_option_pair_in_low_precision



# --- the repeat check (suite/nondeterminism.py): the same call twice, the same bits -------------


def _repeat(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    @settings(max_examples=10)  # each example is two calls, no reference
    @given(data=st.data())
    def test_repeated_call_gives_the_same_bits(self: Any, spec: OpSpec, dtype: torch.dtype,
                                               device: str, data: st.DataObject) -> None:
        """Forward and VJP twice on the same tensors, the first with new memory poisoned
        (NaN until written), the second with freed memory littered: the same bits, unless
        torch says the op has no deterministic implementation."""
        _run(spec, "repeat", _draw(spec, data), dtype=dtype, device=device)
    return test_repeated_call_gives_the_same_bits


def _repeat_low_precision(records: list[OpSpec]) -> Callable[..., None]:
    @_parametrize(records)
    @HALF
    @settings(max_examples=10)
    @given(data=st.data())
    def test_repeated_call_gives_the_same_bits_in_low_precision(
            self: Any, spec: OpSpec, half: torch.dtype, device: str,
            data: st.DataObject) -> None:
        """The repeat check in float16 and bfloat16 (records on the precision ladder), where
        CPU kernels take other paths (blocked conversions, oneDNN); a kernel torch lacks in
        half precision skips with torch's own message."""
        from suite.higher import skip_if_unsupported

        with skip_if_unsupported(half, device):
            _run(spec, "repeat", _draw(spec, data), dtype=half, device=device)
    return test_repeated_call_gives_the_same_bits_in_low_precision


# (factory, rule) per op check; the rule says where it does not apply.
OP_CHECKS: tuple[tuple[Callable[[list[OpSpec]], Callable[..., None]],
                       Callable[[OpSpec], str | None]], ...] = (
    (_forward, _needs_reference),
    (_gradient, _needs_reference),
    (_reference_fd, _needs_reference),
    (_autograd_fd, _reference_free_only),
    (_own_float64, _reference_free_only),
    (_finite_at_large, _needs_reference),
    (_large, _all(_needs_reference, _field(
        "overflow_prone", "overflow_prone is False (its formula does not overflow)"))),
    (_module, _field("module", "the record has no module form (module=None)")),
    (_broadcast, _all(_needs_reference, _field("broadcasts", "no broadcast arguments"))),
    (_exact, _all(_needs_reference, _field("exact_points", "no exact points"))),
    (_special, _all(_needs_reference, _elementwise)),
    (_layouts, _elementwise),
    (_empty, _all(_needs_reference, _elementwise)),
    (_low_precision, _field("low_precision", "low_precision is False")),
    (_jvp, _all(_field("second_order", "second_order is False"), _forward_mode)),
    (_double_backward, _field("second_order", "second_order is False")),
    (_func_vjp, lambda spec: None),
    (_vmap, _all(_needs_reference, _vmappable)),
    (_opcheck, _is_custom_op),
    (_benchmark, lambda spec: None),
    (_hard, _all(_needs_reference, _has_hard)),
    (_hard_low_precision, _all(_needs_reference, _field("low_precision",
                                                        "low_precision is False"), _has_hard)),
    (_hard_layouts, _needs_reference),
    (_hard_special, _all(_needs_reference, _elementwise)),
    (_option_pairs, _all(_needs_reference, _covers)),
    (_repeat, lambda spec: None),
    (_repeat_low_precision, _field("low_precision", "low_precision is False")),
    (_option_pairs_low_precision, _all(_needs_reference, _field("low_precision",
                                                                "low_precision is False"),
                                       _covers)),
)


# --- optimizer records ------------------------------------------------------------------------

# 12 records x 5 variants x 2 dtypes: each example runs up to 20 steps over up to 3 tensors,
# torch and reference, ~10-30 ms.
STEP_EXAMPLES = 50


def _runs(spec: OptimizerSpec, implementation: str, dtype: torch.dtype,
          zero_dim: bool = True, complex_params: bool = True) -> st.SearchStrategy[OptimizerRun]:
    """The record's runs; ``zero_dim=False``: no 0-d parameter among them;
    ``complex_params=False``: no complex parameters."""
    return cached_strategy(spec, (implementation, dtype, zero_dim, complex_params),
                           lambda: _build_runs(spec, implementation, dtype, zero_dim,
                                               complex_params))


def _build_runs(spec: OptimizerSpec, implementation: str, dtype: torch.dtype,
                zero_dim: bool = True, complex_params: bool = True
                ) -> st.SearchStrategy[OptimizerRun]:
    # Complex parameters wherever torch takes them (not in fused implementations) and no
    # recorded torch defect meets them (optimsupport.complex_defect).
    complex_ok = (complex_params
                  and optimcheck.complex_refusal(spec, implementation, dtype) is None
                  and optimsupport.complex_defect(spec, implementation) is None)
    return hs.optimizer_runs(spec.hyper, min_steps=1, max_steps=20, groups=True,
                             none_grads=True, complex_params=complex_ok,
                             tensor_lr=implementation not in spec.tensor_lr_fails,
                             constructor_only=spec.constructor_only,
                             first_step_complete=implementation in spec.late_first_grad_fails,
                             param_dims=(spec.param_dims[0] if zero_dim
                                         else max(1, spec.param_dims[0]), spec.param_dims[1]))


def _skip_unless_runnable(spec: OptimizerSpec, implementation: str, dtype: torch.dtype,
                          device: str) -> None:
    """Skip, with the reason, an implementation torch does not run here
    (``optimcheck.unavailable``) or one whose every run meets a recorded torch defect
    (``optimsupport.implementation_defect``; a test of its own shows the defect)."""
    reason = optimcheck.unavailable(spec, implementation, dtype, device, sparse_grads=True) \
        or optimsupport.implementation_defect(spec, implementation)
    if reason:
        pytest.skip(reason)


def _optimizer_steps(records: list[OptimizerSpec]) -> Callable[..., None]:
    @pytest.mark.parametrize("implementation", list(optimcheck.VARIANTS))
    @_parametrize(records)
    @settings(max_examples=STEP_EXAMPLES)
    @given(data=st.data())
    def test_optimizer_steps_match_reference(self: Any, spec: OptimizerSpec, implementation: str,
                                             dtype: torch.dtype, device: str,
                                             data: st.DataObject) -> None:
        """Up to 20 steps in lockstep: parameters and every state entry after every step."""
        _skip_unless_runnable(spec, implementation, dtype, device)
        run = data.draw(_runs(spec, implementation, dtype), label="run")
        _run(spec, "optimizer_steps", run, implementation=implementation, dtype=dtype,
             device=device)
    return test_optimizer_steps_match_reference


# Each example builds a new optimizer, whose compiled step is a compile of its own (5 s to a
# minute on the 2-core machine): 3 examples per record, implementation and dtype, and no
# shrinking (each shrink step would compile again: a planted compile-only bug took 4 minutes
# to shrink; the failure's message names the run's hyper-parameters and shapes).
COMPILED_STEP_EXAMPLES = 3
_COMPILED_STEP_PHASES = (Phase.explicit, Phase.reuse, Phase.generate)


def torch_optimizer(spec: OptimizerSpec) -> bool:
    """Whether the record steps one of torch.optim's own classes (the findings about torch's
    optimizers apply), not a class of your own under a record's name."""
    return getattr(spec.torch_cls, "__module__", "").startswith("torch.optim")


def _compiled_optimizer_steps(records: list[OptimizerSpec]) -> Callable[..., None]:
    @pytest.mark.compile
    @pytest.mark.parametrize("implementation", list(optimcheck.COMPILED_VARIANTS))
    @_parametrize(records)
    @settings(max_examples=COMPILED_STEP_EXAMPLES, phases=_COMPILED_STEP_PHASES)
    @given(data=st.data())
    def test_compiled_optimizer_steps_match_reference(self: Any, spec: OptimizerSpec,
                                                      implementation: str, dtype: torch.dtype,
                                                      device: str, backend: str,
                                                      data: st.DataObject) -> None:
        """torch.compile(optimizer.step) (compiled backends only: ``--backend``), up to 20
        steps in lockstep with the reference: parameters and every state entry after every
        step."""
        _skip_unless_runnable(spec, implementation, dtype, device)
        # Float64 (torch findings, suite/optimcheck.py): a 0-d parameter loses its whole
        # update in many compiled steps on torch 2.13 (COMPILED_FLOAT64_ZERO_DIM, strict xfails
        # per pair in tests/test_compiled.py), so no 0-d parameter is drawn there; the cases
        # that fail on every draw are strict xfails (COMPILED_FLOAT64_FINDINGS, marked by the
        # plugin); those that fail on some draws only are skipped with their finding.
        if dtype == torch.float64 and torch_optimizer(spec) and (
                why := optimcheck.COMPILED_FLOAT64_UNCHARACTERISED.get((spec.name,
                                                                        implementation))):
            pytest.skip(why)
        zero_dim = dtype != torch.float64 or not versions.COMPILED_STEP_LOSES_ZERO_DIM_FLOAT64
        # inductor cannot compile SGD's foreach step on complex parameters (torch finding,
        # optimcheck.COMPILED_COMPLEX_FAILS; a strict xfail in tests/test_compiled.py).
        complex_ok = not (torch_optimizer(spec) and optimcheck.compiled_complex_failure(
            spec.name, implementation, backend))
        run = data.draw(_runs(spec, implementation, dtype, zero_dim, complex_ok), label="run")
        _run(spec, "optimizer_steps", run, implementation=implementation, dtype=dtype,
             device=device, backend=backend)
    return test_compiled_optimizer_steps_match_reference


def _round_trip(records: list[OptimizerSpec]) -> Callable[..., None]:
    @pytest.mark.parametrize("implementation", list(optimcheck.VARIANTS))
    @_parametrize(records)
    # Each example runs the optimizer twice over up to 20 steps; equality is exact, so a few
    # examples per variant find a state entry that is not saved or not restored.
    @settings(max_examples=20)
    @given(data=st.data())
    def test_state_dict_round_trip_continues_identically(self: Any, spec: OptimizerSpec,
                                                         implementation: str, dtype: torch.dtype,
                                                         device: str,
                                                         data: st.DataObject) -> None:
        _skip_unless_runnable(spec, implementation, dtype, device)
        run = data.draw(_runs(spec, implementation, dtype), label="run")
        split = data.draw(st.integers(1, len(run.grads)), label="save after step")
        _run(spec, "state_dict_round_trip", run, implementation=implementation, dtype=dtype,
             device=device, split=split)
    return test_state_dict_round_trip_continues_identically


def _optimizer_benchmark(records: list[OptimizerSpec]) -> Callable[..., None]:
    from suite import bench

    @pytest.mark.bench
    @pytest.mark.parametrize("n", bench.all_sizes(tuple(records)), ids=lambda n: f"n{n}")
    @pytest.mark.parametrize("impl", [*optimcheck.IMPLEMENTATIONS, "numpy"])
    @_parametrize(records)
    def test_benchmark_step(self: Any, benchmark: Any, spec: OptimizerSpec, impl: str, n: int,
                            dtype: torch.dtype, device: str) -> None:
        if impl == "numpy":
            if device != "cpu" or dtype != torch.float64:
                pytest.skip("the NumPy reference runs once, on the CPU in float64")
        elif reason := optimcheck.unavailable(spec, impl, dtype, device):
            pytest.skip(reason)
        if n not in bench.sizes(spec):
            pytest.skip(f"n={n} is outside {spec.name}'s sweep {bench.sizes(spec)}")
        benchmark.group = f"{spec.name} step n={n}"
        vector = f" + ({n},)" if spec.param_dims[0] <= 1 else ""  # Muon: the matrix alone
        benchmark.extra_info.update(bench.extra_info(op=spec.name, pass_="step", impl=impl,
                                                     device=device, dtype=dtype,
                                                     shape=f"({n}, {n}){vector}", n=n))
        bench.run(benchmark, bench.optimizer_target(spec, n, impl, dtype, device), device)
    return test_benchmark_step


def _closure_steps(records: list[ClosureOptimizerSpec]) -> Callable[..., None]:
    from suite import closurecheck

    @_parametrize(records)
    # Each example runs up to 4 steps of up to 8 L-BFGS iterations on torch and the reference
    # twice (once perturbed, for the tolerance): ~15 ms. 300 examples because some branches
    # are rare: in a probe, a reference that dropped the zoom's insufficient-progress safeguard
    # failed about 1 example in 600, a wrong curvature threshold 1 in 150.
    @settings(max_examples=300)
    @given(data=st.data())
    def test_closure_optimizer_steps_match_reference(self: Any, spec: ClosureOptimizerSpec,
                                                     device: str, data: st.DataObject) -> None:
        # float64 only: L-BFGS decides branches (Wolfe conditions, y^T s > 1e-10, the stopping
        # tests) on computed values, so float32 rounding against the float64 reference flips
        # them and the runs then follow different paths; no tolerance bounds that difference.
        kind = data.draw(st.sampled_from(closurecheck.OBJECTIVES), label="objective")
        n = data.draw(st.integers(2, 8), label="variables")
        split = data.draw(st.integers(0, n - 1), label="split")
        # One parameter, or two (the second 2-D when it can be): torch flattens them in order.
        shapes: list[tuple[int, ...]] = [(n,)] if split == 0 else [(split,), (n - split,)]
        if split and (n - split) % 2 == 0:
            shapes[1] = (2, (n - split) // 2)
        seed = data.draw(hs.SEEDS, label="seed")
        hyper = data.draw(spec.hyper, label="hyper")
        if not closurecheck.make_objective(kind, n, seed).fixed_steps_converge:
            hyper = {**hyper, "line_search_fn": "strong_wolfe"}
        steps = data.draw(st.integers(1, 4), label="steps")
        scenario = {"objective": kind, "n": n, "seed": seed, "shapes": shapes, "hyper": hyper,
                    "steps": steps}
        _run(spec, "closure_steps", scenario, device=device)
    return test_closure_optimizer_steps_match_reference



def _flag_rows(spec: OptimizerSpec, drawn: Mapping[str, Any]) -> list[dict[str, Any]]:
    from suite import covering

    factors = covering.optimizer_factors(spec.torch_cls, drawn)
    if not factors.values:
        return []
    return cached_strategy(spec, "flag rows", lambda: covering.pairwise(factors))


def _with_row(run: OptimizerRun, row: Mapping[str, Any]) -> OptimizerRun:
    """``run`` with ``row``'s hyper-parameters in every parameter group."""
    return run._replace(hyper={**run.hyper, **row},
                        groups=tuple((idx, {**over, **{k: v for k, v in row.items()
                                                       if k in over}})
                                     for idx, over in run.groups))


def _optimizer_flag_pairs(records: list[OptimizerSpec]) -> Callable[..., None]:
    @pytest.mark.parametrize("implementation", list(optimcheck.VARIANTS))
    @_parametrize(records)
    @settings(max_examples=PAIR_EXAMPLES)
    @given(data=st.data())
    def test_every_flag_pair_steps_match_reference(self: Any, spec: OptimizerSpec,
                                                   implementation: str, dtype: torch.dtype,
                                                   device: str, data: st.DataObject) -> None:
        """The lockstep check on one run per row of a covering array of the optimizer's
        branch-selecting hyper-parameters (suite.covering.optimizer_factors: amsgrad,
        maximize, nesterov, centered, ..., zero or nonzero weight decay and momentum), in every
        implementation: every pair of flag values in every example."""
        _skip_unless_runnable(spec, implementation, dtype, device)
        base = data.draw(_runs(spec, implementation, dtype), label="run")
        rows = _flag_rows(spec, base.hyper)
        if not rows:
            pytest.skip(f"{spec.name} has no branch-selecting hyper-parameters to pair")
        for i, row in enumerate(rows):
            run = base if i == 0 else data.draw(_runs(spec, implementation, dtype),
                                                label=f"run for row {i}")
            _run(spec, "optimizer_steps", _with_row(run, row), implementation=implementation,
                 dtype=dtype, device=device)
    return test_every_flag_pair_steps_match_reference


def _hard_runs(spec: OptimizerSpec, implementation: str,
               dtype: torch.dtype) -> st.SearchStrategy[OptimizerRun]:
    from suite import hard

    return cached_strategy(spec, ("hard", implementation, dtype),
                           lambda: hard.optimizer_runs(_runs(spec, implementation, dtype),
                                                       dtype))


def _hard_optimizer_steps(records: list[OptimizerSpec]) -> Callable[..., None]:
    @pytest.mark.hard
    @pytest.mark.parametrize("implementation", list(optimcheck.VARIANTS))
    @_parametrize(records)
    @settings(max_examples=hard_examples())
    @given(data=st.data())
    def test_hard_optimizer_steps_match_reference(self: Any, spec: OptimizerSpec,
                                                  implementation: str, dtype: torch.dtype,
                                                  device: str, data: st.DataObject) -> None:
        """The lockstep check on hard runs (suite.hard.optimizer_runs: gradients spanning
        30 decades in float32 and 200 in float64, vanishing and returning, lr and eps at their
        extremes), judged element by element (suite/tolerances.py, "The optimizer hard
        tier"); runs meeting a recorded torch defect are set aside."""
        _skip_unless_runnable(spec, implementation, dtype, device)
        run = data.draw(_hard_runs(spec, implementation, dtype), label="run")
        from suite import hard

        # A recorded torch defect (suite.hard.OPTIMIZER_KNOWN_DEFECTS; a strict xfail shows it)
        # or a run outside the record's range (suite.hard.OPTIMIZER_OUT_OF_RANGE).
        assume(hard.optimizer_known_defect(spec, run, dtype) is None)
        _run(spec, "optimizer_steps", run, implementation=implementation, dtype=dtype,
             device=device, hard=True)
    return test_hard_optimizer_steps_match_reference


OPTIMIZER_CHECKS = (_optimizer_steps, _compiled_optimizer_steps, _round_trip,
                    _optimizer_benchmark, _optimizer_flag_pairs, _hard_optimizer_steps)


# --- the battery --------------------------------------------------------------------------------


class BatteryError(ValueError):
    """A record that the battery cannot check: the message is one line naming the fix."""


def _fail(message: str) -> BatteryError:
    return BatteryError(message)


def _signature_problem(spec: OpSpec) -> str | None:
    """Why ``torch_fn`` cannot take the record's argument names, or None (or when its
    signature cannot be read: builtins and custom ops)."""
    try:
        signature = inspect.signature(spec.torch_fn)
    except (TypeError, ValueError):
        return None
    case = spec.inputs.sized(4, seed=0)
    try:
        signature.bind(**case.arrays, **case.options)
    except TypeError as error:
        names = ", ".join([*case.arrays, *case.options])
        return (f"record {spec.name!r}: torch_fn {getattr(spec.torch_fn, '__name__', '?')}"
                f"{signature} cannot be called with the record's arguments ({names}): {error}; "
                f"give it those parameter names (or wrap it)")
    return None


def _reference_problem(spec: OpSpec) -> str | None:
    """A reference whose forward or VJP does not match torch's shapes on a small case."""
    if spec.ref is None:
        return None
    case = spec.inputs.sized(4, seed=0)
    try:
        expected = spec.reference(case)
    except Exception as error:
        return (f"record {spec.name!r}: its reference {getattr(spec.ref, '__name__', spec.ref)} "
                f"fails on a small case ({type(error).__name__}: {error})")
    from suite import gradcheck as gc

    tensors = gc.to_tensors(case, torch.float64, "cpu")
    try:
        with torch.no_grad():
            out = spec.torch_fn(**tensors, **case.options)
    except pytest.skip.Exception:
        return None  # a stand-in for what this torch lacks: every check skips, saying why
    except Exception as error:
        return (f"record {spec.name!r}: torch_fn fails on a small case of the record's inputs "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})")
    if tuple(out.shape) != np.shape(expected):
        return (f"record {spec.name!r}: its reference returns shape {np.shape(expected)} where "
                f"torch_fn returns {tuple(out.shape)} on the same case; fix the reference")
    vjp = spec.reference_vjp(gc.cotangent(case, np.shape(expected)), case)
    for name in case.differentiable:
        got = np.shape(vjp[name]) if name in vjp else None
        if got != case.arrays[name].shape:
            return (f"record {spec.name!r}: its reference VJP returns "
                    f"{'no gradient' if got is None else f'shape {got}'} for {name!r}, whose "
                    f"shape is {case.arrays[name].shape}; return each gradient in its "
                    f"argument's shape")
    return None


# Each record is validated once per process: the catalogue's records are held by a dozen test
# modules' batteries, and running every record's torch_fn and reference again for each cost
# seconds per module (more where a first call imports much of torch: linear_cross_entropy's
# chunked path imports dynamo, ~6 s on a quiet core).
_VALIDATED: dict[int, tuple[OpSpec, str | None]] = {}


def _record_problem(spec: OpSpec) -> str | None:
    entry = _VALIDATED.get(id(spec))
    if entry is None or entry[0] is not spec:
        entry = (spec, _signature_problem(spec) or _reference_problem(spec))
        _VALIDATED[id(spec)] = entry
    return entry[1]


def validate(records: tuple[Any, ...]) -> None:
    """Refuse records the battery cannot check, with one line naming the fix each.

    Raises:
        BatteryError: the first problem found.
    """
    if not records:
        raise _fail("gradsuite.battery needs at least one record, e.g. "
                    "gs.battery(gs.like('gelu', torch_fn=my_gelu))")
    names = [str(getattr(r, "name", "")) for r in records]
    for r in records:
        if not isinstance(r, OpSpec | OptimizerSpec | ClosureOptimizerSpec):
            raise _fail(f"gradsuite.battery takes records (gradsuite.OpSpec, OptimizerSpec; "
                        f"gradsuite.like(name, ...) makes one), not {type(r).__name__}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _fail(f"two records are called {duplicates[0]!r}; give each a unique name "
                    f"(gs.like(..., name='my_{duplicates[0]}'))")
    for r in records:
        if isinstance(r, OpSpec):
            if not callable(r.torch_fn):
                raise _fail(f"record {r.name!r}: torch_fn is {r.torch_fn!r}, not callable")
            problem = _record_problem(r)
            if problem:
                raise _fail(problem)
        elif not callable(getattr(r, "torch_cls", None)):
            raise _fail(f"record {r.name!r}: torch_cls is not a class")


# The checks a ``--backend`` runs compiled; a record's ``backends`` reasons are listed once, as
# "<backend> backend", for a battery holding any of them.
BACKEND_AWARE = ("test_forward_matches_reference", "test_gradient_matches_reference",
                 "test_low_precision_matches_reference",
                 "test_compiled_optimizer_steps_match_reference")
_BACKEND_SUFFIX = " backend"


def is_backend_entry(check: str) -> bool:
    """Whether a not-run entry names a backend (``"inductor backend"``), not a check."""
    return check.endswith(_BACKEND_SUFFIX)


def backend_of(check: str) -> str:
    return check.removesuffix(_BACKEND_SUFFIX)


def _backend_entries(ops: list[Any], chosen: set[str]) -> list[tuple[str, str, str]]:
    """(record, "<backend> backend", reason) for each backend a record does not run under (a
    ``"<backend> backward"`` entry: for the checks that differentiate, the reason says)."""
    if not chosen & set(BACKEND_AWARE):
        return []
    return [(s.name, f"{b.removesuffix(compiled.BACKWARD)}{_BACKEND_SUFFIX}",
             f"for the checks that differentiate: {reason}" if b.endswith(compiled.BACKWARD)
             else reason)
            for s in ops for b, reason in sorted(s.backends.items())]


def matches(pattern: str, test_name: str) -> bool:
    """Whether a known-failure pattern names a test: ``*`` and ``?`` are the only wildcards;
    the brackets of a parametrized name are literal (unlike fnmatch's character classes)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, test_name) is not None


def check_names() -> tuple[str, ...]:
    """The names of every check a battery can hold (its test methods)."""
    factories = [f for f, _ in OP_CHECKS] + list(OPTIMIZER_CHECKS) + [_closure_steps]
    return tuple(f([]).__name__ for f in factories)


def battery(*records: Record, only: Iterable[str] | None = None,
            known_failures: Mapping[str, str] | None = None) -> type:
    """A pytest test class holding every check that applies to ``records``.

    Args:
        *records: op records (``OpSpec``, e.g. from ``gradsuite.like``) and optimizer records.
        only: the names of the checks to hold (test method names, e.g.
            ``"test_gradient_matches_reference"``; ``check_names()`` lists them); all by
            default.
        known_failures: ``{test-name pattern: reason}``: strict expected failures (see the
            module docstring).

    Returns:
        A class to bind to a name starting with ``Test`` in a test module.

    Raises:
        pytest's collection error (one line, no traceback) for records it cannot check.
    """
    problem = None
    try:
        validate(records)
        chosen = set(check_names() if only is None else only)
        unknown = sorted(chosen - set(check_names()))
        if unknown:
            raise _fail(f"no check called {unknown[0]!r}; the checks: "
                        f"{', '.join(check_names())}")
    except BatteryError as error:
        problem = str(error)
    if problem is not None:  # outside the except: no chained traceback in pytest's report
        pytest.fail(f"gradsuite.battery: {problem}", pytrace=False)
    names = ", ".join(r.name for r in records)
    label = names if len(names) < 60 else f"{len(records)} records"
    namespace: dict[str, Any] = {"records": records, "__doc__": f"gradsuite's checks of {names}",
                                 # Hypothesis prints ``self`` in a falsifying example
                                 "__repr__": lambda self: f"<gradsuite battery of {label}>"}
    not_run: list[tuple[str, str, str]] = []
    ops = [r for r in records if isinstance(r, OpSpec)]
    for factory, rule in OP_CHECKS:
        name = factory([]).__name__
        if name not in chosen:
            continue
        applicable = [s for s in ops if rule(s) is None]
        not_run += [(s.name, name, str(rule(s))) for s in ops if rule(s)]
        if applicable:
            namespace[name] = factory(applicable)
    not_run += _backend_entries(ops + [r for r in records if isinstance(r, OptimizerSpec)],
                                chosen)
    if _vmap([]).__name__ in chosen:
        from suite import vmapcheck

        not_run += [(s.name, f"vmap over {arg}", reason) for s in ops
                    for arg, reason in vmapcheck.excluded(s).items()]
    optimizers = [r for r in records if isinstance(r, OptimizerSpec)]
    closures = [r for r in records if isinstance(r, ClosureOptimizerSpec)]
    groups: list[tuple[list[Any], Callable[[list[Any]], Callable[..., None]]]] = [
        *((optimizers, f) for f in OPTIMIZER_CHECKS), (closures, _closure_steps)]
    for members, make in groups:
        if members and make([]).__name__ in chosen:
            namespace[make([]).__name__] = make(members)
    namespace[NOT_RUN_ATTRIBUTE] = tuple(not_run)
    namespace[KNOWN_FAILURES_ATTRIBUTE] = dict(known_failures or {})
    return type("Battery", (), namespace)
