"""pytorch-generative, the autoregressive peer: its MADE, NADE and PixelCNN classes loaded
from a checkout, the NLL each returns, and its PixelCNN with each residual added once.

The peer is never a dependency of dgm: its model modules are imported from a checkout of
its public repository (commit d1f0a5c), by default ``.peers/pytorch-generative`` under the
repository root (ignored by git), or ``--peer-path`` / ``$DGM_PEER_PYTORCH_GENERATIVE``::

    git clone https://github.com/EugenHotaj/pytorch-generative .peers/pytorch-generative
    git -C .peers/pytorch-generative checkout d1f0a5c
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor, nn

PEER = "pytorch-generative"
PEER_COMMIT = "d1f0a5c"
PEER_ENV = "DGM_PEER_PYTORCH_GENERATIVE"
DEFAULT_PEER_PATH = Path(__file__).resolve().parent.parent / ".peers" / "pytorch-generative"
FETCH_HINT = (
    "git clone https://github.com/EugenHotaj/pytorch-generative .peers/pytorch-generative "
    f"&& git -C .peers/pytorch-generative checkout {PEER_COMMIT}"
)


def logits_nll(model: nn.Module, x: Tensor) -> Tensor:
    """NLL (B,) of a peer model whose forward returns Bernoulli logits shaped like x."""
    logits = model(x).reshape(len(x), -1)  # (B, D)
    target = x.reshape(len(x), -1)
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(1)


def probs_nll(model: nn.Module, x: Tensor) -> Tensor:
    """NLL (B,) of the peer's NADE, whose forward returns probabilities, not logits."""
    probs = model(x).reshape(len(x), -1)  # (B, D)
    target = x.reshape(len(x), -1)
    return F.binary_cross_entropy(probs, target, reduction="none").sum(1)


def residual_once(pixelcnn: type) -> type:
    """The peer's PixelCNN with each residual added once. Its ``forward`` computes
    ``x = x + layer(x)`` where each layer already returns ``x + net(x)``, so every block
    doubles the activations before adding its residual; this subclass keeps the peer's
    layers and weights and runs ``x = layer(x)``, the residual network of its paper."""

    class ResidualOnce(pixelcnn):
        def forward(self, x: Tensor) -> Tensor:
            x = self._input(x)
            for layer in self._causal_layers:
                x = layer(x)
            return self._head(x)

    ResidualOnce.__name__ = ResidualOnce.__qualname__ = f"{pixelcnn.__name__}ResidualOnce"
    return ResidualOnce


def load_peer(path: Path) -> dict[str, type] | None:
    """The peer's MADE, NADE and PixelCNN classes from a checkout at ``path``, or None when
    there is none. Its package ``__init__`` files import torchvision and every model, so
    they are bypassed: empty packages point at the folders and only the three modules (and
    what they import) are loaded."""
    root = path / "pytorch_generative"
    if not (root / "models" / "autoregressive" / "made.py").is_file():
        return None
    for name, sub in (
        ("pytorch_generative", ""),
        ("pytorch_generative.models", "models"),
        ("pytorch_generative.models.autoregressive", "models/autoregressive"),
    ):
        package = types.ModuleType(name)
        package.__path__ = [str(root / sub)]
        sys.modules[name] = package
    prefix = "pytorch_generative.models.autoregressive."
    return {
        cls: getattr(importlib.import_module(prefix + module), cls)
        for module, cls in (("made", "MADE"), ("nade", "NADE"), ("pixel_cnn", "PixelCNN"))
    }
