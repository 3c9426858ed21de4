"""Layer records: one line each, alphabetical.

Each has its ``torch.nn`` module form, built from the case's shapes (``ModuleForm.factory``) with
the case's parameters in place of its own (``ModuleForm.params``), checked against the functional
form in tests/test_ops.py.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from references import layers as ref
from suite import conditioning
from suite.inputs import layers as hi
from suite.specs import Case, ModuleForm, OpSpec
from suite.tolerances import Kind, Tolerance, summation

_DOCS = "https://pytorch.org/docs/stable/generated/torch.nn.{}.html"


def _bilinear_module(case: Case) -> nn.Module:
    n_out, n1, n2 = case.arrays["weight"].shape
    return nn.Bilinear(n1, n2, n_out, bias="bias" in case.arrays)


class _EmbeddingBag(nn.EmbeddingBag):
    """nn.EmbeddingBag built from the case (sizes from the table, the functional options as
    they are) whose forward takes the case's other arrays positionally and passes them by
    name (a 2-D input has per_sample_weights but no offsets: positions would misplace it)."""

    def __init__(self, case: Case):
        super().__init__(*case.arrays["weight"].shape, **case.options)
        self._names = tuple(k for k in case.arrays if k != "weight")

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(**dict(zip(self._names, tensors, strict=True)))


def _embedding_module(case: Case) -> nn.Module:
    return nn.Embedding(*case.arrays["weight"].shape, **case.options)


def _unflatten_module(case: Case) -> nn.Module:
    return nn.Unflatten(case.options["dim"], case.options["sizes"])


def _half_row_gradient_accumulates(case: Case, dtype: torch.dtype) -> str | None:
    """torch's float16 / bfloat16 backward of embedding and embedding_bag sums a table row's
    gradient over its lookups in the half type (KNOWN_DIFFERENCES.md, "embedding and
    embedding_bag sum a row's half-precision gradient in the half type"; one row looked up 10^4
    times: 32 in bfloat16, 256 in float16 where 1030.27 is right; a strict xfail in
    tests/test_hard.py). Recursive summation of k terms errs by up to (k - 1) u |terms| (u the
    half type's unit roundoff), and the hard tier allows SUMMATION = 2 eps = 4 u per unit of
    |terms| (suite/tolerances.py): so a row looked up more than 1 + SUMMATION / u = 5 times
    (padding_idx's lookups, which get no gradient, not counted) is set aside."""
    if dtype not in (torch.float16, torch.bfloat16):
        return None
    index = np.asarray(case.arrays["input"]).ravel().astype(np.int64)
    padding = case.options.get("padding_idx")
    if padding is not None:
        rows = case.arrays["weight"].shape[0]
        index = index[index != (padding + rows if padding < 0 else padding)]
    if not index.size:
        return None
    limit = 1 + summation(dtype) / (float(torch.finfo(dtype).eps) / 2)
    if int(np.bincount(index - index.min()).max()) > limit:
        return f"a table row's gradient summed in {dtype} over more than {limit:g} lookups"
    return None


def _linear_module(case: Case) -> nn.Module:
    n_out, n_in = case.arrays["weight"].shape
    return nn.Linear(n_in, n_out, bias="bias" in case.arrays)


RECORDS = (
    OpSpec(name="bilinear", family="layer", torch_fn=F.bilinear, ref=ref.bilinear,
           terms=conditioning.MULTILINEAR,
           ref_vjp=ref.bilinear_vjp, inputs=hi.Bilinear(), docs=_DOCS.format("Bilinear"),
           module=ModuleForm(nn.Bilinear, factory=_bilinear_module, params=("weight", "bias")),
           # dL/dA sums g_o x1_i x2_j over up to 64 batch rows of scale-5 inputs: terms up to
           # ~|g| (5 * 2.5)^2 ~ 500, so float32 rounding of the sum reaches eps32 * sqrt(64)
           # * 500 ~ 5e-4 in the worst case where it cancels to ~0 (9e-5 seen); atol 5e-4 and
           # linear's rtol 3e-4 are still 1000x below a wrong factor or sign.
           tol={(Kind.GRADIENT, torch.float32): Tolerance(rtol=3e-4, atol=5e-4)}),
    OpSpec(name="embedding", family="layer", torch_fn=F.embedding, ref=ref.embedding,
           terms=conditioning.MULTILINEAR,
           ref_vjp=ref.embedding_vjp, inputs=hi.Lookup(), docs=_DOCS.format("Embedding"),
           known_defects=_half_row_gradient_accumulates,
           module=ModuleForm(nn.Embedding, factory=_embedding_module, params=("weight",))),
    OpSpec(name="linear", family="layer", torch_fn=F.linear, ref=ref.linear,
           terms=conditioning.MULTILINEAR,
           ref_vjp=ref.linear_vjp, inputs=hi.Affine(),
           module=ModuleForm(nn.Linear, factory=_linear_module, params=("weight", "bias")),
           # dL/dW and dL/db sum products over up to 512 batch rows. The float32 rounding of
           # such a sum grows like eps * sqrt(n) * ||terms|| ~ 1.2e-7 * 512 ~ 6e-5 for O(1)
           # terms (2e-5 seen at n = 256); 3e-4 keeps a 5x margin and is still 1000x below a
           # wrong factor or sign.
           tol={(Kind.GRADIENT, torch.float32): Tolerance(rtol=3e-4, atol=3e-4)},
           docs="https://pytorch.org/docs/stable/generated/torch.nn.Linear.html"),
    OpSpec(name="embedding_bag", family="layer", torch_fn=F.embedding_bag,
           ref=ref.embedding_bag, ref_vjp=ref.embedding_bag_vjp, inputs=hi.Bags(),
           terms=conditioning.EMBEDDING_BAG, known_defects=_half_row_gradient_accumulates,
           second_order="torch 2.13.0 has neither forward-mode AD nor a double backward for "
                        "_embedding_bag ('not implemented')",
           docs=_DOCS.format("EmbeddingBag"),
           # The vmap check's example k rolls a batched array along its last axis; rolled
           # offsets no longer start at 0, which torch refuses ("offsets[0] has to be 0, i.e.,
           # the first sequence in the mini-batch has to start from position 0"): the bags'
           # boundaries are shared by the examples, their indices and weights batched.
           vmap={"offsets": "rolled offsets break torch's invariant 'offsets[0] has to be 0, "
                            "i.e., the first sequence in the mini-batch has to start from "
                            "position 0'; the bag boundaries stay shared by the examples"},
           module=ModuleForm(nn.EmbeddingBag, factory=_EmbeddingBag, params=("weight",))),
    # Reshapes: every output element is one input element, exact in any dtype, and the
    # Jacobian is constant (second derivatives 0).
    OpSpec(name="flatten", family="layer", torch_fn=torch.flatten, ref=ref.flatten,
           ref_vjp=ref.flatten_vjp, inputs=hi.Reshaped("flatten"), terms=conditioning.COPIES,
           docs=_DOCS.format("Flatten"), module=ModuleForm(nn.Flatten)),
    OpSpec(name="unflatten", family="layer", torch_fn=torch.unflatten, ref=ref.unflatten,
           ref_vjp=ref.unflatten_vjp, inputs=hi.Reshaped("unflatten"), terms=conditioning.COPIES,
           docs=_DOCS.format("Unflatten"),
           module=ModuleForm(nn.Unflatten, factory=_unflatten_module)),
)
