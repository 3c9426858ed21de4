"""Reports: a markdown summary (fit for a CI step summary) and PNG plots of benchmark runs.

``python -m suite report BENCH.json [--baseline BASE.json] [--drift OLD NEW] --out DIR`` writes

- ``DIR/summary.md``: the machine and builds; per op, the median time at each size of the sweep
  for torch (per device and dtype) and the NumPy reference, and the fitted growth exponent;
  with ``--baseline``, the regression gate's verdicts (``suite.gate``); with ``--drift``, the
  tests whose error relative to tolerance grew (``suite.drift``);
- ``DIR/scaling-<op>.png``: time against size, log-log, torch and NumPy side by side, one
  panel per pass, each line labelled with its growth exponent;
- ``DIR/comparison.png`` (with ``--baseline``): the change of each benchmark's median with its
  95% interval, coloured by verdict;
- for a run of the check-cost benchmark (``pytest -m bench -k checkcost``, ``suite.checkcost``):
  the ratio ours / gradcheck per record and size in ``summary.md``, the records above 1 at
  10^4 and 10^6 elements, and ``DIR/checkcost.png``, ratio against size.

Growth exponent. Time ~ c * n^k is fitted by least squares on log(median) against log(n) over
the upper half of the sweep (at least its two largest sizes), where fixed per-call overhead no
longer dominates: k ~ 2 for an elementwise op on n x n inputs, ~ 3 for an (n, n) @ (n, n)
linear layer. A k well below the op's arithmetic means overhead still dominates at that size.

matplotlib is imported only here, lazily (``pip install gradsuite[report]``). Every file is
written atomically (temporary file, then rename).
"""

from __future__ import annotations

import io
import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from suite import drift
from suite import gate as gt

MAX_CHART_ROWS = 30


def series_label(info: dict[str, Any]) -> str:
    """``numpy`` or ``torch cpu float32`` (optimizers: ``torch foreach cpu float32``); a
    setting other than the default adds its variant: ``torch cpu bfloat16 [dilation2]``."""
    impl = str(info.get("impl", "?"))
    if impl == "numpy":
        return "numpy"
    prefix = "torch" if impl == "torch" else f"torch {impl}"
    variant = f" [{info['variant']}]" if info.get("variant") else ""
    return f"{prefix} {info.get('device', '?')} {info.get('dtype', '?')}{variant}"


def scaling(run: gt.Run) -> dict[str, dict[str, dict[str, dict[int, float]]]]:
    """op -> pass -> series label -> {n: median seconds}, from the benchmarks' extra_info."""
    table: dict[str, dict[str, dict[str, dict[int, float]]]] = defaultdict(
        lambda: defaultdict(dict))
    for b in run.benchmarks.values():
        info = b.extra_info
        if not {"op", "pass", "n"} <= set(info) or info["n"] is None:
            continue
        table[str(info["op"])][str(info["pass"])].setdefault(series_label(info), {})[
            int(info["n"])] = b.median
    return {op: dict(passes) for op, passes in sorted(table.items())}


