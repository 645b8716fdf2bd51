"""dgm against pytorch-generative: MADE, NADE and PixelCNN trained side by side.

For each model pair and each seed, one process trains dgm's model and pytorch-generative's
on the same batches (one seeded batch order of statically binarized Fashion-MNIST, fed
to both), Adam at lr 1e-3, batch 64, one torch thread, the two steps alternating (which
goes first alternates too); then both are scored by the exact NLL in nats per image on
the first 2,000 test images. dgm's step is ``model.loss`` + the optimiser dgm's trainer
builds (fused AdamW, weight decay 0: Adam); the peer's is its ``forward`` + the loss its
``reproduce`` scripts use + ``torch.optim.Adam`` (what its trainer runs). Per pair:
parameters, NLL and ms/step (median over steps after a warm-up) per seed, and over the
seeds the paired difference dgm − peer of the NLL and the ratio dgm / peer of ms/step,
each as a mean with a 95 % t-interval. ms/step is CPU time of the process (one thread, so
the step's own compute), steady on a shared machine where wall time is not; the wall
medians are saved beside it.

The pairs, and where they differ:

- MADE, one hidden layer of 1000 and of 500 (one mask): same parameters, both in a
  random input order fixed over the seeds (the peer's choice: its order is numpy's
  ``RandomState(0).permutation(784)``; dgm's is ``ordering="random"`` with ``mask_seed``
  0, ``torch.randperm`` seeded 0); dgm's hidden degrees are spread over [1, D − 1], the
  peer's drawn uniformly. At H = 500 dgm also trains in its default natural order on the
  same batches (the ``natural order`` variant): that order costs nats on images, whose
  first rows are mostly empty background (see the table's reading).
- NADE, 500 hidden units: both ReLU with Kaiming's init (dgm's default), drawn from the
  same seed in the same order: both start from the same weights (equal to 3e-8; the same
  function with the same parametrisation), so their NLLs differ by rounding only; the
  peer draws a Bernoulli sample at every dimension of every forward pass (part of its
  step). Its ``forward`` returns probabilities and its ``reproduce`` applies
  ``binary_cross_entropy_with_logits`` to them (a loss on probabilities taken as logits):
  here both train on and report the correct NLL, ``binary_cross_entropy`` of the
  probabilities.
- PixelCNN, about 53k parameters: dgm's ``plain`` variant (16 masked layers of 24
  channels, 7x7 then 3x3, 53,521 parameters) against the peer's ``reproduce`` config (a
  7x7 masked input, 15 residual blocks of 32 channels with 1x1, 3x3 masked, 1x1
  convolutions, a 1x1 head of 32: 53,569); both see 18 rows above a pixel, both have the
  blind spot of unmasked stacks. The peer's ``forward`` adds each residual twice
  (``x = x + layer(x)`` around a block that already returns ``x + f(x)``), so activations
  double per block: it is run as published (200 steps), and again with each residual
  added once (``residual_once``: the same layers and initialisation, 1000 steps), which
  gives a PixelCNN figure to compare.

The peer's classes come from a checkout of its repository (``benchmarks/pytorch_generative``
says where and how). Without it the benchmark says so and runs dgm alone (peer columns
empty). When the Fashion-MNIST files are absent the MNIST subset dgm ships is used instead
(recorded).

    python -m benchmarks.side_by_side_autoregressive [--quick] [--peer-path DIR] [--jobs N]
        [--only made|nade|pixelcnn|LABEL] [--sampling] [--threads 2]

``--threads 2`` trains nothing: it rebuilds every saved row's two models from each seed as
the training run does and times their steps alternating at 2 threads, by the wall clock,
into the saved rows (``benchmarks/alternate.py``; about 5 minutes for four rows, 2 more per
PixelCNN row on an idle 2-core machine; with ``--quick``, 2 seeds and 4 steps into
results/quick/).

``--quick`` (about a minute): 2 seeds, a few steps, 200 test images. ``--sampling`` trains
nothing: it times dgm's ``sample`` against the peer's own ``sample`` for each pair (or
those of ``--only``) and writes the figures into the saved rows
(``benchmarks/peer_sampling.py`` says how; about 5 CPU minutes, most of it the
peer's PixelCNN loop). Steps: MADE and NADE 1000; PixelCNN 200 as published and 1000 with
the residual added once (``--only`` with a row's label trains that row alone: the last took
61 minutes for 3 seeds on one thread).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import dgm
from benchmarks.alternate import threads_line
from benchmarks.common import (
    add_threads_argument,
    busy_warning,
    existing_payload,
    fashion_mnist_root,
    interval,
    log,
    plus_minus,
    result_path,
    write_result,
)
from benchmarks.peers import verdict
from benchmarks.pytorch_generative import (
    DEFAULT_PEER_PATH,
    FETCH_HINT,
    PEER,
    PEER_COMMIT,
    PEER_ENV,
    load_peer,
    logits_nll,
    probs_nll,
    residual_once,
)
from dgm.train import TrainConfig
from dgm.train.optim import build_optimizer

NAME = "side_by_side_autoregressive"
BATCH, LR, THREADS = 64, 1e-3, 1
SEEDS, QUICK_SEEDS = (0, 1, 2), (0, 1)
TEST_IMAGES, QUICK_TEST_IMAGES = 2000, 200
WARMUP = 3  # steps left out of the ms/step medians


@dataclasses.dataclass(frozen=True)
class Pair:
    """One row: dgm's model (name, config) against a peer model built by ``peer``."""

    label: str
    dgm_name: str
    dgm_config: dict[str, Any]
    peer: Callable[[dict[str, type]], nn.Module]
    peer_nll: Callable[[nn.Module, Tensor], Tensor]  # (B, 1, 28, 28) -> (B,) nats
    steps: int
    quick_steps: int
    difference: str
    # extra dgm configurations trained on the same batches (label -> config overrides)
    variants: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    peer_caveat: str = ""  # why the peer's NLL is no fair figure, when it is not
    peer_note: str = ""  # what was changed in the peer's model, said in its table cell


