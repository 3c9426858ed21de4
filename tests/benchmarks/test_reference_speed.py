"""The NumPy references' speed against torch's CPU kernels, per op record (``refspeed``).

Not part of the default run::

    pytest -m bench -k refspeed                      # the table is printed at the end
    GRADSUITE_REFSPEED_MD=refspeed.md pytest -m bench -k refspeed   # and written there
    GRADSUITE_REFSPEED_REPEATS=2 pytest -m bench -k refspeed        # a shorter run

For every op record, one case of about ``ELEMENTS`` elements (``spec.inputs.sized(n)`` with
the largest ``n`` whose biggest array holds at most ``ELEMENTS``; ``SUPERLINEAR`` names the
records whose cost grows faster than their arrays, and the size they are timed at instead):
the reference forward and VJP (``spec.reference`` + ``spec.reference_vjp``) against torch's
forward and backward (``torch.autograd.grad``), both float64 on the CPU, torch on one thread
(``--torch-threads``, default 1) and NumPy's BLAS on one thread (the plugin). Each round calls
the reference and then torch, on ``suite.bench.timer``'s clock (the calling thread's CPU time
when everything runs on one thread: other processes on a shared machine then disturb it less);
after one warm-up round, ``REPEATS`` rounds (5, or $GRADSUITE_REFSPEED_REPEATS) give each
side's median. pytest-benchmark times the
pair (so ``--benchmark-json`` keeps the run); ``extra_info`` carries both medians and
``ratio`` = reference / torch. The goal (issue 15): every ratio <= 3, the median <= 2.
"""

from __future__ import annotations

import os
import statistics
from typing import Any

import numpy as np
import pytest
import torch

from suite import bench, catalog
from suite.specs import Case, OpSpec

pytestmark = pytest.mark.bench

ELEMENTS = 10**6
REPEATS = int(os.environ.get("GRADSUITE_REFSPEED_REPEATS", "5"))
GOAL_EACH, GOAL_MEDIAN = 3.0, 2.0

# Records whose cost grows faster than their largest array: timed at an explicit n, with why.
SUPERLINEAR: dict[str, tuple[int, str]] = {
    "bilinear": (
        1024, "weight (w, w, w), w = n/16 = 64, 2.6e5 elements; the cost n w^3 grows as n^4 "
              "(at 10^6 weight elements, n = 1615, one call takes 8-25 s on either side)"),
    "multilabel_margin_loss": (
        500, "input (n, n), 2.5e5 elements; the hinge pairs (N, C, C), 1.25e8 at n = 500, "
             "grow as n^3 (at n = 1000 one NumPy call takes 5-12 s)"),
    "ctc_loss": (
        707, "T = n = 707 frames, 4 sequences of ~n/4 labels: the alpha and beta tables "
             "(T, N, 2 S + 1) hold 1.0e6 elements (log_probs (T, N, 8) only 2.3e4)"),
    "scaled_dot_product_attention": (
        2832, "L = n/8 = 354: the attention weights (2, 4, L, L) hold 1.0e6 elements "
              "(the inputs (2, 4, L, 16) only 4.5e4; 10^6-element inputs would need 4e8 "
              "weights)"),
    # The attention layers: batch 2, 4 heads, L = n/8, so each attention's weights (2, 4, L, L)
    # hold 1.0e6 elements at n = 2832; at the 10^6-element inputs (2, 31250, 16), L = 31250,
    # 7.8e9 weights (62 GB in float64) per attention on either side.
    **{name: (2832, f"L = n/8 = 354: each attention's weights (2, 4, L, L) hold 1.0e6 "
                    f"elements ({why}); 10^6-element inputs (2, 31250, 16) would need 7.8e9")
       for name, why in [
           ("multi_head_attention", "one attention"),
           ("transformer_encoder_layer", "one self-attention"),
           ("transformer_encoder", "one self-attention in each of 2 layers"),
           ("transformer_decoder_layer", "a self- and a cross-attention"),
           ("transformer_decoder", "a self- and a cross-attention in each of 2 layers"),
           ("transformer", "the encoder's and the decoder's, 6 in all")]},
}

RESULTS: dict[str, dict[str, Any]] = {}


def largest_array(case: Case) -> int:
    return max(a.size for a in case.arrays.values())


