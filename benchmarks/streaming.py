"""Streaming shards (``--data shards``): throughput against the in-memory path, and memory
when the shards are larger than a memory cap.

- Throughput: the CS236 VAE (z = 10, MLP 300-300, batch 97) trained by ``Trainer.fit`` on
  statically binarized Fashion-MNIST (sklearn's 8x8 digits when it is absent), from memory
  and from shards (``dgm.data.shards.convert``, 10,000 examples per shard) read by 0, 1 and
  2 DataLoader workers; one thread, the conditions alternating over rounds; examples/s
  over the steps of ``fit`` (the DataLoader's start included, the up-front data check
  not).
- Memory: the same VAE, batch 1000, trained in a subprocess for whole epochs from shards
  holding the train split K times (K = 4, about 690 MB of float32 pixels; 1 in --quick),
  1 worker. The subprocess records its memory (the proportional set size, PSS, of the
  main process plus its worker, from /proc: pages the forked worker shares with its parent
  count once; also its anonymous part, without the pages of mapped shard files) after
  setting up and in the middle of every epoch; the run passes when the
  growth over the set-up figure stays under a cap of a quarter of the shards' size (the
  interpreter and torch alone take more than that cap, so the cap is on the growth).

Not measured here: two processes with the same global batch (the tests check that two
gloo processes read every example once per epoch, resume exactly and score the same
validation NLL as one).

    python -m benchmarks.streaming [--quick]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
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
    write_result,
)
from dgm.data import DataConfig, TensorData
from dgm.data.shards import ShardData, convert
from dgm.train import TrainConfig, Trainer

NAME = "streaming"
SEED = 0
SHARD_SIZE = 10000
WORKERS = (0, 1, 2)
MEMORY_BATCH = 1000

CHILD = textwrap.dedent("""
    import json, os, sys, torch
    import dgm
    from dgm.data.shards import ShardData
    from dgm.train import TrainConfig, Trainer
    torch.set_num_threads(1)

    def pss_mb(field="Pss:"):  # this process and its DataLoader workers: shared pages once
        pids = [os.getpid()]
        try:
            kids = open(f"/proc/{{os.getpid()}}/task/{{os.getpid()}}/children").read().split()
            pids += [int(p) for p in kids]
        except OSError:
            pass
        total = 0
        for pid in pids:
            try:
                for line in open(f"/proc/{{pid}}/smaps_rollup"):
                    if line.startswith(field):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    data = ShardData({root!r}, "train")
    steps = {epochs} * (-(-len(data) // {batch}))  # whole epochs of one worker's batches
    cfg = TrainConfig(steps=steps, batch_size={batch}, lr={lr}, eval_every=0, sample_every=0,
                      log_every=0, checkpoint_every=0, device="cpu", workers=1, seed=0)
    model = dgm.create("vae", data.event_shape, **{model!r})
    trainer = Trainer(model, data, None, cfg, progress=False)
    record = {{"setup_mb": pss_mb(), "setup_anon_mb": pss_mb("Pss_Anon:"), "epochs_mb": [],
               "epochs_anon_mb": [], "examples": len(data), "steps": steps}}
    stream, nxt = trainer.stream, trainer.stream.next
    half = steps // {epochs} // 2
    def watched():  # memory in the middle of every epoch (same point of the worker's life)
        batch = nxt()
        if stream.position == half:
            record["epochs_mb"].append(pss_mb())
            record["epochs_anon_mb"].append(pss_mb("Pss_Anon:"))
        return batch
    stream.next = watched
    trainer.fit()
    print(json.dumps(record))
""")


def _binarized_train() -> tuple[str, TensorData]:
    """Fashion-MNIST's train split binarized (static), or the digits' when it is absent."""
    try:
        data = DataConfig("fashion_mnist", root=fashion_mnist_root(), binarize="static")
        return "fashion_mnist", data.load("train")
    except (OSError, ValueError):
        return "digits", DataConfig("digits", binarize="static").load("train")


def _examples_per_s(data: Any, workers: int, steps: int, event_shape: Any) -> float:
    cfg = TrainConfig(
        steps=steps, batch_size=CS236_BATCH, lr=CS236_LR, eval_every=0, sample_every=0,
        log_every=0, checkpoint_every=0, device="cpu", workers=workers, seed=SEED,
    )  # fmt: skip
    torch.manual_seed(SEED)
    model = dgm.create("vae", event_shape, **CS236_MODEL)
    trainer = Trainer(model, data, None, cfg, progress=False)
    t0 = time.perf_counter()
    trainer.fit()
    return steps * CS236_BATCH / (time.perf_counter() - t0)


def _memory(root: Path, epochs: int) -> dict[str, Any]:
    script = CHILD.format(
        root=str(root), epochs=epochs, batch=MEMORY_BATCH, lr=CS236_LR, model=dict(CS236_MODEL)
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    if res.returncode != 0:
        raise RuntimeError(f"the memory run failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> dict[str, Any]:
    t_start = time.perf_counter()
    steps, rounds = (60, 1) if quick else (200, 3)
    copies, epochs = (1, 1) if quick else (4, 2)
    torch.set_num_threads(1)
    name, train = _binarized_train()
    work = common.runs_dir(NAME, quick)
    shutil.rmtree(work, ignore_errors=True)
    convert(lambda split: train, work / "shards", SHARD_SIZE, splits=("train",))
    shards = ShardData(work / "shards", "train")

    conditions = ["memory", *(f"workers_{w}" for w in WORKERS)]
    speeds: dict[str, list[float]] = {c: [] for c in conditions}
    for r in range(rounds):
        order = conditions if r % 2 == 0 else conditions[::-1]
        for c in order:
            data, workers = (train, 0) if c == "memory" else (shards, int(c.split("_")[1]))
            speeds[c].append(_examples_per_s(data, workers, steps, train.event_shape))
        log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{c} {speeds[c][-1]:.0f}" for c in order))

    def repeated(split: str) -> TensorData:  # the train split, `copies` times over
        return TensorData(torch.cat([train.x] * copies), torch.cat([train.y] * copies))

    convert(repeated, work / "big", SHARD_SIZE, splits=("train",))
    size_mb = sum(p.stat().st_size for p in (work / "big").glob("*.npy")) / 2**20
    memory = _memory(work / "big", epochs)
    growth = max(memory["epochs_mb"]) - memory["setup_mb"]
    memory |= {
        "copies": copies,
        "epochs": epochs,
        "shards_mb": size_mb,
        "cap_mb": size_mb / 4,
        "growth_mb": growth,
        "within_cap": growth < size_mb / 4,
    }
    log(f"  memory: {memory}")
    shutil.rmtree(work / "big")
    payload = {
        "dataset": name,
        "examples": len(train),
        "batch_size": CS236_BATCH,
        "rounds": rounds,
        "steps_per_condition": steps,
        "examples_per_s": {c: common.summary(v) for c, v in speeds.items()},
        "ratio_to_memory": {
            c: common.paired_ratio(speeds[c], speeds["memory"]) for c in conditions[1:]
        },
        "memory": memory,
        "threads": [1],
    }
    write_result(
        NAME,
        payload,
        quick=quick,
        seed=SEED,
        steps=steps,
        wall_time_s=time.perf_counter() - t_start,
    )
    return payload


def table(record: dict[str, Any]) -> list[str]:
    """Markdown lines for docs/benchmarks.md: examples/s per condition, then the memory run."""
    labels = {"memory": "in memory (TensorData)"}
    labels |= {f"workers_{w}": f"shards, {w} worker(s)" for w in WORKERS}
    rows = []
    for c, label in labels.items():
        s = record["examples_per_s"].get(c)
        if s is None:
            continue
        ratio = record["ratio_to_memory"].get(c)
        spread = f"{fmt(s['min'], 0)}–{fmt(s['max'], 0)}"
        rows.append([label, fmt(s["median"], 0), spread, "1" if ratio is None else fmt(ratio)])
    m = record["memory"]
    return [
        "## Streaming shards",
        "",
        f"The CS236 VAE (batch {record['batch_size']}, one thread) on {record['dataset']} "
        f"({record['examples']} examples), {record['steps_per_condition']} steps per "
        f"condition, {record['rounds']} alternating round(s) (`python -m benchmarks.streaming`; "
        "× in memory is the median of the per-round ratios):",
        "",
        *markdown_table(["data", "examples/s (median)", "rounds' range", "× in memory"], rows),
        "",
        f"Memory: {m['copies']}× the train split as shards ({fmt(m['shards_mb'], 0)} MB), "
        f"{m['epochs']} epoch(s) at batch {MEMORY_BATCH} with 1 worker: memory (PSS) "
        f"{fmt(m['setup_mb'], 0)} MB after set-up, "
        + ", ".join(fmt(v, 0) for v in m["epochs_mb"])
        + " MB in the middle of each epoch (anonymous memory "
        + ", ".join(fmt(v, 0) for v in [m["setup_anon_mb"], *m["epochs_anon_mb"]])
        + f" MB); growth {fmt(m['growth_mb'], 0)} MB against a cap "
        f"of {fmt(m['cap_mb'], 0)} MB (a quarter of the shards): "
        + ("within it." if m["within_cap"] else "over it."),
    ]


def main(argv: list[str] | None = None) -> int:
    return common.main(
        run, __doc__, "one round, 1x the data (about a minute); results/quick/", argv
    )


if __name__ == "__main__":
    raise SystemExit(main())
