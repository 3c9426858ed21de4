"""Transform agreement: torch.func.vjp against autograd (the battery's check); forward mode
through a custom op.

torch.compile is a backend of the battery's forward, gradient and precision-ladder checks
(``--backend inductor``, ``-m compile``; suite/compiled.py) over the whole catalogue, and
torch.func.vmap its own check (tests/test_vmap.py)."""

from __future__ import annotations

import pytest
import torch

import gradsuite as gs
from suite import catalog

TestFunc = gs.battery(*catalog.OPS, only=("test_func_vjp_matches_autograd",))


# A torch.library custom op has no forward-mode AD rule (register_autograd registers the
# backward only). torch raises for a built-in op without one ("Trying to use forward AD with
# ... that does not support it"); for a custom op torch 2.13.0 returns a zero tangent instead,
# silently (KNOWN_DIFFERENCES.md). Strict: when torch raises or computes J v, this passes and
# the entry must go.
HAS_CUSTOM_OP = hasattr(torch.library, "custom_op")  # new in torch 2.4

if HAS_CUSTOM_OP:
    @torch.library.custom_op("gradsuite_tests::jvp_probe", mutates_args=())
    def _custom_tanh(input: torch.Tensor) -> torch.Tensor:
        return torch.tanh(input)

    _custom_tanh.register_fake(lambda input: torch.empty_like(input))
    _custom_tanh.register_autograd(
        lambda ctx, g: g * (1 - ctx.y * ctx.y),
        setup_context=lambda ctx, inputs, output: setattr(ctx, "y", output))


@pytest.mark.skipif(not HAS_CUSTOM_OP, reason=f"torch {torch.__version__} has no "
                    f"torch.library.custom_op (new in torch 2.4)")
@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="torch 2.13.0: torch.func.jvp through a torch.library custom op with "
                          "no forward-mode rule returns a zero tangent instead of raising "
                          "(KNOWN_DIFFERENCES.md)")
def test_forward_mode_through_a_custom_op_is_not_silently_zero() -> None:
    x = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    t = torch.ones(3, dtype=torch.float64)
    try:
        _, jv = torch.func.jvp(_custom_tanh, (x,), (t,))
    except RuntimeError as error:
        # What torch does for built-in ops without forward AD: an error is an honest answer.
        assert "forward AD" in str(error) or "not implemented" in str(error), str(error)
        return
    expected = 1 - torch.tanh(x) ** 2
    assert torch.allclose(jv, expected), f"J v = {jv.tolist()}, expected {expected.tolist()}"
