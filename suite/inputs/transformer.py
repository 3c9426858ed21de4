"""Input makers for multi-head attention and the transformer layers.

Sizes stay small (embedding dimensions <= 12, sequences <= 5, batches <= 3): the references
are exact float64 compositions whatever the size, and what varies the code path is the
options and layouts, which every draw varies: packed or separate projections (kdim, vdim),
self-attention (key and value are the query), shared key and value, or three arrays; biases;
bias_k/bias_v; add_zero_attn; boolean or float masks (attention and key padding), 2-D or 3-D;
batch_first or not, and unbatched inputs; need_weights, average_attn_weights; the causal hint.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hypothesis import assume
from hypothesis import strategies as st

from references import transformer as ref
from suite import hard, versions
from suite.specs import Array, Case
from suite.strategies import SEEDS, Shape

VALUE_SCALES = st.sampled_from((1.0, 0.1, 5.0))
MASK_KINDS = ("none", "bool", "float")
_NOT_IN_THE_WEIGHTS = ("value", "v_proj_weight", "bias_v", "out_proj_weight", "out_proj_bias")


def _normal(rng: np.random.Generator, shape: Shape, scale: float = 1.0) -> Array:
    return rng.standard_normal(shape) * scale


def _sequence(n: int | None, length: int, features: int, batch_first: bool) -> Shape:
    """torch's layout of a sequence: (L, E) unbatched, (N, L, E) batch_first, else (L, N, E)."""
    if n is None:
        return (length, features)
    return (n, length, features) if batch_first else (length, n, features)


@dataclass(frozen=True)
class Masks:
    """How masks are drawn: their kind (``MASK_KINDS``), which are present, the attention
    mask's rank (2: (L, S) shared by the batch; 3: (N H, L, S)), and the causal hint."""

    kind: str
    attn: bool
    padding: bool
    attn_3d: bool = False
    causal: bool = False


def draw_masks(draw: st.DrawFn, *, allow_3d: bool = True, allow_causal: bool = True,
               prefix: str = "") -> Masks:
    kind = draw(st.sampled_from(MASK_KINDS), label=f"{prefix}mask kind")
    if kind == "none":
        return Masks(kind, False, False)
    attn = draw(st.booleans(), label=f"{prefix}attn_mask")
    padding = draw(st.booleans(), label=f"{prefix}key_padding_mask")
    attn_3d = attn and allow_3d and draw(st.booleans(), label=f"{prefix}3-D attn_mask")
    causal = (attn and not attn_3d and kind == "bool" and allow_causal
              and draw(st.booleans(), label=f"{prefix}is_causal"))
    return Masks(kind, attn, padding, attn_3d, causal)


def make_masks(rng: np.random.Generator, masks: Masks, n: int | None, heads: int, lq: int,
               s: int) -> dict[str, Array]:
    """``attn_mask`` and ``key_padding_mask`` for a batch of ``n`` (None: unbatched), in
    torch's multi-head attention convention (boolean True: not allowed; float: added).

    Boolean masks keep one key s0[b] allowed for every query of batch entry b (in both masks),
    so no softmax row is empty (0 / 0); the causal mask allows key j to query i iff j <= i
    (upper-left aligned, as torch's ``is_causal``), and then key 0 is never padded.
    Float masks are standard normal (differentiable, finite).
    """
    arrays: dict[str, Array] = {}
    if masks.kind == "none":
        return arrays
    b = 1 if n is None else n
    am_shape = (b * heads, lq, s) if masks.attn_3d else (lq, s)
    if masks.kind == "float":
        if masks.attn:
            arrays["attn_mask"] = _normal(rng, am_shape)
        if masks.padding:
            arrays["key_padding_mask"] = _normal(rng, (b, s) if n is not None else (s,))
        return arrays
    keep = np.zeros(b, dtype=np.int64) if masks.causal else rng.integers(0, s, b)
    if masks.attn:
        if masks.causal:
            am = np.triu(np.ones((lq, s), dtype=bool), 1)
        else:
            am = rng.random(am_shape) < 0.4
            for i, k in enumerate(keep):
                if masks.attn_3d:
                    am[i * heads:(i + 1) * heads, :, k] = False
                else:
                    am[:, k] = False
        arrays["attn_mask"] = am
    if masks.padding:
        kp = rng.random((b, s)) < 0.4
        kp[np.arange(b), keep] = False
        arrays["key_padding_mask"] = kp if n is not None else kp[0]
    return arrays


