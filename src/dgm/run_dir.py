"""A run directory on disk: config.json, the weights (model, best, EMA) and metrics.jsonl.

Training writes it, and evaluation, the CLI and ``dgm.load`` read it; the trainer's own
resume state (trainer.pt) and the commit of a checkpoint live with the trainer in
``dgm.train.checkpoint``. A checkpoint is one unit: its files lie in
``checkpoints/step-NNNNNNN/`` and ``checkpoint.json`` (replaced atomically, last) names the
committed one, with each file's SHA-256. The same files are linked at the top level
(model.safetensors, ...) for tools that open them directly; readers here go through
``checkpoint.json``, so a crash during a later checkpoint never mixes steps. A run written
before checkpoint.json existed (files at the top level only) reads as before. Every write
is atomic (a temporary file in the same folder, then ``os.replace``). Nothing here
unpickles code: weights are safetensors.

An existing run is read through one object, ``Run``: ``Run.open(path)`` checks the
folder, and the model (best / EMA / device), the data of a split, the value range, the
vocabulary, the c of examples and the logged metrics come from it.
"""

from __future__ import annotations

import dataclasses
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
from dgm.registry import create, name_of, saved_model_config, spec
from dgm.version import __version__

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
BEST_WEIGHTS = "best.safetensors"  # the weights of the best validation score
EMA_WEIGHTS = "ema.safetensors"  # the exponential moving average, when training kept one
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.json"  # names the committed checkpoint: its step, folder, files
CHECKPOINTS = "checkpoints"  # one folder per checkpoint step: checkpoints/step-NNNNNNN/
TRAINER_STATE = "trainer.pt"  # optimizers, data position, RNG: what resume needs

