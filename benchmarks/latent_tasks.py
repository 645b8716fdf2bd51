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
   (BoTorch: ``SingleTaskGP``, log expected improvement, a class probability modelled on
   the logit scale; 5 random points first) against
   random search, the same number of evaluations, over several seeds, of two black-box
   objectives of the decoded image (Bernoulli means): the probability that dgm's
   Fashion-MNIST feature classifier (``dgm.evaluate.features``) gives class 8 (bag), and
   −|pixel mass − 0.45| (mean intensity near 0.45, heavier than most garments). Best
   value so far against evaluations, mean ± standard error over seeds:
   ``results[/quick]/latent_tasks_design.png``.

Runs go to ``runs/bench[/quick]/latent_tasks/<model>``; one torch thread.

    python -m benchmarks.latent_tasks [--quick] [--model NAME | --part design]

``--model NAME`` reruns part 1 for that model alone and writes its row into the existing
results file; ``--part design`` reruns part 2 alone (on the trained VAE when its run
directory is there). The ddpm row needs ``python -m benchmarks.ddpm`` first (its model).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks import common
from benchmarks.common import (
    fashion_mnist_root,
    fmt,
    log,
    one_thread,
    runs_dir,
    train_briefly,
    write_result,
)
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
EVALUATIONS, SEEDS = 30, 5  # design: evaluations per search, searches (seeds) per method
# class:8 seeds rerun with the GP on the probabilities: 1 (its first points all miss the
# class) and 4 (they do not)
VALUES_SEEDS = (1, 4)
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
    run = run_files.Run.open(path)
    model = run.model(device="cpu")
    model.config.latent_steps = min(DDPM_LATENT_STEPS, model.schedule.num_timesteps)
    records = run.metrics()
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
    model: GenerativeModel,
    evaluations: int,
    seeds: int,
    quick: bool,
    objectives: tuple[str, ...] = OBJECTIVES,
    kept: tuple[dict[str, Any], ...] = (),
    values_seeds: tuple[int, ...] = VALUES_SEEDS,
) -> dict[str, Any]:
    """Part 2: BO vs random search in the VAE's latent space, per objective of
    ``objectives``; ``kept``: earlier entries of other objectives, carried over. For an
    objective modelled on another scale, BO with the GP on the values themselves is rerun
    for ``values_seeds`` (the same first points), to show what the scale changes."""
    from dgm.evaluate.features import feature_classifier

    bounds = design.latent_box(model)
    clf = feature_classifier("fashion_mnist", ROOT)
    out = []
    for text in objectives:
        kind, value = design.parse_objective(text)
        if kind == "class":
            objective = design.class_objective(model, clf.net, int(value))
        else:
            objective = design.mass_objective(model, value)
        t0 = time.perf_counter()
        warp = design.warp_for(kind)
        runs = design.compare(
            objective, bounds, evaluations, seeds, initial=design.INITIAL, warp=warp
        )
        wall = time.perf_counter() - t0  # BO and random search on the chosen scale
        curves = {k: torch.stack([r.best_curve for r in v]) for k, v in runs.items()}  # (S, N)
        se = {k: c.std(0) / math.sqrt(seeds) if seeds > 1 else 0 * c[0] for k, c in curves.items()}
        entry: dict[str, Any] = {
            "objective": text,
            "gp_scale": "logit" if warp is not None else "values",
            "wall_s": wall,
            "seeds": seeds,
            "initial_best": curves["random"][:, design.INITIAL - 1].tolist(),
        }
        if warp is not None and values_seeds:  # the old scale, for comparison
            entry["bo_values_scale_best"] = {
                str(s): design.bayes_opt(
                    objective, bounds, evaluations, initial=design.INITIAL, seed=s
                ).best_value
                for s in values_seeds
                if s < seeds
            }
        for key in curves:
            entry[f"{key}_mean"] = curves[key].mean(0).tolist()
            entry[f"{key}_se"] = se[key].tolist()
            entry[f"{key}_best"] = curves[key][:, -1].tolist()
        out.append(entry)
        log(
            f"  {text}: best after {evaluations} evaluations, mean over {seeds} seeds: "
            + ", ".join(f"{k} {c[:, -1].mean():.4f}" for k, c in curves.items())
            + f" ({wall:.0f} s)"
        )
    out = sorted([*kept, *out], key=lambda o: OBJECTIVES.index(o["objective"]))
    path = common.result_path(NAME, quick=quick).parent / f"{NAME}_design.png"
    _plot(out, path)
    return {
        "description": "best objective vs evaluations, BO (SingleTaskGP + LogEI; a class "
        "probability modelled on the logit scale) vs random search in the VAE's latent box "
        "±3 prior std, mean ± SE over seeds",
        "model": DESIGN_MODEL,
        "latent_dims": int(bounds.shape[1]),
        "evaluations": evaluations,
        "seeds": seeds,
        "initial": design.INITIAL,
        "classifier_test_accuracy": clf.test_accuracy,
        "objectives": out,
        "figure": str(path.relative_to(Path(__file__).resolve().parent.parent)),
    }


