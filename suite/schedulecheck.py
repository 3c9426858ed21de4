"""The learning-rate scheduler check: torch's lr sequence against the reference's closed form."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from suite import compare
from suite import tolerances as tols
from suite.specs import SchedulerSpec


def check_schedule(spec: SchedulerSpec, options: dict[str, Any], lrs: list[float],
                   steps: int | list[float], optimizer_cls: type = torch.optim.SGD) -> None:
    """Build ``spec``'s scheduler over an optimizer with one group per entry of ``lrs``, step
    it (``steps`` times, or once per metric when given metrics) and compare the groups' lr
    (``get_last_lr()``) after construction and after every step with the reference."""
    __tracebackhide__ = True
    params = [torch.zeros(1, requires_grad=True) for _ in lrs]
    # momentum: CyclicLR and OneCycleLR cycle it (their default cycle_momentum=True).
    opt = optimizer_cls([{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)],
                        lr=lrs[0], momentum=0.9)
    sched = spec.build(opt, options) if spec.build else spec.torch_cls(opt, **options)
    metrics = steps if isinstance(steps, list) else None
    n = len(metrics) if metrics is not None else int(steps)  # type: ignore[arg-type]
    # The groups' lr is what get_last_lr() reports, and ReduceLROnPlateau has no get_last_lr()
    # before torch 2.2.
    actual = [[float(g["lr"]) for g in opt.param_groups]]
    for k in range(n):
        opt.step()  # no gradients: nothing moves; keeps torch's call-order check quiet
        if metrics is not None:
            sched.step(metrics[k])
        else:
            sched.step()
        actual.append([float(g["lr"]) for g in opt.param_groups])
    ref_options = spec.ref_options(options) if spec.ref_options else options
    tol = tols.resolve(torch.float64, tols.Kind.SCHEDULE)
    case = f"  options: {options}; group lrs {lrs}; {n} steps" + \
        (f"; metrics {[round(m, 6) for m in metrics]}" if metrics is not None else "")
    for g, lr in enumerate(lrs):
        expected = spec.ref(metrics if metrics is not None else n, lr=lr, **ref_options)
        compare.assert_close(np.array([a[g] for a in actual]), expected, tol=tol,
                             what=f"{spec.name}: lr of group {g} by epoch",
                             context="Python floats", case=case)
