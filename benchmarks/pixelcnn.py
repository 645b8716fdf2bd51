"""PixelCNN: fast against naive sampling, and test NLL on binarized 28x28 images.

Two parts, each saved as soon as it is done (partial results survive a crash):

- speed: ``sample(n, fast=True)`` (``IncrementalSampler``: every layer's activations
  cached, one output position per layer per sub-pixel; the gated network's vertical
  stack once per row) against ``sample(n, fast=False)`` (the naive loop, one full network
  pass per pixel) for a batch of 4 binary images, 28x28 and 32x32, plain and gated, 64
  hidden channels, 7 layers, untrained weights (the cost does not depend on them), same
  seed on both sides, one torch thread. Both sides are checked to draw the same pixels;
  we report ms per batch of CPU time of the process (median over the repeats, sides
  alternating; rows saved before that was recorded show wall time) and the ratio naive /
  fast (median of the paired ratios, with their min and max). Where the naive loop is
  too slow in full (``NAIVE_ROWS``: gated 32x32) it runs the first rows only, stopped by a
  hook on the network, and its time is scaled by height / rows (every pixel costs one full
  pass over the whole image, so the time per pixel is constant); the pixels are compared
  on those rows.
- images: plain and gated PixelCNN trained by dgm's trainer on statically binarized
  Fashion-MNIST (the VAE table's data and binarization: every pixel drawn once from
  Bernoulli(grey level) with the data seed), and MNIST too when ``$DGM_MNIST_ROOT``
  names its IDX files: test NLL in nats per example (exact), steps, wall time. Beside
  the MNIST rows the published binarized-MNIST PixelCNN figures, with their binarization.

Full mode keeps within about 15 minutes of one CPU core on Fashion-MNIST alone (small
networks, 1500 steps); quick mode (``--quick``, under a minute) samples 14x14 images with
narrower networks and trains 20 steps, evaluating on the first 200 test images.

``--part speed-28`` (about 6 CPU minutes) or ``--part speed-32`` (about 10) reruns the
sampling rows of one image size alone into the existing results file; ``speed-32-plain``
(about 1.5) or ``speed-32-gated`` (about 1: 50 CPU s, the naive loop on 3 rows) one row.

    python -m benchmarks.pixelcnn [--quick] [--part speed-SIZE[-VARIANT]]
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import dgm
from benchmarks import common
from benchmarks.common import (
    binarized_image_data,
    busy_warning,
    first_examples,
    fmt,
    log,
    markdown_table,
    runs_dir,
    slug,
    train_briefly,
    write_result,
)
from dgm import run_dir as run_files  # not `run_dir`: the runs' own paths use that name
from dgm.data import DataConfig
from dgm.evaluate.likelihood import evaluate

NAME = "pixelcnn"
SEED = 0
THREADS = 1  # steady on a shared 2-core machine (benchmarks/threads.py)
SPEED_MODEL = {"hidden_channels": 64, "num_layers": 7}  # the "realistic size"
SPEED_SIZES = (28, 32)  # Fashion-MNIST's images, and CIFAR's size
SPEED_BATCH, SPEED_REPEATS = 4, 3
# rows whose naive loop is too slow in full (gated 28x28 took 324-1065 s of wall time per
# batch at load 8-11): the naive loop runs this many rows, its time extrapolated
NAIVE_ROWS = {("gated", 32): 3}
IMAGE_MODELS: dict[str, dict[str, Any]] = {  # label -> config: small enough for a CPU
    "pixelcnn": {"variant": "plain", "hidden_channels": 32, "num_layers": 7},
    "gated pixelcnn": {"variant": "gated", "hidden_channels": 32, "num_layers": 5},
}
IMAGE_BATCH, IMAGE_LR = 32, 2e-3
REFERENCES = [  # published negative log-likelihoods on binarized MNIST, nats per example
    {
        "model": "pixelcnn",
        "nll": 81.30,
        "source": "van den Oord, Kalchbrenner & Kavukcuoglu 2016 (arXiv:1601.06759), Table 4",
        "binarization": "static: MNIST binarized once by sampling each pixel from its grey "
        "level (Salakhutdinov & Murray 2008; the fixed files of Larochelle)",
    },
    {
        "model": "pixelcnn",
        "nll": 81.45,
        "source": "pytorch-generative README",
        "binarization": "dynamic: a fresh Bernoulli draw of every train and test image "
        "each time it is loaded (pytorch_generative/datasets.py, _dynamically_binarize)",
    },
]


# -- speed -------------------------------------------------------------------------------------


class _PrefixDrawn(Exception):
    """Raised by ``naive_prefix``'s hook to stop the naive loop after the prefix."""