__all__ = [
    "BEST_WEIGHTS",
    "CHECKPOINT",
    "CHECKPOINTS",
    "CONFIG",
    "EMA_WEIGHTS",
    "METRICS",
    "TRAINER_STATE",
    "WEIGHTS",
    "Committed",
    "Run",
    "append_metrics",
    "atomic_write",
    "checkpoint_step",
    "committed",
    "has_weights",
    "load_model",
    "load_weights",
    "model_from_config",
    "read_json",
    "read_metrics",
    "read_weights",
    "resolve_device",
    "run_config",
    "save_weights",
    "weights_file",
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
    return create(name, shape, **saved_model_config(name, values))


# -- the committed checkpoint ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Committed:
    """The checkpoint ``checkpoint.json`` names: its step, its folder and its files (file
    name -> SHA-256 of the bytes)."""

    step: int
    folder: Path
    files: dict[str, str]

    def path(self, name: str) -> Path | None:
        """The committed file ``name`` (e.g. ``WEIGHTS``), or None if the checkpoint has none."""
        return self.folder / name if name in self.files else None


def committed(run_dir: str | Path) -> Committed | None:
    """The committed checkpoint of ``run_dir``; None when it has no checkpoint.json (a run
    that never checkpointed, or one written before checkpoint.json existed)."""
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT).is_file():
        return None
    saved = read_json(run_dir / CHECKPOINT)
    try:
        return Committed(int(saved["step"]), run_dir / saved["folder"], dict(saved["files"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{run_dir / CHECKPOINT} is not a checkpoint record ({e})") from None


def weights_file(run_dir: str | Path, name: str = WEIGHTS) -> Path:
    """Where a reader finds file ``name`` of the committed checkpoint: in its folder when
    checkpoint.json names one, else at the top level (older runs). The path may not exist."""
    run_dir = Path(run_dir)
    found = committed(run_dir)
    path = found.path(name) if found is not None else None
    return path if path is not None else run_dir / name


def checkpoint_step(run_dir: str | Path) -> int | None:
    """The step of the run's committed weights (checkpoint.json, else model.safetensors'
    metadata); None when it has none or they are unreadable."""
    found = committed(run_dir)
    if found is not None:
        return found.step
    try:
        return weights_step(Path(run_dir) / WEIGHTS)
    except Exception:  # safetensors raises several types for a missing or corrupt file
        return None


def has_weights(run_dir: str | Path) -> bool:
    """True when ``run_dir`` holds trained weights: a committed checkpoint, or any of
    model, EMA and best weights at the top level (a run of any age)."""
    run_dir = Path(run_dir)
    names = (CHECKPOINT, WEIGHTS, EMA_WEIGHTS, BEST_WEIGHTS)
    return any((run_dir / name).is_file() for name in names)


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
    """Rebuild the model of a run directory from config.json and its committed weights, in
    eval mode: best.safetensors with ``best``, else ema.safetensors when the run kept an
    EMA of its weights and ``ema`` is true, else model.safetensors (the raw weights)."""
    run_dir = Path(run_dir)
    model = model_from_config(read_json(run_dir / CONFIG))
    if best:
        path = weights_file(run_dir, BEST_WEIGHTS)
    elif ema and weights_file(run_dir, EMA_WEIGHTS).is_file():
        path = weights_file(run_dir, EMA_WEIGHTS)
    else:
        path = weights_file(run_dir, WEIGHTS)
    load_weights(path, model)
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


# -- an existing run, as its readers see it -----------------------------------------------------


class Run:
    """An existing run directory, opened once: what evaluation, the tasks, the report, the
    benchmarks and the CLI read of a run go through here.

    ``config`` is the saved config.json (a dict); ``model(...)`` rebuilds the model with
    the chosen weights; ``data(split)`` rebuilds the saved data configuration once per split
    (cached); ``conditions(split, index)`` is the c of examples through
    ``Conditioning.pick`` (so a context-conditional model on data without a context is an
    error, never a silent ``None``); ``metrics()`` the records of metrics.jsonl.

    Example:
        >>> Run.open("no/such/run")
        Traceback (most recent call last):
        ...
        ValueError: no/such/run does not exist: give a run directory, the --out folder of dgm train
    """

    def __init__(self, path: Path, config: dict[str, Any]) -> None:
        self.path = path
        self.config = config
        self._data: dict[tuple[str, str | None, str | None], Any] = {}
        self._conditioning: Any = None

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """The run in folder ``path``; a missing folder, a file, or a folder without
        config.json is a one-line ValueError that says what to give instead."""
        path = Path(path)
        if not (path / CONFIG).is_file():
            what = (
                "does not exist"
                if not path.exists()
                else "is a file, not a run directory"
                if path.is_file()
                else f"has no {CONFIG}"
            )
            raise ValueError(f"{path} {what}: give a run directory, the --out folder of dgm train")
        config = read_json(path / CONFIG)
        if not isinstance(config, dict):
            raise ValueError(f"{path / CONFIG} is not a run configuration (a JSON object)")
        return cls(path, config)

    @property
    def name(self) -> str:
        """The registered name of the run's model, e.g. ``"vae"``."""
        return str(self.config.get("model", "MODEL"))

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one x the run's model takes."""
        return tuple(int(d) for d in self.config.get("event_shape") or ())

    @property
    def value_range(self) -> tuple[float, float] | None:
        """The data's (low, high), for drawing pictures; None when the run saved none."""
        vr = self.config.get("value_range")
        return (float(vr[0]), float(vr[1])) if vr else None

    @property
    def vocab(self) -> str | None:
        """The characters of a text run (token i is ``vocab[i]``); None for other runs."""
        vocab = self.config.get("vocab")
        return None if vocab is None else str(vocab)

    @property
    def data_config(self) -> Any:
        """The saved ``DataConfig``; a ValueError for a run saved without its data."""
        from dgm.config import from_dict
        from dgm.data import DataConfig

        saved = self.config.get("data")
        if not isinstance(saved, dict):
            raise ValueError(f"{self.path / CONFIG} holds no data configuration")
        return from_dict(DataConfig, saved)

    def model(
        self, *, best: bool = False, ema: bool = True, device: str | torch.device = "auto"
    ) -> GenerativeModel:
        """The run's model in eval mode on ``device`` ("auto": CUDA when torch sees it):
        best.safetensors with ``best``, else the EMA weights when the run kept them and
        ``ema`` is true, else the raw weights."""
        device = resolve_device(device) if isinstance(device, str) else device
        model = load_model(self.path, best=best, ema=ema).to(device)
        self._conditioning = model.conditioning
        return model

    def data(self, split: str = "test", dataset: str | None = None, root: str | None = None) -> Any:
        """Split ``split`` of the run's data, rebuilt from the saved configuration once and
        cached. ``dataset`` names another dataset (e.g. out-of-distribution data), loaded
        with the run's options it takes (binarization, scale) from ``root`` (default: the
        run's folder when it is the run's dataset); its examples must have the run's shape."""
        key = (split, dataset, root)
        if key not in self._data:
            self._data[key] = self._load_data(split, dataset, root)
        return self._data[key]

    def _load_data(self, split: str, dataset: str | None, root: str | None) -> Any:
        from dgm.data import dataset_options, get
        from dgm.data.dataset import dataset_spec

        saved = self.data_config
        if dataset is None or dataset == saved.name:
            if root is None:
                return saved.load(split)
            dataset = saved.name
        dataset_spec(dataset)  # an unknown name is an error listing the known ones
        accepted = dataset_options(dataset)
        options = {k: v for k, v in saved.options.items() if k in accepted}
        data = get(dataset, split, root, **options)
        if self.event_shape and tuple(data.event_shape) != self.event_shape:
            raise ValueError(
                f"dataset {dataset!r} has examples of shape {tuple(data.event_shape)} but the "
                f"model takes {self.event_shape}: choose a dataset of the run's shape"
            )
        return data

    def conditions(
        self,
        split: str = "test",
        index: Tensor | None = None,
        *,
        device: str | torch.device = "cpu",
    ) -> Tensor | None:
        """The c the run's model takes for examples ``index`` (default: all) of ``split``:
        their labels, their contexts or None, chosen by ``Conditioning.pick``, which refuses
        a context-conditional model whose data carry no context."""
        if self._conditioning is None:  # the kind of c, without reading the weights
            self._conditioning = model_from_config(self.config).conditioning
        data = self.data(split)
        index = torch.arange(len(data)) if index is None else torch.as_tensor(index)
        y = data.y[index].to(device)
        context = None if data.context is None else data.context[index].to(device)
        return self._conditioning.pick(y, context)

    def metrics(self) -> list[dict[str, Any]]:
        """The records of metrics.jsonl, in order (none when the run logged nothing)."""
        path = self.path / METRICS
        return read_metrics(path) if path.is_file() else []

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, model={self.name!r})"
