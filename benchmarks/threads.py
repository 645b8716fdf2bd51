"""Torch threads on a small CPU: one training step at 1 and 2 threads, idle and under load.

Two VAEs with Bernoulli decoders on statically binarized images, each trained as the
trainer does it (``model.loss(x).value.backward(); opt.step(); opt.zero_grad()`` with the
trainer's own optimizer, ``dgm.train.optim.build_optimizer``: AdamW, fused on a CPU;
``model.check_values = False`` as ``fit`` runs it):

- demo: the ``make demo`` VAE, sklearn's 8x8 digits (64 pixels), z = 8, MLP 256-256,
  batch 64, lr 1e-3;
- cs236: the CS236 VAE, Fashion-MNIST (784 pixels), z = 10, MLP 300-300, batch 97, lr 1e-3.

Each runs at ``torch.set_num_threads(1)`` and ``(2)``, (i) on an otherwise idle machine and
(ii) under a little load: one other process spinning a pure-Python loop (it takes one core
whenever the scheduler gives it one), paused with SIGSTOP for the idle segments and
resumed with SIGCONT for the loaded ones. Rounds alternate every condition (the order of
loads and of thread counts flips each round), so drift in the machine's speed hits all
of them; after each switch a few untimed steps warm up. Every step is timed on its own:
we report the median and the 90th percentile (the tail is what load hurts) over all timed
steps of a condition, and the mean (what a run's wall time follows).

    python -m benchmarks.threads [--quick]
"""

from __future__ import annotations

import dataclasses
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

import dgm
from benchmarks import common
from benchmarks.common import (
    CS236_BATCH,
    CS236_LR,
    CS236_MODEL,
    busy_warning,
    fashion_mnist_root,
    fmt,
    log,
    markdown_table,
    trainer_optimizer,
    write_result,
)
from dgm.data import DataConfig

NAME = "threads"
SEED = 0
THREADS = (1, 2)
LOADS = ("idle", "loaded")
NUM_BATCHES = 16  # distinct batches cycled through
SWITCH_WARMUP = 5  # untimed steps after every change of thread count or load (at most 0.5 s)
# A segment (one condition in one round) stops early past this many seconds: a step that
# takes hundreds of ms under load would otherwise stretch the run to hours
SEGMENT_S, QUICK_SEGMENT_S = 3.0, 1.0
SPIN = "while True:\n    pass"  # the background load: one busy pure-Python process

# name -> what to train; the data configs are built in run() (Fashion-MNIST's root is read
# from the environment then)
SETUPS: dict[str, dict[str, Any]] = {
    "demo": {
        "description": "demo VAE: digits 8x8 (64 pixels), z=8, MLP 256-256, batch 64",
        "data": {"name": "digits", "binarize": "static"},
        "model": {"latent_dim": 8, "hidden_sizes": (256, 256), "decoder": "bernoulli"},
        "batch_size": 64,
        "lr": 1e-3,
    },
    "cs236": {
        "description": "CS236 VAE: Fashion-MNIST (784 pixels), z=10, MLP 300-300, batch 97",
        "data": {"name": "fashion_mnist", "binarize": "static"},
        "model": CS236_MODEL,
        "batch_size": CS236_BATCH,
        "lr": CS236_LR,
    },
}


@contextmanager
def background_spinner() -> Iterator[subprocess.Popen]:
    """A child process spinning on one core, stopped (SIGSTOP) until the caller sends it
    SIGCONT; killed on exit."""
    proc = subprocess.Popen([sys.executable, "-c", SPIN])
    proc.send_signal(signal.SIGSTOP)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "p90": _p90(values),
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
    }


