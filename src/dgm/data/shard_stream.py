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
4. the DataLoader yields the workers' batches in turn (worker 0, 1, ..., skipping those
   that are done): ``rank_plan`` lists that order.

The order is computed from the example counts alone, so a stream can start at any
``position`` (batches already taken in the epoch) without reading what came before: a
resumed run continues from the same example with the same batches. The examples a batch
needs are read through the shards' memory maps, so at most ``buffer`` plus one shard of
examples are in play at once whatever the size of the data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from dgm.data.dataset import Batch
from dgm.data.shards import ShardData

BUFFER = 10000  # examples in the shuffle buffer of each (rank, worker)


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
    ) -> None:
        if len(data.shards) < world_size:
            raise ValueError(
                f"{data.root} has {len(data.shards)} {data.split} shard(s) for {world_size} "
                "processes: every process needs one; convert with a smaller --shard-size"
            )
        self.data = data
        self.batch_size = batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.workers = max(1, workers)  # 0 workers: one unit read in the main process
        self.buffer = buffer
        self.epoch = 0
        self.position = 0

    def set_position(self, epoch: int, position: int) -> None:
        """Start the next iteration at batch ``position`` of epoch ``epoch``."""
        self.epoch, self.position = epoch, position

    def shards(self, worker: int) -> list[int]:
        """The shards worker ``worker`` of this rank reads this epoch, in reading order."""
        perm = torch.randperm(len(self.data.shards), generator=seeded(self.seed, self.epoch))
        unit = worker * self.world_size + self.rank
        return perm[unit :: self.world_size * self.workers].tolist()

    def ids(self, worker: int) -> Tensor:
        """Example ids worker ``worker`` of this rank yields this epoch, in order."""
        gen = seeded(self.seed, self.epoch, self.rank, worker)
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

    def batch_counts(self) -> list[int]:
        """Batches each worker yields this epoch (its last may be short)."""
        sizes = [int(self.data.counts[self.shards(w)].sum()) for w in range(self.workers)]
        return [-(-n // self.batch_size) for n in sizes]

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
        plan = self.rank_plan()
        done, rest = plan[: self.position], plan[self.position :]
        info = get_worker_info()
        if info is None:  # one process reads for every worker, in the plan's order
            cut = {w: self.ids(w).split(self.batch_size) for w in range(self.workers)}
            for w, j in rest:
                yield self.data.read(cut[w][j])
            return
        if info.num_workers != self.workers:
            raise RuntimeError(
                f"the stream plans {self.workers} workers but the loader has {info.num_workers}"
            )
        # after a resume the next batch is worker `first`'s: loader worker 0 plays it, so
        # the loader's turn order (0, 1, ...) continues the epoch's order exactly
        first = rest[0][0] if rest else 0
        w = (info.id + first) % self.workers
        skip = sum(1 for u, _ in done if u == w)
        for chunk in self.ids(w).split(self.batch_size)[skip:]:
            yield self.data.read(chunk)
