"""The reference runs' DDPM and gated PixelCNN on a GPU for a fixed time, beside their CPU
runs (issue 21 §2): how far each gets in ``--minutes`` on the device, at what ms/step.

Each row of ``ROWS`` is trained from scratch exactly as ``benchmarks.reference`` trains it
(same data, batch, learning rate, schedule, seed; one evaluation per epoch), on
``--device`` (CUDA: the trainer's bf16 autocast), until ``--minutes`` of wall clock are
spent (a SIGTERM the trainer turns into a checkpoint, as a reference slice ends). For each
row the table gives the steps and epochs reached, the device's ms/step, the best valid NLL
reached and its epoch; beside them the CPU reference run of the same row, one thread (its
folder runs/bench/reference/<row>, else its record in results/reference.json): its
ms/step, its valid NLL at the same epoch when it has got that far, and the CPU hours that
many steps took it at its ms/step.
ms/step is the median over consecutive log lines of the training time between them (the
trainer's own clock: evaluation, checkpoints and start-up are left out).

Short: with the default 3 minutes a row, about 8 minutes in all with start-up and the
evaluations, so it fits one lease of a GPU machine (``python -m benchmarks.devices`` is the
longer check of every model on the device). Needs Fashion-MNIST ($DGM_DATA or the Debian
package) on the machine that runs it.

    python -m benchmarks.devices_reference [--minutes M] [--device cuda|cpu] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from benchmarks import reference
from benchmarks.common import (
    fmt,
    fresh_run_dir,
    log,
    markdown_table,
    result_path,
    runs_dir,
    write_result,
)

NAME = "devices_reference"
SEED = reference.SEED
ROWS = ("ddpm", "pixelcnn_binary")
MINUTES = 3.0
WHOLE_SLICES = "whole slices"  # a CPU ms/step of CPU seconds over steps, evaluation included


def summary(run: Path) -> dict[str, Any] | None:
    """A run directory's steps, epochs, ms/step (median over its consecutive log lines,
    none across the start of a resumed slice), valid curve and best; None when it has no
    metrics."""
    from dgm import run_dir as rd
    from dgm.train.config import saved_config

    path = run / rd.METRICS
    if not path.is_file():
        return None
    per_epoch = saved_config(rd.read_json(run / rd.CONFIG)["train"]).eval_every
    lines = rd.read_metrics(path)
    curve = [[r["step"] / per_epoch, r["valid/nll"]] for r in lines if "valid/nll" in r]
    best = min(curve, key=lambda p: p[1]) if curve else None
    step = rd.checkpoint_step(run) or 0
    return {
        "steps": step,
        "steps_per_epoch": per_epoch,
        "epochs": step / per_epoch,
        "ms_per_step": reference.train_ms_per_step(run, lines),
        "ms_per_step_of": "training steps",
        "curve": curve,
        "best_epoch": best[0] if best else None,
        "best_valid_nll": best[1] if best else None,
        "event_shape": rd.read_json(run / rd.CONFIG)["event_shape"],
    }


def recorded(name: str, quick: bool) -> dict[str, Any] | None:
    """A CPU reference run's figures from its record in the results file (committed with
    the code), as ``summary`` gives them from its folder: runs/ is not tracked, and a fresh
    machine (a lent GPU's) has none. A record from before ``ms_per_step`` was kept gives the
    CPU seconds per step of its whole slices (evaluation and checkpoints included), marked."""
    path = result_path(reference.NAME, quick=quick)
    r = json.loads(path.read_text()).get("runs", {}).get(name, {}) if path.is_file() else {}
    if not r.get("curve"):
        return None
    steps = round(r["epochs"] * r["steps_per_epoch"])
    whole = 1000 * r["cpu_s"] / steps if r.get("ms_per_step") is None and steps else None
    return {
        "steps": steps,
        "steps_per_epoch": r["steps_per_epoch"],
        "epochs": r["epochs"],
        "ms_per_step": r["ms_per_step"] if whole is None else whole,
        "ms_per_step_of": "training steps" if whole is None else WHOLE_SLICES,
        "curve": r["curve"],
        "best_epoch": r["best_epoch"],
        "best_valid_nll": r["best_valid_nll"],
        "event_shape": r["event_shape"],
    }


def cpu_beside(cpu: dict[str, Any] | None, device: dict[str, Any]) -> dict[str, Any] | None:
    """The CPU run's figures beside the device's: its ms/step, its valid NLL at the
    device's best epoch (None when the CPU run has not reached it) and the CPU hours the
    device's steps take at the CPU's ms/step."""
    if cpu is None:
        return None
    at = {epoch: nll for epoch, nll in cpu["curve"]}
    ms = cpu["ms_per_step"]
    return {
        "ms_per_step": ms,
        "ms_per_step_of": cpu["ms_per_step_of"],
        "epochs": cpu["epochs"],
        "valid_nll_at_device_best_epoch": at.get(device["best_epoch"]),
        "hours_for_device_steps": None if ms is None else ms * device["steps"] / 3.6e6,
    }


def run(quick: bool, minutes: float, device: str) -> dict[str, Any]:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks.devices_reference: torch sees no CUDA device (--device cpu)")
    t0 = time.monotonic()
    root = runs_dir(NAME, quick)
    cpu_root = runs_dir(reference.NAME, quick)
    rows = []
    for name in ROWS:
        ref = next(r for r in reference.RUNS if r.name == name)
        fresh_run_dir(root / name)
        log(f"{name}: {minutes} minutes on {device}")
        reference.advance(ref, root, time.monotonic() + 60 * minutes, quick=quick, device=device)
        on_device = summary(root / name)
        if on_device is None:
            log(f"{name}: no metrics written (too short a time?)")
            continue
        cpu = cpu_beside(summary(cpu_root / name) or recorded(name, quick), on_device)
        rows.append({"name": name, "label": ref.label, "device": on_device, "cpu": cpu})
        log(f"{name}: {on_device['steps']} steps, best valid {fmt(on_device['best_valid_nll'])}")
    payload = {
        "description": "the reference DDPM and gated PixelCNN trained for a fixed time on the "
        "device, beside their one-thread CPU reference runs",
        "device": device,
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "minutes": minutes,
        "rows": rows,
    }
    path = write_result(
        NAME, payload, quick=quick, seed=SEED, steps=None, wall_time_s=time.monotonic() - t0
    )
    log("\n".join(table(payload)))
    log(f"wrote {path}")
    return payload


def _nll(nll: float | None, shape: list[int]) -> str:
    """Nats, and bits/dim for an image."""
    if nll is None:
        return "–"
    if len(shape) < 3:
        return f"{nll:.2f}"
    return f"{nll:.2f} ({nll / (math.prod(shape) * math.log(2)):.3f} bits/dim)"


def table(record: dict[str, Any]) -> list[str]:
    where = record.get("cuda_device") or record["device"]
    header = ["run", "device", "steps (epochs) in the time", "ms/step", "best valid NLL (epoch)",
              "CPU ms/step", "CPU ÷ device", "CPU valid NLL at that epoch",
              "CPU hours for those steps"]  # fmt: skip
    rows = []
    for r in record["rows"]:
        d, c, shape = r["device"], r["cpu"] or {}, r["device"]["event_shape"]
        mark = "†" if c.get("ms_per_step_of") == WHOLE_SLICES else ""
        ratio = (
            f"{c['ms_per_step'] / d['ms_per_step']:.1f}×{mark}"
            if c.get("ms_per_step") and d.get("ms_per_step")
            else "–"
        )
        rows.append(
            [
                f"{r['name']}: {r['label']}",
                where,
                f"{d['steps']} ({d['epochs']:.2f})",
                fmt(d["ms_per_step"], 1),
                f"{_nll(d['best_valid_nll'], shape)} ({fmt(d['best_epoch'], 0)})",
                fmt(c.get("ms_per_step"), 1) + mark,
                ratio,
                _nll(c.get("valid_nll_at_device_best_epoch"), shape),
                fmt(c.get("hours_for_device_steps")),
            ]
        )
    return [
        f"**Reference rows on {where} for {record['minutes']:g} minutes each** (`python -m "
        "benchmarks.devices_reference`): the DDPM and gated PixelCNN of the reference runs, "
        "trained from scratch as those runs are (same data, batches, schedule and seed), "
        f"on `{record['device']}` (bf16 autocast on CUDA) until the time is spent; beside "
        "them the one-thread CPU reference run of the same row. ms/step: median over the "
        "log lines of the trainer's training time (evaluation and checkpoints left out). "
        "The CPU ms/step come from reference slices that shared the 2-core machine with "
        "another run; † marks a CPU run whose folder is gone and whose record predates its "
        "step time: CPU seconds over steps of its whole slices, evaluation and checkpoints "
        "included, so that ratio overstates the device's gain.",
        "",
        *markdown_table(header, rows),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--minutes", type=float, default=MINUTES, help="wall clock per row")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument(
        "--quick", action="store_true", help="the reference runs' quick data; results/quick/"
    )
    ns = p.parse_args(argv)
    if ns.minutes * 60 < reference.SLICE_FLOOR_S:
        p.error(
            f"--minutes {ns.minutes}: give at least {reference.SLICE_FLOOR_S / 60:g} (a shorter "
            "slice is not started)"
        )
    run(ns.quick, ns.minutes, ns.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
