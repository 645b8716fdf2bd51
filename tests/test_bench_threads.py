"""The side-by-side speed pass at several threads (``benchmarks/alternate.py``): the two
steps alternate with the order reversed every other step, the warm-up is left out of the
figures, a pass adds "threads" to the saved rows and leaves every training figure as it
was (the full results untouched by a quick pass), and the peers page shows the 2-thread
ratio only where a row has one."""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def alt(monkeypatch: pytest.MonkeyPatch):  # benchmarks/ is a top-level folder
    monkeypatch.syspath_prepend(str(ROOT))
    import benchmarks.alternate as module

    return module


class FakeClock:
    """A clock that only moves when a fake step says so (seconds)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_alternate_reverses_the_order_every_other_step_and_drops_the_warmup(
    alt, monkeypatch: pytest.MonkeyPatch
) -> None:
    wall, cpu = FakeClock(), FakeClock()
    monkeypatch.setattr(alt.time, "perf_counter", wall)
    monkeypatch.setattr(alt.time, "process_time", cpu)
    calls: list[tuple[str, int]] = []

    def stepper(name: str, seconds: float):
        def step(i: int) -> None:
            calls.append((name, i))
            wall.now += seconds * (i + 1)  # step i lasts (i + 1) × seconds
            cpu.now += 2 * seconds * (i + 1)  # two threads busy

        return step

    timings = alt.alternate({"a": stepper("a", 1.0), "b": stepper("b", 0.5)}, steps=3, warmup=2)
    assert calls == [
        ("a", 0), ("b", 0), ("b", 1), ("a", 1), ("a", 2), ("b", 2),
        ("b", 3), ("a", 3), ("a", 4), ("b", 4),
    ]  # fmt: skip
    assert timings.wall_ms == {"a": [3000.0, 4000.0, 5000.0], "b": [1500.0, 2000.0, 2500.0]}
    assert timings.cpu_ms["a"] == [6000.0, 8000.0, 10000.0]
    figures = alt.seed_figures(timings, "a", "b")
    assert figures["dgm_wall_ms"] == 4000.0 and figures["peer_wall_ms"] == 2000.0
    assert figures["ratio"] == 2.0 and figures["dgm_cpu_ms"] == 8000.0
    with pytest.raises(ValueError, match="steps must be"):
        alt.alternate({"a": stepper("a", 1.0)}, steps=0, warmup=1)


def test_the_peers_cell_shows_the_2_thread_ratio_only_when_measured(alt) -> None:
    from benchmarks.peers import speed_cell

    one = "0.74 [0.73, 0.75]"
    assert speed_cell(one, None) == one
    assert speed_cell(one, {}) == one
    entry = {"ratio": {"mean": 0.8, "ci95": [0.78, 0.82], "n": 3}}
    assert speed_cell(one, {"2": entry}) == f"{one}; 2 threads: 0.80 [0.78, 0.82]"
    four = {"ratio": {"mean": 0.7, "ci95": None, "n": 1}}  # one seed: no interval
    assert speed_cell(one, {"4": four, "2": entry}).endswith(
        "2 threads: 0.80 [0.78, 0.82]; 4 threads: 0.70"
    )
    assert alt.threads_line([("MADE", None), ("NADE", {})]) == []


@pytest.fixture()
def results(alt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """benchmarks/results/ moved to a temporary folder holding the saved GPT record."""
    from benchmarks import common

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setattr(common, "QUICK_RESULTS", tmp_path / "quick")
    shutil.copy(ROOT / "benchmarks" / "results" / "side_by_side_gpt.json", tmp_path)
    return tmp_path


def test_limit_threads_sets_torch_and_blas_threads_and_restores_them(alt) -> None:
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    with alt.limit_threads(3):
        assert torch.get_num_threads() == 3
        assert all(pool["num_threads"] <= 3 for pool in threadpool_info())
    assert torch.get_num_threads() == before


def test_a_speed_pass_adds_threads_and_keeps_every_training_figure(
    alt, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GPT module's real pass (its own builder, tiny config and data): the quick pass
    reads the full results, writes its copy to quick/ with a "threads" entry, and changes
    nothing else; the table and the peers row show the figures."""
    import benchmarks.side_by_side_gpt as gpt

    saved = json.loads((results / "side_by_side_gpt.json").read_text())
    words = torch.randint(1, 7, (200, 8))  # (N, T) tokens; 0 is the end token
    fake = types.SimpleNamespace(x=words, info=types.SimpleNamespace(vocab="abcdefg", end_token=0))
    monkeypatch.setattr(gpt, "DataConfig", lambda name: types.SimpleNamespace(load=lambda s: fake))
    monkeypatch.setattr(gpt, "CONFIG", {"n_layer": 1, "n_head": 2, "n_embd": 8})
    limits: list[int] = []  # the pass runs at the caller's threads: a shared CI machine

    @contextlib.contextmanager
    def limit_threads(n: int) -> Iterator[None]:
        limits.append(n)
        yield

    monkeypatch.setattr(alt, "limit_threads", limit_threads)

    record = gpt.run_threads(quick=True, threads=2)

    assert limits == [2]
    assert json.loads((results / "side_by_side_gpt.json").read_text()) == saved  # untouched
    written = json.loads((results / "quick" / "side_by_side_gpt.json").read_text())
    assert written == record
    entry = written["speed"]["threads"]["2"]
    assert entry["steps"] == 4 and entry["warmup"] == 1 and entry["ratio"]["n"] == 2
    assert [s["seed"] for s in entry["per_seed"]] == list(gpt.QUICK_SEEDS)
    assert entry["dgm_wall_ms"] > 0 and entry["peer_wall_ms"] > 0
    kept = {k: v for k, v in written.items() if k not in ("speed", "date", "quick", "machine")}
    assert kept == {k: v for k, v in saved.items() if k not in ("date", "quick", "machine")}
    assert any(line.startswith("At 2 threads (wall ms per step") for line in gpt.table(written))
    assert "; 2 threads: " in gpt.peer_rows(written)[0].speed
    assert "; 2 threads: " not in gpt.peer_rows(saved)[0].speed


def test_a_second_thread_count_keeps_the_first(alt, results: Path) -> None:
    """speed_pass writes each count under its own key and never a row's other keys."""
    trained = {"model": "m", "nll": 1.5, "per_seed": [{"seed": 0, "ms_per_step": 9.0}]}
    payload = {"rows": [{**trained, "threads": {"4": {"kept": True}}}]}
    alt.write_result("fake", copy.deepcopy(payload), quick=True, seed=0, steps=7, wall_time_s=1.0)

    def steppers(_: dict, row: dict, seed: int, n: int) -> dict:
        return {"dgm": lambda i: None, "peer": lambda i: sum(range(1000))}

    fake = types.SimpleNamespace(NAME="fake", QUICK_SEEDS=(0,), table=lambda record: [])
    record = alt.speed_pass(fake, steppers, quick=True, threads=2)
    row = record["rows"][0]
    assert {k: v for k, v in row.items() if k != "threads"} == trained
    assert row["threads"]["4"] == {"kept": True}
    assert row["threads"]["2"]["ratio"]["ci95"] is None  # one seed
    assert record["steps"] == 7 and record["seed"] == 0  # the provenance kept
    with pytest.raises(SystemExit, match="give 2 or more"):
        alt.speed_pass(fake, steppers, quick=True, threads=1)
