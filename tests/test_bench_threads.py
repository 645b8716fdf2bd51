"""The side-by-side speed pass at several threads (``benchmarks/alternate.py``): the two
steps alternate with the order reversed every other step, the warm-up is left out of the
figures, a pass adds "threads" to the saved rows and leaves every training figure as it
was (the full results untouched by a quick pass), and the peers page shows the 2-thread
ratio only where a row has one."""

from __future__ import annotations

import contextlib
import copy
import json
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def alt(monkeypatch: pytest.MonkeyPatch):  # benchmarks/ is a top-level folder
    monkeypatch.syspath_prepend(str(ROOT))
    import benchmarks.alternate as module

    return module


def _untimed(value: Any) -> Any:
    """A saved record as its training run wrote it: every entry of a ``--threads`` pass
    (``"threads": {"2": ...}``, and the ``"speed"`` entries that held only those) left out."""
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, v in value.items():
        if key == "threads" and isinstance(v, dict) and v and all(n.isdigit() for n in v):
            continue
        v = _untimed(v)
        if key == "speed" and isinstance(v, dict) and all(not x for x in v.values()):
            continue
        out[key] = v
    return out


def _trained(name: str) -> dict[str, Any]:
    """benchmarks/results/<name>.json without its 2-thread figures (``_untimed``)."""
    return _untimed(json.loads((ROOT / "benchmarks" / "results" / f"{name}.json").read_text()))


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


def test_a_thread_entry_stores_the_means_over_its_seeds(alt) -> None:
    """Three seeds: each side's wall ms/step is their mean (a median would read 2, not
    3), and the ratio's mean and interval are over the per-seed ratios."""
    per_seed = [{"dgm_wall_ms": v, "peer_wall_ms": 2.0, "ratio": v / 2} for v in (1.0, 2.0, 6.0)]
    entry = alt.threads_entry(per_seed, steps=5, warmup=1)
    assert entry["dgm_wall_ms"] == 3.0 and entry["peer_wall_ms"] == 2.0
    assert entry["ratio"]["mean"] == 1.5 and entry["ratio"]["n"] == 3
    low, high = entry["ratio"]["ci95"]
    assert (low + high) / 2 == pytest.approx(1.5) and entry["steps"] == 5


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
    rounds = [{"ratio": r} for r in (1.4, 3.8, 1.2, 1.5, 1.3)]  # one slow round
    fits = {"ratio": {"mean": 1.84, "ci95": [0.6, 3.1], "n": 5}, "over": "rounds"}
    assert speed_cell(one, {"2": {**fits, "per_seed": rounds}}).endswith(
        "2 threads: 1.40 (rounds 1.20–3.80)"
    )


