"""The installed torch's version, for records whose reference must follow a convention that
torch changed between releases (listed in docs/versions.md).

References never import torch, so they take the convention as an argument; the catalogue picks
it here, once, when the records are built.
"""

from __future__ import annotations

import re

import torch


def parse(version: str) -> tuple[int, int, int]:
    """``"2.13.0+cpu"`` -> ``(2, 13, 0)``; pre-release and local suffixes are ignored.

    Raises:
        ValueError: naming the string, when it does not start with MAJOR.MINOR.
    """
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if not match:
        raise ValueError(f"cannot read a torch version from {version!r}; "
                         f"expected MAJOR.MINOR[.PATCH]")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


TORCH = parse(torch.__version__)
#: The vector instruction set torch's CPU kernels were dispatched to ("AVX2", "AVX512",
#: "DEFAULT", ...): some kernel bugs live in one code path only.
CPU_CAPABILITY: str = str(getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability",
                                  lambda: "unknown")())


def torch_at_least(version: str) -> bool:
    """True when the installed torch is ``version`` or newer (``"2.4"``, ``"2.4.1"``)."""
    return TORCH >= parse(version)


# Gradient conventions at non-differentiable points that torch changed between releases, as the
# reference VJPs' keyword arguments (``OpSpec.ref_options``); docs/conventions.md tables them.
#: hardswish at -3 and +3: -1/2 and 3/2 (the middle formula on the closed band) through 2.7,
#: 0 and 1 since 2.8 (pytorch/pytorch#148049; measured: 2.0.1, 2.1.2, 2.2.2, 2.5.1, 2.7.1 old,
#: 2.8.0, 2.9.1, 2.13.0, 2.14.1, 2.15.0 new).
HARDSWISH = {"closed_band": not torch_at_least("2.8")}
#: clamp, clamp_min, clamp_max at a bound: the gradient passed (1) through 2.13, 0 since 2.14
#: (measured on 2.13.0 and 2.14.1); every loss built on clamp_min inherits it at its margin.
CLAMP = {"clamp_closed": not torch_at_least("2.14")}

# Algorithms torch changed between releases, as the references' keyword arguments.
#: L-BFGS's strong-Wolfe line search: up to 25 evaluations whatever max_eval (so a step could
#: exceed max_eval; pytorch/pytorch#91581) until torch passed max_ls = max_eval - evaluations
#: spent (proposed in pytorch/pytorch#135026). Read from each release's torch/optim/lbfgs.py: 2.0.1,
#: 2.1.2, 2.5.1, 2.6.0 and 2.9.1 have the old search; 2.10.0, 2.11.0, 2.12.1, 2.13.0, 2.14.1
#: and 2.15.0 the new one (2.8.0 ran the old one; the change landed between 2.9 and 2.10).
#: tests/test_optimizers.py::test_lbfgs_line_search_budget_follows_the_installed_torch fails,
#: naming this line, if that is wrong for the installed torch (it caught 2.9.1, first
#: assumed new from the PR's date).
LBFGS = {"line_search_budget": torch_at_least("2.10")}

# Bugs fixed in a later release, where an input maker avoids the case and a strict xfail keeps
# it visible until the installed torch has the fix (KNOWN_DIFFERENCES.md).
#: group_norm's backward with a bias but no weight raised "tensor does not have a device"
#: (2.0.1, 2.1.2 and 2.13.0 measured); 2.14.1 computes it.
GROUP_NORM_BIAS_WITHOUT_WEIGHT_RAISES = not torch_at_least("2.14")

#: float32 gelu at +inf in the vectorised kernel: NaN (a bug, KNOWN_DIFFERENCES.md) on 2.1.2,
#: 2.5.1, 2.13.0, 2.14.1 and 2.15.0; inf, correctly, on 2.0.1 (measured). The NaN comes from
#: oneDNN's AVX512 eltwise kernel, which torch uses for an input of more than one element: on
#: an AVX512 CPU (AMD EPYC, 2026-12-02) the 2.13.0 wheel gives NaN even with
#: ATEN_CPU_CAPABILITY=default or AVX2, and inf with ONEDNN_MAX_CPU_ISA=AVX2, with oneDNN off
#: (torch.backends.mkldnn.flags(enabled=False)) or for one element; on an AVX2-only CPU it
#: gives inf. oneDNN picks its ISA from the CPU, which ATen's capability reports unless
#: ATEN_CPU_CAPABILITY lowers it.
GELU_FLOAT32_INF_IS_NAN = torch_at_least("2.1") and CPU_CAPABILITY.startswith("AVX512")

