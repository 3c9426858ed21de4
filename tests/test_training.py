"""Whole training loops: torch's parameters after every step against the reference loop.

The textbook linear-regression example (``nn.Linear(1, 1)``, ``nn.MSELoss()``, ``optim.SGD``
with lr 0.01, 1000 steps) and an MLP subclassing ``nn.Module`` (two hidden layers, tanh and
relu, cross entropy, Adam). Initial parameters come from the torch module's own
initialisation under a drawn seed, the data from the same seed; both go into the run the check
receives (``suite.trainloops``), so a failure's standalone reproducer holds them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from suite import checks, reproduce
from suite import strategies as hs
from suite.compare import to_numpy
from suite.trainloops import LINEAR_REGRESSION, MLP, MLP_CLASSIFIER, TrainingLoop, mlp_parameters


def _check(loop: TrainingLoop, run: dict[str, Any], dtype: torch.dtype, device: str) -> None:
    """The check, writing a standalone reproducer when it fails."""
    __tracebackhide__ = True
    with reproduce.on_failure(loop, "training_trajectory", run, dtype=dtype, device=device):
        checks.run("training_trajectory", loop, run, dtype=dtype, device=device)


@given(seed=hs.SEEDS, n=st.integers(1, 200), noise=st.sampled_from([0.0, 0.1, 1.0]))
def test_linear_regression_trajectory_matches_reference(dtype, device, seed, n, noise) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, size=(n, 1))
    y = 2.0 * x + 1.0 + noise * rng.standard_normal((n, 1))
    torch.manual_seed(seed)
    init = nn.Linear(1, 1).to(dtype=torch.float64)
    run = {"x": x, "y": y, "weight": to_numpy(init.weight), "bias": to_numpy(init.bias),
           "lr": 0.01, "steps": 1000}
    _check(LINEAR_REGRESSION, run, dtype, device)


# float64 only: relu's kink makes float32 trajectories part ways legitimately as soon as one
# pre-activation rounds to the other side of 0, after which no tolerance is meaningful.
@given(seed=hs.SEEDS, n=st.integers(1, 64), n_in=st.integers(1, 8),
       hidden=st.tuples(st.integers(1, 16), st.integers(1, 16)), n_classes=st.integers(2, 5),
       amsgrad=st.booleans(), weight_decay=st.sampled_from([0.0, 1e-2]))
def test_mlp_classifier_trajectory_matches_reference(device, seed, n, n_in, hidden, n_classes,
                                                     amsgrad, weight_decay) -> None:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    run = {"x": rng.standard_normal((n, n_in)),
           "target": rng.integers(0, n_classes, size=n),
           "layers": mlp_parameters(MLP(n_in, hidden, n_classes).to(dtype=torch.float64)),
           "hyper": {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8,
                     "weight_decay": weight_decay, "amsgrad": amsgrad},
           "steps": 100}
    _check(MLP_CLASSIFIER, run, torch.float64, device)


def test_a_failing_loop_leaves_a_standalone_reproducer(pytester, monkeypatch) -> None:
    """A planted bug in SGD (the step taken twice over) fails the loop, and the script the
    failure names fails the same way under plain python, then passes once the bug is gone."""
    pytester.makepyfile(test_loop="""
import numpy as np
import torch
from suite import checks, reproduce
from suite.trainloops import LINEAR_REGRESSION

def test_loop():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(70, 1))
    run = {"x": x, "y": 2 * x + 1, "weight": np.array([[0.3]]), "bias": np.array([-0.2]),
           "lr": 0.01, "steps": 30}
    with reproduce.on_failure(LINEAR_REGRESSION, "training_trajectory", run,
                              dtype=torch.float64, device="cpu"):
        checks.run("training_trajectory", LINEAR_REGRESSION, run, dtype=torch.float64,
                   device="cpu")
""", conftest="""
import torch
_step = torch.optim.SGD.step

def _twice(self, *args, **kwargs):
    _step(self, *args, **kwargs)
    return _step(self, *args, **kwargs)

torch.optim.SGD.step = _twice
""")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "0", "--device", "cpu")
    result.assert_outcomes(failed=1)
    line = next(x for x in result.outlines if "Standalone reproducer: python " in x)
    script = line.split("Standalone reproducer: python ", 1)[1].strip()
    planted = pytester.run("python", "-c",
                           "import runpy, sys, conftest; sys.argv = [sys.argv[1]]; "
                           "runpy.run_path(sys.argv[0], run_name='__main__')", script)
    assert planted.ret == 1, planted.outlines
    assert any("linear regression: weight trajectory" in x for x in planted.outlines)
    fixed = pytester.run("python", script)
    assert fixed.ret == 0, fixed.outlines
