"""A run directory on disk: config.json, the weights (model, best, EMA) and metrics.jsonl.

Training writes it, and evaluation, the CLI and ``dgm.load`` read it; the trainer's own
resume state (trainer.pt) lives with the trainer in ``dgm.train.checkpoint``. Every write
is atomic (a temporary file in the same folder, then ``os.replace``), so a crash mid-write
leaves the previous file intact. Nothing here unpickles code: weights are safetensors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from dgm.config import to_dict
from dgm.io import atomic_write, read_json, write_json
from dgm.model import GenerativeModel
from dgm.registry import create, name_of, spec
from dgm.version import __version__

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
BEST_WEIGHTS = "best.safetensors"  # the weights of the best validation score
EMA_WEIGHTS = "ema.safetensors"  # the exponential moving average, when training kept one
METRICS = "metrics.jsonl"

__all__ = [
    "BEST_WEIGHTS",
    "CONFIG",
    "EMA_WEIGHTS",
    "METRICS",
    "WEIGHTS",
    "append_metrics",
    "atomic_write",
    "load_model",
    "load_weights",
    "model_from_config",
    "read_json",
    "read_metrics",
    "read_weights",
    "resolve_device",
    "run_config",
    "save_weights",
    "weights_step",
    "write_json",
]


def resolve_device(name: str) -> torch.device:
    """ "auto" (CUDA when present), "cpu" or "cuda", checked against what torch sees."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device")
    return torch.device(name)


# -- config.json -------------------------------------------------------------------------


def run_config(
    model: GenerativeModel,
    data: Any = None,
    train: Any = None,
    *,
    value_range: tuple[float, float] | None = None,
    vocab: str | None = None,
) -> dict[str, Any]:
    """The config.json of a run: enough to rebuild the model, its data and its training;
    ``value_range`` is the data's (low, high), for drawing samples; ``vocab`` the characters
    of text tokens (token i is ``vocab[i]``), for decoding samples (stored only when given)."""
    extra = {"vocab": vocab} if vocab is not None else {}
    return {
        "dgm_version": __version__,
        "model": name_of(model),
        "event_shape": list(model.event_shape),
        "model_config": to_dict(model.config),
        "data": to_dict(data) if data is not None else None,
        "train": to_dict(train) if train is not None else None,
        "value_range": list(value_range) if value_range is not None else None,
        **extra,
    }


def model_from_config(config: dict[str, Any]) -> GenerativeModel:
    """The model config.json describes, freshly initialised."""
    try:
        name, shape, values = config["model"], config["event_shape"], config["model_config"]
    except KeyError as e:
        raise ValueError(f"config.json lacks the key {e}") from None
    spec(name)  # a clear error for an unknown model name
    return create(name, shape, **values)


# -- weights -------------------------------------------------------------------------------


def save_weights(
    path: Path, model: GenerativeModel, step: int, state: Mapping[str, Tensor] | None = None
) -> None:
    """``state`` (default: model.state_dict()) as safetensors, tagged with the model name
    and the step."""
    state = model.state_dict() if state is None else state
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    meta = {"model": name_of(model), "step": str(step), "dgm_version": __version__}
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata=meta))


def weights_step(path: Path) -> int:
    """The training step stored in a weights file's metadata."""
    with safe_open(str(path), framework="pt") as f:
        return int((f.metadata() or {}).get("step", -1))


def read_weights(path: Path, model: GenerativeModel) -> dict[str, Tensor]:
    """The tensors of a safetensors file, checked against ``model``: the model name in the
    metadata, the keys and the shapes (data-sized buffers of ``model`` are resized)."""
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
    for name in model.data_sized_buffers:  # their shape comes from the data it was fitted on
        if name in tensors:
            _resize_buffer(model, name, tensors[name])
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
    return tensors


def load_weights(path: Path, model: GenerativeModel) -> None:
    """Load safetensors weights into ``model``, refusing a file from another model."""
    model.load_state_dict(read_weights(path, model))


def _resize_buffer(model: GenerativeModel, name: str, value: Tensor) -> None:
    """Give buffer ``name`` (a dotted path) the shape and dtype of ``value``."""
    owner_name, _, attr = name.rpartition(".")
    owner = model.get_submodule(owner_name) if owner_name else model
    old = owner.get_buffer(attr)
    if old.shape != value.shape or old.dtype != value.dtype:  # else keep what it holds
        owner.register_buffer(attr, torch.empty_like(value, device=old.device))


def load_model(run_dir: str | Path, *, best: bool = False, ema: bool = True) -> GenerativeModel:
    """Rebuild the model of a run directory from config.json and its weights, in eval mode:
    best.safetensors with ``best``, else ema.safetensors when the run kept an EMA of its
    weights and ``ema`` is true, else model.safetensors (the raw weights)."""
    run_dir = Path(run_dir)
    model = model_from_config(read_json(run_dir / CONFIG))
    if best:
        name = BEST_WEIGHTS
    elif ema and (run_dir / EMA_WEIGHTS).is_file():
        name = EMA_WEIGHTS
    else:
        name = WEIGHTS
    load_weights(run_dir / name, model)
    return model.eval()


# -- metrics.jsonl ---------------------------------------------------------------------------


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    """One JSON line per record (appends are not atomic, but never touch the checkpoint)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl, in order; a torn last line (a crash mid-append)
    is skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is this a dgm run directory?")
    records = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON") from None
    return records