@pytest.fixture()
def results(alt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """benchmarks/results/ moved to a temporary folder holding the saved GPT record."""
    from benchmarks import common

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setattr(common, "QUICK_RESULTS", tmp_path / "quick")
    (tmp_path / "side_by_side_gpt.json").write_text(json.dumps(_trained("side_by_side_gpt")))
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
    kept = {k: v for k, v in written.items() if k not in ("speed", "quick")}
    assert kept == {k: v for k, v in saved.items() if k not in ("speed", "quick")}  # machine too
    assert any(line.startswith("At 2 threads (wall ms per step") for line in gpt.table(written))
    assert "; 2 threads: " in gpt.peer_rows(written)[0].speed
    assert "; 2 threads: " not in gpt.peer_rows(saved)[0].speed


def test_a_second_thread_count_keeps_the_first(alt, results: Path) -> None:
    """speed_pass writes each count under its own key and never a row's other keys."""
    trained = {"model": "m", "nll": 1.5, "per_seed": [{"seed": 0, "ms_per_step": 9.0}]}
    payload = {"rows": [{**trained, "threads": {"4": {"kept": True}}}]}
    stamp = {"date": "2026-01-01T00:00:00+00:00", "machine": {"torch_threads": 1}}
    path = alt.write_result(
        "fake",
        copy.deepcopy(payload),
        quick=True,
        seed=0,
        steps=7,
        wall_time_s=1.0,
        measured=stamp,
    )
    first = json.loads(path.read_text())
    assert (first["date"], first["machine"]) == (stamp["date"], stamp["machine"])

    def steppers(_: dict, row: dict, seed: int, n: int) -> dict:
        return {"dgm": lambda i: None, "peer": lambda i: sum(range(1000))}

    fake = types.SimpleNamespace(NAME="fake", QUICK_SEEDS=(0,), table=lambda record: [])
    record = alt.speed_pass(fake, steppers, quick=True, threads=2)
    row = record["rows"][0]
    assert {k: v for k, v in row.items() if k != "threads"} == trained
    assert row["threads"]["4"] == {"kept": True}
    assert row["threads"]["2"]["ratio"]["ci95"] is None  # one seed
    assert record["steps"] == 7 and record["seed"] == 0  # the provenance kept
    assert (record["date"], record["machine"]) == (first["date"], first["machine"])
    assert "load_average" in row["threads"]["2"]["machine"]  # the pass's own machine
    with pytest.raises(SystemExit, match="give 2 or more"):
        alt.speed_pass(fake, steppers, quick=True, threads=1)


def test_wall_rounds_times_rounds_of_calls_per_call(alt, monkeypatch: pytest.MonkeyPatch) -> None:
    """A round is ``repeat`` calls of each side numbered on from the round's first, the
    warm-up round is left out, and each round's ms are per call."""
    wall = FakeClock()
    monkeypatch.setattr(alt.time, "perf_counter", wall)
    calls: list[tuple[str, int]] = []

    def stepper(name: str, seconds: float):
        def step(i: int) -> None:
            calls.append((name, i))
            wall.now += seconds * (1 + i // 3)  # every call of round r lasts (r + 1) × seconds

        return step

    entry = alt.wall_rounds({"d": stepper("d", 1.0), "p": stepper("p", 4.0)}, 2, 1, repeat=3)
    assert [i for name, i in calls if name == "d"] == list(range(9))
    assert calls[6:9] == [("p", 3), ("p", 4), ("p", 5)]  # round 1 runs the peer first
    assert [r["dgm_wall_ms"] for r in entry["per_seed"]] == [2000.0, 3000.0]
    assert [r["ratio"] for r in entry["per_seed"]] == [0.25, 0.25]
    assert entry["over"] == "rounds" and entry["calls_per_round"] == 3
    assert entry["steps"] == 2 and entry["ratio"]["n"] == 2
    with pytest.raises(ValueError, match="give dgm's and the peer's"):
        alt.wall_rounds({"d": stepper("d", 1.0)}, 2)
    line = alt.threads_line([("fit", {"2": entry})], unit="fit")[1]
    assert "wall ms per fit, 2 rounds after 1 warm-up round, means over the rounds" in line


def _saved(results: Path, name: str, record: dict) -> dict:
    """``record`` (its provenance left out) saved as the full results of ``name``; returns
    it as written."""
    from benchmarks.common import PROVENANCE, write_result

    payload = {k: v for k, v in record.items() if k not in PROVENANCE}
    path = write_result(name, payload, quick=False, seed=0, steps=3, wall_time_s=1.0)
    return json.loads(path.read_text())


def test_the_hmm_pass_refits_each_rows_start_in_rounds(
    alt, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hmm's real pass on a tiny Gaussian toy: each round fits fresh copies of the row's
    start (states and iterations from the row), the full results stay as they were, and the
    table and peers cell show the figures."""
    pytest.importorskip("hmmlearn")  # the peer's fits are timed too (a bench extra)
    import benchmarks.hmm as hm

    import dgm
    from dgm.data.dataset import TensorData

    x = dgm.create("hmm", (6, 2), num_states=2).sample(
        30, generator=torch.Generator().manual_seed(0)
    )
    monkeypatch.setattr(
        hm, "DataConfig", lambda name: types.SimpleNamespace(load=lambda split: TensorData(x))
    )
    built: list[tuple[int, ...]] = []
    real = hm.toy_fits
    monkeypatch.setattr(hm, "toy_fits", lambda K, it: built.append((K, it)) or real(K, it))
    # the words fit of a row: its settings seen, the tiny toy fitted in its place
    monkeypatch.setattr(hm, "words_fits", lambda *a: built.append(a) or real(3, 1))
    monkeypatch.setattr(alt, "limit_threads", lambda n: contextlib.nullcontext())
    fits = real(2, 2)
    start = fits.model.means.clone()
    fits.fresh().fit_dgm()
    assert torch.equal(fits.model.means, start)  # a fit changes only its copy
    saved = _trained("hmm")
    saved["toy"] |= {"num_states": 2, "iterations": 2}  # the fit of the tiny toy
    saved = _saved(results, "hmm", saved)

    record = hm.run_threads(quick=True, threads=2)

    assert built == [(16, 10, 5000), (2, 2)]  # each row's states, iterations (and words)
    assert json.loads((results / "hmm.json").read_text()) == saved
    entry = record["toy"]["threads"]["2"]
    assert entry["over"] == "rounds" and entry["ratio"]["n"] == hm.QUICK_SPEED_ROUNDS
    assert {k: v for k, v in record["toy"].items() if k != "threads"} == saved["toy"]
    assert [r.speed.split("; ")[0] for r in hm.peer_rows(record)] == [
        "0.030 (fit CPU s)",
        "0.025 (fit CPU s)",
    ]
    assert all("; 2 threads: " in r.speed for r in hm.peer_rows(record))
    assert not any("2 threads" in r.speed for r in hm.peer_rows(saved))
    assert any(line.startswith("At 2 threads (wall ms per fit") for line in hm.table(record))
    with pytest.raises(ValueError, match="no fits for data"):
        hm.fits_of({"data": "moons"})


def test_the_gan_pass_times_the_reuse_rows_with_reuse_fakes(
    alt, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """side_by_side_gan's pass builds the --reuse-fakes rows' pairs with reuse_fakes and the
    trained rows' without (tiny networks and images), and renders both."""
    import benchmarks.side_by_side_gan as gan

    from dgm.data.dataset import TensorData

    images = TensorData(torch.rand(64, 1, 8, 8))
    monkeypatch.setattr(gan, "load_data", lambda quick: (images, None, "tiny"))
    monkeypatch.setattr(gan, "BATCH", 4)
    reuse: list[bool] = []
    real = gan.make_pair

    def make_pair(objective: str, shape: tuple, seed: int, **config) -> tuple:
        reuse.append(config.get("reuse_fakes", False))
        return real(objective, shape, seed, conv_channels=4, latent_dim=6, **config)

    monkeypatch.setattr(gan, "make_pair", make_pair)
    monkeypatch.setattr(alt, "limit_threads", lambda n: contextlib.nullcontext())
    saved = _trained(gan.NAME)
    payload = copy.deepcopy(saved)
    payload["rows"] = payload["rows"][:1]
    payload["reuse_variant"]["rows"] = payload["reuse_variant"]["rows"][:1]
    _saved(results, gan.NAME, payload)
    monkeypatch.setattr(gan, "QUICK_SEEDS", (0,))

    record = gan.run_threads(quick=True, threads=2)

    assert reuse == [False, True]
    assert all("2" in r["threads"] for r in record["rows"] + record["reuse_variant"]["rows"])
    lines = gan.reuse_lines(record)
    assert lines[-1].startswith("At 2 threads") and "At 2 threads" not in "".join(
        gan.reuse_lines(payload)
    )
    speeds = [row.speed for row in gan.peer_rows(record)]
    assert len(speeds) == 2 and all("; 2 threads: " in s for s in speeds)


def test_the_flows_pass_times_each_case_against_each_peer_library(
    alt, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """flows_compare's real pass on one saved case: one row per peer library, each built
    with dgm's flow and that library's alone (``build_sides``), its figures in that case's
    peers cell and under the table only."""
    pytest.importorskip("zuko")
    pytest.importorskip("normflows")
    import benchmarks.flows_compare as fc

    built: list[tuple] = []
    real = fc.build_sides
    monkeypatch.setattr(fc, "build_sides", lambda *a: built.append(a) or real(*a))
    monkeypatch.setattr(alt, "limit_threads", lambda n: contextlib.nullcontext())
    saved = _trained("flows")
    payload = copy.deepcopy(saved)
    payload["compare"]["by_case"] = payload["compare"]["by_case"][:2]
    full = _saved(results, "flows", copy.deepcopy(payload))
    chosen = fc.speed_rows(payload)  # the pass's rows, made in a copy: two cases × two peers
    assert len(chosen) == 4 and "speed" not in full["compare"]["by_case"][0]
    payload["compare"]["by_case"] = payload["compare"]["by_case"][:1]
    del payload["compare"]["by_case"][0]["speed"]
    _saved(results, "flows", payload)

    record = fc.run_threads(quick=True, threads=2)

    case = record["compare"]["by_case"][0]
    assert built == [(case["model"], 0, ("dgm", lib)) for lib in ("zuko", "normflows")]
    assert set(case["speed"]) == {"zuko", "normflows"}
    assert [s["seed"] for s in case["speed"]["zuko"]["threads"]["2"]["per_seed"]] == [0]
    rows = fc.peer_rows(record)
    assert all("; 2 threads: " in r.speed for r in rows)
    assert not any("2 threads" in r.speed for r in fc.peer_rows(full))
    line = next(line for line in fc.table(record) if line.startswith("At 2 threads"))
    assert f"{case['model']} on {case['toy']} vs zuko" in line


def test_the_pythae_pass_times_dgm_against_each_pythae_optimizer_in_rounds(
    alt, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pythae_compare's real pass on random batches and 2-step rounds: one row per pythae
    side, in which only dgm's step and that side's run, ms per step."""
    pytest.importorskip("pythae")
    import benchmarks.pythae_compare as pc

    batches = [torch.bernoulli(torch.full((pc.CS236_BATCH, 1, 28, 28), 0.3)) for _ in range(2)]
    monkeypatch.setattr(pc, "load_batches", lambda: (None, batches))
    monkeypatch.setattr(pc, "QUICK_STEPS", 2)
    monkeypatch.setattr(alt, "limit_threads", lambda n: contextlib.nullcontext())
    ran: list[str] = []
    real = pc.steppers

    def steppers(*args) -> dict:
        steps = real(*args)
        return {k: (lambda i, k=k, f=f: ran.append(k) or f(i)) for k, f in steps.items()}

    monkeypatch.setattr(pc, "steppers", steppers)
    saved = _trained(pc.NAME)
    payload = copy.deepcopy(saved)
    _saved(results, pc.NAME, payload)

    record = pc.run_threads(quick=True, threads=2)

    calls = 2 * (alt.QUICK_SPEED_STEPS + alt.QUICK_SPEED_WARMUP)
    assert len(ran) == 4 * calls
    assert sorted(ran[: 2 * calls]) == ["dgm"] * calls + ["pythae_adam"] * calls
    assert sorted(ran[2 * calls :]) == ["dgm"] * calls + ["pythae_adam_fused"] * calls
    entry = record["speed"]["pythae_adam"]["threads"]["2"]
    assert entry["over"] == "rounds" and entry["calls_per_round"] == 2
    assert record["ms_per_step"] == payload["ms_per_step"]  # the 1-thread figures kept
    assert "; 2 threads: " in pc.peer_rows(record)[0].speed
    assert "2 threads" not in pc.peer_rows(payload)[0].speed
    assert pc.table(record)[-1].startswith("At 2 threads (wall ms per step, 4 rounds")
