"""Normalizing flows: 2-D toy densities, dgm against zuko and normflows, which direction of
MAF and IAF is fast, and dequantized Fashion-MNIST in bits/dim.

1. **Toys** (moons, eight_gaussians, checkerboard, two_circles, pinwheel from ``dgm.data``,
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
2. **dgm vs zuko and normflows**, MAF and RealNVP on moons and eight_gaussians, the same
   architecture size in all three (5 transforms of (64, 64) MLPs; reversals between MAF
   steps, alternating halves between couplings), the same 10 000 training points in the
   same batches of 256, the same optimiser (Adam at lr 1e-3, constant, on the fused
   kernel: dgm's own ``build_optimizer``, which is AdamW with weight decay 0, and
   ``torch.optim.Adam(fused=True)`` for the others) and the same number of steps, one
   torch thread. Training runs in rounds: every library trains one chunk of steps per
   round, the order rotating; ms/step is the median over rounds (the first round, the
   warm-up, left out) and the dgm ÷ other ratio the median of the per-round ratios. A step
   is forward, backward, optimizer step and ``zero_grad``; dgm's loss is ``model.loss``
   with value checks off, as the trainer runs it; before training, each side's loss is
   checked equal to its mean NLL on a batch. Then the test NLL of each, and dgm's minus
   each other's per test point with its paired standard error. 20 dgm steps on moons are
   profiled (``torch.profiler``), the top operators saved with the results.
3. **Which direction is fast**, D = 784 (a flattened 28x28 image), one thread, no
   gradients: MAF's density (one MADE pass per step) against its sampling (D passes), IAF's
   sampling against its density, 5 MADE steps of (64, 64) hidden units, a batch of 16.
4. **Dequantized Fashion-MNIST** (``--scale byte``, integers 0..255): realnvp (conv,
   multi-scale), glow and maf (5 MADE steps of 512 hidden units) with ``dequantize=
   "uniform"``: y = (x + u)/256, u ~ U[0, 1)^D, then the logit transform, both inside the
   model, whose ``log_prob`` is the discrete-data bound on the 0..255 scale; test bits/dim
   = −mean log_prob / (784 ln 2) from ``dgm.evaluate.evaluate`` (checked against that
   formula). dgm's trainer, batch 64, AdamW lr 1e-3, a step budget per model of a few
   minutes on a 2-core CPU (far from the published runs' hundreds of epochs); evaluated on
   the whole test split. Beside them, the published MNIST figures (RealNVP 1.06,
   Glow 1.05, MAF 1.89 bits/dim): different data, for scale only. Runs are written to
   ``runs/bench[/quick]/flows/fashion_mnist/<model>``.

Everything runs on one torch thread: on the shared 2-core machine these were measured on,
one thread trained the image flows 4 to 10 times faster than two.

zuko and normflows are bench-only extras (``pip install -c constraints.txt -e '.[bench]'``),
never dependencies of dgm; without them part 2 is skipped with a message.

    python -m benchmarks.flows [--quick] [--part compare]

``--part compare`` reruns part 2 alone and writes it into the existing results file.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import itertools
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import dgm
from benchmarks import common
from benchmarks.common import (
    busy_warning,
    fashion_mnist_root,
    first_examples,
    fresh_run_dir,
    log,
    runs_dir,
    summary,
    write_result,
)
from dgm.data import DataConfig, TensorData
from dgm.train import TrainConfig
from dgm.train.optim import build_optimizer
from dgm.train.trainer import Trainer

NAME = "flows"
REPO = Path(__file__).resolve().parent.parent
SEED = 0
BATCH = 256
LR = 1e-3
TOYS = ("moons", "eight_gaussians", "checkerboard", "two_circles", "pinwheel")
# 5 transforms of (64, 64) MLPs in every vector flow (the zuko/normflows comparison's size)
TOY_MODELS: dict[str, dict[str, Any]] = {
    "maf": {"num_transforms": 5, "hidden_sizes": (64, 64)},
    "iaf": {"num_transforms": 5, "hidden_sizes": (64, 64)},
    "nice": {"num_couplings": 5, "hidden_sizes": (64, 64)},
    "realnvp": {"architecture": "mlp", "num_couplings": 5, "hidden_sizes": (64, 64)},
    "glow": {"architecture": "mlp", "steps_per_level": 5, "hidden_sizes": (64, 64)},
}
GLOW_NOTE = (  # what glow's toy row is: its vector steps
    "Glow on 2-D: 5 steps of ActNorm, an LU-parameterised 2×2 linear map and an affine coupling"
)
CS236_MAF_MOONS = 1.19  # nats, CS236's MAF on its own moons data: for scale only
COMPARE_TOYS = ("moons", "eight_gaussians")
COMPARE_MODELS = ("maf", "realnvp")
# training seeds: the per-seed spread of dgm − zuko (SD 0.02-0.07 nats) is as large as the
# gaps being judged, so 16 seeds give a standard error near 0.005-0.017 nats
COMPARE_SEEDS = tuple(range(16))
LIBRARIES = ("dgm", "zuko", "normflows")
SPEED_DIMS = 784
SPEED_BATCH = 16
IMAGE_BATCH = 64
IMAGE_GRAD_CLIP = 100.0  # global gradient-norm clip of the image runs: MAF's spiked to 1e4 without
IMAGE_MODELS: dict[str, dict[str, Any]] = {  # scaled down for a CPU
    "realnvp": {"architecture": "conv", "dequantize": "uniform"},
    "glow": {"dequantize": "uniform"},
    "maf": {"num_transforms": 5, "hidden_sizes": (512,), "dequantize": "uniform"},
}
IMAGE_STEPS = {"realnvp": 800, "glow": 1200, "maf": 2000}  # full mode: 2-3 min each, 1 thread
IMAGE_EVAL_N = None  # full mode: the whole test split (quick: the first 100 images)
# Published test bits/dim on MNIST (dequantized), not Fashion-MNIST: for scale only.
IMAGE_REFERENCES = [
    {
        "model": "realnvp",
        "dataset": "mnist",
        "bits_per_dim": 1.06,
        "source": "published",
    },
    {"model": "glow", "dataset": "mnist", "bits_per_dim": 1.05, "source": "published"},
    {
        "model": "maf",
        "dataset": "mnist",
        "bits_per_dim": 1.89,
        "source": "published",
    },
]


def available() -> bool:
    """Whether zuko and normflows are installed (the ``bench`` extra)."""
    return all(importlib.util.find_spec(m) is not None for m in ("zuko", "normflows"))


def _toy(name: str, split: str) -> TensorData:
    return DataConfig(name=name).load(split)


@torch.no_grad()
def _log_probs(log_prob: Callable[[Tensor], Tensor], x: Tensor, batch: int = 4096) -> Tensor:
    """log p of every example of x, in nats, float64: (N,)."""
    return torch.cat([log_prob(chunk).double() for chunk in x.split(batch)])


@torch.no_grad()
def _nll(log_prob: Callable[[Tensor], Tensor], x: Tensor, batch: int = 4096) -> dict[str, float]:
    """Mean negative log-likelihood in nats over x and its standard error."""
    lp = _log_probs(log_prob, x, batch)
    return {"nll": -lp.mean().item(), "se": lp.std().item() / math.sqrt(len(lp))}


# -- 1. toys -------------------------------------------------------------------------------------


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
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def toy_runs(steps: int, quick: bool) -> dict[str, Any]:
    """Part 1: every vector flow on every toy through dgm's trainer; NLL, heat maps."""
    config = TrainConfig(
        steps=steps,
        batch_size=BATCH,
        lr=LR,
        seed=SEED,
        device="cpu",
        eval_every=0,
        sample_every=0,
        log_every=steps,
        checkpoint_every=steps,
    )
    folder = common.result_path(NAME, quick=quick).parent
    runs: list[dict[str, Any]] = []
    floors: dict[str, float | None] = {}
    figures: dict[str, str] = {}
    for toy in TOYS:
        train, test = _toy(toy, "train"), _toy(toy, "test")
        try:
            floors[toy] = _nll(test.density.log_prob, test.x)["nll"]
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
            r = _nll(model.log_prob, test.x)
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
        "train_config": {
            "batch_size": BATCH,
            "lr": LR,
            "optimizer": "AdamW, weight decay 0 (dgm's trainer)",
            "warmup_steps": config.warmup_steps,
            "min_lr_ratio": config.min_lr_ratio,
        },
        "test_size": 10_000,
        "runs": runs,
        "true_nll": floors,
        "figures": figures,
        "glow": GLOW_NOTE,
        "cs236_maf_moons_nll": CS236_MAF_MOONS,
    }


