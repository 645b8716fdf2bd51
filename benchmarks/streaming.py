"""Streaming shards (``--data shards``): throughput against the in-memory path, and memory
when the shards are larger than a memory cap.

- Throughput: the CS236 VAE (z = 10, MLP 300-300, batch 97) trained by ``Trainer.fit`` on
  statically binarized Fashion-MNIST (sklearn's 8x8 digits when it is absent), from memory
  and from shards (``dgm.data.shards.convert``, 10,000 examples per shard) read by 0, 1 and
  2 DataLoader workers; one thread, the conditions alternating over rounds; examples/s
  over the steps of ``fit`` (the DataLoader's start included, the up-front data check
  not), the training process's CPU time per step (its threads, not the workers') and the
  machine's 1-minute load average after each round (other work on the cores).
- Formats: examples/s of reading the first 20,000 examples once (no training) as dgm's
  ``.npy`` shards (memory-mapped), WebDataset tar shards and memory-mapped Arrow IPC files
  (``benchmarks.shard_formats``), 10,000 examples per shard, a 10,000-example shuffle
  buffer, batches of 97, through a DataLoader with 0, 1 and 2 workers; the conditions
  alternate over 2 rounds; the loader's start is included.
- Memory: the same VAE, batch 1000, 1 worker, trained for whole epochs in a subprocess
  from shards holding the train split K times (K = 10: 550,000 images, 1.7 GB of float32
  pixels; K = 1 and no cap in --quick). This process samples the subprocess and its reader every
  0.2 s (``/proc/PID/smaps_rollup``, proportional set sizes, so pages a forked reader
  shares with its parent count once) and kills it when its own memory, anonymous plus
  shared-memory pages (``Pss_Anon + Pss_Shmem``: the batches in flight), passes a cap of a
  quarter of the shards' size. The pages of mapped shard files (``Pss_File``) are
  reported beside it: they are page cache, which the kernel reclaims under pressure, and
  a reader keeps the pages of the last 3 shards it read and of those its last batch drew
  on. The peaks are kept per phase (set-up, then each epoch).

Not measured here: two processes with the same global batch (the tests check that two
gloo processes read every example once per epoch, resume exactly, score the same
validation NLL as one, and with ``--rank-split rows`` have the one-process losses).

    python -m benchmarks.streaming [--quick] [--part throughput|formats|memory]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

import dgm
from benchmarks import common, shard_formats
from benchmarks.common import (
    CS236_BATCH,
    CS236_LR,
    CS236_MODEL,
    fashion_mnist_root,
    fmt,
    log,
    markdown_table,
    write_result,
)
from dgm.data import DataConfig, TensorData
from dgm.data.shard_stream import ShardStream, lean_worker
from dgm.data.shards import INDEX, ShardData, convert, read_index
from dgm.io import write_json
from dgm.train import TrainConfig, Trainer

NAME = "streaming"
SEED = 0
SHARD_SIZE = 10000
WORKERS = (0, 1, 2)
FORMATS = ("npy", "webdataset", "arrow")
FORMAT_EXAMPLES = 20000  # the first examples of the split, for the format comparison
MEMORY_BATCH = 1000
SAMPLE_S = 0.2  # seconds between two memory samples of the training subprocess
PARTS = {
    "throughput": "training examples/s from memory and from shards",
    "formats": "examples/s reading .npy, WebDataset and Arrow shards",
    "memory": "the training run on 10x the data under the memory cap",
}

CHILD = textwrap.dedent("""
    import json, sys, time, torch
    import dgm
    from dgm.data.shards import ShardData
    from dgm.train import TrainConfig, Trainer
    torch.set_num_threads(1)

    data = ShardData({root!r}, "train")
    steps = {epochs} * (-(-len(data) // {batch}))  # whole epochs of one worker's batches
    cfg = TrainConfig(steps=steps, batch_size={batch}, lr={lr}, eval_every=0, sample_every=0,
                      log_every=0, checkpoint_every=0, device="cpu", workers=1, seed=0)
    model = dgm.create("vae", data.event_shape, **{model!r})
    trainer = Trainer(model, data, None, cfg, progress=False)
    stream, nxt, epoch = trainer.stream, trainer.stream.next, [-1]
    def announced():  # tells the watching process which epoch the samples belong to
        batch = nxt()
        if stream.epoch > epoch[0]:
            epoch[0] = stream.epoch
            print(f"epoch {{epoch[0]}}", flush=True)
        return batch
    stream.next = announced
    t0 = time.perf_counter()
    trainer.fit()
    print(json.dumps({{"examples": len(data), "steps": steps,
                      "train_s": time.perf_counter() - t0}}), flush=True)
""")


def _binarized_train() -> tuple[str, TensorData]:
    """Fashion-MNIST's train split binarized (static), or the digits' when it is absent."""
    try:
        data = DataConfig("fashion_mnist", root=fashion_mnist_root(), binarize="static")
        return "fashion_mnist", data.load("train")
    except (OSError, ValueError):
        return "digits", DataConfig("digits", binarize="static").load("train")


def _examples_per_s(data: Any, workers: int, steps: int, event_shape: Any) -> tuple[float, float]:
    """(examples/s, this process's CPU ms per step) of ``fit`` from ``data``."""
    cfg = TrainConfig(
        steps=steps, batch_size=CS236_BATCH, lr=CS236_LR, eval_every=0, sample_every=0,
        log_every=0, checkpoint_every=0, device="cpu", workers=workers, seed=SEED,
    )  # fmt: skip
    torch.manual_seed(SEED)
    model = dgm.create("vae", event_shape, **CS236_MODEL)
    trainer = Trainer(model, data, None, cfg, progress=False)
    t0, cpu0 = time.perf_counter(), time.process_time()
    trainer.fit()
    cpu_ms = 1000 * (time.process_time() - cpu0) / steps
    return steps * CS236_BATCH / (time.perf_counter() - t0), cpu_ms


def _throughput(train: TensorData, shards: ShardData, steps: int, rounds: int) -> dict:
    conditions = ["memory", *(f"workers_{w}" for w in WORKERS)]
    speeds: dict[str, list[float]] = {c: [] for c in conditions}
    cpu: dict[str, list[float]] = {c: [] for c in conditions}
    loads = []
    for r in range(rounds):
        order = conditions if r % 2 == 0 else conditions[::-1]
        for c in order:
            data, workers = (train, 0) if c == "memory" else (shards, int(c.split("_")[1]))
            speed, cpu_ms = _examples_per_s(data, workers, steps, train.event_shape)
            speeds[c].append(speed)
            cpu[c].append(cpu_ms)
        loads.append(os.getloadavg()[0])
        log(
            f"  round {r + 1}/{rounds} (load {loads[-1]:.1f}): "
            + ", ".join(f"{c} {speeds[c][-1]:.0f}" for c in order)
        )
    return {
        "steps_per_condition": steps,
        "rounds": rounds,
        "load_average_1min": loads,  # after each round: the machine's other work
        "examples_per_s": {c: common.summary(v) for c, v in speeds.items()},
        # the training process's CPU per step (all its threads; the workers' not counted)
        "cpu_ms_per_step": {c: common.summary(v) for c, v in cpu.items()},
        "ratio_to_memory": {
            c: common.paired_ratio(speeds[c], speeds["memory"]) for c in conditions[1:]
        },
    }


# -- formats -----------------------------------------------------------------------------------


def _reader(fmt_: str, where: Any, event_shape: tuple[int, ...], workers: int) -> Any:
    """The IterableDataset that reads format ``fmt_`` (its files ``where``) in batches."""
    if fmt_ == "npy":
        return ShardStream(where, CS236_BATCH, seed=SEED, workers=workers)
    if fmt_ == "webdataset":
        return shard_formats.webdataset_reader(where, CS236_BATCH, SEED)
    return shard_formats.ArrowReader(where, CS236_BATCH, event_shape, SEED)


def _read_epoch(reader: Any, workers: int) -> tuple[int, float]:
    """(examples, seconds) of one pass of a DataLoader with ``workers`` over ``reader``."""
    t0 = time.perf_counter()
    loader = DataLoader(
        reader,
        batch_size=None,
        num_workers=workers,
        worker_init_fn=lean_worker if workers else None,
    )
    n = sum(len(batch[0]) for batch in loader)
    return n, time.perf_counter() - t0


def _formats(train: TensorData, work: Path, rounds: int) -> dict:
    x, y = train.x[:FORMAT_EXAMPLES].numpy(), train.y[:FORMAT_EXAMPLES].numpy()
    t0 = time.perf_counter()
    convert(lambda split: TensorData(torch.from_numpy(x), torch.from_numpy(y)),
            work / "npy", SHARD_SIZE, splits=("train",))  # fmt: skip
    files = {
        "npy": ShardData(work / "npy", "train"),
        "webdataset": shard_formats.write_webdataset(x, y, work / "wds", SHARD_SIZE),
        "arrow": shard_formats.write_arrow(x, y, work / "arrow", SHARD_SIZE),
    }
    log(f"  formats written in {time.perf_counter() - t0:.0f} s")
    sizes = {
        "npy": sum(p.stat().st_size for p in (work / "npy").glob("*.npy")),
        "webdataset": sum(p.stat().st_size for p in files["webdataset"]),
        "arrow": sum(p.stat().st_size for p in files["arrow"]),
    }
    conditions = [(f, w) for f in FORMATS for w in WORKERS]
    speeds: dict[str, list[float]] = {f"{f}_{w}": [] for f, w in conditions}
    for r in range(rounds):
        for f, w in conditions if r % 2 == 0 else conditions[::-1]:
            n, seconds = _read_epoch(_reader(f, files[f], tuple(train.event_shape), w), w)
            if n != len(x):
                raise RuntimeError(f"{f} with {w} workers read {n} of {len(x)} examples")
            speeds[f"{f}_{w}"].append(n / seconds)
        log(
            f"  formats round {r + 1}/{rounds}: "
            + ", ".join(f"{c} {v[-1]:.0f}" for c, v in speeds.items())
        )
    return {
        "rounds": rounds,
        "examples": len(x),
        "batch_size": CS236_BATCH,
        "bytes": sizes,
        "examples_per_s": {c: common.summary(v) for c, v in speeds.items()},
        "ratio_to_npy": {
            f"{f}_{w}": common.paired_ratio(speeds[f"{f}_{w}"], speeds[f"npy_{w}"])
            for f, w in conditions
            if f != "npy"
        },
    }


# -- memory ------------------------------------------------------------------------------------


def _repeated(src: Path, dst: Path, copies: int) -> float:
    """A shard directory holding ``src``'s train split ``copies`` times, as file copies
    (each copy has pages of its own); returns its size in MB."""
    index = read_index(src)
    shards, out = index["splits"]["train"], []
    dst.mkdir(parents=True)
    for c in range(copies):
        for k, shard in enumerate(shards):
            files = {}
            for key, entry in shard["files"].items():
                name = f"train-{c * len(shards) + k:05d}.{key}.npy"
                shutil.copyfile(src / entry["file"], dst / name)
                files[key] = {**entry, "file": name}
            out.append({"count": shard["count"], "files": files})
    write_json(dst / INDEX, {**index, "splits": {"train": out}})
    return sum(p.stat().st_size for p in dst.glob("*.npy")) / 2**20


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the trainer and its DataLoader reader)."""
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            for kid in open(f"/proc/{pid}/task/{task}/children").read().split():
                out += _tree(int(kid))
    except OSError:
        pass
    return out


def _sample(pid: int) -> dict[str, float]:
    """Proportional set sizes (MB) of the tree under ``pid``: own (anonymous + shared
    memory) and file-backed (mapped shards and libraries)."""
    kb = {"Pss_Anon:": 0, "Pss_Shmem:": 0, "Pss_File:": 0}
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    key = line.split(maxsplit=1)[0]
                    if key in kb:
                        kb[key] += int(line.split()[1])
        except OSError:
            pass
    return {"own": (kb["Pss_Anon:"] + kb["Pss_Shmem:"]) / 1024, "file": kb["Pss_File:"] / 1024}


def _capped_run(root: Path, epochs: int, cap_mb: float) -> dict[str, Any]:
    """Train in a subprocess, sampled every ``SAMPLE_S`` and killed above ``cap_mb`` of own
    memory; the peaks per phase (set-up, epoch 0, 1, ...)."""
    script = CHILD.format(
        root=str(root), epochs=epochs, batch=MEMORY_BATCH, lr=CS236_LR, model=dict(CS236_MODEL)
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env, start_new_session=True,
    )  # fmt: skip
    phase, lines = ["setup"], []

    def listen() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith("epoch "):
                phase[0] = line.split()[1]

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    peaks: dict[str, dict[str, float]] = {}
    killed = False
    while proc.poll() is None:
        mb = _sample(proc.pid)
        peak = peaks.setdefault(phase[0], {"own": 0.0, "file": 0.0, "total": 0.0, "samples": 0})
        peak["own"], peak["file"] = max(peak["own"], mb["own"]), max(peak["file"], mb["file"])
        peak["total"] = max(peak["total"], mb["own"] + mb["file"])
        peak["samples"] += 1
        if mb["own"] > cap_mb:
            os.killpg(proc.pid, signal.SIGKILL)  # the session this benchmark started
            killed = True
            break
        time.sleep(SAMPLE_S)
    proc.wait()
    listener.join(timeout=5)
    stderr = proc.stderr.read() if proc.stderr else ""  # type: ignore[union-attr]
    if proc.returncode != 0 and not killed:
        raise RuntimeError(f"the memory run failed: {stderr[-2000:]}")
    done = json.loads(lines[-1]) if lines and not killed else {}
    return {"killed": killed, "peaks_mb": peaks, **done}


def _memory(shards_dir: Path, work: Path, copies: int, epochs: int, quick: bool) -> dict:
    size_mb = _repeated(shards_dir, work / "big", copies)
    cap = size_mb / 4 if not quick else 4 * size_mb  # 1x: a quarter is below the interpreter
    t0 = time.perf_counter()
    record = _capped_run(work / "big", epochs, cap)
    wall = time.perf_counter() - t0
    shutil.rmtree(work / "big")
    epoch_own = [v["own"] for k, v in record["peaks_mb"].items() if k != "setup"]
    spread = max(epoch_own) - min(epoch_own) if epoch_own else None
    record |= {
        "copies": copies,
        "epochs": epochs,
        "workers": 1,
        "batch_size": MEMORY_BATCH,
        "shards_mb": size_mb,
        "cap_mb": cap,
        "cap_on": "Pss_Anon + Pss_Shmem of the trainer and its reader, sampled every 0.2 s",
        "wall_s": wall,
        "within_cap": not record["killed"] and len(epoch_own) == epochs,
        "epoch_spread_mb": spread,
        "flat": spread is not None and spread <= 0.05 * cap,
    }
    log(f"  memory: {record}")
    return record


def run(quick: bool = False, part: str | None = None) -> dict[str, Any]:
    """Every part, or with ``part`` one of them, replacing its entry in the results file."""
    t_start = time.perf_counter()
    # 1,200 steps: 2.1 epochs of Fashion-MNIST at batch 97, so each condition pays the
    # loader's start at every epoch as a training run does, amortised as in one
    steps, rounds = (60, 1) if quick else (1200, 7)
    copies, epochs = (1, 2) if quick else (10, 3)
    torch.set_num_threads(1)
    name, train = _binarized_train()
    work = common.runs_dir(NAME, quick)
    shutil.rmtree(work, ignore_errors=True)
    convert(lambda split: train, work / "shards", SHARD_SIZE, splits=("train",))
    shards = ShardData(work / "shards", "train")
    payload: dict[str, Any] = {"dataset": name, "examples": len(train), "threads": [1]}
    wall0 = 0.0
    if part is not None:
        payload, wall0 = common.existing_payload(NAME, quick=quick)
    payload["batch_size"] = CS236_BATCH

    def save() -> Any:
        wall = wall0 + time.perf_counter() - t_start
        return write_result(NAME, payload, quick=quick, seed=SEED, steps=steps, wall_time_s=wall)

    if part in (None, "throughput"):
        payload |= _throughput(train, shards, steps, rounds)
        save()
    if part in (None, "formats"):
        payload["formats"] = _formats(train, work, 2 if not quick else 1)
        save()
    if part in (None, "memory"):
        payload["memory"] = _memory(work / "shards", work, copies, epochs, quick)
        save()
    shutil.rmtree(work, ignore_errors=True)
    return payload


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for docs/benchmarks.md: examples/s per condition, the formats, then
    the memory run."""
    labels = {"memory": "in memory (TensorData)"}
    labels |= {f"workers_{w}": f"shards, {w} worker(s)" for w in WORKERS}
    rows = []
    for c, label in labels.items():
        s = record["examples_per_s"].get(c)
        if s is None:
            continue
        ratio = record["ratio_to_memory"].get(c)
        spread = f"{fmt(s['min'], 0)}–{fmt(s['max'], 0)}"
        cpu = record.get("cpu_ms_per_step", {}).get(c)
        rows.append(
            [label, fmt(s["median"], 0), spread, "1" if ratio is None else fmt(ratio)]
            + ([fmt(cpu["median"], 2)] if cpu else [])
        )
    loads = record.get("load_average_1min")
    load = f"; load average {fmt(min(loads), 1)}–{fmt(max(loads), 1)}" if loads else ""
    lines = [
        "## Streaming shards",
        "",
        f"The CS236 VAE (batch {record['batch_size']}, one thread) on {record['dataset']} "
        f"({record['examples']} examples), {record['steps_per_condition']} steps per "
        f"condition, {record['rounds']} alternating round(s) (`python -m benchmarks.streaming`; "
        f"× in memory is the median of the per-round ratios{load}):",
        "",
        *markdown_table(
            ["data", "examples/s (median)", "rounds' range", "× in memory"]
            + (["trainer CPU ms/step"] if "cpu_ms_per_step" in record else []),
            rows,
        ),
    ]
    f = record.get("formats")
    if f:
        names = {"npy": "dgm `.npy` (memory-mapped)", "webdataset": "WebDataset tar",
                 "arrow": "Arrow IPC (memory-mapped)"}  # fmt: skip
        rows = []
        for fmt_ in FORMATS:
            speeds = [f["examples_per_s"][f"{fmt_}_{w}"]["median"] for w in WORKERS]
            ratios = [f["ratio_to_npy"].get(f"{fmt_}_{w}") for w in WORKERS]
            rows.append(
                [names[fmt_], fmt(f["bytes"][fmt_] / 2**20, 0)]
                + [
                    fmt(v, 0) + ("" if q is None else f" ({fmt(q)}×)")
                    for v, q in zip(speeds, ratios, strict=True)
                ]
            )
        lines += [
            "",
            f"Reading the first {f['examples']} examples of the split once (no training; "
            f"shards of {SHARD_SIZE}, batches of {f['batch_size']}, "
            f"a 10,000-example shuffle buffer, {f['rounds']} alternating round(s); examples/s, "
            "median, and × dgm's `.npy` at the same workers):",
            "",
            *markdown_table(["format", "MB on disk", *(f"{w} worker(s)" for w in WORKERS)], rows),
        ]
    m = record.get("memory")
    if m and "peaks_mb" in m:
        phases = [k for k in m["peaks_mb"] if k != "setup"]
        per = ", ".join(
            f"epoch {int(k) + 1}: {fmt(m['peaks_mb'][k]['own'], 0)} own + "
            f"{fmt(m['peaks_mb'][k]['file'], 0)} file"
            for k in phases
        )
        setup = m["peaks_mb"].get("setup", {})
        lines += [
            "",
            f"Memory: {m['copies']}× the train split as shards ({fmt(m['shards_mb'], 0)} MB), "
            f"{m['epochs']} epoch(s) at batch {m['batch_size']} with {m['workers']} worker, "
            f"trained in a subprocess sampled every {SAMPLE_S} s and killed above a cap of "
            f"{fmt(m['cap_mb'], 0)} MB (a quarter of the shards) of its own memory "
            "(anonymous + shared, proportional set size of trainer and reader). Peak MB, own "
            "+ file-backed (mapped shards, page cache the kernel can reclaim): set-up "
            f"{fmt(setup.get('own', 0), 0)} + {fmt(setup.get('file', 0), 0)}, {per}. "
            + (
                f"Completed within the cap; epoch peaks within {fmt(m['epoch_spread_mb'], 0)} MB "
                "of each other."
                if m["within_cap"]
                else "Killed: over the cap."
            ),
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    return common.main(
        run, __doc__, "one round, 1x the data (about a minute); results/quick/", argv, PARTS
    )


if __name__ == "__main__":
    raise SystemExit(main())
