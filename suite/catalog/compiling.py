"""The op records that one ``torch.compile`` backend does not check, each with the reason.

``OpSpec.backends`` is where a record says why it does not run under a backend. The catalogue's
reasons live here, in one table, because they come from the catalogue-wide runs: the forward
check under inductor (``pytest --backend inductor --dtype float32 -k
"test_forward_matches_reference"``) and the same records under aot_eager, on torch 2.13.0,
2026-12-01, the gradient check under aot_eager (``pytest --backend aot_eager --device cpu
-k test_gradient_matches_reference``), torch 2.13.0, 2026-12-02, and the float64 gradient
check under inductor (``pytest --backend inductor --device cpu --dtype float64 -k
test_gradient_matches_reference``), torch 2.13.0 and 2.15.0, 2026-12-02. Three kinds of
reason:

* torch refuses to trace the op (dynamo's or AOTAutograd's own words): no compiled check can
  run; the reason holds for every backend that traces;
* the record's ``torch_fn`` builds a module per call (the recurrent records): dynamo refuses
  the ``nn.Parameter`` constructor inside a compiled function, which says nothing about the op;
* a torch finding (KNOWN_DIFFERENCES.md, "Compiled ops"): the compile fails, or the compiled
  op is wrong, on some draws; a test id that fails on some draws only cannot be a strict
  xfail, so the record skips that backend with the finding as the reason, on the releases
  measured wrong (``suite.versions``), and a fixed case in tests/test_compiled.py is the
  strict xfail. A ``"<backend> backward"`` key skips only the checks that differentiate,
  where the forward compiles (``suite.compiled.BACKWARD``); the forward check then compiles
  the inference graph, which traces no backward.

A user's record of the same name keeps its own ``backends`` (only the catalogue's records are
given these).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import torch

from suite import versions
from suite.specs import OpSpec

TRACED = ("inductor", "aot_eager")

_VERSION = f"torch {torch.__version__}"
# What dynamo refuses is structural (data-dependent shapes and guards, functions it skips), so
# the refusal is assumed on every release; it was measured on torch 2.13.0.
_MEASURED = "torch 2.13.0 (measured; every release assumed)"

# --- torch refuses to trace ---------------------------------------------------------------------
_CTC = (f"{_MEASURED}: dynamo cannot trace ctc_loss: its output shape depends on the data "
        "(\"Unsupported <- DynamicOutputShapeException: aten._ctc_loss.Tensor\")")
_GAUSSIAN = (f"{_MEASURED}: dynamo cannot trace gaussian_nll_loss with fullgraph=True: its "
             "check that var is non-negative guards on the data (\"GuardOnDataDependentSymNode: "
             "Could not guard on data-dependent expression\")")
_CHUNKED = (f"{_MEASURED}: dynamo cannot trace the chunked linear_cross_entropy (\"Unsupported: "
            "Attempted to call function marked as skipped\")")
_MODULE_PER_CALL = (f"{_MEASURED}: the record builds its torch.nn module on every call, and "
                    "dynamo refuses that inside a compiled function (\"Unsupported: Attempted to "
                    "use `torch.nn.Parameter()` constructor with Dynamo\"); the compiled "
                    "training loops compile modules built outside")

# --- torch findings (KNOWN_DIFFERENCES.md, "Compiled ops") --------------------------------------
_CELU = (f"{_VERSION}: torch.compile(F.celu, backend='inductor', dynamic=True) on an input that "
         "requires grad keeps the alpha of its first call (forward 0.0027 and gradient 0.039 off "
         "at alpha 1.0 after 1.5): a silently wrong result, shown by tests/test_compiled.py::"
         "test_inductor_celu_follows_alpha (KNOWN_DIFFERENCES.md)")
_RELATIONAL = (f"{_VERSION}: inductor (dynamic=True) fails to lower {{}} on some shapes "
               "(\"cannot determine truth value of Relational\"), shown by tests/"
               "test_compiled.py::test_compiles_dynamic_shapes[{{}}] "
               "(KNOWN_DIFFERENCES.md)")
_LP_POOL = (f"{_VERSION}: compiling lp_pool with an integer norm_type under dynamic=True fails "
            "(\"INTERNAL ASSERT FAILED ... NYI SymInt equality\"), shown by tests/"
            "test_compiled.py::test_compiles_dynamic_shapes[lp_pool1d] "
            "(KNOWN_DIFFERENCES.md)")
_BICUBIC_AA = (f"{_VERSION}: compiling bicubic interpolation with antialias under "
               "dynamic=True fails in its backward's meta function (\"isIntList() INTERNAL "
               "ASSERT FAILED ... Expected IntList but got GenericList\"), shown by tests/"
               "test_compiled.py::test_compiles_dynamic_shapes[interpolate_bicubic_antialias] "
               "(KNOWN_DIFFERENCES.md)")
_MULTILABEL = (f"{_VERSION}: compiled multilabel_margin_loss (aot_eager and inductor) ignores "
               "the -1 that ends a target row's classes: target [2, -1, 0] gives 2.513 where "
               "0.42, a silently wrong loss, shown by tests/test_compiled.py::"
               "test_compiled_multilabel_margin_loss_stops_at_minus_one (KNOWN_DIFFERENCES.md)")
_MULTILABEL_ONE_SAMPLE = (
    f"{_VERSION}: compiled multilabel_margin_loss (aot_eager and inductor) with "
    "reduction='none' returns shape (1,) for a 0-d input and target where eager gives (), "
    "shown by tests/test_compiled.py::test_compiled_margin_loss_of_one_sample_is_0_d"
    "[multilabel_margin_loss] (KNOWN_DIFFERENCES.md)")
_MULTI_MARGIN = (f"{_VERSION}: compiled multi_margin_loss (aot_eager and inductor) with "
                 "reduction='none' returns shape (1,) for a 0-d input and target where eager "
                 "gives (), shown by tests/test_compiled.py::"
                 "test_compiled_margin_loss_of_one_sample_is_0_d[multi_margin_loss] "
                 "(KNOWN_DIFFERENCES.md)")
_FRACTIONAL_3D_BACKWARD = (
    f"{_VERSION}: aot_eager cannot compile fractional_max_pool3d's backward (\"Backend compiler "
    "`aot_eager` failed with aten.fractional_max_pool3d_backward.default\"; inductor compiles "
    "it), shown by tests/test_compiled.py::test_aot_eager_compiles_fractional_max_pool3d_backward "
    "(KNOWN_DIFFERENCES.md)")
_AVG_POOL_CEIL = (
    f"{_VERSION}: inductor's avg_pool backward with ceil_mode and count_include_pad divides the "
    "gradient of a last window overhanging the padded input by the whole kernel, where the "
    "forward divides by its part inside (input [0.1, 0.2, 0.64], kernel 2: [0.5, 0.5, 0.5] "
    "where [0.5, 0.5, 1]): a silently wrong gradient, shown by tests/test_compiled.py::"
    "test_inductor_avg_pool_gradient_of_an_overhanging_window (KNOWN_DIFFERENCES.md)")
_FRACTIONAL_3D_SAMPLES = (
    f"{_VERSION}: inductor's fractional_max_pool3d reads _random_samples in another order than "
    "eager (width's windows from depth's sample): a silently wrong forward and gradient (0.1 "
    "off on the fixed case), shown by tests/test_compiled.py::"
    "test_inductor_fractional_max_pool3d_reads_samples_in_depth_height_width_order "
    "(KNOWN_DIFFERENCES.md)")
_BACKWARD_DYNAMIC = (f"{_VERSION}: inductor (dynamic=True) fails to compile {{}}'s backward on "
                     "some shapes ({{}}), shown by tests/test_compiled.py::"
                     "test_compiles_dynamic_shapes[{{}}] (KNOWN_DIFFERENCES.md)")
_CONV_TRANSPOSE3D_BACKWARD = (
    f"{_VERSION}: inductor (dynamic=True) failed to compile conv_transpose3d's backward in the "
    "catalogue's run (\"LoweringException: ValueRangeError: Invalid ranges [0:-1] target: "
    "aten.convolution_backward.default\", conv3d's defect) on a case compiled after three "
    "others, which alone compiles: no fixed case shows it (KNOWN_DIFFERENCES.md)")
_SLOW_UNPOOL3D = (f"{_VERSION}: inductor (dynamic=True) took 16 minutes to compile one "
                  "max_unpool3d training graph with its kernel, stride and padding as SymInts "
                  "(sympy simplifying strides in the C++ codegen's tiling; measured on 2.15.0, "
                  "KNOWN_DIFFERENCES.md): a catalogue run would spend hours on this record")
_SKIPPED_FUNCTION = (f"{_MEASURED}: dynamo cannot trace the transformer stacks' forward "
                     "(\"Unsupported: Attempted to call function marked as skipped\")")

# torch 2.2.2's own words for each record it fails to compile (versions.INDUCTOR_DYNAMIC_TORCH_2_2),
# from the catalogue's inductor run at seed 1503 and the fixed cases of tests/test_compiled.py.
_TORCH_2_2_WORDS = {
    "binary_cross_entropy": "TorchRuntimeError: ... expected int at position 0, but got: SymInt "
                            "(with a weight)",
    "cross_entropy": "TorchRuntimeError: ... Cannot call numel() on tensor with symbolic "
                     "sizes/strides (probabilities as the target, with a weight)",
    "conv1d": "LoweringException: RuntimeError: Overloaded torch operator invoked from Python "
              "failed to many any schema: aten::convolution() Expected a value of type "
              "'List[int]' for argument 'stride' but instead found type 'tuple'",
    "conv_transpose1d": "LoweringException: RuntimeError: Overloaded torch operator invoked "
                        "from Python failed to many any schema: aten::convolution() Expected a "
                        "value of type 'List[int]' for argument 'dilation'",
    "embedding_bag": "Unsupported: Backend compiler failed with a fake tensor exception",
    "group_norm": "TypeError: unsupported operand type(s) for divmod(): 'SymInt' and 'int'",
    "interpolate_bilinear_antialias": "RuntimeError: isIntList() INTERNAL ASSERT FAILED ... "
                                      "Expected IntList but got GenericList",
    "interpolate_linear": "TorchRuntimeError: ... SymIntArrayRef expected to contain only "
                          "concrete integers",
    "interpolate_trilinear": "TorchRuntimeError: ... SymIntArrayRef expected to contain only "
                             "concrete integers",
    "lp_pool1d": "LoweringException: OverflowError: cannot convert float infinity to integer "
                 "(norm_type inf), and RuntimeError: NYI SymFloat equality",
    "lp_pool2d": "RuntimeError: NYI SymFloat equality",
    "pixel_shuffle": "TypeError: Multiple dispatch failed for 'torch.ops.aten.size'; all "
                     "__torch_dispatch__ handlers returned NotImplemented",
    "pixel_unshuffle": "TypeError: Multiple dispatch failed for 'torch.ops.aten.size'",
    "fractional_max_pool2d": "TorchRuntimeError: ... Multiple dispatch failed for "
                             "'torch.ops.aten.size', and int() argument must be ... not "
                             "'SymFloat' (output_ratio)",
    "fractional_max_pool3d": "TorchRuntimeError: ... Multiple dispatch failed for "
                             "'torch.ops.aten.size', and int() argument must be ... not "
                             "'SymFloat' (output_ratio)",
    "channel_shuffle": "Unsupported: unsupported operator: aten.channel_shuffle.default",
    "scaled_dot_product_attention": "Unsupported: torch.* op returned non-Tensor "
                                    "_GeneratorContextManager call_function <function "
                                    "sdp_kernel> (the math-path context the record needs)",
}
_TORCH_2_2 = (f"{_VERSION}: torch.compile (dynamic=True, fullgraph=True) fails on this record "
              "on some or all shapes: \"{}\" (torch 2.2.2; right on 2.13.0 and 2.15.0; "
              "KNOWN_DIFFERENCES.md; a fixed case in tests/test_compiled.py where one was found)")
_INTERPOLATION_2_2 = (
    f"{_VERSION}: inductor (dynamic=True) computes {{}} interpolation wrongly on some shapes "
    "({}), shown by tests/test_compiled.py::"
    "test_inductor_interpolation_matches_eager_in_float64 (KNOWN_DIFFERENCES.md)")
_NEAREST_2_2 = (f"{_VERSION}: inductor (dynamic=True) gave a wrong gradient of {{}} "
                "interpolation on drawn cases (up to 2.0 off; the reference agreeing with finite "
                "differences), not reduced to a fixed case (KNOWN_DIFFERENCES.md)")
NOT_COMPILED: dict[str, dict[str, str]] = {
    "ctc_loss": dict.fromkeys(TRACED, _CTC),
    "gaussian_nll_loss": dict.fromkeys(TRACED, _GAUSSIAN),
    "linear_cross_entropy_chunked": dict.fromkeys(TRACED, _CHUNKED),
    **{name: dict.fromkeys(TRACED, _MODULE_PER_CALL)
       for name in ("gru", "gru_cell", "lstm", "lstm_cell", "rnn_relu", "rnn_relu_cell",
                    "rnn_tanh", "rnn_tanh_cell", "transformer_decoder_layer",
                    "transformer_encoder_layer")},
    **{name: dict.fromkeys(TRACED, _SKIPPED_FUNCTION)
       for name in ("transformer", "transformer_decoder", "transformer_encoder")},
}
if versions.INDUCTOR_CELU_STALE_ALPHA:
    NOT_COMPILED["celu"] = {"inductor": _CELU}
for _name, _wrong in (("adaptive_avg_pool2d", versions.INDUCTOR_ADAPTIVE_POOL_UNBATCHED),
                      ("interpolate_area", versions.INDUCTOR_ADAPTIVE_POOL_UNBATCHED),
                      ("conv2d", versions.INDUCTOR_CONV_DYNAMIC_STRIDE),
                      ("conv_transpose2d", versions.INDUCTOR_CONV_DYNAMIC_STRIDE)):
    if _wrong:
        NOT_COMPILED[_name] = {"inductor": _RELATIONAL.format(_name, _name)}
if versions.COMPILED_MULTILABEL_MARGIN_ZERO_DIM_SHAPE:
    NOT_COMPILED["multilabel_margin_loss"] = dict.fromkeys(TRACED, _MULTILABEL_ONE_SAMPLE)
if versions.COMPILED_MULTILABEL_MARGIN_IGNORES_END:  # the silently wrong loss, named first
    NOT_COMPILED["multilabel_margin_loss"] = dict.fromkeys(TRACED, _MULTILABEL)
if versions.COMPILED_MULTI_MARGIN_ZERO_DIM_SHAPE:
    NOT_COMPILED["multi_margin_loss"] = dict.fromkeys(TRACED, _MULTI_MARGIN)
if versions.AOT_EAGER_FRACTIONAL_MAX_POOL3D_BACKWARD:  # the forward still runs compiled
    NOT_COMPILED["fractional_max_pool3d"] = {"aot_eager backward": _FRACTIONAL_3D_BACKWARD}
if versions.INDUCTOR_FRACTIONAL_MAX_POOL3D_SAMPLE_ORDER:
    NOT_COMPILED.setdefault("fractional_max_pool3d", {})["inductor"] = _FRACTIONAL_3D_SAMPLES
for _dims, _wrong in versions.INDUCTOR_AVG_POOL_CEIL_OVERHANG_GRADIENT.items():
    if _wrong:  # the forward is right: it still runs compiled
        NOT_COMPILED[f"avg_pool{_dims}d"] = {"inductor backward": _AVG_POOL_CEIL}
if versions.INDUCTOR_CONV3D_BACKWARD_DYNAMIC:
    NOT_COMPILED["conv3d"] = {"inductor backward": _BACKWARD_DYNAMIC.format(
        "conv3d", "\"LoweringException: ValueRangeError: Invalid ranges [0:-1]\"", "conv3d")}
    NOT_COMPILED["conv_transpose3d"] = {"inductor backward": _CONV_TRANSPOSE3D_BACKWARD}
if versions.INDUCTOR_MAX_UNPOOL3D_SLOW_COMPILE:
    NOT_COMPILED["max_unpool3d"] = {"inductor": _SLOW_UNPOOL3D}
if versions.INDUCTOR_MAX_UNPOOL_BACKWARD_DYNAMIC:
    for _name in ("max_unpool2d", "max_unpool3d"):
        NOT_COMPILED[_name] = {"inductor backward": _BACKWARD_DYNAMIC.format(
            _name, "\"ValueError: Exponent must be non-negative.\"", "max_unpool2d")}
if versions.AA_BICUBIC_BACKWARD_SYMINT_SIZES:
    NOT_COMPILED["interpolate_bicubic_antialias"] = dict.fromkeys(TRACED, _BICUBIC_AA)
if versions.LP_POOL_SYMINT_NORM:
    for _name in ("lp_pool1d", "lp_pool2d", "lp_pool3d"):
        NOT_COMPILED[_name] = dict.fromkeys(TRACED, _LP_POOL)

if versions.INDUCTOR_DYNAMIC_TORCH_2_2:
    for _name, _words in _TORCH_2_2_WORDS.items():
        # measured under inductor only (some fail in dynamo, so aot_eager would fail too)
        NOT_COMPILED[_name] = {"inductor": _TORCH_2_2.format(_words)}
    NOT_COMPILED["max_pool2d"] = {"inductor backward": _TORCH_2_2.format(  # its forward compiles
        "LoweringException: AssertionError: target: aten.max_pool2d_with_indices_backward.default"
        " (an unbatched input)")}
if versions.INDUCTOR_INTERPOLATION_WRONG_TORCH_2_2:
    NOT_COMPILED["interpolate_bilinear"] = {"inductor": _INTERPOLATION_2_2.format(
        "bilinear", "input (1, 1, 1, 2) to size (2, 1): forward 0.2, gradient 1.0 off")}
    NOT_COMPILED["interpolate_bicubic"] = {"inductor": _INTERPOLATION_2_2.format(
        "bicubic", "float64 only to float32's precision: 2.4e-7 off")}
if versions.INDUCTOR_NEAREST_GRADIENT_TORCH_2_2:
    for _name, _mode in (("interpolate_nearest", "nearest"),
                         ("interpolate_nearest_exact", "nearest-exact")):
        NOT_COMPILED[_name] = {"inductor": _NEAREST_2_2.format(_mode)}


def apply(records: Iterable[OpSpec],
          table: Mapping[str, Mapping[str, str]] = NOT_COMPILED) -> list[OpSpec]:
    """The records, each with the table's reasons added to its own ``backends``."""
    return [dataclasses.replace(spec, backends={**table[spec.name], **spec.backends})
            if spec.name in table else spec for spec in records]
