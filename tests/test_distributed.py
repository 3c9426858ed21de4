"""Data-parallel identities over gloo on the CPU, with 2 and 3 processes started by the test.

DistributedDataParallel (plain, small buckets, static_graph, find_unused_parameters, join with
uneven inputs, no_sync accumulation) and ZeroRedundancyOptimizer: every rank's averaged
gradients and parameters after each step against one process on the concatenated batch and
against ``references.training``; and the harness itself: a planted all-reduce that sums instead
of averaging is caught, a hung or crashed peer fails the test within its timeout and leaves no
process behind.

One process group per world size serves every test of this module (``group``, module-scoped),
and Hypothesis draws plans in the parent: an example costs one round trip (milliseconds), not
a start of W processes (seconds). ``pytest -m distributed`` selects this module, ``-k 2proc`` its
2-process half, ``-k ddp`` / ``-k zero`` the identities.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suite import distributed as dd
from suite import strategies as hs

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(not (dd.dist.is_available() and dd.dist.is_gloo_available()),
                       reason=f"torch {dd.torch.__version__} was built without torch.distributed "
                              "or its gloo backend"),
]

# Examples per test: a fifth of the profile's (dev 4, ci 20, thorough 200); each is one job
# on every rank.
EXAMPLES = settings(max_examples=max(2, settings.default.max_examples // 5))


@pytest.fixture(scope="module", params=[2, 3], ids=["2proc", "3proc"])
def group(request):
    """W gloo processes on 127.0.0.1, shared by this module's tests; closed, and checked to be
    gone, at the end."""
    g = dd.ProcessGroup(request.param)
    yield g
    pids = g.pids
    g.close()
    left = [pid for pid in pids if dd.pid_alive(pid)]
    assert not left, f"worker processes {left} outlived the group"


@st.composite
def plans(draw: st.DrawFn, world: int, *, heads: int = 1, max_micro: int = 1,
          uneven: bool = False, min_steps: int = 1) -> tuple[dd.Model, dd.Plan]:
    """An MLP (tanh and relu hidden layers; ``heads`` output layers) and a plan: every rank
    the same number of samples per micro-batch (so the average is the concatenated batch's
    mean), k micro-batches with factor 1/k, a fixed head per rank, and with ``uneven`` a
    drawn number of steps per rank (``join``)."""
    seed = draw(hs.SEEDS, label="seed")
    rng = np.random.default_rng(seed)
    sizes = (draw(st.integers(1, 5), label="in"), draw(st.integers(1, 8), label="hidden 1"),
             draw(st.integers(1, 8), label="hidden 2"), draw(st.integers(2, 4), label="classes"))
    model = dd.Model.make(sizes, ("tanh", "relu"), heads, seed)
    batch = draw(st.integers(1, 6), label="samples per micro-batch")
    k = draw(st.integers(1, max_micro), label="micro-batches")
    rank_heads = [draw(st.integers(0, heads - 1), label=f"head of rank {r}")
                  for r in range(world)]
    if uneven:
        counts = [draw(st.integers(1, 3), label=f"steps of rank {r}") for r in range(world)]
    else:
        counts = [draw(st.integers(min_steps, 3), label="steps")] * world
    steps = []
    for t in range(max(counts)):
        step = []
        for r in range(world):
            micro = [dd.MicroBatch(rng.standard_normal((batch, sizes[0])),
                                   rng.integers(0, sizes[-1], size=batch), rank_heads[r], 1.0 / k)
                     for _ in range(k)] if t < counts[r] else []
            step.append(micro)
        steps.append(step)
    divide = draw(st.booleans(), label="divide_by_initial_world_size") if uneven else None
    return model, dd.Plan(world, steps, divide)


SGD = st.fixed_dictionaries({"lr": st.sampled_from([0.1, 0.5]),
                             "momentum": st.sampled_from([0.0, 0.9])})


def _ddp(group, model, plan, sgd, label, **options) -> None:
    payload = {"model": model, "plan": plan, "ddp": options, "sgd": sgd}
    results = group.run("ddp", [payload] * group.world)
    dd.check_data_parallel(results, model, plan, sgd_hyper=sgd, label=label,
                           extra=f"DDP options {options}")


@EXAMPLES
@given(data=st.data(), sgd=SGD, bucket_view=st.booleans())
def test_ddp_averaged_gradients_and_params_match_one_process(group, data, sgd,
                                                             bucket_view) -> None:
    model, plan = data.draw(plans(group.world), label="plan")
    _ddp(group, model, plan, sgd, "DDP", gradient_as_bucket_view=bucket_view)


@EXAMPLES
@given(data=st.data(), sgd=SGD, cap=st.sampled_from([1e-6, 1e-4, 2e-4]))
def test_ddp_small_buckets(group, data, sgd, cap) -> None:
    """bucket_cap_mb of a few bytes to a few hundred: one bucket per parameter, or several
    parameters per bucket, all-reduced separately and in another order."""
    model, plan = data.draw(plans(group.world), label="plan")
    _ddp(group, model, plan, sgd, f"DDP bucket_cap_mb={cap}", bucket_cap_mb=cap)


@EXAMPLES
@given(data=st.data(), sgd=SGD)
def test_ddp_static_graph(group, data, sgd) -> None:
    model, plan = data.draw(plans(group.world, min_steps=2), label="plan")
    _ddp(group, model, plan, sgd, "DDP static_graph", static_graph=True)


@EXAMPLES
@given(data=st.data(), sgd=SGD, static=st.booleans())
def test_ddp_find_unused_parameters(group, data, sgd, static) -> None:
    """Two heads; each rank uses one: a head some rank left unused averages the others'
    gradients with zeros (divisor W), a head no rank used keeps no gradient."""
    model, plan = data.draw(plans(group.world, heads=2), label="plan")
    _ddp(group, model, plan, sgd, f"DDP find_unused_parameters (static_graph={static})",
         find_unused_parameters=True, static_graph=static)


@EXAMPLES
@given(data=st.data(), sgd=SGD)
def test_ddp_join_uneven_inputs(group, data, sgd) -> None:
    """Ranks with fewer steps join early; the others' gradients are divided by W
    (divide_by_initial_world_size=True) or by the ranks still running (False), and every rank
    ends with the last joiner's parameters."""
    model, plan = data.draw(plans(group.world, uneven=True), label="plan")
    _ddp(group, model, plan, sgd, "DDP join")


