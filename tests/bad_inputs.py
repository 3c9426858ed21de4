"""The bad-input table of docs/bad-inputs.md, section "python -m suite", as test cases.

The table is the single source: each row is a command, the exit status and the last line of
stderr (the one-line error, or the last line of argparse's usage error). Commands run in a
folder holding the files of ``make_files`` (the section's legend describes them), so messages
name short relative paths. ``tests/test_command_line.py`` runs every row;

    PYTHONPATH=. python -m tests.bad_inputs

prints the table as the commands behave now (paste it over the old one when a message changes
on purpose; the test then agrees again).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from suite import drift
from tests import synthetic_runs as sr

DOC = Path(__file__).resolve().parent.parent / "docs" / "bad-inputs.md"
SECTION = "## python -m suite"
HEADER = "| command | exit | stderr (last line) |"
_ROW = re.compile(r"^\| `(?P<command>[^`]+)` \| (?P<exit>\d+) \| `` (?P<message>.*) `` \|$")


@dataclass(frozen=True)
class Row:
    command: str
    exit: int
    message: str

    @property
    def env(self) -> dict[str, str]:
        words = shlex.split(self.command)
        return dict(w.split("=", 1) for w in words[:words.index("python")])

    @property
    def argv(self) -> list[str]:
        words = shlex.split(self.command)
        start = words.index("python")
        assert words[start:start + 3] == ["python", "-m", "suite"], self.command
        return words[start + 3:]

    def markdown(self) -> str:
        return f"| `{self.command}` | {self.exit} | `` {self.message} `` |"


def rows(text: str | None = None) -> list[Row]:
    """The rows of the section's table."""
    text = DOC.read_text(encoding="utf-8") if text is None else text
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    found = []
    for line in section.splitlines():
        if line.startswith("| `"):
            match = _ROW.match(line)
            assert match, f"malformed row in {DOC}: {line}"
            found.append(Row(match["command"], int(match["exit"]), match["message"]))
    return found


def make_files(folder: Path) -> None:
    """The files the commands name (the section's legend)."""
    bench = sr.names(24)
    sr.write(folder / "base.json", sr.simulate(0, bench, processes=10))
    sr.write(folder / "new.json", sr.simulate(1, bench, processes=10))
    sr.write(folder / "partial.json", sr.simulate(1, bench[:4], processes=10))
    sr.write(folder / "other.json", sr.simulate(1, [n.replace("[b", "[c") for n in bench],
                                                processes=10))
    sr.write(folder / "fewprocs.json", sr.simulate(1, bench, processes=3))
    sr.write(folder / "fewrounds.json", sr.simulate(1, bench, processes=1, rounds=3))
    machine = json.loads(json.dumps(sr.MACHINE))
    machine["cpu"]["brand_raw"] = machine["gradsuite"]["cpu_model"] = "another CPU"
    sr.write(folder / "othermachine.json", sr.simulate(1, bench, processes=10), machine=machine)
    text = (folder / "base.json").read_text()
    (folder / "truncated.json").write_text(text[:len(text) // 2])
    (folder / "empty.json").write_text("")
    (folder / "notjson.txt").write_text("hello\n")
    (folder / "binary.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    (folder / "list.json").write_text("[1, 2]")
    (folder / "nobenchmarks.json").write_text('{"benchmarks": []}')
    (folder / "norounds.json").write_text(
        '{"benchmarks": [{"fullname": "t.py::test_x", "stats": {"median": 0.001}}]}')
    (folder / "badrounds.json").write_text(
        '{"benchmarks": [{"fullname": "t.py::test_x", "stats": {"data": [0.001, -1]}}]}')
    data = sr.run_data(sr.simulate(1, bench, processes=10))
    data["machine_info"] = []
    (folder / "badmachine.json").write_text(json.dumps(data))
    data = sr.run_data(sr.simulate(1, bench[:2], processes=1))
    data["benchmarks"].append(data["benchmarks"][0])
    (folder / "duplicate.json").write_text(json.dumps(data))
    data = sr.run_data(sr.simulate(1, bench, processes=10))
    data["gradsuite"]["processes"] = 0
    (folder / "badprocs.json").write_text(json.dumps(data))
    drift.save(folder / "drift.json", {"t.py::test_x": {"ratio": 0.5, "what": "x", "context": "",
                                                        "comparisons": 1}},
               {"torch_version": "2.13.0"})
    (folder / "ops.py").write_text("def my_gelu(input, approximate='none'):\n"
                                   "    return input\n\nnumber = 3.0\n")
    (folder / "folder").mkdir()
    (folder / "junkresults" / "env").mkdir(parents=True)
    (folder / "junkresults" / "env" / "junit.xml").write_text("<testsuites><testcase")


def unavailable(row: Row) -> str | None:
    """Why a row cannot run on this machine (it needs Linux's /proc or /sys), or None."""
    if "/proc/self/mem" in row.command and not Path("/proc/self/mem").exists():
        return "needs Linux's /proc/self/mem (a file whose read fails)"
    if "/sys/" in row.command:
        try:
            fd, tmp = tempfile.mkstemp(dir="/sys")
        except OSError:
            return None
        os.close(fd)
        os.unlink(tmp)
        return "needs a /sys that refuses new files (Linux)"
    return None


def run(row: Row) -> tuple[int, list[str]]:
    """Run ``row`` in the current folder: (exit status, stderr lines)."""
    from suite.__main__ import main

    err, out = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in row.env}
    os.environ.update(row.env)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main(row.argv)
            except SystemExit as exit_:
                code = int(exit_.code or 0)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return code, err.getvalue().splitlines()


def regenerate() -> str:
    """The table with the documented commands' current exit status and message."""
    lines = [HEADER, "|---|---|---|"]
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        make_files(Path(tmp))
        os.chdir(tmp)
        try:
            for row in rows():
                code, err = run(row)
                lines.append(Row(row.command, code, err[-1] if err else "").markdown())
        finally:
            os.chdir(here)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(regenerate() + "\n")
