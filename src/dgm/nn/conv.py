"""Small convolutional encoder and decoder for images of any size H, W >= 4.

The encoder halves the resolution twice (two stride-2 3x3 convolutions) and ends in an MLP;
the decoder mirrors it: a linear map to a (channels, ceil(H/4), ceil(W/4)) grid, two
stride-2 transposed convolutions (each doubling the size), a crop to H x W and a final 3x3
convolution to the output channels. The DCGAN-style layout of Radford et al. 2015
(arXiv:1511.06434), scaled down for 28x28 and 8x8 images.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from dgm.nn.mlp import mlp


def _check_image_shape(shape: tuple[int, ...], what: str) -> tuple[int, int, int]:
    if len(shape) != 3 or shape[1] < 4 or shape[2] < 4:
        raise ValueError(
            f"{what} needs images of shape (C, H, W) with H, W >= 4, got {tuple(shape)}; "
            "use architecture='mlp' for other shapes"
        )
    return shape[0], shape[1], shape[2]


class ConvEncoder(nn.Module):
    """(B, C, H, W) -> (B, out_features): two stride-2 3x3 convolutions, then an MLP.

    ``context`` (B, context_features), e.g. a one-hot label, joins the flattened features
    before the MLP head.

    Example:
        >>> import torch
        >>> enc = ConvEncoder((1, 28, 28), 10, channels=8)
        >>> enc(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_shape: tuple[int, ...],
        out_features: int,
        channels: int = 32,
        hidden_sizes: tuple[int, ...] = (),
        context_features: int = 0,
        activation: Callable[[], nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        c, h, w = _check_image_shape(tuple(in_shape), "ConvEncoder")
        self.in_shape = (c, h, w)
        self.context_features = context_features
        self.convs = nn.Sequential(
            nn.Conv2d(c, channels, 3, stride=2, padding=1),  # (B, ch, ceil(H/2), ceil(W/2))
            activation(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),  # (B, ch, ceil(H/4), ceil(W/4))
            activation(),
        )
        flat = channels * math.ceil(h / 4) * math.ceil(w / 4)
        self.head = mlp(flat + context_features, hidden_sizes, out_features, activation)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        h = self.convs(x).flatten(1)  # (B, ch * ceil(H/4) * ceil(W/4))
        if self.context_features:
            if context is None or context.shape != (len(x), self.context_features):
                raise ValueError(f"context must have shape ({len(x)}, {self.context_features})")
            h = torch.cat([h, context], dim=-1)  # (B, flat + context_features)
        elif context is not None:
            raise ValueError("this encoder takes no context: build it with context_features > 0")
        return self.head(h)


class ConvDecoder(nn.Module):
    """(*, in_features) -> (*, C_out, H, W): linear map to a (channels, ceil(H/4), ceil(W/4))
    grid, two stride-2 transposed convolutions, a crop to (H, W), a final 3x3 convolution.

    Example:
        >>> import torch
        >>> dec = ConvDecoder(10, (3, 8, 8), channels=8)
        >>> dec(torch.zeros(5, 2, 10)).shape
        torch.Size([5, 2, 3, 8, 8])
    """

    def __init__(
        self,
        in_features: int,
        out_shape: tuple[int, ...],
        channels: int = 32,
        hidden_sizes: tuple[int, ...] = (),
        activation: Callable[[], nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        c, h, w = _check_image_shape(tuple(out_shape), "ConvDecoder")
        self.in_features = in_features
        self.out_shape = (c, h, w)
        self.grid = (channels, math.ceil(h / 4), math.ceil(w / 4))
        self.head = nn.Sequential(
            mlp(in_features, hidden_sizes, math.prod(self.grid), activation), activation()
        )
        # each transposed conv maps size s to exactly 2s: (s-1)*2 - 2 + 3 + 1
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(channels, channels, 3, stride=2, padding=1, output_padding=1),
            activation(),
            nn.ConvTranspose2d(channels, channels, 3, stride=2, padding=1, output_padding=1),
            activation(),
        )
        self.out = nn.Conv2d(channels, c, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        lead = z.shape[:-1]
        h = self.head(z.reshape(-1, self.in_features))  # (N, ch * h4 * w4)
        h = h.view(-1, *self.grid)  # (N, ch, h4, w4)
        h = self.upsample(h)  # (N, ch, 4 * h4, 4 * w4)
        h = h[..., : self.out_shape[1], : self.out_shape[2]]  # (N, ch, H, W)
        return self.out(h).view(*lead, *self.out_shape)  # (*, C_out, H, W)
