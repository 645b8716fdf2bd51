"""Drawing a training run's sample picture: timed on a first chunk, then the rest at once
when that looks quick, else chunk by chunk under a progress bar; 2-D points drawn over the
data and the model's density."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

from dgm.capabilities import model_modality
from dgm.data.dataset import data_info, grid_conditions, take
from dgm.model import GenerativeModel
from dgm.report.plots import save_samples

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


def write_picture(
    model: GenerativeModel,
    path: Path,
    train_data: Dataset,
    valid_data: Dataset | None,
    *,
    count: int,
    options: dict[str, Any],
    seed: int,
    device: torch.device,
    guard: Callable[[], contextlib.AbstractContextManager[None]],
    progress: bool,
    desc: str,
) -> None:
    """The sample picture at ``path``: ``count`` samples (0: an image grid of 64, or
    1000 2-D points), one per condition of the valid split's grid (``grid_conditions``),
    drawn by ``sample_in_chunks`` from a generator seeded with ``seed``. 2-D points are
    drawn over 2000 training points and the model's density, whose ``log_prob`` draws
    noise for latent models: the caller forks the RNG around this call."""
    points = model_modality(model) == "points"
    n = count or (1000 if points else 64)  # a 2-D scatter needs more points than a grid
    c = grid_conditions(model, valid_data or train_data, n)
    gen = torch.Generator(device).manual_seed(seed)
    x = sample_in_chunks(model, n, c, gen, options, guard=guard, progress=progress, desc=desc)
    extra: dict[str, Any] = {}
    if points:
        index = torch.arange(min(2000, len(train_data)))  # type: ignore[arg-type]
        extra = {"data": take(train_data, index, "cpu").x, "model": model}
    save_samples(x.float().cpu(), path, data_info(train_data).value_range, **extra)
