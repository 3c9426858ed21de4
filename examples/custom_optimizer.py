"""A hand-written optimizer: SGD with momentum, Nesterov, dampening, weight decay and maximize,
as torch.optim.SGD documents it (https://pytorch.org/docs/stable/generated/torch.optim.SGD.html).

gradsuite checks it in lockstep with its NumPy update rule for SGD: parameters and the state
entry ``momentum_buffer`` after every step, parameter groups with their own hyper-parameters,
gradients that are sometimes absent, complex parameters, and the state_dict round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


class MomentumSGD(torch.optim.Optimizer):
    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, maximize: bool = False) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov,
                                  "maximize": maximize})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"]:
                    g = g + group["weight_decay"] * p
                if group["momentum"]:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = g.clone()
                    else:
                        buf = state["momentum_buffer"]
                        buf.mul_(group["momentum"]).add_(g, alpha=1 - group["dampening"])
                    buf = state["momentum_buffer"]
                    g = g + group["momentum"] * buf if group["nesterov"] else buf
                p.add_(g, alpha=-float(group["lr"]))
        return loss
