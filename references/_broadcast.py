r"""The adjoint of broadcasting, shared by the references whose arguments broadcast.

An argument of shape ``s`` broadcast up to the shape of an array ``a`` is copied along the axes
broadcasting adds in front and along its axes of size 1 that ``a`` stretches; the VJP of that
copy sums those axes (https://numpy.org/doc/stable/user/basics.broadcasting.html, the rules
torch follows: https://pytorch.org/docs/stable/notes/broadcasting.html).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def sum_to_shape(grad: Array, shape: tuple[int, ...]) -> Array:
    r"""Adjoint of broadcasting an array of ``shape`` up to ``grad.shape``: sum over the axes
    that broadcasting added or stretched. A writeable ``grad`` that already has ``shape`` is
    returned as it is (summing no axis would only copy it); a read-only one (a broadcast view)
    is copied, so the result can always be written."""
    shape = tuple(shape)
    if grad.shape == shape and grad.flags.writeable:
        return grad
    grad = np.sum(grad, axis=tuple(range(grad.ndim - len(shape))))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return np.sum(grad, axis=stretched, keepdims=True)
