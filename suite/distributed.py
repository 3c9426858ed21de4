r"""Data-parallel identities over torch.distributed's gloo backend, on the CPU, in W processes.

:class:`ProcessGroup` starts W worker processes (``torch.multiprocessing``, spawn) that join one
gloo group on 127.0.0.1 at a free port, then runs *jobs* on every rank: the parent sends each
rank its payload, the ranks run the job (DDP training steps, ZeroRedundancyOptimizer steps, a
planted hang) and send back NumPy results, which the parent compares with one process on the
concatenated batch (torch) and with ``references.training``.

Why a pool rather than one group per Hypothesis example: starting W processes costs seconds
(each imports torch; 2-5 s on a 2-core machine), an example a few milliseconds. One group per
test (per world size, in fact: the tests share it through a module-scoped fixture) lets the
parent draw many examples with Hypothesis and still shrink a failure to the smallest plan.

Every wait is bounded: startup by ``startup_timeout``, each job by ``job_timeout``, collectives
inside the workers by gloo's own ``collective_timeout``. A rank that raises, dies or does not
answer in time makes :meth:`ProcessGroup.run` kill every worker (terminate, then kill) and raise
:class:`DistributedError`, one paragraph naming the job, the ranks and what happened. Workers
are daemonic and also leave when their parent process is gone, so an interrupted run leaves
nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from references import network
from references import training as ref
from references.losses_classification import cross_entropy_vjp
from references.optim_adam import adam
from references.optim_sgd import sgd
from suite import compare
from suite import identities as ids
from suite import tolerances as tols
from suite.specs import Array
from suite.tolerances import Kind

# --- the process group --------------------------------------------------------------------


class DistributedError(AssertionError):
    """A rank raised, died or hung; every worker has been killed. The message says which."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (a reaped child does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process reused the id
        return True
    return True


@dataclass
class ProcessGroup:
    """W workers in one gloo process group on 127.0.0.1; :meth:`run` runs a job on all ranks.

    Started lazily by the first :meth:`run` (or :meth:`start`), restarted by the next
    :meth:`run` after a failure killed it; :meth:`close` ends it.
    """

    world: int
    job_timeout: float = 120.0
    startup_timeout: float = 180.0
    collective_timeout: float = 120.0
    processes: list[Any] = field(default_factory=list)
    _jobs: list[Any] = field(default_factory=list)
    _results: Any = None
    _next_job: int = 0
    started: int = 0
    """How many times the group was started (tests check that a failure forces a restart)."""

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def alive(self) -> bool:
        return bool(self.processes) and all(p.is_alive() for p in self.processes)

    def start(self) -> None:
        """Spawn the W workers and wait until each has joined the group."""
        self.close()
        ctx = mp.get_context("spawn")
        port = free_port()
        self._results = ctx.Queue()
        self._jobs = [ctx.Queue() for _ in range(self.world)]
        self.processes = [
            ctx.Process(target=_worker, daemon=True, name=f"gradsuite-gloo-rank{r}",
                        args=(r, self.world, port, self._jobs[r], self._results, os.getpid(),
                              self.collective_timeout))
            for r in range(self.world)]
        for p in self.processes:
            p.start()
        self.started += 1
        self._collect("startup", "ready", self.startup_timeout,
                      f"joining a gloo group of {self.world} on 127.0.0.1:{port}")

    def run(self, job: str, payloads: Sequence[Any], timeout: float | None = None) -> list[Any]:
        """Run ``job`` (a name in :data:`JOBS`) on every rank, rank r with ``payloads[r]``;
        return the ranks' results in rank order. Raises :class:`DistributedError` (after
        killing every worker) when a rank raises, dies, or does not answer within the job
        timeout."""
        if len(payloads) != self.world:
            raise ValueError(f"{len(payloads)} payloads for a group of {self.world}")
        if not self.alive():
            self.start()
        self._next_job += 1
        job_id = f"{job}#{self._next_job}"
        for q, payload in zip(self._jobs, payloads, strict=True):
            q.put((job_id, job, payload))
        return self._collect(job, job_id, self.job_timeout if timeout is None else timeout,
                             f"job {job!r}")

    def _collect(self, job: str, tag: str, timeout: float, doing: str) -> list[Any]:
        results: dict[int, Any] = {}
        deadline = time.monotonic() + timeout
        while len(results) < self.world:
            try:
                rank, got_tag, status, value = self._results.get(timeout=0.05)
            except queue.Empty:
                dead = [(r, p.exitcode) for r, p in enumerate(self.processes)
                        if not p.is_alive() and r not in results]
                if dead:
                    self._fail(f"{doing}: rank(s) {[r for r, _ in dead]} exited without "
                               f"answering", results)
                if time.monotonic() > deadline:
                    missing = [r for r in range(self.world) if r not in results]
                    self._fail(f"{doing}: rank(s) {missing} did not answer within {timeout:g} s "
                               f"(a hung peer, or a collective waiting for one)", results)
                continue
            if got_tag != tag:  # a late answer to an earlier, failed job
                continue
            if status == "error":
                self._fail(f"{doing}: rank {rank} raised:\n{value}", results)
            results[rank] = value
        return [results[r] for r in range(self.world)]

    def _fail(self, what: str, answered: Mapping[int, Any]) -> None:
        pids = self.pids
        time.sleep(0.2)  # let a peer's death that caused a rank's error show in its exit code
        status = []
        for r, p in enumerate(self.processes):
            if r in answered:
                status.append(f"rank {r}: answered")
            elif p.is_alive():
                status.append(f"rank {r}: still running")
            else:
                status.append(f"rank {r}: exited with code {p.exitcode}")
        self.close()
        left = [pid for pid in pids if pid_alive(pid)]
        raise DistributedError(
            f"gloo group of {self.world} processes (pids {pids}) failed: {what}. "
            f"At that point: {'; '.join(status)}. Every worker was then killed (terminate, "
            f"then kill){'' if not left else f'; STILL ALIVE: {left}'}; the next job starts a "
            f"fresh group.")

    def close(self) -> None:
        """Stop every worker: ask politely, then terminate, then kill; reap them all."""
        for q in self._jobs:
            with contextlib.suppress(Exception):
                q.put(None)
        for p in self.processes:
            p.join(timeout=0.5 if p.is_alive() else 0)
        for p in self.processes:
            if p.is_alive():
                p.terminate()
                p.join(timeout=2.0)
            if p.is_alive():
                p.kill()
                p.join(timeout=2.0)
        for q in (*self._jobs, self._results):
            if q is not None:
                q.cancel_join_thread()
                q.close()
        self.processes, self._jobs, self._results = [], [], None


