"""Run directories on disk: config.json, model.safetensors, trainer.pt, metrics.jsonl.

Every write is atomic (a temporary file in the same folder, then ``os.replace``), so a
crash mid-write leaves the previous file intact. Nothing here unpickles code: weights are
safetensors and the trainer state loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from dgm.config import to_dict
from dgm.io import atomic_write, read_json, write_json  # noqa: F401  (re-exported)
from dgm.model import GenerativeModel
from dgm.registry import create, name_of, spec
from dgm.version import __version__

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
BEST_WEIGHTS = "best.safetensors"
TRAINER_STATE = "trainer.pt"
METRICS = "metrics.jsonl"


# -- config.json -------------------------------------------------------------------------


def run_config(model: GenerativeModel, data: Any = None, train: Any = None) -> dict[str, Any]:
    """The config.json of a run: enough to rebuild the model, its data and its training."""
    return {
        "dgm_version": __version__,
        "model": name_of(model),
        "event_shape": list(model.event_shape),
        "model_config": to_dict(model.config),
        "data": to_dict(data) if data is not None else None,
        "train": to_dict(train) if train is not None else None,
    }


def model_from_config(config: dict[str, Any]) -> GenerativeModel:
    try:
        name, shape, values = config["model"], config["event_shape"], config["model_config"]
    except KeyError as e:
        raise ValueError(f"config.json lacks the key {e}") from None
    spec(name)  # a clear error for an unknown model name
    return create(name, shape, **values)


# -- weights -------------------------------------------------------------------------------


def save_weights(path: Path, model: GenerativeModel, step: int) -> None:
    """model.state_dict() as safetensors, tagged with the model name and the step."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"model": name_of(model), "step": str(step), "dgm_version": __version__}
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata=meta))


def weights_step(path: Path) -> int:
    """The training step stored in a weights file's metadata."""
    with safe_open(str(path), framework="pt") as f:
        return int((f.metadata() or {}).get("step", -1))


def load_weights(path: Path, model: GenerativeModel) -> None:
    """Load safetensors weights into ``model``, refusing a file from another model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable safetensors file ({e})") from None
    expected = name_of(model)
    if meta.get("model", expected) != expected:
        raise ValueError(f"{path} holds weights of model {meta['model']!r}, not {expected!r}")
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    shapes = [
        f"{k}: {tuple(tensors[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        raise ValueError(
            f"{path} does not match the model in config.json: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatches {shapes[:5]}"
        )
    model.load_state_dict(tensors)


def load_model(run_dir: str | Path, *, best: bool = False) -> GenerativeModel:
    """Rebuild the model of a run directory from config.json and its weights, in eval mode."""
    run_dir = Path(run_dir)
    model = model_from_config(read_json(run_dir / CONFIG))
    load_weights(run_dir / (BEST_WEIGHTS if best else WEIGHTS), model)
    return model.eval()


# -- trainer state ---------------------------------------------------------------------------


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


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    """One JSON line per record (appends are not atomic, but never touch the checkpoint)."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
