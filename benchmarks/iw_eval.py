"""Importance-weighted evaluation speed: batched ``log_prob_iw`` against one example at a time.

The estimate is -log p(x) by IWAE with k = 1000 samples (Burda et al. 2015,
arXiv:1509.00519) for the CS236 VAE (z=10, MLP 300-300, Bernoulli decoder) on the
statically binarized Fashion-MNIST test set. Three ways to compute the same estimate:

- batched: ``dgm.evaluate.likelihood.evaluate(model, test, iw_samples=1000, batch_size=B)``,
  B the fastest of a few sizes tried first on a small subset;
- per example: ``per_example_iw`` (all k samples of one example in one call), timed on a
  subset and extrapolated per example;
- naive: one example and one importance sample per call (``log_prob_iw(x_i, 1)`` k times,
  then a logsumexp), timed on a handful of examples.

The model is untrained (seeded initialization): the cost of the estimate does not depend
on the weights. All three run under ``torch.no_grad()`` with the default torch threads.

    python -m benchmarks.iw_eval [--quick]
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import torch
from torch import Tensor

import dgm
from benchmarks import common
from benchmarks.common import CS236_MODEL, fashion_mnist_root, log, write_result
from dgm.data import DataConfig, TensorData
from dgm.evaluate.likelihood import evaluate, per_example_iw

NAME = "iw_eval"
SEED = 0
K = 1000


def naive_iw(model: dgm.GenerativeModel, x: Tensor, k: int) -> Tensor:
    """log p(x) by IWAE with one example and one importance sample per call, shape (B,)."""
    rows = []
    for i in range(len(x)):
        log_w = torch.cat([model.log_prob_iw(x[i : i + 1], 1) for _ in range(k)])  # (k,)
        rows.append(torch.logsumexp(log_w, 0) - math.log(k))
    return torch.stack(rows)


def _subset(data: TensorData, n: int) -> TensorData:
    n = min(n, len(data))
    return TensorData(data.x[:n], data.y[:n], name=data.name, num_classes=data.num_classes)


def _seconds(fn: Any) -> tuple[float, Any]:
    torch.manual_seed(SEED)
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _rate(label: str, n: int, fn: Any) -> tuple[float, float, Any]:
    """(seconds, examples/s, result) of ``fn`` over ``n`` examples, logged."""
    seconds, out = _seconds(fn)
    log(f"  {label}: {n} examples in {seconds:.1f} s, {n / seconds:.3f} examples/s")
    return seconds, n / seconds, out


def run(quick: bool = False) -> dict[str, Any]:
    n_batched, n_per_example, n_naive = (200, 50, 3) if quick else (10_000, 100, 5)
    candidates = (4, 16, 64) if quick else (4, 16, 64, 256)
    n_sweep = 64 if quick else 256
    data = DataConfig(name="fashion_mnist", root=fashion_mnist_root(), binarize="static")
    test = data.load("test")
    torch.manual_seed(SEED)
    model = dgm.create("vae", test.event_shape, **CS236_MODEL).eval()
    t_start = time.perf_counter()

    with torch.no_grad():
        # warm up every path once
        evaluate(model, _subset(test, 8), iw_samples=K, batch_size=8)
        per_example_iw(model, test.x[:1], K)
        naive_iw(model, test.x[:1], 10)

        sweep = {}
        sweep_data = _subset(test, n_sweep)
        for bs in candidates:
            seconds, _ = _seconds(
                lambda bs=bs: evaluate(model, sweep_data, iw_samples=K, batch_size=bs)
            )
            sweep[bs] = len(sweep_data) / seconds
            log(f"  batch size {bs:>4}: {sweep[bs]:8.1f} examples/s")
        batch_size = max(sweep, key=sweep.__getitem__)

        batched_data = _subset(test, n_batched)
        batched_s, batched_rate, batched = _rate(
            f"batched (B={batch_size})",
            len(batched_data),
            lambda: evaluate(model, batched_data, iw_samples=K, batch_size=batch_size),
        )
        x_pe = test.x[:n_per_example]
        per_example_s, per_example_rate, per_example_lp = _rate(
            "per example", len(x_pe), lambda: per_example_iw(model, x_pe, K)
        )
        x_naive = test.x[:n_naive]
        naive_s, naive_rate, naive_lp = _rate(
            "naive (one sample per call)", len(x_naive), lambda: naive_iw(model, x_naive, K)
        )

        # the same estimate on the same examples, batched: the three must agree in value
        torch.manual_seed(SEED)
        batched_pe = evaluate(
            model, _subset(test, n_per_example), iw_samples=K, batch_size=batch_size
        )
        torch.manual_seed(SEED)
        batched_naive = evaluate(model, _subset(test, n_naive), iw_samples=K, batch_size=batch_size)
    wall = time.perf_counter() - t_start

    payload = {
        "description": "IWAE (k=1000) evaluation speed: batched vs one example at a time",
        "model": "vae",
        "model_config": {**CS236_MODEL, "hidden_sizes": list(CS236_MODEL["hidden_sizes"])},
        "weights": "untrained (seeded init): the cost of the estimate does not depend on them",
        "data": dataclasses.asdict(data),
        "split": "test",
        "k": K,
        "no_grad": True,
        "batch_size_sweep": {
            "examples": len(sweep_data),
            "examples_per_s": {str(b): r for b, r in sweep.items()},
        },
        "batched": {
            "batch_size": batch_size,
            "examples": len(batched_data),
            "seconds": batched_s,
            "examples_per_s": batched_rate,
            "nll": batched["nll"],
        },
        "per_example": {
            "examples": len(x_pe),
            "seconds": per_example_s,
            "examples_per_s": per_example_rate,
            "extrapolated_test_set_s": len(test) / per_example_rate,
            "nll": float(-per_example_lp.double().mean()),
            "batched_nll_same_examples": batched_pe["nll"],
        },
        "naive": {
            "examples": len(x_naive),
            "seconds": naive_s,
            "examples_per_s": naive_rate,
            "extrapolated_test_set_s": len(test) / naive_rate,
            "nll": float(-naive_lp.double().mean()),
            "batched_nll_same_examples": batched_naive["nll"],
        },
        "speedup_batched_over_per_example": batched_rate / per_example_rate,
        "speedup_batched_over_naive": batched_rate / naive_rate,
        "speedup_per_example_over_naive": per_example_rate / naive_rate,
    }
    path = write_result(NAME, payload, quick=quick, seed=SEED, steps=None, wall_time_s=wall)
    log(
        f"iw eval: batched {batched_rate:.1f}/s, per example {per_example_rate:.2f}/s "
        f"(x{batched_rate / per_example_rate:.1f}), naive {naive_rate:.3f}/s "
        f"(x{batched_rate / naive_rate:.0f})  -> {path}"
    )
    return payload


def main(argv: list[str] | None = None) -> int:
    return common.main(run, __doc__, "small test subsets; results/quick/", argv)


if __name__ == "__main__":
    raise SystemExit(main())