MADE_DIFFERENCE = (
    "both a random order, fixed over the seeds (dgm: torch.randperm seeded by mask_seed 0; "
    "peer: numpy RandomState(0).permutation); dgm's hidden degrees spread over [1, D − 1], "
    "the peer's drawn uniformly"
)

PAIRS = (
    Pair(
        "MADE, 1 hidden layer of 1000",
        "made",
        {"hidden_sizes": (1000,), "ordering": "random"},
        lambda p: p["MADE"](784, [1000], 1),
        logits_nll,
        1000,
        6,
        MADE_DIFFERENCE,
    ),
    Pair(
        "MADE, 1 hidden layer of 500",
        "made",
        {"hidden_sizes": (500,), "ordering": "random"},
        lambda p: p["MADE"](784, [500], 1),
        logits_nll,
        1000,
        6,
        MADE_DIFFERENCE,
        {"natural order": {"ordering": "natural"}},
    ),
    Pair(
        "NADE, 500 hidden units",
        "nade",
        {"hidden_size": 500},
        lambda p: p["NADE"](784, 500),
        probs_nll,
        1000,
        3,
        "both ReLU + Kaiming init, drawn from the same seed in the same order, so both start "
        "from the same weights (equal to 3e-8) and train the same function on the same "
        "batches (the NLL difference is rounding: fused AdamW against torch's Adam); the "
        "peer draws a sample "
        "per forward; both trained on the correct NLL (the peer's reproduce() takes its "
        "probabilities as logits)",
    ),
    Pair(
        "PixelCNN, ~53k parameters",
        "pixelcnn",
        {"variant": "plain", "hidden_channels": 24, "num_layers": 16},
        lambda p: p["PixelCNN"](1, 1, 15, 16, 32),
        logits_nll,
        200,
        3,
        "dgm: 16 masked 3x3 layers of 24 channels; peer: 15 residual blocks of 32 "
        "channels, each residual added twice (as published)",
        peer_caveat="the peer adds each residual twice (as published), so its activations "
        "double per block and its NLL is no PixelCNN figure",
    ),
    Pair(
        "PixelCNN, ~53k parameters, peer's residual added once",
        "pixelcnn",
        {"variant": "plain", "hidden_channels": 24, "num_layers": 16},
        lambda p: residual_once(p["PixelCNN"])(1, 1, 15, 16, 32),
        logits_nll,
        1000,
        3,
        "dgm: 16 masked 3x3 layers of 24 channels; peer: 15 residual blocks of 32 "
        "channels (1x1, masked 3x3, 1x1) after a masked 7x7 input layer, its forward "
        "changed to add each residual once (the same layers and initialisation)",
        peer_note="residual added once",
    ),
)


