"""Activations beyond the battery's checks (tests/test_ops.py, which also runs the exact
non-differentiable points, NaN and infinities, views, and empty and 0-d inputs of every
activation): a census of torch.nn's activation classes against the catalogue, and known
differences kept as strict expected failures. docs/conventions.md states every rule checked.
"""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest
import torch

import gradsuite as gs
from suite import catalog, versions
from suite import gradcheck as gc
from suite.specs import OpSpec

ACTIVATIONS = [s for s in catalog.OPS if s.family == "activation"]

# torch results that differ from the documented rule, each in KNOWN_DIFFERENCES.md: strict
# expected failures (a fix in torch shows up as an unexpected pass).
KNOWN_FAILURES = {
    "test_forward_and_gradient_with_special_values[*-float32-gelu-inf]":
        "torch 2.1 to 2.15's float32 gelu gives NaN at +inf in oneDNN's AVX512 kernel (float64, "
        "one element, AVX2-only CPUs and torch 2.0.1 give inf)",
} if versions.GELU_FLOAT32_INF_IS_NAN else {}

# The battery's checks at special inputs, for every record whose inputs are Elementwise (the
# activations): exact non-differentiable points, NaN and infinities, views, empty and 0-d.
TestSpecialInputs = gs.battery(*catalog.OPS, known_failures=KNOWN_FAILURES, only=(
    "test_forward_and_gradient_at_exact_points", "test_forward_and_gradient_with_special_values",
    "test_non_contiguous_input", "test_empty_and_zero_dim_inputs"))

# Classes of torch.nn.modules.activation that are not activation functions, with the reason.
NOT_ACTIVATIONS = {
    "MultiheadAttention": "a layer with learned projections, not an activation function",
}


# Activation records without a torch.nn module form, with the reason (the record says it too).
NO_MODULE = {
    "clamp": "torch.nn has no Clamp module (nn.Hardtanh, clamp with both bounds, has a record)",
}


def _documented_class(spec: OpSpec) -> str | None:
    """The torch.nn class a record's docs page names (``.../torch.nn.ReLU.html`` -> ReLU)."""
    match = re.search(r"/torch\.nn\.(\w+)\.html$", spec.docs)
    return match.group(1) if match else None


def test_every_torch_nn_activation_has_a_record() -> None:
    """Lists torch.nn's activation classes at run time: a new one fails until it has a record
    whose ``module`` is that class (tests/test_ops.py checks it against the functional form)."""
    module = torch.nn.modules.activation
    classes = {name for name, obj in vars(module).items()
               if inspect.isclass(obj) and issubclass(obj, torch.nn.Module)
               and obj.__module__ == module.__name__ and not name.startswith("_")
               and getattr(torch.nn, name, None) is obj}
    covered = {s.module.name for s in ACTIVATIONS if s.module is not None}
    missing = sorted(classes - covered - set(NOT_ACTIVATIONS))
    assert not missing, (f"torch {torch.__version__} has activation classes without a record "
                         f"(with module=...) in suite/catalog/activations.py: {missing} (add "
                         f"one, or list the class in NOT_ACTIVATIONS with the reason)")
    # The exclusions are written against torch 2.13; an older torch lacks some of the classes
    # they name (added later), which is not staleness.
    if versions.torch_at_least("2.13"):
        stale = sorted(set(NOT_ACTIVATIONS) - classes)
        assert not stale, f"NOT_ACTIVATIONS names classes torch no longer has: {stale}"


def test_every_activation_record_has_its_module_form() -> None:
    """Each record's ``module`` is the class its docs page documents; only the records in
    NO_MODULE have none."""
    without = sorted(s.name for s in ACTIVATIONS if s.module is None)
    assert without == sorted(NO_MODULE), (f"activation records without module=: {without}; "
                                          f"expected exactly {sorted(NO_MODULE)}")
    wrong = {s.name: (s.module.name, _documented_class(s)) for s in ACTIVATIONS
             if s.module is not None and s.module.name != _documented_class(s)}
    assert not wrong, f"records whose module is not the documented class (module, docs): {wrong}"


# --- known differences --------------------------------------------------------------------------


@pytest.mark.xfail(strict=True, reason="torch 2.13's hardsigmoid_backward multiplies by 1.0f/6.0f "
                                       "(a float32 constant) in float64: 2.98e-8 relative error "
                                       "(KNOWN_DIFFERENCES.md); the record widens its float64 "
                                       "gradient tolerance for it until torch is fixed")
def test_hardsigmoid_float64_gradient_at_the_table_tolerance() -> None:
    spec = catalog.by_name("hardsigmoid")
    assert isinstance(spec, OpSpec)
    gc.check_gradient(dataclasses.replace(spec, tol={}), spec.inputs.sized(8),
                      torch.float64, "cpu")
