"""Streaming a shard directory: an ``IterableDataset`` for DataLoader workers.

One epoch of one rank, given (seed, epoch):

1. the shards of the split are permuted by a generator seeded by (seed, epoch);
2. shard i of that permutation goes to reading unit ``i mod (world_size * workers)``:
   rank ``unit mod world_size``, worker ``unit // world_size``, so every (rank, worker)
   reads a disjoint set of shards and, together, every shard once;
3. a unit reads its shards in that order through a shuffle buffer of ``buffer`` examples
   (each shard's examples join the buffer, the buffer is permuted by a generator seeded
   by (seed, epoch, rank, worker), and all but ``buffer`` of them leave it), then cuts the
   result into batches of ``batch_size``; the last batch of a unit may be short, so no
   example is dropped or read twice;
4. the rank takes the workers' batches in turn (worker 0, 1, ..., skipping those that are
   done): ``rank_plan`` lists that order. Iterated, a ``ShardStream`` yields them so
   (through a DataLoader too); training's ``Parcels`` hands them over several at a time
   and the receiver puts them back in that order.

With ``split="rows"`` the ranks share batches instead of shards: every rank plans the
epoch of one process (steps 1 to 3 with ``world_size`` 1) with batches of ``batch_size *
world_size`` examples, and rank r reads rows ``r::world_size`` of each of them. The ranks'
batches together are then the one-process run's batches (a last batch of fewer than
``world_size`` examples joins the one before, so no rank's part is empty); each rank reads
only its own rows, but from every shard.

The order is computed from the example counts alone, so a stream can start at any
``position`` (batches already taken in the epoch) without reading what came before: a
resumed run continues from the same example with the same batches. The examples a batch
needs are read through the shards' memory maps, so at most ``buffer`` plus one shard of
examples are in play at once whatever the size of the data.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import platform
from collections.abc import Iterator
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from dgm.data.dataset import Batch
from dgm.data.shards import ShardData

BUFFER = 10000  # examples in the shuffle buffer of each (rank, worker)
MMAP_THRESHOLD = 1 << 20  # bytes: a worker's buffers of this size or more are mmapped
Split = Literal["shards", "rows"]


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (whose malloc the two functions below tune)."""
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def return_free_heap() -> None:
    """Give the heap's free pages back to the system (glibc ``malloc_trim``): a process
    about to fork its readers should not hand them pages it no longer uses (the up-front
    data check leaves ~90 MB of them on a 55,000-image split)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def lean_worker(worker_id: int) -> None:
    """``worker_init_fn`` of the shard readers: fix glibc's mmap threshold at 1 MiB.

    A reader allocates each batch, then torch moves it to shared memory for the training
    process and frees the original. Under glibc's default, the threshold rises to the
    size of the first freed buffer, later batches come from the heap, and the freed ones
    are not returned: the reader's private memory grew by about a batch per batch (3 MB
    per batch of 1000 Fashion-MNIST images, ~100 MB over an epoch; ``malloc_trim``
    recovered it all). With a fixed threshold every batch-sized buffer is its own mapping,
    returned when freed, and the reader's memory stays flat."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(-3, MMAP_THRESHOLD)  # -3: M_MMAP_THRESHOLD (malloc.h)


@contextlib.contextmanager
def frozen_gc() -> Iterator[None]:
    """Freeze the garbage collector's objects while the DataLoader forks its readers
    (Python's ``gc.freeze`` recipe): a forked reader's collector then never walks the
    training process's objects, so it does not copy their pages (copy-on-write); the
    training process unfreezes at once."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def seeded(*parts: int) -> torch.Generator:
    """A CPU generator seeded by a hash of ``parts`` (distinct tuples, unrelated streams)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