# -- 2. dgm vs zuko and normflows ----------------------------------------------------------------


class _Side:
    """One library's flow: its loss on a batch, its log-density, its parameters."""

    def __init__(
        self,
        module: nn.Module,
        loss: Callable[[Tensor], Tensor],
        log_prob: Callable[[Tensor], Tensor],
    ) -> None:
        self.module, self.loss, self.log_prob = module, loss, log_prob


def _dgm_side(model_name: str) -> tuple[_Side, torch.optim.Optimizer]:
    model = dgm.create(model_name, (2,), **TOY_MODELS[model_name])
    model.check_values = False  # as the trainer's fit runs it
    phase, entries = next(iter(model.param_groups().items()))
    opt = build_optimizer(phase, entries, TrainConfig(lr=LR))
    return _Side(model, lambda x: model.loss(x).value, model.log_prob), opt


def _zuko_side(model_name: str) -> _Side:
    import zuko

    if model_name == "maf":
        flow = zuko.flows.MAF(2, transforms=5, hidden_features=(64, 64))
    else:
        flow = zuko.flows.RealNVP(2, transforms=5, hidden_features=(64, 64))
    return _Side(flow, lambda x: -flow().log_prob(x).mean(), lambda x: flow().log_prob(x))


def _normflows_side(model_name: str) -> _Side:
    import normflows as nf

    flows: list[nn.Module] = []
    for k in range(5):
        if model_name == "maf":  # MADE 2 -> 64 -> 64 -> 4: one feed-forward hidden block
            flows.append(
                nf.flows.MaskedAffineAutoregressive(2, 64, num_blocks=1, use_residual_blocks=False)
            )
        else:  # coupling MLP 1 -> 64 -> 64 -> 2 on the kept half
            flows.append(nf.flows.AffineCouplingBlock(nf.nets.MLP([1, 64, 64, 2], init_zeros=True)))
        if k < 4:
            flows.append(nf.flows.Permute(2, mode="swap"))
    flow = nf.NormalizingFlow(nf.distributions.DiagGaussian(2, trainable=False), flows)
    return _Side(flow, flow.forward_kld, flow.log_prob)