def growth_exponent(points: dict[int, float]) -> float:
    """k of time ~ c n^k, fitted over the upper half of the sweep (see the module docstring)."""
    ns = sorted(points)
    if len(ns) < 2:
        return math.nan
    upper = ns[-max(2, (len(ns) + 1) // 2):]
    x = np.log([float(n) for n in upper])
    y = np.log([points[n] for n in upper])
    return float(np.polyfit(x, y, 1)[0])


def _machine_lines(run: gt.Run) -> list[str]:
    info = run.machine_info
    ours = info.get("gradsuite") or {}
    cpu = ours.get("cpu_model") or (info.get("cpu") or {}).get("brand_raw") or "?"
    return [f"- run: `{run.path}`",
            f"- torch {ours.get('torch_version', '?')}, numpy {ours.get('numpy_version', '?')}, "
            f"python {info.get('python_version', '?')}",
            f"- CPU: {cpu}; CUDA device: {ours.get('cuda_device') or 'none'}",
            f"- threads: torch {ours.get('torch_threads', '?')}, "
            f"BLAS {ours.get('blas_threads', '?')}"]


def _scaling_markdown(table: dict[str, dict[str, dict[str, dict[int, float]]]]) -> list[str]:
    lines = ["## Time against size", "",
             "Median time per call; k is the fitted growth exponent (time ~ n^k over the upper "
             "half of the sweep).", ""]
    sizes = sorted({n for passes in table.values() for s in passes.values()
                    for pts in s.values() for n in pts})
    head = ["op", "pass", "implementation", *[f"n={n}" for n in sizes], "k"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for op, passes in table.items():
        for pass_, series in passes.items():
            for label, pts in sorted(series.items()):
                cells = [gt.format_time(pts[n]) if n in pts else "" for n in sizes]
                k = growth_exponent(pts)
                lines.append("| " + " | ".join([op, pass_, label, *cells,
                                                "" if math.isnan(k) else f"{k:.2f}"]) + " |")
    return lines


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise gt.GateError("matplotlib is missing: pip install 'gradsuite[report]' "
                           "(or pass --no-plots)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig: Any, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    drift.write_bytes_atomic(path, buffer.getvalue())


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def plot_scaling(op: str, passes: dict[str, dict[str, dict[int, float]]], path: Path) -> None:
    """Time against size for one op: a log-log panel per pass, a line per implementation and
    dtype (settings with a variant, timed at two sizes only, are in the table, not here)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(passes), figsize=(4.6 * len(passes), 3.6), squeeze=False)
    for ax, (pass_, series) in zip(axes[0], passes.items(), strict=True):
        for label, pts in sorted(series.items()):
            if label.endswith("]"):
                continue
            ns = sorted(pts)
            k = growth_exponent(pts)
            style = "--" if label == "numpy" else "-"
            ax.loglog(ns, [pts[n] for n in ns], style, marker="o", markersize=3,
                      label=f"{label} (k={k:.2f})" if not math.isnan(k) else label)
        ax.set_title(f"{op}: {pass_}", fontsize=10)
        ax.set_xlabel("size n (suite.bench: n x n inputs)")
        ax.set_ylabel("median time per call (s)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _checkcost_markdown(found: Sequence[Any]) -> list[str]:
    from suite import checkcost

    return ["## Check cost against gradcheck's fast mode", "",
            "ours / gradcheck: median time of gradsuite's three-way check of one case (forward, "
            "gradient, reference VJP against finite differences) over that of "
            "`torch.autograd.gradcheck(fast_mode=True, check_undefined_grad=False)` on the same "
            "input (float64, CPU, one thread; suite/checkcost.py). Columns: elements of the "
            "largest array; bold: above 1.", "",
            *checkcost.table_lines(found), ""]


def plot_checkcost(found: Sequence[Any], path: Path) -> None:
    """Ratio ours / gradcheck against elements, log-log: a thin line per record, the median
    across records bold, 1 dashed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    by_op: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for c in found:
        if c.ratio is not None:
            by_op[c.op].append((c.target, c.ratio))
    for points in by_op.values():
        points.sort()
        ax.loglog([p[0] for p in points], [p[1] for p in points], color="tab:gray",
                  alpha=0.35, linewidth=0.8)
    targets = sorted({t for points in by_op.values() for t, _ in points})
    medians = [float(np.median([r for points in by_op.values() for t, r in points if t == x]))
               for x in targets]
    ax.loglog(targets, medians, color="tab:blue", marker="o", linewidth=2,
              label=f"median over {len(by_op)} records")
    ax.axhline(1.0, color="black", linestyle="--", linewidth=0.8, label="as dear as gradcheck")
    plain = plt.FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_xlabel("elements of the largest array")
    ax.set_ylabel("time of ours / time of gradcheck (fast mode)")
    ax.set_title("Check cost against gradcheck, one line per record", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def plot_comparison(result: gt.GateResult, path: Path) -> None:
    """Before/after: each benchmark's change of median with its 95% interval (the largest
    ``MAX_CHART_ROWS`` changes), red when significantly slower, green when faster."""
    plt = _pyplot()
    rows = sorted(result.comparisons, key=lambda c: (c.verdict == "same", -abs(c.ratio - 1)))
    rows = rows[:MAX_CHART_ROWS][::-1]
    fig, ax = plt.subplots(figsize=(8.5, 1.2 + 0.26 * len(rows)))
    colours = {"SLOWER": "tab:red", "faster": "tab:green", "same": "tab:gray"}
    y = np.arange(len(rows))
    change = [100 * (c.ratio - 1) for c in rows]
    err = np.array([[100 * (c.ratio - c.ci[0]) for c in rows],
                    [100 * (c.ci[1] - c.ratio) for c in rows]]).clip(min=0)
    ax.barh(y, change, xerr=err, color=[colours[c.verdict] for c in rows], alpha=0.8,
            error_kw={"elinewidth": 0.8})
    ax.set_yticks(y, [c.name.split("[", 1)[-1].rstrip("]") for c in rows], fontsize=6)
    for x in (100 * result.threshold, -100 * result.threshold):
        ax.axvline(x, color="black", linestyle=":", linewidth=0.8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"change of median time, % (95% CI); dotted: ±{100 * result.threshold:g}% "
                  f"threshold; red: significantly slower")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _comparison_markdown(result: gt.GateResult, baseline: gt.Run, current: gt.Run) -> list[str]:
    lines = ["## Comparison with the baseline", "",
             f"`{baseline.path}` → `{current.path}`: {gt.summary(result)}.", ""]
    changed = [c for c in result.comparisons if c.verdict != "same"]
    if changed:
        sub = gt.GateResult(changed, [], [], result.threshold, result.alpha)
        lines += [gt.table(sub, markdown=True), ""]
    else:
        lines += ["No benchmark changed significantly beyond the threshold.", ""]
    if result.only_base or result.only_new:
        lines.append(f"{len(result.only_base)} benchmarks only in the baseline, "
                     f"{len(result.only_new)} only in the new run.")
    return lines


def _drift_markdown(paths: Sequence[str], growth: float) -> list[str]:
    old, new = drift.load(paths[0]), drift.load(paths[1])
    rows = drift.grown(old, new, factor=growth)
    lines = ["## Numerics drift", "",
             f"`{old.path}` → `{new.path}`: {len(rows)} of "
             f"{len(set(old.tests) & set(new.tests))} tests in both saw their largest error "
             f"(relative to tolerance) grow more than {growth:g}x.", ""]
    for line in drift.metadata_differences(old, new):
        lines.append(f"- {line}")
    lines.append("")
    if rows:
        lines += ["| test | comparison | before | after | growth |", "|---|---|---|---|---|"]
        for g in rows:
            lines.append(f"| `{g.test}` | {g.what} | {g.old:.3g} | {g.new:.3g} | "
                         f"{'new' if math.isinf(g.factor) else f'{g.factor:.3g}x'} |")
    return lines


def render(current: gt.Run | None, *, out: str, baseline: gt.Run | None = None,
           drift_paths: Sequence[str] | None = None, threshold: float = 0.20,
           alpha: float = 0.05, plots: bool = True, growth: float = 2.0,
           allow_missing: bool = False,
           warn: Callable[[str], None] | None = None) -> list[str]:
    """Write the summary and plots to ``out``; return the paths written. Every input is read
    and compared before the first file is written; ``warn`` receives the gate's warnings."""
    outdir = Path(out)
    drift_lines = _drift_markdown(drift_paths, growth) if drift_paths else []
    result = gt.compare_runs(baseline, current, threshold=threshold, alpha=alpha,
                             allow_missing=allow_missing) \
        if baseline is not None and current is not None else None
    if result is not None and warn is not None:
        for line in result.warnings:
            warn(line)
    if plots:
        _pyplot()  # fail before writing anything when matplotlib is missing
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise gt.GateError(f"{out}: cannot create the report folder ({err})") from None
    written: list[str] = []
    lines = ["# gradsuite benchmark report", ""]
    if current is not None:
        lines += [*_machine_lines(current), ""]
        table = scaling(current)
        lines += _scaling_markdown(table)
        lines.append("")
        if plots:
            for op, passes in table.items():
                path = outdir / f"scaling-{_safe(op)}.png"
                plot_scaling(op, passes, path)
                written.append(str(path))
                lines.append(f"![{op}]({path.name})")
            lines.append("")
    if current is not None:
        from suite import checkcost

        found = checkcost.cells(list(current.benchmarks.values()))
        if found:
            lines += _checkcost_markdown(found)
            if plots:
                path = outdir / "checkcost.png"
                plot_checkcost(found, path)
                written.append(str(path))
                lines += [f"![check cost]({path.name})", ""]
    if result is not None and baseline is not None and current is not None:
        lines += _comparison_markdown(result, baseline, current)
        if plots:
            path = outdir / "comparison.png"
            plot_comparison(result, path)
            written.append(str(path))
            lines += ["", f"![comparison]({path.name})", ""]
    lines += drift_lines
    summary_path = outdir / "summary.md"
    drift.write_bytes_atomic(summary_path, ("\n".join(lines).rstrip() + "\n").encode())
    return [str(summary_path), *written]
