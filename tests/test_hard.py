"""The hard tier (suite/hard.py, suite/hardcheck.py) for every record of the catalogue."""

from __future__ import annotations

import gradsuite as gs
from suite import catalog

HARD_CHECKS = ("test_hard_inputs_match_reference", "test_hard_inputs_low_precision",
               "test_hard_layouts_of_every_argument",
               "test_hard_special_values_at_every_position")

TestHard = gs.battery(*catalog.OPS, only=HARD_CHECKS)