def naive_prefix(
    model: Any, batch: int, rows: int, generator: torch.Generator
) -> tuple[Tensor, int]:
    """The naive loop (``sample(fast=False)``) stopped once its first ``rows`` image rows
    are drawn: those rows (B, C, rows, W) and the network passes run. The loop runs one
    full network pass per sub-pixel, so a forward pre-hook on the network counts the
    passes and stops the loop at the first pass after the prefix, whose input holds the
    drawn rows (scaled to [-1, 1]: a binary 1 is above 0)."""
    C, _, W = model.event_shape
    limit, seen = rows * W * C, {"passes": 0}

    def stop_after_prefix(module: torch.nn.Module, args: tuple[Tensor, ...]) -> None:
        if seen["passes"] == limit:
            seen["image"] = args[0]  # (B, C, H, W), scaled
            raise _PrefixDrawn
        seen["passes"] += 1

    handle = model.net.register_forward_pre_hook(stop_after_prefix)
    try:
        full = model.sample(batch, generator=generator, fast=False)
        return full[:, :, :rows], seen["passes"]  # the prefix was the whole image
    except _PrefixDrawn:
        return (seen["image"][:, :, :rows] > 0).to(model.dtype), seen["passes"]
    finally:
        handle.remove()


def extrapolate_naive(prefix_ms: float, rows: int, height: int) -> float:
    """The naive loop's time for a whole image of ``height`` rows from its time on the
    first ``rows``: every sub-pixel costs one full network pass over the whole canvas,
    whatever has been drawn, so the time per pixel is constant and the image costs
    height / rows times the prefix."""
    if not 0 < rows <= height:
        raise ValueError(f"rows must be in 1..{height} (the image's height), got {rows}")
    return prefix_ms * height / rows


def sampling_speed(
    variant: str,
    config: dict[str, Any],
    size: int,
    batch: int,
    repeats: int,
    naive_rows: int | None = None,
) -> dict[str, Any]:
    """ms per batch of fast and naive sampling, interleaved (wall and CPU time of the
    process), and whether they agree. With ``naive_rows`` the naive loop runs on the first
    ``naive_rows`` rows only and its time is extrapolated to the image
    (``extrapolate_naive``); the pixels are compared on those rows."""
    torch.manual_seed(SEED)
    model = dgm.create("pixelcnn", (1, size, size), variant=variant, **config).eval()
    ms: dict[str, list[float]] = {"fast": [], "naive": []}
    cpu_ms: dict[str, list[float]] = {"fast": [], "naive": []}
    rows = size if naive_rows is None else naive_rows
    same = True
    for r in range(repeats):
        draws = {}
        for side in ("fast", "naive") if r % 2 == 0 else ("naive", "fast"):
            gen = torch.Generator().manual_seed(SEED + r)
            t0, c0 = time.perf_counter(), time.process_time()
            if side == "naive" and rows < size:
                draws[side], _ = naive_prefix(model, batch, rows, gen)
            else:
                draws[side] = model.sample(batch, generator=gen, fast=side == "fast")
            wall, cpu = 1000 * (time.perf_counter() - t0), 1000 * (time.process_time() - c0)
            if side == "naive":
                wall, cpu = extrapolate_naive(wall, rows, size), extrapolate_naive(cpu, rows, size)
            ms[side].append(wall)
            cpu_ms[side].append(cpu)
        same = same and torch.equal(draws["fast"][:, :, :rows], draws["naive"][:, :, :rows])
    ratios = [n / f for n, f in zip(cpu_ms["naive"], cpu_ms["fast"], strict=True)]  # paired
    result = {
        "variant": variant,
        "model_config": {"variant": variant, **config},
        "image": [1, size, size],
        "batch_size": batch,
        "repeats": repeats,
        "threads": THREADS,
        "clock": "cpu",  # ratio and table from CPU time of the process (rows saved before: wall)
        "ms": {side: statistics.median(v) for side, v in ms.items()},
        "ms_all": ms,
        "cpu_ms": {side: statistics.median(v) for side, v in cpu_ms.items()},
        "cpu_ms_all": cpu_ms,
        "naive_rows": rows,  # rows the naive loop ran; fewer than the image: extrapolated
        "ratio_naive_over_fast": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "same_pixels": same,
    }
    measured = "" if rows == size else f" (extrapolated from {rows} rows)"
    log(
        f"  {variant} {size}x{size}: fast {result['cpu_ms']['fast']:.0f} ms, naive "
        f"{result['cpu_ms']['naive']:.0f} ms{measured} CPU per batch of {batch} "
        f"({result['ratio_naive_over_fast']:.1f}x, {min(ratios):.1f} to {max(ratios):.1f}), "
        f"same pixels: {same}"
    )
    if not same:
        raise SystemExit(f"the fast sampler of {variant} PixelCNN drew other pixels than the naive")
    return result


