"""Bad command-line input to ``python -m suite`` gets a one-line error that names the fix, and a
non-zero exit. (The pytest plugin's options: tests/test_plugin_options.py.)"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent


# --- python -m suite: the table of docs/bad-inputs.md, row by row ------------------------

from tests import bad_inputs  # noqa: E402


def _tree(folder: pathlib.Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def bad_input_folder(tmp_path_factory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("bad-inputs")
    bad_inputs.make_files(folder)
    return folder


@pytest.mark.parametrize("row", bad_inputs.rows(), ids=lambda r: r.command)
def test_bad_input_of_python_m_suite(row: bad_inputs.Row, bad_input_folder: pathlib.Path,
                                     monkeypatch) -> None:
    """The row's command exits with the row's status and ends stderr with the row's line;
    our own errors are that one line, argparse's usage errors the usage then that line; and
    nothing is written."""
    if reason := bad_inputs.unavailable(row):
        pytest.skip(reason)
    monkeypatch.chdir(bad_input_folder)
    before = _tree(bad_input_folder)
    code, err = bad_inputs.run(row)
    assert (code, err[-1] if err else "") == (row.exit, row.message), "\n".join(err)
    if row.message.startswith("error: "):
        assert len(err) == 1, err
    else:
        assert row.message.startswith("python -m suite") and err[0].startswith("usage: ")
    assert _tree(bad_input_folder) == before, "a bad input left files behind"


def test_the_table_covers_every_command_and_option() -> None:
    """Each subcommand and each of its options appears in some row of the table."""
    from suite.__main__ import parser

    commands = " ".join(r.command for r in bad_inputs.rows())
    top = parser()
    sub = next(a for a in top._actions if a.__class__.__name__ == "_SubParsersAction")
    harmless = {"-h", "--help", "--markdown", "--only-changed", "--no-plots", "--plan",
                "--allow-different-machines"}
    for name, command in sub.choices.items():
        assert f"python -m suite {name}" in commands, name
        for action in command._actions:
            for option in set(action.option_strings) - harmless:
                assert option in commands, f"{name} {option} has no row in the table"


def test_list_families_are_the_catalogues() -> None:
    from suite import __main__ as cli
    from suite import catalog

    assert set(cli.FAMILIES) == {s.family for s in catalog.OPS} | {"optimizer", "scheduler"}


def test_list_prints_every_record(capsys) -> None:
    from suite import __main__ as cli
    from suite import catalog
    from suite.catalog import optimizers

    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = {line.split()[0] for line in out[1:] if line.strip() and "records" not in line}
    every = ({s.name for s in catalog.OPS} | {o.name for o in catalog.OPTIMIZERS}
             | {o.name for o in optimizers.CLOSURE_RECORDS} | {s.name for s in catalog.SCHEDULERS})
    assert names == every and out[0].split() == ["name", "family", "torch", "reference"]
    assert out[-1].startswith(f"{len(every)} records (")
    assert cli.main(["list", "--family", "scheduler"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:-2]
    assert {r.split()[0] for r in rows} == {s.name for s in catalog.SCHEDULERS}
    assert cli.main(["list", "--family", "optimizer"]) == 0
    assert "lbfgs" in capsys.readouterr().out


def test_output_into_a_closed_pipe_is_no_error(tmp_path: pathlib.Path) -> None:
    """`python -m suite compare --list run.json | head -1` on a long run: no traceback."""
    from tests import synthetic_runs as sr

    run = sr.write(tmp_path / "run.json", sr.simulate(0, sr.names(3000), processes=1,
                                                      rounds=5))
    reader = subprocess.Popen([sys.executable, "-m", "suite", "compare", "--list", str(run)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.readline()
    reader.stdout.close()
    err = reader.stderr.read().decode()
    assert reader.wait(timeout=60) == 0 and err == "", err


def test_help_does_not_import_torch() -> None:
    code = ("import sys; from suite.__main__ import main\n"
            "try:\n    main(['compare', '--help'])\nexcept SystemExit:\n    pass\n"
            "sys.stdout.flush(); print('torch' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.stderr.strip() == "False" and "--threshold PCT" in done.stdout


def test_what_follows_a_double_dash_goes_to_pytest(monkeypatch) -> None:
    """`python -m suite check T --like N -- ARGS` hands ARGS to pytest (argparse alone left
    them unrecognised: .ci/examples runs this command)."""
    from suite import __main__ as cli
    from suite import usercheck

    seen: dict[str, object] = {}

    def fake_run(target, like, reference, pytest_args):  # type: ignore[no-untyped-def]
        seen.update(target=target, like=like, pytest_args=pytest_args)
        return 0

    monkeypatch.setattr(usercheck, "run", fake_run)
    assert cli.main(["check", "ops:my_gelu", "--like", "gelu", "--", "--device", "cpu", "-k",
                     "float64"]) == 0
    assert seen == {"target": "ops:my_gelu", "like": "gelu",
                    "pytest_args": ["--device", "cpu", "-k", "float64"]}
