"""A run directory from start to finish: ``train`` starts one, ``resume`` continues one."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from dgm.config import from_dict, to_dict
from dgm.data.config import DataConfig
from dgm.data.dataset import TensorData
from dgm.model import GenerativeModel
from dgm.registry import create
from dgm.train import checkpoint as ckpt
from dgm.train.config import TrainConfig
from dgm.train.trainer import Trainer


def load_splits(data: DataConfig) -> tuple[TensorData, TensorData | None]:
    """The train split and, when the dataset has one, the valid split."""
    train = data.load("train")
    try:
        valid = data.load("valid")
    except ValueError:  # e.g. valid_fraction=0: no validation split
        valid = None
    return train, (valid if valid is not None and len(valid) > 0 else None)


def _check_classes(model: GenerativeModel, data: TensorData) -> None:
    if model.conditional and model.num_classes > data.num_classes:
        raise ValueError(
            f"the model is conditional on {model.num_classes} classes but dataset "
            f"{data.name!r} has {data.num_classes}"
        )


def train(
    model_name: str,
    data: DataConfig,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
    **model_config: Any,
) -> tuple[GenerativeModel, dict[str, Any]]:
    """Train a new model into run directory ``out``; returns the model and the last metrics.

    ``out`` must not hold a run already (use ``resume``): saved state is never overwritten.
    """
    config = config or TrainConfig()
    if config.decay_steps is None:  # fix the schedule's horizon so a resume keeps it
        config = dataclasses.replace(config, decay_steps=config.steps)
    out = Path(out)
    if (out / ckpt.CONFIG).exists():
        raise FileExistsError(
            f"{out} already holds a run: continue it with `dgm resume {out} --steps N`"
        )
    train_data, valid_data = load_splits(data)
    torch.manual_seed(config.seed)
    model = create(model_name, train_data.event_shape, **model_config)
    _check_classes(model, train_data)
    trainer = Trainer(model, train_data, valid_data, config, out, progress=progress)
    if trainer.writes:
        out.mkdir(parents=True, exist_ok=True)
        ckpt.write_json(out / ckpt.CONFIG, ckpt.run_config(model, data, config))
    return model, trainer.fit()


def resume(
    run_dir: str | Path, steps: int | None = None, *, progress: bool = True
) -> tuple[GenerativeModel, dict[str, Any]]:
    """Continue the run in ``run_dir`` to ``steps`` total steps (default: its own target).

    Resumed with its original target, a run ends with the same weights, bit for bit, as one
    that was never interrupted; more steps continue at the schedule's floor learning rate.
    """
    run_dir = Path(run_dir)
    saved = ckpt.read_json(run_dir / ckpt.CONFIG)
    config = from_dict(TrainConfig, saved["train"])
    if steps is not None:
        config = dataclasses.replace(config, steps=steps)
    data = from_dict(DataConfig, saved["data"])
    train_data, valid_data = load_splits(data)
    torch.manual_seed(config.seed)
    model = ckpt.model_from_config(saved)
    trainer = Trainer(model, train_data, valid_data, config, run_dir, progress=progress)
    trainer.resume()
    if trainer.writes and steps is not None:
        ckpt.write_json(run_dir / ckpt.CONFIG, {**saved, "train": to_dict(config)})
    return model, trainer.fit()