def _worker(rank: int, world: int, port: int, jobs: Any, results: Any, parent: int,
            collective_timeout: float) -> None:
    """A rank: join the gloo group, then run jobs until told to stop or orphaned."""
    try:
        torch.set_num_threads(1)
        if sys.platform.startswith("linux"):
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # stay on the loopback device
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world, timeout=timedelta(seconds=collective_timeout))
    except BaseException:
        results.put((rank, "ready", "error", traceback.format_exc()))
        return
    results.put((rank, "ready", "ok", os.getpid()))
    try:
        while True:
            try:
                item = jobs.get(timeout=0.5)
            except queue.Empty:
                if os.getppid() != parent:  # the parent is gone: leave at once, no teardown
                    os._exit(0)
                continue
            if item is None:
                return
            job_id, name, payload = item
            try:
                results.put((rank, job_id, "ok", JOBS[name](rank, world, payload)))
            except BaseException:
                results.put((rank, job_id, "error", traceback.format_exc()))
    finally:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


# --- plans: what each rank trains on ------------------------------------------------------

@dataclass(frozen=True)
class MicroBatch:
    """One backward on a rank: inputs, class targets, the head used, the loss's factor."""

    x: Array
    target: Array
    head: int = 0
    scale: float = 1.0


@dataclass(frozen=True)
class Plan:
    """A data-parallel run: ``steps[t][r]`` are rank r's micro-batches at step t (empty: the
    rank has run out of inputs, which only ``join`` allows); the first ``len - 1`` of them
    run under ``no_sync``. ``divide_by_initial_world_size`` is ``join``'s option (None: no
    ``join``)."""

    world: int
    steps: list[list[list[MicroBatch]]]
    divide_by_initial_world_size: bool | None = None

    def active(self, t: int) -> list[int]:
        return [r for r in range(self.world) if self.steps[t][r]]

    def divisor(self, t: int) -> float:
        """The divisor of step t's average (``references.training.data_parallel_average``)."""
        if self.divide_by_initial_world_size is False:
            return float(len(self.active(t)))
        return float(self.world)

    def for_rank(self, r: int) -> list[list[MicroBatch]]:
        """Rank r's steps until it runs out of inputs."""
        out = []
        for step in self.steps:
            if not step[r]:
                break
            out.append(step[r])
        return out


