"""A run directory from start to finish: ``train`` starts one, ``resume`` continues one.

Both hold the run's lock (``dgm.train.lock``) while they write it, so a second writer is
refused with the first one's pid and command; readers (eval, sample, ...) are never kept
out. ``train`` checks everything (flags, data, model) before it creates or changes a file:
a start that fails leaves no directory behind. A directory that never committed a
checkpoint and holds no weights is replaced (``clear_unstarted``); one with weights only
on an explicit ``overwrite=True``. A run whose trainer state is gone can still be
evaluated, sampled, or trained further as a new run from its weights (``init_from``).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from dgm import run_dir as rd
from dgm.config import from_dict, to_dict
from dgm.data.config import DataConfig
from dgm.data.dataset import TensorData
from dgm.model import GenerativeModel
from dgm.registry import config_for_data, create, saved_model_config
from dgm.train import checkpoint as ckpt
from dgm.train.config import TrainConfig, saved_config
from dgm.train.lock import RunInUse, RunLock, holder
from dgm.train.memory import check_training_memory
from dgm.train.trainer import CURVES, Trainer, TrainingDiverged


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
    overwrite: bool = False,
    init_from: str | Path | None = None,
    check_memory: bool = True,
    **model_config: Any,
) -> tuple[GenerativeModel, dict[str, Any]]:
    """Train a new model into run directory ``out``; returns the model and the last metrics.

    With ``check_memory`` a model estimated not to fit in the memory available is refused
    before it is built (``dgm.train.memory``). ``out`` must not hold weights (continue
    such a run with ``resume``) unless ``overwrite``, which deletes dgm's files there
    first; a run that never committed a
    checkpoint is replaced. ``init_from`` (another run directory, same model) starts from
    its committed weights and takes its model config, which ``model_config`` overrides;
    optimizers, schedule and data order start afresh. Nothing is created or changed until
    the data, the model and the options have passed their checks, and a failure before
    training begins removes what this call created.
    """
    config = config or TrainConfig()
    if config.decay_steps is None:  # fix the schedule's horizon so a resume keeps it
        config = dataclasses.replace(config, decay_steps=config.steps)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a folder: name a folder for the run")
    source = None
    if init_from is not None:
        init_from = Path(init_from)
        source = _init_source(init_from, out, model_name)
        model_config = {**saved_model_config(model_name, source["model_config"]), **model_config}
    if not overwrite:
        _refuse_replacing(out)  # at once; checked again under the lock
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
    if init_from is not None:
        trainer.start_from(rd.read_weights(rd.weights_file(init_from), model))
    if not trainer.writes:  # in memory, or a rank other than 0
        return model, _fit(trainer)
    created = _make_dirs(out)
    held = RunLock(out).acquire("wait for it to end, or choose another --out")  # or refused
    try:
        if not overwrite:
            _refuse_replacing(out, ours=True)
        removed = _clear(out)
        if removed:
            what = "its " + ", ".join(removed)
            said = (
                f"--overwrite: removed {what} from {out} and started afresh"
                if overwrite
                else f"{out} held a run that never reached its first checkpoint: removed "
                f"{what} and started afresh"
            )
            print(said, file=sys.stderr)
        info = train_data.info  # its value range draws samples; a vocab decodes text
        saved = rd.run_config(model, data, config, value_range=info.value_range, vocab=info.vocab)
        if init_from is not None:
            saved["init_from"] = {"run": str(init_from), "step": rd.checkpoint_step(init_from)}
        rd.write_json(out / rd.CONFIG, saved)
    except BaseException:
        _undo(out, created, held)
        raise
    try:
        return model, _fit(trainer)
    except (TrainingDiverged, KeyboardInterrupt):
        raise  # a run that began: its config and metrics stay, and train may replace it
    except BaseException:
        if trainer.saved_step is None:  # it failed at its first steps: nothing to keep
            _undo(out, created, held)
        raise
    finally:
        held.release()


def _init_source(init_from: Path, out: Path, model_name: str) -> dict[str, Any]:
    """The config.json of ``--init-from``'s run, checked: another run, of the same model."""
    if out.exists() and out.resolve() == init_from.resolve():
        raise ValueError(
            f"--init-from and --out both name {out}: a run's weights start a new run in "
            "another --out (to continue this one exactly, use dgm resume)"
        )
    source = rd.read_json(init_from / rd.CONFIG)
    if source.get("model") != model_name:
        raise ValueError(
            f"--init-from {init_from} holds a {source.get('model')!r} run, not {model_name!r}: "
            f"train {source.get('model')} from it, or drop --init-from"
        )
    if not rd.weights_file(init_from).is_file():
        raise FileNotFoundError(f"--init-from {init_from} has no weights (model.safetensors)")
    return source


def _refuse_replacing(out: Path, *, ours: bool = False) -> None:
    """Refuse to start in ``out`` when it holds weights: they are never deleted by accident.
    A run still being written is named as such (its process), unless ``ours`` (this
    process holds the lock)."""
    if not out.is_dir() or not rd.has_weights(out):
        return
    busy = None if ours else holder(out)
    if busy is not None:
        raise RunInUse(f"{out} is in use by {busy}: wait for it to end, or choose another --out")
    step = rd.checkpoint_step(out)
    at = f" (its checkpoint is at step {step})" if step is not None else ""
    where = shlex.quote(str(out))
    if rd.weights_file(out, ckpt.TRAINER_STATE).is_file():
        raise FileExistsError(
            f"{out} already holds a run{at}: continue it with `dgm resume {where} --steps N`, "
            "choose another --out, or pass --overwrite to delete its weights and start afresh"
        )
    raise FileExistsError(
        f"{out} holds the weights of a run{at} that cannot be resumed (no trainer state): "
        f"train from them with `--init-from {where} --out NEW_DIR`, choose another --out, or "
        "pass --overwrite to delete them and start afresh"
    )