PAIRS_BY_LABEL = {p.label: p for p in PAIRS}


def load_images(test_images: int) -> tuple[Tensor, Tensor, str]:
    """Statically binarized training images and the first ``test_images`` test images,
    (N, 1, 28, 28) floats in {0, 1}, and the name of the data used."""
    from dgm.data.dataset import get

    try:
        train = get("fashion_mnist", "train", fashion_mnist_root(), binarize="static").x
        test = get("fashion_mnist", "test", fashion_mnist_root(), binarize="static").x
        name = "fashion_mnist (static binarization)"
    except (FileNotFoundError, OSError, ValueError) as e:
        log(f"Fashion-MNIST unavailable ({e}): using dgm's MNIST subset")
        train = get("mnist_subset", "train", binarize="static").x
        test = get("mnist_subset", "test", binarize="static").x
        name = "mnist_subset (static binarization; Fashion-MNIST files absent)"
    return train.float(), test[:test_images].float(), name


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def mean_nll(nll: Callable[[Tensor], Tensor], test: Tensor, batch: int = 500) -> float:
    """Mean of ``nll`` over ``test`` in nats per image, in batches."""
    return float(torch.cat([nll(test[i : i + batch]) for i in range(0, len(test), batch)]).mean())


def _dgm_stepper(model: nn.Module) -> Callable[[Tensor, int], None]:
    """One training step of a dgm model: ``loss`` + the optimiser dgm's trainer builds."""
    opt = build_optimizer("main", list(model.parameters()), TrainConfig(lr=LR))

    def step_fn(x: Tensor, step: int) -> None:
        model.training_step = step
        opt.zero_grad(set_to_none=True)
        model.loss(x).value.backward()
        opt.step()

    return step_fn


def build_pair(
    pair: Pair, peer_classes: dict[str, type] | None, seed: int
) -> tuple[dict[str, Callable[[Tensor, int], None]], nn.Module, dict[str, nn.Module], Any]:
    """dgm's model of ``pair`` (and its variants) and the peer's, each seeded by ``seed``,
    with their optimisers: (steppers by side, dgm's model, variants by side, the peer or
    None). A stepper takes a batch and the step number; the training run and the
    ``--threads`` pass both build their models here."""
    torch.manual_seed(seed)
    ours = dgm.create(pair.dgm_name, (1, 28, 28), **pair.dgm_config)
    ours_step = _dgm_stepper(ours)

    steppers: dict[str, Callable[[Tensor, int], None]] = {"dgm": ours_step}
    variants: dict[str, nn.Module] = {}
    for label, overrides in pair.variants.items():
        torch.manual_seed(seed)
        variant = dgm.create(pair.dgm_name, (1, 28, 28), **{**pair.dgm_config, **overrides})
        steppers[f"dgm, {label}"] = _dgm_stepper(variant)
        variants[f"dgm, {label}"] = variant
    peer = None
    if peer_classes is not None:
        torch.manual_seed(seed)
        peer = pair.peer(peer_classes)
        peer_opt = torch.optim.Adam(peer.parameters(), lr=LR)

        def peer_step(x: Tensor, step: int) -> None:
            peer_opt.zero_grad(set_to_none=True)
            pair.peer_nll(peer, x).mean().backward()
            peer_opt.step()

        steppers[PEER] = peer_step
    return steppers, ours, variants, peer


