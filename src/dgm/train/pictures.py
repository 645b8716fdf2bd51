"""Drawing a training run's sample picture: timed on a first chunk, then the rest at once
when that looks quick, else chunk by chunk under a progress bar."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from dgm.model import GenerativeModel

PICTURE_CHUNK = 8  # samples of a picture drawn first, to time it (and show progress if slow)
SLOW_PICTURE_S = 5.0  # a picture expected to take longer is drawn in chunks, with a bar


def sample_in_chunks(
    model: GenerativeModel,
    n: int,
    c: Tensor | None,
    gen: torch.Generator,
    options: dict[str, Any],
    *,
    guard: Callable[[], contextlib.AbstractContextManager[None]],
    progress: bool,
    desc: str,
) -> Tensor:
    """``n`` samples of ``model`` given conditions ``c`` (None, or one row per sample), with
    sampling ``options``: the first ``PICTURE_CHUNK`` timed, the rest at once if that looks
    quicker than ``SLOW_PICTURE_S``, else chunk by chunk under a progress bar (``desc``).
    Each call of the model's sampler runs inside ``guard()`` (the trainer's: a signal then
    gives the picture up), and nothing else does."""

    def draw(start: int, stop: int) -> Tensor:
        part_c = None if c is None else c[start:stop]
        with guard():
            return model.sample(stop - start, part_c, generator=gen, **options)

    size = min(n, PICTURE_CHUNK)
    t0 = time.perf_counter()
    parts = [draw(0, size)]
    expected = (time.perf_counter() - t0) * (n - size) / size
    chunk = n - size if expected < SLOW_PICTURE_S else size
    bar = tqdm(
        total=n,
        initial=size,
        disable=not progress or chunk == n - size,
        desc=desc,
        leave=False,
        dynamic_ncols=True,
    )
    with bar:
        for start in range(size, n, max(chunk, 1)):
            stop = min(start + chunk, n)
            parts.append(draw(start, stop))
            bar.update(stop - start)
    return torch.cat(parts)
