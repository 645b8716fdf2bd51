"""The task verbs dgm anomaly, impute and classify on tiny runs: tables, JSON, pictures, and
one-line errors (exit 2) for a missing run, an unknown dataset, zero counts, a model
without the capability and a bad mask file."""

import json

import numpy as np
import pytest

from dgm.cli import main

QUIET = ["--device", "cpu", "--eval-every", "0", "--sample-every", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A class-conditional FVSBN on binarized digits and an unconditional VAE on
    binarized digits28 (28x28, for the out-of-distribution sets), a few steps each."""
    root = tmp_path_factory.mktemp("runs")
    fv, vae = root / "fvsbn", root / "vae"
    args = ["train", "fvsbn", "--data", "digits", "--binarize", "static", "--num-classes", "10"]
    assert main([*args, "--steps", "60", "--batch-size", "64", *QUIET, "--out", str(fv)]) == 0
    args = ["train", "vae", "--data", "digits28", "--binarize", "static", "--latent-dim", "2"]
    args += ["--hidden-sizes", "16", "--steps", "10", "--batch-size", "32", *QUIET]
    assert main([*args, "--out", str(vae)]) == 0
    return fv, vae


def error_line(capsys, argv):
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"dgm {argv[0]}: error: "), err
    return err[0]


def test_classify_prints_both_accuracies_and_writes_json(runs, tmp_path, capsys):
    fv, _ = runs
    out = tmp_path / "c.json"
    assert main(["classify", str(fv), "-n", "100", "--train-n", "300", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "generative: fvsbn" in text and "logistic regression (300 train" in text
    record = json.loads(out.read_text())
    assert record["n"] == 100 and record["generative_accuracy"] > 0.3  # chance is 0.1
    assert 0.5 < record["logistic_regression_accuracy"] <= 1


def test_impute_reports_rmse_and_heldout_loglik_and_draws_a_grid(runs, tmp_path, capsys):
    fv, _ = runs
    grid, out = tmp_path / "grid.png", tmp_path / "i.json"
    argv = ["impute", str(fv), "--mask", "bottom-half", "-m", "2", "-n", "20"]
    assert main([*argv, "--out", str(grid), "--json", str(out)]) == 0
    assert grid.is_file() and "mean" in capsys.readouterr().out
    rows = {r["method"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["mean"]["heldout_log_lik"] is None and rows["mean"]["rmse"] > 0
    assert rows["fvsbn (m=2)"]["heldout_log_lik"] < 0  # raster order: exact
    mask = np.ones((1, 8, 8), dtype=bool)
    mask[0, ::2] = False
    np.save(tmp_path / "rows.npy", mask)
    argv = ["impute", str(fv), "--mask", str(tmp_path / "rows.npy"), "-m", "1", "-n", "5"]
    assert main([*argv, "--out", str(tmp_path / "g2.png")]) == 0
    assert "held-out log-likelihood: not available" in capsys.readouterr().out
    centre = tmp_path / "c.json"  # a quarter hidden: missing and observed counts differ
    argv = ["impute", str(fv), "--mask", "center", "-m", "1", "-n", "5", "--json", str(centre)]
    assert main([*argv, "--out", str(tmp_path / "g3.png")]) == 0
    assert "mask center: 80 of 320 values missing (25.0 %) in 5 test" in capsys.readouterr().out
    assert json.loads(centre.read_text())["missing"] == 80
    np.save(tmp_path / "bad.npy", np.ones((1, 7, 8), dtype=bool))
    line = error_line(capsys, ["impute", str(fv), "--mask", str(tmp_path / "bad.npy")])
    assert "expected one example's shape (1, 8, 8)" in line


def test_anomaly_prints_the_table_and_writes_json(runs, tmp_path, capsys):
    _, vae = runs
    out = tmp_path / "a.json"
    argv = ["anomaly", str(vae), "--ood", "uniform_noise", "-n", "40", "--train-n", "40"]
    assert main([*argv, "--background", str(vae), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "likelihood ratio" in text and "typicality (batches of 10)" in text
    record = json.loads(out.read_text())
    rows = {r["method"]: r for r in record["rows"]}
    assert rows["likelihood"]["auroc"] > 0.5  # binary noise: less likely, even after 10 steps
    assert 0 <= rows["likelihood ratio"]["auroc"] <= 1  # ELBO against ELBO: noise
    assert record["in"] == "digits28" and record["n_out"] == 40
    # fewer out-of-distribution examples than -n: each count is its own set's
    from dgm.data import get

    few = tmp_path / "few.npy"
    np.save(few, (np.random.default_rng(0).random((60, 1, 28, 28)) < 0.5).astype(np.float32))
    k = len(get("tensors", "test", str(few)))
    argv = ["anomaly", str(vae), "--ood", "tensors", "--ood-root", str(few), "-n", "40"]
    assert main([*argv, "--train-n", "40", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    record = json.loads(out.read_text())
    assert 0 < k < 40 and record["n_in"] == 40 and record["n_out"] == k and f"(n={k}," in text


def test_background_data_are_written_for_a_tensors_run(runs, tmp_path, capsys):
    import torch

    _, vae = runs
    path = tmp_path / "bg.pt"
    argv = ["anomaly", str(vae), "--write-background-data", str(path), "--perturb", "0.5"]
    assert main(argv) == 0
    assert "--data tensors --data-root" in capsys.readouterr().out
    saved = torch.load(path, weights_only=True)
    assert saved["x"].shape[1:] == (1, 28, 28) and set(saved["x"].unique().tolist()) <= {0, 1}


@pytest.mark.parametrize(
    "argv, words",
    [
        (
            ["anomaly", "{missing}", "--ood", "uniform_noise"],
            "does not exist: give a run directory",
        ),
        (["anomaly", "{vae}", "--ood", "no_such_data"], "unknown dataset 'no_such_data'"),
        (["anomaly", "{vae}", "--ood", "digits"], "choose a dataset of the run's shape"),
        (["anomaly", "{vae}"], "--ood NAME"),
        (["anomaly", "{vae}", "--ood", "uniform_noise", "-n", "0"], "-n must be at least 1"),
        (["impute", "{fv}", "--mask", "random", "-m", "0"], "-m must be at least 1"),
        (["impute", "{fv}", "--mask", "nonsense"], "nor a .npy / .pt mask file"),
        (["classify", "{vae}"], "not class-conditional: train a class-conditional one"),
        (["classify", "{fv}", "--train-n", "0"], "--train-n must be at least 1"),
    ],
)
def test_wrong_inputs_exit_2_with_the_fix(runs, tmp_path, capsys, argv, words):
    fv, vae = runs
    names = {"fv": fv, "vae": vae, "missing": tmp_path / "nowhere"}
    line = error_line(capsys, [a.format(**names) for a in argv])
    assert words in line


def test_classify_on_8_bit_pixels_fits_the_baseline_on_0_to_1(tmp_path, capsys):
    """Both accuracies of dgm classify are those of the library on the first examples of
    each split; logistic regression sees the pixels divided by 255 (its L2 penalty then
    means what it does on [0, 1] data: on raw 0..255 pixels it scores 0.92, not 0.935)."""
    import dgm
    from dgm.data import DataConfig
    from dgm.tasks import classify

    run, out = tmp_path / "nb", tmp_path / "c.json"
    assert main(["train", "naive_bayes", "--data", "digits", "--scale", "byte", "--feature",
                 "categorical", "--num-categories", "256", "--steps", "1", *QUIET,
                 "--out", str(run)]) == 0  # fmt: skip
    assert main(["classify", str(run), "-n", "200", "--train-n", "300", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    data = DataConfig("digits", scale="byte")
    train, test = data.load("train"), data.load("test")
    x, y = test.x[:200], test.y[:200]
    baseline = classify.logistic_regression_accuracy(
        train.x[:300].double() / 255, train.y[:300], x.double() / 255, y
    )
    assert record["logistic_regression_accuracy"] == baseline == 0.935
    model = dgm.load(run)
    log_prior = classify.label_log_prior(train.y, 10)
    generative = classify.accuracy(classify.predict(model, x, log_prior), y)
    assert record["generative_accuracy"] == generative
