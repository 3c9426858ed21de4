"""Whole training loops as records: torch's parameters after every step against the reference
loop in ``references/network.py``.

A :class:`TrainingLoop` is looked up by name like any record (``gs.record("linear_regression")``)
and checked by ``gs.check("training_trajectory", loop, run, dtype=..., device=...)``, where
``run`` is a dict holding everything the loop needs — the data, the initial parameters, the
hyper-parameters and the number of steps — as NumPy arrays and numbers. That is what makes a
standalone reproducer of a failing loop possible (``suite.reproduce`` writes ``run`` out as
it writes a case): nothing is drawn inside the check, not even torch's initialisation.

Initial parameters and data are rounded to the dtype under test before either side sees them,
so torch and the reference start from the same values.

Under a compiled ``backend`` (``inductor``, ``aot_eager``: ``--backend``, suite/compiled.py) the
same loop runs with ``torch.compile(model, backend=..., dynamic=True, fullgraph=True)`` as its
forward (AOTAutograd's training graph: the backward is compiled too) and
``torch.compile(optimizer.step)`` as its step, against the same reference and the same
``Kind.TRAINING`` rows (suite/tolerances.py says why those rows hold for compiled code). Both
are compiled once per loop run (a new model and optimizer), counted in the compile ledger under
an instance of their own; a compile failure is a ``CompileError``, and a loop whose model or
step compiled no graph fails (it would have checked eager code).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from references import network
from suite import compare, compiled
from suite import tolerances as tols
from suite.compare import to_numpy
from suite.devices import dtype_name


@dataclass(frozen=True)
class TrainingLoop:
    """A training loop checked end to end: ``check(run, dtype=, device=)`` raises
    AssertionError when torch's trajectory leaves the reference's."""

    name: str
    check: Callable[..., None]
    description: str
    family: str = "training"


def _tensor(a: Any, dtype: torch.dtype, device: str) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=dtype, device=device)


# Each compiled loop's model and step are new objects: the ledger counts their graphs under an
# instance number of their own (an ``id`` could be reused by a later loop once one is freed).
_INSTANCES = itertools.count(1)


def _loop_parts(name: str, model: nn.Module, opt: torch.optim.Optimizer, dtype: torch.dtype,
                device: str, backend: str, compile_step: bool = True,
                ) -> tuple[Callable[..., torch.Tensor], Callable[[], Any], str]:
    """The forward and the step the loop calls, and what the messages say about them: the
    model and ``opt.step`` themselves under eager; under a compiled backend
    ``torch.compile(model, backend=backend, dynamic=True, fullgraph=True)`` and (unless
    ``compile_step`` is False) ``torch.compile(opt.step)`` (``suite.compiled.counted`` and
    ``compiled_step``)."""
    if backend == compiled.EAGER:
        return model, opt.step, ""
    where = f"{dtype_name(dtype)} {device} {backend}"
    forward = compiled.counted(model, f"{name}.model {where}", backend,
                               instance=next(_INSTANCES))
    if not compile_step:
        return forward, opt.step, (f", torch.compile(model, backend={backend!r}, "
                                   f"dynamic=True), eager optimizer.step")
    step = compiled.compiled_step(opt, f"{name}.step {where}", backend)
    return forward, step, (f", torch.compile(model, backend={backend!r}, dynamic=True) and "
                           f"torch.compile(optimizer.step)")


def _compiled_graphs(name: str, forward: Callable[..., Any],
                     step: Callable[[], Any] | None) -> None:
    """A compiled loop whose model or step compiled no graph ran (that part) eagerly."""
    compiled.require_graphs(forward, f"{name}: torch.compile(model)")
    if step is not None:
        compiled.require_graphs(step, f"{name}: torch.compile(optimizer.step)")


def check_linear_regression(run: Mapping[str, Any], *, dtype: torch.dtype, device: str,
                            backend: str = compiled.EAGER) -> None:
    """``nn.Linear(1, 1)``, ``nn.MSELoss()``, ``optim.SGD(lr)``: weight and bias after every
    step. ``run``: ``x`` (N, 1), ``y`` (N, 1), ``weight`` (1, 1), ``bias`` (1,), ``lr``,
    ``steps``. ``backend``: see the module's docstring."""
    __tracebackhide__ = True
    lr, steps = float(run["lr"]), int(run["steps"])
    xt, yt = _tensor(run["x"], dtype, device), _tensor(run["y"], dtype, device)
    model = nn.Linear(1, 1).to(device=device, dtype=dtype)
    with torch.no_grad():
        model.weight.copy_(_tensor(run["weight"], dtype, device))
        model.bias.copy_(_tensor(run["bias"], dtype, device))
    # The reference sees exactly the values torch sees (rounded to dtype).
    expected_w, expected_b = network.train_linear_regression(
        to_numpy(xt), to_numpy(yt), to_numpy(model.weight), to_numpy(model.bias), lr=lr,
        steps=steps)

    loss_fn, opt = nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=lr)
    forward, step, compiled_note = _loop_parts("linear_regression", model, opt, dtype, device,
                                               backend)
    weights, biases = [], []
    with compiled.compiler_failures(f"linear_regression [{backend}]"):
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(forward(xt), yt).backward()
            step()
            weights.append(to_numpy(model.weight))
            biases.append(to_numpy(model.bias))
    _compiled_graphs("linear_regression", forward, step)

    tol = tols.resolve(dtype, tols.Kind.TRAINING)
    context = f"{dtype_name(dtype)}, device={device}{compiled_note}, index = (step - 1, ...)"
    case = f"  N={xt.shape[0]} samples, lr={lr}, {steps} steps"
    compare.assert_close(np.stack(weights), expected_w, tol=tol, context=context, case=case,
                         what="linear regression: weight trajectory")
    compare.assert_close(np.stack(biases), expected_b, tol=tol, context=context, case=case,
                         what="linear regression: bias trajectory")


