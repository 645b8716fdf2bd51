"""The HTML report of a run (``dgm report DIR``): one self-contained static page with the
configuration, the training curves, the metrics table, sample grids and, where the model
has the capability, reconstructions and interpolations (``Encodable``) and inpaintings
(``Completable``); 2-D runs show their samples over the data and the density, text runs
their sampled text.

Every picture is a PNG embedded as a ``data:`` URI and the style sheet is inline: the page
needs no server, no network and no script. Every string that comes from the run (config
values, metric names, sampled text) is HTML-escaped.

Numbers in the metrics table, in nats per example unless named otherwise:

- ``test/*``: ``dgm.evaluate.likelihood.evaluate`` on the first ``eval_n`` examples of the
  test split (NLL, bits/dim, what bound it is, and the ELBO's KL and reconstruction terms);
- ``logged/*``: the last value of each training loss and validation entry in
  metrics.jsonl, with its step, and the best validation NLL;
- ``eval.json/*``: a saved ``dgm eval DIR --json > DIR/eval.json`` result, when present;
- ``sample_quality/*``: ``dgm.evaluate.sample_quality`` (FD, KID, precision, recall, ...),
  computed only when asked (``sample_quality=True``: it trains a feature network once per
  image dataset), else taken from eval.json when that holds it.

Example:
    >>> row = Metric("test/nll", "NLL (nats/example)", 44.970424, "evaluate")
    >>> fmt(row.value), fmt(0.000123456), esc("<b> & 'q'")
    ('44.97', '0.00012346', '&lt;b&gt; &amp; &#x27;q&#x27;')
"""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image
from torch import Tensor

from dgm import run_dir as rd
from dgm.capabilities import model_modality
from dgm.model import Completable, Encodable, GenerativeModel, Likelihood
from dgm.report import plots

EVAL_JSON = "eval.json"  # where a saved `dgm eval DIR --json` result is looked for
REPORT = "report.html"

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


class Metric(NamedTuple):
    """One row of the metrics table: a stable ``key`` (``test/nll``), a readable label,
    the value (a number or a word) and where it comes from."""

    key: str
    label: str
    value: Any
    source: str


# -- HTML pieces -----------------------------------------------------------------------------


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML elements and quoted attributes."""
    return escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """A metric as shown: floats to 5 significant digits, everything else as text."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.5g}" if math.isfinite(value) and abs(value) < 1e5 else f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def data_uri(img: Image.Image) -> str:
    """``img`` as a PNG ``data:`` URI."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def figure(img: Image.Image, caption: str) -> str:
    """An embedded picture with its caption (escaped)."""
    return (
        f'<figure><img src="{data_uri(img)}" alt="{esc(caption)}" width="{img.width}" '
        f'height="{img.height}"><figcaption>{esc(caption)}</figcaption></figure>'
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
    return f"<section><h2>{esc(title)}</h2>\n" + "\n".join(parts) + "\n</section>"


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


# -- the run ---------------------------------------------------------------------------------


@dataclass
class ReportRun:
    """A run as the report shows it: the opened ``dgm.run_dir.Run``, its metrics.jsonl
    records, a saved eval.json and, once ``load`` is called, the model and the test split
    (``data_note`` says why there are no data, e.g. a data folder that moved)."""

    run: rd.Run
    records: list[dict[str, Any]]
    model: GenerativeModel | None = None
    data: Any = None
    data_note: str = ""
    saved_eval: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def config(self) -> dict[str, Any]:
        return self.run.config

    @property
    def name(self) -> str:
        return self.path.name or str(self.path)

    @property
    def value_range(self) -> tuple[float, float] | None:
        return self.run.value_range

    def load(
        self, *, device: str | torch.device = "cpu", best: bool = False, ema: bool = True
    ) -> ReportRun:
        """Load the model (on ``device``) and the test split; returns self."""
        self.model = self.run.model(best=best, ema=ema, device=device)
        try:
            self.data = self.run.data("test")
        except (KeyError, TypeError, ValueError, OSError) as e:
            self.data, self.data_note = None, f"the test split could not be loaded ({e})"
        return self


def open_run(path: str | Path) -> ReportRun:
    """The config and metrics of run directory ``path``; a missing folder or one without
    config.json is a ValueError that says what to give instead."""
    run = rd.Run.open(path)
    saved: dict[str, Any] = {}
    if (run.path / EVAL_JSON).is_file():
        try:
            saved = json.loads((run.path / EVAL_JSON).read_text())
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{run.path / EVAL_JSON} is not valid JSON ({e}): write it with "
                f"dgm eval {run.path} --json > {run.path / EVAL_JSON}, or remove it"
            ) from None
    return ReportRun(run, run.metrics(), saved_eval=saved if isinstance(saved, dict) else {})


def flatten(config: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested config entries as (dotted key, value) pairs, in order; values other than
    numbers and strings (null, booleans, lists) written as JSON."""
    out: list[tuple[str, Any]] = []
    for k, v in config.items():
        if isinstance(v, dict) and v:
            out += flatten(v, f"{prefix}{k}.")
        elif isinstance(v, (int, float, str)) and not isinstance(v, bool):
            out.append((f"{prefix}{k}", v))
        else:
            out.append((f"{prefix}{k}", json.dumps(v)))
    return out