@dataclass(frozen=True)
class Model:
    """The MLP of the run: sizes, hidden activations, number of heads, initial parameters."""

    sizes: tuple[int, ...]
    activations: tuple[str, ...]
    heads: int
    init: dict[str, Array]

    @classmethod
    def make(cls, sizes: Sequence[int], activations: Sequence[str], heads: int,
             seed: int) -> Model:
        m = ids.make_mlp(sizes, activations, seed=seed, heads=heads)
        return cls(tuple(sizes), tuple(activations), heads, ids.torch_params(m))

    def build(self) -> ids.MLP:
        m = ids.MLP(self.sizes, self.activations, self.heads).double()
        m.load_state_dict({k: torch.tensor(v) for k, v in self.init.items()})
        return m


def _loss(model: nn.Module, mb: MicroBatch) -> torch.Tensor:
    return mb.scale * F.cross_entropy(model(torch.tensor(mb.x), head=mb.head),
                                      torch.tensor(mb.target))


# --- jobs (run in the workers) ------------------------------------------------------------

def _job_ddp(rank: int, world: int, payload: Mapping[str, Any]) -> dict[str, Any]:
    """DDP training on this rank's part of the plan; gradients after each step's last
    backward, parameters after each step, gradients after the first micro-batch of a step
    with several (under no_sync: local), and the parameters after ``join`` ends."""
    from torch.nn.parallel import DistributedDataParallel

    model_spec: Model = payload["model"]
    plan: Plan = payload["plan"]
    model = model_spec.build()
    ddp = DistributedDataParallel(model, **payload["ddp"])
    opt = torch.optim.SGD(ddp.parameters(), **payload["sgd"])
    out: dict[str, Any] = {"grads": [], "params": [], "local_first": [], "final": None}
    join = (ddp.join(divide_by_initial_world_size=plan.divide_by_initial_world_size)
            if plan.divide_by_initial_world_size is not None else contextlib.nullcontext())
    with join:
        for micro in plan.for_rank(rank):
            opt.zero_grad(set_to_none=True)
            for j, mb in enumerate(micro):
                last = j == len(micro) - 1
                with contextlib.nullcontext() if last else ddp.no_sync():
                    _loss(ddp, mb).backward()
                if j == 0 and not last:
                    out["local_first"].append(ids.torch_grads(model))
            out["grads"].append(ids.torch_grads(model))
            opt.step()
            out["params"].append(ids.torch_params(model))
    out["final"] = ids.torch_params(model)
    return out


def _job_allreduce(rank: int, world: int, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Data parallelism by hand: local backward, all_reduce(SUM) of every gradient, then
    division by the world size, unless ``average`` is False (a planted bug: the sum)."""
    model_spec: Model = payload["model"]
    plan: Plan = payload["plan"]
    model = model_spec.build()
    opt = torch.optim.SGD(model.parameters(), **payload["sgd"])
    out: dict[str, Any] = {"grads": [], "params": [], "local_first": [], "final": None}
    for micro in plan.for_rank(rank):
        opt.zero_grad(set_to_none=True)
        for mb in micro:
            _loss(model, mb).backward()
        for p in model.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            if payload["average"]:
                p.grad /= world
        out["grads"].append(ids.torch_grads(model))
        opt.step()
        out["params"].append(ids.torch_params(model))
    out["final"] = ids.torch_params(model)
    return out


def _numpy_tree(value: Any) -> Any:
    """A state_dict with every tensor as NumPy float64 (ints and floats kept)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64).numpy().copy()
    if isinstance(value, Mapping):
        return {k: _numpy_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_numpy_tree(v) for v in value)
    return value


