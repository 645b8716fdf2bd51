"""Categorical tables: scikit-learn's wine and breast-cancer data in quantile bins, and
any CSV of categories coded per column, with one coding across the three splits."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine

from dgm.data import get
from dgm.data.files import split_index
from dgm.data.tabular import column_names, quantile_codes


@pytest.mark.parametrize(
    ("name", "rows", "cols", "classes"),
    [("wine_bins", 178, 13, 3), ("breast_cancer_bins", 569, 30, 2)],
)
def test_binned_tables_are_integer_bins_with_labels_in_disjoint_seeded_splits(
    name, rows, cols, classes
):
    splits = {s: get(name, s) for s in ("train", "valid", "test")}
    assert sum(len(d) for d in splits.values()) == rows
    for d in splits.values():
        assert d.x.dtype == torch.int64 and d.event_shape == (cols,)
        assert d.x.min() >= 0 and d.x.max() <= 2 and d.num_classes == classes
    train = splits["train"].x
    share = torch.stack([(train == v).double().mean() for v in range(3)])
    assert (share - 1 / 3).abs().max() < 0.05  # tertiles of the train split: thirds
    again = get(name, "test")
    assert torch.equal(again.x, splits["test"].x) and torch.equal(again.y, splits["test"].y)
    other = get(name, "test", seed=1)
    assert not torch.equal(other.x, splits["test"].x)
    assert len(column_names(name)) == cols


def test_bins_are_the_train_splits_tertiles():
    bunch = load_wine()
    train = split_index(178, "train", 0.1, 0.2, 0)
    test = split_index(178, "test", 0.1, 0.2, 0)
    edges = np.quantile(bunch.data[train], [1 / 3, 2 / 3], axis=0)  # (2, 13)
    expected = (bunch.data[test] >= edges[0]).astype(int) + (bunch.data[test] >= edges[1])
    assert np.array_equal(get("wine_bins", "test").x.numpy(), expected)
    assert np.array_equal(get("wine_bins", "test").y.numpy(), bunch.target[test])
    codes = quantile_codes(np.array([[0.0], [1.0], [2.0], [4.0]]), np.arange(6.0)[:, None])
    assert codes[:, 0].tolist() == [0, 0, 1, 2]  # edges 5/3 and 10/3


def test_a_csv_of_categories_is_coded_per_column_across_all_splits(tmp_path):
    path = tmp_path / "t.csv"
    rng = np.random.default_rng(0)
    colours = rng.choice(["red", "green", "blue"], 60)
    sizes = rng.choice([10, 20, 5, 7], 60)
    labels = rng.choice(["no", "yes"], 60)
    lines = ["colour,size,label"] + [
        f"{c},{s},{lab}" for c, s, lab in zip(colours, sizes, labels, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    parts = [get("csv_categorical", s, str(path), label_column="label") for s in ("train", "test")]
    for d in parts:
        assert d.x.dtype == torch.int64 and d.event_shape == (2,) and d.num_classes == 2
    everything = get("csv_categorical", "train", str(path), valid_fraction=0.0, test_fraction=0.0)
    colour_codes = {"blue": 0, "green": 1, "red": 2}  # sorted names
    size_codes = {5: 0, 7: 1, 10: 2, 20: 3}  # sorted numbers, not their values
    assert everything.x[:, 0].tolist() == [colour_codes[c] for c in colours]
    assert everything.x[:, 1].tolist() == [size_codes[int(s)] for s in sizes]
    test = split_index(60, "test", 0.1, 0.1, 0)
    assert parts[1].x[:, 1].tolist() == [size_codes[int(s)] for s in sizes[test]]
    assert parts[1].y.tolist() == [int(lab == "yes") for lab in labels[test]]


def test_an_empty_cell_in_a_categorical_csv_is_an_error(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n,3\n2,2\n")
    with pytest.raises(ValueError, match=r"column 0 has an empty cell \(line 3\)"):
        get("csv_categorical", "train", str(path), test_fraction=0.0, valid_fraction=0.0)