# -- metrics ---------------------------------------------------------------------------------


def logged_metrics(records: list[dict[str, Any]]) -> list[Metric]:
    """From metrics.jsonl: the last value of every training loss (``loss``, ``<phase>/loss``)
    and of every ``valid/*`` entry, with its step, and the best validation NLL."""
    last: dict[str, tuple[float, int]] = {}
    best: tuple[float, int] | None = None
    for r in records:
        step = int(r.get("step", -1))
        for k, v in r.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            train_loss = not k.startswith("valid/") and k.rpartition("/")[2] == "loss"
            if train_loss or k.startswith("valid/"):
                last[k] = (float(v), step)
            if k == "valid/nll" and math.isfinite(v) and (best is None or v < best[0]):
                best = (float(v), step)
    rows = [
        Metric(f"logged/{k}", k if k.startswith("valid/") else f"train {k}", v, f"step {s}")
        for k, (v, s) in last.items()
    ]
    if best is not None:
        rows.append(Metric("logged/best_valid_nll", "best valid/nll", best[0], f"step {best[1]}"))
    return rows


def evaluation_metrics(run: ReportRun, eval_n: int, batch_size: int = 500) -> list[Metric]:
    """``evaluate`` on the first ``eval_n`` test examples (nothing for a model without a
    likelihood or a run whose data are missing)."""
    from dgm.evaluate.likelihood import evaluate

    model = run.model
    if model is None or run.data is None or model.likelihood is Likelihood.NONE:
        return []
    data = run.data.subset(torch.arange(min(eval_n, len(run.data))))
    torch.manual_seed(0)  # the ELBO is stochastic: the same page twice shows the same numbers
    result = evaluate(model, data, batch_size=batch_size)
    source = f"evaluate, first {result['n']} test examples"
    labels = {
        "nll": "NLL (nats/example)",
        "bits_per_dim": "bits/dim",
        "bound": "bound",
        "levels": "levels",
        "kl": "KL (nats)",
        "reconstruction": "reconstruction (nats)",
        "n": "examples",
    }
    return [Metric(f"test/{k}", labels.get(k, k), v, source) for k, v in result.items()]


def quality_metrics(result: dict[str, Any], source: str) -> list[Metric]:
    """The scalar entries of a ``sample_quality`` result (per-class accuracies flattened)."""
    rows = []
    for k, v in result.items():
        if isinstance(v, dict):
            rows += [Metric(f"sample_quality/{k}/{c}", f"{k} {c}", a, source) for c, a in v.items()]
        elif isinstance(v, (int, float, str)):
            rows.append(Metric(f"sample_quality/{k}", k, v, source))
    return rows


def saved_metrics(saved: dict[str, Any]) -> list[Metric]:
    """The entries of a saved ``dgm eval --json`` result (eval.json)."""
    split = saved.get("split", "?")
    rows = [
        Metric(f"eval.json/{k}", f"{split} {k}", v, EVAL_JSON)
        for k, v in saved.items()
        if k not in ("split", "sample_quality") and isinstance(v, (int, float, str))
    ]
    if isinstance(saved.get("sample_quality"), dict):
        rows += quality_metrics(saved["sample_quality"], EVAL_JSON)
    return rows


