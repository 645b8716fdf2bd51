"""The contract every dgm model honours.

A generative model is a distribution p(x), or p(x | c). One trainer, one evaluator and
one set of task tools serve every family because every model speaks through four
methods: ``loss`` (what to minimise, per training phase), ``log_prob`` (nats per
example), ``sample`` and ``param_groups`` (which parameters each phase updates).
What ``log_prob`` means is stated by ``likelihood``; optional abilities are small
protocols (``LatentVariableModel``, ``ClosedFormFit``, ...) that tools check for,
never model names.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, constraints


class Likelihood(enum.Enum):
    """What ``log_prob`` returns."""

    EXACT = "exact"  # log p(x) itself (autoregressive models, flows, classical models)
    LOWER_BOUND = "lower_bound"  # a stochastic lower bound, the ELBO (latent-variable models)
    NONE = "none"  # no likelihood (GANs): log_prob raises


class Loss(NamedTuple):
    """A scalar to minimise and detached per-batch metrics to log (means over the batch)."""

    value: Tensor
    metrics: dict[str, Tensor]


class GenerativeModel(nn.Module):
    """Base class of every model: a distribution p(x) or p(x | c) over ``event_shape``.

    Subclasses set ``likelihood``, ``support`` (a ``torch.distributions.constraints``
    object: where x lives) and implement ``log_prob`` and ``sample``; ``loss`` defaults to
    the mean negative ``log_prob``. A model is conditional when ``num_classes > 0``: then
    ``c`` is a LongTensor of class labels, shape (batch,).
    """

    likelihood: Likelihood = Likelihood.EXACT
    support: constraints.Constraint = constraints.real
    phases: tuple[str, ...] = ("main",)  # the trainer calls loss(..., phase=p) for each, in order

    def __init__(self, event_shape: Iterable[int], config: Any) -> None:
        super().__init__()
        if not dataclasses.is_dataclass(config):
            raise TypeError(f"config must be a dataclass instance, got {type(config).__name__}")
        self.event_shape = torch.Size(event_shape)
        if len(self.event_shape) == 0 or any(d <= 0 for d in self.event_shape):
            raise ValueError(
                f"event_shape must be non-empty and positive, got {tuple(event_shape)}"
            )
        self.config = config

    # -- the contract ---------------------------------------------------------------------

    def loss(self, x: Tensor, c: Tensor | None = None, *, phase: str = "main") -> Loss:
        """Objective for one training phase, averaged over the batch (nats per example)."""
        self._check_phase(phase)
        nll = -self.log_prob(x, c).mean()
        return Loss(nll, {"nll": nll.detach()})

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """log p(x) (or its lower bound, see ``likelihood``) in nats, shape (batch,)."""
        raise NotImplementedError(f"{type(self).__name__} has no likelihood")

    def sample(
        self, n: int, c: Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """n draws from the model, shape (n, *event_shape), on the model's device."""
        raise NotImplementedError

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters updated by each phase; one optimizer is built per key."""
        return {"main": [p for p in self.parameters() if p.requires_grad]}

    # -- shared helpers -------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        """Number of classes c ranges over; 0 for an unconditional model."""
        return int(getattr(self.config, "num_classes", 0) or 0)

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def num_dims(self) -> int:
        """D, the number of dimensions of one x (bits/dim divide by D ln 2)."""
        return self.event_shape.numel()

    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for t in self.parameters():
            return t.dtype
        return torch.get_default_dtype()

    def check_x(self, x: Tensor) -> Tensor:
        """Reject x whose trailing shape is not ``event_shape`` or whose values lie outside
        ``support``; returns x cast to the model's dtype."""
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a Tensor, got {type(x).__name__}")
        n = len(self.event_shape)
        if x.dim() != n + 1 or x.shape[1:] != self.event_shape:
            raise ValueError(
                f"x has shape {tuple(x.shape)}, "
                f"expected (batch, {', '.join(map(str, self.event_shape))})"
            )
        if self.support is not constraints.real and not bool(self.support.check(x).all()):
            raise ValueError(
                f"x has values outside the support of {type(self).__name__} ({self.support}); "
                f"observed range [{x.min().item():g}, {x.max().item():g}]"
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x contains NaN or infinite values")
        return x.to(self.dtype)

    def check_c(self, c: Tensor | int | None, n: int) -> Tensor | None:
        """Validate the conditioning argument for a batch of n; returns a LongTensor (n,)."""
        if not self.conditional:
            if c is not None:
                raise ValueError(
                    f"{type(self).__name__} is unconditional: pass c=None "
                    "(build it with num_classes > 0 for p(x | c))"
                )
            return None
        if c is None:
            raise ValueError(
                f"{type(self).__name__} is conditional on {self.num_classes} classes: pass c, "
                "a LongTensor of labels with shape (batch,)"
            )
        c = torch.as_tensor(c, device=self.device)
        if c.dim() == 0:
            c = c.expand(n)
        if c.shape != (n,) or c.is_floating_point():
            raise ValueError(
                f"c has shape {tuple(c.shape)} and dtype {c.dtype}, expected ({n},) integer labels"
            )
        if bool(((c < 0) | (c >= self.num_classes)).any()):
            raise ValueError(f"c has labels outside 0..{self.num_classes - 1}")
        return c.long()

    def _check_phase(self, phase: str) -> None:
        if phase not in self.phases:
            raise ValueError(
                f"unknown phase {phase!r} for {type(self).__name__}; phases: {self.phases}"
            )

    def extra_repr(self) -> str:
        return f"event_shape={tuple(self.event_shape)}"


# -- capabilities: small protocols the tools check for -----------------------------------


@runtime_checkable
class LatentVariableModel(Protocol):
    """p(x) = ∫ p(x | z) p(z) dz with an amortised posterior q(z | x)."""

    def encode(self, x: Tensor, c: Tensor | None = None) -> Distribution: ...  # q(z | x)

    def decode(self, z: Tensor, c: Tensor | None = None) -> Distribution: ...  # p(x | z)

    def prior(self) -> Distribution: ...  # p(z)

    def log_prob_iw(self, x: Tensor, k: int, c: Tensor | None = None) -> Tensor: ...

    def elbo_terms(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class ClosedFormFit(Protocol):
    """Models fitted by closed-form updates (counting, EM) instead of gradient steps.

    ``fit_step`` makes one full pass over ``batches`` (an iterable of (x, c) pairs) and
    updates the parameters in place: one EM iteration, or the whole fit for naive Bayes.
    The trainer calls it once per step and returns its metrics to the log.
    """

    def fit_step(self, batches: Iterable[tuple[Tensor, Tensor | None]]) -> dict[str, Tensor]: ...