# Defects the hard tier found on torch 2.2.2 (CUDA wheel run on the CPU, AVX2) that 2.13.0 has
# not (KNOWN_DIFFERENCES.md, "Older torch: the hard tier on 2.2.2"). Where only those two were
# measured a flag is on before 2.13 until a release between is measured: the strict xfails in
# tests/test_hard.py pass on a torch without the defect and fail, naming it, on one with it.
_BEFORE_2_13 = not torch_at_least("2.13")
#: elu, celu and selu compute exp(x) - 1, not expm1(x), for x < 0 (float32 and float64): 0 for
#: |x| below eps/2 (relative error 1), 1.3e-5 relative at x = -0.0022 in float32.
ELU_EXP_MINUS_ONE = _BEFORE_2_13
#: hardswish's gradient at exactly +3 in the vectorised body (whole blocks of 8 float64, 16
#: float32, 32 bfloat16 elements on AVX2 in 2.2.2): 1, where the scalar tail (and the closed
#: band of HARDSWISH, those releases' convention) gives 3/2; at -3 both give -1/2. Measured:
#: 2.0.1, 2.1.2, 2.2.2, 2.5.1, 2.7.1 have it; 2.8.0 and later give 1 everywhere.
HARDSWISH_VECTOR_AT_3 = not torch_at_least("2.8")
#: softshrink of NaN is 0 (float32 and float64; hardshrink gives NaN): 2.0.1 to 2.5.1 measured,
#: NaN from 2.6.0.
SOFTSHRINK_NAN_IS_ZERO = not torch_at_least("2.6")
#: float16/bfloat16 log_softmax along a dimension that is not the last: -inf or inf at some
#: positions once the input's elements differ by more than ~89 (float32's exp range; on 8000
#: random (1, n) draws each, none below a spread of 89; also along a dimension of size 2).
#: In the vectorised body, on AVX2 and AVX512 alike: a (1, 29) input overflows on AVX2 only,
#: since AVX512's wider vector leaves all 29 to the scalar tail (measured 2026-12-02 with
#: ATEN_CPU_CAPABILITY=avx2 and avx512: 5 and 0 wrong of 29, 20 and 16 of 64).
LOG_SOFTMAX_HALF_INNER_OVERFLOWS = _BEFORE_2_13
#: lp_pool1d/2d with norm_type inf: 1 (sum(x^inf)^(1/inf) = inf^0), not max |x|.
LP_POOL_INF_IS_ONE = _BEFORE_2_13
#: ctc_loss of a sequence whose input length is 0 (CPU): inf where its target is empty (the
#: loss is -log 1 = 0) and a finite value (-log 2 = -0.693 on the probe) where its target is
#: not (no alignment: inf). Measured on 2.2.2; right on 2.13.0, 2.14.1 and 2.15.0.
CTC_EMPTY_INPUT_WRONG = _BEFORE_2_13
#: nn.TransformerEncoderLayer's fast path (evaluation, no autograd) reads a float src_mask as a
#: boolean mask, nonzero = masked out (attention.cpp converts it), where the documented mask is
#: added to the scores: 0.35 off with a 0 / 0.7 mask, NaN where no entry of a row is 0.
#: pytorch/pytorch#118628 (open). Measured on 2.2.2, 2.13.0, 2.14.1 and 2.15.0.
TRANSFORMER_FAST_PATH_FLOAT_MASK_AS_BOOL = True
#: before 2.13 (2.2.2 measured; 2.13.0 and 2.14.1 right) adaptive_max_pool1d and 2d in float16
#: and bfloat16 keep the argmax index in the half type: past its exact integers (256 in
#: bfloat16, 2048 in float16) the index rounds, the gradient lands on another element (bfloat16
#: 9999 -> 9984) or past the plane (float16 9999 -> 10000; bfloat16 299 -> 300 corrupted the heap:
#: "free(): invalid next size").
ADAPTIVE_MAX_POOL_HALF_INDEX_ROUNDED = _BEFORE_2_13
#: F.instance_norm with use_input_stats=False still writes running_mean / running_var, so an
#: expanded (stride-0) running statistic raises "unsupported operation: more than one element
#: of the written-to tensor refers to a single memory location".
INSTANCE_NORM_WRITES_UNUSED_STATS = _BEFORE_2_13
#: nn.TransformerEncoderLayer(bias=False) in evaluation, batch_first, an even nhead, relu/gelu:
#: its fast-path test reads .device of every bias and raises AttributeError on None.
TRANSFORMER_NO_BIAS_FAST_PATH_RAISES = _BEFORE_2_13
#: Ops without an autograd formula on the installed torch, by the name torch's error gives:
#: before 2.13 (2.2.2 measured) F.channel_shuffle / nn.ChannelShuffle raise "derivative for
#: channel_shuffle is not implemented" at backward. The hard tier's layout check skips with
#: torch's own words for these ops only (suite/higher.py, missing_derivative), after comparing
#: the forward.
NO_DERIVATIVE: frozenset[str] = frozenset({"channel_shuffle"} if _BEFORE_2_13 else ())