def _make_dirs(out: Path) -> list[Path]:
    """Create ``out`` and its missing parents; returns those created, deepest first."""
    missing = [p for p in (out, *out.parents) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    return missing


def _undo(out: Path, created: list[Path], lock: RunLock) -> None:
    """After a failed start: dgm's files written here are removed, the lock released (its
    file with it), and the folders this call created too once empty."""
    _clear(out)
    lock.release()
    for folder in created:
        try:
            folder.rmdir()
        except OSError:  # not empty: someone else's files stay
            break


def clear_unstarted(out: Path) -> list[str]:
    """Remove dgm's own files from run directory ``out``, which must hold no weights and be
    in use by no other process (see ``_clear``). Any other file stays. Returns the names
    removed."""
    if rd.has_weights(out):
        raise FileExistsError(f"{out} holds weights: they are never cleared")
    with RunLock(out).acquire("let it run, or choose another --out"):
        if rd.has_weights(out):  # a checkpoint committed while we waited
            raise FileExistsError(f"{out} holds weights: they are never cleared")
        return _clear(out)


def _clear(out: Path) -> list[str]:
    """Remove dgm's own files from ``out`` (the caller holds its lock and has decided):
    config.json, metrics.jsonl, curves.png, *.safetensors, trainer.pt, checkpoint.json,
    checkpoints/ and samples/step_*.png (the folder too once empty). Returns their names."""
    if not out.is_dir():
        return []
    own = (rd.CONFIG, rd.METRICS, CURVES, rd.CHECKPOINT, ckpt.TRAINER_STATE)
    removed = []
    for path in sorted(out.iterdir()):
        if (path.name in own or path.suffix == ".safetensors") and path.is_file():
            path.unlink()
            removed.append(path.name)
    if (out / rd.CHECKPOINTS).is_dir():
        shutil.rmtree(out / rd.CHECKPOINTS)
        removed.append(f"{rd.CHECKPOINTS}/")
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


def _fit(trainer: Trainer) -> dict[str, Any]:
    """``trainer.fit()``, reporting a model whose outputs became NaN or infinite as the
    divergence it is: torch.distributions' argument check (a ValueError that dumps the
    tensor) can fire in the forward pass before the trainer's guard sees a loss."""
    try:
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
    fewer steps than it has trained, or a run without a checkpoint, are refused; a run with
    weights but no trainer state is refused with what it can still do.
    """
    run_dir = Path(run_dir)
    saved = rd.read_json(run_dir / rd.CONFIG)
    if not rd.weights_file(run_dir, ckpt.TRAINER_STATE).is_file():
        raise FileNotFoundError(_why_not_resumable(run_dir, saved))
    config = saved_config(saved["train"])
    done = rd.checkpoint_step(run_dir)
    if done is not None and steps is not None and steps < done:
        raise ValueError(
            f"{run_dir} is already at step {done}; --steps is the total to reach, so "
            f"--steps {steps} would go back: give more than {done} to train further"
        )
    if done is not None and (steps if steps is not None else config.steps) <= done:
        model = rd.model_from_config(saved)  # finished: nothing to train, no file touched
        rd.load_weights(rd.weights_file(run_dir), model)
        return model, {"step": done, "finished": True}
    if steps is not None:
        config = dataclasses.replace(config, steps=steps)
    data = from_dict(DataConfig, saved["data"])
    train_data, valid_data = load_splits(data)
    torch.manual_seed(config.seed)
    model = rd.model_from_config(saved)
    trainer = Trainer(model, train_data, valid_data, config, run_dir, progress=progress)
    lock = RunLock(run_dir)
    if trainer.writes:
        lock.acquire()  # before reading the checkpoint: no writer changes it under us
    try:
        trainer.resume()
        if trainer.writes and steps is not None:
            rd.write_json(run_dir / rd.CONFIG, {**saved, "train": to_dict(config)})
        return model, _fit(trainer)
    finally:
        lock.release()


def _why_not_resumable(run_dir: Path, saved: dict[str, Any]) -> str:
    """What ``resume`` says of a run without trainer state: with weights, what can still be
    done with them (never a command that deletes them); without, how to start it again."""
    model = saved.get("model", "MODEL")
    data_name = (saved.get("data") or {}).get("name", "NAME")
    where = shlex.quote(str(run_dir))
    if not rd.has_weights(run_dir):
        return (
            f"{run_dir} never reached its first checkpoint, so there is nothing to resume: "
            f"start it again with `dgm train {model} --data {data_name} ... --out {where}` "
            "(that replaces it)"
        )
    step = rd.checkpoint_step(run_dir)
    at = f" (step {step})" if step is not None else ""
    return (
        f"{run_dir} has weights{at} but no trainer state ({ckpt.TRAINER_STATE}), so it "
        f"cannot continue exactly; its weights still serve `dgm eval {where}` and "
        f"`dgm sample {where} --out FILE.png`, and train further as a new run with "
        f"`dgm train {model} --data {data_name} --init-from {where} --out NEW_DIR --steps N`"
    )
