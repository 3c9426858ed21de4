"""The command line: ``python -m suite <command>``.

Commands:
  list    every record: name, family, the torch callable, the reference, the torch docs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _list(args: argparse.Namespace) -> int:
    from suite import catalog

    rows = [("name", "family", "torch", "reference")]
    for spec in catalog.OPS:
        if args.family in (None, spec.family):
            torch_name = getattr(spec.torch_fn, "__name__", repr(spec.torch_fn))
            rows.append((spec.name, spec.family, torch_name,
                         f"{spec.ref.__module__}.{spec.ref.__name__}"))
    for opt in catalog.OPTIMIZERS:
        if args.family in (None, "optimizer"):
            rows.append((opt.name, "optimizer", getattr(opt.torch_cls, "__name__", "?"),
                         f"{opt.ref_step.__module__}.{opt.ref_step.__name__}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"\n{len(rows) - 1} records")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m suite", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="list every record")
    listing.add_argument("--family", choices=("activation", "layer", "loss", "optimizer"),
                         help="only records of this family")
    listing.set_defaults(run=_list)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