# Optimizer defects of older releases (KNOWN_DIFFERENCES.md, "Older torch: the optimizer checks
# on 2.2.2"); the typical tiers set their runs aside, and tests/test_optimizers.py states the
# right behaviour (strict xfails where the flag is on).
#: foreach Adam, AdamW, Adamax, Adagrad and Adadelta with maximize=True and a complex parameter
#: raise "TypeError: 'tuple' object does not support item assignment" (the negated gradients are
#: a tuple that ``_view_as_real`` writes into). Measured on 2.2.2; right on 2.13.0, 2.14.1 and
#: 2.15.0. The helper arrived in 2.2 (pytorch/pytorch#110706) and the fix in 2.3
#: (pytorch/pytorch#118160), by their merge dates; 2.3 is not measured.
FOREACH_MAXIMIZE_COMPLEX_RAISES = torch_at_least("2.2") and not torch_at_least("2.3")
#: The optimizer classes that defect hits (measured on 2.2.2: ASGD, RMSprop, Rprop and SGD with
#: foreach, maximize and a complex parameter step; NAdam and RAdam have no maximize there).
FOREACH_MAXIMIZE_COMPLEX_CLASSES = frozenset({"Adam", "AdamW", "Adamax", "Adagrad", "Adadelta"})
#: foreach ASGD updates eta = lr / (1 + lambd lr t^alpha), where the for-loop and the documented
#: schedule take lr / (1 + lambd lr t)^alpha. Measured on 2.2.2 (relative error 3.1e-6 after
#: one step at lr 0.0625, lambd 1e-4, alpha 0.5); right on 2.13.0. Written in 2.1
#: (pytorch/pytorch#107857) and fixed in 2.4 (pytorch/pytorch#125440), by their merge dates;
#: 2.1, 2.3 not measured.
ASGD_FOREACH_ETA_POWER_MISPLACED = torch_at_least("2.1") and not torch_at_least("2.4")

# Inputs an older torch rejects, which the input makers then do not draw.
#: scaled_dot_product_attention's ``scale`` argument is new in 2.1 (2.0.1: "got an unexpected
#: keyword argument 'scale'"; the default 1/sqrt(E) is still checked there).
SDPA_SCALE = torch_at_least("2.1")
#: nn.LayerNorm's ``bias`` argument is new in 2.1 (2.0.1: "unexpected keyword argument 'bias'").
LAYER_NORM_BIAS_ARGUMENT = torch_at_least("2.1")
#: nn.TransformerEncoderLayer's and TransformerDecoderLayer's ``bias`` argument, also new in
#: 2.1 (with LayerNorm's); before it every layer has biases.
TRANSFORMER_BIAS_ARGUMENT = torch_at_least("2.1")
#: gaussian_nll_loss's var with a dimension of 1 other than the last: "var is of incorrect size"
#: on 2.1.2, accepted on 2.13.0 (measured; the versions between are not, so they are not drawn).
GAUSSIAN_VAR_ANY_UNIT_DIM = torch_at_least("2.13")

