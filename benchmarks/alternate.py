"""Speed at several threads: two training steps alternating in one process, timed by the
wall clock, written into the rows a side-by-side benchmark has already saved.

Every side-by-side module (``benchmarks/side_by_side_*.py``) trains dgm's model and a
peer's at one torch thread and times each step in CPU ms of the process (one thread: the
step's own compute, steady on a shared machine). Its ``--threads N`` pass (N ≥ 2) trains
nothing for quality: for every saved row it builds the same two models as the training run
(same seed, architecture, config, batch shape and optimiser), sets ``N`` threads for torch
and for numpy's BLAS (``threadpoolctl``), and times ``SPEED_STEPS`` steps after
``SPEED_WARMUP`` warm-up steps, alternating, over the module's seeds. At N threads the CPU
time of the process counts every thread, so the figure is **wall** ms (``perf_counter``;
CPU ms are kept beside it): it needs a quiet machine. The row gets

    "threads": {"2": {"dgm_wall_ms": ..., "peer_wall_ms": ..., "ratio": {mean, ci95, n},
                      "steps": ..., "warmup": ..., "date": ..., "per_seed": [...]}}

and keeps every training figure as it was (``speed_pass``). A benchmark whose 1-thread
figure is spread over rounds of one seed (a whole fit, or a round of steps) is timed the same
way: ``speed_pass(..., rounds=...)`` (``wall_rounds``), the interval then over the rounds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import statistics
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import (
    PROVENANCE,
    ci95,
    log,
    machine_info,
    result_path,
    threads_label,
    write_result,
)

KEY = "threads"  # the key of a row's speed figures at more than one thread
SPEED_STEPS, SPEED_WARMUP = 40, 5  # timed steps per seed, and steps run before them
QUICK_SPEED_STEPS, QUICK_SPEED_WARMUP = 4, 1

Stepper = Callable[[int], Any]  # one training step on batch number i


@dataclasses.dataclass
class Timings:
    """Milliseconds per step of every side, the warm-up left out."""

    wall_ms: dict[str, list[float]]
    cpu_ms: dict[str, list[float]]

    def median(self, name: str, clock: str = "wall") -> float:
        """The median ms/step of side ``name`` by the ``"wall"`` or ``"cpu"`` clock."""
        return statistics.median((self.wall_ms if clock == "wall" else self.cpu_ms)[name])


def alternate(steppers: dict[str, Stepper], steps: int, warmup: int) -> Timings:
    """Run ``warmup + steps`` rounds: in round i every stepper is called with i, in the
    order of ``steppers`` when i is even and in the reverse order when i is odd (neither
    side always runs on the caches the other warmed); the wall (``perf_counter``) and CPU
    (``process_time``) ms of each call after the first ``warmup`` rounds are kept."""
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps must be ≥ 1 and warmup ≥ 0, got steps={steps}, warmup={warmup}")
    wall: dict[str, list[float]] = {name: [] for name in steppers}
    cpu: dict[str, list[float]] = {name: [] for name in steppers}
    forward = list(steppers)
    for i in range(warmup + steps):
        for name in forward if i % 2 == 0 else forward[::-1]:
            w0, c0 = time.perf_counter(), time.process_time()
            steppers[name](i)
            w1, c1 = time.perf_counter(), time.process_time()
            if i >= warmup:
                wall[name].append(1e3 * (w1 - w0))
                cpu[name].append(1e3 * (c1 - c0))
    return Timings(wall, cpu)


@contextlib.contextmanager
def limit_threads(n: int) -> Iterator[None]:
    """``n`` torch threads and ``n`` threads for numpy's BLAS and OpenMP pools inside the
    block (``threadpoolctl``, a scikit-learn dependency), both restored after it."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)


def seed_figures(timings: Timings, dgm: str, peer: str) -> dict[str, float]:
    """One seed's medians of both sides (wall and CPU ms) and its wall ratio dgm ÷ peer."""
    out = {
        "dgm_wall_ms": timings.median(dgm),
        "peer_wall_ms": timings.median(peer),
        "dgm_cpu_ms": timings.median(dgm, "cpu"),
        "peer_cpu_ms": timings.median(peer, "cpu"),
    }
    return out | {"ratio": out["dgm_wall_ms"] / out["peer_wall_ms"]}


def two_sides(steppers: dict[str, Stepper]) -> dict[str, Stepper]:
    """``steppers`` when it holds two sides (dgm's and the peer's), else a ValueError."""
    if len(steppers) != 2:
        raise ValueError(f"steppers gave sides {list(steppers)}: give dgm's and the peer's")
    return steppers


