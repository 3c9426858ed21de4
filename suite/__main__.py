"""The command line: ``python -m suite <command>``.

Commands:
  list        every record (ops, optimizers, L-BFGS, schedulers): name, family, torch, reference.
  measure     run `pytest -m bench ARGS` in K fresh processes and merge them into one run file
              (the gate's unit is the process: suite/gate.py says why).
  compare     the regression gate: BASELINE vs NEW run, per benchmark the change and its
              significance (Mann-Whitney U across processes, Holm-adjusted); exits 1 only on
              significant slowdowns beyond --threshold, and refuses a NEW run that lacks
              benchmarks of the baseline unless --allow-missing.
  report      a markdown summary and PNG plots: time against size per op (torch beside NumPy,
              with the fitted growth exponent), a before/after chart, numerics drift, and with
              --versions the op x torch version matrix of the tox envs' saved results.
  gate-study  measure the gate itself: false alarms of same-build pairs and detection of a
              planted slowdown over a benchmark subset of every family (suite/study.py).
  check       run the battery on your own op or optimizer class, with a built-in record's
              mathematics (--like NAME), without writing a test file (suite/usercheck.py);
              exit status and summary are pytest's.

Thresholds are percentages with their % sign (20%): a bare number is refused.
Exit status: 0 fine, 1 a significant slowdown (compare), 2 bad input (one line on stderr, or
argparse's usage message for a bad option), 130 interrupted (nothing written).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from suite.gate import Run

# `list --family` choices (tests/test_command_line.py checks them against the catalogue; kept
# literal so that `--help` does not import torch).
FAMILIES = ("activation", "layer", "loss", "optimizer", "scheduler")


class InputError(Exception):
    """Bad input found by the command line itself: one line naming the fix."""


# --- option types: argparse reports their errors as usage errors (exit 2) ---------------


def _option_type(option: str, parse: Callable[[str], float]) -> Callable[[str], float]:
    def convert(text: str) -> float:
        from suite.gate import GateError

        try:
            return parse(text)
        except GateError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix(f"{option} ")) from None

    convert.__name__ = option.lstrip("-")
    return convert


def _threshold(text: str) -> float:
    from suite.gate import parse_threshold

    return parse_threshold(text)


def _alpha(text: str) -> float:
    from suite.gate import parse_alpha

    return parse_alpha(text)


def _growth(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 1):
        raise argparse.ArgumentTypeError(f"needs a factor of at least 1 such as 2, got {text!r}")
    return value


def _count(minimum: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"needs a whole number of at least {minimum}, "
                                             f"got {text!r}")
        return value

    convert.__name__ = "count"
    return convert


def _slowdown(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 1):
        raise argparse.ArgumentTypeError(f"needs a factor above 1 such as 1.5, got {text!r}")
    return value


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"needs positive sizes separated by commas such as "
                                         f"16,64,256, got {text!r}")
    return values


def _name_list(text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"needs record names separated by commas such as "
                                         f"tanh,linear,adam, got {text!r}")
    return names


# --- where results go: checked before any work -------------------------------------------


def _probe(folder: Path, what: str) -> None:
    """Create and remove a file in ``folder`` (an existing folder), or raise InputError."""
    import tempfile

    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".gradsuite-probe-")
    except OSError as err:
        raise InputError(f"{what}: cannot write in {folder} ({err.strerror or err}); choose a "
                         f"folder you can write") from None
    os.close(fd)
    os.unlink(tmp)


def _existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest parent that exists (relative paths stay relative)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def check_out_dir(out: str, option: str = "--out") -> None:
    """``out`` is, or can be created as, a folder this process can write in."""
    if not out:
        raise InputError(f"{option} needs a folder name, got ''")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {out}: is a file, not a folder; name a folder")
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        raise InputError(f"{option} {out}: {ancestor} is a file, so no folder can be made "
                         f"below it; name a folder")
    _probe(ancestor, f"{option} {out}")


def check_out_file(out: str, option: str = "--out") -> None:
    """``out`` can be written as a file: not a folder, its folder writable or creatable."""
    if not out:
        raise InputError(f"{option} needs a file name, got ''")
    path = Path(out)
    if path.is_dir() or out.endswith(("/", os.sep)):
        raise InputError(f"{option} {out}: is a folder; name a file such as "
                         f"{out.rstrip('/' + os.sep)}/run.json")
    ancestor = _existing_ancestor(path.parent)
    if not ancestor.is_dir():
        raise InputError(f"{option} {out}: {ancestor} is a file, so no file can be made "
                         f"below it; name a file in a folder")
    _probe(ancestor, f"{option} {out}")


# --- list ---------------------------------------------------------------------------------


def _qualname(fn: object) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__name__', repr(fn))}"


def records(family: str | None = None) -> list[tuple[str, str, str, str]]:
    """Every record as (name, family, torch callable or class, reference function)."""
    from suite import catalog
    from suite.catalog import optimizers

    rows = [(s.name, s.family, getattr(s.torch_fn, "__name__", repr(s.torch_fn)),
             _qualname(s.ref)) for s in catalog.OPS]
    rows += [(o.name, "optimizer", getattr(o.torch_cls, "__name__", "?"), _qualname(o.ref_step))
             for o in catalog.OPTIMIZERS]
    rows += [(o.name, "optimizer", getattr(o.torch_cls, "__name__", "?"), _qualname(o.ref_step))
             for o in optimizers.CLOSURE_RECORDS]
    rows += [(s.name, "scheduler", getattr(s.torch_cls, "__name__", "?"), _qualname(s.ref))
             for s in catalog.SCHEDULERS]
    return sorted((r for r in rows if family in (None, r[1])), key=lambda r: (r[1], r[0]))


def _list(args: argparse.Namespace) -> int:
    rows = [("name", "family", "torch", "reference"), *records(args.family)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    families = sorted({r[1] for r in rows[1:]})
    counts = ", ".join(f"{sum(r[1] == f for r in rows[1:])} {f}" for f in families)
    print(f"\n{len(rows) - 1} records ({counts})")
    return 0


# --- compare ------------------------------------------------------------------------------


def _compare(args: argparse.Namespace) -> int:
    from suite import gate, sampling

    if args.list:
        if args.new is not None:
            raise InputError("--list lists one file's benchmarks: python -m suite compare "
                             "--list FILE")
        run = gate.load_run(args.baseline)
        for k, b in run.benchmarks.items():
            print(f"{b.name}  ({k})")
        return 0
    if args.new is None:
        raise InputError("compare needs two files: python -m suite compare BASELINE NEW")
    if args.pytest_arg and not args.rerun:
        raise InputError("--pytest-arg only applies to --rerun: add --rerun or drop it")
    if args.rerun:
        sampling.check_pytest_args(args.pytest_arg)
    base, new = gate.load_run(args.baseline), gate.load_run(args.new)
    _check_machines(base, new, args.allow_different_machines)
    result = gate.compare_runs(base, new, threshold=args.threshold, alpha=args.alpha,
                               names=args.benchmark, allow_missing=args.allow_missing)
    for line in result.warnings:
        print(f"WARNING: {line}", file=sys.stderr)
    print(gate.table(result, markdown=args.markdown, only_changed=args.only_changed))
    for k in result.only_base:
        print(f"only in {base.path}: {k}")
    for k in result.only_new:
        print(f"only in {new.path}: {k}")
    print(gate.summary(result))
    slower = result.slower
    if args.rerun and slower:
        # Re-measured as NEW was: as many processes, as many at a time, as many rounds.
        rounds = (new.machine_info.get("gradsuite") or {}).get("bench_rounds")
        fixed = [f"--bench-rounds={rounds}"] if rounds and not any(
            a.startswith("--bench-rounds") for a in args.pytest_arg) else []
        again = sampling.rerun(base, [c.fullname for c in slower], threshold=args.threshold,
                               alpha=args.alpha, processes=new.processes,
                               parallel=new.parallel, pytest_args=[*fixed, *args.pytest_arg])
        confirmed = {c.fullname for c in again.slower}
        print(f"\nre-measured the {len(slower)} slower benchmarks:")
        print(gate.table(again, markdown=args.markdown))
        slower = [c for c in slower if c.fullname in confirmed]
        print(f"{len(slower)} of {len(result.slower)} slowdowns confirmed by the re-measurement"
              f"{'' if slower else ' (the others were transient load)'}")
    return 1 if slower else 0


def _check_machines(base: Run, new: Run, allow: bool) -> None:
    """Refuse runs from different hardware (unless allowed); warn on every differing field."""
    from suite import gate

    hardware, builds = gate.machine_differences(base, new)
    if hardware and not allow:
        raise InputError(f"the runs come from different machines ({hardware[0]}"
                         f"{f' and {len(hardware) - 1} more' if len(hardware) > 1 else ''}); "
                         f"timings are not comparable: pass --allow-different-machines "
                         f"to compare anyway")
    for line in (*hardware, *builds):
        print(f"WARNING: runs differ in {line}", file=sys.stderr)


# --- check --------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    from suite import usercheck

    return usercheck.run(args.target, args.like, args.reference, args.pytest_args)


# --- measure ------------------------------------------------------------------------------


def _measure(args: argparse.Namespace) -> int:
    from suite import sampling

    sampling.check_pytest_args(args.pytest_args)
    sampling.planted_slowdown(os.environ)
    check_out_file(args.out)
    sampling.check_parallel(args.parallel)
    run = sampling.measure(args.pytest_args, args.processes, args.out, parallel=args.parallel)
    print(f"wrote {args.out}: {len(run.benchmarks)} benchmarks, {run.processes} processes")
    return 0


# --- report -------------------------------------------------------------------------------


def _report(args: argparse.Namespace) -> int:
    from suite import drift, gate, matrix, report

    if args.baseline and args.bench is None:
        raise InputError("--baseline needs the new run: python -m suite report NEW "
                         "--baseline BASELINE")
    if args.bench is None and args.drift is None and args.versions is None:
        raise InputError("report needs something to report: a benchmark run (BENCH_JSON), "
                         "--drift OLD NEW, --versions RESULTS_DIR, or a combination")
    check_out_dir(args.out)
    # Read every input before writing anything.
    versions_text = None
    if args.versions:
        names = {r[0] for r in records()}
        versions_text = matrix.render_markdown(matrix.load(Path(args.versions), names))
    current = gate.load_run(args.bench) if args.bench else None
    baseline = gate.load_run(args.baseline) if args.baseline else None
    if baseline is not None and current is not None:
        _check_machines(baseline, current, args.allow_different_machines)
    written = []
    if current is not None or args.drift:
        written = report.render(current, out=args.out, baseline=baseline,
                                drift_paths=args.drift, threshold=args.threshold,
                                alpha=args.alpha, plots=not args.no_plots,
                                growth=args.drift_growth, allow_missing=args.allow_missing,
                                warn=lambda line: print(f"WARNING: {line}", file=sys.stderr))
    if versions_text is not None:
        path = Path(args.out) / "versions.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        drift.write_bytes_atomic(path, (versions_text + "\n").encode())
        print(versions_text)
        written.append(str(path))
    for path_text in written:
        print(f"wrote {path_text}")
    return 0


# --- gate-study ---------------------------------------------------------------------------


def _gate_study(args: argparse.Namespace) -> int:
    from suite import study

    check_out_dir(args.out)
    plan = study.plan(ops=args.ops, sizes=args.sizes, pairs=args.pairs,
                      processes=args.processes, slowdown=args.slowdown, alpha=args.alpha,
                      rounds=args.rounds, parallel=args.parallel)
    print(study.describe(plan))
    if args.plan:
        return 0
    result = study.run(plan, Path(args.out))
    print(result)
    return 0


# --- the parser ---------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m suite", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser(
        "list", help="list every record",
        description="Prints one line per record — every op (activations, layers, losses), "
                    "every optimizer (L-BFGS's closure record included) and every "
                    "learning-rate scheduler — in four columns: name (the id in test names, "
                    "`pytest -k NAME`), family, torch (the torch function or class checked) "
                    "and reference (the NumPy function it is checked against); then the "
                    "count per family.")
    listing.add_argument("--family", choices=FAMILIES, help="only records of this family")
    listing.set_defaults(run=_list)

    def gate_options(p: argparse.ArgumentParser) -> None:
        # 20%: README, Benchmarks, gives the false-alarm and detection rates measured.
        p.add_argument("--threshold", type=_option_type("--threshold", _threshold),
                       default="20%", metavar="PCT",
                       help="slowdowns smaller than this never fail the gate: a percentage "
                            "with its %% sign, 0%% to 100%% (default: 20%%; a bare number "
                            "such as 20 is refused)")
        p.add_argument("--alpha", type=_option_type("--alpha", _alpha), default=0.05,
                       help="significance level, family-wise over all benchmarks (Holm), "
                            "strictly between 0 and 1 (default: 0.05)")
        p.add_argument("--allow-different-machines", action="store_true",
                       help="compare runs from different CPUs/GPUs (warns on every field)")
        p.add_argument("--allow-missing", action="store_true",
                       help="accept a NEW run that lacks benchmarks of the baseline (without "
                            "it such a run, e.g. an interrupted one, is refused: exit 2)")

    comparing = commands.add_parser(
        "compare", help="the regression gate: BASELINE vs NEW benchmark run",
        description="Per benchmark: the change of the median with a bootstrap 95% interval "
                    "and a one-sided Mann-Whitney U test that the slowdown exceeds "
                    "--threshold, Holm-adjusted. The unit is the process when both runs hold "
                    "several (python -m suite measure), else the rounds of one process (with "
                    "a warning: it can false-alarm). Exit 1 only on a significant slowdown "
                    "beyond the threshold; 2 on bad input, including a NEW run that lacks "
                    "benchmarks of the baseline (unless --allow-missing).")
    comparing.add_argument("baseline", metavar="BASELINE")
    comparing.add_argument("new", metavar="NEW", nargs="?")
    gate_options(comparing)
    comparing.add_argument("--benchmark", action="append", default=[], metavar="NAME",
                           help="only this benchmark (name or full name; repeatable)")
    comparing.add_argument("--markdown", action="store_true", help="a markdown table")
    comparing.add_argument("--only-changed", action="store_true",
                           help="list only benchmarks judged slower or faster")
    comparing.add_argument("--rerun", action="store_true",
                           help="re-measure significantly slower benchmarks (pytest -m bench "
                                "on their node ids, here, in as many processes as NEW has) "
                                "and fail only when the slowdown shows again")
    comparing.add_argument("--pytest-arg", action="append", default=[], metavar="ARG",
                           help="an extra pytest argument for --rerun (repeatable; write "
                                "options as --pytest-arg=-x)")
    comparing.add_argument("--list", action="store_true",
                           help="list the benchmarks of BASELINE and exit")
    comparing.set_defaults(run=_compare)

    measuring = commands.add_parser(
        "measure", help="run the benchmarks in several processes, merged into one run file",
        description="Runs `python -m pytest -m bench PYTEST_ARGS --benchmark-json=...` in "
                    "--processes fresh processes, one after the other, and writes one run "
                    "file keeping each process's rounds (suite/sampling.py), for `compare`. "
                    "Put pytest's arguments after `--`: python -m suite measure --out "
                    "base.json -- --device cpu -k tanh. Costs --processes times one run.")
    measuring.add_argument("--processes", type=_count(2), default=10, metavar="K",
                           help="fresh processes to run, at least 2 (default: 10; the gate "
                                "can only fail when C(2K, K) exceeds the benchmarks compared "
                                "divided by alpha: K = 9 for 2000 at alpha 0.05)")
    measuring.add_argument("--parallel", type=_count(1), default=1, metavar="J",
                           help="processes measured at a time, each on its own core (default: 1; "
                                "the timings then hold the neighbours' cache and memory "
                                "traffic)")
    measuring.add_argument("--out", required=True, metavar="FILE",
                           help="the run file to write (atomically, once every process is done)")
    measuring.add_argument("pytest_args", nargs="*", metavar="PYTEST_ARG",
                           help="pytest's selection and options, after `--`")
    measuring.set_defaults(run=_measure)

    reporting = commands.add_parser(
        "report", help="markdown summary and PNG plots of a benchmark run",
        description="Writes OUT/summary.md (fit for a CI step summary) and PNG plots: time "
                    "against size per op with the fitted growth exponent, a before/after "
                    "chart with --baseline, and the tests whose error grew with --drift; "
                    "with --versions, OUT/versions.md. Every input is read before anything "
                    "is written.")
    reporting.add_argument("bench", metavar="BENCH_JSON", nargs="?",
                           help="a benchmark run (pytest -m bench --benchmark-json, or "
                                "python -m suite measure)")
    reporting.add_argument("--baseline", metavar="JSON", help="compare BENCH_JSON with this run")
    reporting.add_argument("--drift", nargs=2, metavar=("OLD", "NEW"),
                           help="two drift records (pytest --drift-json) to compare")
    reporting.add_argument("--drift-growth", type=_growth, default=2.0, metavar="FACTOR",
                           help="list tests whose error ratio grew by more than this factor, "
                                "at least 1 (default: 2)")
    reporting.add_argument("--versions", metavar="RESULTS_DIR",
                           help="the op x torch version matrix (pass with the largest error "
                                "relative to tolerance over passing tests, FAIL, xfail and "
                                "skip counts, time) over RESULTS_DIR/<env>/junit.xml and "
                                "drift.json, as the tox matrix saves them under .results/")
    reporting.add_argument("--out", default="bench-report", metavar="DIR",
                           help="where to write summary.md and the plots (default: "
                                "bench-report); checked for writing before any work")
    reporting.add_argument("--no-plots", action="store_true",
                           help="only the markdown (matplotlib not needed)")
    gate_options(reporting)
    reporting.set_defaults(run=_report)

    studying = commands.add_parser(
        "gate-study", help="measure the gate's false-alarm and detection rates",
        description="Measures, over a benchmark subset of every family (default: 3 "
                    "activations, 3 layers, 3 losses, 2 optimizers, float64 and float32, "
                    "n = 16, 64, 256: 204 benchmarks), --pairs same-build pairs of runs and "
                    "--pairs runs with every benchmark planted --slowdown times slower, each "
                    "run --processes fresh processes; then reports the pairs that alarmed at "
                    "10% and 20% and the slowed pairs caught (suite/study.py). Writes "
                    "OUT/runs/*.json (reused when the study is run again) and "
                    "OUT/study.md. Long: see --plan and the README.")
    studying.add_argument("--pairs", type=_count(1), default=10, metavar="N",
                          help="same-build pairs, and slowed pairs (default: 10)")
    studying.add_argument("--processes", type=_count(2), default=10, metavar="K",
                          help="processes a run (default: 10)")
    studying.add_argument("--slowdown", type=_slowdown, default=1.5, metavar="F",
                          help="the planted slowdown factor (default: 1.5)")
    studying.add_argument("--ops", type=_name_list, default=None, metavar="A,B,...",
                          help="the records to benchmark (default: suite.study.DEFAULT_OPS)")
    studying.add_argument("--sizes", type=_int_list, default=None, metavar="N,N,...",
                          help="the sizes n (default: 16,64,256)")
    studying.add_argument("--alpha", type=_option_type("--alpha", _alpha), default=0.05,
                          help="the gate's significance level (default: 0.05)")
    studying.add_argument("--out", default="gate-study", metavar="DIR",
                          help="where runs and the report go (default: gate-study)")
    studying.add_argument("--rounds", type=_count(5), default=None, metavar="N",
                          help="rounds a benchmark in every process (pytest --bench-rounds; "
                               "default: as suite.bench schedules them, 10 to 40)")
    studying.add_argument("--parallel", type=_count(1), default=1, metavar="J",
                          help="processes measured at a time, each on its own core (default: 1; "
                                "the timings then hold the neighbours' cache and memory "
                                "traffic)")
    studying.add_argument("--plan", action="store_true",
                          help="print the benchmarks and runs it would measure, and exit")
    studying.set_defaults(run=_gate_study)

    checking = commands.add_parser(
        "check", help="run the battery on your own op or optimizer class (no test file)",
        usage="python -m suite check MODULE:ATTR --like NAME [--reference MODULE:ATTR] "
              "[-- PYTEST_ARGS]",
        description="Runs gradsuite's battery on MODULE:ATTR (a function, a torch.library custom "
                    "op, or an optimizer class, importable from the working folder) with the "
                    "mathematics of the built-in record --like NAME (suite/usercheck.py). "
                    "Arguments after -- go to pytest. Exit status and summary are pytest's; "
                    "bad input exits 2 with one line.")
    checking.add_argument("target", metavar="MODULE:ATTR", help="e.g. mypkg.ops:my_gelu")
    checking.add_argument("--like", required=True, metavar="NAME",
                          help="the built-in record whose reference, inputs and tolerances to "
                               "use (`python -m suite list` lists them)")
    checking.add_argument("--reference", metavar="MODULE:ATTR",
                          help="your own NumPy reference: ATTR(**arrays, **options) and "
                               "ATTR_vjp(g, **arrays, **options) in place of the record's")
    checking.add_argument("pytest_args", nargs="*", default=[], metavar="PYTEST_ARG",
                          help="pytest's options, after `--`")
    checking.set_defaults(run=_check)
    return top


def _unrecognized(top: argparse.ArgumentParser, args: argparse.Namespace,
                  extra: list[str]) -> None:
    """argparse's usage error for arguments no option takes, from the subcommand, with the
    closest option or, for measure, where pytest's arguments go."""
    import difflib

    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    command = sub.choices[args.command]
    message = f"unrecognized arguments: {' '.join(extra)}"
    if args.command == "measure":
        message += ("; pytest's arguments go after --, as in: python -m suite measure "
                    "--out run.json -- -k tanh")
    else:
        options = [o for a in command._actions for o in a.option_strings]
        close = difflib.get_close_matches(extra[0].split("=", 1)[0], options, n=1)
        if close:
            message += f" (did you mean {close[0]}?)"
    command.error(message)


def main(argv: Sequence[str] | None = None) -> int:
    top = parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # What follows `--` is pytest's (check, measure): split it off before argparse, which gives
    # an optional-interleaved `nargs="*"` positional nothing and reports the rest unrecognised.
    passthrough: list[str] | None = None
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1:]
    args, extra = top.parse_known_args(argv)
    if passthrough is not None:
        if hasattr(args, "pytest_args"):
            args.pytest_args = [*(args.pytest_args or []), *passthrough]
        else:
            extra = [*extra, "--", *passthrough]
    if extra:
        _unrecognized(top, args, extra)
    from suite.drift import DriftError
    from suite.gate import GateError
    from suite.matrix import MatrixError
    from suite.usercheck import CheckError

    try:
        return int(args.run(args))
    except (GateError, DriftError, MatrixError, InputError, CheckError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) stopped reading: exit quietly, as other tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
