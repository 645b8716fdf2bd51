"""What a latent space is for: linear-probe representations and generative design on
Fashion-MNIST, through ``dgm.tasks`` (the ``Encodable`` capability, never model names).

1. **Representation**: a VAE and a GMVAE (binarized images, 10-dimensional codes, (300,
   300) MLPs; the GMVAE's prior a mixture of 10 Gaussians) and RealNVP (conv, multi-scale,
   on dequantized bytes; its code is the 784-dimensional base point z = f(x)), each trained
   by dgm's trainer (batch 64, AdamW lr 1e-3). Codes are ``dgm.tasks.represent.codes``
   (the posterior mean for the VAEs, z for the flow). A linear probe (scikit-learn's
   logistic regression, L2 with C = 1, on standardised features) is fitted on the codes of
   the first ``train_n`` training images and scored on the first ``n`` test images, beside
   the same probe on the raw pixels of the model's own data (binary, or bytes). A PCA plot
   of each model's test codes, coloured by class: ``results[/quick]/latent_tasks_<model>.png``.
2. **Design**: in the VAE's latent space (the box ±3 prior std), Bayesian optimisation
   (BoTorch: ``SingleTaskGP``, log expected improvement; 5 random points first) against
   random search, the same number of evaluations, over several seeds, of two black-box
   objectives of the decoded image (Bernoulli means): the probability that dgm's
   Fashion-MNIST feature classifier (``dgm.evaluate.features``) gives class 8 (bag), and
   −|pixel mass − 0.45| (mean intensity near 0.45, heavier than most garments). Best
   value so far against evaluations, mean ± standard error over seeds:
   ``results[/quick]/latent_tasks_design.png``.

Runs go to ``runs/bench[/quick]/latent_tasks/<model>``; one torch thread.

    python -m benchmarks.latent_tasks [--quick] [--model NAME]

``--model NAME`` reruns part 1 for that model alone and writes its row into the existing
results file. The ddpm row needs ``python -m benchmarks.ddpm`` first (its model).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks import common
from benchmarks.common import fashion_mnist_root, log, runs_dir, train_briefly, write_result
from dgm.data import DataConfig
from dgm.data.dataset import take
from dgm.model import GenerativeModel
from dgm.tasks import design, represent

NAME = "latent_tasks"
SEED = 0
BATCH = 64
LR = 1e-3
ROOT = fashion_mnist_root()
DATA = {
    "binary": DataConfig(name="fashion_mnist", root=ROOT, binarize="static"),
    "byte": DataConfig(name="fashion_mnist", root=ROOT, scale="byte"),
}
# model -> (data, config, full-mode steps)
MODELS: dict[str, tuple[str, dict[str, Any], int]] = {
    "vae": ("binary", {"latent_dim": 10, "hidden_sizes": (300, 300)}, 5000),
    "gmvae": ("binary", {"latent_dim": 10, "hidden_sizes": (300, 300), "num_components": 10}, 5000),
    "realnvp": ("byte", {"architecture": "conv", "dequantize": "uniform"}, 500),
    # not trained here: the DDPM of benchmarks.ddpm (32-channel U-Net, T = 1000), its code
    # the x_T of a 20-step deterministic DDIM (see DDPM_LATENT_STEPS)
    "ddpm": ("byte", {}, 0),
}
# A DDPM trained 500 steps with a 16-channel U-Net here could not be inverted: at 50 DDIM
# steps the step t = 20 -> 0 stalled at a relative residual near 1e-3 for most images
# (Anderson memory 5 to 40), its DDIM map not invertible there; benchmarks.ddpm's model
# inverts at 20 steps.
DDPM_LATENT_STEPS = 20
# (test, train) images of a model whose encoding is slow: DDIM inversion solves every
# step, about 0.3 s per image on one core; the others use the benchmark's n and train_n
SUBSETS = {"ddpm": (500, 1000)}
OBJECTIVES = ("class:8", "mass:0.45")  # 8 = bag
DESIGN_MODEL = "vae"


def _train(
    name: str, data: DataConfig, cfg: dict[str, Any], steps: int, run_dir: Path
) -> tuple[GenerativeModel, float]:
    model, _, wall = train_briefly(
        name, data, run_dir, steps, batch_size=BATCH, lr=LR, seed=SEED, **cfg
    )
    return model, wall


def _examples(data: DataConfig, split: str, n: int) -> Any:
    d = data.load(split)
    return take(d, torch.arange(min(n, len(d))), "cpu", torch.Generator().manual_seed(SEED))


def _ddpm(quick: bool) -> tuple[GenerativeModel, int, float]:
    """benchmarks.ddpm's Fashion-MNIST model (its run directory), with its latent steps."""
    from dgm import run_dir as run_files

    path = runs_dir("ddpm", quick) / "fashion_mnist"
    if not (path / run_files.CONFIG).is_file():
        raise SystemExit(f"no DDPM run in {path}: run python -m benchmarks.ddpm first")
    model = run_files.load_model(path)
    model.config.latent_steps = min(DDPM_LATENT_STEPS, model.schedule.num_timesteps)
    records = run_files.read_metrics(path / run_files.METRICS)
    steps = max((r.get("step", 0) for r in records), default=0)
    return model, steps, 0.0