# torch.func.vmap limitations and bugs (suite/vmapcheck.py; KNOWN_DIFFERENCES.md).
#: F.cross_entropy with label_smoothing > 0 and a class-index target batched while the input is
#: not raises "vmap: inplace arithmetic(self, *extra_args) is not possible ... If said operator
#: is being called inside the PyTorch framework, please file a bug report instead" (measured on
#: 2.13.0 only; tests/test_vmap.py keeps it as a strict xfail, which fails once torch is fixed).
CROSS_ENTROPY_VMAP_SMOOTHING_RAISES = True
#: F.batch_norm under vmap with running statistics batched at a dimension other than 0 (in_dims
#: 1 on a (C, B) running_mean): the output is right, but the running statistics are left as they
#: were, silently (2.13.0 measured); at dimension 0 they are updated as the per-example loop
#: updates them. The vmap check batches in-place-updated arrays at dimension 0 while this holds.
VMAP_INPLACE_UPDATE_NEEDS_DIM_0 = True
#: F.ctc_loss on the CPU reads a 1-D (concatenated) ``targets`` tensor as if it were contiguous:
#: a strided view (``t[:, 1]``, what vmap hands the kernel for targets batched at dimension 1)
#: gives the loss of other targets, silently (2.13.0 measured; 2-D padded targets are read
#: right). The vmap check leaves ctc_loss's targets unbatched while this holds.
CTC_1D_TARGETS_IGNORE_STRIDES = True
#: torch.func.vmap of the VJP of nn.RNNCell and nn.GRUCell with a batched input raises "output
#: with shape [1, H] doesn't match the broadcast shape [B, 1, H]" (their forward batches;
#: 2.13.0 measured): strict xfails in tests/test_vmap.py.
RNN_CELL_VMAP_VJP_RAISES = True
#: F.conv2d / conv3d / conv_transpose2d under vmap with a bias, a batched weight or bias, and
#: ``stride`` spelled as a one-element tuple (``(1,)``, which the eager op reads as 1 in every
#: dimension) raise "The size of tensor a (W) must match the size of tensor b (C_out) at
#: non-singleton dimension 3", or, where the spatial sides are 1, return an output of the wrong
#: shape silently (2.13.0 measured; ``stride=1`` or ``(1, 1)`` batch right). The vmap check
#: spells such a stride out per dimension while this holds; tests/test_vmap.py keeps the bug
#: as a strict xfail.
VMAP_CONV_ONE_TUPLE_STRIDE_WRONG = True
#: F.max_unpool2d / max_unpool3d backward with non-contiguous ``indices`` raises "view size is
#: not compatible with input tensor's size and stride" (2.13.0 measured; the hard tier's
#: transposed-indices finding). Under vmap, indices batched at a dimension other than 0 reach
#: the backward as such strided slices (vmap's per-example fallback): the vmap check batches
#: max_unpool's indices at dimension 0 while this holds; tests/test_vmap.py keeps the bug under
#: vmap as a strict xfail.
MAX_UNPOOL_BACKWARD_NEEDS_CONTIGUOUS_INDICES = True
#: F.multi_head_attention_forward under vmap with a separate key (cross-attention: the decoder's
#: multihead_attn) and ``in_proj_bias`` batched at dimension 1 raises "view size is not
#: compatible with input tensor's size and stride" at ``q.view(tgt_len, bsz * num_heads,
#: head_dim)``; the per-example loop runs, and self-attention or the bias at dimension 0 batch
#: right (2.13.0 measured). The vmap check batches that bias at dimension 0 while this holds;
#: tests/test_vmap.py keeps the bug as a strict xfail.
VMAP_MHA_CROSS_BIAS_VIEW_RAISES = True
#: torch.func.vmap places an output that is not batched (it depends on no mapped input: the
#: attention weights of F.multi_head_attention_forward with only the value batched) wrongly
#: for ``out_dims`` other than 0: it expands the output to the batched shape without inserting
#: the batch dimension at ``out_dims`` (a new leading dimension, broadcast), so the result is
#: wrong silently where the sizes happen to broadcast (a transpose of the right answer) and
#: raises "The expanded size of the tensor ... must match the existing size" elsewhere.
#: Measured on 2.2.2 and 2.13.0; right on 2.14.1 and 2.15.0 (releases between: not measured,
#: so not assumed). The vmap check runs such an output at out_dims 0 while this holds;
#: tests/test_vmap.py keeps the bug as a strict xfail.
VMAP_UNBATCHED_OUTPUT_MISPLACED = not torch_at_least("2.3") or (torch_at_least("2.13")
                                                                and not torch_at_least("2.14"))
