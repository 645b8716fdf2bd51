"""benchmarks.reference: a run trained in slices (stopped, then resumed) ends exactly as one
trained at once; its record holds the curve, the slices and the test figure of its best
validation weights; the table says what state each run is in."""

import dataclasses
import importlib
import json
import math
import shutil
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import stopping_at

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def reference(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("benchmarks.reference")


@pytest.fixture
def figures(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("benchmarks.reference_figures")


def _made(reference, **kw):
    base = dict(
        name="made",
        label="MADE, 32 hidden",
        model="made",
        data={"name": "digits", "binarize": "static"},
        config={"hidden_sizes": (32,)},
        batch_size=100,
        lr=0.01,
        epochs=4,
        patience=10,
    )
    return reference.Reference(**{**base, **kw})


def test_a_run_in_slices_ends_as_one_trained_at_once(reference, tmp_path):
    from dgm.evaluate.likelihood import evaluate
    from dgm.run_dir import Run

    ref = _made(reference)
    far = time.monotonic() + 3600  # no wall-clock limit
    reference.advance(ref, tmp_path / "whole", far, quick=False)
    with stopping_at(17):  # as the SIGTERM of a spent --hours does, inside fit
        assert not reference.advance(ref, tmp_path / "cut", far, quick=False)  # stop there
    slices = json.loads((tmp_path / "cut" / "made" / reference.SESSIONS).read_text())
    assert [(s["from_step"], s["to_step"], s["stopped"]) for s in slices] == [
        (0, 17, "out of time")
    ]
    record = reference.status(ref, tmp_path / "cut", {}, quick=False)
    assert record["state"] == "in progress" and "test" not in record
    # the best weights so far (epoch 1 of 17 steps) on the test split, marked with their epoch
    so_far = Run.open(tmp_path / "cut" / "made")
    expected = evaluate(so_far.model(best=True, device="cpu"), so_far.data("test"), batch_size=500)
    assert record["test_so_far"]["best_epoch"] == 1.0
    assert record["test_so_far"]["nll"] == pytest.approx(expected["nll"], rel=1e-6)
    kept = {**record, "test_so_far": {"best_epoch": 1.0, "nll": -1.0}}  # same best epoch: kept
    assert reference.status(ref, tmp_path / "cut", kept, quick=False)["test_so_far"]["nll"] == -1.0
    moved = {**record, "test_so_far": {"best_epoch": 7.0, "nll": -1.0}}  # another: recomputed
    again = reference.status(ref, tmp_path / "cut", moved, quick=False)
    assert again["test_so_far"] == record["test_so_far"]
    assert reference.advance(ref, tmp_path / "cut", far, quick=False)
    assert reference.advance(ref, tmp_path / "cut", far, quick=False)  # finished: nothing more
    a, b = (
        load_file(str(p / "made" / "model.safetensors"))
        for p in (tmp_path / "whole", tmp_path / "cut")
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    record = reference.status(ref, tmp_path / "cut", {}, quick=False)
    per_epoch = record["steps_per_epoch"]
    assert record["state"] == "budget" and record["epochs"] == ref.epochs
    assert [s["stopped"] for s in record["slices"]] == ["out of time", "budget"]
    for key in ("wall_s", "cpu_s"):  # the run's time is both slices' together
        assert all(s[key] > 0 for s in record["slices"])
        assert record[key] == round(sum(s[key] for s in record["slices"]), 1)
    assert [p[0] for p in record["curve"]] == [1.0, 2.0, 3.0, 4.0]
    assert record["last_5_epochs_change"] is None  # fewer than 6 evaluations
    best = min(record["curve"], key=lambda p: p[1])
    assert record["best_epoch"] == best[0] and record["best_valid_nll"] == best[1]
    # the training NLL over the best epoch: the lines logged inside it (every 3 steps, at
    # the stop of the first slice, step 17, and at the last step)
    logged = [json.loads(s) for s in (tmp_path / "cut" / "made" / "metrics.jsonl").open()]
    lo, hi = (best[0] - 1) * per_epoch, best[0] * per_epoch
    inside = [r["nll"] for r in logged if "nll" in r and lo < r["step"] <= hi]
    steps = [s for s in range(1, 4 * per_epoch + 1) if s % 3 == 0 or s in (17, 4 * per_epoch)]
    assert len(inside) == len([s for s in steps if lo < s <= hi]) > 0
    assert record["train_nll_at_best"] == pytest.approx(sum(inside) / len(inside))
    run = Run.open(tmp_path / "cut" / "made")
    expected = evaluate(run.model(best=True, device="cpu"), run.data("test"), batch_size=500)
    assert record["test"]["nll"] == pytest.approx(expected["nll"], rel=1e-6)
    assert record["test"]["bound"] == "exact" and per_epoch == 14


def test_patience_ends_a_run_at_its_plateau_and_the_figure_is_kept(reference, tmp_path):
    ref = _made(reference, epochs=200, patience=1, lr=0.05)
    reference.advance(ref, tmp_path, time.monotonic() + 3600, quick=False)
    record = reference.status(ref, tmp_path, {}, quick=False)
    assert record["state"] == "plateau" and record["epochs"] < 200
    assert record["epochs"] == record["best_epoch"] + 1  # one epoch without a better one
    # the test figure is computed once: a later status keeps it while the run is unchanged
    again = reference.status(ref, tmp_path, {**record, "test": {"nll": -1.0}}, quick=False)
    assert again["test"] == {"nll": -1.0}


def test_the_table_states_each_run(reference):
    record = {
        "runs": {
            "vae": {
                "state": "plateau", "label": "VAE", "data": {"name": "fashion_mnist"},
                "budget_epochs": 200, "epochs": 41.0, "best_epoch": 31.0, "best_valid_nll": 240.123,
                "last_5_epochs_change": 0.314,
                "test": {"bound": "iwae_100", "nll": 238.5}, "wall_s": 7200.0, "cpu_s": 3600.0,
                "slices": [{}, {}],
            },
            "ddpm": {
                "state": "in progress", "label": "DDPM", "data": {"name": "fashion_mnist"},
                "budget_epochs": 30, "epochs": 2.5, "best_epoch": 2.0, "best_valid_nll": 3000.0,
                "wall_s": 1800.0, "cpu_s": 1800.0, "slices": [{}],
            },
            "glow": {"state": "not started"},
            "gpt_words": {
                "state": "plateau", "label": "GPT", "data": {"name": "words"},
                "budget_epochs": 30, "epochs": 9.0, "best_epoch": 6.0, "best_valid_nll": 20.0,
                "wall_s": 3600.0, "cpu_s": 3600.0, "slices": [{}],
                "test": {"bound": "exact", "nll": 20.0, "nats_per_char": 1.4,
                         "file_baselines_bits_per_char": {"lzma": 2.7, "gzip": 3.1, "bz2": 3.0}},
            },
            "realnvp": {
                "state": "in progress", "label": "RealNVP", "data": {"name": "fashion_mnist"},
                "budget_epochs": 30, "epochs": 3.5, "best_epoch": 3.0, "best_valid_nll": 2000.0,
                "event_shape": [1, 28, 28], "wall_s": 1800.0, "cpu_s": 1800.0, "slices": [{}],
                "test_so_far": {"bound": "exact", "bits_per_dim": 3.75, "best_epoch": 3.0},
            },
        }
    }  # fmt: skip
    lines = reference.table(record)
    rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| ")}
    assert (
        "| plateau | 41.0 | 31 | 240.12 | +0.31 | 238.50 nats (−IWAE-100) | 2.00 | 1.00 | 2 |"
        in rows["vae"]
    )
    assert "| in progress (30 max) | 2.5 | 2 | 3000.00 | – | – | 0.50 | 0.50 | 1 |" in rows["ddpm"]
    assert "not started" in rows["glow"]
    text = "| 1.400 nats/char = 2.020 bits/char (lzma 2.700, gzip 3.100 bits/char of the whole"
    assert text in rows["gpt_words"]
    # 2000 nats over 784 dimensions: 2000 / (784 ln 2) = 3.680 bits/dim
    assert "| 2000.00 (3.680 bits/dim) | – | so far (epoch 3): 3.750 bits/dim |" in rows["realnvp"]


def test_every_reference_run_names_a_registered_model_and_dataset(reference):
    import dgm

    for ref in reference.RUNS:
        assert ref.model in dgm.available_models(), ref.name
        assert ref.data["name"] in dgm.available_datasets(), ref.name
        assert ref.epochs >= 30 and ref.patience >= 1, ref.name  # the 30-epoch floor
        dataclasses.replace(ref).data_config()  # its options are the dataset's own
        if ref.data["name"] == "fashion_mnist":  # its config is the model's own
            dgm.create(ref.model, (1, 28, 28), **ref.config)


def test_text_baselines_code_the_characters_the_model_is_scored_on(figures):
    """Padded words: each word and its end token, not the padding; running text: the
    windows joined back. Bits per character of lzma's whole file, headers included."""
    import lzma

    from dgm.data.text import TextData, encode, encode_padded

    vocab = "\nabc"
    words = TextData(encode_padded(["ab", "c", "cab"], 5, vocab), vocab=vocab, name="w",
                     end_token=0)  # fmt: skip
    text = "ab\nc\ncab\n"  # 9 characters scored: the padding after each "\n" is not
    files = figures.text_file_baselines(words)
    expected = 8 * len(lzma.compress(text.encode(), preset=9 | lzma.PRESET_EXTREME)) / 9
    assert files["lzma"] == pytest.approx(expected)
    running = TextData(encode("abcab\ncab", vocab).view(3, 3), vocab=vocab, name="r")
    expected = 8 * len(lzma.compress(b"abcab\ncab", preset=9 | lzma.PRESET_EXTREME)) / 9
    assert figures.text_file_baselines(running)["lzma"] == pytest.approx(expected)
    assert set(files) == {"gzip", "bz2", "lzma"}


def test_the_reading_puts_each_figure_beside_the_file_coders(reference):
    ddpm = {
        "test_so_far": {"bound": "ddpm", "bits_per_dim": 3.6, "bits_per_dim_se": 0.1,
                        "test_n": 500, "best_epoch": 5.0,
                        "file_baselines_bits_per_dim": {"gzip": 4.5, "lzma": 3.9, "png": 4.1}},
    }  # fmt: skip
    assert reference.reading("ddpm", ddpm) == (
        "- ddpm: 3.600 ± 0.100 bits/dim (best epoch so far, 5): below lzma's 3.900 "
        "(+3.0 standard errors), below PNG's 4.100 (+5.0 standard errors), on the same 500 "
        "test images."
    )
    ddpm["test_so_far"]["bits_per_dim"] = 4.0  # between lzma and PNG
    assert "above lzma's 3.900 (-1.0 standard errors), below PNG's 4.100 (+1.0" in (
        reference.reading("ddpm", ddpm)
    )
    text = {
        "data": {"name": "fortunes"},
        "best_valid_nll": 150.0,
        "train_nll_at_best": 110.0,  # 27 % below the valid NLL: overfitting
        "test": {"bound": "exact", "nats_per_char": 2.4,  # 3.462 bits/char
                 "file_baselines_bits_per_char": {"gzip": 3.5, "bz2": 3.2, "lzma": 3.3}},
    }  # fmt: skip
    line = reference.reading("gpt_fortunes", text)
    assert line.startswith("- gpt_fortunes: 3.462 bits/char, above bz2 3.200, lzma 3.300; ")
    assert "each window from its start" in line
    assert "training NLL 110.00 against valid 150.00 nats" in line
    close = {**text, "train_nll_at_best": 149.0, "test": {**text["test"], "nats_per_char": 2.0}}
    assert reference.reading("gpt_fortunes", close) == (
        "- gpt_fortunes: 2.885 bits/char, below every file coder (bz2 3.200)."
    )
    assert reference.reading("glow", {"state": "not started"}) is None
    flow = {
        "state": "budget",
        "budget_epochs": 30,
        "best_epoch": 30.0,
        "event_shape": [1, 2, 2],
        "last_5_epochs_change": -0.5,
        "best_valid_nll": 10.0,
        "test": {"bound": "dequantized", "bits_per_dim": 3.3},
    }
    assert reference.reading("glow", flow) == (  # -0.5 / (4 ln 2) = -0.180 bits/dim
        "- glow: still improving at its 30-epoch budget (best epoch 30; valid NLL -0.50 nats "
        "(-0.180 bits/dim), -5.00 %, over the last 5 epochs): the figure is the budget's, not "
        "a plateau's."
    )
    flat = {**flow, "best_valid_nll": 600.0}  # -0.5 of 600: 0.08 %, flat
    for done in ({**flow, "state": "plateau"}, {**flow, "last_5_epochs_change": 0.1}, flat):
        assert reference.reading("glow", done) is None  # stopped, or no longer falling
    # the in-context figure, where there is one, is the one set beside the coders
    context = {**text["test"], "nats_per_char_in_context": 2.3, "context_stride": 32}
    line = reference.reading("gpt_fortunes", {**text, "test": context})  # 3.318 bits/char
    assert line.startswith("- gpt_fortunes: 3.318 bits/char in context, above bz2 3.200, lzma")
    assert "sees at most 63 characters back; the coders adapt to the test text itself" in line
    assert "in context (≥ 32 characters before each): 2.300 nats/char = 3.318" in (
        reference._test_cell(context)
    )


def test_an_8_bit_figure_stands_beside_whole_png_and_lzma_files_of_the_same_images(
    reference, tmp_path
):
    from benchmarks.ddpm import file_baselines

    from dgm.run_dir import Run

    ref = _made(
        reference,
        name="bytes",
        data={"name": "digits", "scale": "byte"},
        config={"hidden_sizes": (16,), "head": "categorical"},
        epochs=1,
        test="bits_per_dim",
    )
    reference.advance(ref, tmp_path, time.monotonic() + 3600, quick=False)
    record = reference.status(ref, tmp_path, {}, quick=False)
    test = record["test"]
    images = Run.open(tmp_path / "bytes").data("test").x
    assert test["file_baselines_bits_per_dim"] == file_baselines(images)
    assert test["test_n"] == len(images) == 300
    nats_per_bit = 64 * math.log(2)  # 8×8 dimensions
    assert test["bits_per_dim"] == pytest.approx(test["nll"] / nats_per_bit)
    assert test["bits_per_dim_se"] == pytest.approx(test["nll_se"] / nats_per_bit)
    files = test["file_baselines_bits_per_dim"]
    assert reference._test_cell(test) == (
        f"{test['bits_per_dim']:.3f} ± {test['bits_per_dim_se']:.3f} bits/dim "
        f"(PNG {files['png']:.3f}, lzma {files['lzma']:.3f}; 300 images)"
    )
    assert "on the same 300 test images" in reference.reading("bytes", record)
    # a figure kept from before the coders were set beside it is computed again; one with
    # them is kept
    bare = {k: v for k, v in test.items() if k != "file_baselines_bits_per_dim"}
    again = reference.status(ref, tmp_path, {**record, "test": bare}, quick=False)
    assert again["test"] == test
    kept = {**test, "nll": -1.0}
    assert reference.status(ref, tmp_path, {**record, "test": kept}, quick=False)["test"] == kept


def test_a_slice_too_short_to_be_worth_its_loading_is_not_started(reference, tmp_path):
    ref = _made(reference)
    soon = time.monotonic() + reference.SLICE_FLOOR_S / 2
    assert not reference.advance(ref, tmp_path, soon, quick=False)  # the runs after it wait
    assert not (tmp_path / "made").exists()  # nothing trained, no slice recorded


def test_hours_zero_trains_nothing_and_refreshes_the_records(reference, tmp_path, monkeypatch):
    ref = _made(reference, epochs=2)
    reference.advance(ref, tmp_path / "runs", time.monotonic() + 3600, quick=False)
    slices = (tmp_path / "runs" / "made" / reference.SESSIONS).read_text()
    monkeypatch.setattr(reference, "RUNS", (ref,))
    monkeypatch.setattr(reference, "runs_dir", lambda name, quick: tmp_path / "runs")
    monkeypatch.setattr(reference, "result_path", lambda name, quick: tmp_path / "out.json")
    written: list[dict] = []
    monkeypatch.setattr(
        reference, "write_result", lambda name, payload, **kw: written.append(payload)
    )
    monkeypatch.setattr(reference, "plot", lambda runs, path: None)
    assert reference.main(["--hours", "0"]) == 0
    assert (tmp_path / "runs" / "made" / reference.SESSIONS).read_text() == slices  # no slice
    (record,) = [payload["runs"]["made"] for payload in written]
    assert record["state"] == "budget" and record["epochs"] == 2 and record["test"]["nll"] > 0
    with pytest.raises(SystemExit) as stop:
        reference.main(["--hours", "-1"])
    assert stop.value.code == 2


def test_in_context_scoring_counts_every_character_once(figures):
    """A model whose prediction ignores the context: whatever the stride, the figure is the
    mean of −log p over every character of the text, each once (the tail after the last
    stride too); stride T is the per-window figure of a real GPT."""
    import dgm
    from dgm.data.text import TextData

    T, V = 8, 5
    text = torch.randint(0, V, (7 * T,), generator=torch.Generator().manual_seed(0))
    data = TextData(text.view(7, T), vocab="abcde", name="t")
    weights = torch.tensor([0.0, 1.0, -1.0, 2.0, 0.5])  # (V,): the same logits everywhere

    class Unigram:
        def conditional_logits(self, x):
            return weights.expand(*x.shape, V)  # (B, T, V)

    expected = float((weights.logsumexp(0) - weights[text]).mean())
    for stride in (1, 3, 5, T):  # 3 and 5 leave a tail the last window must score
        got = figures.nats_per_char_in_context(Unigram(), data, stride, batch=4)
        assert got == pytest.approx(expected, rel=1e-6), stride
    with pytest.raises(ValueError, match=r"stride 9 must be in 1\.\.8"):
        figures.nats_per_char_in_context(Unigram(), data, T + 1)

    gpt = dgm.create("gpt", (T,), vocab_size=V, n_layer=1, n_head=2, n_embd=8).eval()
    with torch.no_grad():
        per_window = float(-gpt.log_prob(data.x).sum() / text.numel())
    assert figures.nats_per_char_in_context(gpt, data, T) == pytest.approx(per_window, 1e-5)
    assert figures.running_text(data) and not figures.running_text(
        TextData(data.x, vocab="abcde", name="w", end_token=0)
    )


def test_a_record_of_another_setup_is_not_the_runs(reference, tmp_path):
    """A finished record stands for its run while the setup is the same (it is then not
    trained again, and kept when its folder is gone); changing the budget or the model's
    config makes it another run's record."""
    ref = _made(reference, epochs=2)
    reference.advance(ref, tmp_path, time.monotonic() + 3600, quick=False)
    record = reference.status(ref, tmp_path, {}, quick=False)
    assert reference.same_setup(record, ref, quick=False)
    longer = dataclasses.replace(ref, epochs=3)
    wider = dataclasses.replace(ref, config={"hidden_sizes": (64,)})
    assert not reference.same_setup(record, longer, quick=False)
    assert not reference.same_setup(record, wider, quick=False)
    assert not reference.same_setup(record, ref, quick=True)  # quick: another budget
    gone = tmp_path / "elsewhere"  # the run folder moved away
    assert reference.status(ref, gone, record, quick=False) == record
    assert reference.status(longer, gone, record, quick=False) == {"state": "not started"}


def test_a_finished_record_is_trained_again_only_when_its_setup_changed(
    reference, tmp_path, monkeypatch
):
    ref = _made(reference, epochs=2)
    reference.advance(ref, tmp_path / "old", time.monotonic() + 3600, quick=False)
    record = reference.status(ref, tmp_path / "old", {}, quick=False)
    monkeypatch.setattr(reference, "runs_dir", lambda name, quick: tmp_path / "runs")
    monkeypatch.setattr(reference, "result_path", lambda name, quick: tmp_path / "out.json")
    monkeypatch.setattr(reference, "write_result", lambda name, payload, **kw: payload)
    monkeypatch.setattr(reference, "plot", lambda runs, path: None)
    (tmp_path / "out.json").write_text(json.dumps({"runs": {"made": record}}, default=list))
    trained = tmp_path / "runs" / "made" / reference.SESSIONS
    monkeypatch.setattr(reference, "RUNS", (ref,))
    reference.run(hours=1.0)  # the same setup, its folder gone: kept, not trained
    assert not trained.exists()
    monkeypatch.setattr(reference, "RUNS", (dataclasses.replace(ref, epochs=3),))
    payload = reference.run(hours=1.0)  # a longer budget: another run, trained
    assert trained.exists() and payload["runs"]["made"]["epochs"] == 3


def _results_beside(reference, tmp_path, monkeypatch, ref):
    """``run`` reads and writes its record in tmp_path/results (plots off) for ``ref`` alone;
    returns the folder of ``ref``'s carried state."""
    results = tmp_path / "results" / "reference.json"
    results.parent.mkdir()
    monkeypatch.setattr(reference, "RUNS", (ref,))
    monkeypatch.setattr(reference, "result_path", lambda name, quick: results)
    monkeypatch.setattr(
        reference,
        "write_result",
        lambda name, payload, **kw: results.write_text(json.dumps(payload, default=list)),
    )
    monkeypatch.setattr(reference, "plot", lambda runs, path: None)
    return results.parent / reference.CARRIED / ref.name


def _on_machine(reference, monkeypatch, path):
    monkeypatch.setattr(reference, "runs_dir", lambda name, quick: path)


def test_a_fresh_machine_resumes_from_the_carried_state_exactly(reference, tmp_path, monkeypatch):
    """runs/ is not tracked: a slice that ends before its run leaves the resume state beside
    the record (the committed checkpoint only, no lock); another machine's empty runs/
    resumes from it and ends as a run trained at once, and the state goes when it finishes."""
    ref = _made(reference)
    reference.advance(ref, tmp_path / "whole", time.monotonic() + 3600, quick=False)
    state = _results_beside(reference, tmp_path, monkeypatch, ref)
    for machine, stop in (("one", 17), ("two", 31)):  # two slices, each on a fresh machine
        _on_machine(reference, monkeypatch, tmp_path / machine)
        with stopping_at(stop):
            reference.run(hours=1.0)
        folders = sorted(p.name for p in (state / "checkpoints").iterdir())
        assert folders == [f"step-{stop:07d}"]  # the committed checkpoint, not the older ones
        assert not (state / "run.lock").exists()
        shutil.rmtree(tmp_path / machine)  # the machine is gone
    _on_machine(reference, monkeypatch, tmp_path / "three")
    record = reference.run(hours=1.0)["runs"]["made"]
    assert [(s["from_step"], s["to_step"], s["stopped"]) for s in record["slices"]] == [
        (0, 17, "out of time"),
        (17, 31, "out of time"),
        (31, 56, "budget"),
    ]
    assert record["state"] == "budget" and not state.exists()
    a, b = (
        load_file(str(p / "made" / "model.safetensors"))
        for p in (tmp_path / "whole", tmp_path / "three")
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_carried_state_is_restored_only_beside_its_record_of_the_same_setup(
    reference, tmp_path, monkeypatch
):
    ref = _made(reference)
    state = _results_beside(reference, tmp_path, monkeypatch, ref)
    _on_machine(reference, monkeypatch, tmp_path / "one")
    with stopping_at(17):
        reference.run(hours=1.0)
    _on_machine(reference, monkeypatch, tmp_path / "two")
    results = state.parent.parent / "reference.json"
    saved = results.read_text()
    monkeypatch.setattr(reference, "RUNS", (dataclasses.replace(ref, epochs=5),))
    assert reference.run(hours=0)["runs"]["made"] == {"state": "not started"}
    assert not (tmp_path / "two" / "made").exists()  # another budget: another run's state
    monkeypatch.setattr(reference, "RUNS", (ref,))
    results.write_text(saved)  # the record of the same setup, as committed beside the state
    record = reference.run(hours=0)["runs"]["made"]  # --hours 0: restored, nothing trained
    assert record["state"] == "in progress" and record["epochs"] == 17 / 14
    assert state.is_dir() and (tmp_path / "two" / "made" / "reference_slices.json").is_file()
    assert not reference.restore(tmp_path / "two" / "made", state)  # it has its own now


def test_the_carried_state_is_what_a_resume_reads(reference, tmp_path):
    """The committed checkpoint, not an older one that a crash between commit and pruning
    left; no lock a crash left, no pictures (drawn again from metrics.jsonl)."""
    ref = _made(reference)
    with stopping_at(17):
        reference.advance(ref, tmp_path, time.monotonic() + 3600, quick=False)
    run = tmp_path / "made"
    shutil.copytree(run / "checkpoints" / "step-0000017", run / "checkpoints" / "step-0000014")
    (run / "run.lock").write_text("{}")
    (run / "curves.png").write_bytes(b"png")
    (run / "samples-0000014.png").write_bytes(b"png")
    reference.carry(run, tmp_path / "state")
    carried = {str(p.relative_to(tmp_path / "state")) for p in (tmp_path / "state").rglob("*")}
    kept = {str(p.relative_to(run)) for p in run.rglob("*")}
    gone = {"run.lock", "curves.png", "samples-0000014.png", "checkpoints/step-0000014"}
    assert carried == {p for p in kept if not any(p.startswith(g) for g in gone)}
    assert "checkpoints/step-0000017/trainer.pt" in carried and "metrics.jsonl" in carried


def test_the_ddpm_figure_is_its_bound_in_bits_per_dim(figures, monkeypatch):
    """nats per image / (D ln 2): a bound of 4 ln 2 nats on 4 sub-pixels is 1 bit/dim."""
    import types

    import benchmarks.ddpm as ddpm

    monkeypatch.setattr(ddpm, "_bound", lambda model, x, t, b: {"nll": 4 * math.log(2), "se": 0.0})
    monkeypatch.setattr(ddpm, "file_baselines", lambda x: {})
    test = types.SimpleNamespace(x=torch.zeros(10, 1, 2, 2))
    out = figures.ddpm_figure(types.SimpleNamespace(num_dims=4), test, quick=True)
    assert out["bits_per_dim"] == pytest.approx(1.0) and out["test_n"] == 10


def test_the_change_over_the_last_5_epochs_reads_the_curve_5_epochs_back(reference, tmp_path):
    """Seven epochs whose valid NLL falls 10, 9, ..., 4: the change over the last 5 epochs
    is 4 − 9 (epoch 7 against epoch 2)."""
    from dgm import run_dir as rd
    from dgm.config import to_dict
    from dgm.train import TrainConfig

    ref = _made(reference, epochs=10)
    run = tmp_path / ref.name
    run.mkdir()
    train = to_dict(TrainConfig(steps=100, eval_every=10, batch_size=100))
    rd.write_json(run / rd.CONFIG, {"train": train, "event_shape": [1, 8, 8]})
    rd.write_json(run / reference.SESSIONS, [
        {"from_step": 0, "to_step": 30, "wall_s": 10.0, "cpu_s": 8.0, "stopped": "out of time"},
        {"from_step": 30, "to_step": 70, "wall_s": 20.0, "cpu_s": 16.0, "stopped": "out of time"},
    ])  # fmt: skip
    for epoch in range(1, 8):
        rd.append_metrics(run / rd.METRICS, {"step": 10 * epoch, "valid/nll": 11.0 - epoch})
    known = {"test_so_far": {"best_epoch": 7.0, "nll": 1.0}}  # kept: no model to load
    record = reference.status(ref, tmp_path, known, quick=False)
    assert record["last_5_epochs_change"] == 4.0 - 9.0 and record["best_epoch"] == 7.0
    assert record["wall_s"] == 30.0 and record["cpu_s"] == 24.0


def test_running_text_is_scored_in_context_with_windows_half_a_block_apart(figures, monkeypatch):
    """A text run cut from one running text (no end token): beside the per-window figure,
    the in-context one, with windows every T / 2 tokens (T = 8: stride 4)."""
    import types

    import dgm.evaluate.likelihood as likelihood
    import dgm.run_dir as rd

    info = types.SimpleNamespace(end_token=None)
    test = types.SimpleNamespace(x=torch.zeros(3, 8, dtype=torch.long), info=info)
    opened = types.SimpleNamespace(model=lambda **kw: "model", data=lambda split: test)
    monkeypatch.setattr(rd.Run, "open", staticmethod(lambda path: opened))
    per_window = {"bound": "exact", "nll": 9.0, "n": 3, "nats_per_token": 1.5}
    monkeypatch.setattr(likelihood, "evaluate", lambda *a, **kw: per_window)
    monkeypatch.setattr(figures, "text_file_baselines", lambda data: {})
    monkeypatch.setattr(figures, "nats_per_char_in_context", lambda m, data, stride: stride / 10)
    out = figures.figure_on_test("per_char", Path("run"), quick=False)
    assert out["nats_per_char"] == 1.5 and out["context_stride"] == 4
    assert out["nats_per_char_in_context"] == 0.4
