"""Multilayer perceptrons: the plainest shared block."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from torch import nn


def mlp(
    in_features: int,
    hidden_sizes: tuple[int, ...],
    out_features: int,
    activation: Callable[[], nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """Linear layers of the given widths with ``activation`` between them (none at the end).

    ``hidden_sizes=()`` gives a single ``nn.Linear(in_features, out_features)``, i.e. an
    affine map: the linear-Gaussian models of the theory tests are built this way.

    Example:
        >>> import torch
        >>> net = mlp(4, (8, 8), 2)
        >>> net(torch.zeros(3, 4)).shape
        torch.Size([3, 2])
        >>> len(mlp(4, (), 2))
        1
    """
    sizes = (in_features, *hidden_sizes)
    if any(s <= 0 for s in (*sizes, out_features)):
        raise ValueError(f"layer widths must be positive, got {sizes} -> {out_features}")
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), activation()]
    layers.append(nn.Linear(sizes[-1], out_features))
    return nn.Sequential(*layers)
