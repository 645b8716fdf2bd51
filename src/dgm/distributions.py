"""Distributions that torch.distributions lacks, or holds only in a slow form."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal


class DiagonalGaussianMixture(MixtureSameFamily):
    """Σ_k π_k N(z; μ_k, diag σ_k²): ``MixtureSameFamily`` with a fast ``log_prob``.

    torch's mixture evaluates every component elementwise, building a (*batch, K, D) tensor;
    here the Mahalanobis terms come from matrix products,
    Σ_d (z_d − μ_kd)² / σ_kd² = (z²) · (1/σ_k²) − 2 z · (μ_k/σ_k²) + Σ_d μ_kd²/σ_kd²,
    which is exact algebra, and in float32 agrees with the elementwise form to about 1e-5
    nats for unit-scale z and σ (the test bounds it). Sampling and everything else are
    ``MixtureSameFamily``'s own.

    Example:
        >>> import torch
        >>> mix = DiagonalGaussianMixture(torch.zeros(3), torch.randn(3, 2), torch.ones(3, 2))
        >>> mix.log_prob(torch.zeros(5, 2)).shape
        torch.Size([5])
    """

    def __init__(self, logits: Tensor, loc: Tensor, scale: Tensor) -> None:
        super().__init__(Categorical(logits=logits), Independent(Normal(loc, scale), 1))

    def log_prob(self, z: Tensor) -> Tensor:
        comp = self.component_distribution.base_dist
        loc, scale = comp.loc, comp.scale  # (K, D) each
        precision = scale.pow(-2)  # (K, D)
        lead = z.shape[:-1]
        flat = z.reshape(-1, z.shape[-1])  # (N, D)
        quad = (
            flat.pow(2) @ precision.T
            - 2 * flat @ (loc * precision).T
            + (loc.pow(2) * precision).sum(-1)
        )  # (N, K)
        norm = scale.log().sum(-1) + 0.5 * loc.shape[-1] * math.log(2 * math.pi)  # (K,)
        log_weights = self.mixture_distribution.logits.log_softmax(-1)  # (K,)
        out = torch.logsumexp(log_weights - norm - 0.5 * quad, dim=-1)  # (N,)
        return out.reshape(lead)
