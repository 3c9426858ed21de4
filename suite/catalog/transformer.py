"""Multi-head attention and transformer layer records, alphabetical.

``multi_head_attention`` calls ``F.multi_head_attention_forward`` the way nn.MultiheadAttention
does (its ``batch_first`` transposes, its ``is`` identities for self-attention), and its module
form is nn.MultiheadAttention itself (a subclass that only routes the case's arrays to its
``forward`` and picks the compared output), checked against it in tests/test_ops.py.

The transformer layers have no functional form: the record's torch callable *is* the module
(nn.TransformerEncoderLayer / nn.TransformerDecoderLayer in evaluation mode, built from the
case's sizes and options and called through torch.func.functional_call with the case's
parameters), so there is no second form to compare it with (``module`` is None). The eval-mode
fast path (a fused kernel torch takes without autograd) is switched off here, so every check
sees the composite path; tests/test_layers.py checks the fused kernel's forward on its own,
and training-mode dropout with torch's masks.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from references import transformer as ref
from suite import conditioning, versions
from suite.inputs import transformer as ti
from suite.specs import Case, ModuleForm, OpSpec
from suite.tolerances import Kind, Tolerance

_DOCS = "https://pytorch.org/docs/stable/generated/torch.nn.{}.html"

_MHA_INPUTS = ("query", "key", "value", "key_padding_mask", "attn_mask")
_MHA_PARAMS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight",
               "in_proj_bias", "bias_k", "bias_v", "out_proj_weight", "out_proj_bias")


# float32 rounds each score s = q.k / sqrt(hd) to eps32 |s|, and the softmax passes
# that on as a relative change of p (scaled_dot_product_attention's record). Here
# q, k, v are projections of scale-5 inputs (components up to ~15), so |s| reaches
# ~100 and out = p v moves by eps32 * 100 * 8 ~ 1e-4 (1.4e-5 seen in 400 draws).
# The projections' weight gradients then sum dq x over up to N L = 15 rows with
# |dq| ~ eps32 |s| |k| relative error and |x| ~ 5: eps32 * 100 * 5 * 5 * sqrt(15)
# ~ 1e-3 (2.5e-4 seen). Both stay 100x below a wrong mask, scale or head split,
# which moves outputs and gradients by O(0.1..1).
_ATTENTION_FLOAT32 = {(Kind.FORWARD, torch.float32): Tolerance(rtol=1.3e-6, atol=1e-4),
                      (Kind.GRADIENT, torch.float32): Tolerance(rtol=1e-5, atol=1e-3)}



def _encoder_fast_path_raises(case: Case, dtype: torch.dtype) -> str | None:
    """torch before 2.13 (2.2.2 measured): nn.TransformerEncoderLayer(bias=False) in evaluation
    with batch_first, an even nhead and relu/gelu tests its fast path by reading ``.device`` of
    every bias, and raises AttributeError on None (KNOWN_DIFFERENCES.md, "Older torch: the hard tier
    on 2.2.2"; a strict xfail in tests/test_hard.py)."""
    options = case.options
    if (versions.TRANSFORMER_NO_BIAS_FAST_PATH_RAISES
            and not any(k.endswith("linear1_bias") for k in case.arrays)
            and options.get("batch_first", False) and options.get("nhead", 1) % 2 == 0
            and not options.get("training", False)
            and options.get("activation", "relu") in ("relu", "gelu")):
        return "TransformerEncoderLayer(bias=False) fast-path test raises (torch before 2.13)"
    return None

def multi_head_attention_outputs(
    query: torch.Tensor, key: torch.Tensor | None = None, value: torch.Tensor | None = None,
    key_padding_mask: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None,
    in_proj_weight: torch.Tensor | None = None, q_proj_weight: torch.Tensor | None = None,
    k_proj_weight: torch.Tensor | None = None, v_proj_weight: torch.Tensor | None = None,
    in_proj_bias: torch.Tensor | None = None, bias_k: torch.Tensor | None = None,
    bias_v: torch.Tensor | None = None, out_proj_weight: torch.Tensor | None = None,
    out_proj_bias: torch.Tensor | None = None, *, num_heads: int, add_zero_attn: bool = False,
    batch_first: bool = False, need_weights: bool = True, average_attn_weights: bool = True,
    is_causal: bool = False, dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``F.multi_head_attention_forward`` called as nn.MultiheadAttention.forward calls it
    (in training mode): ``key`` None is the query itself (self-attention: ``query is key is
    value``, torch's packed projection), ``value`` None the key; ``batch_first`` transposes
    batched inputs keeping those identities; separate projections when given. Returns
    (attn_output, attn_output_weights or None)."""
    key = query if key is None else key
    value = key if value is None else value
    batched = query.dim() == 3
    if batch_first and batched:
        if key is value:
            if query is key:
                query = key = value = query.transpose(1, 0)
            else:
                query, key = (x.transpose(1, 0) for x in (query, key))
                value = key
        else:
            query, key, value = (x.transpose(1, 0) for x in (query, key, value))
    assert out_proj_weight is not None
    out, weights = F.multi_head_attention_forward(
        query, key, value, query.shape[-1], num_heads, in_proj_weight, in_proj_bias, bias_k,
        bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias, training=True,
        key_padding_mask=key_padding_mask, need_weights=need_weights, attn_mask=attn_mask,
        use_separate_proj_weight=in_proj_weight is None, q_proj_weight=q_proj_weight,
        k_proj_weight=k_proj_weight, v_proj_weight=v_proj_weight,
        average_attn_weights=average_attn_weights, is_causal=is_causal)
    return (out.transpose(1, 0) if batch_first and batched else out), weights


def multi_head_attention(*, output: str = "attn_output", **arguments: Any) -> torch.Tensor:
    """The record's torch side: :func:`multi_head_attention_outputs` (dropout 0), returning
    ``attn_output`` or ``attn_output_weights`` (``output``)."""
    out, weights = multi_head_attention_outputs(**arguments)
    if output == "attn_output":
        return out
    assert weights is not None, "need_weights=False returns no weights"
    return weights


class _MultiheadAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention built from a case (sizes, bias, bias_k/v, kdim/vdim read from the
    arrays; the rest from the options) and called like the record's functional form.

    Only the plumbing differs from the class: ``forward`` takes the case's non-parameter arrays
    positionally and passes them by name (self-attention as ``query is key is value``), and
    returns the compared output; ``out_proj_weight`` and ``out_proj_bias`` (F's names) are the
    same Parameters as ``out_proj.weight`` and ``out_proj.bias``, so the case's tensors replace
    both (torch.func.functional_call ties them).
    """

    def __init__(self, case: Case):
        a, o = case.arrays, case.options
        separate = "q_proj_weight" in a
        super().__init__(a["query"].shape[-1], o["num_heads"], bias="in_proj_bias" in a,
                         add_bias_kv="bias_k" in a, add_zero_attn=o["add_zero_attn"],
                         kdim=a["k_proj_weight"].shape[1] if separate else None,
                         vdim=a["v_proj_weight"].shape[1] if separate else None,
                         batch_first=o["batch_first"])
        self.out_proj_weight = self.out_proj.weight
        if self.out_proj.bias is not None:
            self.out_proj_bias = self.out_proj.bias
        self._inputs = tuple(n for n in a if n in _MHA_INPUTS)
        self._call = {k: o[k] for k in ("need_weights", "average_attn_weights", "is_causal")}
        self._output = o["output"]

    def forward(self, *tensors: torch.Tensor) -> Any:  # type: ignore[override]
        t = dict(zip(self._inputs, tensors, strict=True))
        query = t["query"]
        key = t.get("key", query)
        value = t.get("value", key)
        out, weights = super().forward(query, key, value,
                                       key_padding_mask=t.get("key_padding_mask"),
                                       attn_mask=t.get("attn_mask"), **self._call)
        return out if self._output == "attn_output" else weights


def fastpath_settings() -> tuple[bool, ...]:
    """The fast-path settings a test can select: on and off where torch has the switch
    (``torch.backends.mha.set_fastpath_enabled``; not in torch 2.2.2), on alone otherwise."""
    mha = getattr(torch.backends, "mha", None)
    return (True, False) if hasattr(mha, "set_fastpath_enabled") else (True,)


@contextlib.contextmanager
def fastpath(enabled: bool) -> Iterator[None]:
    """torch.backends.mha's fast-path switch (nn.MultiheadAttention's and the transformer
    layers' fused eval-mode kernels) set to ``enabled`` for a block, where torch has it."""
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(enabled)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


def layer_parameter(array: str) -> str:
    """The module's parameter name of a transformer layer case's array: dots for underscores
    between the submodule and the parameter (``self_attn_out_proj_weight`` is
    ``self_attn.out_proj.weight``, ``linear1_bias`` is ``linear1.bias``)."""
    for block in ("self_attn", "multihead_attn"):
        if array.startswith(f"{block}_"):
            return f"{block}." + array[len(block) + 1:].replace("out_proj_", "out_proj.")
    module, parameter = array.rsplit("_", 1)
    return f"{module}.{parameter}"


_LAYER_INPUTS = {
    "transformer_encoder_layer": ("src", "src_mask", "src_key_padding_mask"),
    "transformer_decoder_layer": ("tgt", "memory", "tgt_mask", "memory_mask",
                                  "tgt_key_padding_mask", "memory_key_padding_mask"),
}
_HINTS = ("is_causal", "tgt_is_causal", "memory_is_causal")


def build_layer(name: str, arrays: dict[str, torch.Tensor], nhead: int, activation: str,
                layer_norm_eps: float, batch_first: bool, norm_first: bool,
                dropout: float = 0.1) -> nn.Module:
    """The nn.Transformer{Encoder,Decoder}Layer of a case: d_model and dim_feedforward from
    linear1's weight, bias from whether its bias is there; in training mode (the caller picks
    the mode), on the first input's device and dtype."""
    cls = nn.TransformerEncoderLayer if name == "transformer_encoder_layer" \
        else nn.TransformerDecoderLayer
    x = arrays[_LAYER_INPUTS[name][0]]
    dim_feedforward, d_model = arrays["linear1_weight"].shape
    bias = {} if "linear1_bias" in arrays else {"bias": False}
    return cls(d_model, nhead, dim_feedforward, dropout=dropout, activation=activation,
               layer_norm_eps=layer_norm_eps, batch_first=batch_first, norm_first=norm_first,
               device=x.device, dtype=x.dtype, **bias)


def layer_call(name: str, module: nn.Module, arrays: dict[str, torch.Tensor],
               hints: dict[str, bool]) -> torch.Tensor:
    """``module`` (built by :func:`build_layer`) on the case's tensors: its inputs and masks by
    name, its parameters through torch.func.functional_call."""
    inputs = {k: v for k, v in arrays.items() if k in _LAYER_INPUTS[name]}
    params = {layer_parameter(k): v for k, v in arrays.items() if k not in inputs}
    return torch.func.functional_call(module, params, (), {**inputs, **hints})


def _transformer_layer(name: str) -> Callable[..., torch.Tensor]:
    def layer(*, nhead: int, activation: str, layer_norm_eps: float, batch_first: bool,
              norm_first: bool, **arrays_and_hints: Any) -> torch.Tensor:
        hints = {k: arrays_and_hints.pop(k) for k in _HINTS if k in arrays_and_hints}
        module = build_layer(name, arrays_and_hints, nhead, activation, layer_norm_eps,
                             batch_first, norm_first).eval()
        with fastpath(False):
            return layer_call(name, module, arrays_and_hints, hints)

    layer.__name__ = "nn." + ("TransformerEncoderLayer" if "encoder" in name
                              else "TransformerDecoderLayer")
    return layer


_STACK_INPUTS = {
    "transformer_encoder": ("src", "mask", "src_key_padding_mask"),
    "transformer_decoder": _LAYER_INPUTS["transformer_decoder_layer"],
    "transformer": ("src", "tgt", "src_mask", "tgt_mask", "memory_mask", "src_key_padding_mask",
                    "tgt_key_padding_mask", "memory_key_padding_mask"),
}


def stack_parameters(name: str, arrays: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A stack case's parameters under the module's names: each stacked layer array's slice i
    is ``layers.{i}.<the layer's name>`` (nn.Transformer: under ``encoder.`` or ``decoder.``),
    the final norms ``norm.weight`` (``encoder.norm.weight``, ...)."""
    params = {}
    for k, t in arrays.items():
        if k in _STACK_INPUTS[name]:
            continue
        prefix = ""
        if name == "transformer":
            prefix, k = k.split("_", 1)
            prefix += "."
        if k.startswith("norm_"):
            params[f"{prefix}norm.{k[len('norm_'):]}"] = t
            continue
        for i in range(t.shape[0]):
            params[f"{prefix}layers.{i}.{layer_parameter(k)}"] = t[i]
    return params


def build_stack(name: str, arrays: dict[str, torch.Tensor], nhead: int, activation: str,
                layer_norm_eps: float, batch_first: bool, norm_first: bool) -> nn.Module:
    """The nn.TransformerEncoder / TransformerDecoder / Transformer of a case (sizes from the
    stacked arrays' shapes, bias from whether linear1's is there)."""
    prefix = "encoder_" if name == "transformer" else ""
    w = arrays.get(f"{prefix}linear1_weight", arrays.get("decoder_linear1_weight"))
    assert w is not None
    _, dim_feedforward, d_model = w.shape
    bias_args = {} if any(k.endswith("linear1_bias") for k in arrays) else {"bias": False}
    factory: dict[str, Any] = {"device": w.device, "dtype": w.dtype}
    layer_args: dict[str, Any] = {"dim_feedforward": dim_feedforward, "activation": activation,
                  "layer_norm_eps": layer_norm_eps, "batch_first": batch_first,
                  "norm_first": norm_first, **bias_args, **factory}
    if name == "transformer":
        return nn.Transformer(d_model, nhead, len(arrays["encoder_linear1_weight"]),
                              len(arrays["decoder_linear1_weight"]), **layer_args)
    norm = nn.LayerNorm(d_model, eps=layer_norm_eps, **bias_args, **factory) \
        if "norm_weight" in arrays else None
    if name == "transformer_encoder":
        return nn.TransformerEncoder(nn.TransformerEncoderLayer(d_model, nhead, **layer_args),
                                     len(w), norm=norm)
    return nn.TransformerDecoder(nn.TransformerDecoderLayer(d_model, nhead, **layer_args),
                                 len(w), norm=norm)


def _transformer_stack(name: str) -> Callable[..., torch.Tensor]:
    def stack(*, nhead: int, activation: str, layer_norm_eps: float, batch_first: bool,
              norm_first: bool, **arrays_and_hints: Any) -> torch.Tensor:
        hints = {k: arrays_and_hints.pop(k) for k in _HINTS if k in arrays_and_hints}
        inputs = {k: v for k, v in arrays_and_hints.items() if k in _STACK_INPUTS[name]}
        with fastpath(False), warnings.catch_warnings():
            # nn.TransformerEncoder's constructor says why its nested-tensor fast path will not
            # run (norm_first, an odd number of heads): the fast path is off here anyway.
            warnings.filterwarnings("ignore", "enable_nested_tensor is True", UserWarning)
            module = build_stack(name, arrays_and_hints, nhead, activation, layer_norm_eps,
                                 batch_first, norm_first).eval()
            return torch.func.functional_call(module, stack_parameters(name, arrays_and_hints),
                                              (), {**inputs, **hints})

    stack.__name__ = {"transformer_encoder": "nn.TransformerEncoder",
                      "transformer_decoder": "nn.TransformerDecoder",
                      "transformer": "nn.Transformer"}[name]
    return stack


# torch 2.13.0's own words for the fused attention kernel's missing second derivatives.
_FUSED_NO_SECOND_ORDER = ("scaled_dot_product_attention's fused CPU kernel (need_weights=False) "
                          "has no forward-mode AD and no double backward: torch 2.13.0 says "
                          "'not implemented'")

# The stacks ask whether a mask is causal when no hint is given (nn.modules.transformer.
# _detect_is_causal_mask: ``bool((mask == causal).all())``), a branch on the mask's values.
_CAUSAL_DETECTED = {"transformer_encoder": ("mask",), "transformer_decoder": ("tgt_mask",),
                    "transformer": ("src_mask", "tgt_mask")}
_CAUSAL_DETECTION = ("the stack tests whether the mask is causal (bool((mask == causal).all())) "
                     "and torch.func.vmap refuses a batched one: \"vmap: It looks like you're "
                     "attempting to use a Tensor in some data-dependent control flow. We don't "
                     "support that yet\" (torch 2.13.0); the mask is shared by the examples")

# The vmap check's example k rolls each batched array along its last axis, one mask at a time
# in "each argument in turn". The input makers keep, for every query, one key allowed by both
# the attention mask and the key padding mask (no softmax row all masked: 0 / 0, where torch and
# the reference follow conventions of their own), and a causal hint true to its mask; a mask
# rolled alone breaks both (measured on 2026-12-01: a row all masked, NaN in the reference; a
# rolled mask under tgt_is_causal=True, for which torch documents "incorrect and unpredictable
# execution"). The masks stay shared by the examples; inputs and parameters are batched.
_MASK_ROLLED = ("a rolled mask breaks the input maker's guarantees (one key per query allowed "
                "by both masks; a causal hint true to its mask), so it is shared by the "
                "examples")


def _masks_unbatched(masks: Iterable[str]) -> dict[str, str]:
    return {m: _MASK_ROLLED for m in masks}


RECORDS = (
    OpSpec(name="multi_head_attention", family="layer", torch_fn=multi_head_attention,
           ref=ref.multi_head_attention, ref_vjp=ref.multi_head_attention_vjp,
           inputs=ti.MultiheadAttention(), docs=_DOCS.format("MultiheadAttention"),
           # sum |terms| of the projections, scores and softmax (the hard tier's allowance:
           # suite/conditioning.py, MultiheadAttentionTerms)
           terms=conditioning.MULTI_HEAD_ATTENTION,
           vmap=_masks_unbatched(("key_padding_mask", "attn_mask")),
           module=ModuleForm(nn.MultiheadAttention, factory=_MultiheadAttention,
                             params=_MHA_PARAMS),
           # Smooth, but with need_weights=False torch runs scaled_dot_product_attention, whose
           # CPU flash kernel has neither forward-mode AD nor a double backward.
           # tests/test_layers.py checks second order on the need_weights=True path and keeps
           # the fused path's gap as a strict xfail.
           second_order=_FUSED_NO_SECOND_ORDER,
           low_precision="three chained products of rounded sums of signed terms (input "
                         "projections, attention, output projection) whose sum |terms| is not "
                         "derived yet; scaled_dot_product_attention and linear are on the "
                         "ladder by themselves",
           tol=_ATTENTION_FLOAT32),
    *(OpSpec(name=name, family="layer", torch_fn=_transformer_layer(name),
             ref=getattr(ref, name), ref_vjp=getattr(ref, f"{name}_vjp"),
             inputs=ti.TransformerLayer(name), docs=_DOCS.format(cls),
             # the hard tier's allowance: a running error bound through the layer's blocks
             # (suite/conditioning.py, TransformerLayerTerms)
             terms=conditioning.TransformerLayerTerms(name),
             known_defects=None if "decoder" in name else _encoder_fast_path_raises,
             vmap=_masks_unbatched(_LAYER_INPUTS[name][1:] if "encoder" in name
                                   else _LAYER_INPUTS[name][2:]),
             # No functional form: the torch callable is the module (module docstring).
             # Self-attention runs with need_weights=False: the fused kernel above.
             second_order=_FUSED_NO_SECOND_ORDER,
             low_precision="a chain of attention, feed-forward and layer normalization, each a "
                           "rounded sum of signed terms, whose sum |terms| is not derived yet; "
                           "the pieces (linear, attention, layer_norm) are on the ladder",
             # Each layer holds multi-head attention blocks (the same derivation, on inputs of
             # scale up to 5 before the first layer norm); seen in 300 draws each: forward
             # 3.1e-6, gradients 7.0e-5 (d_model >= 4: the input maker says why).
             tol=_ATTENTION_FLOAT32)
      for name, cls in (("transformer_decoder_layer", "TransformerDecoderLayer"),
                        ("transformer_encoder_layer", "TransformerEncoderLayer"))),
    # The stacks: the same layers in turn (own parameters each), then the final norm.
    # torch before 2.13 raises for encoder layers without biases (_encoder_fast_path_raises;
    # nn.Transformer runs them too).
    *(OpSpec(name=name, family="layer", torch_fn=_transformer_stack(name),
             ref=getattr(ref, name), ref_vjp=getattr(ref, f"{name}_vjp"),
             inputs=ti.TransformerStack(name), docs=_DOCS.format(cls),
             # the hard tier's allowance: the layers' running error bound through the stack
             # (suite/conditioning.py, TransformerStackTerms)
             terms=conditioning.TransformerStackTerms(name),
             known_defects=None if "decoder" in name else _encoder_fast_path_raises,
             vmap={**_masks_unbatched([m for m in _STACK_INPUTS[name] if "mask" in m]),
                   **{mask: _CAUSAL_DETECTION for mask in _CAUSAL_DETECTED[name]}},
             # No functional form (the callable is the module); first order and off the ladder
             # for the layers' reasons.
             second_order=_FUSED_NO_SECOND_ORDER,
             low_precision="a stack of transformer layers, whose own sum |terms| is not "
                           "derived yet",
             # Each layer rounds as a transformer layer does; up to 2 layers per stack, 4 in
             # nn.Transformer (and the final norms) add their errors, each carried through
             # the next layers' maps (layer norm and attention keep O(1) gains): 3x the
             # layers' widening (seen in 100 draws each with up to 3 layers: forward 8.3e-6,
             # gradients 7.3e-4).
             tol={(Kind.FORWARD, torch.float32): Tolerance(rtol=4e-6, atol=3e-4),
                  (Kind.GRADIENT, torch.float32): Tolerance(rtol=3e-5, atol=3e-3)})
      for name, cls in (("transformer", "Transformer"),
                        ("transformer_decoder", "TransformerDecoder"),
                        ("transformer_encoder", "TransformerEncoder"))),
)
