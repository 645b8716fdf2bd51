"""Neural autoregressive distribution estimator (NADE) for binary data.

p(x) = Π_d Bernoulli(x_d | σ(b_d + V_d · h_d)), h_d = σ(c + W_{:, <d} x_{<d}), with one
weight matrix W (H × D) shared by every conditional, so all D conditionals cost O(H D):
the hidden pre-activation grows by W_{:, d} x_d from one dimension to the next.

References:
    Larochelle & Murray 2011, The Neural Autoregressive Distribution Estimator, AISTATS.
    Uria, Côté, Gregor, Murray & Larochelle 2016, Neural Autoregressive Distribution
    Estimation, JMLR 17, arXiv:1605.02226.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from dgm.model import ClassConditional
from dgm.models.autoregressive.fixed_order import FixedOrderModel
from dgm.registry import register


@dataclasses.dataclass
class NADEConfig(ClassConditional):
    hidden_size: int = 500  # H, hidden units shared by all conditionals (500 as the paper)


@register("nade", NADEConfig)
class NADE(FixedOrderModel):
    """NADE (Larochelle & Murray 2011): exact log_prob in nats over binary x, natural order.

    All D conditionals come from one pass: a_d = c + Σ_{j<d} W_{:, j} x_j is an exclusive
    cumulative sum over d, h_d = σ(a_d), logit_d = b_d + V_d · h_d. Sampling and completion
    run the same recursion one dimension at a time (O(H D) per draw). With ``num_classes``
    K > 0 it is p(x | c) for labels c: a learned hidden bias per class, e_c (H,), joins c
    in every a_d (zero at the start), so the cost stays O(H D).

    References:
        Larochelle & Murray 2011 (AISTATS); Uria et al. 2016, arXiv:1605.02226.

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("nade", (1, 3, 3), hidden_size=8)
        >>> x = model.sample(4, generator=torch.Generator().manual_seed(0))
        >>> x.shape, model.log_prob(x).shape
        (torch.Size([4, 1, 3, 3]), torch.Size([4]))
    """

    def __init__(self, event_shape: Iterable[int], config: NADEConfig) -> None:
        super().__init__(event_shape, config)
        if config.hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1, got {config.hidden_size}")
        self._set_head(categorical=False)
        D, H = self.num_dims, config.hidden_size
        self.W = nn.Parameter(torch.randn(H, D) / math.sqrt(D))  # (H, D) input weights
        self.c = nn.Parameter(torch.zeros(H))  # (H,) hidden bias
        self.V = nn.Parameter(torch.randn(D, H) / math.sqrt(H))  # (D, H) output weights
        self.b = nn.Parameter(torch.zeros(D))  # (D,) output bias
        K = self.num_classes
        self.class_hidden = nn.Parameter(torch.zeros(K, H)) if K else None  # (K, H)

    def ordering(self) -> Tensor:
        return torch.arange(self.num_dims, device=self.device)

    def _hidden_bias(self, c: Tensor | None, batch: int) -> Tensor:
        """c, plus the class's hidden bias for labels c: (B, H)."""
        if c is None:
            return self.c.expand(batch, -1)  # (B, H)
        return self.c + self.class_hidden[c]  # (B, H)

    def _outputs(self, x: Tensor, c: Tensor | None = None, index: int = 0) -> Tensor:
        """All D logits (B, D) in one O(H D) pass: a_0 = c (+ the class's bias), then
        logit_d = b_d + V_d · σ(a_d) and a_{d+1} = a_d + W_{:, d} x_d. Only the running
        (B, H) pre-activation stays live: on a CPU this is about 20 times faster than
        forming the same exclusive cumulative sum as one (B, D, H) tensor, whose memory
        traffic dominates (benchmarks/autoregressive.py measures both)."""
        a = self._hidden_bias(c, len(x))  # (B, H)
        weights = self.W.T  # (D, H): row d is W_{:, d}
        logits = []
        for d in range(self.num_dims):
            logits.append(torch.sigmoid(a) @ self.V[d])  # (B,)
            a = torch.addcmul(a, x[:, d, None], weights[d])  # (B, H)
        return torch.stack(logits, 1) + self.b  # (B, D)

    def _fill(
        self,
        flat: Tensor,
        observed: Tensor,
        c: Tensor | None,
        generator: torch.Generator | None,
        T: float,
        index: int = 0,
    ) -> Tensor:
        """The O(H D) recursion: one hidden update per dimension."""
        a = self._hidden_bias(c, len(flat))  # (B, H)
        for d in range(self.num_dims):
            if not bool(observed[:, d].all()):
                logit = torch.sigmoid(a) @ self.V[d] + self.b[d]  # (B,)
                draw = self._draw(logit, generator, T)
                flat[:, d] = torch.where(observed[:, d], flat[:, d], draw)
            a = a + flat[:, d, None] * self.W[:, d]  # (B, H)
        return flat
