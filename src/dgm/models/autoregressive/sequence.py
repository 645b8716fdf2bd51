"""What every left-to-right model of token sequences shares: p(x) = Π_t p(x_t | x_<t) over
an event shape (T,), the order, the exact log-likelihood from the per-position logits, and
which tokens are real.

Units: ``log_prob`` is log p of the whole padded sequence (nats per sequence); per-token
figures (``nats_per_token``, bits per character) divide that NLL by the sequence's *real*
tokens (``token_counts``): with a config ``end_token`` >= 0 (padded data: ``words``,
captions) the tokens up to and including the first end token, the padding after it
excluded; with -1 (running text) all T. The padding's predictions stay in the numerator:
they are part of log p(x), and a trained model makes them at almost no cost. A word of 5
letters in 16 positions has 6 real tokens, so a sequence NLL of 12 nats is 2 nats per
token, not 12/16 = 0.75.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import constraints

from dgm.model import GenerativeModel, Likelihood, Loss, real_token_counts


class TokenSequenceModel(GenerativeModel):
    """Base of char_rnn and gpt: subclasses give ``conditional_logits(x, c)`` (B, T, V) by
    teacher forcing; ``log_prob``, ``loss`` and ``ordering`` follow from it, and
    ``token_counts`` from the config's ``end_token`` (``TokenSequence``)."""

    likelihood = Likelihood.EXACT

    def __init__(self, event_shape: Iterable[int], config: Any) -> None:
        """Checks the (T,) event shape and ``config.vocab_size``; x lives in 0..V-1."""
        super().__init__(event_shape, config)
        name = type(self).__name__
        if len(self.event_shape) != 1:
            raise ValueError(f"{name} models sequences (T,), got {tuple(self.event_shape)}")
        if config.vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {config.vocab_size}")
        if not -1 <= config.end_token < config.vocab_size:
            raise ValueError(
                f"end_token must be a token in 0..{config.vocab_size - 1}, or -1 for text "
                f"without padding; got {config.end_token}"
            )
        self.support = constraints.integer_interval(0, config.vocab_size - 1)

    def support_hint(self) -> str:
        return f"give tokens 0..{self.config.vocab_size - 1} (--vocab-size is set from the data)"

    def conditional_logits(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def check_prompt(self, prompt: Tensor | None) -> Tensor:
        """The ``prompt`` sampling option as int64 token ids (P,) on the model's device,
        P < T and every token in 0..V-1; None gives an empty prompt (P = 0)."""
        if prompt is None:
            return torch.zeros(0, dtype=torch.long, device=self.device)
        if isinstance(prompt, str):
            raise ValueError(
                "prompt takes token ids (a LongTensor (P,)), not text: encode the text with "
                "dgm.data.text.encode_prompt(text, vocab) first"
            )
        prompt = torch.as_tensor(prompt, device=self.device)
        V, T = self.config.vocab_size, self.num_dims
        if prompt.dim() != 1 or prompt.is_floating_point() or prompt.dtype == torch.bool:
            raise ValueError(
                f"prompt has shape {tuple(prompt.shape)} and dtype {prompt.dtype}, expected "
                "integer token ids of shape (P,)"
            )
        if len(prompt) >= T:
            raise ValueError(
                f"prompt has {len(prompt)} tokens but sequences have T = {T}: give fewer than "
                f"{T} so that something is left to draw"
            )
        if bool(((prompt < 0) | (prompt >= V)).any()):
            raise ValueError(f"prompt has tokens outside the vocabulary 0..{V - 1}")
        return prompt.long()

    def ordering(self) -> Tensor:
        """Left to right: position t is the t-th conditional."""
        return torch.arange(self.num_dims, device=self.device)

    def log_prob(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """log p(x) = Σ_t log p(x_t | x_<t) in nats, shape (B,)."""
        logits = self.conditional_logits(x, c)  # (B, T, V)
        x = self.check_x(x)
        return -F.cross_entropy(logits.transpose(1, 2), x, reduction="none").sum(-1)

    def token_counts(self, x: Tensor) -> Tensor:
        """Real tokens per sequence (B,) int64: up to and including the first
        ``end_token`` (what follows is padding), or all T with ``end_token`` = -1 or when a
        sequence holds no end token."""
        return real_token_counts(self.check_x(x), self.config.end_token)

    def loss(self, x: Tensor, c: Tensor | None = None, *, phase: str = "main") -> Loss:
        """The objective: −log p(x) averaged over the batch, nats per sequence (the padding's
        predictions included: they are part of the likelihood ``log_prob`` reports, and
        a sum over positions, not a mean, so padding does not dilute the real tokens).
        Metrics: ``nll`` (the same) and ``nats_per_token``, the batch's NLL over its real
        tokens (``token_counts``)."""
        self._check_phase(phase)
        lp = self.log_prob(x, c)  # (B,)
        nll = -lp.mean()
        per_token = -lp.sum() / self.token_counts(x).sum()
        return Loss(nll, {"nll": nll.detach(), "nats_per_token": per_token.detach()})
