"""What every left-to-right model of token sequences shares: p(x) = Π_t p(x_t | x_<t) over
an event shape (T,), the order, and the exact log-likelihood from the per-position logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dgm.model import GenerativeModel, Likelihood


class TokenSequenceModel(GenerativeModel):
    """Base of char_rnn and gpt: subclasses give ``conditional_logits(x, c)`` (B, T, V) by
    teacher forcing; ``log_prob`` and ``ordering`` follow from it."""

    likelihood = Likelihood.EXACT

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
