"""Naive Bayes against logistic regression (Ng & Jordan 2002) on binarized images.

dgm's Bernoulli ``naive_bayes`` (Laplace smoothing, alpha = 1, fitted by one closed-form
``fit_step``) against scikit-learn's ``LogisticRegression`` (L2, C = 1, lbfgs), on
statically binarized 8x8 digits and Fashion-MNIST (seeded binarization, the loaders'
default); test accuracy on the whole test split (quick mode: its first 1,000 images).

1. **Training-set size**: both fitted on the same random subsets of the training split,
   ``REPEATS`` subsets (seeds) per size below the whole split; mean ± standard error over
   the subsets per model, and the paired difference NB − LR (the same subset for both)
   with a 95 % t-interval over the subsets. The whole split is one fit: its interval is
   the paired difference's over the test examples (test-set noise only). Ng & Jordan:
   naive Bayes nears its asymptote with fewer examples, logistic regression reaches the
   lower asymptotic error, so the curves cross; a crossover is *seen* when NB is ahead
   with an interval above 0 at some size and LR ahead with one below 0 at a larger one.
2. **Features missing at test time**: both fitted on the whole training split (quick: a
   subset), then a share of each test image's pixels is hidden (a seeded uniform draw per
   image). Naive Bayes integrates the hidden pixels out exactly (``predict_proba`` with
   the observed mask); logistic regression needs them filled: mean imputation (each pixel's
   training mean).

One torch thread. PNG plots: ``results[/quick]/naive_bayes_vs_lr_{size,missing}.png``.

    python -m benchmarks.naive_bayes_vs_lr [--quick]
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from benchmarks import common
from benchmarks.common import QUICK_RESULTS, RESULTS, log, one_thread, save_figure, write_result

NAME = "naive_bayes_vs_lr"
SEED = 0
MISSING = (0.0, 0.25, 0.5, 0.75, 0.9)
# sizes that bracket a crossover (None: the whole training split, one fit); Fashion-MNIST
# stops at 2000 below the whole split to keep the run near 10 minutes on one thread
SIZES = {
    "digits": (10, 20, 50, 100, 200, 500, 1000, None),
    "fashion_mnist": (10, 20, 50, 100, 200, 500, 1000, 2000, None),
}
QUICK_SIZES = {"digits": (20, 100, 500, None), "fashion_mnist": (30, 300, 1000)}
REPEATS, QUICK_REPEATS = 10, 3  # random training subsets (seeds) per size
PREDICT_CHUNK = 500  # test images per naive-Bayes prediction call (bounds its memory)
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


def _t95(df: int) -> float:
    """The two-sided 95 % quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def _nb_predict(model: Any, x: Tensor, observed: Tensor | None = None) -> Tensor:
    """Naive Bayes' class predictions for x (with its ``observed`` mask), in chunks of
    ``PREDICT_CHUNK`` images."""
    chunks = torch.arange(len(x)).split(PREDICT_CHUNK)
    return torch.cat(
        [
            model.predict_log_proba(x[i], None if observed is None else observed[i]).argmax(-1)
            for i in chunks
        ]
    )