def run_metrics(
    run: ReportRun,
    *,
    eval_n: int = 1000,
    sample_quality: bool = False,
    num_samples: int = 1000,
    seed: int = 0,
) -> list[Metric]:
    """Every row of the run's metrics table (see the module docstring)."""
    rows = (
        evaluation_metrics(run, eval_n)
        + logged_metrics(run.records)
        + saved_metrics(run.saved_eval)
    )
    if sample_quality and run.model is not None and run.data is not None:
        from dgm.evaluate.sample_quality import sample_quality as measure

        root = (run.config.get("data") or {}).get("root")
        n = min(num_samples, len(run.data))
        result = measure(run.model, run.data, num_samples=n, seed=seed, root=root)
        computed = quality_metrics(result, f"sample_quality, {n} samples vs test")
        keys = {m.key for m in computed}
        rows = [m for m in rows if m.key not in keys] + computed
    return rows


def metrics_table(rows: list[Metric]) -> str:
    return html_table(
        ["metric", "value", "source"],
        [(m.key, [m.label, m.value, m.source]) for m in rows],
        cls="metrics",
    )


# -- pictures --------------------------------------------------------------------------------


@torch.no_grad()
def draw_samples(run: ReportRun, n: int = 64, seed: int = 0) -> Tensor:
    """``n`` samples of the run's model (one row per class for a class-conditional one,
    the test contexts for a context-conditional one), on the CPU."""
    from dgm.data.dataset import grid_conditions

    model = run.model
    assert model is not None
    c = grid_conditions(model, run.data, n)
    gen = torch.Generator(model.device).manual_seed(seed)
    return model.sample(n, c, generator=gen).cpu()


def sample_parts(run: ReportRun, n: int = 64, seed: int = 0) -> list[str]:
    """The sample grid as HTML: a picture for images and 2-D points, text for text runs."""
    from dgm.data.dataset import take

    model = run.model
    assert model is not None
    if model.conditioning.kind == "context" and run.data is None:
        return [note("no samples: the model draws for the test contexts, and " + run.data_note)]
    x = draw_samples(run, n, seed)
    vocab = run.run.vocab
    if vocab is not None and model.integer_data and x.dim() == 2:
        from dgm.data.text import decode

        return [f'<pre class="samples">{esc(chr(10).join(decode(x, vocab)))}</pre>']
    if model_modality(model) == "image":
        k = model.conditioning.num_classes if model.conditioning.kind == "classes" else 0
        img = plots.image_grid(x, nrow=k or None, value_range=run.value_range)
        by_class = ", column k: class k" if k else ""
        return [figure(img, f"{n} samples of {run.name} (seed {seed}{by_class})")]
    if model_modality(model) == "points":
        ref = None
        if run.data is not None:
            ref = take(run.data, torch.arange(min(2000, len(run.data))), "cpu").x
        img = plots.scatter(x, data=ref, model=model)
        return [figure(img, f"{n} samples of {run.name} over test data (grey)")]
    return [note(f"samples of shape {tuple(x.shape[1:])} have no picture")]


