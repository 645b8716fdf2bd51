"""Small exact models of the kinds the VAE family does not cover, so the registry-wide
contract test and each capability check run on them: a context-conditional Gaussian
(floats, condition dropout, missing values, completion, an encoder) and a token model
(integer x of event shape (T,), a token prompt, per-position conditionals).

Both are exact and cheap, so the capability checks can compare them with enumeration or
closed forms; the checks themselves (tests/test_contract.py) hold every model to the same
properties."""

from __future__ import annotations

import contextlib
import dataclasses
import math

import torch
from torch import Tensor, nn
from torch.distributions import Independent, Normal, constraints

from dgm.model import (
    ConditionDropout,
    ContextConditional,
    GenerativeModel,
    Likelihood,
    TextContext,
)
from dgm.registry import register, unregister


@dataclasses.dataclass
class ContextGaussianConfig(ConditionDropout, ContextConditional):
    context_shape: tuple[int, ...] = (3,)  # c is a float vector; its shape comes from the data


@dataclasses.dataclass
class ContextGaussianSampleOptions:
    temperature: float = 1.0  # scale of the noise around the mean


class ContextGaussian(GenerativeModel):
    """p(x | c) = N(W c + b, diag σ²): exact, with missing values marginalised (NaN),
    exact completion and the standardising map as its latent space."""

    likelihood = Likelihood.EXACT
    sample_options = ContextGaussianSampleOptions

    def __init__(self, event_shape, config: ContextGaussianConfig) -> None:
        super().__init__(event_shape, config)
        d, k = self.num_dims, math.prod(config.context_shape)
        self.weight = nn.Parameter(torch.randn(d, k) * 0.3)
        self.bias = nn.Parameter(torch.randn(d) * 0.1)
        self.log_scale = nn.Parameter(torch.randn(d) * 0.1)

    def _dist(self, c: Tensor | None, n: int) -> Independent:
        mean = self.bias.expand(n, -1)  # (n, D)
        if c is not None:
            mean = mean + c.flatten(1) @ self.weight.T  # (n, D)
        return Independent(Normal(mean, self.log_scale.exp()), 1)

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        x = self.check_x(x)
        c = self.check_c(c, len(x))
        flat = x.flatten(1)  # (B, D)
        observed = ~torch.isnan(flat)
        return self._log_prob_observed(flat, observed, c)

    def log_prob_observed(
        self, x: Tensor, observed_mask: Tensor, c: Tensor | None = None
    ) -> Tensor:
        x = self.check_x(torch.where(observed_mask, x, 0.0))
        c = self.check_c(c, len(x))
        observed = observed_mask.expand_as(x).flatten(1)  # (B, D)
        return self._log_prob_observed(x.flatten(1), observed, c)

    def _log_prob_observed(self, flat: Tensor, observed: Tensor, c: Tensor | None) -> Tensor:
        base = self._dist(c, len(flat)).base_dist
        terms = base.log_prob(torch.where(observed, flat, base.loc))  # (B, D)
        return (terms * observed).sum(-1)

    def complete(self, x, observed_mask, c=None, generator=None) -> Tensor:
        mask = observed_mask.expand_as(x)
        draw = self.sample(len(x), c, generator=generator)
        return torch.where(mask, x.to(draw.dtype), draw)

    def encode(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        x = self.check_x(x)
        base = self._dist(self.check_c(c, len(x)), len(x)).base_dist
        return (x.flatten(1) - base.loc) / base.scale  # (B, D)

    def decode(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        base = self._dist(self.check_c(c, len(z)), len(z)).base_dist
        return (base.loc + base.scale * z).reshape(len(z), *self.event_shape)

    def prior(self) -> Independent:
        zeros = torch.zeros(self.num_dims, dtype=self.dtype)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)

    def sample(self, n, c=None, *, generator=None, **options) -> Tensor:
        opts = self.sample_settings(options)
        base = self._dist(self.check_c(c, n), n).base_dist
        eps = torch.randn(base.loc.shape, generator=generator, dtype=self.dtype)
        return (base.loc + opts.temperature * base.scale * eps).reshape(n, *self.event_shape)


@dataclasses.dataclass
class TokenChainConfig(TextContext):  # context_shape (P,): a prompt of P tokens
    vocab_size: int = 3  # tokens 0..V-1


class TokenChain(GenerativeModel):
    """A first-order Markov chain over T tokens, p(x) = p(x_1 | prompt) Π p(x_t | x_{t-1}):
    per-position conditionals in natural order, exact marginals and exact completion by
    forward filtering, backward sampling."""

    likelihood = Likelihood.EXACT

    def __init__(self, event_shape, config: TokenChainConfig) -> None:
        super().__init__(event_shape, config)
        if len(self.event_shape) != 1:
            raise ValueError(f"TokenChain models sequences (T,), got {tuple(self.event_shape)}")
        v = config.vocab_size
        self.support = constraints.integer_interval(0, v - 1)
        self.initial = nn.Parameter(torch.randn(v))  # (V,)
        self.transition = nn.Parameter(torch.randn(v, v))  # (V, V): row = previous token
        if config.context_vocab:
            self.prompt = nn.Parameter(torch.randn(config.context_vocab, v) * 0.5)

    def _initial_logits(self, c: Tensor | None, n: int) -> Tensor:
        logits = self.initial.expand(n, -1)  # (n, V)
        if c is not None:
            logits = logits + self.prompt[c[:, -1]]  # the prompt's last token shifts p(x_1)
        return logits

    def ordering(self) -> Tensor:
        return torch.arange(self.num_dims)

    def conditional_logits(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        x = self.check_x(x)
        c = self.check_c(c, len(x))
        first = self._initial_logits(c, len(x))[:, None]  # (B, 1, V)
        rest = self.transition[x[:, :-1]]  # (B, T-1, V)
        return torch.cat([first, rest], dim=1)  # (B, T, V)

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        logits = self.conditional_logits(x, c).log_softmax(-1)  # (B, T, V)
        return logits.gather(-1, self.check_x(x)[..., None]).squeeze(-1).sum(-1)

    def _filter(self, x: Tensor, mask: Tensor, c: Tensor | None) -> list[Tensor]:
        """Forward messages log α_t(v) = log p(x_obs up to t, x_t = v), each (B, V)."""
        v = self.config.vocab_size
        allowed = torch.where(
            mask[..., None], torch.nn.functional.one_hot(x, v).bool(), True
        )  # (B, T, V)
        log_a = self.transition.log_softmax(-1)  # (V, V)
        alpha = self._initial_logits(c, len(x)).log_softmax(-1)
        alphas = [alpha.masked_fill(~allowed[:, 0], -math.inf)]
        for t in range(1, self.num_dims):
            alpha = torch.logsumexp(alphas[-1][:, :, None] + log_a, dim=1)  # (B, V)
            alphas.append(alpha.masked_fill(~allowed[:, t], -math.inf))
        return alphas

    def log_prob_observed(self, x, observed_mask, c=None) -> Tensor:
        x = self.check_x(torch.where(observed_mask, x, 0))
        mask = observed_mask.expand_as(x)
        return self._filter(x, mask, self.check_c(c, len(x)))[-1].logsumexp(-1)

    def complete(self, x, observed_mask, c=None, generator=None) -> Tensor:
        x = self.check_x(torch.where(observed_mask, x, 0))
        mask = observed_mask.expand_as(x)
        alphas = self._filter(x, mask, self.check_c(c, len(x)))
        log_a = self.transition.log_softmax(-1)
        out = x.clone()
        logits = alphas[-1]
        for t in reversed(range(self.num_dims)):
            draw = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)
            out[:, t] = draw
            if t > 0:
                logits = alphas[t - 1] + log_a[:, draw].T  # (B, V): p(x_{t-1} | x_t = draw)
        return out

    def sample(self, n, c=None, *, generator=None, **options) -> Tensor:
        self.sample_settings(options)
        c = self.check_c(c, n)
        out = torch.empty(n, self.num_dims, dtype=torch.long)
        logits = self._initial_logits(c, n)
        for t in range(self.num_dims):
            out[:, t] = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
            logits = self.transition[out[:, t]]
        return out


CONTRACT_MODELS = {
    "test_context_gaussian": (ContextGaussian, ContextGaussianConfig),
    "test_token_chain": (TokenChain, TokenChainConfig),
}


@contextlib.contextmanager
def registered_contract_models():
    """The models above in the registry for the duration of a test."""
    for name, (cls, config) in CONTRACT_MODELS.items():
        register(name, config)(cls)
    try:
        yield
    finally:
        for name in CONTRACT_MODELS:
            unregister(name)
