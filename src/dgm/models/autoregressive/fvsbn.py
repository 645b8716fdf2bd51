"""Fully visible sigmoid belief network: one logistic regression per dimension.

p(x) = Π_d Bernoulli(x_d | σ(b_d + Σ_{j<d} W_dj x_j)) over the flattened binary x in natural
order: a single strictly lower-triangular masked linear layer, D(D+1)/2 parameters.

References:
    Neal 1992, Connectionist learning of belief networks, Artificial Intelligence 56.
    Frey 1998, Graphical Models for Machine Learning and Digital Communication, MIT Press.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from dgm.model import ClassConditional
from dgm.models.autoregressive.fixed_order import FixedOrderModel
from dgm.nn import MaskedLinear
from dgm.registry import register


@dataclasses.dataclass
class FVSBNConfig(ClassConditional):
    init_scale: float = 0.01  # std of the initial weights (small: start near independent bits)


@register("fvsbn", FVSBNConfig)
class FVSBN(FixedOrderModel):
    """Fully visible sigmoid belief network (Neal 1992): exact log_prob in nats, binary x.

    Dimension d of the flattened x is a logistic regression on the dimensions before it
    (natural order), all computed in one pass by a strictly lower-triangular masked
    linear layer. ``conditional_logits`` gives [0, l_d] per dimension; ``complete`` draws
    missing dimensions in order (exact when the observed ones come first). With
    ``num_classes`` K > 0 it is p(x | c) for labels c: a learned bias per class is added to
    the D logits (a per-class FVSBN sharing the weights W), zero at the start.

    References:
        Neal 1992 (Artificial Intelligence 56); Frey 1998 (MIT Press).

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("fvsbn", (1, 3, 3))
        >>> x = model.sample(4, generator=torch.Generator().manual_seed(0))
        >>> x.shape, model.log_prob(x).shape, model.conditional_logits(x).shape
        (torch.Size([4, 1, 3, 3]), torch.Size([4]), torch.Size([4, 9, 2]))
    """

    def __init__(self, event_shape: Iterable[int], config: FVSBNConfig) -> None:
        super().__init__(event_shape, config)
        self._set_head(categorical=False)
        D = self.num_dims
        mask = torch.ones(D, D).tril(-1)  # (D, D): row d sees columns j < d
        self.linear = MaskedLinear(D, D, mask)
        with torch.no_grad():
            self.linear.weight.normal_(0.0, config.init_scale)
            self.linear.bias.zero_()
        K = self.num_classes
        self.class_bias = nn.Parameter(torch.zeros(K, D)) if K else None  # (K, D)

    def ordering(self) -> Tensor:
        return torch.arange(self.num_dims, device=self.device)

    def _outputs(self, x: Tensor, c: Tensor | None = None, index: int = 0) -> Tensor:
        logits = self.linear(x)  # (B, D)
        if c is not None:
            logits = logits + self.class_bias[c]  # (B, D)
        return logits
