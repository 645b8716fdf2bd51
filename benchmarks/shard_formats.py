"""The same training split in three on-disk shard formats, each read the way its library
intends, for ``benchmarks.streaming``'s format comparison:

- dgm: ``.npy`` shards (``dgm.data.shards.convert``) read by ``ShardStream`` through
  memory maps;
- WebDataset 1.0 tar shards (one ``x.npy`` and ``cls`` member per example), read front to
  back and decoded example by example (``wds.WebDataset(...).shuffle(...).decode()``);
- Arrow IPC (feather v2) files, memory-mapped (``pyarrow.memory_map``) and read without a
  copy, rows gathered from the mapped columns.

Every reader deals its shards out to the DataLoader's workers (a seeded permutation, shard i
to worker i mod W), passes the examples through a shuffle buffer of ``BUFFER`` examples and
yields batches of (x, y) tensors; a loader with ``batch_size=None`` takes them as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

BUFFER = 10000  # examples in each worker's shuffle buffer (dgm's default)


def _worker() -> tuple[int, int]:
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def _dealt(paths: list[Path], seed: int) -> list[Path]:
    """This worker's shards: a seeded permutation of all, every W-th from its id."""
    worker, workers = _worker()
    perm = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed)).tolist()
    return [paths[i] for i in perm[worker::workers]]


# -- WebDataset --------------------------------------------------------------------------------


def write_webdataset(x: np.ndarray, y: np.ndarray, out: Path, shard_size: int) -> list[Path]:
    """``x`` and ``y`` as tar shards of ``shard_size`` examples (``x.npy``, ``cls``)."""
    import webdataset as wds

    out.mkdir(parents=True, exist_ok=True)
    with wds.ShardWriter(str(out / "train-%05d.tar"), maxcount=shard_size, verbose=0) as sink:
        for i in range(len(x)):
            sink.write({"__key__": f"{i:08d}", "x.npy": x[i], "cls": int(y[i])})
    return sorted(out.glob("train-*.tar"))


def _collate(samples: list[tuple[np.ndarray, int]]) -> tuple[Tensor, Tensor]:
    x = torch.from_numpy(np.stack([s[0] for s in samples]))  # (B, *event)
    return x, torch.tensor([s[1] for s in samples])


def webdataset_reader(paths: list[Path], batch_size: int, seed: int = 0) -> IterableDataset:
    """WebDataset's own pipeline over ``paths``: its worker split of the (pre-permuted)
    shard list, its sample shuffle buffer, its decoders, its batching."""
    import webdataset as wds

    perm = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed)).tolist()
    urls = [str(paths[i]) for i in perm]
    return (
        wds.WebDataset(urls, shardshuffle=False, nodesplitter=None, seed=seed)
        .shuffle(BUFFER)
        .decode()
        .to_tuple("x.npy", "cls")
        .batched(batch_size, collation_fn=_collate, partial=True)
    )


# -- Arrow IPC ---------------------------------------------------------------------------------


def write_arrow(x: np.ndarray, y: np.ndarray, out: Path, shard_size: int) -> list[Path]:
    """``x`` (flattened to a fixed-size-list column) and ``y`` as Arrow IPC files of
    ``shard_size`` rows, uncompressed so they can be memory-mapped without a copy."""
    import pyarrow as pa
    import pyarrow.feather as feather

    out.mkdir(parents=True, exist_ok=True)
    flat = np.ascontiguousarray(x.reshape(len(x), -1))  # (N, D)
    paths = []
    for k, start in enumerate(range(0, len(x), shard_size)):
        rows = flat[start : start + shard_size]
        column = pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), rows.shape[1])
        table = pa.table({"x": column, "y": pa.array(y[start : start + shard_size])})
        path = out / f"train-{k:05d}.arrow"
        feather.write_feather(table, str(path), compression="uncompressed")
        paths.append(path)
    return paths


class ArrowReader(IterableDataset):
    """Memory-mapped Arrow IPC shards: each of this worker's files is mapped, its columns
    viewed as numpy arrays without a copy, and batches gathered from a shuffle buffer of
    example ids, as dgm's reader does with ``.npy`` maps."""

    def __init__(
        self, paths: list[Path], batch_size: int, event_shape: tuple[int, ...], seed: int = 0
    ) -> None:
        self.paths, self.batch_size = paths, batch_size
        self.event_shape, self.seed = tuple(event_shape), seed

    @staticmethod
    def _columns(path: Path) -> tuple[np.ndarray, np.ndarray]:
        import pyarrow as pa

        table = pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
        x = table.column("x").combine_chunks()  # one chunk: no copy
        return x.values.to_numpy(zero_copy_only=True), table.column("y").to_numpy()

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        worker, _ = _worker()
        gen = torch.Generator().manual_seed(self.seed * 1000 + worker)
        columns, buf = [], torch.zeros((0, 2), dtype=torch.long)  # (shard, row) pairs
        for path in _dealt(self.paths, self.seed):
            flat, y = self._columns(path)
            columns.append((flat.reshape(len(y), *self.event_shape), y))
            k = torch.full((len(y),), len(columns) - 1)
            buf = torch.cat([buf, torch.stack([k, torch.arange(len(y))], 1)])
            buf = buf[torch.randperm(len(buf), generator=gen)]
            leave = max(len(buf) - BUFFER, 0)
            out, buf = buf[:leave], buf[leave:]
            yield from (self._gather(columns, c) for c in out.split(self.batch_size) if len(c))
        yield from (self._gather(columns, c) for c in buf.split(self.batch_size) if len(c))

    @staticmethod
    def _gather(columns: list, chunk: Tensor) -> tuple[Tensor, Tensor]:
        xs, ys = [], []
        for k in chunk[:, 0].unique().tolist():
            rows = chunk[chunk[:, 0] == k, 1].numpy()
            xs.append(columns[k][0][rows])
            ys.append(columns[k][1][rows])
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))
