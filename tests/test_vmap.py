"""Batching rules: torch.func.vmap of every op record against torch's per-example loop and the
reference (the battery's ``test_vmap_matches_loop_and_reference``; suite/vmapcheck.py); the
check shown failing on ops whose batching rule is planted wrong; and the torch defects it
found, each kept as a strict expected failure (KNOWN_DIFFERENCES.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import hypothesis
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gradsuite as gs
from references import losses_ctc, norms
from suite import catalog, checks, versions, vmapcheck
from suite.specs import Case, OpSpec

_CELL_BUG = ("torch 2.13.0 bug (KNOWN_DIFFERENCES.md): torch.func.vmap of the VJP of "
             "nn.RNNCell and nn.GRUCell with a batched input raises \"output with shape [1, H] "
             "doesn't match the broadcast shape [B, 1, H]\"")
KNOWN_FAILURES = {
    f"test_vmap_matches_loop_and_reference[*-{name}]": _CELL_BUG
    for name in ("gru_cell", "rnn_relu_cell", "rnn_tanh_cell")
} if versions.RNN_CELL_VMAP_VJP_RAISES else {}

TestVmap = gs.battery(*catalog.OPS, only=("test_vmap_matches_loop_and_reference",),
                      known_failures=KNOWN_FAILURES)


def test_every_record_is_vmapped_or_says_why() -> None:
    """A record off the vmap check (or with arrays left unbatched) carries a written reason."""
    for spec in catalog.OPS:
        if spec.vmap is True:
            continue
        reasons = [spec.vmap] if isinstance(spec.vmap, str) else list(spec.vmap.values())
        assert reasons and all(isinstance(r, str) and len(r) > 30 for r in reasons), spec.name
        if not isinstance(spec.vmap, str):
            # Each array left out is one the record's input maker draws (a mask may be absent
            # from a given case: Hypothesis looks for a case that has it).
            for name in set(spec.vmap) - set(spec.inputs.sized(4, seed=0).arrays):
                hypothesis.find(spec.cases(), lambda case, name=name: name in case.arrays,
                                settings=hypothesis.settings(max_examples=500, database=None))


# --- planted batching rules ---------------------------------------------------------------------

_LIB = "gradsuite_vmap_test"


# torch.library.custom_op and register_vmap are new in torch 2.4 (the version matrix reaches
# back to 2.0): the planted custom op exists where torch can make one.
HAS_CUSTOM_OP = hasattr(torch.library, "custom_op")
needs_custom_op = pytest.mark.skipif(not HAS_CUSTOM_OP, reason=f"torch {torch.__version__} has "
                                     f"no torch.library.custom_op (new in torch 2.4)")


def _reversed_rule(info, in_dims, x):  # type: ignore[no-untyped-def]
    dim = in_dims[0]
    return torch.tanh(x).flip(dim), dim


if HAS_CUSTOM_OP:
    @torch.library.custom_op(f"{_LIB}::tanh_bad_rule", mutates_args=())
    def tanh_bad_rule(x: torch.Tensor) -> torch.Tensor:
        """tanh whose vmap rule hands the examples back in reverse order (a planted bug)."""
        return torch.tanh(x)

    @tanh_bad_rule.register_fake
    def _(x: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(x)

    tanh_bad_rule.register_vmap(_reversed_rule)


class TanhGradBadRule(torch.autograd.Function):
    """tanh's backward g (1 - y^2), whose vmap rule drops the square (a planted bug)."""

    generate_vmap_rule = False

    @staticmethod
    def forward(g, y):  # type: ignore[override]
        return g * (1 - y * y)

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[override]
        pass

    @staticmethod
    def vmap(info, in_dims, g, y):  # type: ignore[override]
        g = g.movedim(in_dims[0], 0) if in_dims[0] is not None \
            else g.expand(info.batch_size, *g.shape)
        y = y.movedim(in_dims[1], 0) if in_dims[1] is not None \
            else y.expand(info.batch_size, *y.shape)
        return g * (1 - y), 0


