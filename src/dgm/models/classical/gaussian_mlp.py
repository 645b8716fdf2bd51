"""A Gaussian whose mean and diagonal variance are functions of a context vector.

p(x | c) = N(x; μ(c), diag σ²(c)), (μ, log σ) = MLP(c): the plain regression baseline of a
conditional density, e.g. a one-step dynamics model p(Δs | s, a) for model-based control
(``dgm.tasks.control``), where it is the probabilistic-ensemble member of PETS without the
ensemble. log_prob is exact; sampling is one network pass.

References:
    Nix & Weigend 1994, Estimating the mean and variance of the target probability
    distribution, ICNN.
    Chua, Calandra, McAllister & Levine 2018, Deep reinforcement learning in a handful of
    trials using probabilistic dynamics models (PETS), NeurIPS, arXiv:1805.12114.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import torch
from torch import Tensor
from torch.distributions import Independent, Normal

from dgm.model import ContextConditional, GenerativeModel, Likelihood
from dgm.nn import mlp
from dgm.registry import register

LOG_STD_MIN, LOG_STD_MAX = -10.0, 5.0  # clamp on log σ: σ in [4.5e-5, 148]


@dataclasses.dataclass
class GaussianMLPConfig(ContextConditional):
    hidden_sizes: tuple[int, ...] = (128, 128)  # widths of the MLP from c; '' for an affine map


@dataclasses.dataclass
class GaussianMLPSampleOptions:
    temperature: float = 1.0  # multiply σ by T (0: the mean μ(c) itself)


@register("gaussian_mlp", GaussianMLPConfig)
class GaussianMLP(GenerativeModel):
    """Gaussian MLP (Nix & Weigend 1994): exact log_prob of N(μ(c), diag σ²(c)) in nats.

    One MLP maps the flattened context c to 2 D outputs, the mean μ (D,) and log σ (D,)
    (clamped to [LOG_STD_MIN, LOG_STD_MAX]) of every dimension of the flattened x. It needs a
    context (``context_shape``, filled in from data that carry one, e.g. ``transitions``).

    References:
        Nix & Weigend 1994 (ICNN); Chua et al. 2018, arXiv:1805.12114.

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("gaussian_mlp", (3,), hidden_sizes=(8,), context_shape=(4,))
        >>> c = torch.zeros(5, 4)
        >>> model.sample(5, c).shape, model.log_prob(torch.zeros(5, 3), c).shape
        (torch.Size([5, 3]), torch.Size([5]))
    """

    likelihood = Likelihood.EXACT
    sample_options = GaussianMLPSampleOptions

    def __init__(self, event_shape: Iterable[int], config: GaussianMLPConfig) -> None:
        super().__init__(event_shape, config)
        if not config.context_shape:
            raise ValueError(
                "gaussian_mlp needs a context vector c: train it on data that carry one "
                "(e.g. --data transitions) or set context_shape"
            )
        self.net = mlp(
            math.prod(config.context_shape), tuple(config.hidden_sizes), 2 * self.num_dims
        )

    def mean_and_log_std(self, c: Tensor) -> tuple[Tensor, Tensor]:
        """μ(c) and log σ(c), each (B, D), for a checked context c (B, *context_shape)."""
        mean, log_std = self.net(c.flatten(1)).chunk(2, dim=-1)  # (B, D) each
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def distribution(self, c: Tensor) -> Independent:
        """p(x | c) over flattened x: a ``torch.distributions`` object, batch (B,), event (D,)."""
        c = self.check_c(c, len(c))
        mean, log_std = self.mean_and_log_std(c)
        return Independent(Normal(mean, log_std.exp()), 1)

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """log p(x | c) in nats, exact, shape (B,)."""
        x = self.check_x(x)
        c = self.check_c(c, len(x))
        return self.distribution(c).log_prob(x.flatten(1))  # (B,)

    def sample(
        self,
        n: int,
        c: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **options: float,
    ) -> Tensor:
        """n draws μ(c) + T σ(c) ε, shape (n, *event_shape); T = ``temperature``."""
        T = self.sample_settings(options).temperature
        c = self.check_c(c, n)
        with torch.no_grad():
            mean, log_std = self.mean_and_log_std(c)  # (n, D) each
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            return (mean + T * log_std.exp() * eps).view(n, *self.event_shape)
