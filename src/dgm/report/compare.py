"""One page comparing runs (``dgm compare DIR1 DIR2 ...``): their training curves overlaid
(every phase's training loss, and the validation NLL, per run), one metrics table with a
column per run (every run evaluated on the same first ``eval_n`` test examples), the
configuration entries that differ, and each run's samples side by side. Self-contained like
the single-run report (``dgm.report.html``).

Example:
    >>> records = [{"step": 10, "loss": 3.0}, {"step": 20, "loss": 2.0, "valid/nll": 2.5}]
    >>> curve_series(records)
    {'loss': [(10, 3.0), (20, 2.0)], 'valid/nll': [(20, 2.5)]}
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from dgm.report import plots
from dgm.report.html import (
    ReportRun,
    esc,
    figure,
    flatten,
    html_table,
    note,
    open_run,
    page,
    run_metrics,
    sample_parts,
    section,
    write_page,
)

COMPARE = "compare.html"  # the default output, in the current folder


def curve_series(records: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """(step, value) points of every training loss (``loss``, ``<phase>/loss``) and of the
    validation NLL (``valid/nll``) in metrics.jsonl records."""
    series: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        for k, v in r.items():
            train_loss = not k.startswith("valid/") and k.rpartition("/")[2] == "loss"
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            if (train_loss or k == "valid/nll") and number and "step" in r:
                series.setdefault(k, []).append((int(r["step"]), float(v)))
    return series


def overlaid_curves(runs: list[ReportRun], size: tuple[int, int] = (960, 400)) -> Image.Image:
    """Two panels: the training losses and the validation NLL (nats per example) of every
    run, one colour per run (line styles tell the phases of a multi-phase run apart)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / 96, size[1] / 96), dpi=96)
    train_ax, valid_ax = fig.subplots(1, 2)
    styles = ["-", "--", ":", "-."]
    for i, run in enumerate(runs):
        colour = f"C{i % 10}"
        series = curve_series(run.records)
        losses = [k for k in series if k != "valid/nll"]
        for j, k in enumerate(losses):
            steps, values = zip(*series[k], strict=True)
            label = run.name if len(losses) == 1 else f"{run.name} {k}"
            marker = "." if len(steps) < 50 else None  # a curve of one point stays visible
            train_ax.plot(
                steps, values, styles[j % 4], marker=marker, color=colour, label=label, lw=1.2
            )
        if "valid/nll" in series:
            steps, values = zip(*series["valid/nll"], strict=True)
            valid_ax.plot(steps, values, "o-", color=colour, label=run.name, markersize=3)
    for ax, title in ((train_ax, "training loss"), (valid_ax, "validation NLL (nats)")):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        if ax.lines:
            ax.legend(fontsize=7)
            _robust_limits(ax)
        else:
            ax.text(0.5, 0.5, "nothing logged", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return plots._render(fig)


def _robust_limits(ax: Any) -> None:
    """y limits that leave out the first tenth of each curve (the initial drop)."""
    shown = []
    for line in ax.lines:
        ys = [float(y) for y in line.get_ydata() if math.isfinite(float(y))]
        shown += ys[len(ys) // 10 :]
    if shown:
        low, high = min(shown), max(shown)
        pad = 0.05 * (high - low) or 1.0
        ax.set_ylim(low - pad, high + pad)


def run_names(runs: list[ReportRun]) -> list[str]:
    """Column names: the folder names, or the paths where two folders share a name."""
    names = [r.name for r in runs]
    return names if len(set(names)) == len(names) else [str(r.path) for r in runs]


def differing_config(runs: list[ReportRun]) -> list[list[Any]]:
    """Rows (key, value per run) of the config entries that are not the same in every run."""
    flat = [dict(flatten(r.config)) for r in runs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    missing = object()
    rows = []
    for k in keys:
        values = [f.get(k, missing) for f in flat]
        if any(v != values[0] for v in values[1:]):
            rows.append([k, *("—" if v is missing else v for v in values)])
    return rows


def compare_html(
    run_dirs: list[str | Path],
    *,
    n: int = 64,
    eval_n: int = 1000,
    seed: int = 0,
    device: str | torch.device = "cpu",
    best: bool = False,
    ema: bool = True,
) -> str:
    """The comparison page of at least two runs."""
    if len(run_dirs) < 2:
        raise ValueError(
            f"compare needs at least two run directories, got {len(run_dirs)}: "
            "for one run use dgm report DIR"
        )
    runs = [open_run(d) for d in run_dirs]  # every folder checked before any model loads
    runs = [r.load(device=device, best=best, ema=ema) for r in runs]
    names = run_names(runs)
    tables = [{m.key: m for m in run_metrics(r, eval_n=eval_n, seed=seed)} for r in runs]
    keys = list(dict.fromkeys(k for t in tables for k in t))
    labels = {k: m.label for t in reversed(tables) for k, m in t.items()}
    rows = [(k, [labels[k], *(t[k].value if k in t else "—" for t in tables)]) for k in keys]
    metrics = html_table(["metric", *names], rows, cls="metrics") if rows else note("no metrics")
    legend = "; ".join(
        f"{name}: {r.config.get('model')}" for name, r in zip(names, runs, strict=True)
    )
    samples = []
    for name, r in zip(names, runs, strict=True):
        samples.append(
            f'<div class="run"><h3>{esc(name)}</h3>{"".join(sample_parts(r, n, seed))}</div>'
        )
    notes = [
        note(f"{name}: {r.data_note}") for name, r in zip(names, runs, strict=True) if r.data_note
    ]
    differ = differing_config(runs)
    config = (
        html_table(["key", *names], differ, cls="config")
        if differ
        else note("the runs' configurations are identical")
    )
    sections = [
        f"<p>Runs: {esc(legend)}. Test metrics on the first {eval_n} test examples of each run's "
        "data.</p>",
        *notes,
        section("Metrics", metrics),
        section("Training curves", figure(overlaid_curves(runs), "one colour per run")),
        section("Samples", f'<div class="runs">{"".join(samples)}</div>'),
        section("Configuration differences", config),
    ]
    return page(f"dgm compare: {', '.join(names)}", sections)


def write_compare(
    run_dirs: list[str | Path], out: str | Path | None = None, **options: Any
) -> Path:
    """Write the comparison of ``run_dirs`` to ``out`` (default: compare.html here)."""
    return write_page(compare_html(run_dirs, **options), COMPARE if out is None else out)


__all__ = ["COMPARE", "compare_html", "curve_series", "overlaid_curves", "write_compare"]
