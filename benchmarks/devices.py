"""Every model of the tables of docs/models.md on a GPU, through the command line a user
runs, and training speed on the GPU beside the CPU of the same machine.

    python -m benchmarks.devices [--quick] [--device cuda|cpu] [--jobs J] [--only TEXT ...]

Part 1, every family on the device: each ``dgm train`` line of docs/models.md's tables, its
``--steps`` cut to ``STEPS`` (quick: ``QUICK_STEPS``), with ``--device``; then ``dgm eval
--json`` on the test split and ``dgm sample`` (the page's sample line for that run when
it shows one), both on the same device. ``--jobs`` commands share the GPU at once, so part
1 says what ran and what it gave (a hundred steps: a smoke test of the device path,
not a trained model), not how fast.

Part 2, speed: the models of ``TIMED``, one command at a time, on the device with bf16
autocast (the trainer's default on CUDA), on the device without it (``--no-amp``), and on
the machine's CPU (all its cores). ms per step comes from the run's metrics.jsonl: the
training time between the last two log lines over the steps between them, so start-up,
CUDA's first kernels and the first steps are left out. The last logged training metrics
of the two precisions are kept side by side (same seed, same batches).

Needs the data the model lines name: Fashion-MNIST ($DGM_DATA or the Debian package)
and, for the fortunes lines, /usr/share/games/fortunes (`words` ships with pip).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import fresh_run_dir, log, runs_dir, write_result
from dgm import run_dir as run_files

NAME = "devices"
SEED = 0
MODELS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "models.md"
STEPS, QUICK_STEPS = 100, 4
TIMED_STEPS = {"cuda": 200, "cpu": 20}  # quick mode: a tenth (at least 4)
QUALITY_SAMPLES = 500  # models without a likelihood: dgm eval --sample-quality on this many
# model-table rows timed in part 2 (their first cell), one per kind of network
TIMED = ("vae", "vae --architecture conv", "pixelcnn", "glow", "gan", "ddpm", "gpt")
COMMAND_TIMEOUT_S = 150


def table_commands() -> list[dict[str, Any]]:
    """The rows of the model tables of docs/models.md: the first cell (``name``), the row's
    ``dgm train`` arguments, and the arguments of the page's ``dgm sample`` line for that
    run directory (None where the page shows none)."""
    text = MODELS_PAGE.read_text()
    samples: dict[str, list[str]] = {}
    for code in re.findall(r"`(dgm sample [^`]*)`", text):
        args = shlex.split(code)[1:]
        samples.setdefault(args[1], args)
    rows = []
    for line in text.splitlines():
        found = re.search(r"`(dgm train [^`]*)`", line)
        if not (line.startswith("| `") and found):
            continue
        args = shlex.split(found.group(1))[1:]
        name = line.split(" | ")[0].lstrip("| ").replace("`", "")
        rows.append({"name": name, "train": args, "sample": samples.get(_flag(args, "--out"))})
    return rows


def _flag(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def _set(args: list[str], flag: str, value: str) -> list[str]:
    """``args`` with ``flag`` set to ``value`` (appended when absent)."""
    args = list(args)
    if flag in args:
        args[args.index(flag) + 1] = value
        return args
    return [*args, flag, value]


def _dgm(args: list[str], threads: int | None) -> dict[str, Any]:
    """Run ``python -m dgm ARGS``: exit code, wall time, the last output line and, on a
    failure, the end of stderr."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "dgm", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=COMMAND_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {"rc": None, "wall_s": COMMAND_TIMEOUT_S, "error": "timed out"}
    out = {"rc": done.returncode, "wall_s": round(time.perf_counter() - t0, 2)}
    lines = done.stdout.strip().splitlines()
    out["last_line"] = lines[-1] if lines else ""
    if done.returncode != 0:
        out["error"] = done.stderr.strip()[-800:]
    return out


def _metrics(run: Path) -> list[dict[str, Any]]:
    path = run / run_files.METRICS
    return run_files.read_metrics(path) if path.is_file() else []


def _ms_per_step(records: list[dict[str, Any]]) -> float | None:
    """Training ms per step between the last two log lines (None with fewer than two)."""
    timed = [r for r in records if "train_time_s" in r and "step" in r]
    if len(timed) < 2:
        return None
    a, b = timed[-2], timed[-1]
    if b["step"] <= a["step"]:
        return None
    return 1000 * (b["train_time_s"] - a["train_time_s"]) / (b["step"] - a["step"])


def _losses(records: list[dict[str, Any]]) -> dict[str, float]:
    """The last log line's training metrics (no step, time or learning rate)."""
    if not records:
        return {}
    skip = {"step", "lr", "train_time_s"}
    return {k: v for k, v in records[-1].items() if k not in skip and isinstance(v, float)}


