"""An endless, resumable stream of training batches.

In-memory data (``BatchStream``): each epoch's order comes from ``DistributedSampler``
(seeded by seed + epoch, sharded by rank), so a run is repeatable, a resumed run picks up
at the same (epoch, position), and N processes each see a disjoint shard whose union is
the single-process batch.

A shard directory (``ShardBatchStream``): DataLoader workers read it
(``dgm.data.shard_stream.ShardStream``), each (rank, worker) its own shards, or with
``rank_split="rows"`` each rank its rows of one process's batches; the position is the
number of batches taken in the epoch, so a resumed run gets the same batches too.

Both have ``weight``: the factor on this rank's loss that makes DistributedDataParallel's
average of the ranks' gradients the gradient of the mean over the step's whole batch
(1 when the ranks' parts are equal; ``world_size * rows / global rows`` otherwise).
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

try:
    import fcntl
except ImportError:  # not on Windows: the loader's pipe keeps its size there
    fcntl = None  # type: ignore[assignment]

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from dgm.data.dataset import Batch, take
from dgm.data.shard_stream import (
    Parcel,
    Parcels,
    ShardStream,
    Split,
    frozen_gc,
    lean_worker,
    return_free_heap,
)
from dgm.data.shards import ShardData, finish


def stream_for(
    data: Dataset,
    batch_size: int,
    *,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
    workers: int | None = None,
    rank_split: Split = "shards",
) -> BatchStream | ShardBatchStream:
    """The stream that serves ``data``: DataLoader workers over shards, else in memory."""
    if isinstance(data, ShardData):
        return ShardBatchStream(
            data,
            batch_size,
            seed=seed,
            rank=rank,
            world_size=world_size,
            device=device,
            workers=default_workers(world_size) if workers is None else workers,
            rank_split=rank_split,
        )
    return BatchStream(data, batch_size, seed=seed, rank=rank, world_size=world_size, device=device)


def default_workers(world_size: int = 1) -> int:
    """DataLoader workers per process when --workers is not given: the cores this process
    may use shared among the processes on the machine, less one for training, at most 4."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(4, (cores or 1) // world_size - 1))


PIPE_BYTES = 1 << 20  # the workers' result pipe: Linux's largest for a user by default
MAX_GROUP = 8  # batches per parcel at most (those a pipe holds, up to this)


def widen_pipe(batches: Any, size: int = PIPE_BYTES) -> None:
    """Let the pipe that carries the workers' batches to this process (the loader's result
    queue) hold ``size`` bytes (Linux ``F_SETPIPE_SZ``; 64 KiB by default).

    With 64 KiB a batch of 97 28x28 float images (305 KB) crosses in five turns of the
    worker writing and this process reading, so a prefetched batch was still mostly in the
    worker when training asked for it: ``next()`` took 0.9-1.0 ms (median) with a batch
    ready, 0.6 ms with 1 MiB (``docs/data.md``). Best effort: skipped where the platform,
    the limits (``/proc/sys/fs/pipe-max-size``) or torch's loader do not allow it."""
    reader = getattr(getattr(batches, "_worker_result_queue", None), "_reader", None)
    if fcntl is None or reader is None or not hasattr(fcntl, "F_SETPIPE_SZ"):
        return
    try:
        fcntl.fcntl(reader.fileno(), fcntl.F_SETPIPE_SZ, size)
    except OSError:  # above the system's limit, or this user's pipe memory spent
        pass


def as_arrays(batch: Batch) -> tuple[Any, ...]:
    """A reader's batch as numpy arrays that share its tensors' memory (pickled by value)."""
    return tuple(None if t is None else t.numpy() for t in batch)


def as_tensors(batch: Any) -> Batch:
    """The loader's batch as tensors, from ``as_arrays``'s numpy arrays without a copy."""
    return Batch(*(torch.from_numpy(t) if isinstance(t, np.ndarray) else t for t in batch))


def parcel_arrays(parcel: Parcel) -> Parcel:
    """A worker's parcel with its batch as numpy arrays (``as_arrays``) for the pipe."""
    return parcel._replace(batch=as_arrays(parcel.batch))


def unpack(parcel: Parcel) -> list[Batch]:
    """A parcel's batches, views of its tensors."""
    x, y, c = as_tensors(parcel.batch)
    xs, ys = x.split(parcel.sizes), y.split(parcel.sizes)
    cs = [None] * len(xs) if c is None else c.split(parcel.sizes)
    return [Batch(*b) for b in zip(xs, ys, cs, strict=True)]


