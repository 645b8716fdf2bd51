"""dgm: deep generative models on PyTorch, behind one interface.

>>> import dgm
>>> "vae" in dgm.available_models()
True
"""

from __future__ import annotations

from pathlib import Path

from dgm import data, models  # noqa: F401  (registers datasets and models)
from dgm.data import available_datasets
from dgm.model import GenerativeModel, Likelihood, Loss
from dgm.registry import available_models, create
from dgm.version import __version__


def load(run_dir: str | Path, *, ema: bool = True) -> GenerativeModel:
    """The model saved in a run directory, rebuilt from config.json and its weights, in
    eval mode: the EMA of the weights (ema.safetensors) when the run kept one and ``ema``
    is true, else the raw weights (model.safetensors), on the CPU. Loading never unpickles
    code; ``dgm.run_dir.Run.open(run_dir)`` gives the rest of the run (data, metrics)."""
    from dgm.run_dir import Run

    return Run.open(run_dir).model(ema=ema, device="cpu")


__all__ = [
    "GenerativeModel",
    "Likelihood",
    "Loss",
    "__version__",
    "available_datasets",
    "available_models",
    "create",
    "load",
]