@torch.no_grad()
def capability_parts(run: ReportRun, n: int = 8, steps: int = 8, seed: int = 0) -> list[str]:
    """Reconstructions and interpolations (Encodable) and inpaintings (Completable) of the
    first test images, as sections; nothing for models without the capability or runs
    that are not of images. A capability the model's configuration refuses (a
    ValueError or NotImplementedError) leaves a note in its section."""
    from dgm.data.dataset import take
    from dgm.tasks.inpaint import completion_grid, image_mask
    from dgm.tasks.represent import reconstruct

    model = run.model
    if model is None or run.data is None or len(run.data) == 0:
        return []
    if model_modality(model) != "image":
        return []
    gen = torch.Generator().manual_seed(seed)  # dynamic binarization and masks: on the CPU
    index = torch.arange(min(n, len(run.data)))
    x = take(run.data, index, model.device, gen).x
    c = run.run.conditions("test", index, device=model.device)
    vr = run.value_range or plots.default_range(x)

    def reconstructions() -> str:
        rec = reconstruct(model, x, c)  # (n, *event_shape)
        img = plots.image_grid(
            torch.cat([x.float().cpu(), rec.float().cpu()]), nrow=len(x), value_range=vr
        )
        return figure(img, "top: test images; bottom: decode(mean of encode(x))")

    def inpaintings() -> str:
        mask = image_mask("bottom-half", x.shape).to(model.device)
        completed = model.complete(x, mask, c, torch.Generator(model.device).manual_seed(seed))
        images, cols = completion_grid(x, mask, completed, vr)
        img = plots.image_grid(images.cpu(), nrow=cols, value_range=vr)
        return figure(img, "rows: test images, bottom half hidden, completions")

    shown = []
    if isinstance(model, Encodable):
        shown.append(("Reconstructions", reconstructions))
        if len(x) >= 2:
            shown.append(("Interpolations", lambda: _interpolations(model, x, c, steps, vr)))
    if isinstance(model, Completable):
        shown.append(("Inpaintings", inpaintings))
    parts = []
    for title, build in shown:
        try:
            parts.append(section(title, build()))
        except (ValueError, NotImplementedError) as e:
            parts.append(section(title, note(f"not shown: {e}")))
    return parts


def _interpolations(
    model: GenerativeModel, x: Tensor, c: Tensor | None, steps: int, vr: Any
) -> str:
    """Rows of ``dgm.tasks.interpolate``: between test images (0, 1) and (2, 3), lerp then
    slerp for each pair; every row starts and ends at the two reconstructions."""
    from dgm.tasks.interpolate import interpolate

    rows = []
    for a in range(0, min(len(x), 4) - 1, 2):
        ca = None if c is None else c[a : a + 2]
        for method in ("lerp", "slerp"):
            rows.append(interpolate(model, x[a : a + 2], steps, method, ca).float().cpu())
    img = plots.image_grid(torch.cat(rows), nrow=steps, value_range=vr)
    caption = "rows: lerp, slerp between the codes of test images 0 and 1, then of 2 and 3"
    return figure(img, caption)


# -- the page --------------------------------------------------------------------------------


def run_sections(
    run: ReportRun,
    *,
    n: int = 64,
    eval_n: int = 1000,
    seed: int = 0,
    sample_quality: bool = False,
    num_samples: int = 1000,
) -> list[str]:
    """The sections of one run's report (its model and data loaded)."""
    model = run.model
    assert model is not None
    intro = [
        f"<p>Run directory <code>{esc(run.path)}</code>: model <b>{esc(run.config.get('model'))}"
        f"</b>, data <b>{esc((run.config.get('data') or {}).get('name'))}</b>, event shape "
        f"{esc(tuple(model.event_shape))}, likelihood {esc(model.likelihood.value)}, "
        f"{sum(t.numel() for t in model.state_dict().values())} numbers in its weights "
        "(parameters and buffers).</p>"
    ]
    if run.data_note:
        intro.append(note(run.data_note))
    rows = run_metrics(
        run, eval_n=eval_n, sample_quality=sample_quality, num_samples=num_samples, seed=seed
    )
    metrics = metrics_table(rows) if rows else note("no metrics: the run logged none yet")
    curves = figure(plots.curves(run.records), "training loss per step and validation NLL")
    config = html_table(["key", "value"], [[k, v] for k, v in flatten(run.config)], cls="config")
    return [
        *intro,
        section("Metrics", metrics),
        section("Training curves", curves),
        section("Samples", *sample_parts(run, n, seed)),
        *capability_parts(run, seed=seed),
        section("Configuration", config),
    ]


def report_html(
    run_dir: str | Path,
    *,
    device: str | torch.device = "cpu",
    best: bool = False,
    ema: bool = True,
    **options: Any,
) -> str:
    """The report page of run ``run_dir`` (``options``: those of ``run_sections``)."""
    run = open_run(run_dir).load(device=device, best=best, ema=ema)
    return page(f"dgm report: {run.name}", run_sections(run, **options))


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


__all__ = [
    "EVAL_JSON",
    "REPORT",
    "Metric",
    "ReportRun",
    "data_uri",
    "esc",
    "fmt",
    "logged_metrics",
    "open_run",
    "report_html",
    "run_metrics",
    "write_report",
]
