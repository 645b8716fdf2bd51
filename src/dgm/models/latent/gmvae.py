"""VAE with a Gaussian-mixture prior (GMVAE).

p(z) = (1/K) Σ_k N(z; m_k, diag s_k²) with learnable means m_k and scales s_k; the rest is
the VAE. The KL from q(z | x) to a mixture has no closed form, so the ELBO uses the
single-sample Monte-Carlo estimate log q(z | x) − log p(z) at the same z as the
reconstruction term.

References:
    Dilokthanakul et al. 2016, Deep Unsupervised Clustering with Gaussian Mixture
    Variational Autoencoders, arXiv:1611.02648.
    Stanford CS236 homework 2 (GMVAE with K = 500 uniform components).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution

from dgm.distributions import DiagonalGaussianMixture
from dgm.models.latent.vae import VAE, VAEConfig
from dgm.registry import register

MIN_PRIOR_STD = 1e-4  # keeps every component a proper density
_SOFTPLUS_INV_1 = math.log(math.e - 1.0)  # softplus(x) = 1 at x = log(e - 1)


@dataclasses.dataclass
class GMVAEConfig(VAEConfig):
    num_components: int = 500  # K, components of the mixture prior p(z) (CS236 uses 500)


@register("gmvae", GMVAEConfig)
class GMVAE(VAE):
    """VAE with a learnable mixture-of-Gaussians prior (Dilokthanakul et al. 2016).

    The prior is a ``MixtureSameFamily`` (``DiagonalGaussianMixture``) over ``num_components``
    diagonal Normals with uniform weights; means start at randn / sqrt(K · latent_dim) (as
    in CS236) and scales at 1, so the untrained prior is close to N(0, I). log_prob is the
    ELBO in nats with a Monte-Carlo KL; every VAE option (decoders, β, warm-up, IWAE,
    conditioning, conv) applies.

    References:
        Dilokthanakul et al. 2016, arXiv:1611.02648; Kingma & Welling 2013, arXiv:1312.6114.

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("gmvae", (6,), latent_dim=2, hidden_sizes=(16,), num_components=5)
        >>> model.prior().mixture_distribution.probs.shape
        torch.Size([5])
        >>> x = model.sample(3, generator=torch.Generator().manual_seed(0))
        >>> model.log_prob(x).shape
        torch.Size([3])
    """

    def __init__(self, event_shape: Iterable[int], config: GMVAEConfig) -> None:
        if config.num_components < 1:
            raise ValueError(f"num_components must be >= 1, got {config.num_components}")
        super().__init__(event_shape, config)
        K, L = config.num_components, config.latent_dim
        self.prior_means = nn.Parameter(torch.randn(K, L) / math.sqrt(K * L))  # (K, latent)
        self.prior_raw_scales = nn.Parameter(torch.full((K, L), _SOFTPLUS_INV_1))  # (K, latent)

    def prior(self) -> Distribution:
        """p(z) = (1/K) Σ_k N(m_k, diag s_k²), s_k = softplus(raw_k) + 1e-4."""
        scales = F.softplus(self.prior_raw_scales) + MIN_PRIOR_STD  # (K, latent)
        logits = self.prior_means.new_zeros(self.config.num_components)  # uniform weights
        return DiagonalGaussianMixture(logits, self.prior_means, scales)

    def _kl(self, q: Distribution, z: Tensor) -> Tensor:
        """Monte-Carlo KL: log q(z | x) − log p(z) at the draw z, in nats per example."""
        mu, std = q.base_dist.loc, q.base_dist.scale  # (B, latent) each
        # log q(z | x) = Σ_j −((z_j − μ_j)/σ_j)²/2 − log σ_j − log √(2π): q.log_prob(z)
        norm = std.log().sum(-1) + mu.shape[-1] * 0.5 * math.log(2 * math.pi)  # (B,)
        log_qz = -0.5 * ((z - mu) / std).pow(2).sum(-1) - norm  # (B,)
        return log_qz - self.prior().log_prob(z)

    def _sample_prior(
        self, n: int, generator: torch.Generator | None, temperature: float = 1.0
    ) -> Tensor:
        """z ~ p(z) with each component's noise scaled by ``temperature``."""
        prior = self.prior()
        probs = prior.mixture_distribution.probs  # (K,)
        k = torch.multinomial(probs, n, replacement=True, generator=generator)  # (n,)
        comp = prior.component_distribution.base_dist
        eps = torch.randn(
            (n, self.config.latent_dim), generator=generator, device=self.device, dtype=self.dtype
        )
        return comp.loc[k] + temperature * comp.scale[k] * eps  # (n, latent)

    def _draw_cost(self) -> int:
        # the mixture's log_prob holds (k_chunk, B, K) component terms
        return super()._draw_cost() + self.config.num_components
