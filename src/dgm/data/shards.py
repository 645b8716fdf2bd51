"""Datasets larger than memory: numpy ``.npy`` shards plus an ``index.json``.

``convert(data, out, shard_size)`` writes every split of any dgm dataset (built-in, your
pictures, CSV, arrays, text) as shards of ``shard_size`` examples: per shard one ``.npy``
file for x, one for the labels y and, when the data carry one, one for the context c. The
index records what a model needs to know of the data (event shape, dtype, value range,
vocabulary, classes, context) and, per shard file, its example count, its size in bytes
and its SHA-256. ``--data shards --data-root DIR`` (``dgm.data.get("shards", split, DIR)``)
reads them back as a ``ShardData``: a map-style dataset whose shards are memory-mapped
(``mmap`` viewed by numpy), so only the pages a batch touches are read, and only those of
the last ``RESIDENT_SHARDS`` shards read (and of every shard the last batch drew on) stay
resident; the trainer streams it with
DataLoader workers (``dgm.data.shard_stream``).

Why ``.npy``: it needs nothing beyond numpy, a memory-mapped shard is read without a copy
or a decode step, and examples can be gathered in any order (the shuffle buffer, the
evaluation, the up-front data check). Measured (``benchmarks/streaming.py``, formats):
WebDataset tar shards read 1/60 as fast (front to back, a decode per record); memory-mapped
Arrow IPC files as fast with DataLoader workers, and without them faster by the readers'
overhead, not the format's, for a 170 MB dependency. ``docs/data.md`` gives the numbers.

Every problem with a shard directory is one line naming the file: a missing index, a
missing or truncated shard, a file that is not a ``.npy`` array, a checksum mismatch, a
shard whose example shape or dtype differs from the index.
"""

from __future__ import annotations

import json
import math
import mmap
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from dgm.data.dataset import SPLITS, Batch, DataInfo, data_info, register_dataset
from dgm.data.options import DatasetOptions
from dgm.io import atomic_write, file_digest, write_json

INDEX = "index.json"
FORMAT = "dgm-shards"
VERSION = 1
RESIDENT_SHARDS = 3  # shards (at least) whose read pages stay mapped in; older: given back
OPEN_SHARDS = 64  # shards kept mapped (a descriptor per file: 192 at most); older: unmapped
# what a model needs to know of the data, copied from the dataset when it has it
ATTRIBUTES = ("num_classes", "class_names", "value_range", "vocab", "context_vocab", "end_token")


class ShardError(ValueError):
    """A shard directory that cannot be read as its index describes (names the file)."""


def _split_arrays(data: Any) -> dict[str, np.ndarray]:
    """x, y and (when present) c of a dataset as numpy arrays, stored as they are."""
    arrays = {"x": data.x.cpu().numpy(), "y": data.y.cpu().numpy().astype(np.int64)}
    if getattr(data, "context", None) is not None:
        arrays["c"] = data.context.cpu().numpy()
    return arrays


def _save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)

    atomic_write(path, write)


