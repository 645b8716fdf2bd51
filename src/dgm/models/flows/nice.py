"""NICE: additive coupling layers and a diagonal scaling layer.

References:
    Dinh, Krueger & Bengio 2014, NICE: Non-linear Independent Components Estimation,
    arXiv:1410.8516.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from dgm.model import ClassConditional, ContextConditional
from dgm.models.flows.base import FlowConfig, FlowModel
from dgm.models.flows.conditioners import MLPConditioner, checkerboard_mask
from dgm.models.flows.transforms import (
    AdditiveCoupling,
    Bijection,
    Chain,
    Reshape,
    ScaleLayer,
)
from dgm.registry import register


@dataclasses.dataclass
class NICEConfig(FlowConfig, ContextConditional, ClassConditional):
    num_couplings: int = 4  # additive coupling layers, masks alternating (the paper's 4)
    hidden_sizes: tuple[int, ...] = (64, 64)  # widths of each coupling's MLP, e.g. 64,64


@register("nice", NICEConfig)
class NICE(FlowModel):
    """NICE (Dinh, Krueger & Bengio 2014): exact log_prob in nats, volume-preserving couplings.

    The flattened x goes through ``num_couplings`` additive couplings z_free = x_free +
    t(x_kept, c), the kept half alternating between even and odd dimensions, then a
    learned diagonal scaling z = x ⊙ exp(s), the only term of the log-det.

    References:
        Dinh, Krueger & Bengio 2014, arXiv:1410.8516.

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("nice", (2,), num_couplings=2, hidden_sizes=(8,))
        >>> x = model.sample(3, generator=torch.Generator().manual_seed(0))
        >>> x.shape, model.log_prob(x).shape
        (torch.Size([3, 2]), torch.Size([3]))
    """

    def __init__(self, event_shape: Iterable[int], config: NICEConfig) -> None:
        super().__init__(event_shape, config)
        if config.num_couplings < 1:
            raise ValueError(f"num_couplings must be >= 1, got {config.num_couplings}")
        D, shape = self.num_dims, tuple(self.event_shape)
        steps: list[Bijection] = [Reshape(shape, (D,))]
        for k in range(config.num_couplings):
            net = MLPConditioner(D, config.hidden_sizes, 1, self.cond_width)
            steps.append(AdditiveCoupling(checkerboard_mask((D,), k % 2), net))
        steps += [ScaleLayer((D,)), Reshape((D,), shape)]
        self.transform = Chain(steps)
