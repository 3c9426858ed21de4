"""The precision ladder's rules: float16 and bfloat16 against the float64 reference.

The ladder itself is a check of the battery (tests/test_ops.py,
``test_low_precision_matches_reference``) for every record whose ``low_precision`` is True;
torch receives the rounded inputs, the reference runs in float64 on exactly those values, and
the tolerances are suite/tolerances.py's eps-derived half rows. Here: the rows' derivation and
that every record is on the ladder or says why.
"""

from __future__ import annotations

import torch

import gradsuite as gs
from suite import catalog
from suite import tolerances as tols

ON_LADDER = [s for s in catalog.OPS if s.low_precision is True]

TestLadder = gs.battery(*catalog.OPS, only=("test_low_precision_matches_reference",))


def test_tolerances_follow_machine_epsilon() -> None:
    """Every rung's forward and gradient tolerance grows with the dtype's eps: the ladder is
    ordered, and the half rows are the eps multiples suite/tolerances.py derives."""
    ladder = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
    for kind in (tols.Kind.FORWARD, tols.Kind.GRADIENT):
        rows = [tols.resolve(d, kind) for d in ladder]
        assert [r.rtol for r in rows] == sorted(r.rtol for r in rows), kind
        for d in (torch.float16, torch.bfloat16):
            eps = torch.finfo(d).eps
            row = tols.resolve(d, kind)
            assert row.rtol == 4 * eps
            assert row.atol == (2 * eps if kind is tols.Kind.FORWARD else 8 * eps)


def test_every_record_is_on_the_ladder_or_says_why() -> None:
    """A record off the half-precision ladder carries the written reason (``low_precision``
    is then a string); a record with sums of signed terms declares how to compute them."""
    for spec in catalog.OPS:
        assert spec.low_precision is True or (isinstance(spec.low_precision, str)
                                              and len(spec.low_precision) > 20), spec.name
    assert len(ON_LADDER) >= 40, [s.name for s in ON_LADDER]
