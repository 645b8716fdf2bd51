"""Normalizing flows on 2-D toy densities: test NLL against the true density's.

The toys (moons, eight_gaussians, checkerboard, two_circles, pinwheel from ``dgm.data``,
10 000 points per split): maf, iaf, nice, realnvp and glow, each 5 transforms of (64, 64)
MLPs (MAF/IAF: MADE-affine steps; RealNVP: affine couplings; NICE: additive couplings and
the scaling layer; Glow: its vector steps, ActNorm, an LU-parameterised 2×2 linear map
and an affine coupling), trained by dgm's trainer (batch 256, AdamW at lr 1e-3, weight
decay 0, the default 100-step warm-up and cosine decay to 0.1 lr) for a stated number
of steps, then the test NLL in nats per example (mean, with its standard error) beside
the true density's own NLL on the same test points where the toy has one (the pinwheel
has none): no model can beat that floor on average. Heat maps of every density:
``results[/quick]/flows_<toy>.png``.
For scale: CS236's MAF reaches about 1.19 nats on moons (its own moons data).

The toys part of ``results[/quick]/flows.json`` (``benchmarks.flows``); one torch thread.

    python -m benchmarks.flows_toys [--quick]
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import dgm
from benchmarks import common
from benchmarks.common import (
    fmt,
    log,
    log_probs,
    markdown_table,
    nll,
    save_figure,
    schedule_record,
    train_config,
)
from benchmarks.flows import (
    BATCH,
    LR,
    NAME,
    QUICK_TOY_STEPS,
    SEED,
    TOY_MODELS,
    TOY_STEPS,
    load_toy,
    run_part,
)
from dgm.data import TensorData
from dgm.train.trainer import Trainer

REPO = Path(__file__).resolve().parent.parent
TOYS = ("moons", "eight_gaussians", "checkerboard", "two_circles", "pinwheel")
GLOW_NOTE = (  # what glow's toy row is: its vector steps
    "Glow on 2-D: 5 steps of ActNorm, an LU-parameterised 2×2 linear map and an affine coupling"
)
CS236_MAF_MOONS = 1.19  # nats, CS236's MAF on its own moons data: for scale only


def _bounds(x: Tensor) -> list[float]:
    """A square-ish plotting window around the data: the 0.1 % to 99.9 % quantiles, widened."""
    lo, hi = x.quantile(0.001, dim=0), x.quantile(0.999, dim=0)  # (2,) each
    pad = 0.15 * (hi - lo)
    return [lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1]]


def _grid(bounds: list[float], n: int = 160) -> Tensor:
    xs = torch.linspace(bounds[0], bounds[1], n)
    ys = torch.linspace(bounds[2], bounds[3], n)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # (n, n) each, rows along y
    return torch.stack([gx, gy], -1).reshape(-1, 2)  # (n², 2)


def _heat_maps(toy: str, test: TensorData, models: dict[str, Any], path: Path) -> None:
    """One figure per toy: the true density (or a histogram of the test points) and one
    panel per model, each exp(log p) on the same grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bounds = [float(b) for b in _bounds(test.x)]
    n = 160
    grid = _grid(bounds, n)
    panels: list[tuple[str, Tensor]] = []
    try:
        panels.append(("true density", test.density.log_prob(grid).exp().view(n, n)))
    except NotImplementedError:
        hist = torch.histogramdd(test.x, bins=[n, n], range=bounds).hist.T  # (y, x)
        panels.append(("test points (histogram)", hist))
    with torch.no_grad():
        for name, model in models.items():
            lp = torch.cat([model.log_prob(chunk) for chunk in grid.split(8192)])
            panels.append((name, lp.exp().view(n, n)))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.8))
    for ax, (title, img) in zip(axes, panels, strict=True):
        ax.imshow(img.numpy(), origin="lower", extent=bounds, cmap="magma", aspect="auto")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(toy, fontsize=10)
    save_figure(fig, path, dpi=90)


