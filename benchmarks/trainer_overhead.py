"""Trainer overhead: ms/step of ``Trainer.fit()`` against a bare PyTorch loop.

Both train the CS236 VAE (z=10, MLP 300-300, Bernoulli decoder, batch 97) on statically
binarized Fashion-MNIST with fused AdamW at a constant lr (1e-3; the trainer's schedule is set
to warm-up 0 and no decay, so both update with the same lr). The trainer runs as a user
has it: progress bar on (tqdm writing to os.devnull), logging every 100 steps, a fresh
batch from its BatchStream each step; evaluation, samples and periodic checkpoints are
off (no run directory, no validation data). The bare loop is

    model.loss(x).value.backward(); opt.step(); opt.zero_grad()

on one fixed batch. After a warm-up of each, rounds of (trainer, bare) alternate, so
drift in the machine's speed hits both; we report the median ms/step of each, in wall
time and in this process's CPU time (steadier on a shared, busy machine: the time other
processes hold the cores is not counted).

    python -m benchmarks.trainer_overhead [--quick]
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import time
from typing import Any

import torch

import dgm
from benchmarks import common
from benchmarks.common import (
    CS236_BATCH,
    CS236_LR,
    CS236_MODEL,
    fashion_mnist_root,
    fmt,
    log,
    markdown_table,
    paired_ratio,
    summary,
    train_config,
    write_result,
)
from dgm.data import DataConfig
from dgm.train import Trainer

NAME = "trainer_overhead"
SEED = 0


def _bare_round(
    model: dgm.GenerativeModel, opt: torch.optim.Optimizer, x: torch.Tensor, steps: int
) -> tuple[float, float]:
    """(wall, CPU) seconds for ``steps`` bare AdamW steps on batch ``x``."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        model.loss(x).value.backward()
        opt.step()
        opt.zero_grad()
    return time.perf_counter() - t0, time.process_time() - c0


def _trainer_round(trainer: Trainer, steps: int) -> tuple[float, float]:
    """(wall, CPU) seconds for ``steps`` more steps through ``trainer.fit()``, tqdm to
    os.devnull."""
    trainer.config = dataclasses.replace(trainer.config, steps=trainer.step + steps)
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        t0, c0 = time.perf_counter(), time.process_time()
        trainer.fit()
        return time.perf_counter() - t0, time.process_time() - c0


