"""Pictures and the HTML page of a sweep (``dgm.tasks.sweep``): train and test NLL against
each varied field with the generalisation gap shaded and the test minimum marked, and
with early stopping the validation curves with the step where each turned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from dgm.report.gather import Figure
from dgm.report.render import figure, html_table, note, page, section, write_page
from dgm.tasks.sweep import minimum

SIZE = (6.4, 4.0)  # inches at 100 dpi: 640 x 400 pixels


def _new_figure() -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def nll_plot(result: dict[str, Any], field: str, path: Path) -> Path:
    """Train (dashed) and test (solid) NLL against the values of ``field``, one pair of
    curves per combination of the other fields, the gap between them shaded and each
    test minimum marked with a star; written to ``path`` (PNG)."""
    fig, ax = _new_figure()
    values = result["vary"][field]
    others = [f for f in result["vary"] if f != field]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for p in result["points"]:
        groups.setdefault(tuple(p["values"][f] for f in others), []).append(p)
    for i, (key, pts) in enumerate(groups.items()):
        pts = sorted(pts, key=lambda p: values.index(p["values"][field]))
        xs = [values.index(p["values"][field]) for p in pts]
        train = [p["train_nll"] for p in pts]
        test = [p["test_nll"] for p in pts]
        colour = f"C{i % 10}"
        label = ", ".join(f"{f}={v}" for f, v in zip(others, key, strict=True)) or "test"
        ax.plot(xs, test, "-o", color=colour, label=f"test NLL ({label})" if others else "test NLL")
        ax.plot(xs, train, "--", color=colour, label="train NLL" if i == 0 else None)
        ax.fill_between(xs, train, test, color=colour, alpha=0.15)
        j = min(range(len(test)), key=test.__getitem__)
        ax.plot([xs[j]], [test[j]], "*", color=colour, markersize=16, markeredgecolor="black")
    ax.set_xticks(range(len(values)), values)
    ax.set_xlabel(field)
    ax.set_ylabel("NLL (nats per example)")
    ax.set_title(f"{result['model']}: NLL against {field} (gap shaded, ★ test minimum)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def validation_plot(result: dict[str, Any], path: Path) -> Path | None:
    """Validation NLL against the training step for every point, each minimum (where it
    turned) marked; None when no point logged validations."""
    curves = [(p["point"], p["valid_curve"]) for p in result["points"] if p.get("valid_curve")]
    if not curves:
        return None
    fig, ax = _new_figure()
    for i, (name, curve) in enumerate(curves):
        steps, nll = zip(*curve, strict=True)
        ax.plot(steps, nll, color=f"C{i % 10}", label=name.split("-", 2)[-1])
        j = min(range(len(nll)), key=nll.__getitem__)
        ax.plot([steps[j]], [nll[j]], "v", color=f"C{i % 10}", markeredgecolor="black")
    ax.set_xlabel("training step")
    ax.set_ylabel("validation NLL (nats per example)")
    ax.set_title("validation NLL during training (▼ where it turned)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    return path


def write_plots(result: dict[str, Any], out: str | Path) -> list[Path]:
    """Every plot of the sweep into folder ``out``: nll-<field>.png per varied field and,
    with early stopping, validation.png."""
    out = Path(out)
    paths = [nll_plot(result, f, out / f"nll-{f}.png") for f in result["vary"]]
    if result["options"].get("early_stopping"):
        valid = validation_plot(result, out / "validation.png")
        paths += [valid] if valid is not None else []
    return paths


def sweep_html(result: dict[str, Any], plots: list[Path]) -> str:
    """The sweep's page: its table (minimum in bold cells' row first) and its plots."""
    fields = list(result["vary"])
    best = minimum(result)["point"]
    header = [*fields, "train NLL", "test NLL", "gap", "valid NLL", "best step", "params"]
    rows = [
        [
            *[
                p["values"][f] + (" ★" if p["point"] == best and f == fields[0] else "")
                for f in fields
            ],
            p["train_nll"],
            p["test_nll"],
            p["gap"],
            p["valid_nll"] if p["valid_nll"] is not None else "–",
            p["best_step"] if p["best_step"] is not None else "–",
            p["num_params"],
        ]
        for p in result["points"]
    ]
    opts = result["options"]
    scored = "at the best validation step" if opts.get("early_stopping") else "at the last step"
    text = (
        f"{result['model']} on {result['data'].get('name')}, {opts['steps']} steps "
        f"per point, NLL in nats per example, scored {scored}; ★ marks the test minimum."
    )
    pictures = [figure(Figure.of(Image.open(p), p.stem)) for p in plots]
    return page(
        f"sweep: {result['model']}",
        [section("Table", note(text), html_table(header, rows)), section("Curves", *pictures)],
    )


def write_sweep_report(result: dict[str, Any], out: str | Path) -> Path:
    """Plots, the markdown table sweep.md and report.html of a sweep into folder ``out``;
    returns the page's path."""
    from dgm.io import atomic_write
    from dgm.tasks.sweep import table

    text = table(result) + "\n"
    atomic_write(Path(out) / "sweep.md", lambda p: p.write_text(text, encoding="utf-8"))
    plots = write_plots(result, out)
    return write_page(sweep_html(result, plots), Path(out) / "report.html")


__all__ = ["nll_plot", "sweep_html", "validation_plot", "write_plots", "write_sweep_report"]
