"""Attention records."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from references import attention as ref
from suite import conditioning
from suite.inputs import layers as hi
from suite.specs import OpSpec
from suite.tolerances import Kind, Tolerance

try:
    from torch.nn.attention import SDPBackend, sdpa_kernel  # torch >= 2.3

    def _math_path() -> Any:
        return sdpa_kernel(SDPBackend.MATH)
except ImportError:  # older torch: the math path is the CPU one unless a fused kernel applies
    def _math_path() -> Any:
        return torch.backends.cuda.sdp_kernel(enable_flash=False, enable_math=True,
                                              enable_mem_efficient=False)


def scaled_dot_product_attention_math(**kwargs: Any) -> torch.Tensor:
    """F.scaled_dot_product_attention forced onto its math path, the documented reference
    implementation (fused CPU/CUDA kernels are other algorithms, with other roundings). The
    context is chosen once, at import: dynamo (torch 2.2.2) cannot trace a failed import inside
    a compiled function ("InternalTorchDynamoError: No module named 'torch.nn.attention'")."""
    with _math_path():
        return F.scaled_dot_product_attention(**kwargs)


RECORDS = (
    OpSpec(name="scaled_dot_product_attention", family="layer",
           torch_fn=scaled_dot_product_attention_math, ref=ref.scaled_dot_product_attention,
           ref_vjp=ref.scaled_dot_product_attention_vjp, inputs=hi.Attention(),
           # Scores are dot products, the softmax VJP a difference: suite/conditioning.py.
           terms=conditioning.ATTENTION,
           overflow_prone=True,
           # float32 rounds each score s = scale q.k to eps32 |s|, and the softmax passes that on
           # as a relative change of p, so out = p v moves by ~eps32 |s| |v| and dq = scale ds k
           # by a further |k| scale. With scale-5 q, k (E <= 8, scale <= 2) scores reach
           # |s| ~ 100: forward eps32 * 100 * |v| (<= 3) ~ 4e-5 (3.6e-6 seen); gradient another
           # factor |k| scale ~ 5: ~2e-4 (2.2e-5 seen). Both stay 1000x below a wrong softmax
           # axis, scale or mask.
           tol={(Kind.FORWARD, torch.float32): Tolerance(rtol=1.3e-6, atol=4e-5),
                (Kind.GRADIENT, torch.float32): Tolerance(rtol=1e-5, atol=2e-4)},
           docs="https://pytorch.org/docs/stable/generated/"
                "torch.nn.functional.scaled_dot_product_attention.html"),
)
