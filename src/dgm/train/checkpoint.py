"""A checkpoint committed as one unit, and the trainer's resume state (trainer.pt).

``commit`` writes every file of step N (model.safetensors, ema.safetensors, best.safetensors,
trainer.pt) into ``checkpoints/step-NNNNNNN/``, each atomically, then replaces
``checkpoint.json``, which names that folder, the step and each file's SHA-256: that one
rename is the commit. Only then are the files linked at the top level (for tools that open
model.safetensors directly) and the previous folder removed. A crash at any point leaves
checkpoint.json naming a complete checkpoint, the new one or the previous one; the readers
(``dgm.run_dir.weights_file``, ``resume``) go through it.

trainer.pt loads with ``torch.load(weights_only=True)``, so loading never unpickles code.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from dgm import run_dir as rd
from dgm.io import atomic_write, file_digest

if TYPE_CHECKING:
    from dgm.model import GenerativeModel
    from dgm.train.optim import WeightAverage

TRAINER_STATE = rd.TRAINER_STATE

# Called with a label after every write that lands on disk during ``commit`` (each file,
# the commit record, each top-level link, the removal of the previous folder). None in
# normal use; the crash tests set it to kill the process at each of these points in turn.
on_write: Callable[[str], None] | None = None


def _wrote(label: str) -> None:
    if on_write is not None:
        on_write(label)


def folder_name(step: int) -> str:
    return f"{rd.CHECKPOINTS}/step-{step:07d}"


def commit(
    run_dir: Path,
    step: int,
    writers: dict[str, Callable[[Path], None]],
    carried: dict[str, Path] | None = None,
) -> None:
    """Write checkpoint ``step`` of ``run_dir`` as one unit: ``writers`` maps each file name
    to a function writing it at a given path; ``carried`` maps file names to existing files
    to take over unchanged (hard-linked, e.g. the best weights of an earlier step)."""
    run_dir = Path(run_dir)
    folder = run_dir / folder_name(step)
    if folder.exists():  # an uncommitted attempt at this step (a crash, then a resume)
        previous = rd.committed(run_dir)
        if previous is not None and previous.folder == folder:
            raise FileExistsError(f"{folder} is the committed checkpoint: it is never rewritten")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, source in (carried or {}).items():
        _link(source, folder / name)
        _wrote(name)
    for name, write in writers.items():
        atomic_write(folder / name, write)
        _wrote(name)
    files = {p.name: file_digest(p) for p in sorted(folder.iterdir()) if not p.name.startswith(".")}
    record = {"step": step, "folder": folder_name(step), "files": files}
    rd.write_json(run_dir / rd.CHECKPOINT, record)  # the commit
    _wrote(rd.CHECKPOINT)
    for name in files:  # the top-level copies, for tools that open the files directly
        _link(folder / name, run_dir / name)
        _wrote(f"top-level {name}")
    for old in sorted((run_dir / rd.CHECKPOINTS).iterdir()):
        if old != folder and old.name.startswith("step-"):
            shutil.rmtree(old)
            _wrote(f"removed {old.name}")


def _link(source: Path, target: Path) -> None:
    """Make ``target`` the same file as ``source``, atomically (a hard link renamed over it;
    a copy on file systems without hard links)."""
    if target.exists() and os.path.samefile(source, target):
        return  # already (renaming a link over its twin would leave the temporary)
    tmp = target.with_name(f".{target.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def verify(found: rd.Committed) -> None:
    """Refuse a committed checkpoint whose files are missing or changed since the commit."""
    for name, digest in found.files.items():
        path = found.folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: the committed checkpoint is incomplete")
        if file_digest(path) != digest:
            raise ValueError(
                f"{path} has changed since step {found.step} was committed (its SHA-256 "
                "differs): the checkpoint cannot be trusted"
            )


def restore(run_dir: Path, model: GenerativeModel, ema: WeightAverage | None) -> dict[str, Any]:
    """Load the committed checkpoint of ``run_dir`` into ``model`` (and ``ema``, a
    ``WeightAverage``, when the run has one) and return its trainer state: every file
    verified against the commit, the weights refused when they come from another model or
    from another step than trainer.pt."""
    found = rd.committed(run_dir)
    if found is not None:
        verify(found)  # every file as committed
    state = load_trainer_state(rd.weights_file(run_dir, TRAINER_STATE))
    rd.load_weights(rd.weights_file(run_dir, rd.WEIGHTS), model)
    files = [rd.WEIGHTS]
    if ema is not None:
        path = rd.weights_file(run_dir, rd.EMA_WEIGHTS)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: the run has no EMA to continue")
        ema.load(rd.read_weights(path, model))
        files.append(rd.EMA_WEIGHTS)
    steps = {rd.weights_step(rd.weights_file(run_dir, f)) for f in files}
    if steps != {state["step"]}:  # only a run from before checkpoint.json can show this
        raise ValueError(
            f"{run_dir}: {' and '.join(files)} and trainer.pt come from different steps "
            "(a crash between the writes of an older dgm): it cannot resume exactly; "
            f"continue from its weights as a new run: dgm train ... --init-from {run_dir} "
            "--out NEW_DIR"
        )
    return state


def save_trainer_state(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda p: torch.save(state, p))


def load_trainer_state(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the run has no checkpoint to resume from")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or foreign files
        raise ValueError(
            f"{path} is not a readable trainer state ({type(e).__name__}: {e})"
        ) from None