def _searches(objective: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, label) of each search recorded for one objective: BO on the GP's scale, BO
    on the values (class objectives), random search."""
    scale = objective.get("gp_scale", "values")
    searches = [("bo", f"BO, GP on {scale}"), ("bo_values", "BO, GP on values")]
    return [(k, v) for k, v in [*searches, ("random", "random search")] if f"{k}_mean" in objective]


def _values_scale_clause(best: dict[str, float]) -> str:
    """ "; with the GP on the probabilities ... seed 1 ends at ..." for the seeds rerun
    on the values' own scale ("" when none was)."""
    if not best:
        return ""
    ends = " and ".join(f"{v:.4f} (seed {k})" for k, v in best.items())
    return f"; with the GP on the probabilities (same VAE and first points) BO ends at {ends}"


def _paired_line(o: dict[str, Any], n: int) -> str:
    """BO − random search after n evaluations, paired by seed (the same first points):
    mean and 95 % t-interval over the seeds."""
    from scipy.stats import t

    diff = torch.tensor(o["bo_best"]) - torch.tensor(o["random_best"])  # (S,)
    if len(diff) < 2:
        return f"{o['objective']}: BO − random at k = {n}: {diff.mean():+.3f} (one seed)"
    half = float(t.ppf(0.975, len(diff) - 1)) * diff.std().item() / math.sqrt(len(diff))
    m = diff.mean().item()
    return (
        f"{o['objective']}: BO − random at k = {n}, paired by seed: {m:+.3f}, 95 % interval "
        f"[{m - half:+.3f}, {m + half:+.3f}] over {len(diff)} seeds."
    )


def _plot(objectives: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(objectives), 3.2), dpi=96)
    FigureCanvasAgg(fig)
    for i, o in enumerate(objectives):
        ax = fig.add_subplot(1, len(objectives), i + 1)
        for key, label in _searches(o):
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
    with one_thread():
        return _run(quick)


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
    names = tuple(MODELS)
    if quick:  # benchmarks.ddpm's quick model (3 steps) has no invertible DDIM map
        names = tuple(m for m in MODELS if m != "ddpm")
        log("  ddpm: left out in quick mode (its quick model cannot be inverted)")
    payload["representation"], trained = representation_runs(
        200 if quick else 2000, 500 if quick else 10_000, quick, names
    )
    save()
    log("  -- design: BO vs random search")
    evaluations, seeds = (8, 2) if quick else (EVALUATIONS, SEEDS)
    payload["design"] = design_runs(trained[DESIGN_MODEL], evaluations, seeds, quick)
    payload["complete"] = True
    log(f"{NAME}: {time.perf_counter() - t_start:.0f} s  -> {save()}")
    return payload


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
            f"{fmt(r['probe_codes_accuracy'], 3)} | {fmt(r['probe_pixels_accuracy'], 3)} |"
        )
    des = record.get("design")
    if des:
        lines += ["", *_design_lines(des)]
    return lines


