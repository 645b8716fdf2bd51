"""What the report of a run shows (``dgm report DIR``), gathered without any HTML: plain
dataclasses of metric rows, figures as PNG bytes, sampled text and notes, which
``dgm.report.render`` turns into the page. Python users call ``gather`` for the numbers and
pictures alone.

Numbers in the metrics rows, in nats per example unless named otherwise:

- ``test/*``: ``dgm.evaluate.likelihood.evaluate`` on the first ``eval_n`` examples of the
  test split (NLL, bits/dim, what bound it is, and the ELBO's KL and reconstruction terms);
- ``logged/*``: the last value of each training loss and validation entry in
  metrics.jsonl, with its step, and the best validation NLL;
- ``eval.json/*``: a saved ``dgm eval DIR --json > DIR/eval.json`` result, when present;
- ``sample_quality/*``: ``dgm.evaluate.sample_quality`` (FD, KID, precision, recall, ...),
  computed only when asked (``sample_quality=True``: it trains a feature network once per
  image dataset), else taken from eval.json when that holds it.

Pictures: the training curves, the sample grid (a scatter over the test data for 2-D
runs, text for text runs) and, where the model has the capability, reconstructions and
interpolations (``Encodable``) and inpaintings (``Completable``) of the first test images.

Example:
    >>> logged_metrics([{"step": 5, "loss": 2.5}, {"step": 10, "loss": 2.0, "valid/nll": 2.2}])
    ... # doctest: +NORMALIZE_WHITESPACE
    [Metric(key='logged/loss', label='train loss', value=2.0, source='step 10'),
     Metric(key='logged/valid/nll', label='valid/nll', value=2.2, source='step 10'),
     Metric(key='logged/best_valid_nll', label='best valid/nll', value=2.2, source='step 10')]
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image
from torch import Tensor

from dgm import run_dir as rd
from dgm.capabilities import model_modality
from dgm.model import Completable, Encodable, GenerativeModel, Likelihood
from dgm.report import plots
from dgm.report.options import ReportOptions

EVAL_JSON = "eval.json"  # where a saved `dgm eval DIR --json` result is looked for


class Metric(NamedTuple):
    """One row of the metrics table: a stable ``key`` (``test/nll``), a readable label,
    the value (a number or a word) and where it comes from."""

    key: str
    label: str
    value: Any
    source: str


@dataclass(frozen=True)
class Figure:
    """A picture as PNG bytes, its size in pixels and its caption."""

    png: bytes
    width: int
    height: int
    caption: str

    @classmethod
    def of(cls, img: Image.Image, caption: str) -> Figure:
        """``img`` encoded as PNG."""
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return cls(buf.getvalue(), img.width, img.height, caption)


@dataclass(frozen=True)
class Shown:
    """What one part of the page shows: a figure, lines of sampled text, or a note saying
    why there is nothing to see (exactly one of them)."""

    figure: Figure | None = None
    text: list[str] | None = None
    note: str = ""


@dataclass(frozen=True)
class Panel:
    """A section shown where the model has a capability (``Reconstructions``,
    ``Interpolations``, ``Inpaintings``)."""

    title: str
    shown: Shown


@dataclass
class RunReport:
    """Everything the report page of one run shows, in page order."""

    path: Path
    model: Any  # the config's model name (as saved)
    data: Any  # the config's data name (as saved)
    event_shape: tuple[int, ...]
    likelihood: str  # Likelihood value: exact, lower_bound, none
    weights: int  # numbers in the model's weights (parameters and buffers)
    data_note: str  # why the test split is missing, or ""
    metrics: list[Metric]
    curves: Figure
    samples: Shown
    panels: list[Panel]
    config: list[tuple[str, Any]]  # flattened configuration entries

    @property
    def name(self) -> str:
        return self.path.name or str(self.path)


# -- the run ---------------------------------------------------------------------------------


@dataclass
class ReportRun:
    """A run as the report reads it: the opened ``dgm.run_dir.Run``, its metrics.jsonl
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
    numbers and strings (null, booleans, lists) written as JSON, so no value is None."""
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


def samples(run: ReportRun, n: int = 64, seed: int = 0) -> Shown:
    """The sample grid: a picture for images and 2-D points (over the test data), the
    decoded lines for text runs, else a note."""
    from dgm.data.dataset import take

    model = run.model
    assert model is not None
    if model.conditioning.kind == "context" and run.data is None:
        return Shown(note="no samples: the model draws for the test contexts, and " + run.data_note)
    x = draw_samples(run, n, seed)
    vocab = run.run.vocab
    if vocab is not None and model.integer_data and x.dim() == 2:
        from dgm.data.text import decode

        return Shown(text=list(decode(x, vocab)))
    if model_modality(model) == "image":
        k = model.conditioning.num_classes if model.conditioning.kind == "classes" else 0
        img = plots.image_grid(x, nrow=k or None, value_range=run.value_range)
        by_class = ", column k: class k" if k else ""
        return Shown(Figure.of(img, f"{n} samples of {run.name} (seed {seed}{by_class})"))
    if model_modality(model) == "points":
        ref = None
        if run.data is not None:
            ref = take(run.data, torch.arange(min(2000, len(run.data))), "cpu").x
        img = plots.scatter(x, data=ref, model=model)
        return Shown(Figure.of(img, f"{n} samples of {run.name} over test data (grey)"))
    return Shown(note=f"samples of shape {tuple(x.shape[1:])} have no picture")


@torch.no_grad()
def capability_panels(run: ReportRun, n: int = 8, steps: int = 8, seed: int = 0) -> list[Panel]:
    """Reconstructions and interpolations (Encodable) and inpaintings (Completable) of the
    first test images; nothing for models without the capability or runs that are not of
    images. A capability the model's configuration refuses (a ValueError or
    NotImplementedError) leaves a note in its panel."""
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

    def reconstructions() -> Figure:
        rec = reconstruct(model, x, c)  # (n, *event_shape)
        img = plots.image_grid(
            torch.cat([x.float().cpu(), rec.float().cpu()]), nrow=len(x), value_range=vr
        )
        return Figure.of(img, "top: test images; bottom: decode(mean of encode(x))")

    def inpaintings() -> Figure:
        mask = image_mask("bottom-half", x.shape).to(model.device)
        completed = model.complete(x, mask, c, torch.Generator(model.device).manual_seed(seed))
        images, cols = completion_grid(x, mask, completed, vr)
        img = plots.image_grid(images.cpu(), nrow=cols, value_range=vr)
        return Figure.of(img, "rows: test images, bottom half hidden, completions")

    shown: list[tuple[str, Callable[[], Figure]]] = []
    if isinstance(model, Encodable):
        shown.append(("Reconstructions", reconstructions))
        if len(x) >= 2:
            shown.append(("Interpolations", lambda: interpolations(model, x, c, steps, vr)))
    if isinstance(model, Completable):
        shown.append(("Inpaintings", inpaintings))
    panels = []
    for title, build in shown:
        try:
            panels.append(Panel(title, Shown(build())))
        except (ValueError, NotImplementedError) as e:
            panels.append(Panel(title, Shown(note=f"not shown: {e}")))
    return panels


def interpolations(
    model: GenerativeModel, x: Tensor, c: Tensor | None, steps: int, vr: Any
) -> Figure:
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
    return Figure.of(img, caption)


# -- the report ------------------------------------------------------------------------------


def gather_run(run: ReportRun, options: ReportOptions | None = None) -> RunReport:
    """What the report of ``run`` (its model and data loaded) shows (``options``: default
    ``ReportOptions()``). The parts are drawn in page order (metrics, curves, samples,
    panels), so a seed gives the same report."""
    options = options or ReportOptions()
    model = run.model
    assert model is not None
    metrics = run_metrics(
        run,
        eval_n=options.eval_n,
        sample_quality=options.sample_quality,
        num_samples=options.num_samples,
        seed=options.seed,
    )
    curves = Figure.of(plots.curves(run.records), "training loss per step and validation NLL")
    return RunReport(
        path=run.path,
        model=run.config.get("model"),
        data=(run.config.get("data") or {}).get("name"),
        event_shape=tuple(model.event_shape),
        likelihood=model.likelihood.value,
        weights=sum(t.numel() for t in model.state_dict().values()),
        data_note=run.data_note,
        metrics=metrics,
        curves=curves,
        samples=samples(run, options.n, options.seed),
        panels=capability_panels(run, seed=options.seed),
        config=flatten(run.config),
    )


def gather(
    run_dir: str | Path,
    options: ReportOptions | None = None,
    *,
    device: str | torch.device = "cpu",
    best: bool = False,
    ema: bool = True,
) -> RunReport:
    """Open run ``run_dir``, load its model (``best``/``ema`` weights on ``device``) and
    test split, and gather what its report shows."""
    return gather_run(open_run(run_dir).load(device=device, best=best, ema=ema), options)


__all__ = [
    "EVAL_JSON",
    "Figure",
    "Metric",
    "Panel",
    "ReportOptions",
    "ReportRun",
    "RunReport",
    "Shown",
    "flatten",
    "gather",
    "gather_run",
    "logged_metrics",
    "open_run",
    "run_metrics",
    "samples",
]
