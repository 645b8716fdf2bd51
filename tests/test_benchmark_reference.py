"""benchmarks.reference: a run trained in slices (stopped, then resumed) ends exactly as one
trained at once; its record holds the curve, the slices and the test figure of its best
validation weights; the table says what state each run is in."""

import dataclasses
import importlib
import json
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
    assert [p[0] for p in record["curve"]] == [1.0, 2.0, 3.0, 4.0]
    assert record["last_5_epochs_change"] is None  # fewer than 6 evaluations
    best = min(record["curve"], key=lambda p: p[1])
    assert record["best_epoch"] == best[0] and record["best_valid_nll"] == best[1]
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


def test_every_reference_run_names_a_registered_model_and_dataset(reference):
    import dgm

    for ref in reference.RUNS:
        assert ref.model in dgm.available_models(), ref.name
        assert ref.data["name"] in dgm.available_datasets(), ref.name
        assert ref.epochs >= 30 and ref.patience >= 1, ref.name  # the 30-epoch floor
        dataclasses.replace(ref).data_config()  # its options are the dataset's own
        if ref.data["name"] == "fashion_mnist":  # its config is the model's own
            dgm.create(ref.model, (1, 28, 28), **ref.config)