def wall_rounds(
    steppers: dict[str, Stepper], rounds: int, warmup: int = 1, repeat: int = 1
) -> dict[str, Any]:
    """Time two sides (dgm's first) in ``warmup + rounds`` rounds of ``repeat`` calls each,
    alternating (``alternate``: the order reversed every other round, the warm-up rounds
    left out), call k of round r given the number ``r * repeat + k``: the threads entry of
    a row with each round's wall ms per call and ratio, its interval over the rounds."""
    two_sides(steppers)

    def calls(step: Stepper) -> Stepper:
        def round_(r: int) -> None:
            for k in range(repeat):
                step(r * repeat + k)

        return round_

    timings = alternate({side: calls(step) for side, step in steppers.items()}, rounds, warmup)
    per_round = []
    for r in range(rounds):
        one = Timings(
            wall_ms={k: [v[r] / repeat] for k, v in timings.wall_ms.items()},
            cpu_ms={k: [v[r] / repeat] for k, v in timings.cpu_ms.items()},
        )
        per_round.append({"round": r, **seed_figures(one, *steppers)})
    return threads_entry(per_round, rounds, warmup, over="rounds") | {"calls_per_round": repeat}


def threads_entry(
    per_seed: list[dict[str, Any]], steps: int, warmup: int, over: str = "seeds"
) -> dict[str, Any]:
    """What a row stores for one thread count: the means over the seeds (or rounds:
    ``over``) of both sides' wall ms/step, the wall ratio dgm ÷ peer as a mean with its
    95 % t-interval over them (``ci95`` None for one), and each one's figures."""
    ratios = [s["ratio"] for s in per_seed]
    return {
        "dgm_wall_ms": statistics.fmean(s["dgm_wall_ms"] for s in per_seed),
        "peer_wall_ms": statistics.fmean(s["peer_wall_ms"] for s in per_seed),
        "ratio": {"mean": statistics.fmean(ratios), "ci95": ci95(ratios), "n": len(ratios)},
        "steps": steps,
        "warmup": warmup,
        "machine": machine_info(),  # its thread count and load average during this pass
        "over": over,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "per_seed": per_seed,
    }


def speed_steps(quick: bool) -> tuple[int, int]:
    """(timed steps, warm-up steps) of a speed pass."""
    return (QUICK_SPEED_STEPS, QUICK_SPEED_WARMUP) if quick else (SPEED_STEPS, SPEED_WARMUP)