@EXAMPLES
@given(data=st.data(), sgd=SGD)
def test_ddp_no_sync_accumulation(group, data, sgd) -> None:
    """k micro-batches per step, the first k - 1 under no_sync (local gradients, checked
    after the first), the last synchronised: the average of the accumulated gradients."""
    model, plan = data.draw(plans(group.world, max_micro=3), label="plan")
    _ddp(group, model, plan, sgd, "DDP no_sync")


OPTIMIZERS = st.one_of(
    st.tuples(st.just("SGD"), SGD),
    st.tuples(st.just("Adam"), st.fixed_dictionaries(
        {"lr": st.sampled_from([1e-2, 1e-1]), "betas": st.just((0.9, 0.999)),
         "eps": st.just(1e-8), "weight_decay": st.sampled_from([0.0, 1e-2])})))


@EXAMPLES
@given(data=st.data(), optimizer=OPTIMIZERS, bucket_view=st.booleans())
def test_zero_redundancy_optimizer(group, data, optimizer, bucket_view) -> None:
    name, hyper = optimizer
    model, plan = data.draw(plans(group.world), label="plan")
    payload = {"model": model, "plan": plan, "optimizer": name, "hyper": hyper,
               "bucket_view": bucket_view}
    results = group.run("zero", [payload] * group.world)
    dd.check_zero(results, model, plan, optimizer=name, hyper=hyper,
                  label=f"ZeroRedundancyOptimizer({name}, parameters_as_bucket_view="
                        f"{bucket_view})")


# --- the harness: planted bugs, hung and crashed peers ------------------------------------

@EXAMPLES
@given(data=st.data(), sgd=SGD)
def test_ddp_check_passes_a_hand_written_allreduce_that_averages(group, data, sgd) -> None:
    model, plan = data.draw(plans(group.world), label="plan")
    payload = {"model": model, "plan": plan, "sgd": sgd, "average": True}
    results = group.run("allreduce", [payload] * group.world)
    dd.check_data_parallel(results, model, plan, sgd_hyper=sgd, label="all_reduce / W")


