"""dgm eval --cas and dgm sweep on tiny runs: what they print and write, and one-line
errors (exit 2) for a model without class labels and for a bad --vary."""

import json

import numpy as np
import pytest

from dgm.cli import main

QUIET = ["--device", "cpu", "--eval-every", "0", "--sample-every", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A class-conditional and an unconditional FVSBN on binarized digits, a few steps."""
    root = tmp_path_factory.mktemp("runs")
    args = ["train", "fvsbn", "--data", "digits", "--binarize", "static", "--steps", "300"]
    assert main([*args, "--num-classes", "10", *QUIET, "--out", str(root / "cond")]) == 0
    assert main([*args, *QUIET, "--out", str(root / "plain")]) == 0
    return root / "cond", root / "plain"


def error_line(capsys, argv):
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"dgm {argv[0]}: error: "), err
    return err[0]


def test_eval_cas_prints_and_returns_the_three_accuracies(runs, capsys):
    cond, _ = runs
    assert main(["eval", str(cond), "--cas", "--cas-n", "500", "--json", "--threads", "1"]) == 0
    record = json.loads(capsys.readouterr().out)["cas"]
    assert record["num_synthetic"] == record["num_real"] == 500
    assert record["real_accuracy"] > 0.6 and 0 <= record["cas"] <= 1
    assert record["cas"] > 2 * record["chance"]  # 300 steps of a class-conditional FVSBN
    assert main(["eval", str(cond), "--cas", "--cas-n", "300", "--temperature", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "trained on 300 samples (CAS)" in out and "trained on both" in out
    # CAS is scored on the real test split, whatever split --split evaluates the NLL on
    assert record["num_test"] == 300  # digits' test split
    argv = ["eval", str(cond), "--cas", "--cas-n", "300", "--split", "valid", "--json"]
    assert main([*argv, "--threads", "1"]) == 0
    on_valid = json.loads(capsys.readouterr().out)
    assert on_valid["split"] == "valid" and on_valid["cas"]["num_test"] == 300


def test_eval_cas_refuses_a_model_without_classes(runs, capsys):
    _, plain = runs
    line = error_line(capsys, ["eval", str(plain), "--cas"])
    assert "not class-conditional" in line and "vae" in line and "--num-classes" in line


def test_sweep_writes_points_table_plots_and_page(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(400, 1)).astype("float32")
    np.save(tmp_path / "g.npy", x)
    out = tmp_path / "sweep"
    argv = ["sweep", "gmm", "--data", "tensors", "--data-root", str(tmp_path / "g.npy")]
    argv += ["--vary", "num_components=1,2", "--vary", "train_fraction=0.2,1", "--steps", "5"]
    assert main([*argv, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.count("trained") == 4 and "| num_components | train_fraction |" in text
    assert len(json.loads((out / "sweep.json").read_text())["points"]) == 4
    assert (out / "report.html").is_file() and (out / "nll-train_fraction.png").is_file()
    wrote = text.splitlines()[-1]  # names the files as they are
    assert wrote == f"wrote {out}/sweep.json, {out}/sweep.md, plots and {out}/report.html"
    assert (out / "sweep.md").read_text().count("|") > 10
    assert main([*argv, "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("done before") == 4


@pytest.mark.parametrize(
    ("vary", "words"),
    [("num_component=1,2", "did you mean num_components"), ("num_components=1,x", "an integer")],
)
def test_sweep_refuses_a_bad_vary_in_one_line(tmp_path, capsys, vary, words):
    argv = ["sweep", "gmm", "--data", "moons", "--vary", vary, "--out", str(tmp_path / "s")]
    assert words in error_line(capsys, argv)
    assert not (tmp_path / "s").exists()