class ShardStream(IterableDataset):
    """Batches of one rank's share of ``data`` for one epoch (see the module docstring);
    iterate it through ``DataLoader(stream, batch_size=None, num_workers=workers)`` (or
    directly, for ``workers`` <= 1). Batches are ``Batch`` of stored values (dynamic binary
    x undrawn); each carries nothing else, ``ids(unit)`` gives a unit's example ids."""

    def __init__(
        self,
        data: ShardData,
        batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        workers: int = 1,
        buffer: int = BUFFER,
        split: Split = "shards",
    ) -> None:
        if split not in ("shards", "rows"):
            raise ValueError(f"split must be 'shards' or 'rows', got {split!r}")
        if split == "shards" and len(data.shards) < world_size:
            raise ValueError(
                f"{data.root} has {len(data.shards)} {data.split} shard(s) for {world_size} "
                "processes: every process needs one; convert with a smaller --shard-size "
                "or split batches, not shards (--rank-split rows)"
            )
        self.data = data
        self.batch_size = batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.workers = max(1, workers)  # 0 workers: one unit read in the main process
        self.buffer = buffer
        self.split = split
        self.epoch = 0
        self.position = 0

    @property
    def units(self) -> int:
        """The reading units of one epoch: (rank, worker) pairs, or with "rows" the workers
        alone (derived, so a resume that restores another worker count reads its plan)."""
        return self.workers * (self.world_size if self.split == "shards" else 1)

    def set_position(self, epoch: int, position: int) -> None:
        """Start the next iteration at batch ``position`` of epoch ``epoch``."""
        self.epoch, self.position = epoch, position

    def _unit(self, worker: int) -> tuple[int, int]:
        """(reading unit, rank in the generator's seed) of worker ``worker`` of this rank."""
        if self.split == "rows":  # every rank plans as rank 0 of one process
            return worker, 0
        return worker * self.world_size + self.rank, self.rank

    def shards(self, worker: int) -> list[int]:
        """The shards worker ``worker`` of this rank reads this epoch, in reading order
        (with ``split="rows"``: those it takes its rows from)."""
        perm = torch.randperm(len(self.data.shards), generator=seeded(self.seed, self.epoch))
        return perm[self._unit(worker)[0] :: self.units].tolist()

    def ids(self, worker: int) -> Tensor:
        """Example ids worker ``worker`` plans this epoch, in order (with ``split="rows"``
        those of every rank: ``batches`` takes this rank's rows)."""
        gen = seeded(self.seed, self.epoch, self._unit(worker)[1], worker)
        out, buf = [], torch.zeros(0, dtype=torch.long)
        offsets = self.data.offsets
        for k in self.shards(worker):
            buf = torch.cat([buf, torch.arange(int(offsets[k]), int(offsets[k + 1]))])
            buf = buf[torch.randperm(len(buf), generator=gen)]
            leave = len(buf) - self.buffer
            if leave > 0:
                out.append(buf[:leave])
                buf = buf[leave:]
        out.append(buf)
        return torch.cat(out)

    def global_sizes(self, worker: int) -> list[int]:
        """Sizes of the batches worker ``worker`` plans this epoch, all ranks' rows
        together with ``split="rows"``: full ones, then a short one unless that would
        leave a rank without rows (it then joins the one before)."""
        n = int(self.data.counts[self.shards(worker)].sum())
        rows = self.split == "rows"
        size = self.batch_size * (self.world_size if rows else 1)
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
        if rows and sizes and sizes[-1] < self.world_size:
            if len(sizes) == 1:
                raise ValueError(
                    f"worker {worker} has {n} example(s) of epoch {self.epoch} for "
                    f"{self.world_size} processes: use fewer --workers"
                )
            sizes[-2] += sizes.pop()
        return sizes

    def batches(self, worker: int) -> list[Tensor]:
        """The example ids of each batch worker ``worker`` of this rank yields this epoch."""
        cut = list(self.ids(worker).split(self.global_sizes(worker)))
        if self.split == "shards":
            return cut
        return [ids[self.rank :: self.world_size].contiguous() for ids in cut]

    def batch_counts(self) -> list[int]:
        """Batches each worker yields this epoch (its last may be short)."""
        return [len(self.global_sizes(w)) for w in range(self.workers)]

    def rank_plan(self) -> list[tuple[int, int]]:
        """The rank's batches this epoch as (worker, batch of that worker), in the order the
        DataLoader yields them: the workers in turn, skipping those that are done."""
        counts = self.batch_counts()
        longest = max(counts, default=0)
        return [(w, j) for j in range(longest) for w in range(self.workers) if j < counts[w]]

    def __len__(self) -> int:
        """Batches of this rank in the epoch (from ``position`` on: those still to come)."""
        return len(self.rank_plan()) - self.position

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        if info is None:  # one process reads for every worker, in the plan's order
            cut = {w: self.batches(w) for w in range(self.workers)}
            for w, j in self.rank_plan()[self.position :]:
                yield self.data.read(cut[w][j])
            return
        _, chunks = self.own(info.id, info.num_workers)
        for chunk in chunks:
            yield self.data.read(chunk)

    def own(self, loader_worker: int, loader_workers: int) -> tuple[int, list[Tensor]]:
        """(worker, the example ids of each batch it still yields this epoch) that loader
        worker ``loader_worker`` plays, from ``position`` on."""
        if loader_workers != self.workers:
            raise RuntimeError(
                f"the stream plans {self.workers} workers but the loader has {loader_workers}"
            )
        plan = self.rank_plan()
        done, rest = plan[: self.position], plan[self.position :]
        # after a resume the next batch is worker `first`'s: loader worker 0 plays it, so
        # the loader's turn order (0, 1, ...) continues the epoch's order exactly
        first = rest[0][0] if rest else 0
        w = (loader_worker + first) % self.workers
        skip = sum(1 for u, _ in done if u == w)
        return w, self.batches(w)[skip:]


class Parcel(NamedTuple):
    """Consecutive batches of one worker, read in one gather and handed over as one item:
    ``batch`` holds their examples end to end, ``sizes`` the batches' lengths."""

    worker: int
    sizes: list[int]
    batch: Any  # a Batch, or as_arrays's numpy form of one on its way over the pipe


class Parcels(IterableDataset):
    """``stream``'s batches for a DataLoader, ``group`` at a time: each item a ``Parcel`` of
    up to ``group`` consecutive batches of one worker (read in this process, without
    workers: one batch per parcel, in the plan's order). The loader's hand-over costs a
    fixed ~0.3 ms of the training process's CPU per item (its Python, the index message,
    the pipe; ``docs/data.md``), which a parcel pays once for ``group`` batches; the
    receiver puts the batches back in the plan's order (``rank_plan``) by ``worker``."""

    def __init__(self, stream: ShardStream, group: int = 1) -> None:
        if group < 1:
            raise ValueError(f"group must be >= 1 batch, got {group}")
        self.stream, self.group = stream, group

    def __iter__(self) -> Iterator[Parcel]:
        s = self.stream
        info = get_worker_info()
        if info is None:
            cut = {w: s.batches(w) for w in range(s.workers)}
            for w, j in s.rank_plan()[s.position :]:
                yield Parcel(w, [len(cut[w][j])], s.data.read(cut[w][j]))
            return
        w, chunks = s.own(info.id, info.num_workers)
        for i in range(0, len(chunks), self.group):
            part = chunks[i : i + self.group]
            yield Parcel(w, [len(c) for c in part], s.data.read(torch.cat(part)))
