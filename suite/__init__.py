"""gradsuite's harness: records, strategies, tolerances, comparisons, checks and the pytest plugin.

The harness knows nothing about a particular op: every op-specific fact lives on its record in
``suite.catalog`` and in its reference in ``references``.
"""

__version__ = "0.1.0"
