"""Observation models p(x | z) for the latent-variable family.

A head turns the decoder network's output, laid out as (*batch, num_params, *event_shape),
into a ``torch.distributions`` object with event shape ``event_shape``, and draws from it
with an explicit ``torch.Generator``. The head fixes the model's support:

- ``bernoulli``: binary x in {0, 1}, ``Bernoulli(logits)`` per dimension;
- ``gaussian``: real x, ``Normal(mean, std)`` with std learned from z or fixed;
- ``categorical``: 8-bit x in {0, ..., 255}, a 256-way ``Categorical`` per dimension.

``log_likelihood`` gives the same log-density as ``distribution(params).log_prob`` in
closed form, straight from the decoder output: the training step and ``log_prob_iw`` call
it, so they neither build distribution objects nor check x a second time (the model
checked it where it entered). The tests hold it equal to the ``torch.distributions`` value.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import (
    Bernoulli,
    Categorical,
    Distribution,
    Independent,
    Normal,
    constraints,
)

MIN_DECODER_STD = 1e-3  # floor on a learned std: bounds the density where a pixel never varies
NUM_LEVELS = 256  # values of an 8-bit pixel
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)  # the Normal's log normaliser per dimension


class DecoderHead:
    """Maps decoder outputs (*batch, num_params, *event_shape) to p(x | z)."""

    num_params: int = 1
    support: constraints.Constraint = constraints.real

    def __init__(self, event_shape: torch.Size) -> None:
        self.event_shape = torch.Size(event_shape)
        self._n = len(self.event_shape)  # event dimensions reinterpreted by Independent

    def distribution(self, params: Tensor, validate: bool | None = None) -> Distribution:
        """p(x | z), batch shape (*batch), event shape ``event_shape``. ``validate=False``
        skips torch's argument checks (for x already checked by the model)."""
        raise NotImplementedError

    def sample(self, dist: Distribution, generator: torch.Generator | None = None) -> Tensor:
        """One draw of x from ``dist`` (made by ``distribution``), in the params' float dtype."""
        raise NotImplementedError

    def mean(self, dist: Distribution) -> Tensor:
        """E[x | z] of ``dist`` (made by ``distribution``), shape (*batch, *event_shape)."""
        return dist.mean

    def log_likelihood(self, params: Tensor, x: Tensor) -> Tensor:
        """log p(x | z) in nats, shape (*batch): ``distribution(params).log_prob(target(x))``
        without building the distribution or validating x. ``params`` is the decoder output
        (*batch, num_params, *event_shape); x (B, *event_shape), as the model holds it,
        broadcasts against *batch (e.g. *batch = (k, B) for k draws of z per example)."""
        return self.distribution(params, validate=False).log_prob(self.target(x))

    def target(self, x: Tensor) -> Tensor:
        """x in the form ``dist.log_prob`` takes."""
        return x

    def encoder_input(self, x: Tensor) -> Tensor:
        """x as the encoder network sees it."""
        return x

    def _params(self, params: Tensor) -> tuple[Tensor, ...]:
        self._check_params(params)
        return params.unbind(dim=-len(self.event_shape) - 1)  # num_params x (*batch, *event)

    def _check_params(self, params: Tensor) -> None:
        if params.shape[-len(self.event_shape) - 1 :] != (self.num_params, *self.event_shape):
            raise ValueError(
                f"decoder output has shape {tuple(params.shape)}, expected "
                f"(*batch, {self.num_params}, {', '.join(map(str, self.event_shape))})"
            )


class BernoulliHead(DecoderHead):
    """Independent Bernoulli pixels: log p(x | z) = Σ_d x_d log p_d + (1 − x_d) log(1 − p_d)."""

    support = constraints.boolean

    def distribution(self, params: Tensor, validate: bool | None = None) -> Distribution:
        (logits,) = self._params(params)
        return Independent(
            Bernoulli(logits=logits, validate_args=validate), self._n, validate_args=validate
        )

    def log_likelihood(self, params: Tensor, x: Tensor) -> Tensor:
        self._check_params(params)
        # a view, not unbind: unbind's backward stacks a copy of the whole gradient
        logits = params.flatten(-self._n - 1)  # (*batch, D): the one parameter, flattened
        x = x.flatten(-self._n)  # (B, D)
        # Σ_d x_d l_d − log(1 + e^{l_d}); softplus returns l for l > 20 (off by < 2.1e-9)
        return (x * logits).sum(-1) - F.softplus(logits).sum(-1)

    def sample(self, dist: Distribution, generator: torch.Generator | None = None) -> Tensor:
        return torch.bernoulli(dist.base_dist.probs, generator=generator)


