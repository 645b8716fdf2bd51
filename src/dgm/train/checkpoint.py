"""The trainer's resume state, trainer.pt: optimizers, data position, RNG states, step.

It loads with ``torch.load(weights_only=True)``, so loading never unpickles code. The rest
of a run directory (config.json, weights, metrics.jsonl) is ``dgm.run_dir``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dgm.io import atomic_write

TRAINER_STATE = "trainer.pt"


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