def group_size(data: ShardData, batch_size: int) -> int:
    """Batches per parcel: as many as the result pipe holds (``PIPE_BYTES``), 1 to
    ``MAX_GROUP``: one hand-over per parcel, and a parcel read without waiting on the worker."""
    return max(1, min(MAX_GROUP, PIPE_BYTES // max(1, batch_size * data.example_bytes)))


class BatchStream:
    weight = 1.0  # every rank takes batch_size examples a step (drop_last)

    def __init__(
        self,
        data: Dataset,
        batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        if len(data) < batch_size * world_size:  # type: ignore[arg-type]
            raise ValueError(
                f"the training data has {len(data)} examples, fewer than one batch "  # type: ignore[arg-type]
                f"({batch_size} x {world_size} processes): lower --batch-size"
            )
        self.data = data
        self.batch_size = batch_size
        self.sampler = DistributedSampler(
            data, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.device = torch.device(device)
        # draws of dynamic binarization; its state is part of the checkpoint
        self.generator = torch.Generator(self.device).manual_seed(seed * 1000 + rank)
        self.epoch = 0
        self.position = 0
        self._order = self._epoch_order()

    def _epoch_order(self) -> Tensor:
        self.sampler.set_epoch(self.epoch)
        return torch.tensor(list(self.sampler), dtype=torch.long)

    def next(self) -> Batch:
        """The next batch (x, y, context) on the stream's device; a short tail of an epoch
        is dropped."""
        if self.position + self.batch_size > len(self._order):
            self.epoch += 1
            self.position = 0
            self._order = self._epoch_order()
        index = self._order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return self.gather(index)

    def gather(self, index: Tensor) -> Batch:
        return take(self.data, index, self.device, self.generator)

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.generator.set_state(state["generator"])
        self._order = self._epoch_order()


class ShardBatchStream:
    """``BatchStream``'s interface over a shard directory: ``next()`` takes the next batch
    from DataLoader workers (pinned memory on CUDA, two parcels of ``group`` batches
    prefetched per worker, put back in the plan's order here), starting a new epoch when
    one ends; ``state_dict`` holds (epoch, position, workers) and the dynamic-binarization
    generator, all a resume needs. Batches at the end of a worker's shards may be short:
    every example is seen once per epoch."""

    def __init__(
        self,
        data: ShardData,
        batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
        workers: int = 0,
        rank_split: Split = "shards",
    ) -> None:
        if workers < 0:
            raise ValueError(
                f"workers must be >= 0 (0: read in the training process), got {workers}"
            )
        self.data = data
        self.device = torch.device(device)
        self.workers = workers
        self.source = ShardStream(
            data,
            batch_size,
            seed=seed,
            rank=rank,
            world_size=world_size,
            workers=workers,
            split=rank_split,
        )
        self.generator = torch.Generator(self.device).manual_seed(seed * 1000 + rank)
        self.epoch = 0
        self.position = 0
        self.weight = 1.0
        self.group = group_size(data, batch_size) if workers else 1
        self._batches: Any = None
        self._plan: list[tuple[int, int]] = []  # the epoch's (worker, batch), in order
        self._ready: dict[int, deque[Batch]] = {}  # per worker: batches received, not taken
        self._global: list[int] = []  # all ranks' rows of each batch of the epoch, in order

    def _start(self) -> None:
        """Start the loader at (epoch, position): at the next epoch's start when the epoch
        is over (a run saved after an epoch's last batch resumes there)."""
        self.source.set_position(self.epoch, self.position)
        self._plan = self.source.rank_plan()
        if self.position >= len(self._plan) and self._plan:
            self.epoch, self.position = self.epoch + 1, 0
            self.source.set_position(self.epoch, self.position)
            self._plan = self.source.rank_plan()
        if not self._plan:
            raise RuntimeError(f"epoch {self.epoch} has no batches for this process")
        self._ready = {w: deque() for w in range(self.source.workers)}
        if self.source.split == "rows":
            sizes = [self.source.global_sizes(w) for w in range(self.source.workers)]
            self._global = [sizes[w][j] for w, j in self._plan]
        if not self.workers and self.device.type != "cuda":
            # read here, in the plan's order: a loader without workers would only add its
            # per-item cost (~0.1 ms a batch), having nothing to pin or prefetch
            self._batches = iter(Parcels(self.source))
            return
        if self.workers:  # forked workers would inherit the maps of the up-front data check
            self.data.close()
            return_free_heap()  # nor the heap pages the check freed
        loader = DataLoader(
            Parcels(self.source, self.group),
            batch_size=None,  # the stream yields whole parcels of batches
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=2 if self.workers else None,
            # the loader draws its workers' base seed: from a generator of its own, not the
            # global RNG the model's noise comes from, so a resume (a new loader) changes no draw
            generator=torch.Generator().manual_seed(0),
            worker_init_fn=lean_worker if self.workers else None,
            # on the CPU a worker's parcel crosses the pipe as numpy arrays (one copy) instead
            # of a new shared-memory segment per batch, which cost more than the step itself
            collate_fn=parcel_arrays if self.workers and self.device.type != "cuda" else None,
        )
        with frozen_gc():  # iter() forks the workers
            self._batches = iter(loader)
        if self.workers:
            widen_pipe(self._batches)

    def _take(self) -> Batch:
        """The plan's batch at ``position``: from its worker's received batches, receiving
        parcels (of any worker, in the loader's turn) until one holds it."""
        worker = self._plan[self.position][0]
        while not self._ready[worker]:
            parcel = next(self._batches)
            self._ready[parcel.worker].extend(unpack(parcel))
        return self._ready[worker].popleft()

    def next(self) -> Batch:
        """The next batch (x, y, context) on the stream's device."""
        if self._batches is None or self.position >= len(self._plan):
            self._start()
        x, y, c = self._take()
        if self._global:
            self.weight = self.source.world_size * len(x) / self._global[self.position]
        self.position += 1
        x = finish(x.to(self.device, non_blocking=True), self.data.dynamic_binarize, self.generator)
        c = None if c is None else c.to(self.device, non_blocking=True)
        return Batch(x, y.to(self.device, non_blocking=True), c)

    def gather(self, index: Tensor) -> Batch:
        return take(self.data, index, self.device, self.generator)

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "workers": self.workers,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue at the saved (epoch, position) with the saved number of workers (the
        order depends on it)."""
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        if "workers" in state and int(state["workers"]) != self.workers:
            self.workers = int(state["workers"])
            self.source.workers = max(1, self.workers)
        self.generator.set_state(state["generator"])
        self._batches = None