def measure(steps: int, quick: bool) -> dict[str, Any]:
    """Every vector flow on every toy through dgm's trainer; NLL, heat maps."""
    config = train_config(steps, batch_size=BATCH, lr=LR, seed=SEED, log_every=steps)
    folder = common.result_path(NAME, quick=quick).parent
    runs: list[dict[str, Any]] = []
    floors: dict[str, float | None] = {}
    figures: dict[str, str] = {}
    for toy in TOYS:
        train, test = load_toy(toy, "train"), load_toy(toy, "test")
        try:
            floors[toy] = nll(log_probs(test.density.log_prob, test.x))["nll"]
        except NotImplementedError:
            floors[toy] = None
        models = {}
        for name, cfg in TOY_MODELS.items():
            torch.manual_seed(SEED)
            model = dgm.create(name, (2,), **cfg)
            t0 = time.perf_counter()
            last = Trainer(model, train, None, config, None, progress=False).fit()
            wall = time.perf_counter() - t0
            model.eval()
            r = nll(log_probs(model.log_prob, test.x))
            models[name] = model
            runs.append(
                {
                    "toy": toy,
                    "model": name,
                    "model_config": cfg,
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "steps": steps,
                    "test_nll": r["nll"],
                    "test_nll_se": r["se"],
                    "true_nll": floors[toy],
                    "ms_per_step": 1000 * last["train_time_s"] / steps,
                    "train_wall_s": wall,
                }
            )
            gap = "" if floors[toy] is None else f" (true density {floors[toy]:.3f})"
            log(f"  {name} on {toy}: test NLL {r['nll']:.3f} ± {r['se']:.3f} nats{gap}")
        path = folder / f"{NAME}_{toy}.png"
        _heat_maps(toy, test, models, path)
        figures[toy] = str(path.relative_to(REPO))  # e.g. benchmarks/results/flows_moons.png
    return {
        "description": "2-D toys: test NLL in nats per example after a fixed step budget",
        "steps": steps,
        "train_config": schedule_record(config),
        "test_size": 10_000,
        "runs": runs,
        "true_nll": floors,
        "figures": figures,
        "glow": GLOW_NOTE,
        "cs236_maf_moons_nll": CS236_MAF_MOONS,
    }


def run(quick: bool = False) -> dict[str, Any]:
    steps = QUICK_TOY_STEPS if quick else TOY_STEPS
    return run_part("toys", lambda: measure(steps, quick), quick=quick)


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for docs/benchmarks.md: the test NLL of every vector flow on every
    toy, the true density's beside it (none without the toys part)."""
    toys = record.get("toys")
    if not toys:
        return []
    runs = toys.get("runs", [])
    models = list(dict.fromkeys(r["model"] for r in runs))
    rows = []
    for toy in dict.fromkeys(r["toy"] for r in runs):
        by = {r["model"]: r for r in runs if r["toy"] == toy}
        floor = toys.get("true_nll", {}).get(toy)
        cells = [f"{fmt(by[m]['test_nll'], 3)} ± {fmt(by[m]['test_nll_se'], 3)}" for m in models]
        rows.append([toy, *cells, fmt(floor, 3) if floor is not None else "– (no closed form)"])
    cfg = toys.get("train_config", {})
    figures = ", ".join(f"`{p}`" for p in toys.get("figures", {}).values())
    return [
        f"**Flows on 2-D toys** (5 transforms of (64, 64) MLPs each; dgm's trainer, "
        f"{toys['steps']} steps, batch {cfg.get('batch_size')}, AdamW lr {cfg.get('lr')}, "
        f"weight decay 0, {cfg.get('warmup_steps')}-step warm-up and cosine decay; one "
        f"thread): test NLL in nats per example ± its standard error, on "
        f"{toys.get('test_size', '?')} test points; the last column is the true density's own "
        "NLL on the same points, the floor no model beats on average. "
        f"{toys.get('glow', '–')}. For orientation only (other data/budget): CS236's MAF "
        f"reaches about {toys.get('cs236_maf_moons_nll')} nats on its own moons data. Heat "
        "maps: "
        f"{figures}.",
        "",
        *markdown_table(["toy", *models, "true density"], rows),
    ]


def main(argv: list[str] | None = None) -> int:
    return common.main(run, __doc__, "200 steps instead of 2000; results/quick/", argv)


if __name__ == "__main__":
    raise SystemExit(main())
