"""Every example of a run's splits checked against its model once, before training: the
trainer then skips the per-step value scan (``model.check_values``)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from dgm.data.dataset import data_info, take
from dgm.data.shard_stream import return_free_heap
from dgm.data.shards import ShardData
from dgm.model import GenerativeModel

CHECK_CHUNK = 8192  # examples per chunk of the check


def check_splits(
    model: GenerativeModel,
    splits: dict[str, Dataset | None],
    *,
    device: torch.device,
    seed: int,
    batch_size: int,
) -> None:
    """Check every example of each split (``None``: none) against ``model`` (shape, dtype,
    support, classes, context), in chunks drawn as training draws them (dynamic binarization
    gives binary values), from a generator of its own seeded with ``seed``: the run's RNG is
    untouched. A ValueError names the split, the examples and the fix."""
    gen = torch.Generator(device).manual_seed(seed)
    chunk = max(CHECK_CHUNK, batch_size)
    for split, data in splits.items():
        if data is None:
            continue
        for index in torch.arange(len(data)).split(chunk):  # type: ignore[arg-type]
            x, y, context = take(data, index, device, gen)
            try:
                model.check_x(x)
                model.check_c(model.conditioning.pick(y, context), len(x))
            except (ValueError, TypeError) as e:
                info = data_info(data)
                name = info.name or type(data).__name__
                hint = ""
                classes = info.num_classes
                if 0 < model.num_classes < classes:
                    hint = f" (the data have {classes} classes: --num-classes {classes})"
                raise ValueError(
                    f"the {split} split of dataset {name!r} (examples {int(index[0])}.."
                    f"{int(index[-1])}) does not suit {type(model).__name__}: {e}{hint}"
                ) from None
            if isinstance(data, ShardData):
                # a chunk's pages back to the system at once: glibc's heap kept the freed
                # chunks of a 550,000-image check, 390 MB over the interpreter, above the
                # memory a streamed run promises (benchmarks/streaming.py, memory)
                del x, y, context
                return_free_heap()
