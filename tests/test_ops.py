"""Every op record of the catalogue through gradsuite's battery: the same path a user's own op
takes (``gs.battery``), dogfooded on every record.

Here: forward, gradient, the reference against finite differences, large inputs, the module
form, broadcast arguments, and the benchmarks (``pytest -m bench``). The battery's other checks
of the same records run in tests/test_activations.py (exact points, special values, views,
empty inputs), tests/test_precision.py (the half-precision ladder), tests/test_higher_order.py
(forward mode, double backward) and tests/test_transforms.py (torch.func). Ids name the record
(``pytest -k softmax``).
"""

from __future__ import annotations

import gradsuite as gs
from suite import catalog

TestOps = gs.battery(*catalog.OPS, only=(
    "test_forward_matches_reference", "test_gradient_matches_reference",
    "test_reference_vjp_matches_finite_differences", "test_gradient_matches_finite_differences",
    "test_float32_matches_own_float64", "test_reference_is_finite_at_large_inputs",
    "test_forward_matches_reference_at_large_inputs", "test_module_agrees_with_functional",
    "test_broadcast_argument", "test_custom_op_passes_opcheck", "test_benchmark"))


def test_every_broadcast_record_names_its_arrays() -> None:
    """``broadcasts`` names arrays the record's input maker draws (a typo would check nothing)."""
    for spec in catalog.OPS:
        drawn = spec.inputs.sized(8, seed=0).arrays
        assert set(spec.broadcasts) <= set(drawn), (spec.name, spec.broadcasts, list(drawn))
