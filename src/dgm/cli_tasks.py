"""The task verbs of the ``dgm`` command: parsers and command functions, no logic of their own.

dgm anomaly DIR --ood mnist_subset [--in fashion_mnist] [--background DIR2] [-n N]
            [--typical-batch M] [--json FILE]
dgm anomaly DIR --write-background-data FILE [--perturb 0.2]
dgm impute DIR --mask bottom-half|random|...|FILE [-m 5] [-n N] [--out grid.png] [--json FILE]
dgm classify DIR [-n N] [--train-n N] [--iw-samples K] [--json FILE]

``add_parsers(sub)`` adds them to the ``dgm`` parser; ``COMMANDS`` maps each name to its
function of the parsed arguments. Wrong input raises ``ValueError`` with the fix, which
``dgm.cli.main`` prints as one line and exits 2.

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

MASK_HELP = (
    "images: bottom-half, top-half, left-half, right-half, center (dgm complete's masks); "
    "any data: random (each value hidden with probability 0.5); or a .npy / .pt boolean "
    "mask file (True = observed)"
)


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="DIR", help="a run directory (dgm train --out)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--seed", type=int, default=0, help="for the examples' draws and masks")
    p.add_argument("--batch-size", type=int, default=None, help="examples per forward pass")
    p.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    p.add_argument("--best", action="store_true", help="best.safetensors (best valid NLL)")
    p.add_argument("--no-ema", action="store_true", help="the raw weights, not their EMA")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write results")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads")


def add_parsers(sub: Any) -> dict[str, argparse.ArgumentParser]:
    """Add anomaly, impute and classify to the subparsers ``sub``; returns their parsers."""
    a = sub.add_parser(
        "anomaly",
        help="outlier detection: AUROC/AUPRC of likelihood, likelihood ratio, typicality",
        allow_abbrev=False,
    )
    _run_flags(a)
    a.add_argument(
        "--in", dest="in_data", default=None, help="in-distribution dataset (default: the run's)"
    )
    a.add_argument(
        "--ood",
        dest="out_data",
        default=None,
        metavar="NAME",
        help="out-of-distribution dataset, e.g. mnist_subset",
    )
    a.add_argument(
        "--ood-root",
        dest="out_root",
        default=None,
        metavar="DIR",
        help="folder with the --ood dataset's files (e.g. the MNIST IDX files for --ood mnist)",
    )
    a.add_argument("--background", type=Path, default=None, metavar="DIR2", help="background run")
    a.add_argument("-n", type=int, default=1000, help="examples of each set (default: 1000)")
    a.add_argument(
        "--train-n", type=int, default=1000, help="training examples for Ĥ (default: 1000)"
    )
    a.add_argument(
        "--typical-batch", type=int, default=10, metavar="M", help="batch typicality test size"
    )
    a.add_argument(
        "--write-background-data",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the run's training data, mutated by --perturb, to FILE.pt and stop",
    )
    a.add_argument("--perturb", type=float, default=0.2, help="mutation rate (default: 0.2)")

    m = sub.add_parser(
        "impute", help="fill missing values: RMSE and held-out log-likelihood", allow_abbrev=False
    )
    _run_flags(m)
    m.add_argument("--mask", required=True, help=MASK_HELP)
    m.add_argument("-m", dest="m", type=int, default=5, help="imputations per example")
    m.add_argument("-n", type=int, default=100, help="examples (default: 100)")
    m.add_argument("--out", type=Path, default=None, metavar="FILE", help="inpainting grid picture")

    c = sub.add_parser(
        "classify",
        help="generative classifier (Bayes' rule) vs logistic regression",
        allow_abbrev=False,
    )
    _run_flags(c)
    c.add_argument("-n", type=int, default=1000, help="test examples (default: 1000)")
    c.add_argument(
        "--train-n", type=int, default=5000, help="training examples for logistic regression"
    )
    c.add_argument(
        "--iw-samples",
        type=int,
        default=None,
        metavar="K",
        help="score by IWAE_K instead of log_prob (latent models)",
    )
    return {"anomaly": a, "impute": m, "classify": c}


# -- shared pieces ---------------------------------------------------------------------------


def _positive(**counts: int) -> None:
    for flag, value in counts.items():
        if value < 1:
            name = f"-{flag}" if len(flag) == 1 else f"--{flag.replace('_', '-')}"  # -n, -m
            raise ValueError(f"{name} must be at least 1, got {value}")


def _load(ns: argparse.Namespace, run_dir: Path | None = None) -> tuple[dict[str, Any], Any]:
    """(config.json, model on the asked device) of a run directory."""
    from dgm import run_dir as rd

    run_dir = run_dir if run_dir is not None else ns.run_dir
    if not (run_dir / rd.CONFIG).is_file():
        what = "does not exist" if not run_dir.exists() else f"has no {rd.CONFIG}"
        raise ValueError(
            f"{run_dir} {what}: give a run directory, the --out folder of a dgm train run"
        )
    saved = rd.read_json(run_dir / rd.CONFIG)
    model = rd.load_model(run_dir, best=ns.best, ema=not ns.no_ema)
    return saved, model.to(rd.resolve_device(ns.device))


def _data(
    saved: dict[str, Any], name: str | None, split: str, model: Any, root: str | None = None
) -> Any:
    """Split ``split`` of dataset ``name`` (default: the run's) with the run's data options
    that it takes (binarization, scale), checked against the model's event shape; ``root``
    is the data folder of a dataset other than the run's."""
    from dgm import config as cfg
    from dgm.data import DataConfig, dataset_options, get
    from dgm.data.dataset import dataset_spec

    data_cfg = cfg.from_dict(DataConfig, saved["data"])
    name = name or data_cfg.name
    dataset_spec(name)  # an unknown name is an error listing the known ones
    accepted = dataset_options(name)
    options = {k: v for k, v in data_cfg.options.items() if k in accepted}
    root = data_cfg.root if name == data_cfg.name and root is None else root
    data = get(name, split, root, **options)
    if tuple(data.event_shape) != tuple(model.event_shape):
        raise ValueError(
            f"dataset {name!r} has examples of shape {tuple(data.event_shape)} but the model "
            f"takes {tuple(model.event_shape)}: choose a dataset of the run's shape"
        )
    return data


def _examples(data: Any, n: int, model: Any, seed: int) -> Any:
    """The first min(n, len(data)) examples as a Batch on the model's device."""
    from dgm.data.dataset import take

    if len(data) == 0:
        raise ValueError(f"dataset {data.name!r} has no examples in this split")
    gen = torch.Generator().manual_seed(seed)  # dynamic binarization
    return take(data, torch.arange(min(n, len(data))), model.device, gen)


def _write_json(path: Path | None, record: dict[str, Any]) -> None:
    if path is None:
        return
    from dgm.io import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    print(f"wrote {path}")


def _condition(model: Any, batch: Any) -> Any:
    return {"classes": batch.y, "context": batch.context}.get(model.conditioning.kind)


# -- anomaly ---------------------------------------------------------------------------------


def cmd_anomaly(ns: argparse.Namespace) -> int:
    from dgm.tasks import anomaly

    _positive(n=ns.n, train_n=ns.train_n, batch_size=ns.batch_size or 1)
    if ns.typical_batch < 0:
        raise ValueError(f"--typical-batch must be >= 0 (0: off), got {ns.typical_batch}")
    saved, model = _load(ns)
    if ns.write_background_data is not None:
        return _write_background(ns, saved, model)
    if ns.out_data is None:
        raise ValueError("give the out-of-distribution dataset: --ood NAME, e.g. mnist_subset")
    anomaly.check_scorable(model)
    bs = ns.batch_size or anomaly.BATCH_SIZE
    torch.manual_seed(ns.seed)  # bounds are stochastic: make them repeatable
    sets = {}
    for key, name, split, n, root in (
        ("in", ns.in_data, ns.split, ns.n, None),
        ("out", ns.out_data, ns.split, ns.n, ns.out_root),
        ("train", ns.in_data, "train", ns.train_n, None),
        ("valid", ns.in_data, "valid", ns.n, None),
    ):
        try:
            data = _data(saved, name, split, model, root)
        except ValueError:
            if key == "valid":  # no validation split: no bootstrap threshold
                continue
            raise
        if key == "valid" and len(data) == 0:
            continue
        sets[key] = (data.name, _examples(data, n, model, ns.seed).x)
    nll = {k: -anomaly.log_likelihood(model, x, batch_size=bs) for k, (_, x) in sets.items()}
    background = {}
    if ns.background is not None:
        _, bg = _load(ns, ns.background)
        anomaly.check_scorable(bg)
        if tuple(bg.event_shape) != tuple(model.event_shape):
            raise ValueError(
                f"the background run {ns.background} models shape {tuple(bg.event_shape)}, "
                f"the run {ns.run_dir} {tuple(model.event_shape)}: train it on the same data"
            )
        for k in ("in", "out"):
            background[f"background_{k}"] = -anomaly.log_likelihood(bg, sets[k][1], batch_size=bs)
    M = ns.typical_batch if ns.typical_batch <= min(len(nll["in"]), len(nll["out"])) else 0
    rows = anomaly.detection_table(
        nll["in"],
        nll["out"],
        nll["train"],
        valid_nll=nll.get("valid"),
        typical_batch=M,
        generator=torch.Generator().manual_seed(ns.seed),
        **background,
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
        "background": None if ns.background is None else str(ns.background),
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
    _write_json(ns.json, record)
    return 0


def _write_background(ns: argparse.Namespace, saved: dict[str, Any], model: Any) -> int:
    """Write the run's training data with a share ``--perturb`` of values mutated (Ren et
    al. 2019), for ``dgm train ... --data tensors``."""
    from dgm.io import atomic_write
    from dgm.tasks import anomaly

    path: Path = ns.write_background_data
    if path.suffix != ".pt":
        raise ValueError(f"--write-background-data {path}: name a .pt file, e.g. bg.pt")
    data = _data(saved, None, "train", model)
    batch = _examples(data, len(data), model, ns.seed)
    gen = torch.Generator().manual_seed(ns.seed)
    x = anomaly.perturb(batch.x.cpu(), ns.perturb, model.support, gen)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: torch.save({"x": x, "y": batch.y.cpu()}, p))
    name = saved.get("model", "MODEL")
    print(
        f"wrote {path}: {len(x)} training examples of {data.name} with {100 * ns.perturb:g} % "
        f"of values mutated. Train the background model with the run's model options:\n"
        f"  dgm train {name} --data tensors --data-root {shlex.quote(str(path))} "
        f"--steps N --out BG_DIR\n"
        f"then: dgm anomaly {shlex.quote(str(ns.run_dir))} --ood OOD_DATA --background BG_DIR"
    )
    return 0


# -- impute ----------------------------------------------------------------------------------


def cmd_impute(ns: argparse.Namespace) -> int:
    from dgm.model import Completable
    from dgm.registry import available_models, spec
    from dgm.report.plots import default_range, image_grid, picture_format, save_picture
    from dgm.tasks import impute
    from dgm.tasks.impute import FORMER_NAMES
    from dgm.tasks.inpaint import completion_grid

    _positive(n=ns.n, m=ns.m)
    if ns.mask in FORMER_NAMES:
        raise ValueError(f"--mask {ns.mask} is now --mask {FORMER_NAMES[ns.mask]}")
    saved, model = _load(ns)
    name = saved.get("model", type(model).__name__)
    if not isinstance(model, Completable):
        able = [m for m in available_models() if issubclass(spec(m).cls, Completable)]
        raise ValueError(
            f"the {name} model of {ns.run_dir} is not Completable (it has no "
            f"complete(x, observed_mask)); imputation needs one of: {', '.join(able)}"
        )
    image = len(model.event_shape) == 3 and model.event_shape[0] in (1, 3)
    label = ns.mask if ns.mask in impute.MASK_KINDS else "file"
    out = ns.out if ns.out is not None else ns.run_dir / f"impute-{label}.png"
    if image:
        picture_format(out)  # a suffix Pillow writes, checked before the model runs
    data = _data(saved, None, ns.split, model)
    batch = _examples(data, ns.n, model, ns.seed)
    gen = torch.Generator().manual_seed(ns.seed)
    mask = impute.make_mask(ns.mask, batch.x.shape, gen).to(model.device)
    c = _condition(model, batch)
    train = _data(saved, None, "train", model)
    mean = train.x.double().mean(0).to(model.device)  # (*event): probabilities if dynamic
    draws_gen = torch.Generator(model.device).manual_seed(ns.seed)
    torch.manual_seed(ns.seed)
    draws = impute.multiple_impute(model, batch.x, mask, ns.m, c, draws_gen)  # (m, n, *event)
    estimate = draws.double().mean(0)
    held = impute.heldout_log_likelihood(model, batch.x, mask, c)
    rows = [
        {
            "method": "mean",
            "rmse": impute.rmse(batch.x, impute.mean_impute(batch.x, mask, mean), mask),
            "heldout_log_lik": None,
        },
        {
            "method": f"{name} (m={ns.m})",
            "rmse": impute.rmse(batch.x, estimate, mask),
            "heldout_log_lik": None if held is None else float(held.mean()),
        },
    ]
    hidden = int((~mask).sum())
    print(
        f"mask {ns.mask}: {hidden} of {mask.numel()} values missing "
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
        value_range = saved.get("value_range") or default_range(batch.x)
        k = min(8, len(batch.x))
        images, columns = completion_grid(batch.x[:k], mask[:k], draws[0][:k], value_range)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_picture(image_grid(images, nrow=columns, value_range=tuple(value_range)), out)
        print(f"wrote {out} (rows: originals, masked, one imputation)")
    record = {
        "run_dir": str(ns.run_dir),
        "mask": ns.mask,
        "n": len(batch.x),
        "m": ns.m,
        "missing": hidden,
        "rows": rows,
    }
    _write_json(ns.json, record)
    return 0


# -- classify --------------------------------------------------------------------------------


def cmd_classify(ns: argparse.Namespace) -> int:
    from dgm.tasks import classify

    _positive(n=ns.n, train_n=ns.train_n)
    saved, model = _load(ns)
    classify.check_classifier(model)
    name = saved.get("model", type(model).__name__)
    train = _data(saved, None, "train", model)
    test = _data(saved, None, ns.split, model)
    log_prior = classify.label_log_prior(train.y, model.num_classes)
    batch = _examples(test, ns.n, model, ns.seed)
    torch.manual_seed(ns.seed)
    predicted = classify.predict(model, batch.x, log_prior, iw_samples=ns.iw_samples or 0)
    generative = classify.accuracy(predicted, batch.y)
    fit = _examples(train, ns.train_n, model, ns.seed + 1)
    high = float((saved.get("value_range") or [0, 1])[1]) or 1.0
    baseline = classify.logistic_regression_accuracy(
        fit.x.double() / high, fit.y, batch.x.double() / high, batch.y, seed=ns.seed
    )
    print(f"{len(batch.x)} {ns.split} examples of {test.name}, {model.num_classes} classes")
    print(f"{'classifier':<52} {'accuracy':>8}")
    print(f"{f'generative: {name}, argmax log p(x|y) + log p(y)':<52} {generative:>8.4f}")
    print(f"{f'logistic regression ({len(fit.x)} train examples)':<52} {baseline:>8.4f}")
    missing = sum(int(torch.isnan(t).sum()) for t in (fit.x, batch.x) if t.is_floating_point())
    if missing:
        print(
            f"  {missing} missing values (NaN): the generative classifier marginalises them; "
            "logistic regression sees each filled with its feature's training mean"
        )
    record = {
        "run_dir": str(ns.run_dir),
        "split": ns.split,
        "n": len(batch.x),
        "generative_accuracy": generative,
        "logistic_regression_accuracy": baseline,
        "train_n": len(fit.x),
        "likelihood": model.likelihood.value,
        "iw_samples": ns.iw_samples,
    }
    _write_json(ns.json, record)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "anomaly": cmd_anomaly,
    "impute": cmd_impute,
    "classify": cmd_classify,
}

__all__ = ["COMMANDS", "add_parsers"]
