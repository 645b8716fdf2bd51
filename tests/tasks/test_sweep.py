"""Bias–variance sweeps: on a 1-D Gaussian (and a two-component mixture) fitted by
k-component GMMs from a small sample, train NLL never rises with k while test NLL is
lowest at the true k; a sweep resumes where it stopped; bad --vary fields and values are
refused naming the fix; the report has its table and plots."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import dgm.train.run as training
from dgm.data import DataConfig
from dgm.report.sweep import write_sweep_report
from dgm.run_dir import checkpoint_step
from dgm.tasks.sweep import SweepOptions, minimum, parse_vary, point_name, sweep, train_config


def gaussian_file(tmp_path, true_k: int, n: int = 6000, seed: int = 0):
    """n draws of a standard 1-D Gaussian (true_k = 1) or of the even mixture of N(−3, 1)
    and N(3, 1) (true_k = 2), as a .npy file for the ``tensors`` dataset."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1))
    if true_k == 2:
        x += np.where(rng.random((n, 1)) < 0.5, -3.0, 3.0)
    path = tmp_path / f"gauss{true_k}.npy"
    np.save(path, x.astype("float32"))
    return path


def small_sample(path, fraction: float = 0.015) -> DataConfig:
    """Half the draws held out as test (3000), 40 kept for training."""
    return DataConfig(
        "tensors", root=str(path), test_fraction=0.5, valid_fraction=0.1, train_fraction=fraction
    )


@pytest.mark.parametrize("true_k", [1, 2])
def test_train_nll_falls_with_k_and_test_nll_is_lowest_at_the_true_k(tmp_path, true_k):
    data = small_sample(gaussian_file(tmp_path, true_k))
    vary = parse_vary("gmm", ["num_components=1,2,3,4,5"])
    result = sweep("gmm", data, vary, tmp_path / "sweep", SweepOptions(steps=100))
    train = [p["train_nll"] for p in result["points"]]
    test = [p["test_nll"] for p in result["points"]]
    assert result["points"][0]["num_train"] == 40
    assert all(b <= a + 1e-6 for a, b in itertools.pairwise(train)), train
    assert minimum(result)["values"]["num_components"] == str(true_k), test
    gaps = [p["gap"] for p in result["points"]]
    assert all(g > 0 for g in gaps[true_k:]) and gaps[-1] > gaps[true_k - 1]  # overfitting


def test_more_data_closes_the_gap(tmp_path):
    data = small_sample(gaussian_file(tmp_path, 1))
    vary = parse_vary("gmm", ["num_components=4", "train_fraction=0.015,0.5"])
    small, large = sweep("gmm", data, vary, tmp_path / "s", SweepOptions(steps=100))["points"]
    assert large["num_train"] > 30 * small["num_train"]
    assert large["gap"] < small["gap"] and large["test_nll"] < small["test_nll"]


def test_a_sweep_resumes_where_it_stopped(tmp_path, monkeypatch):
    data = small_sample(gaussian_file(tmp_path, 1))
    vary = parse_vary("gmm", ["num_components=1,2,3"])
    options = SweepOptions(steps=8)
    out = tmp_path / "sweep"
    real_train, calls = training.train, []

    def killed_at_the_second_point(*args, **kwargs):
        calls.append(kwargs.get("num_components"))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(training, "train", killed_at_the_second_point)
    with pytest.raises(KeyboardInterrupt):
        sweep("gmm", data, vary, out, options)
    # the third point was interrupted after a checkpoint: half its steps are done
    third = out / point_name(2, {"num_components": 3})
    half = train_config(SweepOptions(steps=4), 40)
    real_train("gmm", data, third, half, progress=False, num_components=3)
    assert checkpoint_step(third) == 4

    calls.clear()
    monkeypatch.setattr(training, "train", lambda *a, **k: calls.append(k) or real_train(*a, **k))
    resumed = []
    real_resume = training.resume
    monkeypatch.setattr(
        training, "resume", lambda *a, **k: resumed.append(a) or real_resume(*a, **k)
    )
    result = sweep("gmm", data, vary, out, options)
    status = [p["status"] for p in result["points"]]
    assert status == ["done before", "trained", "resumed"]
    assert [k["num_components"] for k in calls] == [2]  # the finished point was not retrained
    assert checkpoint_step(third) == 8
    again = sweep("gmm", data, vary, out, options)
    assert [p["status"] for p in again["points"]] == ["done before"] * 3
    assert [p["test_nll"] for p in again["points"]] == [p["test_nll"] for p in result["points"]]