#: F.interpolate's linear, bilinear, trilinear, bicubic, nearest and nearest-exact CPU kernels
#: take the integer part of a float64 source coordinate with ``floorf`` (float): past 2^13
#: positions a coordinate just below an integer rounds up to it, so the left neighbour's weight is
#: lost (up to 2.5e-3 at a side of 50000) or nearest reads the next input (KNOWN_DIFFERENCES.md).
#: Measured on 2.2.2, 2.13.0, 2.14.1 and 2.15.0 (nearest's forward: 2026-12-02).
INTERPOLATE_SOURCE_INDEX_FLOORED_IN_FLOAT = True
#: torch.compile(optimizer.step) (aot_eager and inductor) leaves a lone 0-d float64 parameter
#: unchanged: the whole update lost, for the pairs of
#: ``suite.optimcheck.COMPILED_FLOAT64_ZERO_DIM``.
#: Measured wrong on 2.13.0; right on 2.2.2, 2.14.1 and 2.15.0 (2026-12-02). Releases between
#: 2.2.2 and 2.13: not measured, so not assumed.
COMPILED_STEP_LOSES_ZERO_DIM_FLOAT64 = torch_at_least("2.13") and not torch_at_least("2.14")
#: F.conv3d of a channels_last_3d float32 input with a bias, a dilation, a padding and a stride
#: above 1 ends the process with a segmentation fault (x (2, 8, 1, 3, 1), stride (3, 2, 3),
#: padding (1, 2, 2), dilation (1, 2, 2), groups 2). Measured on 2.13.0 and 2.14.1; right on
#: 2.2.2 and 2.15.0. Releases between 2.2.2 and 2.13: not measured, so not assumed.
CONV3D_CHANNELS_LAST_CRASH = torch_at_least("2.13") and not torch_at_least("2.15")
#: torch.compile(F.celu, backend="inductor", dynamic=True) run on an input that requires grad
#: keeps the ``alpha`` of its first call: later calls with another alpha return the first
#: alpha's CELU, forward and gradient (0.0027 and 0.039 at alpha 1.0 after 1.5; 0.024 and 0.33
#: at alpha 0.25). aot_eager, dynamic=None/False, an input without grad and F.elu are right.
#: Measured wrong on 2.13.0, 2.14.1 and 2.15.0, right on 2.2.2 (releases between: not
#: measured, so not assumed). celu's record is not compiled under inductor while this holds;
#: tests/test_compiled.py keeps the bug as a strict xfail.
INDUCTOR_CELU_STALE_ALPHA = torch_at_least("2.13")
#: inductor (dynamic=True) cannot lower conv2d on an unbatched input that requires grad when
#: stride and dilation are arguments of the compiled function ("TypeError: cannot determine
#: truth value of Relational: 1 < s71"; input (1, 1, 2), weight (1, 1, 1, 1), stride (1, 2),
#: dilation (1, 2)). Measured on 2.13.0 and 2.14.1; right on 2.15.0. 2.2.2 fails on the same
#: case with another message ("LoweringException: RuntimeError: Overloaded torch operator
#: invoked from Python failed to many any schema"). conv_transpose2d likewise (input (1, 1, 2),
#: weight (1, 1, 1, 1), padding (0, 1), output_padding (0, 1), dilation (1, 2)): the same
#: message on 2.13.0 and 2.14.1, BackendCompilerFailed on 2.2.2, right on 2.15.0 (2026-12-02).
#: Releases between: not measured.
INDUCTOR_CONV_DYNAMIC_STRIDE = not torch_at_least("2.3") or (torch_at_least("2.13")
                                                             and not torch_at_least("2.15"))
#: inductor (dynamic=True) cannot lower adaptive_avg_pool2d of an unbatched (1, 1, n) input with
#: output_size (None, None) ("LoweringException: TypeError: cannot determine truth value of
#: Relational: (((2*s + 1)//s)) > 25"). Measured on 2.2.2 and 2.13.0; right on 2.14.1, 2.15.0.
#: Releases between: not measured.
INDUCTOR_ADAPTIVE_POOL_UNBATCHED = not torch_at_least("2.3") or (torch_at_least("2.13")
                                                                 and not torch_at_least("2.14"))
