"""GANs: every objective on Fashion-MNIST with one architecture and budget, and 2-D mode
coverage over seeds.

1. **Fashion-MNIST** (grey levels in [0, 1], ``output="unit"``: a sigmoid): the 12
   objectives of ``gan`` (minimax, nonsaturating, kl, wgan, wgan_gp, hinge and the six
   f-GANs), all with the same DCGAN networks (``conv_channels`` 32, z of 64 dimensions, no
   spectral norm), batch 64, Adam lr 2e-4 with β = (0.5, 0.999) for both players, 20-step
   warm-up then cosine decay to 0.1 lr, the same number of generator steps, one torch
   thread, trained in memory by dgm's trainer. One discriminator step per generator step,
   except the Wasserstein games, which keep their published n_critic = 5 (and WGAN-GP its
   β = (0.5, 0.9)): with one critic step their critic estimates the distance too poorly
   to train on (a WGAN-GP on eight_gaussians caught 1 of 8 modes in 1500 steps). WGAN's
   clip 0.01 and WGAN-GP's λ = 10 as published, Adam for all; nothing else is tuned per
   objective, so the table compares the games under one budget, not each at its best.
   Then a conditional GAN (nonsaturating, projection discriminator over the 10 classes).
   Sample quality from ``dgm.evaluate.sample_quality`` against the test split: FD and
   KID in the features of dgm's own Fashion-MNIST classifier ("FD (dgm Fashion-MNIST
   features)", *not* FID: no Inception network), improved precision and recall (k = 3),
   and for the conditional GAN the classifier's accuracy on samples of each class.
   Beside them, for ranking only, the published Fashion-MNIST FIDs of Lucic et al. 2018
   (Inception features, their best runs over a large hyperparameter search: not
   comparable in value).
2. **2-D mode coverage**, eight_gaussians and grid25 (10 000 training points): minimax,
   nonsaturating, wgan_gp, hinge, f_kl and f_reverse_kl, MLP networks (128, 128), z of 8
   dimensions, batch 256, Adam lr 1e-3, β = (0.5, 0.999), 1500 generator steps, over 3
   training seeds (WGAN-GP: n_critic 5, β = (0.5, 0.9) and lr 2e-4, nearer Gulrajani et
   al.'s 1e-4: in 1500 steps on eight_gaussians it caught 2 of 8 modes at lr 1e-3 and all
   8 at 2e-4, on one seed); 2000
   samples each: modes captured (at least a quarter of a mode's share within 3 std of
   its centre) and the share of high-quality samples (within 3 std of some centre), plus
   FD, precision and recall on the raw points.

``--quick`` trains a few steps on small subsets and measures with a quickly trained
feature classifier: it checks that the benchmark runs, its numbers mean nothing.

    python -m benchmarks.gan [--quick]
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

import torch

import dgm
from benchmarks import common
from benchmarks.common import (
    fashion_mnist_root,
    first_examples,
    fmt,
    log,
    one_thread,
    train_config,
    write_result,
)
from dgm.data import DataConfig
from dgm.evaluate.features import ClassifierSettings, feature_classifier
from dgm.evaluate.sample_quality import sample_quality
from dgm.models.adversarial.objectives import OBJECTIVES
from dgm.train import TrainConfig
from dgm.train.trainer import Trainer

NAME = "gan"
SEED = 0
IMAGE = {"conv_channels": 32, "latent_dim": 64, "output": "unit", "architecture": "conv"}
IMAGE_TRAIN = {"batch_size": 64, "lr": 2e-4, "warmup_steps": 20}
IMAGE_STEPS, QUICK_IMAGE_STEPS = 1000, 10  # full: ~1-3 min per objective, 1 thread
IMAGE_SAMPLES, QUICK_IMAGE_SAMPLES = 2000, 200
TOY_OBJECTIVES = ("minimax", "nonsaturating", "wgan_gp", "hinge", "f_kl", "f_reverse_kl")
TOYS = ("eight_gaussians", "grid25")
TOY_MODEL = {"hidden_sizes": (128, 128), "latent_dim": 8}
TOY_TRAIN = {"batch_size": 256, "lr": 1e-3, "warmup_steps": 50}
TOY_STEPS, QUICK_TOY_STEPS = 1500, 30
TOY_SEEDS, QUICK_TOY_SEEDS = (0, 1, 2), (0,)
TOY_SAMPLES, QUICK_TOY_SAMPLES = 2000, 500
# the Wasserstein games keep their published critic steps (Arjovsky 2017, Gulrajani 2017)
PER_OBJECTIVE: dict[str, dict[str, Any]] = {
    "wgan": {"n_critic": 5},
    "wgan_gp": {"n_critic": 5, "betas_generator": (0.5, 0.9), "betas_discriminator": (0.5, 0.9)},
}
TOY_PER_OBJECTIVE: dict[str, dict[str, Any]] = {
    "wgan_gp": {**PER_OBJECTIVE["wgan_gp"], "lr_generator": 2e-4, "lr_discriminator": 2e-4},
}
# Lucic et al. 2018, "Are GANs Created Equal?", arXiv:1711.10337, Fashion-MNIST, FID with
# Inception features (best over their hyperparameter search): for ranking only
PUBLISHED_FID = {"nonsaturating": 26.5, "wgan": 21.5, "wgan_gp": 24.5, "vae": 58.7}
PUBLISHED_NOTE = (
    "Lucic et al. 2018 (arXiv:1711.10337), Fashion-MNIST FID in Inception features: a "
    "different feature space and budget, for ranking only"
)


def _train(model: Any, data: Any, config: TrainConfig) -> tuple[dict[str, Any], float]:
    """Train in memory; returns the last logged metrics and the wall time."""
    t0 = time.perf_counter()
    last = Trainer(model, data, None, config, progress=False).fit()
    return last, time.perf_counter() - t0


def _losses(last: dict[str, Any]) -> dict[str, float]:
    keep = ("discriminator/loss", "generator/loss", "discriminator/divergence")
    return {k: float(last[k]) for k in keep if k in last}


def _quality(result: dict[str, Any]) -> dict[str, Any]:
    keep = ("fd", "kid", "kid_std", "precision", "recall", "accuracy", "class_accuracy")
    keep += ("modes", "modes_captured", "high_quality", "feature_space")
    return {k: result[k] for k in keep if k in result}


def image_runs(quick: bool) -> dict[str, Any]:
    """Part 1: every objective on Fashion-MNIST, then a conditional GAN."""
    data = DataConfig(name="fashion_mnist", root=fashion_mnist_root())
    train, test = data.load("train"), data.load("test")
    if quick:
        train, test = first_examples(train, 2000), first_examples(test, 1000)
    steps = QUICK_IMAGE_STEPS if quick else IMAGE_STEPS
    n = QUICK_IMAGE_SAMPLES if quick else IMAGE_SAMPLES
    settings = ClassifierSettings(steps=100) if quick else ClassifierSettings()
    t0 = time.perf_counter()
    classifier = feature_classifier("fashion_mnist", data.root, settings=settings)
    log(f"  feature classifier: test accuracy {classifier.test_accuracy:.3f}")
    out: dict[str, Any] = {
        "data": dataclasses.asdict(data),
        "model_config": IMAGE,
        "train_config": {**IMAGE_TRAIN, "steps": steps, "betas": [0.5, 0.999]},
        "num_samples": n,
        "test_n": len(test),
        "feature_space": classifier.feature_space,
        "classifier_test_accuracy": classifier.test_accuracy,
        "classifier_steps": settings.steps,
        "classifier_wall_s": time.perf_counter() - t0,
        "published_fid": PUBLISHED_FID,
        "published_note": PUBLISHED_NOTE,
        "runs": [],
    }
    variants = [(name, {}) for name in OBJECTIVES] + [("nonsaturating", {"num_classes": 10})]
    for objective, extra in variants:
        torch.manual_seed(SEED)
        extra = {**PER_OBJECTIVE.get(objective, {}), **extra}
        shape = tuple(train.x.shape[1:])
        model = dgm.create("gan", shape, objective=objective, **IMAGE, **extra)
        last, wall = _train(model, train, train_config(steps, seed=SEED, **IMAGE_TRAIN))
        t1 = time.perf_counter()
        q = sample_quality(model, test, num_samples=n, seed=SEED, classifier=classifier)
        row = {
            "objective": objective,
            "conditional": "num_classes" in extra,
            "overrides": extra,  # this run's config beside the shared one
            "train_wall_s": wall,
            "ms_per_step": 1000 * last["train_time_s"] / steps,
            "eval_wall_s": time.perf_counter() - t1,
            **_losses(last),
            **_quality(q),
        }
        out["runs"].append(row)
        acc = f", class accuracy {row['accuracy']:.3f}" if "accuracy" in row else ""
        log(
            f"  {objective}{' (conditional)' if row['conditional'] else ''}: FD "
            f"{row['fd']:.2f}, KID {row['kid']:.4f}, precision {row['precision']:.3f}, "
            f"recall {row['recall']:.3f}"
            f"{acc} [{wall:.0f} s]"
        )
    return out


def toy_runs(quick: bool) -> dict[str, Any]:
    """Part 2: mode coverage on eight_gaussians and grid25 over seeds."""
    steps = QUICK_TOY_STEPS if quick else TOY_STEPS
    seeds = QUICK_TOY_SEEDS if quick else TOY_SEEDS
    n = QUICK_TOY_SAMPLES if quick else TOY_SAMPLES
    out: dict[str, Any] = {
        "model_config": TOY_MODEL,
        "train_config": {**TOY_TRAIN, "steps": steps, "betas": [0.5, 0.999]},
        "seeds": list(seeds),
        "num_samples": n,
        "runs": [],
    }
    for toy in TOYS:
        train = DataConfig(name=toy, num_samples=10_000).load("train")
        test = DataConfig(name=toy, num_samples=10_000).load("test")
        for objective in TOY_OBJECTIVES:
            for seed in seeds:
                torch.manual_seed(seed)
                extra = TOY_PER_OBJECTIVE.get(objective, {})
                model = dgm.create("gan", (2,), objective=objective, **TOY_MODEL, **extra)
                last, wall = _train(model, train, train_config(steps, seed=seed, **TOY_TRAIN))
                q = sample_quality(model, test, num_samples=n, seed=seed)
                out["runs"].append(
                    {"toy": toy, "objective": objective, "seed": seed, "train_wall_s": wall}
                    | {"overrides": extra}
                    | _losses(last)
                    | _quality(q)
                )
            mine = [r for r in out["runs"] if r["toy"] == toy and r["objective"] == objective]
            modes = [r["modes_captured"] for r in mine]
            log(
                f"  {toy} {objective}: modes {modes} of {mine[0]['modes']}, high quality "
                f"{statistics.mean(r['high_quality'] for r in mine):.2f}"
            )
    return out


def run(quick: bool = False) -> dict[str, Any]:
    with one_thread():
        return _run(quick)


def _run(quick: bool) -> dict[str, Any]:
    t_start = time.perf_counter()
    payload: dict[str, Any] = {
        "description": "GAN objectives on Fashion-MNIST (FD/KID/precision/recall in dgm "
        "features) and 2-D mode coverage",
        "complete": False,
        "threads": 1,
    }

    def save() -> Any:
        wall = time.perf_counter() - t_start
        steps = QUICK_IMAGE_STEPS if quick else IMAGE_STEPS
        return write_result(NAME, payload, quick=quick, seed=SEED, steps=steps, wall_time_s=wall)

    log("  -- 2-D mode coverage")
    payload["toys"] = toy_runs(quick)
    save()  # partial results survive a crash
    log("  -- Fashion-MNIST")
    payload["images"] = image_runs(quick)
    payload["complete"] = True
    log(f"gan: {time.perf_counter() - t_start:.0f} s  -> {save()}")
    return payload


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for the README: the objectives on Fashion-MNIST, then mode coverage."""
    lines: list[str] = []
    images = record.get("images") or {}
    if images.get("runs"):
        space = images.get("feature_space", "dgm features")
        cfg = images.get("train_config", {})
        lines += [
            f"GANs on Fashion-MNIST, {cfg.get('steps')} steps of batch {cfg.get('batch_size')}, "
            f"DCGAN networks, {images.get('num_samples')} samples against the test split. FD "
            f"and KID in {space} (classifier test accuracy "
            f"{images.get('classifier_test_accuracy', 0):.3f}), not FID; the last column is "
            "for orientation only: published FIDs (Lucic et al. 2018, Inception features, "
            "the best of a large hyperparameter search), another feature space and budget.",
            "",
            "| objective | FD | KID | precision | recall | class acc. | s | "
            "for orientation: published FID (other features/budget) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        published = images.get("published_fid", {})
        for r in images["runs"]:
            name = r["objective"] + (" (conditional)" if r.get("conditional") else "")
            pub = None if r.get("conditional") else published.get(r["objective"])
            cells = [
                name,
                fmt(r.get("fd")),
                fmt(r.get("kid"), 4),
                fmt(r.get("precision"), 3),
                fmt(r.get("recall"), 3),
                fmt(r.get("accuracy"), 3),
                fmt(r.get("train_wall_s"), 0),
                fmt(pub, 1),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        if "vae" in published:
            lines.append(f"| VAE (published) | | | | | | | {published['vae']:.1f} |")
        lines.append("")
    toys = record.get("toys") or {}
    if toys.get("runs"):
        seeds = toys.get("seeds", [])
        lines += [
            f"GAN mode coverage on 2-D toys over {len(seeds)} seed(s): modes captured (mean "
            "over seeds, of all modes) and share of high-quality samples (within 3 std).",
            "",
            "| objective | " + " | ".join(f"{t} modes | {t} hq" for t in TOYS) + " |",
            "| --- |" + " ---: | ---: |" * len(TOYS),
        ]
        for objective in TOY_OBJECTIVES:
            cells = [objective]
            for toy in TOYS:
                rs = [r for r in toys["runs"] if r["toy"] == toy and r["objective"] == objective]
                if not rs:
                    cells += ["–", "–"]
                    continue
                modes = statistics.mean(r["modes_captured"] for r in rs)
                cells += [
                    f"{modes:.1f}/{rs[0]['modes']}",
                    fmt(statistics.mean(r["high_quality"] for r in rs)),
                ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    return common.main(run, __doc__, "a few steps on subsets; results/quick/", argv)


if __name__ == "__main__":
    raise SystemExit(main())