def _job_zero(rank: int, world: int, payload: Mapping[str, Any]) -> dict[str, Any]:
    """DDP with a ZeroRedundancyOptimizer: parameters after each step, and on rank 0 the
    consolidated state_dict at the end."""
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel

    model_spec: Model = payload["model"]
    plan: Plan = payload["plan"]
    model = model_spec.build()
    ddp = DistributedDataParallel(model)
    opt = ZeroRedundancyOptimizer(ddp.parameters(),
                                  optimizer_class=getattr(torch.optim, payload["optimizer"]),
                                  parameters_as_bucket_view=payload["bucket_view"],
                                  **payload["hyper"])
    out: dict[str, Any] = {"grads": [], "params": [], "state_dict": None}
    for micro in plan.for_rank(rank):
        opt.zero_grad(set_to_none=True)
        for mb in micro:
            _loss(ddp, mb).backward()
        out["grads"].append(ids.torch_grads(model))
        opt.step()
        out["params"].append(ids.torch_params(model))
    opt.consolidate_state_dict(to=0)
    if rank == 0:
        out["state_dict"] = _numpy_tree(opt.state_dict())
    return out


def _job_pid(rank: int, world: int, payload: Any) -> int:
    """This worker's process id, after an all_reduce that proves the group works."""
    t = torch.ones(1)
    dist.all_reduce(t)
    assert t.item() == world, f"all_reduce of ones gave {t.item()} on {world} ranks"
    return os.getpid()


def _job_hang(rank: int, world: int, payload: Any) -> None:
    """A planted hung peer: the last rank sleeps, the others wait for it in an all_reduce."""
    if rank == world - 1:
        time.sleep(float(payload))
    dist.all_reduce(torch.ones(1))


def _job_crash(rank: int, world: int, payload: Any) -> None:
    """A planted crash: the last rank exits at once, the others wait for it."""
    if rank == world - 1:
        os._exit(int(payload))
    dist.all_reduce(torch.ones(1))


JOBS: dict[str, Callable[[int, int, Any], Any]] = {
    "ddp": _job_ddp, "allreduce": _job_allreduce, "zero": _job_zero, "pid": _job_pid,
    "hang": _job_hang, "crash": _job_crash}


# --- the expected side (in the parent) ----------------------------------------------------

@dataclass
class Trajectory:
    """Per step: the gradient every replica should hold and the parameters after the step."""

    grads: list[dict[str, Array | None]]
    params: list[dict[str, Array]]
    states: list[dict[str, Any]] = field(default_factory=list)


def single_process(model_spec: Model, plan: Plan, optimizer: str,
                   hyper: Mapping[str, Any]) -> tuple[Trajectory, dict[str, Any]]:
    """One process, one backward per step on the concatenated batch:
    L_t = sum over active ranks r and micro-batches j of c_rj CE_rj / divisor_t, the objective
    whose gradient the data-parallel average is; ``optimizer`` (a torch.optim class name)
    steps on it. Returns the trajectory and the optimizer's final state_dict."""
    model = model_spec.build()
    opt = getattr(torch.optim, optimizer)(model.parameters(), **hyper)
    out = Trajectory([], [])
    for t in range(len(plan.steps)):
        opt.zero_grad(set_to_none=True)
        _objective(model, plan, t).backward()
        out.grads.append(ids.torch_grads(model))
        opt.step()
        out.params.append(ids.torch_params(model))
    return out, _numpy_tree(opt.state_dict())


def _objective(model: nn.Module, plan: Plan, t: int) -> torch.Tensor:
    """Step t's loss in one process. Where every active rank has one micro-batch of the same
    size, head and factor 1, and the divisor is their number (plain DDP), literally the mean
    cross entropy over the concatenated batch; otherwise sum_{r,j} c_rj CE_rj / divisor_t."""
    micro = [mb for r in plan.active(t) for mb in plan.steps[t][r]]
    if (all(len(plan.steps[t][r]) == 1 for r in plan.active(t))
            and len({(mb.x.shape[0], mb.head, mb.scale) for mb in micro}) == 1
            and micro[0].scale == 1.0 and plan.divisor(t) == len(micro)):
        x = torch.tensor(np.concatenate([mb.x for mb in micro]))
        y = torch.tensor(np.concatenate([mb.target for mb in micro]))
        return F.cross_entropy(model(x, head=micro[0].head), y)
    return torch.stack([_loss(model, mb) for mb in micro]).sum() / plan.divisor(t)