#: The same lowering fails for ``F.interpolate(mode="area")``, which calls adaptive_avg_pool2d:
#: a batched (1, 1, 3, 1) input to size (2, 1) under inductor, dynamic=True ("Relational:
#: (((2*s + 1)//s)) > 25"; measured on 2.13.0 and 2.2.2, right on 2.14.1 and 2.15.0): this flag
#: covers both records.
#: inductor's backward of avg_pool1d/2d/3d with ``ceil_mode=True`` and ``count_include_pad=True``
#: divides the gradient of a last window that overhangs the padded input by the whole kernel,
#: where the forward (eager's and its own) divides by the window's part inside the padded input:
#: input [0.1, 0.2, 0.64], kernel 2, gradient [0.5, 0.5, 0.5] where [0.5, 0.5, 1]. The compiled
#: backward is not the derivative of the compiled forward (a silently wrong gradient). Any
#: ``dynamic``; aot_eager (eager's backward kernel) is right. Measured wrong on 2.2.2 (1-d and
#: 2-d; its avg_pool3d is right), 2.13.0, 2.14.1 and 2.15.0 (all three); assumed on later
#: releases until one is measured right (the strict xfail of tests/test_compiled.py then fails
#: and says so). Keyed by the pooling's dimensions.
INDUCTOR_AVG_POOL_CEIL_OVERHANG_GRADIENT = {1: torch_at_least("2.2"), 2: torch_at_least("2.2"),
                                            3: torch_at_least("2.13")}
#: inductor's fractional_max_pool3d reads ``_random_samples`` in another order than eager's
#: kernel (which takes sample 0 for depth, 1 for height, 2 for width): on a case where only the
#: width's windows depend on the sample (input side 4, kernel 1, output 3) the compiled windows
#: follow the depth's sample, so the forward and the gradient pick other elements (0.1 off on
#: the fixed case of tests/test_compiled.py: a silently wrong result). Any ``dynamic``.
#: Measured wrong on 2.13.0, 2.14.1 and 2.15.0; right on 2.2.2 (dynamic=False; dynamic=True
#: fails to trace there). Releases between: not measured.
INDUCTOR_FRACTIONAL_MAX_POOL3D_SAMPLE_ORDER = torch_at_least("2.13")
#: inductor (dynamic=True) fails to lower conv3d's backward on some shapes ("LoweringException:
#: ValueRangeError: Invalid ranges [0:-1] target: aten.convolution_backward.default"; input (2,
#: 1, 1, 3, 2), weight (1, 1, 1, 1, 1), stride (1, 2, 1), padding (0, 0, 1), dilation (1, 1,
#: 2)); the forward compiles. Measured on 2.13.0; right on 2.14.1 and 2.15.0; 2.2.2 fails on
#: the same case ("BackendCompilerFailed"). conv_transpose3d's backward fails with the same
#: message on 2.13.0 in the catalogue's inductor run (input (1, 2, 3, 4, 3), weight (2, 2, 3,
#: 3, 2), stride (3, 1, 2), padding (0, 0, 1), output_padding (2, 0, 0), groups 2, dilation (1,
#: 1, 2), compiled after three other cases; alone it compiles); 2.2.2 fails to compile that
#: case alone; 2.14.1 not measured. Releases between: not measured.
INDUCTOR_CONV3D_BACKWARD_DYNAMIC = not torch_at_least("2.3") or (torch_at_least("2.13")
                                                                 and not torch_at_least("2.14"))
