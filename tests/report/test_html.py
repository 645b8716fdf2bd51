"""The HTML report and the run comparison on tiny runs: the metrics table holds the run's own
numbers (checked against log_prob and metrics.jsonl), every picture is an embedded PNG, the
page asks nothing from outside, strings from the run are escaped, and each kind of run (an
Encodable and Completable image model, a 2-D model, a text model, a model without a
likelihood) gets its own sections."""

import base64
import io
import json
import re
import shutil
from html.parser import HTMLParser

import pytest
import torch
from PIL import Image

from dgm.report.gather import open_run
from dgm.report.render import compare_html, fmt, report_html
from dgm.run_dir import read_metrics

EVAL_N = 200


class Page(HTMLParser):
    """The parts of a page the tests read: img sources, metrics rows by data-key, tags."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[str] = []
        self.rows: dict[str, list[str]] = {}
        self.headers: list[str] = []
        self.tags: set[str] = set()
        self._row: str | None = None
        self._cell: list[str] | None = None
        self._in_metrics = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "img":
            self.images.append(a.get("src", ""))
        elif tag == "table":
            self._in_metrics = a.get("class") == "metrics"
        elif tag == "tr" and self._in_metrics:
            self._row = a.get("data-key")
            if self._row is not None:
                self.rows[self._row] = []
        elif tag in ("td", "th") and self._in_metrics:
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell)
            if self._row is not None:
                self.rows[self._row].append(text)
            elif tag == "th":
                self.headers.append(text)
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag == "table":
            self._in_metrics = False


def check_self_contained(text: str) -> Page:
    """Every img a PNG data URI that decodes to a non-empty picture; nothing fetched."""
    page = Page(text)
    assert page.images, "the page shows no picture"
    for src in page.images:
        assert src.startswith("data:image/png;base64,"), src[:60]
        img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert img.width > 0 and img.height > 0
    assert "script" not in page.tags
    assert not re.search(r"(src|href)=\"(?!data:)", text), "a resource outside the page"
    assert "http://" not in text and "https://" not in text
    return page


def test_image_run_report_shows_its_numbers_pictures_and_capabilities(runs):
    text = report_html(runs["vae"], eval_n=EVAL_N, n=16)
    page = check_self_contained(text)
    assert len(page.images) == 5  # curves, samples, reconstructions, interpolations, inpaintings
    for title in ("Reconstructions", "Interpolations", "Inpaintings", "Configuration"):
        assert f"<h2>{title}</h2>" in text
    records = read_metrics(runs["vae"] / "metrics.jsonl")
    valid = [r for r in records if "valid/nll" in r]
    assert [r["step"] for r in valid] == [10, 20]
    assert page.rows["logged/valid/nll"] == ["valid/nll", fmt(valid[-1]["valid/nll"]), "step 20"]
    best = min(r["valid/nll"] for r in valid)
    assert page.rows["logged/best_valid_nll"][1] == fmt(best)
    loss = [r["loss"] for r in records if "loss" in r][-1]
    assert page.rows["logged/loss"][1] == fmt(loss)
    assert page.rows["test/bound"][1] == "elbo"
    assert page.rows["test/n"][1] == str(EVAL_N)
    # the one-sample ELBO: close to the logged validation NLL of the same weights
    assert float(page.rows["test/nll"][1]) == pytest.approx(valid[-1]["valid/nll"], rel=0.05)
    nll, kl, rec = (float(page.rows[f"test/{k}"][1]) for k in ("nll", "kl", "reconstruction"))
    assert nll == pytest.approx(kl + rec, rel=1e-3)
    assert report_html(runs["vae"], eval_n=EVAL_N, n=16) == text  # seeded: the same page


def test_exact_likelihood_matches_log_prob_and_2d_runs_are_scattered(runs):
    text = report_html(runs["gmm"], eval_n=EVAL_N)
    page = check_self_contained(text)
    run = open_run(runs["gmm"]).load()
    x = run.data.x[:EVAL_N].to(run.model.dtype)
    with torch.no_grad():
        nll = -run.model.log_prob(x).double().mean().item()
    assert page.rows["test/nll"][1] == fmt(nll)
    assert page.rows["test/bound"][1] == "exact"
    assert len(page.images) == 2  # curves and the scatter: no image capabilities
    assert "Reconstructions" not in text and "Inpaintings" not in text


def test_runs_without_likelihood_or_pictures(runs):
    gan = Page(report_html(runs["gan"], eval_n=EVAL_N))
    assert not any(k.startswith("test/") for k in gan.rows)  # no likelihood: nothing evaluated
    assert "logged/discriminator/loss" in gan.rows and "logged/generator/loss" in gan.rows
    text = report_html(runs["char_rnn"], eval_n=EVAL_N, n=5)
    samples = re.search(r'<pre class="samples">(.*?)</pre>', text, re.S)
    assert samples is not None and len(samples.group(1).split("\n")) == 5
    assert len(Page(text).images) == 1  # the curves only


def test_strings_from_the_run_are_escaped(runs, tmp_path):
    run = tmp_path / "odd"
    shutil.copytree(runs["gmm"], run)
    config = json.loads((run / "config.json").read_text())
    config["note"] = "<script>alert('x')</script> & <marquee>"
    (run / "config.json").write_text(json.dumps(config))
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 3, "valid/<img src=x>": 1.5}) + "\n")
    text = report_html(run, eval_n=10)
    for raw in ("<script", "<marquee>", "<img src=x>"):
        assert raw not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;marquee&gt;" in text
    assert Page(text).rows["logged/valid/<img src=x>"][:2] == ["valid/<img src=x>", "1.5"]
    check_self_contained(text)


def test_compare_puts_runs_side_by_side(runs):
    dirs = [runs["gmm"], runs["gan"], runs["vae"]]
    text = compare_html(dirs, eval_n=EVAL_N, n=16)
    page = check_self_contained(text)
    assert page.headers[:4] == ["metric", "gmm", "gan", "vae"]
    gmm = Page(report_html(runs["gmm"], eval_n=EVAL_N)).rows["test/nll"][1]
    assert page.rows["test/nll"] == ["NLL (nats/example)", gmm, "—", page.rows["test/nll"][3]]
    assert page.rows["logged/generator/loss"][1:] == [
        "—",
        page.rows["logged/generator/loss"][2],
        "—",
    ]
    assert len(page.images) == 4  # the overlaid curves and one sample picture per run
    assert "<tr><td>model</td><td>gmm</td><td>gan</td><td>vae</td></tr>" in text
    config = text.split('<table class="config">')[1].split("</table>")[0]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in config.split("<tr")[2:]]
    only_gmm = [row for row in cells if row[2] == row[3] == "—"]  # keys the others lack
    assert only_gmm and all(row[1] != "—" for row in only_gmm), cells
    assert all("None" not in row for row in cells)
    with pytest.raises(ValueError, match="at least two run directories"):
        compare_html([runs["gmm"]])


def test_sample_quality_on_request_and_a_saved_eval_json(runs, tmp_path):
    from dgm.evaluate.sample_quality import sample_quality

    run = open_run(runs["gmm"]).load()
    expected = sample_quality(run.model, run.data, num_samples=100, seed=0)
    rows = Page(report_html(runs["gmm"], eval_n=10, sample_quality=True, num_samples=100)).rows
    for key in ("fd", "kid", "precision", "recall", "modes_captured"):
        if key in expected:
            assert rows[f"sample_quality/{key}"][1] == fmt(expected[key])
    assert "sample_quality/fd" not in Page(report_html(runs["gmm"], eval_n=10)).rows
    saved = tmp_path / "saved"
    shutil.copytree(runs["gmm"], saved)
    record = {"split": "test", "nll": 1.25, "sample_quality": {"fd": 0.5, "precision": 0.75}}
    (saved / "eval.json").write_text(json.dumps(record))
    rows = Page(report_html(saved, eval_n=10)).rows
    assert rows["eval.json/nll"] == ["test nll", "1.25", "eval.json"]
    assert rows["sample_quality/fd"] == ["fd", "0.5", "eval.json"]
    (saved / "eval.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"eval\.json is not valid JSON"):
        open_run(saved)
