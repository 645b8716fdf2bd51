"""Classification accuracy score across class-conditional families on Fashion-MNIST:
CAS, the real-data accuracy, real + synthetic, and the FD of the samples.

Every class-conditional family dgm has, each trained briefly by dgm's trainer with
``num_classes=10`` (batch 64, AdamW lr 1e-3, seed 0, one torch thread):

- ``vae`` (10-d latent, 300-300 MLPs, Bernoulli decoder) and ``made`` (one 500-unit
  layer, Bernoulli head) on statically binarized Fashion-MNIST;
- ``maf`` (5 transforms, 128-128 MADEs, uniform dequantization) on the 8-bit pixels;
- ``gan`` (MLP, non-saturating, conditional generator and projection discriminator) on
  grey levels in [0, 1];
- ``ddpm`` (16-channel U-Net, label dropout 0.1, 600 steps: the row costs about 8 CPU
  minutes, 4 of them training) on the 8-bit pixels, which it maps to [−1, 1], clipping
  its x̂_0 there at every sampling step and rounding samples to the 256 levels; drawn by
  DDIM in 20 steps with classifier-free guidance scale 2. Not on grey levels as real x:
  there nothing clips x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t, whose error is ε̂'s times
  1/√ᾱ_t (156 at t = T), and a first 200-step run drew values of ±100 (90 % outside
  [0, 1], FD 88,759, above the 1,853 of unclipped N(0, 1) noise).

CAS (``dgm.tasks.cas``): a synthetic training set of ``n`` samples with the class balance
of a seeded subset of ``n`` real training images; the classifier is dgm's fixed choice,
scikit-learn's logistic regression on pixels in [0, 1]; its accuracy on the real test
split of the same view (binary for the binary models) beside the same classifier trained
on those ``n`` real images, and on both. FD: ``dgm.evaluate.sample_quality`` in dgm's
Fashion-MNIST classifier features (cached), ``n`` samples against as many test images.

    python -m benchmarks.cas [--quick] [--part vae|made|maf|gan|ddpm]

``--quick``: 30 training steps, n = 300, 1000 test images; results/quick/.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch

from benchmarks.common import (
    busy_warning,
    existing_payload,
    fashion_mnist_root,
    log,
    one_thread,
    runs_dir,
    train_briefly,
    write_result,
)
from benchmarks.common import (
    main as bench_main,
)
from dgm.data import DataConfig
from dgm.evaluate import features as feat
from dgm.evaluate.sample_quality import sample_quality
from dgm.tasks.cas import CLASSIFIER, CasOptions, classification_accuracy_score

NAME = "cas"
SEED = 0
BATCH = 64
LR = 1e-3
N = 1000  # full mode: synthetic examples, real examples, and samples for FD
BINARY = {"binarize": "static"}
# name -> (model config, data options, sampling options, full-mode steps)
MODELS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any], int]] = {
    "vae": ({"latent_dim": 10, "hidden_sizes": (300, 300)}, BINARY, {}, 1500),
    "made": ({"hidden_sizes": (500,)}, BINARY, {}, 1500),
    "maf": ({"dequantize": "uniform", "hidden_sizes": (128, 128)}, {"scale": "byte"}, {}, 400),
    "gan": ({"architecture": "mlp"}, {}, {}, 1500),
    "ddpm": (
        {"unet_channels": 16, "condition_dropout": 0.1},
        {"scale": "byte"},  # levels 0..255 -> [-1, 1], x̂_0 clipped there while sampling
        {"sampler": "ddim", "steps": 20, "guidance_scale": 2.0},
        600,
    ),
}


def _one(name: str, steps: int, n: int, test_n: int | None, quick: bool) -> dict[str, Any]:
    config, data_options, sampling, _ = MODELS[name]
    data = DataConfig(name="fashion_mnist", root=fashion_mnist_root(), **data_options)
    model, _, train_wall = train_briefly(
        name,
        data,
        runs_dir(NAME, quick) / name,
        steps,
        batch_size=BATCH,
        lr=LR,
        seed=SEED,
        num_classes=10,
        **config,
    )
    train, test = data.load("train"), data.load("test")
    if test_n is not None:
        test = test.subset(torch.arange(test_n))
    model.sample_settings(sampling)
    t0 = time.process_time()
    cas = classification_accuracy_score(
        model, train, test, CasOptions(n=n, seed=SEED), sample_options=sampling
    )
    t1 = time.process_time()
    quality = sample_quality(model, test, num_samples=n, seed=SEED, options=sampling)
    t2 = time.process_time()
    log(
        f"  {name}: {steps} steps in {train_wall:.0f} s; CAS {cas['cas']:.3f}, real "
        f"{cas['real_accuracy']:.3f}, both {cas['augmented_accuracy']:.3f}; FD "
        f"{quality['fd']:.2f}  [CAS {t1 - t0:.0f} CPU s, FD {t2 - t1:.0f} CPU s]"
    )
    return {
        "model": name,
        "data": dataclasses.asdict(data),
        "model_config": {**config, "num_classes": 10},
        "sampling": sampling,
        "steps": steps,
        "train_wall_s": train_wall,
        "cas": cas,
        "cas_cpu_s": t1 - t0,
        "fd": quality["fd"],
        "feature_accuracy": quality.get("accuracy"),
        "precision": quality["precision"],
        "recall": quality["recall"],
        "fd_cpu_s": t2 - t1,
    }


def run(quick: bool = False, part: str | None = None) -> dict[str, Any]:
    """Every model, or with ``part`` one model, whose row replaces its row in the results
    file (or is added to it)."""
    t_start = time.perf_counter()
    warning = busy_warning()
    if warning:
        log(warning)
    n, test_n = (300, 1000) if quick else (N, None)
    wall0 = 0.0
    payload: dict[str, Any] = {
        "description": "classification accuracy score of class-conditional models",
        "classifier": CLASSIFIER,
        "n": n,
        "test_n": test_n or 10000,
        "batch_size": BATCH,
        "lr": LR,
        "threads": [1],
        "cpu_busy_warning": warning,
        "runs": [],
        "complete": False,
    }

    if part is not None:
        payload, wall0 = existing_payload(NAME, quick=quick)

    def save() -> Any:
        wall = wall0 + time.perf_counter() - t_start
        return write_result(NAME, payload, quick=quick, seed=SEED, steps=None, wall_time_s=wall)

    with one_thread():
        feat.feature_classifier("fashion_mnist", fashion_mnist_root())  # cached once
        for name, (*_, full_steps) in MODELS.items():
            if part not in (None, name):
                continue
            row = _one(name, 30 if quick else full_steps, n, test_n, quick)
            payload["runs"] = [r for r in payload["runs"] if r["model"] != name] + [row]
            save()  # partial results survive a crash
    done = {r["model"] for r in payload["runs"]}
    payload["complete"] = done == set(MODELS)
    log(f"{NAME}: {time.perf_counter() - t_start:.0f} s  -> {save()}")
    return payload


def _view(row: dict[str, Any]) -> str:
    """The data view a row was measured on, as the table names it (older rows hold the
    loader options flat in ``data``, newer ones under ``data["options"]``)."""
    options = {**row["data"], **(row["data"].get("options") or {})}
    if options.get("binarize") == "static":
        return "binarized"
    return "8-bit" if options.get("scale") == "byte" else "grey [0, 1]"


def _fd_against_cas(runs: list[dict[str, Any]], margin: float = 0.02) -> list[str]:
    """Sentences for each pair of rows whose FDs compare the same test images (binarized,
    or grey levels, which 8-bit pixels map to) where the lower FD goes with a CAS lower by
    more than ``margin``: what FD alone would rank the wrong way round. Each says whether
    dgm's CNN recognises the asked class as often in the lower-CAS samples (then they lack
    variety) or less often (then some are of the wrong class), with both recalls."""
    out = []
    for a in runs:
        for b in runs:
            same = (_view(a) == "binarized") == (_view(b) == "binarized")
            if not (same and a["fd"] < b["fd"] and a["cas"]["cas"] < b["cas"]["cas"] - margin):
                continue
            text = (
                f"{a['model']} has the lower FD ({a['fd']:.1f} against {b['model']}'s "
                f"{b['fd']:.1f}) but the lower CAS ({a['cas']['cas']:.3f} against "
                f"{b['cas']['cas']:.3f}); recall {a['recall']:.3f} against {b['recall']:.3f}"
            )
            fa, fb = a.get("feature_accuracy"), b.get("feature_accuracy")
            if fa is not None and fb is not None:
                shown = f"{fa:.0%} of its samples against {fb:.0%}"
                text += (
                    f", and dgm's CNN recognises the asked class in {shown}: samples that "
                    "look like their class but lack its variety"
                    if fa >= fb
                    else f", and dgm's CNN recognises the asked class in only {shown}: "
                    "part of the gap is samples of the wrong class"
                )
            out.append(text + ".")
    return out


def table(record: dict[str, Any]) -> list[str]:
    """CAS beside the real-data accuracy and FD, one row per class-conditional family."""
    rows = [
        "| model | data | steps | CAS | real | real + synthetic | CAS / real | FD (dgm "
        "features) | recall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    runs = record.get("runs", [])
    for r in runs:
        c = r["cas"]
        sampler = ", ".join(f"{k} {v}" for k, v in r["sampling"].items())
        name = f"{r['model']} ({sampler})" if sampler else r["model"]
        rows.append(
            f"| {name} | {_view(r)} | {r['steps']} | {c['cas']:.3f} | {c['real_accuracy']:.3f} | "
            f"{c['augmented_accuracy']:.3f} | {c['cas'] / c['real_accuracy']:.2f} | "
            f"{r['fd']:.2f} | {r['recall']:.3f} |"
        )
    note = (
        f"{record.get('n')} synthetic and {record.get('n')} real training images (same class "
        f"balance), scored on {record.get('test_n')} real test images of the same view; "
        f"classifier: {record.get('classifier')}; chance is 0.10. FD: as many samples "
        "against as many test images, comparable between rows of the binarized view and "
        "between rows of grey levels (8-bit pixels are scaled to them), not across the two."
    )
    pairs = _fd_against_cas(runs)
    if pairs:
        note += (
            " FD and CAS disagree: "
            + " ".join(pairs)
            + " FD compares the feature statistics of all samples pooled; CAS needs the "
            "variety of each class, so a low FD with a low CAS is the sign of samples that "
            "lack diversity (Ravuri & Vinyals 2019)."
        )
    outside = [r for r in runs if r["cas"].get("out_of_range", 0) > 0]
    for r in outside:
        note += (
            f" {100 * r['cas']['out_of_range']:.0f} % of {r['model']}'s sample values lie "
            "outside the data's range (unclamped): its FD and CAS score pixels no image has."
        )
    missing = [m for m in MODELS if m not in {r["model"] for r in runs}]
    if missing:
        note += f" Not measured yet: {', '.join(missing)} (`python -m benchmarks.cas --part NAME`)."
    return [*rows, "", note]


def main(argv: list[str] | None = None) -> int:
    parts = {m: f"only {m}, its row replacing the one in the results file" for m in MODELS}
    return bench_main(run, __doc__, "30 steps, n = 300; results/quick/", argv, parts)


if __name__ == "__main__":
    raise SystemExit(main())