def _layers(params: Mapping[str, Array], model: Model, head: int) -> list[network.Layer]:
    names = [f"hidden.{i}" for i in range(len(model.sizes) - 2)] + [f"heads.{head}"]
    acts = [*model.activations, "identity"]
    return [network.Layer(params[f"{n}.weight"], params[f"{n}.bias"], a)
            for n, a in zip(names, acts, strict=True)]


def reference_local_gradient(params: Mapping[str, Array], model: Model,
                             micro: Sequence[MicroBatch]) -> dict[str, Array | None]:
    """sum_j c_j dCE_j/dtheta on one rank (references.network), None for a head it did not
    use: the gradient a rank holds after its backward passes, before any all-reduce."""
    grads: dict[str, Array | None] = dict.fromkeys(params)
    for mb in micro:
        layers = _layers(params, model, mb.head)
        logits, cache = network.mlp_forward(layers, mb.x)
        g = cross_entropy_vjp(np.ones(()), logits, mb.target)["input"]
        names = [f"hidden.{i}" for i in range(len(model.sizes) - 2)] + [f"heads.{mb.head}"]
        named = ids.named_reference_grads(names, network.mlp_backward(layers, cache, g))
        for k, v in named.items():
            prev = grads[k]
            grads[k] = mb.scale * v if prev is None else prev + mb.scale * v
    return grads


UpdateRule = Callable[[Array, Array, Any], tuple[Array, Any]]


def update_rule(optimizer: str, hyper: Mapping[str, Any]) -> UpdateRule:
    """The reference rule of ``torch.optim.<optimizer>`` with these hyper-parameters."""
    rules: dict[str, Callable[..., tuple[Array, Any]]] = {"SGD": sgd, "Adam": adam}
    rule = rules[optimizer]
    return lambda p, g, state: rule(p, g, state, **hyper)


def reference_trajectory(model_spec: Model, plan: Plan, rule: UpdateRule) -> Trajectory:
    """``references.training.data_parallel_average`` of the ranks' local gradients at each
    step, then the update rule for every parameter with a gradient (torch.optim skips a
    parameter whose .grad is None)."""
    params = {k: np.asarray(v, dtype=np.float64) for k, v in model_spec.init.items()}
    states: dict[str, Any] = dict.fromkeys(params)
    out = Trajectory([], [])
    for t, step in enumerate(plan.steps):
        local = [reference_local_gradient(params, model_spec, step[r]) for r in plan.active(t)]
        avg = ref.data_parallel_average(local, plan.divisor(t))
        for k, g in avg.items():
            if g is not None:
                params[k], states[k] = rule(params[k], g, states[k])
        out.grads.append(avg)
        out.params.append(dict(params))
        out.states.append(dict(states))
    return out


def _plan_text(plan: Plan, extra: str) -> str:
    shapes = [[sum(mb.x.shape[0] for mb in micro) for micro in step] for step in plan.steps]
    heads = [[sorted({mb.head for mb in micro}) for micro in step] for step in plan.steps]
    micro = [[len(m) for m in step] for step in plan.steps]
    return (f"  world {plan.world}; samples per step and rank {shapes}; micro-batches "
            f"{micro}; heads {heads}; join divide_by_initial_world_size="
            f"{plan.divide_by_initial_world_size}; {extra}")