def _design_lines(des: dict[str, Any]) -> list[str]:
    """BO against random search per objective, mean ± SE over seeds, and what the GP's
    scale does to the class objective."""
    n, half = des["evaluations"], des["evaluations"] // 2
    lines = [
        f"Design in the {des['model']}'s {des['latent_dims']}-dimensional latent space (the "
        f"box ±3 prior std; {des['initial']} shared random points first): best value after k "
        "evaluations, mean ± SE over the seeds (class:K = classifier probability of class "
        "K; mass:M = −|pixel mass − M|).",
        "",
        f"| objective | search | seeds | k = {half} | k = {n} | best of each seed, k = {n} |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for o in des["objectives"]:
        for key, label in _searches(o):
            cells = [
                f"{o[f'{key}_mean'][k - 1]:.3f} ± {o[f'{key}_se'][k - 1]:.3f}" for k in (half, n)
            ]
            best = ", ".join(f"{v:.3f}" for v in o.get(f"{key}_best", []))
            seeds = o.get("seeds", des["seeds"])
            name = o["objective"] + (" †" if "kept_from" in o else "")
            lines.append(f"| {name} | {label} | {seeds} | {' | '.join(cells)} | {best} |")
    if any("kept_from" in o for o in des["objectives"]):
        lines += [
            "",
            "† from an earlier run of this part (its own training of the VAE, which is not "
            "bit-identical between runs); not rerun, its search is unchanged.",
        ]
    lines += ["", *(_paired_line(o, n) for o in des["objectives"])]
    cls = next((o for o in des["objectives"] if o.get("gp_scale") == "logit"), None)
    if cls is not None:
        start = cls.get("initial_best", [])
        missed = [i for i, v in enumerate(start) if v < 0.01]
        lines += [
            "",
            f"{cls['objective']} is a probability near 0 over much of the box (best of the "
            f"{des['initial']} shared random points per seed: "
            + ", ".join(f"{v:.4f}" for v in start)
            + "). A GP fitted to the probabilities themselves sees an almost flat function "
            "where they are all near 0, and expected improvement has nothing to follow: on "
            "main at 353cd91 (GP on the probabilities, 4 seeds) one BO run ended at 0.013 "
            "and BO averaged 0.749 ± 0.245 against random search's 0.959 ± 0.022. The GP now "
            "models the logit, on which those probabilities differ by orders of magnitude "
            "(the best point is the same on either scale)"
            + (
                f"; seed {missed[0]}, whose first points all miss the class, reaches "
                f"{cls['bo_best'][missed[0]]:.3f}"
                if missed
                else ""
            )
            + _values_scale_clause(cls.get("bo_values_scale_best", {}))
            + ". With this many seeds the two searches cannot be told apart where the paired "
            "interval holds 0. Both draw from the same box uniformly; random search does not "
            "sample the prior.",
        ]
    return [*lines, "", f"![best value vs evaluations]({des['figure']})"]


def rerun_representation(name: str, quick: bool) -> None:
    """Part 1 for one model, its row written into the existing results file (the other
    rows and part 2 kept)."""
    payload, wall = common.existing_payload(NAME, quick=quick)
    rep = payload["representation"]
    with one_thread():
        t0 = time.perf_counter()
        new, _ = representation_runs(rep["n"], rep["train_n"], quick, (name,))
    rows = [r for r in rep["rows"] if r["model"] != name] + new["rows"]
    rep["rows"] = sorted(rows, key=lambda r: list(MODELS).index(r["model"]))
    rep.setdefault("reruns_s", {})[name] = round(time.perf_counter() - t0, 1)
    write_result(NAME, payload, quick=quick, seed=SEED, steps=None, wall_time_s=wall)


def rerun_design(quick: bool, objectives: tuple[str, ...] = OBJECTIVES) -> None:
    """Part 2 alone for ``objectives``, into the existing results file (part 1 and the
    other objectives' entries kept): on the VAE of runs/bench[/quick]/latent_tasks/vae
    when one is there (trained by a full run with the same settings and seed), else on a
    freshly trained one."""
    from dgm import run_dir as run_files

    payload, wall = common.existing_payload(NAME, quick=quick)
    with one_thread():
        t0 = time.perf_counter()
        path = runs_dir(NAME, quick) / DESIGN_MODEL
        if (path / run_files.CONFIG).is_file():
            model = run_files.Run.open(path).model(device="cpu")
        else:
            kind, cfg, full_steps = MODELS[DESIGN_MODEL]
            model, _ = _train(DESIGN_MODEL, DATA[kind], cfg, 10 if quick else full_steps, path)
        evaluations, seeds = (8, 2) if quick else (EVALUATIONS, SEEDS)
        old = payload.get("design", {})
        kept = tuple(o for o in old.get("objectives", []) if o["objective"] not in objectives)
        for o in kept:  # measured by an earlier run, on that run's own training of the VAE
            o.setdefault("seeds", old["seeds"])
            o.setdefault("kept_from", payload.get("date", "an earlier run"))
        payload["design"] = design_runs(model, evaluations, seeds, quick, objectives, kept)
        payload["design"]["rerun_s"] = round(time.perf_counter() - t0, 1)
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
    p.add_argument(
        "--part",
        choices=("all", "design"),
        default="all",
        help="design: rerun part 2 alone into the existing results (reuses the trained VAE)",
    )
    p.add_argument(
        "--objective",
        action="append",
        choices=OBJECTIVES,
        help="with --part design: rerun this objective only (repeatable; default: all)",
    )
    ns = p.parse_args(argv)
    if ns.part == "design":
        rerun_design(ns.quick, tuple(ns.objective or OBJECTIVES))
    elif ns.model is None:
        run(ns.quick)
    else:
        rerun_representation(ns.model, ns.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
