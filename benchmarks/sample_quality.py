"""Sample quality across families on Fashion-MNIST: FD, KID, precision and recall in dgm's
own classifier features, beside each model's likelihood.

Models, each trained briefly by dgm's trainer (batch 64, AdamW lr 1e-3, seed 0, one torch
thread), then evaluated on the test split:

- ``vae`` and ``gmvae`` (CS236 setup: 10-d latent, 300-300 MLPs, Bernoulli decoder; the
  GMVAE prior a mixture of 500 Gaussians) and ``made`` (one 500-unit hidden layer,
  Bernoulli head) on statically binarized Fashion-MNIST: NLL in nats (negative ELBO for
  the latent models, exact for MADE);
- ``realnvp`` (conv, multi-scale) on the 8-bit pixels, uniformly dequantized: bits/dim
  on the 0..255 scale.

Samples are compared with as many test images of the same view (binary for the binary
models, grey for the flow), both on [0, 1], in the 128-d hidden layer of dgm's
Fashion-MNIST classifier (``dgm.evaluate.features``: trained once on the train split,
cached; its test accuracy is reported). The metrics are "FD (dgm Fashion-MNIST
features)" and "KID (dgm Fashion-MNIST features)", not FID: no Inception network, so
they rank models here and are not comparable with published FIDs. Precision and recall:
Kynkäänniemi et al. 2019, k = 3. FD and KID are biased by the sample count: compare rows
with equal ``num_samples`` only.

    python -m benchmarks.sample_quality [--quick] [--threads 1]

``--quick``: a few training steps, 300 samples, a 300-step feature network;
results/quick/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

import torch

from benchmarks.common import (
    CS236_GMVAE_COMPONENTS,
    CS236_MODEL,
    RESULTS,
    busy_warning,
    fashion_mnist_root,
    log,
    runs_dir,
    train_briefly,
    write_result,
)
from dgm.data import DataConfig
from dgm.evaluate import features as feat
from dgm.evaluate.likelihood import evaluate
from dgm.evaluate.sample_quality import sample_quality

NAME = "sample_quality"
SEED = 0
BATCH = 64
LR = 1e-3
NUM_SAMPLES = 5000  # full mode; the dgm eval default, so CLI figures compare with these
BINARY = {"binarize": "static"}
BYTE = {"scale": "byte"}
MODELS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {  # name -> (model, data options)
    "vae": (dict(CS236_MODEL), BINARY),
    "gmvae": ({**CS236_MODEL, "num_components": CS236_GMVAE_COMPONENTS}, BINARY),
    "made": ({"hidden_sizes": (500,)}, BINARY),
    "realnvp": ({"architecture": "conv", "dequantize": "uniform"}, BYTE),
}
STEPS = {"vae": 3000, "gmvae": 3000, "made": 3000, "realnvp": 1500}  # full mode


def _one(
    name: str, steps: int, num_samples: int, clf: feat.FeatureClassifier, quick: bool
) -> dict[str, Any]:

    cfg, options = MODELS[name]
    data = DataConfig(name="fashion_mnist", root=fashion_mnist_root(), **options)
    run_dir = runs_dir(NAME, quick) / name
    model, _, train_wall = train_briefly(
        name, data, run_dir, steps, batch_size=BATCH, lr=LR, seed=SEED, **cfg
    )
    test = data.load("test")
    if quick:
        test = test.subset(torch.arange(1000))
    torch.manual_seed(SEED)
    t1 = time.perf_counter()
    nll = evaluate(model, test, batch_size=500)
    t2 = time.perf_counter()
    quality = sample_quality(model, test, num_samples=num_samples, seed=SEED, classifier=clf)
    quality_wall = time.perf_counter() - t2
    log(
        f"  {name}: {steps} steps in {train_wall:.0f} s; NLL {nll['nll']:.1f} nats "
        f"({nll['bound']}, {nll['bits_per_dim']:.3f} bits/dim); FD {quality['fd']:.2f}, "
        f"KID {quality['kid']:.4f}, precision {quality['precision']:.3f}, recall "
        f"{quality['recall']:.3f}  [sample quality {quality_wall:.0f} s]"
    )
    return {
        "model": name,
        "data": dataclasses.asdict(data),
        "model_config": cfg,
        "steps": steps,
        "train_wall_s": train_wall,
        "test_n": len(test),
        "nll": nll["nll"],
        "bits_per_dim": nll["bits_per_dim"],
        "bound": nll["bound"],
        "eval_wall_s": t2 - t1,
        "sample_quality": quality,
        "sample_quality_wall_s": quality_wall,
    }


def run(quick: bool = False, threads: int = 1) -> dict[str, Any]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(quick, threads)
    finally:
        torch.set_num_threads(before)


def _run(quick: bool, threads: int) -> dict[str, Any]:
    t_start = time.perf_counter()
    warning = busy_warning()
    if warning:
        log(warning)
    steps = dict.fromkeys(MODELS, 20) if quick else STEPS
    num_samples = 300 if quick else NUM_SAMPLES
    settings = feat.ClassifierSettings(steps=300) if quick else feat.DEFAULT_SETTINGS
    t0 = time.perf_counter()
    clf = feat.feature_classifier("fashion_mnist", fashion_mnist_root(), settings=settings)
    log(
        f"  feature network: test accuracy {clf.test_accuracy:.4f} "
        f"({time.perf_counter() - t0:.0f} s, {clf.path})"
    )
    payload: dict[str, Any] = {
        "description": "sample quality across families on Fashion-MNIST, dgm features",
        "feature_space": clf.feature_space,
        "classifier": {
            "test_accuracy": clf.test_accuracy,
            "architecture": feat.ARCHITECTURE,
            "settings": dataclasses.asdict(settings),
        },
        "num_samples": num_samples,
        "batch_size": BATCH,
        "lr": LR,
        "threads": threads,
        "cpu_busy_warning": warning,
        "runs": [],
        "complete": False,
    }

    def save() -> Any:
        wall = time.perf_counter() - t_start
        return write_result(NAME, payload, quick=quick, seed=SEED, steps=None, wall_time_s=wall)

    for name in MODELS:
        payload["runs"].append(_one(name, steps[name], num_samples, clf, quick))
        save()  # partial results survive a crash
    payload["complete"] = True
    log(f"{NAME}: {time.perf_counter() - t_start:.0f} s  -> {save()}")
    return payload


def table(record: dict[str, Any]) -> list[str]:
    """The README table: one row per model, likelihood beside sample quality."""
    space = record.get("feature_space", "dgm Fashion-MNIST features")
    acc = record.get("classifier", {}).get("test_accuracy")
    rows = [
        f"| model | data | steps | NLL (nats) | bits/dim | bound | FD ({space}) | "
        f"KID ({space}) | precision | recall |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in record.get("runs", []):
        q = r["sample_quality"]
        binarize = DataConfig.from_json(r["data"]).options.get("binarize")  # old or new form
        view = "binarized" if binarize == "static" else "8-bit, dequantized"
        rows.append(
            f"| {r['model']} | {view} | {r['steps']} | {r['nll']:.1f} | "
            f"{r['bits_per_dim']:.3f} | {r['bound']} | {q['fd']:.2f} | "
            f"{q['kid']:.4f} ± {q['kid_std']:.4f} | {q['precision']:.3f} | {q['recall']:.3f} |"
        )
    gans = _gan_rows(space)
    rows += gans
    note = (
        f"{record.get('num_samples')} samples against as many test images of the same view, "
        f"k = 3 for precision/recall; the feature network's test accuracy is "
        f"{acc:.4f}. Not FID: these features rank models here only."
        if acc is not None
        else ""
    )
    if gans:
        note += (
            " The GAN rows come from the GAN benchmark (benchmarks/results/gan.json): grey "
            "levels in [0, 1], 2000 samples against 2000 test images (FD and KID grow as the "
            "sample count falls, so these are if anything pessimistic), no likelihood."
        )
    return [*rows, "", note] if note else rows


def _gan_rows(space: str) -> list[str]:
    """Rows of a few GAN objectives from the GAN benchmark's full results, if there are
    any measured in the same feature space."""
    path = RESULTS / "gan.json"
    if not path.is_file():
        return []
    images = json.loads(path.read_text()).get("images", {})
    if images.get("feature_space") not in (None, space):
        return []
    steps = images.get("train_config", {}).get("steps", "?")
    out = []
    for r in images.get("runs", []):
        if r["objective"] in ("nonsaturating", "wgan_gp", "hinge"):
            name = f"gan ({r['objective']}{', conditional' if r.get('conditional') else ''})"
            out.append(
                f"| {name} | grey [0, 1] | {steps} | – | – | none | {r['fd']:.2f} | "
                f"{r['kid']:.4f} ± {r['kid_std']:.4f} | {r['precision']:.3f} | "
                f"{r['recall']:.3f} |"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="short budgets; results/quick/")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    args = p.parse_args(argv)
    run(quick=args.quick, threads=args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
