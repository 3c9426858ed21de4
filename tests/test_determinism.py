"""The same call twice gives the same bits, and memory a kernel never writes is caught by
design (``suite.nondeterminism.check_repeatable``, ``suite.poison``): every op record, in
float64 and float32 and, on the precision ladder, float16 and bfloat16. Ids name the record
(``pytest -k "same_bits and conv1d"``)."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

import gradsuite as gs
from suite import catalog, gradcheck, nondeterminism, poison

TestRepeat = gs.battery(*catalog.OPS, only=(
    "test_repeated_call_gives_the_same_bits",
    "test_repeated_call_gives_the_same_bits_in_low_precision"))

needs_poison = pytest.mark.skipif(poison.missing() is not None,
                                  reason=str(poison.missing()))  # torch < 2.1


def _record(name: str) -> gs.OpSpec:
    return next(s for s in catalog.OPS if s.name == name)


def _tanh_leaving_the_last_element_unwritten(input: torch.Tensor) -> torch.Tensor:
    """tanh into a new tensor whose last element is never written: right wherever the memory
    it gets happens to hold the right value (as freed memory of the same computation does)."""
    result = torch.tanh(input.detach()).reshape(-1)
    del result
    out = torch.empty(input.numel(), dtype=input.dtype, device=input.device)
    out[:-1] = torch.tanh(input.detach()).reshape(-1)[:-1]
    return out.reshape(input.shape)


@needs_poison
def test_an_unwritten_output_element_fails_the_repeat_check() -> None:
    spec = dataclasses.replace(_record("tanh"), name="leaky_tanh",
                               torch_fn=_tanh_leaving_the_last_element_unwritten)
    case = spec.inputs.sized(16)
    case = dataclasses.replace(case, differentiable=())
    nondeterminism.check_repeatable(_record("tanh"), case, torch.float32, "cpu")
    with pytest.raises(AssertionError, match="NaN in the poisoned call only: elements the "
                                             "kernel never wrote"):
        nondeterminism.check_repeatable(spec, case, torch.float32, "cpu")


_KEPT: list[torch.Tensor] = []


def _tanh_into_its_last_output(input: torch.Tensor) -> torch.Tensor:
    """tanh into the tensor it returned last time (an allocator handing a freed output back,
    which glibc does), its last element never written."""
    if not _KEPT or _KEPT[0].shape != input.shape or _KEPT[0].dtype != input.dtype:
        _KEPT[:] = [torch.empty_like(input.detach())]
    out = _KEPT[0]
    out.reshape(-1)[:-1] = torch.tanh(input.detach()).reshape(-1)[:-1]
    return out


@needs_poison
def test_the_repeat_check_fails_when_the_second_call_gets_the_first_calls_memory() -> None:
    """Where call 2 is handed the memory call 1 returned, an element neither writes would be
    NaN in both (call 1's poison) and compare as the same: the check zeroes what a call
    returned before it lets it go, so call 2 reads 0 there."""
    spec = dataclasses.replace(_record("tanh"), name="reusing_tanh",
                               torch_fn=_tanh_into_its_last_output)
    case = dataclasses.replace(spec.inputs.sized(16), differentiable=())
    _KEPT.clear()
    with pytest.raises(AssertionError, match="NaN in the poisoned call only: elements the "
                                             "kernel never wrote"):
        nondeterminism.check_repeatable(spec, case, torch.float32, "cpu")


@needs_poison
def test_poisoned_memory_fails_the_forward_check_wherever_the_allocator_was_kind() -> None:
    spec = dataclasses.replace(_record("tanh"), name="leaky_tanh",
                               torch_fn=_tanh_leaving_the_last_element_unwritten)
    case = dataclasses.replace(spec.inputs.sized(16), differentiable=())
    with poison.poisoned(True), pytest.raises(AssertionError, match="never wrote"):
        gradcheck.check_forward(spec, case, torch.float32, "cpu")


_CALLS = [0]


def _racy_relu(input: torch.Tensor) -> torch.Tensor:
    """relu whose every other call is off by one ulp somewhere (a reduction order that
    changes between calls)."""
    _CALLS[0] += 1
    out = torch.relu(input)
    if _CALLS[0] % 2 == 0:
        out = out + out.abs().max() * torch.finfo(input.dtype).eps * (out == out.max())
    return out


def test_a_kernel_that_changes_between_calls_fails_the_repeat_check() -> None:
    spec = dataclasses.replace(_record("relu"), name="racy_relu", torch_fn=_racy_relu)
    case = spec.inputs.sized(16)
    with pytest.raises(AssertionError, match="not deterministic"):
        nondeterminism.check_repeatable(spec, case, torch.float64, "cpu")


def _warns_no_determinism(input: torch.Tensor) -> torch.Tensor:
    # torch's own alert under warn_only (c10's alertNotDeterministic), as a CUDA scatter-add
    # or index_add kernel raises it; the CPU kernels of the catalogue raise none
    warnings.warn("planted_op does not have a deterministic implementation, but you set "
                  "'torch.use_deterministic_algorithms(True, warn_only=True)'. You can file "
                  "an issue at https://github.com/pytorch/pytorch/issues to help us prioritize "
                  "adding deterministic support for this operation.", UserWarning,
                  stacklevel=2)
    return torch.relu(input)


@needs_poison
def test_an_op_torch_calls_nondeterministic_is_skipped_in_torchs_words() -> None:
    spec = dataclasses.replace(_record("relu"), name="planted", torch_fn=_warns_no_determinism)
    with warnings.catch_warnings(), pytest.raises(pytest.skip.Exception,
                                                  match="does not have a deterministic"):
        nondeterminism.check_repeatable(spec, spec.inputs.sized(16), torch.float64, "cpu")