class TanhWithBadBackwardRule(torch.autograd.Function):
    """tanh whose forward batches right (torch generates its rule) and whose backward is
    ``TanhGradBadRule``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):  # type: ignore[override]
        return torch.tanh(x)

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[override]
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return TanhGradBadRule.apply(g, y)


TANH = catalog.by_name("tanh")
assert isinstance(TANH, OpSpec)
CASE = Case({"input": np.random.default_rng(5).standard_normal((4, 3))}, ("input",), {}, 5)


def _fails(spec: OpSpec) -> str:
    with pytest.raises(AssertionError) as info:
        checks.run("vmap", spec, CASE, device="cpu")
    return str(info.value)


def test_vmap_check_passes_on_tanh() -> None:
    checks.run("vmap", TANH, CASE, device="cpu")  # the control for the planted rules below


@needs_custom_op
def test_a_batching_rule_that_mixes_up_examples_is_caught() -> None:
    bad = dataclasses.replace(TANH, name="tanh_bad_rule",
                              torch_fn=lambda input: tanh_bad_rule(input))
    message = _fails(bad)
    assert message.startswith("tanh_bad_rule: forward under vmap batching input")
    assert "(the reference here: torch's per-example loop, eager, one example at a time)" \
        in message
    assert "Mismatched elements:" in message and "Reproduce:" in message


def test_a_backward_batching_rule_that_is_wrong_is_caught() -> None:
    """The forward's rule is right; the backward op's rule is not: only the VJP under vmap
    (per-example gradients) shows it."""
    bad = dataclasses.replace(TANH, name="tanh_bad_backward_rule",
                              torch_fn=lambda input: TanhWithBadBackwardRule.apply(input))
    checks.run("forward", bad, CASE, dtype=torch.float64, device="cpu")  # eager is right
    checks.run("gradient", bad, CASE, dtype=torch.float64, device="cpu")
    message = _fails(bad)
    assert message.startswith("tanh_bad_backward_rule: VJP w.r.t. input under vmap")


def test_configurations_cover_each_argument_several_and_nested() -> None:
    case = catalog.by_name("linear").inputs.sized(4, seed=0)  # type: ignore[union-attr]
    names = list(case.arrays)
    configs = vmapcheck.configurations(case, names, [], 2)
    labels = [c.label for c in configs]
    assert labels[:len(names)] == [f"batching {n}" for n in names]
    assert [c for c in configs if not c.nested and set(c.in_dims) == set(names)]
    assert [c for c in configs if c.nested and set(c.in_dims) == set(names)]


# --- torch defects the vmap check found (torch 2.13.0) -----------------------------------------


@pytest.mark.xfail(versions.CTC_1D_TARGETS_IGNORE_STRIDES, strict=True,
                   reason="torch 2.13.0 bug (KNOWN_DIFFERENCES.md): the CPU ctc_loss reads 1-D "
                          "targets as contiguous, ignoring a view's stride")
def test_ctc_loss_reads_a_strided_1d_targets_view() -> None:
    rng = np.random.default_rng(0)
    log_probs = np.log(rng.dirichlet(np.ones(3), size=(1, 3)))  # T=1, N=3, C=3
    rows = np.array([[1, 2, 2], [2, 1, 2], [2, 2, 1]])
    lengths = np.ones(3, dtype=np.int64)
    view = torch.tensor(rows)[:, 1]  # [2, 1, 2], stride 3
    got = F.ctc_loss(torch.tensor(log_probs), view, torch.tensor(lengths), torch.tensor(lengths),
                     reduction="none")
    expected = losses_ctc.ctc_loss(log_probs, rows[:, 1], lengths, lengths, reduction="none")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.xfail(versions.VMAP_INPLACE_UPDATE_NEEDS_DIM_0, strict=True,
                   reason="torch 2.13.0 bug (KNOWN_DIFFERENCES.md): batch_norm under vmap "
                          "leaves running statistics batched at dimension 1 un-updated")
def test_batch_norm_under_vmap_updates_running_stats_batched_at_dimension_1() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 2))  # 3 examples of (N=4, C=2)
    mean, var = np.zeros((2, 3)), np.ones((2, 3))  # (C, examples): batch dimension 1
    running_mean, running_var = torch.tensor(mean), torch.tensor(var)
    torch.func.vmap(lambda a, m, v: F.batch_norm(a, m, v, training=True, momentum=0.5),
                    in_dims=(0, 1, 1))(torch.tensor(x), running_mean, running_var)
    for k in range(3):
        m, v = norms.batch_norm_running_stats(x[k], mean[:, k], var[:, k], momentum=0.5)
        np.testing.assert_allclose(running_mean[:, k].numpy(), m, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(running_var[:, k].numpy(), v, rtol=1e-12, atol=1e-12)


@pytest.mark.xfail(versions.CROSS_ENTROPY_VMAP_SMOOTHING_RAISES, strict=True,
                   raises=RuntimeError,
                   reason="torch 2.13.0 bug (KNOWN_DIFFERENCES.md): cross_entropy with "
                          "label_smoothing, a batched target and an unbatched input raises")
def test_cross_entropy_with_label_smoothing_batches_the_target_alone() -> None:
    x = torch.randn(4, dtype=torch.float64)
    targets = torch.tensor([1, 2, 3])
    out = torch.func.vmap(lambda t: F.cross_entropy(x, t, label_smoothing=0.5))(targets)
    loop = torch.stack([F.cross_entropy(x, t, label_smoothing=0.5) for t in targets])
    torch.testing.assert_close(out, loop)


@pytest.mark.xfail(versions.VMAP_CONV_ONE_TUPLE_STRIDE_WRONG, strict=True,
                   reason="torch 2.13.0 bug (KNOWN_DIFFERENCES.md): conv2d under vmap with a "
                          "bias, a batched weight and stride=(1,) gives an output of the wrong "
                          "shape (or raises)")
@pytest.mark.parametrize("spatial", [(1, 1), (3, 4)], ids=["sides-1", "sides-3x4"])
def test_conv2d_under_vmap_with_a_one_element_stride_tuple(spatial: tuple[int, int]) -> None:
    """Eager conv2d reads stride=(1,) as 1 in both dimensions; so must its batching rule."""
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((1, *spatial)))  # unbatched (C, H, W)
    weights = torch.tensor(rng.standard_normal((3, 2, 1, 1, 1)))  # 3 examples of (2, 1, 1, 1)
    bias = torch.tensor(rng.standard_normal(2))
    out = torch.func.vmap(lambda w: F.conv2d(x, w, bias, stride=(1,)))(weights)
    loop = torch.stack([F.conv2d(x, w, bias, stride=(1,)) for w in weights])
    torch.testing.assert_close(out, loop, rtol=0, atol=0)


def test_a_one_element_stride_is_spelled_out_for_the_vmap_check_only_while_torch_needs_it(
) -> None:
    """The vmap check's workaround changes nothing but the spelling, and only of a stride."""
    conv2d = catalog.by_name("conv2d")
    assert isinstance(conv2d, OpSpec)
    case = Case({"input": np.zeros((1, 3, 3)), "weight": np.zeros((2, 1, 1, 1))},
                ("input", "weight"), {"stride": (2,), "padding": (1,)}, 0)
    spelled = vmapcheck.spelled_out(conv2d, case)
    expected = (2, 2) if versions.VMAP_CONV_ONE_TUPLE_STRIDE_WRONG else (2,)
    assert spelled.options == {"stride": expected, "padding": (1,)}
    assert vmapcheck.spelled_out(TANH, CASE) is CASE


