"""Importance-weighted evaluation speed: batched ``log_prob_iw`` against its matrix products
alone and against one example at a time.

The estimate is -log p(x) by IWAE with k = 1000 samples (Burda et al. 2015,
arXiv:1509.00519) for the CS236 VAE (z=10, MLP 300-300, Bernoulli decoder) on the
statically binarized Fashion-MNIST test set, about 10^7 decoder passes. The floor is the
estimator's matrix products alone: the encoder's and the decoder's ``addmm`` calls at the
shapes ``log_prob_iw`` uses (the same batch and chunk of draws), on random inputs, timed
in the same run in alternating rounds with the batched estimate (each round a slice of
the test set, the two back to back). Three ways to compute the same estimate:

- batched: ``dgm.evaluate.likelihood.evaluate(model, test, iw_samples=1000, batch_size=B)``,
  B the fastest of a few sizes tried first on a small subset;
- per example: ``per_example_iw`` (all k samples of one example in one call), timed on a
  subset and extrapolated per example;
- naive: one example and one importance sample per call (``log_prob_iw(x_i, 1)`` k times,
  then a logsumexp), timed on a handful of examples.

The model is untrained (seeded initialization): the cost of the estimate does not depend
on the weights. Everything runs under ``torch.no_grad()`` on one torch thread.

    python -m benchmarks.iw_eval [--quick]
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

import dgm
from benchmarks import common
from benchmarks.common import (
    CS236_MODEL,
    busy_warning,
    fashion_mnist_root,
    fmt,
    log,
    markdown_table,
    one_thread,
    threads_label,
    write_result,
)
from dgm.data import DataConfig, TensorData
from dgm.evaluate.likelihood import evaluate
from dgm.models.latent import vae as vae_module

NAME = "iw_eval"
SEED = 0
K = 1000


@torch.no_grad()
def per_example_iw(
    model: dgm.GenerativeModel, x: Tensor, k: int, c: Tensor | None = None
) -> Tensor:
    """``log_prob_iw`` one example at a time (its k samples in one call), shape (B,)."""
    rows = [
        model.log_prob_iw(x[i : i + 1], k, None if c is None else c[i : i + 1])  # type: ignore[attr-defined]
        for i in range(len(x))
    ]
    return torch.cat(rows)


def naive_iw(model: dgm.GenerativeModel, x: Tensor, k: int) -> Tensor:
    """log p(x) by IWAE with one example and one importance sample per call, shape (B,)."""
    rows = []
    for i in range(len(x)):
        log_w = torch.cat([model.log_prob_iw(x[i : i + 1], 1) for _ in range(k)])  # (k,)
        rows.append(torch.logsumexp(log_w, 0) - math.log(k))
    return torch.stack(rows)


def matmul_floor(model: dgm.GenerativeModel, n: int, batch_size: int, k: int) -> Callable[[], None]:
    """The matrix products of ``log_prob_iw`` over n examples in batches of ``batch_size``,
    alone: per batch, the encoder's ``addmm`` calls on (B, D) and the decoder's on each
    chunk of (k_chunk * B, latent) draws, chunked as ``_iw_terms`` chunks them."""
    enc = [m for m in model.encoder.modules() if isinstance(m, nn.Linear)]  # type: ignore[union-attr]
    dec = [m for m in model.decoder.modules() if isinstance(m, nn.Linear)]  # type: ignore[union-attr]
    sizes = [min(batch_size, n - s) for s in range(0, n, batch_size)]
    cost = model._draw_cost()  # type: ignore[attr-defined]
    inputs: dict[int, tuple[Tensor, Tensor, list[int]]] = {}
    for b in set(sizes):
        chunk = max(1, vae_module.IW_MAX_ELEMENTS // (b * cost))
        chunks = [min(chunk, k - s) for s in range(0, k, chunk)]
        x = torch.randn(b, enc[0].in_features)  # (B, D)
        z = torch.randn(chunk * b, dec[0].in_features)  # (k_chunk * B, latent)
        inputs[b] = (x, z, chunks)

    def run() -> None:
        with torch.no_grad():
            for b in sizes:
                x, z, chunks = inputs[b]
                h = x
                for layer in enc:
                    h = torch.addmm(layer.bias, h, layer.weight.T)
                for kc in chunks:
                    h = z[: kc * b]
                    for layer in dec:
                        h = torch.addmm(layer.bias, h, layer.weight.T)

    return run


def _subset(data: TensorData, n: int, start: int = 0) -> TensorData:
    end = min(start + n, len(data))
    return TensorData(
        data.x[start:end], data.y[start:end], name=data.name, num_classes=data.num_classes
    )


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
    with one_thread():
        return _run(quick)


def _run(quick: bool) -> dict[str, Any]:
    n_batched, n_per_example, n_naive = (200, 50, 3) if quick else (10_000, 100, 5)
    candidates = (4, 16, 64) if quick else (4, 16, 64, 256)
    n_sweep = 64 if quick else 256
    rounds = 4 if quick else 10  # the batched estimate and its floor alternate over these
    warning = busy_warning()
    if warning:
        log(warning)
    data = DataConfig(name="fashion_mnist", root=fashion_mnist_root(), binarize="static")
    test = data.load("test")
    torch.manual_seed(SEED)
    model = dgm.create("vae", test.event_shape, **CS236_MODEL).eval()
    t_start = time.perf_counter()

    with torch.no_grad():
        # warm up every path once
        evaluate(model, _subset(test, 8), iw_samples=K, batch_size=8)
        matmul_floor(model, 8, 8, K)()
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

        # the batched estimate over the first n_batched test examples, a slice per round,
        # each slice followed (odd rounds: preceded) by the floor at the same shapes
        size = math.ceil(n_batched / rounds)
        est_s: list[float] = []
        floor_s: list[float] = []
        nll_sum, n_done = 0.0, 0
        for r in range(rounds):
            part = _subset(test, size, r * size)
            if len(part) == 0 or r * size >= n_batched:
                break
            floor = matmul_floor(model, len(part), batch_size, K)
            torch.manual_seed(SEED + r)
            est = lambda part=part: evaluate(model, part, iw_samples=K, batch_size=batch_size)  # noqa: E731
            if r % 2:
                floor_s.append(common.timed(floor))
                seconds, result = _seconds(est)
            else:
                seconds, result = _seconds(est)
                floor_s.append(common.timed(floor))
            est_s.append(seconds)
            nll_sum += result["nll"] * result["n"]
            n_done += result["n"]
            log(
                f"  round {r + 1}/{rounds}: {len(part)} examples, estimate {seconds:.2f} s, "
                f"matrix products {floor_s[-1]:.2f} s (x{seconds / floor_s[-1]:.3f})"
            )
        batched_s = sum(est_s)
        batched_rate = n_done / batched_s
        batched = {"nll": nll_sum / n_done}
        log(f"  batched (B={batch_size}): {n_done} examples in {batched_s:.1f} s")
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
        "description": "IWAE (k=1000) evaluation speed: batched vs its matrix products alone "
        "vs one example at a time",
        "model": "vae",
        "model_config": {**CS236_MODEL, "hidden_sizes": list(CS236_MODEL["hidden_sizes"])},
        "weights": "untrained (seeded init): the cost of the estimate does not depend on them",
        "data": dataclasses.asdict(data),
        "split": "test",
        "k": K,
        "no_grad": True,
        "threads": 1,
        "iw_max_elements": vae_module.IW_MAX_ELEMENTS,
        "busy_warning": warning,
        "batch_size_sweep": {
            "examples": len(sweep_data),
            "examples_per_s": {str(b): r for b, r in sweep.items()},
        },
        "batched": {
            "batch_size": batch_size,
            "examples": n_done,
            "seconds": batched_s,
            "examples_per_s": batched_rate,
            "nll": batched["nll"],
            "rounds_s": est_s,
        },
        "matmul_floor": {
            "what": "encoder and decoder addmm calls alone at log_prob_iw's batch and chunk "
            "shapes, random inputs; timed beside each round of the batched estimate",
            "seconds": sum(floor_s),
            "rounds_s": floor_s,
            "examples_per_s": n_done / sum(floor_s),
        },
        "ratio_batched_over_floor": batched_s / sum(floor_s),
        # each round's ratio: robust to drift in the machine's speed across rounds
        "ratio_batched_over_floor_paired_median": statistics.median(
            [a / b for a, b in zip(est_s, floor_s, strict=True)]
        ),
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
        f"iw eval: batched {batched_rate:.1f}/s ({batched_s:.1f} s, "
        f"x{payload['ratio_batched_over_floor']:.3f} the matrix products' {sum(floor_s):.1f} s), "
        f"per example {per_example_rate:.2f}/s "
        f"(x{batched_rate / per_example_rate:.1f}), naive {naive_rate:.3f}/s "
        f"(x{batched_rate / naive_rate:.0f})  -> {path}"
    )
    return payload


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for docs/benchmarks.md: the three methods' speed, then the
    matrix-product floor."""
    b, pe, nv = record["batched"], record["per_example"], record["naive"]
    rows = [
        [
            f"batched (`evaluate`, batch {b['batch_size']})",
            str(b["examples"]),
            fmt(b["examples_per_s"], 1),
            "1",
        ],
        [
            "one example per call (`per_example_iw`)",
            str(pe["examples"]),
            fmt(pe["examples_per_s"], 2),
            fmt(record["speedup_batched_over_per_example"], 1),
        ],
        [
            "one example and one sample per call",
            str(nv["examples"]),
            fmt(nv["examples_per_s"], 3),
            fmt(record["speedup_batched_over_naive"], 0),
        ],
    ]
    threads = f", {threads_label(record['threads'])}" if record.get("threads") else ""
    out = [
        f"**IWAE evaluation speed** (k = {record['k']}, CS236 VAE, Fashion-MNIST test set"
        f"{threads}; the cost does not depend on the weights):",
        "",
        *markdown_table(["method", "examples timed", "examples/s", "batched speed-up"], rows),
    ]
    floor = record.get("matmul_floor")
    if floor:
        out += [
            "",
            f"The batched estimate against its matrix products alone (encoder and decoder "
            f"`addmm` at the same batch and chunk shapes, {len(floor['rounds_s'])} alternating "
            f"rounds, chunks of {record['iw_max_elements']:,} decoder outputs):",
            "",
            *markdown_table(
                ["examples", "estimate s", "matrix products s", "ratio", "per-round ratio"],
                [
                    [
                        str(b["examples"]),
                        fmt(b["seconds"], 1),
                        fmt(floor["seconds"], 1),
                        fmt(record["ratio_batched_over_floor"], 3),
                        fmt(record["ratio_batched_over_floor_paired_median"], 3),
                    ]
                ],
            ),
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    return common.main(run, __doc__, "small test subsets; results/quick/", argv)


if __name__ == "__main__":
    raise SystemExit(main())
