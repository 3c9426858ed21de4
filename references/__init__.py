"""Independent NumPy references for the building blocks gradsuite checks.

Everything here is written from the formula, computes in float64 and never imports torch, so a
bug in torch cannot leak into the value it is checked against.

Naming convention, shared with ``suite.catalog``: a forward ``f(input, ..., **options)`` and its
vector-Jacobian product ``f_vjp(g, input, ..., **options)``, where ``g`` is the cotangent (the
gradient of a scalar with respect to ``f``'s output) and the result is a dict mapping each
differentiable argument name (torch's argument names: ``input``, ``weight``, ...) to its gradient.
"""
