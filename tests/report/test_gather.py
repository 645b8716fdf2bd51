"""Gathering apart from rendering: ``gather`` returns the run's numbers, PNG pictures and text
with no HTML in them, and the page is exactly ``render_report`` of what was gathered (so a
Python user sees what the page shows); the comparison lines runs up by metric key; the
renderer escapes whatever a gathered report holds; and the options of ``dgm report`` are
the fields of ``ReportOptions``, with the same defaults."""

import io
from dataclasses import fields
from pathlib import Path

import pytest
from PIL import Image

from dgm.report.compare import gather_comparison
from dgm.report.gather import (
    Figure,
    Metric,
    Panel,
    ReportOptions,
    RunReport,
    Shown,
    gather,
    logged_metrics,
    open_run,
)
from dgm.report.render import compare_html, render_comparison, render_report, report_html

OPTIONS = ReportOptions(n=16, eval_n=100, seed=3)


def decoded(fig: Figure) -> Image.Image:
    img = Image.open(io.BytesIO(fig.png))
    assert img.format == "PNG" and img.size == (fig.width, fig.height)
    assert "<" not in fig.caption  # plain text: the renderer escapes it
    return img


def test_gather_holds_the_pages_numbers_and_pictures_without_html(runs):
    report = gather(runs["vae"], OPTIONS)
    assert render_report(report) == report_html(runs["vae"], n=16, eval_n=100, seed=3)
    metrics = {m.key: m for m in report.metrics}
    assert metrics["test/n"].value == 100 and metrics["test/bound"].value == "elbo"
    assert metrics["test/nll"].value == pytest.approx(
        metrics["test/kl"].value + metrics["test/reconstruction"].value, rel=1e-3
    )
    run = open_run(runs["vae"]).load()
    assert report.event_shape == tuple(run.model.event_shape) == (1, 8, 8)
    assert report.weights == sum(t.numel() for t in run.model.state_dict().values())
    assert [p.title for p in report.panels] == ["Reconstructions", "Interpolations", "Inpaintings"]
    # 16 samples of 8x8 pixels, 2 pixels of padding: a 4x4 grid at least 4*8 wide
    samples = decoded(report.samples.figure)
    assert samples.width >= 4 * 8 and report.samples.text is None
    for part in [report.curves, *(p.shown.figure for p in report.panels)]:
        decoded(part)
    assert ("model", "vae") in report.config


def test_text_runs_gather_lines_and_2d_runs_no_panels(runs):
    text = gather(runs["char_rnn"], ReportOptions(n=5, eval_n=50))
    assert text.samples.figure is None and len(text.samples.text) == 5
    assert all(isinstance(line, str) for line in text.samples.text)
    points = gather(runs["gmm"], ReportOptions(n=64, eval_n=50))
    assert points.panels == [] and decoded(points.samples.figure)


def test_comparison_lines_runs_up_by_metric_key(runs):
    dirs = [runs["gmm"], runs["gan"]]
    comparison = gather_comparison(dirs, OPTIONS)
    assert comparison.names == ["gmm", "gan"] and comparison.models == ["gmm", "gan"]
    rows = {key: row for key, _, row in comparison.metrics}
    gmm_nll, gan_nll = rows["test/nll"]
    assert gan_nll is None and gmm_nll.value == pytest.approx(
        {m.key: m for m in gather(runs["gmm"], OPTIONS).metrics}["test/nll"].value
    )
    assert rows["logged/generator/loss"][0] is None
    assert dict(comparison.config)["model"] == ["gmm", "gan"]
    assert render_comparison(comparison) == compare_html(dirs, n=16, eval_n=100, seed=3)
    with pytest.raises(ValueError, match="at least two run directories"):
        gather_comparison(dirs[:1])


def test_render_escapes_every_gathered_string():
    png = io.BytesIO()
    Image.new("RGB", (3, 2)).save(png, format="PNG")
    fig = Figure(png.getvalue(), 3, 2, "a <u> caption")
    report = RunReport(
        path=Path("runs/<x>"),
        model="<m>",
        data="d&d",
        event_shape=(2,),
        likelihood="exact",
        weights=7,
        data_note="moved <here>",
        metrics=[Metric("test/<k>", "<label>", 1.5, "<src>")],
        curves=fig,
        samples=Shown(text=["<script>", "ok"]),
        panels=[Panel("Inpaintings", Shown(note="not shown: <why>"))],
        config=[("note", "<i>")],
    )
    page = render_report(report)
    for raw in ("<x>", "<m>", "<u>", "<k>", "<label>", "<src>", "<script>", "<why>", "<i>"):
        assert raw not in page
    assert '<pre class="samples">&lt;script&gt;\nok</pre>' in page
    assert '<p class="note">not shown: &lt;why&gt;</p>' in page
    assert '<p class="note">moved &lt;here&gt;</p>' in page
    assert 'width="3" height="2"' in page and "<h2>Inpaintings</h2>" in page
    assert '<tr data-key="test/&lt;k&gt;">' in page


