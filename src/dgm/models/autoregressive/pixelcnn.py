"""PixelCNN, plain and gated, with a fast sampler that computes only what each new pixel
needs.

Plain: a 7 x 7 type-A masked convolution, then residual 3 x 3 type-B layers, then two
1 x 1 maps to the head parameters (ELU activations, as PixelCNN++: no unit is ever dead,
which matters in the tiny networks of the tests). Its receptive field has the blind spot
of stacked masked convolutions: pixels above and to the right, beyond the diagonal from
the centre, never reach it. With a first kernel k, pixel (i - 1, j + k//2 + 1) never
reaches (i, j) at any depth ((i - 1, j + 4) for the default 7): every path to it passes
through row i right of column j, which no later layer looks at. Gated: the vertical and
horizontal stacks of van den Oord et al. 2016, which have no blind spot.

The fast sampler (``IncrementalSampler``, in ``pixelcnn_sampler``) caches every layer's
activations, so each new sub-pixel costs one output position per layer; the gated
network's vertical stack, which at row i reads only rows above, runs once per row. It
samples and completes (inpaints), and draws the naive loop's pixels for the same generator.

References:
    van den Oord, Kalchbrenner & Kavukcuoglu 2016, Pixel Recurrent Neural Networks,
    arXiv:1601.06759.
    van den Oord et al. 2016, Conditional Image Generation with PixelCNN Decoders,
    arXiv:1606.05328.
    Ramachandran et al. 2017, Fast Generation for Convolutional Autoregressive Models,
    arXiv:1704.06001 (computing only what each new pixel needs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from dgm.models.autoregressive.pixel import PixelConfig, PixelModel
from dgm.models.autoregressive.pixelcnn_sampler import (
    Canvas,
    GatedCache,
    IncrementalSampler,
    PlainCache,
    padding,
)
from dgm.nn.masked_conv import GatedLayer, MaskedConv2d
from dgm.registry import register


@dataclasses.dataclass
class PixelCNNConfig(PixelConfig):
    variant: Literal["plain", "gated"] = "gated"  # gated: two stacks, no blind spot
    hidden_channels: int = 64  # feature maps per layer (a multiple of the image's channels C)
    num_layers: int = 7  # masked layers, the first of type A (the paper used 15 on MNIST)
    first_kernel: int = 7  # kernel of the first (type A) layer, odd
    kernel_size: int = 0  # kernel of the later layers, odd; 0: 3 for plain, 5 for gated


class PlainNet(nn.Module):
    """Stacked masked convolutions: (B, C, H, W) -> (B, C·P, H, W), channel group ch of
    the output (P channels) sees the input before (i, j) and channels < ch at (i, j)."""

    def __init__(
        self, C: int, F_: int, P: int, layers: int, first: int, kernel: int, cond: int
    ) -> None:
        super().__init__()
        self.first = MaskedConv2d(C, F_, first, "A", C)
        self.hidden = nn.ModuleList(MaskedConv2d(F_, F_, kernel, "B", C) for _ in range(layers - 1))
        self.condition = (
            nn.ModuleList(nn.Conv2d(cond, F_, 1) for _ in range(layers)) if cond else None
        )
        self.out1 = MaskedConv2d(F_, F_, 1, "B", C)
        self.out2 = MaskedConv2d(F_, C * P, 1, "B", C)
        self.padding = padding([self.first, *self.hidden])  # the sampler's canvas border

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """The head parameters (B, C·P, H, W) of the whole image; ``PlainCache`` computes
        the same layers position by position."""
        h = self.first(x)  # (B, F, H, W)
        for layer in range(len(self.hidden) + 1):
            if layer > 0:
                h = h + self.hidden[layer - 1](F.elu(h))  # residual
            if self.condition is not None and cond is not None:
                h = h + self.condition[layer](cond)
        return self.out2(F.elu(self.out1(F.elu(h))))

    def cache(self, image: Canvas, cond: Tensor | None) -> PlainCache:
        """The incremental sampler's activation caches, reading the scaled ``image``."""
        return PlainCache(self, image, cond)


class GatedNet(nn.Module):
    """Gated PixelCNN layers (vertical and horizontal stacks), then two 1 x 1 maps on the
    horizontal stack: (B, C, H, W) -> (B, C·P, H, W), causal as ``PlainNet``."""

    def __init__(
        self, C: int, F_: int, P: int, layers: int, first: int, kernel: int, cond: int
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            GatedLayer(
                C if n == 0 else F_,
                F_,
                first if n == 0 else kernel,
                "AB"[n > 0],
                C,
                cond,
                last=n == layers - 1,
            )
            for n in range(layers)
        )
        self.out1 = MaskedConv2d(F_, F_, 1, "B", C)
        self.out2 = MaskedConv2d(F_, C * P, 1, "B", C)
        convs = [conv for layer in self.layers for conv in (layer.vertical, layer.horizontal)]
        self.padding = padding(convs)  # the sampler's canvas border

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """The head parameters (B, C·P, H, W) of the whole image; ``GatedCache`` computes
        the same layers row by row (vertical) and position by position (horizontal)."""
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h, cond)
        return self.out2(F.elu(self.out1(F.elu(h))))

    def cache(self, image: Canvas, cond: Tensor | None) -> GatedCache:
        """The incremental sampler's activation caches, reading the scaled ``image``."""
        return GatedCache(self, image, cond)


@register("pixelcnn", PixelCNNConfig)
class PixelCNN(PixelModel):
    """PixelCNN (van den Oord et al. 2016): exact log_prob in nats over images (C, H, W).

    ``variant`` plain: masked convolutions, with the blind spot described in the module
    docstring; gated: vertical and horizontal stacks with tanh · sigmoid gates, no blind
    spot. Heads, ordering, conditioning (``num_classes`` or ``context_shape``) and the
    naive sampler come from ``PixelModel``. ``sample(..., fast=True)`` (the default) and
    ``complete`` draw with ``IncrementalSampler``: the same weights and the same random
    draws in the same order, hence the naive loop's pixels, computing per sub-pixel drawn
    one position per layer from cached activations.

    References:
        van den Oord et al. 2016, arXiv:1601.06759 and arXiv:1606.05328.

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("pixelcnn", (1, 4, 4), hidden_channels=8, num_layers=2)
        >>> x = model.sample(3, generator=torch.Generator().manual_seed(0))
        >>> x.shape, model.log_prob(x).shape
        (torch.Size([3, 1, 4, 4]), torch.Size([3]))
    """

    def __init__(self, event_shape: Iterable[int], config: PixelCNNConfig) -> None:
        super().__init__(event_shape, config, condition_features=config.hidden_channels)
        if config.variant not in ("plain", "gated"):
            raise ValueError(f"variant must be 'plain' or 'gated', got {config.variant!r}")
        kernel = config.kernel_size or (3 if config.variant == "plain" else 5)
        self._check_layers(
            config.num_layers,
            config.hidden_channels,
            first_kernel=config.first_kernel,
            kernel_size=kernel,
        )
        net = PlainNet if config.variant == "plain" else GatedNet
        self.net = net(
            self.event_shape[0],
            config.hidden_channels,
            self.num_head_params,
            config.num_layers,
            config.first_kernel,
            kernel,
            config.hidden_channels if self.conditional else 0,
        )

    def _fast_sampler(self) -> IncrementalSampler:
        """``sample(..., fast=True)`` and ``complete``: one position per layer per
        sub-pixel drawn."""
        return IncrementalSampler(self)