def check_data_parallel(results: Sequence[Mapping[str, Any]], model_spec: Model, plan: Plan, *,
                        sgd_hyper: Mapping[str, Any], label: str, extra: str = "") -> None:
    """Every rank's gradients (after each step's synchronised backward) and parameters (after
    each step, and after ``join``) against one process on the concatenated batch and against
    the reference; the no_sync gradients after a step's first micro-batch against that rank's
    own local gradient (not averaged)."""
    single, _ = single_process(model_spec, plan, "SGD", sgd_hyper)
    expected = reference_trajectory(model_spec, plan, update_rule("SGD", sgd_hyper))
    text = _plan_text(plan, f"SGD {dict(sgd_hyper)}; {extra}")
    grad_tol = tols.resolve(torch.float64, Kind.GRADIENT)
    param_tol = tols.resolve(torch.float64, Kind.OPTIMIZER)
    for r, res in enumerate(results):
        for t in range(len(plan.for_rank(r))):
            where = f"float64, gloo, rank {r}, step {t}"
            ids.assert_named_close(res["grads"][t], single.grads[t], tol=grad_tol,
                                   what=f"{label}: averaged gradient vs one process",
                                   context=where, case=text)
            ids.assert_named_close(res["grads"][t], expected.grads[t], tol=grad_tol,
                                   what=f"{label}: averaged gradient vs the reference",
                                   context=where, case=text)
            ids.assert_named_close(res["params"][t], single.params[t], tol=param_tol,
                                   what=f"{label}: parameters after the step vs one process",
                                   context=where, case=text)
            ids.assert_named_close(res["params"][t], expected.params[t], tol=param_tol,
                                   what=f"{label}: parameters after the step vs the reference",
                                   context=where, case=text)
        firsts = iter(res.get("local_first", []))
        for t, micro in enumerate(plan.for_rank(r)):
            if len(micro) > 1:
                local = reference_local_gradient(expected.params[t - 1] if t else model_spec.init,
                                                 model_spec, micro[:1])
                ids.assert_named_close(next(firsts), local, tol=grad_tol,
                                       what=f"{label}: gradient inside no_sync (local) vs the "
                                            "reference local gradient",
                                       context=f"float64, gloo, rank {r}, step {t}", case=text)
        ids.assert_named_close(res["final"], expected.params[-1], tol=param_tol,
                               what=f"{label}: final parameters vs the reference",
                               context=f"float64, gloo, rank {r}, after the run", case=text)


def check_zero(results: Sequence[Mapping[str, Any]], model_spec: Model, plan: Plan, *,
               optimizer: str, hyper: Mapping[str, Any], label: str) -> None:
    """ZeroRedundancyOptimizer: parameters after each step on every rank against a plain
    optimizer on one process and the reference; rank 0's consolidated state_dict against the
    plain optimizer's state_dict (same keys, parameter indices and hyper-parameters, every state
    entry close) and against the reference's state."""
    single, plain_sd = single_process(model_spec, plan, optimizer, hyper)
    expected = reference_trajectory(model_spec, plan, update_rule(optimizer, hyper))
    text = _plan_text(plan, f"{optimizer} {dict(hyper)}")
    param_tol = tols.resolve(torch.float64, Kind.OPTIMIZER)
    for r, res in enumerate(results):
        for t in range(len(plan.steps)):
            where = f"float64, gloo, rank {r}, step {t}"
            ids.assert_named_close(res["params"][t], single.params[t], tol=param_tol,
                                   what=f"{label}: parameters vs a plain {optimizer}",
                                   context=where, case=text)
            ids.assert_named_close(res["params"][t], expected.params[t], tol=param_tol,
                                   what=f"{label}: parameters vs the reference", context=where,
                                   case=text)
    sd = results[0]["state_dict"]
    where = "float64, gloo, rank 0's consolidated state_dict"
    assert sorted(sd) == sorted(plain_sd), \
        f"{label}: state_dict keys {sorted(sd)}, plain {optimizer}'s {sorted(plain_sd)}\n{text}"
    assert sorted(sd["state"]) == sorted(plain_sd["state"]), (
        f"{label}: state for parameter indices {sorted(sd['state'])}, plain {optimizer} has "
        f"{sorted(plain_sd['state'])}\n{text}")
    groups, plain_groups = sd["param_groups"], plain_sd["param_groups"]
    assert len(groups) == len(plain_groups), f"{label}: {len(groups)} param groups\n{text}"
    for g, pg in zip(groups, plain_groups, strict=True):
        differ = {k: (g.get(k), v) for k, v in pg.items() if k != "params" and g.get(k) != v}
        assert not differ and sorted(g["params"]) == sorted(pg["params"]), (
            f"{label}: param group differs from the plain {optimizer}'s: {differ}, params "
            f"{g['params']} vs {pg['params']}\n{text}")
    names = list(model_spec.init)
    final_states = expected.states[-1]
    for index, entry in plain_sd["state"].items():
        for key, value in entry.items():
            compare.assert_state_close(sd["state"][index][key], value, tol=param_tol,
                                       what=f"{label}: state[{index}][{key!r}] vs the plain "
                                            f"{optimizer}'s", context=where, case=text)
            ref_state = final_states[names[index]]
            expected_value = getattr(ref_state, key) if ref_state is not None else None
            compare.assert_state_close(sd["state"][index][key], expected_value, tol=param_tol,
                                       what=f"{label}: state[{index}][{key!r}] ({names[index]}) "
                                            "vs the reference", context=where, case=text)

