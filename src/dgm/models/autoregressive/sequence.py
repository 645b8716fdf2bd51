"""What every left-to-right model of token sequences shares: p(x) = Π_t p(x_t | x_<t) over
an event shape (T,), the order, and the exact log-likelihood from the per-position logits."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import constraints

from dgm.model import GenerativeModel, Likelihood


class TokenSequenceModel(GenerativeModel):
    """Base of char_rnn and gpt: subclasses give ``conditional_logits(x, c)`` (B, T, V) by
    teacher forcing; ``log_prob`` and ``ordering`` follow from it."""

    likelihood = Likelihood.EXACT

    def __init__(self, event_shape: Iterable[int], config: Any) -> None:
        """Checks the (T,) event shape and ``config.vocab_size``; x lives in 0..V-1."""
        super().__init__(event_shape, config)
        name = type(self).__name__
        if len(self.event_shape) != 1:
            raise ValueError(f"{name} models sequences (T,), got {tuple(self.event_shape)}")
        if config.vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {config.vocab_size}")
        self.support = constraints.integer_interval(0, config.vocab_size - 1)

    def support_hint(self) -> str:
        return f"give tokens 0..{self.config.vocab_size - 1} (--vocab-size is set from the data)"

    def conditional_logits(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def ordering(self) -> Tensor:
        """Left to right: position t is the t-th conditional."""
        return torch.arange(self.num_dims, device=self.device)

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """log p(x) = Σ_t log p(x_t | x_<t) in nats, shape (B,)."""
        logits = self.conditional_logits(x, c)  # (B, T, V)
        x = self.check_x(x)
        return -F.cross_entropy(logits.transpose(1, 2), x, reduction="none").sum(-1)
