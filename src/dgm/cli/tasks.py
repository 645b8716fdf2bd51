"""The task verbs of the ``dgm`` command: parsers and command functions, no logic of their own.

dgm anomaly DIR --ood mnist_subset [--in fashion_mnist] [--background DIR2] [-n N]
            [--typical-batch M] [--json FILE]
dgm anomaly DIR --write-background-data FILE [--perturb 0.2]
dgm impute DIR --mask bottom-half|random|...|FILE [-m 5] [-n N] [--out grid.png] [--json FILE]
dgm classify DIR [-n N] [--train-n N] [--iw-samples K] [--json FILE]

``add_parsers(sub)`` adds them to the ``dgm`` parser; ``COMMANDS`` maps each name to its
function of the parsed arguments. Wrong input raises ``ValueError`` with the fix, which
``dgm.cli.parser`` prints as one line and exits 2.

A background model for the likelihood ratio (Ren et al. 2019) is a second run trained on
the same data with a share of values mutated: ``dgm anomaly DIR --write-background-data
bg.pt --perturb 0.2`` writes them, then ``dgm train MODEL --data tensors --data-root bg.pt
--out bg-run ...`` (the same model options) trains it, and ``--background bg-run`` uses it.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dgm import config as cfg
from dgm.cli import common
from dgm.run_dir import Run
from dgm.tasks.anomaly import AnomalyOptions
from dgm.tasks.classify import ClassifyOptions
from dgm.tasks.impute import ImputeOptions


def task_flags(p: argparse.ArgumentParser) -> None:
    """The flags every task verb takes: the run, its split, seed, batch size, --json and
    the run flags."""
    common.run_dir_arg(p)
    common.split_flag(p)
    p.add_argument("--seed", type=int, default=0, help="for the examples' draws and masks")
    p.add_argument("--batch-size", type=int, default=None, help="examples per forward pass")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write results")
    common.run_flags(p)


def task_parser(sub: Any, name: str, help: str, options: type) -> argparse.ArgumentParser:
    """The parser of task verb ``name``: the flags every task takes and those of its
    options dataclass ``options``."""
    p = sub.add_parser(name, help=help, allow_abbrev=False)
    task_flags(p)
    cfg.add_arguments(p, options)
    return p


def add_parsers(sub: Any) -> dict[str, argparse.ArgumentParser]:
    """Add anomaly, impute and classify to the subparsers ``sub``; returns their parsers."""
    verbs = {
        "anomaly": (
            "outlier detection: AUROC/AUPRC of likelihood, likelihood ratio, typicality",
            AnomalyOptions,
        ),
        "impute": ("fill missing values: RMSE and held-out log-likelihood", ImputeOptions),
        "classify": ("generative classifier (Bayes' rule) vs logistic regression", ClassifyOptions),
    }
    return {name: task_parser(sub, name, *what) for name, what in verbs.items()}


# -- anomaly ---------------------------------------------------------------------------------


def cmd_anomaly(ns: argparse.Namespace) -> int:
    from dgm.tasks import anomaly

    o = cfg.options_from(ns, AnomalyOptions)
    run, model = common.open_run(ns)
    if o.write_background_data is not None:
        return _write_background(ns, run, model)
    if o.out_data is None:
        raise ValueError("give the out-of-distribution dataset: --ood NAME, e.g. mnist_subset")
    anomaly.check_scorable(model)  # before the data are read
    bs = ns.batch_size or anomaly.BATCH_SIZE
    background = None  # loaded before the seed: its initialisation draws from the RNG
    if o.background is not None:
        _, background = common.open_run(ns, o.background)
    torch.manual_seed(ns.seed)  # bounds are stochastic: make them repeatable
    sets = anomaly.example_sets(run, o, ns.split, model.device, ns.seed)
    x = {k: v for k, (_, v) in sets.items()}
    rows, nll = anomaly.detect(
        model,
        x,
        background=background,
        typical_batch=o.typical_batch,
        batch_size=bs,
        seed=ns.seed,
    )
    entropy = anomaly.entropy_estimate(nll["train"])
    print(
        f"in: {sets['in'][0]} {ns.split} (n={len(nll['in'])}, mean NLL "
        f"{nll['in'].mean():.2f} nats); out: {sets['out'][0]} {ns.split} (n={len(nll['out'])}, "
        f"mean NLL {nll['out'].mean():.2f} nats); typical NLL Ĥ = {entropy:.2f} nats "
        f"(train, n={len(nll['train'])})"
    )
    print(f"{'method':<32} {'AUROC':>7} {'AUPRC':>7}")
    for row in rows:
        print(f"{row['method']:<32} {row['auroc']:>7.3f} {row['auprc']:>7.3f}")
        if "threshold" in row:
            print(
                f"  bootstrap threshold {row['threshold']:.3f} nats (alpha 0.01): flags "
                f"{100 * row['flagged_out']:.0f} % of out-batches, "
                f"{100 * row['flagged_in']:.0f} % of in-batches"
            )
    record = {
        "run_dir": str(ns.run_dir),
        "background": None if o.background is None else str(o.background),
        "in": sets["in"][0],
        "out": sets["out"][0],
        "split": ns.split,
        "n_in": len(nll["in"]),
        "n_out": len(nll["out"]),
        "entropy": entropy,
        "mean_nll_in": float(nll["in"].mean()),
        "mean_nll_out": float(nll["out"].mean()),
        "likelihood": model.likelihood.value,
        "rows": rows,
    }
    common.write_json(ns.json, record)
    return 0


def _write_background(ns: argparse.Namespace, run: Run, model: Any) -> int:
    """Write the run's training data with a share ``--perturb`` of values mutated."""
    from dgm.tasks import anomaly

    o = cfg.options_from(ns, AnomalyOptions)
    path: Path = o.write_background_data
    n, data_name = anomaly.write_background_data(run, model, path, o.perturb, ns.seed)
    print(
        f"wrote {path}: {n} training examples of {data_name} with {100 * o.perturb:g} % "
        f"of values mutated. Train the background model with the run's model options:\n"
        f"  dgm train {run.name} --data tensors --data-root {shlex.quote(str(path))} "
        f"--steps N --out BG_DIR\n"
        f"then: dgm anomaly {shlex.quote(str(ns.run_dir))} --ood OOD_DATA --background BG_DIR"
    )
    return 0


