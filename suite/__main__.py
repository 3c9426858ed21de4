"""The command line: ``python -m suite <command>``.

Commands:
  list     every record: name, family, the torch callable, the reference, the torch docs.
  compare  the regression gate: BASELINE vs NEW pytest-benchmark JSON, per benchmark the change
           and its significance (Mann-Whitney U on the rounds, Holm-adjusted); exits 1 only on
           significant slowdowns beyond --threshold (see suite/gate.py for the method).
  report   a markdown summary and PNG plots: time against size per op (torch beside NumPy,
           with the fitted growth exponent), a before/after chart, numerics drift, and with
           --versions the op x torch version matrix of the tox envs' saved results.

Exit status: 0 fine, 1 a significant slowdown (compare), 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from suite.gate import Run


def _list(args: argparse.Namespace) -> int:
    from suite import catalog

    rows = [("name", "family", "torch", "reference")]
    for spec in catalog.OPS:
        if args.family in (None, spec.family):
            torch_name = getattr(spec.torch_fn, "__name__", repr(spec.torch_fn))
            reference = (f"{spec.ref.__module__}.{spec.ref.__name__}" if spec.ref is not None
                         else "(reference-free)")
            rows.append((spec.name, spec.family, torch_name, reference))
    for opt in catalog.OPTIMIZERS:
        if args.family in (None, "optimizer"):
            rows.append((opt.name, "optimizer", getattr(opt.torch_cls, "__name__", "?"),
                         f"{opt.ref_step.__module__}.{opt.ref_step.__name__}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"\n{len(rows) - 1} records")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from suite import gate

    if args.list:
        run = gate.load_run(args.baseline)
        for k, b in run.benchmarks.items():
            print(f"{b.name}  ({k})")
        return 0
    if args.new is None:
        raise gate.GateError("compare needs two files: BASELINE NEW")
    threshold = gate.parse_threshold(args.threshold)
    base, new = gate.load_run(args.baseline), gate.load_run(args.new)
    _check_machines(base, new, args.allow_different_machines)
    result = gate.compare_runs(base, new, threshold=threshold, alpha=args.alpha,
                               names=args.benchmark)
    print(gate.table(result, markdown=args.markdown, only_changed=args.only_changed))
    for k in result.only_base:
        print(f"only in {base.path}: {k}")
    for k in result.only_new:
        print(f"only in {new.path}: {k}")
    print(gate.summary(result))
    slower = result.slower
    if args.rerun and slower:
        again = gate.rerun(base, [c.fullname for c in slower], threshold=threshold,
                           alpha=args.alpha, pytest_args=args.pytest_arg)
        confirmed = {c.fullname for c in again.slower}
        print(f"\nre-measured the {len(slower)} slower benchmarks:")
        print(gate.table(again, markdown=args.markdown))
        slower = [c for c in slower if c.fullname in confirmed]
        print(f"{len(slower)} of {len(result.slower)} slowdowns confirmed by the re-measurement"
              f"{'' if slower else ' (the others were transient load)'}")
    return 1 if slower else 0


def _check(args: argparse.Namespace) -> int:
    from suite import usercheck

    return usercheck.run(args.target, args.like, args.reference, args.pytest_args)


def _check_machines(base: Run, new: Run, allow: bool) -> None:
    """Refuse runs from different hardware (unless allowed); warn on every differing field."""
    from suite import gate

    hardware, builds = gate.machine_differences(base, new)
    if hardware and not allow:
        raise gate.GateError(f"the runs come from different machines ({hardware[0]}"
                             f"{f' and {len(hardware) - 1} more' if len(hardware) > 1 else ''}); "
                             f"timings are not comparable: pass --allow-different-machines "
                             f"to compare anyway")
    for line in (*hardware, *builds):
        print(f"WARNING: runs differ in {line}", file=sys.stderr)


def _versions(results: str, out: str) -> None:
    """Print (and save as OUT/versions.md) the op x torch version matrix of RESULTS."""
    from pathlib import Path

    from suite import catalog, drift, matrix

    records = {s.name for s in catalog.OPS} | {s.name for s in catalog.OPTIMIZERS} | {
        s.name for s in catalog.SCHEDULERS}
    text = matrix.render_markdown(matrix.load(Path(results), records))
    path = Path(out) / "versions.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    drift.write_bytes_atomic(path, (text + "\n").encode())
    print(text)
    print(f"wrote {path}")


def _report(args: argparse.Namespace) -> int:
    from suite import gate, report

    if args.versions:
        _versions(args.versions, args.out)
        if args.bench is None and args.drift is None:
            return 0
    if args.bench is None and args.drift is None:
        raise gate.GateError("report needs a benchmark JSON file, --drift OLD NEW, --versions "
                             "DIR, or a combination")
    baseline = None
    current = gate.load_run(args.bench) if args.bench else None
    if args.baseline:
        if current is None:
            raise gate.GateError("--baseline needs the new run: python -m suite report NEW "
                                 "--baseline BASELINE")
        baseline = gate.load_run(args.baseline)
        _check_machines(baseline, current, args.allow_different_machines)
    written = report.render(current, out=args.out, baseline=baseline, drift_paths=args.drift,
                            threshold=gate.parse_threshold(args.threshold), alpha=args.alpha,
                            plots=not args.no_plots, growth=args.drift_growth)
    for path in written:
        print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m suite", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="list every record")
    listing.add_argument("--family", choices=("activation", "layer", "loss", "optimizer"),
                         help="only records of this family")
    listing.set_defaults(run=_list)

    def gate_options(p: argparse.ArgumentParser) -> None:
        # 20%: on the shared 2-core machine, 0 of 20 same-build comparisons alarmed at 20%
        # and 2 of 20 at 10% (both cleared by --rerun); a planted 1.5x slowdown was caught
        # 20 of 20 times at either (README, Benchmarks).
        p.add_argument("--threshold", default="20%", metavar="PCT",
                       help="slowdowns smaller than this never fail the gate (default: 20%%)")
        p.add_argument("--alpha", type=float, default=0.05,
                       help="significance level, family-wise over all benchmarks (Holm); "
                            "default: 0.05")
        p.add_argument("--allow-different-machines", action="store_true",
                       help="compare runs from different CPUs/GPUs (warns on every field)")

    comparing = commands.add_parser(
        "compare", help="the regression gate: BASELINE vs NEW pytest-benchmark JSON",
        description="Per benchmark: the change of the median with a bootstrap 95%% interval "
                    "and a one-sided Mann-Whitney U test on the rounds that the slowdown "
                    "exceeds --threshold, Holm-adjusted. Exit 1 only on a significant "
                    "slowdown beyond the threshold, 2 on bad input.")
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
                                "on their node ids, here) and fail only when the slowdown "
                                "shows again: filters out bursts of load on shared machines")
    comparing.add_argument("--pytest-arg", action="append", default=[], metavar="ARG",
                           help="an extra pytest argument for --rerun (repeatable)")
    comparing.add_argument("--list", action="store_true",
                           help="list the benchmarks of BASELINE and exit")
    comparing.set_defaults(run=_compare)

    reporting = commands.add_parser(
        "report", help="markdown summary and PNG plots of a benchmark run",
        description="Writes OUT/summary.md (fit for a CI step summary) and PNG plots: time "
                    "against size per op with the fitted growth exponent, a before/after "
                    "chart with --baseline, and the tests whose error grew with --drift.")
    reporting.add_argument("bench", metavar="BENCH_JSON", nargs="?",
                           help="a pytest-benchmark JSON file (pytest -m bench --benchmark-json)")
    reporting.add_argument("--baseline", metavar="JSON", help="compare BENCH_JSON with this run")
    reporting.add_argument("--drift", nargs=2, metavar=("OLD", "NEW"),
                           help="two drift records (pytest --drift-json) to compare")
    reporting.add_argument("--drift-growth", type=float, default=2.0, metavar="FACTOR",
                           help="list tests whose error ratio grew by more than this factor "
                                "(default: 2)")
    reporting.add_argument("--versions", metavar="RESULTS_DIR",
                           help="the op x torch version matrix (pass/fail, largest error "
                                "relative to tolerance, time) over RESULTS_DIR/<env>/junit.xml "
                                "and drift.json, as the tox matrix saves them under .results/")
    reporting.add_argument("--out", default="bench-report", metavar="DIR",
                           help="where to write summary.md and the plots (default: bench-report)")
    reporting.add_argument("--no-plots", action="store_true",
                           help="only the markdown (matplotlib not needed)")
    gate_options(reporting)
    reporting.set_defaults(run=_report)

    checking = commands.add_parser(
        "check", help="run the battery on your own op or optimizer class (no test file)",
        usage="python -m suite check MODULE:ATTR --like NAME [--reference MODULE:ATTR] "
              "[-- PYTEST_ARGS]",
        description="Runs gradsuite's battery on MODULE:ATTR (a function, a torch.library custom "
                    "op, or an optimizer class, importable from the working folder) with the "
                    "mathematics of the built-in record --like NAME. Arguments after -- go to "
                    "pytest. Exit status and summary are pytest's; bad input exits 2 with one "
                    "line.")
    checking.add_argument("target", metavar="MODULE:ATTR", help="e.g. mypkg.ops:my_gelu")
    checking.add_argument("--like", required=True, metavar="NAME",
                          help="the built-in record whose reference, inputs and tolerances to "
                               "use (`python -m suite list` lists them)")
    checking.add_argument("--reference", metavar="MODULE:ATTR",
                          help="your own NumPy reference: ATTR(**arrays, **options) and "
                               "ATTR_vjp(g, **arrays, **options) in place of the record's")
    checking.set_defaults(run=_check)

    # Everything after a bare -- goes to pytest (check); argparse would read it as options.
    given = list(sys.argv[1:] if argv is None else argv)
    cut = given.index("--") if "--" in given else len(given)
    args = parser.parse_args(given[:cut])
    args.pytest_args = given[cut + 1:]
    from suite.drift import DriftError
    from suite.gate import GateError
    from suite.matrix import MatrixError
    from suite.usercheck import CheckError

    try:
        return int(args.run(args))
    except (GateError, DriftError, MatrixError, CheckError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
