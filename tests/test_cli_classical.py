"""Naive Bayes and Bayesian networks from the command line: one closed-form step fits
them, `dgm eval` scores the test split, `dgm sample` draws, and the fitted model loads back
as a classifier or for inference."""

import json

import torch

import dgm
from dgm.cli import main
from dgm.data import get

RUN = [
    "--steps",
    "1",
    "--batch-size",
    "32",
    "--device",
    "cpu",
    "--eval-every",
    "0",
    "--sample-every",
    "0",
]


def test_naive_bayes_on_binarized_digits_classifies_and_samples(tmp_path, capsys):
    run = tmp_path / "nb"
    data = ["--data", "digits", "--binarize", "static", "--num-classes", "10"]
    assert main(["train", "naive_bayes", *data, *RUN, "--out", str(run)]) == 0
    model = dgm.load(run)
    test = get("digits", "test", binarize="static")
    accuracy = (model.predict_proba(test.x).argmax(-1) == test.y).double().mean()
    assert accuracy > 0.8  # Bernoulli naive Bayes on 8x8 binary digits: about 0.9
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = -model.log_prob(test.x, test.y).double().mean().item()  # log p(x | y)
    assert abs(out["nll"] - expected) < 1e-4
    out = tmp_path / "3.png"
    assert main(["sample", str(run), "-n", "4", "--class", "3", "--out", str(out)]) == 0


def test_bayes_net_learns_a_tree_on_binned_wine_and_answers_queries(tmp_path, capsys):
    run = tmp_path / "bn"
    assert main(["train", "bayes_net", "--data", "wine_bins", *RUN, "--out", str(run)]) == 0
    model = dgm.load(run)
    parents = model.parents()
    assert sum(len(p) for p in parents) == 12  # a spanning tree over the 13 columns
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    test = get("wine_bins", "test")
    assert abs(out["nll"] + model.log_prob(test.x).double().mean().item()) < 1e-4
    table = model.query([0], {1: 2})
    assert table.shape == (3,) and abs(table.sum().item() - 1) < 1e-6
    assert main(["sample", str(run), "-n", "5", "--out", str(tmp_path / "s.pt")]) == 0
    assert torch.load(tmp_path / "s.pt").shape == (5, 13)


def test_bayes_net_takes_a_structure_by_column_names_and_refuses_a_cycle(tmp_path, capsys):
    names = ["a", "b", "c"]
    rows = ["a,b,c"] + [f"{i % 2},{(i // 2) % 2},{(i % 2) ^ ((i // 3) % 2)}" for i in range(60)]
    table = tmp_path / "t.csv"
    table.write_text("\n".join(rows) + "\n")
    data = ["--data", "csv_categorical", "--data-root", str(table), "--num-categories", "2"]
    data += ["--variables", ",".join(names)]
    run = tmp_path / "dag"
    flags = ["--structure", json.dumps({"c": ["a", "b"]})]
    assert main(["train", "bayes_net", *data, *flags, *RUN, "--out", str(run)]) == 0
    assert dgm.load(run).parents() == [(), (), (0, 1)]
    capsys.readouterr()
    cycle = ["--structure", json.dumps({"a": ["c"], "c": ["a"]})]
    assert main(["train", "bayes_net", *data, *cycle, *RUN, "--out", str(tmp_path / "x")]) == 2
    assert "cycle: " in capsys.readouterr().err