# -- impute ----------------------------------------------------------------------------------


def cmd_impute(ns: argparse.Namespace) -> int:
    from dgm.capabilities import model_modality, require
    from dgm.model import Completable
    from dgm.report.plots import default_range, picture_format
    from dgm.tasks import impute
    from dgm.tasks.impute import FORMER_NAMES
    from dgm.tasks.inpaint import save_completion_grid

    o = cfg.options_from(ns, ImputeOptions)
    if o.mask in FORMER_NAMES:
        raise ValueError(f"--mask {o.mask} is now --mask {FORMER_NAMES[o.mask]}")
    run, model = common.open_run(ns)
    name = run.name
    require(model, Completable, "imputation", f"the {name} model of {ns.run_dir}")
    image = model_modality(model) == "image"
    label = o.mask if o.mask in impute.MASK_KINDS else "file"
    out = o.out if o.out is not None else ns.run_dir / f"impute-{label}.png"
    if image:
        picture_format(out)  # a suffix Pillow writes, checked before the model runs
    batch, c = common.examples(run, ns.split, o.n, model.device, ns.seed)
    gen = torch.Generator().manual_seed(ns.seed)
    mask = impute.make_mask(o.mask, batch.x.shape, gen).to(model.device)
    train = run.data("train")
    draws_gen = torch.Generator(model.device).manual_seed(ns.seed)
    torch.manual_seed(ns.seed)
    rows, draws, held = impute.compare_imputations(
        model, batch.x, mask, o.m, train.x, c, draws_gen, label=name
    )
    hidden = int((~mask).sum())
    print(
        f"mask {o.mask}: {hidden} of {mask.numel()} values missing "
        f"({100 * hidden / mask.numel():.1f} %) in {len(batch.x)} {ns.split} examples"
    )
    print(f"{'method':<24} {'RMSE':>8} {'held-out log-lik (nats/example)':>32}")
    for row in rows:
        ll = row["heldout_log_lik"]
        text = "n/a" if ll is None else f"{ll:.3f}"
        print(f"{row['method']:<24} {row['rmse']:>8.4f} {text:>32}")
    if held is None:
        print(
            f"  held-out log-likelihood: not available for {name} with this mask (it needs "
            "a model that marginalises, or an autoregressive order with the observed part first)"
        )
    if image:
        value_range = run.value_range or default_range(batch.x)
        k = min(8, len(batch.x))
        save_completion_grid(batch.x[:k], mask[:k], draws[0][:k], value_range, out)
        print(f"wrote {out} (rows: originals, masked, one imputation)")
    record = {
        "run_dir": str(ns.run_dir),
        "mask": o.mask,
        "n": len(batch.x),
        "m": o.m,
        "missing": hidden,
        "rows": rows,
    }
    common.write_json(ns.json, record)
    return 0


# -- classify --------------------------------------------------------------------------------


def cmd_classify(ns: argparse.Namespace) -> int:
    from dgm.tasks import classify

    o = cfg.options_from(ns, ClassifyOptions)
    run, model = common.open_run(ns)
    classify.check_classifier(model)
    name = run.name
    train = run.data("train")
    test = run.data(ns.split)
    log_prior = classify.label_log_prior(train.y, model.num_classes)
    batch = common.batch_of(test, o.n, model.device, ns.seed)
    fit = common.batch_of(train, o.train_n, model.device, ns.seed + 1)
    high = float((run.value_range or (0, 1))[1]) or 1.0
    found = classify.compare_classifiers(
        model, batch.x, batch.y, fit.x, fit.y, log_prior,
        scale=high, iw_samples=o.iw_samples, seed=ns.seed,
    )  # fmt: skip
    generative, baseline = found["generative_accuracy"], found["logistic_regression_accuracy"]
    print(f"{len(batch.x)} {ns.split} examples of {test.name}, {model.num_classes} classes")
    print(f"{'classifier':<52} {'accuracy':>8}")
    print(f"{f'generative: {name}, argmax log p(x|y) + log p(y)':<52} {generative:>8.4f}")
    print(f"{f'logistic regression ({len(fit.x)} train examples)':<52} {baseline:>8.4f}")
    if found["missing"]:
        print(
            f"  {found['missing']} missing values (NaN): the generative classifier "
            "marginalises them; logistic regression sees each filled with its feature's "
            "training mean"
        )
    record = {
        "run_dir": str(ns.run_dir),
        "split": ns.split,
        "n": len(batch.x),
        "generative_accuracy": generative,
        "logistic_regression_accuracy": baseline,
        "train_n": len(fit.x),
        "likelihood": model.likelihood.value,
        "iw_samples": o.iw_samples,
    }
    common.write_json(ns.json, record)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "anomaly": cmd_anomaly,
    "impute": cmd_impute,
    "classify": cmd_classify,
}

__all__ = ["COMMANDS", "add_parsers"]