def run_pair(
    pair: Pair,
    peer_classes: dict[str, type] | None,
    train: Tensor,
    test: Tensor,
    seed: int,
    steps: int,
) -> dict[str, Any]:
    """Train dgm's model and the peer's on the same ``steps`` batches; their figures."""
    order = torch.randint(len(train), (steps, BATCH), generator=torch.Generator().manual_seed(seed))
    steppers, ours, variants, peer = build_pair(pair, peer_classes, seed)
    times: dict[str, list[float]] = {k: [] for k in steppers}
    walls: dict[str, list[float]] = {k: [] for k in steppers}
    for step in range(steps):
        x = train[order[step]]  # (B, 1, 28, 28), the same batch for both
        names = list(steppers) if step % 2 == 0 else list(reversed(steppers))
        for name in names:
            t0, w0 = time.process_time(), time.perf_counter()
            steppers[name](x, step)
            times[name].append(1e3 * (time.process_time() - t0))
            walls[name].append(1e3 * (time.perf_counter() - w0))
    ours.eval()
    out: dict[str, Any] = {
        "dgm": {
            "nll": mean_nll(lambda x: -ours.log_prob(x), test),
            "ms_per_step": statistics.median(times["dgm"][WARMUP:] or times["dgm"]),
            "wall_ms_per_step": statistics.median(walls["dgm"][WARMUP:] or walls["dgm"]),
            "params": num_params(ours),
        }
    }
    for label, variant in variants.items():
        variant.eval()
        out[label] = {
            "nll": mean_nll(lambda x, v=variant: -v.log_prob(x), test),
            "ms_per_step": statistics.median(times[label][WARMUP:] or times[label]),
            "params": num_params(variant),
        }
    if peer is not None:
        peer.eval()
        out[PEER] = {
            "nll": mean_nll(lambda x: pair.peer_nll(peer, x), test),
            "ms_per_step": statistics.median(times[PEER][WARMUP:] or times[PEER]),
            "wall_ms_per_step": statistics.median(walls[PEER][WARMUP:] or walls[PEER]),
            "params": num_params(peer),
        }
    return out


def summarise(per_seed: list[dict[str, Any]], variants: list[str]) -> dict[str, Any]:
    """Paired NLL difference dgm - peer and ms/step ratio dgm / peer over the seeds, and
    each dgm variant's paired NLL difference variant - dgm."""
    out: dict[str, Any] = {}
    if variants:
        out["variant_nll_difference"] = {
            v: interval([r[f"dgm, {v}"]["nll"] - r["dgm"]["nll"] for r in per_seed])
            for v in variants
        }
    if any(PEER not in r for r in per_seed):
        return out
    return {
        **out,
        "nll_difference": interval([r["dgm"]["nll"] - r[PEER]["nll"] for r in per_seed]),
        "ms_ratio": interval([r["dgm"]["ms_per_step"] / r[PEER]["ms_per_step"] for r in per_seed]),
    }


def seed_result(index: int, seed: int, quick: bool, peer_path: Path) -> dict[str, Any]:
    """``run_pair`` for ``PAIRS[index]`` and one seed, one torch thread: a worker of
    ``run`` (each (pair, seed) may train in its own process)."""
    torch.set_num_threads(THREADS)
    pair = PAIRS[index]
    train, test, _ = load_images(QUICK_TEST_IMAGES if quick else TEST_IMAGES)
    steps = pair.quick_steps if quick else pair.steps
    result = run_pair(pair, load_peer(peer_path), train, test, seed, steps)
    log(f"{pair.label} seed {seed}: {result}")
    return {"seed": seed, **result}