def smoke(row: dict[str, Any], folder: Path, steps: int, device: str, threads: int) -> dict:
    """Part 1 for one table row: train, eval and sample on ``device``."""
    run = fresh_run_dir(folder / re.sub(r"[^a-z0-9]+", "-", row["name"].lower()).strip("-"))
    train = _set(row["train"], "--steps", str(min(int(_flag(row["train"], "--steps")), steps)))
    train = _set(train, "--out", str(run))
    train = _set(_set(train, "--device", device), "--log-every", str(max(1, steps // 2)))
    train = _set(_set(train, "--eval-every", "0"), "--sample-every", "0")
    result: dict[str, Any] = {"name": row["name"], "train_args": train}
    result["train"] = _dgm(train, threads)
    if result["train"]["rc"] != 0:
        return result
    result["train_metrics"] = _losses(_metrics(run))
    evaluated = _dgm(["eval", str(run), "--device", device, "--json"], threads)
    if "no likelihood" in evaluated.get("error", ""):  # a GAN: its samples are measured
        quality = ["--sample-quality", "--num-samples", str(QUALITY_SAMPLES)]
        evaluated = _dgm(["eval", str(run), "--device", device, "--json", *quality], threads)
    if evaluated["rc"] == 0:
        try:
            numbers = json.loads(evaluated.pop("last_line"))
            evaluated["numbers"] = {k: v for k, v in numbers.items() if isinstance(v, int | float)}
        except (json.JSONDecodeError, AttributeError) as e:  # keep the row, note the output
            evaluated["error"] = f"dgm eval --json printed no JSON object: {e}"
    result["eval"] = evaluated
    sample = ["sample", str(run), *(row["sample"] or ["sample", "", "-n", "16"])[2:]]
    sample = _set(_set(sample, "--out", str(run / "drawn.png")), "--device", device)
    result["sample_args"] = sample
    result["sample"] = _dgm(sample, threads)
    ok = [result.get(k, {}).get("rc") == 0 for k in ("train", "eval", "sample")]
    log(f"  {row['name'][:40]:40s} train/eval/sample ok: {ok} {_figure(result)}")
    return result


def timed_runs(row: dict[str, Any], folder: Path, quick: bool, device: str) -> dict[str, Any]:
    """Part 2 for one table row: ms per step and the last training metrics on ``device``
    with and without bf16 autocast, and on the CPU."""
    out: dict[str, Any] = {"name": row["name"]}
    setups = {f"{device}_bf16": (device, []), f"{device}_fp32": (device, ["--no-amp"])}
    if device != "cpu":
        setups["cpu"] = ("cpu", [])
    for label, (where, extra) in setups.items():
        steps = max(4, TIMED_STEPS[where] // (10 if quick else 1))
        run = fresh_run_dir(folder / f"{re.sub(r'[^a-z0-9]+', '-', row['name'].lower())}-{label}")
        args = _set(row["train"], "--steps", str(steps))
        args = _set(_set(args, "--out", str(run)), "--device", where)
        args = _set(_set(args, "--log-every", str(steps // 4)), "--eval-every", "0")
        args = [*_set(args, "--sample-every", "0"), *extra]
        done = _dgm(args, None)
        records = _metrics(run)
        out[label] = {
            "rc": done["rc"],
            "steps": steps,
            "wall_s": done["wall_s"],
            "ms_per_step": _ms_per_step(records),
            "metrics": _losses(records),
            **({"error": done["error"]} if "error" in done else {}),
        }
    return out


def run(
    quick: bool, device: str, jobs: int, only: list[str] | None, budget_s: float | None
) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks.devices: torch sees no CUDA device (use --device cpu)")
    t0 = time.perf_counter()
    rows = table_commands()
    if only:
        rows = [r for r in rows if any(text in r["name"] for text in only)]
    folder = runs_dir(NAME, quick)
    steps = QUICK_STEPS if quick else STEPS
    threads = max(1, (os.cpu_count() or 1) // jobs)
    log(f"part 1: {len(rows)} table rows, {steps} steps each on {device}, {jobs} at a time")

    def guarded(row: dict[str, Any]) -> dict[str, Any]:  # one row's surprise ends only it
        try:
            return smoke(row, folder, steps, device, threads)
        except Exception as e:  # recorded in the results, not raised
            log(f"  {row['name'][:40]:40s} benchmark error: {e!r}")
            return {"name": row["name"], "benchmark_error": repr(e)}

    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        smokes = list(pool.map(guarded, rows))
    speeds: list[dict[str, Any]] = []

    def save() -> Path:  # after part 1 and after every timed model: a cut-off run keeps them
        return write_result(
            NAME,
            {
                "description": __doc__.split("\n\n")[0].replace("\n", " "),
                "device": device,
                "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                "smoke_steps": steps,
                "jobs": jobs,
                "smoke": smokes,
                "speed": speeds,
            },
            quick=quick,
            seed=SEED,
            steps=steps,
            wall_time_s=time.perf_counter() - t0,
        )

    path = save()
    timed = [r for r in rows if r["name"] in TIMED]
    log(f"part 2: {len(timed)} models timed one at a time")
    for r in timed:
        if budget_s is not None and time.perf_counter() - t0 > budget_s:
            log(f"  time budget of {budget_s:.0f} s spent: {r['name']} and later not timed")
            break
        speeds.append(timed_runs(r, folder, quick, device))
        log(f"  {json.dumps(speeds[-1])[:300]}")
        path = save()
    log(f"wrote {path}")


def _cell(result: dict[str, Any] | None) -> str:
    if result is None:
        return "–"
    return "ok" if result.get("rc") == 0 else "**failed**"


def _figure(smoke: dict[str, Any]) -> str:
    numbers = smoke.get("eval", {}).get("numbers", {})
    if "bits_per_dim" in numbers:
        return f"{numbers['bits_per_dim']:.3f} bits/dim"
    if "nll" in numbers:
        return f"{numbers['nll']:.3f} nats"
    error = smoke.get("eval", {}).get("error", "")
    return "no likelihood" if "no likelihood" in error else "–"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines: what ran on the device, and ms per step on it beside the CPU."""
    dev = record.get("cuda_device") or record["device"]
    cpu = record.get("machine", {}).get("cpu_model", "?")
    cores = record.get("machine", {}).get("usable_cores", "?")
    lines = [
        f"Every row of the model table on {dev}, through the CLI "
        f"(`python -m benchmarks.devices`): its `dgm train` line cut to "
        f"{record['smoke_steps']} steps with `--device {record['device']}`, then `dgm eval "
        f"--device {record['device']}` on the test split and `dgm sample --device "
        f"{record['device']}`; {record['jobs']} commands shared the device at once. These short "
        "runs test the device path; the figures are not those of trained models.",
        "",
        "| model (table row) | train | eval | test NLL after the short run | sample |",
        "|---|---|---|---:|---|",
    ]
    for s in record["smoke"]:
        name = s["name"].replace("|", "\\|")
        lines.append(
            f"| `{name}` | {_cell(s.get('train'))} | {_cell(s.get('eval'))} | {_figure(s)} "
            f"| {_cell(s.get('sample'))} |"
        )
    failed = [s for s in record["smoke"] if s.get("train", {}).get("rc") != 0]
    for s in failed:
        error = s.get("train", {}).get("error") or s.get("benchmark_error", "")
        why = error.strip().splitlines()[-1:] or ["?"]
        lines.append(f"\n`{s['name']}` failed: {why[0][:200]}")
    if record.get("speed"):
        d = record["device"]
        lines += [
            "",
            f"Training speed, one command at a time on the same machine ({dev}; its CPU: "
            f"{cpu}, {cores} cores): ms per step between the last two log lines, "
            f"{TIMED_STEPS['cuda']} steps on the GPU and {TIMED_STEPS['cpu']} on the CPU, the "
            "models.md line's batch size; loss: the last logged training loss of each precision "
            "(same seed and batches).",
            "",
            "| model | GPU bf16 ms/step | GPU fp32 ms/step | CPU ms/step | CPU / GPU bf16 "
            "| loss bf16 | loss fp32 |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for s in record["speed"]:
            bf, fp, c = s.get(f"{d}_bf16", {}), s.get(f"{d}_fp32", {}), s.get("cpu", {})
            ratio = (
                f"{c['ms_per_step'] / bf['ms_per_step']:.1f}×"
                if c.get("ms_per_step") and bf.get("ms_per_step")
                else "–"
            )
            loss = [next(iter(x.get("metrics", {}).values()), None) for x in (bf, fp)]
            lines.append(
                f"| `{s['name']}` | {_ms(bf.get('ms_per_step'))} | {_ms(fp.get('ms_per_step'))} "
                f"| {_ms(c.get('ms_per_step'))} | {ratio} | {_ms(loss[0])} | {_ms(loss[1])} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help=f"{QUICK_STEPS} steps per row")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--jobs", type=int, default=4, help="part 1 commands at once (default 4)")
    p.add_argument("--only", nargs="+", default=None, help="rows whose name contains TEXT")
    p.add_argument(
        "--budget-s", type=float, default=None, help="time no more part 2 models after this"
    )
    ns = p.parse_args(argv)
    if ns.jobs < 1:
        p.error(f"--jobs must be >= 1, got {ns.jobs}")
    run(ns.quick, ns.device, ns.jobs, ns.only, ns.budget_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
