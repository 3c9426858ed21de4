"""Invariants of the catalogue and the references: names pair up, nothing is left unused,
and references/ never sees torch."""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib
import pkgutil
import subprocess
import sys
from types import ModuleType

import pytest

import references
from suite import catalog, devices
from suite import tolerances as tols
from suite.catalog import optimizers as optimizer_records

REPO = pathlib.Path(__file__).resolve().parent.parent
RECORDS = (*catalog.OPS, *catalog.OPTIMIZERS)
# Every module of the references package, private helper modules (``_*.py``) included.
REFERENCE_MODULES = sorted(m.name for m in pkgutil.iter_modules(references.__path__))

# Reference functions no record uses, each with the reason.
UNUSED_ON_PURPOSE = {
    "identity": "the output layer of references.network's MLP; there is no torch op to check",
    "identity_vjp": "as identity",
    "dropout": "F.dropout draws its own mask; tests/test_layers.py recovers it and checks this",
    "dropout_vjp": "as dropout",
    "alpha_dropout": "as dropout: tests/test_layers.py recovers F.alpha_dropout's and "
                     "F.feature_alpha_dropout's masks and checks this",
    "alpha_dropout_vjp": "as alpha_dropout",
    "alpha_dropout_affine": "alpha_dropout's constants, checked with it",
    "batch_norm_running_stats": "a buffer update, not an op: tests/test_layers.py checks it",
    "relu_pre_activations": "where the relu RNN is not differentiable: suite/inputs/recurrent.py "
                            "keeps drawn cases off it",
    "max_pool_indices": "return_indices of max pooling, not differentiable: "
                        "tests/test_pooling.py compares torch's indices with it, and the "
                        "max_unpool input makers draw their indices with it",
    "adaptive_max_pool_indices": "return_indices of adaptive max pooling: tests/test_pooling.py",
    "instance_norm_running_stats": "as batch_norm_running_stats",
}
# Public reference modules whose functions are not the reference of a record, each with the reason.
NOT_RECORD_MODULES = {
    "network": "an MLP and training loops built from the other references: tests/test_training.py",
    "training": "training-level identities (accumulation, data parallelism, clipping, AMP's "
                "scaler, checkpointing): tests/test_identities.py, tests/test_distributed.py",
}


def _record_modules() -> list[ModuleType]:
    """The public modules of references/ that hold the references of records."""
    return [importlib.import_module(f"references.{name}") for name in REFERENCE_MODULES
            if not name.startswith("_") and name not in NOT_RECORD_MODULES]


def test_record_names_are_unique_and_sorted() -> None:
    for records in (catalog.OPS, catalog.OPTIMIZERS):
        names = [s.name for s in records]
        assert names == sorted(set(names)), f"duplicate or unsorted names: {names}"


@pytest.mark.parametrize("spec", catalog.OPS, ids=catalog.spec_id)
def test_reference_names_match_the_record(spec) -> None:
    assert spec.ref.__name__ == spec.name, f"{spec.name}: ref is {spec.ref.__name__}"
    assert spec.ref_vjp.__name__ == f"{spec.name}_vjp", \
        f"{spec.name}: ref_vjp is {spec.ref_vjp.__name__}, expected {spec.name}_vjp"
    assert spec.ref.__module__ == spec.ref_vjp.__module__
    assert spec.ref.__module__.startswith("references.")
    assert spec.docs.startswith("https://pytorch.org/docs/"), spec.docs


@pytest.mark.parametrize("spec", catalog.OPTIMIZERS, ids=catalog.spec_id)
def test_optimizer_reference_names_match_the_record(spec) -> None:
    assert spec.ref_step.__name__ == spec.name
    assert spec.ref_step.__module__.startswith("references.optim_"), spec.ref_step.__module__


def test_every_reference_function_is_used_by_a_record() -> None:
    used = {f.__name__ for s in catalog.OPS for f in (s.ref, s.ref_vjp)}
    used |= {s.ref_step.__name__
             for s in (*catalog.OPTIMIZERS, *optimizer_records.CLOSURE_RECORDS)}
    used |= {s.ref.__name__ for s in catalog.SCHEDULERS}
    for module in _record_modules():
        public = {n for n, f in inspect.getmembers(module, inspect.isfunction)
                  if not n.startswith("_") and f.__module__ == module.__name__}
        missing = public - used - set(UNUSED_ON_PURPOSE)
        assert not missing, f"{module.__name__} functions with no record: {sorted(missing)}"


def test_every_compile_refusal_names_a_record_and_a_compiled_backend() -> None:
    """A misspelt name in suite/catalog/compiling.py would refuse nothing: each must be a
    record, each backend a compiled one (or its ``"<backend> backward"``), and the record must
    carry the reason."""
    from suite import compiled
    from suite.catalog import compiling

    names = {spec.name: spec for spec in catalog.OPS}
    for name, reasons in compiling.NOT_COMPILED.items():
        assert name in names, f"compiling.NOT_COMPILED names no record: {name!r}"
        backends = set(compiled.COMPILED_BACKENDS)
        assert set(reasons) <= backends | {b + compiled.BACKWARD for b in backends}, \
            (name, reasons)
        for backend, reason in reasons.items():
            assert names[name].backends[backend] == reason and reason.startswith("torch ")


def test_every_dtype_has_a_tolerance_row() -> None:
    for kind, table in tols.TABLES.items():
        for name, dtype in devices.DTYPES.items():
            assert dtype in table, f"no {kind.value} tolerance for {name}"


def test_references_never_import_torch() -> None:
    for path in sorted((REPO / "references").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "torch" for n in names), \
                f"{path.name}:{node.lineno} imports torch"
    code = (f"import sys, {', '.join(f'references.{name}' for name in REFERENCE_MODULES)}; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0, \
        "importing references/ loaded torch"


def test_by_name_names_the_known_records_when_missing() -> None:
    with pytest.raises(KeyError, match=r"known records: .*tanh"):
        catalog.by_name("no_such_op")