def run(
    quick: bool = False, peer_path: Path = DEFAULT_PEER_PATH, jobs: int = 1, only: str | None = None
) -> dict[str, Any]:
    """Every pair over the seeds, ``jobs`` (pair, seed) runs at a time in separate
    processes (each one thread: ms/step is each process's own CPU time, so it does not
    depend on ``jobs``). With ``only`` (a dgm model name) just those pairs run and replace
    their rows in the saved results; the other rows are kept as they were (each row has
    its date)."""
    torch.set_num_threads(THREADS)
    warning = busy_warning()
    if warning:
        log(warning)
    peer_classes = load_peer(peer_path)
    if peer_classes is None:
        log(
            f"{PEER} not found at {peer_path}: running dgm alone (peer columns empty). "
            f"Fetch it with: {FETCH_HINT}"
        )
    t0 = time.perf_counter()
    _, test, data_name = load_images(QUICK_TEST_IMAGES if quick else TEST_IMAGES)
    seeds = QUICK_SEEDS if quick else SEEDS
    chosen = [i for i, p in enumerate(PAIRS) if only in (None, p.dgm_name, p.label)]
    if not chosen:
        names = sorted({p.dgm_name for p in PAIRS})
        raise SystemExit(
            f"--only {only!r} names no pair: give one of {', '.join(names)} or a row's model"
        )
    tasks = [(i, seed) for i in chosen for seed in seeds]
    args = [[t[0] for t in tasks], [t[1] for t in tasks], [quick] * len(tasks)]
    args.append([peer_path] * len(tasks))
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(seed_result, *args))
    else:
        results = list(map(seed_result, *args))
    today = time.strftime("%Y-%m-%d %H:%M")
    fresh = {}
    for i in chosen:
        pair = PAIRS[i]
        per_seed = [r for (j, _), r in zip(tasks, results, strict=True) if j == i]
        fresh[pair.label] = {
            "model": pair.label,
            "dgm_model": pair.dgm_name,
            "dgm_config": pair.dgm_config,
            "steps": pair.quick_steps if quick else pair.steps,
            "difference": pair.difference,
            "peer_caveat": pair.peer_caveat,
            "date": today,
            "per_seed": per_seed,
            **summarise(per_seed, list(pair.variants)),
        }
    saved = []
    if only is not None and result_path(NAME, quick=quick).is_file():
        previous = json.loads(result_path(NAME, quick=quick).read_text())
        saved = [{"date": previous["date"][:16].replace("T", " "), **r} for r in previous["rows"]]
    kept = {r["model"]: r for r in saved if r["model"] not in fresh}
    for r in saved:  # sampling is timed on untrained weights: a retrained row keeps it
        if r["model"] in fresh and "sampling" in r:
            fresh[r["model"]]["sampling"] = r["sampling"]
    rows = [fresh.get(p.label) or kept[p.label] for p in PAIRS if p.label in {**kept, **fresh}]
    wall = time.perf_counter() - t0
    payload = {
        "peer": PEER,
        "peer_commit": PEER_COMMIT,
        "peer_found": peer_classes is not None,
        "data": data_name,
        "test_images": len(test),
        "batch_size": BATCH,
        "lr": LR,
        "threads": THREADS,
        "seeds": list(seeds),
        "warning": warning,
        "rows": rows,
    }
    path = write_result(NAME, payload, quick=quick, seed=seeds[0], steps=None, wall_time_s=wall)
    log(table(payload))
    log(f"wrote {path} ({wall:.0f} s)")
    return payload


