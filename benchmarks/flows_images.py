"""Normalizing flows on dequantized Fashion-MNIST: test bits/dim.

   multi-scale), glow and maf (5 MADE steps of 512 hidden units) with ``dequantize=
"uniform"``: y = (x + u)/256, u ~ U[0, 1)^D, then the logit transform, both inside the
model, whose ``log_prob`` is the discrete-data bound on the 0..255 scale; test bits/dim
= −mean log_prob / (784 ln 2) from ``dgm.evaluate.evaluate`` (checked against that
formula). dgm's trainer, batch 64, AdamW lr 1e-3, a step budget per model of a few
minutes on a 2-core CPU (far from the published runs' hundreds of epochs); evaluated on
the whole test split. Beside them, the published MNIST figures (RealNVP 1.06,
Glow 1.05, MAF 1.89 bits/dim): different data, for scale only. Runs are written to
``runs/bench[/quick]/flows/fashion_mnist/<model>``.

The images part of ``results[/quick]/flows.json`` (``benchmarks.flows``); one torch
thread.

    python -m benchmarks.flows_images [--quick]
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import torch

from benchmarks import common
from benchmarks.common import (
    fashion_mnist_root,
    first_examples,
    fmt,
    fresh_run_dir,
    log,
    log_probs,
    markdown_table,
    runs_dir,
    train_config,
)
from benchmarks.flows import LR, NAME, SEED, run_part
from dgm.data import DataConfig

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
    config = train_config(
        steps, batch_size=IMAGE_BATCH, lr=LR, seed=SEED, grad_clip=IMAGE_GRAD_CLIP
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
    per_example = -log_probs(model.log_prob, test.x, 256) / (D * math.log(2))  # (N,)
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


def measure(steps: dict[str, int], eval_n: int | None, quick: bool) -> dict[str, Any]:
    """realnvp, glow and maf on uniformly dequantized Fashion-MNIST, test bits/dim."""
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


def run(quick: bool = False) -> dict[str, Any]:
    steps = dict.fromkeys(IMAGE_MODELS, 5) if quick else IMAGE_STEPS
    eval_n = 100 if quick else IMAGE_EVAL_N
    return run_part("images", lambda: measure(steps, eval_n, quick), quick=quick)


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for docs/benchmarks.md: dequantized Fashion-MNIST bits/dim beside
    the published MNIST figures (none without the images part)."""
    images = record.get("images")
    if not images:
        return []
    if images.get("skipped"):
        return [f"**Dequantized Fashion-MNIST**: not run ({images['skipped']})."]
    refs = {r["model"]: r["bits_per_dim"] for r in images.get("references", [])}
    rows = []
    for r in images.get("runs", []):
        n = r["test_n"]
        name = r["model"] + (f" (first {n} test images)" if n < r.get("test_size", n) else "")
        rows.append(
            [
                name,
                r["dataset"],
                f"{r['parameters']:,}",
                str(r["steps"]),
                fmt(r["ms_per_step"], 0),
                fmt(r["train_wall_s"] + r["eval_wall_s"], 0),
                fmt(r["bits_per_dim"], 3),
                fmt(r.get("bits_per_dim_median"), 3),
                fmt(r.get("bits_per_dim_max"), 1),
                fmt(refs.get(r["model"])),
            ]
        )
    return [
        "**Dequantized Fashion-MNIST** (uniform dequantization y = (x + u)/256 and the logit "
        "transform inside the model; bits/dim is the discrete-data bound on the 0..255 "
        f"scale, −log_prob / (784 ln 2); dgm's trainer, batch {images['batch_size']}, AdamW "
        f"lr {images['lr']}, one thread; wall s: training and test evaluation). A budget of "
        "minutes on a CPU, far from convergence; median and worst image: of the per-image "
        "bits/dim, a mean that one outlier can dominate; the last column is for orientation "
        "only, other data and budget: published MNIST figures of runs of hundreds of "
        "epochs." + (f" {images['timing_note']}" if images.get("timing_note") else ""),
        "",
        *markdown_table(
            [
                "flow",
                "dataset",
                "parameters",
                "steps",
                "ms/step",
                "wall s",
                "test bits/dim",
                "median",
                "worst image",
                "for orientation: published MNIST (other data/budget)",
            ],
            rows,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    return common.main(run, __doc__, "5 steps, 100 test images; results/quick/", argv)


if __name__ == "__main__":
    raise SystemExit(main())
