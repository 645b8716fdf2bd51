"""Naive Bayes against logistic regression (Ng & Jordan 2002) on binarized images.

dgm's Bernoulli ``naive_bayes`` (Laplace smoothing, alpha = 1, fitted by one closed-form
``fit_step``) against scikit-learn's ``LogisticRegression`` (L2, C = 1, lbfgs), on
statically binarized 8x8 digits and Fashion-MNIST (seeded binarization, the loaders'
default); test accuracy on the whole test split (quick mode: its first 1,000 images).

1. **Training-set size**: both fitted on the same random subsets of the training split
   (several seeds for the small sizes; mean and standard deviation over them). Ng & Jordan:
   naive Bayes nears its asymptote with fewer examples, logistic regression reaches the
   lower asymptotic error, so the curves cross.
2. **Features missing at test time**: both fitted on the whole training split (quick: a
   subset), then a share of each test image's pixels is hidden (a seeded uniform draw per
   image). Naive Bayes integrates the hidden pixels out exactly (``predict_proba`` with
   the observed mask); logistic regression needs them filled: mean imputation (each pixel's
   training mean).

One torch thread. PNG plots: ``results[/quick]/naive_bayes_vs_lr_{size,missing}.png``.

    python -m benchmarks.naive_bayes_vs_lr [--quick]
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from benchmarks import common
from benchmarks.common import QUICK_RESULTS, RESULTS, log, write_result

NAME = "naive_bayes_vs_lr"
SEED = 0
MISSING = (0.0, 0.25, 0.5, 0.75, 0.9)
SIZES = {
    "digits": (20, 50, 100, 200, 500, 1000, None),  # None: the whole training split
    "fashion_mnist": (30, 100, 300, 1000, 3000, 10000, None),
}
QUICK_SIZES = {"digits": (20, 100, 500, None), "fashion_mnist": (30, 300, 1000)}
SMALL = 1000  # sizes below this are repeated over seeds
REPEATS, QUICK_REPEATS = 5, 2
QUICK_TEST, QUICK_MISSING_TRAIN = 1000, 2000
LR_C, LR_MAX_ITER = 1.0, 1000


def load(name: str, quick: bool) -> dict[str, Tensor]:
    from dgm.data import get

    root = common.fashion_mnist_root() if name == "fashion_mnist" else None
    train = get(name, "train", root, binarize="static", valid_fraction=0.0)
    test = get(name, "test", root, binarize="static")
    n_test = QUICK_TEST if quick else len(test)
    return {
        "x": train.x.flatten(1).double(),
        "y": train.y,
        "x_test": test.x[:n_test].flatten(1).double(),
        "y_test": test.y[:n_test],
    }


def naive_bayes(x: Tensor, y: Tensor) -> Any:
    import dgm

    model = dgm.create("naive_bayes", (x.shape[1],), num_classes=10, alpha=1.0).double()
    model.fit_step([(x, y)])
    return model


def logistic_regression(x: Tensor, y: Tensor) -> Any:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=LR_C, max_iter=LR_MAX_ITER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lr.fit(x.numpy(), y.numpy())
    return lr


def accuracy(predicted: Any, y: Tensor) -> float:
    return float((torch.as_tensor(np.asarray(predicted)) == y).double().mean())


def size_curve(data: dict[str, Tensor], sizes: tuple, repeats: int) -> list[dict[str, Any]]:
    rows = []
    n_all = len(data["x"])
    for size in sizes:
        n = n_all if size is None else min(size, n_all)
        seeds = range(repeats if n < SMALL else 1)
        nb, lr, t_nb, t_lr = [], [], 0.0, 0.0
        for seed in seeds:
            g = torch.Generator().manual_seed(SEED + seed)
            index = torch.randperm(n_all, generator=g)[:n]
            x, y = data["x"][index], data["y"][index]
            t0 = time.perf_counter()
            model = naive_bayes(x, y)
            nb.append(accuracy(model.predict_proba(data["x_test"]).argmax(-1), data["y_test"]))
            t1 = time.perf_counter()
            lr.append(
                accuracy(logistic_regression(x, y).predict(data["x_test"].numpy()), data["y_test"])
            )
            t_nb, t_lr = t_nb + t1 - t0, t_lr + time.perf_counter() - t1
        rows.append(
            {
                "n_train": n,
                "repeats": len(seeds),
                "nb_accuracy": float(np.mean(nb)),
                "nb_std": float(np.std(nb)),
                "lr_accuracy": float(np.mean(lr)),
                "lr_std": float(np.std(lr)),
                "nb_fit_s": t_nb / len(seeds),
                "lr_fit_s": t_lr / len(seeds),
            }
        )
        log(f"    n={n:6d}  NB {rows[-1]['nb_accuracy']:.3f}  LR {rows[-1]['lr_accuracy']:.3f}")
    return rows


def missing_curve(data: dict[str, Tensor], n_train: int | None) -> dict[str, Any]:
    x, y = data["x"], data["y"]
    if n_train is not None and n_train < len(x):
        index = torch.randperm(len(x), generator=torch.Generator().manual_seed(SEED))[:n_train]
        x, y = x[index], y[index]
    model, lr = naive_bayes(x, y), logistic_regression(x, y)
    mean = x.mean(0)  # (D,): the pixels' training means, for imputation
    rows = []
    for fraction in MISSING:
        g = torch.Generator().manual_seed(SEED + 1)
        observed = torch.rand(data["x_test"].shape, generator=g, dtype=torch.float64) >= fraction
        nb = model.predict_proba(data["x_test"], observed).argmax(-1)
        filled = torch.where(observed, data["x_test"], mean)
        rows.append(
            {
                "missing": fraction,
                "nb_accuracy": accuracy(nb, data["y_test"]),
                "lr_accuracy": accuracy(lr.predict(filled.numpy()), data["y_test"]),
            }
        )
        r = rows[-1]
        log(
            f"    missing {fraction:.2f}  NB {r['nb_accuracy']:.3f}  LR+mean {r['lr_accuracy']:.3f}"
        )
    return {"n_train": len(x), "rows": rows}


def plot(payload: dict[str, Any], folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    datasets = list(payload["datasets"])
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False)
    for ax, name in zip(axes[0], datasets, strict=True):
        rows = payload["datasets"][name]["size"]
        n = [r["n_train"] for r in rows]
        for key, label in (("nb", "naive Bayes"), ("lr", "logistic regression")):
            acc = np.array([r[f"{key}_accuracy"] for r in rows])
            std = np.array([r[f"{key}_std"] for r in rows])
            ax.errorbar(n, 1 - acc, yerr=std, marker="o", capsize=2, label=label)
        ax.set_xscale("log")
        ax.set(title=f"{name} (binarized)", xlabel="training examples", ylabel="test error")
        ax.legend()
    fig.tight_layout()
    path = folder / f"{NAME}_size.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(str(path))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False)
    for ax, name in zip(axes[0], datasets, strict=True):
        rows = payload["datasets"][name]["missing"]["rows"]
        share = [r["missing"] for r in rows]
        ax.plot(
            share, [r["nb_accuracy"] for r in rows], marker="o", label="naive Bayes (marginalised)"
        )
        ax.plot(
            share,
            [r["lr_accuracy"] for r in rows],
            marker="s",
            label="logistic regr. (mean-imputed)",
        )
        ax.set(
            title=f"{name} (binarized)", xlabel="share of pixels missing", ylabel="test accuracy"
        )
        ax.legend()
    fig.tight_layout()
    path = folder / f"{NAME}_missing.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(str(path))
    return paths


def run(quick: bool = False) -> dict[str, Any]:
    from sklearn import __version__ as sklearn_version

    t_start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        payload: dict[str, Any] = {
            "reference": "Ng & Jordan 2002, NeurIPS: NB approaches its asymptotic error "
            "faster, LR reaches the lower asymptotic error",
            "nb": "dgm naive_bayes, Bernoulli, alpha=1",
            "lr": f"scikit-learn {sklearn_version} LogisticRegression(C={LR_C}, lbfgs)",
            "imputation": "mean",
            "threads": 1,
            "datasets": {},
        }
        for name in ("digits", "fashion_mnist"):
            log(f"  -- {name}")
            data = load(name, quick)
            sizes = (QUICK_SIZES if quick else SIZES)[name]
            repeats = QUICK_REPEATS if quick else REPEATS
            payload["datasets"][name] = {
                "n_train": len(data["x"]),
                "n_test": len(data["x_test"]),
                "size": size_curve(data, sizes, repeats),
                "missing": missing_curve(data, QUICK_MISSING_TRAIN if quick else None),
            }
        folder = QUICK_RESULTS if quick else RESULTS
        folder.mkdir(parents=True, exist_ok=True)
        payload["plots"] = plot(payload, folder)
        wall = time.perf_counter() - t_start
        path = write_result(NAME, payload, quick=quick, seed=SEED, steps=1, wall_time_s=wall)
        log(f"{NAME}: {wall:.0f} s  -> {path}")
        return payload
    finally:
        torch.set_num_threads(threads)


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for the README: accuracy vs training size, then vs missing pixels."""
    lines = [
        "Naive Bayes (dgm, Bernoulli, α = 1) vs logistic regression (scikit-learn, C = 1) on "
        "statically binarized images: test accuracy.",
        "",
    ]
    for name, d in record["datasets"].items():
        rows = d["size"]
        header = ["training examples", *(str(r["n_train"]) for r in rows)]
        lines += [
            f"**{name}**, training examples (test: {d['n_test']}):",
            "",
            "| " + " | ".join(header) + " |",
            "| --- |" + " ---: |" * len(rows),
            "| naive Bayes | " + " | ".join(f"{r['nb_accuracy']:.3f}" for r in rows) + " |",
            "| logistic regression | " + " | ".join(f"{r['lr_accuracy']:.3f}" for r in rows) + " |",
            "",
        ]
        rows = d["missing"]["rows"]
        header = ["share of pixels missing", *(f"{r['missing']:.2f}" for r in rows)]
        lines += [
            f"**{name}**, pixels missing at test time (trained on {d['missing']['n_train']}):",
            "",
            "| " + " | ".join(header) + " |",
            "| --- |" + " ---: |" * len(rows),
            "| naive Bayes, marginalised | "
            + " | ".join(f"{r['nb_accuracy']:.3f}" for r in rows)
            + " |",
            "| logistic regression, mean-imputed | "
            + " | ".join(f"{r['lr_accuracy']:.3f}" for r in rows)
            + " |",
            "",
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    return common.main(run, __doc__, "small sizes, 1,000 test images; results/quick/", argv)


if __name__ == "__main__":
    raise SystemExit(main())