def convert(
    data: Any, out: str | Path, shard_size: int = 10000, splits: tuple[str, ...] = SPLITS
) -> dict[str, Any]:
    """Write every split of ``data`` (a ``DataConfig``, or a callable ``split -> dataset``)
    that exists and is not empty as shards of ``shard_size`` examples in ``out``; returns
    the index written (``out/index.json``, last, so a folder without it is incomplete)."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1 example, got {shard_size}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file: name a folder for the shards")
    load = data.load if hasattr(data, "load") else data
    index: dict[str, Any] = {"format": FORMAT, "version": VERSION, "splits": {}}
    for split in splits:
        try:
            part = load(split)
        except ValueError:  # a dataset without this split (e.g. no valid fraction)
            continue
        if len(part) == 0:
            continue
        if not index["splits"]:  # the first split describes the data
            info = data_info(part)
            index["name"] = info.name
            index["dynamic_binarize"] = info.dynamic_binarize
            for key in ATTRIBUTES:
                value = getattr(info, key)
                index[key] = list(value) if isinstance(value, tuple) else value
        arrays = _split_arrays(part)
        index.setdefault("event_shape", list(arrays["x"].shape[1:]))
        index.setdefault("dtype", str(arrays["x"].dtype))
        if "c" in arrays:
            index.setdefault("context_shape", list(arrays["c"].shape[1:]))
            index.setdefault("context_dtype", str(arrays["c"].dtype))
        shards = []
        n = len(arrays["x"])
        for k in range(math.ceil(n / shard_size)):
            rows = slice(k * shard_size, min(n, (k + 1) * shard_size))
            files = {}
            for key, array in arrays.items():
                name = f"{split}-{k:05d}.{key}.npy"
                _save_npy(out / name, array[rows])
                files[key] = {
                    "file": name,
                    "bytes": (out / name).stat().st_size,
                    "sha256": file_digest(out / name),
                }
            shards.append({"count": rows.stop - rows.start, "files": files})
        index["splits"][split] = shards
    if not index["splits"]:
        raise ValueError("the dataset has no examples in any split: nothing to convert")
    write_json(out / INDEX, index)
    return index


def read_index(root: str | Path) -> dict[str, Any]:
    """The index of shard directory ``root``, checked to be one."""
    path = Path(root) / INDEX
    if not path.is_file():
        raise ShardError(f"{path} not found: --data-root must be a folder written by `dgm convert`")
    try:
        index = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ShardError(f"{path} is not valid JSON ({e}): write the shards again") from None
    if index.get("format") != FORMAT:
        raise ShardError(f"{path} is not a dgm shard index: write it with `dgm convert`")
    return index


class _Mapped:
    """One shard file mapped read-only: ``array`` views its data; ``release()`` gives the
    pages read so far back (``MADV_DONTNEED``: they stay in the page cache, and a later
    read maps them in again), so a reader's resident set does not grow with every shard it
    has touched while the map, and the cost of opening it, are kept."""

    def __init__(self, path: Path, entry: dict[str, Any]) -> None:
        header = _open(path, entry)  # checked, header parsed
        offset, shape, dtype = header.offset, header.shape, header.dtype
        del header
        with open(path, "rb") as f:
            self.map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        count = math.prod(shape)
        self.array = np.frombuffer(self.map, dtype, count, offset).reshape(shape)

    def release(self) -> None:
        if hasattr(self.map, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
            self.map.madvise(mmap.MADV_DONTNEED)


def _open(path: Path, entry: dict[str, Any]) -> np.ndarray:
    """The memory map of one shard file, checked against its index entry (not its hash)."""
    if not path.is_file():
        raise ShardError(f"shard {path} is missing: write the shards again with dgm convert")
    size = path.stat().st_size
    if size < entry["bytes"]:
        raise ShardError(
            f"shard {path} is truncated ({size} of {entry['bytes']} bytes): copy it again"
        )
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ShardError(
            f"shard {path} is corrupt, not a .npy array ({e}): copy it again"
        ) from None


class ShardData(Dataset):
    """Split ``split`` of the shard directory ``root``: items are ``(x_i, y_i)`` pairs, or
    ``(x_i, y_i, c_i)`` triples, read through memory maps; ``batch(index)`` gathers a batch
    as ``TensorData.batch`` does, and ``read(ids)`` without binarizing dynamic data.

    Opening checks every shard of the split (present, full size, a ``.npy`` array of the
    index's example shape and dtype, and, with ``verify``, its SHA-256), so a bad shard is
    found before training starts. Example ids are the positions in the split, shard by shard.
    """

    density = None  # a closed-form density does not survive the conversion

    def __init__(self, root: str | Path, split: str = "train", *, verify: bool = True) -> None:
        self.root = Path(root)
        index = read_index(self.root)
        if split not in index["splits"]:
            raise ValueError(
                f"{self.root} has no {split!r} split (it has {sorted(index['splits'])})"
            )
        self.split = split
        self.index = index
        self.name = index.get("name") or "shards"
        self.num_classes = int(index.get("num_classes") or 0)
        value_range = index.get("value_range")
        self.value_range = tuple(value_range) if value_range is not None else None
        for key in ("vocab", "context_vocab", "end_token"):
            if index.get(key) is not None:
                setattr(self, key, index[key])
        self.dynamic_binarize = bool(index.get("dynamic_binarize", False))
        self.event_shape = torch.Size(index["event_shape"])
        self.context_shape = tuple(index.get("context_shape") or ())
        self.has_context = "context_shape" in index
        self.shards = index["splits"][split]
        counts = [int(s["count"]) for s in self.shards]
        self.counts = torch.tensor(counts, dtype=torch.long)
        self.offsets = torch.cumsum(torch.tensor([0, *counts]), 0)  # (S + 1,)
        # the same, for the reads' numpy gathers: an array of its own, not a view of offsets,
        # whose storage torch moves to shared memory (freeing this one) when the data is
        # pickled for DataLoader workers started by spawn or forkserver (Python 3.14's
        # default on Linux; spawn on macOS): a view read freed memory, garbage example ids
        self._starts = np.cumsum([0, *counts], dtype=np.int64)  # (S + 1,)
        # (event shape, dtype) of each stored array, the batch arrays a read fills
        self._layout = {
            "x": (tuple(self.event_shape), np.dtype(index["dtype"])),
            "y": ((), np.dtype(np.int64)),
        }
        if self.has_context:
            self._layout["c"] = (self.context_shape, np.dtype(index["context_dtype"]))
        self._maps: dict[int, dict[str, _Mapped]] = {}  # open shards, least recent first
        self._resident: list[int] = []  # shards whose pages are kept, least recent first
        self._check(verify)

    @property
    def info(self) -> DataInfo:
        """What the index says the data are (as ``TensorData.info``)."""
        return DataInfo(
            self.name,
            tuple(self.event_shape),
            getattr(torch, self.index["dtype"]),
            value_range=self.value_range,
            vocab=self.index.get("vocab"),
            end_token=self.index.get("end_token"),
            num_classes=self.num_classes,
            class_names=tuple(self.index.get("class_names") or ()),
            context_shape=self.context_shape,
            context_vocab=int(self.index.get("context_vocab") or 0),
            dynamic_binarize=self.dynamic_binarize,
        )

    def _check(self, verify: bool) -> None:
        want = {"x": (tuple(self.event_shape), self.index["dtype"]), "y": ((), "int64")}
        if self.has_context:
            want["c"] = (self.context_shape, self.index["context_dtype"])
        for k, shard in enumerate(self.shards):
            for key, (shape, dtype) in want.items():
                entry = shard["files"].get(key)
                if entry is None:
                    raise ShardError(f"shard {k} of {self.split} in {self.root} has no {key} file")
                path = self.root / entry["file"]
                array = _open(path, entry)
                if array.shape != (shard["count"], *shape) or str(array.dtype) != dtype:
                    raise ShardError(
                        f"shard {path} holds {array.dtype} of shape {array.shape}, but the "
                        f"index says {dtype} of shape {(shard['count'], *shape)}: shards of "
                        "one directory must agree; convert the data again"
                    )
                del array
                if verify and file_digest(path) != entry["sha256"]:
                    raise ShardError(
                        f"shard {path} does not match its SHA-256 in {INDEX} (changed or "
                        "damaged since `dgm convert`): copy it again"
                    )

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def example_bytes(self) -> int:
        """Bytes of one example as a read gives it: x, y and c together."""
        return sum(math.prod(shape) * dtype.itemsize for shape, dtype in self._layout.values())

    def _column(self, key: str) -> Tensor:
        """One array of the whole split, read into memory (x, y or c: the tools that take
        a split's labels or contexts at once, ``Run.conditions``)."""
        shards = range(len(self.shards))
        whole = np.concatenate([self._arrays(k)[key] for k in shards])
        for k in shards:  # all but the last few give their pages back
            self._keep([k])
        return torch.from_numpy(whole)

    @property
    def x(self) -> Tensor:
        """Every x of the split, in memory (as stored); streaming never needs it."""
        return self._column("x")

    @property
    def y(self) -> Tensor:
        return self._column("y")

    @property
    def context(self) -> Tensor | None:
        return self._column("c") if self.has_context else None

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        b = self.batch(torch.as_tensor([i]))
        return tuple(t[0] for t in b if t is not None)

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers open their own maps
        return {**self.__dict__, "_maps": {}, "_resident": []}

    def close(self) -> None:
        """Unmap the open shards (their pages leave this process); reads reopen them."""
        self._maps.clear()
        self._resident.clear()

    def _arrays(self, k: int) -> dict[str, np.ndarray]:
        """The arrays of shard ``k``, mapped; the ``OPEN_SHARDS`` shards read last keep their
        maps (a shuffle buffer draws from a dozen shards at once: reopening a map per batch
        cost most of the reading time). Which keep their pages is ``_keep``'s choice."""
        maps = self._maps.pop(k, None)
        if maps is None:
            if len(self._maps) >= OPEN_SHARDS:
                self._maps.pop(next(iter(self._maps)))  # the least recent: unmapped
            maps = {
                key: _Mapped(self.root / e["file"], e) for key, e in self.shards[k]["files"].items()
            }
        self._maps[k] = maps  # the most recent
        return {key: mapped.array for key, mapped in maps.items()}

    def _keep(self, read: list[int]) -> None:
        """After a read of shards ``read``: the pages of the ``RESIDENT_SHARDS`` shards read
        last stay mapped in, and those of every shard this read touched; older shards give
        theirs back. Decided once per read, not per shard: a shuffle buffer's batch draws
        on 4 to 8 shards, and giving back pages a batch had just mapped in, to map them in
        again for the next, cost half the reading time (``benchmarks/streaming.py``)."""
        for k in read:
            if k in self._resident:
                self._resident.remove(k)
            self._resident.append(k)
        while len(self._resident) > max(RESIDENT_SHARDS, len(read)):
            for mapped in self._maps.get(self._resident.pop(0), {}).values():
                mapped.release()

    def read(self, ids: Tensor) -> Batch:
        """Examples ``ids`` (positions in the split) as stored: x in its dtype, y int64.

        One numpy gather per shard the ids touch, into the batch's arrays: this is the
        reader's whole cost per batch, so it stays in numpy (a dozen small torch ops per
        shard cost ten times the gather itself)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) and (ids.min() < 0 or ids.max() >= len(self)):
            raise IndexError(f"example ids must lie in 0..{len(self) - 1}")
        shard = np.searchsorted(self._starts, ids, side="right") - 1  # (n,)
        touched = np.unique(shard).tolist()
        out = {
            key: np.empty((len(ids), *shape), dtype) for key, (shape, dtype) in self._layout.items()
        }
        for k in touched:
            if len(touched) == 1:  # the whole batch from one shard: gather straight into it
                for key, array in self._arrays(k).items():
                    np.take(array, ids - self._starts[k], axis=0, out=out[key])
                break
            here = shard == k  # (n,)
            rows = ids[here] - self._starts[k]
            for key, array in self._arrays(k).items():
                out[key][here] = array[rows]
        self._keep(touched)
        c = torch.from_numpy(out["c"]) if "c" in out else None
        return Batch(torch.from_numpy(out["x"]), torch.from_numpy(out["y"]), c)

    def batch(self, index: Tensor, generator: torch.Generator | None = None) -> Batch:
        """Examples ``index`` as one ``Batch``, as ``TensorData.batch`` gives them: dynamic
        binary x drawn with ``generator``, integer x as int64."""
        x, y, c = self.read(index)
        return Batch(finish(x, self.dynamic_binarize, generator), y, c)

    def __repr__(self) -> str:
        return (
            f"ShardData({str(self.root)!r}, split={self.split!r}, n={len(self)}, "
            f"shards={len(self.shards)}, event_shape={tuple(self.event_shape)})"
        )


def finish(x: Tensor, dynamic_binarize: bool, generator: torch.Generator | None) -> Tensor:
    """Stored x as a model takes it: drawn binary when dynamic, integers as int64."""
    if dynamic_binarize:
        return torch.bernoulli(x, generator=generator)
    return x if x.is_floating_point() else x.long()


@register_dataset(
    "shards", "a folder written by `dgm convert` (numpy shards + index.json)", DatasetOptions
)
def load_shards(split: str, root: str | None, options: DatasetOptions) -> ShardData:
    if root is None:
        raise ValueError("--data shards needs --data-root: the folder `dgm convert` wrote")
    return ShardData(root, split)
