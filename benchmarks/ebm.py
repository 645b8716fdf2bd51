"""Energy-based models on 2-D toys: samples, energy heat maps, mode coverage and the NLL by
quadrature beside the flows' numbers.

Toys eight_gaussians, moons and grid25 from ``dgm.data`` (10 000 points per split). On
each, ``ebm`` (a (128, 128) SiLU MLP) is trained twice by dgm's trainer (batch 256, AdamW
lr 1e-3, weight decay 0, 100-step warm-up, cosine decay to 0.1 lr, one thread):

- ``cd``: contrastive divergence, negatives by 20 SGLD steps per training step from the
  replay buffer (10 000 persistent chains, restart probability 0.05), energy
  regulariser α = 0.01; SGLD step size ε = σ²/4 for the toy's noise scale σ (0.2, 0.1,
  0.1), exact Langevin noise (τ = 1);
- ``dsm``: denoising score matching with noise σ_dsm = σ/2 (it models the data
  convolved with N(0, σ_dsm² I), so its NLL on the clean data is a little worse by design).

Then, on the 10 000 test points, the NLL in nats per example (± its standard error) with
log Z by the midpoint rule on a 200 × 200 grid over a box holding the data, beside the
true density's NLL and the flows' test NLLs from ``results/flows.json`` (same toys, same
test points, 2000 steps of batch 256; grid25 is not among the flows' toys). 2000 samples
are drawn by SGLD from uniform noise on the data box (``sample(init="noise")``, 1000 steps
of the training's ε); on eight_gaussians and grid25, mode coverage from
``dgm.evaluate.sample_quality.mode_coverage`` (modes holding at least a quarter of their
share of samples within 3 std, and the share of samples within 3 std of some mode).
Figures: ``results[/quick]/ebm_<toy>.png`` (true density, each model's density, each
model's samples over the data).

    python -m benchmarks.ebm [--quick]
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
    nll,
    one_thread,
    save_figure,
    schedule_record,
    train_config,
    write_result,
)
from benchmarks.flows import toy_nlls
from dgm.data import DataConfig, TensorData
from dgm.train.trainer import Trainer

NAME = "ebm"
REPO = Path(__file__).resolve().parent.parent
SEED = 0
BATCH = 256
LR = 1e-3
HIDDEN = (128, 128)
SAMPLES = 2000
SAMPLE_STEPS = 1000  # SGLD steps from uniform noise for the reported samples
QUADRATURE_POINTS = 200
# per toy: noise scale σ of its parts, the box holding its data (SGLD starts, quadrature)
TOYS: dict[str, dict[str, Any]] = {
    "eight_gaussians": {"sigma": 0.2, "box": (-3.5, 3.5)},
    "moons": {"sigma": 0.1, "box": (-2.0, 3.0)},
    "grid25": {"sigma": 0.1, "box": (-5.0, 5.0)},
}
OBJECTIVES = ("cd", "dsm")


def model_config(toy: str, objective: str) -> dict[str, Any]:
    sigma, box = TOYS[toy]["sigma"], TOYS[toy]["box"]
    common_cfg = {
        "hidden_sizes": HIDDEN,
        "objective": objective,
        "sgld_step_size": sigma**2 / 4,
        "init_range": box,
        "quadrature_range": box,
        "quadrature_points": QUADRATURE_POINTS,
    }
    if objective == "cd":
        return {**common_cfg, "sgld_steps": 20, "energy_reg": 0.01}
    return {**common_cfg, "dsm_sigma": sigma / 2}


@torch.no_grad()
def _nll(model: Any, x: Tensor) -> dict[str, float]:
    return nll(-model.energy(x).double() - model.log_normalizer()[0].double())  # log Z once


def _coverage(samples: Tensor, toy: Any) -> dict[str, Any] | None:
    try:
        from dgm.evaluate.sample_quality import mode_coverage
    except ImportError:
        return None
    try:
        return mode_coverage(samples, toy)
    except ValueError:  # not a Gaussian mixture with known modes (moons)
        return None


def _figure(
    toy: str, test: TensorData, models: dict[str, Any], samples: dict[str, Tensor], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    low, high = TOYS[toy]["box"]
    n = 160
    axis = torch.linspace(low, high, n)
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")  # (n, n) each, rows along y
    grid = torch.stack([gx, gy], -1).reshape(-1, 2)  # (n², 2)
    panels: list[tuple[str, Tensor | None, Tensor | None]] = [
        ("true density", test.density.log_prob(grid).exp().view(n, n), None)
    ]
    with torch.no_grad():
        for name, model in models.items():
            panels.append((f"ebm {name}: density", model.log_prob(grid).exp().view(n, n), None))
    for name, x in samples.items():
        panels.append((f"ebm {name}: samples", None, x))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.8))
    extent = [low, high, low, high]
    for ax, (title, img, pts) in zip(axes, panels, strict=True):
        if img is not None:
            ax.imshow(img.numpy(), origin="lower", extent=extent, cmap="magma", aspect="auto")
        else:
            data = test.x[:2000]
            ax.scatter(data[:, 0], data[:, 1], s=1, c="0.8")
            ax.scatter(pts[:, 0], pts[:, 1], s=1, c="tab:red")
            ax.set_xlim(low, high)
            ax.set_ylim(low, high)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(toy, fontsize=10)
    save_figure(fig, path, dpi=90)


def toy_runs(steps: int, sample_steps: int, quick: bool) -> dict[str, Any]:
    config = train_config(steps, batch_size=BATCH, lr=LR, seed=SEED, log_every=steps)
    folder = common.result_path(NAME, quick=quick).parent
    runs: list[dict[str, Any]] = []
    figures: dict[str, str] = {}
    floors: dict[str, float] = {}
    for toy in TOYS:
        train, test = DataConfig(name=toy).load("train"), DataConfig(name=toy).load("test")
        lp = test.density.log_prob(test.x).double()
        floors[toy] = -lp.mean().item()
        models, samples = {}, {}
        for objective in OBJECTIVES:
            cfg = model_config(toy, objective)
            torch.manual_seed(SEED)
            model = dgm.create("ebm", (2,), **cfg)
            t0 = time.perf_counter()
            last = Trainer(model, train, None, config, None, progress=False).fit()
            wall = time.perf_counter() - t0
            model.eval()
            r = _nll(model, test.x)
            t0 = time.perf_counter()
            with torch.no_grad():
                gen = torch.Generator().manual_seed(SEED)
                x = model.sample(SAMPLES, generator=gen, steps=sample_steps)
            sample_wall = time.perf_counter() - t0
            coverage = _coverage(x, test.density)
            models[objective], samples[objective] = model, x
            runs.append(
                {
                    "toy": toy,
                    "objective": objective,
                    "model_config": cfg,
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "steps": steps,
                    "test_nll": r["nll"],
                    "test_nll_se": r["se"],
                    "true_nll": floors[toy],
                    "ms_per_step": 1000 * last["train_time_s"] / steps,
                    "train_wall_s": wall,
                    "sample_steps": sample_steps,
                    "ms_per_sample": 1000 * sample_wall / SAMPLES,
                    "mode_coverage": coverage,
                }
            )
            cov = (
                ""
                if coverage is None
                else f", modes {coverage['modes_captured']}/{coverage['modes']}, "
                f"high quality {coverage['high_quality']:.2f}"
            )
            log(
                f"  ebm {objective} on {toy}: test NLL {r['nll']:.3f} ± {r['se']:.3f} nats "
                f"(true {floors[toy]:.3f}){cov}"
            )
        path = folder / f"{NAME}_{toy}.png"
        _figure(toy, test, models, samples, path)
        figures[toy] = str(path.relative_to(REPO))
    return {
        "description": "2-D toys: EBM test NLL by quadrature, SGLD samples, mode coverage",
        "steps": steps,
        "train_config": schedule_record(config),
        "test_size": 10_000,
        "runs": runs,
        "true_nll": floors,
        "flows_nll": {toy: toy_nlls(toy) for toy in TOYS},
        "mode_coverage_available": any(r["mode_coverage"] is not None for r in runs),
        "figures": figures,
    }


def run(quick: bool = False) -> dict[str, Any]:
    with one_thread():
        t0 = time.perf_counter()
        steps, sample_steps = (100, 200) if quick else (2000, SAMPLE_STEPS)
        payload = {"description": "energy-based models on 2-D toys", "threads": 1}
        payload["toys"] = toy_runs(steps, sample_steps, quick)
        wall = time.perf_counter() - t0
        path = write_result(NAME, payload, quick=quick, seed=SEED, steps=steps, wall_time_s=wall)
        log(f"ebm: {wall:.0f} s  -> {path}")
        return payload


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for the README: the EBMs' NLL by quadrature, mode coverage and the
    flows' NLL on the same toys."""
    toys = record.get("toys", {})
    runs = toys.get("runs", [])
    flows = toys.get("flows_nll", {})
    flow_names = list(dict.fromkeys(m for t in flows.values() for m in t))
    rows = []
    for toy in dict.fromkeys(r["toy"] for r in runs):
        by = {r["objective"]: r for r in runs if r["toy"] == toy}
        cells = []
        for objective in OBJECTIVES:
            r = by.get(objective)
            cells.append(
                "–" if r is None else f"{fmt(r['test_nll'], 3)} ± {fmt(r['test_nll_se'], 3)}"
            )
        for objective in OBJECTIVES:
            cov = (by.get(objective) or {}).get("mode_coverage")
            cells.append(
                "–"
                if cov is None
                else f"{cov['modes_captured']}/{cov['modes']}, {cov['high_quality']:.2f}"
            )
        best = min(flows.get(toy, {}).items(), key=lambda kv: kv[1], default=None)
        cells.append("–" if best is None else f"{fmt(best[1], 3)} ({best[0]})")
        cells.append(fmt(toys.get("true_nll", {}).get(toy), 3))
        rows.append([toy, *cells])
    header = ["toy", "ebm cd NLL", "ebm dsm NLL", "cd modes, hq", "dsm modes, hq"]
    header += ["best flow NLL", "true density"]
    cfg = toys.get("train_config", {})
    figures = ", ".join(f"`{p}`" for p in toys.get("figures", {}).values())
    one = runs[0] if runs else {}
    note = (
        f"**Energy-based models on 2-D toys** (ebm, a (128, 128) SiLU MLP; dgm's trainer, "
        f"{toys.get('steps')} steps, batch {cfg.get('batch_size')}, AdamW lr {cfg.get('lr')}; "
        "cd: 20 SGLD steps per update from a 10 000-chain replay buffer; dsm: denoising score "
        "matching at half the toy's noise scale; one thread): test NLL in nats per example ± "
        "its standard error, log Z by the midpoint rule on a "
        f"{QUADRATURE_POINTS}² grid; modes captured and the high-quality share of "
        f"{SAMPLES} SGLD samples ({one.get('sample_steps', '?')} steps from uniform noise); "
        f"the best of the flows ({', '.join(flow_names) or 'none recorded'}) from "
        f"benchmarks/results/flows.json on the same test points; the true density's NLL is "
        f"the floor. Figures: {figures}."
    )
    if not toys.get("mode_coverage_available", True):
        note += " Mode coverage was not available (dgm.evaluate.sample_quality missing)."
    return [note, "", *common_table(header, rows)]


def common_table(header: list[str], rows: list[list[str]]) -> list[str]:
    right = ["---:" if i else "---" for i in range(len(header))]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(right) + " |",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def main(argv: list[str] | None = None) -> int:
    return common.main(run, __doc__, "100 training steps, 200 SGLD steps; results/quick/", argv)


if __name__ == "__main__":
    raise SystemExit(main())
