"""Categorical tables: two of scikit-learn's bundled datasets cut into quantile bins
(offline, for Bayesian networks and categorical naive Bayes), and ``csv_categorical``, any
CSV whose columns are all categories (names or numeric codes), read with the ``csv``
loader and coded 0..K-1 per column.

Each column of ``wine_bins`` and ``breast_cancer_bins`` is cut into ``BINS`` bins at the
quantiles of the train split (so no test value shapes the edges): x holds integers
0..BINS-1 of shape (N, D), y the class. Splits are seeded permutations as for the user's
files: ``test_fraction`` held out as "test", then ``valid_fraction`` of the rest as "valid".

Example:
    >>> from dgm.data import get
    >>> data = get("wine_bins", "train")
    >>> data.x.shape, data.x.dtype, int(data.x.max()), data.num_classes
    (torch.Size([128, 13]), torch.int64, 2, 3)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from dgm.data.dataset import TensorData, register_dataset
from dgm.data.files import load_csv, split_index
from dgm.data.options import BinnedTableOptions, CsvOptions, TableOptions

BINS = 3  # values per column: low, middle, high thirds of the train split


def quantile_codes(values: np.ndarray, reference: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Each column of ``values`` (N, D) as integers 0..bins-1: its bin among the
    ``bins``-quantiles of the same column of ``reference`` (M, D)."""
    levels = np.arange(1, bins) / bins
    edges = np.quantile(reference, levels, axis=0)  # (bins - 1, D)
    codes = [
        np.searchsorted(edges[:, d], values[:, d], side="right") for d in range(values.shape[1])
    ]
    return np.stack(codes, axis=1).astype(np.int64)


def _binned(
    name: str,
    table: np.ndarray,
    labels: np.ndarray,
    split: str,
    options: BinnedTableOptions,
) -> TensorData:
    n = len(table)
    fractions = options.valid_fraction, options.test_fraction, options.seed
    train = split_index(n, "train", *fractions)
    index = split_index(n, split, *fractions)
    codes = quantile_codes(table[index], table[train])
    return TensorData(
        torch.from_numpy(codes),
        torch.from_numpy(labels[index].astype(np.int64)),
        name=name,
        num_classes=int(labels.max()) + 1,
    )


def column_names(name: str) -> tuple[str, ...]:
    """The column names of a binned table (``wine_bins``, ``breast_cancer_bins``), in the
    order of x's columns: pass them as a Bayesian network's ``variables``."""
    return tuple(_LOADERS[name]().feature_names)


def _load_wine():  # noqa: ANN202
    from sklearn.datasets import load_wine

    return load_wine()


def _load_breast_cancer():  # noqa: ANN202
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer()


_LOADERS = {"wine_bins": _load_wine, "breast_cancer_bins": _load_breast_cancer}


@register_dataset(
    "wine_bins",
    "178 wines x 13 measurements in 3 quantile bins (ints 0..2), 3 cultivars",
    BinnedTableOptions,
)
def load_wine_bins(split: str, root: str | None, options: BinnedTableOptions) -> TensorData:
    """scikit-learn's wine table (Forina et al., UCI), each column cut into 3 bins at the
    train split's tertiles; labels: the cultivar (3 classes)."""
    bunch = _LOADERS["wine_bins"]()
    return _binned("wine_bins", bunch.data, bunch.target, split, options)


@register_dataset(
    "breast_cancer_bins",
    "569 tumours x 30 features in 3 quantile bins (ints 0..2), benign/malignant",
    BinnedTableOptions,
)
def load_breast_cancer_bins(
    split: str, root: str | None, options: BinnedTableOptions
) -> TensorData:
    """scikit-learn's Wisconsin diagnostic breast-cancer table (UCI), each column cut
    into 3 bins at the train split's tertiles; labels: malignant 0, benign 1."""
    bunch = _LOADERS["breast_cancer_bins"]()
    return _binned("breast_cancer_bins", bunch.data, bunch.target, split, options)


@register_dataset(
    "csv_categorical",
    "your table of categories: --data-root FILE.csv, columns coded 0..K-1",
    TableOptions,
)
def load_csv_categorical(split: str, root: str | None, options: TableOptions) -> TensorData:
    """A CSV read as ``csv`` does (header row, optional ``label_column``), with every
    column a category: its distinct values (names or numbers) in sorted order are coded
    0..K-1 over the whole file, so the three splits share one coding. x is int64 (N, D);
    categorical models take V = the largest K (``--num-categories``). An empty cell is an
    error: a categorical table needs every cell (or make "missing" a category of its own)."""
    every_row = dataclasses.replace(options, valid_fraction=0.0, test_fraction=0.0)
    as_names = CsvOptions(**dataclasses.asdict(every_row), mixed="categories")
    whole = load_csv(
        "train", root, as_names
    )  # every row, in file order; every value a category name
    table = whole.x.numpy()
    columns = []
    for d in range(table.shape[1]):
        col = table[:, d]
        if col.dtype.kind == "f" and bool(np.isnan(col).any()):
            row = int(np.flatnonzero(np.isnan(col))[0]) + 2
            raise ValueError(
                f"{root}: column {d} has an empty cell (line {row}); a categorical table "
                "needs every cell: fill it, or write a category such as 'missing'"
            )
        columns.append(np.searchsorted(np.unique(col), col))
    codes = torch.from_numpy(np.stack(columns, axis=1).astype(np.int64))  # (N, D)
    fractions = options.valid_fraction, options.test_fraction, options.seed
    index = torch.from_numpy(split_index(len(codes), split, *fractions))
    return TensorData(
        codes[index], whole.y[index], name="csv_categorical", num_classes=whole.num_classes
    )


__all__ = [
    "column_names",
    "load_breast_cancer_bins",
    "load_csv_categorical",
    "load_wine_bins",
    "quantile_codes",
]