def representation_runs(
    n: int, train_n: int, quick: bool, names: tuple[str, ...] = tuple(MODELS)
) -> tuple[dict[str, Any], dict[str, GenerativeModel]]:
    """Part 1: probe accuracy on the codes of each model of ``names`` and on its data's
    pixels (the same images); PCA plots."""
    root = runs_dir(NAME, quick)
    folder = common.result_path(NAME, quick=quick).parent
    folder.mkdir(parents=True, exist_ok=True)
    rows, trained, pixels = [], {}, {}
    for name in names:
        kind, cfg, full_steps = MODELS[name]
        if name == "ddpm":
            model, steps, wall = _ddpm(quick)
        else:
            steps = 10 if quick else full_steps
            model, wall = _train(name, DATA[kind], cfg, steps, root / name)
        trained[name] = model
        n_m, train_m = SUBSETS.get(name, (n, train_n))
        n_m, train_m = min(n, n_m), min(train_n, train_m)
        fit, test = _examples(DATA[kind], "train", train_m), _examples(DATA[kind], "test", n_m)
        t0 = time.perf_counter()
        torch.manual_seed(SEED)
        z_fit = represent.codes(model, fit.x).flatten(1)
        z_test = represent.codes(model, test.x).flatten(1)
        encode_s = time.perf_counter() - t0
        acc = represent.linear_probe(z_fit, fit.y, z_test, test.y, seed=SEED)
        if (kind, n_m, train_m) not in pixels:
            pixels[kind, n_m, train_m] = represent.linear_probe(
                fit.x.double(), fit.y, test.x.double(), test.y, seed=SEED
            )
        points = represent.project(z_test.double().numpy(), "pca", seed=SEED)
        title = f"{name} codes of Fashion-MNIST test images, PCA"
        path = folder / f"{NAME}_{name}.png"
        represent.projection_plot(points, test.y, title=title).save(path)
        rows.append(
            {
                "model": name,
                "data": kind,
                "model_config": cfg,
                "steps": steps,
                "train_wall_s": wall,
                "encode_s": encode_s,
                "code_dims": int(z_test.shape[1]),
                "probe_codes_accuracy": acc,
                "probe_pixels_accuracy": pixels[kind, n_m, train_m],
                "n": len(test.x),
                "train_n": len(fit.x),
                "figure": str(path.relative_to(Path(__file__).resolve().parent.parent)),
            }
        )
        log(
            f"  {name} ({steps} steps): probe on {z_test.shape[1]}-dim codes {acc:.4f}, "
            f"on {kind} pixels {pixels[kind, n_m, train_m]:.4f}"
        )
    return {
        "description": "linear probe (logistic regression, standardised features) test "
        "accuracy on codes vs raw pixels of the model's own data",
        "n": n,
        "train_n": train_n,
        "rows": rows,
    }, trained


def design_runs(
    model: GenerativeModel, evaluations: int, seeds: int, quick: bool
) -> dict[str, Any]:
    """Part 2: BO vs random search in the VAE's latent space, per objective."""
    from dgm.evaluate.features import feature_classifier

    bounds = design.latent_box(model)
    clf = feature_classifier("fashion_mnist", ROOT)
    out = []
    for text in OBJECTIVES:
        kind, value = design.parse_objective(text)
        if kind == "class":
            objective = design.class_objective(model, clf.net, int(value))
        else:
            objective = design.mass_objective(model, value)
        t0 = time.perf_counter()
        runs = design.compare(objective, bounds, evaluations, seeds, initial=design.INITIAL)
        wall = time.perf_counter() - t0
        curves = {k: torch.stack([r.best_curve for r in v]) for k, v in runs.items()}  # (S, N)
        se = {k: c.std(0) / math.sqrt(seeds) if seeds > 1 else 0 * c[0] for k, c in curves.items()}
        out.append(
            {
                "objective": text,
                "wall_s": wall,
                "bo_mean": curves["bo"].mean(0).tolist(),
                "bo_se": se["bo"].tolist(),
                "random_mean": curves["random"].mean(0).tolist(),
                "random_se": se["random"].tolist(),
                "bo_best": curves["bo"][:, -1].tolist(),
                "random_best": curves["random"][:, -1].tolist(),
            }
        )
        log(
            f"  {text}: best after {evaluations} evaluations, mean over {seeds} seeds: BO "
            f"{curves['bo'][:, -1].mean():.4f}, random {curves['random'][:, -1].mean():.4f} "
            f"({wall:.0f} s)"
        )
    path = common.result_path(NAME, quick=quick).parent / f"{NAME}_design.png"
    _plot(out, path)
    return {
        "description": "best objective vs evaluations, BO (SingleTaskGP + LogEI) vs random "
        "search in the VAE's latent box ±3 prior std, mean ± SE over seeds",
        "model": DESIGN_MODEL,
        "latent_dims": int(bounds.shape[1]),
        "evaluations": evaluations,
        "seeds": seeds,
        "initial": design.INITIAL,
        "classifier_test_accuracy": clf.test_accuracy,
        "objectives": out,
        "figure": str(path.relative_to(Path(__file__).resolve().parent.parent)),
    }


