"""Normalizing flows: which direction of MAF and IAF is fast, measured.

   gradients: MAF's density (one MADE pass per step) against its sampling (D passes), IAF's
sampling against its density, 5 MADE steps of (64, 64) hidden units, a batch of 16.
4. **Dequantized Fashion-MNIST** (``--scale byte``, integers 0..255): realnvp (conv,
MAF's density is one MADE pass per step and its sampling D; IAF the other way round.
The directions part of ``results[/quick]/flows.json`` (``benchmarks.flows``).

    python -m benchmarks.flows_directions [--quick]
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

import dgm
from benchmarks import common, flows
from benchmarks.common import fmt, log, markdown_table, summary, threads_label
from benchmarks.flows import SEED, run_part

NAME = flows.NAME  # the results file this part writes into: results/flows.json

SPEED_DIMS = 784
SPEED_BATCH = 16


def measure(repeats: int) -> dict[str, Any]:
    """MAF density vs sampling and IAF sampling vs density at D = 784, in ms."""
    cfg = {"num_transforms": 5, "hidden_sizes": (64, 64)}
    torch.manual_seed(SEED)
    maf = dgm.create("maf", (SPEED_DIMS,), **cfg).eval()
    iaf = dgm.create("iaf", (SPEED_DIMS,), **cfg).eval()
    x = torch.randn(SPEED_BATCH, SPEED_DIMS)
    g = torch.Generator().manual_seed(SEED)
    calls = {
        "maf_density": lambda: maf.log_prob(x),
        "maf_sampling": lambda: maf.sample(SPEED_BATCH, generator=g),
        "iaf_sampling": lambda: iaf.sample(SPEED_BATCH, generator=g),
        "iaf_density": lambda: iaf.log_prob(x),
    }
    fast = {"maf_density", "iaf_sampling"}
    ms: dict[str, list[float]] = {k: [] for k in calls}
    with torch.no_grad():
        for fn in calls.values():  # warm-up
            fn()
        for _ in range(repeats):
            for k, fn in calls.items():
                # the D-pass directions once per repeat, the one-pass ones 20 times
                n = 20 if k in fast else 1
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                ms[k].append(1000 * (time.perf_counter() - t0) / n)
    med = {k: statistics.median(v) for k, v in ms.items()}
    log(
        "  D = 784: "
        + ", ".join(f"{k} {v:.2f} ms" for k, v in med.items())
        + f"  (MAF sampling / density x{med['maf_sampling'] / med['maf_density']:.0f}, "
        f"IAF density / sampling x{med['iaf_density'] / med['iaf_sampling']:.0f})"
    )
    return {
        "description": "ms per call, batch of 16, D = 784, no gradients, one thread",
        "dims": SPEED_DIMS,
        "batch_size": SPEED_BATCH,
        "model_config": {"num_transforms": 5, "hidden_sizes": [64, 64]},
        "repeats": repeats,
        "ms": med,
        "ms_summary": {k: summary(v) for k, v in ms.items()},
        "ratio_maf_sampling_over_density": med["maf_sampling"] / med["maf_density"],
        "ratio_iaf_density_over_sampling": med["iaf_density"] / med["iaf_sampling"],
        "threads": 1,
    }


def run(quick: bool = False) -> dict[str, Any]:
    return run_part("directions", lambda: measure(1 if quick else 5), quick=quick)


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for docs/benchmarks.md: which direction of MAF and IAF is fast,
    measured (none without the directions part)."""
    d = record.get("directions")
    if not d:
        return []
    ms = d["ms"]
    rows = [
        ["MAF", fmt(ms["maf_density"], 2), fmt(ms["maf_sampling"], 1), "density"],
        ["IAF", fmt(ms["iaf_density"], 1), fmt(ms["iaf_sampling"], 2), "sampling"],
    ]
    return [
        f"**Which direction is fast** (D = {d['dims']}, batch {d['batch_size']}, 5 MADE steps "
        f"of (64, 64), no gradients, {threads_label(d['threads'])}; median ms per call over "
        f"{d['repeats']} repeat(s)): MAF's density is one MADE pass per step and its sampling D; "
        "IAF the other way round. MAF sampling ÷ density: "
        f"{fmt(d['ratio_maf_sampling_over_density'], 0)}×; IAF density ÷ sampling: "
        f"{fmt(d['ratio_iaf_density_over_sampling'], 0)}×.",
        "",
        *markdown_table(["flow", "density ms", "sampling ms", "fast direction"], rows),
    ]


def main(argv: list[str] | None = None) -> int:
    return common.main(run, __doc__, "one repeat instead of five; results/quick/", argv)


if __name__ == "__main__":
    raise SystemExit(main())