@dataclass(frozen=True)
class MultiheadAttention:
    """nn.MultiheadAttention / F.multi_head_attention_forward: ``query``, optional ``key`` and
    ``value`` (absent: self-attention or shared key and value), masks (:func:`make_masks`),
    projections packed (``in_proj_weight``) or separate (kdim, vdim with (kdim, vdim) !=
    (E, E), where nn.MultiheadAttention uses them), biases, ``bias_k``/``bias_v``; options
    num_heads, add_zero_attn, batch_first, need_weights, average_attn_weights, is_causal and
    which output is compared. Weights are scaled by 1 / sqrt(fan_in) (torch's initialisation's
    order), so scores stay of order one for unit inputs."""

    def _case(self, *, n: int | None, heads: int, head_dim: int, lq: int, s: int, kind: str,
              kdim: int | None, vdim: int | None, bias: bool, bias_kv: bool, masks: Masks,
              options: dict[str, Any], scale: float, seed: int) -> Case:
        rng = np.random.default_rng(seed)
        e = heads * head_dim
        batch_first = options["batch_first"]
        if kind == "self":
            s = lq
        arrays: dict[str, Array] = {"query": _normal(rng, _sequence(n, lq, e, batch_first),
                                                     scale)}
        kd, vd = kdim or e, vdim or e
        if kind != "self":
            arrays["key"] = _normal(rng, _sequence(n, s, kd, batch_first), scale)
        if kind == "separate":
            arrays["value"] = _normal(rng, _sequence(n, s, vd, batch_first), scale)
        arrays |= make_masks(rng, masks, n, heads, lq, s)
        if kdim is None:
            arrays["in_proj_weight"] = _normal(rng, (3 * e, e)) / math.sqrt(e)
        else:
            arrays["q_proj_weight"] = _normal(rng, (e, e)) / math.sqrt(e)
            arrays["k_proj_weight"] = _normal(rng, (e, kd)) / math.sqrt(kd)
            arrays["v_proj_weight"] = _normal(rng, (e, vd)) / math.sqrt(vd)
        if bias:
            arrays["in_proj_bias"] = _normal(rng, (3 * e,)) * 0.5
        if bias_kv:
            arrays["bias_k"] = _normal(rng, (1, 1, e))
            arrays["bias_v"] = _normal(rng, (1, 1, e))
        arrays["out_proj_weight"] = _normal(rng, (e, e)) / math.sqrt(e)
        if bias:
            arrays["out_proj_bias"] = _normal(rng, (e,)) * 0.5
        # The weights do not depend on the values or the output projection: those arrays are
        # left out of the gradients then (torch's autograd.grad refuses unused inputs).
        unused = _NOT_IN_THE_WEIGHTS if options["output"] == "attn_output_weights" else ()
        differentiable = tuple(k for k, a in arrays.items()
                               if a.dtype.kind == "f" and k not in unused)
        return Case(arrays, differentiable, {"num_heads": heads, **options}, seed)

    def _draw(self, draw: st.DrawFn, *, embed: int | None = None, keys: int | None = None,
              batch: int = 3) -> Case:
        """A typical case (:meth:`strategy`); the hard tier's sizes: ``embed`` fixes E (the
        head count a drawn divisor of it, :func:`_heads`), ``keys`` fixes S with one query
        (key and value apart from the query: self-attention has S = L) and no causal hint (it
        would leave the query key 0 alone), ``batch`` caps N."""
        if embed is None:
            heads = draw(st.integers(1, 3), label="num_heads")
            head_dim = draw(st.integers(1, 4), label="head_dim")
        else:
            heads = _heads(draw, embed)
            head_dim = embed // heads
        e = heads * head_dim
        n = draw(st.one_of(st.none(), st.integers(1, batch)), label="batch (None: unbatched)")
        if keys is None:
            lq, s = draw(st.integers(1, 5), label="L"), draw(st.integers(1, 5), label="S")
            kind = draw(st.sampled_from(["self", "shared key/value", "separate"]),
                        label="query/key/value")
        else:
            lq, s = 1, keys
            kind = draw(st.sampled_from(["shared key/value", "separate"]),
                        label="query/key/value")
        kdim = vdim = None
        if kind != "self" and draw(st.booleans(), label="separate projections"):
            kdim = draw(st.integers(1, 6), label="kdim")
            vdim = kdim if kind != "separate" else draw(st.integers(1, 6), label="vdim")
            if (kdim, vdim) == (e, e):  # nn.MultiheadAttention packs them then
                kdim = vdim = e + 1
        bias_kv = draw(st.booleans(), label="add_bias_kv")
        zero = draw(st.booleans(), label="add_zero_attn")
        masks = draw_masks(draw, allow_causal=not (bias_kv or zero) and keys is None)
        need_weights = draw(st.booleans(), label="need_weights")
        weights = need_weights and draw(st.booleans(), label="compare the weights")
        options = {"add_zero_attn": zero,
                   "batch_first": draw(st.booleans(), label="batch_first"),
                   "need_weights": need_weights,
                   "average_attn_weights": draw(st.booleans(), label="average_attn_weights"),
                   "is_causal": masks.causal,
                   "output": "attn_output_weights" if weights else "attn_output"}
        return self._case(n=n, heads=heads, head_dim=head_dim, lq=lq, s=s, kind=kind,
                          kdim=kdim, vdim=vdim, bias=draw(st.booleans(), label="bias"),
                          bias_kv=bias_kv, masks=masks, options=options,
                          scale=draw(VALUE_SCALES, label="scale"),
                          seed=draw(SEEDS, label="seed"))

    def strategy(self) -> st.SearchStrategy[Case]:
        return st.composite(lambda draw: self._draw(draw))()

    def sized(self, n: int, seed: int = 0) -> Case:
        length = max(2, n // 8)
        options = {"add_zero_attn": False, "batch_first": True, "need_weights": False,
                   "average_attn_weights": True, "is_causal": False, "output": "attn_output"}
        return self._case(n=2, heads=4, head_dim=4, lq=length, s=length, kind="separate",
                          kdim=None, vdim=None, bias=True, bias_kv=False,
                          masks=Masks("none", False, False), options=options, scale=1.0,
                          seed=seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): ``query``, ``key`` and ``value`` (those present) of
        a drawn value scenario along the embedding dim (power 2: scores are products of two
        projections; ``offset`` shifts each token's features alike, ``constant`` tokens give
        constant projections, hence tied scores in a row where the keys are constant,
        ``huge``/``tiny``/``exp edge`` saturate or flatten the softmax), weights, masks and
        options as in typical cases; ``simd``: E of each ``suite.hard.SIMD_SIZES`` size (a
        drawn divisor of it as the head count, 1 always), batch <= 2, extremes placed in the
        vector body and tail of every token of the three inputs; ``long``: one query over
        ``suite.hard.long_terms()`` keys (10^4: an example takes ~0.1 s; key and value apart
        from the query, no causal hint), typical values, a softmax and P v over them all."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario, case = _scenario_case(draw, self._draw, keys=hard.long_terms())
            return _hard_inputs(case, ("query", "key", "value"), scenario, dtype,
                                draw(st.integers(0, 2**16), label="position"))

        return cases()


def _scenario_case(draw: st.DrawFn, make: Callable[..., Case], **long: int) -> tuple[str, Case]:
    """A drawn hard scenario (``suite.hard.scenario``) and the maker's case for it: ``simd``
    an embedding dim of a ``suite.hard.SIMD_SIZES`` size, ``long`` the maker's long dimension
    (``long``, its keyword and length), both at batch 2; any other scenario a typical case
    (whose values ``_hard_inputs`` then makes hard)."""
    scenario = hard.scenario(draw)
    if scenario == "simd":
        return scenario, make(draw, embed=hard.simd_size(draw, zero_dim=False) or 1, batch=2)
    if scenario == "long":
        return scenario, make(draw, **long, batch=2)
    return scenario, make(draw)


def _heads(draw: st.DrawFn, embed: int) -> int:
    """A head count dividing ``embed`` (up to 8; 1 always does)."""
    return draw(st.sampled_from([h for h in range(1, min(embed, 8) + 1) if embed % h == 0]),
                label="heads (a divisor of the embedding dim)")


def _hard_inputs(case: Case, names: tuple[str, ...], scenario: str, dtype: torch.dtype,
                 drawn: int, stream: int = 7) -> Case:
    """``case`` with its float inputs ``names`` (those present; weights and masks keep their
    values) made hard: a value scenario along the embedding (last) dim, power 2 (every input
    enters products: projections, scores, P v); ``simd``, extremes placed along it (power 2);
    ``long``, the typical values (the size is the scenario). ``stream``: the hard values'
    random stream (``suite.hard.rng_for``)."""
    rng = hard.rng_for(case.seed, stream)
    arrays: dict[str, Array] = {}
    labels = []
    for name in names:
        if name not in case.arrays:
            continue
        a = case.arrays[name]
        if scenario in hard.VALUE_SCENARIOS:
            arrays[name], label = hard.values(rng, a.shape, scenario, dtype, power=2,
                                              axes=(-1,))
        elif scenario == "simd":
            arrays[name], label = hard.place(rng, a, dtype, drawn, power=2)
        else:
            continue
        labels.append(f"{name} {label}")
    if scenario == "long":
        labels = [f"{_longest(case)} keys, typical values"]
    return hard.rewrite(case, arrays, f"{scenario}: {'; '.join(labels)}")


def _longest(case: Case) -> int:
    """The longest sequence of a case (its inputs' largest dimension)."""
    return max(max(case.arrays[k].shape, default=1) for k in
               ("query", "key", "value", "src", "tgt", "memory") if k in case.arrays)


_HINTS = {"transformer_encoder_layer": ("is_causal",),
          "transformer_decoder_layer": ("tgt_is_causal", "memory_is_causal")}
# Pre-activations of relu closer than this to 0 are redrawn: a finite-difference step (1e-6
# times a direction of size ~10 at most) then never straddles the kink.
_RELU_MARGIN = 1e-3


@dataclass(frozen=True)
class TransformerLayer:
    """nn.TransformerEncoderLayer (``name="transformer_encoder_layer"``) or
    nn.TransformerDecoderLayer: ``src`` (or ``tgt`` and ``memory``), the masks of each attention
    block (:func:`make_masks`: ``src_mask``/``src_key_padding_mask``, or ``tgt_*`` and
    ``memory_*``), and every parameter under the module's name with dots as underscores
    (``self_attn_in_proj_weight``, ``linear1_weight``, ``norm2_bias``, ...; biases absent with
    ``bias=False``); options nhead, activation, layer_norm_eps, batch_first, norm_first and
    the causal hints. With relu, cases whose feed-forward pre-activations come within
    ``_RELU_MARGIN`` of the kink are redrawn from the next seed (deterministically)."""

    name: str

    @property
    def decoder(self) -> bool:
        return self.name == "transformer_decoder_layer"

    def _case(self, *, n: int | None, nhead: int, head_dim: int, ff: int, lq: int, s: int,
              masks: tuple[Masks, ...], bias: bool, options: dict[str, Any], scale: float,
              seed: int) -> Case:
        for attempt in range(100):
            case = self._draw_arrays(n=n, nhead=nhead, head_dim=head_dim, ff=ff, lq=lq, s=s,
                                     masks=masks, bias=bias, options=options, scale=scale,
                                     seed=(seed + attempt) % 2**32)
            if options["activation"] != "relu":
                return case
            z = ref._feedforward_inputs(self.name, **case.arrays, **case.options)
            if np.min(np.abs(z)) >= _RELU_MARGIN:
                return case
        raise AssertionError(f"{self.name}: no draw kept relu's inputs off 0 (seed {seed})")

    def _draw_arrays(self, *, n: int | None, nhead: int, head_dim: int, ff: int, lq: int,
                     s: int, masks: tuple[Masks, ...], bias: bool, options: dict[str, Any],
                     scale: float, seed: int) -> Case:
        rng = np.random.default_rng(seed)
        e = nhead * head_dim
        batch_first = options["batch_first"]
        first = "tgt" if self.decoder else "src"
        arrays: dict[str, Array] = {first: _normal(rng, _sequence(n, lq, e, batch_first),
                                                   scale)}
        if self.decoder:
            arrays["memory"] = _normal(rng, _sequence(n, s, e, batch_first), scale)
        prefixes = ("tgt", "memory") if self.decoder else ("src",)
        for prefix, m in zip(prefixes, masks, strict=True):
            keys = s if prefix == "memory" else lq
            drawn = make_masks(rng, m, n, nhead, lq, keys)
            for kind in ("attn_mask", "key_padding_mask"):
                if kind in drawn:
                    arrays[f"{prefix}_mask" if kind == "attn_mask"
                           else f"{prefix}_key_padding_mask"] = drawn[kind]
        blocks = ("self_attn", "multihead_attn") if self.decoder else ("self_attn",)
        for block in blocks:
            arrays[f"{block}_in_proj_weight"] = _normal(rng, (3 * e, e)) / math.sqrt(e)
            if bias:
                arrays[f"{block}_in_proj_bias"] = _normal(rng, (3 * e,)) * 0.5
            arrays[f"{block}_out_proj_weight"] = _normal(rng, (e, e)) / math.sqrt(e)
            if bias:
                arrays[f"{block}_out_proj_bias"] = _normal(rng, (e,)) * 0.5
        arrays["linear1_weight"] = _normal(rng, (ff, e)) / math.sqrt(e)
        if bias:
            arrays["linear1_bias"] = _normal(rng, (ff,)) * 0.5
        arrays["linear2_weight"] = _normal(rng, (e, ff)) / math.sqrt(ff)
        if bias:
            arrays["linear2_bias"] = _normal(rng, (e,)) * 0.5
        for i in range(1, 4 if self.decoder else 3):
            arrays[f"norm{i}_weight"] = 1.0 + 0.5 * _normal(rng, (e,))
            if bias:
                arrays[f"norm{i}_bias"] = 0.5 * _normal(rng, (e,))
        differentiable = tuple(k for k, a in arrays.items() if a.dtype.kind == "f")
        return Case(arrays, differentiable, {"nhead": nhead, **options}, seed)

    def _draw(self, draw: st.DrawFn, *, embed: int | None = None, length: int | None = None,
              batch: int = 3) -> Case:
        """A typical case (:meth:`strategy`); the hard tier's sizes: ``embed`` fixes d_model
        (nhead a drawn divisor of it, :func:`_heads`), ``length`` the sequence the attention
        reduces over (the encoder's L; the decoder's memory S with one target position, and no
        causal memory mask, which would leave it key 0 alone) with gelu only (relu's kink
        among that many pre-activations: :func:`_hard_layer`), ``batch`` caps N. d_model 1
        takes gelu too: a layer norm over one feature returns its bias (0 without one), so
        every relu pre-activation is exactly 0 without biases, where no redraw moves it."""
        if embed is None:
            nhead = draw(st.integers(1, 3), label="nhead")
            # d_model >= 4: a layer norm over E features divides by their spread sigma, and
            # over 2 values sigma = |x1 - x2| / 2 is often near 0, where float32 results are
            # rounding noise amplified by 1 / sigma (the layer_norm record draws its spread for
            # that reason; here the normalized values are the layer's own).
            head_dim = draw(st.integers(-(-4 // nhead), 4), label="head_dim")
        else:
            nhead = _heads(draw, embed)
            head_dim = embed // nhead
        n = draw(st.one_of(st.none(), st.integers(1, batch)), label="batch (None: unbatched)")
        if length is None:
            lq = draw(st.integers(1, 5), label="L")
            s = draw(st.integers(1, 5), label="S") if self.decoder else lq
        else:
            lq, s = (1, length) if self.decoder else (length, length)
        prefixes = ("tgt ", "memory ") if self.decoder else ("src ",)
        masks = tuple(draw_masks(draw, prefix=p,
                                 allow_causal=length is None or p != "memory ")
                      for p in prefixes)
        activations = ["relu", "gelu"] if length is None and embed != 1 else ["gelu"]
        options: dict[str, Any] = {
            "activation": draw(st.sampled_from(activations), label="activation"),
            "layer_norm_eps": draw(st.sampled_from((1e-5, 1e-3, 0.1)), label="layer_norm_eps"),
            "batch_first": draw(st.booleans(), label="batch_first"),
            "norm_first": draw(st.booleans(), label="norm_first")}
        for hint, m in zip(_HINTS[self.name], masks, strict=True):
            options[hint] = m.causal
        bias = not versions.TRANSFORMER_BIAS_ARGUMENT or draw(st.booleans(), label="bias")
        return self._case(n=n, nhead=nhead, head_dim=head_dim,
                          ff=draw(st.integers(1, 12), label="dim_feedforward"), lq=lq,
                          s=s, masks=masks, bias=bias, options=options,
                          scale=draw(_LAYER_SCALES, label="scale"),
                          seed=draw(SEEDS, label="seed"))

    def strategy(self) -> st.SearchStrategy[Case]:
        return st.composite(lambda draw: self._draw(draw))()

    def sized(self, n: int, seed: int = 0) -> Case:
        length = max(2, n // 8)
        options: dict[str, Any] = {"activation": "gelu", "layer_norm_eps": 1e-5,
                                   "batch_first": True, "norm_first": False}
        options |= dict.fromkeys(_HINTS[self.name], False)
        none = Masks("none", False, False)
        return self._case(n=2, nhead=4, head_dim=4, ff=32, lq=length, s=length,
                          masks=(none, none) if self.decoder else (none,), bias=True,
                          options=options, scale=1.0, seed=seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): ``src`` (or ``tgt`` and ``memory``) of a drawn
        value scenario along the embedding dim (power 2: attention's products), parameters,
        masks and options as in typical cases: ``offset`` is each token's features at up to
        1e4 times their spread, what every layer norm of the layer (norm_first) or the first
        (post-norm: x + attention(x) keeps the offset) normalises; ``constant`` tokens make
        a pre-norm layer norm's centred row exactly 0 (its output the bias) and tie the
        scores of a row; ``huge``/``tiny``/``exp edge`` saturate or flatten the softmax and
        scale the residual; ``simd``: d_model of each ``suite.hard.SIMD_SIZES`` size (nhead a
        drawn divisor, 1 always), batch <= 2, extremes placed in the vector body and tail of
        every token; ``long``: attention over a long sequence, typical values, gelu, batch
        <= 2: the decoder's one target position over ``suite.hard.long_terms()`` memory
        positions (10^4: ~0.1 s an example), the encoder's self-attention over
        :data:`_LONG_SELF_ATTENTION` positions (its L^2 scores; ~0.2 s an example). With
        relu, the hard values are redrawn until every feed-forward pre-activation is off the
        kink by more than the tier allows rounding to move it (:func:`_hard_layer`)."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario, case = _scenario_case(
                draw, self._draw,
                length=hard.long_terms() if self.decoder else _LONG_SELF_ATTENTION)
            names = ("tgt", "memory") if self.decoder else ("src",)
            return _hard_layer(self.name, case, names, scenario, dtype,
                               draw(st.integers(0, 2**16), label="position"))

        return cases()


# The hard tier's long self-attention (the encoder layers and stacks, nn.Transformer's
# encoder): L queries over L keys, L^2 scores per head; set so that an example stays well under
# half a second (measured below).
_LONG_SELF_ATTENTION = 400
# Random streams the hard values of a relu layer are drawn from before the case is set aside.
_HARD_REDRAWS = 20


def _hard_layer(name: str, case: Case, names: tuple[str, ...], scenario: str,
                dtype: torch.dtype, drawn: int) -> Case:
    """:func:`_hard_inputs` for a transformer layer; with relu, redrawn from the next random
    streams (up to ``_HARD_REDRAWS``, then set aside) until every feed-forward pre-activation
    is off the kink (:func:`_off_the_kink`)."""
    for attempt in range(_HARD_REDRAWS):
        made = _hard_inputs(case, names, scenario, dtype, drawn, stream=7 + attempt)
        if case.options["activation"] != "relu" or _off_the_kink(name, made, dtype):
            return made
    assume(False)
    raise AssertionError("unreachable")


def _off_the_kink(name: str, case: Case, dtype: torch.dtype) -> bool:
    """Whether every feed-forward pre-activation z of ``case`` (rounded to ``dtype``) is at
    least ``_RELU_MARGIN`` plus HARD_SENSITIVITY times the largest change of z, over
    HARD_SHAKES draws, when every float array is scaled by 1 + d, d uniform in
    +-HARD_SHAKE_ULPS u_acc, away from 0: the hard tier's reading of what rounding moves a
    result by (suite/tolerances.py, "The hard tier"; ``suite.hardcheck.shake``), applied to z,
    so that torch's z and the reference's lie on the same side of relu's kink (an offset of
    1e4 moves float32's layer-norm outputs, and z, by ~1e4 u)."""
    from suite import tolerances as tols

    rounded = case.rounded_to(dtype)
    u = float(torch.finfo(tols.accumulation_dtype(dtype)).eps) / 2
    rng = np.random.default_rng([case.seed, 12])
    with np.errstate(all="ignore"):
        z = ref._feedforward_inputs(name, **rounded.arrays, **rounded.options)
        moved = np.zeros(np.shape(z))
        for _ in range(tols.HARD_SHAKES):
            arrays = {k: a * (1 + tols.HARD_SHAKE_ULPS * u * rng.uniform(-1, 1, a.shape))
                      if a.dtype.kind == "f" else a for k, a in rounded.arrays.items()}
            z1 = ref._feedforward_inputs(name, **arrays, **rounded.options)
            moved = np.maximum(moved, np.abs(z1 - z))
        return bool(np.all(np.abs(z) >= _RELU_MARGIN + tols.HARD_SENSITIVITY * moved))


# Input scales of the layers: not 5. At scale 5 a layer's weight gradients can be
# ill-conditioned past any fixed float32 tolerance: on the ci profile's draw of
# transformer_encoder_layer (d_model 4, one head, inputs up to 12) perturbing the float64
# inputs by half a float32 ulp moved the float64 reference's in_proj_weight gradient by up to
# 1.6e-2 (of 198), and torch's float32 gradient was off by 2e-2 (of 55.5): torch right, the
# input beyond what a fixed tolerance can judge. Such inputs belong to a tier whose allowance
# comes from the input's conditioning; the attention records (one block, no layer chain) keep 5.
_LAYER_SCALES = st.sampled_from((1.0, 0.1))

# Input scales of the stacks: not 0.1. Pre-norm layer norms of inputs that small (token
# spread ~0.01 against eps 1e-3) are nearly singular, and over 2-3 layers their curvature puts
# a central difference's truncation error (h^2 times the third derivative) above the
# finite-difference check's 1e-6: measured 1.2e-5 relative at h = 1e-6, falling as h^2
# (1.2e-7 at h = 1e-7), so the reference VJP is right and such a draw only tests the step.
# The layer records keep scale 0.1.
_STACK_SCALES = st.sampled_from((1.0, 5.0))
@dataclass(frozen=True)
class TransformerStack:
    """nn.TransformerEncoder (``name="transformer_encoder"``), nn.TransformerDecoder or
    nn.Transformer: 1-2 layers (nn.Transformer: 1 encoder and 1 decoder layer) whose
    parameters are the layer makers' (:class:`TransformerLayer`, each from its own seed)
    stacked along a leading axis of num_layers, under the layer's names (nn.Transformer:
    prefixed ``encoder_`` and ``decoder_``); the inputs and
    masks of the first layer's draw (nn.TransformerEncoder's attention mask is ``mask``); a
    final layer norm (``norm_weight``, ``norm_bias``) drawn for the encoder and decoder stacks,
    always there in nn.Transformer (``encoder_norm_*``, ``decoder_norm_*``). gelu only: relu's
    kink would need every layer's pre-activations kept off 0, and the layer records check relu
    (stacks check the composition)."""

    name: str

    def _layers(self, kind: str, count: int, *, n: int | None, nhead: int, head_dim: int,
                ff: int, lq: int, s: int, masks: tuple[Masks, ...], bias: bool,
                options: dict[str, Any], scale: float, seed: int) -> dict[str, Array]:
        maker = TransformerLayer(f"transformer_{kind}_layer")
        draws = [maker._draw_arrays(n=n, nhead=nhead, head_dim=head_dim, ff=ff, lq=lq, s=s,
                                    masks=masks, bias=bias, options=options, scale=scale,
                                    seed=(seed + 7919 * i) % 2**32).arrays
                 for i in range(count)]
        params = [k for k in draws[0] if k.startswith(("self_attn", "multihead_attn",
                                                       "linear", "norm"))]
        arrays = {k: v for k, v in draws[0].items() if k not in params}
        return arrays | {k: np.stack([d[k] for d in draws]) for k in params}

    def _case(self, *, layers: tuple[int, int], n: int | None, nhead: int, head_dim: int,
              ff: int, lq: int, s: int, masks: tuple[Masks, ...], bias: bool, final_norm: bool,
              options: dict[str, Any], scale: float, seed: int) -> Case:
        rng = np.random.default_rng([seed, 1])
        e = nhead * head_dim
        common: dict[str, Any] = {"n": n, "nhead": nhead, "head_dim": head_dim, "ff": ff,
                                  "options": options, "bias": bias, "scale": scale,
                                  "seed": seed}
        arrays: dict[str, Array] = {}
        if self.name == "transformer_encoder":
            drawn = self._layers("encoder", layers[0], lq=lq, s=lq, masks=masks[:1], **common)
            arrays = {"mask" if k == "src_mask" else k: v for k, v in drawn.items()}
        elif self.name == "transformer_decoder":
            arrays = self._layers("decoder", layers[1], lq=lq, s=s, masks=masks[1:], **common)
        else:
            enc = self._layers("encoder", layers[0], lq=s, s=s, masks=masks[:1], **common)
            dec = self._layers("decoder", layers[1], lq=lq, s=s, masks=masks[1:], **common)
            dec.pop("memory")
            inputs = ("src", "src_mask", "src_key_padding_mask", "tgt", "tgt_mask",
                      "memory_mask", "tgt_key_padding_mask", "memory_key_padding_mask")
            both = {**enc, **dec}
            arrays = {k: both[k] for k in inputs if k in both}
            arrays |= {f"encoder_{k}": v for k, v in enc.items() if k not in inputs}
            arrays |= {f"decoder_{k}": v for k, v in dec.items() if k not in inputs}
        norms = ("encoder_norm", "decoder_norm") if self.name == "transformer" \
            else ("norm",) if final_norm else ()
        for norm in norms:
            arrays[f"{norm}_weight"] = 1.0 + 0.5 * _normal(rng, (e,))
            if bias:
                arrays[f"{norm}_bias"] = 0.5 * _normal(rng, (e,))
        differentiable = tuple(k for k, a in arrays.items() if a.dtype.kind == "f")
        return Case(arrays, differentiable, {"nhead": nhead, **options}, seed)

    def _draw(self, draw: st.DrawFn, *, embed: int | None = None,
              length: int | None = None) -> Case:
        """A typical case (:meth:`strategy`); the hard tier's sizes: ``embed`` fixes d_model
        (nhead a drawn divisor of it, :func:`_heads`), ``length`` the sequence attention
        reduces over: the encoder's L; the decoder's memory S with one target position;
        nn.Transformer's S (its encoder's self-attention and the decoder's cross-attention)
        with one target position; no causal memory mask then (it would leave the target
        position key 0 alone)."""
        if embed is None:
            nhead = draw(st.integers(1, 2), label="nhead")
            head_dim = draw(st.integers(-(-4 // nhead), 4), label="head_dim")  # d_model >= 4
        else:
            nhead = _heads(draw, embed)
            head_dim = embed // nhead
        n = draw(st.one_of(st.none(), st.integers(1, 2)), label="batch (None: unbatched)")
        masks = (draw_masks(draw, prefix="src "), draw_masks(draw, prefix="tgt "),
                 draw_masks(draw, prefix="memory ", allow_causal=length is None))
        options: dict[str, Any] = {
            "activation": "gelu",
            "layer_norm_eps": draw(st.sampled_from((1e-5, 1e-3)), label="layer_norm_eps"),
            "batch_first": draw(st.booleans(), label="batch_first"),
            "norm_first": draw(st.booleans(), label="norm_first")}
        if self.name != "transformer_encoder":
            options["memory_is_causal"] = masks[2].causal
        bias = not versions.TRANSFORMER_BIAS_ARGUMENT or draw(st.booleans(), label="bias")
        layers = (1, 1) if self.name == "transformer" else \
            (draw(st.integers(1, 2), label="layers"),) * 2
        ff = draw(st.integers(1, 6), label="dim_feedforward")
        if length is None:
            lq, s = draw(st.integers(1, 4), label="L"), draw(st.integers(1, 4), label="S")
        else:
            lq, s = (length, length) if self.name == "transformer_encoder" else (1, length)
        return self._case(
            # nn.Transformer: one layer each (its stacks are nn.TransformerEncoder and
            # nn.TransformerDecoder, whose records draw two; every layer multiplies the
            # finite-difference check's cost, ~0.5 s an example at two each)
            layers=layers, n=n, nhead=nhead, head_dim=head_dim, ff=ff, lq=lq, s=s,
            masks=masks, bias=bias, final_norm=draw(st.booleans(), label="final norm"),
            options=options, scale=draw(_STACK_SCALES, label="scale"),
            seed=draw(SEEDS, label="seed"))

    def strategy(self) -> st.SearchStrategy[Case]:
        return st.composite(lambda draw: self._draw(draw))()

    def sized(self, n: int, seed: int = 0) -> Case:
        length = max(2, n // 8)
        options: dict[str, Any] = {"activation": "gelu", "layer_norm_eps": 1e-5,
                                   "batch_first": True, "norm_first": False}
        if self.name != "transformer_encoder":
            options["memory_is_causal"] = False
        none = Masks("none", False, False)
        return self._case(layers=(2, 2), n=2, nhead=4, head_dim=4, ff=32, lq=length, s=length,
                          masks=(none, none, none), bias=True, final_norm=True,
                          options=options, scale=1.0, seed=seed)

    def hard(self, dtype: torch.dtype) -> st.SearchStrategy[Case]:
        """The hard tier (``suite.hard``): the inputs (``src``, ``tgt``, ``memory``: those
        present) of a drawn value scenario along the embedding dim, power 2, parameters,
        masks and options as in typical cases (:meth:`TransformerLayer.hard` says what each
        scenario does to a layer; the first layer meets the values, the later ones and the
        final norm its normalised output); ``simd``: d_model of each ``suite.hard.SIMD_SIZES``
        size (nhead a drawn divisor, 1 always) with extremes placed in the vector body and
        tail of every token; ``long``: typical values over a long sequence: the decoder's one
        target position over ``suite.hard.long_terms()`` memory positions (10^4; ~0.2 s an
        example at two layers), the encoder's and nn.Transformer's self-attention over
        :data:`_LONG_SELF_ATTENTION` positions (nn.Transformer's one target position attends
        to all of them)."""

        @st.composite
        def cases(draw: st.DrawFn) -> Case:
            scenario = hard.scenario(draw)
            if scenario == "simd":
                case = self._draw(draw, embed=hard.simd_size(draw, zero_dim=False) or 1)
            elif scenario == "long":
                case = self._draw(draw, length=hard.long_terms()
                                  if self.name == "transformer_decoder"
                                  else _LONG_SELF_ATTENTION)
            else:
                case = self._draw(draw)
            return _hard_inputs(case, ("src", "tgt", "memory"), scenario, dtype,
                                draw(st.integers(0, 2**16), label="position"))

        return cases()
