"""The HTML pages of ``dgm report DIR`` and ``dgm compare DIR1 DIR2 ...``, drawn from what
``dgm.report.gather`` and ``dgm.report.compare`` gathered: one self-contained static page
each, with the configuration, the training curves, the metrics table, sample grids and,
where the model has the capability, reconstructions, interpolations and inpaintings.

Every picture is a PNG embedded as a ``data:`` URI and the style sheet is inline: the page
needs no server, no network and no script. Every string that comes from a run (config
values, metric names, sampled text) is HTML-escaped.

Example:
    >>> fmt(44.970424), fmt(0.000123456), esc("<b> & 'q'")
    ('44.97', '0.00012346', '&lt;b&gt; &amp; &#x27;q&#x27;')
"""

from __future__ import annotations

import base64
import json
import math
from html import escape
from pathlib import Path
from typing import Any

import torch

from dgm.report.compare import Comparison, gather_comparison
from dgm.report.gather import Figure, Metric, ReportOptions, RunReport, Shown, gather

REPORT = "report.html"  # the default output, in the run directory
COMPARE = "compare.html"  # the default output of compare, in the current folder
ABSENT = "—"  # a cell for a run without that metric or config entry

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em;
     border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left;
         vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { image-rendering: pixelated; max-width: 100%; border: 1px solid #ddd; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; }
figcaption { font-size: 0.85em; color: #555; max-width: 480px; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
p.note { color: #666; font-size: 0.9em; }
div.runs { display: flex; flex-wrap: wrap; gap: 1em; }
div.run h3 { font-size: 1em; margin: 0.3em 0; }
"""


# -- HTML pieces -----------------------------------------------------------------------------


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML elements and quoted attributes."""
    return escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """A metric as shown: floats to 5 significant digits (6 from 1e5, where 5 would print
    a six-digit figure in exponent form), everything else as text.

    Example:
        >>> [fmt(v) for v in (3.14159265, 12345.67, 123456.7, None, 7)]
        ['3.1416', '12346', '123457', 'None', '7']
    """
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.5g}" if math.isfinite(value) and abs(value) < 1e5 else f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure(fig: Figure) -> str:
    """An embedded picture with its caption (escaped)."""
    return (
        f'<figure><img src="{data_uri(fig.png)}" alt="{esc(fig.caption)}" width="{fig.width}" '
        f'height="{fig.height}"><figcaption>{esc(fig.caption)}</figcaption></figure>'
    )


def html_table(header: list[str], rows: list[list[Any]], cls: str = "") -> str:
    """A table of escaped cells; numbers right-aligned. ``rows`` items may be (key, cells)
    pairs to give the row a ``data-key`` attribute."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        key, cells = row if isinstance(row, tuple) else (None, row)
        attr = f' data-key="{esc(key)}"' if key is not None else ""
        tds = "".join(
            f'<td class="num">{esc(fmt(c))}</td>'
            if isinstance(c, (int, float)) and not isinstance(c, bool)
            else f"<td>{esc(fmt(c))}</td>"
            for c in cells
        )
        body.append(f"<tr{attr}>{tds}</tr>")
    cls_attr = f' class="{esc(cls)}"' if cls else ""
    return f"<table{cls_attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def page(title: str, sections: list[str]) -> str:
    """The whole document: inline style, no script, a data-URI favicon (so a browser
    requests nothing)."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def section(title: str, *parts: str) -> str:
    """A titled section of the page."""
    return f"<section><h2>{esc(title)}</h2>\n" + "\n".join(parts) + "\n</section>"


def note(text: str) -> str:
    """A grey paragraph saying why something is missing."""
    return f'<p class="note">{esc(text)}</p>'


def shown(part: Shown) -> str:
    """A figure, sampled text in a ``pre`` block, or the note."""
    if part.figure is not None:
        return figure(part.figure)
    if part.text is not None:
        return f'<pre class="samples">{esc(chr(10).join(part.text))}</pre>'
    return note(part.note)


def metrics_table(rows: list[Metric]) -> str:
    """The metrics of one run, a row per metric keyed by ``data-key``."""
    return html_table(
        ["metric", "value", "source"],
        [(m.key, [m.label, m.value, m.source]) for m in rows],
        cls="metrics",
    )


# -- the pages -------------------------------------------------------------------------------


def render_report(report: RunReport) -> str:
    """The report page of one run."""
    intro = [
        f"<p>Run directory <code>{esc(report.path)}</code>: model <b>{esc(report.model)}"
        f"</b>, data <b>{esc(report.data)}</b>, event shape "
        f"{esc(report.event_shape)}, likelihood {esc(report.likelihood)}, "
        f"{report.weights} numbers in its weights (parameters and buffers).</p>"
    ]
    if report.data_note:
        intro.append(note(report.data_note))
    metrics = (
        metrics_table(report.metrics)
        if report.metrics
        else note("no metrics: the run logged none yet")
    )
    config = html_table(["key", "value"], [[k, v] for k, v in report.config], cls="config")
    sections = [
        *intro,
        section("Metrics", metrics),
        section("Training curves", figure(report.curves)),
        section("Samples", shown(report.samples)),
        *(section(p.title, shown(p.shown)) for p in report.panels),
        section("Configuration", config),
    ]
    return page(f"dgm report: {report.name}", sections)


def render_comparison(comparison: Comparison) -> str:
    """The page comparing runs."""
    names = comparison.names
    rows = [
        (key, [label, *(ABSENT if m is None else m.value for m in row)])
        for key, label, row in comparison.metrics
    ]
    metrics = html_table(["metric", *names], rows, cls="metrics") if rows else note("no metrics")
    legend = "; ".join(f"{name}: {m}" for name, m in zip(names, comparison.models, strict=True))
    runs = "".join(
        f'<div class="run"><h3>{esc(name)}</h3>{shown(s)}</div>'
        for name, s in zip(names, comparison.samples, strict=True)
    )
    notes = [
        note(f"{name}: {text}")
        for name, text in zip(names, comparison.data_notes, strict=True)
        if text
    ]
    differ = [[k, *(ABSENT if v is None else v for v in values)] for k, values in comparison.config]
    config = (
        html_table(["key", *names], differ, cls="config")
        if differ
        else note("the runs' configurations are identical")
    )
    sections = [
        f"<p>Runs: {esc(legend)}. Test metrics on the first {comparison.eval_n} test examples "
        "of each run's data.</p>",
        *notes,
        section("Metrics", metrics),
        section("Training curves", figure(comparison.curves)),
        section("Samples", f'<div class="runs">{runs}</div>'),
        section("Configuration differences", config),
    ]
    return page(f"dgm compare: {', '.join(names)}", sections)


def report_html(
    run_dir: str | Path,
    *,
    device: str | torch.device = "cpu",
    best: bool = False,
    ema: bool = True,
    **options: Any,
) -> str:
    """The report page of run ``run_dir`` (``options``: the fields of ``ReportOptions``)."""
    report = gather(run_dir, ReportOptions(**options), device=device, best=best, ema=ema)
    return render_report(report)


def compare_html(
    run_dirs: list[str | Path],
    *,
    device: str | torch.device = "cpu",
    best: bool = False,
    ema: bool = True,
    **options: Any,
) -> str:
    """The comparison page of at least two runs (``options``: ``n``, ``eval_n``, ``seed``)."""
    comparison = gather_comparison(
        run_dirs, ReportOptions(**options), device=device, best=best, ema=ema
    )
    return render_comparison(comparison)


def write_page(text: str, out: str | Path) -> Path:
    """Write an HTML page atomically; returns its path."""
    from dgm.io import atomic_write

    out = Path(out)
    atomic_write(out, lambda p: p.write_text(text, encoding="utf-8"))
    return out


def write_report(run_dir: str | Path, out: str | Path | None = None, **options: Any) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default: ``run_dir/report.html``)."""
    text = report_html(run_dir, **options)
    return write_page(text, Path(run_dir) / REPORT if out is None else out)


def write_compare(
    run_dirs: list[str | Path], out: str | Path | None = None, **options: Any
) -> Path:
    """Write the comparison of ``run_dirs`` to ``out`` (default: compare.html here)."""
    return write_page(compare_html(run_dirs, **options), COMPARE if out is None else out)


__all__ = [
    "COMPARE",
    "REPORT",
    "compare_html",
    "esc",
    "fmt",
    "render_comparison",
    "render_report",
    "report_html",
    "write_compare",
    "write_report",
]
