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


def load(run_dir: str | Path) -> GenerativeModel:
    """The model saved in a run directory, rebuilt from config.json and model.safetensors,
    in eval mode. Loading never unpickles code."""
    from dgm.train.checkpoint import load_model

    return load_model(run_dir)


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
