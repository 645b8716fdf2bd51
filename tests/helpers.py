"""Small models that exercise the parts of the contract the VAE family does not: two
training phases (a GAN), closed-form fitting (EM), a deterministic loss (for exact
distributed comparisons) and a loss that diverges on purpose."""

from __future__ import annotations

import contextlib
import dataclasses
import math

import torch
from torch import Tensor, nn
from torch.distributions import Independent, Normal
from torch.nn import functional as F

from dgm.model import GenerativeModel, Likelihood, Loss
from dgm.registry import register, unregister


@dataclasses.dataclass
class GaussianConfig:
    nan_at_update: int = -1  # the loss turns NaN at this update (-1: never)


class DiagonalGaussian(GenerativeModel):
    """A diagonal Gaussian with learned mean and scale: a deterministic exact likelihood."""

    likelihood = Likelihood.EXACT

    def __init__(self, event_shape, config: GaussianConfig) -> None:
        super().__init__(event_shape, config)
        self.loc = nn.Parameter(torch.randn(self.event_shape) * 0.1)
        self.log_scale = nn.Parameter(torch.zeros(self.event_shape))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def dist(self) -> Independent:
        return Independent(Normal(self.loc, self.log_scale.exp()), len(self.event_shape))

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        x = self.check_x(x)
        self.check_c(c, len(x))
        return self.dist().log_prob(x)

    def loss(self, x: Tensor, c: Tensor | None = None, *, phase: str = "main") -> Loss:
        out = super().loss(x, c, phase=phase)
        if self.training:
            self.updates += 1
            if int(self.updates) == self.config.nan_at_update:
                return Loss(out.value * math.nan, out.metrics)
        return out

    def sample(
        self, n: int, c: Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        self.check_c(c, n)
        eps = torch.randn((n, *self.event_shape), generator=generator, device=self.loc.device)
        return self.loc + self.log_scale.exp() * eps


@dataclasses.dataclass
class MixtureConfig:
    num_components: int = 3  # enough for the toy data the tests use


class EMGaussianMixture(GenerativeModel):
    """A diagonal Gaussian mixture fitted by EM: one ``fit_step`` = one EM iteration."""

    likelihood = Likelihood.EXACT

    def __init__(self, event_shape, config: MixtureConfig) -> None:
        super().__init__(event_shape, config)
        k, d = config.num_components, self.num_dims
        self.register_buffer("logits", torch.zeros(k))
        self.register_buffer("means", torch.randn(k, d))
        self.register_buffer("log_scales", torch.zeros(k, d))

    def _component_log_prob(self, x: Tensor) -> Tensor:  # (B, K)
        comp = Normal(self.means, self.log_scales.exp())
        return comp.log_prob(x.reshape(len(x), 1, -1)).sum(-1) + self.logits.log_softmax(0)

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        x = self.check_x(x)
        self.check_c(c, len(x))
        return self._component_log_prob(x).logsumexp(-1)

    def fit_step(self, batches) -> dict[str, Tensor]:
        k, d = self.config.num_components, self.num_dims
        n, s0, s1, s2, ll = 0, torch.zeros(k), torch.zeros(k, d), torch.zeros(k, d), 0.0
        for x, _ in batches:
            x = self.check_x(x).reshape(len(x), -1)
            joint = self._component_log_prob(x)  # (B, K)
            ll += float(joint.logsumexp(-1).sum())
            r = joint.softmax(-1)  # responsibilities (B, K)
            s0 += r.sum(0)
            s1 += r.T @ x
            s2 += r.T @ x**2
            n += len(x)
        mean = s1 / s0[:, None]
        var = (s2 / s0[:, None] - mean**2).clamp_min(1e-4)
        self.logits.copy_((s0 / n).log())
        self.means.copy_(mean)
        self.log_scales.copy_(0.5 * var.log())
        return {"log_likelihood": torch.tensor(ll / n)}  # of the parameters before this update

    def sample(
        self, n: int, c: Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        self.check_c(c, n)
        idx = torch.multinomial(self.logits.softmax(0), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.num_dims, generator=generator)
        return (self.means[idx] + self.log_scales[idx].exp() * eps).reshape(n, *self.event_shape)


@dataclasses.dataclass
class ToyGANConfig:
    critic_steps: int = 2  # discriminator updates per generator update, as in WGAN


class ToyGAN(GenerativeModel):
    """An affine generator against a quadratic logistic discriminator, non-saturating loss."""

    likelihood = Likelihood.NONE

    def __init__(self, event_shape, config: ToyGANConfig) -> None:
        super().__init__(event_shape, config)
        d = self.num_dims
        self.phases = ("discriminator",) * config.critic_steps + ("generator",)
        self.generator = nn.Linear(d, d)
        self.discriminator = nn.Linear(2 * d, 1)
        self.calls: list[str] = []

    def _logits(self, x: Tensor) -> Tensor:
        return self.discriminator(torch.cat([x, x**2], -1)).squeeze(-1)

    def _fake(self, n: int) -> Tensor:
        return self.generator(torch.randn(n, self.num_dims, device=self.generator.weight.device))

    def loss(self, x: Tensor, c: Tensor | None = None, *, phase: str = "main") -> Loss:
        self._check_phase(phase)
        x = self.check_x(x).reshape(len(x), -1)
        self.calls.append(phase)
        if phase == "discriminator":
            real, fake = self._logits(x), self._logits(self._fake(len(x)).detach())
            value = F.softplus(-real).mean() + F.softplus(fake).mean()
        else:
            value = F.softplus(-self._logits(self._fake(len(x)))).mean()
        return Loss(value, {})

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "discriminator": list(self.discriminator.parameters()),
            "generator": list(self.generator.parameters()),
        }

    def sample(
        self, n: int, c: Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        self.check_c(c, n)
        z = torch.randn(n, self.num_dims, generator=generator)
        return self.generator(z).reshape(n, *self.event_shape)


TEST_MODELS = {
    "test_gaussian": (DiagonalGaussian, GaussianConfig),
    "test_em_mixture": (EMGaussianMixture, MixtureConfig),
    "test_gan": (ToyGAN, ToyGANConfig),
}


@contextlib.contextmanager
def registered():
    """The test models in the registry for the duration of a test."""
    for name, (cls, config) in TEST_MODELS.items():
        register(name, config)(cls)
    try:
        yield
    finally:
        for name in TEST_MODELS:
            unregister(name)
