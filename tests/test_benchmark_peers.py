"""docs/peers.md: the verdicts read the intervals right, and no side-by-side benchmark is
left off the page."""

import importlib
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def peers(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # benchmarks/ is a top-level folder
    return importlib.import_module("benchmarks.peers")


def test_the_verdict_is_read_from_the_interval_in_either_stored_form(peers):
    assert peers.verdict({"mean": -0.5, "half_width": 0.2}) == "better than the peer"
    assert peers.verdict({"mean": 0.5, "ci95": [0.1, 0.9]}) == "worse than the peer"
    assert peers.verdict({"mean": -0.1, "ci95": [-0.3, 0.1]}).startswith("not distinguishable")
    assert peers.verdict({"mean": -0.1, "half_width": math.nan}).startswith("not disting")
    # higher-is-better figures (accuracy): a positive difference favours dgm
    assert peers.verdict({"mean": 0.02, "ci95": [0.01, 0.03]}, lower_is_better=False) == (
        "better than the peer"
    )
    assert peers.interval_cell({"mean": -0.5, "half_width": 0.25}, 2) == "-0.50 [-0.75, -0.25]"
    assert peers.interval_cell({"mean": 1.5, "ci95": [1.25, 1.75]}, 2, sign="") == (
        "1.50 [1.25, 1.75]"
    )
    assert peers.interval_cell(None, 2) == "–"


def test_every_side_by_side_benchmark_has_its_rows_on_the_page(peers):
    side_by_side = {p.stem for p in (ROOT / "benchmarks").glob("side_by_side_*.py")}
    assert side_by_side <= set(peers.MODULES), "add the module to benchmarks.peers.MODULES"
    for name in peers.MODULES:
        module = importlib.import_module(f"benchmarks.{name}")
        assert callable(getattr(module, "peer_rows", None)), f"{name} lacks peer_rows"


def test_each_row_holds_both_figures_and_a_reading(peers):
    from benchmarks.common import RESULTS, read_results

    rows = peers.rows(read_results(RESULTS))
    assert rows, "no side-by-side results committed"
    for r in rows:
        assert r.dgm and r.peer_value and r.reading and r.budget and r.data, r
        assert "|" not in "".join(vars(r).values()), f"a cell breaks the table: {r}"