def test_ddp_check_catches_an_allreduce_that_sums_instead_of_averaging(group) -> None:
    model, plan = _fixed_plan(group.world)
    sgd = {"lr": 0.1, "momentum": 0.0}
    payload = {"model": model, "plan": plan, "sgd": sgd, "average": False}
    results = group.run("allreduce", [payload] * group.world)
    with pytest.raises(AssertionError) as info:
        dd.check_data_parallel(results, model, plan, sgd_hyper=sgd, label="all_reduce(SUM)")
    message = str(info.value)
    assert message.startswith("all_reduce(SUM): averaged gradient vs one process: ")
    assert f"Greatest relative difference: {group.world - 1:.3g}" in message


def _fixed_plan(world: int) -> tuple[dd.Model, dd.Plan]:
    rng = np.random.default_rng(7)
    model = dd.Model.make((3, 4, 4, 3), ("tanh", "relu"), 1, seed=7)
    step = [[dd.MicroBatch(rng.standard_normal((4, 3)), rng.integers(0, 3, size=4))]
            for _ in range(world)]
    return model, dd.Plan(world, [step])


@pytest.mark.parametrize("world", [2, 3], ids=["2proc", "3proc"])
def test_ddp_group_with_a_hung_peer_fails_within_the_timeout_and_kills_every_process(
        world) -> None:
    """The last rank sleeps (a planted hang) while the others wait in an all_reduce; the job
    timeout (3 s) fails the test with one paragraph, and no worker survives."""
    group = dd.ProcessGroup(world, job_timeout=3.0)
    try:
        group.start()
        pids = group.run("pid", [None] * world)
        assert sorted(pids) == sorted(group.pids)
        start = time.monotonic()
        with pytest.raises(dd.DistributedError) as info:
            group.run("hang", [3600.0] * world)
        elapsed = time.monotonic() - start
    finally:
        group.close()
    message = str(info.value)
    assert f"gloo group of {world} processes" in message
    assert "job 'hang': rank(s) [" in message and "did not answer within 3 s" in message
    assert "Every worker was then killed" in message and "STILL ALIVE" not in message
    assert elapsed < 3.0 + 10.0, f"failing took {elapsed:.1f} s"
    assert not [pid for pid in pids if dd.pid_alive(pid)], "a worker outlived the failure"


# 2 processes only: with 3 the code path is the same, and each start costs seconds.
@pytest.mark.parametrize("world", [2], ids=["2proc"])
def test_ddp_group_with_a_crashed_peer_fails_at_once_and_kills_every_process(world) -> None:
    """The last rank exits with code 7 mid-job; the other blocks in an all_reduce. The
    parent notices well before the job timeout (the death, or the survivor's gloo error about
    the closed connection), names the rank and its exit code, kills the rest; the next job
    starts a fresh group."""
    group = dd.ProcessGroup(world, job_timeout=60.0)
    try:
        group.start()
        pids = list(group.pids)
        start = time.monotonic()
        with pytest.raises(dd.DistributedError) as info:
            group.run("crash", [7] * world)
        elapsed = time.monotonic() - start
        assert not [pid for pid in pids if dd.pid_alive(pid)], "a worker outlived the failure"
        message = str(info.value)
        # The first sign may be the death itself or a peer's gloo error about the lost
        # connection; either way the message names the dead rank and its exit code.
        assert f"rank {world - 1}: exited with code 7" in message, message
        assert elapsed < 30.0, f"noticing the crash took {elapsed:.1f} s"
        fresh = group.run("pid", [None] * world)  # the group restarts
        assert group.started == 2 and not set(fresh) & set(pids)
    finally:
        group.close()


_ORPHAN_SCRIPT = """
import time
from suite import distributed as dd
if __name__ == "__main__":
    group = dd.ProcessGroup(2)
    group.start()
    print(" ".join(map(str, group.pids)), flush=True)
    time.sleep(600)
"""


def test_ddp_group_workers_leave_when_their_parent_is_killed(tmp_path) -> None:
    """A parent killed with SIGKILL runs no cleanup at all; its workers notice they are
    orphaned (they poll their parent id between jobs) and exit within seconds."""
    script = tmp_path / "parent.py"
    script.write_text(_ORPHAN_SCRIPT)
    root = str(pathlib.Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              env=env)
    try:
        line = parent.stdout.readline() if parent.stdout else ""  # after the group started
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2, f"the parent printed {line!r}"
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30.0
        while any(dd.pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [p for p in pids if dd.pid_alive(p)]
        assert not left, f"workers {left} outlived their killed parent by 30 s"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=30)