def run_sampling(quick: bool, peer_path: Path, only: str | None = None) -> dict[str, Any]:
    """The sampling part (``benchmarks/peer_sampling.py``): dgm's ``sample``
    against the peer's for every pair (or those of ``only``) over the seeds, written into
    the pair's row of the saved results (the training figures kept as they are)."""
    from benchmarks import peer_sampling as sampling

    torch.set_num_threads(THREADS)
    peer_classes = load_peer(peer_path)
    if peer_classes is None:
        raise SystemExit(f"{PEER} not found at {peer_path}: fetch it with: {FETCH_HINT}")
    t0 = time.perf_counter()
    _, test, _ = load_images(QUICK_TEST_IMAGES)
    seeds = QUICK_SEEDS if quick else SEEDS
    payload, _ = existing_payload(NAME, quick=quick)
    labels = [r["model"] for r in payload["rows"]]
    for label in labels:
        pair = PAIRS_BY_LABEL[label]
        if only not in (None, pair.dgm_name, pair.label):
            continue
        repeats = sampling.QUICK_REPEATS if quick else sampling.REPEATS[pair.dgm_name]
        per_seed = []
        for seed in seeds:
            per_seed.append(sampling.sample_seed(pair, peer_classes, test, seed, repeats))
            log(f"{pair.label} sampling, seed {seed}: {per_seed[-1]}")
        # read again just before writing: a training run may have rewritten other rows
        payload, wall = existing_payload(NAME, quick=quick)
        row = next(r for r in payload["rows"] if r["model"] == label)
        row["sampling"] = {
            "batch_size": sampling.SAMPLE_BATCH,
            "repeats": repeats,
            "weights": "untrained, seeded as the training run starts",
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "per_seed": per_seed,
            **sampling.summarise(per_seed, interval),
        }
        wall += time.perf_counter() - t0
        t0 = time.perf_counter()
        write_result(NAME, payload, quick=quick, seed=seeds[0], steps=None, wall_time_s=wall)
    log(table(payload))
    return payload


def run_threads(
    quick: bool, peer_path: Path, threads: int, only: str | None = None
) -> dict[str, Any]:
    """The ``--threads N`` pass (``benchmarks/alternate.py``): every saved row (or those of
    ``only``) rebuilt from each seed as ``run`` builds it, dgm's step and the peer's timed
    alternating at ``threads`` threads on the same batches, written into the row under
    "threads" (the training figures kept as they are)."""
    from benchmarks.alternate import speed_pass

    peer_classes = load_peer(peer_path)
    if peer_classes is None:
        raise SystemExit(f"{PEER} not found at {peer_path}: fetch it with: {FETCH_HINT}")
    train, _, _ = load_images(QUICK_TEST_IMAGES)

    def steppers(_: dict[str, Any], row: dict[str, Any], seed: int, n: int) -> dict[str, Any]:
        built = build_pair(PAIRS_BY_LABEL[row["model"]], peer_classes, seed)[0]
        order = torch.randint(len(train), (n, BATCH), generator=torch.Generator().manual_seed(seed))
        return {
            side: (lambda i, step=built[side]: step(train[order[i]], i)) for side in ("dgm", PEER)
        }

    def rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            r
            for r in payload["rows"]
            if only in (None, r["dgm_model"], r["model"]) and r["model"] in PAIRS_BY_LABEL
        ]

    return speed_pass(sys.modules[__name__], steppers, quick=quick, threads=threads, rows=rows)


def reading(record: dict[str, Any]) -> str:
    """The table's reading line, from the figures: each row's NLL against the peer's (the
    interval against 0), its ms/step ratio, and each dgm variant against dgm's row."""
    parts = []
    for row in record["rows"]:
        diff, ratio = row.get("nll_difference"), row.get("ms_ratio")
        if not diff or not ratio:
            continue
        caveat = row.get("peer_caveat") or (PAIRS_BY_LABEL[row["model"]].peer_caveat)
        versus = (
            f"dgm's NLL {verdict(diff, than='')} the peer's ({diff['mean']:+.2f} ± "
            f"{diff['half_width']:.2f} nats)"
            if not caveat
            else caveat
        )
        part = f"{row['model']} ({row['steps']} steps): {versus}, step at {ratio['mean']:.2f}x"
        for label, v in row.get("variant_nll_difference", {}).items():
            part += (
                f"; dgm in {label} is {v['mean']:+.2f} ± {v['half_width']:.2f} nats against "
                "dgm in the peer's random order"
            )
        parts.append(part)
    return "Reading: " + ". ".join(parts) + "."