def _batches(n: int, steps: int, seed: int = SEED) -> Tensor:
    """Indices of every step's batch, (steps, BATCH): seeded epochs of a permutation."""
    g = torch.Generator().manual_seed(seed)
    per_epoch = n // BATCH
    epochs = -(-steps // per_epoch)
    perms = [torch.randperm(n, generator=g)[: per_epoch * BATCH] for _ in range(epochs)]
    return torch.cat(perms).view(-1, BATCH)[:steps]


def _profile_dgm_step(side: _Side, opt: torch.optim.Optimizer, x: Tensor) -> list[dict[str, Any]]:
    """The ten operators with the most self CPU time in 20 dgm training steps."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(20):
            side.loss(x).backward()
            opt.step()
            opt.zero_grad()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [
        {
            "op": e.key,
            "calls_per_step": e.count / 20,
            "self_us_per_step": e.self_cpu_time_total / 20,
            "share": e.self_cpu_time_total / total,
        }
        for e in events[:10]
    ]


def _check_losses(sides: dict[str, _Side], x: Tensor) -> None:
    """Every side's training loss is its mean NLL in nats on the batch (the same objective)."""
    with torch.no_grad():
        for lib, side in sides.items():
            loss, nll = side.loss(x).item(), -side.log_prob(x).mean().item()
            if abs(loss - nll) > 1e-4 * max(1.0, abs(nll)):
                raise SystemExit(f"{lib}: loss {loss} is not the mean NLL {nll}")


def _train_interleaved(
    sides: dict[str, _Side], opts: dict[str, torch.optim.Optimizer], batches: Tensor
) -> dict[str, list[float]]:
    """Train every side on ``batches`` (rounds, chunk, B, 2): each round every side trains
    its chunk, the order rotating by one each round. ms/step of each side's chunk per
    round, round 0 (the warm-up) left out."""
    ms: dict[str, list[float]] = {lib: [] for lib in sides}
    libs = list(sides)
    for r, chunk in enumerate(batches):
        for k in range(len(libs)):
            lib = libs[(r + k) % len(libs)]
            side, opt = sides[lib], opts[lib]
            t0 = time.perf_counter()
            for x in chunk:
                side.loss(x).backward()
                opt.step()
                opt.zero_grad()
            if r > 0:
                ms[lib].append(1000 * (time.perf_counter() - t0) / len(chunk))
    return ms


def _sd(values: list[float]) -> float:
    """Sample standard deviation, 0 for a single value."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _trained(run: dict[str, Any], lib: str) -> bool:
    """Whether ``lib``'s run did not diverge (``DIVERGED_NATS``)."""
    nll = run["test_nll"][lib]
    return math.isfinite(nll) and nll <= run["true_nll"] + DIVERGED_NATS


def _ci95(values: list[float]) -> list[float] | None:
    """Student-t 95 % confidence interval of the mean (None for a single value)."""
    if len(values) < 2:
        return None
    from scipy.stats import t

    half = t.ppf(0.975, len(values) - 1) * _sd(values) / math.sqrt(len(values))
    mean = statistics.mean(values)
    return [float(mean - half), float(mean + half)]


DIVERGED_NATS = 10.0  # a run whose test NLL is not finite or this far above the true NLL


def by_cases(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per toy and flow, over the seeds: each library's NLL mean and SD, dgm's minus each
    other's (mean, SD, SE, Student-t 95 % interval), the median ms/step ratio. A diverged
    run (test NLL not finite, or more than ``DIVERGED_NATS`` above the true density's NLL)
    is counted in ``diverged``, and its seed left out of that library's figures."""
    by_case = []
    for toy, model_name in itertools.product(COMPARE_TOYS, COMPARE_MODELS):
        case = [r for r in runs if r["toy"] == toy and r["model"] == model_name]
        ok = {lib: [r for r in case if _trained(r, lib)] for lib in LIBRARIES}
        nlls = {lib: [r["test_nll"][lib] for r in kept] or [math.nan] for lib, kept in ok.items()}
        diffs = {
            lib: [r["nll_dgm_minus"][lib]["diff"] for r in ok[lib] if _trained(r, "dgm")]
            or [math.nan]
            for lib in LIBRARIES[1:]
        }
        by_case.append(
            {
                "toy": toy,
                "model": model_name,
                "seeds": [r["seed"] for r in case],
                "diverged": {lib: len(case) - len(kept) for lib, kept in ok.items()},
                "diverged_rule": f"test NLL not finite or > true NLL + {DIVERGED_NATS} nats",
                "nll_mean": {lib: statistics.mean(v) for lib, v in nlls.items()},
                "nll_sd": {lib: _sd(v) for lib, v in nlls.items()},
                # NLL dgm - NLL other per seed (negative: dgm better), mean and SD over seeds
                "nll_dgm_minus_mean": {lib: statistics.mean(v) for lib, v in diffs.items()},
                "nll_dgm_minus_sd": {lib: _sd(v) for lib, v in diffs.items()},
                # its standard error and Student-t 95 % interval over the seeds
                "nll_dgm_minus_se": {lib: _sd(v) / math.sqrt(len(v)) for lib, v in diffs.items()},
                "nll_dgm_minus_ci95": {lib: _ci95(v) for lib, v in diffs.items()},
                "ratio_dgm_over_median": {
                    lib: statistics.median([r["ratio_dgm_over"][lib] for r in case])
                    for lib in LIBRARIES[1:]
                },
                "true_nll": case[0]["true_nll"],
            }
        )
    return by_case


def compare_runs(
    steps: int, chunk: int, quick: bool, seeds: tuple[int, ...] = COMPARE_SEEDS
) -> dict[str, Any]:
    """Part 2: dgm, zuko and normflows trained side by side, interleaved, once per training
    seed (initial weights and batch order); NLL and ms/step per run, and per case the mean
    and standard deviation over the seeds (``by_case``)."""
    rounds = steps // chunk
    runs: list[dict[str, Any]] = []
    profiles: dict[str, list[dict[str, Any]]] = {}
    warning = busy_warning()
    if warning:
        log(warning)
    for seed, toy in itertools.product(seeds, COMPARE_TOYS):
        train, test = _toy(toy, "train"), _toy(toy, "test")
        floor = _nll(test.density.log_prob, test.x)["nll"]
        order = _batches(len(train), rounds * chunk, seed)
        for model_name in COMPARE_MODELS:
            sides: dict[str, _Side] = {}
            opts: dict[str, torch.optim.Optimizer] = {}
            for lib in LIBRARIES:
                torch.manual_seed(seed)
                if lib == "dgm":
                    sides[lib], opts[lib] = _dgm_side(model_name)
                else:
                    sides[lib] = (
                        _zuko_side(model_name) if lib == "zuko" else _normflows_side(model_name)
                    )
                    opts[lib] = torch.optim.Adam(sides[lib].module.parameters(), lr=LR, fused=True)
                sides[lib].module.train()
            _check_losses(sides, train.x[order[0]])
            ms = _train_interleaved(sides, opts, train.x[order].view(rounds, chunk, BATCH, 2))
            lps = {}
            for lib, side in sides.items():
                side.module.eval()
                with torch.no_grad():
                    lps[lib] = _log_probs(side.log_prob, test.x)
            nll = {lib: {"nll": -lp.mean().item()} for lib, lp in lps.items()}
            # dgm's NLL minus each other's on the same test points, with the paired SE
            diffs = {lib: lps[lib] - lps["dgm"] for lib in LIBRARIES[1:]}
            paired = {
                lib: {"diff": d.mean().item(), "se": d.std().item() / math.sqrt(len(d))}
                for lib, d in diffs.items()
            }
            if toy == COMPARE_TOYS[0] and seed == seeds[0]:
                sides["dgm"].module.train()
                profiles[model_name] = _profile_dgm_step(
                    sides["dgm"], opts["dgm"], train.x[order[0]]
                )
            ratios = {
                lib: statistics.median([a / b for a, b in zip(ms["dgm"], ms[lib], strict=True)])
                for lib in LIBRARIES[1:]
            }
            med = {lib: statistics.median(v) for lib, v in ms.items()}
            runs.append(
                {
                    "toy": toy,
                    "model": model_name,
                    "seed": seed,
                    "steps": rounds * chunk,
                    "parameters": {
                        lib: sum(p.numel() for p in s.module.parameters())
                        for lib, s in sides.items()
                    },
                    "test_nll": {lib: v["nll"] for lib, v in nll.items()},
                    "test_nll_se": {
                        lib: lp.std().item() / math.sqrt(len(lp)) for lib, lp in lps.items()
                    },
                    "nll_dgm_minus": paired,
                    "true_nll": floor,
                    "ms_per_step": med,
                    "ms_per_step_summary": {lib: summary(v) for lib, v in ms.items()},
                    "ratio_dgm_over": ratios,
                }
            )
            log(
                f"  {model_name} on {toy}, seed {seed}: test NLL "
                + ", ".join(f"{lib} {v['nll']:.3f}" for lib, v in nll.items())
                + f" (true {floor:.3f}); ms/step "
                + ", ".join(f"{lib} {v:.2f}" for lib, v in med.items())
            )
    by_case = by_cases(runs)
    return {
        "seeds": list(seeds),
        "by_case": by_case,
        "description": "dgm vs zuko vs normflows: MAF and RealNVP, 5 transforms of (64, 64) "
        "MLPs, batch 256, Adam lr 1e-3 (fused), same batches and steps, one thread",
        "versions": {lib: importlib.metadata.version(lib) for lib in LIBRARIES[1:]},
        "optimizers": {
            "dgm": f"dgm.train.optim.build_optimizer: AdamW(lr={LR}, weight_decay=0, fused=True)",
            "zuko": f"torch.optim.Adam(lr={LR}, fused=True)",
            "normflows": f"torch.optim.Adam(lr={LR}, fused=True)",
        },
        "architectures": {
            "maf": {
                "dgm": "maf: 5 MADE-affine steps, MADE 2-64-64-4, reversal between steps, "
                "log-scale soft-clamped at 3",
                "zuko": "zuko.flows.MAF(2, transforms=5, hidden_features=(64, 64))",
                "normflows": "5 x MaskedAffineAutoregressive(2, 64, num_blocks=1, "
                "use_residual_blocks=False), Permute(swap) between",
            },
            "realnvp": {
                "dgm": "realnvp mlp: 5 affine couplings, MLP 2-64-64-4 on the masked input, "
                "alternating halves, log-scale soft-clamped at 3",
                "zuko": "zuko.flows.RealNVP(2, transforms=5, hidden_features=(64, 64))",
                "normflows": "5 x AffineCouplingBlock(MLP([1, 64, 64, 2], init_zeros=True)), "
                "Permute(swap) between",
            },
        },
        "batch_size": BATCH,
        "lr": LR,
        "lr_schedule": "constant",
        "threads": 1,
        "steps": rounds * chunk,
        "rounds": rounds,
        "steps_per_round": chunk,
        "order": "dgm, zuko, normflows, rotating by one each round; round 0 (warm-up) not timed",
        "runs": runs,
        "dgm_profile_top_ops": profiles,
        "profile_note": "torch.profiler, 20 dgm training steps on moons (self CPU time)",
        "busy_warning": warning,
    }


# -- 3. which direction is fast ------------------------------------------------------------------


def speed_runs(repeats: int) -> dict[str, Any]:
    """Part 3: MAF density vs sampling and IAF sampling vs density at D = 784, in ms."""
    cfg = {"num_transforms": 5, "hidden_sizes": (64, 64)}
    torch.manual_seed(SEED)
    maf = dgm.create("maf", (SPEED_DIMS,), **cfg).eval()
    iaf = dgm.create("iaf", (SPEED_DIMS,), **cfg).eval()
    x = torch.randn(SPEED_BATCH, SPEED_DIMS)
    g = torch.Generator().manual_seed(SEED)
    calls = {
        "maf_density": lambda: maf.log_prob(x),
        "maf_sampling": lambda: maf.sample(SPEED_BATCH, generator=g),
        "iaf_sampling": lambda: iaf.sample(SPEED_BATCH, generator=g),
        "iaf_density": lambda: iaf.log_prob(x),
    }
    fast = {"maf_density", "iaf_sampling"}
    ms: dict[str, list[float]] = {k: [] for k in calls}
    with torch.no_grad():
        for fn in calls.values():  # warm-up
            fn()
        for _ in range(repeats):
            for k, fn in calls.items():
                # the D-pass directions once per repeat, the one-pass ones 20 times
                n = 20 if k in fast else 1
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                ms[k].append(1000 * (time.perf_counter() - t0) / n)
    med = {k: statistics.median(v) for k, v in ms.items()}
    log(
        "  D = 784: "
        + ", ".join(f"{k} {v:.2f} ms" for k, v in med.items())
        + f"  (MAF sampling / density x{med['maf_sampling'] / med['maf_density']:.0f}, "
        f"IAF density / sampling x{med['iaf_density'] / med['iaf_sampling']:.0f})"
    )
    return {
        "description": "ms per call, batch of 16, D = 784, no gradients, one thread",
        "dims": SPEED_DIMS,
        "batch_size": SPEED_BATCH,
        "model_config": {"num_transforms": 5, "hidden_sizes": [64, 64]},
        "repeats": repeats,
        "ms": med,
        "ms_summary": {k: summary(v) for k, v in ms.items()},
        "ratio_maf_sampling_over_density": med["maf_sampling"] / med["maf_density"],
        "ratio_iaf_density_over_sampling": med["iaf_density"] / med["iaf_sampling"],
        "threads": 1,
    }


# -- 4. dequantized Fashion-MNIST ----------------------------------------------------------------


def _takes_dequantize(model_name: str) -> bool:
    """Whether the model's config has the ``dequantize`` field (the units convention)."""
    from dgm.registry import spec

    fields = {f.name for f in dataclasses.fields(spec(model_name).config_cls)}
    return "dequantize" in fields


def _image_run(
    model_name: str, data: DataConfig, steps: int, eval_n: int | None, quick: bool
) -> dict[str, Any]:
    """Train one flow on dequantized images into runs/bench[/quick]/flows/<data>/<model>
    and evaluate its test bits/dim (the discrete-data bound on the 0..255 scale)."""
    from dgm.evaluate.likelihood import evaluate
    from dgm.train import train

    run_dir = fresh_run_dir(runs_dir(NAME, quick) / data.name / model_name)
    config = TrainConfig(
        steps=steps,
        batch_size=IMAGE_BATCH,
        lr=LR,
        seed=SEED,
        device="cpu",
        eval_every=0,
        sample_every=0,
        log_every=max(1, steps // 10),
        checkpoint_every=steps,
        grad_clip=IMAGE_GRAD_CLIP,
    )
    cfg = IMAGE_MODELS[model_name]
    t0 = time.perf_counter()
    model, last = train(model_name, data, run_dir, config, progress=False, **cfg)
    train_wall = time.perf_counter() - t0
    test = first_examples(data.load("test"), eval_n)
    torch.manual_seed(SEED)  # the dequantization noise u of the evaluation
    t1 = time.perf_counter()
    r = evaluate(model, test, batch_size=256)
    eval_wall = time.perf_counter() - t1
    D = math.prod(model.event_shape)
    torch.manual_seed(SEED)  # per example, same batches, same u: the mean hides outliers
    model.eval()
    per_example = -_log_probs(model.log_prob, test.x, 256) / (D * math.log(2))  # (N,)
    quantiles = per_example.quantile(torch.tensor([0.5, 0.99], dtype=torch.float64)).tolist()
    bpd = r["nll"] / (D * math.log(2))
    if r.get("bound") != "dequantized" or abs(bpd - r.get("bits_per_dim", bpd)) > 1e-9:
        raise SystemExit(
            f"{model_name}: evaluate gives {r.get('bits_per_dim')} bits/dim ({r.get('bound')}), "
            f"its NLL {r['nll']} nats / (D ln 2) = {bpd}: not the dequantized bound"
        )
    log(
        f"  {model_name} on {data.name}: {steps} steps in {train_wall:.0f} s, test "
        f"{bpd:.3f} bits/dim ({r['nll']:.1f} nats, {r.get('bound')})  [eval {eval_wall:.0f} s]"
    )
    return {
        "model": model_name,
        "dataset": data.name,
        "model_config": cfg,
        "parameters": sum(p.numel() for p in model.parameters()),
        "likelihood": str(getattr(model.likelihood, "name", model.likelihood)),
        "steps": steps,
        "batch_size": IMAGE_BATCH,
        "run_dir": str(run_dir),
        "test_n": len(test),
        "test_size": 10_000,
        "test_nll": r["nll"],
        "bits_per_dim": bpd,
        "bits_per_dim_median": quantiles[0],
        "bits_per_dim_p99": quantiles[1],
        "bits_per_dim_max": per_example.max().item(),
        "evaluate_bits_per_dim": r.get("bits_per_dim"),
        "bound": r.get("bound"),
        "ms_per_step": 1000 * last["train_time_s"] / steps,
        "train_wall_s": train_wall,
        "eval_wall_s": eval_wall,
    }


def image_runs(steps: dict[str, int], eval_n: int | None, quick: bool) -> dict[str, Any]:
    """Part 4: realnvp, glow and maf on uniformly dequantized Fashion-MNIST, test bits/dim."""
    data = DataConfig(name="fashion_mnist", root=fashion_mnist_root(), scale="byte")
    out: dict[str, Any] = {
        "description": "dequantized Fashion-MNIST: test bits/dim, discrete-data bound on "
        "the 0..255 scale (y = (x + u)/256, logit transform, -D ln 256 inside log_prob)",
        "data": dataclasses.asdict(data),
        "batch_size": IMAGE_BATCH,
        "lr": LR,
        "grad_clip": IMAGE_GRAD_CLIP,
        "runs": [],
        "references": IMAGE_REFERENCES,
        "references_note": "published MNIST figures, different data: for scale only",
    }
    missing = [m for m in IMAGE_MODELS if not _takes_dequantize(m)]
    if missing:
        out["skipped"] = (
            f"{', '.join(missing)} take no `dequantize` option yet (the units convention): "
            "no image runs"
        )
        log(f"  skipped: {out['skipped']}")
        return out
    for model_name in IMAGE_MODELS:
        out["runs"].append(_image_run(model_name, data, steps[model_name], eval_n, quick))
    return out


# -- the benchmark -------------------------------------------------------------------------------


def run(quick: bool = False, part: str | None = None) -> dict[str, Any]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread throughout (see the module docstring)
    try:
        return _run(quick) if part is None else _rerun_compare(quick)
    finally:
        torch.set_num_threads(threads)


def _rerun_compare(quick: bool) -> dict[str, Any]:
    """Part 2 alone, written into the existing results file (the other parts kept)."""
    payload, wall = common.existing_payload(NAME, quick=quick)
    if not available():
        raise SystemExit(
            "zuko and normflows are needed: pip install -c constraints.txt -e '.[bench]'"
        )
    t0 = time.perf_counter()
    compare_steps, chunk = (100, 10) if quick else (2000, 50)
    seeds = (SEED,) if quick else COMPARE_SEEDS
    payload["compare"] = compare_runs(compare_steps, chunk, quick, seeds)
    payload["compare_rerun_wall_time_s"] = round(time.perf_counter() - t0, 1)
    toy_steps = 200 if quick else 2000  # the record's steps, as _run writes them
    write_result(NAME, payload, quick=quick, seed=SEED, steps=toy_steps, wall_time_s=wall)
    return payload


def _run(quick: bool) -> dict[str, Any]:
    toy_steps = 200 if quick else 2000
    compare_steps, chunk = (100, 10) if quick else (2000, 50)
    image_steps = dict.fromkeys(IMAGE_MODELS, 5) if quick else IMAGE_STEPS
    t_start = time.perf_counter()
    payload: dict[str, Any] = {
        "description": "normalizing flows: toys, dgm vs zuko/normflows, MAF/IAF directions, "
        "dequantized Fashion-MNIST",
        "complete": False,
        "threads": 1,
    }

    def save() -> Path:
        wall = time.perf_counter() - t_start
        return write_result(
            NAME, payload, quick=quick, seed=SEED, steps=toy_steps, wall_time_s=wall
        )

    log("  -- 2-D toys")
    payload["toys"] = toy_runs(toy_steps, quick)
    save()  # partial results survive a crash
    if available():
        log("  -- dgm vs zuko and normflows")
        seeds = (SEED,) if quick else COMPARE_SEEDS
        payload["compare"] = compare_runs(compare_steps, chunk, quick, seeds)
    else:
        log(
            "  zuko or normflows is not installed: skipping the comparison "
            "(pip install -c constraints.txt -e '.[bench]')"
        )
        payload["compare"] = None
    save()
    log("  -- which direction is fast, D = 784")
    payload["directions"] = speed_runs(1 if quick else 5)
    save()
    log("  -- dequantized Fashion-MNIST")
    payload["images"] = image_runs(image_steps, 100 if quick else IMAGE_EVAL_N, quick)
    payload["complete"] = True
    log(f"flows: {time.perf_counter() - t_start:.0f} s  -> {save()}")
    return payload


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="short budgets, test subsets; results/quick/"
    )
    p.add_argument(
        "--part",
        choices=["compare"],
        default=None,
        help="rerun part 2 alone (dgm vs zuko and normflows) into the existing results file",
    )
    ns = p.parse_args(argv)
    run(ns.quick, ns.part)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