def _plot(objectives: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(objectives), 3.2), dpi=96)
    FigureCanvasAgg(fig)
    for i, o in enumerate(objectives):
        ax = fig.add_subplot(1, len(objectives), i + 1)
        for key, label in (("bo", "Bayesian optimisation"), ("random", "random search")):
            mean, se = torch.tensor(o[f"{key}_mean"]), torch.tensor(o[f"{key}_se"])
            steps = torch.arange(1, len(mean) + 1)
            ax.plot(steps, mean, label=label)
            ax.fill_between(steps, mean - se, mean + se, alpha=0.25)
        ax.set_title(o["objective"], fontsize=9)
        ax.set_xlabel("evaluations")
        ax.set_ylabel("best value so far")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def run(quick: bool = False) -> dict[str, Any]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(quick)
    finally:
        torch.set_num_threads(threads)


def _run(quick: bool) -> dict[str, Any]:
    t_start = time.perf_counter()
    payload: dict[str, Any] = {
        "description": "linear-probe representations and latent-space design on Fashion-MNIST",
        "complete": False,
        "threads": 1,
    }

    def save() -> Path:
        wall = time.perf_counter() - t_start
        return write_result(NAME, payload, quick=quick, seed=SEED, steps=None, wall_time_s=wall)

    log("  -- representation: linear probes")
    payload["representation"], trained = representation_runs(
        200 if quick else 2000, 500 if quick else 10_000, quick
    )
    save()
    log("  -- design: BO vs random search")
    evaluations, seeds = (8, 2) if quick else (30, 4)
    payload["design"] = design_runs(trained[DESIGN_MODEL], evaluations, seeds, quick)
    payload["complete"] = True
    log(f"{NAME}: {time.perf_counter() - t_start:.0f} s  -> {save()}")
    return payload


def _f(v: float | None, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for the README: probe accuracies, then BO vs random search."""
    rep = record.get("representation", {})
    lines = [
        "Linear probe (logistic regression) on Fashion-MNIST: test accuracy, fitted on the "
        "first train images and scored on the first test images (the pixel probe on the "
        "same images). ddpm: the model of the DDPM benchmark, its code DDIM's x_T "
        f"({DDPM_LATENT_STEPS} steps, inverted exactly).",
        "",
        "| model | data | steps | code dims | test / train images | probe on codes "
        "| probe on pixels |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rep.get("rows", []):
        sizes = f"{r.get('n', rep.get('n', '?'))} / {r.get('train_n', rep.get('train_n', '?'))}"
        lines.append(
            f"| {r['model']} | {r['data']} | {r['steps']} | {r['code_dims']} | {sizes} | "
            f"{_f(r['probe_codes_accuracy'])} | {_f(r['probe_pixels_accuracy'])} |"
        )
    des = record.get("design")
    if des:
        n = des["evaluations"]
        lines += [
            "",
            f"Design in the {des['model']}'s {des['latent_dims']}-dimensional latent space: "
            f"best value after k evaluations, mean ± SE over {des['seeds']} seeds "
            f"(class:K = classifier probability of class K; mass:M = −|pixel mass − M|).",
            "",
            f"| objective | BO, k = {n // 2} | random, k = {n // 2} | BO, k = {n} | "
            f"random, k = {n} |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for o in des["objectives"]:
            cells = [
                f"{o[f'{key}_mean'][k - 1]:.3f} ± {o[f'{key}_se'][k - 1]:.3f}"
                for k in (n // 2, n)
                for key in ("bo", "random")
            ]
            lines.append(f"| {o['objective']} | " + " | ".join(cells) + " |")
        lines += ["", f"![best value vs evaluations]({des['figure']})"]
    return lines


def rerun_representation(name: str, quick: bool) -> None:
    """Part 1 for one model, its row written into the existing results file (the other
    rows and part 2 kept)."""
    payload, wall = common.existing_payload(NAME, quick=quick)
    rep = payload["representation"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        new, _ = representation_runs(rep["n"], rep["train_n"], quick, (name,))
    finally:
        torch.set_num_threads(threads)
    rows = [r for r in rep["rows"] if r["model"] != name] + new["rows"]
    rep["rows"] = sorted(rows, key=lambda r: list(MODELS).index(r["model"]))
    rep.setdefault("reruns_s", {})[name] = round(time.perf_counter() - t0, 1)
    write_result(NAME, payload, quick=quick, seed=SEED, steps=None, wall_time_s=wall)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="10 training steps, 200 test images, 8 evaluations"
    )
    p.add_argument(
        "--model",
        choices=list(MODELS),
        default=None,
        help="rerun the representation part for this model alone, into the existing results",
    )
    ns = p.parse_args(argv)
    if ns.model is None:
        run(ns.quick)
    else:
        rerun_representation(ns.model, ns.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
