"""Bias–variance curves with ``dgm.tasks.sweep``: train and test NLL against model size
and data size, each curve's test minimum marked.

Three sweeps, every point trained by dgm's trainer (seed 0, one torch thread):

- ``gmm``: mixture components K on eight_gaussians (200 training points drawn from 2000
  by ``train_fraction`` 0.1; 2000 test points), EM; Schwarz's BIC with the free
  parameters of a full-covariance mixture, 6K − 1 in 2-D, beside the test NLL;
- ``made``: hidden units of one-layer MADE on statically binarized Fashion-MNIST, 5 % of
  the training images (2750), so that the large models overfit;
- ``vae``: the share of Fashion-MNIST's training images (binarized) a VAE (its defaults:
  10-d latent, 300-300 MLPs) sees, at a fixed number of steps; NLL is the negative ELBO.

    python -m benchmarks.sweep [--quick] [--part gmm|made|vae]

``--quick``: fewer points and steps (about a minute); results/quick/. The plots go to
benchmarks/results[/quick]/sweep_<part>.png.
"""

from __future__ import annotations

import math
import shutil
import time
from typing import Any

from benchmarks.common import (
    QUICK_RESULTS,
    RESULTS,
    busy_warning,
    existing_payload,
    fashion_mnist_root,
    log,
    one_thread,
    runs_dir,
    write_result,
)
from benchmarks.common import (
    main as bench_main,
)
from dgm.data import DataConfig
from dgm.report.sweep import nll_plot
from dgm.tasks.sweep import SweepOptions, minimum, parse_vary, sweep

NAME = "sweep"
SEED = 0
FMNIST = {"name": "fashion_mnist", "binarize": "static"}
# part -> (model, data options, full --vary, quick --vary, full steps, quick steps, batch)
PARTS: dict[str, tuple[str, dict[str, Any], list[str], list[str], int, int, int]] = {
    "gmm": (
        "gmm",
        {"name": "eight_gaussians", "num_samples": 2000, "train_fraction": 0.1},
        ["num_components=1,2,4,8,16,32"],
        ["num_components=1,8,32"],
        100,
        30,
        200,
    ),
    "made": (
        "made",
        {**FMNIST, "train_fraction": 0.05},
        ["hidden_sizes=8,32,128,512"],
        ["hidden_sizes=8,128"],
        1500,
        100,
        64,
    ),
    "vae": (
        "vae",
        FMNIST,
        ["train_fraction=0.005,0.02,0.1,0.5"],
        ["train_fraction=0.005,0.1"],
        1500,
        100,
        64,
    ),
}


def _gmm_bic(points: list[dict[str, Any]]) -> None:
    """BIC = 2 N · train NLL + p ln N with p = 6K − 1, a 2-D full-covariance mixture's free
    parameters (K − 1 weights, 2K means, 3K covariance entries)."""
    for p in points:
        k, n = int(p["values"]["num_components"]), p["num_train"]
        p["free_params"] = 6 * k - 1
        p["bic"] = 2 * n * p["train_nll"] + (6 * k - 1) * math.log(n)


def _part(part: str, quick: bool) -> dict[str, Any]:
    model, data_options, full, fast, steps, quick_steps, batch = PARTS[part]
    options = dict(data_options)
    data = DataConfig(root=fashion_mnist_root() if model != "gmm" else None, **options)
    vary = parse_vary(model, fast if quick else full)
    out = runs_dir(NAME, quick) / part
    shutil.rmtree(out, ignore_errors=True)  # a benchmark starts afresh
    opts = SweepOptions(steps=quick_steps if quick else steps, batch_size=batch, seed=SEED)
    t0 = time.process_time()
    result = sweep(model, data, vary, out, opts, log=lambda m: log(f"  {part}: {m}"))
    result["cpu_s"] = time.process_time() - t0
    if model == "gmm":
        _gmm_bic(result["points"])
    for p in result["points"]:
        p.pop("valid_curve", None)  # the table needs none of it
    folder = QUICK_RESULTS if quick else RESULTS
    field = next(f for f in result["vary"] if len(result["vary"][f]) > 1)
    nll_plot(result, field, folder / f"sweep_{part}.png")
    return result


def run(quick: bool = False, part: str | None = None) -> dict[str, Any]:
    t_start = time.perf_counter()
    warning = busy_warning()
    if warning:
        log(warning)
    payload: dict[str, Any] = {"description": "bias-variance sweeps", "threads": [1]}
    wall0 = 0.0
    if part is not None:
        payload, wall0 = existing_payload(NAME, quick=quick)
    payload["cpu_busy_warning"] = warning
    with one_thread():
        for name in [part] if part else PARTS:
            payload[name] = _part(name, quick)
            wall = wall0 + time.perf_counter() - t_start
            write_result(NAME, payload, quick=quick, seed=SEED, steps=None, wall_time_s=wall)
    log(f"{NAME}: {time.perf_counter() - t_start:.0f} s")
    return payload


def _rows(result: dict[str, Any], field: str, extra: str | None = None) -> list[str]:
    best = minimum(result)["point"]
    head = [field, "train examples", "train NLL", "test NLL", "gap"] + ([extra] if extra else [])
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in result["points"]:
        star = "**" if p["point"] == best else ""
        cells = [
            p["values"][field],
            str(p["num_train"]),
            f"{p['train_nll']:.3f}",
            f"{star}{p['test_nll']:.3f}{star}",
            f"{p['gap']:.3f}",
        ]
        if extra == "BIC":
            bold = "**" if p["bic"] == min(q["bic"] for q in result["points"]) else ""
            cells.append(f"{bold}{p['bic']:.1f}{bold}")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def table(record: dict[str, Any]) -> list[str]:
    """One table per sweep, the minimum of test NLL (and of BIC) in bold."""
    out: list[str] = []
    titles = {
        "gmm": ("num_components", "BIC", "GMM components on eight_gaussians (NLL in nats)"),
        "made": ("hidden_sizes", None, "MADE hidden units, binarized Fashion-MNIST, 5 % of train"),
        "vae": ("train_fraction", None, "VAE data size, binarized Fashion-MNIST (negative ELBO)"),
    }
    for part, (field, extra, title) in titles.items():
        result = record.get(part)
        if not result:
            continue
        steps = result["options"]["steps"]
        out += [f"*{title}; {steps} steps per point, {result['cpu_s']:.0f} CPU s in all:*", ""]
        out += _rows(result, field, extra)
        pts, best = result["points"], minimum(result)
        line = (
            f"Test minimum at {field} = {best['values'][field]}; the gap goes from "
            f"{pts[0]['gap']:.3f} to {pts[-1]['gap']:.3f} nats across the rows."
        )
        if extra == "BIC":
            low = min(pts, key=lambda p: p["bic"])
            line += f" BIC is lowest at {field} = {low['values'][field]}."
        out += ["", line, ""]
    out.append(
        "Bold: the minimum of test NLL (and of BIC). Train NLL falls as the model grows; "
        "test NLL turns where the data stop supporting the extra capacity, unless the "
        "budget ends first (a minimum at the largest size means the turn lies beyond the "
        "sizes or steps tried); more data close the gap, though at a fixed number of steps "
        "a larger share is seen for fewer epochs. Plots: benchmarks/results/sweep_<part>.png; "
        "`dgm sweep` draws the same curves with the gap shaded."
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parts = {p: f"only the {p} sweep" for p in PARTS}
    return bench_main(run, __doc__, "fewer points and steps; results/quick/", argv, parts)


if __name__ == "__main__":
    raise SystemExit(main())
