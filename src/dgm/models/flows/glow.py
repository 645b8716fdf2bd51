"""Glow: steps of ActNorm, invertible 1×1 convolution and affine coupling, multi-scale on
images; the same steps on vectors, with an invertible linear map and MLP couplings.

References:
    Kingma & Dhariwal 2018, Glow: Generative Flow with Invertible 1x1 Convolutions,
    arXiv:1807.03039.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Literal

from dgm.model import ClassConditional, ContextConditional
from dgm.models.flows.base import FlowConfig, FlowModel
from dgm.models.flows.conditioners import ConvConditioner, MLPConditioner, channel_mask
from dgm.models.flows.transforms import (
    SCALE_BOUND,
    ActNorm,
    AffineCoupling,
    Bijection,
    Chain,
    ChannelCoupling,
    FactorOut,
    Inverse,
    InvertibleConv1x1,
    Reshape,
    Squeeze,
)
from dgm.registry import register


@dataclasses.dataclass
class GlowConfig(FlowConfig, ContextConditional, ClassConditional):
    architecture: Literal["auto", "mlp", "conv"] = "auto"  # auto: conv for (C,H,W), else mlp
    num_scales: int = 2  # conv: squeeze levels, H and W divide by 2^levels (28: 2); mlp: unused
    steps_per_level: int = 4  # K flow steps per level (the paper's 32; mlp: K steps in all)
    hidden_channels: int = 64  # conv: width of each coupling's convolutional network
    hidden_sizes: tuple[int, ...] = (64, 64)  # mlp: widths of each coupling's MLP
    scale_bound: float = SCALE_BOUND  # |log scale| of each coupling soft-clamped below this


@register("glow", GlowConfig)
class Glow(FlowModel):
    """Glow (Kingma & Dhariwal 2018): exact log_prob in nats, over images or vectors.

    ``conv`` (images (C, H, W)): each of the ``num_scales`` levels squeezes (C, H, W) to
    (4C, H/2, W/2) and runs ``steps_per_level`` steps of ActNorm, an LU-parameterised
    invertible 1×1 convolution and an affine coupling over half the channels whose
    network reads only the kept half (a soft-clamped log-scale instead of the paper's
    sigmoid); every level but the last then
    factors out half the channels, which go to the N(0, I) base as they are (no learned
    prior), and the rest enters the next level. ``mlp`` (any x, flattened to D features):
    ``steps_per_level`` steps of ActNorm over the D features, the same LU-parameterised
    map as an invertible D×D linear map, and an affine coupling over half the features
    with an MLP network (RealNVP's); ``num_scales`` and ``hidden_channels`` are unused.
    ``auto`` (the default) is ``conv`` for 3-D event shapes and ``mlp`` for the rest, so
    ``dgm train glow --data moons`` needs no flag. z keeps the shape of x.
    ActNorm's data-dependent initialisation runs on a first batch: the trainer calls
    ``initialize(x, c)`` before its first step (and before the EMA copies the weights); a
    loop of your own calls it once too, else the first training-mode forward pass
    initialises them.

    References:
        Kingma & Dhariwal 2018, arXiv:1807.03039.

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("glow", (1, 4, 4), steps_per_level=2, hidden_channels=4)
        >>> x = model.sample(3, generator=torch.Generator().manual_seed(0))
        >>> x.shape, model.log_prob(x).shape
        (torch.Size([3, 1, 4, 4]), torch.Size([3]))
        >>> toy = dgm.create("glow", (2,), steps_per_level=2, hidden_sizes=(8,))  # mlp
        >>> toy.log_prob(toy.sample(3)).shape
        torch.Size([3])
    """

    def __init__(self, event_shape: Iterable[int], config: GlowConfig) -> None:
        super().__init__(event_shape, config)
        shape = tuple(self.event_shape)
        if config.architecture not in ("auto", "mlp", "conv"):
            raise ValueError(f"architecture must be auto, mlp or conv, got {config.architecture!r}")
        if config.num_scales < 1 or config.steps_per_level < 1 or config.hidden_channels < 1:
            raise ValueError("num_scales, steps_per_level and hidden_channels must be >= 1")
        if config.scale_bound <= 0:
            raise ValueError(f"scale_bound must be positive, got {config.scale_bound}")
        conv = config.architecture == "conv" or (config.architecture == "auto" and len(shape) == 3)
        if not conv:
            self.transform = self._mlp(config)
            return
        step = 2**config.num_scales
        if len(shape) != 3 or shape[1] % step or shape[2] % step:
            raise ValueError(
                f"glow with num_scales={config.num_scales} needs images (C, H, W) with H and W "
                f"divisible by {step}, got {shape}; lower num_scales (or use "
                "architecture='mlp' for vectors)"
            )
        self.transform = self._level(shape, config.num_scales, config)

    def _mlp(self, config: GlowConfig) -> Bijection:
        """``steps_per_level`` vector steps on the flattened x, (D,)."""
        D, shape = self.num_dims, tuple(self.event_shape)
        steps: list[Bijection] = [Reshape(shape, (D,))]
        for k in range(config.steps_per_level):
            net = MLPConditioner(D, config.hidden_sizes, 2, self.cond_width)
            steps += [
                ActNorm(D),
                InvertibleConv1x1(D),  # on (B, D): an LU-parameterised D×D linear map
                AffineCoupling(channel_mask((D,), k % 2), net, config.scale_bound),
            ]
        steps.append(Reshape((D,), shape))
        return Chain(steps)

    def _level(self, shape: tuple[int, ...], levels: int, config: GlowConfig) -> Bijection:
        """One level (and, inside it, the levels below) on (C, H, W)."""
        C, H, W = shape
        steps: list[Bijection] = [Squeeze()]
        for k in range(config.steps_per_level):
            net = ConvConditioner(2 * C, config.hidden_channels, 2, self.cond_width)
            steps += [
                ActNorm(4 * C),
                InvertibleConv1x1(4 * C),
                ChannelCoupling(4 * C, k % 2, net, config.scale_bound),  # net reads 2C
            ]
        if levels > 1:
            rest = (2 * C, H // 2, W // 2)  # the half that stays in the flow
            steps.append(FactorOut(2 * C, self._level(rest, levels - 1, config)))
        steps.append(Inverse(Squeeze()))  # back to (C, H, W): z keeps x's shape
        return Chain(steps)