def size_curve(
    data: dict[str, Tensor], sizes: tuple, repeats: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per size: both models on ``repeats`` random subsets (one fit on the whole split),
    accuracy mean ± SE per model and the paired difference NB − LR with its 95 % interval.
    Also returns the two models fitted on the whole split (for ``missing_curve``)."""
    rows, whole = [], {}
    n_all = len(data["x"])
    for size in sizes:
        n = n_all if size is None else min(size, n_all)
        seeds = range(repeats if n < n_all else 1)
        nb, lr, t_nb, t_lr = [], [], 0.0, 0.0
        for seed in seeds:
            g = torch.Generator().manual_seed(SEED + seed)
            index = torch.randperm(n_all, generator=g)[:n]
            x, y = data["x"][index], data["y"][index]
            t0 = time.perf_counter()
            model = naive_bayes(x, y)
            nb_hit = _nb_predict(model, data["x_test"]) == data["y_test"]  # (n_test,)
            t1 = time.perf_counter()
            reg = logistic_regression(x, y)
            lr_hit = torch.as_tensor(reg.predict(data["x_test"].numpy())) == data["y_test"]
            t_nb, t_lr = t_nb + t1 - t0, t_lr + time.perf_counter() - t1
            nb.append(float(nb_hit.double().mean()))
            lr.append(float(lr_hit.double().mean()))
            if n == n_all:
                whole = {"nb": model, "lr": reg}
                per_example = nb_hit.double() - lr_hit.double()  # paired over test images
        nb_a, lr_a = np.array(nb), np.array(lr)
        diff = nb_a - lr_a
        if len(seeds) > 1:
            se_diff, over = float(diff.std(ddof=1) / np.sqrt(len(diff))), "training subsets"
            half = _t95(len(diff) - 1) * se_diff
        else:
            se_diff = float(per_example.std() / math.sqrt(len(per_example)))
            half, over = 1.96 * se_diff, "test examples"

        def se(a: np.ndarray) -> float:
            return float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else 0.0

        mean_diff = float(diff.mean())
        rows.append(
            {
                "n_train": n,
                "repeats": len(seeds),
                "nb_accuracy": float(nb_a.mean()),
                "nb_se": se(nb_a),
                "nb_sd": float(nb_a.std(ddof=1)) if len(nb_a) > 1 else 0.0,
                "lr_accuracy": float(lr_a.mean()),
                "lr_se": se(lr_a),
                "lr_sd": float(lr_a.std(ddof=1)) if len(lr_a) > 1 else 0.0,
                "diff_nb_minus_lr": mean_diff,
                "diff_se": se_diff,
                "diff_ci95": [mean_diff - half, mean_diff + half],
                "diff_interval_over": over,
                "nb_fit_s": t_nb / len(seeds),
                "lr_fit_s": t_lr / len(seeds),
            }
        )
        r = rows[-1]
        log(
            f"    n={n:6d}  NB {r['nb_accuracy']:.3f} ± {r['nb_se']:.3f}  LR "
            f"{r['lr_accuracy']:.3f} ± {r['lr_se']:.3f}  NB−LR {mean_diff:+.3f} "
            f"[{r['diff_ci95'][0]:+.3f}, {r['diff_ci95'][1]:+.3f}]"
        )
    return rows, whole


def crossover(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the size curve shows the Ng-Jordan crossover: the smallest size at which
    NB is ahead with a 95 % interval above 0, and the smallest larger one at which LR is
    ahead with an interval below 0 (None where there is none)."""
    nb_ahead = [r["n_train"] for r in rows if r["diff_ci95"][0] > 0]
    lr_ahead = [r["n_train"] for r in rows if r["diff_ci95"][1] < 0]
    first_nb = min(nb_ahead) if nb_ahead else None
    after = [n for n in lr_ahead if first_nb is not None and n > first_nb]
    return {
        "nb_ahead_at": nb_ahead,
        "lr_ahead_at": lr_ahead,
        "seen": bool(after),
        "lr_ahead_from": min(after) if after else None,
    }


def missing_curve(
    data: dict[str, Tensor], n_train: int | None, fitted: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Accuracy with a share of each test image's pixels hidden; ``fitted``: the two
    models already fitted on the whole split (used when n_train is None)."""
    x, y = data["x"], data["y"]
    if n_train is not None and n_train < len(x):
        index = torch.randperm(len(x), generator=torch.Generator().manual_seed(SEED))[:n_train]
        x, y = x[index], y[index]
    if fitted and len(x) == len(data["x"]):
        model, lr = fitted["nb"], fitted["lr"]
    else:
        model, lr = naive_bayes(x, y), logistic_regression(x, y)
    mean = x.mean(0)  # (D,): the pixels' training means, for imputation
    rows = []
    for fraction in MISSING:
        g = torch.Generator().manual_seed(SEED + 1)
        observed = torch.rand(data["x_test"].shape, generator=g, dtype=torch.float64) >= fraction
        nb = _nb_predict(model, data["x_test"], observed)
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
            se = np.array([r[f"{key}_se"] for r in rows])
            ax.errorbar(n, 1 - acc, yerr=se, marker="o", capsize=2, label=label)
        ax.set_xscale("log")
        ax.set(
            title=f"{name} (binarized)",
            xlabel="training examples",
            ylabel="test error (± SE over subsets)",
        )
        ax.legend()
    path = save_figure(fig, folder / f"{NAME}_size.png", dpi=120)
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
    path = save_figure(fig, folder / f"{NAME}_missing.png", dpi=120)
    paths.append(str(path))
    return paths


def run(quick: bool = False) -> dict[str, Any]:
    from sklearn import __version__ as sklearn_version

    t_start = time.perf_counter()
    with one_thread():
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
            t0 = time.perf_counter()
            rows, whole = size_curve(data, sizes, repeats)
            cross = crossover(rows)
            log(f"    crossover seen: {cross['seen']} ({cross})")
            payload["datasets"][name] = {
                "n_train": len(data["x"]),
                "n_test": len(data["x_test"]),
                "repeats": repeats,
                "size": rows,
                "crossover": cross,
                "missing": missing_curve(data, QUICK_MISSING_TRAIN if quick else None, whole),
                "wall_s": time.perf_counter() - t0,
            }
        folder = QUICK_RESULTS if quick else RESULTS
        folder.mkdir(parents=True, exist_ok=True)
        payload["plots"] = plot(payload, folder)
        wall = time.perf_counter() - t_start
        path = write_result(NAME, payload, quick=quick, seed=SEED, steps=1, wall_time_s=wall)
        log(f"{NAME}: {wall:.0f} s  -> {path}")
        return payload


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

        def cells(key: str, rows: list[dict[str, Any]] = rows) -> str:
            return " | ".join(
                f"{r[f'{key}_accuracy']:.3f}"
                + (f" ± {r[f'{key}_se']:.3f}" if r["repeats"] > 1 else " (one fit)")
                for r in rows
            )

        diffs = " | ".join(
            f"{r['diff_nb_minus_lr']:+.3f} [{r['diff_ci95'][0]:+.3f}, {r['diff_ci95'][1]:+.3f}]"
            for r in rows
        )
        lines += [
            f"**{name}**, training examples (test: {d['n_test']}; mean ± SE over "
            f"{d.get('repeats', '?')} random training subsets per size, one fit on the "
            "whole split):",
            "",
            "| " + " | ".join(header) + " |",
            "| --- |" + " ---: |" * len(rows),
            f"| naive Bayes | {cells('nb')} |",
            f"| logistic regression | {cells('lr')} |",
            f"| NB − LR, 95 % interval | {diffs} |",
            "",
            _crossover_sentence(name, d),
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


def _crossover_sentence(name: str, d: dict[str, Any]) -> str:
    """Whether the size table shows the Ng-Jordan crossover, in words."""
    c = d.get("crossover")
    if c is None:
        return ""
    nb, lr = c["nb_ahead_at"], c["lr_ahead_at"]
    ahead = (
        f"NB is ahead (interval above 0) at n = {', '.join(map(str, nb))}"
        if nb
        else "NB is never ahead with an interval above 0"
    )
    behind = f"LR at n = {', '.join(map(str, lr))}" if lr else "LR never with an interval below 0"
    verdict = (
        f"**crossover seen on {name}**: LR overtakes from n = {c['lr_ahead_from']}"
        if c["seen"]
        else f"**no crossover seen on {name}**"
    )
    return (
        f"{verdict} ({ahead}; {behind}; the other intervals hold 0). Intervals: t over "
        "the subsets' paired differences (training-set variation); for the whole split, "
        "over the test examples (test-set variation only). Logistic regression here is "
        "L2-regularised (C = 1, scikit-learn's default)."
    )


def main(argv: list[str] | None = None) -> int:
    return common.main(run, __doc__, "small sizes, 1,000 test images; results/quick/", argv)


if __name__ == "__main__":
    raise SystemExit(main())