@pytest.mark.xfail(versions.MAX_UNPOOL_BACKWARD_NEEDS_CONTIGUOUS_INDICES, strict=True,
                   raises=RuntimeError,
                   reason="torch 2.13.0 bug (KNOWN_DIFFERENCES.md): max_unpool3d's backward "
                          "raises 'view size is not compatible' for indices batched at a "
                          "dimension other than 0 under vmap")
def test_max_unpool3d_vjp_under_vmap_with_indices_batched_at_dimension_3() -> None:
    x = torch.randn(2, 3, 4, 4, 4, dtype=torch.float64)  # (N, C, D, H, W)
    pooled, indices = F.max_pool3d(x, 2, return_indices=True)  # (2, 3, 2, 2, 2)
    values = torch.stack([pooled, 2 * pooled, 3 * pooled])
    idx = torch.stack([indices] * 3, dim=3).contiguous()  # batch dimension 3: strided slices
    g = torch.randn(3, *x.shape, dtype=torch.float64)

    def vjp(v: torch.Tensor, i: torch.Tensor, gk: torch.Tensor) -> torch.Tensor:
        _, pull = torch.func.vjp(lambda a: F.max_unpool3d(a, i, 2, output_size=x.shape[2:]), v)
        return pull(gk)[0]

    got = torch.func.vmap(vjp, in_dims=(0, 3, 0))(values, idx, g)
    loop = torch.stack([vjp(values[k], indices, g[k]) for k in range(3)])
    torch.testing.assert_close(got, loop, rtol=0, atol=0)


@pytest.mark.xfail(strict=True, raises=RuntimeError,
                   reason="torch 2.13.0 and 2.14.1 bug (KNOWN_DIFFERENCES.md): "
                          "local_response_norm of a 5-d input calls .view, which raises 'view "
                          "size is not compatible' for a batch dimension inside its last two")
