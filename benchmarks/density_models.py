"""Classical densities: a Gaussian mixture (K by BIC) and a Gaussian KDE (bandwidth by
validation) on the 2-D toys, beside the flows' numbers, and on 8x8 digits.

1. **Toys** (moons, eight_gaussians, checkerboard, two_circles, pinwheel from ``dgm.data``,
   10 000 points per split, the flows benchmark's data): ``gmm`` with full covariances, K
   chosen by BIC on the training split among ``TOY_K`` (EM from k-means++ seeds until the
   mean log-likelihood rises less than 1e-3 nats, at most 300 iterations), and ``kde``
   with ``bandwidth="validation"`` (20 % of the training points held out to score 16
   factors from Scott's h/8 to 4h, the best rescaled to the whole set). Test NLL in nats
   per example with its standard error, beside the true density's NLL and the flows' test
   NLLs read from ``results/flows.json`` (5 transforms of (64, 64) MLPs, 2000 steps).
2. **Digits** (sklearn's 8x8 digits at the ``unit`` scale, x/16 in [0, 1], 64 dimensions):
   ``gmm`` full and diagonal, K by BIC among ``DIGIT_K``, ``reg_covar`` = 1e-3 (pixels that
   never change in a cluster would otherwise get a variance of 1e-6 and an unbounded
   density); ``kde`` by validation with one pooled bandwidth (``standardize=False``: a
   pixel constant in the training set gets no spike). Test NLL in nats per image of the
   continuous values: a density of the scaled floats, not a discrete-data likelihood.

Everything runs on one torch thread, CPU, float64 for the fits.

    python -m benchmarks.density_models [--quick]
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

import dgm
from benchmarks import common
from benchmarks.common import fmt, log, log_probs, nll, one_thread, write_result
from benchmarks.flows import toy_nlls
from dgm.data import DataConfig
from dgm.models.classical.gmm import select_components

NAME = "density_models"
SEED = 0
TOYS = ("moons", "eight_gaussians", "checkerboard", "two_circles", "pinwheel")
TOY_K = (1, 2, 4, 8, 12, 16, 24, 32, 48)
DIGIT_K = (1, 2, 5, 10, 20, 30)
DIGIT_REG = 1e-3
MAX_STEPS = 300
KDE_TOY = {"bandwidth": "validation"}
KDE_DIGITS = {"bandwidth": "validation", "standardize": False}


@torch.no_grad()
def _nll(model: dgm.GenerativeModel, x: Tensor) -> dict[str, float]:
    r = nll(log_probs(model.log_prob, x, 2048))
    return {"test_nll": r["nll"], "test_nll_se": r["se"]}


def _gmm(train: Tensor, test: Tensor, candidates: tuple[int, ...], **config: Any) -> dict:
    t0 = time.perf_counter()
    model, bics = select_components(train, candidates, max_steps=MAX_STEPS, **config)
    wall = time.perf_counter() - t0
    return {
        "model": f"gmm ({config.get('covariance', 'full')})",
        "config": config,
        "num_components": model.config.num_components,
        "bic": {str(k): v for k, v in bics.items()},
        "converged": bool(model.converged),
        "fit_wall_s": round(wall, 3),
        **_nll(model, test),
    }


def _kde(train: Tensor, test: Tensor, **config: Any) -> dict:
    t0 = time.perf_counter()
    model = dgm.create("kde", train.shape[1:], **config).double()
    with torch.no_grad():
        metrics = model.fit_step([(train, None)])
    wall = time.perf_counter() - t0
    return {
        "model": "kde (validation)",
        "config": config,
        "bandwidth": float(model.bandwidth),
        "validation_log_likelihood": float(metrics["validation_log_likelihood"]),
        "points": len(model.points),
        "fit_wall_s": round(wall, 3),
        **_nll(model, test),
    }


def toy_runs(quick: bool) -> dict[str, Any]:
    runs, floors, flows = [], {}, {}
    n = 2000 if quick else None  # quick: 2000 points per split
    candidates = (1, 4, 8, 16) if quick else TOY_K
    for toy in TOYS:
        cfg = DataConfig(name=toy, num_samples=n)
        train, test = cfg.load("train"), cfg.load("test")
        try:
            lp = test.density.log_prob(test.x).double()
            floors[toy] = -lp.mean().item()
        except NotImplementedError:
            floors[toy] = None
        flows[toy] = toy_nlls(toy)
        x, y = train.x.double(), test.x.double()
        for r in (_gmm(x, y, candidates), _kde(x, y, **KDE_TOY)):
            runs.append({"toy": toy, **r})
            log(f"{toy:16s} {r['model']:18s} test NLL {r['test_nll']:.3f} ± {r['test_nll_se']:.3f}")
    return {
        "description": "2-D toys: test NLL in nats per example",
        "points_per_split": len(train),
        "candidates": list(candidates),
        "runs": runs,
        "true_nll": floors,
        "flows_nll": flows,
    }


def digit_runs(quick: bool) -> dict[str, Any]:
    cfg = DataConfig(name="digits", scale="unit")
    train, test = cfg.load("train"), cfg.load("test")
    x, y = train.x.flatten(1).double(), test.x.flatten(1).double()
    candidates = (1, 5, 10) if quick else DIGIT_K
    runs = []
    for cov in ("full", "diag"):
        runs.append(_gmm(x, y, candidates, covariance=cov, reg_covar=DIGIT_REG))
    runs.append(_kde(x, y, **KDE_DIGITS))
    for r in runs:
        test_nll, se = r["test_nll"], r["test_nll_se"]
        log(f"digits           {r['model']:18s} test NLL {test_nll:.2f} ± {se:.2f}")
    return {
        "description": "8x8 digits on the unit scale (x/16): test NLL in nats per image",
        "train_size": len(x),
        "test_size": len(y),
        "candidates": list(candidates),
        "reg_covar": DIGIT_REG,
        "runs": runs,
    }


def run(quick: bool = False) -> dict[str, Any]:
    with one_thread():
        t0 = time.perf_counter()
        payload = {"description": "GMM (K by BIC) and KDE (validation bandwidth)", "threads": 1}
        payload["toys"] = toy_runs(quick)
        payload["digits"] = digit_runs(quick)
        wall = time.perf_counter() - t0
        path = write_result(NAME, payload, quick=quick, seed=SEED, steps=None, wall_time_s=wall)
        log(f"wrote {path} ({wall:.0f} s)")
        return payload


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for the README: toy NLLs beside the flows', then digits."""
    toys = record.get("toys", {})
    runs = toys.get("runs", [])
    flows = toys.get("flows_nll", {})
    flow_names = list(dict.fromkeys(m for t in flows.values() for m in t))
    lines = [
        "Test NLL in nats per example (± standard error); GMM with full covariances and K by "
        "BIC, KDE with its bandwidth by held-out likelihood; the flows after 2000 steps "
        "(results/flows.json).",
        "",
        "| toy | true density | GMM (K) | KDE (h) | " + " | ".join(flow_names) + " |",
        "| --- | ---: | ---: | ---: |" + " ---: |" * len(flow_names),
    ]
    for toy in dict.fromkeys(r["toy"] for r in runs):
        by = {r["model"].split(" ")[0]: r for r in runs if r["toy"] == toy}
        g, k = by.get("gmm"), by.get("kde")
        cells = [
            fmt(toys.get("true_nll", {}).get(toy)),
            "–"
            if g is None
            else f"{fmt(g['test_nll'])} ± {fmt(g['test_nll_se'])} ({g['num_components']})",
            "–"
            if k is None
            else f"{fmt(k['test_nll'])} ± {fmt(k['test_nll_se'])} ({fmt(k['bandwidth'], 3)})",
        ]
        cells += [fmt(flows.get(toy, {}).get(m)) for m in flow_names]
        lines.append(f"| {toy} | " + " | ".join(cells) + " |")
    digits = record.get("digits")
    if digits:
        lines += [
            "",
            f"8x8 digits, unit scale (x/16), {digits['train_size']} training images: test NLL "
            "in nats per image of the continuous values (not a discrete-data likelihood).",
            "",
            "| model | K or h | test NLL |",
            "| --- | ---: | ---: |",
        ]
        for r in digits["runs"]:
            size = r.get("num_components", fmt(r.get("bandwidth"), 3))
            lines.append(
                f"| {r['model']} | {size} | {fmt(r['test_nll'])} ± {fmt(r['test_nll_se'])} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    return common.main(run, __doc__, "2000 toy points per split, fewer K; results/quick/", argv)


if __name__ == "__main__":
    raise SystemExit(main())