def saved_record(name: str, quick: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The saved results a speed pass adds to: (payload, provenance), as ``write_result``
    split them. Quick mode reads results/quick/ and, when no quick run is saved there, the
    full results (their copy with the quick figures goes to results/quick/: the full file
    is never written by a quick pass)."""
    path = result_path(name, quick=quick)
    if quick and not path.is_file():
        path = result_path(name, quick=False)
    if not path.is_file():
        raise SystemExit(f"{path} does not exist: run the benchmark's training run first")
    record = json.loads(path.read_text())
    payload = {k: v for k, v in record.items() if k not in PROVENANCE}
    return payload, {k: record.get(k) for k in PROVENANCE}


def speed_pass(
    module: types.ModuleType,
    steppers: Callable[[dict[str, Any], dict[str, Any], int, int], dict[str, Stepper]],
    *,
    quick: bool,
    threads: int,
    seeds: tuple[int, ...] | list[int] | None = None,
    rows: Callable[[dict[str, Any]], list[dict[str, Any]]] = lambda payload: payload["rows"],
    rounds: tuple[int, int] | None = None,
    repeat: int = 1,
) -> dict[str, Any]:
    """Time every saved row of a side-by-side ``module`` (its ``NAME``, ``SEEDS`` and
    ``QUICK_SEEDS`` unless ``seeds`` says, and ``table``) at ``threads`` threads and write
    the figures into the row under ``KEY`` (``threads_entry``), the rest of the file as it
    was.

    ``rows(payload)`` gives the rows (dicts of the payload, written in place);
    ``steppers(payload, row, seed, n)`` builds the row's two models from ``seed`` as the
    training run does and returns their steppers, dgm's first and the peer's second, each
    taking a batch number below ``n``. With ``rounds`` (timed rounds, warm-up rounds) each
    row is built once, from the module's ``SEED``, and timed in rounds of ``repeat`` calls
    (``wall_rounds``): the interval is over the rounds, as the 1-thread figure of a
    benchmark with one seed. The file is written after each row; the record as written is
    returned and its table logged."""
    if threads < 2:
        raise SystemExit(
            f"--threads {threads}: the 1-thread figures are the training run's; give 2 or more"
        )
    name = module.NAME
    if rounds:
        seeds = [module.SEED]
    seeds = seeds or (module.QUICK_SEEDS if quick else module.SEEDS)
    steps, warmup = rounds or speed_steps(quick)
    payload, provenance = saved_record(name, quick)
    chosen = rows(payload)
    if not chosen:
        raise SystemExit(f"no saved row of {name} to time: check --only or run the benchmark")
    t0 = time.perf_counter()
    with limit_threads(threads):
        for index, row in enumerate(chosen):
            if rounds:
                built = steppers(payload, row, seeds[0], (warmup + steps) * repeat)
                entry = wall_rounds(built, steps, warmup, repeat)
                log(f"  row {index}, {threads_label(threads)}: ratio {entry['ratio']}")
            else:
                per_seed = []
                for seed in seeds:
                    built = two_sides(steppers(payload, row, seed, warmup + steps))
                    figures = seed_figures(alternate(built, steps, warmup), *built)
                    per_seed.append({"seed": seed, **figures})
                    log(f"  row {index}, seed {seed}, {threads_label(threads)}: {figures}")
                entry = threads_entry(per_seed, steps, warmup)
            row.setdefault(KEY, {})[str(threads)] = entry
            path = write_back(name, payload, provenance, quick)
    log(f"wrote {path} ({time.perf_counter() - t0:.0f} s at {threads_label(threads)})")
    record = json.loads(path.read_text())
    log("\n".join(module.table(record)))
    return record


def record_speed(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The one "row" of a benchmark whose record is its only row (GPT, diffusion): the
    record's "speed" entry, made when absent (the record's own "threads" is its 1-thread
    training setting)."""
    return [payload.setdefault("speed", {})]


def write_back(name: str, payload: dict[str, Any], provenance: dict[str, Any], quick: bool) -> Path:
    """Write ``payload`` with the provenance of the run it came from (``saved_record``'s:
    seed, steps, wall time, date, torch version and machine, whose thread count the
    1-thread figures were measured at) to results[/quick]/; returns the path. The pass's
    own machine and load are in each entry it adds (``threads_entry``)."""
    kept = ("date", "torch_version", "machine")
    return write_result(
        name,
        payload,
        quick=quick,
        seed=provenance["seed"],
        steps=provenance["steps"],
        wall_time_s=provenance["wall_time_s"] or 0.0,
        measured={k: provenance[k] for k in kept if provenance.get(k)},
    )


def seeded_batches(train: Any, n: int, batch_size: int, seed: int) -> Callable[[int], Any]:
    """Batch i of ``n`` drawn from ``train`` (rows, with replacement) in the order seeded by
    ``seed``, as the side-by-side training runs draw theirs."""
    order = torch.randint(
        len(train), (n, batch_size), generator=torch.Generator().manual_seed(seed)
    )
    return lambda i: train[order[i]]


def noise_seeded(
    step: Callable[[str, Any, int], Any], batch: Callable[[int], Any], seed: int, sides: tuple
) -> dict[str, Stepper]:
    """Steppers of a module whose ``step(side, x, noise_seed)`` draws its noise from a seed
    (flows' dequantization, diffusion's t and ε): batch ``batch(i)`` and noise seed
    ``seed * 1_000_003 + i`` at step i, as their training runs draw them."""
    return {
        side: (lambda i, side=side: step(side, batch(i), seed * 1_000_003 + i)) for side in sides
    }


def threads_line(
    labelled: list[tuple[str, dict[str, Any] | None]], unit: str = "step"
) -> list[str]:
    """The line under a benchmark's table with its rows' figures at more than one thread
    (``labelled``: each row's label and its ``KEY`` entry), or nothing when none has them."""
    from benchmarks.peers import interval_cell

    parts = []
    counts = sorted({int(n) for _, entry in labelled for n in entry or {}})
    for n in counts:
        cells = []
        for label, entry in labelled:
            e = (entry or {}).get(str(n))
            if e:
                cells.append(
                    f"{label}: dgm {e['dgm_wall_ms']:.1f} ms, peer {e['peer_wall_ms']:.1f} ms, "
                    f"dgm ÷ peer {interval_cell(e['ratio'], 2, sign='')}"
                )
        some = next(e[str(n)] for _, e in labelled if e and str(n) in e)
        if some.get("over") == "rounds":
            how = (
                f"{some['steps']} rounds after {some['warmup']} warm-up "
                f"round{'s' if some['warmup'] != 1 else ''}, means over the rounds"
            )
        else:
            how = (
                f"medians of {some['steps']} after {some['warmup']} warm-up, means over "
                f"{some['ratio']['n']} seed{'s' if some['ratio']['n'] != 1 else ''}"
            )
        parts.append(
            f"At {threads_label(n)} (wall ms per {unit}, {how}, alternating in one process; "
            "wall time, since CPU time counts every thread): " + "; ".join(cells) + "."
        )
    return [line for part in parts for line in ("", part)]
