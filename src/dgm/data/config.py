"""What a run trains on, as stored in config.json and set by the CLI's data flags."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import torch

from dgm import config as cfg
from dgm.data.dataset import TensorData, available_datasets, dataset_spec, get, make_options
from dgm.data.options import DatasetOptions

DATA_SEED = "data_seed"  # the option ``seed`` as a flag and in old config.json files
FLAG_NAMES = {"seed": "--data-seed"}  # options whose flag is not --<option>


@dataclasses.dataclass(init=False)
class DataConfig:
    """A dataset name, its folder or file, and the options given for it (the rest keep
    the dataset's defaults); an option the dataset does not take is an error naming the
    datasets that take it.

    ``DataConfig("digits", binarize="static")`` stores ``{"name": "digits", "root": null,
    "options": {"binarize": "static"}}`` in config.json; the flat form older runs wrote
    (every option of every dataset, unset ones null, ``data_seed`` for ``seed``) still
    loads (``from_json``).

    Example:
        >>> DataConfig("moons", num_samples=100).load("train").x.shape
        torch.Size([100, 2])
        >>> DataConfig("moons", block_size=8)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: dataset 'moons' takes no option --block-size (...
    """

    name: str = "digits"  # a registered dataset
    root: str | None = None  # the data's folder or file (--data-root)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # options given
    train_fraction: float | None = None  # share of the train split kept (seeded subset; 1: all)

    def __init__(
        self,
        name: str = "digits",
        root: str | None = None,
        options: dict[str, Any] | None = None,
        train_fraction: float | None = None,
        **given: Any,
    ) -> None:
        merged = {**(options or {}), **given}
        if DATA_SEED in merged:  # the flag's name for the loaders' seed
            merged["seed"] = merged.pop(DATA_SEED)
        self.name, self.root, self.train_fraction = name, root, train_fraction
        self.options = {k: v for k, v in merged.items() if v is not None}
        self.typed()  # an unknown dataset or an option it does not take: an error now

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> DataConfig:
        """The ``"data"`` section of config.json, in today's form or the flat form older
        runs wrote (``"binarize": null, ..., "data_seed": null``)."""
        values = dict(values)
        name, root = values.pop("name", "digits"), values.pop("root", None)
        options = values.pop("options", None) or {}
        fraction = values.pop("train_fraction", None)
        return cls(name, root, {**options, **values}, fraction)

    def typed(self) -> DatasetOptions:
        """The options as the dataset's options dataclass (defaults filled in)."""
        return make_options(self.name, self.options, _flags(self.options))

    def load(self, split: str) -> TensorData:
        """Split ``split``; the train split cut to its ``train_fraction`` (a subset drawn
        by the data seed, default 0, so each fraction of a sweep is repeatable)."""
        data = get(self.name, split, self.root, **self.options)
        f = self.train_fraction
        if f is None or split != "train":
            return data
        if not 0 < f <= 1:
            raise ValueError(f"train_fraction (--train-fraction) must lie in (0, 1], got {f}")
        keep = max(1, round(f * len(data)))
        seed = int(self.options.get("seed") or 0)
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
        return data.subset(order[:keep].sort().values)


def data_flag(option: str) -> str:
    """The ``dgm train`` flag of a dataset option (``binarize`` -> ``--binarize``, ``seed``
    -> ``--data-seed``, apart from the trainer's ``--seed``)."""
    return FLAG_NAMES.get(option, cfg.flag(option))


def _flags(options: dict[str, Any]) -> dict[str, str]:
    return {k: data_flag(k) for k in options}


def option_classes() -> list[type[DatasetOptions]]:
    """The options dataclasses of the registered datasets, each once: the one most
    datasets take first (ties: more options first)."""
    users: dict[type[DatasetOptions], int] = {}
    for name in available_datasets():
        cls = dataset_spec(name).options
        users[cls] = users.get(cls, 0) + 1
    return sorted(users, key=lambda c: (-users[c], -len(dataclasses.fields(c))))


def option_names() -> list[str]:
    """Every option some registered dataset takes, sorted."""
    return sorted({f.name for cls in option_classes() for f in dataclasses.fields(cls)})


def data_flag_names() -> list[str]:
    """The data flags of ``dgm train`` as names (``--data-seed`` -> ``data_seed``)."""
    return [data_flag(n)[2:].replace("-", "_") for n in option_names()]


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data flags of ``dgm train``, one group per options class titled with the
    datasets that take it; a flag several classes share is shown in the first group."""
    done: set[str] = set()
    for cls in option_classes():
        names = [n for n in available_datasets() if dataset_spec(n).options is cls]
        fields = [f.name for f in dataclasses.fields(cls)]
        shared = [data_flag(f) for f in fields if f in done]
        group = parser.add_argument_group(
            f"data options of {', '.join(names)}",
            f"also {', '.join(shared)} (above)" if shared else None,
        )
        cfg.add_arguments(
            group,
            cls,
            skip=tuple(done),
            unset="none",
            prefix="data_",
            flags={f: data_flag(f) for f in fields},
        )
        done |= set(fields)
    parser.add_argument(
        "--train-fraction",
        type=float,
        default=None,
        metavar="F",
        help="share of the train split kept, a seeded subset (any dataset; default: all)",
    )


def from_flags(name: str, values: dict[str, Any]) -> DataConfig:
    """The DataConfig of ``dgm train --data NAME``: ``root`` and the data flags given in
    ``values`` (an argparse namespace as a dict; data flags are ``data_<option>``)."""
    given = {k: values["data_" + k] for k in option_names() if "data_" + k in values}
    return DataConfig(name, values.get("root"), given, values.get("train_fraction"))