class MLP(nn.Module):
    """The textbook network: Linear -> tanh -> Linear -> relu -> Linear (logits)."""

    ACTIVATIONS = ("tanh", "relu", "identity")

    def __init__(self, n_in: int, hidden: tuple[int, int], n_classes: int) -> None:
        super().__init__()
        self.hidden1 = nn.Linear(n_in, hidden[0])
        self.hidden2 = nn.Linear(hidden[0], hidden[1])
        self.out = nn.Linear(hidden[1], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden2(torch.tanh(self.hidden1(x)))))

    def linears(self) -> tuple[nn.Linear, nn.Linear, nn.Linear]:
        return self.hidden1, self.hidden2, self.out

    def as_reference_layers(self) -> list[network.Layer]:
        return [network.Layer(to_numpy(m.weight), to_numpy(m.bias), f)
                for m, f in zip(self.linears(), self.ACTIVATIONS, strict=True)]


def mlp_parameters(model: MLP) -> list[dict[str, np.ndarray]]:
    """The model's parameters as a run's ``layers`` entry."""
    return [{"weight": to_numpy(m.weight), "bias": to_numpy(m.bias)} for m in model.linears()]


def check_mlp_classifier(run: Mapping[str, Any], *, dtype: torch.dtype, device: str,
                         backend: str = compiled.EAGER, compile_step: bool = True) -> None:
    """An ``nn.Module`` MLP (tanh and relu hidden layers), ``nn.CrossEntropyLoss()``,
    ``optim.Adam(**hyper)``: every weight and bias after every step. ``run``: ``x`` (N, n_in),
    ``target`` (N,) class indices, ``layers`` (three dicts of ``weight`` and ``bias``),
    ``hyper`` (Adam's keyword arguments), ``steps``. ``backend``: see the module's
    docstring; ``compile_step=False`` compiles the model only (torch.compile(Adam.step) is not
    float64-exact: KNOWN_DIFFERENCES.md)."""
    __tracebackhide__ = True
    layers, hyper, steps = run["layers"], dict(run["hyper"]), int(run["steps"])
    sizes = [np.shape(layer["weight"]) for layer in layers]
    model = MLP(sizes[0][1], (sizes[0][0], sizes[1][0]), sizes[2][0]).to(device=device,
                                                                         dtype=dtype)
    with torch.no_grad():
        for module, layer in zip(model.linears(), layers, strict=True):
            module.weight.copy_(_tensor(layer["weight"], dtype, device))
            module.bias.copy_(_tensor(layer["bias"], dtype, device))
    xt = _tensor(run["x"], dtype, device)
    target = np.asarray(run["target"], dtype=np.int64)
    tt = torch.tensor(target, device=device)
    expected = network.train_mlp_classifier(model.as_reference_layers(), to_numpy(xt), target,
                                            steps=steps, **hyper)
    loss_fn, opt = nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), **hyper)
    forward, step, compiled_note = _loop_parts("mlp_classifier", model, opt, dtype, device,
                                               backend, compile_step)
    actual = []
    with compiled.compiler_failures(f"mlp_classifier [{backend}]"):
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(forward(xt), tt).backward()
            step()
            actual.append(model.as_reference_layers())
    _compiled_graphs("mlp_classifier", forward, step if compile_step else None)

    tol = tols.resolve(dtype, tols.Kind.TRAINING)
    case = f"  N={xt.shape[0]}, layer sizes {sizes}, {hyper}, {steps} steps"
    for i, name in enumerate(("hidden1", "hidden2", "out")):
        for field in ("weight", "bias"):
            compare.assert_close(
                np.stack([getattr(layers_[i], field) for layers_ in actual]),
                np.stack([getattr(layers_[i], field) for layers_ in expected]), tol=tol,
                what=f"MLP: {name}.{field} trajectory", case=case,
                context=f"{dtype_name(dtype)}, device={device}{compiled_note}, "
                        f"index = (step - 1, ...)")


LINEAR_REGRESSION = TrainingLoop(
    "linear_regression", check_linear_regression,
    "nn.Linear(1, 1), nn.MSELoss(), optim.SGD: the textbook linear-regression loop")
MLP_CLASSIFIER = TrainingLoop(
    "mlp_classifier", check_mlp_classifier,
    "an nn.Module MLP (tanh, relu), nn.CrossEntropyLoss(), optim.Adam")
LOOPS: tuple[TrainingLoop, ...] = (LINEAR_REGRESSION, MLP_CLASSIFIER)