def test_local_response_norm_of_a_5d_input_under_vmap_batched_at_dimension_4() -> None:
    """Found by seed 6106 under torch 2.14.1 (input (1, 1, 1, 2, 2), batched at dimension 4);
    the vmap check batches such an input at dimension 0 only (``DIM_0_ONLY_AT_RANK``)."""
    x = torch.randn(3, 1, 1, 1, 2, 2, dtype=torch.float64)
    batched = x.movedim(0, 4).contiguous()  # the same examples, batch dimension 4
    got = torch.func.vmap(lambda t: F.local_response_norm(t, 1), in_dims=4)(batched)
    loop = torch.stack([F.local_response_norm(x[k], 1) for k in range(3)])
    torch.testing.assert_close(got, loop, rtol=0, atol=0)


def test_a_5d_local_response_norm_input_is_batched_at_dimension_0_only() -> None:
    """The pin applies to a 5-d input only: a 4-d one is batched everywhere."""
    spec = catalog.by_name("local_response_norm")
    five = Case({"input": np.ones((1, 1, 1, 2, 2))}, ("input",), {"size": 1})
    four = Case({"input": np.ones((1, 1, 2, 2))}, ("input",), {"size": 1})
    assert list(vmapcheck.dim_0_only(spec, five)) == ["input"]
    assert vmapcheck.dim_0_only(spec, four) == {}


@pytest.mark.xfail(versions.VMAP_MHA_CROSS_BIAS_VIEW_RAISES, strict=True, raises=RuntimeError,
                   reason="torch 2.13.0 bug (KNOWN_DIFFERENCES.md): multi_head_attention_forward "
                          "with a separate key and in_proj_bias batched at dimension 1 raises "
                          "'view size is not compatible' under vmap")
def test_cross_attention_under_vmap_with_in_proj_bias_batched_at_dimension_1() -> None:
    rng = np.random.default_rng(0)
    e, heads = 4, 2
    query, key = (torch.tensor(rng.standard_normal((1, 2, e))) for _ in range(2))  # (L, N, E)
    weight, out_weight = torch.tensor(rng.standard_normal((3 * e, e))), torch.eye(e).double()
    biases = torch.tensor(rng.standard_normal((3 * e, 3)))  # 3 examples at dimension 1

    def attention(bias: torch.Tensor) -> torch.Tensor:
        return F.multi_head_attention_forward(
            query, key, key, e, heads, weight, bias, None, None, False, 0.0, out_weight, None,
            training=False, need_weights=False)[0]

    got = torch.func.vmap(attention, in_dims=1)(biases)
    loop = torch.stack([attention(biases[:, k]) for k in range(3)])
    torch.testing.assert_close(got, loop, rtol=1e-12, atol=1e-12)


def test_arrays_torch_needs_at_dimension_0_are_batched_there_and_only_they() -> None:
    case = catalog.by_name("linear").inputs.sized(4, seed=0)  # type: ignore[union-attr]
    names = list(case.arrays)
    pinned = vmapcheck.configurations(case, names, [], 2, dim_0_only=["weight"])
    assert all(c.in_dims["weight"] == 0 for c in pinned if "weight" in c.in_dims)
    free = vmapcheck.configurations(case, names, [], 2)
    # unpinned, this seed puts weight's batch dimension at 2 somewhere: the pin is not vacuous
    assert any(c.in_dims.get("weight") for c in free)


@pytest.mark.xfail(versions.VMAP_UNBATCHED_OUTPUT_MISPLACED, strict=True,
                   reason="torch 2.13.0 and 2.2.2 bug (KNOWN_DIFFERENCES.md): vmap places an "
                          "output that depends on no mapped input wrongly at out_dims other "
                          "than 0 (expanded without inserting the batch dimension there)")
@pytest.mark.parametrize("examples", [3, 4], ids=["sizes-broadcast", "sizes-differ"])
def test_an_output_that_depends_on_no_mapped_input_lands_at_out_dims(examples: int) -> None:
    """vmap's documented contract: an output the mapped inputs do not reach is the same for
    every example, its batch dimension at ``out_dims``. With 3 examples the wrong expansion
    broadcasts (a transpose of the right answer, silently); with 4 it raises."""
    x = torch.tensor(np.random.default_rng(0).standard_normal((3, 2)))
    mapped = torch.zeros(examples, 5, dtype=torch.float64)
    out = torch.func.vmap(lambda v: torch.softmax(x, -1), out_dims=1)(mapped)
    loop = torch.stack([torch.softmax(x, -1) for _ in range(examples)], dim=1)
    torch.testing.assert_close(out, loop, rtol=0, atol=0)