# -- images ------------------------------------------------------------------------------------


def image_run(
    label: str, data: DataConfig, *, steps: int, eval_n: int | None, quick: bool
) -> dict[str, Any]:
    """Train one model into runs/bench[/quick]/pixelcnn/<dataset>/<label> and evaluate it."""
    run_dir = runs_dir(NAME, quick) / data.name / slug(label)
    model, last, wall = train_briefly(  # evaluated below, once, on the test split
        "pixelcnn",
        data,
        run_dir,
        steps,
        batch_size=IMAGE_BATCH,
        lr=IMAGE_LR,
        seed=SEED,
        config={"warmup_steps": min(100, steps // 10)},
        **IMAGE_MODELS[label],
    )
    full = data.load("test")
    test = first_examples(full, eval_n)
    t1 = time.perf_counter()
    r = evaluate(model, test, batch_size=500)
    saved = run_files.Run.open(run_dir).config
    info = {
        "model": label,
        "dataset": data.name,
        "data": dataclasses.asdict(data),
        "model_config": saved["model_config"],
        "train_config": saved["train"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": steps,
        "batch_size": IMAGE_BATCH,
        "seed": SEED,
        "run_dir": str(run_dir),
        "weights": f"final (step {steps})",
        "ms_per_step": 1000 * last["train_time_s"] / steps,
        "train_time_s": last["train_time_s"],
        "train_wall_s": wall,
        "split": "test",
        "test_n": r["n"],
        "test_size": len(full),
        "nll": r["nll"],
        "eval_wall_s": time.perf_counter() - t1,
    }
    log(
        f"  {label} on {data.name}: {steps} steps in {wall:.0f} s, test NLL {r['nll']:.2f} "
        f"nats on {r['n']} examples"
    )
    return info


# -- the benchmark -----------------------------------------------------------------------------


def speed_key(variant: str, size: int) -> str:
    """The key of a sampling row in ``speed``: the variant alone at 28x28 (the first rows
    measured), else with the size."""
    return variant if size in (14, 28) else f"{variant} {size}x{size}"


def speed_row(quick: bool, variant: str, size: int) -> dict[str, Any]:
    """One sampling row (14x14 and a small network when ``quick``)."""
    if quick:
        config, size, batch, repeats = {"hidden_channels": 16, "num_layers": 4}, 14, 2, 1
    else:
        config, batch, repeats = SPEED_MODEL, SPEED_BATCH, SPEED_REPEATS
    naive_rows = None if quick else NAIVE_ROWS.get((variant, size))
    return sampling_speed(variant, config, size, batch, repeats, naive_rows)


def run(quick: bool = False, part: str | None = None) -> dict[str, Any]:
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        if part is None:
            return _run(quick)
        _, size, *variant = part.split("-")  # speed-SIZE[-VARIANT]
        return _rerun_speed(quick, int(size), tuple(variant) or ("plain", "gated"))
    finally:
        torch.set_num_threads(threads)


def _rerun_speed(quick: bool, size: int, variants: tuple[str, ...]) -> dict[str, Any]:
    """The sampling rows of one image size alone, each written into the existing results
    file as soon as it is measured (the file read again just before: the other rows and
    the image runs kept, also those another rerun wrote meanwhile)."""
    payload: dict[str, Any] = {}
    for variant in variants:
        row = speed_row(quick, variant, size)
        payload, wall = common.existing_payload(NAME, quick=quick)
        payload.setdefault("speed", {})[speed_key(variant, row["image"][-1])] = row
        steps = payload.get("steps_trained")
        write_result(NAME, payload, quick=quick, seed=SEED, steps=steps, wall_time_s=wall)
    return payload


def _run(quick: bool) -> dict[str, Any]:
    steps, eval_n = (20, 200) if quick else (1500, None)
    warning = busy_warning()
    if warning:
        log(warning)
    t_start = time.perf_counter()
    image_runs: list[dict[str, Any]] = []
    payload: dict[str, Any] = {
        "description": "PixelCNN: fast vs naive sampling (ms per batch, ratio); plain and "
        "gated on statically binarized images (test NLL, nats)",
        "complete": False,
        "threads": [THREADS],
        "steps_trained": 0,
        "busy_warning": warning,
        "speed": {},
        "images": {
            "runs": image_runs,
            "batch_size": IMAGE_BATCH,
            "lr": IMAGE_LR,
            "eval_examples": eval_n,
            "binarization": "static: every pixel drawn once from Bernoulli(grey level) with "
            "the data seed, as for the CS236 VAE table",
            "units": "nats per example",
            "references": REFERENCES,
            "references_note": "published binarized-MNIST numbers (larger networks, far "
            "longer training): for scale beside MNIST rows, not comparable with "
            "Fashion-MNIST ones",
        },
    }

    def save() -> Path:
        wall = time.perf_counter() - t_start
        steps_done = payload["steps_trained"]
        return write_result(
            NAME, payload, quick=quick, seed=SEED, steps=steps_done, wall_time_s=wall
        )

    for size in SPEED_SIZES[:1] if quick else SPEED_SIZES:
        for variant in ("plain", "gated"):
            payload["speed"][speed_key(variant, size)] = speed_row(quick, variant, size)
            save()
    for data in binarized_image_data():
        for label in IMAGE_MODELS:
            image_runs.append(image_run(label, data, steps=steps, eval_n=eval_n, quick=quick))
            payload["steps_trained"] += steps
            save()
    payload["complete"] = True
    log(f"pixelcnn: {len(image_runs)} image runs  -> {save()}")
    return payload


def table(record: dict[str, Any]) -> list[str]:
    """Fast vs naive sampling and binarized-image NLLs of benchmarks/pixelcnn.py."""
    out: list[str] = []
    speed = record.get("speed", {})
    rows = [speed_cells(r) for r in speed.values()]
    if rows:
        cfg = next(iter(speed.values()))["model_config"]
        out += [
            "**PixelCNN sampling, fast vs naive** (one torch thread; "
            f"{cfg.get('hidden_channels')} hidden channels, {cfg.get('num_layers')} layers, "
            "untrained weights; fast: cached activations, one position per layer per "
            "sub-pixel, naive: one full pass per pixel; median ms per batch, sides "
            "alternating, same seed; ratio: median of the paired ratios (min–max); goal ≥ 5x; "
            "clock: CPU time of the process, or wall time for rows measured before it was "
            "recorded (at load 8–11 on 2 cores: inflated and noisy). A naive time "
            '"extrapolated from N rows" ran the naive loop on the first N of the image rows '
            "(H in all) and scales that time by H/N: every pixel costs one full pass over the "
            "whole image, so the time per pixel is constant; its pixels are compared on "
            "those N rows):",
            "",
            *markdown_table(
                [
                    "variant",
                    "image",
                    "batch",
                    "clock",
                    "fast ms",
                    "naive ms",
                    "ratio",
                    "same pixels",
                ],
                rows,
            ),
            "",
        ]
    images = record.get("images", {})
    runs = images.get("runs", [])
    if runs:
        refs = images.get("references", [])
        published = "; ".join(
            f"{fmt(r['nll'])} ({r['source'].split(' (')[0]}, {r['binarization'].split(':')[0]} "
            "binarization)"
            for r in refs
        )
        out += [
            "**PixelCNN on statically binarized images** (test NLL, nats per example, exact; "
            f"batch {images.get('batch_size')}, lr {images.get('lr')}; for orientation only, "
            f"other data/budget: published binarized-MNIST PixelCNN {published or '–'}, far "
            "larger networks and budgets; Fashion-MNIST rows are not comparable with them):",
            "",
            *markdown_table(
                ["model", "dataset", "test NLL", "steps", "train wall s", "parameters"],
                [
                    [
                        r["model"],
                        r["dataset"],
                        fmt(r["nll"]),
                        str(r["steps"]),
                        fmt(r["train_wall_s"], 0),
                        str(r["parameters"]),
                    ]
                    for r in runs
                ],
            ),
        ]
    return out


def speed_cells(r: dict[str, Any]) -> list[str]:
    """One row of the sampling table: CPU times where the row has them, else wall; a naive
    time measured on a prefix of rows is marked as extrapolated."""
    clock = "cpu_ms" if "cpu_ms" in r else "ms"
    height = r["image"][1]
    rows = r.get("naive_rows", height)
    naive = fmt(r[clock]["naive"], 0)
    if rows < height:
        naive += f" (extrapolated from {rows} rows)"
    return [
        r["variant"],
        "x".join(map(str, r["image"][1:])),
        str(r["batch_size"]),
        "CPU" if clock == "cpu_ms" else "wall",
        fmt(r[clock]["fast"], 0),
        naive,
        fmt(r["ratio_naive_over_fast"], 1)
        + (f" ({fmt(r['ratio_min'], 1)}–{fmt(r['ratio_max'], 1)})" if "ratio_min" in r else ""),
        ("yes" if r["same_pixels"] else "NO") + ("" if rows == height else f" (first {rows} rows)"),
    ]


def main(argv: list[str] | None = None) -> int:
    parts = {
        f"speed-{size}{variant}": f"rerun the {size}x{size} sampling rows{variant} alone"
        for size in SPEED_SIZES
        for variant in ("", "-plain", "-gated")
    }
    quick_help = "14x14 sampling, 20 training steps; results/quick/"
    return common.main(run, __doc__, quick_help, argv, parts)


if __name__ == "__main__":
    raise SystemExit(main())