def refspeed_n(spec: OpSpec, elements: int = ELEMENTS) -> int:
    """The largest n whose ``sized(n)`` case has at most ``elements`` in its biggest array."""
    lo, hi = 2, 4
    while largest_array(spec.inputs.sized(hi)) <= elements:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # largest_array(sized(lo)) <= elements < largest_array(sized(hi))
        mid = (lo + hi) // 2
        if largest_array(spec.inputs.sized(mid)) <= elements:
            lo = mid
        else:
            hi = mid
    return lo


def table(results: dict[str, dict[str, Any]]) -> str:
    """The markdown table of ``results``, one row per record, and a summary line."""
    lines = ["| record | n | largest array | NumPy (ms) | torch (ms) | ratio |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in sorted(results):
        r = results[name]
        note = " *" if name in SUPERLINEAR else ""
        lines.append(f"| {name}{note} | {r['n']} | {r['elements']:.2g} | "
                     f"{1e3 * r['numpy_s']:.3g} | {1e3 * r['torch_s']:.3g} | "
                     f"{r['ratio']:.2f} |")
    ratios = [r["ratio"] for r in results.values()]
    over = sorted((n for n, r in results.items() if r["ratio"] > GOAL_EACH),
                  key=lambda n: -results[n]["ratio"])
    lines += ["", f"{len(ratios)} records, median ratio {statistics.median(ratios):.2f} "
              f"(goal <= {GOAL_MEDIAN:g}); above {GOAL_EACH:g}x: "
              + (", ".join(f"{n} {results[n]['ratio']:.1f}x" for n in over) or "none")]
    lines += [f"* {name}: {why}" for name, (_, why) in SUPERLINEAR.items() if name in results]
    return "\n".join(lines)


def summary() -> str | None:
    """The table of this run's records (None when none ran); tests/benchmarks/conftest.py
    prints it at the end of the run and writes it to $GRADSUITE_REFSPEED_MD if set."""
    return table(RESULTS) if RESULTS else None


@pytest.mark.parametrize("spec", catalog.OPS, ids=catalog.spec_id)
def test_refspeed(benchmark: Any, spec: OpSpec) -> None:
    if spec.ref is None:
        pytest.skip(f"{spec.name} has no NumPy reference (a reference-free record)")
    n = SUPERLINEAR[spec.name][0] if spec.name in SUPERLINEAR else refspeed_n(spec)
    case = spec.inputs.sized(n)
    reference = bench.op_target(spec, case, "numpy", "forward+backward", torch.float64, "cpu")
    torch_call = bench.op_target(spec, case, "torch", "forward+backward", torch.float64, "cpu")
    # Not a timing: the reference's VJP must give every differentiable argument its shape.
    g = np.zeros(np.shape(spec.reference(case)))
    grads = spec.reference_vjp(g, case)
    for name in case.differentiable:
        assert np.shape(grads[name]) == case.arrays[name].shape, (
            f"{spec.name}: the reference VJP w.r.t. {name} has shape "
            f"{np.shape(grads[name])}, its argument {case.arrays[name].shape}")

    # Each round calls the reference, then torch: both sides see the same machine state, which
    # on a shared machine drifts between rounds. pytest-benchmark times the pair; each side's
    # own time is kept for the ratio.
    clock = bench.timer("cpu")
    times: dict[str, list[float]] = {"numpy": [], "torch": []}

    def pair() -> None:
        t0 = clock()
        reference()
        t1 = clock()
        torch_call()
        times["numpy"].append(t1 - t0)
        times["torch"].append(clock() - t1)

    benchmark.group = f"refspeed {spec.name}"
    benchmark._timer = clock  # as suite.bench.run: pytest-benchmark's per-fixture clock
    benchmark.pedantic(pair, rounds=REPEATS, iterations=1, warmup_rounds=1)
    while len(times["numpy"]) < REPEATS + 1:  # --benchmark-disable calls the target once
        pair()
    numpy_s = statistics.median(times["numpy"][-REPEATS:])  # the first pair is the warm-up
    torch_s = statistics.median(times["torch"][-REPEATS:])
    shape = ", ".join(f"{k}{tuple(a.shape)}" for k, a in case.arrays.items())
    result = {"n": n, "elements": largest_array(case), "numpy_s": numpy_s, "torch_s": torch_s,
              "ratio": numpy_s / torch_s}
    RESULTS[spec.name] = result
    benchmark.extra_info.update(bench.extra_info(
        op=spec.name, pass_="forward+backward", impl="numpy and torch", device="cpu",
        dtype=torch.float64, shape=shape, n=n))
    benchmark.extra_info.update({**result, "timer": clock.__name__})