def test_a_comparisons_data_note_names_its_own_run():
    from dgm.report.compare import Comparison

    png = io.BytesIO()
    Image.new("RGB", (3, 2)).save(png, format="PNG")
    fig = Figure(png.getvalue(), 3, 2, "curves")
    comparison = Comparison(["a", "b"], ["vae", "gmm"], 10, ["", "its test split is missing"],
                            [], fig, [Shown(note="x"), Shown(note="y")], [])  # fmt: skip
    page = render_comparison(comparison)
    assert '<p class="note">b: its test split is missing</p>' in page
    assert "a: its test split" not in page


def test_report_flags_are_the_fields_of_report_options():
    from argparse import ArgumentParser

    from dgm.cli.report import add_parsers
    from dgm.config import options_from
    from dgm.report.options import CompareOptions

    parser = ArgumentParser()
    add_parsers(parser.add_subparsers(dest="verb"))
    assert options_from(parser.parse_args(["report", "runs/x"]), ReportOptions) == ReportOptions()
    given = parser.parse_args(["report", "runs/x", "-n", "7", "--eval-n", "9", "--seed", "2"])
    assert options_from(given, ReportOptions) == ReportOptions(n=7, eval_n=9, seed=2)
    for f in fields(ReportOptions):  # every field is a flag of dgm report
        assert f.name in {
            a.dest for a in parser._subparsers._group_actions[0].choices["report"]._actions
        }
    ns = parser.parse_args(["compare", "runs/x", "runs/y"])
    assert options_from(ns, CompareOptions) == CompareOptions()


def test_the_best_logged_validation_nll_is_the_lowest_finite_one():
    """A NaN or −inf validation (a diverged evaluation) is never the best."""
    nan, inf = float("nan"), float("inf")
    records = [{"step": 1, "valid/nll": nan}, {"step": 2, "valid/nll": 3.0}]
    records += [{"step": 3, "valid/nll": -inf}, {"step": 4, "valid/nll": 4.0}]
    (best,) = [m for m in logged_metrics(records) if m.key == "logged/best_valid_nll"]
    assert best.value == 3.0 and best.source == "step 2"


def test_interpolation_rows_are_lerp_and_slerp_of_each_pair(runs, monkeypatch):
    """Four test images: four rows (lerp, slerp between 0 and 1, then between 2 and 3),
    each the library's interpolation; three images: the first pair's two rows."""
    import torch

    from dgm.report import gather as g
    from dgm.tasks.interpolate import interpolate

    model = open_run(runs["vae"]).load().model
    x = torch.bernoulli(torch.full((4, 1, 8, 8), 0.3, dtype=torch.float32))
    shown = []
    monkeypatch.setattr(g.plots, "image_grid", lambda images, **kw: shown.append((images, kw)))
    monkeypatch.setattr(g.Figure, "of", staticmethod(lambda img, caption: caption))
    g.interpolations(model, x, None, 5, (0, 1))
    g.interpolations(model, x[:3], None, 5, (0, 1))
    (four, kw), (three, _) = shown
    assert kw["nrow"] == 5 and four.shape == (4 * 5, 1, 8, 8) and three.shape == (2 * 5, 1, 8, 8)
    with torch.no_grad():
        expected = [
            interpolate(model, x[a : a + 2], 5, m) for a in (0, 2) for m in ("lerp", "slerp")
        ]
    assert torch.allclose(four, torch.cat(expected), atol=1e-6)
    assert torch.allclose(three, four[:10])


def test_a_class_conditional_grid_has_one_column_per_class(tmp_path, monkeypatch):
    from dgm.cli import main
    from dgm.report import gather as g

    run = tmp_path / "cvae"
    argv = ["train", "vae", "--data", "digits", "--binarize", "static", "--num-classes", "10"]
    argv += ["--latent-dim", "2", "--hidden-sizes", "4", "--steps", "1", "--eval-every", "0"]
    assert main([*argv, "--device", "cpu", "--sample-every", "0", "--out", str(run)]) == 0
    grids = []
    real = g.plots.image_grid
    monkeypatch.setattr(g.plots, "image_grid", lambda x, **kw: grids.append(kw) or real(x, **kw))
    shown = g.samples(open_run(run).load(), n=20)
    assert grids[0]["nrow"] == 10 and "column k: class k" in shown.figure.caption