def run(quick: bool = False) -> dict[str, Any]:
    # many short rounds: their paired median holds still on a busy machine, where 5 long
    # rounds of each side drifted apart by 10-20 %
    steps, rounds, warmup = (60, 3, 20) if quick else (100, 15, 100)
    data = DataConfig(name="fashion_mnist", root=fashion_mnist_root(), binarize="static")
    train_data = data.load("train")
    event_shape = train_data.event_shape
    config = train_config(
        1,
        batch_size=CS236_BATCH,
        lr=CS236_LR,
        seed=SEED,
        warmup_steps=0,
        decay_steps=0,
        min_lr_ratio=1.0,  # constant lr: the bare loop has no schedule
        checkpoint_every=0,
        log_every=100,  # as a user's run logs
    )

    torch.manual_seed(SEED)
    trainer_model = dgm.create("vae", event_shape, **CS236_MODEL)
    trainer = Trainer(trainer_model, train_data, None, config, run_dir=None, progress=True)

    torch.manual_seed(SEED)
    bare_model = dgm.create("vae", event_shape, **CS236_MODEL).train()
    opt = torch.optim.AdamW(
        bare_model.parameters(),
        lr=config.lr,
        betas=tuple(config.adam_betas),
        weight_decay=config.weight_decay,
        fused=True,  # as the trainer builds it (dgm.train.optim) on a CPU
    )
    x = train_data.x[:CS236_BATCH].clone()  # one fixed batch of the same size

    t_start = time.perf_counter()
    _trainer_round(trainer, warmup)
    _bare_round(bare_model, opt, x, warmup)
    trainer_ms: list[float] = []
    bare_ms: list[float] = []
    trainer_cpu: list[float] = []  # CPU ms/step
    bare_cpu: list[float] = []
    for r in range(rounds):
        wall, cpu = _trainer_round(trainer, steps)
        trainer_ms.append(1000 * wall / steps)
        trainer_cpu.append(1000 * cpu / steps)
        wall, cpu = _bare_round(bare_model, opt, x, steps)
        bare_ms.append(1000 * wall / steps)
        bare_cpu.append(1000 * cpu / steps)
        log(
            f"  round {r + 1}/{rounds}: trainer {trainer_ms[-1]:.3f} ms/step "
            f"({trainer_cpu[-1]:.3f} CPU), bare {bare_ms[-1]:.3f} ms/step ({bare_cpu[-1]:.3f} CPU)"
        )
    cpu_ratios = [a / c for a, c in zip(trainer_cpu, bare_cpu, strict=True)]
    wall = time.perf_counter() - t_start

    t, b = statistics.median(trainer_ms), statistics.median(bare_ms)
    payload = {
        "description": "ms/step of Trainer.fit() vs a bare forward/backward/AdamW loop, CS236 VAE",
        "model": "vae",
        "model_config": {**CS236_MODEL, "hidden_sizes": list(CS236_MODEL["hidden_sizes"])},
        "data": dataclasses.asdict(data),
        "batch_size": CS236_BATCH,
        "train_config": dataclasses.asdict(config),
        "progress_bar": "on, tqdm writing to os.devnull",
        "bare_loop": "model.loss(x).value.backward(); opt.step(); opt.zero_grad(), one fixed batch",
        "steps_per_round": steps,
        "rounds": rounds,
        "warmup_steps": warmup,
        "order": "trainer then bare in each round, after warming up both",
        "bare_ms_per_step": b,
        "trainer_ms_per_step": t,
        "ratio_trainer_over_bare": t / b,
        # each round's trainer/bare ratio: robust to drift in the machine's speed across rounds
        "ratio_paired_median": paired_ratio(trainer_ms, bare_ms),
        "bare_ms_rounds": bare_ms,
        "trainer_ms_rounds": trainer_ms,
        "bare_ms_summary": summary(bare_ms),
        "trainer_ms_summary": summary(trainer_ms),
        "bare_cpu_ms_rounds": bare_cpu,
        "trainer_cpu_ms_rounds": trainer_cpu,
        "cpu_ratio_trainer_over_bare": statistics.median(trainer_cpu) / statistics.median(bare_cpu),
        "cpu_ratio_paired": summary(cpu_ratios),
    }
    path = write_result(
        NAME, payload, quick=quick, seed=SEED, steps=steps * rounds, wall_time_s=wall
    )
    log(
        f"trainer overhead: bare {b:.3f} ms/step, trainer {t:.3f} ms/step, "
        f"ratio {t / b:.3f}; CPU time: paired ratio {statistics.median(cpu_ratios):.3f} "
        f"({min(cpu_ratios):.3f} to {max(cpu_ratios):.3f})  -> {path}"
    )
    return payload


def cpu_ratio(paired: dict[str, float] | None) -> str:
    """'median (min–max)' of the per-round CPU-time ratios, '–' for older records."""
    if not paired:
        return "–"
    return f"{fmt(paired['median'], 3)} ({fmt(paired['min'], 3)}–{fmt(paired['max'], 3)})"


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for docs/benchmarks.md: bare loop against trainer."""
    load = (record.get("machine") or {}).get("load_average")
    busy = f"; load average {load[0]:.1f} when it ended" if load else ""
    return [
        f"**Trainer overhead** (CS236 VAE, batch {record['batch_size']}, median of "
        f"{record['rounds']} rounds of {record['steps_per_round']} steps; progress bar on, "
        "logging every 100 steps; bare loop: forward, backward, AdamW on one fixed batch"
        f"{busy}):",
        "",
        *markdown_table(
            [
                "bare ms/step",
                "trainer ms/step",
                "trainer / bare",
                "per-round ratio (median)",
                "per-round CPU-time ratio (median, min–max)",
            ],
            [
                [
                    fmt(record["bare_ms_per_step"], 3),
                    fmt(record["trainer_ms_per_step"], 3),
                    fmt(record["ratio_trainer_over_bare"], 3),
                    fmt(record.get("ratio_paired_median"), 3),
                    cpu_ratio(record.get("cpu_ratio_paired")),
                ]
            ],
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    return common.main(run, __doc__, "fewer, shorter rounds; results/quick/", argv)


if __name__ == "__main__":
    raise SystemExit(main())
