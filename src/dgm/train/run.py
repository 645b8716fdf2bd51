"""A run directory from start to finish: ``train`` starts one, ``resume`` continues one.

A directory that never reached its first checkpoint (trainer.pt) holds nothing to resume:
``train`` replaces dgm's own files there (``clear_unstarted``) and starts afresh, while a
directory with a checkpoint is never overwritten.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from dgm import run_dir as rd
from dgm.config import from_dict, to_dict
from dgm.data.config import DataConfig
from dgm.data.dataset import TensorData
from dgm.model import GenerativeModel
from dgm.registry import config_for_data, create
from dgm.train import checkpoint as ckpt
from dgm.train.config import TrainConfig
from dgm.train.memory import check_training_memory
from dgm.train.trainer import CURVES, Trainer, TrainingDiverged

try:
    import fcntl
except ImportError:  # not POSIX: no advisory locks, so nothing marks a live run
    fcntl = None  # type: ignore[assignment]


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
            + (f": pass --num-classes {data.num_classes}" if data.num_classes else "")
        )


def train(
    model_name: str,
    data: DataConfig,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
    check_memory: bool = True,
    **model_config: Any,
) -> tuple[GenerativeModel, dict[str, Any]]:
    """Train a new model into run directory ``out``; returns the model and the last metrics.
    With ``check_memory`` a model estimated not to fit in the memory available is refused
    before it is built (``dgm.train.memory``).

    ``out`` must not hold a checkpointed run (use ``resume``): saved state is never
    overwritten. A run that stopped before its first checkpoint is replaced, after the new
    one's data check passes: dgm's own files there are removed (``clear_unstarted``).
    """
    config = config or TrainConfig()
    if config.decay_steps is None:  # fix the schedule's horizon so a resume keeps it
        config = dataclasses.replace(config, decay_steps=config.steps)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a folder: name a folder for the run")
    if (out / ckpt.TRAINER_STATE).exists():
        step = _checkpoint_step(out)
        at = f" (its checkpoint is at step {step})" if step is not None else ""
        raise FileExistsError(
            f"{out} already holds a run{at}: continue it with `dgm resume {out} --steps N`, "
            "or choose another --out"
        )
    unstarted = (out / rd.CONFIG).exists()  # a run that stopped before its first checkpoint
    train_data, valid_data = load_splits(data)
    torch.manual_seed(config.seed)
    model_config = config_for_data(model_name, train_data, model_config)
    if check_memory:
        device = rd.resolve_device(config.device)
        shape = tuple(train_data.event_shape)
        check_training_memory(model_name, shape, model_config, config.batch_size, device)
    model = create(model_name, train_data.event_shape, **model_config)
    _check_classes(model, train_data)
    trainer = Trainer(model, train_data, valid_data, config, out, progress=progress)
    if trainer.writes:
        if unstarted:
            removed = clear_unstarted(out)
            print(
                f"{out} held a run that never reached its first checkpoint: removed its "
                f"{', '.join(removed)} and started afresh",
                file=sys.stderr,
            )
        out.mkdir(parents=True, exist_ok=True)
        vocab = getattr(train_data, "vocab", None)  # text: to decode samples
        saved = rd.run_config(model, data, config, value_range=train_data.value_range, vocab=vocab)
        rd.write_json(out / rd.CONFIG, saved)
    return model, _fit(trainer)


def clear_unstarted(out: Path) -> list[str]:
    """Remove dgm's own files from run directory ``out``, which must hold no checkpoint:
    config.json, metrics.jsonl, curves.png, *.safetensors and samples/step_*.png (the
    folder too once empty). Any other file stays. Returns the names removed."""
    if (out / ckpt.TRAINER_STATE).exists():
        raise FileExistsError(f"{out} holds a checkpoint: it is never cleared")
    with _locked(out / rd.CONFIG, shared=False) as free:
        if not free:
            raise FileExistsError(
                f"{out} is in use by a dgm train that has not reached its first checkpoint "
                "yet: let it run, or choose another --out"
            )
        removed = []
        for path in sorted(out.iterdir()):
            own = path.name in (rd.CONFIG, rd.METRICS, CURVES) or path.suffix == ".safetensors"
            if own and path.is_file():
                path.unlink()
                removed.append(path.name)
        samples = out / "samples"
        if samples.is_dir():
            pictures = sorted(samples.glob("step_*.png"))
            for path in pictures:
                path.unlink()
            if pictures:
                removed.append(f"samples/ ({len(pictures)} pictures)")
            if not any(samples.iterdir()):
                samples.rmdir()
    return removed


@contextlib.contextmanager
def _locked(path: Path, *, shared: bool) -> Iterator[bool]:
    """An advisory lock on ``path`` for the duration; yields whether it was had. A training
    run holds a shared one on its config.json (``_fit``), so ``clear_unstarted``, which asks
    for an exclusive one without waiting, never clears a run that is still going. Without
    the file (or without ``fcntl``) there is nothing to lock: yields True."""
    if fcntl is None or not path.is_file():
        yield True
        return
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH if shared else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True  # closing the file releases the lock


def _checkpoint_step(run_dir: Path) -> int | None:
    """The step of the run's checkpoint, from model.safetensors' metadata (cheap: the
    header only); None when it is missing or unreadable (``Trainer.resume`` says why)."""
    try:
        return rd.weights_step(run_dir / rd.WEIGHTS)
    except Exception:  # safetensors raises several types for a missing or corrupt file
        return None


def _fit(trainer: Trainer) -> dict[str, Any]:
    """``trainer.fit()``, reporting a model whose outputs became NaN or infinite as the
    divergence it is: torch.distributions' argument check (a ValueError that dumps the
    tensor) can fire in the forward pass before the trainer's guard sees a loss."""
    live = trainer.run_dir / rd.CONFIG if trainer.writes else None
    try:
        with _locked(live, shared=True) if live else contextlib.nullcontext():
            return trainer.fit()
    except ValueError as e:
        head, found, values = str(e).partition("but found invalid values")
        if not found or not re.search(r"\b(nan|inf)\b", values):
            raise
        name = re.search(r"Expected parameter (\w+)", head)
        what = f"parameter {name.group(1)!r} of a distribution" if name else "a distribution"
        clip = trainer.config.grad_clip
        fix = "lower --lr or --grad-clip" if clip else "lower --lr or set --grad-clip"
        kept = (
            f"the last good checkpoint (step {trainer.saved_step}) is kept"
            if trainer.saved_step is not None
            else "no checkpoint was written"
        )
        raise TrainingDiverged(
            f"the model's outputs became NaN or infinite after {trainer.step} step(s) "
            f"({what}); {kept}: {fix}"
        ) from None