def test_the_report_has_the_table_and_the_plots(tmp_path):
    data = small_sample(gaussian_file(tmp_path, 1))
    vary = parse_vary("gmm", ["num_components=1,2", "train_fraction=0.015,0.1"])
    options = SweepOptions(steps=20, early_stopping=True, eval_every=2)
    result = sweep("gmm", data, vary, tmp_path / "s", options)
    assert all(p["scored_at"] == "best validation" and p["best_step"] for p in result["points"])
    # scored with the best validation's weights: the valid NLL is the curve's minimum, not
    # its last value, where the curve turned (a small train split overfits)
    turned = 0
    for p in result["points"]:
        lowest = min(nll for _, nll in p["valid_curve"])
        assert p["valid_nll"] == pytest.approx(lowest, rel=1e-6)
        assert p["best_step"] == min(p["valid_curve"], key=lambda sv: sv[1])[0]
        # BIC = −2 log L + k ln n, the log-likelihood summed over the n train examples
        n, k = p["num_train"], p["num_params"]
        assert p["bic"] == pytest.approx(2 * n * p["train_nll"] + k * math.log(n), rel=1e-12)
        turned += p["valid_curve"][-1][1] > lowest * (1 + 1e-4)
    assert turned, [p["valid_curve"] for p in result["points"]]
    page = write_sweep_report(result, tmp_path / "s")
    text = page.read_text()
    assert text.count("<img") == 3  # NLL against each field, and the validation curves
    for name in ("nll-num_components.png", "nll-train_fraction.png", "validation.png", "sweep.md"):
        assert (tmp_path / "s" / name).is_file()
    assert "**" in (tmp_path / "s" / "sweep.md").read_text()  # the minimum in bold


@pytest.mark.parametrize(
    ("vary", "message"),
    [
        ("hiden_sizes=16,64", "no option 'hiden_sizes'; did you mean hidden_sizes"),
        ("hidden_sizes=16,big", "hidden_sizes takes sizes like 64 or 64/64"),
        ("train_fraction=0.5,lots", "train_fraction takes a number"),
        ("hidden_sizes", "write FIELD=V1,V2"),
        ("hidden_sizes=0,16", "--vary hidden_sizes must be positive integers"),
    ],
)
def test_bad_vary_names_the_fix(vary, message):
    with pytest.raises(ValueError, match=message):
        parse_vary("made", [vary])


def test_vary_parses_types_and_tuples():
    grid = parse_vary("made", ["hidden_sizes=16,64/64", "train_fraction=0.05,1"])
    assert grid == {"hidden_sizes": ((16,), (64, 64)), "train_fraction": (0.05, 1.0)}


def test_train_fraction_is_a_seeded_subset_of_the_train_split_only():
    full = DataConfig("digits").load("train")
    part = DataConfig("digits", train_fraction=0.1)
    a, b = part.load("train"), part.load("train")
    assert len(a) == round(0.1 * len(full)) and (a.x == b.x).all()
    assert len(part.load("test")) == len(DataConfig("digits").load("test"))
    other = DataConfig("digits", train_fraction=0.1, data_seed=1).load("train")
    assert not (other.x == a.x).all()
    with pytest.raises(ValueError, match="train_fraction"):
        DataConfig("digits", train_fraction=0.0).load("train")