def _attention_weights_case() -> Case:
    """The random-seed draw that found the defect (seed 1403 of the vmap tier): cross-attention
    returning its weights, which the value does not reach."""
    rng = np.random.default_rng(1)
    shapes = {"query": (1, 3, 1), "key": (2, 3, 1), "value": (2, 3, 1),
              "in_proj_weight": (3, 1), "out_proj_weight": (1, 1)}
    return Case({k: rng.standard_normal(s) for k, s in shapes.items()},
                ("query", "key", "in_proj_weight"),
                {"num_heads": 1, "add_zero_attn": False, "batch_first": False,
                 "need_weights": True, "average_attn_weights": False, "is_causal": False,
                 "output": "attn_output_weights"}, 0)


@pytest.mark.parametrize("out_dim", [0, 1, 2])
def test_the_vmap_check_batches_attention_weights_over_the_value_alone(out_dim: int) -> None:
    """The configuration the seed drew, at every out_dims: the check passes, running an output
    that is not batched at out_dims 0 while torch misplaces it elsewhere, and comparing it with
    the loop and the reference either way."""
    spec = catalog.by_name("multi_head_attention")
    assert isinstance(spec, OpSpec)
    case = _attention_weights_case()
    config = vmapcheck.Config("batching value", {"value": 1}, out_dim)
    out_shape = np.shape(spec.reference(case))
    vmapcheck._check_config(spec, case, config, [], out_shape, "cpu", "forward")


def test_an_output_the_mapped_inputs_reach_stays_at_out_dims() -> None:
    """The step-around touches only outputs that are not batched: tanh's output, batched, is
    asked for at out_dims 1 and read back from there."""
    calls: list[int] = []
    real = vmapcheck._vmapped

    def recording(fn, config, in_dims, out_dims):  # type: ignore[no-untyped-def]
        calls.append(out_dims)
        return real(fn, config, in_dims, out_dims)

    config = vmapcheck.Config("batching input", {"input": 0}, 1)
    case = Case({"input": np.random.default_rng(0).standard_normal((2, 3))}, ("input",), {}, 0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vmapcheck, "_vmapped", recording)
        vmapcheck._check_config(TANH, case, config, [], (2, 3), "cpu", "forward")
    assert calls == [1]


class _TanhWithoutBatchingRule(torch.autograd.Function):
    """Your own op as many are written: forward, setup_context, backward; no vmap rule."""

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.tanh(x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[override]
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)


def test_an_op_without_a_batching_rule_skips_in_torchs_words() -> None:
    """vmap cannot batch an autograd.Function that declares no rule: the check skips, quoting
    torch, rather than failing a user's op for a transform it never claimed."""
    spec = dataclasses.replace(TANH, name="my_tanh",
                               torch_fn=lambda input: _TanhWithoutBatchingRule.apply(input))
    with pytest.raises(pytest.skip.Exception, match="does not have vmap support"):
        vmapcheck.check_vmap(spec, CASE)


def _tanh_failing_under_vmap(message: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """tanh, raising ``message`` when vmap hands it a batched tensor (as torch 2.2.2's
    multi-head attention did, from inside scaled_dot_product_attention)."""
    def fn(input: torch.Tensor) -> torch.Tensor:
        if torch._C._functorch.is_batchedtensor(input):
            raise RuntimeError(message)
        return torch.tanh(input)
    return fn


@pytest.mark.parametrize(("message", "skips"), [
    ("Batching rule not implemented for aten::_scaled_dot_product_flash_attention. We could not "
     "generate a fallback.", True),
    ("Batching rule not implemented for aten::tanh; the output is wrong", False),
], ids=["no-fallback", "other-error"])
def test_an_aten_op_without_a_fallback_skips_and_other_errors_fail(message: str,
                                                                   skips: bool) -> None:
    """torch's own words for an aten op with neither a batching rule nor a fallback skip the
    check, quoting them; any other error under vmap is a failure."""
    spec = dataclasses.replace(TANH, name="my_tanh", torch_fn=_tanh_failing_under_vmap(message))
    expected = pytest.skip.Exception if skips else RuntimeError
    with pytest.raises(expected, match="Batching rule not implemented"):
        vmapcheck.check_vmap(spec, CASE)
