"""Small models that exercise the parts of the contract the VAE family does not: two
training phases (a GAN), closed-form fitting (EM), a deterministic loss (for exact
distributed comparisons), a loss or a gradient that diverges on purpose, losses of known
value (for the logged means) and models that record what the trainer showed them."""

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
    nan_grad_at_update: int = -1  # the loss stays finite, its gradient turns NaN (-1: never)
    noise: float = 0.0  # the loss sees x + noise * torch.randn (0: deterministic)


class _NaNGradient(torch.autograd.Function):
    """The identity whose gradient is NaN."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad * math.nan


class DiagonalGaussian(GenerativeModel):
    """A diagonal Gaussian with learned mean and scale: a deterministic exact likelihood.

    Its training-mode ``loss`` records what the trainer showed it: ``seen_steps`` (the
    ``training_step`` of each call), ``seen_check_values``, ``noise_draws`` (with
    ``noise``), and ``before_bad_step`` (the state at the NaN-gradient update).
    """

    likelihood = Likelihood.EXACT

    def __init__(self, event_shape, config: GaussianConfig) -> None:
        super().__init__(event_shape, config)
        self.loc = nn.Parameter(torch.randn(self.event_shape) * 0.1)
        self.log_scale = nn.Parameter(torch.zeros(self.event_shape))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.seen_steps: list[int] = []
        self.seen_check_values: list[bool] = []
        self.noise_draws: list[Tensor] = []
        self.before_bad_step: dict[str, Tensor] | None = None

    def dist(self) -> Independent:
        return Independent(Normal(self.loc, self.log_scale.exp()), len(self.event_shape))

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        x = self.check_x(x)
        self.check_c(c, len(x))
        return self.dist().log_prob(x)

    def loss(self, x: Tensor, c: Tensor | None = None, *, phase: str = "main") -> Loss:
        if self.training and self.config.noise > 0:
            eps = torch.randn_like(x)
            self.noise_draws.append(eps.detach().clone())
            x = x + self.config.noise * eps
        out = super().loss(x, c, phase=phase)
        if self.training:
            self.seen_steps.append(self.training_step)
            self.seen_check_values.append(self.check_values)
            self.updates += 1
            if int(self.updates) == self.config.nan_at_update:
                return Loss(out.value * math.nan, out.metrics)
            if int(self.updates) == self.config.nan_grad_at_update:
                self.before_bad_step = {k: v.clone() for k, v in self.state_dict().items()}
                return Loss(_NaNGradient.apply(out.value), out.metrics)
        return out

    def sample(
        self,
        n: int,
        c: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **options,
    ) -> Tensor:
        self.sample_settings(options)  # no options: refuses any
        self.check_c(c, n)
        eps = torch.randn(
            (n, *self.event_shape), generator=generator, device=self.loc.device, dtype=self.dtype
        )
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
        zeros = lambda *shape: torch.zeros(shape, dtype=self.dtype)  # noqa: E731
        n, s0, s1, s2, ll = 0, zeros(k), zeros(k, d), zeros(k, d), 0.0
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
        self,
        n: int,
        c: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **options,
    ) -> Tensor:
        self.sample_settings(options)  # no options: refuses any
        self.check_c(c, n)
        idx = torch.multinomial(self.logits.softmax(0), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.num_dims, generator=generator, dtype=self.dtype)
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
        w = self.generator.weight
        return self.generator(torch.randn(n, self.num_dims, device=w.device, dtype=w.dtype))

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
        self,
        n: int,
        c: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **options,
    ) -> Tensor:
        self.sample_settings(options)  # no options: refuses any
        self.check_c(c, n)
        z = torch.randn(n, self.num_dims, generator=generator, dtype=self.dtype)
        return self.generator(z).reshape(n, *self.event_shape)


@dataclasses.dataclass
class CriticConfig:
    critic_steps: int = 3  # critic calls per generator call, as in WGAN


class ConstantCritic(GenerativeModel):
    """Two phases whose losses have known values: each critic call returns 2 and reports
    ``call``, its index among the step's critic calls (0, 1, 2, ...); each generator call
    returns 5. Every gradient is all ones: norm 2 for the critic's 4 parameters, 3 for the
    generator's 9. A step's means are then critic loss 2, call (k-1)/2, norms 2 and 3."""

    likelihood = Likelihood.NONE

    def __init__(self, event_shape, config: CriticConfig) -> None:
        super().__init__(event_shape, config)
        self.phases = ("critic",) * config.critic_steps + ("generator",)
        self.critic = nn.Parameter(torch.zeros(4))
        self.generator = nn.Parameter(torch.zeros(9))
        self.critic_calls = 0

    def loss(self, x: Tensor, c: Tensor | None = None, *, phase: str = "main") -> Loss:
        self._check_phase(phase)
        self.check_x(x)
        if phase == "critic":
            k = self.critic_calls % self.config.critic_steps
            self.critic_calls += 1
            s = self.critic.sum()
            return Loss(2.0 + (s - s.detach()), {"call": torch.tensor(float(k))})
        s = self.generator.sum()
        return Loss(5.0 + (s - s.detach()), {})

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"critic": [self.critic], "generator": [self.generator]}

    def sample(self, n: int, c: Tensor | None = None, *, generator=None, **options) -> Tensor:
        self.sample_settings(options)
        self.check_c(c, n)
        return self.generator.sum().detach() + torch.zeros(n, *self.event_shape, dtype=self.dtype)


@dataclasses.dataclass
class RecordingConfig:
    scale: float = 1.0  # unused: a config needs a field to round-trip


class RecordingFit(GenerativeModel):
    """Fitted in closed form; ``fit_step`` records the examples it is given (x holds each
    example's index) and whether autograd was on."""

    def __init__(self, event_shape, config: RecordingConfig) -> None:
        super().__init__(event_shape, config)
        self.register_buffer("total", torch.zeros(()))
        self.seen: list[Tensor] = []
        self.grad_enabled: list[bool] = []

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        return torch.zeros(len(self.check_x(x)))

    def fit_step(self, batches) -> dict[str, Tensor]:
        self.grad_enabled.append(torch.is_grad_enabled())
        seen = torch.cat([self.check_x(x).reshape(-1) for x, _ in batches])
        self.seen.append(seen)
        self.total += seen.sum()
        return {"examples": torch.tensor(float(len(seen)))}


TEST_MODELS = {
    "test_gaussian": (DiagonalGaussian, GaussianConfig),
    "test_em_mixture": (EMGaussianMixture, MixtureConfig),
    "test_gan": (ToyGAN, ToyGANConfig),
    "test_constant_critic": (ConstantCritic, CriticConfig),
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


def gaussian_data(n: int = 512, d: int = 2, seed: int = 0):
    """n points of N(2, 0.5^2 I) in d dimensions, as TensorData."""
    from dgm.data import TensorData

    g = torch.Generator().manual_seed(seed)
    return TensorData(torch.randn(n, d, generator=g) * 0.5 + 2.0, name="gauss")


def quiet_config(**kw):
    """A short CPU TrainConfig with no periodic work unless asked for."""
    from dgm.train import TrainConfig

    base = dict(
        steps=20,
        batch_size=32,
        eval_every=0,
        sample_every=0,
        log_every=5,
        checkpoint_every=5,
        device="cpu",
        warmup_steps=2,
    )
    return TrainConfig(**{**base, **kw})