class Setup:
    """One model, its optimizer and its batches, stepped as the trainer steps it."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.data = DataConfig(**spec["data"])
        if self.data.name == "fashion_mnist":
            self.data.root = fashion_mnist_root()
        train = self.data.load("train")
        b = spec["batch_size"]
        self.batches = [train.x[i * b : (i + 1) * b].clone() for i in range(NUM_BATCHES)]
        torch.manual_seed(SEED)
        self.model = dgm.create("vae", train.event_shape, **spec["model"]).train()
        self.model.check_values = False  # as fit() runs it, after checking the data once
        self.opt = trainer_optimizer(self.model, spec["lr"])  # its one phase, "main"
        self.fused = bool(self.opt.defaults.get("fused"))
        self.i = 0

    def step(self) -> None:
        self.model.loss(self.batches[self.i % NUM_BATCHES]).value.backward()
        self.opt.step()
        self.opt.zero_grad()
        self.i += 1

    def warm_up(self) -> None:
        """``SWITCH_WARMUP`` untimed steps, fewer when they take more than 0.5 s."""
        t0 = time.perf_counter()
        for _ in range(SWITCH_WARMUP):
            self.step()
            if time.perf_counter() - t0 > 0.5:
                break

    def timed_steps(self, n: int, max_s: float) -> list[float]:
        """Milliseconds of each of ``n`` steps, or of those done when ``max_s`` seconds have
        passed (at least 3)."""
        out: list[float] = []
        start = time.perf_counter()
        while len(out) < n and (len(out) < 3 or time.perf_counter() - start < max_s):
            t0 = time.perf_counter()
            self.step()
            out.append(1000 * (time.perf_counter() - t0))
        return out


def run(quick: bool = False) -> dict[str, Any]:
    steps, rounds, segment_s = (50, 8, QUICK_SEGMENT_S) if quick else (100, 25, SEGMENT_S)
    default_threads = torch.get_num_threads()
    try:
        return _run(quick, steps, rounds, segment_s, default_threads)
    finally:
        torch.set_num_threads(default_threads)


def _run(
    quick: bool, steps: int, rounds: int, segment_s: float, default_threads: int
) -> dict[str, Any]:
    setups = {name: Setup(spec) for name, spec in SETUPS.items()}
    warning = busy_warning()
    if warning:
        log(warning)
    load_before = list(os.getloadavg())
    ms: dict[str, dict[str, dict[int, list[float]]]] = {
        s: {load: {t: [] for t in THREADS} for load in LOADS} for s in setups
    }
    round_medians: dict[str, dict[str, dict[int, list[float]]]] = {
        s: {load: {t: [] for t in THREADS} for load in LOADS} for s in setups
    }
    loaded_wall = 0.0
    t_start = time.perf_counter()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with background_spinner() as spinner:
        for r in range(rounds):
            loads = LOADS if r % 2 == 0 else LOADS[::-1]
            threads = THREADS if r % 2 == 0 else THREADS[::-1]
            for load in loads:
                spinner.send_signal(signal.SIGCONT if load == "loaded" else signal.SIGSTOP)
                t_load = time.perf_counter()
                for name, setup in setups.items():
                    for t in threads:
                        torch.set_num_threads(t)
                        setup.warm_up()
                        times = setup.timed_steps(steps, segment_s)
                        ms[name][load][t] += times
                        round_medians[name][load][t].append(statistics.median(times))
                if load == "loaded":
                    loaded_wall += time.perf_counter() - t_load
            spinner.send_signal(signal.SIGSTOP)
            log(
                f"  round {r + 1}/{rounds}: "
                + "; ".join(
                    f"{name} {load} "
                    + " ".join(f"{t}t {round_medians[name][load][t][-1]:.2f}" for t in THREADS)
                    for name in setups
                    for load in LOADS
                )
                + " (median ms/step)"
            )
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter() - t_start
    spinner_cpu = (children1.ru_utime + children1.ru_stime) - (
        children0.ru_utime + children0.ru_stime
    )

    results: dict[str, Any] = {}
    for name in setups:
        results[name] = {
            load: {
                str(t): {
                    "steps": len(ms[name][load][t]),
                    **_stats(ms[name][load][t]),
                    "round_medians": round_medians[name][load][t],
                }
                for t in THREADS
            }
            for load in LOADS
        }
        for load in LOADS:
            one, two = round_medians[name][load][1], round_medians[name][load][2]
            results[name][load]["ratio_2_over_1_median"] = (
                results[name][load]["2"]["median"] / results[name][load]["1"]["median"]
            )
            results[name][load]["ratio_2_over_1_p90"] = (
                results[name][load]["2"]["p90"] / results[name][load]["1"]["p90"]
            )
            # each round's ratio: robust to drift in the machine's speed across rounds
            results[name][load]["ratio_2_over_1_paired_median"] = statistics.median(
                [b / a for a, b in zip(one, two, strict=True)]
            )
    payload = {
        "description": "per-step ms of a VAE training step at 1 and 2 torch threads, on an "
        "idle machine and beside one busy process",
        "setups": {
            name: {
                "description": spec["description"],
                "data": dataclasses.asdict(setups[name].data),
                "model": "vae",
                "model_config": {
                    **spec["model"],
                    "hidden_sizes": list(spec["model"]["hidden_sizes"]),
                },
                "batch_size": spec["batch_size"],
                "lr": spec["lr"],
                "optimizer": "dgm.train.optim.build_optimizer: AdamW"
                + (", fused" if setups[name].fused else ""),
            }
            for name, spec in SETUPS.items()
        },
        "threads": list(THREADS),
        "default_threads": default_threads,
        "loads": {
            "idle": "no other process of ours; the spinner stopped (SIGSTOP)",
            "loaded": f"one other process running {SPIN!r} (python -c), resumed with SIGCONT",
        },
        "step": "model.loss(x).value.backward(); opt.step(); opt.zero_grad(); check_values off",
        "steps_per_round": steps,
        "segment_max_s": segment_s,
        "rounds": rounds,
        "switch_warmup_steps": SWITCH_WARMUP,
        "order": "per round: both loads, per load both setups, per setup both thread counts; "
        "load and thread order flip every round",
        "spinner_cpu_s": spinner_cpu,
        "loaded_wall_s": loaded_wall,
        # how much of one core the spinner got while it ran (1.0: a whole core)
        "spinner_core_share": spinner_cpu / loaded_wall if loaded_wall else None,
        "load_average_before": load_before,
        "busy_warning": warning,
        "ms_per_step": results,
    }
    total_steps = sum(
        len(v) for by_load in ms.values() for by_t in by_load.values() for v in by_t.values()
    )
    path = write_result(NAME, payload, quick=quick, seed=SEED, steps=total_steps, wall_time_s=wall)
    for name in setups:
        for load in LOADS:
            r = results[name][load]
            log(
                f"{name} {load}: "
                + ", ".join(
                    f"{t} thread(s) median {r[str(t)]['median']:.2f} p90 {r[str(t)]['p90']:.2f}"
                    for t in THREADS
                )
                + " ms/step"
            )
    log(f"threads: spinner got {payload['spinner_core_share']:.2f} of a core  -> {path}")
    return payload


THREAD_SETUPS = {  # result key -> the row label
    "demo": "demo VAE (8x8 digits, z=8, MLP 256-256, batch 64)",
    "cs236": "CS236 VAE (784 pixels, z=10, MLP 300-300, batch 97)",
}


THREAD_LOADS = {"idle": "idle", "loaded": "busy"}  # result key -> the column label


def _threads_advice(record: dict[str, Any]) -> str:
    """One sentence: when one thread beat two, judged by the mean ms per step (what a run's
    wall time follows), with the 90th percentiles beside it."""
    res = {s: record["ms_per_step"][s] for s in THREAD_SETUPS if s in record["ms_per_step"]}
    cores = record.get("machine", {}).get("usable_cores", "?")
    flag = "`--threads 1` (`dgm train --threads 1`)"

    def wins(threads: str, load: str) -> bool:  # lower mean for every model
        other = "2" if threads == "1" else "1"
        return all(r[load][threads]["mean"] < r[load][other]["mean"] for r in res.values())

    def compare(load: str, q: str = "mean") -> str:  # "demo VAE 1.35 vs 1.12 ms, ..."
        return ", ".join(
            f"{THREAD_SETUPS[s].split(' (')[0]} {fmt(r[load]['1'][q])} vs {fmt(r[load]['2'][q])} ms"
            for s, r in res.items()
        )

    idle, busy, busy_p90 = compare("idle"), compare("loaded"), compare("loaded", "p90")
    if wins("1", "loaded") and wins("1", "idle"):
        return (
            f"One thread beat two for every model, on the idle machine ({idle}; mean ms per "
            f"step, one thread first) and beside one busy process ({busy}; at p90 {busy_p90}): "
            f"on a {cores}-core machine, pass {flag} for models this small."
        )
    if wins("1", "loaded") and wins("2", "idle"):
        return (
            f"Two threads were faster on the idle machine ({idle}; mean ms per step, one "
            f"thread first), one thread beside one busy process ({busy}; at p90 {busy_p90}): "
            f"on a {cores}-core machine, pass {flag} whenever anything else keeps a core busy, "
            "and keep the default when the machine is yours alone."
        )
    if wins("1", "loaded"):
        return (
            f"Beside one busy process one thread beat two for every model ({busy}; mean ms "
            f"per step, one thread first; at p90 {busy_p90}); on the idle machine, {idle}: on "
            f"a {cores}-core machine, pass {flag} whenever anything else keeps a core busy."
        )
    return (
        f"Mean ms per step, one thread against two: idle, {idle}; beside one busy process, "
        f"{busy}. Pass {flag} where one thread is the faster."
    )


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for docs/benchmarks.md: ms/step per model, thread count and load,
    then the advice."""
    quantities = ("median", "p90", "mean")
    rows = []
    for s, label in THREAD_SETUPS.items():
        r = record["ms_per_step"].get(s)
        if r is None:
            continue
        for t in record["threads"]:
            rows.append(
                [
                    label if t == record["threads"][0] else "",
                    str(t),
                    *(fmt(r[load][str(t)][q]) for load in THREAD_LOADS for q in quantities),
                ]
            )
    full = record["rounds"] * record["steps_per_round"]  # a segment past its time cap has fewer
    capped = any(
        r[load][str(t)]["steps"] < full
        for r in record["ms_per_step"].values()
        for load in THREAD_LOADS
        for t in record["threads"]
    )
    share = record.get("spinner_core_share")
    share = f", which got {share:.2f} of a core" if share is not None else ""
    return [
        "**Torch threads** (a training step as `fit` runs it: forward, backward, fused AdamW, "
        f"value checks off; ms per step, every step timed, over {record['rounds']} alternating "
        f"rounds of {'up to ' if capped else ''}{record['steps_per_round']} steps; p90 is the "
        "90th percentile; idle: "
        "nothing else running; busy: beside one other process spinning a pure-Python loop"
        f"{share}):",
        "",
        *markdown_table(
            [
                "model",
                "threads",
                *(f"{name}: {q}" for name in THREAD_LOADS.values() for q in quantities),
            ],
            rows,
        ),
        "",
        _threads_advice(record),
    ]


def main(argv: list[str] | None = None) -> int:
    return common.main(run, __doc__, "fewer, shorter rounds (about a minute); results/quick/", argv)


if __name__ == "__main__":
    raise SystemExit(main())