def resume(
    run_dir: str | Path, steps: int | None = None, *, progress: bool = True
) -> tuple[GenerativeModel, dict[str, Any]]:
    """Continue the run in ``run_dir`` to ``steps`` total steps (default: its own target).

    Resumed with its original target, a run ends with the same weights, bit for bit, as one
    that was never interrupted; more steps continue at the schedule's floor learning rate.
    A run already at its target is returned untouched with ``{"step": N, "finished": True}``;
    fewer steps than it has trained, or a run without a checkpoint, are refused.
    """
    run_dir = Path(run_dir)
    saved = rd.read_json(run_dir / rd.CONFIG)
    if not (run_dir / ckpt.TRAINER_STATE).is_file():
        data_name = (saved.get("data") or {}).get("name", "NAME")
        raise FileNotFoundError(
            f"{run_dir} never reached its first checkpoint, so there is nothing to resume: "
            f"start it again with `dgm train {saved.get('model', 'MODEL')} --data {data_name} "
            f"... --out {run_dir}` (that replaces it)"
        )
    config = from_dict(TrainConfig, saved["train"])
    done = _checkpoint_step(run_dir)
    if done is not None and steps is not None and steps < done:
        raise ValueError(
            f"{run_dir} is already at step {done}; --steps is the total to reach, so "
            f"--steps {steps} would go back: give more than {done} to train further"
        )
    if done is not None and (steps if steps is not None else config.steps) <= done:
        model = rd.model_from_config(saved)  # finished: nothing to train, no file touched
        rd.load_weights(run_dir / rd.WEIGHTS, model)
        return model, {"step": done, "finished": True}
    if steps is not None:
        config = dataclasses.replace(config, steps=steps)
    data = from_dict(DataConfig, saved["data"])
    train_data, valid_data = load_splits(data)
    torch.manual_seed(config.seed)
    model = rd.model_from_config(saved)
    trainer = Trainer(model, train_data, valid_data, config, run_dir, progress=progress)
    trainer.resume()
    if trainer.writes and steps is not None:
        rd.write_json(run_dir / rd.CONFIG, {**saved, "train": to_dict(config)})
    return model, _fit(trainer)