def table(record: dict[str, Any]) -> list[str]:
    """The markdown table of a results record: one row per model pair, NLL means over the
    seeds, the paired difference and the ms/step ratio with their 95 % intervals."""
    lines = [
        f"**Side by side with {record['peer']}** ({record['peer_commit']}) on "
        f"{record['data']}: batch {record['batch_size']}, Adam lr {record['lr']}, "
        f"{record['threads']} thread, seeds "
        f"{record['seeds']}, exact NLL in nats on {record['test_images']} test images; "
        "± is a 95 % t-interval over the seeds (paired).",
        "",
        "| model | steps | params dgm / peer | NLL dgm | NLL peer | NLL dgm − peer "
        "| CPU ms/step dgm | CPU ms/step peer | ms/step dgm ÷ peer "
        "| sampling CPU s dgm / peer | sampling peer ÷ dgm | sampling check |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in record["rows"]:
        seeds = row["per_seed"]

        def mean(who: str, key: str, seeds: list[dict[str, Any]] = seeds) -> str:
            if any(who not in s for s in seeds):
                return "–"
            return f"{statistics.fmean(s[who][key] for s in seeds):.2f}"

        params = f"{seeds[0]['dgm']['params']:,} / " + (
            f"{seeds[0][PEER]['params']:,}" if PEER in seeds[0] else "–"
        )
        lines.append(
            f"| {row['model']} | {row['steps']} | {params} | {mean('dgm', 'nll')} "
            f"| {mean(PEER, 'nll')} | {plus_minus(row.get('nll_difference'), '+.2f')} "
            f"| {mean('dgm', 'ms_per_step')} | {mean(PEER, 'ms_per_step')} "
            f"| {plus_minus(row.get('ms_ratio'), '.3f')} | {' | '.join(sampling_cells(row))} |"
        )
    lines += threads_line([(r["model"], r.get("threads")) for r in record["rows"]])
    notes: dict[str, list[str]] = {}
    for r in record["rows"]:  # rows that differ the same way share one note
        notes.setdefault(r["difference"], []).append(r["model"])
    described = "; ".join(f"{' and '.join(m)}: {d}" for d, m in notes.items())
    lines += ["", f"Differences: {described}.", "", reading(record)]
    sampled = [r["sampling"] for r in record["rows"] if "sampling" in r]
    if sampled:
        lines += ["", sampling_note(sampled[0])]
    if not record.get("peer_found", True):
        lines += ["", f"{record['peer']} was not found: dgm alone (fetch it: {FETCH_HINT})."]
    return lines


def sampling_cells(row: dict[str, Any]) -> list[str]:
    """The three sampling cells of a row (dashes when its sampling was not measured): CPU
    seconds per call of each side, the speed-up peer ÷ dgm with its interval, the check."""
    from benchmarks.peer_sampling import check_cell, seconds_cell

    sampling = row.get("sampling")
    if not sampling:
        return ["–", "–", "–"]
    seeds = sampling["per_seed"]
    return [
        f"{seconds_cell(seeds, 'dgm')} / {seconds_cell(seeds, 'peer')}",
        plus_minus(sampling["speedup"], ".2f"),
        check_cell(sampling),
    ]


def sampling_reading(sampling: dict[str, Any]) -> str:
    """The sampling speed-up peer ÷ dgm in words, for the peers page: "as fast" when its
    95 % interval holds 1."""
    speedup, half = sampling["speedup"]["mean"], sampling["speedup"]["half_width"]
    if not math.isnan(half) and speedup - half <= 1 <= speedup + half:
        pace = f"as fast as (peer ÷ dgm {speedup:.2f} ± {half:.2f})"
    elif speedup >= 1:
        pace = f"{speedup:.1f}× faster than"
    else:
        pace = f"{1 / speedup:.1f}× slower than"
    same = " (same pixels, weights copied)" if sampling.get("same_pixels") else ""
    return f"samples {pace} the peer's `sample`{same}"


def sampling_note(sampling: dict[str, Any]) -> str:
    """What the sampling columns measured."""
    return (
        f"Sampling: {sampling['batch_size']} images per call of dgm's `sample` and of the "
        f"peer's own `sample`, {sampling['weights']} (the cost does not depend on the "
        "weights), alternating, 1 thread, CPU seconds: the median over a seed's calls, "
        "then the mean over the seeds; peer ÷ dgm is the mean of the per-seed ratios of "
        "the medians ± its 95 % t-interval. NADE: both the O(HD) recursion; MADE: both one "
        "network pass per dimension; PixelCNN: dgm's incremental sampler (cached "
        "activations) against the peer's one full pass per pixel. Where the function is "
        "the same (NADE, MADE) the peer's weights, masks and order are copied into dgm's "
        "model and both sides draw with the same seed: the same pixels mean one "
        "distribution, sampled the same way."
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="2 seeds, a few steps (~1 min)")
    p.add_argument(
        "--peer-path",
        type=Path,
        default=Path(os.environ.get(PEER_ENV) or DEFAULT_PEER_PATH),
        help=f"checkout of {PEER} (default ${PEER_ENV} or {DEFAULT_PEER_PATH})",
    )
    p.add_argument(
        "--jobs", type=int, default=1, help="(pair, seed) runs at once, one process each"
    )
    p.add_argument(
        "--only",
        help="rerun only the pairs of this dgm model (made, nade, pixelcnn) or the row of "
        "this model label; the saved results keep the other rows",
    )
    add_threads_argument(p)
    p.add_argument(
        "--sampling",
        action="store_true",
        help="time dgm's sample against the peer's (untrained weights) into the saved rows, "
        "instead of training",
    )
    ns = p.parse_args(argv)
    if ns.threads != 1:
        run_threads(ns.quick, ns.peer_path, ns.threads, ns.only)
    elif ns.sampling:
        run_sampling(ns.quick, ns.peer_path, ns.only)
    else:
        run(ns.quick, ns.peer_path, ns.jobs, ns.only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


ORIENTATION = {  # dgm model -> published figures on other data and budgets (docs/peers.md)
    "made": "binarized MNIST: 88.04 (Germain et al. 2015, 1 mask); 84.87 (peer's README, "
    "8000 hidden, dynamic binarization)",
    "nade": "binarized MNIST: 88.86 (Larochelle & Murray 2011); 85.65 (peer's README)",
    "pixelcnn": "binarized MNIST: 81.30 (van den Oord et al. 2016)",
}


def peer_rows(record: dict[str, Any]) -> list[Any]:
    """docs/peers.md rows: one per model pair (NLL means over the seeds, paired difference)."""
    from benchmarks.peers import PeerRow, budget, interval_cell, speed_cell, speed_reading

    out = []
    for row in record["rows"]:
        seeds = row["per_seed"]
        if any(PEER not in s for s in seeds):
            continue
        diff, ratio = row.get("nll_difference"), row.get("ms_ratio")
        pair = PAIRS_BY_LABEL[row["model"]]
        caveat = row.get("peer_caveat") or pair.peer_caveat
        peer = f"{record['peer']} ({record['peer_commit']})"
        reading = caveat or f"NLL {verdict(diff)}"
        if ratio:
            reading += f"; {speed_reading(ratio['mean'])}"
        if row.get("sampling"):
            reading += f"; {sampling_reading(row['sampling'])}"
        if row["steps"] < 200:
            reading += f"; only {row['steps']} steps: far from a plateau"
        elif row["steps"] < 1000:
            reading += f"; {row['steps']} steps (under an epoch): short of a plateau"
        out.append(
            PeerRow(
                family="autoregressive",
                model=row["model"],
                peer=f"{peer}, {pair.peer_note}" if pair.peer_note else peer,
                data=f"{record['data']}, {record['test_images']} test images",
                budget=budget(row["steps"], record["batch_size"], "Adam", record["lr"], len(seeds)),
                dgm=f"{statistics.fmean(s['dgm']['nll'] for s in seeds):.2f} nats",
                peer_value=f"{statistics.fmean(s[PEER]['nll'] for s in seeds):.2f}",
                difference="– (see reading)" if caveat else interval_cell(diff, 2),
                speed=speed_cell(interval_cell(ratio, 2, sign=""), row.get("threads")),
                reading=reading,
                orientation=ORIENTATION.get(row["dgm_model"], ""),
            )
        )
    return out
