"""Activation records, alphabetical."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from references import activations as ref
from suite import inputs as hi
from suite import strategies as hs
from suite.specs import OpSpec

_DOCS = "https://pytorch.org/docs/stable/generated/torch.nn.{}.html"
_SOFTMAX_INPUTS = hi.Elementwise(options={"dim": hs.any_dim}, defaults={"dim": -1})

RECORDS = (
    OpSpec(name="leaky_relu", family="activation", torch_fn=F.leaky_relu, ref=ref.leaky_relu,
           ref_vjp=ref.leaky_relu_vjp, docs=_DOCS.format("LeakyReLU"),
           inputs=hi.Elementwise(hs.REALS_WITH_KINK_AT_0,
                                 options={"negative_slope": st.floats(
                                     0.0, 1.0, allow_subnormal=False)})),
    OpSpec(name="log_softmax", family="activation", torch_fn=F.log_softmax, ref=ref.log_softmax,
           ref_vjp=ref.log_softmax_vjp, docs=_DOCS.format("LogSoftmax"),
           inputs=_SOFTMAX_INPUTS, overflow_prone=True),
    OpSpec(name="relu", family="activation", torch_fn=F.relu, ref=ref.relu, ref_vjp=ref.relu_vjp,
           docs=_DOCS.format("ReLU"), inputs=hi.Elementwise(hs.REALS_WITH_KINK_AT_0)),
    OpSpec(name="sigmoid", family="activation", torch_fn=torch.sigmoid, ref=ref.sigmoid,
           ref_vjp=ref.sigmoid_vjp, docs=_DOCS.format("Sigmoid"), inputs=hi.Elementwise(),
           overflow_prone=True),
    OpSpec(name="softmax", family="activation", torch_fn=F.softmax, ref=ref.softmax,
           ref_vjp=ref.softmax_vjp, docs=_DOCS.format("Softmax"), inputs=_SOFTMAX_INPUTS,
           overflow_prone=True),
    OpSpec(name="tanh", family="activation", torch_fn=torch.tanh, ref=ref.tanh,
           ref_vjp=ref.tanh_vjp, docs=_DOCS.format("Tanh"), inputs=hi.Elementwise(),
           overflow_prone=True),
)
