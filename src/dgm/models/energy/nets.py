"""Energy networks: x (B, *event_shape) -> one energy per class (B, K).

Smooth activations (SiLU), since SGLD and score matching use the input gradient and score
matching its parameter gradient too. The last layer has no bias: an energy is defined up
to a constant, which score matching cannot see and contrastive divergence need not learn.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from dgm.nn import mlp


class EnergyMLP(nn.Module):
    """Flattened x through an MLP of ``hidden_sizes`` to ``out_features`` energies.

    Example:
        >>> import torch
        >>> EnergyMLP((2,), (8, 8), 3)(torch.zeros(4, 2)).shape
        torch.Size([4, 3])
    """

    def __init__(
        self, event_shape: tuple[int, ...], hidden_sizes: tuple[int, ...], out: int
    ) -> None:
        super().__init__()
        self.net = mlp(math.prod(event_shape), hidden_sizes, out, nn.SiLU)
        self.net[-1].register_parameter("bias", None)  # the energy's constant: unidentified

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))  # (B, K)


class EnergyConv(nn.Module):
    """Images (B, C, H, W): three 3x3 convolutions (the last two of stride 2), a mean over
    the positions and a linear map to ``out_features`` energies; any H, W.

    Example:
        >>> import torch
        >>> EnergyConv((1, 6, 5), 4, 2)(torch.zeros(3, 1, 6, 5)).shape
        torch.Size([3, 2])
    """

    def __init__(self, event_shape: tuple[int, ...], channels: int, out: int) -> None:
        super().__init__()
        if len(event_shape) != 3:
            raise ValueError(
                f"architecture='conv' needs images (C, H, W), got event shape "
                f"{tuple(event_shape)}; use architecture='mlp'"
            )
        c = event_shape[0]
        self.convs = nn.Sequential(
            nn.Conv2d(c, channels, 3, padding=1),  # (B, ch, H, W)
            nn.SiLU(),
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1),  # (B, 2ch, H/2, W/2)
            nn.SiLU(),
            nn.Conv2d(2 * channels, 2 * channels, 3, stride=2, padding=1),  # (B, 2ch, H/4, W/4)
            nn.SiLU(),
        )
        self.head = nn.Linear(2 * channels, out, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h = self.convs(x).mean(dim=(2, 3))  # (B, 2ch)
        return self.head(h)  # (B, K)
