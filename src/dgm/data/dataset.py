"""The in-memory dataset every dgm loader returns, and the dataset registry."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, default_collate


class TensorData(Dataset):
    """Examples held in memory: ``x`` (N, *event_shape) floats and labels ``y`` (N,) long.

    Items are ``(x_i, y_i)`` pairs, so it works with a ``DataLoader``; the trainer instead
    calls ``batch(index, generator)``, which gathers a whole batch with one indexing op.
    With ``dynamic_binarize`` the stored x are probabilities in [0, 1] and every access
    draws fresh binary values (dynamic binarization); otherwise x is returned as stored.
    ``density`` is the closed-form data distribution where one is known (toy 2-D data).
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
    ) -> None:
        if y is None:
            y = torch.zeros(len(x), dtype=torch.long)
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
        self.x = x
        self.y = y.long()
        self.name = name
        self.num_classes = num_classes
        self.dynamic_binarize = dynamic_binarize
        self.density = density

    @property
    def event_shape(self) -> torch.Size:
        return self.x.shape[1:]

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        x, y = self.batch(torch.as_tensor([i]))
        return x[0], y[0]

    def batch(
        self, index: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Examples ``index`` as one batch ``(x, y)``; draws binary x when dynamic."""
        index = index.to(self.x.device)
        x = self.x[index]
        if self.dynamic_binarize:
            x = torch.bernoulli(x, generator=generator)
        return x, self.y[index]

    def to(self, device: torch.device | str) -> TensorData:
        """The same data on ``device`` (tensors already there are not copied)."""
        return TensorData(
            self.x.to(device),
            self.y.to(device),
            name=self.name,
            num_classes=self.num_classes,
            dynamic_binarize=self.dynamic_binarize,
            density=self.density,
        )

    def __repr__(self) -> str:
        return (
            f"TensorData({self.name!r}, n={len(self)}, event_shape={tuple(self.event_shape)}, "
            f"num_classes={self.num_classes}, dynamic_binarize={self.dynamic_binarize})"
        )


def take(
    data: Dataset,
    index: Tensor,
    device: torch.device | str,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Examples ``index`` of any dataset of (x, y) pairs as one batch on ``device``:
    ``TensorData.batch`` (one indexing op) when it has one, else item by item, collated."""
    if isinstance(data, TensorData):
        x, y = data.batch(index, generator)
    else:
        x, y = default_collate([data[int(i)] for i in index])
    return x.to(device), y.to(device)


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
