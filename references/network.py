r"""A multi-layer perceptron, its chain-rule backward pass and two training loops, NumPy float64.

The network is built only from the other references: each layer is ``layers.linear`` followed by
an activation from ``references.activations``, the losses come from
``references.losses_regression`` and ``references.losses_classification`` and the updates from
``references.optim_sgd`` and ``references.optim_adam``. The backward pass is written out layer
by layer, so each factor of the chain rule is a VJP that is itself checked against torch
elsewhere.

Follows ``torch.nn.Linear`` (https://pytorch.org/docs/stable/generated/torch.nn.Linear.html), the
activation modules (``torch.nn.Tanh``, ``torch.nn.ReLU``, ...), ``torch.nn.MSELoss``,
``torch.nn.CrossEntropyLoss``, ``torch.optim.SGD`` and ``torch.optim.Adam``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

import numpy as np
from numpy.typing import NDArray

from references import activations
from references.layers import linear, linear_vjp
from references.losses_classification import cross_entropy_vjp
from references.losses_regression import mse_loss_vjp
from references.optim_adam import AdamState, adam
from references.optim_sgd import SGDState, sgd

Array = NDArray[np.float64]

_ONE: Array = np.ones((), dtype=np.float64)  # the cotangent dL/dL = 1 that starts a backward pass


class Layer(NamedTuple):
    r"""One fully connected layer a' = f(W a + b).

    ``weight`` W of shape (out, in) and ``bias`` b of shape (out,), as in ``torch.nn.Linear``;
    ``activation`` names f, a function of ``references.activations`` ("tanh", "relu",
    "sigmoid", "identity", ...) that has a ``<name>_vjp`` partner.
    """

    weight: Array
    bias: Array
    activation: str


class Cache(NamedTuple):
    r"""What the forward pass keeps of one layer for the backward pass.

    ``input``: the layer's input a, shape (N, in); ``preactivation``: z = a W^T + b, shape
    (N, out). The layer's output f(z) is not kept: every activation VJP takes z.
    """

    input: Array
    preactivation: Array


def _activation(name: str) -> tuple[Callable[..., Array], Callable[..., dict[str, Array]]]:
    r"""The activation ``name`` and its VJP from ``references.activations``."""
    forward = getattr(activations, name, None)
    vjp = getattr(activations, name + "_vjp", None)
    if name.startswith("_") or not callable(forward) or not callable(vjp):
        raise ValueError(
            f"unknown activation {name!r}: references.activations has no "
            f"{name}() with a {name}_vjp()"
        )
    return cast(Callable[..., Array], forward), cast(Callable[..., dict[str, Array]], vjp)


def mlp_forward(layers: Sequence[Layer], x: Array) -> tuple[Array, list[Cache]]:
    r"""Forward pass of the MLP: a_0 = x and, for layers l = 1, ..., L,

        z_l = W_l a_{l-1} + b_l        (on a batch: z_l = a_{l-1} W_l^T + b_l, ``linear``)
        a_l = f_l(z_l)                 (``getattr(references.activations, activation)``)

    ``x`` has shape (N, in_1) (or (in_1,) for one sample). Returns a_L, shape (N, out_L), and
    the per-layer caches (a_{l-1}, z_l) in layer order, which :func:`mlp_backward` consumes.
    Matches ``torch.nn.Sequential(Linear, activation, Linear, activation, ...)``; an
    "identity" activation is a Linear with nothing after it.
    """
    a = np.asarray(x, dtype=np.float64)
    cache: list[Cache] = []
    for layer in layers:
        forward, _ = _activation(layer.activation)
        z = linear(a, layer.weight, layer.bias)
        cache.append(Cache(input=a, preactivation=z))
        a = forward(z)
    return a, cache


def mlp_backward(
    layers: Sequence[Layer], cache: Sequence[Cache], g_out: Array
) -> list[dict[str, Array]]:
    r"""Backward pass of the MLP by the chain rule, from g_out = dL/da_L.

    For l = L, ..., 1, with the cotangent dL/da_l of the layer's output:

        dL/dz_l     = dL/da_l . da_l/dz_l    = f_l'(z_l) * dL/da_l     (the activation's VJP)
        dL/dW_l     = dL/dz_l . dz_l/dW_l    = sum_n (dL/dz_l)_n^T a_{l-1,n}   (``linear_vjp``)
        dL/db_l     = dL/dz_l . dz_l/db_l    = sum_n (dL/dz_l)_n
        dL/da_{l-1} = dL/dz_l . dz_l/da_{l-1} = dL/dz_l W_l            (passed to layer l - 1)

    ``cache`` is the second result of :func:`mlp_forward` for the same ``layers``. Returns, in
    layer order, ``{"weight": dL/dW_l, "bias": dL/db_l}``, the gradients torch's autograd puts
    in ``linear.weight.grad`` and ``linear.bias.grad`` after ``loss.backward()``.
    """
    return mlp_vjp(layers, cache, g_out)[0]


def mlp_vjp(
    layers: Sequence[Layer], cache: Sequence[Cache], g_out: Array
) -> tuple[list[dict[str, Array]], Array]:
    r"""The chain rule of :func:`mlp_backward`, also returning the input's cotangent dL/da_0.

    Returns ``(grads, dL/dx)``: the per-layer ``{"weight", "bias"}`` gradients of
    :func:`mlp_backward` and the last line of the recursion at l = 1,
    dL/da_0 = dL/dz_1 W_1, shape of the input x. A network cut in two pieces (around a
    dropout, say) is differentiated by handing the second piece's dL/da_0 to the first.
    """
    if len(cache) != len(layers):
        raise ValueError(f"{len(cache)} cache entries for {len(layers)} layers")
    grads: list[dict[str, Array]] = [{} for _ in layers]
    g = np.asarray(g_out, dtype=np.float64)
    for i in reversed(range(len(layers))):
        layer, (a, z) = layers[i], cache[i]
        _, vjp = _activation(layer.activation)
        g_z = vjp(g, z)["input"]
        g_linear = linear_vjp(g_z, a, layer.weight, layer.bias)
        grads[i] = {"weight": g_linear["weight"], "bias": g_linear["bias"]}
        g = g_linear["input"]
    return grads, g


def train_linear_regression(
    x: Array, y: Array, weight: Array, bias: Array, *, lr: float, steps: int
) -> tuple[Array, Array]:
    r"""Linear regression by full-batch gradient descent; returns the parameter trajectory.

    Model z = W x + b on N samples (x, y of shape (N, 1), W of shape (1, 1), b of shape (1,)),
    loss L = mse_loss(z, y) = (1/N) sum_n (z_n - y_n)^2, and for each of ``steps`` steps:

        dL/dz = 2 (z - y) / N                          (``mse_loss_vjp``)
        dL/dW = sum_n (dL/dz)_n x_n,  dL/db = sum_n (dL/dz)_n     (``linear_vjp``)
        W <- W - lr dL/dW,  b <- b - lr dL/db          (``sgd``, momentum 0)

    The loss value itself is not needed for the update and is not computed. Returns the weights,
    shape (steps, 1, 1), and the biases, shape (steps, 1), each taken after its step (the
    initial values are not included). Mirrors, with ``model = nn.Linear(1, 1)`` and
    ``opt = optim.SGD(model.parameters(), lr=lr)``, the loop
    ``opt.zero_grad(); loss = nn.MSELoss()(model(x), y); loss.backward(); opt.step()``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    b = np.asarray(bias, dtype=np.float64)
    w_state: SGDState | None = None
    b_state: SGDState | None = None
    weights, biases = [], []
    for _ in range(steps):
        z = linear(x, w, b)
        g_z = mse_loss_vjp(_ONE, z, y)["input"]
        grads = linear_vjp(g_z, x, w, b)
        w, w_state = sgd(w, grads["weight"], w_state, lr=lr)
        b, b_state = sgd(b, grads["bias"], b_state, lr=lr)
        weights.append(w)
        biases.append(b)
    return (
        np.stack(weights) if weights else np.empty((0, *w.shape)),
        np.stack(biases) if biases else np.empty((0, *b.shape)),
    )


