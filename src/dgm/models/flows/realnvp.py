"""RealNVP: affine coupling layers, with MLP couplings for vectors and a multi-scale
architecture of convolutional couplings for images.

References:
    Dinh, Sohl-Dickstein & Bengio 2016, Density estimation using Real NVP, arXiv:1605.08803.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Literal

from dgm.model import ClassConditional, ContextConditional
from dgm.models.flows.base import FlowConfig, FlowModel
from dgm.models.flows.conditioners import (
    ConvConditioner,
    MLPConditioner,
    checkerboard_mask,
)
from dgm.models.flows.transforms import (
    SCALE_BOUND,
    AffineCoupling,
    BatchNormFlow,
    Bijection,
    Chain,
    ChannelCoupling,
    CheckerboardCoupling,
    FactorOut,
    Inverse,
    Reshape,
    Squeeze,
)
from dgm.registry import register


@dataclasses.dataclass
class RealNVPConfig(FlowConfig, ContextConditional, ClassConditional):
    architecture: Literal["mlp", "conv"] = "mlp"  # mlp: any x; conv: multi-scale, images (C,H,W)
    num_couplings: int = 5  # mlp: affine couplings, masks alternating (5 of (64, 64) MLPs)
    hidden_sizes: tuple[int, ...] = (64, 64)  # mlp: widths of each coupling's MLP
    num_scales: int = 2  # conv: scales; H and W must divide by 2^(num_scales - 1)
    hidden_channels: int = 32  # conv: width of each coupling's convolutional network
    scale_bound: float = SCALE_BOUND  # |log scale| of each coupling soft-clamped below this
    batch_norm: bool = False  # a BatchNorm bijection after couplings (Dinh et al. 2016)


@register("realnvp", RealNVPConfig)
class RealNVP(FlowModel):
    """RealNVP (Dinh, Sohl-Dickstein & Bengio 2016): exact log_prob in nats.

    Affine couplings z_free = x_free ⊙ exp(s) + t, (s, t) = net(x_kept, c), s soft-clamped.
    ``mlp``: ``num_couplings`` MLP couplings over the flattened x, the kept half alternating
    between even and odd dimensions. ``conv`` (images): at each scale but the last, three
    checkerboard couplings, a squeeze, three channel couplings, then half the channels are
    factored out (they go to the N(0, I) base as they are) and the rest enters the next
    scale; the last scale has four checkerboard couplings. z keeps the shape of x. A
    checkerboard coupling's network is the paper's (3×3 convolutions of the masked image
    over the full grid), computed on the 2×2 phase grid (``CheckerboardCoupling``): the
    first layer reads only the kept pixels and the last writes only the free ones.
    ``batch_norm`` adds a ``BatchNormFlow`` after every coupling (``mlp``: but the last),
    batch statistics only in a training ``loss``, running statistics everywhere else.

    References:
        Dinh, Sohl-Dickstein & Bengio 2016, arXiv:1605.08803.

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("realnvp", (1, 4, 4), architecture="conv", hidden_channels=4)
        >>> x = model.sample(3, generator=torch.Generator().manual_seed(0))
        >>> x.shape, model.log_prob(x).shape
        (torch.Size([3, 1, 4, 4]), torch.Size([3]))
    """

    def __init__(self, event_shape: Iterable[int], config: RealNVPConfig) -> None:
        super().__init__(event_shape, config)
        _check(config, tuple(self.event_shape))
        if config.architecture == "mlp":
            self.transform = self._mlp(config)
        else:
            self.transform = self._scale(tuple(self.event_shape), config.num_scales, config)

    def _mlp(self, config: RealNVPConfig) -> Bijection:
        D, shape = self.num_dims, tuple(self.event_shape)
        steps: list[Bijection] = [Reshape(shape, (D,))]
        for k in range(config.num_couplings):
            net = MLPConditioner(D, config.hidden_sizes, 2, self.cond_width)
            steps.append(AffineCoupling(checkerboard_mask((D,), k % 2), net, config.scale_bound))
            if config.batch_norm and k < config.num_couplings - 1:
                steps.append(BatchNormFlow(D))
        steps.append(Reshape((D,), shape))
        return Chain(steps)

    def _coupling(
        self, kind: str, parity: int, shape: tuple[int, ...], config: RealNVPConfig
    ) -> Bijection:
        """A checkerboard or a channel coupling (``kind``) of ``parity`` on (C, H, W) images,
        each with a network that reads only the kept pixels or channels."""
        channels = shape[0]
        if kind == "checkerboard":
            net = ConvConditioner(channels, config.hidden_channels, 2, self.cond_width)
            coupling: Bijection = CheckerboardCoupling(shape, parity, net, config.scale_bound)
        else:
            net = ConvConditioner(channels // 2, config.hidden_channels, 2, self.cond_width)
            coupling = ChannelCoupling(channels, parity, net, config.scale_bound)
        return Chain([coupling, BatchNormFlow(channels)]) if config.batch_norm else coupling

    def _scale(self, shape: tuple[int, ...], scales: int, config: RealNVPConfig) -> Bijection:
        """The transform of one scale (and, inside it, of the scales below), on (C, H, W)."""
        C, H, W = shape
        if scales == 1:
            return Chain([self._coupling("checkerboard", k % 2, shape, config) for k in range(4)])
        steps: list[Bijection] = [
            self._coupling("checkerboard", k % 2, shape, config) for k in range(3)
        ]
        steps.append(Squeeze())  # (4C, H/2, W/2)
        squeezed = (4 * C, H // 2, W // 2)
        steps += [self._coupling("channel", k % 2, squeezed, config) for k in range(3)]
        rest = (2 * C, H // 2, W // 2)  # the half that stays in the flow
        steps.append(FactorOut(2 * C, self._scale(rest, scales - 1, config)))
        steps.append(Inverse(Squeeze()))  # back to (C, H, W): z keeps x's shape
        return Chain(steps)


def _check(config: RealNVPConfig, shape: tuple[int, ...]) -> None:
    if config.architecture not in ("mlp", "conv"):
        raise ValueError(f"architecture must be mlp or conv, got {config.architecture!r}")
    if config.num_couplings < 1 or config.num_scales < 1 or config.hidden_channels < 1:
        raise ValueError("num_couplings, num_scales and hidden_channels must be >= 1")
    if config.scale_bound <= 0:
        raise ValueError(f"scale_bound must be positive, got {config.scale_bound}")
    if config.architecture == "conv":
        step = 2 ** (config.num_scales - 1)
        if len(shape) != 3 or shape[1] % step or shape[2] % step:
            raise ValueError(
                f"architecture='conv' with num_scales={config.num_scales} needs images "
                f"(C, H, W) with H and W divisible by {step}, got {shape}; lower num_scales "
                "or use architecture='mlp'"
            )
