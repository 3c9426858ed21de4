r"""Private helpers shared by the optimizer references (``references/optim_*.py``), NumPy float64.

The convention every optimizer module follows: each rule is a pure function in the style of
optax, ``new_param, new_state = rule(param, grad, state, **hyper_parameters)``. Nothing passed in
is modified; every array returned is new.

State is a ``NamedTuple`` whose field names are exactly the keys torch keeps in
``optimizer.state[p]`` for that parameter, so ``ref_state.<key>`` can be compared with
``torch_optimizer.state[p][key]``. Initialisation is lazy, as in torch: ``state=None`` means
"first step, nothing stored yet"; the first call builds the state.

Hyper-parameters carry torch.optim's argument names and defaults. The update equations are
the pseudo-code in the torch documentation (https://pytorch.org/docs/stable/optim.html) and the
arithmetic follows torch's implementation (``torch/optim/*.py``, read for torch 2.13.0)
operation for operation, so a float64 run agrees with torch's float64 run to rounding (about
1e-15 relative per step); each rule's docstring has a "Divergences" note saying where that
implementation departs from its pseudo-code or from the original paper.

The helpers here are the lines every rule's pseudo-code starts with: the gradient with the
maximize sign flip and the weight decay (:func:`_gradient`), the step count (:func:`_next_step`)
and the buffers carried over from the previous step (:func:`_buffers`). They compute exactly what
each rule computed inline before, in the same order, so the agreement with torch is unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def _gradient(
    param: Array,
    grad: Array,
    *,
    maximize: bool,
    weight_decay: float = 0.0,
    lr: float = 0.0,
    decoupled: bool = False,
) -> tuple[Array, Array]:
    r"""The opening lines of every rule's pseudo-code; returns (theta, g_t) as float64 arrays.

    With theta_{t-1} = ``param``, gamma = ``lr`` and lambda = ``weight_decay``:

        g_t     = -grad if maximize else grad
        g_t     = g_t + lambda theta_{t-1}                 if lambda != 0 and not decoupled
        theta   = (1 - gamma lambda) theta_{t-1}           if lambda != 0 and decoupled
        theta   = theta_{t-1}                              otherwise

    The coupled form is an L2 penalty added to the gradient (SGD, Adam, Adagrad, ...); the
    decoupled form decays the parameter itself before the update (AdamW; Adam, NAdam and RAdam
    with ``decoupled_weight_decay=True``), in torch's evaluation order theta * (1 - lr * lambda).
    ``lr`` is read only by the decoupled form.
    """
    theta = np.asarray(param, dtype=np.float64)
    g = np.asarray(grad, dtype=np.float64)
    if maximize:
        g = -g
    if weight_decay != 0:
        if decoupled:
            theta = theta * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * theta
    return theta, g


def _next_step(state: Any) -> float:
    r"""t = t_{prev} + 1: the count of steps including this one (t_{prev} = 0 when state is None).

    torch stores the count as a 0-dim tensor (or a Python number); here it is a Python float.
    """
    step = 0.0 if state is None else float(state.step)
    step += 1.0
    return step


def _buffers(state: Any, theta: Array, *fields: str, fill: float = 0.0) -> tuple[Array, ...]:
    r"""The running buffers ``fields`` of ``state`` as float64 arrays, one per field, in order.

    On the first step (``state`` is None) each buffer starts at b_0 = ``fill`` everywhere, shaped
    like theta (torch's ``zeros_like`` / ``full_like``); afterwards it is b_{t-1} as stored.
    """
    if state is None:
        return tuple(np.full_like(theta, fill) for _ in fields)
    return tuple(np.asarray(getattr(state, name), dtype=np.float64) for name in fields)


def _lerp(start: Array, end: Array, weight: float) -> Array:
    r"""start + weight (end - start), evaluated as torch's ``lerp`` does (ATen's Lerp.h):

        start + weight (end - start)          if |weight| < 0.5
        end - (end - start) (1 - weight)      otherwise

    Both equal the formula exactly; the switch keeps the result exact at weight = 1 (it is
    ``end``, where start + 1 (end - start) may be off by an ulp of |start|: relatively large
    when |end| << |start|).
    """
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1 - weight)
