"""What the page comparing runs shows (``dgm compare DIR1 DIR2 ...``), gathered without any
HTML (``dgm.report.render`` draws the page): their training curves overlaid (every phase's
training loss, and the validation NLL, per run), one metrics table with a column per run
(every run evaluated on the same first ``eval_n`` test examples, as in
``dgm.report.gather``), the configuration entries that differ, and each run's samples.

Example:
    >>> from pathlib import Path
    >>> runs = [Path("runs/a"), Path("runs/b"), Path("other/a")]
    >>> column_names(runs[:2]), column_names(runs)
    (['a', 'b'], ['runs/a', 'runs/b', 'other/a'])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dgm.report import plots
from dgm.report.gather import (
    Figure,
    Metric,
    ReportOptions,
    ReportRun,
    Shown,
    flatten,
    open_run,
    run_metrics,
    samples,
)


@dataclass
class Comparison:
    """Everything the comparison page shows, one entry per run in the order given."""

    names: list[str]  # column names: folder names, or paths where two folders share a name
    models: list[Any]  # each config's model name (as saved)
    eval_n: int  # the test examples each run was evaluated on (the first ones)
    data_notes: list[str]  # per run: why its test split is missing, or ""
    # (key, label, the row's Metric per run: None where a run has no such row)
    metrics: list[tuple[str, str, list[Metric | None]]]
    curves: Figure
    samples: list[Shown]
    # (dotted key, value per run: None where a run's config lacks the key)
    config: list[tuple[str, list[Any]]]


def column_names(paths: list[Path]) -> list[str]:
    """The folder names of run directories, or their paths where two folders share a name."""
    names = [p.name or str(p) for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


def differing_config(runs: list[ReportRun]) -> list[tuple[str, list[Any]]]:
    """(dotted key, value per run) of the config entries that are not the same in every
    run; None for a run without the entry (``flatten`` never gives None as a value)."""
    flat = [dict(flatten(r.config)) for r in runs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    rows = []
    for k in keys:
        values = [f.get(k) for f in flat]
        if any(v != values[0] for v in values[1:]):
            rows.append((k, values))
    return rows


def metric_rows(tables: list[list[Metric]]) -> list[tuple[str, str, list[Metric | None]]]:
    """Every key any run has, in first-seen order, with each run's row (None where it has
    none); the label is the first run's that has the key."""
    by_key = [{m.key: m for m in rows} for rows in tables]
    keys = list(dict.fromkeys(k for t in by_key for k in t))
    labels = {k: m.label for t in reversed(by_key) for k, m in t.items()}
    return [(k, labels[k], [t.get(k) for t in by_key]) for k in keys]


def gather_comparison(
    run_dirs: list[str | Path],
    options: ReportOptions | None = None,
    *,
    device: str | torch.device = "cpu",
    best: bool = False,
    ema: bool = True,
) -> Comparison:
    """What the comparison page of at least two runs shows (``options``: ``n``, ``eval_n``
    and ``seed`` apply; default: ``ReportOptions()``)."""
    options = options or ReportOptions()
    if len(run_dirs) < 2:
        raise ValueError(
            f"compare needs at least two run directories, got {len(run_dirs)}: "
            "for one run use dgm report DIR"
        )
    runs = [open_run(d) for d in run_dirs]  # every folder checked before any model loads
    runs = [r.load(device=device, best=best, ema=ema) for r in runs]
    tables = [run_metrics(r, eval_n=options.eval_n, seed=options.seed) for r in runs]
    return Comparison(
        names=column_names([r.path for r in runs]),
        models=[r.config.get("model") for r in runs],
        eval_n=options.eval_n,
        data_notes=[r.data_note for r in runs],
        metrics=metric_rows(tables),
        samples=[samples(r, options.n, options.seed) for r in runs],
        curves=Figure.of(
            plots.overlaid_curves([(r.name, r.records) for r in runs]), "one colour per run"
        ),
        config=differing_config(runs),
    )


__all__ = ["Comparison", "column_names", "differing_config", "gather_comparison", "metric_rows"]