#: inductor (dynamic=True) fails to compile max_unpool2d's and max_unpool3d's training graph
#: (forward and backward, on an input that requires grad: "ValueError: Exponent must be
#: non-negative."; input (2, 2, 4, 2), kernel (2, 3), padding (0, 1)); the inference graph
#: compiles. Measured on 2.13.0; right on 2.2.2, 2.14.1 and 2.15.0.
INDUCTOR_MAX_UNPOOL_BACKWARD_DYNAMIC = torch_at_least("2.13") and not torch_at_least("2.14")
#: torch 2.2's dynamo and inductor (dynamic=True, fullgraph=True) fail to compile a dozen of the
#: catalogue's ops on some or all shapes, each in its own words (suite/catalog/compiling.py quotes
#: them per record; tests/test_compiled.py has a fixed case of all but three, lp_pool with a finite
#: norm, max_pool2d's backward and sdpa's context): SymInt sizes and options that 2.2's meta
#: functions, decompositions and lowerings do not take ("expected int at position 0, but got:
#: SymInt", "failed to many any schema", "Multiple dispatch failed for 'torch.ops.aten.size'",
#: "SymIntArrayRef expected to contain only concrete integers", divmod of a SymInt), and
#: aten.channel_shuffle, which 2.2 cannot trace at all. Measured on 2.2.2 (catalogue run at seed
#: 1503, 2026-12-02, and the fixed cases, 2026-12-03); right on 2.13.0 and 2.15.0. Releases between:
#: not measured.
INDUCTOR_DYNAMIC_TORCH_2_2 = not torch_at_least("2.3")
#: inductor (dynamic=True) computes bilinear interpolation wrongly where one side is upsampled
#: and the other downsampled: input (1, 1, 1, 2) to size (2, 1) gives a forward 0.2 and a
#: gradient 1.0 off eager's (a silently wrong result, float64); and bicubic interpolation in
#: float64 only to about float32's precision (input (1, 1, 2, 2) to size (3, 2): 2.4e-7 off in
#: the forward, 3.3e-7 in the gradient). Measured on 2.2.2; right on 2.13.0 (bicubic; the
#: bilinear case does not compile there: INDUCTOR_UPSAMPLE_SIDE_ONE), 2.14.1 and 2.15.0.
#: Releases between: not measured.
INDUCTOR_INTERPOLATION_WRONG_TORCH_2_2 = not torch_at_least("2.3")
#: inductor (dynamic=True) gives a wrong gradient of nearest and nearest-exact interpolation on
#: some drawn cases (the catalogue run at seed 1503: input (2, 3, 5, 2) to size (1, 4), then
#: 1-d inputs to size 5: up to 2.0 off, the reference agreeing with finite differences). Not
#: reduced to a fixed case (the same shapes alone, contiguous, are right). Measured on 2.2.2;
#: right in the 2.13.0 and 2.15.0 catalogue runs. Releases between: not measured.
INDUCTOR_NEAREST_GRADIENT_TORCH_2_2 = not torch_at_least("2.3")
#: inductor (dynamic=True) on more than one thread fails to compile float64 linear, bilinear,
#: bicubic and trilinear upsampling of a side of length 1 (input (1, 1, 1) to size (3,), mode
#: "linear": "InductorError: AssertionError" from the C++ codegen's vectorised store, ``assert
#: isinstance(index, CppCSEVariable) and index.is_vec``); on one thread, as the suite runs
#: torch, and in float32 it compiles, so no record skips for it. Measured on 2.13.0; right on
#: 2.14.1 and 2.15.0 (2026-12-03); 2.2.2 fails on the same cases for other reasons
#: (INDUCTOR_DYNAMIC_TORCH_2_2). The catalogue's 2.13.0 run at seed 1502 drew no such case.
#: Releases between: not measured.
INDUCTOR_UPSAMPLE_SIDE_ONE = torch_at_least("2.13") and not torch_at_least("2.14")
#: torch.compile(optimizer.step) on the CPU under torch 2.2 (aot_eager; torch's compiled-
#: optimizer recipe of 2.2 is for CUDA): for most records and implementations dynamo compiles no
#: graph (Adam, Adamax, RAdam, SGD: every call runs eagerly, so nothing compiled could be
#: checked), SGD's for-loop float64 step fails ("InternalTorchDynamoError: list index out of
#: range"), and Rprop's compiled for-loop step counts state['step'] 3 where 1 after one call (a
#: silently wrong state, tests/test_compiled.py::test_compiled_rprop_counts_one_step_per_call).
#: Measured on 2.2.2 (2026-12-03); right on 2.13.0. Releases between: not measured.
COMPILED_OPTIMIZER_STEP_TORCH_2_2 = not torch_at_least("2.3")
#: inductor (dynamic=True) takes 16 minutes (976 s, 2 cores with one other job) to compile
#: max_unpool3d's training graph when kernel_size, stride and padding are arguments of the
#: compiled function (so SymInts), on input (2, 2, 2, 6, 2), kernel (3, 1, 2), stride (2, 1, 1),
#: padding (1, 0, 0): the time goes to sympy simplifying strides during the C++ kernels' tiling
#: (py-spy). With those options as constants the same graph compiles in 12-34 s. Measured on
#: 2.15.0 (2.13.0 fails on the case after 9 minutes: INDUCTOR_MAX_UNPOOL_BACKWARD_DYNAMIC;
#: 2.14.1 not measured). A compile time is not a test's verdict (no test may depend on the
#: machine's timing), so no strict xfail shows it: the record skips inductor where measured.
INDUCTOR_MAX_UNPOOL3D_SLOW_COMPILE = torch_at_least("2.15")
#: torch.compile(F.lp_pool1d/2d, dynamic=True) with an integer norm_type fails in AOTAutograd
#: (aot_eager and inductor): "false INTERNAL ASSERT FAILED at c10/core/Scalar.h ... NYI SymInt
#: equality". A float norm_type compiles. Measured on 2.13.0; right on 2.14.1 and 2.15.0.
LP_POOL_SYMINT_NORM = torch_at_least("2.13") and not torch_at_least("2.14")
#: torch.compile(F.interpolate(mode="bicubic", antialias=True), dynamic=True) on an input that
#: requires grad fails in the backward's meta function (aot_eager and inductor):
#: "aten._upsample_bicubic2d_aa_backward ... isIntList() INTERNAL ASSERT FAILED ... Expected
#: IntList but got GenericList" (the output size as SymInts). bilinear with antialias compiles.
#: Measured on 2.13.0, 2.14.1 and 2.15.0. 2.2.2 fails earlier, in the forward's
#: CompositeImplicitAutograd kernel: "SymIntArrayRef expected to contain only concrete
#: integers". Releases between: not measured.
AA_BICUBIC_BACKWARD_SYMINT_SIZES = not torch_at_least("2.3") or torch_at_least("2.13")
#: torch.compile(F.multilabel_margin_loss) (aot_eager and inductor) ignores the -1 that ends a
#: target row's classes: target [2, -1, 0] on input [-0.84, 0.3, 0.1] gives 2.513 where eager
#: and the formula give 0.42; a target of only -1 gives 1 where 0 (a silently wrong loss).
#: Measured wrong on 2.2.2 and 2.13.0, right on 2.14.1 and 2.15.0.
COMPILED_MULTILABEL_MARGIN_IGNORES_END = not torch_at_least("2.14")
#: Compiled multi_margin_loss (aot_eager and inductor, any ``dynamic``) with
#: ``reduction='none'`` returns shape (1,) for a 0-d input and target, where eager and the
#: documented shape give () (the loss of one sample): input 0.3, target 0. Measured wrong on
#: 2.2.2, 2.13.0, 2.14.1 and 2.15.0; assumed on later releases until one is measured right (the
#: strict xfail of tests/test_compiled.py then fails and says so).
COMPILED_MULTI_MARGIN_ZERO_DIM_SHAPE = torch_at_least("2.2")
#: The same for multilabel_margin_loss: a 0-d input and target (input 0.12573, target 0) with
#: ``reduction='none'`` give shape (1,) compiled, () eager (aot_eager and inductor, any
#: ``dynamic``). Measured on 2.2.2, 2.13.0, 2.14.1 and 2.15.0 (found on 2.15.0 by the
#: catalogue's inductor gradient check: on 2.13 the record was already skipped, for
#: COMPILED_MULTILABEL_MARGIN_IGNORES_END); assumed on later releases until one is measured right.
COMPILED_MULTILABEL_MARGIN_ZERO_DIM_SHAPE = torch_at_least("2.2")
#: aot_eager cannot compile fractional_max_pool3d's backward ("Backend compiler `aot_eager`
#: failed with aten.fractional_max_pool3d_backward.default", an UnsupportedOperatorException:
#: the op has no fake-tensor implementation) while inductor compiles it and the forward
#: compiles under both. Measured on 2.13.0, 2.14.1 and 2.15.0; 2.2.2 fails earlier, in the
#: forward, under both backends ("Multiple dispatch failed for 'torch.ops.aten.size'").
AOT_EAGER_FRACTIONAL_MAX_POOL3D_BACKWARD = torch_at_least("2.2")