class GaussianHead(DecoderHead):
    """Independent Normal dimensions; ``std=None`` learns a std per dimension from z
    (softplus(raw) + 1e-3), a number fixes it."""

    def __init__(self, event_shape: torch.Size, std: float | None = None) -> None:
        super().__init__(event_shape)
        if std is not None and not std > 0:
            raise ValueError(f"decoder_std must be positive or None (learned), got {std}")
        self.std = std
        self.num_params = 1 if std is not None else 2

    def distribution(self, params: Tensor, validate: bool | None = None) -> Distribution:
        if self.std is not None:
            (mean,) = self._params(params)
            return Independent(
                Normal(mean, self.std, validate_args=validate), self._n, validate_args=validate
            )
        mean, raw = self._params(params)
        std = F.softplus(raw) + MIN_DECODER_STD
        normal = Normal(mean, std, validate_args=validate)
        return Independent(normal, self._n, validate_args=validate)

    def log_likelihood(self, params: Tensor, x: Tensor) -> Tensor:
        # Σ_d −(x_d − μ_d)² / (2σ_d²) − log σ_d − log √(2π)
        dims = tuple(range(-self._n, 0))  # the event dimensions
        norm = self.event_shape.numel() * HALF_LOG_2PI
        if self.std is not None:
            self._check_params(params)
            mean = params.squeeze(dims[0] - 1)  # (*batch, *event): a view, as in bernoulli
            sq = (x - mean).pow(2).sum(dims)  # (*batch)
            return -0.5 / self.std**2 * sq - (norm + self.event_shape.numel() * math.log(self.std))
        mean, raw = self._params(params)  # (*batch, *event) each
        std = F.softplus(raw) + MIN_DECODER_STD
        return (-0.5 * ((x - mean) / std).pow(2) - std.log()).sum(dims) - norm

    def sample(self, dist: Distribution, generator: torch.Generator | None = None) -> Tensor:
        normal = dist.base_dist
        loc = normal.loc
        eps = torch.randn(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
        return loc + normal.scale * eps


class CategoricalHead(DecoderHead):
    """A 256-way softmax per dimension over the 8-bit values 0..255 (van den Oord et al.
    2016, arXiv:1601.06759). The encoder sees x / 255."""

    num_params = NUM_LEVELS
    support = constraints.integer_interval(0, NUM_LEVELS - 1)

    def distribution(self, params: Tensor, validate: bool | None = None) -> Distribution:
        self._params(params)  # shape check
        logits = params.movedim(-len(self.event_shape) - 1, -1)  # (*batch, *event, 256)
        return Independent(
            Categorical(logits=logits, validate_args=validate), self._n, validate_args=validate
        )

    def log_likelihood(self, params: Tensor, x: Tensor) -> Tensor:
        # Σ_d l_{d, x_d} − logsumexp_v l_{d, v}: no (*batch, *event, 256) log-softmax tensor
        self._check_params(params)
        dim = -self._n - 1  # the 256 levels
        index = x.long().unsqueeze(dim).expand(*params.shape[:dim], 1, *self.event_shape)
        picked = params.gather(dim, index).squeeze(dim)  # (*batch, *event): l_{d, x_d}
        log_pmf = picked - params.logsumexp(dim)  # (*batch, *event)
        return log_pmf.flatten(-self._n).sum(-1)  # (*batch)

    def sample(self, dist: Distribution, generator: torch.Generator | None = None) -> Tensor:
        probs = dist.base_dist.probs  # (*batch, *event, 256)
        flat = probs.reshape(-1, NUM_LEVELS)  # (N, 256)
        draws = torch.multinomial(flat, 1, replacement=True, generator=generator)  # (N, 1)
        return draws.view(probs.shape[:-1])  # (*batch, *event), int64

    def mean(self, dist: Distribution) -> Tensor:
        probs = dist.base_dist.probs  # (*batch, *event, 256)
        levels = torch.arange(NUM_LEVELS, device=probs.device, dtype=probs.dtype)  # (256,)
        return probs @ levels  # (*batch, *event)

    def target(self, x: Tensor) -> Tensor:
        return x.long()

    def encoder_input(self, x: Tensor) -> Tensor:
        return x / (NUM_LEVELS - 1)  # integer x divides into the default float dtype


def make_head(kind: str, event_shape: torch.Size, std: float | None = None) -> DecoderHead:
    """The head named by ``VAEConfig.decoder``.

    Example:
        >>> import torch
        >>> head = make_head("categorical", torch.Size([2]))
        >>> dist = head.distribution(torch.zeros(5, 256, 2))
        >>> dist.batch_shape, dist.event_shape
        (torch.Size([5]), torch.Size([2]))
        >>> round(dist.log_prob(torch.tensor([0, 255])).exp()[0].item() * 256**2, 6)
        1.0
    """
    if kind != "gaussian" and std is not None:
        raise ValueError(
            f"decoder_std applies to decoder='gaussian' only; set it to None for {kind!r}"
        )
    if kind == "bernoulli":
        return BernoulliHead(event_shape)
    if kind == "gaussian":
        return GaussianHead(event_shape, std)
    if kind == "categorical":
        return CategoricalHead(event_shape)
    raise ValueError(f"unknown decoder {kind!r}; choose bernoulli, gaussian or categorical")


__all__ = ["BernoulliHead", "CategoricalHead", "DecoderHead", "GaussianHead", "make_head"]
