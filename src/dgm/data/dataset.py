"""The in-memory dataset every dgm loader returns, and the dataset registry."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.utils.data import Dataset, default_collate


class Batch(NamedTuple):
    """A batch as every loader yields it: x, labels y and, where the data carry one, a
    context tensor (the c of a context-conditional model)."""

    x: Tensor
    y: Tensor
    context: Tensor | None = None


class TensorData(Dataset):
    """Examples held in memory: ``x`` (N, *event_shape), labels ``y`` (N,) long and an
    optional ``context`` (N, *context_shape) that a model may condition on instead.

    x holds floats for continuous or binary data and integers (any integer dtype, e.g.
    uint8 pixels or int64 tokens; batches come out as int64) for discrete data. Items are
    ``(x_i, y_i)`` pairs, or ``(x_i, y_i, context_i)`` triples, so it works with a
    ``DataLoader``; the trainer instead calls ``batch(index, generator)``, which gathers a
    whole batch with one indexing op. With ``dynamic_binarize`` the stored x are
    probabilities in [0, 1] and every access draws fresh binary values (dynamic
    binarization); otherwise x is returned as stored. ``density`` is the closed-form data
    distribution where one is known (toy 2-D data). ``value_range`` is the (low, high)
    range of x where one is known (pictures are drawn on it).
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor | None = None,
        *,
        name: str = "",
        num_classes: int = 0,
        dynamic_binarize: bool = False,
        density: Any = None,
        context: Tensor | None = None,
        value_range: tuple[float, float] | None = None,
    ) -> None:
        if y is None:
            y = torch.zeros(len(x), dtype=torch.long)
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
        if context is not None and len(context) != len(x):
            raise ValueError(f"x has {len(x)} examples but context has {len(context)}")
        if dynamic_binarize and not x.is_floating_point():
            raise ValueError("dynamic binarization needs float probabilities in [0, 1]")
        self.x = x
        self.y = y.long()
        self.context = context
        self.value_range = value_range
        self.name = name
        self.num_classes = num_classes
        self.dynamic_binarize = dynamic_binarize
        self.density = density

    @property
    def event_shape(self) -> torch.Size:
        return self.x.shape[1:]

    @property
    def context_shape(self) -> tuple[int, ...]:
        """Shape of one context, () when the data carry none."""
        return () if self.context is None else tuple(self.context.shape[1:])

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        b = self.batch(torch.as_tensor([i]))
        return tuple(t[0] for t in b if t is not None)

    def batch(self, index: Tensor, generator: torch.Generator | None = None) -> Batch:
        """Examples ``index`` as one ``Batch``; draws binary x when dynamic, and gives
        integer x as int64."""
        index = index.to(self.x.device)
        x = self.x[index]
        if self.dynamic_binarize:
            x = torch.bernoulli(x, generator=generator)
        elif not x.is_floating_point():
            x = x.long()
        context = None if self.context is None else self.context[index]
        return Batch(x, self.y[index], context)

    def subset(self, index: Tensor) -> TensorData:
        """The examples ``index`` as a new TensorData (same name, classes and range)."""
        return self._like(
            self.x[index], self.y[index], None if self.context is None else self.context[index]
        )

    def to(self, device: torch.device | str) -> TensorData:
        """The same data on ``device`` (tensors already there are not copied)."""
        context = None if self.context is None else self.context.to(device)
        return self._like(self.x.to(device), self.y.to(device), context)

    def _like(self, x: Tensor, y: Tensor, context: Tensor | None) -> TensorData:
        return TensorData(
            x,
            y,
            name=self.name,
            num_classes=self.num_classes,
            dynamic_binarize=self.dynamic_binarize,
            density=self.density,
            context=context,
            value_range=self.value_range,
        )

    def __repr__(self) -> str:
        return (
            f"TensorData({self.name!r}, n={len(self)}, event_shape={tuple(self.event_shape)}, "
            f"num_classes={self.num_classes}, context_shape={self.context_shape}, "
            f"dynamic_binarize={self.dynamic_binarize})"
        )


def take(
    data: Dataset,
    index: Tensor,
    device: torch.device | str,
    generator: torch.Generator | None = None,
) -> Batch:
    """Examples ``index`` of any dataset of (x, y) pairs or (x, y, context) triples as one
    ``Batch`` on ``device``: the dataset's own ``batch(index, generator)`` (one indexing op
    for ``TensorData``, one read per shard for shards) when it has one, else item by item,
    collated."""
    if hasattr(data, "batch"):
        b = data.batch(index, generator)
    else:
        b = Batch(*default_collate([data[int(i)] for i in index]))
    context = None if b.context is None else b.context.to(device)
    return Batch(b.x.to(device), b.y.to(device), context)


def grid_conditions(model: Any, data: Dataset | None, n: int) -> Tensor | None:
    """The c of a sample grid of n: labels 0, 1, ..., K-1, 0, ... for a class-conditional
    model, the contexts of the first n examples of ``data`` for a context-conditional one."""
    cond = model.conditioning
    if cond.kind == "classes":
        return torch.arange(n, device=model.device) % cond.num_classes
    if cond.kind == "context":
        if data is None:
            raise ValueError("a context-conditional model needs data to take contexts from")
        m = min(n, len(data))  # type: ignore[arg-type]
        context = take(data, torch.arange(m), model.device).context
        if context is None:
            raise ValueError("the data carry no context to condition the samples on")
        return context[torch.arange(n, device=model.device) % m]
    return None


SPLITS = ("train", "valid", "test")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    load: Callable[..., TensorData]
    summary: str


_DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(
    name: str, summary: str
) -> Callable[[Callable[..., TensorData]], Callable[..., TensorData]]:
    """Decorator for a loader ``load(split, root, **options) -> TensorData``."""

    def decorate(fn: Callable[..., TensorData]) -> Callable[..., TensorData]:
        _DATASETS[name] = DatasetSpec(name, fn, summary)
        return fn

    return decorate


def available_datasets() -> list[str]:
    return sorted(_DATASETS)


def dataset_spec(name: str) -> DatasetSpec:
    try:
        return _DATASETS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; available: {', '.join(available_datasets())}"
        ) from None


def dataset_options(name: str) -> dict[str, Any]:
    """The options a dataset's loader accepts, with their defaults."""
    params = inspect.signature(dataset_spec(name).load).parameters
    return {k: p.default for k, p in params.items() if k not in ("split", "root")}


def get(name: str, split: str = "train", root: str | None = None, **options: Any) -> TensorData:
    """Load split ``split`` ("train", "valid" or "test") of dataset ``name``; items are (x, y).

    ``root`` is a folder holding the data files, where the dataset reads files.
    Options depend on the dataset (see ``dataset_options(name)``); an option it does not
    take is an error naming the ones it does.
    """
    s = dataset_spec(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    accepted = dataset_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"dataset {name!r} takes no option(s) {unknown}; it takes {sorted(accepted)}"
        )
    return s.load(split, root, **options)
