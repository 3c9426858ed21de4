"""Transform agreement: torch.func.vjp against autograd (the battery's check).

torch.compile is a backend of the battery's forward, gradient and precision-ladder checks
(``--backend inductor``, ``-m compile``; suite/compiled.py) over the whole catalogue, and
torch.func.vmap its own check (tests/test_vmap.py)."""

from __future__ import annotations

import gradsuite as gs
from suite import catalog

TestFunc = gs.battery(*catalog.OPS, only=("test_func_vjp_matches_autograd",))