def train_mlp_classifier(
    layers: Sequence[Layer],
    x: Array,
    target: NDArray[Any],
    *,
    steps: int,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
) -> list[list[Layer]]:
    r"""Train an MLP classifier with cross entropy and Adam; returns the layers after each step.

    For each of ``steps`` full-batch steps:

        logits, cache = mlp_forward(layers, x)
        L             = cross_entropy(logits, target)        (mean over the N samples)
        dL/dlogits    = (softmax(logits) - onehot(target)) / N    (``cross_entropy_vjp(1, ...)``)
        grads         = mlp_backward(layers, cache, dL/dlogits)
        W_l, b_l      <- adam(W_l, dL/dW_l, state), adam(b_l, dL/db_l, state)

    every weight and bias with its own :class:`~references.optim_adam.AdamState`, and the Adam
    hyper-parameters passed through. ``target`` holds class indices, shape (N,). The loss value
    is not needed for the update and is not computed. Returns a list of ``steps`` lists of
    layers, the network after step 1, 2, ... (the initial layers are not included).
    Mirrors a ``torch.nn.Module`` (e.g. Linear -> Tanh -> Linear -> ReLU -> Linear) trained by
    ``opt.zero_grad(); loss = nn.CrossEntropyLoss()(model(x), target); loss.backward();
    opt.step()`` with ``opt = optim.Adam(model.parameters(), lr, betas, eps, weight_decay,
    amsgrad)``.
    """
    current = [
        Layer(
            np.asarray(la.weight, dtype=np.float64),
            np.asarray(la.bias, dtype=np.float64),
            la.activation,
        )
        for la in layers
    ]
    states: list[dict[str, AdamState | None]] = [{"weight": None, "bias": None} for _ in current]
    trajectory: list[list[Layer]] = []
    for _ in range(steps):
        logits, cache = mlp_forward(current, x)
        g_out = cross_entropy_vjp(_ONE, logits, target)["input"]
        grads = mlp_backward(current, cache, g_out)
        updated = []
        for layer, grad, state in zip(current, grads, states, strict=True):
            new = {}
            for name in ("weight", "bias"):
                new[name], state[name] = adam(
                    getattr(layer, name),
                    grad[name],
                    state[name],
                    lr=lr,
                    betas=betas,
                    eps=eps,
                    weight_decay=weight_decay,
                    amsgrad=amsgrad,
                )
            updated.append(Layer(new["weight"], new["bias"], layer.activation))
        current = updated
        trajectory.append(current)
    return trajectory
