"""torch.compile as a dimension of the checks: backends, one compile per record, recompiles.

``--backend`` (``suite.options``) selects where the backend-aware checks run: ``eager`` calls
``torch_fn`` itself (no compile: the default, and what every other check does); ``inductor``
and ``aot_eager`` call ``torch.compile(torch_fn, backend=..., dynamic=True, fullgraph=True)``
and hold the compiled forward and backward to the same reference, on the same generated
inputs, as the eager checks (forward, gradient, the half-precision ladder).

How compiling is kept honest:

* **One compile per record, dtype, device and backend**, with dynamic shapes, so Hypothesis's
  changing sizes reuse the graph. Each gets its own code object: dynamo caches compiled graphs
  per code object (and wraps every builtin such as ``F.gelu`` in one shared function), so
  without that every record would share one cache of 8 graphs and silently run eagerly past it
  (``torch._dynamo`` falls back to eager when a cache is full). Here a full cache
  (``RECOMPILE_LIMIT`` graphs) is an error, and ``fullgraph=True`` makes a graph break one
  too: a compiled check never runs eagerly without saying so.
* **Recompiles are counted** per test (``LEDGER``): what remains after dynamic shapes is a new
  graph per rank, per size-0/1 dimension (dynamo specialises them) and per option that is a
  string or a bool. Each recompile is attributed to the guard that failed against the graph
  compiled last (``recompile_cause``, from dynamo's own reason). The plugin prints the count and
  causes in the test's report, JUnit XML and the run summary, and a test that recompiled more
  than ``MANY_RECOMPILES`` times warns (``RecompileWarning``).
* **A compile failure is a failure** (``CompileError``), distinct from a numerical mismatch:
  any exception raised while compiling or running compiled code, summarised in one paragraph
  (the innermost cause's type and first lines, never dynamo's whole trace).
* **Tolerances** for compiled code are the eager rows, with ``SUMMATION`` for signed sums:
  suite/tolerances.py ("Compiled code") derives why re-associated reductions, fused roundings
  and vectorised elementwise functions need no wider row.

``refusal(spec, backend)`` says why a record does not run under a backend (its ``backends``
field, or torch's own reason where this torch cannot compile at all); the battery lists it once
and the plugin leaves those tests out.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import os
import re
import shutil
import subprocess
import sysconfig
import tempfile
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from suite.devices import dtype_name
from suite.missing import missing
from suite.specs import Case, OpSpec

EAGER = "eager"
#: The torch.compile backends ``--backend`` offers: inductor (generated C++/OpenMP kernels on
#: the CPU, Triton on GPUs) and aot_eager (dynamo capture and AOTAutograd's forward and
#: backward graphs, run by eager kernels: separates a graph-capture bug from a codegen bug).
COMPILED_BACKENDS = ("inductor", "aot_eager")
BACKENDS = (EAGER, *COMPILED_BACKENDS)
#: Graphs one compiled callable may hold before compiling again is an error. Ranks 0-4 times
#: the size-0/1 patterns dynamo specialises and a few string/bool options reach 20-30 for the
#: most varied records over 100 examples; 64 leaves room without letting a guard that fails on
#: every call recompile forever.
RECOMPILE_LIMIT = 64
#: "A few": a test that recompiled more often than this says so (RecompileWarning).
MANY_RECOMPILES = 8
#: Hypothesis examples per compiled test (the profile's count when smaller). Dynamic shapes
#: leave about one new graph per example (drawn ranks and size-0/1 dimensions are new guards),
#: and an inductor graph with its backward costs 3 s (warm caches, idle machine) to 60 s (cold
#: caches, load average 8) on the 2-core machine: 5 examples, as the first compiled test had,
#: keep a record's compiled checks to about a minute. The plugin applies it.
COMPILED_EXAMPLES = 5


class CompileError(RuntimeError):
    """torch.compile could not compile (or run the compiled code of) a record: a compiler
    failure, not a numerical mismatch."""


class RecompileWarning(UserWarning):
    """A test recompiled more than ``MANY_RECOMPILES`` times."""


# --- which backends can run here ---------------------------------------------------------------


def dynamo_refusal() -> str | None:
    """torch's own reason this torch cannot compile at all here (e.g. torch 2.0 on Python 3.11:
    "Python 3.11+ not yet supported for torch.compile"), or None."""
    try:
        from torch._dynamo.eval_frame import check_if_dynamo_supported
    except ImportError as error:  # pragma: no cover - torch < 2.0 has no dynamo
        return f"torch {torch.__version__} has no torch._dynamo ({error})"
    try:
        check_if_dynamo_supported()
    except RuntimeError as error:
        return f"torch {torch.__version__}: {error}"
    return None


#: The suffix of a ``backends`` key that refuses only the compiled checks that differentiate
#: (``"aot_eager backward"``): torch compiles the op's forward but not its backward (an op whose
#: backward has no fake-tensor implementation), so the forward check still runs compiled.
BACKWARD = " backward"
#: The battery's compiled checks that differentiate the compiled op.
BACKWARD_CHECKS = ("test_gradient_matches_reference", "test_low_precision_matches_reference")


def refusal(spec: Any, backend: str, backward: bool = False) -> str | None:
    """Why ``spec`` (an op or optimizer record) does not run under ``backend``, or None;
    ``backward``: for a check that differentiates the compiled op (``BACKWARD_CHECKS``), which
    a ``"<backend> backward"`` entry refuses as well."""
    if backend == EAGER:
        return None
    own = dict(getattr(spec, "backends", {}) or {})
    reason = own.get(backend) or (own.get(backend + BACKWARD) if backward else None)
    return reason or dynamo_refusal()


def toolchain_problem() -> str | None:
    """What inductor's CPU code generation lacks here, in one line, or None: a C++ compiler
    (``$CXX``, else g++, as inductor looks for it) that compiles a file including
    ``Python.h`` and ``omp.h`` with ``-fopenmp``, inductor's own requirements."""
    try:
        from torch._inductor import config as inductor_config

        candidates = inductor_config.cpp.cxx
        search = [c for c in (candidates if isinstance(candidates, list | tuple)
                              else (candidates,)) if c]
    except ImportError:  # pragma: no cover - torch without inductor
        return f"torch {torch.__version__} has no torch._inductor"
    found = next((shutil.which(c) for c in search if shutil.which(c)), None)
    if found is None:
        return (f"no C++ compiler: inductor looks for {' or '.join(search)} ($CXX) and none is "
                f"on PATH; install g++ (e.g. apt-get install g++) or set CXX")
    include = sysconfig.get_paths().get("include", "")
    if not os.path.exists(os.path.join(include, "Python.h")):
        return (f"no Python headers: {include}/Python.h is missing (inductor's C++ includes "
                f"it); install the Python development package (e.g. python3-dev)")
    source = ("#include <Python.h>\n#include <omp.h>\n"
              "int f(void) { return omp_get_max_threads(); }\n")
    with tempfile.TemporaryDirectory(prefix="gradsuite-cxx-") as folder:
        path = os.path.join(folder, "probe.cpp")
        with open(path, "w", encoding="utf-8") as f:
            f.write(source)
        try:
            result = subprocess.run([found, "-fopenmp", "-fsyntax-only", f"-I{include}", path],
                                    capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as error:
            return f"the C++ compiler {found} does not run ({error})"
    if result.returncode != 0:
        first = next((line for line in result.stderr.splitlines() if "error" in line),
                     result.stderr.strip()[:200])
        missing = "omp.h (OpenMP; e.g. apt-get install libgomp1 / libomp-dev)" \
            if "omp.h" in first else "what it names"
        return f"{found} cannot compile inductor's headers: {first.strip()}; install {missing}"
    return None


# --- compile accounting ------------------------------------------------------------------------


#: Why a recompile happened, read from the guard that failed against the graph compiled last
#: (dynamo logs one failed guard per cached graph, newest first). Only ``size`` and ``number``
#: are recompiles that dynamic shapes could in principle have avoided (dynamo specialises a
#: dimension of size 0 or 1, and a Python number that reaches a kernel as a constant); a new
#: rank, layout, dtype, option or argument is a new graph under any setting.
RECOMPILE_CAUSES: tuple[tuple[str, str], ...] = (
    ("rank", r"rank mismatch"),
    ("size", r"size mismatch|size\(\)\[|0/1 specialization"),
    ("layout", r"stride mismatch|stride\(\)\[|storage_offset|is_contiguous"),
    ("dtype", r"dtype mismatch|device mismatch|dispatch key set mismatch"),
    ("grad", r"requires_grad mismatch|grad_mode|GradMode"),
    ("argument", r"\bis (not )?None\b|len\(|\bnot (args|kwargs)\b|___check_type_id|"
                 r"___check_obj_id|hasattr"),
    ("option", r"== '|== \"|== (True|False)\b"),
    ("number", r"== -?(\d|inf|nan)"),
)


def recompile_cause(reason: str) -> str:
    """The kind of guard ``reason`` (one of dynamo's recompile reasons, ``"0/3: ..."``) is:
    the first ``RECOMPILE_CAUSES`` pattern it matches, else ``other``. torch 2.2's reasons
    have no ``"0/3: "`` prefix, and their source comment may hold ": " (``# if mode == "b":``),
    so only a leading frame id is removed."""
    text = re.sub(r"^\d+/\d+: ", "", reason)
    return next((name for name, pattern in RECOMPILE_CAUSES if re.search(pattern, text)),
                "other")


def describe_causes(causes: collections.Counter[str]) -> str:
    """Recompiles by cause, most frequent first: ``"rank 3, option 1"`` (what the test report,
    JUnit XML and the run summary print)."""
    return ", ".join(f"{name} {n}" for name, n in causes.most_common())


@dataclass
class TestCompiles:
    """What one test compiled: graphs, how many of them were recompiles, and why."""

    graphs: int = 0
    recompiles: int = 0
    labels: list[str] = field(default_factory=list)
    warned: bool = False
    causes: collections.Counter[str] = field(default_factory=collections.Counter)

    def describe(self) -> str:
        where = "; ".join(self.labels)
        why = f": {self.why()}" if self.causes else ""
        return (f"{self.graphs} graph{'s' * (self.graphs != 1)} compiled, {self.recompiles} "
                f"recompile{'s' * (self.recompiles != 1)}{why} ({where})")

    def why(self) -> str:
        """The recompiles by cause, most frequent first: ``"rank 3, option 1"``."""
        return describe_causes(self.causes)


@dataclass
class Ledger:
    """Compiles per test node id (the plugin sets ``current`` while a test runs)."""

    current: str | None = None
    tests: dict[str, TestCompiles] = field(default_factory=dict)
    first: set[tuple[str, bool, int]] = field(default_factory=set)

    def count(self, label: str, grad_mode: bool, graphs: int, instance: int = 0,
              reasons: Sequence[str] = ()) -> None:
        """``graphs`` new graphs of the callable ``label`` (of one ``instance``: an optimizer
        built per example compiles its own step) in one grad mode: all but the first ever
        compiled for that callable, instance and mode are recompiles. ``reasons``: dynamo's
        recompile reasons logged meanwhile for the callable's own frame, newest graph first
        (a graph compiled after a graph break has none of its own: ``other``)."""
        if graphs <= 0:
            return
        entry = self.tests.setdefault(self.current or "", TestCompiles())
        key = (label, grad_mode, instance)
        recompiles = graphs - (key not in self.first)
        self.first.add(key)
        entry.graphs += graphs
        entry.recompiles += recompiles
        if recompiles > 0:
            cause = recompile_cause(reasons[0]) if reasons else "other"
            entry.causes[cause] += recompiles
        if label not in entry.labels:
            entry.labels.append(label)
        if entry.recompiles > MANY_RECOMPILES and not entry.warned:
            entry.warned = True
            warnings.warn(RecompileWarning(
                f"{label}: recompiled {entry.recompiles} times in one test (more than "
                f"{MANY_RECOMPILES}; by cause: {entry.why()}): dynamic shapes did not cover "
                f"the drawn cases (ranks, size-0/1 dimensions and string or bool options each "
                f"compile a graph); TORCH_LOGS=recompiles names each guard that failed"),
                stacklevel=2)

    def pop(self, nodeid: str) -> TestCompiles | None:
        return self.tests.pop(nodeid, None)


LEDGER = Ledger()


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _logged(code: types.CodeType) -> Sequence[Any]:
    """dynamo's recompile reasons so far for frames of ``code``, unconverted (a list per code
    object that grows by one reason per cached graph at each recompile, newest graph first)."""
    try:
        from torch._dynamo.utils import guard_failures
    except ImportError:  # pragma: no cover - a torch without it: causes read "other"
        return ()
    return guard_failures.get(code, ())


def _limits() -> Any:
    """dynamo's config for a compiled check: a full cache raises instead of falling back to
    eager, and errors are never suppressed (option names differ between torch releases)."""
    from torch._dynamo import config

    names = set(getattr(config, "_config", {}) or dir(config))
    wanted: dict[str, Any] = {"suppress_errors": False}
    limit = "recompile_limit" if "recompile_limit" in names else "cache_size_limit"
    wanted[limit] = RECOMPILE_LIMIT
    for fail in ("fail_on_recompile_limit_hit", "fail_on_cache_limit_hit"):
        if fail in names:
            wanted[fail] = True
            break
    return config.patch({k: v for k, v in wanted.items() if k in names})


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and the chain of exceptions that caused it (dynamo's ``inner_exception``, else
    ``__cause__``), outermost first, each once."""
    chain = [error]
    while True:
        inner = getattr(chain[-1], "inner_exception", None) or chain[-1].__cause__
        if inner is None or any(inner is e for e in chain):
            return chain
        chain.append(inner)


def summary(error: BaseException, what: str) -> str:
    """One paragraph: ``what`` failed, the chain of exception types down to the innermost
    cause, and that cause's first lines (dynamo's hints and traces left out)."""
    causes = _causes(error)
    chain, root = [type(e).__name__ for e in causes], causes[-1]
    lines: list[str] = []
    for line in str(root).strip().splitlines():
        line = line.strip()
        if not line:
            if lines:
                break
            continue
        if re.match(r"(Set TORCH|You can suppress|For more information|from user code|"
                    r"To execute this test|Developer debug context|Explanation:|Hint:)", line):
            break
        lines.append(line)
        if len(lines) == 4:
            break
    text = " ".join(lines) or repr(root)
    if len(text) > 600:
        text = text[:597] + "..."
    return (f"{what} failed (a compiler failure, not a numerical mismatch): "
            f"{' <- '.join(dict.fromkeys(chain))}: {text}. The whole trace: rerun with "
            f"TORCHDYNAMO_VERBOSE=1")


class Counted:
    """A compiled callable (``counted``) and the graphs it has compiled so far."""

    def __init__(self, run: Callable[..., Any]) -> None:
        self.run = run
        self.graphs = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run(*args, **kwargs)


def counted(fn: Callable[..., Any], label: str, backend: str, *, dynamic: bool | None = True,
            fullgraph: bool = True, instance: int = 0) -> Callable[..., Any]:
    """``torch.compile(fn, backend=backend, ...)`` on a code object of its own, called with
    dynamo's limits (``_limits``), every graph it compiles counted in ``LEDGER`` under
    ``label`` (and ``instance``), and every exception raised by compiling or running it
    re-raised as ``CompileError`` with ``summary``'s paragraph. The result is a ``Counted``."""
    def call(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    name = re.sub(r"\W+", "_", f"gradsuite_{label}")
    code = call.__code__.replace(co_name=name)
    if hasattr(code, "co_qualname"):
        code = code.replace(co_qualname=name)
    own = types.FunctionType(code, call.__globals__, name, call.__defaults__, call.__closure__)
    compiled = torch.compile(own, backend=backend, dynamic=dynamic, fullgraph=fullgraph)
    what = (f"torch.compile({label.split(' ')[0]}, backend={backend!r}, dynamic={dynamic}, "
            f"fullgraph={fullgraph}) on {' '.join(label.split(' ')[1:])}")

    def run(*args: Any, **kwargs: Any) -> Any:
        mode = torch.is_grad_enabled()
        before, logged = _graphs(), len(_logged(own.__code__))
        try:
            with _limits():
                return compiled(*args, **kwargs)
        except Exception as error:
            raise CompileError(summary(error, what)) from error
        finally:
            new = _graphs() - before
            result.graphs += new
            # only the reasons logged during this call are read (and converted)
            reasons = [str(r) for r in _logged(own.__code__)[logged:]] if new else []
            LEDGER.count(label, mode, new, instance, reasons)

    result = Counted(run)
    result.__name__ = result.__qualname__ = f"compiled_{name}"  # type: ignore[attr-defined]
    result.__module__ = f"torch.compile[{backend}]"
    result.__wrapped__ = fn  # type: ignore[attr-defined]
    return result


def forget_optimizer_frames() -> None:
    """Drop dynamo's compiled code for torch.optim's own functions.

    ``torch.compile(optimizer.step)`` is compiled on a code object of its own per optimizer
    (``counted``), but ``step`` has graph breaks, and dynamo compiles the frames after them
    (``Optimizer``'s hook and grad-mode wrappers, ``_single_tensor_adam``, ...) on code objects
    every optimizer instance shares, one cache entry per instance (guarded on it). A run that
    steps more than ``RECOMPILE_LIMIT`` optimizers (the compiled step checks of both dtypes
    did) would fill those caches and fail with "recompile limit exceeded" though no optimizer
    recompiled. The entries of earlier instances are never used again (each check builds its
    optimizer, steps it, drops it), so a new instance starts from empty caches on those frames,
    as torch's own compiled-optimizer tests start each test from ``torch._dynamo.reset()``
    (which would also drop the op records' compiled graphs)."""
    try:
        from torch._C._dynamo.eval_frame import reset_code
        from torch._dynamo import convert_frame
    except ImportError:  # pragma: no cover - a torch without these keeps its own limits
        return
    root = os.path.dirname(torch.optim.__file__)
    for weak in list(convert_frame.input_codes.seen):
        code = weak()
        if code is not None and code.co_filename.startswith(root):
            reset_code(code)


# Each compiled step's optimizer is counted under an instance number of its own (an ``id``
# can be reused once an earlier optimizer is freed, which would count its first graph as a
# recompile).
_STEP_INSTANCES = itertools.count(1)


def compiled_step(optimizer: torch.optim.Optimizer, label: str,
                  backend: str) -> Callable[[], Any]:
    """``torch.compile(optimizer.step)`` as torch's compiled-optimizer recipe writes it
    (default ``dynamic`` and graph breaks allowed: ``step`` holds deliberate ones), counted per
    optimizer instance, torch.optim's shared frames emptied first
    (``forget_optimizer_frames``)."""
    forget_optimizer_frames()
    return counted(optimizer.step, label, backend, dynamic=None, fullgraph=False,
                   instance=next(_STEP_INSTANCES))


def require_graphs(step: Callable[..., Any], what: str) -> None:
    """A compiled callable that compiled no graph ran eagerly from start to end: a check of
    it would be a check of eager code, so it fails as a compiler failure."""
    if isinstance(step, Counted) and step.graphs == 0:
        raise CompileError(f"{what}: torch.compile compiled no graph (every call ran eagerly, "
                           f"e.g. dynamo skipped the frame); nothing compiled was checked")


_OPS: dict[tuple[str, int, torch.dtype, str, str], tuple[Any, Callable[..., Any]]] = {}


def compiled_op(spec: OpSpec, dtype: torch.dtype, device: str,
                backend: str) -> Callable[..., torch.Tensor]:
    """``spec.torch_fn`` compiled once per record, dtype, device and backend (``counted``).
    A stand-in for an op this torch lacks (``suite.missing``) skips, saying so, before
    dynamo would fail to trace its ``pytest.skip``."""
    absent = missing(spec.torch_fn)
    if absent is not None:
        pytest.skip(absent)
    key = (spec.name, id(spec.torch_fn), dtype, device, backend)
    kept = _OPS.get(key)
    if kept is None or kept[0] is not spec.torch_fn:
        label = f"{spec.name} {dtype_name(dtype)} {device} {backend}"
        kept = (spec.torch_fn, counted(spec.torch_fn, label, backend))
        _OPS[key] = kept
    return kept[1]


def compiled_spec(spec: OpSpec, dtype: torch.dtype, device: str, backend: str, *,
                  training: bool = True) -> OpSpec:
    """The record with ``torch_fn`` compiled: every eager check of ``suite.gradcheck`` runs on
    it unchanged. Its name carries the backend (messages read ``gelu [inductor]: forward
    ...``).

    ``training``: the compiled op runs with gradients enabled, so the forward check (which
    calls it under ``no_grad``) and the gradient check share one graph, AOTAutograd's training
    graph, whose forward half is what a compiled training step runs: a graph under ``no_grad``
    would be a second compile of every case (grad mode is one of dynamo's guards) for the same
    forward formulas. Compiling a training graph traces the backward too, so a record whose
    backward the backend cannot compile (a ``"<backend> backward"`` refusal) has its forward
    checked in the inference graph instead (``training=False``)."""
    op = compiled_op(spec, dtype, device, backend)
    if not training:
        return dataclasses.replace(spec, name=f"{spec.name} [{backend}]", torch_fn=op)

    def training_graph(*args: Any, **kwargs: Any) -> torch.Tensor:
        with torch.enable_grad():
            return op(*args, **kwargs)

    training_graph.__name__ = training_graph.__qualname__ = op.__name__
    training_graph.__module__ = op.__module__
    return dataclasses.replace(spec, name=f"{spec.name} [{backend}]", torch_fn=training_graph)


@contextlib.contextmanager
def compiler_failures(what: str) -> Iterator[None]:
    """Exceptions other than a mismatch (AssertionError), a Hypothesis signal or a CompileError
    already summarised are the compiled code's failure (its backward is compiled when it
    first runs, outside the compiled callable)."""
    from hypothesis.errors import HypothesisException

    try:
        yield
    except (AssertionError, CompileError, HypothesisException):
        raise
    except Exception as error:
        raise CompileError(summary(error, what)) from error


def check_forward(spec: OpSpec, case: Case, dtype: torch.dtype, device: str,
                  backend: str) -> None:
    """The compiled forward (the training graph's forward half; the inference graph where
    the backend refuses the record's backward) against the reference."""
    __tracebackhide__ = True
    from suite import gradcheck as gc

    training = refusal(spec, backend, backward=True) is None
    with compiler_failures(f"{spec.name} [{backend}] forward"):
        gc.check_forward(compiled_spec(spec, dtype, device, backend, training=training), case,
                         dtype, device)


def check_gradient(spec: OpSpec, case: Case, dtype: torch.dtype, device: str,
                   backend: str) -> None:
    """The compiled forward and backward (AOTAutograd's training graphs) against the
    reference VJP."""
    __tracebackhide__ = True
    from suite import gradcheck as gc

    with compiler_failures(f"{spec.name} [{backend}] backward"):
        gc.check_gradient(compiled_spec(spec, dtype, device, backend), case, dtype, device)


def check_low_precision(spec: OpSpec, case: Case, dtype: torch.dtype, device: str,
                        backend: str) -> None:
    """The ladder's float16/bfloat16 check on the compiled op, drawing around the same recorded
    defects as the eager ladder. A kernel missing for the dtype skips, with torch's words, only
    where eager torch lacks it too on the same case (``_skip_if_eager_lacks``): aot_eager runs
    eager's kernels, and a record is on the ladder when most of its cases have one (CPU
    avg_pool3d, and the antialiased interpolations' backward, have none in half precision). A
    kernel eager has and the compiled op lacks is a failure."""
    __tracebackhide__ = True
    from hypothesis import assume

    from suite import higher

    higher.assume_representable(spec, case, dtype)
    assume(spec.known_defect(case.rounded_to(dtype), dtype) is None)
    try:
        check_forward(spec, case, dtype, device, backend)
        check_gradient(spec, case, dtype, device, backend)
    except CompileError as error:
        _skip_if_eager_lacks(error, spec, case, dtype, device)
        raise


def _skip_if_eager_lacks(error: CompileError, spec: OpSpec, case: Case, dtype: torch.dtype,
                         device: str) -> None:
    """Skip where the compiled op failed for want of a kernel in ``dtype`` (torch's own "not
    implemented for 'Half'") and eager torch, asked for the same forward and backward on the
    same case, lacks one too; return (the caller re-raises) in every other case."""
    from suite import gradcheck as gc
    from suite import higher

    cause = _causes(error)[-1]
    if not (isinstance(cause, RuntimeError) and higher._unsupported(cause, dtype)):
        return
    with higher.skip_if_unsupported(dtype, device):
        gc._torch_gradients(spec, case, dtype, device)
