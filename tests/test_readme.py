"""The code in README.md and docs/*.md is real code: the model-author example registers,
passes the contract checks that apply to it and trains; every other Python block runs as
written (in a fresh folder) unless the line before it says ``<!-- no-run: reason -->``;
and the generated benchmark tables of docs/benchmarks.md are what ``benchmarks.tables``
makes of ``benchmarks/results/``."""

import os
import re
from pathlib import Path

import pytest
import torch

import dgm
from dgm.registry import unregister

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MODEL_EXAMPLE = ROOT / "docs" / "adding-a-model.md"
BLOCK = re.compile(r"(?:^(<!--[^\n]*-->)\n)?```python\n(.*?)```", re.S | re.M)


def python_blocks() -> list[tuple[str, str]]:
    """(page:line, code) of every Python block meant to run: not the model example (run
    by its own test below) and not one marked ``<!-- no-run: ... -->``."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for m in BLOCK.finditer(text):
            marker = m.group(1) or ""
            if "no-run" in marker or "model-example" in marker:
                continue
            line = text[: m.start()].count("\n") + 1
            found.append((f"{page.relative_to(ROOT)}:{line}", m.group(2)))
    return found


BLOCKS = python_blocks()


def test_every_page_is_found_and_some_blocks_run():
    names = {p.name for p in PAGES}
    assert {"README.md", "models.md", "cli.md", "tasks.md", "data.md"} <= names, names
    assert {"benchmarks.md", "adding-a-model.md"} <= names, names
    assert any(where.startswith("README.md") for where, _ in BLOCKS)


@pytest.mark.parametrize("where,code", BLOCKS, ids=[w for w, _ in BLOCKS])
def test_a_docs_python_block_runs(where, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the blocks write runs/... relative to the working folder
    torch.manual_seed(0)
    exec(compile(code, where, "exec"), {"__name__": "docs_example"})


def test_a_no_run_marker_must_give_a_reason():
    for page in PAGES:
        for marker in re.findall(r"<!-- no-run(.*?)-->", page.read_text()):
            assert marker.strip(" :"), f"{page.name}: a no-run marker without its reason"


@pytest.fixture
def example_model():
    text = MODEL_EXAMPLE.read_text()
    block = re.search(r"<!-- model-example:start -->\n```python\n(.*?)```", text, re.S).group(1)
    exec(compile(block, "docs model example", "exec"), {"__name__": "readme_example"})
    yield "diag_normal"
    unregister("diag_normal")


def test_the_docs_model_registers_samples_and_trains(example_model, tmp_path):
    model = dgm.create(example_model, (2,)).double()
    x = model.sample(5, generator=torch.Generator().manual_seed(0), temperature=0.5)
    assert x.shape == (5, 2) and model.log_prob(x).shape == (5,)
    with pytest.raises(ValueError, match="has no field"):
        model.sample(2, temprature=0.5)
    from dgm.data import DataConfig
    from dgm.train import TrainConfig, train

    config = TrainConfig(steps=300, batch_size=256, lr=0.05, eval_every=0, device="cpu")
    trained, _ = train(example_model, DataConfig("moons"), tmp_path / "r", config, progress=False)
    data = dgm.data.get("moons", "train").x
    torch.testing.assert_close(trained.loc.detach(), data.mean(0), atol=0.05, rtol=0)


def test_the_benchmark_pages_hold_exactly_the_generated_tables(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # benchmarks/ is a top-level folder, not installed
    from benchmarks import peers
    from benchmarks.common import RESULTS, read_results
    from benchmarks.tables import DOC, generated_part, render

    results = read_results(RESULTS)
    if not results:
        pytest.skip(f"no benchmark results in {RESULTS}")
    for doc, body in ((DOC, render(results)), (peers.DOC, peers.render(results))):
        written = generated_part(doc.read_text())
        assert written is not None, f"{doc} lacks its bench:start/bench:end markers"
        assert written == body, (
            f"{doc.name} differs from the results: run `python -m benchmarks.tables`"
        )


def test_the_readme_is_short_and_every_docs_link_resolves():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).is_file(), f"{page.name} links to missing {target}"
    assert "<!-- bench:start -->" not in readme, "the benchmark tables live in docs/benchmarks.md"
    assert os.path.isfile(MODEL_EXAMPLE)
